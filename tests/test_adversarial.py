"""Hostile requests: malformed and oversized credentials, duplicates, routing tricks, leaks, modes.

Every answer must be a clear JSON refusal (never a 500, never a traceback, never the view),
cost no more than it must (store lookups and bcrypt checks are counted), and show no secret.
Tests that depend on how a database compares strings run on every backend (``database_url``).
"""

from __future__ import annotations

import copy
import logging
import math
import random
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

from flask_clientauth import current_client
from flask_clientauth.keys import BCRYPT_MAX_BYTES, RANDOM_LENGTH, generate_client_id, generate_secret
from flask_clientauth.models import CLIENT_ID_MAX

from conftest import (
    CID,
    CSEC,
    HID,
    HSEC,
    QID,
    QSEC,
    TUTORIAL_SPEC,
    AppFactory,
    ClientEnv,
    get_operation,
    leaked_values,
    location_paths,
)

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "adversarial", "version": "1"},
    "components": {"securitySchemes": {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "cid": CID, "csec": CSEC}},
    "security": [{"hid": [], "hsec": []}],
    "paths": {
        **location_paths(),
        "/any": get_operation([{"hid": [], "hsec": []}, {"qid": [], "qsec": []}, {"cid": [], "csec": []}]),
        "/any/id": get_operation([{"hid": []}, {"qid": []}, {"cid": []}]),
        "/items/{name}": get_operation([{"hid": [], "hsec": []}]),
    },
}

LOCATIONS = ("header", "query", "cookie")
PARAMS = {
    "header": ("X-IBM-Client-Id", "X-IBM-Client-Secret"),
    "query": ("client_id", "client_secret"),
    "cookie": ("app_client_id", "app_client_secret"),
}


