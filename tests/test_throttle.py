"""Throttling failed checks (OWASP API4): per client ID, per address, shared through Redis.

A wrong secret costs a bcrypt check and an unknown client ID a database lookup. Past the
limits, such requests get 429 in the usual JSON shape with ``Retry-After``, without running
either (both are counted), while other clients keep getting 200. Redis-backed tests read
``CLIENTAUTH_TEST_REDIS_URL`` and skip, saying so, without it. Peers without an IP address
(a unix socket) share one per-address bucket and no exemption.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import make_url

from flask_clientauth.keys import generate_client_id
from servers import HTTP_TIMEOUT, Server, cli, cli_json, example_env, free_port

from conftest import TUTORIAL_SPEC, AppFactory, ClientEnv

THROTTLED = {
    "httpCode": "429",
    "httpMessage": "Too Many Requests",
    "moreInformation": "Too many failed attempts; retry later",
}
UNAVAILABLE = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "Client registry unavailable",
}
PER_CLIENT = 5
PER_ADDRESS = 8
LIMITS = {
    "CLIENTAUTH_RATELIMIT_PER_CLIENT": f"{PER_CLIENT}/minute",
    "CLIENTAUTH_RATELIMIT_PER_ADDRESS": f"{PER_ADDRESS}/minute",
}
REDIS_VAR = "CLIENTAUTH_TEST_REDIS_URL"


def random_address() -> str:
    """A fresh address per use, so that counters kept in a shared Redis never collide between runs."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@dataclass
class Env(ClientEnv):
    def call(self, address: str, cid: str | None, secret: str | None = None, path: str = "/api/branches") -> Any:
        headers = {}
        if cid is not None:
            headers["X-IBM-Client-Id"] = cid
        if secret is not None:
            headers["X-IBM-Client-Secret"] = secret
        return self.client.get(path, headers=headers, environ_base={"REMOTE_ADDR": address})


#: Apps made by the current test, whose Redis connections are closed after it.
_APPS: list[Flask] = []


