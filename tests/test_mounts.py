"""An app mounted under a prefix that the document's server URLs include keeps every operation's requirement.

The document says ``servers: https://api.example.com/api/v1``; the app is mounted under ``/api``
(gunicorn's ``SCRIPT_NAME``, Werkzeug's ``DispatcherMiddleware``, ``ProxyFix(x_prefix=1)``), so its rules
are ``/v1/...``. ``CLIENTAUTH_BASE_PATH = "/api"`` says so; without it, routes that match only once
the prefix is removed are a start-up error that names both prefixes, and a request served under a
prefix the table was not built for is refused.
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from flask_clientauth import ClientAuth, SpecError
from servers import HTTP_TIMEOUT, Server, example_env, free_port

from conftest import ID_AND_SECRET, MISCONFIGURED, doc2, doc3, headers, op, sqlite_with_client

ID_ONLY = [{"hid": []}]
#: The global requirement is the client ID only: a route taken for undescribed would pass with it.
MOUNTED = doc3(
    {"/items": {"get": op([])}, "/admin": {"get": op(ID_AND_SECRET)}},
    security=ID_ONLY,
    servers=[{"url": "https://api.example.com/api/v1"}],
)
RULES = ("/v1/items", "/v1/admin")


def mounted_app(tmp_path: Path, database: str, spec: Any = MOUNTED, **config: Any) -> Flask:
    """The app as it is mounted under ``/api``: rules ``/v1/items``, ``/v1/admin``, and a public ``/ping``."""
    app = Flask("mounted", instance_path=str(tmp_path / "instance"))
    app.config.update(
        CLIENTAUTH_SPEC=spec, CLIENTAUTH_DATABASE_URI=database, CLIENTAUTH_RATELIMIT_ENABLED=False, **config
    )
    auth = ClientAuth(app)
    for rule in RULES:
        app.add_url_rule(rule, rule.rsplit("/", 1)[1], lambda: "ok")
    app.add_url_rule("/ping", "ping", auth.exempt(lambda: "pong"))
    return app


@pytest.fixture
def client_db(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A SQLite client store with one client: (URL, client ID, secret)."""
    yield sqlite_with_client(tmp_path, "mounted app client")


def check_mounted(url: str, cid: str, secret: str) -> None:
    """Every operation keeps its own requirement under the mount."""

    def get(path: str, **kwargs: Any) -> requests.Response:
        return requests.get(url + path, timeout=HTTP_TIMEOUT, **kwargs)

    assert get("/api/v1/items").status_code == 200
    resp = get("/api/v1/admin")
    assert (resp.status_code, resp.json()["moreInformation"]) == (401, "Client ID missing")
    resp = get("/api/v1/admin", headers=headers(cid))  # the global requirement would let this pass
    assert (resp.status_code, resp.json()["moreInformation"]) == (401, "Client secret missing")
    assert get("/api/v1/admin", headers=headers(cid, secret)).text == "ok"


class ThreadedServer:
    """Werkzeug's own server running ``wsgi_app`` in a thread."""

    def __init__(self, wsgi_app: Any) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, wsgi_app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_gunicorn_script_name(tmp_path: Path, client_db: tuple[str, str, str], worker: str) -> None:
    database, cid, secret = client_db
    module = f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_mounts import mounted_app

        app = mounted_app(Path({str(tmp_path)!r}), {database!r}, CLIENTAUTH_BASE_PATH="/api")
        app.extensions["clientauth"].extension.routes(app)
        """
    (tmp_path / "mounted_module.py").write_text(textwrap.dedent(module))
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", worker]
    cmd += ["--threads", "4"] if worker == "gthread" else []
    cmd += ["--env", "SCRIPT_NAME=/api", "--chdir", str(tmp_path), "mounted_module:app"]
    server = Server(cmd, example_env(tmp_path / "instance", "openapi3"), tmp_path, port, "openapi3")
    try:
        wait_for(server.url + "/api/ping", server)
        check_mounted(server.url, cid, secret)
    finally:
        server.stop()


def wait_for(url: str, server: Server) -> None:
    """Wait (bounded) until ``url`` answers 200 (``Server.wait_ready`` asks for the unmounted ``/api/status``)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"server exited:\n{server.output()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"server not answering:\n{server.output()}")


@pytest.mark.slow
def test_dispatcher_middleware_under_werkzeugs_server(tmp_path: Path, client_db: tuple[str, str, str]) -> None:
    database, cid, secret = client_db
    app = mounted_app(tmp_path, database, CLIENTAUTH_BASE_PATH="/api")
    app.extensions["clientauth"].extension.routes(app)
    with ThreadedServer(DispatcherMiddleware(NotFound(), {"/api": app})) as server:
        check_mounted(server.url, cid, secret)


