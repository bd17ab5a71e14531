"""Roles from the document (OpenAPI 3.1 role lists on API keys) and ``@auth.require(roles=...)``.

The client must hold every role listed in the requirement object it satisfies; otherwise 403
``role_missing``, while other alternatives are still tried. 3.0 and 2.0 documents keep refusing
role lists (test_spec_errors.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView

from flask_clientauth import ClientStore, SpecError, load_spec
from flask_clientauth.cli import clients
from flask_clientauth.requirements import Policy
from servers import HTTP_TIMEOUT, PROPAGATION_LIMIT, database, serve

from conftest import (
    HID,
    HSEC,
    QID,
    QSEC,
    AppFactory,
    CallCounter,
    FakeClock,
    auth_of,
    get_operation,
    headers,
    new_client,
    view,
)

OAUTH = {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://t.example/token", "scopes": {}}}}
SCHEMES = {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "oauth": OAUTH}


def doc31(paths: dict[str, Any], security: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "roles", "version": "1"},
        "components": {"securitySchemes": SCHEMES},
        "paths": {"/api/status": get_operation([]), **paths},
    }
    if security is not None:
        out["security"] = security
    return out


def policy(security: Any) -> Policy:
    (operation,) = [o for o in load_spec(doc31({"/x": get_operation(security)})).operations if o.path == "/x"]
    return operation.policy


ROLE_MISSING = {"httpCode": "403", "httpMessage": "Forbidden", "moreInformation": "Client lacks a required role"}


# -- the document read ----------------------------------------------------------------------------


def test_a_requirement_holds_the_union_of_its_keys_role_lists() -> None:
    (req,) = policy([{"hid": ["admin", "auditor"], "hsec": ["admin", "billing"]}]).alternatives
    assert req.roles == ("admin", "auditor", "billing")  # sorted, each once
    assert req.describe() == "id+secret [roles: admin, auditor, billing]"
    (plain,) = policy([{"hid": [], "hsec": None}]).alternatives
    assert plain.roles == ()


def test_the_same_keys_with_other_roles_are_another_alternative() -> None:
    p = policy([{"hid": ["admin"], "hsec": []}, {"hsec": [], "hid": []}, {"hid": [], "hsec": ["admin"]}])
    assert [r.roles for r in p.alternatives] == [("admin",), ()]  # {a: [x], b: []} is {b: [x], a: []}
    assert p.describe() == "alternatives: id+secret (header) [roles: admin] | id+secret (header)"


def test_scopes_of_other_schemes_are_not_roles() -> None:
    (req,) = policy([{"hid": ["admin"], "oauth": ["read"]}]).alternatives
    assert req.roles == ("admin",)


def test_a_requirement_with_roles_never_takes_the_warm_path() -> None:
    # the warm path cannot check roles without costing every request that asks for none
    assert policy([{"hid": [], "hsec": []}]).fast is not None
    assert policy([{"hid": ["admin"], "hsec": []}]).fast is None


def test_requirements_with_other_roles_are_other_requirements() -> None:
    assert policy([{"hid": ["admin"]}]) != policy([{"hid": []}])
    assert policy([{"hid": ["admin", "b"]}]) == policy([{"hid": ["b", "admin", "b"]}])


# -- requests ---------------------------------------------------------------------------------------

PATHS = {
    "/admin": get_operation([{"hid": ["admin"], "hsec": []}]),
    "/both": get_operation([{"hid": ["admin"], "hsec": ["auditor"]}]),
    "/admin-or-any": get_operation([{"hid": ["admin"], "hsec": []}, {"hid": [], "hsec": []}]),
    # the first alternative fails early (no query keys sent), the second with role_missing
    "/query-or-admin": get_operation([{"qid": [], "qsec": []}, {"hid": ["admin"], "hsec": []}]),
    # the first takes the ID alone: its role failure goes further than the second's wrong secret
    "/id-admin-or-secret": get_operation([{"hid": ["admin"]}, {"hid": [], "hsec": []}]),
    "/oauth-or-admin": get_operation([{"oauth": []}, {"hid": ["admin"], "hsec": []}]),
    "/optional-admin": get_operation([{"hid": ["admin"], "hsec": []}, {}]),
}


@pytest.fixture
def roles_app(make_app: AppFactory) -> Flask:
    app = make_app(spec=doc31(PATHS), routes=False, CLIENTAUTH_REVOCATION_INTERVAL=0)
    auth_of(app).scheme_handler("oauth")(lambda request: request.headers.get("Authorization") == "Bearer ok")
    for path in ["/api/status", *PATHS]:
        app.add_url_rule(path, path, view)
    return app


def clients_of(app: Flask) -> tuple[FlaskClient, tuple[str, str], tuple[str, str]]:
    """A test client, an admin (also an auditor) and a client with no roles: (ID, secret) each."""
    admin = new_client(app, "admin app", roles=["admin", "auditor"])
    plain = new_client(app, "plain app")
    return app.test_client(use_cookies=False), admin, plain


def test_the_client_must_hold_every_role_of_the_requirement(roles_app: Flask) -> None:
    http, admin, plain = clients_of(roles_app)
    for _ in range(2):  # cold, then warm (the secret verified before)
        ok = http.get("/admin", headers=headers(*admin))
        assert ok.status_code == 200 and ok.get_json()["client"] == admin[0]
        refused = http.get("/admin", headers=headers(*plain))
        assert refused.status_code == 403 and refused.get_json() == ROLE_MISSING
    assert http.get("/both", headers=headers(*admin)).status_code == 200
    only_admin = new_client(roles_app, "admin only", roles=["admin"])
    assert http.get("/both", headers=headers(*only_admin)).get_json() == ROLE_MISSING


def test_a_known_client_costs_no_store_lookup_or_hash_on_a_route_with_roles(
    roles_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    http, admin, plain = clients_of(roles_app)
    counter = CallCounter(monkeypatch, roles_app.extensions["clientauth"].store)
    for creds in (admin, plain):
        http.get("/admin", headers=headers(*creds))
        counter.take()
        for _ in range(3):
            http.get("/admin", headers=headers(*creds))
        assert counter.take() == (0, 0)


def test_a_role_failure_is_said_only_after_the_secret_and_the_enabled_flag(roles_app: Flask) -> None:
    http, _, plain = clients_of(roles_app)
    wrong = http.get("/admin", headers=headers(plain[0], plain[1] + "x"))
    assert (wrong.status_code, wrong.get_json()["moreInformation"]) == (401, "Client secret invalid")
    assert http.get("/admin", headers=headers(plain[0])).get_json()["moreInformation"] == "Client secret missing"
    roles_app.extensions["clientauth"].store.set_enabled(plain[0], False)
    disabled = http.get("/admin", headers=headers(*plain))
    assert (disabled.status_code, disabled.get_json()["moreInformation"]) == (403, "Client disabled")


def test_other_alternatives_are_still_tried(roles_app: Flask) -> None:
    http, admin, plain = clients_of(roles_app)
    assert http.get("/admin-or-any", headers=headers(*plain)).status_code == 200
    assert http.get("/admin-or-any", headers=headers(*admin)).status_code == 200
    assert http.get("/oauth-or-admin", headers={**headers(*plain), "Authorization": "Bearer ok"}).status_code == 200


@pytest.mark.parametrize(
    ("path", "creds"),
    [
        ("/query-or-admin", {}),  # the other alternative: wrong_location (the ID sent in the header)
        ("/oauth-or-admin", {"Authorization": "Bearer no"}),  # the other: credentials_rejected
        ("/id-admin-or-secret", {"X-IBM-Client-Secret": "wrong"}),  # the other: client_secret_invalid
    ],
)
def test_the_role_failure_is_reported_over_a_failure_that_went_less_far(
    roles_app: Flask, path: str, creds: dict[str, str]
) -> None:
    http, _, plain = clients_of(roles_app)
    sent = {**headers(*plain), **creds}
    if path == "/id-admin-or-secret":
        sent = {**headers(plain[0]), **creds}
    response = http.get(path, headers=sent)
    assert response.status_code == 403 and response.get_json() == ROLE_MISSING


def test_optional_credentials_that_are_sent_must_hold_the_roles(roles_app: Flask) -> None:
    http, admin, plain = clients_of(roles_app)
    assert http.get("/optional-admin").get_json()["client"] is None
    assert http.get("/optional-admin", headers=headers(*admin)).status_code == 200
    assert http.get("/optional-admin", headers=headers(*plain)).get_json() == ROLE_MISSING


def test_the_log_names_the_missing_role_the_response_does_not(
    roles_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    http, _, plain = clients_of(roles_app)
    caplog.set_level("INFO", logger="flask_clientauth")
    response = http.get("/both", headers=headers(*plain))
    assert "admin" not in response.get_data(as_text=True)
    assert f"client '{plain[0]}' lacks the role(s) admin, auditor" in caplog.text


def test_a_role_change_from_another_process_reaches_the_app(
    make_app: AppFactory, database_url: str, other_process: ClientStore, clock: FakeClock
) -> None:
    interval = 0.5
    app = make_app(
        spec=doc31(PATHS), database_url=database_url, routes=False, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock
    )
    app.add_url_rule("/admin", "admin", view)
    http = app.test_client(use_cookies=False)
    cid, secret = new_client(app, "admin app", roles=["admin"])
    assert http.get("/admin", headers=headers(cid, secret)).status_code == 200
    other_process.set_roles(cid, remove=["admin"])  # the CLI: flask clients roles ID --remove admin
    assert http.get("/admin", headers=headers(cid, secret)).status_code == 200  # the interval has not passed
    clock.advance(interval + 0.05)
    assert http.get("/admin", headers=headers(cid, secret)).get_json() == ROLE_MISSING
    other_process.set_roles(cid, add=["admin"])
    clock.advance(interval + 0.05)
    assert http.get("/admin", headers=headers(cid, secret)).status_code == 200


def test_a_role_change_reaches_every_credential_of_the_client(
    make_app: AppFactory, other_process: ClientStore, sqlite_url: str
) -> None:
    app = make_app(spec=doc31(PATHS), routes=False, CLIENTAUTH_REVOCATION_INTERVAL=0)
    app.add_url_rule("/admin", "admin", view)
    http = app.test_client(use_cookies=False)
    store: ClientStore = app.extensions["clientauth"].store
    first = new_client(app, "admin app", roles=["admin"])
    second = store.add_credential(first[0], label="second")
    pairs = [first, (second[0].client_id, second[1])]
    assert all(http.get("/admin", headers=headers(*p)).status_code == 200 for p in pairs)
    store.set_roles(first[0], remove=["admin"])
    assert all(http.get("/admin", headers=headers(*p)).status_code == 403 for p in pairs)


# -- @auth.require(roles=...) ----------------------------------------------------------------------


def test_require_with_roles_on_a_route_outside_the_document(make_app: AppFactory) -> None:
    # a 3.0 document: the decorator is the app's code, not the document, whatever its version
    spec = doc31({}, security=[{"hid": [], "hsec": []}, {}])
    spec["openapi"] = "3.0.3"
    app = make_app(spec=spec, routes=False, CLIENTAUTH_REVOCATION_INTERVAL=0)
    auth = auth_of(app)
    app.add_url_rule("/api/status", "status", view)
    # a decorator marks the function: each route its own
    app.add_url_rule("/named", "named", auth.require("hid", "hsec", roles=["admin"])(lambda: view()))
    app.add_url_rule("/global", "global", auth.require(roles=["admin"])(lambda: view()))

    class Reports(MethodView):
        @auth.require(any_of=[["hid", "hsec"], ["qid", "qsec"]], roles=["auditor"])
        def get(self) -> Any:
            return view()

    app.add_url_rule("/reports", view_func=Reports.as_view("reports"))
    http, admin, plain = clients_of(app)
    for path in ("/named", "/global"):
        assert http.get(path, headers=headers(*admin)).status_code == 200
        assert http.get(path, headers=headers(*plain)).get_json() == ROLE_MISSING
    # the global requirement lists {}, but roles need a client: anonymous is refused here
    assert http.get("/global").get_json()["moreInformation"] == "Client ID missing"
    assert http.get("/api/status").status_code == 200  # elsewhere {} still lets anonymous through
    assert http.get("/reports", query_string={"client_id": admin[0], "client_secret": admin[1]}).status_code == 200
    assert http.get("/reports", headers=headers(*plain)).get_json() == ROLE_MISSING


def test_require_adds_its_roles_to_the_documents(make_app: AppFactory) -> None:
    app = make_app(spec=doc31({}, security=[{"hid": ["auditor"], "hsec": []}]), routes=False)
    app.add_url_rule("/x", "x", auth_of(app).require(roles=["admin"])(lambda: view()))
    (row,) = [r for r in auth_of(app).routes(app) if r.rule == "/x" and r.method == "GET"]
    assert [r.roles for r in row.policy.alternatives] == [("admin", "auditor")]


def test_require_with_roles_refuses_an_alternative_without_a_client(make_app: AppFactory) -> None:
    app = make_app(spec=doc31({}), routes=False)
    auth = auth_of(app)
    auth.scheme_handler("oauth")(lambda request: True)

    @auth.require(any_of=[["hid"], ["oauth"]], roles=["admin"])
    def reports() -> Any:
        return view()

    app.add_url_rule("/x", "x", reports)
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert (
        "GET, HEAD, OPTIONS /x: @require(roles=['admin']) on test_require_with_roles_refuses_an_alternative_without"
        "_a_client.<locals>.reports: roles are a client's, and the alternative(s) oauth(oauth2, handled-by-app) "
        "take no client ID; require a client ID key in each"
    ) in str(info.value)


def test_require_checks_its_roles_when_decorating(make_app: AppFactory) -> None:
    auth = auth_of(make_app(spec=doc31({}), routes=False))
    with pytest.raises(TypeError, match=r"write roles=\['admin'\]"):
        auth.require("hid", roles="admin")
    with pytest.raises(ValueError, match="a role must be 1 to 64 letters"):
        auth.require("hid", roles=["two words"])


# -- flask clients routes ---------------------------------------------------------------------------


def test_routes_shows_the_roles(roles_app: Flask) -> None:
    roles_app.cli.add_command(clients)
    runner = roles_app.test_cli_runner()
    text = runner.invoke(args=["clients", "routes"]).output
    assert "alternatives: id+secret (header) [roles: admin] | id+secret (header)" in text
    assert "id+secret [roles: admin, auditor]" in text
    listed = json.loads(runner.invoke(args=["clients", "routes", "--json"]).output)["routes"]
    rows = {r["rule"]: r for r in listed if r["method"] == "GET"}
    assert rows["/admin-or-any"]["alternatives"] == [["hid", "hsec"], ["hid", "hsec"]]
    assert rows["/admin-or-any"]["roles"] == [["admin"], []]
    assert rows["/both"]["roles"] == [["admin", "auditor"]]
    assert rows["/api/status"]["roles"] == []


# -- a real server ----------------------------------------------------------------------------------

ADD = ("--add", "admin")
SERVED_VIEWS = """
@app.get("/admin")
def admin():
    return jsonify(client=current_client.client_id)
