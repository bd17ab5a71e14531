"""``$ref``: path items and operations written as references, in the document and in other files."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from flask_clientauth import Policy, SpecError, load_spec

from conftest import HID, HSEC, AppFactory

OK = {"200": {"description": "ok"}}


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative name -> YAML text) under ``root``; the first one is the document."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / next(iter(files))


def described(policy: Policy) -> str:
    return policy.describe()


def by_label(spec: Any) -> dict[str, Any]:
    return {op.label: op for op in spec.operations}


#: A bundler's split layout (Redocly's ``split``): paths/*.yaml with the operations, the schemes and
#: responses in components/, operations referring to files of their own, a path-level server.
SPLIT_LAYOUT = {
    "openapi.yaml": """\
        openapi: {version}
        info: {{title: Split, version: "1"}}
        servers: [{{url: /api}}]
        components:
          securitySchemes:
            clientId: {{$ref: components/securitySchemes/client_id.yaml}}
            clientSecret: {{$ref: "components/securitySchemes/keys.yaml#/clientSecret"}}
        paths:
          /users:
            $ref: paths/users.yaml
          /users/{{id}}:
            $ref: "paths/users_%7Bid%7D.yaml"
          /admin:
            get:
              $ref: operations/admin-get.yaml
          /status:
            get:
              security: []
              responses: {{"200": {{description: ok}}}}
        """,
    "components/securitySchemes/client_id.yaml": """\
        type: apiKey
        in: header
        name: X-IBM-Client-Id
        """,
    "components/securitySchemes/keys.yaml": """\
        clientSecret: {$ref: "#/definitions/secret"}
        definitions:
          secret: {type: apiKey, in: header, name: X-IBM-Client-Secret}
        """,
    "components/responses/ok.yaml": """\
        description: ok
        """,
    "paths/users.yaml": """\
        get:
          security: [{clientId: []}]
          responses: {"200": {$ref: ../components/responses/ok.yaml}}
        post:
          $ref: ../operations/create-user.yaml
        """,
    "paths/users_{id}.yaml": """\
        servers: [{url: "https://api.example.com/v2"}]
        get:
          $ref: "#/x-operations/getUser"
        delete:
          $ref: "../operations/delete-user.yaml#/operation"
        x-operations:
          getUser:
            security: [{clientId: [], clientSecret: []}]
            responses: {"200": {description: ok}}
        """,
    "operations/create-user.yaml": """\
        security: [{clientId: [], clientSecret: []}]
        responses: {"201": {description: created}}
        """,
    "operations/delete-user.yaml": """\
        operation: {$ref: "#/x-real"}
        x-real:
          security: [{clientId: [], clientSecret: []}]
          servers: [{url: /internal}]
          responses: {"204": {description: deleted}}
        """,
    "operations/admin-get.yaml": """\
        security: [{clientId: [], clientSecret: []}]
        servers: [{url: "https://admin.example.com/admin-api"}]
        responses: {"200": {description: ok}}
        """,
}


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_split_multi_file_layout_keeps_every_operations_requirement(tmp_path: Path, version: str) -> None:
    files = dict(SPLIT_LAYOUT)
    files["openapi.yaml"] = files["openapi.yaml"].format(version=version)
    spec = load_spec(write(tmp_path, files))
    assert spec.schemes["clientId"].param == "X-IBM-Client-Id"
    assert spec.schemes["clientSecret"].key_type == "client_secret"  # a local ref inside a referenced file
    ops = by_label(spec)
    assert {label: described(op.policy) for label, op in ops.items()} == {
        "GET /users": "id",
        "POST /users": "id+secret",  # a file referred to by a file: relative to paths/
        "GET /users/{id}": "id+secret",  # "#/..." inside paths/users_{id}.yaml points into that file
        "DELETE /users/{id}": "id+secret",  # a chain: a file's pointer to a local ref in that file
        "GET /admin": "id+secret",  # an operation (not a path item) written as a $ref
        "GET /status": "public",
    }
    # the servers they carry: the path item's, and an operation's own
    assert ops["GET /users"].prefixes == ("/api",)
    assert ops["GET /users/{id}"].prefixes == ("/v2",)
    assert ops["DELETE /users/{id}"].prefixes == ("/internal",)
    assert ops["GET /admin"].prefixes == ("/admin-api",)
    # where each came from, for `flask clients routes`
    assert ops["GET /users"].ref == "paths/users.yaml#/get"
    assert ops["POST /users"].ref == "operations/create-user.yaml#"
    assert ops["GET /users/{id}"].ref == "paths/users_{id}.yaml#/x-operations/getUser"
    assert ops["DELETE /users/{id}"].ref == "operations/delete-user.yaml#/x-real"
    assert ops["GET /admin"].ref == "operations/admin-get.yaml#"
    assert ops["GET /status"].ref is None


def test_split_layout_is_enforced_by_the_app(make_app: AppFactory, tmp_path: Path) -> None:
    files = dict(SPLIT_LAYOUT)
    files["openapi.yaml"] = files["openapi.yaml"].format(version="3.0.3")
    path = write(tmp_path / "doc", files)
    app = make_app(spec=str(path), routes=False)
    app.add_url_rule("/admin-api/admin", "admin", lambda: "admin")
    app.add_url_rule("/api/users", "users", lambda: "users", methods=["GET", "POST"])
    store = app.extensions["clientauth"].store
    record, secret = store.create("app")
    auth = app.extensions["test_auth"]
    rows = {(r.method, r.rule): r for r in auth.routes(app)}
    assert rows[("GET", "/admin-api/admin")].policy.describe() == "id+secret"
    client = app.test_client()
    only_id = {"X-IBM-Client-Id": record.client_id}
    both = {**only_id, "X-IBM-Client-Secret": secret}
    assert client.get("/admin-api/admin", headers=only_id).status_code == 401  # not public, not id-only
    assert client.get("/admin-api/admin", headers=both).status_code == 200
    assert client.post("/api/users", headers=only_id).status_code == 401
    assert client.get("/api/users", headers=only_id).status_code == 200


def _vendor_document(count: int) -> dict[str, Any]:
    """A vendor-style document: every operation is a $ref into a section of its own."""
    doc: dict[str, Any] = {
        "openapi": "3.0.1",
        "info": {"title": "Vendor", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID, "clientSecret": HSEC}},
        "security": [{"clientId": []}],
        "x-operations": {},
        "paths": {},
    }
    for i in range(count):
        doc["x-operations"][f"op{i}"] = {
            "operationId": f"op{i}",
            "security": [{"clientId": [], "clientSecret": []}],
            "responses": OK,
        }
        doc["paths"][f"/things{i}/{{id}}"] = {"get": {"$ref": f"#/x-operations/op{i}"}}
    return doc


def test_every_operation_a_ref_keeps_its_own_requirement_not_the_global_one(make_app: AppFactory) -> None:
    doc = _vendor_document(300)
    spec = load_spec(doc)
    assert len(spec.operations) == 300
    assert all(op.policy.describe() == "id+secret" for op in spec.operations)  # not the global "id"
    assert {op.ref for op in spec.operations} == {f"#/x-operations/op{i}" for i in range(300)}
    assert spec.operations[7].ref == "#/x-operations/op7"
    app = make_app(spec=doc, routes=False)
    app.add_url_rule("/things250/<id>", "t250", lambda id: "ok")
    record, _ = app.extensions["clientauth"].store.create("app")
    resp = app.test_client().get("/things250/1", headers={"X-IBM-Client-Id": record.client_id})
    assert resp.status_code == 401
    assert resp.get_json()["moreInformation"] == "Client secret missing"


def test_every_operation_a_ref_into_files_as_yaml(tmp_path: Path) -> None:
    paths = {f"/p{i}": {"post": {"$ref": f"ops/op{i}.yaml"}} for i in range(50)}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID, "clientSecret": HSEC}},
        "paths": paths,
    }
    (tmp_path / "ops").mkdir()
    for i in range(50):
        op = {"security": [{"clientId": [], "clientSecret": []}], "responses": OK}
        (tmp_path / "ops" / f"op{i}.yaml").write_text(yaml.safe_dump(op))
    (tmp_path / "api.yaml").write_text(yaml.safe_dump(doc))
    spec = load_spec(tmp_path / "api.yaml")
    assert [op.policy.describe() for op in spec.operations] == ["id+secret"] * 50  # not public


def test_path_item_ref_with_sibling_operations_keeps_both() -> None:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {
            "securitySchemes": {"clientId": HID, "clientSecret": HSEC},
            "pathItems": {"items": {"get": {"security": [{"clientId": []}], "responses": OK}}},
        },
        "paths": {
            "/items": {
                "$ref": "#/components/pathItems/items",
                "summary": "3.1 allows summary and description next to a $ref",
                "post": {"security": [{"clientId": [], "clientSecret": []}], "responses": OK},
            }
        },
    }
    ops = by_label(load_spec(doc))
    assert ops["GET /items"].policy.describe() == "id"
    assert ops["POST /items"].policy.describe() == "id+secret"  # today's code dropped it: public


def test_sibling_that_contradicts_the_ref_target_is_an_error() -> None:
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID}},
        "x-items": {"get": {"security": [{"clientId": []}], "responses": OK}},
        "paths": {"/items": {"$ref": "#/x-items", "get": {"security": [], "responses": OK}}},
    }
    with pytest.raises(SpecError) as info:
        load_spec(doc)
    assert info.value.where == "path /items"
    assert "'get' is written both next to a $ref and in its target '#/x-items'" in info.value.rule


def test_security_next_to_an_operation_ref_whose_target_has_none_is_an_error() -> None:
    """3.1 ignores a Reference's siblings (the global requirement applies), a merge would make it public."""
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID}},
        "security": [{"clientId": []}],
        "x-ops": {"list": {"responses": OK}},
        "paths": {"/items": {"get": {"$ref": "#/x-ops/list", "security": []}}},
    }
    with pytest.raises(SpecError) as info:
        load_spec(doc)
    assert "'security' is written next to a $ref whose target '#/x-ops/list' has none" in str(info.value)


