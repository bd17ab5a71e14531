"""Spec loading and requirement resolution: documents from every source, ``$ref``, the seeds' rules."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask

from flask_clientauth import ClientAuth, Policy, SpecError, load_spec

from conftest import HID as ID
from conftest import HSEC as SECRET
from conftest import QID, TUTORIAL_SPEC
from conftest import QSEC as QSECRET

SPECS = Path(__file__).parent / "specs"


def document(
    version: str = "3.0.3",
    schemes: dict[str, Any] | None = None,
    security: Any = None,
    paths: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A minimal OpenAPI document of ``version`` ("2.0" or "3.x.y") with these schemes."""
    doc: dict[str, Any] = {"info": {"title": "t", "version": "1"}, "paths": paths or {}}
    schemes = {"clientId": ID, "clientSecret": SECRET} if schemes is None else schemes
    if version == "2.0":
        doc["swagger"] = "2.0"
        doc["securityDefinitions"] = schemes
    else:
        doc["openapi"] = version
        doc["components"] = {"securitySchemes": schemes}
    if security is not None:
        doc["security"] = security
    doc.update(extra)
    return doc


def get(security: Any = None) -> dict[str, Any]:
    """A path item with one GET operation (with ``security`` when given)."""
    op: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if security is not None:
        op["security"] = security
    return {"get": op}


def alternatives(policy: Policy) -> list[set[str]]:
    return [set(r.names) for r in policy.alternatives]


def policies(spec: Any) -> dict[str, Policy]:
    return {op.label: op.policy for op in spec.operations}


# -- loading the tutorial's document from every kind of source ------------------------------


def _tutorial_31() -> dict[str, Any]:
    doc = json.loads((SPECS / "tutorial-3.0.json").read_text())
    doc["openapi"] = "3.1.0"
    return doc