def environ_for(location: str, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Raw WSGI environ entries carrying ``pairs`` as a server would pass them, any bytes included.

    The test client refuses CR/LF in headers; real clients and proxies send what they like, so the
    values go straight into the environ: headers as ``HTTP_*`` keys (repeats joined with ``", "``),
    query parameters percent-encoded, cookies as one raw ``Cookie`` header.
    """
    if location == "header":
        out: dict[str, str] = {}
        for name, value in pairs:
            key = "HTTP_" + name.upper().replace("-", "_")
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out
    if location == "query":
        return {"QUERY_STRING": "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs)}
    return {"HTTP_COOKIE": "; ".join(f"{k}={v}" for k, v in pairs)}


@dataclass
class Env(ClientEnv):
    """An app on ``SPEC`` with one registered client, counting store lookups and bcrypt checks."""

    views: list[str] = field(default_factory=list)

    def send(self, location: str, path: str, pairs: list[tuple[str, str]], **kw: Any) -> Any:
        return self.client.get(path, environ_overrides=environ_for(location, pairs), **kw)

    def creds(self, location: str, cid: str | None, secret: str | None = None) -> list[tuple[str, str]]:
        id_name, secret_name = PARAMS[location]
        pairs = [(id_name, cid)] if cid is not None else []
        return pairs + ([(secret_name, secret)] if secret is not None else [])


def make_env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any] = SPEC, **config: Any) -> Env:
    config.setdefault("CLIENTAUTH_REVOCATION_INTERVAL", 0)
    config.setdefault("CLIENTAUTH_RATELIMIT_ENABLED", False)  # throttling has its own tests
    env = Env.of(make_app(spec=spec, routes=False, **config), monkeypatch)

    def view(**kwargs: Any) -> Any:
        env.views.append(request.path)
        return jsonify(client_id=current_client.client_id if current_client else None)

    for path in spec["paths"]:
        env.app.add_url_rule(re.sub(r"\{(\w+)\}", r"<\1>", path), path, view)
    return env


@pytest.fixture
def env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    return make_env(make_app, monkeypatch)


def assert_refused(resp: Any, status: int = 401, text: str | None = None) -> dict[str, str]:
    """A JSON refusal in API Connect's shape (``text``: the expected ``moreInformation``)."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"httpCode", "httpMessage", "moreInformation"}
    assert body["httpCode"] == str(status)
    if text is not None:
        assert body["moreInformation"] == text
    return body  # type: ignore[no-any-return]


RAW_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def assert_log_lines_are_clean(caplog: pytest.LogCaptureFixture) -> None:
    """No log line of ours carries a raw control character (CR/LF could forge log lines)."""
    for record in caplog.records:
        if record.name.startswith("flask_clientauth"):
            assert not RAW_CONTROL.search(record.getMessage()), record.getMessage()


# -- hostile client IDs -------------------------------------------------------------------------


def hostile_ids(cid: str) -> dict[str, tuple[str, bool]]:
    """name -> (value sent as the client ID, whether it may reach the store)."""
    return {
        "whitespace-only": (" \t ", False),
        "leading-space": (" " + cid, False),
        "trailing-space": (cid + " ", False),
        "trailing-tab": (cid + "\t", False),
        "nul-inside": (cid[:8] + "\x00" + cid[8:], False),
        "trailing-nul": (cid + "\x00", False),
        "crlf-injection": (cid + "\r\nX-Injected: yes", False),
        "lone-lf": (cid + "\n", False),
        "ansi-escape": ("\x1b[31m" + cid, False),
        "del-char": (cid + "\x7f", False),
        "non-ascii": ("\u00e9" * 8, False),
        "fullwidth-digits": ("\uff10" * 32, False),
        "line-separator": (cid + "\u2028", False),
        "upper-case": (cid.upper(), True),
        "sql-or": ("'OR'1'='1'--", True),
        "sql-stacked": ("x';DROP-TABLE-clientauth_clients;--", True),
        "sql-double-quote": ('"OR""="', True),
        "like-percent": ("%", True),
        "like-underscores": ("_" * len(cid), True),
        "like-prefix": (cid[:8] + "%", True),
        "like-one-char": (cid[:-1] + "_", True),
        "backslash": (cid[:-1] + "\\", True),
        "too-long-by-one": ("a" * (CLIENT_ID_MAX + 1), False),
        "kilobytes": ("a" * 8192, False),
    }


@pytest.mark.parametrize("location", LOCATIONS)
def test_hostile_client_ids(env: Env, location: str, caplog: pytest.LogCaptureFixture) -> None:
    for name, (value, may_reach_store) in hostile_ids(env.cid).items():
        if location == "cookie" and any(c in value for c in ';," \t'):
            continue  # not one cookie value; the split parts are covered by the other cases
        for route, secret in ((f"/{location}", env.secret), (f"/{location}/id", None)):
            resp = env.send(location, route, env.creds(location, value, secret))
            assert resp.status_code == 401, (name, route, resp.get_data(as_text=True))
            assert_refused(resp)
            gets, bcrypts = env.take()
            assert bcrypts == 0, name
            assert gets <= (1 if may_reach_store else 0), (name, route, gets)
    assert env.views == []
    assert_log_lines_are_clean(caplog)
    # the valid ID still works after all that (nothing was poisoned or cached wrongly)
    assert env.send(location, f"/{location}", env.creds(location, env.cid, env.secret)).status_code == 200


def test_oversized_ids_never_touch_the_store_or_the_negative_cache(env: Env) -> None:
    cache = env.app.extensions["clientauth"].cache
    for size in (CLIENT_ID_MAX + 1, 1024, 16 * 1024, 256 * 1024):
        value = "k" * size
        for route in ("/header", "/header/id"):
            resp = env.client.get(route, headers={"X-IBM-Client-Id": value, "X-IBM-Client-Secret": env.secret})
            assert_refused(resp, 401, "Client ID not registered")
            assert env.take() == (0, 0)
        assert not cache.is_unknown(value)  # a flood of huge IDs cannot fill the memory either
    # at the limit the ID is looked up (once: then it is remembered as unknown)
    value = "k" * CLIENT_ID_MAX
    for _ in range(2):
        assert_refused(env.client.get("/header/id", headers={"X-IBM-Client-Id": value}), 401)
    assert env.take() == (1, 0)


# -- hostile secrets ----------------------------------------------------------------------------


def hostile_secrets(secret: str) -> dict[str, str]:
    return {
        "leading-space": " " + secret,
        "trailing-space": secret + " ",
        "trailing-tab": secret + "\t",
        "trailing-nul": secret + "\x00",
        "nul-inside": secret[:10] + "\x00" + secret[10:],
        "crlf": secret + "\r\n",
        "ansi-escape": "\x1b[0m" + secret,
        "non-ascii-append": secret + "\u00e9",
        "non-ascii": "\u00fc" * 20,
        "fullwidth": "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in secret),
        "line-separator": secret + "\u2028",
        "73-bytes": secret + "x" * (BCRYPT_MAX_BYTES + 1 - len(secret)),
        "kilobytes": secret + "x" * 8192,
        "megabyte": secret * 25_000,
    }


@pytest.mark.parametrize("location", LOCATIONS)
def test_hostile_secrets_are_refused_without_bcrypt(env: Env, location: str, caplog: pytest.LogCaptureFixture) -> None:
    """A value that cannot be a secret costs no bcrypt check, however long it is."""
    for name, value in hostile_secrets(env.secret).items():
        if location == "cookie" and any(c in value for c in ';," \t'):
            continue
        resp = env.send(location, f"/{location}", env.creds(location, env.cid, value))
        assert_refused(resp, 401, "Client secret invalid")
        gets, bcrypts = env.take()
        assert bcrypts == 0, name
        assert gets <= 1
    assert env.views == []
    assert_log_lines_are_clean(caplog)
    assert env.send(location, f"/{location}", env.creds(location, env.cid, env.secret)).status_code == 200


def test_other_letter_case_of_the_secret_is_invalid(env: Env) -> None:
    for variant in {env.secret.upper(), env.secret.lower(), env.secret.swapcase()} - {env.secret}:
        resp = env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": variant})
        assert_refused(resp, 401, "Client secret invalid")
    assert env.views == []


def test_a_valid_secret_with_bytes_appended_never_passes(env: Env) -> None:
    """bcrypt reads 72 bytes at most (bcrypt 4 silently ignored the rest): longer never matches."""
    exact = (string.ascii_letters + string.digits) * 2
    exact = exact[:BCRYPT_MAX_BYTES]
    env.store.set_secret(env.cid, exact)
    h = {"X-IBM-Client-Id": env.cid}
    assert env.client.get("/header", headers={**h, "X-IBM-Client-Secret": exact}).status_code == 200
    env.take()
    for extra in ("x", "0" * 10, exact):
        resp = env.client.get("/header", headers={**h, "X-IBM-Client-Secret": exact + extra})
        assert_refused(resp, 401, "Client secret invalid")
        assert env.take() == (0, 0)  # refused before hashing: its cost does not grow with its length
    # nor does a part of it
    assert_refused(env.client.get("/header", headers={**h, "X-IBM-Client-Secret": exact[:-1]}), 401)


# -- IDs compared exactly, on every database --------------------------------------------------------

CHOSEN_IDS = ("Partner_Key-01", "partner%key", "o'brien-key", "back\\slash-key")


def test_client_ids_are_exact_on_every_database(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """MariaDB's default collation ignores case and trailing spaces; SQL LIKE treats % and _ as
    wildcards; quotes and backslashes are SQL syntax. None of it may widen an ID match."""
    env = make_env(make_app, monkeypatch, database_url=database_url)
    for cid in CHOSEN_IDS:
        env.store.create("Chosen", client_id=cid, with_secret=False)
    for cid in CHOSEN_IDS:
        assert env.client.get("/header/id", headers={"X-IBM-Client-Id": cid}).get_json() == {"client_id": cid}
    near_misses = [
        "PARTNER_KEY-01",
        "partner_key-01",
        "Partner_Key-0_",
        "Partner%",
        "Partner_Key%01",
        "PartnerXKey-01",
        "partner_key",
        "partner%KEY",
        "O'BRIEN-KEY",
        "o''brien-key",
        "back\\\\slash-key",
        "back%slash-key",
        "%",
        "_" * len("Partner_Key-01"),
        "'OR'1'='1'--",
        env.cid.upper(),
    ]
    for value in near_misses:
        resp = env.client.get("/header/id", headers={"X-IBM-Client-Id": value})
        assert_refused(resp, 401, "Client ID not registered")
    # the same ID with its secret, in other letter cases, at the HTTP level on this database too
    for variant in (env.cid.upper(), env.cid[:1].upper() + env.cid[1:]):
        if variant != env.cid:
            resp = env.client.get("/header", headers={"X-IBM-Client-Id": variant, "X-IBM-Client-Secret": env.secret})
            assert_refused(resp, 401, "Client ID not registered")
    assert (
        env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}).status_code
        == 200
    )
    assert len(env.store.list()) == 1 + len(CHOSEN_IDS)  # nothing was dropped or added by SQL-shaped IDs


