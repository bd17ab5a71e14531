"""7. Start-up: an OpenAPI document of N operations matched to N Flask routes.

For each size, a YAML OpenAPI 3.0 document is written with N paths of one operation each
(methods in turn GET, POST, PUT, DELETE, PATCH), every one with a path parameter, a query
parameter and responses referring to shared component schemas, as generated documents have.
Security varies: the global requirement (id+secret), id only, public (``security: []``) and
an OR of two requirements. The app registers N matching Flask rules; one in ten is a literal
rule (``/resources17/latest``) that a spec template (``/resources17/{id}``) covers.

Timed, each the fastest of a few repeats: ``ClientAuth(app)`` (reads the file, parses the YAML,
resolves ``$ref`` and every requirement), the same from the document as a dict (no file, no
YAML: what is ours), then ``auth.routes(app)`` (the requirement of every rule and method, what
the hook then finds with one dict lookup). The µs per operation at each size show whether the
cost is linear.
"""

from __future__ import annotations

import copy
import gc
import os
import tempfile
import time
from typing import Any

import yaml
from flask import Flask

from bench_common import fmt, table

METHODS = ("get", "post", "put", "delete", "patch")


def make_document(n: int) -> dict[str, Any]:
    """A document of ``n`` operations, one per path."""
    paths: dict[str, Any] = {}
    for i in range(n):
        op: dict[str, Any] = {
            "operationId": f"op{i}",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                {"name": "fields", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Resource"}}},
                },
                "404": {"$ref": "#/components/responses/NotFound"},
            },
        }
        kind = i % 4
        if kind == 1:
            op["security"] = [{"clientId": []}]
        elif kind == 2:
            op["security"] = []
        elif kind == 3:
            op["security"] = [{"clientId": [], "clientSecret": []}, {"partnerId": [], "partnerSecret": []}]
        paths[f"/resources{i}/{{id}}"] = {METHODS[i % len(METHODS)]: op}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"Start-up benchmark ({n} operations)", "version": "1.0.0"},
        "security": [{"clientId": [], "clientSecret": []}],
        "components": {
            "securitySchemes": {
                "clientId": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"},
                "clientSecret": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"},
                "partnerId": {"type": "apiKey", "in": "header", "name": "X-Partner-Id"},
                "partnerSecret": {"type": "apiKey", "in": "header", "name": "X-Partner-Secret"},
            },
            "schemas": {
                "Resource": {
                    "type": "object",
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                }
            },
            "responses": {"NotFound": {"description": "not found"}},
        },
        "paths": paths,
    }


def make_app(n: int, spec: str | dict[str, Any]) -> Flask:
    """An app with the ``n`` routes the document describes (every tenth a literal rule)."""
    app = Flask(f"bench_startup_{n}")
    app.config.update(CLIENTAUTH_SPEC=spec, CLIENTAUTH_DATABASE_URI="sqlite://")

    def view(**kwargs: Any) -> str:
        return "ok"

    for i in range(n):
        rule = f"/resources{i}/latest" if i % 10 == 0 else f"/resources{i}/<int:id>"
        app.add_url_rule(rule, f"op{i}", view, methods=[METHODS[i % len(METHODS)].upper()])
    return app