@pytest.mark.slow
def test_proxy_fix_prefix_under_werkzeugs_server(tmp_path: Path, client_db: tuple[str, str, str]) -> None:
    database, cid, secret = client_db
    app = mounted_app(tmp_path, database, CLIENTAUTH_BASE_PATH="/api")
    app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1)  # type: ignore[method-assign]
    prefix = {"X-Forwarded-Prefix": "/api"}
    with ThreadedServer(app) as server:
        assert requests.get(server.url + "/v1/items", headers=prefix, timeout=HTTP_TIMEOUT).status_code == 200
        for sent in ({}, headers(cid)):
            resp = requests.get(server.url + "/v1/admin", headers={**prefix, **sent}, timeout=HTTP_TIMEOUT)
            assert resp.status_code == 401
        resp = requests.get(server.url + "/v1/admin", headers={**prefix, **headers(cid, secret)}, timeout=HTTP_TIMEOUT)
        assert resp.text == "ok"
        # not under the prefix the table was built for: the stripped server prefixes do not apply
        resp = requests.get(server.url + "/v1/items", timeout=HTTP_TIMEOUT)
        assert (resp.status_code, resp.json()) == (503, MISCONFIGURED)


def test_without_base_path_the_prefix_mismatch_is_a_start_up_error(tmp_path: Path, sqlite_url: str) -> None:
    app = mounted_app(tmp_path, sqlite_url)
    with pytest.raises(SpecError) as info:
        app.extensions["clientauth"].extension.routes(app)
    message = str(info.value)
    assert message.startswith("<dict>: ")
    assert "'/api/v1'" in message and "'/v1'" in message
    assert "CLIENTAUTH_BASE_PATH = '/api'" in message
    assert app.test_client().get("/v1/items").status_code == 503


def test_a_mount_the_document_knows_but_was_not_removed_is_refused(
    tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # one operation has its own server "/", so a route matches and start-up succeeds; requests
    # served under /api (a prefix of the document's /api/v1) were matched to the wrong paths
    spec = doc3(
        {
            "/items": {"get": op([])},
            "/admin": {"get": op(ID_AND_SECRET)},
            "/ping": {"get": {**op([]), "servers": [{"url": "/"}]}},
        },
        security=ID_ONLY,
        servers=[{"url": "https://api.example.com/api/v1"}],
    )
    app = mounted_app(tmp_path, sqlite_url, spec=spec)
    app.extensions["clientauth"].extension.routes(app)
    client = app.test_client()
    assert client.get("/ping").status_code == 200  # not mounted: the document's own paths
    resp = client.get("/v1/admin", headers=headers("someone"), base_url="http://localhost/api")
    assert (resp.status_code, resp.get_json()) == (503, MISCONFIGURED)
    assert any("CLIENTAUTH_BASE_PATH" in r.getMessage() for r in caplog.records if r.levelname == "CRITICAL")
    # a mount point the document does not mention changes nothing
    assert client.get("/ping", base_url="http://localhost/elsewhere").status_code == 200


def test_base_path_strips_a_swagger_base_path(make_app: Any) -> None:
    spec = doc2({"/items": {"get": op([])}, "/admin": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY, basePath="/api/v1")
    app = make_app(spec=spec, routes=False, CLIENTAUTH_BASE_PATH="/api/")
    for rule in RULES:
        app.add_url_rule(rule, rule, lambda: "ok")
    rows = {r.rule: r.operation for r in app.extensions["test_auth"].routes(app) if r.method == "GET"}
    assert rows["/v1/items"] == "GET /items" and rows["/v1/admin"] == "GET /admin"
    mount = "http://localhost/api"  # served under /api (SCRIPT_NAME)
    assert app.test_client().get("/v1/items", base_url=mount).status_code == 200
    resp = app.test_client().get("/v1/admin", headers=headers("x"), base_url=mount)
    assert resp.get_json()["moreInformation"] == "Client secret missing"


def test_an_operation_served_outside_the_base_path_is_a_start_up_error(tmp_path: Path, sqlite_url: str) -> None:
    spec = doc3(
        {"/items": {"get": op([])}, "/admin": {"get": {**op(ID_AND_SECRET), "servers": [{"url": "/admin-api"}]}}},
        servers=[{"url": "/api/v1"}],
    )
    app = mounted_app(tmp_path, sqlite_url, spec=spec, CLIENTAUTH_BASE_PATH="/api")
    with pytest.raises(SpecError, match=r"operation GET /admin: none of its server prefixes \('/admin-api'\)"):
        app.extensions["clientauth"].extension.routes(app)


@pytest.mark.parametrize("value", ["api", "/api//v1", 42, "/{version}"])
def test_a_base_path_that_is_not_a_path_is_refused(tmp_path: Path, sqlite_url: str, value: Any) -> None:
    with pytest.raises(RuntimeError, match="CLIENTAUTH_BASE_PATH"):
        mounted_app(tmp_path, sqlite_url, CLIENTAUTH_BASE_PATH=value)


def test_routes_shows_the_base_path(tmp_path: Path, sqlite_url: str) -> None:
    app = mounted_app(tmp_path, sqlite_url, CLIENTAUTH_BASE_PATH="/api")
    text = app.test_cli_runner().invoke(args=["clients", "routes"])
    assert text.exit_code == 0, text.output
    assert (
        text.output.splitlines()[0]
        == "Spec: <dict> (OpenAPI 3.0.3); the app is served under /api (CLIENTAUTH_BASE_PATH)"
    )
    data = json.loads(app.test_cli_runner().invoke(args=["clients", "routes", "--json"]).output)
    assert data["base_path"] == "/api"
    rows = {(r["method"], r["rule"]): r for r in data["routes"]}
    assert rows[("GET", "/v1/admin")]["operation"] == "GET /admin"
    assert rows[("GET", "/v1/admin")]["requirement"] == "id+secret"
