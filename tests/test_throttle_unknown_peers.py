"""Peers without an IP address: gunicorn on a unix socket, without ProxyFix.

Gunicorn sets ``REMOTE_ADDR`` to ``""`` for a unix-socket peer (benoitc/gunicorn#797; checked
here against a real gunicorn), Werkzeug's server to ``"<local>"``, and some servers set none.
Such peers cannot be told apart, so they are throttled together, in one per-address bucket, and
none of them inherits the exemption of an address that authenticated as the client before: a
flood of wrong secrets from behind the socket is cut off, and the owner at a real, known
address keeps working. The owner behind the same socket shares the attacker's bucket: it is
served from the cache, but a check that needs bcrypt waits like the attacker (hence the advice,
logged once, to apply ProxyFix).
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from test_e2e import HTTP_TIMEOUT, Server, cli, cli_json, example_env, free_port
from test_throttle import PER_ADDRESS, PER_CLIENT, Env, assert_throttled, make_env, random_address

from conftest import AppFactory

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
def env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    env = make_env(make_app, monkeypatch)
    env.app.wsgi_app = DropRemoteAddr(env.app.wsgi_app)  # type: ignore[method-assign]
    return env


def peer(n: int) -> str:
    return UNKNOWN_PEERS[n % len(UNKNOWN_PEERS)]


def test_peers_without_an_ip_address_share_one_bucket(env: Env) -> None:
    for n in range(PER_ADDRESS):  # unknown client IDs: each a store lookup
        assert env.call(peer(n), secrets.token_hex(8), "some-secret").status_code == 401
    assert env.take()[0] == PER_ADDRESS
    for n in range(6):
        assert_throttled(env.call(peer(n), secrets.token_hex(8), "some-secret"))
    assert env.take() == (0, 0)
    # a peer with an address has its own bucket
    assert env.call(random_address(), secrets.token_hex(8), "some-secret").status_code == 401


def test_an_unknown_peer_never_inherits_the_exemption_of_a_known_address(env: Env) -> None:
    for address in UNKNOWN_PEERS:  # the owner, behind the socket too
        assert env.call(address, env.cid, env.secret).status_code == 200
    env.take()
    for n in range(PER_CLIENT):
        assert env.call(peer(n), env.cid, f"wrong-secret-{n}").status_code == 401
    assert env.take() == (0, PER_CLIENT)
    for n in range(6):
        assert_throttled(env.call(peer(n), env.cid, f"another-wrong-secret-{n}"))
    assert env.take() == (0, 0)


def test_a_flood_from_unknown_peers_does_not_lock_out_the_owner_at_a_known_address(env: Env) -> None:
    owner = random_address()
    cache = env.app.extensions["clientauth"].cache
    assert env.call("", env.cid, env.secret).status_code == 200  # the owner, behind the socket
    cache.clear()
    assert env.call(owner, env.cid, env.secret).status_code == 200  # and from its real address
    statuses = [env.call(peer(n), env.cid, f"wrong-secret-{n}").status_code for n in range(3 * PER_ADDRESS)]
    assert statuses == [401] * PER_CLIENT + [429] * (3 * PER_ADDRESS - PER_CLIENT)
    env.take()
    # the owner's verified secret costs nothing and is not throttled, wherever it comes from
    assert env.call(owner, env.cid, env.secret).status_code == 200
    assert env.call("", env.cid, env.secret).status_code == 200
    assert env.take() == (0, 0)
    # a check that needs bcrypt again: the known address is exempt from the client's limit ...
    cache.clear()
    assert env.call(owner, env.cid, env.secret).status_code == 200
    assert env.take() == (1, 1)
    # ... the owner behind the socket waits like the attacker it cannot be told from (documented)
    cache.clear()
    assert_throttled(env.call("", env.cid, env.secret))
    assert env.take() == (1, 0)


def test_the_first_request_without_an_address_logs_one_warning(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    assert env.call(random_address(), secrets.token_hex(8), "some-secret").status_code == 401
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for address in UNKNOWN_PEERS * 2:
        assert env.call(address, secrets.token_hex(8), "some-secret").status_code == 401
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
