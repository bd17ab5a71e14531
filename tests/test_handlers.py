"""The app's own verifiers and hooks: the scheme handler contract, a method changed after the
check, and routes of handlers alone while the client database is down.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask, Response, abort, jsonify, make_response, request
from flask.views import MethodView
from sqlalchemy import make_url
from werkzeug.exceptions import Unauthorized

from flask_clientauth import ClientAuth, current_client
from flask_clientauth.context import get_auth_state
from test_faults import Forwarder

from conftest import HID, HSEC, AppFactory, get_operation, server_database

BEARER = {"type": "http", "scheme": "bearer"}
SECURED = [{"hid": [], "hsec": []}]
OK = {"200": {"description": "ok"}}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Handlers", "version": "1"},
    "components": {"securitySchemes": {"hid": HID, "hsec": HSEC, "oauth": BEARER}},
    "security": SECURED,
    "paths": {
        "/token": get_operation([{"oauth": []}]),
        "/keyed": get_operation(SECURED),
        "/api/status": get_operation([]),
        # one rule, methods of different requirements (a MethodView)
        "/items": {
            "get": {"security": [], "responses": OK},
            "post": {"security": [], "responses": OK},
            "put": {"security": [], "responses": OK},
            "delete": {"security": SECURED, "responses": OK},
            "patch": {"security": SECURED, "responses": OK},
        },
    },
}

MISCONFIGURED = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "API security is misconfigured",
}
REJECTED = {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": "Credentials rejected"}
UNAVAILABLE = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "Client registry unavailable",
}


class Items(MethodView):
    ran: ClassVar[list[str]] = []

    def _ran(self) -> Any:
        Items.ran.append(request.method)
        return jsonify(method=request.method, client=current_client.client_id if current_client else None)

    get = post = put = delete = patch = _ran


def build(make_app: AppFactory, handler: Callable[[Any], Any] | None = None, **kwargs: Any) -> Flask:
    app = make_app(spec=SPEC, routes=False, CLIENTAUTH_REVOCATION_INTERVAL=0, **kwargs)
    auth: ClientAuth = app.extensions["test_auth"]
    auth.scheme_handler("oauth")(handler or (lambda req: req.headers.get("Authorization") == "Bearer good"))

    def token() -> Any:
        state = get_auth_state()
        assert state is not None
        return jsonify(results={k: repr(v) for k, v in state.handler_results.items()})

    app.add_url_rule("/token", "token", token)
    app.add_url_rule("/keyed", "keyed", lambda: "keyed")
    app.add_url_rule("/api/status", "status", lambda: "ok")
    Items.ran = []
    app.add_url_rule("/items", view_func=Items.as_view("items"))
    return app


# -- the scheme handler contract ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdict", "shown"),
    [(lambda: True, "True"), (lambda: {"sub": "alice"}, "{'sub': 'alice'}"), (lambda: "alice", "'alice'")],
)
def test_a_true_value_that_is_no_response_accepts_and_is_kept(
    make_app: AppFactory, verdict: Callable[[], Any], shown: str
) -> None:
    app = build(make_app, lambda req: verdict())
    resp = app.test_client().get("/token")
    assert resp.status_code == 200 and resp.get_json() == {"results": {"oauth": shown}}


@pytest.mark.parametrize("verdict", [False, None, 0, "", {}])
def test_a_false_value_is_credentials_rejected(make_app: AppFactory, verdict: Any) -> None:
    resp = build(make_app, lambda req: verdict).test_client().get("/token")
    assert resp.status_code == 401 and resp.get_json() == REJECTED


RESPONSES: dict[str, Callable[[], Any]] = {
    "make_response": lambda: make_response("no", 401),
    "jsonify": lambda: jsonify(error="invalid token"),
    "Response 200": lambda: Response("ok"),
    "(body, status)": lambda: ("denied", 403),
    "(body, status, headers)": lambda: ("ok", 200, {"X-A": "1"}),
    "HTTPException returned, not raised": lambda: Unauthorized("bad token"),
}


@pytest.mark.parametrize("name", list(RESPONSES))
def test_a_handler_returning_a_response_never_authenticates(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    app = build(make_app, lambda req: RESPONSES[name]())
    caplog.set_level(logging.ERROR, logger="flask_clientauth")
    resp = app.test_client().get("/token")
    assert resp.status_code == 503 and resp.get_json() == MISCONFIGURED
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "handler of scheme 'oauth' returned a response" in errors[0]


def test_abort_in_a_handler_propagates_and_other_exceptions_are_misconfiguration(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(req: Any) -> bool:
        if req.headers.get("Authorization") == "Bearer banned":
            abort(403)
        raise ValueError("the token service is down")

    app = build(make_app, handler)
    client = app.test_client()
    assert client.get("/token", headers={"Authorization": "Bearer banned"}).status_code == 403
    resp = client.get("/token")
    assert resp.status_code == 503 and resp.get_json() == MISCONFIGURED
    assert any("handler of scheme 'oauth' raised" in r.getMessage() for r in caplog.records)


# -- a method changed after the check ----------------------------------------------------------------


def override_in_before_request(app: Flask) -> None:
    """The app's own method override, registered after the extension (so run after its check)."""

    @app.before_request
    def override() -> None:
        method = request.headers.get("X-HTTP-Method-Override")
        if method:
            request.environ["REQUEST_METHOD"] = request.method = method.upper()


