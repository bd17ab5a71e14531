"""Start-up errors a person can read: every problem at once, grouped; roles on API keys; nasty documents."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from flask_clientauth import SpecError, load_spec

from conftest import HID, HSEC, QID, TUTORIAL_SPEC, AppFactory

OK = {"200": {"description": "ok"}}


def doc(version: str, paths: dict[str, Any], security: Any = None, schemes: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"info": {"title": "t", "version": "1"}, "paths": paths}
    schemes = {"clientId": HID, "clientSecret": HSEC} if schemes is None else schemes
    if version == "2.0":
        out["swagger"], out["securityDefinitions"] = "2.0", schemes
    else:
        out["openapi"], out["components"] = version, {"securitySchemes": schemes}
    if security is not None:
        out["security"] = security
    return out


def get(security: Any) -> dict[str, Any]:
    return {"get": {"security": security, "responses": OK}}


# -- every document-level violation, grouped by problem --------------------------------------------


def test_every_violation_is_reported_not_only_the_first() -> None:
    schemes = {"clientId": HID, "clientSecret": HSEC, "broken": {"type": "apiKey", "in": "body", "name": "x"}}
    paths = {
        "/a": get([{"nope": []}]),
        "/b": get([{"clientSecret": []}]),
        "/c": {"get": "not a mapping"},
        "/d": get([{"broken": []}]),  # the broken scheme is reported once, not once more here
    }
    with pytest.raises(SpecError) as info:
        load_spec(doc("3.0.3", paths, schemes=schemes, security={"clientId": []}))
    error = info.value
    assert error.source == "<dict>"
    assert error.rule.startswith("5 problems in the document:\n")
    assert [(e.where, e.problem) for e in error.errors] == [
        (
            "components.securitySchemes.broken",
            "'in: body' is not allowed for an apiKey in OpenAPI 3 (allowed: header, query, cookie)",
        ),
        ("global security", "'security' must be a list of requirement objects"),
        ("operation GET /a, requirement #1", "security scheme 'nope' is not defined"),
        ("operation GET /b, requirement #1", "client secret key 'clientSecret' is applied without a client ID key"),
        ("operation GET /c", "the operation must be a mapping"),
    ]
    for e in error.errors:
        assert f"\n  - {e.rule}" in error.rule  # each one, readable on its own line


def test_one_problem_on_a_thousand_operations_is_said_once() -> None:
    paths = {f"/things/{i}": get([{"clientId": [], "oauth": []}]) for i in range(1105)}
    with pytest.raises(SpecError) as info:
        load_spec(doc("3.0.3", paths))
    message = str(info.value)
    assert message.count("security scheme 'oauth' is not defined") == 1
    assert (
        "in 1105 places: operation GET /things/0, requirement #1; operation GET /things/1, requirement #1;" in message
    )
    assert message.endswith("; and 1095 more")
    assert len(message) < 1500  # not 1,105 lines of the same advice
    assert len(info.value.errors) == 1105  # every one is still there for a program


def test_route_errors_are_grouped_by_problem(make_app: AppFactory) -> None:
    paths = {f"/r{i}": get([{"oauth": []}]) for i in range(300)}
    schemes = {"clientId": HID, "oauth": {"type": "oauth2", "flows": {}}}
    app = make_app(spec=doc("3.0.3", paths, schemes=schemes), routes=False)
    for i in range(300):
        app.add_url_rule(f"/r{i}", f"r{i}", lambda: "x")
    with pytest.raises(SpecError) as info:
        app.extensions["test_auth"].routes(app)
    message = str(info.value)
    assert message.count("@auth.scheme_handler('oauth')") == 1
    assert "in 300 routes: GET, HEAD /r0 (operation GET /r0); " in message and message.endswith("; and 290 more")
    assert len(message) < 1500


# -- scheme types that are not strings, and other nasty input -----------------------------------------


@pytest.mark.parametrize("kind", [["apiKey"], {"apiKey": True}, None, 3, True])
def test_scheme_type_that_is_not_a_string_is_a_spec_error(kind: Any) -> None:
    schemes = {"k": {"type": kind, "in": "header", "name": "X"}}
    with pytest.raises(SpecError) as info:
        load_spec(doc("3.1.0", {}, schemes=schemes))
    assert info.value.where == "components.securitySchemes.k"
    assert f"unknown security scheme type {kind!r}" in info.value.rule


@pytest.mark.parametrize("field", ["in", "x-key-type"])
@pytest.mark.parametrize("value", [["header"], {"a": 1}])
def test_unhashable_scheme_fields_are_spec_errors(field: str, value: Any) -> None:
    schemes = {"k": {**HID, field: value}}
    with pytest.raises(SpecError):
        load_spec(doc("3.0.3", {}, schemes=schemes))


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, (*path, index))


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(document)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


NASTY = [None, [], {}, [None], {None: None}, {1: 2}, {("t",): 1}, 0, 1.5, True, "", "x", "/", [{}], {"$ref": "#/"}]


@pytest.mark.parametrize("base", ["2.0", "3.0.3", "3.1.0"])
def test_any_node_replaced_by_nasty_input_gives_a_spec_error_or_a_spec(base: str) -> None:
    """Null everywhere, lists where mappings are expected, non-string keys: never another exception."""
    security = [{"clientId": [], "clientSecret": []}]
    paths = {"/a/{id}": {"get": {"security": [{"clientId": []}], "responses": OK}, "post": {"responses": OK}}}
    document = doc(base, paths, security=security, schemes={"clientId": HID, "clientSecret": HSEC, "q": QID})
    if base != "2.0":
        document["servers"] = [{"url": "/{v}", "variables": {"v": {"default": "v1", "enum": ["v1", "v2"]}}}]
    else:
        document["basePath"] = "/api"
    tried = 0
    for path in list(_nodes(document))[1:]:
        for value in NASTY:
            try:
                load_spec(_replaced(document, path, value))
            except SpecError:
                pass
            tried += 1
    assert tried > 300


@pytest.mark.parametrize("key", [None, 1, 2.0, True])
def test_non_string_path_keys_are_errors_not_skipped(key: Any) -> None:
    paths = {key: get([])}
    with pytest.raises(SpecError, match=f"path {key!r} must start with '/'"):
        load_spec(doc("3.0.3", paths, security=[{"clientId": []}]))


def test_the_tutorial_still_loads() -> None:
    assert len(load_spec(copy.deepcopy(TUTORIAL_SPEC)).operations) == 3


# -- role lists on API keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0.3", "2.0"])
def test_roles_on_an_api_key_are_refused_before_openapi_3_1(make_app: AppFactory, version: str) -> None:
    # there the lists MUST be empty; dropping the roles would let every registered client pass
    paths = {"/admin": get([{"clientId": ["admin", "auditor"], "clientSecret": []}])}
    with pytest.raises(SpecError) as info:
        make_app(spec=doc(version, paths), create_tables=False, routes=False)
    assert info.value.source == "<dict>"
    assert info.value.where == "operation GET /admin, requirement #1"
    assert "API key scheme 'clientId' is required with the roles ['admin', 'auditor']" in info.value.rule
    assert f"OpenAPI {version} says the list MUST be empty for an apiKey scheme" in info.value.rule
    assert "role lists need OpenAPI 3.1" in info.value.rule
    assert "write 'clientId: []'" in info.value.rule


def test_roles_in_the_global_requirement_are_refused_before_openapi_3_1() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(doc("3.0.3", {"/a": {"get": {"responses": OK}}}, security=[{"clientId": ["admin"]}]))
    assert info.value.where == "global security, requirement #1"


@pytest.mark.parametrize(
    ("roles", "problem"),
    [
        (["two words"], "a role must be 1 to 64 letters, digits or _ . : / - (got 'two words')"),
        ([""], "a role must be 1 to 64 letters"),
        (["x" * 65], "a role must be 1 to 64 letters"),
        ([7], "a role must be a string (quote 7)"),
        ([True], "a role must be a string (quote True)"),
    ],
)
def test_a_role_no_client_can_hold_is_refused(roles: list[Any], problem: str) -> None:
    # a client's roles are checked the same way when set: such a route could never be reached
    with pytest.raises(SpecError) as info:
        load_spec(doc("3.1.0", {"/a": get([{"clientId": roles}])}))
    assert info.value.where == "operation GET /a, requirement #1"
    assert f"API key scheme 'clientId': {problem}" in info.value.rule


def test_a_role_list_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(SpecError, match=r"the value of 'clientId' must be a list"):
        load_spec(doc("3.1.0", {"/a": get([{"clientId": "admin"}])}))


def test_scopes_on_oauth2_and_empty_or_null_lists_on_api_keys_are_fine() -> None:
    schemes = {"clientId": HID, "oauth": {"type": "oauth2", "flows": {}}}
    spec = load_spec(
        doc("3.1.0", {"/a": get([{"oauth": ["read"]}, {"clientId": None}, {"clientId": []}])}, schemes=schemes)
    )
    assert [r.names for r in spec.operations[0].policy.alternatives] == [("oauth",), ("clientId",)]
