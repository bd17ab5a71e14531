"""Spec conformance: every rule of the seeds and every OpenAPI form, on 2.0, 3.0 and 3.1.

Each :class:`Case` is a small document, the expected start-up result (ok, or the text of the
:class:`SpecError` and whether ``init_app`` or ``auth.routes()`` raises it) and the expected
answers to requests that send the credentials present, absent, wrong and misplaced. Every case
runs on each OpenAPI version it lists, from a dict and (for the errors) from a YAML or JSON file.
Real-world documents live in ``tests/specs/conformance/``.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask, jsonify
from flask.testing import FlaskClient
from werkzeug.routing import BaseConverter

from flask_clientauth import ClientAuth, SpecError, current_client, load_spec

SPECS = Path(__file__).parent / "specs" / "conformance"

V2, V30, V31 = "2.0", "3.0.3", "3.1.0"
VERSIONS = (V2, V30, V31)
V3 = (V30, V31)

# -- the texts of the answers (README's error table) ------------------------------------------------

ID_MISSING = "Client ID missing"
SECRET_MISSING = "Client secret missing"
NOT_REGISTERED = "Client ID not registered"
SECRET_INVALID = "Client secret invalid"
DISABLED = "Client disabled"
CONFLICT = "Credentials of more than one client sent"
REJECTED = "Credentials rejected"
NOT_DESCRIBED = "Operation not described by the API definition"
UNSUPPORTED = "Security scheme not supported"
MISCONFIGURED = "API security is misconfigured"

# -- schemes --------------------------------------------------------------------------------------------


def key(where: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "apiKey", "in": where, "name": name, **extra}


HID, HSEC = key("header", "X-IBM-Client-Id"), key("header", "X-IBM-Client-Secret")
QID, QSEC = key("query", "client_id"), key("query", "client_secret")
CID, CSEC = key("cookie", "app_client_id"), key("cookie", "app_client_secret")
#: Non-apiKey schemes, by OpenAPI major version where their form differs.
OAUTH2 = {
    2: {"type": "oauth2", "flow": "application", "tokenUrl": "https://auth.example/token", "scopes": {}},
    3: {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://auth.example/token", "scopes": {}}}},
}
BASIC = {2: {"type": "basic"}, 3: {"type": "http", "scheme": "basic"}}
BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
OIDC = {"type": "openIdConnect", "openIdConnectUrl": "https://auth.example/.well-known/openid-configuration"}
MTLS = {"type": "mutualTLS"}

NOTSET: Any = object()


def major(version: str) -> int:
    return 2 if version == V2 else 3


def defs(version: str) -> str:
    """Where a version keeps its schemes, as error messages name it."""
    return "securityDefinitions" if version == V2 else "components.securitySchemes"


def document(
    version: str,
    schemes: Mapping[str, Any],
    paths: Mapping[str, Any],
    security: Any = NOTSET,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAPI ``version`` document. A scheme body ``{2: ..., 3: ...}`` is picked by major version."""
    m = major(version)
    bodies = {name: (body[m] if 2 in body else body) for name, body in schemes.items()}
    doc: dict[str, Any] = {"info": {"title": "conformance", "version": "1.0.0"}, "paths": dict(paths)}
    if m == 2:
        doc["swagger"] = "2.0"
        doc["securityDefinitions"] = bodies
    else:
        doc["openapi"] = version
        doc["components"] = {"securitySchemes": bodies}
    if security is not NOTSET:
        doc["security"] = security
    for k, v in (extra or {}).items():
        if k in ("components", "securityDefinitions") and k in doc:
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    return doc


def op(security: Any = NOTSET, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"responses": {"200": {"description": "ok"}}, **extra}
    if security is not NOTSET:
        out["security"] = security
    return out


def get(security: Any = NOTSET) -> dict[str, Any]:
    return {"get": op(security)}


# -- requests ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """A request and its expected answer. ``creds``: (location, name, token) triples, see :func:`tokens`."""

    path: str
    creds: tuple[tuple[str, str, str], ...]
    status: int
    text: str | None = None
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        sent = ", ".join(f"{w}:{n}={t}" for w, n, t in self.creds) or "nothing"
        extra = ", ".join(f"{k}: {v}" for k, v in self.headers)
        return f"{self.method} {self.path} with {sent}{' + ' + extra if extra else ''}"


def tokens(app: Flask) -> dict[str, str]:
    """Values the tokens of a :class:`Call` stand for: three registered clients and two fakes.

    ``ID``/``SECRET`` an enabled client, ``BARE`` a client without secret, ``OFF``/``OFFSECRET`` a
    disabled client, ``UNKNOWN`` an ID nobody has, ``WRONG`` a secret nobody has.
    """
    store = app.extensions["clientauth"].store
    full, secret = store.create("conformance app")
    bare, _ = store.create("id-only app", with_secret=False)
    off, off_secret = store.create("disabled app")
    store.set_enabled(off.client_id, False)
    assert secret is not None and off_secret is not None
    return {
        "ID": full.client_id,
        "SECRET": secret,
        "BARE": bare.client_id,
        "OFF": off.client_id,
        "OFFSECRET": off_secret,
        "UNKNOWN": "0123456789abcdef0123456789abcdef",
        "WRONG": "not-the-secret-of-anyone-0000",
    }


def send(client: FlaskClient, call: Call, values: Mapping[str, str]) -> Any:
    headers: list[tuple[str, str]] = list(call.headers)
    query: list[tuple[str, str]] = []
    cookies: list[str] = []
    for where, name, token in call.creds:
        value = values.get(token, token)
        if where == "header":
            headers.append((name, value))
        elif where == "query":
            query.append((name, value))
        else:
            cookies.append(f"{name}={value}")
    if cookies:
        headers.append(("Cookie", "; ".join(cookies)))
    return client.open(call.path, method=call.method, headers=headers, query_string=query)


def check_calls(app: Flask, calls: tuple[Call, ...]) -> None:
    values = tokens(app)
    client = app.test_client(use_cookies=False)
    for call in calls:
        resp = send(client, call, values)
        assert resp.status_code == call.status, f"{call}: {resp.status_code} {resp.get_data(as_text=True)}"
        if call.text is not None and call.method != "HEAD":  # a HEAD answer has no body
            assert resp.mimetype == "application/json", str(call)
            body = resp.get_json()
            assert body["httpCode"] == str(call.status), str(call)
            assert body["moreInformation"] == call.text, f"{call}: {body}"


@dataclass(frozen=True)
class Loc:
    """Where a route's keys live: the location and the two parameter names."""

    where: str
    id: str
    secret: str

    def at(self, name: str) -> str:
        words = {"header": "the header", "query": "the query parameter", "cookie": "the cookie"}
        return f"{words[self.where]} {name}"

    def i(self, token: str) -> tuple[str, str, str]:
        return (self.where, self.id, token)

    def s(self, token: str) -> tuple[str, str, str]:
        return (self.where, self.secret, token)


HEADER = Loc("header", "X-IBM-Client-Id", "X-IBM-Client-Secret")
QUERY = Loc("query", "client_id", "client_secret")
COOKIE = Loc("cookie", "app_client_id", "app_client_secret")


def matrix(
    path: str, loc: Loc, *, secret: bool = True, elsewhere: str = "query", documented: Loc | None = None
) -> tuple[Call, ...]:
    """Every combination of present, absent, wrong and misplaced credentials for one route.

    ``elsewhere`` is the location the misplaced credentials are sent in (under the same names);
    ``documented`` the names as the document spells them, which the error texts repeat.
    """
    said = documented or loc
    calls = [
        Call(path, (loc.i("ID"), loc.s("SECRET")), 200),
        Call(path, (), 401, ID_MISSING),
        Call(path, (loc.i("UNKNOWN"), loc.s("SECRET")), 401, NOT_REGISTERED),
        Call(path, (loc.i("OFF"), loc.s("OFFSECRET")), 403, DISABLED),
        Call(
            path,
            ((elsewhere, loc.id, "ID"), (elsewhere, loc.secret, "SECRET")),
            401,
            f"Client ID must be sent in {said.at(said.id)}",
        ),
    ]
    if secret:
        calls += [
            Call(path, (loc.i("ID"),), 401, SECRET_MISSING),
            Call(path, (loc.s("SECRET"),), 401, ID_MISSING),
            Call(path, (loc.i("ID"), loc.s("WRONG")), 401, SECRET_INVALID),
            Call(path, (loc.i("ID"), loc.s("OFFSECRET")), 401, SECRET_INVALID),  # another client's secret
            Call(path, (loc.i("BARE"), loc.s("SECRET")), 401, SECRET_INVALID),  # a client without secret
            Call(
                path,
                (loc.i("ID"), (elsewhere, loc.secret, "SECRET")),
                401,
                f"Client secret must be sent in {said.at(said.secret)}",
            ),
        ]
    else:
        calls += [
            Call(path, (loc.i("ID"),), 200),
            Call(path, (loc.i("BARE"),), 200),
            Call(path, (loc.i("ID"), loc.s("WRONG")), 200),  # no secret asked for: none checked
            Call(path, (loc.i("UNKNOWN"),), 401, NOT_REGISTERED),
        ]
    return tuple(calls)