# -- percent-encodings and cookies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "raw"),
    [
        ("query", "client_id=%ZZ&client_secret=%G1"),
        ("query", "client_id=%C3&client_secret=%FF%FE"),
        ("query", "client_id=%00&client_secret=%0D%0A"),
        ("query", "client_id=%E2%80%AE{cid}&client_secret={secret}"),
        ("query", "client_id={cid}%&client_secret={secret}"),
        ("query", "client_id={cid}%2&client_secret={secret}"),
        ("query", "client_id=%{cid}&client_secret={secret}"),
        ("query", "client_id={cid}%00&client_secret={secret}"),
        ("query", "client_id={cid}&client_secret={secret}%0A"),
        ("query", "client_id={cid}&client_secret={secret}%C3%A9"),
        ("cookie", "app_client_id=%ZZ; app_client_secret=%C3"),
        ("cookie", "app_client_id={cid}%00; app_client_secret={secret}"),
        ("cookie", 'app_client_id="{cid}\\012"; app_client_secret={secret}'),
        ("cookie", 'app_client_id="\\303\\251"; app_client_secret={secret}'),
        ("cookie", "app_client_id={cid}\xe9; app_client_secret={secret}"),
        ("cookie", "app_client_id={cid}; app_client_secret={secret}\x00"),
        ("cookie", "app_client_id; app_client_secret={secret}"),
        ("cookie", "=; ;;; app_client_id==; app_client_secret="),
    ],
)
def test_malformed_query_and_cookie_encodings(
    env: Env, location: str, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = raw.format(cid=env.cid, secret=env.secret)
    key = "QUERY_STRING" if location == "query" else "HTTP_COOKIE"
    resp = env.client.get(f"/{location}", environ_overrides={key: raw})
    assert_refused(resp, 401)
    assert env.take()[1] == 0
    assert env.views == []
    assert_log_lines_are_clean(caplog)


# -- log lines ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        "x%0D%0Aclientauth:%20GET%20ok%20-%3E%20200%20OK",
        "x%0Aforged",
        "%1B%5B2J%1B%5B31mred",
        "nul%00byte",
        "x%E2%80%A8y%C2%85z",
        "%22%27quotes%27%22",
    ],
)
def test_log_lines_escape_the_path_they_echo(env: Env, caplog: pytest.LogCaptureFixture, tail: str) -> None:
    resp = env.client.get(f"/items/{tail}")
    assert_refused(resp, 401, "Client ID missing")
    ours = [r for r in caplog.records if r.name == "flask_clientauth" and "/items/" in r.getMessage()]
    assert ours, "the refusal is logged"
    for record in ours:
        message = record.getMessage()
        assert not RAW_CONTROL.search(message), message
        assert "forged\n" not in message and "\r" not in message


