"""Plan limits on a real server: the example app under gunicorn (two gthread workers) counting in a
Redis of the test's own (``redis-server`` on a free port, so that it can be stopped and started,
and its command counts belong to this test alone).

- two workers at 8 concurrent connections let through exactly the limit;
- one Redis call per request;
- ``flask clients usage`` (another process) reads what the workers counted;
- Redis going away: 503 (``closed``) or served (``open``), and limits again once it is back;
- a plan changed with ``flask clients plan`` reaches both workers within the revocation interval.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from redisserver import RedisMonitor, RedisServer
from servers import HTTP_TIMEOUT, PROPAGATION_LIMIT, Server, cli, cli_json, example_env, free_port

pytestmark = pytest.mark.slow

HEADERS = ("X-IBM-Client-Id", "X-IBM-Client-Secret")
LIMIT = 40
PLANS = {
    "bronze": {"rate_limits": [f"{LIMIT}/hour"]},
    "gold": {"rate_limits": ["1000/hour"], "operations": ["GET /branches"]},
}
RATE_LIMITED = {"httpCode": "429", "httpMessage": "Too Many Requests", "moreInformation": "Rate Limit exceeded"}
UNAVAILABLE = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "Rate limit service unavailable",
}


def start(tmp_path: Path, storage: str, **extra: str) -> Server:
    """The example under gunicorn, 2 gthread workers of 4 threads, plans counted in ``storage``."""
    env = example_env(
        tmp_path / "instance",
        "openapi2",
        CLIENTAUTH_PLANS=json.dumps(PLANS),
        CLIENTAUTH_DEFAULT_PLAN="bronze",
        CLIENTAUTH_RATELIMIT_STORAGE_URI=storage,
        CLIENTAUTH_RATELIMIT_ENABLED="true",  # the failure throttle shares the storage, as in production
        **extra,
    )
    assert cli(env, "init-db").returncode == 0
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", "example_app/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", "2", "--worker-class", "gthread", "--threads", "4", "example_app:create_app()"]
    server = Server(cmd, env, tmp_path, port, "openapi2")
    server.wait_ready()
    return server


def get(server: Server, cid: str, secret: str, path: str = "/api/branches", session: Any = requests) -> Any:
    return session.get(server.url + path, headers=dict(zip(HEADERS, (cid, secret), strict=True)), timeout=HTTP_TIMEOUT)


def pids_of(server: Server, path: str, status: int | None = None) -> set[int]:
    """The gunicorn workers that answered ``path`` (the access log ends with ``<pid>``)."""
    code = r"\d+" if status is None else str(status)
    pattern = rf'"GET {re.escape(path)} HTTP/1\.1" {code} .* <(\d+)>'
    return {int(p) for p in re.findall(pattern, server.output())}


def test_two_workers_at_8_connections_let_through_exactly_the_limit_with_one_redis_call_each(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    server = start(tmp_path, own_redis.url)
    try:
        created = cli_json(server.env, "create", "busy app")
        cid, secret = created["client_id"], created["client_secret"]
        # each worker verifies the secret once (bcrypt, a store lookup, failure-throttle checks):
        # primed until both have answered the client, each such request counted like any other
        primed = 0
        while len(pids_of(server, "/api/branches")) < 2:
            with ThreadPoolExecutor(4) as pool:
                assert all(r.status_code == 200 for r in pool.map(lambda _: get(server, cid, secret), range(4)))
            primed += 4
            assert primed < LIMIT
        sessions = [requests.Session() for _ in range(8)]
        burst = 120 - primed

        def send(i: int) -> list[int]:
            return [get(server, cid, secret, session=sessions[i]).status_code for _ in range(burst // 8)]

        with RedisMonitor(own_redis.url) as sent, ThreadPoolExecutor(8) as pool:
            statuses = [s for batch in pool.map(send, range(8)) for s in batch]
        sent_total = burst // 8 * 8
        assert Counter(statuses) == {200: LIMIT - primed, 429: sent_total - (LIMIT - primed)}
        assert len(pids_of(server, "/api/branches", status=429)) == 2
        # one round trip per request, admitted or refused: the script (EVALSHA); besides, the HELLO of
        # each new pooled connection (a worker's threads open them as concurrency grows: 4 at most)
        names = Counter(c.split()[0].strip('"').upper() for c in sent)
        assert names.pop("EVALSHA") == sent_total
        assert set(names) <= {"HELLO"} and names["HELLO"] <= 2 * 4 + 1  # + the monitor's own ECHO
        usage = cli_json(server.env, "usage", cid)
        assert [(u["limit"], u["used"], u["remaining"]) for u in usage] == [(f"{LIMIT} per hour", LIMIT, 0)]
        assert 3500 < usage[0]["reset"] - time.time() <= 3600
        resp = get(server, cid, secret)
        assert resp.status_code == 429 and resp.json() == RATE_LIMITED
        assert int(resp.headers["Retry-After"]) > 3500 and resp.headers["X-RateLimit-Limit"] == str(LIMIT)
    finally:
        server.stop()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_redis_going_away_and_coming_back(tmp_path: Path, own_redis: RedisServer, mode: str) -> None:
    server = start(tmp_path, own_redis.url, CLIENTAUTH_PLAN_LIMITS_ON_ERROR=mode)
    try:
        created = cli_json(server.env, "create", "app")
        cid, secret = created["client_id"], created["client_secret"]
        # until both workers have verified the secret (the warm path from then on): four at a time,
        # as the kernel may hand one worker every connection of a sequence
        for _ in range(8):
            with ThreadPoolExecutor(4) as pool:
                batch = list(pool.map(lambda _: get(server, cid, secret), range(4)))
            assert [r.status_code for r in batch] == [200] * 4
            if len(pids_of(server, "/api/branches", status=200)) == 2:
                break
        assert len(pids_of(server, "/api/branches", status=200)) == 2
        own_redis.stop()
        for _ in range(6):
            resp = get(server, cid, secret)
            if mode == "closed":
                assert resp.status_code == 503 and resp.json() == UNAVAILABLE
            else:
                assert resp.status_code == 200 and "X-RateLimit-Limit" not in resp.headers
        own_redis.start()  # empty: the window starts again
        statuses = [get(server, cid, secret).status_code for _ in range(LIMIT + 3)]
        assert statuses == [200] * LIMIT + [429] * 3
    finally:
        server.stop()
    output = server.output()
    assert "Traceback" not in output
    if mode == "open":
        # each worker warned once (at most once a minute), at WARNING
        assert 1 <= output.count("serving requests without plan limits") <= 2
    else:
        assert "answering 503 (CLIENTAUTH_PLAN_LIMITS_ON_ERROR = 'closed')" in output


def test_a_plan_changed_with_the_cli_reaches_both_workers_within_the_revocation_interval(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    server = start(tmp_path, own_redis.url, CLIENTAUTH_REVOCATION_INTERVAL="1")
    try:
        created = cli_json(server.env, "create", "app")
        cid, secret = created["client_id"], created["client_secret"]
        for _ in range(4):
            resp = get(server, cid, secret)
            assert resp.status_code == 200 and resp.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert get(server, cid, secret, "/api/branches/1").status_code == 200
        result = cli(server.env, "plan", cid, "gold")
        assert result.returncode == 0, result.stderr
        changed = time.monotonic()
        while True:  # 8 concurrent requests, so that both workers answer: all refused once both know
            with ThreadPoolExecutor(8) as pool:
                batch = list(pool.map(lambda _: get(server, cid, secret, "/api/branches/1"), range(8)))
            if all(r.status_code == 403 for r in batch):
                break
            assert time.monotonic() - changed < PROPAGATION_LIMIT, "the plan change did not reach the workers"
            time.sleep(0.1)
        assert batch[0].json()["moreInformation"] == "Operation not included in the client's plan"
        # each worker refuses, once it has answered some: the kernel may hand one worker many
        # connections in a row, so ask again (every answer a refusal) until both have
        for _ in range(40):
            if len(pids_of(server, "/api/branches/1", status=403)) == 2:
                break
            with ThreadPoolExecutor(8) as pool:
                batch = list(pool.map(lambda _: get(server, cid, secret, "/api/branches/1"), range(8)))
            assert [r.status_code for r in batch] == [403] * 8
        assert len(pids_of(server, "/api/branches/1", status=403)) == 2
        resp = get(server, cid, secret)
        assert resp.status_code == 200 and resp.headers["X-RateLimit-Limit"] == "1000"
        # every later request of the client, on either worker, is held to gold
        for _ in range(8):
            assert get(server, cid, secret, "/api/branches/1").status_code == 403
    finally:
        server.stop()
