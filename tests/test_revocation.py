"""A secret changed while a bcrypt check of the old (operator-chosen) secret is under way.

Concurrent requests with one secret share one bcrypt check (single flight). A request that
arrives once the reset has been polled holds the new hash in its cache entry: it must not take
the answer of a check that began earlier against the old hash, however long that check runs
(about a quarter of a second at bcrypt's default cost, more on a busy host).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

import flask_clientauth.flight
from flask_clientauth import ClientStore
from servers import HTTP_TIMEOUT, Server, cli, cli_json, example_env, free_port

from conftest import AppFactory

HEADERS = ("X-IBM-Client-Id", "X-IBM-Client-Secret")


@dataclass
class HeldBcrypt:
    """bcrypt checks wait for :attr:`release` (at most 10 s); :attr:`hashes` lists the hashes checked."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    hashes: list[str] = field(default_factory=list)


@pytest.fixture
def held_bcrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldBcrypt]:
    held = HeldBcrypt()
    real = flask_clientauth.flight.secret_matches

    def held_check(secret: str, stored: str) -> bool:
        held.hashes.append(stored)
        held.started.set()
        held.release.wait(10)
        return real(secret, stored)

    monkeypatch.setattr(flask_clientauth.flight, "secret_matches", held_check)
    yield held
    held.release.set()


def get_in_thread(app: Any, cid: str, secret: str) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []

    def run() -> None:
        headers = dict(zip(HEADERS, (cid, secret), strict=True))
        result.append(app.test_client().get("/api/branches", headers=headers).status_code)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def app_with_client(make_app: AppFactory, database_url: str) -> tuple[Any, Any, Any, str]:
    """An app polling every 10 ms, with one client whose secret an operator chose (bcrypt: generated
    secrets are checked with a fast hash and never race): (app, its cache, the client's record, its secret)."""
    app = make_app(database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0.01)
    store = app.extensions["clientauth"].store
    record, _ = store.create("Branch mobile app")
    secret = "chosen-by-the-operator-1"
    return app, app.extensions["clientauth"].cache, store.set_secret(record.client_id, secret), secret


def test_a_check_begun_before_a_reset_never_admits_the_old_secret_once_the_reset_is_polled(
    make_app: AppFactory, database_url: str, other_process: ClientStore, held_bcrypt: HeldBcrypt
) -> None:
    app, cache, record, old = app_with_client(make_app, database_url)
    cid, old_hash = record.client_id, record.secret_hash
    # A: the old secret, first use: its bcrypt check against the old hash starts (and is held)
    first, first_result = get_in_thread(app, cid, old)
    assert held_bcrypt.started.wait(10)
    # the secret is reset by another process; B, with the old secret, arrives after the interval:
    # its poll sees the reset (the cached entry now holds the new hash) while A's check still runs
    new = "chosen-by-the-operator-2"
    other_process.set_secret(cid, new)
    time.sleep(0.05)
    second, second_result = get_in_thread(app, cid, old)
    wait_for(lambda: cid in cache._entries and cache._entries[cid].record.secret_hash != old_hash, "the poll")
    time.sleep(0.2)  # B reaches the check of its secret (the old one) under way
    held_bcrypt.release.set()
    first.join(10)
    second.join(10)
    assert first_result == [200]  # began before the reset was polled: within the interval
    assert second_result == [401]
    assert held_bcrypt.hashes[0] == old_hash and held_bcrypt.hashes[1:] == [cache._entries[cid].record.secret_hash]
    # neither the cache nor the warm path kept the old secret's answer for the new hash
    headers = dict(zip(HEADERS, (cid, old), strict=True))
    assert app.test_client().get("/api/branches", headers=headers).status_code == 401
    headers = dict(zip(HEADERS, (cid, new), strict=True))
    assert app.test_client().get("/api/branches", headers=headers).status_code == 200