def test_hostile_values_never_reach_a_log_line_raw(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Whatever the headers, the extension's log lines stay one line each and quote no credential."""
    for value in ("a\r\nclientauth: forged line", "\x1b]0;title\x07", "\x00" * 10):
        env.send("header", "/items/x", env.creds("header", value, value + env.secret))
        env.send("query", "/items/x%0d%0aforged", env.creds("query", value, value))
    records = [r for r in caplog.records if r.name == "flask_clientauth"]
    assert records
    for record in records:
        message = record.getMessage()
        assert "\n" not in message and "\r" not in message and "\x1b" not in message and "\x00" not in message
        assert env.secret not in message


# -- duplicates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("which", ["id", "secret"])
def test_the_same_valid_credential_twice_is_refused_before_any_lookup(env: Env, location: str, which: str) -> None:
    """Both copies valid and identical still means a request was tampered with: refused, at no cost."""
    id_name, secret_name = PARAMS[location]
    pairs = [(id_name, env.cid), (secret_name, env.secret)]
    pairs.append((id_name, env.cid) if which == "id" else (secret_name, env.secret))
    label = "Client ID" if which == "id" else "Client secret"
    resp = env.send(location, f"/{location}", pairs)
    assert_refused(resp, 401, f"{label} sent more than once")
    if which == "id":
        assert env.take() == (0, 0)
        resp = env.send(location, f"/{location}/id", pairs[:1] + pairs[2:])
        assert_refused(resp, 401, "Client ID sent more than once")
    assert env.take()[1] == 0
    assert env.views == []


@pytest.mark.parametrize("joined", ["{v},{v}", "{v}, {v}", "{v} ,{v}", ",{v}", "{v},"])
def test_header_joins_as_servers_make_them_are_duplicates(env: Env, joined: str) -> None:
    """Gunicorn joins repeated headers with ",", Werkzeug with ", "; either way the value is refused."""
    for which in ("id", "secret"):
        cid = joined.format(v=env.cid) if which == "id" else env.cid
        secret = joined.format(v=env.secret) if which == "secret" else env.secret
        resp = env.client.get(
            "/header", environ_overrides={"HTTP_X_IBM_CLIENT_ID": cid, "HTTP_X_IBM_CLIENT_SECRET": secret}
        )
        assert resp.status_code == 401
        assert env.take()[1] == 0
    assert env.views == []


def test_two_cookie_headers_joined_by_a_server_never_authenticate(env: Env) -> None:
    for raw in (
        f"app_client_id={env.cid}, app_client_id={env.cid}; app_client_secret={env.secret}",
        f"app_client_id={env.cid},app_client_id={env.cid}; app_client_secret={env.secret}",
        f"app_client_id={env.cid}; app_client_secret={env.secret}, app_client_secret={env.secret}",
        f"app_client_id={env.cid}; app_client_secret={env.secret}; app_client_id={env.cid}",
    ):
        assert_refused(env.client.get("/cookie", environ_overrides={"HTTP_COOKIE": raw}), 401)
    assert env.views == []


PAIRS = [("header", "query"), ("header", "cookie"), ("query", "cookie")]


@pytest.mark.parametrize(("first", "second"), PAIRS)
@pytest.mark.parametrize("route", ["/any", "/any/id"])
def test_two_clients_in_two_locations_authenticate_as_neither(env: Env, first: str, second: str, route: str) -> None:
    other, other_secret = env.store.create("Other app")
    assert other_secret is not None
    with_secret = route == "/any"
    environ = {
        **environ_for(first, env.creds(first, env.cid, env.secret if with_secret else None)),
        **environ_for(second, env.creds(second, other.client_id, other_secret if with_secret else None)),
    }
    resp = env.client.get(route, environ_overrides=environ)
    assert_refused(resp, 401, "Credentials of more than one client sent")
    assert env.take() == (0, 0)  # refused before any lookup or hash check
    # one client's credentials alone in either location work; the other location's alone too
    for location, cid, secret in ((first, env.cid, env.secret), (second, other.client_id, other_secret)):
        resp = env.send(location, route, env.creds(location, cid, secret if with_secret else None))
        assert resp.get_json() == {"client_id": cid}


def test_one_clients_id_with_another_clients_secret(env: Env) -> None:
    other, other_secret = env.store.create("Other app")
    assert other_secret is not None
    for location in LOCATIONS:
        resp = env.send(location, f"/{location}", env.creds(location, env.cid, other_secret))
        assert_refused(resp, 401, "Client secret invalid")
        resp = env.send(location, f"/{location}", env.creds(location, other.client_id, env.secret))
        assert_refused(resp, 401, "Client secret invalid")
    # the same, spread over two alternatives: each alternative is checked on its own
    environ = {
        **environ_for("header", env.creds("header", env.cid, other_secret)),
        **environ_for("query", env.creds("query", env.cid, env.secret)),
    }
    # one client ID in both places, and one alternative carries its valid secret: that one authenticates
    assert env.client.get("/any", environ_overrides=environ).get_json() == {"client_id": env.cid}


def test_the_cost_is_bounded_whatever_the_alternatives(env: Env) -> None:
    """One ID in three locations, one wrong secret in three: one lookup and one bcrypt check."""
    env.app.extensions["clientauth"].cache.clear()
    environ: dict[str, str] = {}
    for location in LOCATIONS:
        environ.update(environ_for(location, env.creds(location, env.cid, "wrong-secret-value")))
    resp = env.client.get("/any", environ_overrides=environ)
    assert_refused(resp, 401, "Client secret invalid")
    assert env.take() == (1, 1)
    # three different wrong secrets: one bcrypt each, still one lookup
    environ = {}
    for n, location in enumerate(LOCATIONS):
        environ.update(environ_for(location, env.creds(location, env.cid, f"wrong-secret-{n}")))
    assert_refused(env.client.get("/any", environ_overrides=environ), 401, "Client secret invalid")
    assert env.take() == (0, 3)


# -- routing tricks --------------------------------------------------------------------------------------

ROUTING_SPEC: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "routing", "version": "1"},
    "basePath": "/api",
    "securityDefinitions": {"hid": HID, "hsec": HSEC},
    # public by default: a request that escaped its operation's requirement would get through
    "security": [],
    "paths": {
        "/branches": {"get": {"security": [{"hid": [], "hsec": []}], "responses": {"200": {"description": "ok"}}}},
        "/items": {"get": {"security": [{"hid": [], "hsec": []}], "responses": {"200": {"description": "ok"}}}},
        "/open/branches": {"get": {"responses": {"200": {"description": "public"}}}},
    },
}