@pytest.fixture(autouse=True)
def close_counter_storage() -> Iterator[None]:
    """Close the Redis connections of the apps a test made (else they linger until interpreter exit)."""
    yield
    while _APPS:
        throttle = _APPS.pop().extensions["clientauth"].throttle
        client = getattr(getattr(getattr(throttle, "_limiter", None), "storage", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()


def make_env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, **config: Any) -> Env:
    for key, value in LIMITS.items():
        config.setdefault(key, value)
    app = make_app(**config)
    _APPS.append(app)
    return Env.of(app, monkeypatch)


@pytest.fixture
def env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    return make_env(make_app, monkeypatch)


def assert_throttled(resp: Any, window: int = 60) -> int:
    assert resp.status_code == 429, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert resp.get_json() == THROTTLED
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= window
    return wait


# -- per client ID ------------------------------------------------------------------------------


def test_wrong_secrets_for_one_client_id_from_many_addresses(env: Env) -> None:
    """An attacker who knows a public client ID cannot make us run bcrypt more than the limit."""
    owner = random_address()
    assert env.call(owner, env.cid, env.secret).status_code == 200  # the owner authenticated before
    env.take()
    for i in range(PER_CLIENT):
        assert env.call(random_address(), env.cid, f"wrong-secret-{i}").status_code == 401
    assert env.take() == (0, PER_CLIENT)
    for _ in range(20):
        assert_throttled(env.call(random_address(), env.cid, "another-wrong-secret"))
    assert env.take() == (0, 0)  # no bcrypt, no lookup past the limit
    # other clients are not affected, from anywhere
    other, other_secret = env.new_client()
    assert env.call(random_address(), other, other_secret).status_code == 200
    assert env.call(random_address(), other, "wrong").status_code == 401
    # the owner's cached credential costs nothing and is not throttled
    assert env.call(random_address(), env.cid, env.secret).status_code == 200
    # when it must be checked again (here: the cache was dropped), an address that proved it holds
    # the secret before is still let through; a new address waits like the attacker (documented)
    env.app.extensions["clientauth"].cache.clear()
    assert env.call(owner, env.cid, env.secret).status_code == 200
    env.app.extensions["clientauth"].cache.clear()
    env.take()
    assert_throttled(env.call(random_address(), env.cid, env.secret))
    assert env.take()[1] == 0


@pytest.mark.parametrize("interval", [60.0, 0.0], ids=["fast path", "general path"])
def test_an_address_whose_secret_was_verified_from_the_cache_keeps_its_exemption(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, interval: float
) -> None:
    """A second address of the owner (another of its hosts, a new IP) first served from the cache
    proved it holds the secret as much as one checked by bcrypt: once the entry expires during a
    flood, its check that needs bcrypt is let through, not locked out for the window."""
    env = make_env(make_app, monkeypatch, CLIENTAUTH_REVOCATION_INTERVAL=interval)
    first, second = random_address(), random_address()
    assert env.call(first, env.cid, env.secret).status_code == 200
    assert env.call(second, env.cid, env.secret).status_code == 200
    assert env.take() == (1, 1)  # the second from the cache: no bcrypt
    for i in range(PER_CLIENT):
        assert env.call(random_address(), env.cid, f"wrong-secret-{i}").status_code == 401
    assert_throttled(env.call(random_address(), env.cid, "another-wrong-secret"))
    env.app.extensions["clientauth"].cache.clear()  # the entry expired: the next check needs bcrypt
    env.take()
    assert env.call(second, env.cid, env.secret).status_code == 200
    assert env.take() == (1, 1)


def test_a_repeated_wrong_secret_costs_one_bcrypt_but_still_counts(env: Env) -> None:
    owner = random_address()
    assert env.call(owner, env.cid, env.secret).status_code == 200
    env.take()
    for _ in range(PER_CLIENT):
        assert env.call(random_address(), env.cid, "same-wrong-secret").status_code == 401
    assert env.take() == (0, 1)  # refused by bcrypt once; later copies are refused from memory ...
    assert_throttled(env.call(random_address(), env.cid, "same-wrong-secret"))  # ... and still counted
    assert env.call(owner, env.cid, env.secret).status_code == 200  # the owner's cached secret is unaffected


def test_the_429_keeps_its_text_in_gateway_mode_and_reaches_custom_handlers(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_ERROR_DETAIL="gateway")
    for _ in range(PER_CLIENT):
        env.call(random_address(), env.cid, "wrong")
    assert_throttled(env.call(random_address(), env.cid, "wrong"))
    seen = []

    @env.app.extensions["test_auth"].error_handler
    def handler(failure: Any) -> Any:
        seen.append((failure.status, failure.code, dict(failure.headers)))
        return {"error": failure.code}, failure.status, failure.headers

    resp = env.call(random_address(), env.cid, "wrong")
    assert resp.status_code == 429 and resp.headers["Retry-After"].isdigit()
    assert seen[0][:2] == (429, "too_many_failures") and "Retry-After" in seen[0][2]


# -- per address ----------------------------------------------------------------------------------


def test_one_address_trying_ids_and_secrets(env: Env) -> None:
    attacker = random_address()
    victims = [env.new_client()[0] for _ in range(3)]
    attempts = [(v, "wrong-secret") for v in victims] + [(generate_client_id(), "x") for _ in range(PER_ADDRESS)]
    statuses = []
    for cid, secret in attempts[:PER_ADDRESS]:
        statuses.append(env.call(attacker, cid, secret).status_code)
    assert statuses == [401] * PER_ADDRESS
    gets, bcrypts = env.take()
    assert bcrypts == 3 and gets == PER_ADDRESS  # one lookup per new ID, one bcrypt per wrong secret
    # past the limit: neither unknown IDs nor secrets cost anything from that address
    for cid, secret in [*attempts[PER_ADDRESS:], (victims[0], "wrong-again"), (generate_client_id(), "y")]:
        assert_throttled(env.call(attacker, cid, secret))
    assert env.take() == (0, 0)
    # cheap answers stay what they were: a missing ID, an ID already known to be unknown
    assert env.call(attacker, None).status_code == 401
    assert env.call(attacker, attempts[3][0], "x").status_code == 401  # known unknown: no lookup
    assert env.take() == (0, 0)
    # everyone else is served, and a client that needs a fresh check from another address passes
    assert env.call(random_address(), env.cid, env.secret).status_code == 200
    other, other_secret = env.new_client()
    assert env.call(random_address(), other, other_secret).status_code == 200
    # a credential already verified and cached is served even to the throttled address
    assert env.call(attacker, env.cid, env.secret).status_code == 200


def test_ipv6_addresses_count_per_64_network(env: Env) -> None:
    prefix = f"2001:db8:{random.randrange(65536):x}:{random.randrange(65536):x}"
    for n in range(PER_ADDRESS):
        env.call(f"{prefix}::{n + 1:x}", generate_client_id(), "x")
    assert_throttled(env.call(f"{prefix}:dead:beef:1:2", generate_client_id(), "x"))
    assert env.call(f"2001:db8:ffff:{random.randrange(65536):x}::1", generate_client_id(), "x").status_code == 401
    # IPv4-mapped addresses count as their IPv4 address
    v4 = random_address()
    for _ in range(PER_ADDRESS):
        env.call(v4, generate_client_id(), "x")
    assert_throttled(env.call(f"::ffff:{v4}", generate_client_id(), "x"))


def test_throttling_can_be_switched_off(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_ENABLED=False)
    address = random_address()
    for i in range(3 * PER_ADDRESS):
        assert env.call(address, env.cid, f"wrong-{i}").status_code == 401
    assert env.take()[1] == 3 * PER_ADDRESS


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_every_strategy_enforces_the_limit(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, strategy: str
) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_STRATEGY=strategy)
    for _ in range(PER_CLIENT):
        assert env.call(random_address(), env.cid, "wrong").status_code == 401
    assert_throttled(env.call(random_address(), env.cid, "wrong"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CLIENTAUTH_RATELIMIT_STRATEGY", "token-bucket"),
        ("CLIENTAUTH_RATELIMIT_PER_CLIENT", "twenty per minute"),
        ("CLIENTAUTH_RATELIMIT_STORAGE_URI", "nosuchstorage://x"),
    ],
)
def test_a_bad_throttle_setting_fails_start_up(make_app: AppFactory, key: str, value: str) -> None:
    with pytest.raises(Exception) as info:
        make_app(create_tables=False, **{key: value})
    assert not isinstance(info.value, AssertionError)


