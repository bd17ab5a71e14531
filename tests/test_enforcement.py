"""Request enforcement through the test client: every failure text, locations, duplicates, revocation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import jsonify
from flask.testing import FlaskClient

from flask_clientauth import AuthFailure, ClientStore, current_client

from conftest import CID, CSEC, HID, HSEC, QID, QSEC, CallCounter, ClientEnv, get_operation, location_paths

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "enforcement", "version": "1"},
    "components": {
        "securitySchemes": {
            "hid": HID,
            "hsec": HSEC,
            "hsec2": {**HSEC, "name": "X-Other-Secret"},
            "qid": QID,
            "qsec": QSEC,
            "cid": CID,
            "csec": CSEC,
        }
    },
    "security": [{"hid": [], "hsec": []}],
    "paths": {
        **location_paths(),
        "/either": get_operation([{"hid": [], "hsec": []}, {"qid": [], "qsec": []}]),
        "/two-secrets": get_operation([{"hid": [], "hsec": []}, {"hid": [], "hsec2": []}]),
        "/optional": get_operation([{"hid": [], "hsec": []}, {}]),
    },
}


def whoami() -> Any:
    return jsonify(client_id=current_client.client_id if current_client else None)


@dataclass(frozen=True)
class Loc:
    """Where a route's keys live and how a test sends them."""

    name: str
    id_param: str
    secret_param: str
    where_id: str
    where_secret: str

    def send(self, client: FlaskClient, path: str, pairs: list[tuple[str, str]], **kw: Any) -> Any:
        return send(client, self.name, path, pairs, **kw)

    def creds(self, cid: str | None, secret: str | None = None) -> list[tuple[str, str]]:
        pairs = []
        if cid is not None:
            pairs.append((self.id_param, cid))
        if secret is not None:
            pairs.append((self.secret_param, secret))
        return pairs


def send(client: FlaskClient, location: str, path: str, pairs: list[tuple[str, str]], **kw: Any) -> Any:
    """GET ``path`` with ``pairs`` (name, value) in the header, the query or the cookie."""
    if location == "header":
        return client.get(path, headers=pairs, **kw)
    if location == "query":
        return client.get(path, query_string=pairs, **kw)
    cookie = "; ".join(f"{k}={v}" for k, v in pairs)
    return client.get(path, headers={"Cookie": cookie} if pairs else {}, **kw)


LOCS = {
    "header": Loc(
        "header",
        "X-IBM-Client-Id",
        "X-IBM-Client-Secret",
        "the header X-IBM-Client-Id",
        "the header X-IBM-Client-Secret",
    ),
    "query": Loc(
        "query", "client_id", "client_secret", "the query parameter client_id", "the query parameter client_secret"
    ),
    "cookie": Loc(
        "cookie", "app_client_id", "app_client_secret", "the cookie app_client_id", "the cookie app_client_secret"
    ),
}


def make_env(make_app: Any, spec: dict[str, Any] = SPEC, **config: Any) -> ClientEnv:
    # tests change clients between requests: poll the change log on every request
    config.setdefault("CLIENTAUTH_REVOCATION_INTERVAL", 0)
    app = make_app(spec=spec, routes=False, **config)
    for path in spec["paths"]:
        app.add_url_rule(path, path, whoami)
    app.add_url_rule("/undocumented", "undocumented", whoami)
    return ClientEnv.of(app)


@pytest.fixture
def env(make_app: Any) -> ClientEnv:
    return make_env(make_app)


@pytest.fixture(params=list(LOCS))
def loc(request: pytest.FixtureRequest) -> Loc:
    return LOCS[request.param]


