"""Plans from ``CLIENTAUTH_PLANS`` and from API Connect product documents: limits, operations,
the default plan, and the start-up errors for what cannot be honoured."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from limits import RateLimitItem

from flask_clientauth import ClientAuth, SpecError
from flask_clientauth.plans import Plan, Plans, UnknownPlan, format_limit, parse_limit
from flask_clientauth.settings import ConfigurationError

from conftest import MISCONFIGURED, TUTORIAL_SPEC, AppFactory

SPECS = Path(__file__).parent / "specs" / "plans"
PRODUCT = SPECS / "branches-product.yaml"


def spec_with_ids() -> dict[str, Any]:
    """The tutorial's document, its operation on one branch named ``getBranch``."""
    spec = copy.deepcopy(TUTORIAL_SPEC)
    spec["paths"]["/branches/{branchId}"]["get"]["operationId"] = "getBranch"
    return spec


ISSUE_PLANS = {  # the issue's example
    "bronze": {"rate_limits": ["5/minute", "1000/day"]},
    "gold": {"rate_limits": ["100/second"], "operations": ["GET /branches", "getBranch"]},
}


def limit(item: RateLimitItem) -> tuple[int, int, str]:
    return item.amount, item.multiples, item.GRANULARITY.name


# -- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5/minute", (5, 1, "minute")),
        ("1000/day", (1000, 1, "day")),
        ("100 per second", (100, 1, "second")),
        ("100 per 2 hours", (100, 2, "hour")),
        ("100/1hour", (100, 1, "hour")),  # API Connect's form
        ("10/30second", (10, 30, "second")),
        ("200/5minute", (200, 5, "minute")),
        ("1000/1week", (1000, 7, "day")),  # API Connect has weeks, `limits` does not
        (" 3 / 1 Day ", (3, 1, "day")),
    ],
)
def test_parse_limit_reads_limits_and_api_connect_syntax(text: str, expected: tuple[int, int, str]) -> None:
    assert limit(parse_limit(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5/fortnight", "unknown unit 'fortnight'"),
        ("five per minute", "not a rate limit"),
        ("0/minute", "at least 1 call"),
        ("5/0minute", "at least 1 call"),
        ("unlimited", "not a rate limit"),
    ],
)
def test_parse_limit_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_limit(text)
    assert "'5/minute'" in str(caught.value) or "at least 1" in str(caught.value)


def test_format_limit_is_what_people_write() -> None:
    assert [format_limit(parse_limit(t)) for t in ("5/minute", "10/30second", "1/1week")] == [
        "5 per minute",
        "10 per 30 seconds",
        "1 per 7 days",
    ]


# -- plans from config -----------------------------------------------------------------------


def test_config_plans_resolve_operation_ids_and_cover_what_they_list(make_app: AppFactory) -> None:
    app = make_app(spec=spec_with_ids(), CLIENTAUTH_PLANS=ISSUE_PLANS, CLIENTAUTH_DEFAULT_PLAN="bronze")
    plans = ClientAuth.state(app).plans
    assert sorted(plans) == ["bronze", "gold"]
    bronze, gold = plans["bronze"], plans["gold"]
    assert plans.default is bronze
    assert gold.operations == {"GET /branches", "GET /branches/{branchId}"}  # getBranch resolved to its label
    assert gold.covers("GET /branches") and gold.covers("GET /branches/{branchId}")
    assert not gold.covers("GET /status")
    assert not gold.covers(None)  # a route outside the document: a plan that lists operations never covers it
    assert bronze.operations is None and bronze.covers("GET /status") and bronze.covers(None)
    assert [limit(i) for i in bronze.limits_for("GET /status")] == [(5, 1, "minute"), (1000, 1, "day")]
    assert [limit(i) for i in gold.limits_for("GET /branches")] == [(100, 1, "second")]
    assert gold.to_dict() == {
        "name": "gold",
        "title": "",
        "description": "",
        "source": "CLIENTAUTH_PLANS",
        "rate_limits": ["100 per second"],
        "burst_limits": [],
        "operations": ["GET /branches", "GET /branches/{branchId}"],
        "operation_limits": {},
    }