@pytest.fixture
def routed(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    app = make_app(spec=ROUTING_SPEC, routes=False, CLIENTAUTH_RATELIMIT_ENABLED=False)
    store = app.extensions["clientauth"].store
    record, secret = store.create("Branch mobile app")
    assert secret is not None
    env = Env(app, app.test_client(use_cookies=False), store, record.client_id, secret)

    def branches() -> Any:
        env.views.append(f"{request.method} {request.path}")
        return jsonify(client_id=current_client.client_id if current_client else None, data="branch list")

    # one view under a protected and a public rule: the decision follows the rule, not the view
    app.add_url_rule("/api/branches", "branches", branches)
    app.add_url_rule("/api/open/branches", "open_branches", branches)
    app.add_url_rule("/api/items/", "items", branches)  # the rule has a trailing slash, the spec not
    return env


TRICKS = [
    ("HEAD", "/api/branches", {}),
    ("GET", "/api/%62ranches", {}),
    ("GET", "/api/branche%73", {}),
    ("GET", "/api/items/", {}),
]


@pytest.mark.parametrize(("method", "path", "headers"), TRICKS)
def test_routing_tricks_reach_the_matched_rules_requirement(
    routed: Env, method: str, path: str, headers: dict[str, str]
) -> None:
    resp = routed.client.open(path, method=method, headers=headers)
    assert resp.status_code == 401
    if method != "HEAD":
        assert_refused(resp, 401, "Client ID missing")
    assert routed.views == []
    good = {**headers, "X-IBM-Client-Id": routed.cid, "X-IBM-Client-Secret": routed.secret}
    assert routed.client.open(path, method=method, headers=good).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/branches/", "//api/branches", "/api//branches", "/api/./branches", "/api/x/../branches", "/API/branches",
     "/api/branches%2F", "/api/branches%00", "/api/branches;x", "/api/items", "/api/items%2F", "/api/Items/"],
)  # fmt: skip
def test_path_variants_never_reach_the_view_without_credentials(routed: Env, path: str) -> None:
    for method in ("GET", "HEAD", "POST"):
        resp = routed.client.open(path, method=method)
        assert resp.status_code in (301, 308, 401, 404, 405), (method, path, resp.status_code)
        if resp.status_code in (301, 308):  # a redirect points at a rule that is itself protected
            location = resp.headers["Location"].replace("http://localhost", "")
            assert routed.client.open(location, method=method).status_code in (401, 404, 405)
    assert routed.views == []


