"""Every 401 carries ``WWW-Authenticate`` (RFC 9110, 15.5.2) naming where the client ID is expected."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_clientauth import AuthFailure

from conftest import HID, HSEC, QID, QSEC, AppFactory, get_operation

HEADER_CHALLENGE = 'ApiKey in="header", name="X-IBM-Client-Id"'


def spec_with(security: Any, schemes: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": schemes},
        "paths": {"/api/branches": get_operation(security), "/api/status": get_operation([])},
    }


def created(app: Flask) -> tuple[str, str]:
    with app.app_context():
        record, secret = app.extensions["clientauth"].store.create("Branch mobile app")
    assert secret is not None
    return record.client_id, secret


@pytest.mark.parametrize(
    "headers",
    [
        {},  # client_id_missing
        {"X-IBM-Client-Id": "0123456789abcdef0123456789abcdef", "X-IBM-Client-Secret": "x" * 20},  # not registered
    ],
)
def test_a_401_names_the_header_the_client_id_goes_in(app: Flask, headers: dict[str, str]) -> None:
    response = app.test_client().get("/api/branches", headers=headers)
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == [HEADER_CHALLENGE]


def test_a_wrong_secret_and_a_missing_secret_get_the_same_challenge(app: Flask) -> None:
    client_id, _secret = created(app)
    client = app.test_client()
    wrong = client.get("/api/branches", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": "y" * 20})
    missing = client.get("/api/branches", headers={"X-IBM-Client-Id": client_id})
    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong.headers["WWW-Authenticate"] == missing.headers["WWW-Authenticate"] == HEADER_CHALLENGE


def test_query_keys_and_alternatives_each_get_a_challenge(make_app: AppFactory) -> None:
    spec = spec_with(
        [{"hid": [], "hsec": []}, {"qid": [], "qsec": []}], {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC}
    )
    response = make_app(spec).test_client().get("/api/branches")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'{HEADER_CHALLENGE}, ApiKey in="query", name="client_id"'


def test_gateway_mode_401s_stay_byte_identical(make_app: AppFactory) -> None:
    app = make_app(CLIENTAUTH_ERROR_DETAIL="gateway")
    client_id, _secret = created(app)
    client = app.test_client()
    answers = [
        client.get("/api/branches"),
        client.get("/api/branches", headers={"X-IBM-Client-Id": client_id}),
        client.get("/api/branches", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": "z" * 20}),
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({(r.get_data(), tuple(sorted(r.headers.items()))) for r in answers}) == 1
    assert answers[0].headers["WWW-Authenticate"] == HEADER_CHALLENGE


def test_other_refusals_have_no_challenge(app: Flask) -> None:
    client_id, secret = created(app)
    with app.app_context():
        app.extensions["clientauth"].store.set_enabled(client_id, False)
    response = app.test_client().get(
        "/api/branches", headers={"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
    )
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert "WWW-Authenticate" not in app.test_client().get("/api/status").headers


def test_an_error_handler_401_gets_the_challenge_unless_it_sets_its_own(make_app: AppFactory) -> None:
    app = make_app()
    auth = app.extensions["test_auth"]

    @auth.error_handler
    def refused(failure: AuthFailure) -> Any:
        return {"error": failure.code}, failure.status

    response = app.test_client().get("/api/branches")
    assert response.status_code == 401 and response.json == {"error": "client_id_missing"}
    assert response.headers["WWW-Authenticate"] == HEADER_CHALLENGE

    @auth.error_handler
    def refused_with_own_challenge(failure: AuthFailure) -> Any:
        return {"error": failure.code}, failure.status, {"WWW-Authenticate": 'Bearer realm="api"'}

    response = app.test_client().get("/api/branches")
    assert response.headers.getlist("WWW-Authenticate") == ['Bearer realm="api"']


def test_a_name_that_would_break_the_quoted_string_is_encoded(make_app: AppFactory) -> None:
    odd = {"type": "apiKey", "in": "query", "name": 'id"\\ é'}
    response = make_app(spec_with([{"odd": []}], {"odd": odd})).test_client().get("/api/branches")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'ApiKey in="query", name="id%22%5C%20%C3%A9"'
