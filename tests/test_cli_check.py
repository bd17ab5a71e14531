"""``flask clients check`` (validate the document, report everything) and what ``routes`` says of the document."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.cli import ScriptInfo

from flask_clientauth.cli import clients

from conftest import HID, HSEC, QID, AppFactory

OK = {"200": {"description": "ok"}}


def doc3(paths: dict[str, Any], *, version: str = "3.0.3", **extra: Any) -> dict[str, Any]:
    return {
        "openapi": version,
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": {"clientId": HID, "clientSecret": HSEC}},
        "paths": paths,
        **extra,
    }


def op(security: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"responses": OK, **extra}
    if security is not None:
        out["security"] = security
    return out


def invoke(app: Flask, *args: str, obj: ScriptInfo | None = None) -> Any:
    kwargs: dict[str, Any] = {} if obj is None else {"obj": obj}
    if "clients" not in app.cli.commands:  # an app without ClientAuth: `python -m flask_clientauth check`
        app.cli.add_command(clients)
    return app.test_cli_runner().invoke(args=["clients", "check", *args], **kwargs)


def test_check_a_sound_document(make_app: AppFactory) -> None:
    app = make_app(spec=doc3({"/api/status": {"get": op([])}, "/api/branches": {"get": op([{"clientId": []}])}}))
    result = invoke(app)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Spec: <dict> (OpenAPI 3.0.3)\n")
    assert "No errors found." in result.output


def _broken(tmp_path: Path) -> Path:
    """A document with four document-level problems, two validator findings and a warning."""
    doc = doc3(
        {
            "/a": {"get": op([{"nope": []}])},
            "/b": {"get": op([{"alsoNope": []}])},
            "/c": {"get": op([{"clientId": ["admin"]}])},
            "/d": {"get": {"security": [{"clientId": []}]}},  # no 'responses': the validator says so
            "/e": {"get": op(securty=[{"clientId": []}])},
        },
        security=[{"clientId": []}],
    )
    doc["components"]["securitySchemes"]["weird"] = {"type": ["apiKey"], "in": "header", "name": "X"}
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_check_reports_every_problem_of_a_document_the_app_refuses(make_app: AppFactory, tmp_path: Path) -> None:
    path = _broken(tmp_path)
    app = Flask("checked")

    def factory() -> Flask:  # the app's own factory fails: check still reports everything
        return make_app(spec=str(path), create_tables=False)

    result = invoke(app, obj=ScriptInfo(create_app=factory))
    assert result.exit_code == 1, result.output
    out = result.output
    assert out.startswith(f"Spec: {path}\n")
    assert "Validator (openapi-spec-validator " in out
    assert "$.paths['/d'].get: \"responses\" is a required property\n" in out
    refused = out.split("Flask-ClientAuth refuses the document: 4\n")[1].split("\n\n")[0]
    assert "operation GET /a, requirement #1: security scheme 'nope' is not defined" in refused
    assert "operation GET /b, requirement #1: security scheme 'alsoNope' is not defined" in refused
    assert "operation GET /c, requirement #1: API key scheme 'clientId' is required with the roles ['admin']" in refused
    assert "components.securitySchemes.weird: unknown security scheme type ['apiKey']" in refused
    assert "error(s)" in out.splitlines()[-1]


def test_check_json_and_a_path_argument(tmp_path: Path) -> None:
    path = _broken(tmp_path)
    result = invoke(Flask("any"), str(path), "--json")  # no app needed when the file is named
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["spec"] == str(path)
    assert data["validator"].startswith("openapi-spec-validator ")
    assert len(data["validator_errors"]) == 3  # the scheme's type, /d's responses, /e's securty
    assert any("responses" in e and "required property" in e for e in data["validator_errors"])
    assert len(data["errors"]) == 4
    assert data["route_errors"] == [] and data["warnings"] == []


def test_check_lists_route_problems_and_warnings(make_app: AppFactory) -> None:
    doc = doc3(
        {f"/r{i}": {"get": op([{"oauth": []}])} for i in range(15)} | {"/e": {"get": op(securty=[])}},
        security=[{"clientId": []}],
    )
    doc["components"]["securitySchemes"]["oauth"] = {"type": "oauth2", "flows": {}}
    doc["components"]["securitySchemes"]["clientId"] = {**HID, "name": "X_Client_Id"}
    app = make_app(spec=doc, routes=False)
    for i in range(15):
        app.add_url_rule(f"/r{i}", f"r{i}", lambda: "x")
    result = invoke(app, "--json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert len(data["route_errors"]) == 1  # one problem, naming all 15 routes: nothing left out
    (problem,) = data["route_errors"]
    assert "in 15 routes: " in problem and "and " not in problem.split("in 15 routes: ")[1]
    assert all(f"GET, HEAD /r{i} (operation GET /r{i})" in problem for i in range(15))
    assert any("'securty' is not 'security'" in w for w in data["warnings"])
    assert any("'X_Client_Id'" in w and "contains '_'" in w for w in data["warnings"])
    text = invoke(app).output
    assert "Routes that cannot be enforced: 1\n" in text and "Warnings: 2\n" in text


def test_check_without_the_validator_says_what_to_install(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()
    monkeypatch.setitem(sys.modules, "openapi_spec_validator", None)  # "not installed"
    result = invoke(app)
    assert result.exit_code == 1
    assert "pip install 'Flask-ClientAuth[check]'" in result.output


def test_check_never_fetches_a_remote_ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    connects: list[Any] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a) or None)
    monkeypatch.setattr(socket.socket, "connect", lambda self, *a: connects.append(a))
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(doc3({"/a": {"get": {"$ref": "https://vendor.example/ops.yaml#/a"}}})))
    result = invoke(Flask("any"), str(path), "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert any("remote references are not supported" in e for e in data["errors"])
    assert connects == []


# -- `flask clients routes` names the document's version and the $ref an operation came from ----------


@pytest.mark.parametrize("version", ["2.0", "3.0.3", "3.1.0"])
def test_routes_names_the_exact_openapi_version(make_app: AppFactory, version: str) -> None:
    if version == "2.0":
        doc: dict[str, Any] = {
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "securityDefinitions": {"clientId": QID},
            "paths": {"/a": {"get": op([{"clientId": []}])}},
        }
    else:
        doc = doc3({"/a": {"get": op([{"clientId": []}])}}, version=version)
    app = make_app(spec=doc, routes=False)
    app.add_url_rule("/a", "a", lambda: "x")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["clients", "routes"]).output.startswith(f"Spec: <dict> (OpenAPI {version})\n")
    assert json.loads(runner.invoke(args=["clients", "routes", "--json"]).output)["openapi"] == version


def test_routes_shows_operations_that_came_from_a_ref(make_app: AppFactory, tmp_path: Path) -> None:
    doc = doc3({"/a": {"get": {"$ref": "ops.yaml#/getA"}}, "/b": {"get": op([])}})
    (tmp_path / "ops.yaml").write_text(yaml.safe_dump({"getA": op([{"clientId": [], "clientSecret": []}])}))
    (tmp_path / "api.yaml").write_text(yaml.safe_dump(doc))
    app = make_app(spec=str(tmp_path / "api.yaml"), routes=False)
    app.add_url_rule("/a", "a", lambda: "x")
    app.add_url_rule("/b", "b", lambda: "x")
    runner = app.test_cli_runner()
    text = runner.invoke(args=["clients", "routes"]).output
    line_a = next(line for line in text.splitlines() if line.startswith("GET ") and " /a " in line)
    line_b = next(line for line in text.splitlines() if line.startswith("GET ") and " /b " in line)
    assert "id+secret" in line_a and line_a.endswith("operation via $ref ops.yaml#/getA")
    assert "$ref" not in line_b
    rows = json.loads(runner.invoke(args=["clients", "routes", "--json"]).output)["routes"]
    refs = {(r["method"], r["rule"]): r["ref"] for r in rows}
    assert refs[("GET", "/a")] == "ops.yaml#/getA" and refs[("GET", "/b")] is None
