"""Loud start-up warnings: documents that say less than they seem (logging WARNING on ``flask_clientauth``)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine

from flask_clientauth import ClientStore, SpecError, load_spec
from servers import Server, free_port

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


# -- why (c) warns: real servers drop the header the document names ------------------------------------

UNDERSCORE_APP = """
import os

from flask import Flask
from flask_clientauth import ClientAuth

app = Flask(__name__)
app.config.update(
    CLIENTAUTH_SPEC={
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": {"type": "apiKey", "in": "header", "name": "X_Client_Id"}}},
        "paths": {
            "/api/status": {"get": {"security": [], "responses": {"200": {"description": "ok"}}}},
            "/items": {"get": {"security": [{"clientId": []}], "responses": {"200": {"description": "ok"}}}},
        },
    },
    CLIENTAUTH_DATABASE_URI=os.environ["UNDERSCORE_DB"],
    CLIENTAUTH_RATELIMIT_ENABLED=False,
)
auth = ClientAuth(app)
app.add_url_rule("/api/status", "status", lambda: "ok")
app.add_url_rule("/items", "items", lambda: "items")
auth.routes(app)
"""


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "werkzeug"])
def test_underscore_header_never_reaches_the_app_through_real_servers(tmp_path: Path, server: str) -> None:
    (tmp_path / "underscore_app.py").write_text(UNDERSCORE_APP)
    database = f"sqlite:///{tmp_path}/clients.sqlite3"
    engine = create_engine(database)
    store = ClientStore(lambda: engine, bcrypt_rounds=4)
    store.create_all()
    record, _ = store.create("app", with_secret=False)
    engine.dispose()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "UNDERSCORE_DB": database, "PYTHONUNBUFFERED": "1"}
    if server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "underscore_app:app"]
    else:
        run = f"from werkzeug.serving import run_simple; from underscore_app import app; run_simple('127.0.0.1', {port}, app)"
        cmd = [sys.executable, "-c", run]
    srv = Server(cmd, env, tmp_path, port, "underscore")
    try:
        srv.wait_ready()
        assert "reads the header 'X_Client_Id', whose name contains '_'" in srv.output()  # said at start-up
        as_documented = requests.get(srv.url + "/items", headers={"X_Client_Id": record.client_id}, timeout=10)
        assert as_documented.status_code == 401  # the server dropped it: the app never saw the ID
        assert as_documented.json()["moreInformation"] == "Client ID missing"
        dashed = requests.get(srv.url + "/items", headers={"X-Client-Id": record.client_id}, timeout=10)
        assert dashed.status_code == 200  # what the warning advises
    finally:
        srv.stop()


@pytest.mark.parametrize(("version", "misplaced"), [("3.0.3", "securityDefinitions"), ("2.0", "components")])
def test_schemes_in_the_other_versions_place_warn(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture, version: str, misplaced: str
) -> None:
    document = doc({"/a": {"get": op()}}, schemes={}, version=version)
    document[misplaced] = {"securitySchemes": {"clientId": HID}} if misplaced == "components" else {"clientId": HID}
    make_app(spec=document, routes=False)
    where = "components.securitySchemes" if version == "2.0" else "securityDefinitions"
    home = "securityDefinitions" if version == "2.0" else "components.securitySchemes"
    assert warnings(caplog) == [
        f"clientauth: <dict>: {where} is not OpenAPI {version}'s: its schemes are ignored; write them in {home}"
    ]
