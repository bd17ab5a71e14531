"""The test helpers for users' own tests: ``ClientAuthTestClient`` and the ``clientauth_client`` fixture."""

from __future__ import annotations

import importlib.metadata
import textwrap
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

from flask_clientauth import current_client
from flask_clientauth.testing import ClientAuthTestClient

from conftest import AppFactory

pytest_plugins = ("pytester",)

ID_HEADER = {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"}
SECRET_HEADER = {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"}
ID_QUERY = {"type": "apiKey", "in": "query", "name": "client_id"}
SECRET_QUERY = {"type": "apiKey", "in": "query", "name": "client_secret"}
ID_COOKIE = {"type": "apiKey", "in": "cookie", "name": "app_id", "x-key-type": "client_id"}
SECRET_COOKIE = {"type": "apiKey", "in": "cookie", "name": "app_secret", "x-key-type": "client_secret"}
OK = {"responses": {"200": {"description": "ok"}}}


def spec3(schemes: dict[str, Any], security: list[dict[str, list[str]]], paths: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "/api"}],
        "components": {"securitySchemes": schemes},
        "security": security,
        "paths": paths,
    }


def echo(**kwargs: Any) -> Any:
    """What reached the view: the client, and every credential-looking part of the request."""
    return jsonify(
        client_id=current_client.client_id if current_client else None,
        headers=sorted(k for k, _value in request.headers if k.lower().startswith("x-ibm")),
        query=sorted(request.args.keys()),
        cookies=sorted(request.cookies.keys()),
    )


def serve(app: Flask, *rules: str) -> Flask:
    for i, rule in enumerate(rules):
        app.add_url_rule(rule, f"echo{i}", echo, methods=["GET", "POST"])
    app.test_client_class = ClientAuthTestClient
    return app


def create(app: Flask, *, with_secret: bool = True) -> tuple[Any, str | None]:
    return app.extensions["clientauth"].store.create("helper test", with_secret=with_secret)  # type: ignore[no-any-return]


# -- where the credentials go --------------------------------------------------------------------


def test_header_spec(make_app: AppFactory) -> None:
    """The tutorial's 2.0 document: ID and secret headers; the ID alone where the operation says so."""
    app = serve(make_app(routes=False), "/api/branches", "/api/branches/<int:branchId>", "/api/status")
    record, secret = create(app)
    client = app.test_client(client_id=record.client_id, client_secret=secret)

    both = client.get("/api/branches")
    assert both.status_code == 200
    assert both.get_json() == {
        "client_id": record.client_id,
        "headers": ["X-Ibm-Client-Id", "X-Ibm-Client-Secret"],
        "query": [],
        "cookies": [],
    }
    id_only = client.get("/api/branches/7")
    assert id_only.status_code == 200
    assert id_only.get_json()["headers"] == ["X-Ibm-Client-Id"]  # the secret is not sent where not asked for
    public = client.get("/api/status")
    assert public.status_code == 200
    assert public.get_json() == {"client_id": None, "headers": [], "query": [], "cookies": []}
    # a plain test client of the same app is refused: nothing is switched off
    assert app.test_client().get("/api/branches").status_code == 401


def test_query_spec(make_app: AppFactory) -> None:
    spec = spec3(
        {"qid": ID_QUERY, "qsec": SECRET_QUERY},
        [{"qid": [], "qsec": []}],
        {"/items": {"get": OK, "post": {**OK, "security": [{"qid": []}]}}},
    )
    app = serve(make_app(spec=spec, routes=False), "/api/items")
    record, secret = create(app)
    client = app.test_client(client_id=record.client_id, client_secret=secret)

    response = client.get("/api/items?page=2")
    assert response.status_code == 200
    assert response.get_json()["query"] == ["client_id", "client_secret", "page"]
    assert response.get_json()["headers"] == []
    sent = parse_qs(response.request.environ["QUERY_STRING"])
    assert sent == {"page": ["2"], "client_id": [record.client_id], "client_secret": [secret]}
    post = client.post("/api/items", json={})
    assert post.status_code == 200 and post.get_json()["query"] == ["client_id"]