# -- the counter storage down, or shared through Redis ------------------------------------------------


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rate_limit_storage_down_fails_closed_only_where_a_costly_check_is_needed(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    uri = f"redis://:Redis-Password-1@127.0.0.1:{port}/0"
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_STORAGE_URI=uri, TESTING=True, PROPAGATE_EXCEPTIONS=True)
    address = random_address()
    for resp in (
        env.call(address, env.cid, env.secret),  # first check of this secret: bcrypt, so the counters are asked
        env.call(address, env.cid, "wrong"),
        env.call(address, generate_client_id(), "x"),  # an unknown ID: a lookup
    ):
        assert resp.status_code == 503 and resp.get_json() == UNAVAILABLE
    assert env.take()[1] == 0  # fail closed *before* the costly check
    # requests that need no costly check are answered as usual
    assert env.call(address, None).status_code == 401
    assert env.call(address, env.cid).get_json()["moreInformation"] == "Client secret missing"
    for record in caplog.records:
        assert "Redis-Password-1" not in record.getMessage() and str(port) not in record.getMessage()


def redis_url() -> str:
    url = os.environ.get(REDIS_VAR)
    if not url:
        pytest.skip(f"redis: set {REDIS_VAR} (e.g. redis://127.0.0.1:6379/0) to run the Redis-backed tests")
    return url


WORKER = """
import json, sys
from flask import Flask
from flask_clientauth import ClientAuth

spec, instance, database, storage, calls = sys.argv[1:]
app = Flask("testapp", instance_path=instance)  # the same app: counters are kept per app name
app.config.update(
    CLIENTAUTH_SPEC=json.loads(spec),
    CLIENTAUTH_DATABASE_URI=database,
    CLIENTAUTH_RATELIMIT_STORAGE_URI=storage,
    CLIENTAUTH_RATELIMIT_PER_CLIENT="{per_client}/minute",
    CLIENTAUTH_RATELIMIT_PER_ADDRESS="{per_address}/minute",
    CLIENTAUTH_BCRYPT_ROUNDS=4,
)
ClientAuth(app)
app.add_url_rule("/api/branches", "branches", lambda: "ok")
client = app.test_client()
statuses = []
for cid, secret, address in json.loads(calls):
    headers = {{"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}}
    statuses.append(client.get("/api/branches", headers=headers, environ_base={{"REMOTE_ADDR": address}}).status_code)
print(json.dumps(statuses))
"""


