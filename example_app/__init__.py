"""The tutorial's branches API, protected by Flask-ClientAuth.

``create_app()`` builds the app. Settings come, lowest first, from the defaults below, the
environment, and the ``config`` argument:

``EXAMPLE_SPEC``
    ``openapi2`` (default: ``openapi.yaml``, OpenAPI 2.0, credentials in the
    ``X-IBM-Client-Id`` / ``X-IBM-Client-Secret`` headers) or ``openapi3`` (``openapi3.yaml``,
    OpenAPI 3.0, credentials in the ``client_id`` / ``client_secret`` query parameters).
``EXAMPLE_INSTANCE_PATH``
    The instance folder, home of the default SQLite store (default: ``instance/`` next to
    the package).
``EXAMPLE_ADMIN_USER`` / ``EXAMPLE_ADMIN_PASSWORD`` / ``SECRET_KEY``
    The operator login that guards the "Sharing & keys" portal (``/admin/keys``) and the admin
    JSON API (``/admin/api``); see :mod:`example_app.login`.
``CLIENTAUTH_METRICS``
    ``true`` serves Prometheus metrics at ``/metrics`` to clients with the role ``metrics``
    (``flask --app example_app clients create Prometheus --role metrics``); needs
    ``pip install 'Flask-ClientAuth[metrics]'``.
``CLIENTAUTH_*``
    Any key of Flask-ClientAuth (``CLIENTAUTH_DATABASE_URI``, ``CLIENTAUTH_BCRYPT_ROUNDS``, ...).
    Values from the environment are read as JSON when they parse (``4``, ``true``), else as text.

The same settings reach the CLI: ``flask --app example_app clients list``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, jsonify
from werkzeug.exceptions import HTTPException

from flask_clientauth import ClientAuth
from flask_clientauth.settings import DEFAULTS

from . import login, logs
from .views import BranchBook, api

#: The extension object; ``init_app`` attaches it to every app ``create_app`` builds.
auth = ClientAuth()

#: ``EXAMPLE_SPEC`` values and the document each selects (relative to this package).
SPECS = {"openapi2": "openapi.yaml", "openapi3": "openapi3.yaml"}

#: The plans an operator can put a client on (the portal's "Plan", ``flask clients plan``): bronze
#: reads branches only, at most 10 a minute; gold calls everything, 100 a second. Clients on no plan
#: (the demo client) are not limited. ``CLIENTAUTH_PLANS`` in the environment replaces them.
PLANS = {
    "bronze": {"rate_limits": ["10/minute", "1000/day"], "operations": ["listBranches", "getBranch"]},
    "gold": {"rate_limits": ["100/second"]},
}

#: ``/metrics`` (Prometheus), registered on apps with ``CLIENTAUTH_METRICS``: outside the document,
#: so it says who may read it, here clients with the role ``metrics``.
metrics = auth.require(roles=["metrics"])(Blueprint("metrics", __name__))


@metrics.get("/metrics")
def serve_metrics() -> Any:
    return auth.metrics_view()()


#: Environment variables ``create_app`` reads, besides every ``CLIENTAUTH_*`` key.
EXAMPLE_KEYS = ("EXAMPLE_SPEC", "EXAMPLE_INSTANCE_PATH", "EXAMPLE_ADMIN_USER", "EXAMPLE_ADMIN_PASSWORD", "SECRET_KEY")


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The example's and the extension's settings found in the environment."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for key in (*EXAMPLE_KEYS, *DEFAULTS):
        if key not in environ:
            continue
        raw = environ[key]
        if key in EXAMPLE_KEYS:
            found[key] = raw
            continue
        try:
            found[key] = json.loads(raw)
        except ValueError:
            found[key] = raw
    return found


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the branches API: routes, spec, Flask-ClientAuth and log redaction."""
    settings: dict[str, Any] = {"EXAMPLE_SPEC": "openapi2"}
    settings.update(settings_from_env())
    settings.update(config or {})
    variant = settings["EXAMPLE_SPEC"]
    if variant not in SPECS:
        raise ValueError(f"EXAMPLE_SPEC must be one of {', '.join(SPECS)}, not {variant!r}")
    instance_path = settings.get("EXAMPLE_INSTANCE_PATH")

    app = Flask(
        __name__,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
        static_folder=None,
    )
    app.config["CLIENTAUTH_SPEC"] = SPECS[variant]  # relative paths are read from app.root_path
    app.config["CLIENTAUTH_PLANS"] = PLANS
    app.config.update(settings)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["branches"] = BranchBook()
    app.register_blueprint(api)
    app.register_error_handler(HTTPException, _http_error)
    app.secret_key = login.secret_key(app)

    auth.init_app(app)
    # The operators' pages: the login, the portal and the admin API, all behind the login.
    app.register_blueprint(auth.exempt(login.login))
    app.register_blueprint(auth.portal(login.login_required, actor=login.current_user), url_prefix="/admin/keys")
    app.register_blueprint(auth.admin_api(login.api_login_required, actor=login.current_user), url_prefix="/admin/api")
    if app.config["CLIENTAUTH_METRICS"]:
        app.register_blueprint(metrics)
    state = auth.state(app)
    logs.install(
        s.param
        for s in state.spec().schemes.values()
        if s.location == "query" and s.key_type == "client_secret" and s.param
    )
    auth.routes(app)  # every route resolvable now, or a SpecError at start-up (gunicorn too)
    return app


def _http_error(exc: HTTPException) -> Any:
    """Flask's own errors (404, 405, 400) in the same JSON shape as the extension's."""
    body = {"httpCode": str(exc.code), "httpMessage": exc.name, "moreInformation": exc.description}
    return jsonify(body), exc.code
