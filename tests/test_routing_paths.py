"""Each request is held to the documented path it actually is, not only to its Flask rule's template.

OpenAPI matches concrete paths before templated ones: ``/items/<id>`` also serves ``/items/export``,
which the document may secure on its own; ``/files/<path:name>`` serves ``/files/private/...``.
``/reports`` and ``/reports/`` are two documented paths; two operations on one path are an error.
The real-server tests check the same through gunicorn (sync and gthread workers).
"""

from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.routing import BaseConverter

from flask_clientauth import SpecError
from servers import HTTP_TIMEOUT, Server, example_env, free_port

from conftest import (
    ID_AND_SECRET,
    MISCONFIGURED,
    NOT_DESCRIBED,
    auth_of,
    build,
    doc3,
    headers,
    new_client,
    op,
    sqlite_with_client,
)

ID_ONLY = [{"hid": []}]

#: ``/items/{id}`` public, ``/items/export`` needs ID + secret; ``/files/...`` from public to deeper and
#: stricter; the document's global requirement is ID only, so neither can pass as "undescribed".
PATHS: dict[str, Any] = {
    "/items/{id}": {"get": op([]), "delete": op([])},
    "/items/export": {"get": op(ID_AND_SECRET)},
    "/files/{name}": {"get": op([])},
    "/files/private/{name}": {"get": op(ID_AND_SECRET)},
    "/files/private/{name}/meta": {"get": op(ID_ONLY)},
}


def _items_app(make_app: Any, **config: Any) -> Any:
    return build(
        make_app, doc3(PATHS, security=ID_ONLY), [("/items/<id>", "GET", "DELETE"), ("/files/<path:name>",)], **config
    )


def test_a_documented_literal_path_under_a_variable_rule_keeps_its_requirement(make_app: Any) -> None:
    app = _items_app(make_app)
    auth_of(app).routes(app)
    client = app.test_client()
    cid, secret = new_client(app)
    assert client.get("/items/123").status_code == 200
    for url in ("/items/export", "/items/ex%70ort"):  # percent-encoded: the path Werkzeug matched
        resp = client.get(url)
        assert resp.status_code == 401, url
        assert resp.get_json()["moreInformation"] == "Client ID missing"
        assert client.get(url, headers=headers(cid)).status_code == 401, url
        assert client.get(url, headers=headers(cid, secret)).status_code == 200, url
    assert client.head("/items/export").status_code == 401  # HEAD follows the path's GET
    assert client.head("/items/1").status_code == 200


def test_a_method_the_concrete_path_does_not_document_is_undescribed(make_app: Any) -> None:
    # DELETE /items/{id} is public, but /items/export documents no DELETE: the template's weaker
    # requirement must not apply; without a global requirement the request is not described
    spec = doc3(PATHS, security=None)
    app = build(make_app, spec, [("/items/<id>", "GET", "DELETE")])
    client = app.test_client()
    assert client.delete("/items/7").status_code == 200
    resp = client.delete("/items/export")
    assert (resp.status_code, resp.get_json()) == (403, NOT_DESCRIBED)


def test_a_variable_rule_the_document_does_not_describe_still_serves_its_documented_paths(make_app: Any) -> None:
    spec = doc3({"/items/export": {"get": op(ID_AND_SECRET)}}, security=[])
    app = build(make_app, spec, [("/items/<id>",)])
    client = app.test_client()
    assert client.get("/items/123").status_code == 200  # undescribed: the global (empty) requirement
    assert client.get("/items/export").status_code == 401


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/files/report.txt", 200),
        ("/files/a/b/report.txt", 200),  # the path converter: /files/{name} as today
        ("/files/private/x", 401),
        ("/files/private/a/b", 401),  # deeper than /files/private/{name}: still under it, not public
        ("/files/x/../private/y", 401),  # what the view would resolve the name to
        ("/files/private//x", 401),
    ],
)
def test_path_converter_reaching_deeper_documented_paths(make_app: Any, url: str, expected: int) -> None:
    app = _items_app(make_app)
    assert app.test_client().get(url).status_code == expected