@pytest.mark.parametrize(
    "ref",
    [
        "https://example.com/ops.yaml#/get",
        "http://example.com/ops.yaml",
        "//example.com/ops.yaml#/get",
        "file:///etc/ops.yaml",
    ],
)
@pytest.mark.parametrize("level", ["path item", "operation", "scheme"])
def test_remote_refs_are_refused(tmp_path: Path, ref: str, level: str) -> None:
    paths: dict[str, Any] = {"/a": {"get": {"responses": OK}}}
    schemes: dict[str, Any] = {"clientId": HID}
    if level == "path item":
        paths["/a"] = {"$ref": ref}
    elif level == "operation":
        paths["/a"] = {"get": {"$ref": ref}}
    else:
        schemes["clientId"] = {"$ref": ref}
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": schemes},
        "paths": paths,
    }
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)
    assert "remote references are not supported" in info.value.rule
    assert repr(ref) in info.value.rule
    where = {"path item": "path /a", "operation": "operation GET /a", "scheme": "components.securitySchemes.clientId"}
    assert info.value.where == where[level]


def test_remote_ref_inside_a_referenced_file_names_that_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "api.yaml": """\
                openapi: 3.0.3
                info: {title: t, version: "1"}
                paths:
                  /a: {$ref: paths/a.yaml}
                """,
            "paths/a.yaml": """\
                get: {$ref: "https://vendor.example/ops.yaml#/a"}
                """,
        },
    )
    with pytest.raises(
        SpecError, match=r"operation GET /a: \$ref 'https://vendor\.example/ops\.yaml#/a' \(in paths/a\.yaml\)"
    ):
        load_spec(path)


def test_circular_refs_across_files_are_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "api.yaml": """\
                openapi: 3.1.0
                info: {title: t, version: "1"}
                paths:
                  /a: {$ref: "a.yaml#/item"}
                  /b:
                    get: {$ref: "#/paths/~1b/get"}
                """,
            "a.yaml": """\
                item: {$ref: "b.yaml#/item"}
                """,
            "b.yaml": """\
                item: {$ref: "a.yaml#/item"}
                """,
        },
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert "path /a: circular $ref 'a.yaml#/item' (in b.yaml)" in message
    assert "operation GET /b: circular $ref '#/paths/~1b/get'" in message  # both reported


def test_ref_to_a_file_from_a_dict_document_is_an_error() -> None:
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {"$ref": "ops.yaml"}}}}
    with pytest.raises(
        SpecError, match=re.escape("operation GET /a: $ref 'ops.yaml' points to a file, but the spec is not a file")
    ):
        load_spec(doc)
