"""``auth.admin_api(login_required=...)``: the JSON API over HTTP. Every endpoint; the same shapes and
audit entries as the CLI with the actor from the login; ``can_manage`` between two users; bad input
(clear 4xx, nothing changed); CSRF (415 for a form post); its OpenAPI document, valid and complete;
mounting with and without the app's document describing it; protected by Flask-ClientAuth itself,
over a real server."""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request
from flask.testing import FlaskClient

from flask_clientauth import ClientAuth
from flask_clientauth.admin_api import admin_api_document
from flask_clientauth.models import clients_table
from flask_clientauth.store import utcnow
from servers import HTTP_TIMEOUT, database, serve

from conftest import TUTORIAL_SPEC, AppFactory

PREFIX = "/admin/api"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}
PLANS = {"gold": {"rate_limits": ["100/minute"]}, "silver": {"rate_limits": ["10/minute"]}}


def basic_login(view: Callable[..., Any]) -> Callable[..., Any]:
    """The app's login of these tests: HTTP Basic against ``USERS`` (the actor is the user name)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = request.authorization
        if given is None or USERS.get(given.username or "") != given.password:
            return jsonify(error="log in"), 401
        return view(*args, **kwargs)

    return wrapper


def owner_can_manage(record: Any) -> bool:
    """Root manages everything; a user manages the clients whose description names them."""
    user = request.authorization.username if request.authorization else None
    return user == "root" or record.description == f"owner:{user}"


def owner_scope() -> Any:
    """The same rule in SQL: listings filter by it before ``owner_can_manage`` is asked."""
    user = request.authorization.username if request.authorization else None
    return None if user == "root" else clients_table.c.description == f"owner:{user}"


def build_app(make_app: AppFactory, database_url: str | None = None, **config: Any) -> Flask:
    config.setdefault("CLIENTAUTH_PLANS", PLANS)
    app = make_app(database_url=database_url, **config)
    auth: ClientAuth = app.extensions["test_auth"]
    admin = auth.admin_api(basic_login, can_manage=owner_can_manage, scope=owner_scope)
    app.register_blueprint(admin, url_prefix=PREFIX)
    return app


class Api:
    """A test client logged in as one user."""

    def __init__(self, client: FlaskClient, user: str) -> None:
        self.client = client
        token = base64.b64encode(f"{user}:{USERS[user]}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def __call__(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        if body is not None:
            kw["json"] = body
        elif method in ("POST", "PUT", "PATCH"):
            kw.setdefault("json", {})
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.open(PREFIX + path, method=method, headers=headers, **kw)


@pytest.fixture
def app(make_app: AppFactory, database_url: str) -> Flask:
    return build_app(make_app, database_url)


@pytest.fixture
def root(app: Flask) -> Api:
    return Api(app.test_client(), "root")


def snapshot(app: Flask) -> tuple[Any, int]:
    """Everything a refused request must leave as it was: every client and the audit log's length."""
    store = app.extensions["clientauth"].store
    clients = [r.to_dict() for r in store.find_clients(limit=1000)]
    for c in clients:  # "enabled" of a credential depends on the clock only through its expiry
        c.pop("updated_at")
    return clients, len(store.audit())