# -- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A document, its start-up result and its answers.

    ``error``: a fragment of the :class:`SpecError` rule (``{defs}`` is the version's scheme
    section), raised by ``init_app`` (``when="init"``) or by ``auth.routes()`` (``when="routes"``).
    """

    id: str
    schemes: Mapping[str, Any] | Callable[[str], Mapping[str, Any]]
    paths: Mapping[str, Any] | Callable[[str], Mapping[str, Any]]
    security: Any = NOTSET
    versions: tuple[str, ...] = VERSIONS
    error: str | None = None
    when: str = "init"
    calls: tuple[Call, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    #: Schemes given a verifier that accepts ``Authorization: Bearer good``.
    handlers: tuple[str, ...] = ()
    #: Extra top-level keys by major version: ``{2: {"basePath": ...}, 3: {"servers": ...}}``.
    extra: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    #: Flask rules the document does not describe.
    undocumented: tuple[str, ...] = ()

    def doc(self, version: str) -> dict[str, Any]:
        schemes = self.schemes(version) if callable(self.schemes) else self.schemes
        paths = self.paths(version) if callable(self.paths) else self.paths
        return document(version, schemes, paths, self.security, self.extra.get(major(version)))


def whoami(**kwargs: Any) -> Any:
    return jsonify(client_id=current_client.client_id if current_client else None)


def flask_rule(prefix: str, path: str) -> str:
    return prefix + re.sub(r"\{([^}]+)\}", r"<\1>", path)


def add_routes(app: Flask, doc: dict[str, Any], undocumented: tuple[str, ...] = ()) -> None:
    """A Flask route for every operation of ``doc`` (under its first prefix), plus ``undocumented``."""
    methods: dict[str, set[str]] = {}
    for operation in load_spec(doc).operations:
        rule = flask_rule(operation.prefixes[0] if operation.prefixes else "", operation.path)
        methods.setdefault(rule, set()).add(operation.method)
    for i, (rule, verbs) in enumerate(sorted(methods.items())):
        app.add_url_rule(rule, f"op{i}", whoami, methods=sorted(verbs))
    for i, rule in enumerate(undocumented):
        app.add_url_rule(rule, f"undocumented{i}", whoami, methods=["GET", "POST"])


def bearer_good(request: Any) -> bool:
    return request.headers.get("Authorization") == "Bearer good"


def start(make_app: Any, case: Case, version: str, spec: Any = None) -> tuple[Flask, ClientAuth]:
    """Build the case's app: the document, its routes, its handlers."""
    doc = case.doc(version)
    app = make_app(spec=spec if spec is not None else doc, routes=False, **case.config)
    auth: ClientAuth = app.extensions["test_auth"]
    add_routes(app, doc, case.undocumented)
    for name in case.handlers:
        auth.scheme_handler(name)(bearer_good)
    return app, auth


GOOD = (("Authorization", "Bearer good"),)
BAD = (("Authorization", "Bearer bad"),)
HEADER_KEYS = {"hid": HID, "hsec": HSEC}


def _ref_schemes(version: str) -> dict[str, Any]:
    """Schemes that ``$ref`` other schemes (API Connect's Reference tab), a chain of two for the ID."""
    if major(version) == 3:
        base = "#/components/securitySchemes"
        return {
            "clientId": {"$ref": f"{base}/ibmClientId"},
            "ibmClientId": {"$ref": f"{base}/headerId", "description": "a reference to a reference"},
            "headerId": HID,
            "clientSecret": {"$ref": f"{base}/headerSecret"},
            "headerSecret": HSEC,
        }
    return {
        "clientId": {"$ref": "#/x-shared-schemes/ibmClientId"},
        "clientSecret": {"$ref": "#/x-shared-schemes/headerSecret"},
    }


_REF_EXTRA = {
    2: {
        "x-shared-schemes": {
            "ibmClientId": {"$ref": "#/x-shared-schemes/headerId"},
            "headerId": HID,
            "headerSecret": HSEC,
        },
        "parameters": {"itemId": {"name": "itemId", "in": "path", "required": True, "type": "integer"}},
        "x-path-items": {
            "item": {
                "parameters": [{"$ref": "#/parameters/itemId"}],
                "get": op(
                    parameters=[{"name": "fields", "in": "query", "type": "string"}, {"$ref": "#/parameters/itemId"}]
                ),
            }
        },
    },
    3: {
        "components": {
            "parameters": {"itemId": {"name": "itemId", "in": "path", "required": True, "schema": {"type": "integer"}}},
            "pathItems": {  # components.pathItems is 3.1; a 3.0 document may $ref anywhere
                "item": {
                    "parameters": [{"$ref": "#/components/parameters/itemId"}],
                    "get": op(
                        parameters=[
                            {"name": "fields", "in": "query", "schema": {"type": "string"}},
                            {"$ref": "#/components/parameters/itemId"},
                        ]
                    ),
                }
            },
        }
    },
}


def _ref_paths(version: str) -> dict[str, Any]:
    """A path item with path-level parameters, and a ``$ref``'d path item with ``$ref``'d parameters."""
    return {
        "/items": {"parameters": [{"name": "trace", "in": "header", "type": "string"}], "get": op()},
        "/items/{itemId}": {"$ref": "#/x-path-items/item" if major(version) == 2 else "#/components/pathItems/item"},
    }


OPTIONAL_CALLS = (
    Call("/offers", (), 200),
    Call("/offers", (HEADER.i("ID"), HEADER.s("SECRET")), 200),
    Call("/offers", (HEADER.i("ID"), HEADER.s("WRONG")), 401, SECRET_INVALID),  # never ignored
    Call("/offers", (HEADER.i("ID"),), 401, SECRET_MISSING),  # an ID alone is not anonymous
    Call("/offers", (HEADER.s("SECRET"),), 401, ID_MISSING),
    Call("/offers", (HEADER.i("UNKNOWN"), HEADER.s("SECRET")), 401, NOT_REGISTERED),
    Call("/offers", (HEADER.i("OFF"), HEADER.s("OFFSECRET")), 403, DISABLED),
    Call(
        "/offers",
        (QUERY.i("ID"), QUERY.s("SECRET")),  # misplaced credentials are refused, not ignored
        401,
        "Client ID must be sent in the header X-IBM-Client-Id",
    ),
    Call("/offers", (("query", "X-IBM-Client-Id", "ID"),), 401, "Client ID must be sent in the header X-IBM-Client-Id"),
    Call("/maybe-id", (), 200),
    Call("/maybe-id", (HEADER.i("ID"),), 200),
    Call("/maybe-id", (HEADER.i("BARE"),), 200),
    Call("/maybe-id", (HEADER.i("UNKNOWN"),), 401, NOT_REGISTERED),
    Call("/anonymous", (), 200),
    Call("/anonymous", (HEADER.i("UNKNOWN"),), 200),  # [{}] alone: public, nothing is checked
)