def test_path_converter_picks_the_most_specific_deeper_path(make_app: Any) -> None:
    app = _items_app(make_app)
    cid, secret = new_client(app)
    client = app.test_client()
    # /files/private/{name}/meta asks for the ID only; /files/private/{name} for the secret too
    assert client.get("/files/private/x/meta", headers=headers(cid)).status_code == 200
    assert client.get("/files/private/x", headers=headers(cid)).status_code == 401
    assert client.get("/files/private/x", headers=headers(cid, secret)).status_code == 200
    assert client.get("/files/private/x/meta").status_code == 401


_UUID = str(uuid.UUID(int=42))


@pytest.mark.parametrize(
    ("rule", "literal", "other"),
    [
        ("/items/<int:item_id>", "/items/42", "/items/7"),
        ("/u/<uuid:u>", f"/u/{_UUID}", f"/u/{uuid.UUID(int=7)}"),
        ("/items/<string(length=2):code>", "/items/ab", "/items/cd"),
    ],
)
def test_any_converter_that_can_match_a_documented_literal(make_app: Any, rule: str, literal: str, other: str) -> None:
    template = rule.rsplit("/", 1)[0] + "/{id}"
    spec = doc3({template: {"get": op([])}, literal: {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = build(make_app, spec, [(rule,)])
    client = app.test_client()
    assert client.get(other).status_code == 200
    assert client.get(literal).status_code == 401


def test_rules_that_cannot_reach_a_more_specific_path_cost_one_dict_lookup(make_app: Any) -> None:
    # <int:...> never serves "export"; a default converter never serves "/": no per-request matching
    spec = doc3(
        {
            "/n/{id}": {"get": op([])},
            "/n/export": {"get": op()},
            "/d/{id}": {"get": op([])},
            "/d/{id}/secret": {"get": op()},
        },
        security=ID_ONLY,
    )
    app = build(make_app, spec, [("/n/<int:id>",), ("/d/<id>",), ("/items/<id>",)])
    rows = auth_of(app).routes(app)
    assert [r for r in rows if r.path is not None] == []
    table = app.extensions["clientauth"].table()
    assert table.concrete == {}
    assert {(rule.rule, m) for rule in app.url_map.iter_rules() for m in rule.methods or ()} == {
        (rule.rule, m)
        for rule in app.url_map.iter_rules()
        for m in rule.methods or ()
        if (id(rule), m) in table.policies
    }


# -- /reports and /reports/ ---------------------------------------------------------------------------------

REPORTS = doc3({"/reports": {"get": op([])}, "/reports/": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)


def test_trailing_slash_paths_keep_their_own_requirements(make_app: Any) -> None:
    app = build(make_app, REPORTS, [("/reports",), ("/reports/",)])
    assert {
        (r.rule, r.operation) for r in auth_of(app).routes(app) if r.method == "GET" and "static" not in r.rule
    } == {
        ("/reports", "GET /reports"),
        ("/reports/", "GET /reports/"),
    }
    client = app.test_client()
    assert client.get("/reports").status_code == 200
    assert client.get("/reports/").status_code == 401


def test_a_rule_serving_both_forms_holds_each_to_its_own_path(make_app: Any) -> None:
    app = make_app(spec=REPORTS, routes=False)
    app.add_url_rule("/reports", "reports", lambda: "ok", strict_slashes=False)
    client = app.test_client()
    assert client.get("/reports").status_code == 200
    assert client.get("/reports/").status_code == 401


def test_a_slash_rule_redirects_the_bare_path_and_serves_its_own(make_app: Any) -> None:
    app = build(make_app, REPORTS, [("/reports/",)])
    client = app.test_client()
    assert client.get("/reports").status_code == 308  # Flask's redirect: no view runs
    assert client.get("/reports/").status_code == 401


def test_one_documented_form_still_matches_the_other_rule(make_app: Any) -> None:
    app = build(make_app, doc3({"/items": {"get": op([])}}, security=ID_ONLY), [("/items/",)])
    assert app.test_client().get("/items/").status_code == 200


@pytest.mark.parametrize(
    ("paths", "extra", "named"),
    [
        (
            {"/x/{a}": {"get": op([])}, "/x/{b}": {"get": op(ID_AND_SECRET)}},
            {},
            ["GET /x/{a}", "GET /x/{b}"],
        ),
        (
            {"/v1/admin": {"get": op(ID_AND_SECRET)}, "/admin": {"servers": [{"url": "/v1"}], "get": op([])}},
            {},
            ["GET /v1/admin", "GET /admin under the server prefix /v1"],
        ),
        (
            {"/admin": {"get": op(ID_AND_SECRET)}, "/v1/admin": {"get": {**op([]), "servers": [{"url": "/"}]}}},
            {"servers": [{"url": "https://api.example.com/v1"}]},
            ["GET /admin under the server prefix /v1", "GET /v1/admin"],
        ),
    ],
    ids=["equivalent-templates", "path-level-server", "operation-level-server"],
)
def test_two_operations_on_one_path_are_a_start_up_error(
    make_app: Any, paths: dict[str, Any], extra: dict[str, Any], named: list[str]
) -> None:
    app = build(make_app, doc3(paths, security=ID_ONLY, **extra), [("/x/<a>",), ("/v1/admin",)])
    with pytest.raises(SpecError) as info:
        auth_of(app).routes(app)
    message = str(info.value)
    assert message.startswith("<dict>: ")
    for label in named:
        assert label in message
    assert app.test_client().get("/x/1").status_code == 503
    assert app.test_client().get("/v1/admin").status_code == 503


def test_one_template_with_different_methods_is_no_collision(make_app: Any) -> None:
    spec = doc3({"/x/{a}": {"get": op([])}, "/x/{b}": {"post": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = build(make_app, spec, [("/x/<a>", "GET", "POST")])
    client = app.test_client()
    assert client.get("/x/1").status_code == 200
    assert client.post("/x/1").status_code == 401


# -- one slash form documented: it stands for both ------------------------------------------------------------

EXPORT = doc3({"/items/{id}": {"get": op([])}, "/items/export": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)


@pytest.mark.parametrize(
    ("rule", "strict", "url"),
    [
        ("/items/<id>/", True, "/items/export/"),
        ("/items/<id>", False, "/items/export/"),
        ("/items/<id>/", False, "/items/export"),
    ],
    ids=["slash-rule", "bare-rule-not-strict", "slash-rule-not-strict"],
)
def test_the_other_slash_form_of_a_path_documented_in_one_form_keeps_its_requirement(
    make_app: Any, rule: str, strict: bool, url: str
) -> None:
    app = make_app(spec=EXPORT, routes=False)
    app.add_url_rule(rule, "item", lambda id: "item " + id, strict_slashes=strict)
    client = app.test_client()
    cid, secret = new_client(app)
    assert client.get(url, follow_redirects=True).status_code == 401
    assert client.get("/items/export", follow_redirects=True).status_code == 401
    assert client.get(url, headers=headers(cid, secret)).status_code == 200
    assert client.get(url.replace("export", "7")).status_code == 200
    paths = {r.path for r in auth_of(app).routes(app) if r.method == "GET"}
    assert "/items/export" in paths  # listed as served, with its requirement
    assert auth_of(app).state(app).table().unserved(app.url_map.iter_rules()) == []


def test_a_catch_all_rule_holds_the_other_slash_form_to_the_documented_path(make_app: Any) -> None:
    spec = doc3({"/api/items/{id}": {"get": op([])}, "/api/items/export": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = build(make_app, spec, [("/api/<path:p>",)])
    client = app.test_client()
    assert client.get("/api/items/7/").status_code == 200
    assert client.get("/api/items/export").status_code == 401
    assert client.get("/api/items/export/").status_code == 401


def test_a_variable_rule_serving_both_documented_forms_holds_each_to_its_own(make_app: Any) -> None:
    spec = doc3(
        {
            "/items/{id}": {"get": op(ID_AND_SECRET)},
            "/items/export": {"get": op(ID_AND_SECRET)},
            "/items/export/": {"get": op([])},
        },
        security=ID_ONLY,
    )
    app = make_app(spec=spec, routes=False)
    app.add_url_rule("/items/<id>", "item", lambda id: "item " + id, strict_slashes=False)
    client = app.test_client()
    assert client.get("/items/export/").status_code == 200
    assert client.get("/items/export").status_code == 401
    assert client.get("/items/7/").status_code == 401


# -- converters that normalise their value: the path is what the view receives ---------------------------------


class Lower(BaseConverter):
    def to_python(self, value: str) -> str:
        return value.lower()


class Unbuildable(BaseConverter):
    def to_url(self, value: Any) -> str:
        raise ValueError("cannot build")


UUID = "0000000a-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("rule", "documented", "urls", "other"),
    [
        ("/nums/<int:n>", "/nums/42", ["/nums/42", "/nums/042", "/nums/%D9%A4%D9%A2"], "/nums/7"),  # Arabic-Indic 42
        ("/f/<float:x>", "/f/1.5", ["/f/1.5", "/f/1.50", "/f/01.5"], "/f/2.5"),
        ("/u/<uuid:u>", f"/u/{UUID}", [f"/u/{UUID}", f"/u/{UUID.upper()}"], f"/u/{UUID.replace('a', 'b')}"),
        ("/c/<lower:x>", "/c/special", ["/c/special", "/c/SPECIAL", "/c/Spec%49al"], "/c/Other"),
    ],
    ids=["int", "float", "uuid", "custom"],
)
def test_a_converter_that_normalises_its_value_cannot_dodge_the_documented_path(
    make_app: Any, rule: str, documented: str, urls: list[str], other: str
) -> None:
    template = rule.split("<")[0] + "{v}"
    spec = doc3({template: {"get": op([])}, documented: {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = make_app(spec=spec, routes=False)
    app.url_map.converters["lower"] = Lower
    app.add_url_rule(rule, "v", lambda **kw: repr(kw))
    client = app.test_client()
    cid, secret = new_client(app)
    for url in urls:
        resp = client.get(url)
        assert resp.status_code == 401, url
        assert client.get(url, headers=headers(cid, secret)).status_code == 200, url
    assert client.get(other).status_code == 200


@pytest.mark.parametrize(
    ("rule", "documented", "canonical"),
    [
        ("/nums/<int:n>", "/nums/042", "/nums/42"),
        ("/f/<float:x>", "/f/1.50", "/f/1.5"),
        ("/u/<uuid:u>", f"/u/{UUID.upper()}", f"/u/{UUID}"),
        ("/c/<lower:x>", "/c/SPECIAL", "/c/special"),
    ],
    ids=["int", "float", "uuid", "custom"],
)
def test_a_documented_literal_the_converter_spells_otherwise_is_a_start_up_error(
    make_app: Any, rule: str, documented: str, canonical: str
) -> None:
    """``/nums/042`` protected under ``<int:n>``: ``/nums/42`` gives the view the same n under the
    template's (public) requirement, so the protected literal could never be held to its own."""
    template = rule.split("<")[0] + "{v}"
    spec = doc3({template: {"get": op([])}, documented: {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = make_app(spec=spec, routes=False)
    app.url_map.converters["lower"] = Lower
    app.add_url_rule(rule, "v", lambda **kw: repr(kw))
    with pytest.raises(SpecError) as info:
        auth_of(app).routes(app)
    message = str(info.value)
    assert f"the documented path {documented!r} reaches {rule}" in message and repr(canonical) in message
    assert app.test_client().get(canonical).status_code == 503  # every request refused until fixed


def test_values_a_url_value_preprocessor_takes_are_read_from_the_path(make_app: Any) -> None:
    spec = doc3({"/{lang}/nums/{n}": {"get": op([])}, "/{lang}/nums/42": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = make_app(spec=spec, routes=False)
    app.url_value_preprocessor(lambda endpoint, values: values.pop("lang") if values else None)
    app.add_url_rule("/<lang>/nums/<int:n>", "num", lambda n: str(n))
    client = app.test_client()
    assert client.get("/en/nums/7").status_code == 200
    assert client.get("/en/nums/042").status_code == 401
    assert client.get("/en/nums/42").status_code == 401


def test_a_path_that_cannot_be_rebuilt_is_refused(make_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    spec = doc3({"/b/{x}": {"get": op([])}, "/b/special": {"get": op(ID_AND_SECRET)}}, security=ID_ONLY)
    app = make_app(spec=spec, routes=False)
    app.url_map.converters["unbuildable"] = Unbuildable
    app.add_url_rule("/b/<unbuildable:x>", "b", lambda x: x)
    resp = app.test_client().get("/b/other")
    assert (resp.status_code, resp.get_json()) == (503, MISCONFIGURED)
    # found when the routes are resolved: the documented literal itself cannot be rebuilt
    assert "cannot rebuild the path '/b/special'" in caplog.text


# -- overlapping templates: the more specific wins, whatever the order -------------------------------------------


@pytest.mark.parametrize("reverse", [False, True], ids=["variable-first", "pdf-first"])
def test_a_segment_with_literal_text_is_more_specific_than_a_variable(make_app: Any, reverse: bool) -> None:
    paths = {"/reports/{id}": {"get": op([])}, "/reports/{id}.pdf": {"get": op(ID_AND_SECRET)}}
    if reverse:
        paths = dict(reversed(paths.items()))
    app = build(make_app, doc3(paths, security=ID_ONLY), [("/reports/<id>",), ("/reports/latest.pdf",)])
    client = app.test_client()
    cid, secret = new_client(app)
    assert client.get("/reports/7").status_code == 200
    assert client.get("/reports/7.pdf").status_code == 401
    assert client.get("/reports/7.pdf", headers=headers(cid, secret)).status_code == 200
    assert client.get("/reports/latest.pdf").status_code == 401
    rows = {(r.rule, r.path): r.operation for r in auth_of(app).routes(app) if r.method == "GET"}
    assert rows[("/reports/latest.pdf", None)] == "GET /reports/{id}.pdf"


def test_equally_specific_templates_matching_one_path_with_different_requirements_are_a_start_up_error(
    make_app: Any,
) -> None:
    spec = doc3({"/r/{a}.pdf": {"get": op(ID_AND_SECRET)}, "/r/x.{b}": {"get": op([])}}, security=ID_ONLY)
    app = build(make_app, spec, [("/r/<a>",)])
    with pytest.raises(SpecError) as info:
        auth_of(app).routes(app)
    assert "'/r/{a}.pdf' and '/r/x.{b}'" in str(info.value)
    assert app.test_client().get("/r/x.pdf").status_code == 503


def test_equally_specific_templates_with_one_requirement_are_no_error(make_app: Any) -> None:
    paths = {
        "/r/{a}.pdf": {"get": op(ID_AND_SECRET)},
        "/r/x.{b}": {"get": op(ID_AND_SECRET)},
        "/r/{c}.{d}": {"get": op([])},
    }
    app = build(make_app, doc3(paths, security=ID_ONLY), [("/r/<a>",)])
    auth_of(app).routes(app)
    client = app.test_client()
    assert client.get("/r/x.pdf").status_code == 401
    assert client.get("/r/y.pdf").status_code == 401
    assert client.get("/r/y.txt").status_code == 200


# -- flask clients routes -------------------------------------------------------------------------------------


def test_routes_lists_the_concrete_paths_a_rule_serves(make_app: Any) -> None:
    app = _items_app(make_app)
    result = app.test_cli_runner().invoke(args=["clients", "routes", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    rows = {(r["method"], r["rule"], r["path"]): r for r in data["routes"]}
    assert rows[("GET", "/items/<id>", None)]["requirement"] == "public"
    export = rows[("GET", "/items/<id>", "/items/export")]
    assert (export["operation"], export["requirement"]) == ("GET /items/export", "id+secret")
    assert rows[("DELETE", "/items/<id>", "/items/export")]["operation"] is None
    assert rows[("GET", "/files/<path:name>", "/files/private/{name}/meta")]["requirement"] == "id"
    assert "GET /items/export" not in data["unserved_operations"]
    assert "DELETE /items/<id> (path /items/export)" in data["undocumented_routes"]
    text = app.test_cli_runner().invoke(args=["clients", "routes"]).output
    line = next(line for line in text.splitlines() if line.startswith("GET ") and "= /items/export" in line)
    assert line.split()[:5] == ["GET", "/items/<id>", "=", "/items/export", "GET"]


def test_routes_lists_each_method_of_a_rule_text_once(make_app: Any) -> None:
    app = make_app(spec=doc3({"/x": {"get": op([]), "post": op()}}), routes=False)
    app.add_url_rule("/x", "read", lambda: "r", methods=["GET"])
    app.add_url_rule("/x", "write", lambda: "w", methods=["POST"])
    data = json.loads(app.test_cli_runner().invoke(args=["clients", "routes", "--json"]).output)
    methods = [r["method"] for r in data["routes"] if r["rule"] == "/x"]
    assert sorted(methods) == ["GET", "HEAD", "OPTIONS", "POST"]
    assert next(r for r in data["routes"] if r["rule"] == "/x" and r["method"] == "OPTIONS")["endpoint"] == "read"


# -- through a real server -------------------------------------------------------------------------------------

APP_MODULE = """
from flask import Flask
from flask_clientauth import ClientAuth

app = Flask("paths_app", instance_path={instance!r})
app.config.update(CLIENTAUTH_SPEC={spec!r}, CLIENTAUTH_DATABASE_URI={database!r}, CLIENTAUTH_RATELIMIT_ENABLED=False)
auth = ClientAuth(app)
app.add_url_rule("/items/<id>", "item", lambda id: "item " + id)
app.add_url_rule("/files/<path:name>", "file", lambda name: "file " + name)
app.add_url_rule("/api/status", "status", lambda: "ok")
auth.routes(app)
"""


@pytest.fixture(scope="module")
def credentials_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str, str]]:
    root = tmp_path_factory.mktemp("paths")
    database, client_id, secret = sqlite_with_client(root, "real server paths")
    spec = doc3({**PATHS, "/api/status": {"get": op([])}}, security=ID_ONLY)
    (root / "paths_app.py").write_text(
        textwrap.dedent(APP_MODULE).format(instance=str(root / "instance"), spec=spec, database=database)
    )
    yield root, database, client_id, secret


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_concrete_paths_through_gunicorn(credentials_db: tuple[Path, str, str, str], worker: str) -> None:
    root, _, cid, secret = credentials_db
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", worker]
    cmd += ["--threads", "4"] if worker == "gthread" else []  # more than 1 would turn sync into gthread
    cmd += ["--chdir", str(root), "paths_app:app"]
    server = Server(cmd, example_env(root / "instance", "openapi3"), root, port, "openapi3")
    try:
        server.wait_ready()

        def get(path: str, **kwargs: Any) -> requests.Response:
            return requests.get(server.url + path, timeout=HTTP_TIMEOUT, **kwargs)

        assert get("/items/123").status_code == 200
        resp = get("/items/export")
        assert (resp.status_code, resp.json()["moreInformation"]) == (401, "Client ID missing")
        assert get("/items/ex%70ort").status_code == 401
        assert get("/items/export", headers=headers(cid)).status_code == 401
        assert get("/items/export", headers=headers(cid, secret)).text == "item export"
        assert get("/files/public.txt").text == "file public.txt"
        assert get("/files/private/x").status_code == 401
        assert get("/files/private%2Fx").status_code == 401  # decoded by the server before routing
        assert get("/files/private/x/meta", headers=headers(cid)).text == "file private/x/meta"
    finally:
        server.stop()


NORMALISED_APP = """
from flask import Flask
from flask_clientauth import ClientAuth

app = Flask("normalised_app", instance_path={instance!r})
app.config.update(CLIENTAUTH_SPEC={spec!r}, CLIENTAUTH_DATABASE_URI={database!r}, CLIENTAUTH_RATELIMIT_ENABLED=False)
auth = ClientAuth(app)
app.add_url_rule("/s/<id>/", "slash", lambda id: "slash " + id)
app.add_url_rule("/api/<path:p>", "api", lambda p: "api " + p)
app.add_url_rule("/nums/<int:n>", "num", lambda n: "num " + str(n))
app.add_url_rule("/reports/<id>", "report", lambda id: "report " + id)
app.add_url_rule("/api/status", "status", lambda: "ok")
auth.routes(app)
"""


@pytest.mark.slow
@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_slash_forms_normalised_values_and_overlapping_templates_through_gunicorn(
    tmp_path: Path, credentials_db: tuple[Path, str, str, str], worker: str
) -> None:
    _, database, cid, secret = credentials_db
    spec = doc3(
        {
            "/s/{id}": {"get": op([])},
            "/s/export": {"get": op(ID_AND_SECRET)},
            "/api/items/{id}": {"get": op([])},
            "/api/items/export": {"get": op(ID_AND_SECRET)},
            "/nums/{n}": {"get": op([])},
            "/nums/42": {"get": op(ID_AND_SECRET)},
            "/reports/{id}": {"get": op([])},  # first in the document, less specific
            "/reports/{id}.pdf": {"get": op(ID_AND_SECRET)},
            "/api/status": {"get": op([])},
        },
        security=ID_ONLY,
    )
    instance = tmp_path / "instance"
    (tmp_path / "normalised_app.py").write_text(
        textwrap.dedent(NORMALISED_APP).format(instance=str(instance), spec=spec, database=database)
    )
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1", "-k", worker]
    cmd += ["--threads", "4"] if worker == "gthread" else []
    cmd += ["--chdir", str(tmp_path), "normalised_app:app"]
    server = Server(cmd, example_env(instance, "openapi3"), tmp_path, port, "openapi3")
    try:
        server.wait_ready()

        def get(path: str, **kwargs: Any) -> requests.Response:
            return requests.get(server.url + path, timeout=HTTP_TIMEOUT, **kwargs)

        assert get("/s/7/").text == "slash 7"
        resp = get("/s/export")  # 308 to /s/export/, followed
        assert (resp.status_code, resp.url) == (401, server.url + "/s/export/")
        assert get("/s/export/").status_code == 401
        assert get("/s/export/", headers=headers(cid, secret)).text == "slash export"
        assert get("/api/items/7/").text == "api items/7/"
        assert get("/api/items/export/").status_code == 401
        assert get("/nums/7").text == "num 7"
        for url in ("/nums/42", "/nums/042", "/nums/%D9%A4%D9%A2"):
            assert get(url).status_code == 401, url
            assert get(url, headers=headers(cid, secret)).text == "num 42", url
        assert get("/reports/7").text == "report 7"
        assert get("/reports/7.pdf").status_code == 401
        assert get("/reports/7.pdf", headers=headers(cid, secret)).text == "report 7.pdf"
    finally:
        server.stop()