def cli_json(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["clients", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_it_refuses_to_be_created_without_login_required(make_app: AppFactory) -> None:
    auth: ClientAuth = make_app().extensions["test_auth"]
    for bad in (None, "login_required", 42):
        with pytest.raises(TypeError, match="needs login_required"):
            auth.admin_api(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs login_required"):
        auth.admin_api()
    with pytest.raises(TypeError, match="can_manage must be a callable"):
        auth.admin_api(basic_login, can_manage="owner")  # type: ignore[arg-type]


def test_every_endpoint_needs_the_login(app: Flask) -> None:
    client = app.test_client()
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith(PREFIX)]
    assert len(rules) >= 20
    for rule in rules:
        path = rule.rule.replace("<client_id>", "x")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method, json={})
            assert response.status_code == 401, (method, path)
            assert response.get_json() == {"error": "log in"}


def test_the_whole_lifecycle_with_the_cli_shapes_and_audit(app: Flask, root: Api) -> None:
    created = root("POST", "/clients", {"name": "Mobile", "roles": ["read"], "label": "ci", "plan": "gold"})
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    body = created.get_json()
    cid, secret = body["client_id"], body["client_secret"]
    assert secret.startswith("fcsk_") and body["plan"] == "gold" and body["roles"] == ["read"]
    # the same shapes as --json
    shown = root("GET", f"/clients/{cid}").get_json()
    assert shown == cli_json(app, "show", cid)
    assert root("GET", f"/clients/{cid}/credentials").get_json() == cli_json(app, "credentials", "list", cid)
    assert root("GET", "/plans").get_json() == cli_json(app, "plans")
    listing = root("GET", "/clients", query_string={"search": "mob"}).get_json()
    assert listing["total"] == 1 and listing["items"] == cli_json(app, "list")
    # credentials
    added = root("POST", f"/clients/{cid}/credentials", {"label": "laptop", "ttl": "30d"})
    assert added.status_code == 201
    other = added.get_json()["client_id"]
    assert len(root("GET", f"/clients/{cid}/credentials").get_json()) == 2
    # secrets
    reset = root("POST", f"/clients/{cid}/reset-secret", {"grace": "1h"}).get_json()
    assert reset["client_secret"] != secret and reset["previous_secret_until"] is not None
    for candidate, valid in ((secret, True), (reset["client_secret"], True), ("fcsk_wrong", False)):
        answer = root("POST", f"/clients/{cid}/verify-secret", {"secret": candidate})
        assert answer.get_json() == {"client_id": cid, "valid": valid}
    chosen = "an-operator-chosen-secret"
    assert root("PUT", f"/clients/{other}/secret", {"secret": chosen}).status_code == 200
    assert root("POST", f"/clients/{other}/verify-secret", {"secret": chosen}).get_json()["valid"] is True
    # expiry, enable/disable, roles, plan
    at = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    assert (
        root("PUT", f"/clients/{cid}/expiry", {"expires_at": at.isoformat()})
        .get_json()["expires_at"]
        .startswith(at.isoformat()[:16])
    )
    assert root("PUT", f"/clients/{cid}/expiry", {"expires_at": None}).get_json()["expires_at"] is None
    assert root("POST", f"/clients/{cid}/disable").get_json()["enabled"] is False
    assert root("GET", "/clients", query_string={"status": "disabled"}).get_json()["total"] == 1
    assert root("POST", f"/clients/{cid}/enable").get_json()["enabled"] is True
    roles = root("PATCH", f"/clients/{cid}/roles", {"add": ["admin"], "remove": ["read"]}).get_json()
    assert roles["roles"] == ["admin"]
    assert root("PUT", f"/clients/{cid}/plan", {"plan": "silver"}).get_json()["plan"] == "silver"
    usage = root("GET", f"/clients/{cid}/usage").get_json()
    assert usage == cli_json(app, "usage", cid) and usage[0]["limit"] == "10 per minute"
    assert root("PUT", f"/clients/{cid}/plan", {"plan": None}).get_json()["plan"] is None
    # revoke, reset the ID, delete
    assert root("DELETE", f"/credentials/{other}").get_json() == {"client_id": other, "revoked": True}
    new = root("POST", f"/clients/{cid}/reset-client-id").get_json()
    assert new["previous_client_id"] == cid and "client_secret" not in new
    assert root("GET", f"/clients/{cid}").status_code == 404
    # the audit log: the CLI's entries, with the logged-in user as the actor, and no secret anywhere
    entries = root("GET", "/audit").get_json()
    assert entries == cli_json(app, "audit") == root("GET", f"/clients/{new['client_id']}/audit").get_json()
    assert root("DELETE", f"/clients/{new['client_id']}").get_json() == {"client_id": new["client_id"], "deleted": True}
    assert root("GET", "/clients").get_json()["total"] == 0
    # with can_manage, a deleted client's entries are no one's (the CLI still shows them)
    assert root("GET", "/audit").get_json() == []
    entries = cli_json(app, "audit")
    assert [e["action"] for e in entries] == [
        "create",
        "credential.add",
        "secret.reset",
        "secret.set",
        "expiry",
        "expiry",
        "disable",
        "enable",
        "roles",
        "plan",
        "plan",
        "credential.revoke",
        "client_id.reset",
        "delete",
    ]
    assert {e["actor"] for e in entries} == {"root"}
    dumped = json.dumps(entries)
    assert secret not in dumped and reset["client_secret"] not in dumped and chosen not in dumped


def test_pagination(app: Flask, root: Api) -> None:
    for i in range(7):
        root("POST", "/clients", {"name": f"app {i}"})
    page = root("GET", "/clients", query_string={"page": 2, "per_page": 3}).get_json()
    assert (page["total"], page["pages"], page["page"], page["per_page"]) == (7, 3, 2, 3)
    assert [c["name"] for c in page["items"]] == ["app 3", "app 4", "app 5"]
    assert root("GET", "/clients", query_string={"page": 9}).get_json()["items"] == []


def test_one_user_cannot_manage_anothers_clients(app: Flask) -> None:
    alice, bob = Api(app.test_client(), "alice"), Api(app.test_client(), "bob")
    mine = alice("POST", "/clients", {"name": "A", "description": "owner:alice"}).get_json()["client_id"]
    theirs = bob("POST", "/clients", {"name": "B", "description": "owner:bob"}).get_json()["client_id"]
    refused = alice("POST", "/clients", {"name": "B2", "description": "owner:bob"})
    assert refused.status_code == 403 and refused.get_json()["code"] == "not_permitted"
    before = snapshot(app)
    calls = [
        ("GET", f"/clients/{theirs}", None),
        ("DELETE", f"/clients/{theirs}", None),
        ("GET", f"/clients/{theirs}/credentials", None),
        ("POST", f"/clients/{theirs}/credentials", {}),
        ("DELETE", f"/credentials/{theirs}", None),
        ("POST", f"/clients/{theirs}/reset-secret", {}),
        ("PUT", f"/clients/{theirs}/secret", {"secret": "a-long-enough-secret"}),
        ("POST", f"/clients/{theirs}/verify-secret", {"secret": "a-long-enough-secret"}),
        ("POST", f"/clients/{theirs}/reset-client-id", {}),
        ("PUT", f"/clients/{theirs}/expiry", {"ttl": "1d"}),
        ("POST", f"/clients/{theirs}/disable", {}),
        ("POST", f"/clients/{theirs}/enable", {}),
        ("PATCH", f"/clients/{theirs}/roles", {"add": ["x"]}),
        ("PUT", f"/clients/{theirs}/plan", {"plan": "gold"}),
        ("GET", f"/clients/{theirs}/audit", None),
    ]
    for method, path, body in calls:
        response = alice(method, path, body)
        assert response.status_code == 404, (method, path)
        assert response.get_json() == {
            "httpCode": "404",
            "httpMessage": "Not Found",
            "moreInformation": f"no client with ID {theirs!r}",
            "code": "not_found",
        }
    assert snapshot(app) == before
    assert [c["client_id"] for c in alice("GET", "/clients").get_json()["items"]] == [mine]
    assert {e["client_id"] for e in alice("GET", "/audit").get_json()} == {mine}
    assert sum(p["clients"] for p in alice("GET", "/plans").get_json()) == 0
    assert bob("GET", f"/clients/{theirs}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/clients", {"name": 42}, 400, "name must be a string"),
        ("POST", "/clients", {"name": ""}, 400, "a client name must be 1 to 200"),
        ("POST", "/clients", {"name": "x" * 201}, 400, "a client name must be 1 to 200"),
        ("POST", "/clients", {}, 400, "name is required"),
        ("POST", "/clients", {"name": "ok", "colour": "red"}, 400, "unknown field(s): colour"),
        ("POST", "/clients", {"name": "ok", "roles": "admin"}, 400, "roles must be a list"),
        ("POST", "/clients", {"name": "ok", "roles": [1]}, 400, "roles must be a list of role names"),
        ("POST", "/clients", {"name": "ok", "roles": ["no spaces"]}, 400, "a role must be"),
        ("POST", "/clients", {"name": "ok", "expires_at": "tomorrow"}, 400, "is not a date"),
        ("POST", "/clients", {"name": "ok", "expires_at": "2001-01-01"}, 400, "is in the past"),
        ("POST", "/clients", {"name": "ok", "ttl": "5 days"}, 400, "is not a duration"),
        ("POST", "/clients", {"name": "ok", "ttl": "1d", "expires_at": "2099-01-01"}, 400, "not both"),
        ("POST", "/clients", {"name": "ok", "plan": "platinum"}, 400, "unknown plan 'platinum'"),
        ("POST", "/clients", {"name": "ok", "with_secret": "no"}, 400, "with_secret must be true or false"),
        ("POST", "/clients", ["not", "an", "object"], 400, "must be a JSON object"),
        ("POST", "/clients/{cid}/reset-secret", {"grace": "-1h"}, 400, "is not a duration"),
        ("POST", "/clients/{cid}/reset-secret", {"grace": 3600}, 400, "grace must be a string"),
        ("PUT", "/clients/{cid}/secret", {"secret": "short"}, 400, "at least 16"),
        ("PUT", "/clients/{cid}/secret", {}, 400, "secret is required"),
        ("PUT", "/clients/{cid}/expiry", {}, 400, "give expires_at"),
        ("PUT", "/clients/{cid}/plan", {"plan": "platinum"}, 400, "unknown plan"),
        ("PUT", "/clients/{cid}/plan", {"plan": "bad name!"}, 400, "a plan name must be"),
        ("PATCH", "/clients/{cid}/roles", {"add": ["a"], "remove": ["a"]}, 400, "both added and removed"),
        ("POST", "/clients/{cid}/credentials", {"label": "x" * 201}, 400, "a credential label must be"),
        ("DELETE", "/credentials/{cid}", None, 409, "is the only credential"),
        ("GET", "/clients?page=0", None, 400, "page must be a whole number of at least 1"),
        ("GET", "/clients?page=two", None, 400, "page must be a whole number"),
        # str.isdigit() says yes to these, int() says no: a 500 before
        ("GET", "/clients?page=\u00b2", None, 400, "page must be a whole number"),
        ("GET", "/clients?per_page=\u2463", None, 400, "per_page must be a whole number"),
        ("GET", "/clients?per_page=501", None, 400, "per_page must be a whole number between 1 and 500"),
        ("GET", "/clients?status=gone", None, 400, "status must be one of enabled, disabled"),
        ("GET", "/clients?secret=fcsk_x", None, 400, "unknown query parameter(s): secret"),
        ("GET", "/audit?since=yesterday", None, 400, "is not a date"),
        ("GET", "/clients/nope", None, 404, "no client with ID 'nope'"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(
    app: Flask, root: Api, method: str, path: str, body: Any, status: int, words: str
) -> None:
    cid = root("POST", "/clients", {"name": "Target"}).get_json()["client_id"]
    before = snapshot(app)
    response = root(method, path.replace("{cid}", cid), body)
    assert response.status_code == status, response.get_json()
    error = response.get_json()
    assert error["httpCode"] == str(status) and error["httpMessage"] and words in error["moreInformation"]
    assert snapshot(app) == before


def test_a_deeply_nested_body_is_a_400_not_a_500(app: Flask, root: Api) -> None:
    before = snapshot(app)
    for body in ("[" * 100_000, '{"name": ' + "[" * 100_000):
        response = root.client.post(
            PREFIX + "/clients", data=body, content_type="application/json", headers=root.headers
        )
        assert response.status_code == 400, response.data[:200]
        assert response.get_json()["moreInformation"] == "the body is not valid JSON"
    assert snapshot(app) == before


def test_a_client_holds_at_most_100_roles(app: Flask, root: Api) -> None:
    """100,000 roles were stored (MariaDB's TEXT refuses them: a 503), and every page carried them."""
    before = snapshot(app)
    refused = root("POST", "/clients", {"name": "Many", "roles": [f"r{i}" for i in range(100_000)]})
    assert refused.status_code == 400 and "at most 100 roles" in refused.get_json()["moreInformation"]
    assert snapshot(app) == before
    cid = root("POST", "/clients", {"name": "Many", "roles": [f"r{i}" for i in range(100)]}).get_json()["client_id"]
    before = snapshot(app)
    refused = root("PATCH", f"/clients/{cid}/roles", {"add": ["one-more"]})
    assert refused.status_code == 400 and "at most 100 roles" in refused.get_json()["moreInformation"]
    assert snapshot(app) == before
    swapped = root("PATCH", f"/clients/{cid}/roles", {"add": ["one-more"], "remove": ["r0"]})
    assert swapped.status_code == 200 and len(swapped.get_json()["roles"]) == 100


def test_the_maximum_of_credentials(make_app: AppFactory) -> None:
    app = build_app(make_app, CLIENTAUTH_MAX_CREDENTIALS=2)
    root = Api(app.test_client(), "root")
    cid = root("POST", "/clients", {"name": "Two at most"}).get_json()["client_id"]
    assert root("POST", f"/clients/{cid}/credentials").status_code == 201
    before = snapshot(app)
    response = root("POST", f"/clients/{cid}/credentials")
    assert response.status_code == 409 and response.get_json()["code"] == "too_many_credentials"
    assert "CLIENTAUTH_MAX_CREDENTIALS" in response.get_json()["moreInformation"]
    assert snapshot(app) == before


def test_writes_need_a_json_content_type(app: Flask, root: Api) -> None:
    """CSRF: a cross-site HTML form can send a cookie, but not ``Content-Type: application/json``."""
    cid = root("POST", "/clients", {"name": "Target"}).get_json()["client_id"]
    before = snapshot(app)
    for path, form in (
        ("/clients", {"name": "forged"}),
        (f"/clients/{cid}/disable", {}),
        (f"/clients/{cid}/reset-secret", {}),
    ):
        response = root.client.post(PREFIX + path, data=form, headers=root.headers)
        assert response.status_code == 415
        assert response.get_json()["code"] == "unsupported_media_type"
        plain = root.client.post(PREFIX + path, data="{}", content_type="text/plain", headers=root.headers)
        assert plain.status_code == 415
    assert snapshot(app) == before


def test_a_browser_request_from_another_site_is_refused(app: Flask, root: Api) -> None:
    """JSON alone stops an HTML form, not a ``fetch`` the app's CORS set-up lets through with
    credentials: a request the browser marks cross-site (``Sec-Fetch-Site``, else ``Origin``)
    is refused; automation (no such headers) and the app's own pages are not."""
    cid = root("POST", "/clients", {"name": "Target"}).get_json()["client_id"]
    before = snapshot(app)
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost.evil.example"},
    ):
        refused = root("POST", f"/clients/{cid}/disable", headers=headers)
        assert refused.status_code == 403, headers
        assert refused.get_json()["code"] == "cross_origin"
        stolen = root("GET", "/clients", headers={**headers, "Sec-Fetch-Mode": "cors"})
        assert stolen.status_code == 403, headers
    assert snapshot(app) == before
    # a link followed from another site is a navigation, not a script reading the answer
    assert (
        root("GET", "/clients", headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}).status_code
        == 200
    )
    for headers in (
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost"},
        {"Origin": "null"},
    ):
        assert root("POST", f"/clients/{cid}/disable", headers=headers).status_code == 200, headers