def run_worker(tmp_path: Path, database_url: str, storage: str, calls: list[tuple[str, str, str]]) -> list[int]:
    """Requests (client ID, secret, address) made by another process with its own app on ``storage``."""
    script = tmp_path / "throttle_worker.py"
    script.write_text(textwrap.dedent(WORKER.format(per_client=PER_CLIENT, per_address=PER_ADDRESS)))
    args = [json.dumps(TUTORIAL_SPEC), str(tmp_path / "worker-instance"), database_url, storage, json.dumps(calls)]
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_counters_are_shared_across_processes_through_redis(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str
) -> None:
    storage = redis_url()
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage)
    other, other_secret = env.new_client()
    # this process throttles an address (unknown IDs) ...
    attacker = random_address()
    for _ in range(PER_ADDRESS):
        assert env.call(attacker, generate_client_id(), "x").status_code == 401
    # ... which the other process then refuses, while it burns a client's allowance with wrong
    # secrets sent from ever new addresses
    calls = [(other, other_secret, attacker), (other, other_secret, random_address())]
    calls += [(env.cid, "wrong-secret", random_address()) for _ in range(PER_CLIENT + 2)]
    statuses = run_worker(tmp_path, sqlite_url, storage, calls)
    assert statuses == [429, 200] + [401] * PER_CLIENT + [429] * 2
    # this process, which saw none of those failures, refuses the next attempt without bcrypt
    env.take()
    assert_throttled(env.call(random_address(), env.cid, "wrong-secret"))
    assert env.take()[1] == 0


@pytest.fixture
def redis_forwarder() -> Iterator[tuple[str, Any]]:
    from test_faults import Forwarder

    url = make_url(redis_url())
    forwarder = Forwarder(url.host or "127.0.0.1", url.port or 6379)
    forwarder.restore()
    yield url.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False), forwarder
    forwarder.close()


def test_a_throttled_address_stays_refused_without_asking_the_counter_storage(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, redis_forwarder: tuple[str, Any]
) -> None:
    # each process remembers an exhausted limit until its window resets: a flood of refused
    # requests costs no Redis round trip each, and stays refused even while Redis is away
    storage, forwarder = redis_forwarder
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage, TESTING=True)
    attacker = random_address()
    for _ in range(PER_ADDRESS):
        assert env.call(attacker, generate_client_id(), "x").status_code == 401
    first = assert_throttled(env.call(attacker, generate_client_id(), "x"))
    env.take()
    forwarder.cut()
    for _ in range(3):
        assert first - 1 <= assert_throttled(env.call(attacker, generate_client_id(), "x")) <= first
    assert env.take() == (0, 0)
    # an address with no exhausted limit still needs the storage: fail closed
    resp = env.call(random_address(), generate_client_id(), "x")
    assert resp.status_code == 503 and resp.get_json() == UNAVAILABLE
    forwarder.restore()


def test_a_throttled_address_is_checked_again_once_its_window_has_passed(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_PER_ADDRESS="2/second")
    attacker = random_address()
    for _ in range(2):
        assert env.call(attacker, generate_client_id(), "x").status_code == 401
    wait = assert_throttled(env.call(attacker, generate_client_id(), "x"), window=1)
    time.sleep(wait + 0.05)
    assert env.call(attacker, generate_client_id(), "x").status_code == 401  # looked up again, not 429
    assert env.take()[0] == 3


def test_redis_down_answers_503_and_the_next_request_after_it_returns_succeeds(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, redis_forwarder: tuple[str, Any]
) -> None:
    storage, forwarder = redis_forwarder
    env = make_env(make_app, monkeypatch, CLIENTAUTH_RATELIMIT_STORAGE_URI=storage, TESTING=True)
    other, other_secret = env.new_client()
    address = random_address()
    assert env.call(address, env.cid, env.secret).status_code == 200
    forwarder.cut()
    assert env.call(address, env.cid, env.secret).status_code == 200  # verified before: no counter needed
    resp = env.call(address, other, other_secret)
    assert resp.status_code == 503 and resp.get_json() == UNAVAILABLE
    forwarder.restore()
    assert env.call(address, other, other_secret).status_code == 200