def test_for_client_gives_the_own_plan_then_the_default_and_fails_closed_on_an_unknown_one() -> None:
    bronze, gold = Plan("bronze", (parse_limit("5/minute"),)), Plan("gold")
    plans = Plans([bronze, gold], default="bronze")
    assert plans.for_client("gold") is gold
    assert plans.for_client(None) is bronze
    with pytest.raises(UnknownPlan) as caught:
        plans.for_client("silver")  # stored, but no longer configured
    assert caught.value.name == "silver"
    assert str(caught.value) == "unknown plan 'silver' (configured plans: bronze, gold)"
    unlimited = Plans([gold])
    assert unlimited.default is None and unlimited.for_client(None) is None  # not limited


def test_no_plans_configured_means_empty_plans(make_app: AppFactory) -> None:
    plans = ClientAuth.state(make_app()).plans
    assert len(plans) == 0 and plans.default is None and plans.for_client(None) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"CLIENTAUTH_PLANS": {"bronze": {"rate_limits": ["5/fortnight"]}}},
            "CLIENTAUTH_PLANS['bronze']['rate_limits']: '5/fortnight': unknown unit 'fortnight'",
        ),
        (
            {"CLIENTAUTH_PLANS": {"gold": {"operations": ["GET /branch"]}}},
            "CLIENTAUTH_PLANS['gold']['operations']: 'GET /branch' is neither an operation ('METHOD /path') nor "
            "an operationId of <dict>; did you mean 'GET /branches'",
        ),
        (
            {"CLIENTAUTH_PLANS": {"gold": {"operations": ["getBranches"]}}},
            "CLIENTAUTH_PLANS['gold']['operations']: 'getBranches' is neither",
        ),
        (
            {"CLIENTAUTH_PLANS": {"gold": {"rate_limit": ["5/minute"]}}},
            "CLIENTAUTH_PLANS['gold']: unknown key(s) 'rate_limit'",
        ),
        ({"CLIENTAUTH_PLANS": {"gold plan": {}}}, "CLIENTAUTH_PLANS: a plan name must be 1 to 64"),
        ({"CLIENTAUTH_PLANS": ["gold"]}, "CLIENTAUTH_PLANS must be a dict"),
        (
            {"CLIENTAUTH_PLANS": ISSUE_PLANS, "CLIENTAUTH_DEFAULT_PLAN": "silver"},
            "CLIENTAUTH_DEFAULT_PLAN: unknown plan 'silver' (configured plans: bronze, gold)",
        ),
        (
            {"CLIENTAUTH_DEFAULT_PLAN": "bronze"},
            "CLIENTAUTH_DEFAULT_PLAN: unknown plan 'bronze' (configured plans: none)",
        ),
        ({"CLIENTAUTH_PRODUCT": 3}, "CLIENTAUTH_PRODUCT must be the path of a file"),
    ],
)
def test_bad_plan_config_fails_start_up_naming_key_plan_and_entry(
    make_app: AppFactory, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make_app(spec=spec_with_ids(), **config)
    assert message in str(caught.value)


def test_a_callable_document_resolves_plans_on_first_use_and_a_bad_plan_refuses_requests(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A callable CLIENTAUTH_SPEC is loaded on first use: plans are resolved then, and a plan that
    does not fit the document refuses every request with 503, as any start-up error would."""
    good = make_app(spec=spec_with_ids, CLIENTAUTH_PLANS=ISSUE_PLANS)
    assert ClientAuth.state(good).plans["gold"].operations == {"GET /branches", "GET /branches/{branchId}"}

    bad = make_app(spec=spec_with_ids, CLIENTAUTH_PLANS={"gold": {"operations": ["listBranches"]}})
    with caplog.at_level(logging.CRITICAL, logger="flask_clientauth"):
        for _ in range(2):
            response = bad.test_client().get("/api/status")  # even a public operation: fail closed
            assert response.status_code == 503 and response.get_json() == MISCONFIGURED
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(logged) == 1
    assert "the plans do not fit the document: CLIENTAUTH_PLANS['gold']['operations']: 'listBranches'" in logged[0]


# -- plans from an API Connect product -------------------------------------------------------


def product_app(make_app: AppFactory, product: Any = PRODUCT, **config: Any) -> Flask:
    return make_app(spec=str(SPECS / "branches-api.yaml"), routes=False, CLIENTAUTH_PRODUCT=str(product), **config)


def test_product_plans_read_every_shape(make_app: AppFactory) -> None:
    plans = ClientAuth.state(product_app(make_app, CLIENTAUTH_DEFAULT_PLAN="default-plan")).plans
    assert list(plans) == ["default-plan", "gold", "200Per5minHardLimit", "unlimited_Plan", "read-only"]
    assert plans.default is plans["default-plan"]
    default = plans["default-plan"]
    assert [limit(i) for i in default.rate_limits] == [(100, 1, "hour")]  # no hard-limit: enforced
    assert (default.title, default.description, default.source) == ("Default Plan", "Default Plan", str(PRODUCT))

    gold = plans["gold"]
    assert [limit(i) for i in gold.rate_limits] == [(1000, 1, "hour"), (10000, 1, "day")]
    assert [limit(i) for i in gold.burst_limits] == [(10, 1, "second")]
    assert gold.operations is None and gold.covers("DELETE /branches/{branchId}")
    assert [(c.scope, limit(c.item)) for c in gold.counters("GET /branches")] == [
        ("burst", (10, 1, "second")),
        ("plan", (1000, 1, "hour")),
        ("plan", (10000, 1, "day")),
    ]

    assert [limit(i) for i in plans["200Per5minHardLimit"].rate_limits] == [(200, 5, "minute")]  # rate-limit (v5)
    unlimited = plans["unlimited_Plan"]
    assert unlimited.unlimited and unlimited.limits_for("POST /branches") == ()

    read_only = plans["read-only"]
    assert read_only.operations == {"GET /branches", "GET /branches/{branchId}", "GET /status"}
    assert not read_only.covers("POST /branches") and not read_only.covers("DELETE /branches/{branchId}")
    # an operation's own limits take the place of the plan's rate limits (API Connect's override); burst stays
    assert [(c.key, limit(c.item)) for c in read_only.counters("GET /branches/{branchId}")] == [
        ("burst", (5, 1, "second")),
        ("operation:GET /branches/{branchId}", (10, 1, "minute")),
        ("operation:GET /branches/{branchId}", (1000, 7, "day")),
    ]
    assert [limit(i) for i in read_only.limits_for("GET /branches")] == [(5, 1, "second"), (50, 1, "minute")]
    assert [limit(i) for i in read_only.limits_for("GET /status")] == [(5, 1, "second")]  # unlimited override
    assert read_only.to_dict()["operation_limits"] == {
        "GET /branches/{branchId}": ["10 per minute", "1000 per 7 days"],
        "GET /status": [],
    }


def test_a_relative_product_path_is_resolved_like_the_documents(make_app: AppFactory, tmp_path: Path) -> None:
    app = Flask("relative", root_path=str(tmp_path))
    (tmp_path / "api").mkdir()
    for name in ("branches-api.yaml", "branches-product.yaml"):
        shutil.copy(SPECS / name, tmp_path / "api" / name)
    app.config.update(
        CLIENTAUTH_SPEC="api/branches-api.yaml",
        CLIENTAUTH_PRODUCT="api/branches-product.yaml",
        CLIENTAUTH_DATABASE_URI="sqlite://",
    )
    ClientAuth(app)
    assert "read-only" in ClientAuth.state(app).plans


def test_plans_and_product_together_merge_and_a_name_in_both_is_refused(make_app: AppFactory) -> None:
    both = product_app(make_app, CLIENTAUTH_PLANS={"internal": {}}, CLIENTAUTH_DEFAULT_PLAN="internal")
    plans = ClientAuth.state(both).plans
    assert "internal" in plans and "gold" in plans and plans.default is plans["internal"]
    with pytest.raises(ConfigurationError) as caught:
        product_app(make_app, CLIENTAUTH_PLANS={"gold": {"rate_limits": ["1/second"]}})
    assert str(caught.value) == (
        f"CLIENTAUTH_PLANS and CLIENTAUTH_PRODUCT ({PRODUCT}) both define the plan 'gold': rename or remove one of them"
    )


def write_product(tmp_path: Path, change: Any) -> Path:
    product = yaml.safe_load(PRODUCT.read_text())
    change(product)
    path = tmp_path / "product.yaml"
    path.write_text(yaml.safe_dump(product))
    return path


def _soft(p: dict[str, Any]) -> None:
    p["plans"]["gold"]["rate-limits"]["per-hour"]["hard-limit"] = False


def _two_apis(p: dict[str, Any]) -> None:
    p["apis"]["accounts1.0.0"] = {"name": "accounts:1.0.0"}


def _unit(p: dict[str, Any]) -> None:
    p["plans"]["gold"]["burst-limits"]["Default burst-limit"]["value"] = "10/1fortnight"


def _assembly(p: dict[str, Any]) -> None:
    p["plans"]["gold"]["assembly-rate-limit"] = {"x": {"value": "1/1second"}}


def _operation(p: dict[str, Any]) -> None:
    p["plans"]["read-only"]["apis"]["branches1.0.0"]["operations"].append({"operationId": "listAccounts"})


def _other_api(p: dict[str, Any]) -> None:
    p["plans"]["read-only"]["apis"]["accounts"] = {}


def _soft_burst(p: dict[str, Any]) -> None:
    p["plans"]["gold"]["burst-limits"]["Default burst-limit"]["hard-limit"] = False


def _no_product_key(p: dict[str, Any]) -> None:
    del p["product"]


def _operation_key(p: dict[str, Any]) -> None:
    p["plans"]["read-only"]["apis"]["branches1.0.0"]["operations"][0]["burst-limits"] = {}


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (_soft, "plan gold, rate-limits per-hour", "cannot honour hard-limit: False (a soft limit only logs"),
        (_soft_burst, "plan gold, burst-limits Default burst-limit", "cannot honour hard-limit: False (burst"),
        (_two_apis, None, "cannot honour a product of 2 APIs (accounts1.0.0, branches1.0.0)"),
        (_unit, "plan gold, burst-limits Default burst-limit", "cannot honour the limit '10/1fortnight': unknown unit"),
        (_assembly, "plan gold", "cannot honour the plan key(s) 'assembly-rate-limit'"),
        (_operation, "plan read-only, api branches1.0.0, operation 4", "'listAccounts' is neither an operation"),
        (_other_api, "plan read-only, api accounts", "the plan names an API the product does not list"),
        (_no_product_key, None, "not an API Connect product document"),
        (
            _operation_key,
            "plan read-only, api branches1.0.0, operation 1",
            "cannot honour 'burst-limits' on an operation",
        ),
    ],
)
def test_a_product_that_cannot_be_honoured_fails_start_up_naming_file_plan_and_feature(
    make_app: AppFactory, tmp_path: Path, change: Any, where: str | None, message: str
) -> None:
    path = write_product(tmp_path, change)
    with pytest.raises(SpecError) as caught:
        product_app(make_app, path)
    error = caught.value
    assert error.source == str(path)
    assert error.where == where and message in error.problem, str(error)


def test_a_product_with_several_problems_names_them_all(make_app: AppFactory, tmp_path: Path) -> None:
    path = write_product(tmp_path, lambda p: (_soft(p), _operation(p)))
    with pytest.raises(SpecError) as caught:
        product_app(make_app, path)
    assert str(caught.value).startswith(f"{path}: 2 problems in the product:")
    assert {e.where for e in caught.value.errors} == {
        "plan gold, rate-limits per-hour",
        "plan read-only, api branches1.0.0, operation 4",
    }


def test_a_missing_product_file_fails_start_up(make_app: AppFactory, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        product_app(make_app, tmp_path / "missing.yaml")