class _APISpecLike:
    """What apispec's ``APISpec`` looks like to us: an object with ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(TUTORIAL_SPEC)


@pytest.mark.parametrize(
    ("source", "version"),
    [
        pytest.param(SPECS / "tutorial-2.0.yaml", 2, id="2.0-yaml-path"),
        pytest.param(str(SPECS / "tutorial-2.0.yaml"), 2, id="2.0-yaml-str"),
        pytest.param(SPECS / "tutorial-3.0.json", 3, id="3.0-json-path"),
        pytest.param(TUTORIAL_SPEC, 2, id="2.0-dict"),
        pytest.param(_tutorial_31, 3, id="3.1-callable"),
        pytest.param(_APISpecLike, 2, id="callable-returning-to_dict-object"),
    ],
)
def test_tutorial_document_loads_from_every_source(source: Any, version: int) -> None:
    spec = load_spec(source)
    assert spec.version == version
    cid, secret = spec.schemes["clientIdHeader"], spec.schemes["clientSecretHeader"]
    assert (cid.type, cid.location, cid.param, cid.key_type) == ("apiKey", "header", "X-IBM-Client-Id", "client_id")
    assert (secret.location, secret.param, secret.key_type) == ("header", "X-IBM-Client-Secret", "client_secret")
    assert spec.global_policy is not None
    assert alternatives(spec.global_policy) == [{"clientIdHeader", "clientSecretHeader"}]
    ops = policies(spec)
    assert set(ops) == {"GET /branches", "GET /branches/{branchId}", "GET /status"}
    assert alternatives(ops["GET /branches"]) == [{"clientIdHeader", "clientSecretHeader"}]
    assert alternatives(ops["GET /branches/{branchId}"]) == [{"clientIdHeader"}]
    assert ops["GET /status"].public
    assert {op.prefixes for op in spec.operations} == {("/api",)}


def test_yml_extension_and_yaml_without_quotes_are_read(tmp_path: Path) -> None:
    path = tmp_path / "api.yml"
    path.write_text(yaml.safe_dump(document("2.0", security=[{"clientId": []}], paths={"/a": get()})))
    spec = load_spec(path)
    assert alternatives(policies(spec)["GET /a"]) == [{"clientId"}]


@pytest.mark.parametrize("version", ["3.0", "3.1"])
def test_unquoted_yaml_openapi_version_is_accepted(tmp_path: Path, version: str) -> None:
    # ``openapi: 3.1`` in YAML is a float; ``swagger: 2.0`` is accepted the same way.
    path = tmp_path / "api.yaml"
    path.write_text(f"openapi: {version}\ninfo: {{title: t, version: '1'}}\npaths: {{}}\n")
    assert load_spec(path).version == 3


def test_relative_path_is_resolved_from_app_root_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    (root / "openapi").mkdir(parents=True)
    shutil.copy(SPECS / "tutorial-2.0.yaml", root / "openapi" / "api.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    app = Flask("relapp", root_path=str(root), instance_path=str(tmp_path / "instance"))
    app.config.update(
        CLIENTAUTH_SPEC="openapi/api.yaml",
        CLIENTAUTH_DATABASE_URI=f"sqlite:///{tmp_path}/c.sqlite3",
        CLIENTAUTH_BCRYPT_ROUNDS=4,
    )
    ClientAuth(app)
    state = app.extensions["clientauth"]
    assert state.spec().source == str(root / "openapi" / "api.yaml")
    state.store.create_all()
    app.add_url_rule("/api/status", "status", lambda: "ok")
    app.add_url_rule("/api/branches", "branches", lambda: "ok")
    client = app.test_client()
    assert client.get("/api/status").status_code == 200
    assert client.get("/api/branches").status_code == 401
    state.engine.dispose()


def test_relative_path_not_found_names_the_resolved_path(tmp_path: Path) -> None:
    app = Flask("relapp", root_path=str(tmp_path), instance_path=str(tmp_path / "instance"))
    app.config.update(CLIENTAUTH_SPEC="missing/api.yaml", CLIENTAUTH_DATABASE_URI="sqlite://")
    with pytest.raises(SpecError) as info:
        ClientAuth(app)
    assert info.value.source == str(tmp_path / "missing" / "api.yaml")
    assert info.value.rule == "file not found"
    assert info.value.message == info.value.rule  # .rule: the deprecated name of .message
    assert str(info.value) == f"{tmp_path / 'missing' / 'api.yaml'}: file not found"


def test_callable_spec_is_called_once_on_first_use(make_app: Any) -> None:
    calls = []

    def build() -> dict[str, Any]:
        calls.append(1)
        return copy.deepcopy(TUTORIAL_SPEC)

    app = make_app(spec=build)
    assert calls == []  # apps may build their spec after init_app (blueprints, apispec)
    client = app.test_client()
    assert client.get("/api/status").status_code == 200
    assert client.get("/api/branches").status_code == 401
    assert client.get("/api/status").status_code == 200
    assert calls == [1]


def test_broken_callable_spec_fails_routes_and_closes_every_request(
    make_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def build() -> dict[str, Any]:
        doc = copy.deepcopy(TUTORIAL_SPEC)
        doc["securityDefinitions"]["clientIdHeader"]["in"] = "cookie"
        return doc

    app = make_app(spec=build)
    auth = app.extensions["test_auth"]
    with pytest.raises(SpecError, match="'in: cookie' is not allowed"):
        auth.routes(app)
    resp = app.test_client().get("/api/status")  # public in the document, but the document is unusable
    assert resp.status_code == 503
    assert resp.get_json() == {
        "httpCode": "503",
        "httpMessage": "Service Unavailable",
        "moreInformation": "API security is misconfigured",
    }
    assert any("'in: cookie' is not allowed" in r.getMessage() for r in caplog.records)


def test_unsupported_spec_value_and_missing_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="unsupported CLIENTAUTH_SPEC value of type int"):
        load_spec(42)  # type: ignore[arg-type]
    app = Flask("nospec", instance_path=str(tmp_path))
    with pytest.raises(RuntimeError, match="CLIENTAUTH_SPEC must be set"):
        ClientAuth(app)


# -- $ref ----------------------------------------------------------------------------------------


def test_refs_to_schemes_and_path_items_local_and_in_other_files() -> None:
    spec = load_spec(SPECS / "refs-3.1.yaml")
    cid, secret = spec.schemes["clientId"], spec.schemes["clientSecret"]
    assert (cid.location, cid.param, cid.key_type) == ("query", "client_id", "client_id")
    assert (secret.location, secret.param, secret.key_type) == ("query", "client_secret", "client_secret")
    ops = policies(spec)
    assert ops["GET /status"].public
    assert alternatives(ops["GET /branches"]) == [{"clientId"}]


def test_ref_in_swagger_2_security_definitions() -> None:
    doc = document(
        "2.0",
        schemes={"clientId": {"$ref": "#/x-keys/id"}},
        security=[{"clientId": []}],
        paths={"/a": get()},
    )
    doc["x-keys"] = {"id": ID}
    assert load_spec(doc).schemes["clientId"].param == "X-IBM-Client-Id"


@pytest.mark.parametrize(
    ("ref", "rule"),
    [
        ("#/components/securitySchemes/clientId", "circular $ref"),
        ("#/components/nothing/here", "does not resolve"),
        ("other.yaml#/x", "points to a file, but the spec is not a file"),
    ],
)
def test_bad_refs(ref: str, rule: str) -> None:
    doc = document(schemes={"clientId": {"$ref": ref}})
    with pytest.raises(SpecError, match=re.escape(rule)) as info:
        load_spec(doc)
    assert "components.securitySchemes.clientId" in info.value.rule


def test_ref_to_a_missing_file_names_that_file(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(document(paths={"/a": {"$ref": "gone.yaml#/a"}})))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)  # the document, the path and the missing file
    assert info.value.rule == f"path /a: $ref 'gone.yaml#/a': {tmp_path / 'gone.yaml'}: file not found"


# -- documents that cannot be enforced as written: SpecError(source, rule) -----------------------


def _with(version: str, **kw: Any) -> dict[str, Any]:
    return document(version, **kw)


BAD_DOCUMENTS = [
    ("not-openapi", {"info": {"title": "t"}, "paths": {}}, "not an OpenAPI document"),
    ("swagger-1.2", {"swagger": "1.2", "paths": {}}, "unsupported swagger version '1.2'"),
    ("openapi-4", {"openapi": "4.0.0", "paths": {}}, "unsupported openapi version '4.0.0'"),
    (
        "unknown-type",
        _with("3.0.3", schemes={"k": {"type": "apikey", "in": "header", "name": "X"}}),
        "components.securitySchemes.k: unknown security scheme type 'apikey' for OpenAPI 3",
    ),
    (
        "3x-type-in-2.0",
        _with("2.0", schemes={"k": {"type": "http", "scheme": "bearer"}}),
        "securityDefinitions.k: unknown security scheme type 'http' for OpenAPI 2",
    ),
    (
        "apikey-without-name",
        _with("3.0.3", schemes={"k": {"type": "apiKey", "in": "header"}}),
        "components.securitySchemes.k: an apiKey scheme needs a non-empty 'name'",
    ),
    (
        "apikey-blank-name",
        _with("2.0", schemes={"k": {"type": "apiKey", "in": "header", "name": "  "}}),
        "securityDefinitions.k: an apiKey scheme needs a non-empty 'name'",
    ),
    (
        "cookie-in-2.0",
        _with("2.0", schemes={"k": {"type": "apiKey", "in": "cookie", "name": "cid"}}),
        "securityDefinitions.k: 'in: cookie' is not allowed for an apiKey in OpenAPI 2 (allowed: header, query)",
    ),
    (
        "in-body",
        _with("3.1.0", schemes={"k": {"type": "apiKey", "in": "body", "name": "cid"}}),
        "'in: body' is not allowed for an apiKey in OpenAPI 3 (allowed: header, query, cookie)",
    ),
    (
        "bad-x-key-type",
        _with("3.0.3", schemes={"k": {**ID, "x-key-type": "secret"}}),
        "x-key-type must be 'client_id' or 'client_secret', not 'secret'",
    ),
    (
        "undefined-scheme-global",
        _with("3.0.3", security=[{"nope": []}]),
        "global security, requirement #1: security scheme 'nope' is not defined",
    ),
    (
        "undefined-scheme-operation",
        _with("2.0", paths={"/a": get([{"clientId": []}, {"clientId": [], "nope": []}])}),
        "operation GET /a, requirement #2: security scheme 'nope' is not defined",
    ),
    (
        "two-client-ids",
        _with("3.0.3", schemes={"a": ID, "b": QID}, security=[{"a": [], "b": []}]),
        "at most one client ID key per requirement (a, b)",
    ),
    (
        "two-secrets",
        _with("3.0.3", schemes={"a": SECRET, "b": {**SECRET, "name": "X-Other-Secret"}}, security=[{"a": [], "b": []}]),
        "at most one client secret key per requirement (a, b)",
    ),
    (
        "three-keys",
        _with(
            "3.0.3",
            schemes={"a": ID, "b": SECRET, "c": {**SECRET, "name": "X-Other-Secret"}},
            security=[{"a": [], "b": [], "c": []}],
        ),
        "more than two API key schemes in one requirement (a, b, c)",
    ),
    (
        "secret-without-id",
        _with("2.0", paths={"/a": get([{"clientSecret": []}])}),
        "operation GET /a, requirement #1: client secret key 'clientSecret' is applied without a client ID key",
    ),
    (
        "different-locations",
        _with("3.0.3", schemes={"a": ID, "b": QSECRET}, security=[{"a": [], "b": []}]),
        "client ID (header) and client secret (query) must be sent in the same location",
    ),
    ("security-not-a-list", _with("3.0.3", security={"clientId": []}), "'security' must be a list"),
    ("path-without-slash", _with("3.0.3", paths={"a": get()}), "path 'a' must start with '/'"),
    ("basepath-without-slash", _with("2.0", basePath="api"), "basePath 'api' must start with '/'"),
]


@pytest.mark.parametrize(("doc", "rule"), [pytest.param(d, r, id=i) for i, d, r in BAD_DOCUMENTS])
def test_bad_document_dict_fails_init_app(make_app: Any, doc: dict[str, Any], rule: str) -> None:
    with pytest.raises(SpecError) as info:
        make_app(spec=doc, create_tables=False, routes=False)
    assert info.value.source == "<dict>"
    assert rule in info.value.rule
    assert str(info.value) == f"<dict>: {info.value.rule}"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("doc", "rule"), [pytest.param(d, r, id=i) for i, d, r in BAD_DOCUMENTS])
def test_bad_document_file_fails_init_app_naming_the_file(
    make_app: Any, tmp_path: Path, doc: dict[str, Any], rule: str, suffix: str
) -> None:
    path = tmp_path / f"api{suffix}"
    path.write_text(json.dumps(doc) if suffix == ".json" else yaml.safe_dump(doc))
    with pytest.raises(SpecError) as info:
        make_app(spec=str(path), create_tables=False, routes=False)
    assert str(info.value).startswith(f"{path}: ")
    assert rule in info.value.rule


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("bad.yaml", "openapi: 3.0.0\npaths: {unclosed\n", "invalid YAML"),
        ("bad.json", '{"openapi": "3.0.0",', "invalid JSON"),
        ("list.yaml", "- openapi: 3.0.0\n", "the document is not a mapping"),
        ("empty.yaml", "", "the document is not a mapping"),
        ("latin1.yaml", b"openapi: '3.0.0'\ninfo: {title: \xe9}\n", "cannot read the file"),
    ],
)
def test_unreadable_files_name_the_file(
    make_app: Any, tmp_path: Path, name: str, content: str | bytes, rule: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SpecError) as info:
        make_app(spec=str(path), create_tables=False, routes=False)
    assert info.value.source == str(path)
    assert info.value.rule.startswith(rule)


def test_missing_file_fails_init_app(make_app: Any, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nowhere\.yaml: file not found$"):
        make_app(spec=str(tmp_path / "nowhere.yaml"), create_tables=False, routes=False)


# -- key types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "x_key_type", "expected"),
    [
        ("X-IBM-Client-Id", None, "client_id"),
        ("X-IBM-Client-ID", None, "client_id"),
        ("X-IBM-Client-Secret", None, "client_secret"),
        ("client_secret", None, "client_secret"),
        ("APP_SECRET_TOKEN", None, "client_secret"),
        ("mySeCrEt", None, "client_secret"),
        ("X-API-Key", None, "client_id"),
        ("password", None, "client_id"),  # only "secret" makes a secret, as the seeds say
        ("X-App-Password", "client_secret", "client_secret"),
        ("X-Not-A-Secret", "client_id", "client_id"),
    ],
)
@pytest.mark.parametrize("version", ["2.0", "3.0.3"])
def test_key_type_from_x_key_type_else_from_the_name(
    version: str, name: str, x_key_type: str | None, expected: str
) -> None:
    body: dict[str, Any] = {"type": "apiKey", "in": "header", "name": name}
    if x_key_type:
        body["x-key-type"] = x_key_type
    assert load_spec(document(version, schemes={"k": body})).schemes["k"].key_type == expected


def test_x_key_type_lets_the_name_be_anything_in_a_requirement() -> None:
    schemes = {
        "appKey": {"type": "apiKey", "in": "header", "name": "X-App-Key", "x-key-type": "client_id"},
        "appPass": {"type": "apiKey", "in": "header", "name": "X-App-Pass", "x-key-type": "client_secret"},
    }
    spec = load_spec(document(schemes=schemes, security=[{"appKey": [], "appPass": []}]))
    (req,) = spec.global_policy.alternatives  # type: ignore[union-attr]
    assert req.client_id is not None and req.client_id.param == "X-App-Key"
    assert req.client_secret is not None and req.client_secret.param == "X-App-Pass"


def test_non_api_key_schemes_are_kept_without_key_type() -> None:
    schemes = {"oauth": {"type": "oauth2", "flows": {}}, "bearer": {"type": "http", "scheme": "bearer"}}
    spec = load_spec(document(schemes=schemes, security=[{"oauth": []}]))
    assert spec.schemes["oauth"].type == "oauth2" and spec.schemes["oauth"].key_type is None
    assert not spec.schemes["bearer"].is_api_key


# -- requirement resolution ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.0", "3.0.3", "3.1.0"])
def test_global_and_operation_requirements(version: str) -> None:
    schemes = {"clientId": ID, "clientSecret": SECRET, "queryId": QID, "querySecret": QSECRET}
    paths = {
        "/global": get(),
        "/override": get([{"clientId": []}]),
        "/public": get([]),
        "/either": get([{"clientId": [], "clientSecret": []}, {"queryId": [], "querySecret": []}]),
        "/optional": get([{"clientId": [], "clientSecret": []}, {}]),
        "/only-empty": get([{}]),
        "/dupes": get(
            [
                {"clientId": [], "clientSecret": []},
                {"clientSecret": [], "clientId": []},
                {"clientId": [], "clientSecret": []},
            ]
        ),
    }
    spec = load_spec(document(version, schemes, [{"clientId": [], "clientSecret": []}], paths))
    ops = policies(spec)
    both = {"clientId", "clientSecret"}
    assert alternatives(ops["GET /global"]) == [both]
    assert not ops["GET /global"].optional
    assert alternatives(ops["GET /override"]) == [{"clientId"}]  # the operation overrides, not adds
    assert ops["GET /public"].public and not ops["GET /public"].optional
    assert alternatives(ops["GET /either"]) == [both, {"queryId", "querySecret"}]  # OR of AND groups
    assert alternatives(ops["GET /optional"]) == [both]
    assert ops["GET /optional"].optional and not ops["GET /optional"].public
    assert ops["GET /only-empty"].public
    assert alternatives(ops["GET /dupes"]) == [both]  # one requirement, however often and in any order


def test_no_security_anywhere_makes_operations_public() -> None:
    spec = load_spec(document(paths={"/a": get(), "/b": {"post": {"responses": {}}}}))
    assert spec.global_policy is None
    assert all(op.policy.public for op in spec.operations)


def test_requirement_knows_its_id_and_secret_keys() -> None:
    spec = load_spec(document("2.0", security=[{"clientSecret": [], "clientId": []}]))
    (req,) = spec.global_policy.alternatives  # type: ignore[union-attr]
    assert req.client_id is not None and req.client_id.name == "clientId"
    assert req.client_secret is not None and req.client_secret.name == "clientSecret"
    assert req.describe() == "id+secret"


def test_every_documented_method_becomes_an_operation() -> None:
    methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
    item: dict[str, Any] = {m: {"responses": {}} for m in methods}
    item["parameters"] = []
    item["summary"] = "not an operation"
    spec = load_spec(document(paths={"/a": item, "x-extension": {"get": {}}}))
    assert sorted(op.method for op in spec.operations) == sorted(m.upper() for m in methods)
