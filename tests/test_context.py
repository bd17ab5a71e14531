"""The authenticated client in the request context, and what the view sees of the credentials."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from flask import Flask, jsonify, request
from werkzeug.local import LocalProxy

from flask_clientauth import AuthenticatedClient, current_client, get_current_client

from conftest import HID, HSEC

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "context", "version": "1"},
    "components": {
        "securitySchemes": {
            "hid": HID,
            "hsec": HSEC,
            "tutorialId": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-ID"},
            "appKey": {"type": "apiKey", "in": "header", "name": "X-App-Key", "x-key-type": "client_id"},
            "appPass": {"type": "apiKey", "in": "header", "name": "X-App-Pass", "x-key-type": "client_secret"},
            "qid": {"type": "apiKey", "in": "query", "name": "client_id"},
            "qsec": {"type": "apiKey", "in": "query", "name": "client_secret"},
            "cid": {"type": "apiKey", "in": "cookie", "name": "app_id"},
            "csec": {"type": "apiKey", "in": "cookie", "name": "app_secret"},
        }
    },
    "security": [{"hid": [], "hsec": []}],
    "paths": {
        "/header": {"get": {"responses": {}}},
        "/header/id": {"get": {"security": [{"hid": []}], "responses": {}}},
        "/tutorial": {"get": {"security": [{"tutorialId": [], "hsec": []}], "responses": {}}},
        "/custom": {"get": {"security": [{"appKey": [], "appPass": []}], "responses": {}}},
        "/query": {"get": {"security": [{"qid": [], "qsec": []}], "responses": {}}},
        "/cookie": {"get": {"security": [{"cid": [], "csec": []}], "responses": {}}},
        "/public": {"get": {"security": [], "responses": {}}},
        "/either": {"get": {"security": [{"hid": [], "hsec": []}, {"qid": [], "qsec": []}], "responses": {}}},
    },
}


def dump() -> Any:
    """Everything a view can learn about the client and the credentials."""
    client = current_client
    return jsonify(
        truthy=bool(client),
        client=None
        if not client
        else {
            "client_id": client.client_id,
            "name": client.name,
            "schemes": list(client.schemes),
            "headers": client.headers,
            "context": client.context,
            "str": str(client),
            "repr": repr(client),
        },
        same=get_current_client() is cast("LocalProxy[Any]", client)._get_current_object(),
        request_headers=dict(request.headers),
        args=request.args.to_dict(flat=False),
        cookies=request.cookies.to_dict(flat=False),
        query_string=request.query_string.decode(),
        full_path=request.full_path,
        url=request.url,
    )


def make(make_app: Any, **config: Any) -> tuple[Flask, str, str]:
    app = make_app(spec=SPEC, routes=False, **config)
    for path in SPEC["paths"]:
        app.add_url_rule(path, path, dump)
    record, secret = app.extensions["clientauth"].store.create("Branch mobile app", description="the tutorial's app")
    return app, record.client_id, secret


@pytest.fixture
def setup(make_app: Any) -> tuple[Flask, str, str]:
    return make(make_app)


# -- current_client ------------------------------------------------------------------------------------


def test_current_client_outside_a_request_is_none(setup: tuple[Flask, str, str]) -> None:
    app, _, _ = setup
    assert not current_client
    assert get_current_client() is None
    with app.app_context():
        assert not current_client
        assert get_current_client() is None
    with app.test_request_context("/header"):  # a request context, but no check ran
        assert not current_client
        assert get_current_client() is None


def test_current_client_on_a_public_route_is_none(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    client = app.test_client()
    body = client.get("/public").get_json()
    assert (body["truthy"], body["client"], body["same"]) == (False, None, True)
    # credentials sent to a public route are not checked and make no client
    body = client.get("/public", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}).get_json()
    assert body["client"] is None


def test_current_client_after_id_and_secret_in_headers(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    body = app.test_client().get("/header", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}).get_json()
    assert body["truthy"] is True and body["same"] is True
    assert body["client"] == {
        "client_id": cid,
        "name": "Branch mobile app",
        "schemes": ["hid", "hsec"],
        "headers": {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret},
        "context": {"client.app.id": cid, "client.app.name": "Branch mobile app"},
        "str": cid,
        "repr": body["client"]["repr"],
    }
    assert secret not in body["client"]["repr"] and secret not in body["client"]["str"]
    assert cid in body["client"]["repr"]


@pytest.mark.parametrize(
    ("path", "send", "schemes", "headers"),
    [
        ("/header/id", {"headers": {"X-IBM-Client-Id": "{cid}"}}, ["hid"], {"X-IBM-Client-Id": "{cid}"}),
        (
            "/tutorial",
            {"headers": {"x-ibm-client-id": "{cid}", "x-ibm-client-secret": "{secret}"}},
            ["tutorialId", "hsec"],
            {"X-IBM-Client-ID": "{cid}", "X-IBM-Client-Secret": "{secret}"},  # as the spec names them
        ),
        (
            "/custom",
            {"headers": {"X-App-Key": "{cid}", "X-App-Pass": "{secret}"}},
            ["appKey", "appPass"],
            {"X-App-Key": "{cid}", "X-App-Pass": "{secret}"},
        ),
        (
            "/query",
            {"query_string": {"client_id": "{cid}", "client_secret": "{secret}"}},
            ["qid", "qsec"],
            {"X-IBM-Client-Id": "{cid}", "X-IBM-Client-Secret": "{secret}"},  # API Connect's header names
        ),
        (
            "/cookie",
            {"headers": {"Cookie": "app_id={cid}; app_secret={secret}"}},
            ["cid", "csec"],
            {"X-IBM-Client-Id": "{cid}", "X-IBM-Client-Secret": "{secret}"},
        ),
    ],
)
def test_forwardable_headers(
    setup: tuple[Flask, str, str], path: str, send: dict[str, Any], schemes: list[str], headers: dict[str, str]
) -> None:
    app, cid, secret = setup

    def fill(d: dict[str, str]) -> dict[str, str]:
        return {k: v.format(cid=cid, secret=secret) for k, v in d.items()}

    resp = app.test_client(use_cookies=False).get(path, **{k: fill(v) for k, v in send.items()})
    assert resp.status_code == 200, resp.get_json()
    client = resp.get_json()["client"]
    assert client["schemes"] == schemes
    assert client["headers"] == fill(headers)


def test_headers_is_a_copy(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    seen = []

    @app.route("/undocumented")
    def undocumented() -> str:
        current_client.headers["X-IBM-Client-Secret"] = "tampered"  # type: ignore[union-attr]
        seen.append(current_client.headers)  # type: ignore[union-attr]
        return "ok"

    app.test_client().get("/undocumented", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
    assert seen == [{"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}]


def test_current_client_does_not_leak_into_the_next_request(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    client = app.test_client()
    assert client.get("/header", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}).get_json()["truthy"]
    assert client.get("/public").get_json()["client"] is None


def test_current_client_is_available_in_after_request(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    seen = []

    @app.after_request
    def remember(resp: Any) -> Any:
        seen.append(get_current_client())
        return resp

    app.test_client().get("/header", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
    assert len(seen) == 1 and isinstance(seen[0], AuthenticatedClient) and seen[0].client_id == cid


# -- nothing of the secret in reprs, logs or bodies ----------------------------------------------------


def test_reprs_never_hold_the_secret_or_its_hash(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    state = app.extensions["clientauth"]
    record = state.store.get(cid)
    assert record is not None and record.secret_hash
    captured = []

    @app.route("/undocumented")
    def undocumented() -> str:
        captured.append(cast("LocalProxy[Any]", current_client)._get_current_object())
        return "ok"

    app.test_client().get("/undocumented", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
    (client,) = captured
    texts = [repr(client), str(client), repr(record), str(record), repr(state), str(state), repr(state.cache)]
    texts += [repr(record.to_dict()), repr(state.store.list())]
    for text in texts:
        assert secret not in text
        assert record.secret_hash not in text
        assert record.secret_hash[7:29] not in text  # not even the salt
    assert "secret_hash" not in record.to_dict()
    assert record.to_dict()["has_secret"] is True


def test_logs_and_bodies_never_hold_the_secret(setup: tuple[Flask, str, str], caplog: pytest.LogCaptureFixture) -> None:
    app, cid, secret = setup
    record = app.extensions["clientauth"].store.get(cid)
    assert record is not None and record.secret_hash
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    bodies = []
    for hdrs in (
        {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret},
        {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret + "x"},
        {"X-IBM-Client-Id": "unknown-id", "X-IBM-Client-Secret": secret},
        {"X-IBM-Client-Id": f"{cid},{cid}", "X-IBM-Client-Secret": secret},
        {"X-IBM-Client-Secret": secret},
    ):
        bodies.append(client.get("/header", headers=hdrs).get_data(as_text=True))
    bodies.append(
        client.get("/header", query_string={"X-IBM-Client-Secret": secret, "X-IBM-Client-Id": cid}).get_data(
            as_text=True
        )
    )
    assert len(caplog.records) > 0  # failures are logged ...
    # (bodies[0] is the view's own dump of current_client.headers, which holds the secret by design)
    for text in [r.getMessage() for r in caplog.records] + bodies[1:]:
        assert secret not in text  # ... but never with the secret
        assert record.secret_hash not in text


# -- CLIENTAUTH_HIDE_CREDENTIALS --------------------------------------------------------------------------


def test_view_sees_the_credentials_by_default(setup: tuple[Flask, str, str]) -> None:
    app, cid, secret = setup
    body = (
        app.test_client()
        .get("/query", query_string={"client_id": cid, "client_secret": secret, "page": "2"})
        .get_json()
    )
    assert body["args"] == {"client_id": [cid], "client_secret": [secret], "page": ["2"]}


def test_hide_credentials_in_headers(make_app: Any) -> None:
    app, cid, secret = make(make_app, CLIENTAUTH_HIDE_CREDENTIALS=True)
    resp = app.test_client().get(
        "/header", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret, "X-Trace": "abc"}
    )
    body = resp.get_json()
    names = {k.lower() for k in body["request_headers"]}
    assert "x-ibm-client-id" not in names and "x-ibm-client-secret" not in names
    assert body["request_headers"]["X-Trace"] == "abc"
    assert secret not in repr(body["request_headers"])
    assert body["client"]["headers"] == {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}


def test_hide_credentials_in_the_query(make_app: Any) -> None:
    app, cid, secret = make(make_app, CLIENTAUTH_HIDE_CREDENTIALS=True)
    qs = f"page=2&client_id={cid}&q=a%20b&client_secret={secret}&tag=x&tag=y&empty="
    body = app.test_client().get(f"/query?{qs}").get_json()
    assert body["args"] == {"page": ["2"], "q": ["a b"], "tag": ["x", "y"], "empty": [""]}
    for text in (body["query_string"], body["full_path"], body["url"]):
        assert cid not in text and secret not in text and "client_" not in text
    assert body["query_string"].startswith("page=2&q=a")
    assert body["full_path"].startswith("/query?page=2")
    assert body["client"]["headers"] == {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}


def test_hide_credentials_in_cookies(make_app: Any) -> None:
    app, cid, secret = make(make_app, CLIENTAUTH_HIDE_CREDENTIALS=True)
    cookie = f"theme=dark; app_id={cid}; lang=fr; app_secret={secret}"
    body = app.test_client(use_cookies=False).get("/cookie", headers={"Cookie": cookie}).get_json()
    assert body["cookies"] == {"theme": ["dark"], "lang": ["fr"]}
    assert cid not in body["request_headers"].get("Cookie", "")
    assert secret not in body["request_headers"].get("Cookie", "")
    assert body["client"]["headers"] == {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}


def test_hide_credentials_strips_the_keys_of_every_alternative(make_app: Any) -> None:
    # authenticated through the headers; a stray secret in the query (the other alternative's
    # location) must not reach the view either
    app, cid, secret = make(make_app, CLIENTAUTH_HIDE_CREDENTIALS=True)
    body = (
        app.test_client()
        .get(
            "/either",
            query_string={"client_secret": secret, "page": "3"},
            headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret},
        )
        .get_json()
    )
    assert body["args"] == {"page": ["3"]}
    assert secret not in body["query_string"]
    assert body["client"]["headers"] == {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}


def test_hide_credentials_leaves_public_requests_alone(make_app: Any) -> None:
    app, cid, _ = make(make_app, CLIENTAUTH_HIDE_CREDENTIALS=True)
    body = app.test_client().get("/public", query_string={"client_id": cid, "page": "1"}).get_json()
    assert body["args"] == {"client_id": [cid], "page": ["1"]}


def test_the_extension_holds_its_app_weakly(make_app: Any) -> None:
    """The app holds its state (extensions, hooks); nothing of the extension's holds the app back,
    so an app that is dropped (an app factory in tests) is freed without waiting for the cycle
    collector."""
    import gc
    import types
    import weakref

    app = make_app()
    state = app.extensions["clientauth"]
    seen: set[int] = set()
    todo: list[Any] = [state]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        assert obj is not app, "the extension's state holds the app"
        ours = type(obj).__module__.startswith("flask_clientauth")
        if ours or isinstance(obj, (dict, list, tuple, types.MethodType, weakref.ref)):
            todo.extend(r for r in gc.get_referents(obj) if not isinstance(r, (type, types.ModuleType)))
    assert state.dispatch_check._app() is app