def _non_api_key_cases() -> list[Case]:
    """Unhandled oauth2 / http / openIdConnect / mutualTLS: start-up error, ``deny``, or a handler."""
    out = []
    kinds = [
        ("oauth2", OAUTH2, VERSIONS),
        ("basic", BASIC, VERSIONS),
        ("bearer", BEARER, V3),
        ("openIdConnect", OIDC, V3),
        ("mutualTLS", MTLS, (V31,)),
    ]
    for label, body, versions in kinds:
        schemes = {**HEADER_KEYS, "other": body}
        paths = {
            "/only": get([{"other": []}]),
            "/either": get([{"hid": []}, {"other": []}]),
            "/both": get([{"hid": [], "other": []}]),
            "/keys": get([{"hid": []}]),
        }
        out.append(
            Case(
                f"{label}-unhandled-fails-start-up",
                schemes,
                paths,
                versions=versions,
                error="security scheme(s) 'other' (",
                when="routes",
            )
        )
        out.append(
            Case(
                f"{label}-unhandled-deny",
                schemes,
                paths,
                versions=versions,
                config={"CLIENTAUTH_UNHANDLED_SCHEMES": "deny"},
                calls=(
                    Call("/only", (), 403, UNSUPPORTED),
                    Call("/only", (HEADER.i("ID"),), 403, UNSUPPORTED, headers=GOOD),
                    Call("/both", (HEADER.i("ID"),), 403, UNSUPPORTED, headers=GOOD),
                    Call("/either", (HEADER.i("ID"),), 200),
                    Call("/either", (), 401, ID_MISSING, headers=GOOD),  # only the apiKey alternative is left
                    Call("/either", (HEADER.i("UNKNOWN"),), 401, NOT_REGISTERED),
                    Call("/keys", (HEADER.i("ID"),), 200),
                ),
            )
        )
        out.append(
            Case(
                f"{label}-handled",
                schemes,
                paths,
                versions=versions,
                handlers=("other",),
                calls=(
                    Call("/only", (), 401, REJECTED),
                    Call("/only", (), 401, REJECTED, headers=BAD),
                    Call("/only", (), 200, headers=GOOD),
                    Call("/either", (HEADER.i("ID"),), 200),
                    Call("/either", (), 200, headers=GOOD),
                    Call("/either", (), 401, REJECTED, headers=BAD),  # the attempt that got furthest
                    Call("/both", (HEADER.i("ID"),), 401, REJECTED, headers=BAD),
                    Call("/both", (), 401, ID_MISSING, headers=GOOD),
                    Call("/both", (HEADER.i("UNKNOWN"),), 401, NOT_REGISTERED, headers=GOOD),
                    Call("/both", (HEADER.i("ID"),), 200, headers=GOOD),
                ),
            )
        )
    return out