# -- peers without an IP address: gunicorn on a unix socket, without ProxyFix ------------------------
#
# Gunicorn sets ``REMOTE_ADDR`` to ``""`` for a unix-socket peer (benoitc/gunicorn#797; checked
# here against a real gunicorn), Werkzeug's server to ``"<local>"``, and some servers set none.
# Such peers cannot be told apart, so they are throttled together, in one per-address bucket, and
# none of them inherits the exemption of an address that authenticated as the client before: a
# flood of wrong secrets from behind the socket is cut off, and the owner at a real, known
# address keeps working. The owner behind the same socket shares the attacker's bucket: it is
# served from the cache, but a check that needs bcrypt waits like the attacker (hence the advice,
# logged once, to apply ProxyFix).

#: Stands for "no REMOTE_ADDR at all" in :meth:`Env.call`; :class:`DropRemoteAddr` removes the key.
MISSING = "(missing)"
#: What gunicorn (unix socket), a server that sets nothing, and Werkzeug's server (unix socket) give.
UNKNOWN_PEERS = ["", MISSING, "<local>"]


class DropRemoteAddr:
    """WSGI middleware: takes ``REMOTE_ADDR`` out of the environ when it is :data:`MISSING`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") == MISSING:
            del environ["REMOTE_ADDR"]
        return self.app(environ, start_response)


@pytest.fixture
def peers(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    env = make_env(make_app, monkeypatch)
    env.app.wsgi_app = DropRemoteAddr(env.app.wsgi_app)  # type: ignore[method-assign]
    return env


def peer(n: int) -> str:
    return UNKNOWN_PEERS[n % len(UNKNOWN_PEERS)]


def test_peers_without_an_ip_address_share_one_bucket(peers: Env) -> None:
    for n in range(PER_ADDRESS):  # unknown client IDs: each a store lookup
        assert peers.call(peer(n), secrets.token_hex(8), "some-secret").status_code == 401
    assert peers.take()[0] == PER_ADDRESS
    for n in range(6):
        assert_throttled(peers.call(peer(n), secrets.token_hex(8), "some-secret"))
    assert peers.take() == (0, 0)
    # a peer with an address has its own bucket
    assert peers.call(random_address(), secrets.token_hex(8), "some-secret").status_code == 401


def test_an_unknown_peer_never_inherits_the_exemption_of_a_known_address(peers: Env) -> None:
    for address in UNKNOWN_PEERS:  # the owner, behind the socket too
        assert peers.call(address, peers.cid, peers.secret).status_code == 200
    peers.take()
    for n in range(PER_CLIENT):
        assert peers.call(peer(n), peers.cid, f"wrong-secret-{n}").status_code == 401
    assert peers.take() == (0, PER_CLIENT)
    for n in range(6):
        assert_throttled(peers.call(peer(n), peers.cid, f"another-wrong-secret-{n}"))
    assert peers.take() == (0, 0)


def test_a_flood_from_unknown_peers_does_not_lock_out_the_owner_at_a_known_address(peers: Env) -> None:
    owner = random_address()
    cache = peers.app.extensions["clientauth"].cache
    assert peers.call("", peers.cid, peers.secret).status_code == 200  # the owner, behind the socket
    cache.clear()
    assert peers.call(owner, peers.cid, peers.secret).status_code == 200  # and from its real address
    statuses = [peers.call(peer(n), peers.cid, f"wrong-secret-{n}").status_code for n in range(3 * PER_ADDRESS)]
    assert statuses == [401] * PER_CLIENT + [429] * (3 * PER_ADDRESS - PER_CLIENT)
    peers.take()
    # the owner's verified secret costs nothing and is not throttled, wherever it comes from
    assert peers.call(owner, peers.cid, peers.secret).status_code == 200
    assert peers.call("", peers.cid, peers.secret).status_code == 200
    assert peers.take() == (0, 0)
    # a check that needs bcrypt again: the known address is exempt from the client's limit ...
    cache.clear()
    assert peers.call(owner, peers.cid, peers.secret).status_code == 200
    assert peers.take() == (1, 1)
    # ... the owner behind the socket waits like the attacker it cannot be told from (documented)
    cache.clear()
    assert_throttled(peers.call("", peers.cid, peers.secret))
    assert peers.take() == (1, 0)


def test_the_first_request_without_an_address_logs_one_warning(peers: Env, caplog: pytest.LogCaptureFixture) -> None:
    assert peers.call(random_address(), secrets.token_hex(8), "some-secret").status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for address in UNKNOWN_PEERS * 2:
        assert peers.call(address, secrets.token_hex(8), "some-secret").status_code == 401
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    message = warnings[0].getMessage()
    assert warnings[0].name == "flask_clientauth"
    assert "REMOTE_ADDR ''" in message and "unix socket" in message and "ProxyFix" in message


# -- a real gunicorn on a unix socket -----------------------------------------------------------------


class UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a unix socket (what a reverse proxy on the same host does)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=HTTP_TIMEOUT)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(HTTP_TIMEOUT)
        sock.connect(self.path)
        self.sock = sock


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a unix socket path must fit in 108 bytes)."""
    path = tempfile.mkdtemp(prefix="ca-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_gunicorn_on_a_unix_socket_throttles_its_peers_and_the_owner_at_a_known_address_keeps_working(
    tmp_path: Path, short_dir: Path
) -> None:
    sock_path = str(short_dir / "app.sock")
    # Throttle at its defaults (20 failures per client ID, 60 per address, a minute). Entries live
    # 10 ms and every attacker's lookup replaces the client's entry with one that has verified
    # nothing, so the owner's requests during the flood are checks that need bcrypt (the throttled
    # kind) save for one that happens to follow another of its own within 10 ms.
    env = example_env(
        tmp_path / "instance", "openapi2", CLIENTAUTH_RATELIMIT_ENABLED="true", CLIENTAUTH_CACHE_TTL="0.01"
    )
    assert cli(env, "init-db").returncode == 0
    created = cli_json(env, "create", "Branch mobile app")
    cid, secret = created["client_id"], created["client_secret"]
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", "example_app/gunicorn_conf.py", "--bind", f"unix:{sock_path}"]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", "gthread", "--threads", "8"]
    server = Server([*cmd, "example_app:create_app()"], env, tmp_path, port, "openapi2")

    def over_socket(secret_value: str) -> int:
        conn = UnixConnection(sock_path)
        try:
            conn.request("GET", "/api/branches", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret_value})
            response = conn.getresponse()
            body = json.loads(response.read())
            if response.status == 429:
                assert body["moreInformation"] == "Too many failed attempts; retry later"
            return response.status
        finally:
            conn.close()

    def over_tcp(secret_value: str) -> int:
        headers = {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret_value}
        return requests.get(server.url + "/api/branches", headers=headers, timeout=HTTP_TIMEOUT).status_code

    try:
        server.wait_ready()
        # the owner authenticates both ways: behind the socket (as every client of a unix-socket
        # deployment does) and from its real address. bcrypt at cost 4 takes about a millisecond, so
        # the second may be served from the cache the first filled: its address is known either way.
        assert over_socket(secret) == 200
        assert over_tcp(secret) == 200
        # a flood of wrong secrets from behind the socket: cut off at the client's limit
        statuses = [over_socket(f"wrong-{secrets.token_hex(8)}") for _ in range(60)]
        assert statuses == [401] * 20 + [429] * 40
        # the flood goes on from 4 threads while the owner asks 16 times from its known address
        flood: list[int] = []

        def attack() -> None:
            flood.extend(over_socket(f"wrong-{secrets.token_hex(8)}") for _ in range(10))

        attackers = [threading.Thread(target=attack) for _ in range(4)]
        for t in attackers:
            t.start()
        owner = [over_tcp(secret) for _ in range(16)]
        for t in attackers:
            t.join(60)
        assert owner == [200] * 16
        assert flood == [429] * 40
        # the owner behind the same socket shares the attacker's bucket (documented: use ProxyFix)
        time.sleep(0.1)  # its cache entry (10 ms) has expired: a check that needs bcrypt
        assert over_socket(secret) == 429
    finally:
        server.stop()
    output = server.output()
    assert output.count("without an IP address (REMOTE_ADDR '')") == 1, output