def test_cookie_spec_keeps_the_cookie_jar(make_app: AppFactory) -> None:
    spec = spec3({"cid": ID_COOKIE, "csec": SECRET_COOKIE}, [{"cid": [], "csec": []}], {"/me": {"get": OK}})
    app = serve(make_app(spec=spec, routes=False), "/api/me")
    record, secret = create(app)
    client = app.test_client(auth_client=(record, secret))
    client.set_cookie("theme", "dark")

    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.get_json()["client_id"] == record.client_id
    assert response.get_json()["cookies"] == ["app_id", "app_secret", "theme"]
    assert response.get_json()["query"] == [] and response.get_json()["headers"] == []
    # the credentials are not stored in the jar: a plain request of the same client has only the theme
    assert [c.key for c in [client.get_cookie("theme"), client.get_cookie("app_id")] if c] == ["theme"]


def test_each_operation_gets_its_own_location(make_app: AppFactory) -> None:
    spec = spec3(
        {"hid": ID_HEADER, "hsec": SECRET_HEADER, "qid": ID_QUERY, "qsec": SECRET_QUERY},
        [{"hid": [], "hsec": []}],
        {"/h": {"get": OK}, "/q": {"get": {**OK, "security": [{"qid": [], "qsec": []}]}}},
    )
    app = serve(make_app(spec=spec, routes=False), "/api/h", "/api/q")
    record, secret = create(app)
    client = app.test_client(client_id=record.client_id, client_secret=secret)
    h, q = client.get("/api/h").get_json(), client.get("/api/q").get_json()
    assert (h["headers"], h["query"]) == (["X-Ibm-Client-Id", "X-Ibm-Client-Secret"], [])
    assert (q["headers"], q["query"]) == ([], ["client_id", "client_secret"])
    assert h["client_id"] == q["client_id"] == record.client_id


def test_alternatives_use_the_first_the_client_can_satisfy(make_app: AppFactory) -> None:
    spec = spec3(
        {"hid": ID_HEADER, "hsec": SECRET_HEADER, "qid": ID_QUERY},
        [{"hid": [], "hsec": []}, {"qid": []}],
        {"/either": {"get": OK}},
    )
    app = serve(make_app(spec=spec, routes=False), "/api/either")
    full, secret = create(app)
    id_only, _ = create(app, with_secret=False)
    with_secret = app.test_client(client_id=full.client_id, client_secret=secret).get("/api/either").get_json()
    assert (with_secret["headers"], with_secret["query"]) == (["X-Ibm-Client-Id", "X-Ibm-Client-Secret"], [])
    without = app.test_client(auth_client=id_only).get("/api/either")
    assert without.status_code == 200
    assert (without.get_json()["headers"], without.get_json()["query"]) == ([], ["client_id"])


def test_credentials_the_test_sends_itself_are_left_alone(make_app: AppFactory) -> None:
    app = serve(make_app(routes=False), "/api/branches")
    record, secret = create(app)
    client = app.test_client(client_id=record.client_id, client_secret=secret)
    response = client.get("/api/branches", headers={"X-IBM-Client-Secret": "not-the-secret-at-all"})
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client secret invalid"
    other, other_secret = create(app)
    response = client.get(
        "/api/branches", headers={"X-IBM-Client-Id": other.client_id, "X-IBM-Client-Secret": other_secret}
    )
    assert response.status_code == 200 and response.get_json()["client_id"] == other.client_id


def test_unmatched_urls_get_the_global_requirement_and_redirects_are_followed(make_app: AppFactory) -> None:
    app = serve(make_app(routes=False), "/api/branches/")
    record, secret = create(app)
    client = app.test_client(client_id=record.client_id, client_secret=secret)
    missing = client.get("/api/nowhere")
    assert missing.status_code == 404
    assert "HTTP_X_IBM_CLIENT_SECRET" in missing.request.environ
    followed = client.get("/api/branches", follow_redirects=True)  # strict slashes: 308 to /api/branches/
    assert [r.status_code for r in followed.history] == [308]
    assert followed.status_code == 200 and followed.get_json()["client_id"] == record.client_id