CASES: list[Case] = [
    # ---- the seeds' rules: start-up fails naming the document and the rule --------------------------
    Case(
        "two-client-ids",
        {"hid": HID, "qid": QID},
        {"/items": get()},
        [{"hid": [], "qid": []}],
        error="global security, requirement #1: at most one client ID key per requirement (hid, qid)",
    ),
    Case(
        "two-client-ids-same-location",
        {"hid": HID, "hid2": key("header", "X-Partner-Id")},
        {"/items": get([{"hid": []}, {"hid": [], "hid2": []}])},
        error="operation GET /items, requirement #2: at most one client ID key per requirement (hid, hid2)",
    ),
    Case(
        "two-client-secrets",
        {"hsec": HSEC, "hsec2": key("header", "X-Other-Secret")},
        {"/items": get([{"hsec": [], "hsec2": []}])},
        error="at most one client secret key per requirement (hsec, hsec2)",
    ),
    Case(
        "three-api-keys",
        {"hid": HID, "hsec": HSEC, "qsec": QSEC},
        {"/items": get([{"hid": [], "hsec": [], "qsec": []}])},
        error="more than two API key schemes in one requirement (hid, hsec, qsec)",
    ),
    Case(
        "three-api-keys-by-x-key-type",
        {"a": key("header", "A", **{"x-key-type": "client_id"}), "b": key("header", "B"), "c": key("header", "C")},
        {"/items": get([{"a": [], "b": [], "c": []}])},
        error="more than two API key schemes in one requirement (a, b, c)",
    ),
    Case(
        "secret-without-id",
        HEADER_KEYS,
        {"/items": get([{"hsec": []}])},
        error="operation GET /items, requirement #1: client secret key 'hsec' is applied without a client ID key",
    ),
    Case(
        "secret-without-id-by-x-key-type",
        {"token": key("header", "X-Token", **{"x-key-type": "client_secret"})},
        {"/items": get()},
        [{"token": []}],
        error="client secret key 'token' is applied without a client ID key",
    ),
    Case(
        "id-header-secret-query",
        {"hid": HID, "qsec": QSEC},
        {"/items": get()},
        [{"hid": [], "qsec": []}],
        error="client ID (header) and client secret (query) must be sent in the same location",
    ),
    Case(
        "id-query-secret-header",
        {"qid": QID, "hsec": HSEC},
        {"/items": get([{"qid": [], "hsec": []}])},
        error="client ID (query) and client secret (header) must be sent in the same location",
    ),
    Case(
        "id-header-secret-cookie",
        {"hid": HID, "csec": CSEC},
        {"/items": get([{"hid": [], "csec": []}])},
        versions=V3,
        error="client ID (header) and client secret (cookie) must be sent in the same location",
    ),
    Case(
        "id-cookie-secret-query",
        {"cid": CID, "qsec": QSEC},
        {"/items": get([{"cid": [], "qsec": []}])},
        versions=V3,
        error="client ID (cookie) and client secret (query) must be sent in the same location",
    ),
    Case(
        "undefined-scheme-global",
        HEADER_KEYS,
        {"/items": get()},
        [{"hid": [], "nope": []}],
        error="global security, requirement #1: security scheme 'nope' is not defined",
    ),
    Case(
        "undefined-scheme-operation",
        HEADER_KEYS,
        {"/items": get([{"hid": []}, {"nope": []}])},
        error="operation GET /items, requirement #2: security scheme 'nope' is not defined",
    ),
    Case(
        "undefined-scheme-on-unserved-operation",  # documents are checked whole, not only what is routed
        HEADER_KEYS,
        {"/items": {"delete": op([{"ghost": []}])}},
        error="operation DELETE /items, requirement #1: security scheme 'ghost' is not defined",
    ),
    Case(
        "missing-name",
        {"hid": {"type": "apiKey", "in": "header"}},
        {"/items": get()},
        error="{defs}.hid: an apiKey scheme needs a non-empty 'name'",
    ),
    Case(
        "empty-name",
        {"hid": key("query", "")},
        {"/items": get()},
        error="{defs}.hid: an apiKey scheme needs a non-empty 'name'",
    ),
    Case(
        "cookie-in-2.0",
        {"cid": CID},
        {"/items": get()},
        versions=(V2,),
        error="securityDefinitions.cid: 'in: cookie' is not allowed for an apiKey in OpenAPI 2 (allowed: header, query)",
    ),
    Case(
        "in-path",
        {"pid": key("path", "client")},
        {"/items": get()},
        error="{defs}.pid: 'in: path' is not allowed for an apiKey",
    ),
    Case(
        "in-formData-2.0",
        {"fid": key("formData", "client_id")},
        {"/items": get()},
        versions=(V2,),
        error="'in: formData' is not allowed for an apiKey in OpenAPI 2",
    ),
    Case(
        "3.x-type-in-2.0",
        {"bearer": BEARER},
        {"/items": get()},
        versions=(V2,),
        error="securityDefinitions.bearer: unknown security scheme type 'http' for OpenAPI 2",
    ),
    Case(
        "2.0-type-in-3.x",
        {"basic": {"type": "basic"}},
        {"/items": get()},
        versions=V3,
        error="components.securitySchemes.basic: unknown security scheme type 'basic' for OpenAPI 3",
    ),
    Case(
        "mutualTLS-in-3.0",
        {"mtls": MTLS},
        {"/items": get()},
        versions=(V30,),
        error="components.securitySchemes.mtls: security scheme type 'mutualTLS' needs OpenAPI 3.1",
    ),
    # ---- where the keys live, each request combination -----------------------------------------------
    Case(
        "header-id-and-secret",
        HEADER_KEYS,
        {"/items": get()},
        [{"hid": [], "hsec": []}],
        calls=matrix("/items", HEADER),
    ),
    Case(
        "header-names-any-case",
        {"hid": key("header", "x-ibm-client-id"), "hsec": key("header", "X-IBM-CLIENT-SECRET")},
        {"/items": get()},
        [{"hid": [], "hsec": []}],
        # the requests use X-IBM-Client-Id / X-IBM-Client-Secret, the texts the document's spelling
        calls=matrix("/items", HEADER, documented=Loc("header", "x-ibm-client-id", "X-IBM-CLIENT-SECRET")),
    ),
    Case(
        "query-id-and-secret",
        {"qid": QID, "qsec": QSEC},
        {"/items": get()},
        [{"qid": [], "qsec": []}],
        calls=matrix("/items", QUERY, elsewhere="header"),
    ),
    Case(
        "cookie-id-and-secret",
        {"cid": CID, "csec": CSEC},
        {"/items": get()},
        [{"cid": [], "csec": []}],
        versions=V3,
        calls=matrix("/items", COOKIE, elsewhere="header"),
    ),
    Case("header-id-only", {"hid": HID}, {"/items": get([{"hid": []}])}, calls=matrix("/items", HEADER, secret=False)),
    Case(
        "query-id-only",
        {"qid": QID},
        {"/items": get([{"qid": []}])},
        calls=matrix("/items", QUERY, secret=False, elsewhere="cookie"),
    ),
    Case(
        "cookie-id-only",
        {"cid": CID},
        {"/items": get([{"cid": []}])},
        versions=V3,
        calls=matrix("/items", COOKIE, secret=False, elsewhere="query"),
    ),
    Case(
        "x-key-type-names",
        {
            "appKey": key("header", "X-App-Key", **{"x-key-type": "client_id"}),
            "appToken": key("header", "X-App-Token", **{"x-key-type": "client_secret"}),
        },
        {"/items": get()},
        [{"appKey": [], "appToken": []}],
        calls=matrix("/items", Loc("header", "X-App-Key", "X-App-Token")),
    ),
    Case(
        "header-or-query-alternatives",
        {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC},
        {"/items": get()},
        [{"hid": [], "hsec": []}, {"qid": [], "qsec": []}],
        calls=(
            Call("/items", (HEADER.i("ID"), HEADER.s("SECRET")), 200),
            Call("/items", (QUERY.i("ID"), QUERY.s("SECRET")), 200),
            Call("/items", (), 401, ID_MISSING),
            Call("/items", (HEADER.i("ID"), HEADER.s("WRONG")), 401, SECRET_INVALID),
            Call("/items", (QUERY.i("ID"), QUERY.s("WRONG")), 401, SECRET_INVALID),
            Call("/items", (HEADER.i("UNKNOWN"), HEADER.s("SECRET")), 401, NOT_REGISTERED),
            Call("/items", (QUERY.i("OFF"), QUERY.s("OFFSECRET")), 403, DISABLED),
            # one key in each location: neither alternative is complete
            Call("/items", (HEADER.i("ID"), QUERY.s("SECRET")), 401),
            # a right header pair wins over a wrong query secret for the same client
            Call("/items", (HEADER.i("ID"), HEADER.s("SECRET"), QUERY.i("ID"), QUERY.s("WRONG")), 200),
            Call("/items", (HEADER.i("ID"), HEADER.s("SECRET"), QUERY.i("BARE")), 401, CONFLICT),
        ),
    ),
    # ---- which requirement applies ----------------------------------------------------------------
    Case(
        "operation-overrides-global",
        HEADER_KEYS,
        {"/global": get(), "/id-only": get([{"hid": []}]), "/public": get([])},
        [{"hid": [], "hsec": []}],
        undocumented=("/internal",),
        calls=(
            Call("/public", (), 200),
            Call("/public", (HEADER.i("UNKNOWN"),), 200),  # public: nothing is checked
            Call("/id-only", (HEADER.i("ID"),), 200),
            Call("/global", (HEADER.i("ID"),), 401, SECRET_MISSING),
            Call("/global", (HEADER.i("ID"), HEADER.s("SECRET")), 200),
            Call("/internal", (HEADER.i("ID"),), 401, SECRET_MISSING),  # not described: the global requirement
            Call("/internal", (HEADER.i("ID"), HEADER.s("SECRET")), 200),
            Call("/internal", (HEADER.i("ID"), HEADER.s("SECRET")), 200, method="POST"),
        ),
    ),
    Case(
        "no-security-anywhere",
        HEADER_KEYS,
        {"/items": get()},
        undocumented=("/internal",),
        calls=(
            Call("/items", (), 200),
            Call("/internal", (HEADER.i("ID"), HEADER.s("SECRET")), 403, NOT_DESCRIBED),
        ),
    ),
    Case(
        "empty-global-security",
        HEADER_KEYS,
        {"/items": get([{"hid": []}])},
        [],
        undocumented=("/internal",),
        calls=(Call("/internal", (), 200), Call("/items", (), 401, ID_MISSING)),
    ),
    Case(
        "optional-security",  # {} is 3.x's; 2.0 documents written the same way are read the same way
        HEADER_KEYS,
        {
            "/offers": get([{"hid": [], "hsec": []}, {}]),
            "/maybe-id": get([{}, {"hid": []}]),
            "/anonymous": get([{}]),
        },
        [{"hid": [], "hsec": []}],
        calls=OPTIONAL_CALLS,
    ),
    # ---- $ref -------------------------------------------------------------------------------------
    Case(
        "ref-schemes-and-path-items-and-parameters",
        _ref_schemes,
        _ref_paths,
        [{"clientId": [], "clientSecret": []}],
        extra=_REF_EXTRA,
        calls=(*matrix("/items", HEADER), *matrix("/items/7", HEADER)),
    ),
    # ---- prefixes -----------------------------------------------------------------------------------
    Case(
        "base-path-or-server-path",
        HEADER_KEYS,
        {"/items": get([{"hid": []}])},
        [],
        extra={
            2: {"basePath": "/api/v1", "host": "api.example.com"},
            3: {"servers": [{"url": "https://api.example.com/api/v1"}, {"url": "http://localhost:8080/api/v1"}]},
        },
        undocumented=("/items",),
        calls=(
            Call("/api/v1/items", (), 401, ID_MISSING),
            Call("/api/v1/items", (HEADER.i("ID"),), 200),
            Call("/items", (), 200),  # not under the prefix: not the documented operation
        ),
    ),
    # ---- CLIENTAUTH_STRICT_NAMES: the DataPower Gateway (v5 compatible) naming table --------------------
    Case(
        "strict-header-names",
        HEADER_KEYS,
        {"/items": get()},
        [{"hid": [], "hsec": []}],
        config={"CLIENTAUTH_STRICT_NAMES": True},
        calls=matrix("/items", HEADER),
    ),
    Case(
        "strict-header-names-are-case-insensitive",
        {"hid": key("header", "X-IBM-CLIENT-ID"), "hsec": key("header", "x-ibm-client-secret")},
        {"/items": get()},
        [{"hid": [], "hsec": []}],
        config={"CLIENTAUTH_STRICT_NAMES": True},
        calls=(Call("/items", (HEADER.i("ID"), HEADER.s("SECRET")), 200),),
    ),
    Case(
        "strict-query-names",
        {"qid": QID, "qsec": QSEC, "hid": HID},
        {"/items": get([{"qid": [], "qsec": []}, {"hid": []}])},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        calls=(Call("/items", (QUERY.i("ID"), QUERY.s("SECRET")), 200), Call("/items", (HEADER.i("ID"),), 200)),
    ),
    Case(
        "strict-rejects-other-header-name",
        {"hid": key("header", "X-API-Key")},
        {"/items": get()},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="{defs}.hid: CLIENTAUTH_STRICT_NAMES requires the client_id key in the header to be named "
        "'X-IBM-Client-Id', not 'X-API-Key'",
    ),
    Case(
        "strict-rejects-unused-scheme-too",
        {"hid": HID, "spare": key("header", "X-IBM-Client-ID-2")},
        {"/items": get([{"hid": []}])},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="{defs}.spare: CLIENTAUTH_STRICT_NAMES requires the client_id key in the header",
    ),
    Case(
        "strict-query-names-are-exact",
        {"qid": key("query", "Client_Id")},
        {"/items": get()},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="requires the client_id key in the query to be named 'client_id', not 'Client_Id'",
    ),
    Case(
        "strict-rejects-header-name-in-query",
        {"qsec": key("query", "X-IBM-Client-Secret")},
        {"/items": get()},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="requires the client_secret key in the query to be named 'client_secret', not 'X-IBM-Client-Secret'",
    ),
    Case(
        "strict-checks-the-key-type",  # x-key-type cannot rename a v5 key
        {"hid": key("header", "X-IBM-Client-Id", **{"x-key-type": "client_secret"})},
        {"/items": get()},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="requires the client_secret key in the header to be named 'X-IBM-Client-Secret', not 'X-IBM-Client-Id'",
    ),
    Case(
        "strict-rejects-cookie",
        {"cid": key("cookie", "client_id")},
        {"/items": get()},
        versions=V3,
        config={"CLIENTAUTH_STRICT_NAMES": True},
        error="components.securitySchemes.cid: CLIENTAUTH_STRICT_NAMES allows API keys only in the header or "
        "query, not in the cookie",
    ),
    Case(
        "strict-leaves-other-scheme-types-alone",
        {**HEADER_KEYS, "oauth": OAUTH2},
        {"/items": get([{"hid": []}, {"oauth": []}])},
        config={"CLIENTAUTH_STRICT_NAMES": True},
        handlers=("oauth",),
        calls=(Call("/items", (HEADER.i("ID"),), 200), Call("/items", (), 200, headers=GOOD)),
    ),
    # ---- schemes that are not API keys ---------------------------------------------------------------
    *_non_api_key_cases(),
    Case(
        "unhandled-global-requirement-covers-undocumented-routes",
        {**HEADER_KEYS, "oauth": OAUTH2},
        {"/items": get([{"hid": []}])},
        [{"oauth": []}],
        undocumented=("/internal",),
        error="are not API keys and have no verifier; register one with @auth.scheme_handler('oauth'), or set CLIENTAUTH_UNHANDLED_SCHEMES = 'deny' to refuse what needs them\n    in 3 routes: GET, HEAD, OPTIONS /static/<path:filename>; OPTIONS /items; GET, HEAD, OPTIONS, POST /internal",
        when="routes",
    ),
    Case(
        "unhandled-global-requirement-deny",
        {**HEADER_KEYS, "oauth": OAUTH2},
        {"/items": get([{"hid": []}])},
        [{"oauth": []}],
        undocumented=("/internal",),
        config={"CLIENTAUTH_UNHANDLED_SCHEMES": "deny"},
        calls=(
            Call("/internal", (HEADER.i("ID"),), 403, UNSUPPORTED, headers=GOOD),
            Call("/internal", (), 403, UNSUPPORTED, method="POST"),
            Call("/items", (HEADER.i("ID"),), 200),
        ),
    ),
    Case(
        "unhandled-or-anonymous-deny",  # {} still lets anonymous callers in; the token is never verified
        {**HEADER_KEYS, "oauth": OAUTH2},
        {"/items": get([{"oauth": []}, {}]), "/keyed": get([{"oauth": []}, {"hid": []}, {}])},
        versions=V3,
        config={"CLIENTAUTH_UNHANDLED_SCHEMES": "deny"},
        calls=(
            Call("/items", (), 200),
            Call("/keyed", (), 200),
            Call("/keyed", (HEADER.i("ID"),), 200),
            Call("/keyed", (HEADER.i("UNKNOWN"),), 401, NOT_REGISTERED),
        ),
    ),
]


