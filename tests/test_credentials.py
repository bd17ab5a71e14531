"""Credential locations (header, query, cookie): one object each, and each key read once per request."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask

from flask_clientauth.credentials import RequestKeys
from flask_clientauth.locations import LOCATIONS, CookieLocation, HeaderLocation, Presented, QueryLocation, environ_key

from conftest import CID, HID, HSEC, QID, QSEC, AppFactory


def doc(security: list[dict[str, list[str]]]) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "cid": CID}},
        "paths": {"/api/branches": {"get": {"security": security, "responses": {"200": {"description": "ok"}}}}},
    }


def test_every_in_value_has_its_location_object(make_app: AppFactory) -> None:
    assert list(LOCATIONS) == ["header", "query", "cookie"]
    assert [type(v) for v in LOCATIONS.values()] == [HeaderLocation, QueryLocation, CookieLocation]
    schemes = make_app(spec=doc([{"hid": []}])).extensions["clientauth"].spec().schemes
    assert {name: s.where for name, s in schemes.items()} == {
        "hid": LOCATIONS["header"],
        "hsec": LOCATIONS["header"],
        "qid": LOCATIONS["query"],
        "qsec": LOCATIONS["query"],
        "cid": LOCATIONS["cookie"],
    }


@pytest.mark.parametrize(
    ("header", "key"),
    [("X-IBM-Client-Id", "HTTP_X_IBM_CLIENT_ID"), ("x-api-key", "HTTP_X_API_KEY"), ("Content-Type", "CONTENT_TYPE")],
)
def test_environ_key(header: str, key: str) -> None:
    assert environ_key(header) == key
    assert LOCATIONS["header"].environ_key(header) == key  # what the warm path reads
    assert LOCATIONS["query"].environ_key(header) is None and LOCATIONS["cookie"].environ_key(header) is None


@pytest.mark.parametrize(
    ("scheme", "request_args", "expected"),
    [
        (HID, {"headers": {"X-IBM-Client-Id": "a, b"}}, Presented("a, b", True, True, ("a", "b"))),
        (HID, {"headers": {"X-IBM-Client-Id": ""}}, Presented(None, False, True, ())),
        (HID, {}, Presented(None, False, False, ())),
        (QID, {"query_string": "client_id=&client_id=x&client_id=y"}, Presented("x", True, True, ("x", "y"))),
        (QID, {"query_string": "client_id="}, Presented(None, False, True, ())),
        (CID, {"headers": {"Cookie": "app_client_id=abc"}}, Presented("abc", False, True, ("abc",))),
    ],
)
def test_what_each_location_reads(scheme: dict[str, str], request_args: dict[str, Any], expected: Presented) -> None:
    with Flask("t").test_request_context("/", **request_args) as ctx:
        assert LOCATIONS[scheme["in"]].read(ctx.request, scheme["name"]) == expected


def test_a_cookie_with_a_stray_non_ascii_character_never_matches_the_real_value() -> None:
    """Werkzeug versions differ on a cookie ending in U+2028 (newer ones keep it, older ones strip
    it): either way the value read is marked, so it never equals the ID without the character."""
    with Flask("t").test_request_context("/", headers={"Cookie": "app_client_id=abc\u2028"}) as ctx:
        presented = LOCATIONS["cookie"].read(ctx.request, CID["name"])
        parsed = ctx.request.cookies["app_client_id"]
    assert parsed in ("abc\u2028", "abc")
    assert presented == Presented(parsed + "\x00", False, True, (parsed,))
    assert presented.value != "abc"


def test_each_key_and_each_location_is_read_once_per_request(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # optional, two alternatives, the ID nowhere and a secret in the query: every check looks at
    # the keys (one client, missing, sent elsewhere, anything sent) and each reads the request once
    app = make_app(spec=doc([{"hid": [], "hsec": []}, {"qid": [], "qsec": []}, {}]), routes=False)
    app.add_url_rule("/api/branches", "branches", lambda: "ok")
    reads: Counter[tuple[str, str]] = Counter()
    listings: Counter[str] = Counter()
    for location in LOCATIONS.values():
        cls = type(location)

        def read(self: Any, request: Any, param: str, _real: Any = cls.read) -> Presented:
            reads[(self.name, param)] += 1
            return _real(self, request, param)  # type: ignore[no-any-return]

        def names(self: Any, request: Any, _real: Any = cls.names) -> Any:
            listings[self.name] += 1
            return _real(self, request)

        monkeypatch.setattr(cls, "read", read)
        monkeypatch.setattr(cls, "names", names)
    response = app.test_client().get("/api/branches?client_secret=s", headers={"Cookie": "other=1"})
    assert response.status_code == 401  # a credential was sent: it must be valid
    assert reads and max(reads.values()) == 1, reads
    ids = {("header", "X-IBM-Client-Id"), ("query", "client_id"), ("cookie", "app_client_id")}
    assert set(reads) >= ids | {("header", "X-IBM-Client-Secret")}
    assert listings and max(listings.values()) == 1, listings


def test_credentials_refuse_a_key_sent_elsewhere(make_app: AppFactory) -> None:
    schemes = make_app(spec=doc([{"hid": []}])).extensions["clientauth"].spec().schemes
    with Flask("t").test_request_context("/?X-IBM-Client-Id=abc") as ctx:
        sent = RequestKeys(ctx.request)
        assert sent.sent_elsewhere(schemes["hid"])  # the header's name in the query (case-insensitive)
        assert not sent.sent_elsewhere(schemes["qid"])
        assert not sent.get(schemes["hid"]).sent
