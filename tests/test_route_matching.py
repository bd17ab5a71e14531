"""Route matching without an app: rule and path templates, the document's paths, the route table.

The same rules run through Flask in test_routing.py and test_routing_paths.py; here each part is
called directly, with Werkzeug rules bound to a plain ``Map``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import pytest
from flask import Blueprint
from flask.views import MethodView
from werkzeug.routing import Map, Rule

from flask_clientauth import SpecError, load_spec
from flask_clientauth.routing import (
    DocumentPaths,
    MountCheck,
    Override,
    RouteTable,
    ViewOverrides,
    flask_template,
    spec_template,
)

from conftest import HID, HSEC, get_operation

SCHEMES = {"hid": HID, "hsec": HSEC}
ID = [{"hid": []}]
ID_AND_SECRET = [{"hid": [], "hsec": []}]


def document(paths: dict[str, Any], security: Any = ID, **extra: Any) -> Any:
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths, **extra}
    doc["components"] = {"securitySchemes": SCHEMES}
    if security is not None:
        doc["security"] = security
    return load_spec(doc)


def table(spec: Any, **kw: Any) -> RouteTable:
    kw.setdefault("view_overrides", {})
    kw.setdefault("blueprint_overrides", {})
    return RouteTable(spec, handlers={}, view_functions={}, **kw)


def rules(*templates: str) -> list[Rule]:
    """Werkzeug rules bound to a map, as Flask's ``url_map`` holds them."""
    url_map = Map([Rule(t, endpoint=f"e{i}") for i, t in enumerate(templates)])
    return list(url_map.iter_rules())


# -- templates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ("/a/<int:id>/", "/a/{}/"),
        ("/a/<id>", "/a/{}"),
        ("/files/<path:name>", "/files/{}"),
        ("/r/<name>.pdf", "/r/{}.pdf"),
        ("//a//b", "/a/b"),
        ("/", "/"),
    ],
)
def test_flask_template(rule: str, key: str) -> None:
    assert flask_template(rule) == key


@pytest.mark.parametrize(
    ("prefix", "path", "key"),
    [("/v1", "/a/{id}", "/v1/a/{}"), ("", "/a/{id}/", "/a/{}/"), ("/v1", "/", "/v1/"), ("", "/x/{a}.{b}", "/x/{}.{}")],
)
def test_spec_template(prefix: str, path: str, key: str) -> None:
    assert spec_template(prefix, path) == key


# -- the document's paths --------------------------------------------------------------------------


def test_match_is_exact_first_then_the_other_slash_form() -> None:
    paths = DocumentPaths(document({"/reports": get_operation(ID), "/items/": get_operation(ID)}))
    found = paths.match("/reports")
    assert found is not None and found[0].shown == "/reports" and found[1] is True
    found = paths.match("/items")  # documented only with a trailing slash
    assert found is not None and found[0].shown == "/items/" and found[1] is False
    assert paths.match("/nothing") is None


def test_match_takes_the_most_literal_covering_template_and_the_first_on_a_tie() -> None:
    spec = document(
        {
            "/items/{id}": get_operation(ID),
            "/items/{id}/parts/{part}": get_operation(ID),
            "/items/{id}/parts/main": get_operation(ID_AND_SECRET),
            "/{a}/x": get_operation(ID),
            "/y/{b}": get_operation(ID),
            "/r/{a}.pdf": get_operation(ID),
            "/r/x.{b}": get_operation(ID),  # as specific as the one above, and asking for the same
        }
    )
    paths = DocumentPaths(spec)
    assert paths.match("/items/latest")[0].shown == "/items/{id}"  # type: ignore[index]
    assert paths.match("/items/{}/parts/main")[0].shown == "/items/{id}/parts/main"  # type: ignore[index]
    assert paths.match("/items/{}/parts/{}")[0].shown == "/items/{id}/parts/{part}"  # type: ignore[index]
    assert paths.match("/y/x")[0].shown == "/y/{b}"  # type: ignore[index]  # literal first, segment by segment
    assert paths.match("/r/x.pdf")[0].shown == "/r/{a}.pdf"  # type: ignore[index]  # a tie: the document's order


def test_one_path_written_twice_is_a_spec_error() -> None:
    spec = document({"/x/{a}": get_operation(ID), "/x/{b}": get_operation(ID)})
    with pytest.raises(SpecError, match=re.escape("are the same path '/x/{}'")):
        DocumentPaths(spec)


def test_base_path_is_removed_from_the_server_prefixes() -> None:
    spec = document({"/items": get_operation(ID)}, servers=[{"url": "https://api.example.com/api/v1"}])
    assert DocumentPaths(spec).match("/api/v1/items") is not None
    under = DocumentPaths(spec, "/api")
    assert under.match("/v1/items") is not None and under.match("/api/v1/items") is None
    with pytest.raises(SpecError, match="is under CLIENTAUTH_BASE_PATH '/other'"):
        DocumentPaths(spec, "/other")