def _params() -> list[Any]:
    out = []
    for case in CASES:
        for version in case.versions:
            out.append(pytest.param(case, version, id=f"{case.id}-{version}"))
    return out


def _write(doc: dict[str, Any], tmp_path: Path, version: str) -> Path:
    """The document as a file: YAML for 2.0 and 3.1, JSON for 3.0 (both forms, every rule)."""
    if version == V30:
        path = tmp_path / "openapi.json"
        path.write_text(json.dumps(doc, indent=2))
    else:
        path = tmp_path / "openapi.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize(("case", "version"), _params())
def test_conformance(make_app: Any, tmp_path: Path, case: Case, version: str) -> None:
    if case.error is None:
        app, auth = start(make_app, case, version)
        rows = auth.routes(app)  # start-up succeeds: every route resolves
        assert rows
        check_calls(app, case.calls)
        return
    rule = case.error.format(defs=defs(version))
    if case.when == "init":
        for source, label in ((None, "<dict>"), ("file", None)):
            spec = None if source is None else str(_write(case.doc(version), tmp_path, version))
            with pytest.raises(SpecError) as info:
                start(make_app, case, version, spec=spec)
            assert info.value.source == (label or spec)
            assert rule in info.value.rule, info.value.rule
            assert str(info.value).startswith(f"{info.value.source}: ")
        return
    # the document loads; resolving the routes (start-up, or the first request) fails
    app, auth = start(make_app, case, version)
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert info.value.source == "<dict>"
    assert rule in info.value.rule, info.value.rule
    values = tokens(app)
    resp = app.test_client().get(next(iter(case.paths)), headers={"X-IBM-Client-Id": values["ID"]})
    assert (resp.status_code, resp.get_json()["moreInformation"]) == (503, MISCONFIGURED)


#: Cases that exist on one major version only, because the form exists only there.
VERSION_SPECIFIC = {
    "id-header-secret-cookie": "no cookie keys in 2.0",
    "id-cookie-secret-query": "no cookie keys in 2.0",
    "cookie-in-2.0": "cookie keys are 3.x's",
    "in-formData-2.0": "formData exists in 2.0 only",
    "3.x-type-in-2.0": "the type is 3.x's",
    "2.0-type-in-3.x": "the type is 2.0's",
    "mutualTLS-in-3.0": "mutualTLS is 3.1's",
    "cookie-id-and-secret": "no cookie keys in 2.0",
    "cookie-id-only": "no cookie keys in 2.0",
    "strict-rejects-cookie": "no cookie keys in 2.0",
    "unhandled-or-anonymous-deny": "{} is 3.x's",
    **{
        f"{kind}-{what}": "3.x scheme type"
        for kind in ("bearer", "openIdConnect", "mutualTLS")
        for what in ("unhandled-fails-start-up", "unhandled-deny", "handled")
    },
}


def test_every_rule_runs_on_both_major_versions() -> None:
    """The done-criterion of issue 3: each rule and form has cases on 2.0 and on 3.x."""
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert set(VERSION_SPECIFIC) <= set(ids)
    for case in CASES:
        if case.id not in VERSION_SPECIFIC:
            assert {major(v) for v in case.versions} == {2, 3}, case.id


# -- real-world documents ------------------------------------------------------------------------------


def _file_app(make_app: Any, name: str, rules: list[tuple[str, list[str]]], **config: Any) -> tuple[Flask, ClientAuth]:
    app = make_app(spec=str(SPECS / name), routes=False, **config)
    for i, (rule, methods) in enumerate(rules):
        app.add_url_rule(rule, f"r{i}", whoami, methods=methods)
    return app, app.extensions["test_auth"]


PETSTORE_ROUTES = [
    ("/v2/pet", ["POST", "PUT"]),
    ("/v2/pet/findByStatus", ["GET"]),
    ("/v2/pet/<int:petId>", ["GET", "POST", "DELETE"]),
    ("/v2/store/inventory", ["GET"]),
    ("/v2/store/order", ["POST"]),
    ("/v2/user/login", ["GET"]),
]


def test_petstore_without_oauth_verifier_fails_start_up_naming_every_operation(make_app: Any) -> None:
    app, auth = _file_app(make_app, "petstore-2.0.json", PETSTORE_ROUTES)  # init_app itself succeeds
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    message = str(info.value)
    assert message.startswith(str(SPECS / "petstore-2.0.json") + ": these routes cannot be enforced:\n")
    # one problem, said once, naming the five routes it affects
    assert "\n  - security scheme(s) 'petstore_auth' (oauth2) are not API keys" in message
    routes = message.split("\n    in 5 routes: ")[1].split("; ")
    assert sorted(routes) == sorted(
        [
            "POST /v2/pet (operation POST /pet)",
            "PUT /v2/pet (operation PUT /pet)",
            "GET, HEAD /v2/pet/findByStatus (operation GET /pet/findByStatus)",
            "POST /v2/pet/<int:petId> (operation POST /pet/{petId})",
            "DELETE /v2/pet/<int:petId> (operation DELETE /pet/{petId})",
        ]
    )  # GET /pet/{petId} (api_key), the inventory, the login: enforceable
    assert message.count("@auth.scheme_handler('petstore_auth')") == 1
    assert "CLIENTAUTH_UNHANDLED_SCHEMES = 'deny'" in message
    assert message.count("\n  - ") == 1