def test_options_never_runs_a_protected_view(routed: Env) -> None:
    """``OPTIONS`` is decided like any method of the matched rule: here the document does not describe
    it and its global requirement is public, so Flask's automatic answer (the allowed methods, no
    data) is given; a CORS preflight header does not open the actual method."""
    for headers in ({}, {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}):
        resp = routed.client.options("/api/branches", headers=headers)
        assert resp.status_code == 200 and resp.get_data() == b""
        assert set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert routed.views == []
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    assert routed.client.get("/api/branches", headers=preflight).status_code == 401


def test_the_same_view_under_a_public_rule_is_public_only_there(routed: Env) -> None:
    assert routed.client.get("/api/open/branches").get_json() == {"client_id": None, "data": "branch list"}
    assert routed.client.get("/api/branches").status_code == 401
    assert routed.views == ["GET /api/open/branches"]


# -- leaks --------------------------------------------------------------------------------------------


def every_refusal(env: Env) -> Iterator[Any]:
    """One request of each refusal kind, with the real secret somewhere in most of them."""
    s, c = env.secret, env.cid
    yield env.client.get("/header")
    yield env.client.get("/header", headers={"X-IBM-Client-Secret": s})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c})
    yield env.client.get("/header", query_string={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": s})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c}, query_string={"X-IBM-Client-Secret": s})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": f"{s},{s}"})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": generate_client_id(), "X-IBM-Client-Secret": s})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": s + "x"})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": s * 3})
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": s[:-1]})
    yield env.client.get(
        "/any", headers={"X-IBM-Client-Id": c}, query_string={"client_id": "other", "client_secret": s}
    )
    env.store.set_enabled(c, False)
    yield env.client.get("/header", headers={"X-IBM-Client-Id": c, "X-IBM-Client-Secret": s})
    env.store.set_enabled(c, True)