def unauthorized(text: str) -> dict[str, str]:
    return {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": text}


def forbidden(text: str) -> dict[str, str]:
    return {"httpCode": "403", "httpMessage": "Forbidden", "moreInformation": text}


def assert_failure(resp: Any, status: int, text: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = (unauthorized if status == 401 else forbidden)(text)
    assert resp.get_json() == body
    assert resp.get_data(as_text=True).count('"httpCode"') == 1


# -- the basic outcomes, for keys in the header, the query and the cookie -----------------------

OTHER_ID = "0123456789abcdef0123456789abcdef"

CASES = [
    # id, secret, route ("" = id+secret, "/id" = id only), status, text
    ("{cid}", "{secret}", "", 200, None),
    ("{cid}", None, "/id", 200, None),
    ("{cid}", "{secret}", "/id", 200, None),  # an extra secret on an id-only route is ignored
    (None, "{secret}", "", 401, "Client ID missing"),
    (None, None, "", 401, "Client ID missing"),
    (None, None, "/id", 401, "Client ID missing"),
    ("", "{secret}", "", 401, "Client ID missing"),
    (OTHER_ID, "{secret}", "", 401, "Client ID not registered"),
    (OTHER_ID, None, "/id", 401, "Client ID not registered"),
    ("x" * 500, None, "/id", 401, "Client ID not registered"),
    ("{CID}", "{secret}", "", 401, "Client ID not registered"),  # IDs are exact, not case-folded
    ("{cid}", None, "", 401, "Client secret missing"),
    (OTHER_ID, None, "", 401, "Client secret missing"),  # nothing said about the ID without a secret
    ("{cid}", "", "", 401, "Client secret missing"),
    ("{cid}", "wrong-secret", "", 401, "Client secret invalid"),
    ("{cid}", "{secret}x", "", 401, "Client secret invalid"),
    ("{cid}", "{SECRET}", "", 401, "Client secret invalid"),
    ("{cid}", "s" * 200, "", 401, "Client secret invalid"),
]


@pytest.mark.parametrize(("cid", "secret", "route", "status", "text"), CASES)
def test_outcomes(
    env: ClientEnv, loc: Loc, cid: str | None, secret: str | None, route: str, status: int, text: str | None
) -> None:
    def fill(value: str | None) -> str | None:
        if value is None:
            return None
        return value.format(cid=env.cid, secret=env.secret, CID=env.cid.upper(), SECRET=env.secret.swapcase())

    resp = loc.send(env.client, f"/{loc.name}{route}", loc.creds(fill(cid), fill(secret)))
    if status == 200:
        assert resp.status_code == 200, resp.get_json()
        assert resp.get_json() == {"client_id": env.cid}
    else:
        assert_failure(resp, status, text or "")


def test_another_clients_secret_is_invalid(env: ClientEnv, loc: Loc) -> None:
    _, other_secret = env.new_client()
    assert other_secret is not None
    resp = loc.send(env.client, f"/{loc.name}", loc.creds(env.cid, other_secret))
    assert_failure(resp, 401, "Client secret invalid")


def test_spec_in_yaml_tutorial_random_id(make_app: Any) -> None:
    """The tutorial: valid ID and secret -> 200; a random ID instead -> 401 "Client ID not registered"."""
    app = make_app()
    record, secret = app.extensions["clientauth"].store.create("Branch mobile app")
    client = app.test_client()
    ok = client.get("/api/branches", headers={"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret})
    assert ok.status_code == 200
    resp = client.get("/api/branches", headers={"X-IBM-Client-Id": "random-value-123", "X-IBM-Client-Secret": secret})
    assert_failure(resp, 401, "Client ID not registered")


# -- wrong location ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "sent_in"), [(t, s) for t in LOCS for s in LOCS if t != s])
def test_id_only_in_the_wrong_location_names_where_it_must_be_sent(env: ClientEnv, target: str, sent_in: str) -> None:
    want = LOCS[target]
    # the key under the spec's own name, in another location
    resp = send(env.client, sent_in, f"/{target}", want.creds(env.cid, env.secret))
    assert_failure(resp, 401, f"Client ID must be sent in {want.where_id}")


@pytest.mark.parametrize(
    ("target", "sent_in", "pairs"),
    [
        # API Connect's names for the other location count as the same key
        ("header", "query", [("client_id", "{cid}"), ("client_secret", "{secret}")]),
        ("query", "header", [("X-IBM-Client-Id", "{cid}"), ("X-IBM-Client-Secret", "{secret}")]),
        ("cookie", "header", [("X-IBM-Client-Id", "{cid}")]),
        # header names cannot tell "_" from "-"
        ("query", "header", [("Client-Id", "{cid}")]),
    ],
)
def test_id_under_api_connects_name_in_the_wrong_location(
    env: ClientEnv, target: str, sent_in: str, pairs: list[tuple[str, str]]
) -> None:
    filled = [(k, v.format(cid=env.cid, secret=env.secret)) for k, v in pairs]
    resp = send(env.client, sent_in, f"/{target}", filled)
    assert_failure(resp, 401, f"Client ID must be sent in {LOCS[target].where_id}")


def test_secret_only_in_the_wrong_location(env: ClientEnv, loc: Loc) -> None:
    other = "query" if loc.name != "query" else "header"
    path = f"/{loc.name}"
    if loc.name == "cookie":
        cookie = f"{loc.id_param}={env.cid}"
        resp = env.client.get(path, headers={"Cookie": cookie}, query_string={loc.secret_param: env.secret})
    elif other == "query":
        resp = env.client.get(path, headers={loc.id_param: env.cid}, query_string={loc.secret_param: env.secret})
    else:
        resp = env.client.get(path, query_string={loc.id_param: env.cid}, headers={loc.secret_param: env.secret})
    assert_failure(resp, 401, f"Client secret must be sent in {loc.where_secret}")


def test_credentials_in_the_right_and_a_wrong_location_use_the_right_one(env: ClientEnv) -> None:
    # the same client's ID elsewhere is one identity (another client's ID: test_identity)
    resp = env.client.get(
        "/header",
        headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret},
        query_string={"client_id": env.cid, "client_secret": "ignored"},
    )
    assert resp.status_code == 200


# -- duplicates, conflicts, names ------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["id", "secret"])
@pytest.mark.parametrize("same_value", [False, True])
def test_a_key_sent_twice_is_refused(env: ClientEnv, loc: Loc, which: str, same_value: bool) -> None:
    other_id, other_secret = env.new_client()
    assert other_secret is not None
    if which == "id":
        second = env.cid if same_value else other_id
        pairs = [(loc.id_param, env.cid), (loc.id_param, second), (loc.secret_param, env.secret)]
    else:
        second = env.secret if same_value else other_secret
        pairs = [(loc.id_param, env.cid), (loc.secret_param, env.secret), (loc.secret_param, second)]
    resp = loc.send(env.client, f"/{loc.name}", pairs)
    label = "Client ID" if which == "id" else "Client secret"
    assert_failure(resp, 401, f"{label} sent more than once")


def test_comma_joined_header_is_a_duplicate(env: ClientEnv) -> None:
    resp = env.client.get(
        "/header", headers={"X-IBM-Client-Id": f"{env.cid},{env.cid}", "X-IBM-Client-Secret": env.secret}
    )
    assert_failure(resp, 401, "Client ID sent more than once")
    resp = env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": f"{env.secret}, x"})
    assert_failure(resp, 401, "Client secret sent more than once")


def test_two_clients_in_two_alternatives_are_refused(env: ClientEnv) -> None:
    other_id, other_secret = env.new_client()
    assert other_secret is not None
    resp = env.client.get(
        "/either",
        headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret},
        query_string={"client_id": other_id, "client_secret": other_secret},
    )
    assert_failure(resp, 401, "Credentials of more than one client sent")


def test_either_alternative_works_alone_and_together_for_one_client(env: ClientEnv) -> None:
    h = {"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}
    q = {"client_id": env.cid, "client_secret": env.secret}
    assert env.client.get("/either", headers=h).status_code == 200
    assert env.client.get("/either", query_string=q).status_code == 200
    assert env.client.get("/either", headers=h, query_string=q).status_code == 200
    # the best attempt is reported: a wrong secret beats a missing ID in the other alternative
    resp = env.client.get("/either", headers={**h, "X-IBM-Client-Secret": "wrong"})
    assert_failure(resp, 401, "Client secret invalid")


@pytest.mark.parametrize("name", ["x-ibm-client-id", "X-IBM-CLIENT-ID", "X-Ibm-Client-Id", "x-IBM-client-ID"])
def test_header_names_are_case_insensitive(make_app: Any, name: str) -> None:
    spec = {**SPEC, "components": {"securitySchemes": {**SPEC["components"]["securitySchemes"]}}}
    spec["components"]["securitySchemes"]["hid"] = {**HID, "name": "X-IBM-Client-ID"}  # the tutorial's spelling
    env = make_env(make_app, spec)
    resp = env.client.get("/header", headers={name: env.cid, "x-ibm-client-secret": env.secret})
    assert resp.status_code == 200


def test_query_and_cookie_names_are_exact(env: ClientEnv) -> None:
    resp = env.client.get("/query", query_string={"CLIENT_ID": env.cid, "client_secret": env.secret})
    assert_failure(resp, 401, "Client ID missing")
    resp = env.client.get("/cookie", headers={"Cookie": f"App_Client_Id={env.cid}; app_client_secret={env.secret}"})
    assert_failure(resp, 401, "Client ID missing")


# -- the client's state ------------------------------------------------------------------------------


def test_disabled_client(env: ClientEnv, loc: Loc) -> None:
    env.store.set_enabled(env.cid, False)
    path = f"/{loc.name}"
    assert_failure(loc.send(env.client, path, loc.creds(env.cid, env.secret)), 403, "Client disabled")
    assert_failure(loc.send(env.client, path + "/id", loc.creds(env.cid)), 403, "Client disabled")
    # the secret is checked before anything else about the client is revealed
    assert_failure(loc.send(env.client, path, loc.creds(env.cid, "wrong")), 401, "Client secret invalid")
    assert_failure(loc.send(env.client, path, loc.creds(env.cid)), 401, "Client secret missing")
    env.store.set_enabled(env.cid, True)
    assert loc.send(env.client, path, loc.creds(env.cid, env.secret)).status_code == 200


def test_client_without_secret(env: ClientEnv, loc: Loc) -> None:
    cid, secret = env.new_client(with_secret=False)
    assert secret is None
    path = f"/{loc.name}"
    assert loc.send(env.client, path + "/id", loc.creds(cid)).get_json() == {"client_id": cid}
    assert_failure(loc.send(env.client, path, loc.creds(cid, "anything-at-all")), 401, "Client secret invalid")
    assert_failure(loc.send(env.client, path, loc.creds(cid, "")), 401, "Client secret missing")
    env.store.set_secret(cid, "an-operator-chosen-secret")
    assert loc.send(env.client, path, loc.creds(cid, "an-operator-chosen-secret")).status_code == 200


def test_optional_requirement(env: ClientEnv) -> None:
    assert env.client.get("/optional").get_json() == {"client_id": None}
    h = {"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}
    assert env.client.get("/optional", headers=h).get_json() == {"client_id": env.cid}
    assert_failure(
        env.client.get("/optional", headers={**h, "X-IBM-Client-Secret": "wrong"}), 401, "Client secret invalid"
    )
    assert_failure(env.client.get("/optional", headers={"X-IBM-Client-Id": env.cid}), 401, "Client secret missing")
    assert_failure(env.client.get("/optional", headers={"X-IBM-Client-Secret": env.secret}), 401, "Client ID missing")
    assert_failure(
        env.client.get("/optional", headers={**h, "X-IBM-Client-Id": OTHER_ID}), 401, "Client ID not registered"
    )
    env.store.set_enabled(env.cid, False)
    assert_failure(env.client.get("/optional", headers=h), 403, "Client disabled")


# -- response texts and handlers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "text"),
    [
        ({}, 401, "Invalid client id or secret."),
        ({"X-IBM-Client-Id": OTHER_ID, "X-IBM-Client-Secret": "x"}, 401, "Invalid client id or secret."),
        ({"X-IBM-Client-Id": "{cid}"}, 401, "Invalid client id or secret."),
        ({"X-IBM-Client-Id": "{cid}", "X-IBM-Client-Secret": "wrong"}, 401, "Invalid client id or secret."),
        ({"X-IBM-Client-Id": "{cid},{cid}", "X-IBM-Client-Secret": "{secret}"}, 401, "Invalid client id or secret."),
        ({"X-IBM-Client-Id": "{cid}", "X-IBM-Client-Secret": "{secret}"}, 200, None),
    ],
)
def test_gateway_error_detail(make_app: Any, headers: dict[str, str], status: int, text: str | None) -> None:
    env = make_env(make_app, CLIENTAUTH_ERROR_DETAIL="gateway")
    filled = {k: v.format(cid=env.cid, secret=env.secret) for k, v in headers.items()}
    resp = env.client.get("/header", headers=filled)
    if status == 200:
        assert resp.status_code == 200
    else:
        assert_failure(resp, status, text or "")


def test_gateway_error_detail_keeps_403s_and_wrong_location(make_app: Any) -> None:
    env = make_env(make_app, CLIENTAUTH_ERROR_DETAIL="gateway")
    resp = env.client.get("/header", query_string={"X-IBM-Client-Id": env.cid})
    assert_failure(resp, 401, "Invalid client id or secret.")
    env.store.set_enabled(env.cid, False)
    resp = env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret})
    assert_failure(resp, 403, "Client disabled")


def test_bad_error_detail_is_refused(make_app: Any) -> None:
    with pytest.raises(RuntimeError, match="CLIENTAUTH_ERROR_DETAIL"):
        make_app(CLIENTAUTH_ERROR_DETAIL="verbose", create_tables=False)


def test_error_handler_replaces_the_response(env: ClientEnv) -> None:
    auth = env.app.extensions["test_auth"]
    seen: list[AuthFailure] = []

    @auth.error_handler
    def handle(failure: AuthFailure) -> Any:
        seen.append(failure)
        return jsonify(error=failure.code, message=failure.message), failure.status, {"WWW-Authenticate": "ApiKey"}

    resp = env.client.get("/header")
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "ApiKey"
    assert resp.get_json() == {"error": "client_id_missing", "message": "Client ID missing"}
    env.store.set_enabled(env.cid, False)
    resp = env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret})
    assert (resp.status_code, resp.get_json()) == (403, {"error": "client_disabled", "message": "Client disabled"})
    assert [f.status for f in seen] == [401, 403]
    assert env.secret not in repr(seen) and env.secret not in str(seen[-1])