def test_petstore_with_oauth_verifier(make_app: Any) -> None:
    app, auth = _file_app(make_app, "petstore-2.0.json", PETSTORE_ROUTES)
    auth.scheme_handler("petstore_auth")(bearer_good)
    rows = {(r.method, r.rule): r for r in auth.routes(app)}
    assert rows[("GET", "/v2/pet/<int:petId>")].operation == "GET /pet/{petId}"
    assert rows[("GET", "/v2/pet/<int:petId>")].policy.describe() == "id"
    assert rows[("POST", "/v2/pet")].policy.describe() == "petstore_auth(oauth2, handled-by-app)"
    assert rows[("GET", "/v2/user/login")].policy.describe() == "public"
    api_key = Loc("header", "api_key", "unused")
    check_calls(
        app,
        (
            *matrix("/v2/pet/1", api_key, secret=False),
            *matrix("/v2/store/inventory", api_key, secret=False),
            Call("/v2/pet", (), 200, method="POST", headers=GOOD),
            Call("/v2/pet", (), 401, REJECTED, method="PUT", headers=BAD),
            Call("/v2/pet", (api_key.i("ID"),), 401, REJECTED, method="POST"),  # api_key is not accepted here
            Call("/v2/pet/1", (api_key.i("ID"),), 200, method="DELETE", headers=GOOD),
            Call("/v2/pet/findByStatus", (), 401, REJECTED),
            Call("/v2/store/order", (), 200, method="POST"),  # no security in the document: public
            Call("/v2/user/login", (), 200),
        ),
    )


def test_petstore_deny_keeps_the_api_key_operations(make_app: Any) -> None:
    app, auth = _file_app(make_app, "petstore-2.0.json", PETSTORE_ROUTES, CLIENTAUTH_UNHANDLED_SCHEMES="deny")
    rows = {(r.method, r.rule): r for r in auth.routes(app)}
    assert rows[("POST", "/v2/pet")].policy.describe() == "refused (needs petstore_auth: no handler)"
    api_key = Loc("header", "api_key", "unused")
    check_calls(
        app,
        (
            *matrix("/v2/pet/1", api_key, secret=False),
            Call("/v2/pet", (api_key.i("ID"),), 403, UNSUPPORTED, method="POST", headers=GOOD),
            Call("/v2/pet/1", (api_key.i("ID"),), 403, UNSUPPORTED, method="DELETE", headers=GOOD),
            Call("/v2/user/login", (), 200),
        ),
    )


BRANCHES_ROUTES = [
    ("/bank/v2/branches", ["GET", "POST"]),
    ("/bank/v2/branches/<int:branchId>", ["GET", "DELETE"]),
    ("/bank/v2/offers", ["GET"]),
    ("/bank/v2/status", ["GET"]),
]


def test_openapi_31_document(make_app: Any) -> None:
    app, auth = _file_app(make_app, "branches-3.1.yaml", BRANCHES_ROUTES)
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert "'partnerTls' (mutualTLS), 'staffToken' (http)" in str(info.value)
    auth.scheme_handler("staffToken")(bearer_good)
    auth.scheme_handler("partnerTls")(lambda request: request.environ.get("SSL_CLIENT_VERIFY") == "SUCCESS")
    rows = {(r.method, r.rule): r for r in auth.routes(app)}
    assert rows[("GET", "/bank/v2/branches/<int:branchId>")].operation == "GET /branches/{branchId}"
    assert rows[("GET", "/bank/v2/offers")].policy.describe() == "optional(id+secret)"
    spec = app.extensions["clientauth"].spec()
    assert spec.schemes["clientId"].param == "X-IBM-Client-Id"  # a $ref to a scheme is that scheme
    assert spec.schemes["clientSecret"].key_type == "client_secret"
    offers = tuple(
        Call("/bank/v2" + c.path, c.creds, c.status, c.text, c.method, c.headers)
        for c in OPTIONAL_CALLS
        if c.path == "/offers"
    )
    check_calls(
        app,
        (
            *matrix("/bank/v2/branches", HEADER),
            *matrix("/bank/v2/branches/3", HEADER, secret=False),
            *offers,
            Call("/bank/v2/branches", (HEADER.i("ID"), HEADER.s("SECRET")), 200, method="POST"),
            Call("/bank/v2/branches", (), 200, method="POST", headers=GOOD),
            # the staffToken attempt got further (its verifier said no) than the one missing a secret
            Call("/bank/v2/branches", (HEADER.i("ID"),), 401, REJECTED, method="POST"),
            Call("/bank/v2/branches/3", (), 200, method="DELETE", headers=GOOD),
            Call("/bank/v2/branches/3", (HEADER.i("ID"), HEADER.s("SECRET")), 401, REJECTED, method="DELETE"),
            Call("/bank/v2/status", (), 200),
        ),
    )


@pytest.mark.parametrize("name", ["header-or-query-2.0.json", "header-or-query-3.0.yaml"])
@pytest.mark.parametrize("form", ["as-is", "converted"])
def test_header_or_query_document(make_app: Any, tmp_path: Path, name: str, form: str) -> None:
    source = SPECS / name
    if form == "converted":  # the same document in the other format
        doc = json.loads(source.read_text()) if name.endswith(".json") else yaml.safe_load(source.read_text())
        source = tmp_path / (name.rsplit(".", 1)[0] + (".yaml" if name.endswith(".json") else ".json"))
        source.write_text(yaml.safe_dump(doc) if source.suffix == ".yaml" else json.dumps(doc))
    app = make_app(spec=str(source), routes=False)
    app.add_url_rule("/accounts/v1/accounts", "accounts", whoami)
    app.add_url_rule("/accounts/v1/accounts/<uuid:accountId>", "account", whoami)
    rows = {(r.method, r.rule): r for r in app.extensions["test_auth"].routes(app)}
    assert rows[("GET", "/accounts/v1/accounts")].policy.describe() == (
        "alternatives: id+secret (header) | id+secret (query)"
    )
    one = f"/accounts/v1/accounts/{uuid.UUID(int=5)}"
    check_calls(
        app,
        (
            Call("/accounts/v1/accounts", (HEADER.i("ID"), HEADER.s("SECRET")), 200),
            Call("/accounts/v1/accounts", (QUERY.i("ID"), QUERY.s("SECRET"), ("query", "page", "2")), 200),
            Call("/accounts/v1/accounts", (), 401, ID_MISSING),
            Call("/accounts/v1/accounts", (HEADER.i("ID"), HEADER.s("WRONG")), 401, SECRET_INVALID),
            Call("/accounts/v1/accounts", (QUERY.i("ID"), QUERY.s("WRONG")), 401, SECRET_INVALID),
            Call("/accounts/v1/accounts", (QUERY.i("ID"),), 401, SECRET_MISSING),
            Call("/accounts/v1/accounts", (HEADER.i("UNKNOWN"), HEADER.s("SECRET")), 401, NOT_REGISTERED),
            Call("/accounts/v1/accounts", (("cookie", "client_id", "ID"),), 401),
            Call(one, (HEADER.i("ID"),), 200),
            Call(one, (QUERY.i("BARE"),), 200),
            Call(one, (), 401, ID_MISSING),
            Call(one, (HEADER.i("ID"), QUERY.i("BARE")), 401, CONFLICT),
        ),
    )


# -- when the start-up check happens -------------------------------------------------------------------


def _oauth_doc(version: str = V30) -> dict[str, Any]:
    return document(
        version,
        {**HEADER_KEYS, "oauth": OAUTH2},
        {"/data": get([{"oauth": []}]), "/status": get([])},
        [{"hid": [], "hsec": []}],
    )