def test_a_change_that_keeps_the_hash_still_shares_the_check(
    make_app: AppFactory, database_url: str, other_process: ClientStore, held_bcrypt: HeldBcrypt
) -> None:
    app, cache, record, secret = app_with_client(make_app, database_url)
    cid = record.client_id
    first, first_result = get_in_thread(app, cid, secret)
    assert held_bcrypt.started.wait(10)
    checked = cache._entries[cid]
    other_process.set_enabled(cid, True)  # a change (logged, polled by B) that keeps the hash
    time.sleep(0.05)
    second, second_result = get_in_thread(app, cid, secret)
    wait_for(lambda: cache._entries.get(cid) not in (None, checked), "the poll")
    time.sleep(0.2)
    held_bcrypt.release.set()
    first.join(10)
    second.join(10)
    assert first_result == [200] and second_result == [200]
    assert len(held_bcrypt.hashes) == 1  # B took A's answer: same secret, same hash


# -- a real gunicorn, bcrypt at its default cost, the CLI ----------------------------------------------

#: The revocation interval of the server below: long enough for the CLI (bcrypt at cost 12 on a
#: busy host: 2-4 s) to run inside it.
INTERVAL = 6.0
#: Rounds at most; the test stops after two in which the race happened.
ROUNDS = 5


@pytest.mark.slow
def test_gunicorn_refuses_the_old_secret_one_interval_after_set_secret_while_its_check_runs(tmp_path: Path) -> None:
    env = example_env(
        tmp_path / "instance", "openapi2", CLIENTAUTH_BCRYPT_ROUNDS="12", CLIENTAUTH_REVOCATION_INTERVAL=str(INTERVAL)
    )
    assert cli(env, "init-db").returncode == 0
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", "example_app/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", "1", "--worker-class", "gthread", "--threads", "8", "example_app:create_app()"]
    server = Server(cmd, env, tmp_path, port, "openapi2")

    def get(cid: str, secret: str | None, path: str = "/api/branches") -> int:
        headers = {HEADERS[0]: cid} if secret is None else dict(zip(HEADERS, (cid, secret), strict=True))
        return requests.get(server.url + path, headers=headers, timeout=HTTP_TIMEOUT).status_code

    def at(moment: float, cid: str, secret: str) -> tuple[threading.Thread, list[tuple[int, float]]]:
        """Send the request at ``moment`` (monotonic) in a thread: [(status, when it came back)]."""
        out: list[tuple[int, float]] = []

        def run() -> None:
            time.sleep(max(0.0, moment - time.monotonic()))
            out.append((get(cid, secret), time.monotonic()))

        thread = threading.Thread(target=run)
        thread.start()
        return thread, out

    raced = 0
    try:
        server.wait_ready()
        for n in range(ROUNDS):
            # operator-chosen secrets: bcrypt (generated ones are checked with a fast hash, no race)
            cid, old, new = (
                cli_json(env, "create", f"app {n}")["client_id"],
                f"chosen-old-secret-{n:04d}",
                f"chosen-new-secret-{n:04d}",
            )
            assert cli(env, "set-secret", cid, stdin=f"{old}\n").returncode == 0
            sent = time.monotonic()
            assert get(cid, None, "/api/branches/1") == 200  # an ID-only request: the worker polls now
            polled = time.monotonic()
            assert cli(env, "set-secret", cid, stdin=f"{new}\n").returncode == 0
            if time.monotonic() > sent + INTERVAL - 0.5:
                continue  # the CLI took most of the interval: no room for the race this round
            # A, the old secret's first use, just before the worker's next poll is due: checked
            # against the old hash (bcrypt 12: ~0.3-0.7 s); B, C, D, with the old secret too, just
            # after it is due, while A's check runs: each polls the reset (or waits for that poll)
            first = at(sent + INTERVAL - 0.1, cid, old)
            later_at = polled + INTERVAL + 0.01
            later = [at(later_at + 0.04 * k, cid, old) for k in range(3)]
            for thread, _ in [first, *later]:
                thread.join(30)
            statuses = [out[0][0] for _, out in later]
            assert 200 not in statuses and set(statuses) <= {401, 429}, statuses  # 429: a wait > 2 s
            assert get(cid, old) == 401
            assert get(cid, new) == 200
            if first[1][0][1] > later_at:  # A's check was still running when B was sent
                raced += 1
                if raced == 2:
                    break
    finally:
        server.stop()
    assert raced, "no round had the old secret's check running when the later requests came"