def test_error_handler_may_return_a_plain_string(env: ClientEnv) -> None:
    env.app.extensions["test_auth"].error_handler(lambda failure: ("no entry", 401))
    resp = env.client.get("/header")
    assert (resp.status_code, resp.get_data(as_text=True)) == (401, "no entry")


def test_view_never_runs_when_refused(make_app: Any) -> None:
    app = make_app(spec=SPEC, routes=False)
    ran = []

    def header() -> str:
        ran.append(1)
        return "ran"

    app.add_url_rule("/header", "header", header)
    resp = app.test_client().get("/header", headers={"X-IBM-Client-Id": OTHER_ID, "X-IBM-Client-Secret": "x"})
    assert resp.status_code == 401 and ran == []


# -- revocation across processes, and the cost of a request ------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "text"),
    [
        ("reset_secret", 401, "Client secret invalid"),
        ("set_secret", 401, "Client secret invalid"),
        ("disable", 403, "Client disabled"),
        ("delete", 401, "Client ID not registered"),
    ],
)
def test_revocation_by_another_process(
    make_app: Any, database_url: str, other_process: ClientStore, action: str, status: int, text: str
) -> None:
    env = make_env(make_app, database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0)
    h = {"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}
    for _ in range(2):  # verified and cached
        assert env.client.get("/header", headers=h).status_code == 200
    new_secret = None
    if action == "reset_secret":
        _, new_secret = other_process.reset_secret(env.cid)
    elif action == "set_secret":
        new_secret = "chosen-by-the-operator-1"
        other_process.set_secret(env.cid, new_secret)
    elif action == "disable":
        other_process.set_enabled(env.cid, False)
    else:
        other_process.delete(env.cid)
    assert_failure(env.client.get("/header", headers=h), status, text)
    if new_secret is not None:
        assert env.client.get("/header", headers={**h, "X-IBM-Client-Secret": new_secret}).status_code == 200
    if action == "disable":
        other_process.set_enabled(env.cid, True)
        assert env.client.get("/header", headers=h).status_code == 200


def test_new_client_id_is_accepted_right_after_an_unknown_lookup(
    make_app: Any, database_url: str, other_process: ClientStore
) -> None:
    env = make_env(make_app, database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0)
    chosen = "partner-portal-key-0001"
    for _ in range(2):  # not registered, and remembered as such
        assert_failure(
            env.client.get("/header/id", headers={"X-IBM-Client-Id": chosen}), 401, "Client ID not registered"
        )
    other_process.create("Partner portal", client_id=chosen, with_secret=False)
    assert env.client.get("/header/id", headers={"X-IBM-Client-Id": chosen}).get_json() == {"client_id": chosen}


def test_at_most_one_lookup_and_one_bcrypt_per_request(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, other_process: ClientStore, database_url: str
) -> None:
    env = make_env(make_app, database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0)
    count = CallCounter(monkeypatch, env.store)
    h = {"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}
    assert env.client.get("/header", headers=h).status_code == 200
    assert count.take() == (1, 1)
    assert env.client.get("/header", headers=h).status_code == 200
    assert count.take() == (0, 0)  # verified before: from the cache
    assert env.client.get("/header", headers={**h, "X-IBM-Client-Secret": "wrong"}).status_code == 401
    assert count.take() == (0, 1)
    # a secret bcrypt refused before (for the same stored hash) is refused from memory
    assert env.client.get("/header", headers={**h, "X-IBM-Client-Secret": "wrong"}).status_code == 401
    assert count.take() == (0, 0)
    # the same secret offered to two alternatives is checked once
    two = {**h, "X-IBM-Client-Secret": "wrong2", "X-Other-Secret": "wrong2"}
    assert env.client.get("/two-secrets", headers=two).status_code == 401
    assert count.take() == (0, 1)
    # both alternatives of /either name the same client: one lookup
    q = {"client_id": env.cid, "client_secret": "wrong3"}
    assert env.client.get("/either", headers={"X-IBM-Client-Id": env.cid}, query_string=q).status_code == 401
    assert count.take() == (0, 1)
    # another process resets the secret: the poll re-reads the changed client (no per-request
    # lookup), the old secret's digest no longer counts, so one bcrypt refuses it
    other_process.reset_secret(env.cid)
    assert env.client.get("/header", headers=h).status_code == 401
    assert count.take() == (0, 1)
    for _ in range(2):
        assert env.client.get("/header", headers={**h, "X-IBM-Client-Id": OTHER_ID}).status_code == 401
        gets, bcrypts = count.take()
        assert gets <= 1 and bcrypts == 0