def test_scheme_handlers_may_be_registered_after_init_app(make_app: Any) -> None:
    app = make_app(spec=_oauth_doc(), routes=False)  # routes exist before the handler: no error yet
    app.add_url_rule("/data", "data", whoami)
    auth: ClientAuth = app.extensions["test_auth"]
    auth.scheme_handler("oauth")(bearer_good)
    auth.routes(app)
    assert app.test_client().get("/data", headers=dict(GOOD)).status_code == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_without_routes_call_the_first_request_checks_every_route_and_refuses_all(
    make_app: Any, caplog: pytest.LogCaptureFixture, version: str
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    app = make_app(spec=_oauth_doc(version), routes=False)
    app.add_url_rule("/data", "data", whoami)
    app.add_url_rule("/status", "status", whoami)
    client = app.test_client()
    for _ in range(3):  # even the public route: a failed start-up serves nothing
        resp = client.get("/status")
        assert (resp.status_code, resp.get_json()["moreInformation"]) == (503, MISCONFIGURED)
    assert client.get("/data", headers=dict(GOOD)).status_code == 503
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1  # logged once, not per request
    assert "GET, HEAD /data (operation GET /data): security scheme(s) 'oauth' (oauth2)" in critical[0].getMessage()


def test_routes_after_fixing_the_configuration_recovers(make_app: Any) -> None:
    app = make_app(spec=_oauth_doc(), routes=False)
    app.add_url_rule("/data", "data", whoami)
    auth: ClientAuth = app.extensions["test_auth"]
    with pytest.raises(SpecError):
        auth.routes(app)
    assert app.test_client().get("/data", headers=dict(GOOD)).status_code == 503
    auth.scheme_handler("oauth")(bearer_good)
    auth.routes(app)
    assert app.test_client().get("/data", headers=dict(GOOD)).status_code == 200


def test_bad_unhandled_mode_is_refused(make_app: Any) -> None:
    with pytest.raises(RuntimeError, match="CLIENTAUTH_UNHANDLED_SCHEMES must be 'error' or 'deny'"):
        make_app(CLIENTAUTH_UNHANDLED_SCHEMES="allow", create_tables=False)


def test_unenforceable_decorator_is_reported_with_its_route(make_app: Any) -> None:
    app = make_app(spec=_oauth_doc(), routes=False)
    auth: ClientAuth = app.extensions["test_auth"]
    app.add_url_rule("/report", "report", auth.require("hsec")(whoami))
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert "GET, HEAD, OPTIONS /report: @require on whoami, requirement #1: client secret key 'hsec'" in str(info.value)


# -- paths: converters, slashes, methods ---------------------------------------------------------------


class HexConverter(BaseConverter):
    regex = "[0-9a-f]+"

    def to_python(self, value: str) -> int:
        return int(value, 16)


PATHS = [
    # flask rule, URL, spec path
    ("/items/<hex:item>", "/items/ff", "/items/{item}"),
    ("/items/<hex:item>/parts/<int:part>", "/items/ff/parts/2", "/items/{itemId}/parts/{partId}"),
    ("/<any(cats, dogs):kind>/<uuid:pet>", f"/dogs/{uuid.UUID(int=1)}", "/{kind}/{petId}"),
    ("/files/<path:name>", "/files/a/b.txt", "/files/{name}"),
    ("/m/<float:lat>,<float:lon>", "/m/1.5,2.5", "/m/{lat},{lon}"),
    ("/slash/", "/slash/", "/slash"),
    ("/noslash", "/noslash", "/noslash/"),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("rule", "url", "spec_path"), PATHS)
def test_path_forms(make_app: Any, version: str, rule: str, url: str, spec_path: str) -> None:
    doc = document(version, HEADER_KEYS, {spec_path: get([{"hid": []}])}, [{"hid": [], "hsec": []}])
    app = make_app(spec=doc, routes=False)
    app.url_map.converters["hex"] = HexConverter
    app.add_url_rule(rule, "r", whoami)
    rows = {(r.method, r.rule): r for r in app.extensions["test_auth"].routes(app)}
    assert rows[("GET", rule)].operation == f"GET {spec_path}"
    check_calls(app, (Call(url, (HEADER.i("ID"),), 200), Call(url, (), 401, ID_MISSING)))


@pytest.mark.parametrize("version", VERSIONS)
def test_trailing_slash_redirect_happens_before_any_check(make_app: Any, version: str) -> None:
    app = make_app(spec=document(version, HEADER_KEYS, {"/slash/": get([{"hid": []}])}), routes=False)
    app.add_url_rule("/slash/", "slash", whoami)
    resp = app.test_client().get("/slash")
    assert resp.status_code == 308 and resp.headers["Location"].endswith("/slash/")  # Flask's, no credential needed
    check_calls(app, (Call("/slash/", (), 401, ID_MISSING),))


@pytest.mark.parametrize("version", VERSIONS)
def test_methods_head_and_options(make_app: Any, version: str) -> None:
    paths = {
        "/items": {"get": op([{"hid": []}]), "post": op()},
        "/cors": {"get": op([{"hid": []}]), "options": op([{"hid": []}])},
        "/heads": {"get": op(), "head": op([])},
    }
    app = make_app(spec=document(version, HEADER_KEYS, paths, [{"hid": [], "hsec": []}]), routes=False)
    app.add_url_rule("/items", "items", whoami, methods=["GET", "POST", "PATCH"])
    app.add_url_rule("/cors", "cors", whoami, methods=["GET", "OPTIONS"])
    app.add_url_rule("/heads", "heads", whoami)
    preflight = (("Origin", "https://web.example"), ("Access-Control-Request-Method", "GET"))
    check_calls(
        app,
        (
            Call("/items", (HEADER.i("ID"),), 200, method="HEAD"),  # HEAD follows the GET
            Call("/items", (), 401, ID_MISSING, method="HEAD"),
            Call("/items", (HEADER.i("ID"),), 401, SECRET_MISSING, method="POST"),  # the global requirement
            Call("/items", (HEADER.i("ID"),), 401, SECRET_MISSING, method="PATCH"),  # not listed: global
            Call("/items", (HEADER.i("ID"), HEADER.s("SECRET")), 200, method="PATCH"),
            Call("/items", (), 200, method="OPTIONS", headers=preflight),  # options not documented
            Call("/items", (), 401, ID_MISSING, method="OPTIONS"),  # a plain OPTIONS is no preflight
            Call("/cors", (), 401, ID_MISSING, method="OPTIONS", headers=preflight),  # documented: enforced
            Call("/cors", (HEADER.i("ID"),), 200, method="OPTIONS", headers=preflight),
            Call("/heads", (), 200, method="HEAD"),  # a documented HEAD wins over the GET
            Call("/heads", (), 401, ID_MISSING),
            Call("/items", (), 405, method="DELETE"),  # Flask's answer: no such route
        ),
    )


@pytest.mark.parametrize(("mode", "status"), [("allow", 200), ("enforce", 401)])
def test_preflight_modes_on_2_0(make_app: Any, mode: str, status: int) -> None:
    paths = {"/cors": {"get": op([{"hid": []}]), "options": op([{"hid": []}])}, "/items": get([{"hid": []}])}
    doc = document(V2, HEADER_KEYS, paths, [{"hid": []}])
    app = make_app(spec=doc, routes=False, CLIENTAUTH_CORS_PREFLIGHT=mode)
    app.add_url_rule("/cors", "cors", whoami, methods=["GET", "OPTIONS"])
    app.add_url_rule("/items", "items", whoami)
    preflight = (("Origin", "https://web.example"), ("Access-Control-Request-Method", "GET"))
    check_calls(
        app,
        (
            Call("/cors", (), status, method="OPTIONS", headers=preflight),
            Call("/items", (), status, method="OPTIONS", headers=preflight),
            Call("/items", (), 401, ID_MISSING),  # the preflight setting never opens the GET
        ),
    )


# -- warnings for secrets in the query string ----------------------------------------------------------


def _query_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "flask_clientauth" and r.levelno == logging.WARNING and "query parameter" in r.getMessage()
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_query_secret_is_warned_about_once_per_app(
    make_app: Any, caplog: pytest.LogCaptureFixture, version: str
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    doc = document(
        version, {"qid": QID, "qsec": QSEC, "hid": HID, "hsec": HSEC}, {"/items": get()}, [{"qid": [], "qsec": []}]
    )
    app = make_app(spec=doc, routes=False)
    warnings = _query_warnings(caplog)
    assert len(warnings) == 1  # at init_app, before any request
    message = warnings[0].getMessage()
    assert "<dict>" in message and "'qsec'" in message and "'client_secret'" in message
    assert "less secure" in message and "logs" in message
    assert "hsec" not in message and "qid" not in message  # header keys and IDs are not warned about
    app.add_url_rule("/items", "items", whoami)
    auth: ClientAuth = app.extensions["test_auth"]
    auth.routes(app)
    values = tokens(app)
    client = app.test_client()
    for _ in range(2):
        assert (
            client.get(
                "/items", query_string={"client_id": values["ID"], "client_secret": values["SECRET"]}
            ).status_code
            == 200
        )
    assert app.test_cli_runner().invoke(args=["clients", "routes"]).exit_code == 0
    assert len(_query_warnings(caplog)) == 1
    assert values["SECRET"] not in caplog.text
    make_app(spec=doc, routes=False)  # another app warns for itself
    assert len(_query_warnings(caplog)) == 2


def test_query_secret_in_a_callable_spec_is_warned_about_on_first_use(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    doc = document(V31, {"qid": QID, "qsec": QSEC}, {"/items": get()}, [{"qid": [], "qsec": []}])
    app = make_app(spec=lambda: doc, routes=False)
    app.add_url_rule("/items", "items", whoami)
    assert _query_warnings(caplog) == []
    app.test_client().get("/items")
    app.test_client().get("/items")
    assert len(_query_warnings(caplog)) == 1


def test_header_and_cookie_secrets_are_not_warned_about(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    make_app(spec=document(V30, {"hid": HID, "hsec": HSEC, "cid": CID, "csec": CSEC}, {}), routes=False)
    assert _query_warnings(caplog) == []


# -- flask clients routes ------------------------------------------------------------------------------


COLUMNS = ("METHOD", "RULE", "OPERATION", "REQUIREMENT", "SCHEMES", "FROM")


def _cells(header: str, line: str) -> dict[str, str]:
    """A row of ``flask clients routes``, cut at the header's column positions."""
    starts = [header.index(name) for name in COLUMNS]
    ends = [*starts[1:], None]
    return {name: line[a:b].strip() for name, a, b in zip(COLUMNS, starts, ends, strict=True)}


def test_routes_text_is_one_aligned_table(make_app: Any) -> None:
    app, auth = _file_app(make_app, "branches-3.1.yaml", BRANCHES_ROUTES)
    auth.scheme_handler("staffToken")(bearer_good)
    auth.scheme_handler("partnerTls")(bearer_good)
    app.add_url_rule("/internal/a-rather-long-rule/<int:first>/<path:rest>", "long", whoami)
    result = app.test_cli_runner().invoke(args=["clients", "routes"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"Spec: {SPECS / 'branches-3.1.yaml'} (OpenAPI 3.1.0)"
    header = lines[1]
    assert header.split() == list(COLUMNS)
    table = lines[2 : lines.index("")]
    assert len(table) == sum(len(rule.methods or ()) for rule in app.url_map.iter_rules())
    starts = [header.index(name) for name in COLUMNS]
    for line in table:  # every cell starts at its column, after at least two spaces
        for start in starts[1:]:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)
    rows = {(c["METHOD"], c["RULE"]): c for c in (_cells(header, line) for line in table)}
    assert rows[("POST", "/bank/v2/branches")] == {
        "METHOD": "POST",
        "RULE": "/bank/v2/branches",
        "OPERATION": "POST /branches",
        "REQUIREMENT": "alternatives: id+secret (header) | staffToken(http, handled-by-app)",
        "SCHEMES": "clientId+clientSecret | staffToken",
        "FROM": "operation",
    }
    assert rows[("GET", "/bank/v2/offers")]["REQUIREMENT"] == "optional(id+secret)"
    assert rows[("GET", "/bank/v2/branches/<int:branchId>")]["OPERATION"] == "GET /branches/{branchId}"
    assert rows[("GET", "/bank/v2/branches/<int:branchId>")]["REQUIREMENT"] == "id"
    assert rows[("GET", "/bank/v2/status")]["REQUIREMENT"] == "public"
    assert rows[("GET", "/bank/v2/branches")]["FROM"] == "global"
    long_rule = rows[("GET", "/internal/a-rather-long-rule/<int:first>/<path:rest>")]
    assert (long_rule["OPERATION"], long_rule["REQUIREMENT"], long_rule["FROM"]) == (
        "-",
        "id+secret",
        "undocumented: global",
    )
    rest = result.output[result.output.index("\n\n") :]
    assert "Routes the spec does not describe:\n  GET /internal/a-rather-long-rule/<int:first>/<path:rest>\n" in rest
    assert "Spec operations no route serves" not in rest


def test_routes_lists_unserved_operations_and_undocumented_routes(make_app: Any) -> None:
    app, _ = _file_app(
        make_app,
        "petstore-2.0.json",
        [("/v2/pet/<int:petId>", ["GET"]), ("/v2/store/inventory", ["GET"]), ("/healthz", ["GET"])],
    )
    result = app.test_cli_runner().invoke(args=["clients", "routes"])
    assert result.exit_code == 0, result.output
    unserved = result.output.split("Spec operations no route serves:\n")[1].split("\n\n")[0].split("\n")
    assert [u.strip() for u in unserved if u.strip()] == [
        "DELETE /pet/{petId}",
        "GET /pet/findByStatus",
        "GET /store/order/{orderId}",
        "GET /user/login",
        "POST /pet",
        "POST /pet/{petId}",
        "POST /store/order",
        "PUT /pet",
    ]
    assert "Routes the spec does not describe:\n  GET /healthz" in result.output
    healthz = next(line for line in result.output.splitlines() if line.startswith("GET ") and "/healthz" in line)
    assert "denied (not described, no global requirement)" in healthz


def test_routes_json(make_app: Any) -> None:
    app, _ = _file_app(make_app, "header-or-query-3.0.yaml", [("/accounts/v1/accounts", ["GET"]), ("/other", ["GET"])])
    result = app.test_cli_runner().invoke(args=["clients", "routes", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["spec"] == str(SPECS / "header-or-query-3.0.yaml")
    assert data["openapi"] == "3.0.3"  # as the document writes it (issue 11)
    assert data["errors"] == []
    assert data["unserved_operations"] == ["GET /accounts/{accountId}"]
    assert "GET /other" in data["undocumented_routes"]
    assert not [r for r in data["undocumented_routes"] if "/accounts" in r]
    rows = {(r["method"], r["rule"]): r for r in data["routes"]}
    row = rows[("GET", "/accounts/v1/accounts")]
    assert row == {
        "rule": "/accounts/v1/accounts",
        "path": None,
        "endpoint": "r0",
        "method": "GET",
        "operation": "GET /accounts",
        "requirement": "alternatives: id+secret (header) | id+secret (query)",
        "alternatives": [["clientIdHeader", "clientSecretHeader"], ["clientIdQuery", "clientSecretQuery"]],
        "roles": [[], []],
        "optional": False,
        "origin": "global",
        "error": None,
        "ref": None,
    }
    assert rows[("OPTIONS", "/accounts/v1/accounts")]["requirement"].endswith("; CORS preflight passes")


def test_routes_shows_what_cannot_be_enforced_and_exits_1(make_app: Any) -> None:
    app, _ = _file_app(make_app, "petstore-2.0.json", [("/v2/pet", ["POST"]), ("/v2/store/inventory", ["GET"])])
    result = app.test_cli_runner().invoke(args=["clients", "routes"])
    assert result.exit_code == 1
    post = next(line for line in result.output.splitlines() if line.startswith("POST ") and "/v2/pet " in line)
    assert "ERROR (see below)" in post
    inventory = next(line for line in result.output.splitlines() if line.startswith("GET ") and "inventory" in line)
    assert " id " in inventory
    tail = result.output.split("Routes that cannot be enforced (every request is refused with 503 until fixed):\n")[1]
    assert tail.startswith("  POST /v2/pet (operation POST /pet): security scheme(s) 'petstore_auth' (oauth2)")
    data = json.loads(app.test_cli_runner().invoke(args=["clients", "routes", "--json"]).output)
    assert len(data["errors"]) == 1 and data["errors"][0].startswith("POST /v2/pet (operation POST /pet): ")
    errored = [r for r in data["routes"] if r["error"]]
    assert [(r["method"], r["requirement"]) for r in errored] == [("POST", "error")]