def test_a_secret_is_never_in_a_url_or_a_log(app: Flask, root: Api, caplog: pytest.LogCaptureFixture) -> None:
    created = root("POST", "/clients", {"name": "Quiet"}).get_json()
    cid, secret = created["client_id"], created["client_secret"]
    response = root("POST", f"/clients/{cid}/verify-secret", query_string={"secret": secret})
    assert response.status_code == 400 and secret not in response.get_data(as_text=True)
    assert secret not in caplog.text


def test_the_openapi_document_is_valid_and_describes_every_endpoint(app: Flask, root: Api) -> None:
    from openapi_spec_validator import validate

    response = root("GET", "/openapi.json")
    document = response.get_json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    described = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    served = {
        (method, rule.rule.replace("<client_id>", "{client_id}"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(PREFIX)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert described == served
    assert document == admin_api_document(PREFIX)


def test_mounted_where_the_apps_document_does_not_describe_it(make_app: AppFactory) -> None:
    """By default the blueprint is exempt from the app's document (``login_required`` guards it);
    with ``exempt=False`` it is left to the document, which refuses what it does not describe (403,
    or its global requirement where it has one)."""
    spec = copy.deepcopy(TUTORIAL_SPEC)
    spec["paths"]["/branches"]["get"]["security"] = spec.pop("security")
    app = make_app(spec)
    auth: ClientAuth = app.extensions["test_auth"]
    app.register_blueprint(auth.admin_api(basic_login), url_prefix=PREFIX)
    app.register_blueprint(auth.admin_api(basic_login, exempt=False, name="strict"), url_prefix="/strict")
    root = Api(app.test_client(), "root")
    assert root("GET", "/clients").status_code == 200
    response = root.client.get("/strict/clients", headers=root.headers)
    assert response.status_code == 403
    assert response.get_json()["moreInformation"] == "Operation not described by the API definition"
    # the app's own API is still enforced
    assert app.test_client().get("/api/branches").status_code == 401


SCHEMES = {
    "clientId": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"},
    "clientSecret": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"},
}
SECURITY = [{"clientId": ["clientauth-admin"], "clientSecret": []}]


def admin_spec() -> dict[str, Any]:
    """The recipe of docs/admin_api.rst: the admin API's document, API keys with a role, merged with
    the app's own operations (here one public status route)."""
    document = admin_api_document(PREFIX, security_schemes=SCHEMES, security=SECURITY)
    document["paths"]["/api/status"] = {"get": {"security": [], "responses": {"200": {"description": "up"}}}}
    return document


ADMIN_APP = """
from flask_clientauth.admin_api import api_key_login

admin = auth.admin_api(
    api_key_login,
    exempt=False,
    security_schemes=app.config["CLIENTAUTH_SPEC"]["components"]["securitySchemes"],
    security=app.config["CLIENTAUTH_SPEC"]["security"],
)
app.register_blueprint(admin, url_prefix="/admin/api")
"""


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "werkzeug"])
def test_protected_by_flask_clientauth_itself_over_a_real_server(tmp_path: Path, server: str) -> None:
    url, store = database(tmp_path)
    admin, admin_secret = store.create("automation", roles=["clientauth-admin"])
    plain, plain_secret = store.create("no role")
    with serve(tmp_path, ADMIN_APP, spec=admin_spec(), database_url=url, server=server) as srv:

        def call(method: str, path: str, cid: str | None, secret: str | None, **kw: Any) -> requests.Response:
            headers = {} if cid is None else {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret or ""}
            return requests.request(method, srv.url + PREFIX + path, headers=headers, timeout=HTTP_TIMEOUT, **kw)

        assert call("GET", "/clients", None, None).status_code == 401
        refused = call("GET", "/clients", plain.client_id, plain_secret)
        assert refused.status_code == 403 and refused.json()["moreInformation"] == "Client lacks a required role"
        created = call("POST", "/clients", admin.client_id, admin_secret, json={"name": "made over HTTP"})
        assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
        new = created.json()
        assert call("GET", "/clients", admin.client_id, admin_secret).json()["total"] == 3
        form = call("POST", f"/clients/{new['client_id']}/disable", admin.client_id, admin_secret, data={"a": "b"})
        assert form.status_code == 415
        document = call("GET", "/openapi.json", admin.client_id, admin_secret).json()
        assert document["security"] == SECURITY and document["components"]["securitySchemes"] == SCHEMES
        # the new client's secret works on the API at once, and has no admin role
        assert call("GET", "/clients", new["client_id"], new["client_secret"]).status_code == 403
    [entry] = [e for e in store.audit() if e.action == "create" and e.client_name == "made over HTTP"]
    assert entry.actor == f"client:{admin.client_id}"
    assert admin_secret not in srv.output() and new["client_secret"] not in srv.output()
