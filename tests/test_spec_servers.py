"""Server URLs: variables the document must define, and URLs without a scheme that look like a host."""

from __future__ import annotations

from typing import Any

import pytest

from flask_clientauth import SpecError, load_spec

from conftest import HID, AppFactory

OK = {"200": {"description": "ok"}}


def doc(servers: Any = None, *, path_servers: Any = None, op_servers: Any = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"security": [{"clientId": []}], "responses": OK}
    item: dict[str, Any] = {"get": operation}
    out: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID}},
        "paths": {"/items": item},
    }
    if servers is not None:
        out["servers"] = servers
    if path_servers is not None:
        item["servers"] = path_servers
    if op_servers is not None:
        operation["servers"] = op_servers
    return out


@pytest.mark.parametrize(
    ("level", "where"),
    [("document", "servers"), ("path", "path /items: servers"), ("operation", "operation GET /items: servers")],
)
@pytest.mark.parametrize(
    ("server", "variable"),
    [
        ({"url": "/{region}/v1"}, "region"),
        ({"url": "https://api.example.com/{base}", "variables": {"other": {"default": "x"}}}, "base"),
        ({"url": "https://{region}.api.example.com/v1"}, "region"),  # even where it is not in the path
    ],
)
def test_undefined_server_variable_fails_start_up(
    make_app: AppFactory, level: str, where: str, server: dict[str, Any], variable: str
) -> None:
    key = {"document": "servers", "path": "path_servers", "operation": "op_servers"}[level]
    with pytest.raises(SpecError) as info:
        make_app(spec=doc(**{key: [server]}), create_tables=False, routes=False)
    assert info.value.source == "<dict>"
    assert info.value.where == where
    assert f"uses the variable {{{variable}}}, which its 'variables' do not define" in info.value.rule
    assert repr(server["url"]) in info.value.rule


def test_server_variable_without_default_or_enum_fails() -> None:
    server = {"url": "/{v}/api", "variables": {"v": {"description": "no default"}}}
    with pytest.raises(SpecError, match=r"servers: server URL '/\{v\}/api': the variable 'v' needs a 'default'"):
        load_spec(doc([server]))


def test_server_variables_expand_to_every_enum_value_and_the_default() -> None:
    server = {"url": "/{version}/api", "variables": {"version": {"default": "v1", "enum": ["v2", "v3"]}}}
    (op,) = load_spec(doc([server])).operations
    assert op.prefixes == ("/v2/api", "/v3/api", "/v1/api")


@pytest.mark.parametrize(
    ("url", "prefix"),
    [
        ("https://api.example.com/v1", "/v1"),
        ("//api.example.com/v1", "/v1"),  # a network-path reference: a host, then the path
        ("/v1", "/v1"),
        ("v1", "/v1"),  # relative to the document: its path under the server root
        ("./v1", "/v1"),
        ("/", ""),
        ("http://localhost:8080", ""),
    ],
)
def test_server_url_forms_that_are_unambiguous(url: str, prefix: str) -> None:
    (op,) = load_spec(doc([{"url": url}])).operations
    assert op.prefixes == (prefix,)


@pytest.mark.parametrize(
    ("server", "host"),
    [
        ({"url": "api.example.com/v1"}, "api.example.com/v1"),
        ({"url": "localhost:8080/v1"}, "localhost:8080/v1"),
        ({"url": "{host}/v1", "variables": {"host": {"default": "api.example.com"}}}, "api.example.com/v1"),
    ],
)
def test_server_url_without_scheme_that_looks_like_a_host_fails_start_up(
    make_app: AppFactory, server: dict[str, Any], host: str
) -> None:
    # today's code read it as the path /api.example.com/v1: every route under /v1 lost its requirement
    with pytest.raises(SpecError) as info:
        make_app(spec=doc([server]), create_tables=False, routes=False)
    assert info.value.where == "servers"
    assert "has no scheme" in info.value.rule and "looks like a host" in info.value.rule
    assert f"write 'https://{host}' (or '//{host}') for a host, or '/{host}' for a path" in info.value.rule


def test_host_like_server_url_with_a_scheme_serves_its_routes_under_the_path(make_app: AppFactory) -> None:
    app = make_app(spec=doc([{"url": "https://api.example.com/v1"}]), routes=False)
    app.add_url_rule("/v1/items", "items", lambda: "ok")
    rows = {(r.method, r.rule): r for r in app.extensions["test_auth"].routes(app)}
    assert rows[("GET", "/v1/items")].operation == "GET /items"
    assert rows[("GET", "/v1/items")].policy.describe() == "id"
    assert app.test_client().get("/v1/items").status_code == 401
