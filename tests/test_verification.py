"""Issue 13's request-time verification, over HTTP: generated secrets checked without bcrypt,
malformed ones refused before any lookup, grace periods and expiry (also on the warm path), a
missing pepper, ``current_client``'s roles and label, and ``last_used_at`` written off the
request path."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, jsonify
from sqlalchemy import create_engine, select

from flask_clientauth import ClientStore, StoreError, current_client
from flask_clientauth.models import credentials_table

from conftest import CallCounter, FakeClock

PEPPER = "a pepper of more than thirty-two bytes, for tests"


class Clocks:
    """The app's monotonic clock and its wall clock (expiry, grace), moved together."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.now = datetime.now(timezone.utc)

    def wall(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clocks(clock: FakeClock) -> Clocks:
    return Clocks(clock)


def build(make_app: Any, clocks: Clocks, **config: Any) -> tuple[Flask, ClientStore]:
    """An app on ``clocks`` (``database_url=`` as ``make_app`` takes it)."""
    app = make_app(clock=clocks.clock, **config)
    app.extensions["clientauth"].cache.wall = clocks.wall
    return app, app.extensions["clientauth"].store


def get(app: Flask, client_id: str, secret: str | None = None, path: str = "/api/branches") -> Any:
    headers = {"X-IBM-Client-Id": client_id}
    if secret is not None:
        headers["X-IBM-Client-Secret"] = secret
    return app.test_client().get(path, headers=headers)


def code(response: Any) -> tuple[int, str]:
    body = response.get_json()
    return response.status_code, body.get("moreInformation") if "httpCode" in body else body.get("client_id")


# -- fast hashes, bcrypt, malformed secrets ---------------------------------------------------
def test_generated_secret_first_request_costs_one_lookup_and_one_fast_hash(
    make_app: Any, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = build(make_app, clocks)
    record, secret = store.create("Fast")
    assert secret is not None and record.secret_hash is not None and record.secret_hash.startswith("sha256$")
    counter = CallCounter(monkeypatch, store)
    flights = app.extensions["clientauth"].authenticator.flights
    monkeypatch.setattr(flights, "matches", lambda *args: pytest.fail("no single-flight for a fast hash"))
    assert get(app, record.client_id, secret).status_code == 200
    assert counter.take() == (1, 1) and counter.take_bcrypts() == 0  # one lookup, one fast hash
    assert get(app, record.client_id, secret).status_code == 200
    assert counter.take() == (0, 0)  # warm: from memory
    assert code(get(app, record.client_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))) == (
        401,
        "Client secret invalid",
    )
    assert counter.take() == (0, 0)  # a broken checksum: not even hashed


def test_chosen_secret_keeps_bcrypt_behind_the_single_flight(
    make_app: Any, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = build(make_app, clocks)
    record, _ = store.create("Chosen")
    store.set_secret(record.client_id, "a-chosen-secret-of-ours")
    counter = CallCounter(monkeypatch, store)
    flights = app.extensions["clientauth"].authenticator.flights
    calls = []
    real = flights.matches
    monkeypatch.setattr(flights, "matches", lambda *args: calls.append(1) or real(*args))
    assert get(app, record.client_id, "a-chosen-secret-of-ours").status_code == 200
    assert counter.take() == (1, 1) and counter.take_bcrypts() == 1 and calls == [1]
    assert code(get(app, record.client_id, "a-wrong-secret-of-ours")) == (401, "Client secret invalid")
    assert counter.take() == (0, 1) and counter.take_bcrypts() == 1 and calls == [1, 1]


@pytest.mark.parametrize(
    "secret",
    [
        "fcsk_short",
        "fcsk_" + "A" * 49,  # the right length, a wrong checksum
        "fcsk_" + "A" * 43 + "!" * 6,
    ],
)
def test_malformed_generated_secret_is_refused_before_any_lookup_or_hash(
    make_app: Any, clocks: Clocks, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    app, store = build(make_app, clocks)
    record, _ = store.create("Typo")
    counter = CallCounter(monkeypatch, store)
    for client_id in (record.client_id, "an-unknown-client-id"):
        response = get(app, client_id, secret)
        assert code(response) == (401, "Client secret invalid")
        assert response.get_json()["httpCode"] == "401"
    assert counter.take() == (0, 0)  # no store lookup, no hash


def test_wrong_generated_secrets_still_count_towards_the_throttle(make_app: Any, clocks: Clocks) -> None:
    app, store = build(
        make_app, clocks, CLIENTAUTH_RATELIMIT_PER_CLIENT="3/minute", CLIENTAUTH_RATELIMIT_PER_ADDRESS=None
    )
    record, _ = store.create("Guessed")
    _, wrong = store.create("Someone else")  # well formed, the right prefix, not this client's
    assert wrong is not None
    answers = [get(app, record.client_id, wrong).status_code for _ in range(5)]
    assert answers == [401, 401, 401, 429, 429]


def test_a_chosen_secret_cannot_look_generated_without_being_well_formed(store: ClientStore) -> None:
    record, _ = store.create("Chosen")
    with pytest.raises(ValueError, match="fcsk_"):
        store.set_secret(record.client_id, "fcsk_my-own-secret-123")


# -- grace period -------------------------------------------------------------------------
def test_both_secrets_work_during_the_grace_period_then_only_the_new_one(
    make_app: Any, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, store = build(make_app, clocks)
    record, old = store.create("Rotating")
    assert old is not None
    assert get(app, record.client_id, old).status_code == 200  # cached, and the old secret verified
    _, new = store.reset_secret(record.client_id, grace=timedelta(seconds=60))
    clocks.advance(1)  # the change-log poll that learns of the reset
    counter = CallCounter(monkeypatch, store)
    for _ in range(2):  # the second time from memory: warm path
        assert get(app, record.client_id, new).status_code == 200
        assert get(app, record.client_id, old).status_code == 200
    # one lookup; the new secret's hash, then the old one's against both: no bcrypt, then from memory
    assert counter.take() == (1, 3) and counter.take_bcrypts() == 0
    clocks.advance(50)
    assert get(app, record.client_id, old).status_code == 200
    clocks.advance(12)  # the grace period is over: the warm path must not accept the old one
    app.extensions["clientauth"].cache.current_until = float("inf")  # not even a poll to help
    assert code(get(app, record.client_id, old)) == (401, "Client secret invalid")
    assert get(app, record.client_id, new).status_code == 200


def test_grace_of_a_secret_reset_elsewhere_reaches_the_warm_path(
    make_app: Any, clocks: Clocks, other_process: ClientStore, database_url: str
) -> None:
    """The reset comes from another process (the CLI): the cache learns it from the change log; the
    old secret's verified digest survives only as long as the grace period."""
    app, store = build(make_app, clocks, database_url=database_url)
    record, old = store.create("Rotating")
    assert old is not None and get(app, record.client_id, old).status_code == 200
    _, new = other_process.reset_secret(record.client_id, grace=timedelta(seconds=30))
    clocks.advance(1.5)
    assert get(app, record.client_id, new).status_code == 200
    assert get(app, record.client_id, old).status_code == 200
    other_process.set_roles(record.client_id, add=["reader"])  # a change that keeps the hashes
    clocks.advance(1.5)
    assert get(app, record.client_id, old).status_code == 200
    clocks.advance(32)
    assert code(get(app, record.client_id, old)) == (401, "Client secret invalid")
    assert get(app, record.client_id, new).status_code == 200


def test_a_reset_without_grace_stops_the_old_secret_at_the_next_poll(
    make_app: Any, clocks: Clocks, other_process: ClientStore, database_url: str
) -> None:
    app, store = build(make_app, clocks, database_url=database_url)
    record, old = store.create("Rotating")
    assert old is not None and get(app, record.client_id, old).status_code == 200
    _, new = other_process.reset_secret(record.client_id)
    clocks.advance(1.5)
    assert code(get(app, record.client_id, old)) == (401, "Client secret invalid")
    assert get(app, record.client_id, new).status_code == 200


# -- expiry ---------------------------------------------------------------------------------
def test_expired_credential_is_refused_with_credential_expired_also_on_the_warm_path(
    make_app: Any, clocks: Clocks
) -> None:
    app, store = build(make_app, clocks)
    record, secret = store.create("Temporary", expires_at=clocks.now + timedelta(seconds=30))
    assert secret is not None
    other, other_secret = store.add_credential(record.client_id)
    assert get(app, record.client_id, secret).status_code == 200
    assert get(app, record.client_id, path="/api/branches/1").status_code == 200
    clocks.advance(25)
    app.extensions["clientauth"].cache.current_until = float("inf")  # warm: no poll due
    assert get(app, record.client_id, secret).status_code == 200
    clocks.advance(6)
    response = get(app, record.client_id, secret)
    assert response.status_code == 401
    assert response.get_json() == {
        "httpCode": "401",
        "httpMessage": "Unauthorized",
        "moreInformation": "Client ID expired",
    }
    assert "WWW-Authenticate" in response.headers
    assert code(get(app, record.client_id, path="/api/branches/1")) == (401, "Client ID expired")
    # the secret is checked first: a wrong one says nothing about the credential
    assert code(get(app, record.client_id, "not-the-secret")) == (401, "Client secret invalid")
    # the client's other credential goes on working
    assert get(app, other.client_id, other_secret).status_code == 200


def test_credential_expired_is_a_failure_code_an_error_handler_sees(make_app: Any, clocks: Clocks) -> None:
    app, store = build(make_app, clocks)
    auth = app.extensions["test_auth"]
    seen = []

    @auth.error_handler
    def refused(failure: Any) -> Any:
        seen.append(failure.code)
        return {"error": failure.code}, failure.status

    record, secret = store.create("Past", expires_at=clocks.now - timedelta(seconds=1))
    assert get(app, record.client_id, secret).status_code == 401
    assert seen == ["credential_expired"]


def test_expiry_set_elsewhere_reaches_the_warm_path(
    make_app: Any, clocks: Clocks, other_process: ClientStore, database_url: str
) -> None:
    app, store = build(make_app, clocks, database_url=database_url)
    record, secret = store.create("Soon expired")
    assert get(app, record.client_id, secret).status_code == 200
    other_process.set_expiry(record.client_id, clocks.now + timedelta(seconds=10))
    clocks.advance(1.5)
    assert get(app, record.client_id, secret).status_code == 200
    clocks.advance(11)
    assert code(get(app, record.client_id, secret)) == (401, "Client ID expired")
    other_process.set_expiry(record.client_id, None)
    clocks.advance(1.5)
    assert get(app, record.client_id, secret).status_code == 200


# -- pepper ---------------------------------------------------------------------------------
def test_hmac_hash_without_a_pepper_fails_closed_with_503_naming_the_setting(
    make_app: Any, clocks: Clocks, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    peppered, store = build(make_app, clocks, CLIENTAUTH_SECRET_PEPPER=PEPPER)
    record, secret = store.create("Peppered")
    assert record.secret_hash is not None and record.secret_hash.startswith("hmac-sha256$")
    assert get(peppered, record.client_id, secret).status_code == 200
    plain, _ = build(make_app, clocks, create_tables=False)
    caplog.clear()
    response = get(plain, record.client_id, secret)
    assert response.status_code == 503
    assert response.get_json()["moreInformation"] == "API security is misconfigured"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("CLIENTAUTH_SECRET_PEPPER" in r.getMessage() for r in errors)
    assert not any(r.exc_info for r in caplog.records)  # no traceback
    assert get(plain, record.client_id, "fcsk_short").status_code == 401  # malformed: decided before


# -- current_client -----------------------------------------------------------------------------
def test_current_client_gives_the_credential_id_and_label_and_the_client_name_and_roles(
    make_app: Any, clocks: Clocks
) -> None:
    app, store = build(make_app, clocks, routes=False)

    @app.get("/api/branches")
    def me() -> Any:
        client = current_client
        assert client is not None
        return jsonify(
            client_id=client.client_id,
            name=client.name,
            roles=list(client.roles),
            label=client.label,
            schemes=list(client.schemes),
            secret_verified=client.secret_verified,
            context=client.context,
            repr=repr(client),
        )

    record, _ = store.create("Mobile app", roles=["reader", "admin"], label="production")
    second, secret = store.add_credential(record.client_id, label="ci")
    assert secret is not None
    for _ in range(2):  # the general check, then the warm path: the same answer
        body = get(app, second.client_id, secret).get_json()
        assert body == {
            "client_id": second.client_id,
            "name": "Mobile app",
            "roles": ["admin", "reader"],
            "label": "ci",
            "schemes": ["clientIdHeader", "clientSecretHeader"],
            "secret_verified": True,
            "context": {"client.app.id": second.client_id, "client.app.name": "Mobile app"},
            "repr": (
                f"AuthenticatedClient(client_id={second.client_id!r}, name='Mobile app', roles=('admin', 'reader'), "
                "label='ci', schemes=('clientIdHeader', 'clientSecretHeader'), secret_verified=True)"
            ),
        }
        assert secret not in body["repr"]


# -- last used ------------------------------------------------------------------------------
def last_used(database_url: str, client_id: str) -> datetime | None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                select(credentials_table.c.last_used_at).where(credentials_table.c.client_id == client_id)
            ).scalar()
    finally:
        engine.dispose()
    return None if value is None else value.replace(tzinfo=value.tzinfo or timezone.utc)


def test_last_used_is_written_by_the_flush_not_by_requests(
    make_app: Any, clock: FakeClock, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(clock=clock, database_url=database_url, CLIENTAUTH_LAST_USED_INTERVAL=3600)
    state = app.extensions["clientauth"]
    store = state.store
    record, secret = store.create("Used")
    idle, idle_secret = store.create("Idle")
    touches: list[dict[str, datetime]] = []
    real_touch = store.touch
    monkeypatch.setattr(store, "touch", lambda used: touches.append(dict(used)) or real_touch(used))
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    for _ in range(20):  # the general check, then the warm path
        assert get(app, record.client_id, secret).status_code == 200
    assert get(app, record.client_id, path="/api/branches/7").status_code == 200
    assert touches == [] and last_used(database_url, record.client_id) is None  # no write per request
    assert state.authenticator.usage.flush() == 1
    assert len(touches) == 1 and list(touches[0]) == [record.client_id]
    used = last_used(database_url, record.client_id)
    assert used is not None and before <= used <= datetime.now(timezone.utc) + timedelta(seconds=1)
    assert last_used(database_url, idle.client_id) is None
    assert store.get(record.client_id).last_used_at is not None  # type: ignore[union-attr]
    assert state.authenticator.usage.flush() == 0  # nothing used since: no write
    clock.advance(5)
    assert get(app, record.client_id, secret).status_code == 200  # warm
    assert state.authenticator.usage.flush() == 1
    later = last_used(database_url, record.client_id)
    assert later is not None and used is not None and later >= used
    assert get(app, idle.client_id, "fcsk_" + "x" * 49).status_code == 401  # a failure is no use
    assert get(app, idle.client_id, (idle_secret or "")[::-1]).status_code == 401
    assert state.authenticator.usage.flush() == 0


def test_last_used_survives_the_cache_dropping_the_entry(make_app: Any, clock: FakeClock, sqlite_url: str) -> None:
    """A use seen only by the warm path (the entry's mark) is written even when the entry is dropped
    before the flush (here by a change this process makes)."""
    app = make_app(clock=clock)
    state = app.extensions["clientauth"]
    record, secret = state.store.create("Used")
    assert get(app, record.client_id, secret).status_code == 200
    assert state.authenticator.usage.flush() == 1
    first = last_used(sqlite_url, record.client_id)
    clock.advance(0.5)
    time.sleep(0.01)
    assert get(app, record.client_id, secret).status_code == 200  # warm: the entry's mark only
    state.store.set_roles(record.client_id, add=["reader"])  # this process's change drops the entry
    assert state.authenticator.usage.flush() == 1
    second = last_used(sqlite_url, record.client_id)
    assert first is not None and second is not None and second > first


def test_a_failing_flush_never_fails_a_request_and_is_retried(
    make_app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    app = make_app(clock=clock, CLIENTAUTH_LAST_USED_INTERVAL=0.2)
    state = app.extensions["clientauth"]
    store = state.store
    record, secret = store.create("Used")
    real_touch = store.touch

    def broken(used: Any) -> None:
        raise StoreError("client store unavailable: the database is away")

    monkeypatch.setattr(store, "touch", broken)
    started = time.monotonic()
    while time.monotonic() < started + 1.5:  # requests while the flusher thread fails, several times
        assert get(app, record.client_id, secret).status_code == 200
        time.sleep(0.01)
    for _ in range(5):
        assert state.authenticator.usage.flush() == 0  # failing again at once: no new warning
    warnings = [r for r in caplog.records if "last used" in r.getMessage()]
    assert warnings and all(r.levelno == logging.WARNING for r in warnings)
    assert len(warnings) <= (time.monotonic() - started) / 0.2 + 1  # at most once per interval
    assert "the database is away" in warnings[0].getMessage()
    assert last_used(sqlite_url, record.client_id) is None
    monkeypatch.setattr(store, "touch", real_touch)
    deadline = time.monotonic() + 5
    while last_used(sqlite_url, record.client_id) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the thread's next flush writes what failed before: no new request needed
    assert last_used(sqlite_url, record.client_id) is not None


def test_last_used_interval_zero_records_nothing(
    make_app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(clock=clock, CLIENTAUTH_LAST_USED_INTERVAL=0)
    state = app.extensions["clientauth"]
    record, secret = state.store.create("Unrecorded")
    monkeypatch.setattr(state.store, "touch", lambda used: pytest.fail("no write expected"))
    assert get(app, record.client_id, secret).status_code == 200
    assert get(app, record.client_id, secret).status_code == 200
    assert state.authenticator.usage.flush() == 0


def test_last_used_without_a_cache(make_app: Any, clock: FakeClock, sqlite_url: str) -> None:
    app = make_app(clock=clock, CLIENTAUTH_CACHE_SIZE=0)
    state = app.extensions["clientauth"]
    record, secret = state.store.create("Uncached")
    assert get(app, record.client_id, secret).status_code == 200
    assert state.authenticator.usage.flush() == 1
    assert last_used(sqlite_url, record.client_id) is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_starts_its_own_flusher(make_app: Any, sqlite_url: str) -> None:
    """As with gunicorn's --preload: the parent served a request (its thread runs), then forked; the
    child's thread did not come along, and the child's first request starts its own."""
    app = make_app(CLIENTAUTH_LAST_USED_INTERVAL=0.1)
    state = app.extensions["clientauth"]
    record, secret = state.store.create("Parent")
    child_record, child_secret = state.store.create("Child")
    assert get(app, record.client_id, secret).status_code == 200
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never through pytest
        status = 1
        try:
            state.engine.dispose(close=False)  # the parent's connections stay the parent's
            if get(app, child_record.client_id, child_secret).status_code == 200:
                deadline = time.monotonic() + 5
                while last_used(sqlite_url, child_record.client_id) is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                status = 0 if last_used(sqlite_url, child_record.client_id) is not None else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
