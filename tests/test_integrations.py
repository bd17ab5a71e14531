"""Flask-ClientAuth with what users already run: APIFlask, flask-smorest, Flask-Limiter, app factories, the CLI.

The APIFlask and flask-smorest apps have no hand-written YAML: the frameworks build the
document from the routes, and ``CLIENTAUTH_SPEC`` is a callable that returns it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, current_app, has_request_context, jsonify
from flask.views import MethodView

from flask_clientauth import ClientAuth, client_key, current_client

pytest.importorskip("apiflask")
pytest.importorskip("flask_smorest")
pytest.importorskip("flask_limiter")

from apiflask import APIFlask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint

NOT_REGISTERED = {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": "Client ID not registered"}


def base_config(tmp_path: Path, name: str = "clients") -> dict[str, Any]:
    return {
        "TESTING": True,
        "CLIENTAUTH_DATABASE_URI": f"sqlite:///{tmp_path}/{name}.sqlite3",
        "CLIENTAUTH_BCRYPT_ROUNDS": 4,
    }


def new_client(app: Flask, name: str = "integration test", **kw: Any) -> tuple[str, str]:
    state = app.extensions["clientauth"]
    with app.app_context():
        state.store.create_all()
        record, secret = state.store.create(name, **kw)
    return record.client_id, secret


def whoami() -> dict[str, Any]:
    return {"client": current_client.client_id if current_client else None}


# -- APIFlask --------------------------------------------------------------------------------------


def apiflask_app(tmp_path: Path) -> tuple[APIFlask, ClientAuth]:
    """An APIFlask app as its users write it: security schemes in config, ``@app.doc(security=...)``."""
    app = APIFlask("pets", title="Pets", version="1.0")
    app.config.update(base_config(tmp_path))
    app.config["SECURITY_SCHEMES"] = {
        "ClientId": {"type": "apiKey", "in": "header", "name": "X-Client-Id"},
        "ClientSecret": {"type": "apiKey", "in": "header", "name": "X-Client-Secret"},
    }
    # APIFlask builds app.spec from the routes registered when it is read: read it lazily
    app.config["CLIENTAUTH_SPEC"] = lambda: app.spec
    auth = ClientAuth(app)  # before the routes exist, as in most apps
    auth.exempt(app.blueprints["openapi"])  # /openapi.json and /docs stay public

    @app.get("/pets")
    @app.doc(security=[{"ClientId": [], "ClientSecret": []}])
    def list_pets() -> Any:
        return {"pets": [], **whoami()}

    @app.get("/pets/<int:pet_id>")
    @app.doc(security="ClientId")  # identifying the application is enough here
    def get_pet(pet_id: int) -> Any:
        return {"id": pet_id, **whoami()}

    @app.get("/health")
    def health() -> Any:  # no security in the generated document: public
        return {"ok": True, **whoami()}

    return app, auth


def test_apiflask_declared_security_is_enforced(tmp_path: Path) -> None:
    app, _auth = apiflask_app(tmp_path)
    client_id, secret = new_client(app)
    http = app.test_client()
    both = {"X-Client-Id": client_id, "X-Client-Secret": secret}

    refused = http.get("/pets")
    assert refused.status_code == 401
    assert refused.get_json() == {
        "httpCode": "401",
        "httpMessage": "Unauthorized",
        "moreInformation": "Client ID missing",
    }
    assert (
        http.get("/pets", headers={"X-Client-Id": client_id}).get_json()["moreInformation"] == "Client secret missing"
    )
    assert http.get("/pets", headers={"X-Client-Id": "f" * 32, "X-Client-Secret": secret}).get_json() == NOT_REGISTERED
    ok = http.get("/pets", headers=both)
    assert ok.status_code == 200 and ok.get_json() == {"pets": [], "client": client_id}
    assert http.get("/pets/3").status_code == 401
    assert http.get("/pets/3", headers={"X-Client-Id": client_id}).get_json() == {"id": 3, "client": client_id}
    assert http.get("/health").get_json() == {"ok": True, "client": None}
    # the document we enforce is the one APIFlask serves
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.get_json()["paths"]["/pets"]["get"]["security"] == [{"ClientId": [], "ClientSecret": []}]
    assert http.get("/docs").status_code == 200


def test_apiflask_routes_registered_after_init_app_are_in_the_spec(tmp_path: Path) -> None:
    app, auth = apiflask_app(tmp_path)

    @app.post("/pets")
    @app.doc(security=[{"ClientId": [], "ClientSecret": []}])
    def create_pet() -> Any:
        return {"created": True}, 201

    client_id, secret = new_client(app)
    rows = {(r.rule, r.method): r for r in auth.routes(app)}
    assert rows[("/pets", "POST")].operation == "POST /pets"
    assert rows[("/health", "GET")].policy.public
    assert rows[("/openapi.json", "GET")].policy.origin.startswith("exempt")
    http = app.test_client()
    assert http.post("/pets").status_code == 401
    assert http.post("/pets", headers={"X-Client-Id": client_id, "X-Client-Secret": secret}).status_code == 201


def test_apiflask_spec_does_not_depend_on_the_first_request(tmp_path: Path) -> None:
    """APIFlask's AUTO_SERVERS puts a request's URL root in ``servers``; the document is built outside any request."""
    app, _auth = apiflask_app(tmp_path)
    client_id, secret = new_client(app)
    http = app.test_client()
    # the first request comes through a mount point (SCRIPT_NAME=/mounted)
    response = http.get(
        "/pets", base_url="http://localhost/mounted/", headers={"X-Client-Id": client_id, "X-Client-Secret": secret}
    )
    assert response.status_code == 200, response.get_json()
    assert http.get("/pets", headers={"X-Client-Id": client_id, "X-Client-Secret": secret}).status_code == 200


def test_spec_callable_runs_in_an_app_context_outside_any_request(tmp_path: Path) -> None:
    """So a builder may use ``current_app`` (apispec's FlaskPlugin does) and never sees a request."""
    seen: list[tuple[str, bool]] = []

    def build() -> dict[str, Any]:
        seen.append((current_app.name, has_request_context()))
        return _tutorial_spec()

    app = Flask("built_in_code")
    app.config.update(base_config(tmp_path), CLIENTAUTH_SPEC=build)
    ClientAuth(app)
    app.add_url_rule("/api/branches", "branches", lambda: jsonify(whoami()))
    new_client(app)
    assert seen == []
    assert app.test_client().get("/api/branches").status_code == 401  # first use: during a request
    assert app.test_client().get("/api/branches").status_code == 401
    assert seen == [("built_in_code", False)]


# -- flask-smorest (apispec) ---------------------------------------------------------------------


def smorest_app(tmp_path: Path) -> tuple[Flask, ClientAuth]:
    """A flask-smorest app: schemes in API_SPEC_OPTIONS and on the APISpec, ``@blp.doc(security=...)``."""
    app = Flask("shop")
    app.config.update(base_config(tmp_path))
    app.config.update(
        API_TITLE="Shop",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "ClientId": {"type": "apiKey", "in": "query", "name": "client_id"},
                    "ClientSecret": {"type": "apiKey", "in": "query", "name": "client_secret"},
                }
            },
            "security": [{"ClientId": [], "ClientSecret": []}],  # the document's global requirement
        },
    )
    api = Api(app)
    api.spec.components.security_scheme("PartnerId", {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"})
    api.spec.components.security_scheme(
        "PartnerSecret", {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"}
    )
    app.config["CLIENTAUTH_SPEC"] = lambda: api.spec.to_dict()
    auth = ClientAuth(app)
    auth.exempt(app.blueprints["api-docs"])  # the served document stays public

    blp = SmorestBlueprint("orders", "orders", url_prefix="/orders")

    @blp.route("/")
    class Orders(MethodView):
        def get(self) -> Any:  # the document's global requirement
            return jsonify(orders=[], **whoami())

        @blp.doc(security=[{"PartnerId": [], "PartnerSecret": []}])
        def post(self) -> Any:
            return jsonify(created=True, **whoami()), 201

    @blp.route("/<int:order_id>")
    @blp.doc(security=[{"ClientId": []}])
    def get_order(order_id: int) -> Any:
        return jsonify(id=order_id, **whoami())

    @blp.route("/ping")
    @blp.doc(security=[])
    def ping() -> Any:
        return jsonify(pong=True, **whoami())

    api.register_blueprint(blp)
    return app, auth


def test_smorest_declared_security_is_enforced(tmp_path: Path) -> None:
    app, _auth = smorest_app(tmp_path)
    client_id, secret = new_client(app)
    http = app.test_client()

    refused = http.get("/orders/")
    assert refused.status_code == 401 and refused.get_json()["moreInformation"] == "Client ID missing"
    ok = http.get(f"/orders/?client_id={client_id}&client_secret={secret}")
    assert ok.status_code == 200 and ok.get_json() == {"orders": [], "client": client_id}
    # the credentials in a header are not where this operation wants them
    wrong_place = http.get("/orders/", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret})
    assert wrong_place.status_code == 401
    assert wrong_place.get_json()["moreInformation"] == "Client ID must be sent in the query parameter client_id"
    # POST documents the header schemes added with api.spec.components.security_scheme()
    assert http.post(f"/orders/?client_id={client_id}&client_secret={secret}").status_code == 401
    created = http.post("/orders/", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret})
    assert created.status_code == 201 and created.get_json()["client"] == client_id
    assert http.get("/orders/9").status_code == 401
    assert http.get(f"/orders/9?client_id={client_id}").get_json() == {"id": 9, "client": client_id}
    assert http.get("/orders/ping").get_json() == {"pong": True, "client": None}
    assert http.get("/orders/9?client_id=" + "0" * 32).get_json() == NOT_REGISTERED
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.get_json()["paths"]["/orders/{order_id}"]["get"]["security"] == [{"ClientId": []}]


# -- Flask-Limiter -------------------------------------------------------------------------------


def _current_client_key() -> str:
    """The key function users write from the README: ``current_client`` or the address."""
    return current_client.client_id if current_client else get_remote_address()


@pytest.mark.parametrize("key_func", [client_key, _current_client_key], ids=["client_key", "current_client"])
def test_limiter_gives_each_client_its_own_quota(tmp_path: Path, key_func: Callable[[], str]) -> None:
    app = Flask("limited")
    app.config.update(base_config(tmp_path), CLIENTAUTH_SPEC=_tutorial_spec())
    # the limiter is set up first: its before_request hook is registered before ours, and
    # Flask-ClientAuth still runs first, so the key function sees the client
    limiter = Limiter(key_func, app=app, default_limits=["3 per hour"], storage_uri="memory://")
    ClientAuth(app)
    app.add_url_rule("/api/branches", "branches", lambda: jsonify(whoami()))
    app.add_url_rule("/api/status", "status", lambda: jsonify(whoami()))
    first, second = new_client(app, "first"), new_client(app, "second")
    http = app.test_client()

    def call(creds: tuple[str, str]) -> int:
        headers = {"X-IBM-Client-Id": creds[0], "X-IBM-Client-Secret": creds[1]}
        return http.get("/api/branches", headers=headers).status_code

    assert [call(first) for _ in range(4)] == [200, 200, 200, 429]
    assert [call(second) for _ in range(4)] == [200, 200, 200, 429]  # not the first client's quota
    # public routes, without a client, count per address
    assert [http.get("/api/status").status_code for _ in range(4)] == [200, 200, 200, 429]
    # refused requests never reach the limiter: they do not use up the client's quota
    assert http.get("/api/branches", headers={"X-IBM-Client-Id": first[0]}).status_code == 401
    assert limiter.enabled


def test_client_key_values(tmp_path: Path) -> None:
    app = Flask("keys")
    app.config.update(base_config(tmp_path), CLIENTAUTH_SPEC=_tutorial_spec())
    ClientAuth(app)
    app.add_url_rule("/api/branches", "branches", lambda: jsonify(key=client_key()))
    app.add_url_rule("/api/status", "status", lambda: jsonify(key=client_key()))
    client_id, secret = new_client(app)
    http = app.test_client()
    headers = {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
    assert http.get("/api/branches", headers=headers).get_json() == {"key": f"client:{client_id}"}
    public = http.get("/api/status", environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert public.get_json() == {"key": "address:192.0.2.7"}


def test_our_hook_runs_before_hooks_registered_earlier(tmp_path: Path) -> None:
    app = Flask("order")
    app.config.update(base_config(tmp_path), CLIENTAUTH_SPEC=_tutorial_spec())
    seen: list[Any] = []
    app.before_request(lambda: seen.append(current_client.client_id if current_client else None))
    ClientAuth(app)
    app.add_url_rule("/api/branches", "branches", lambda: "ok")
    client_id, secret = new_client(app)
    http = app.test_client()
    assert (
        http.get("/api/branches", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}).status_code
        == 200
    )
    assert http.get("/api/branches").status_code == 401
    assert seen == [client_id]  # the refused request stopped before the app's hook


def _tutorial_spec() -> dict[str, Any]:
    from conftest import TUTORIAL_SPEC

    return json.loads(json.dumps(TUTORIAL_SPEC))


# -- several apps in one process (app factory) ---------------------------------------------------

#: Module-level objects, as in an app factory project: one extension object, one blueprint.
factory_auth = ClientAuth()
shared = Blueprint("shared", __name__)


@shared.route("/api/branches")
def branches() -> Any:
    return jsonify(whoami())


@shared.route("/api/health")
@factory_auth.exempt
def health() -> Any:  # not in either document: would be refused without the decorator
    return jsonify(whoami())


#: A whole blueprint protected once; public in both documents, protected in both apps.
admin_area = factory_auth.require("id", "secret")(Blueprint("admin_area", __name__))


@admin_area.route("/api/admin")
def admin() -> Any:
    return jsonify(whoami())


def factory_spec(location: str) -> dict[str, Any]:
    names = {"header": ("X-IBM-Client-Id", "X-IBM-Client-Secret"), "query": ("client_id", "client_secret")}[location]
    return {
        "openapi": "3.0.3",
        "info": {"title": f"{location} API", "version": "1"},
        "components": {
            "securitySchemes": {
                "id": {"type": "apiKey", "in": location, "name": names[0]},
                "secret": {"type": "apiKey", "in": location, "name": names[1]},
            }
        },
        "security": [{"id": [], "secret": []}],
        "paths": {
            "/api/branches": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/api/admin": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
        },
    }


def create_app(name: str, location: str, tmp_path: Path) -> Flask:
    app = Flask(name)
    app.config.update(base_config(tmp_path, name), CLIENTAUTH_SPEC=factory_spec(location))
    factory_auth.init_app(app)
    app.register_blueprint(shared)
    app.register_blueprint(admin_area)
    return app


def test_one_extension_object_several_apps(tmp_path: Path) -> None:
    header_app = create_app("header_app", "header", tmp_path)
    query_app = create_app("query_app", "query", tmp_path)
    assert factory_auth.store(header_app) is not factory_auth.store(query_app)
    a_id, a_secret = new_client(header_app, "client of the header app")
    b_id, b_secret = new_client(query_app, "client of the query app")

    def in_header(cid: str, secret: str) -> dict[str, Any]:
        return {"headers": {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}}

    def in_query(cid: str, secret: str) -> dict[str, Any]:
        return {"query_string": {"client_id": cid, "client_secret": secret}}

    a, b = header_app.test_client(), query_app.test_client()
    # each app enforces its own document with its own store
    assert a.get("/api/branches", **in_header(a_id, a_secret)).get_json() == {"client": a_id}
    assert b.get("/api/branches", **in_query(b_id, b_secret)).get_json() == {"client": b_id}
    assert a.get("/api/branches", **in_header(b_id, b_secret)).get_json() == NOT_REGISTERED
    assert b.get("/api/branches", **in_query(a_id, a_secret)).get_json() == NOT_REGISTERED
    wrong_place = b.get("/api/branches", **in_header(b_id, b_secret))
    assert wrong_place.get_json()["moreInformation"] == "Client ID must be sent in the query parameter client_id"
    # the decorators registered on the one extension object apply in both apps
    for http, creds in ((a, in_header(a_id, a_secret)), (b, in_query(b_id, b_secret))):
        assert http.get("/api/health").get_json() == {"client": None}
        assert http.get("/api/admin").status_code == 401
        assert http.get("/api/admin", **creds).status_code == 200
    # a change in one app's store does not reach the other
    with header_app.app_context():
        factory_auth.store(header_app).set_enabled(a_id, False)
    assert a.get("/api/branches", **in_header(a_id, a_secret)).status_code == 403
    assert b.get("/api/branches", **in_query(b_id, b_secret)).status_code == 200


def test_a_request_to_one_app_inside_another_keeps_each_client(tmp_path: Path) -> None:
    """``current_client`` belongs to the request context: a nested request to another app has its own."""
    outer = create_app("outer_app", "header", tmp_path)
    inner = create_app("inner_app", "query", tmp_path)
    o_id, o_secret = new_client(outer)
    i_id, i_secret = new_client(inner)
    seen: dict[str, Any] = {}

    @outer.route("/api/proxy")
    def proxy() -> Any:
        seen["before"] = current_client.client_id if current_client else None
        nested = inner.test_client().get("/api/branches", query_string={"client_id": i_id, "client_secret": i_secret})
        seen["inner"] = nested.get_json()
        seen["after"] = current_client.client_id if current_client else None
        return "ok"

    headers = {"X-IBM-Client-Id": o_id, "X-IBM-Client-Secret": o_secret}
    assert outer.test_client().get("/api/proxy", headers=headers).status_code == 200
    assert seen == {"before": o_id, "inner": {"client": i_id}, "after": o_id}


def test_init_app_twice_on_one_app_is_refused(tmp_path: Path) -> None:
    app = create_app("twice", "header", tmp_path)
    with pytest.raises(RuntimeError, match="already registered"):
        factory_auth.init_app(app)


# -- the CLI as a Flask plugin -------------------------------------------------------------------

PLAIN_APP = """
from flask import Flask
app = Flask(__name__)
"""

PROTECTED_APP = """
import json, os
from flask import Flask
from flask_clientauth import ClientAuth

app = Flask(__name__)
app.config.update(
    CLIENTAUTH_SPEC=json.loads(os.environ["SPEC_JSON"]),
    CLIENTAUTH_DATABASE_URI=os.environ["DATABASE_URL"],
    CLIENTAUTH_BCRYPT_ROUNDS=4,
)
ClientAuth(app)
with app.app_context():
    app.extensions["clientauth"].store.create_all()
"""


BROKEN_APP = """
from flask import Flask
from flask_clientauth import ClientAuth

app = Flask(__name__)
app.config["CLIENTAUTH_SPEC"] = "openapi.json"
ClientAuth(app)
"""


def flask_cli(tmp_path: Path, module: str, *args: str, command: str = "flask") -> subprocess.CompletedProcess[str]:
    """``python -m flask --app module ...`` (``command="flask_clientauth"``: the check for apps that do not start)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SPEC_JSON": json.dumps(_tutorial_spec()),
        "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite3",
    }
    return subprocess.run(
        [sys.executable, "-m", command, "--app", module, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_is_only_in_apps_with_the_extension(tmp_path: Path) -> None:
    (tmp_path / "plain_app.py").write_text(textwrap.dedent(PLAIN_APP))
    helped = flask_cli(tmp_path, "plain_app", "clients", "--help")
    assert helped.returncode != 0
    assert "No such command 'clients'" in helped.stderr
    # the check that needs no started app says what is missing, without a traceback
    refused = flask_cli(tmp_path, "plain_app", "check", command="flask_clientauth")
    assert refused.returncode != 0
    assert "Flask-ClientAuth is not initialised on this app" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_check_reports_the_document_of_an_app_that_does_not_start(tmp_path: Path) -> None:
    spec = _tutorial_spec()
    spec["paths"]["/branches"]["get"]["security"] = [{"nope": []}]
    (tmp_path / "openapi.json").write_text(json.dumps(spec))
    (tmp_path / "broken_app.py").write_text(BROKEN_APP)
    checked = flask_cli(tmp_path, "broken_app", "check", command="flask_clientauth")
    assert checked.returncode == 1, checked.stderr
    assert "Flask-ClientAuth refuses the document: 1\n" in checked.stdout
    assert "security scheme 'nope' is not defined" in checked.stdout
    named = flask_cli(tmp_path, "broken_app", "check", "openapi.json", "--json", command="flask_clientauth")
    assert named.returncode == 1, named.stderr
    assert any("'nope' is not defined" in e for e in json.loads(named.stdout)["errors"])


@pytest.mark.slow
def test_cli_plugin_and_init_app_do_not_conflict(tmp_path: Path) -> None:
    (tmp_path / "protected_app.py").write_text(textwrap.dedent(PROTECTED_APP))
    listed = flask_cli(tmp_path, "protected_app", "--help")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines() if line.strip().startswith("clients")] == ["clients"]
    created = flask_cli(tmp_path, "protected_app", "clients", "create", "CLI plugin", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "CLI plugin"
