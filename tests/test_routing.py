"""Requirement resolution per route: Flask rules vs spec paths, prefixes, decorators, handlers, CORS."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request

from flask_clientauth import ClientAuth, SpecError, current_client

from conftest import (
    ID_AND_SECRET,
    MISCONFIGURED,
    NOT_DESCRIBED,
    SCHEMES,
    auth_of,
    build,
    doc2,
    doc3,
    headers,
    new_client,
    op,
    view,
)

OAUTH = {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://t.example/token", "scopes": {}}}}


def operations(app: Flask) -> dict[tuple[str, str], str | None]:
    """(rule, method) -> the spec operation it matched, from ``auth.routes()``."""
    return {(r.rule, r.method): r.operation for r in auth_of(app).routes(app)}


# -- matching Flask rules to spec paths ------------------------------------------------------------

_UUID = str(uuid.UUID(int=7))

MATCHES = [
    # flask rule, a URL it serves, spec path
    ("/items", "/items", "/items"),
    ("/items/<item_id>", "/items/abc", "/items/{item_id}"),
    ("/items/<int:item_id>", "/items/7", "/items/{item_id}"),
    ("/items/<int:pk>", "/items/7", "/items/{id}"),  # parameter names need not agree
    ("/files/<path:p>", "/files/a/b/c.txt", "/files/{p}"),
    ("/u/<uuid:u>", f"/u/{_UUID}", "/u/{u}"),
    ("/f/<float:x>", "/f/1.5", "/f/{x}"),
    ("/s/<string(length=2):code>", "/s/fr", "/s/{code}"),
    ("/a/<int:x>/b/<y>/c/<int:z>", "/a/1/b/two/c/3", "/a/{x}/b/{y}/c/{z}"),
    ("/reports/<int:rid>.json", "/reports/4.json", "/reports/{rid}.json"),
    ("/items/", "/items/", "/items"),  # trailing slash on the Flask side
    ("/items", "/items", "/items/"),  # trailing slash on the spec side
]


@pytest.mark.parametrize(("rule", "url", "spec_path"), MATCHES)
def test_flask_rule_matches_spec_path(make_app: Any, rule: str, url: str, spec_path: str) -> None:
    # the operation is public, the document's global requirement is not: 200 proves the match
    app = build(make_app, doc3({spec_path: {"get": op([])}}), [(rule,)])
    assert operations(app)[(rule, "GET")] == f"GET {spec_path}"
    resp = app.test_client().get(url)
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize(
    ("rule", "url", "spec_path"),
    [
        ("/items/<int:item_id>/extra", "/items/1/extra", "/items/{item_id}"),
        ("/items/<int:item_id>", "/items/1", "/items/{item_id}/extra"),
        ("/items/<a>/<b>", "/items/x/y", "/items/{a}"),
        ("/things/<int:item_id>", "/things/1", "/items/{item_id}"),
        ("/item", "/item", "/items"),
    ],
)
def test_flask_rule_not_matching_gets_global_requirement(make_app: Any, rule: str, url: str, spec_path: str) -> None:
    app = build(make_app, doc3({spec_path: {"get": op([])}}), [(rule,)])
    assert operations(app)[(rule, "GET")] is None
    client = app.test_client()
    assert client.get(url).status_code == 401
    cid, secret = new_client(app)
    assert client.get(url, headers=headers(cid, secret)).status_code == 200


@pytest.mark.parametrize(
    ("rule", "url", "spec_path"),
    [
        ("/items/latest", "/items/latest", "/items/{item_id}"),
        ("/items/<int:i>/parts/all", "/items/1/parts/all", "/items/{item_id}/parts/{part}"),
    ],
)
def test_literal_rule_gets_the_spec_template_a_gateway_would_match(
    make_app: Any, rule: str, url: str, spec_path: str
) -> None:
    # the document's global requirement is id-only; the templated operation needs the secret:
    # the literal Flask rule must not fall back to the weaker global requirement
    spec = doc3({spec_path: {"get": op(ID_AND_SECRET)}}, security=[{"hid": []}])
    app = build(make_app, spec, [(rule,)])
    assert operations(app)[(rule, "GET")] == f"GET {spec_path}"
    client = app.test_client()
    cid, secret = new_client(app)
    assert client.get(url, headers=headers(cid)).status_code == 401
    assert client.get(url, headers=headers(cid, secret)).status_code == 200


def test_most_literal_spec_path_wins(make_app: Any) -> None:
    spec = doc3(
        {"/items/{item_id}": {"get": op(ID_AND_SECRET)}, "/items/latest": {"get": op([])}},
        security=[{"hid": []}],
    )
    app = build(make_app, spec, [("/items/latest",), ("/items/<int:i>",)])
    assert operations(app)[("/items/latest", "GET")] == "GET /items/latest"
    assert app.test_client().get("/items/latest").status_code == 200
    assert app.test_client().get("/items/4").status_code == 401


@pytest.mark.parametrize("first", ["/a/{x}/c", "/a/b/{y}"])
def test_equally_literal_spec_paths_compare_segment_by_segment(make_app: Any, first: str) -> None:
    # /a/b/c is covered by both templates with two literal segments each: the one literal earlier wins,
    # whatever the document's order
    paths = {"/a/{x}/c": {"get": op([])}, "/a/b/{y}": {"get": op(ID_AND_SECRET)}}
    ordered = {first: paths[first], **{k: v for k, v in paths.items() if k != first}}
    app = build(make_app, doc3(ordered, security=[{"hid": []}]), [("/a/b/c",), ("/a/<x>/c",)])
    assert operations(app)[("/a/b/c", "GET")] == "GET /a/b/{y}"
    assert app.test_client().get("/a/b/c").status_code == 401
    assert app.test_client().get("/a/z/c").status_code == 200


PREFIXES = [
    # document extras, Flask rules that are the documented /items, Flask rules that are not
    pytest.param(doc2, {"basePath": "/api/v1"}, ["/api/v1/items"], ["/items", "/api/items"], id="2.0-basePath"),
    pytest.param(doc2, {"basePath": "/api/"}, ["/api/items"], ["/items"], id="2.0-basePath-trailing-slash"),
    pytest.param(doc2, {}, ["/items"], ["/api/items"], id="2.0-no-basePath"),
    pytest.param(doc3, {}, ["/items"], ["/v1/items"], id="3.x-no-servers"),
    pytest.param(
        doc3, {"servers": [{"url": "https://api.example.com"}]}, ["/items"], ["/v1/items"], id="server-no-path"
    ),
    pytest.param(
        doc3, {"servers": [{"url": "https://api.example.com/v1/"}]}, ["/v1/items"], ["/items"], id="server-path"
    ),
    pytest.param(doc3, {"servers": [{"url": "//api.example.com/v1"}]}, ["/v1/items"], ["/items"], id="scheme-relative"),
    pytest.param(doc3, {"servers": [{"url": "/rel"}]}, ["/rel/items"], ["/items"], id="relative-absolute-path"),
    pytest.param(doc3, {"servers": [{"url": "rel/v1"}]}, ["/rel/v1/items"], ["/items"], id="relative-path"),
    pytest.param(doc3, {"servers": [{"url": "./rel"}]}, ["/rel/items"], ["/items"], id="relative-dot-path"),
    pytest.param(doc3, {"servers": [{"url": "/"}]}, ["/items"], ["/v1/items"], id="root"),
    pytest.param(
        doc3,
        {"servers": [{"url": "/v1"}, {"url": "https://api.example.com/v2"}]},
        ["/v1/items", "/v2/items"],
        ["/items", "/v3/items"],
        id="several-servers",
    ),
    pytest.param(
        doc3,
        {
            "servers": [
                {
                    "url": "https://{host}/{version}/api",
                    "variables": {
                        "host": {"default": "api.example.com"},
                        "version": {"enum": ["v1", "v2"], "default": "v1"},
                    },
                }
            ]
        },
        ["/v1/api/items", "/v2/api/items"],
        ["/v3/api/items", "/api/items", "/items"],
        id="server-variables-enum",
    ),
    pytest.param(
        doc3,
        {"servers": [{"url": "{base}", "variables": {"base": {"default": "/svc"}}}]},
        ["/svc/items"],
        ["/items"],
        id="server-variable-default",
    ),
]


@pytest.mark.parametrize(("maker", "extra", "documented", "undocumented"), PREFIXES)
def test_base_path_and_servers_prefix_the_spec_paths(
    make_app: Any, maker: Callable[..., Any], extra: dict[str, Any], documented: list[str], undocumented: list[str]
) -> None:
    spec = maker({"/items": {"get": op([])}}, **extra)
    app = build(make_app, spec, [(r,) for r in documented + undocumented])
    found = operations(app)
    client = app.test_client()
    for rule in documented:
        assert found[(rule, "GET")] == "GET /items", rule
        assert client.get(rule).status_code == 200, rule
    for rule in undocumented:
        assert found[(rule, "GET")] is None, rule
        assert client.get(rule).status_code == 401, rule


def test_path_and_operation_servers_override_the_documents(make_app: Any) -> None:
    spec = doc3(
        {
            "/items": {"servers": [{"url": "/special"}], "get": op([])},
            "/other": {"get": {**op([]), "servers": [{"url": "https://x.example/op"}]}},
            "/plain": {"get": op([])},
        },
        servers=[{"url": "/v1"}],
    )
    rules = ["/special/items", "/v1/items", "/op/other", "/v1/other", "/v1/plain"]
    app = build(make_app, spec, [(r,) for r in rules])
    client = app.test_client()
    assert [client.get(r).status_code for r in rules] == [200, 401, 200, 401, 200]


# -- methods -------------------------------------------------------------------------------------


def test_head_of_a_get_follows_the_get(make_app: Any) -> None:
    spec = doc3({"/open": {"get": op([])}, "/closed": {"get": op()}})
    app = build(make_app, spec, [("/open",), ("/closed",)])
    client = app.test_client()
    assert client.head("/open").status_code == 200
    assert client.head("/closed").status_code == 401
    cid, secret = new_client(app)
    assert client.head("/closed", headers=headers(cid, secret)).status_code == 200


def test_documented_head_wins_over_get(make_app: Any) -> None:
    spec = doc3({"/r": {"get": op(), "head": op([])}})
    app = build(make_app, spec, [("/r",)])
    assert app.test_client().head("/r").status_code == 200
    assert app.test_client().get("/r").status_code == 401


def test_method_the_spec_does_not_list_gets_the_global_requirement(make_app: Any) -> None:
    spec = doc3({"/items": {"get": op([])}})
    app = build(make_app, spec, [("/items", "GET", "POST", "DELETE")])
    client = app.test_client()
    assert client.get("/items").status_code == 200
    assert client.post("/items").status_code == 401
    assert client.delete("/items").status_code == 401
    cid, secret = new_client(app)
    assert client.post("/items", headers=headers(cid, secret)).status_code == 200


def test_method_not_listed_without_global_requirement_is_refused(make_app: Any) -> None:
    spec = doc3({"/items": {"get": op([{"hid": []}])}}, security=None)
    app = build(make_app, spec, [("/items", "GET", "POST")])
    cid, _ = new_client(app)
    client = app.test_client()
    assert client.get("/items", headers=headers(cid)).status_code == 200
    resp = client.post("/items", headers=headers(cid))
    assert resp.status_code == 403
    assert resp.get_json() == NOT_DESCRIBED


# -- routes the spec does not describe ------------------------------------------------------------


def test_undescribed_route_gets_the_global_requirement(make_app: Any) -> None:
    app = build(make_app, doc3({"/items": {"get": op([])}}), [("/internal/stats",)])
    client = app.test_client()
    assert client.get("/internal/stats").status_code == 401
    cid, secret = new_client(app)
    assert client.get("/internal/stats", headers=headers(cid)).get_json()["moreInformation"] == "Client secret missing"
    assert client.get("/internal/stats", headers=headers(cid, secret)).status_code == 200


@pytest.mark.parametrize("maker", [doc2, doc3])
def test_undescribed_route_without_global_requirement_is_refused(make_app: Any, maker: Callable[..., Any]) -> None:
    app = build(make_app, maker({"/items": {"get": op([{"hid": []}])}}, security=None), [("/internal",)])
    cid, secret = new_client(app)
    resp = app.test_client().get("/internal", headers=headers(cid, secret))
    assert resp.status_code == 403
    assert resp.mimetype == "application/json"
    assert resp.get_json() == NOT_DESCRIBED


def test_undescribed_route_with_empty_global_requirement_is_public(make_app: Any) -> None:
    app = build(make_app, doc3({"/items": {"get": op(ID_AND_SECRET)}}, security=[]), [("/internal",), ("/items",)])
    assert app.test_client().get("/internal").status_code == 200
    assert app.test_client().get("/items").status_code == 401


def test_unknown_url_and_wrong_method_are_flasks_404_and_405(make_app: Any) -> None:
    app = build(make_app, doc3({"/items": {"get": op()}}), [("/items",)])
    client = app.test_client()
    assert client.get("/nowhere").status_code == 404
    assert client.put("/items").status_code == 405


# -- decorators --------------------------------------------------------------------------------------


def _decorated_app(make_app: Any, spec: dict[str, Any] | None = None) -> tuple[Flask, ClientAuth]:
    app = make_app(spec=spec or doc3({"/open": {"get": op([])}, "/closed": {"get": op()}}), routes=False)
    return app, auth_of(app)


def test_exempt_view_is_public(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/closed")
    @auth.exempt
    def closed() -> str:
        return "public now"

    @auth.exempt  # above the route decorator works the same
    @app.route("/undocumented")
    def undocumented() -> str:
        return "public too"

    client = app.test_client()
    assert client.get("/closed").status_code == 200
    assert client.get("/undocumented").status_code == 200


def test_require_view_protects_a_public_operation(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/open")
    @auth.require("hid", "hsec")
    def open_() -> Any:
        assert current_client
        return jsonify(client=current_client.client_id)

    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/open").get_json()["moreInformation"] == "Client ID missing"
    assert client.get("/open", headers=headers(cid)).get_json()["moreInformation"] == "Client secret missing"
    assert client.get("/open", headers=headers(cid, secret)).get_json() == {"client": cid}


def test_require_view_can_relax_the_document(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/closed")
    @auth.require("qid")
    def closed() -> Any:
        assert current_client
        return jsonify(client=current_client.client_id)

    cid, _ = new_client(app)
    client = app.test_client()
    assert client.get(f"/closed?client_id={cid}").status_code == 200
    assert client.get("/closed", headers=headers(cid)).status_code == 401


def test_require_any_of(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/open")
    @auth.require(any_of=[["hid", "hsec"], ["qid", "qsec"]])
    def open_() -> Any:
        assert current_client
        return jsonify(client=current_client.client_id, schemes=list(current_client.schemes))

    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/open").status_code == 401
    assert client.get("/open", headers=headers(cid, secret)).get_json() == {"client": cid, "schemes": ["hid", "hsec"]}
    resp = client.get("/open", query_string={"client_id": cid, "client_secret": secret})
    assert resp.get_json() == {"client": cid, "schemes": ["qid", "qsec"]}
    assert client.get("/open", query_string={"client_id": cid}).status_code == 401


def test_require_without_names_uses_the_global_requirement(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/open")
    @auth.require()
    def open_() -> str:
        return "ok"

    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/open", headers=headers(cid)).status_code == 401
    assert client.get("/open", headers=headers(cid, secret)).status_code == 200


def test_require_without_names_and_without_global_requirement_fails_closed(make_app: Any) -> None:
    app, auth = _decorated_app(make_app, doc3({"/open": {"get": op([])}}, security=None))

    @app.route("/open")
    @auth.require()
    def open_() -> str:
        return "ok"

    with pytest.raises(SpecError, match="needs a global security requirement"):
        auth.routes(app)
    resp = app.test_client().get("/open")
    assert resp.status_code == 503
    assert resp.get_json() == MISCONFIGURED


def test_require_with_names_and_any_of_is_a_type_error(make_app: Any) -> None:
    _, auth = _decorated_app(make_app)
    with pytest.raises(TypeError):
        auth.require("hid", any_of=[["qid"]])


@pytest.mark.parametrize(
    ("names", "rule"),
    [
        (("nope",), "security scheme 'nope' is not defined"),
        (("hsec",), "client secret key 'hsec' is applied without a client ID key"),
        (("hid", "qsec"), "must be sent in the same location"),
    ],
)
def test_require_that_cannot_be_enforced_fails_closed(
    make_app: Any, caplog: pytest.LogCaptureFixture, names: tuple[str, ...], rule: str
) -> None:
    app, auth = _decorated_app(make_app)

    @app.route("/open")
    @auth.require(*names)
    def open_() -> str:
        return "must not run"

    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert rule in str(info.value)
    assert "open_" in str(info.value)  # names the view
    caplog.set_level(logging.ERROR, logger="flask_clientauth")
    cid, secret = new_client(app)
    resp = app.test_client().get("/open", headers=headers(cid, secret))
    assert resp.status_code == 503
    assert resp.mimetype == "application/json"
    assert resp.get_json() == MISCONFIGURED
    assert any(rule in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records)


def test_routes_lists_every_error_at_once(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)
    app.add_url_rule("/a", "a", auth.require("nope1")(lambda: "x"))
    app.add_url_rule("/b", "b", auth.require("nope2")(lambda: "x"))
    with pytest.raises(SpecError) as info:
        auth.routes(app)
    assert "'nope1'" in str(info.value) and "'nope2'" in str(info.value)


def test_blueprint_exempt_and_require(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)
    public = Blueprint("public", __name__)
    strict = Blueprint("strict", __name__)
    either = Blueprint("either", __name__)
    auth.exempt(public)
    auth.require("hid", "hsec")(strict)
    auth.require(any_of=[["hid", "hsec"], ["qid"]])(either)
    for bp, prefix in ((public, "/pub"), (strict, "/strict"), (either, "/either")):
        bp.add_url_rule("/closed", "closed", view)
        bp.add_url_rule("/open", "open", view)
        app.register_blueprint(bp, url_prefix=prefix)
    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/pub/closed").status_code == 200
    assert client.get("/pub/open").status_code == 200
    assert client.get("/strict/open").status_code == 401
    assert client.get("/strict/open", headers=headers(cid, secret)).status_code == 200
    assert client.get(f"/either/closed?client_id={cid}").status_code == 200
    assert client.get("/either/closed", headers=headers(cid)).status_code == 401
    assert client.get("/either/closed", headers=headers(cid, secret)).status_code == 200


def test_view_decorator_wins_over_its_blueprint(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)
    bp = Blueprint("bp", __name__)
    auth.exempt(bp)

    @bp.route("/guarded")
    @auth.require("hid")
    def guarded() -> str:
        return "ok"

    @bp.route("/free")
    def free() -> str:
        return "ok"

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/free").status_code == 200
    assert client.get("/guarded").status_code == 401


def test_nested_blueprint_inherits_and_overrides(make_app: Any) -> None:
    app, auth = _decorated_app(make_app)
    parent, child, grandchild = Blueprint("parent", __name__), Blueprint("child", __name__), Blueprint("gc", __name__)
    auth.exempt(parent)
    auth.require("hid")(grandchild)
    parent.add_url_rule("/p", "p", view)
    child.add_url_rule("/c", "c", view)
    grandchild.add_url_rule("/g", "g", view)
    child.register_blueprint(grandchild)
    parent.register_blueprint(child)
    app.register_blueprint(parent)
    client = app.test_client()
    assert client.get("/p").status_code == 200
    assert client.get("/c").status_code == 200  # inherits the parent's exemption
    assert client.get("/g").status_code == 401  # its own requirement wins


def test_blueprint_registered_under_another_name_keeps_its_requirement(make_app: Any) -> None:
    # the document makes everything public, only the decorator protects the blueprint
    app, auth = _decorated_app(make_app, doc3({}, security=[]))
    bp = Blueprint("admin", __name__)
    auth.require("hid", "hsec")(bp)
    bp.add_url_rule("/users", "users", view)
    app.register_blueprint(bp, url_prefix="/admin")
    app.register_blueprint(bp, url_prefix="/admin2", name="admin_v2")
    cid, secret = new_client(app)
    client = app.test_client()
    for url in ("/admin/users", "/admin2/users"):
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=headers(cid)).status_code == 401, url
        assert client.get(url, headers=headers(cid, secret)).status_code == 200, url


# -- schemes that are not API keys -----------------------------------------------------------------


def _oauth_spec(security: Any) -> dict[str, Any]:
    return doc3({"/data": {"get": op()}}, security=security, schemes={**SCHEMES, "oauth": OAUTH})


def test_oauth2_without_handler_is_never_public(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = build(make_app, _oauth_spec([{"oauth": []}]), [("/data",)])
    with pytest.raises(SpecError, match=r"oauth.*@auth\.scheme_handler"):
        auth_of(app).routes(app)
    resp = app.test_client().get("/data", headers={"Authorization": "Bearer anything"})
    assert resp.status_code == 503
    assert resp.get_json() == MISCONFIGURED
    assert any("oauth" in r.getMessage() for r in caplog.records)


def test_oauth2_with_handler_enforces_its_verdict(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    app = build(make_app, _oauth_spec([{"oauth": []}]), [("/data",)])
    seen = []

    @auth_of(app).scheme_handler("oauth")
    def check_token(req: Any) -> Any:
        seen.append(req.path)
        token = req.headers.get("Authorization", "")
        if token == "Bearer boom":
            raise RuntimeError("token service down")
        return {"sub": "svc"} if token == "Bearer good" else None

    auth_of(app).routes(app)  # resolvable now
    client = app.test_client()
    assert client.get("/data", headers={"Authorization": "Bearer good"}).get_json() == {"client": None, "args": {}}
    resp = client.get("/data", headers={"Authorization": "Bearer bad"})
    assert (resp.status_code, resp.get_json()["moreInformation"]) == (401, "Credentials rejected")
    assert client.get("/data").status_code == 401
    resp = client.get("/data", headers={"Authorization": "Bearer boom"})
    assert resp.status_code == 503 and resp.get_json() == MISCONFIGURED
    assert any("oauth" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert seen == ["/data"] * 4


def test_api_key_or_oauth2(make_app: Any) -> None:
    app = build(make_app, _oauth_spec([{"hid": [], "hsec": []}, {"oauth": []}]), [("/data",)])
    auth_of(app).scheme_handler("oauth")(lambda req: req.headers.get("Authorization") == "Bearer good")
    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/data", headers=headers(cid, secret)).get_json()["client"] == cid
    assert client.get("/data", headers={"Authorization": "Bearer good"}).get_json()["client"] is None
    assert client.get("/data").status_code == 401
    assert client.get("/data", headers={**headers(cid, "wrong"), "Authorization": "Bearer bad"}).status_code == 401


def test_api_key_and_oauth2(make_app: Any) -> None:
    app = build(make_app, _oauth_spec([{"hid": [], "oauth": []}]), [("/data",)])
    auth_of(app).scheme_handler("oauth")(lambda req: req.headers.get("Authorization") == "Bearer good")
    cid, _ = new_client(app)
    client = app.test_client()
    assert client.get("/data", headers={**headers(cid), "Authorization": "Bearer good"}).get_json()["client"] == cid
    assert client.get("/data", headers=headers(cid)).status_code == 401
    assert client.get("/data", headers={"Authorization": "Bearer good"}).status_code == 401


def test_oauth2_route_exempted_needs_no_handler(make_app: Any) -> None:
    spec = doc3({"/data": {"get": op([{"oauth": []}])}}, schemes={**SCHEMES, "oauth": OAUTH})
    app = make_app(spec=spec, routes=False)
    app.add_url_rule("/data", "data", auth_of(app).exempt(view))
    auth_of(app).routes(app)
    assert app.test_client().get("/data").status_code == 200


# -- CORS preflight ----------------------------------------------------------------------------------

PREFLIGHT = {"Origin": "https://web.example", "Access-Control-Request-Method": "GET"}


def _cors_app(make_app: Any, **config: Any) -> Flask:
    spec = doc3(
        {
            "/items": {"get": op()},
            "/guarded": {"get": op(), "options": op([{"hid": []}])},
            "/openopts": {"get": op(), "options": op([])},
        }
    )
    return build(
        make_app, spec, [("/items", "GET"), ("/guarded", "GET", "OPTIONS"), ("/openopts", "GET", "OPTIONS")], **config
    )


@pytest.mark.parametrize(
    ("mode", "path", "with_header", "expected"),
    [
        ("auto", "/items", True, 200),  # options not documented: preflight passes
        ("auto", "/items", False, 401),  # a plain OPTIONS is not a preflight
        ("auto", "/guarded", True, 401),  # documented options: enforced as documented
        ("auto", "/openopts", True, 200),
        ("auto", "/openopts", False, 200),
        ("enforce", "/items", True, 401),
        ("enforce", "/guarded", True, 401),
        ("allow", "/guarded", True, 200),
        ("allow", "/guarded", False, 401),
        ("allow", "/items", True, 200),
    ],
)
def test_cors_preflight(make_app: Any, mode: str, path: str, with_header: bool, expected: int) -> None:
    app = _cors_app(make_app, CLIENTAUTH_CORS_PREFLIGHT=mode)
    hdrs = PREFLIGHT if with_header else {"Origin": "https://web.example"}
    assert app.test_client().options(path, headers=hdrs).status_code == expected


def test_preflight_does_not_open_the_actual_method(make_app: Any) -> None:
    app = _cors_app(make_app)
    client = app.test_client()
    assert client.get("/items", headers=PREFLIGHT).status_code == 401
    cid, _ = new_client(app)
    assert client.options("/guarded", headers={**PREFLIGHT, **headers(cid)}).status_code == 200


def test_preflight_on_an_undescribed_route(make_app: Any) -> None:
    app = build(make_app, doc3({}, security=None), [("/x",)])
    client = app.test_client()
    assert client.options("/x", headers=PREFLIGHT).status_code == 200
    assert client.options("/x").status_code == 403
    assert client.get("/x").status_code == 403


def test_bad_cors_mode_is_refused(make_app: Any) -> None:
    with pytest.raises(RuntimeError, match="CLIENTAUTH_CORS_PREFLIGHT"):
        make_app(CLIENTAUTH_CORS_PREFLIGHT="sometimes", create_tables=False)


def test_request_object_is_untouched_by_the_check(make_app: Any) -> None:
    app = build(make_app, doc3({"/items": {"get": op([{"qid": []}])}}), [])

    @app.route("/items")
    def items() -> Any:
        return jsonify(args=request.args.to_dict(flat=False))

    cid, _ = new_client(app)
    resp = app.test_client().get(f"/items?client_id={cid}&page=2")
    assert resp.get_json() == {"args": {"client_id": [cid], "page": ["2"]}}


def test_class_based_view_decorators(make_app: Any) -> None:
    from flask.views import MethodView

    app, auth = _decorated_app(make_app)

    @auth.require("hid", "hsec")
    class Guarded(MethodView):
        def get(self) -> str:
            return "ok"

    @auth.exempt
    class Free(MethodView):
        def get(self) -> str:
            return "ok"

    app.add_url_rule("/open", view_func=Guarded.as_view("guarded"))  # public in the document
    app.add_url_rule("/closed", view_func=Free.as_view("free"))
    cid, secret = new_client(app)
    client = app.test_client()
    assert client.get("/open").status_code == 401
    assert client.get("/open", headers=headers(cid, secret)).status_code == 200
    assert client.get("/closed").status_code == 200


def test_flask_static_route_follows_the_global_requirement_unless_exempted(make_app: Any, tmp_path: Any) -> None:
    app, _ = _decorated_app(make_app)
    static = tmp_path / "static"
    static.mkdir()
    (static / "logo.txt").write_text("logo")
    app.static_folder = str(static)
    client = app.test_client()
    assert client.get("/static/logo.txt").status_code == 401  # secure by default
    app2, auth2 = _decorated_app(make_app)
    app2.static_folder = str(static)
    auth2.exempt(app2.view_functions["static"])
    resp = app2.test_client().get("/static/logo.txt")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "logo"
    resp.close()