def _time_one(n: int, spec: str | dict[str, Any]) -> dict[str, float]:
    from flask_clientauth import ClientAuth

    gc.collect()  # the garbage of the previous run is not this one's cost
    t0 = time.perf_counter()
    app = make_app(n, spec)
    t1 = time.perf_counter()
    auth = ClientAuth(app)
    t2 = time.perf_counter()
    routes = auth.routes(app)
    t3 = time.perf_counter()
    matched = sum(1 for r in routes if r.operation is not None and r.method not in ("HEAD", "OPTIONS"))
    if matched != n:
        raise RuntimeError(f"start-up: {matched} of {n} routes were matched to an operation")
    errors = [r for r in routes if r.error is not None]
    if errors:
        raise RuntimeError(f"start-up: {len(errors)} routes cannot be enforced, e.g. {errors[0]}")
    return {"flask_routes": t1 - t0, "init_app": t2 - t1, "routes": t3 - t2, "rule_methods": len(routes)}


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    rows = []
    with tempfile.TemporaryDirectory(prefix="clientauth-startup-") as tmp:
        for n in p["startup_sizes"]:
            spec_path = os.path.join(tmp, f"openapi-{n}.yaml")
            document = make_document(n)
            with open(spec_path, "w", encoding="utf-8") as fh:
                yaml.safe_dump(document, fh, sort_keys=False)
            from_file = [_time_one(n, spec_path) for _ in range(p["startup_repeats"])]
            from_dict = [_time_one(n, copy.deepcopy(document)) for _ in range(p["startup_repeats"])]
            rows.append(
                {
                    "operations": n,
                    "spec_bytes": os.path.getsize(spec_path),
                    "rule_methods": from_file[0]["rule_methods"],
                    "init_app_yaml_s": min(r["init_app"] for r in from_file),
                    "init_app_dict_s": min(r["init_app"] for r in from_dict),
                    "routes_s": min(r["routes"] for r in from_file + from_dict),
                    "flask_routes_s": min(r["flask_routes"] for r in from_file + from_dict),
                }
            )
            rows[-1]["ours_s"] = rows[-1]["init_app_yaml_s"] + rows[-1]["routes_s"]
    return {"rows": rows, "repeats": p["startup_repeats"], "yaml_c": hasattr(yaml, "CSafeLoader")}


def render(res: dict[str, Any]) -> str:
    rows = res["rows"]
    reference = next((r for r in rows if r["operations"] == 1000), rows[-1])

    def per_op(r: dict[str, Any], key: str) -> float:
        return float(r[key]) / r["operations"]

    text = table(
        [
            "operations = Flask routes",
            "YAML document",
            "ClientAuth(app) from the YAML file ms",
            "from a dict ms",
            "auth.routes(app) ms",
            "start-up total ms",
            "µs per operation (total / from a dict)",
            f"per operation vs {reference['operations']:,} (total / from a dict)",
            "(Flask's own add_url_rule ms)",
        ],
        [
            [
                f"{r['operations']:,}",
                f"{r['spec_bytes'] / 1024:,.0f} KiB",
                fmt(r["init_app_yaml_s"] * 1000),
                fmt(r["init_app_dict_s"] * 1000),
                fmt(r["routes_s"] * 1000),
                f"**{fmt(r['ours_s'] * 1000)}**" if r is reference else fmt(r["ours_s"] * 1000),
                f"{per_op(r, 'ours_s') * 1e6:.0f} / {per_op(r, 'init_app_dict_s') * 1e6:.0f}",
                f"{per_op(r, 'ours_s') / per_op(reference, 'ours_s'):.2f}× / "
                f"{per_op(r, 'init_app_dict_s') / per_op(reference, 'init_app_dict_s'):.2f}×",
                fmt(r["flask_routes_s"] * 1000),
            ]
            for r in rows
        ],
    )
    return text + (
        f"\n\nFastest of {res['repeats']} runs per size. `ClientAuth(app)` reads the file, parses the YAML "
        f"({'libyaml' if res['yaml_c'] else 'pure-Python PyYAML: install PyYAML with libyaml for faster parsing'}), "
        "resolves `$ref` and every requirement; from a dict it does the same without the file and the YAML. "
        "`auth.routes(app)` resolves the requirement of every rule and method (GET rules also answer HEAD and "
        "OPTIONS), one rule in ten through a spec template covering a literal rule. Start-up total = from the "
        "YAML file + routes. Per-operation cost staying flat as the size grows is what linear means. Target: "
        "well under 1 s for 1,000 operations."
    )