"""


@pytest.mark.slow
def test_roles_on_a_real_server(tmp_path: Path) -> None:
    url, store = database(tmp_path)
    admin, admin_secret = store.create("admin app", roles=["admin"])
    plain, plain_secret = store.create("plain app")
    spec = doc31({"/admin": get_operation([{"hid": ["admin"], "hsec": ["admin"]}])})
    with serve(tmp_path, SERVED_VIEWS, spec=spec, database_url=url, CLIENTAUTH_REVOCATION_INTERVAL=0.2) as server:

        def get(cid: str, secret: str | None) -> requests.Response:
            return requests.get(server.url + "/admin", headers=headers(cid, secret), timeout=HTTP_TIMEOUT)

        assert get(admin.client_id, admin_secret).json() == {"client": admin.client_id}
        refused = get(plain.client_id, plain_secret)
        assert refused.status_code == 403 and refused.json() == ROLE_MISSING
        # the operator's command, from another process
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "served_app", "clients", "roles", plain.client_id, *ADD],
            cwd=tmp_path,
            env=server.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["admin"]
        start = time.monotonic()
        while get(plain.client_id, plain_secret).status_code != 200:
            assert time.monotonic() - start < PROPAGATION_LIMIT, "the role change did not reach the server"
            time.sleep(0.05)
        assert get(plain.client_id, plain_secret).json() == {"client": plain.client_id}
    store.engine.dispose()
