"""The apps the benchmarks measure, built alike so that only the authentication differs.

Every app serves the same trivial views: ``GET /hello`` (``"ok"``), ``GET /pid`` (the worker's
process id, so a load generator knows which gunicorn worker answered) and ``GET /public``
(public everywhere; used to probe readiness). Kinds:

``bare``          Flask alone.
``handwritten``   a hand-written ``before_request``: dict lookup + SHA-256 + ``hmac.compare_digest``.
``httpauth``      flask-httpauth's ``HTTPTokenAuth`` (header token, dict + ``compare_digest``).
``id-only``       Flask-ClientAuth, the document requires the client ID header only.
``id-secret``     Flask-ClientAuth, the document requires client ID and client secret headers.

``create_app()`` with no arguments reads ``BENCH_*`` environment variables, so the same module
serves gunicorn (``bench_app:create_app()``) and the real CLI (``flask --app bench_app:create_app``).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import threading
import time
from typing import Any

from flask import Flask, abort, request

ID_HEADER = "X-IBM-Client-Id"
SECRET_HEADER = "X-IBM-Client-Secret"
TOKEN_HEADER = "X-API-Key"

KINDS = ("bare", "handwritten", "httpauth", "id-only", "id-secret")


def _spec(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    ok = {"200": {"description": "ok"}}
    return {
        "swagger": "2.0",
        "info": {"title": "Benchmark", "version": "1.0.0"},
        "securityDefinitions": {
            "clientId": {"type": "apiKey", "in": "header", "name": ID_HEADER},
            "clientSecret": {"type": "apiKey", "in": "header", "name": SECRET_HEADER},
        },
        "security": security,
        "paths": {
            "/hello": {"get": {"responses": ok}},
            "/pid": {"get": {"responses": ok}},
            "/public": {"get": {"security": [], "responses": ok}},
        },
    }


SPEC_ID_SECRET = _spec([{"clientId": [], "clientSecret": []}])
SPEC_ID_ONLY = _spec([{"clientId": []}])


def _routes(app: Flask, wrap: Any = None) -> None:
    def hello() -> str:
        return "ok"

    def pid() -> str:
        return str(os.getpid())

    def public() -> str:
        return "ok"

    if wrap is not None:
        hello, pid = wrap(hello), wrap(pid)
    app.add_url_rule("/hello", "hello", hello, methods=["GET"])
    app.add_url_rule("/pid", "pid", pid, methods=["GET"])
    app.add_url_rule("/public", "public", public, methods=["GET"])


def create_app(
    kind: str | None = None,
    database_url: str | None = None,
    *,
    config: dict[str, Any] | None = None,
    tokens: dict[str, str] | None = None,
) -> Flask:
    """Build one benchmark app. ``tokens`` (client ID -> secret) feeds the two reference checks."""
    kind = kind or os.environ.get("BENCH_APP_KIND", "id-secret")
    if kind not in KINDS:
        raise ValueError(f"unknown app kind {kind!r}; one of {', '.join(KINDS)}")
    if tokens is None:
        tokens = json.loads(os.environ.get("BENCH_TOKENS", "{}"))
    app = Flask("bench_" + kind.replace("-", "_"))
    app.config["TESTING"] = False

    if kind == "bare":
        _routes(app)
    elif kind == "handwritten":
        digests = {cid: hashlib.sha256(s.encode()).digest() for cid, s in tokens.items()}

        @app.before_request
        def check() -> Any:
            if request.endpoint == "public":
                return None
            expected = digests.get(request.headers.get(ID_HEADER, ""))
            secret = request.headers.get(SECRET_HEADER, "")
            if expected is None or not hmac.compare_digest(expected, hashlib.sha256(secret.encode()).digest()):
                abort(401)
            return None

        _routes(app)
    elif kind == "httpauth":
        from flask_httpauth import HTTPTokenAuth

        auth = HTTPTokenAuth(header=TOKEN_HEADER)
        by_token = {secret: cid for cid, secret in tokens.items()}

        @auth.verify_token  # type: ignore[untyped-decorator]
        def verify(token: str) -> str | None:
            for known, cid in by_token.items():  # one entry: a dict probe with a constant-time compare
                if hmac.compare_digest(known.encode(), token.encode()):
                    return cid
            return None

        _routes(app, wrap=auth.login_required)
    else:
        from flask_clientauth import ClientAuth

        app.config.update(
            CLIENTAUTH_SPEC=copy.deepcopy(SPEC_ID_ONLY if kind == "id-only" else SPEC_ID_SECRET),
            CLIENTAUTH_DATABASE_URI=database_url or os.environ.get("BENCH_DATABASE_URL"),
            CLIENTAUTH_BCRYPT_ROUNDS=int(os.environ.get("BENCH_BCRYPT_ROUNDS", "12")),
        )
        app.config.update(json.loads(os.environ.get("BENCH_CONFIG", "{}")))
        if config:
            app.config.update(config)
        auth = ClientAuth(app)
        app.extensions["bench_auth"] = auth
        _routes(app)
        if os.environ.get("BENCH_STATS_DIR"):
            _instrument(app, auth, os.environ["BENCH_STATS_DIR"])
    return app


# -- per-worker statistics (scale benchmark only) -----------------------------------------
def rss_kib(pid: int | str = "self") -> int | None:
    """Resident set size of a process, from /proc (KiB)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _instrument(app: Flask, auth: Any, stats_dir: str) -> None:
    """Count requests, store reads, change-log polls and bcrypt checks; dump them to a file.

    Wraps the store's methods on this instance and the bcrypt check the verifier imported,
    so nothing in ``flask_clientauth`` changes. A thread writes ``<pid>.json`` every 0.2 s.
    """
    from flask_clientauth import verify as verify_mod

    counts = {"requests": 0, "store_get": 0, "store_poll": 0, "bcrypt": 0}
    lock = threading.Lock()

    def counting(name: str, f: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                counts[name] += 1
            return f(*args, **kwargs)

        return wrapper

    store = auth.store(app)
    store.get = counting("store_get", store.get)
    for poll in ("changes_after", "latest_change"):
        if hasattr(store, poll):
            setattr(store, poll, counting("store_poll", getattr(store, poll)))
    if hasattr(verify_mod, "secret_matches"):
        verify_mod.secret_matches = counting("bcrypt", verify_mod.secret_matches)

    inner = app.wsgi_app

    def counted_wsgi(environ: Any, start_response: Any) -> Any:
        with lock:
            counts["requests"] += 1
        return inner(environ, start_response)

    app.wsgi_app = counted_wsgi  # type: ignore[method-assign]
    state = app.extensions["clientauth"]
    path = os.path.join(stats_dir, f"{os.getpid()}.json")

    def dump() -> None:
        while True:
            cache = getattr(state, "cache", None)
            try:
                cached: int | None = len(cache) if cache is not None else None
            except TypeError:
                cached = None
            with lock:
                data: dict[str, Any] = dict(counts)
            data.update(pid=os.getpid(), rss_kib=rss_kib(), cached=cached, time=time.time())
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
            time.sleep(0.2)

    threading.Thread(target=dump, name="bench-stats", daemon=True).start()
