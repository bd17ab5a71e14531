"""``flask clients create --plan``, ``plan``, ``plans``, and the plan in ``show`` and ``list``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_clientauth import current_client
from servers import cli, cli_json, example_env
from test_cli import failed, ok, ok_json
from test_plans import ISSUE_PLANS, PRODUCT, SPECS, spec_with_ids

from conftest import AppFactory, FakeClock, headers

CONFIGURED = "(configured plans: bronze, gold)"


@pytest.fixture
def cli_app(make_app: AppFactory, database_url: str) -> Flask:
    return make_app(
        spec=spec_with_ids(),
        database_url=database_url,
        CLIENTAUTH_PLANS=ISSUE_PLANS,
        CLIENTAUTH_DEFAULT_PLAN="bronze",
        CLIENTAUTH_REVOCATION_INTERVAL=0,
    )


def test_create_with_a_plan_then_change_and_remove_it(cli_app: Flask) -> None:
    created = ok_json(cli_app, "create", "Partner feed", "--plan", "gold")
    cid = created["client_id"]
    assert created["plan"] == "gold"
    assert "Plan:        gold\n" in ok(cli_app, "show", cid).stdout
    assert ok_json(cli_app, "show", cid)["plan"] == "gold"

    assert ok(cli_app, "plan", cid).stdout == f"Client {cid} (Partner feed): plan gold\n"
    assert ok_json(cli_app, "plan", cid, "bronze")["plan"] == "bronze"
    said = ok(cli_app, "plan", cid, "--none").stdout
    assert said == f"Client {cid} (Partner feed): plan none (the default plan, bronze, applies)\n"
    assert ok_json(cli_app, "show", cid)["plan"] is None

    audit = [(e["action"], e["detail"]) for e in ok_json(cli_app, "audit", cid)]
    assert audit[0] == ("create", {"expires_at": None, "plan": "gold", "roles": []})
    assert audit[1:] == [
        ("plan", {"previous": "gold", "plan": "bronze"}),
        ("plan", {"previous": "bronze", "plan": None}),
    ]
    actors = {e["actor"] for e in ok_json(cli_app, "audit", cid)}
    assert len(actors) == 1 and None not in actors  # the OS user who ran the commands


def test_an_unknown_plan_is_refused_listing_the_configured_ones_and_nothing_changes(cli_app: Flask) -> None:
    result = failed(cli_app, "create", "Partner feed", "--plan", "silver")
    assert result.output == f"Error: unknown plan 'silver' {CONFIGURED}\n"
    assert ok_json(cli_app, "list") == []

    cid = ok_json(cli_app, "create", "Partner feed", "--plan", "gold")["client_id"]
    result = failed(cli_app, "plan", cid, "silver")
    assert result.output == f"Error: unknown plan 'silver' {CONFIGURED}\n"
    assert ok_json(cli_app, "show", cid)["plan"] == "gold"
    assert [e["action"] for e in ok_json(cli_app, "audit", cid)] == ["create"]

    assert "give PLAN or --none, not both" in failed(cli_app, "plan", cid, "gold", "--none").output
    assert "a plan name must be 1 to 64" in failed(cli_app, "plan", cid, "gold plan").output
    assert "no client with ID 'nope'" in failed(cli_app, "plan", "nope", "gold").output


def test_list_gives_each_clients_plan(cli_app: Flask) -> None:
    gold = ok_json(cli_app, "create", "Partner feed", "--plan", "gold")["client_id"]
    plain = ok_json(cli_app, "create", "Kiosk")["client_id"]
    lines = ok(cli_app, "list").stdout.splitlines()
    assert lines[0].split()[7:11] == ["ROLES", "PLAN", "LABEL", "NAME"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[gold][6] == "gold" and rows[plain][6] == "-"
    assert {c["client_id"]: c["plan"] for c in ok_json(cli_app, "list")} == {gold: "gold", plain: None}
    assert "Plan:        none (the default plan, bronze, applies)" in ok(cli_app, "show", plain).stdout


def test_plans_lists_limits_operations_and_clients(cli_app: Flask) -> None:
    for name, plan in (("a", "gold"), ("b", "gold"), ("c", None)):
        ok_json(cli_app, "create", name, *(("--plan", plan) if plan else ()))
    report = ok_json(cli_app, "plans")
    assert [(p["name"], p["default"], p["clients"], p["clients_by_default"]) for p in report] == [
        ("bronze", True, 0, 1),
        ("gold", False, 2, 0),
    ]
    assert report[1]["operations"] == ["GET /branches", "GET /branches/{branchId}"]
    assert report[0]["rate_limits"] == ["5 per minute", "1000 per day"] and report[0]["operations"] is None
    assert ok(cli_app, "plans").stdout == (
        "bronze (default)\n"
        "  Clients:     0 (+1 without a plan)\n"
        "  Rate limits: 5 per minute, 1000 per day\n"
        "  Operations:  all\n"
        "\n"
        "gold\n"
        "  Clients:     2\n"
        "  Rate limits: 100 per second\n"
        "  Operations:  2\n"
        "    GET /branches\n"
        "    GET /branches/{branchId}\n"
    )


def test_plans_shows_clients_on_a_plan_that_is_no_longer_configured(
    make_app: AppFactory, database_url: str, cli_app: Flask
) -> None:
    cid = ok_json(cli_app, "create", "Partner feed", "--plan", "gold")["client_id"]
    # the operator removes the gold plan from the config; the client's stored plan stays
    later = make_app(spec=spec_with_ids(), database_url=database_url, CLIENTAUTH_PLANS={"bronze": {}})
    report = ok_json(later, "plans")
    assert report[-1] == {"name": "gold", "configured": False, "default": False, "clients": 1}
    assert "gold (NOT CONFIGURED): 1 client(s) on it are refused with 403 not_in_plan" in ok(later, "plans").stdout
    assert "No default plan: clients without a plan are not limited." in ok(later, "plans").stdout
    shown = ok(later, "show", cid).stdout
    assert "Plan:        gold (not configured: its requests are refused with 403 not_in_plan)" in shown
    assert ok_json(later, "plan", cid, "bronze")["plan"] == "bronze"  # moved to a configured one


def test_plans_without_any_configured(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url=database_url)
    assert (
        ok(app, "plans").stdout
        == "No plans configured (CLIENTAUTH_PLANS, CLIENTAUTH_PRODUCT): clients are not limited.\n"
    )
    assert ok_json(app, "plans") == []
    cid = ok_json(app, "create", "Kiosk")["client_id"]
    assert "Plan:        none (not limited)" in ok(app, "show", cid).stdout
    assert "unknown plan 'gold' (configured plans: none)" in failed(app, "plan", cid, "gold").output


def test_plans_from_a_product(make_app: AppFactory, database_url: str) -> None:
    app = make_app(
        spec=str(SPECS / "branches-api.yaml"), database_url=database_url, routes=False, CLIENTAUTH_PRODUCT=str(PRODUCT)
    )
    text = ok(app, "plans").stdout
    assert (
        "read-only - Read only\n"
        "  Clients:     0\n"
        "  Rate limits: 50 per minute\n"
        "  Burst:       5 per second\n"
        "  Operations:  3\n"
        "    GET /branches\n"
        "    GET /branches/{branchId}  (10 per minute, 1000 per 7 days, instead of the plan's rate limits)\n"
        "    GET /status  (unlimited, instead of the plan's rate limits)\n"
        f"  From:        {PRODUCT}\n"
    ) in text
    assert "unlimited_Plan - Unlimited\n  Clients:     0\n  Rate limits: unlimited\n" in text


def test_a_plan_error_of_a_callable_document_is_a_one_line_cli_error(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(spec=spec_with_ids, CLIENTAUTH_PLANS={"gold": {"operations": ["listBranches"]}})
    result = failed(app, "plans")
    assert result.output.startswith("Error: <spec_with_ids()>: the plans do not fit the document: ")
    assert result.output.count("\n") == 1


@pytest.mark.slow
def test_a_plan_changed_by_the_cli_in_another_process_reaches_the_app_within_the_interval(
    make_app: AppFactory, database_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    """``flask clients plan`` run as an operator runs it (its own process, the example app's config
    on the same database): the serving app holds the client to the new plan once the revocation
    interval has passed, and not before (it has the client cached)."""
    interval = 0.5
    app = make_app(database_url=database_url, routes=False, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock)
    app.add_url_rule("/api/branches", "branches", lambda: jsonify(plan=current_client.plan))
    record, secret = app.extensions["clientauth"].store.create("Mobile app", plan="bronze")
    assert secret is not None
    env = example_env(
        tmp_path / "instance",
        "openapi2",
        CLIENTAUTH_DATABASE_URI=database_url,
        CLIENTAUTH_PLANS=json.dumps({"bronze": {"rate_limits": ["5/minute"]}, "gold": {"rate_limits": ["1/second"]}}),
    )

    def plan_seen() -> Any:
        response = app.test_client().get("/api/branches", headers=headers(record.client_id, secret))
        assert response.status_code == 200
        return response.get_json()["plan"]

    assert plan_seen() == "bronze"
    assert cli_json(env, "plan", record.client_id, "gold")["plan"] == "gold"
    assert plan_seen() == "bronze"  # cached, and the interval has not passed
    clock.advance(interval + 0.05)
    assert plan_seen() == "gold"
    refused = cli(env, "plan", record.client_id, "silver")
    assert (
        refused.returncode == 1 and refused.stderr == "Error: unknown plan 'silver' (configured plans: bronze, gold)\n"
    )
    entries = cli_json(env, "audit", record.client_id)
    assert [(e["action"], e["detail"]) for e in entries][-1] == ("plan", {"plan": "gold", "previous": "bronze"})