def test_without_a_client_it_is_a_plain_test_client(make_app: AppFactory) -> None:
    app = serve(make_app(routes=False), "/api/branches")
    response = app.test_client().get("/api/branches")
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client ID missing"


def test_bad_arguments(make_app: AppFactory) -> None:
    app = serve(make_app(routes=False), "/api/branches")
    record, secret = create(app)
    with pytest.raises(TypeError):
        app.test_client(auth_client=(record, secret), client_id=record.client_id)
    with pytest.raises(TypeError):
        app.test_client(client_secret="only-a-secret")
    with pytest.raises(TypeError):
        app.test_client(auth_client=42)
    plain = Flask("plain")
    plain.test_client_class = ClientAuthTestClient
    with pytest.raises(RuntimeError, match="not initialised"):
        plain.test_client(client_id="abc")


def test_the_secret_is_not_in_the_repr(make_app: AppFactory) -> None:
    app = serve(make_app(routes=False), "/api/branches")
    record, secret = create(app)
    assert secret is not None and secret not in repr(app.test_client(auth_client=(record, secret)))


# -- the pytest plugin ---------------------------------------------------------------------------


def test_the_plugin_is_a_pytest11_entry_point() -> None:
    found = [ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "flask_clientauth"]
    assert [ep.value for ep in found] == ["flask_clientauth.pytest_plugin"]


def test_clientauth_client_fixture(clientauth_client: Any, app: Flask) -> None:
    client = clientauth_client("Fixture client")
    response = client.get("/api/branches")
    assert response.status_code == 200
    assert response.get_json()["client_id"] == client.client_id
    assert app.extensions["clientauth"].store.require(client.client_id).name == "Fixture client"
    id_only = clientauth_client(with_secret=False)
    assert id_only.get("/api/branches/1").status_code == 200
    assert id_only.get("/api/branches").get_json()["moreInformation"] == "Client secret missing"


USER_TESTS = """
import pytest
from flask import Flask, jsonify
from flask_clientauth import ClientAuth, current_client

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "components": {"securitySchemes": {
        "id": {"type": "apiKey", "in": "query", "name": "client_id"},
        "secret": {"type": "apiKey", "in": "query", "name": "client_secret"},
    }},
    "security": [{"id": [], "secret": []}],
    "paths": {"/me": {"get": {"responses": {"200": {"description": "ok"}}}}},
}

@pytest.fixture
def app():
    app = Flask("user_app")
    app.config.update(CLIENTAUTH_SPEC=SPEC, CLIENTAUTH_DATABASE_URI=URL, CLIENTAUTH_BCRYPT_ROUNDS=4)
    ClientAuth(app)
    app.add_url_rule("/me", "me", lambda: jsonify(name=current_client.name))
    with app.app_context():
        app.extensions["clientauth"].store.create_all()
    return app

def test_me(clientauth_client):
    client = clientauth_client("Mobile app")
    assert client.get("/me").get_json() == {"name": "Mobile app"}

def test_refused_without(app):
    assert app.test_client().get("/me").status_code == 401

def test_app_without_the_extension(clientauth_client):
    with pytest.raises(RuntimeError, match="not initialised"):
        clientauth_client(app=Flask("plain"))
"""


@pytest.mark.slow
def test_plugin_in_a_users_project(pytester: pytest.Pytester, tmp_path: Any) -> None:
    """A project that only installs Flask-ClientAuth gets the fixture; its clients are removed afterwards."""
    url = f"sqlite:///{tmp_path}/user.sqlite3"
    pytester.makepyfile(test_user=textwrap.dedent(USER_TESTS.replace("URL", repr(url))))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM clientauth_clients")).scalar() == 0
    finally:
        engine.dispose()
