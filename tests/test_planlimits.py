"""Plan enforcement in-process: rate limits per client (all of its credentials), 429 and 403 in API
Connect's shape, ``X-RateLimit-*`` headers, the app's error handler, memory and Redis counters, a
counter store that fails (closed or open), ``flask clients usage``.

Redis-backed tests read ``CLIENTAUTH_TEST_REDIS_URL`` and skip, saying so, without it; those that
stop Redis start their own ``redis-server`` on a free port. The real-server tests are in
``test_planlimits_e2e.py``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify

from flask_clientauth import errors
from flask_clientauth.errors import AuthFailure
from flask_clientauth.planlimits import PlanLimiter
from flask_clientauth.plans import Plan, parse_limit
from flask_clientauth.settings import ConfigurationError
from redisserver import RedisServer
from servers import free_port

from conftest import ID_AND_SECRET, AppFactory, FakeClock, auth_of, doc3, headers, new_client, op

RATE_LIMITED = {"httpCode": "429", "httpMessage": "Too Many Requests", "moreInformation": "Rate Limit exceeded"}
NOT_IN_PLAN = {
    "httpCode": "403",
    "httpMessage": "Forbidden",
    "moreInformation": "Operation not included in the client's plan",
}
UNAVAILABLE = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "Rate limit service unavailable",
}
REDIS_VAR = "CLIENTAUTH_TEST_REDIS_URL"

PLANS = {
    "bronze": {"rate_limits": ["3/minute", "1000/day"]},
    "gold": {"rate_limits": ["100/second"], "operations": ["GET /branches"]},
    "free": {},
}


def redis_url() -> str:
    url = os.environ.get(REDIS_VAR)
    if not url:
        pytest.skip(f"redis: set {REDIS_VAR} (e.g. redis://127.0.0.1:6379/0) to run the Redis-backed tests")
    return url


def plan_app(make_app: AppFactory, *, default: str | None = "bronze", plans: Any = None, **config: Any) -> Flask:
    app = make_app(CLIENTAUTH_PLANS=plans or PLANS, CLIENTAUTH_DEFAULT_PLAN=default, **config)
    limiter = app.extensions["clientauth"].limiter
    if limiter is not None:
        limiter.reset()  # a shared Redis keeps counts from earlier runs (primary keys start at 1 again)
    return app


def get(app: Flask, cid: str, secret: str | None = None, path: str = "/api/branches") -> Any:
    return app.test_client(use_cookies=False).get(path, headers=headers(cid, secret))


def assert_limited(resp: Any, limit: int) -> int:
    """A 429 in API Connect's shape with the limit's headers; returns Retry-After."""
    assert resp.status_code == 429
    assert resp.get_json() == RATE_LIMITED
    assert resp.headers["X-RateLimit-Limit"] == str(limit)
    assert resp.headers["X-RateLimit-Remaining"] == "0"
    reset = int(resp.headers["X-RateLimit-Reset"])
    retry = int(resp.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert abs(reset - (time.time() + retry)) <= 2  # an epoch time, when the window resets
    return retry


@pytest.fixture(params=["memory", "redis"])
def storage(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else redis_url()


# -- limits and headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_a_client_gets_its_limit_then_429_with_headers_and_others_are_not_affected(
    make_app: AppFactory, storage: str, strategy: str
) -> None:
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage, CLIENTAUTH_RATELIMIT_STRATEGY=strategy)
    cid, secret = new_client(app, "limited")
    other, other_secret = new_client(app, "other")
    for remaining in (2, 1, 0):  # the first request takes the general path, the next ones the warm path
        resp = get(app, cid, secret)
        assert resp.status_code == 200
        assert resp.headers["X-RateLimit-Limit"] == "3"  # the tightest limit: 3/minute, not 1000/day
        assert resp.headers["X-RateLimit-Remaining"] == str(remaining)
        assert 0 < int(resp.headers["X-RateLimit-Reset"]) - time.time() <= 61
    assert_limited(get(app, cid, secret), 3)
    assert_limited(get(app, cid, path="/api/branches/1"), 3)  # every operation of the plan counts
    assert get(app, other, other_secret).status_code == 200
    assert get(app, cid, path="/api/status").status_code == 200  # public: no client, no plan


def test_all_credentials_of_a_client_share_its_counters(make_app: AppFactory, storage: str) -> None:
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage)
    cid, secret = new_client(app, "two keys")
    with app.app_context():
        second, second_secret = app.extensions["clientauth"].store.add_credential(cid)
    assert second_secret is not None
    assert get(app, cid, secret).status_code == 200
    assert get(app, second.client_id, second_secret).status_code == 200
    assert get(app, cid, secret).headers["X-RateLimit-Remaining"] == "0"
    assert_limited(get(app, second.client_id, second_secret), 3)


def test_a_refused_request_counts_against_no_limit(make_app: AppFactory, storage: str) -> None:
    # 3/minute refuses the 4th request; the day's limit counted 3, not 4 (nor more on each retry)
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage)
    cid, secret = new_client(app, "limited")
    for _ in range(3):
        assert get(app, cid, secret).status_code == 200
    for _ in range(5):
        assert_limited(get(app, cid, secret), 3)
    state = app.extensions["clientauth"]
    with app.app_context():
        plan, rows = state.usage(state.store.require(cid))
    assert plan is not None and plan.name == "bronze"
    assert [(r.to_dict()["limit"], r.used, r.remaining) for r in rows] == [
        ("3 per minute", 3, 0),
        ("1000 per day", 3, 997),
    ]


def test_the_tightest_limit_gives_the_headers(make_app: AppFactory) -> None:
    plans = {"p": {"rate_limits": ["10/minute", "4/hour"]}}
    app = plan_app(make_app, plans=plans, default="p")
    cid, secret = new_client(app, "c")
    resp = get(app, cid, secret)
    assert (resp.headers["X-RateLimit-Limit"], resp.headers["X-RateLimit-Remaining"]) == ("4", "3")
    assert int(resp.headers["X-RateLimit-Reset"]) - time.time() > 3000  # the hour's window


def test_without_a_plan_a_client_is_not_limited_and_gets_no_headers(make_app: AppFactory) -> None:
    app = plan_app(make_app, default=None)
    cid, secret = new_client(app, "free")
    for _ in range(5):
        resp = get(app, cid, secret)
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
    # a plan without limits: not limited either
    app = plan_app(make_app, default="free")
    cid, secret = new_client(app, "free too")
    for _ in range(5):
        resp = get(app, cid, secret)
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers


def test_no_plan_configured_means_no_limiter_and_no_after_request_hook(make_app: AppFactory) -> None:
    app = make_app()
    state = app.extensions["clientauth"]
    assert state.limiter is None
    assert state.rate_limit_headers not in app.after_request_funcs.get(None, [])
    cid, secret = new_client(app, "c")
    resp = get(app, cid, secret)
    assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers


def test_a_views_own_rate_limit_headers_are_kept(make_app: AppFactory) -> None:
    app = plan_app(make_app, routes=False)
    app.add_url_rule("/api/branches", "branches", lambda: ("ok", 200, {"X-RateLimit-Limit": "app's own"}))
    cid, secret = new_client(app, "c")
    resp = get(app, cid, secret)
    assert resp.headers.getlist("X-RateLimit-Limit") == ["app's own"]


def test_headers_can_be_turned_off_the_429_keeps_them(make_app: AppFactory) -> None:
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_HEADERS=False)
    cid, secret = new_client(app, "c")
    for _ in range(3):
        resp = get(app, cid, secret)
        assert resp.status_code == 200 and "X-RateLimit-Remaining" not in resp.headers
    assert_limited(get(app, cid, secret), 3)


def test_the_window_resets(make_app: AppFactory) -> None:
    plans = {"p": {"rate_limits": ["2/second"]}}
    app = plan_app(make_app, plans=plans, default="p")
    cid, secret = new_client(app, "c")
    assert get(app, cid, secret).status_code == 200
    assert get(app, cid, secret).status_code == 200
    retry = int(get(app, cid, secret).headers["Retry-After"])
    assert retry == 1
    time.sleep(1.05)
    assert get(app, cid, secret).status_code == 200


# -- operations outside the plan, plans no longer configured -----------------------------------------------


def test_an_operation_outside_the_plan_is_403_not_in_plan(make_app: AppFactory) -> None:
    app = plan_app(make_app)
    with app.app_context():
        record, secret = app.extensions["clientauth"].store.create("gold client", plan="gold")
    assert secret is not None
    resp = get(app, record.client_id, secret)
    assert resp.status_code == 200 and resp.headers["X-RateLimit-Limit"] == "100"
    resp = get(app, record.client_id, path="/api/branches/7")
    assert resp.status_code == 403 and resp.get_json() == NOT_IN_PLAN
    assert "X-RateLimit-Limit" not in resp.headers


def test_a_route_outside_the_document_is_outside_a_plan_that_lists_operations(make_app: AppFactory) -> None:
    app = plan_app(make_app)
    auth = auth_of(app)
    app.add_url_rule("/internal", "internal", auth.require()(lambda: "ok"))
    with app.app_context():
        gold, gold_secret = app.extensions["clientauth"].store.create("gold client", plan="gold")
    cid, secret = new_client(app, "bronze client")
    assert gold_secret is not None
    assert get(app, gold.client_id, gold_secret, "/internal").status_code == 403
    resp = get(app, cid, secret, "/internal")  # bronze covers every operation, and counts this one
    assert resp.status_code == 200 and resp.headers["X-RateLimit-Remaining"] == "2"


def test_a_stored_plan_no_longer_configured_fails_closed_and_says_so(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = plan_app(make_app, plans={**PLANS, "retired": {}})
    with app.app_context():
        record, secret = app.extensions["clientauth"].store.create("old client", plan="retired")
    assert secret is not None
    assert get(app, record.client_id, secret).status_code == 200
    app = plan_app(make_app, create_tables=False)  # the same database, "retired" removed from the config
    with caplog.at_level(logging.ERROR, "flask_clientauth"):
        resp = get(app, record.client_id, secret)
    assert resp.status_code == 403 and resp.get_json() == NOT_IN_PLAN
    assert any("'retired'" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


# -- anonymous requests, the error handler, gateway detail -------------------------------------------------


def test_anonymous_requests_on_optional_routes_have_no_plan(make_app: AppFactory) -> None:
    spec = doc3({"/open": {"get": op([{}, {"hid": [], "hsec": []}])}}, security=ID_AND_SECRET)
    app = plan_app(make_app, spec=spec, routes=False, plans={"bronze": PLANS["bronze"]})
    app.add_url_rule("/open", "open", lambda: "ok")
    cid, secret = new_client(app, "c")
    for _ in range(5):
        resp = app.test_client().get("/open")
        assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
    for _ in range(3):
        assert get(app, cid, secret, "/open").status_code == 200
    assert_limited(get(app, cid, secret, "/open"), 3)


def test_the_apps_error_handler_answers_and_the_rate_limit_headers_stay(make_app: AppFactory) -> None:
    app = plan_app(make_app, plans={"p": {"rate_limits": ["1/minute"], "operations": ["GET /branches"]}}, default="p")
    seen: list[str] = []

    @auth_of(app).error_handler
    def handler(failure: AuthFailure) -> Any:
        seen.append(failure.code)
        return jsonify(error=failure.code, message=failure.message), failure.status

    cid, secret = new_client(app, "c")
    assert get(app, cid, secret).status_code == 200
    resp = get(app, cid, secret)
    assert resp.status_code == 429 and resp.get_json() == {"error": "rate_limited", "message": "Rate Limit exceeded"}
    assert resp.headers["Retry-After"] and resp.headers["X-RateLimit-Remaining"] == "0"
    resp = get(app, cid, path="/api/branches/1")
    assert resp.status_code == 403 and resp.get_json()["error"] == "not_in_plan"
    assert seen == ["rate_limited", "not_in_plan"]


def test_gateway_error_detail_leaves_plan_failures_as_they_are(make_app: AppFactory) -> None:
    app = plan_app(
        make_app,
        plans={"p": {"rate_limits": ["1/minute"], "operations": ["GET /branches"]}},
        default="p",
        CLIENTAUTH_ERROR_DETAIL="gateway",
    )
    cid, secret = new_client(app, "c")
    assert get(app, cid, secret).status_code == 200
    assert_limited(get(app, cid, secret), 1)
    resp = get(app, cid, path="/api/branches/1")
    assert resp.status_code == 403 and resp.get_json() == NOT_IN_PLAN


# -- exact under concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window"])
def test_threads_get_exactly_the_limit(make_app: AppFactory, storage: str, strategy: str) -> None:
    app = plan_app(
        make_app,
        plans={"p": {"rate_limits": ["25/minute", "1000/day"]}},
        default="p",
        CLIENTAUTH_RATELIMIT_STORAGE_URI=storage,
        CLIENTAUTH_RATELIMIT_STRATEGY=strategy,
    )
    cid, secret = new_client(app, "c")
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = app.test_client(use_cookies=False)
        for _ in range(10):
            code = client.get("/api/branches", headers=headers(cid, secret)).status_code
            with lock:
                statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 25 + [429] * 55
    state = app.extensions["clientauth"]
    with app.app_context():
        _plan, rows = state.usage(state.store.require(cid))
    assert [r.used for r in rows] == [25, 25]


# -- the limiter itself -------------------------------------------------------------------------------------


class Record:
    """What the limiter reads of a client: its primary key."""

    def __init__(self, pk: int) -> None:
        self.pk = pk


def test_one_redis_call_per_request_in_the_limits_key_format() -> None:
    import redis

    url = redis_url()
    limiter = PlanLimiter(url, key_prefix="clientauth:keys-test")
    limiter.reset()
    plan = Plan(
        "p", rate_limits=(parse_limit("5/minute"), parse_limit("100/1hour")), burst_limits=(parse_limit("2/second"),)
    )
    conn = redis.Redis.from_url(url)
    before = _evalsha_calls(conn)
    for _ in range(2):
        assert limiter.check(Record(41), plan, "GET /x") is not None  # type: ignore[arg-type]
    assert _evalsha_calls(conn) - before == 2
    keys = sorted(k.decode() for k in conn.keys("LIMITS:LIMITER/clientauth:keys-test/*"))
    assert keys == [
        "LIMITS:LIMITER/clientauth:keys-test/burst/{41}/2/1/second",
        "LIMITS:LIMITER/clientauth:keys-test/plan/{41}/100/1/hour",
        "LIMITS:LIMITER/clientauth:keys-test/plan/{41}/5/1/minute",
    ]
    # the limits library reads the same counters
    from limits.strategies import FixedWindowRateLimiter

    stats = FixedWindowRateLimiter(limiter.storage).get_window_stats(
        parse_limit("5/minute"), "clientauth:keys-test", "plan", "{41}"
    )
    assert stats.remaining == 3
    limiter.reset()


def _evalsha_calls(conn: Any) -> int:
    stats = conn.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k.startswith(("cmdstat_evalsha", "cmdstat_eval")))


def test_operation_limits_have_their_own_counter() -> None:
    limiter = PlanLimiter("memory://")
    plan = Plan(
        "p",
        rate_limits=(parse_limit("10/minute"),),
        operation_limits={"GET /a": (parse_limit("1/minute"),)},
    )
    record: Any = Record(1)
    assert limiter.check(record, plan, "GET /a") is not None
    with pytest.raises(AuthFailure) as info:
        limiter.check(record, plan, "GET /a")
    assert info.value.reason is errors.RATE_LIMITED
    window = limiter.check(record, plan, "GET /b")
    assert window is not None and window.remaining == 9  # GET /a used its own limit, not the plan's
    rows = [r.to_dict() for r in limiter.usage(record, plan)]
    assert [(r["limit"], r["scope"], r["operation"], r["used"]) for r in rows] == [
        ("10 per minute", "plan", None, 1),
        ("1 per minute", "operation", "GET /a", 1),
    ]
    assert rows[0]["reset"] > time.time() and rows[0]["reset_at"].endswith("+00:00")


# -- the counter store goes away -------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


def test_redis_down_fails_closed_with_503_and_recovers(
    make_app: AppFactory, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=own_redis.url)
    cid, secret = new_client(app, "c")
    assert get(app, cid, secret).status_code == 200
    own_redis.stop()
    for _ in range(3):
        resp = get(app, cid, secret)
        assert resp.status_code == 503 and resp.get_json() == UNAVAILABLE
        assert "X-RateLimit-Limit" not in resp.headers
    assert str(own_redis.port) not in caplog.text
    own_redis.start()  # an empty Redis: counting starts again
    assert get(app, cid, secret).headers["X-RateLimit-Remaining"] == "2"
    assert get(app, cid, secret).status_code == 200
    assert get(app, cid, secret).status_code == 200
    assert_limited(get(app, cid, secret), 3)


def test_redis_down_fails_open_when_asked_and_warns_once_a_minute(
    make_app: AppFactory, own_redis: RedisServer, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    app = plan_app(
        make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=own_redis.url, CLIENTAUTH_PLAN_LIMITS_ON_ERROR="open", clock=clock
    )
    cid, secret = new_client(app, "c")
    assert get(app, cid, secret).status_code == 200
    own_redis.stop()
    with caplog.at_level(logging.WARNING, "flask_clientauth"):
        for _ in range(5):
            resp = get(app, cid, secret)
            assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
        clock.advance(61)
        assert get(app, cid, secret).status_code == 200
    warnings = [r for r in caplog.records if "without plan limits" in r.getMessage()]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    own_redis.start()
    for _ in range(3):
        assert get(app, cid, secret).status_code == 200
    assert_limited(get(app, cid, secret), 3)


# -- settings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("CLIENTAUTH_PLAN_LIMITS_ON_ERROR", "ignore"), ("CLIENTAUTH_RATELIMIT_HEADERS", "yes")],
)
def test_bad_settings_name_the_key(make_app: AppFactory, key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=key):
        make_app(**{key: value})


# -- flask clients usage ------------------------------------------------------------------------------------


def test_usage_command(make_app: AppFactory, storage: str) -> None:
    app = plan_app(make_app, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage)
    cid, secret = new_client(app, "c")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clients", "usage", cid, "--json"])
    assert result.exit_code == 0, result.output
    assert [(r["limit"], r["used"], r["remaining"], r["reset"]) for r in json.loads(result.stdout)] == [
        ("3 per minute", 0, 3, None),
        ("1000 per day", 0, 1000, None),
    ]
    for _ in range(2):
        assert get(app, cid, secret).status_code == 200
    rows = json.loads(runner.invoke(args=["clients", "usage", cid, "--json"]).stdout)
    assert [(r["used"], r["remaining"]) for r in rows] == [(2, 1), (2, 998)]
    assert 0 < rows[0]["reset"] - time.time() <= 61
    text = runner.invoke(args=["clients", "usage", cid]).output
    assert "plan bronze" in text and "3 per minute" in text and "USED" in text
    result = runner.invoke(args=["clients", "usage", "no-such-client"])
    assert result.exit_code != 0 and "no client" in result.output


def test_usage_of_a_client_without_a_plan(make_app: AppFactory) -> None:
    app = plan_app(make_app, default=None)
    cid, _secret = new_client(app, "c")
    runner = app.test_cli_runner()
    assert json.loads(runner.invoke(args=["clients", "usage", cid, "--json"]).stdout) == []
    assert "no plan" in runner.invoke(args=["clients", "usage", cid]).output