def test_equally_specific_templates_asking_for_different_things_are_a_spec_error() -> None:
    spec = document({"/r/{a}.pdf": get_operation(ID), "/r/x.{b}": get_operation(ID_AND_SECRET)})
    with pytest.raises(SpecError, match="equally specific"):
        DocumentPaths(spec)


# -- the route table -------------------------------------------------------------------------------


def test_a_rule_gets_its_operations_policy_once() -> None:
    spec = document({"/items/{id}": get_operation(ID_AND_SECRET), "/status": get_operation([])})
    routes = table(spec)
    item, status = rules("/items/<int:id>", "/status")
    assert routes.lookup(item, "GET", "/items/1").describe() == "id+secret"
    assert routes.lookup(item, "HEAD", "/items/1").operation == "GET /items/{id}"  # HEAD follows GET
    assert routes.lookup(status, "GET", "/status").public
    assert routes.operation_for("/items/<int:id>", "GET") is spec.operations[0]
    assert set(routes.policies) == {(id(item), "GET"), (id(item), "HEAD"), (id(status), "GET")}
    assert routes.concrete == {}


def test_undocumented_rules_and_methods_get_the_global_policy_or_are_denied() -> None:
    item, other = rules("/items", "/other")
    with_global = table(document({"/items": get_operation(ID_AND_SECRET)}))
    assert with_global.lookup(other, "GET", "/other").origin == "undocumented: global"
    assert with_global.lookup(item, "POST", "/items").describe() == "id"
    without = table(document({"/items": get_operation(ID_AND_SECRET)}, security=None))
    assert without.lookup(other, "GET", "/other").deny
    public = table(document({"/items": get_operation(ID_AND_SECRET)}, security=[]))
    assert public.lookup(other, "GET", "/other").public


def test_a_rule_that_serves_a_more_specific_documented_path_decides_per_path() -> None:
    spec = document({"/items/{id}": get_operation(ID), "/items/export": get_operation(ID_AND_SECRET)})
    routes = table(spec)
    (item,) = rules("/items/<id>")
    assert routes.lookup(item, "GET", "/items/1").describe() == "id"
    assert routes.lookup(item, "GET", "/items/export").describe() == "id+secret"
    assert routes.lookup(item, "GET", "/items/./export").describe() == "id+secret"  # as the document reads it
    assert routes.policies == {} and set(routes.concrete) == {(id(item), "GET")}


def test_a_decorator_decides_for_every_path_of_its_view() -> None:
    spec = document({"/items/{id}": get_operation(ID), "/items/export": get_operation(ID_AND_SECRET)})

    def view() -> str:
        return ""

    (item,) = rules("/items/<id>")
    routes = RouteTable(
        spec,
        view_overrides={view: Override("exempt", where="view")},
        blueprint_overrides={},
        handlers={},
        view_functions={"e0": view},
    )
    assert routes.lookup(item, "GET", "/items/export").public
    assert routes.lookup(item, "GET", "/items/export").origin == "exempt view"


# -- mounts and decorators ---------------------------------------------------------------------------


def test_mount_check() -> None:
    spec = document({"/items": get_operation(ID)}, servers=[{"url": "https://api.example.com/api/v1"}])
    unmounted = MountCheck(spec, "")
    assert unmounted.wrong("/api") and unmounted.wrong("/api/v1")  # the document's prefix, not removed
    assert not unmounted.wrong("/elsewhere") and not unmounted.wrong("")
    mounted = MountCheck(spec, "/api")
    assert not mounted.wrong("/api") and mounted.wrong("") and mounted.wrong("/elsewhere")


def test_view_overrides_take_the_innermost_decorator() -> None:
    class Items(MethodView):
        def get(self) -> str:
            return ""

        def post(self) -> str:
            return ""

    def plain() -> str:
        return ""

    @functools.wraps(plain)
    def wrapped() -> str:
        return plain()

    on_method, on_class, on_plain = (Override("require", (("hid",),), where=w) for w in ("get", "class", "plain"))
    overrides = ViewOverrides({Items.get: on_method, Items: on_class, plain: on_plain}, {}, {})
    view = Items.as_view("items")
    assert overrides.find("items", view, "GET") is on_method
    assert overrides.find("items", view, "HEAD") is on_method  # MethodView answers HEAD with get()
    assert overrides.find("items", view, "POST") is on_class
    assert overrides.find("wrapped", wrapped, "GET") is on_plain
    assert overrides.unused() == []
    assert ViewOverrides({plain: on_plain}, {}, {}).unused() == ["plain"]


def test_a_blueprints_decorator_applies_to_the_endpoints_it_registered_only() -> None:
    docs = Blueprint("docs", __name__)
    docs.add_url_rule("/report", "report", lambda: "")
    exempt = Override("exempt", where="blueprint docs")
    overrides = ViewOverrides({}, {docs: exempt}, {"docs": docs})
    assert overrides.find("docs.report", None, "GET") is exempt
    assert overrides.find("docs.other", None, "GET") is None  # the app's endpoint, named like one of docs'
    assert overrides.find("report", None, "GET") is None