@pytest.fixture
def items(make_app: AppFactory) -> tuple[Flask, dict[str, str]]:
    app = build(make_app)
    override_in_before_request(app)
    record, secret = app.extensions["clientauth"].store.create("Items app")
    return app, {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}


@pytest.mark.parametrize("sent", ["GET", "POST", "PUT"])
@pytest.mark.parametrize("with_credentials", [False, True])
def test_a_public_method_overridden_to_a_secured_one_never_runs_it(
    items: tuple[Flask, dict[str, str]], caplog: pytest.LogCaptureFixture, sent: str, with_credentials: bool
) -> None:
    app, creds = items
    headers = {"X-HTTP-Method-Override": "DELETE", **(creds if with_credentials else {})}
    resp = app.test_client().open("/items", method=sent, headers=headers)
    assert resp.status_code == 503 and resp.get_json() == MISCONFIGURED
    assert Items.ran == []
    assert any(
        "method or rule changed after the credentials were checked" in r.getMessage() and r.levelno == logging.ERROR
        for r in caplog.records
    )


def test_a_blueprints_method_override_is_caught_too(make_app: AppFactory) -> None:
    from flask import Blueprint

    app = make_app(spec=SPEC, routes=False)
    bp = Blueprint("api", __name__)
    bp.add_url_rule("/items", view_func=Items.as_view("items"))
    Items.ran = []

    @bp.before_request
    def override() -> None:
        request.method = request.headers.get("X-HTTP-Method-Override", request.method)

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/items", headers={"X-HTTP-Method-Override": "DELETE"}).get_json() == MISCONFIGURED
    assert client.get("/items").status_code == 200 and Items.ran == ["GET"]


def test_an_override_within_one_requirement_runs(items: tuple[Flask, dict[str, str]]) -> None:
    app, creds = items
    client = app.test_client()
    # public to public; checked DELETE to PATCH (the same requirement, met); secured to public
    assert client.get("/items", headers={"X-HTTP-Method-Override": "PUT"}).get_json()["method"] == "PUT"
    resp = client.delete("/items", headers={"X-HTTP-Method-Override": "PATCH", **creds})
    assert resp.get_json() == {"method": "PATCH", "client": creds["X-IBM-Client-Id"]}
    assert client.delete("/items", headers={"X-HTTP-Method-Override": "GET", **creds}).status_code == 200
    assert client.delete("/items", headers={"X-HTTP-Method-Override": "PATCH"}).status_code == 401
    assert Items.ran == ["PUT", "PATCH", "GET"]


def test_an_override_in_wsgi_middleware_is_checked_as_the_method_it_makes(make_app: AppFactory) -> None:
    """The documented place for a method override: WSGI middleware, before Flask routes and checks."""
    app = build(make_app)
    record, secret = app.extensions["clientauth"].store.create("Items app")
    inner = app.wsgi_app

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
        if method:
            environ["REQUEST_METHOD"] = method.upper()
        return inner(environ, start_response)

    app.wsgi_app = middleware  # type: ignore[method-assign]
    client = app.test_client()
    override = {"X-HTTP-Method-Override": "DELETE"}
    assert client.get("/items", headers=override).status_code == 401
    creds = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret or ""}
    assert client.get("/items", headers={**override, **creds}).get_json()["method"] == "DELETE"


# -- handlers alone while the client database is down ---------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_handler_routes_work_while_the_client_database_cannot_be_reached(make_app: AppFactory) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/clients"
    app = build(make_app, database_url=url, create_tables=False)
    client = app.test_client()
    for _ in range(2):
        resp = client.get("/keyed", headers={"X-IBM-Client-Id": "abc", "X-IBM-Client-Secret": "x" * 20})
        assert resp.status_code == 503 and resp.get_json() == UNAVAILABLE
        assert client.get("/token", headers={"Authorization": "Bearer good"}).status_code == 200
        resp = client.get("/token", headers={"Authorization": "Bearer bad"})
        assert resp.status_code == 401 and resp.get_json() == REJECTED


@pytest.fixture
def cut_database() -> Iterator[tuple[str, Forwarder]]:
    """The configured PostgreSQL database behind a forwarder the test can cut."""
    for url in server_database("postgresql"):
        target = make_url(url)
        forwarder = Forwarder(target.host or "127.0.0.1", target.port or 5432)
        forwarder.restore()
        try:
            yield target.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False), forwarder
        finally:
            forwarder.close()


def test_handler_routes_work_while_a_running_database_is_cut_off(
    make_app: AppFactory, cut_database: tuple[str, Forwarder]
) -> None:
    url, forwarder = cut_database
    app = build(make_app, database_url=url, CLIENTAUTH_RATELIMIT_ENABLED=False)
    record, secret = app.extensions["clientauth"].store.create("Keyed app")
    creds = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret or ""}
    client = app.test_client()
    assert client.get("/keyed", headers=creds).status_code == 200
    forwarder.cut()
    assert client.get("/keyed", headers=creds).get_json() == UNAVAILABLE
    assert client.get("/token", headers={"Authorization": "Bearer good"}).status_code == 200
    forwarder.restore()
    assert client.get("/keyed", headers=creds).status_code == 200