def test_no_secret_or_hash_in_any_response_or_log(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    record = env.store.get(env.cid)
    assert record is not None and record.secret_hash
    hashed = record.secret_hash
    forbidden = (env.secret, hashed, hashed[7:29], hashed[29:])  # the hash, its salt, its checksum
    responses = list(every_refusal(env))
    assert len(responses) == 12
    for resp in responses:
        assert resp.status_code in (401, 403)
        dump = resp.get_data(as_text=True) + "".join(f"{k}: {v}\n" for k, v in resp.headers.items())
        for value in forbidden:
            assert value not in dump
    assert leaked_values(caplog.records, forbidden) == []


def test_reprs_and_exception_texts_never_hold_a_secret_or_hash(env: Env) -> None:
    """Every object a developer might print or a tracebacks might show (test_context covers the rest)."""
    from flask_clientauth.errors import AuthFailure

    state = env.app.extensions["clientauth"]
    h = {"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}
    assert env.client.get("/header", headers=h).status_code == 200  # now cached with its verified digest
    record = env.store.get(env.cid)
    assert record is not None and record.secret_hash
    entry = state.cache.get(env.cid)
    assert entry is not None and entry.verified
    failures: list[AuthFailure] = []
    env.app.extensions["test_auth"].error_handler(lambda f: (failures.append(f), ("no", 401))[1])
    env.client.get("/header", headers={**h, "X-IBM-Client-Secret": env.secret + "x"})
    env.client.get("/header", headers={**h, "X-IBM-Client-Secret": f"{env.secret},{env.secret}"})
    assert len(failures) == 2
    objects: list[Any] = [state, state.store, state.cache, entry, state.authenticator, state.throttle, record]
    objects += [state.table(), *failures, *(f.detail for f in failures), *(f.headers for f in failures)]
    texts = [t for o in objects for t in (repr(o), str(o))]
    texts += [repr(vars(o)) for o in (state.authenticator, state.cache) if hasattr(o, "__dict__")]
    for text_ in texts:
        assert env.secret not in text_
        assert record.secret_hash not in text_ and record.secret_hash[29:] not in text_
    # a refused operator-chosen secret: the error says why, never what
    bad = "Unusable secret with spaces and \u00e9"
    with pytest.raises(ValueError) as info:
        env.store.set_secret(env.cid, bad)
    assert bad not in str(info.value) and bad not in repr(info.value)
    with pytest.raises(ValueError) as info:
        env.store.set_secret(env.cid, "L" * 100)
    assert "L" * 20 not in str(info.value)


# -- generated secrets and the bcrypt cost -------------------------------------------------------------------


def test_generated_secrets_are_unpredictable_ascii_within_bcrypts_limit() -> None:
    generated = [generate_secret() for _ in range(10_000)]
    assert len(set(generated)) == len(generated)
    alphabet = set(string.ascii_letters + string.digits)
    prefix = "fcsk_"
    for secret in generated:
        assert secret.startswith(prefix) and set(secret[len(prefix) :]) <= alphabet
        assert len(secret.encode("ascii")) <= BCRYPT_MAX_BYTES
    # 256 random bits: the random part's length over a 62-character alphabet (the rest is a checksum)
    assert RANDOM_LENGTH * math.log2(len(alphabet)) >= 256
    # every random position varies (no counter)
    for position in range(len(prefix), len(prefix) + RANDOM_LENGTH):
        assert len({s[position] for s in generated[:2000]}) > 32
    # drawn from the OS's CSPRNG (``secrets``), not from ``random``: seeding ``random`` changes nothing
    random.seed(1234)
    first = (generate_secret(), generate_client_id())
    random.seed(1234)
    second = (generate_secret(), generate_client_id())
    assert first[0] != second[0] and first[1] != second[1]
    ids = {generate_client_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_default_bcrypt_cost_is_12(tmp_path: Any) -> None:
    """With nothing configured, chosen secrets' hashes use cost 12 (tests lower it only through the config key)."""
    from flask_clientauth import ClientAuth

    app = Flask("defaults", instance_path=str(tmp_path / "instance"))
    app.config["CLIENTAUTH_SPEC"] = TUTORIAL_SPEC
    ClientAuth(app)
    assert app.config["CLIENTAUTH_BCRYPT_ROUNDS"] == 12
    state = app.extensions["clientauth"]
    try:
        state.store.create_all()
        record, _ = state.store.create("Default cost")
        record = state.store.set_secret(record.client_id, "chosen-by-the-operator")
        assert record.secret_hash is not None and record.secret_hash.startswith("$2b$12$")
    finally:
        state.engine.dispose()


def test_the_log_check_fixture_catches_a_leak(
    env: Env, caplog: pytest.LogCaptureFixture, no_secret_in_logs: list[str]
) -> None:
    """The autouse fixture records generated and set secrets and their hashes, and its scan finds them
    in a message or in a logged traceback, whichever logger wrote it."""
    watched = no_secret_in_logs
    assert env.secret in watched
    chosen = "Operator-chosen-secret-1"
    env.store.set_secret(env.cid, chosen)
    record = env.store.get(env.cid)
    assert record is not None and record.secret_hash
    assert chosen in watched and record.secret_hash in watched
    logging.getLogger("flask_clientauth").debug("dump: %s", {"secret": env.secret})
    try:
        raise RuntimeError(f"bad row {record.secret_hash}")
    except RuntimeError:
        logging.getLogger("some.library").exception("failed")
    logging.getLogger("some.library").warning("clean line")
    found = leaked_values(caplog.records, watched)
    assert {v for _, v in found} >= {env.secret, record.secret_hash}
    assert {r.name for r, _ in found} == {"flask_clientauth", "some.library"}
    caplog.clear()  # this test leaked on purpose


# -- error detail modes ---------------------------------------------------------------------------------


def without_challenge(response: Any) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "WWW-Authenticate")


def test_gateway_mode_makes_every_401_byte_identical(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = copy.deepcopy(SPEC)
    spec["components"]["securitySchemes"]["bearer"] = {"type": "http", "scheme": "bearer"}
    spec["paths"]["/token"] = get_operation([{"bearer": []}])
    env = make_env(make_app, monkeypatch, spec, CLIENTAUTH_ERROR_DETAIL="gateway")
    env.app.extensions["test_auth"].scheme_handler("bearer")(
        lambda req: req.headers.get("Authorization") == "Bearer ok"
    )
    no_secret, _ = env.store.create("ID only", with_secret=False)
    responses = {
        "missing id": env.client.get("/header"),
        "missing secret": env.client.get("/header", headers={"X-IBM-Client-Id": env.cid}),
        "empty secret": env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": ""}),
        "wrong location": env.client.get("/header", query_string={"X-IBM-Client-Id": env.cid}),
        "secret wrong location": env.client.get(
            "/header", headers={"X-IBM-Client-Id": env.cid}, query_string={"client_secret": env.secret}
        ),
        "duplicate id": env.client.get("/header", headers=[("X-IBM-Client-Id", env.cid)] * 2),
        "duplicate secret": env.client.get(
            "/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": f"{env.secret},{env.secret}"}
        ),
        "conflict": env.client.get(
            "/any/id", headers={"X-IBM-Client-Id": env.cid}, query_string={"client_id": no_secret.client_id}
        ),
        "unknown id": env.client.get(
            "/header", headers={"X-IBM-Client-Id": generate_client_id(), "X-IBM-Client-Secret": "x" * 43}
        ),
        "unknown id only": env.client.get("/header/id", headers={"X-IBM-Client-Id": generate_client_id()}),
        "oversized id": env.client.get("/header/id", headers={"X-IBM-Client-Id": "i" * 5000}),
        "malformed id": env.client.get("/header/id", environ_overrides={"HTTP_X_IBM_CLIENT_ID": "a\r\nb"}),
        "wrong secret": env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": "wrong"}),
        "oversized secret": env.client.get(
            "/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": "s" * 500}
        ),
        "client without secret": env.client.get(
            "/header", headers={"X-IBM-Client-Id": no_secret.client_id, "X-IBM-Client-Secret": "s" * 43}
        ),
        "query wrong secret": env.client.get("/query", query_string={"client_id": env.cid, "client_secret": "nope"}),
        "cookie unknown": env.client.get("/cookie/id", headers={"Cookie": "app_client_id=unknown-client"}),
        "scheme handler refused": env.client.get("/token", headers={"Authorization": "Bearer bad"}),
    }
    assert env.client.get("/token", headers={"Authorization": "Bearer ok"}).status_code == 200
    first = responses["missing id"]
    assert first.get_json()["moreInformation"] == "Invalid client id or secret."
    challenges: dict[str, set[str | None]] = {}
    for cause, resp in responses.items():
        assert resp.status_code == 401, cause
        assert resp.get_data() == first.get_data(), cause
        assert without_challenge(resp) == without_challenge(first), cause
        challenges.setdefault(resp.request.path, set()).add(resp.headers.get("WWW-Authenticate"))
    # WWW-Authenticate names where the route takes the client ID: one value per route, whatever the cause
    assert all(len(values) == 1 for values in challenges.values()), challenges
    # the default mode tells them apart, which is what gateway mode gives up
    default = make_env(make_app, monkeypatch)
    texts = {
        default.client.get("/header").get_json()["moreInformation"],
        default.client.get("/header/id", headers={"X-IBM-Client-Id": generate_client_id()}).get_json()[
            "moreInformation"
        ],
        default.client.get("/header", headers={"X-IBM-Client-Id": default.cid, "X-IBM-Client-Secret": "x"}).get_json()[
            "moreInformation"
        ],
    }
    assert texts == {"Client ID missing", "Client ID not registered", "Client secret invalid"}


def test_store_rows_stay_intact_after_sql_shaped_ids(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """The statements bind values: SQL-shaped IDs read nothing, write nothing, break nothing."""
    env = make_env(make_app, monkeypatch, database_url=database_url)
    for value in (
        "x'; DELETE FROM clientauth_clients; --",
        "x'/**/OR/**/1=1--",
        'x"); DROP TABLE clientauth_events;--',
    ):
        env.client.get("/header/id", headers={"X-IBM-Client-Id": value.replace(" ", "/**/")})
        env.client.get("/query/id", query_string={"client_id": value})
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM clientauth_clients")).scalar() == 1
            assert conn.execute(text("SELECT COUNT(*) FROM clientauth_events")).scalar() == 1
    finally:
        engine.dispose()
    assert (
        env.client.get("/header", headers={"X-IBM-Client-Id": env.cid, "X-IBM-Client-Secret": env.secret}).status_code
        == 200
    )
