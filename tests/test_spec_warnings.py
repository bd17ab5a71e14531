"""Loud start-up warnings: documents that say less than they seem (logging WARNING on ``flask_clientauth``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from flask_clientauth import SpecError, load_spec

from conftest import HID, HSEC, QID, QSEC, AppFactory

OK = {"200": {"description": "ok"}}


def doc(paths: dict[str, Any], *, schemes: Any = None, version: str = "3.0.3", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"info": {"title": "t", "version": "1"}, "paths": paths, **extra}
    schemes = {"clientId": HID, "clientSecret": HSEC} if schemes is None else schemes
    if version == "2.0":
        out["swagger"], out["securityDefinitions"] = "2.0", schemes
    else:
        out["openapi"], out["components"] = version, {"securitySchemes": schemes}
    return out


def op(**fields: Any) -> dict[str, Any]:
    return {"responses": OK, **fields}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_clientauth" and r.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")


# -- (a) API keys defined but required nowhere --------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "3.0.3", "3.1.0"])
def test_keys_required_nowhere_say_how_many_routes_are_public(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, version: str
) -> None:
    paths = {"/a": {"get": op(), "post": op()}, "/b": {"get": op()}, "/c": {"get": op()}}
    app = make_app(spec=doc(paths, version=version), routes=False)
    auth = app.extensions["test_auth"]
    app.add_url_rule("/a", "a", lambda: "x", methods=["GET", "POST"])
    app.add_url_rule("/b", "b", lambda: "x")
    app.add_url_rule("/c", "c", auth.exempt(lambda: "x"))  # public by decision: not counted
    assert warnings(caplog) == []  # init_app: the routes are not known yet
    auth.routes(app)
    (message,) = warnings(caplog)
    assert message.startswith(
        "clientauth: <dict>: the document defines the API key scheme(s) 'clientId', 'clientSecret'"
    )
    assert "no security requirement uses them" in message
    assert "3 route(s) are public because of it" in message  # GET /a, POST /a, GET /b; not HEAD, OPTIONS


def test_keys_required_somewhere_or_by_a_decorator_do_not_warn(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(spec=doc({"/a": {"get": op(security=[{"clientId": []}])}, "/b": {"get": op()}}), routes=False)
    app.add_url_rule("/a", "a", lambda: "x")
    app.add_url_rule("/b", "b", lambda: "x")
    app.extensions["test_auth"].routes(app)
    assert warnings(caplog) == []
    app = make_app(spec=doc({"/a": {"get": op()}}), routes=False)
    auth = app.extensions["test_auth"]
    app.add_url_rule("/a", "a", auth.require("clientId")(lambda: "x"))
    auth.routes(app)
    assert warnings(caplog) == []


# -- (b) keys where security is read that OpenAPI ignores ---------------------------------------------


@pytest.mark.parametrize("key", ["securty", "Security", "secuirty", "securities"])
def test_misspelt_security_on_an_operation_warns(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    make_app(spec=doc({"/a": {"get": op(**{key: [{"clientId": []}]})}}), routes=False)
    assert any(f"<dict>: operation GET /a: {key!r} is not 'security': it is ignored" in w for w in warnings(caplog)), (
        warnings(caplog)
    )


def test_misspelt_security_at_document_level_warns(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    make_app(spec=doc({"/a": {"get": op()}}, securty=[{"clientId": []}]), routes=False)
    assert any("<dict>: 'securty' is not 'security'" in w for w in warnings(caplog))


def test_path_level_security_warns_and_says_where_to_put_it(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_app(spec=doc({"/a": {"security": [{"clientId": []}], "get": op()}}), routes=False)
    (message,) = [w for w in warnings(caplog) if "path /a" in w]
    assert "'security' on a path item is not OpenAPI: it is ignored" in message
    assert "put 'security' on each operation" in message


def test_correct_security_keys_and_extensions_do_not_warn(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    paths = {"/a": {"get": op(security=[{"clientId": []}], **{"x-security": 1, "servers": []})}}
    make_app(spec=doc(paths, security=[{"clientId": []}]), routes=False)
    assert warnings(caplog) == []


@pytest.mark.parametrize("key", ["GET", "Post"])
def test_upper_case_method_keys_are_an_error(key: str) -> None:
    # OpenAPI ignores them: the operation, its security with it, would silently not exist
    paths = {"/a": {key: op(security=[{"clientId": [], "clientSecret": []}])}}
    with pytest.raises(SpecError) as info:
        load_spec(doc(paths, security=[]))
    assert info.value.where == "path /a"
    assert f"{key!r} is not an operation: OpenAPI's method keys are lower-case" in info.value.rule
    assert f"write {key.lower()!r}" in info.value.rule


# -- (c) header names with '_' ------------------------------------------------------------------------


def test_used_header_key_with_an_underscore_warns(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    schemes = {"clientId": {**HID, "name": "X_Client_Id"}, "unused": {**HSEC, "name": "X_Unused_Secret"}}
    make_app(spec=doc({"/a": {"get": op(security=[{"clientId": []}])}}, schemes=schemes), routes=False)
    (message,) = warnings(caplog)
    assert "security scheme 'clientId' reads the header 'X_Client_Id', whose name contains '_'" in message
    assert "gunicorn" in message and "prefer 'X-Client-Id'" in message


# -- (d) query secrets: only when something uses them --------------------------------------------------


def test_unused_query_secret_scheme_does_not_warn(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    schemes = {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC}
    make_app(spec=doc({"/a": {"get": op()}}, schemes=schemes, security=[{"hid": [], "hsec": []}]), routes=False)
    assert warnings(caplog) == []


def test_used_query_secret_scheme_still_warns(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    schemes = {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC}
    paths = {"/a": {"get": op(security=[{"qid": [], "qsec": []}])}}
    make_app(spec=doc(paths, schemes=schemes, security=[{"hid": [], "hsec": []}]), routes=False)
    (message,) = warnings(caplog)
    assert "'qsec' takes the client secret in the query parameter 'client_secret'" in message
