"""What a request costs once a client is known, and what the caches promise.

Counted, not timed: store lookups, bcrypt checks and change-log polls (``CallCounter``), on
the real database and the real bcrypt. The revocation interval is a correctness guarantee
(a change is refused once the interval has passed), so the tests wait it out rather than
measure how fast anything is; speed is in ``benchmarks/``.
"""

from __future__ import annotations

import copy
import gc
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

import flask_clientauth.flight
import flask_clientauth.revocation
from flask_clientauth import ClientStore
from flask_clientauth.keys import generate_client_id

from conftest import QID, QSEC, TUTORIAL_SPEC, AppFactory, ClientEnv, FakeClock

#: The tutorial's document with its keys in the query string: the general (not the header) path.
QUERY_SPEC: dict[str, Any] = copy.deepcopy(TUTORIAL_SPEC)
QUERY_SPEC["securityDefinitions"] = {"clientIdHeader": QID, "clientSecretHeader": QSEC}
SPECS = {"header": TUTORIAL_SPEC, "query": QUERY_SPEC}
#: Long enough that no poll falls due during a test, unless the test waits for it.
NO_POLL = 60.0


@dataclass
class Env(ClientEnv):
    """Besides its own client, the tests register theirs (``new_client``) with ``location``'s keys."""

    location: str = "header"

    def get(self, cid: str | None, secret: str | None = None, path: str = "/api/branches") -> Any:
        values = {k: v for k, v in (("id", cid), ("secret", secret)) if v is not None}
        if self.location == "query":
            query = {{"id": "client_id", "secret": "client_secret"}[k]: v for k, v in values.items()}
            return self.client.get(path, query_string=query)
        names = {"id": "X-IBM-Client-Id", "secret": "X-IBM-Client-Secret"}
        return self.client.get(path, headers={names[k]: v for k, v in values.items()})

    def new_chosen_client(self, name: str = "app", secret: str = "a-chosen-secret-0") -> tuple[str, str]:
        """A client with an operator-chosen secret: bcrypt, behind the single-flight check."""
        record, _ = self.store.create(name)
        self.store.set_secret(record.client_id, secret)
        return record.client_id, secret

    @property
    def authenticator(self) -> Any:
        return self.app.extensions["clientauth"].authenticator

    @property
    def cache(self) -> Any:
        return self.app.extensions["clientauth"].cache


def make_env(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, location: str = "header", **config: Any) -> Env:
    config.setdefault("CLIENTAUTH_REVOCATION_INTERVAL", NO_POLL)
    config.setdefault("CLIENTAUTH_RATELIMIT_ENABLED", False)
    return Env.of(make_app(spec=SPECS[location], **config), monkeypatch, location=location)


@pytest.fixture(params=list(SPECS))
def env(request: pytest.FixtureRequest, make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> Env:
    return make_env(make_app, monkeypatch, request.param)


# -- the warm path ---------------------------------------------------------------------------------


def test_a_known_client_costs_no_lookup_no_bcrypt_and_no_poll(env: Env) -> None:
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    assert env.take() == (1, 1)
    env.counter.take_polls()
    for _ in range(50):
        assert env.get(cid, secret).get_json()["client_id"] == cid
        assert env.get(cid, path="/api/branches/7").get_json()["client_id"] == cid  # id-only operation
    assert env.take() == (0, 0)
    assert env.counter.take_polls() == 0


def test_the_cache_holds_digests_never_the_secret(env: Env) -> None:
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    assert env.get(cid, secret).status_code == 200  # served from the cache
    seen: set[int] = set()
    auth = env.authenticator
    todo: list[Any] = [env.cache, auth.flights, auth.throttle.known]
    while todo:  # everything the caches reach
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, (type, type(gc))):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            assert secret not in obj
        elif isinstance(obj, (bytes, bytearray)):
            assert secret.encode() not in obj
        todo.extend(gc.get_referents(obj))
    assert len(seen) > 20  # the walk did reach the entries
    assert secret not in repr(env.cache) and secret not in repr(env.cache._entries)


def test_the_cache_is_bounded_and_keeps_what_is_used(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_CACHE_SIZE=3)
    a, b, c, d = (env.new_client(n) for n in "abcd")
    for cid, secret in (a, b, c):
        assert env.get(cid, secret).status_code == 200
    assert env.take() == (3, 3)
    assert env.get(*a).status_code == 200  # a is used again ...
    assert env.take() == (0, 0)
    assert env.get(*d).status_code == 200  # ... so d pushes out b, the oldest unused
    assert env.take() == (1, 1)
    assert len(env.cache) == 3
    assert env.get(*a).status_code == 200 and env.get(*c).status_code == 200
    assert env.take() == (0, 0)
    assert env.get(*b).status_code == 200  # b was forgotten: looked up and verified again
    assert env.take() == (1, 1)
    assert len(env.cache) == 3


def test_cached_clients_expire_after_the_ttl(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_CACHE_TTL=0.3, clock=clock)
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    assert env.get(cid, secret).status_code == 200
    assert env.take() == (1, 1)
    clock.advance(0.35)
    assert env.get(cid, secret).status_code == 200
    assert env.take() == (1, 1)


def test_cache_size_zero_checks_every_request(make_app: AppFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_CACHE_SIZE=0)
    cid, secret = env.new_client()
    for _ in range(3):
        assert env.get(cid, secret).status_code == 200
        assert env.take() == (1, 1)
    assert len(env.cache) == 0


def test_unknown_ids_are_remembered_for_a_short_while(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    env = make_env(
        make_app, monkeypatch, CLIENTAUTH_NEGATIVE_CACHE_TTL=0.3, CLIENTAUTH_NEGATIVE_CACHE_SIZE=2, clock=clock
    )
    x, y, z = (generate_client_id() for _ in range(3))
    for cid in (x, x, x):
        assert env.get(cid, "whatever-secret").status_code == 401
    assert env.take() == (1, 0)
    for cid in (y, z, x):  # at most two remembered: y and z push x out
        assert env.get(cid, "whatever-secret").status_code == 401
    assert env.take() == (3, 0)
    clock.advance(0.35)
    assert env.get(z, "whatever-secret").status_code == 401  # forgotten after the TTL
    assert env.take() == (1, 0)


# -- revocation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "text"),
    [
        ("disable", 403, "Client disabled"),
        ("reset_secret", 401, "Client secret invalid"),
        ("delete", 401, "Client ID not registered"),
    ],
)
def test_every_worker_refuses_a_revoked_credential_once_the_interval_has_passed(
    make_app: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    other_process: ClientStore,
    action: str,
    status: int,
    text: str,
    clock: FakeClock,
) -> None:
    interval = 0.5
    workers = [
        make_env(make_app, monkeypatch, database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock)
        for _ in range(2)
    ]
    cid, secret = workers[0].new_client()
    for w in workers:
        for _ in range(2):
            assert w.get(cid, secret).status_code == 200
    # the CLI or another instance changes the client: no worker hears of it but through the change log
    if action == "disable":
        other_process.set_enabled(cid, False)
    elif action == "reset_secret":
        other_process.reset_secret(cid)
    else:
        other_process.delete(cid)
    clock.advance(interval + 0.05)
    for w in workers:
        w.take()
        resp = w.get(cid, secret)
        assert resp.status_code == status and resp.get_json()["moreInformation"] == text
        gets, bcrypts = w.take()
        # the poll re-read the changed client; a deleted one is looked up once, then known as unknown
        assert gets == (1 if action == "delete" else 0)
        assert w.get(cid, secret).status_code == status
        assert w.take()[0] == 0
        # a disabled client's secret was verified before and its hash did not change: no bcrypt
        assert bcrypts == (1 if action == "reset_secret" else 0)


def test_a_disabled_and_enabled_client_is_served_again_without_bcrypt(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, database_url: str, other_process: ClientStore
) -> None:
    env = make_env(make_app, monkeypatch, database_url=database_url)
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    other_process.set_enabled(cid, False)
    env.authenticator.revocation.refresh(force=True)
    assert env.get(cid, secret).status_code == 403
    other_process.set_enabled(cid, True)
    env.authenticator.revocation.refresh(force=True)
    env.take()
    assert env.get(cid, secret).status_code == 200
    assert env.take() == (0, 0)


@pytest.mark.parametrize("poll_wait", [5.0, 0.2])
def test_a_request_during_another_threads_poll_waits_for_its_answer(
    make_app: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    other_process: ClientStore,
    poll_wait: float,
    clock: FakeClock,
) -> None:
    interval = 0.3
    env = make_env(
        make_app, monkeypatch, database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock
    )
    monkeypatch.setattr(flask_clientauth.revocation, "POLL_WAIT", poll_wait)
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    other_process.set_enabled(cid, False)
    clock.advance(interval + 0.05)  # a poll is due, and it will bring the change
    release = threading.Event()
    real = env.store.changes_after

    def slow_poll(*args: Any) -> Any:
        release.wait(5)
        return real(*args)

    monkeypatch.setattr(env.store, "changes_after", slow_poll)
    polling, polling_result = get_in_thread(env.app, cid, secret)
    time.sleep(0.3)  # that thread is inside the poll
    waiting, waiting_result = get_in_thread(env.app, cid, secret)
    time.sleep(poll_wait + 0.1 if poll_wait < 1 else 0.2)
    if poll_wait < 1:  # a poll stuck longer than POLL_WAIT: the waiting request fails closed
        waiting.join(5)
        assert waiting_result == [503]
    else:  # never served from before the change meanwhile
        assert waiting_result == [None]
    release.set()
    polling.join(10)
    waiting.join(10)
    assert polling_result == [403]
    if poll_wait >= 1:
        assert waiting_result == [403]
    assert env.get(cid, secret).status_code == 403


def test_polls_happen_at_most_once_per_interval_and_only_on_requests(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    interval = 0.3
    env = make_env(make_app, monkeypatch, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock)
    cid, secret = env.new_client()
    assert env.get(cid, secret).status_code == 200
    env.counter.take_polls()
    clock.advance(interval * 2)
    assert env.counter.take_polls() == 0  # nothing polls between requests
    started = clock()
    requests = 0
    while clock() - started < interval * 3:
        assert env.get(cid, secret).status_code == 200
        requests += 1
        clock.advance(interval / 20)  # 20 requests per interval
    polls = env.counter.take_polls()
    assert requests > 10 * polls
    assert 1 <= polls <= 4  # the first request after the pause polls, then one per interval at most


# -- concurrency -----------------------------------------------------------------------------------


@pytest.fixture
def slow_bcrypt(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """bcrypt checks wait for the returned event (at most 5 s) before they run."""
    release = threading.Event()
    real = flask_clientauth.flight.secret_matches

    def slow(secret: str, stored: str) -> bool:
        release.wait(5)
        return real(secret, stored)

    monkeypatch.setattr(flask_clientauth.flight, "secret_matches", slow)
    yield release
    release.set()


def run_threads(n: int, target: Any) -> tuple[list[threading.Thread], list[Any]]:
    """Start ``n`` threads running ``target(i)``; their results land in the list as they finish."""
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        results[i] = target(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


def test_concurrent_first_requests_with_one_secret_share_one_bcrypt(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, slow_bcrypt: threading.Event
) -> None:
    env = make_env(make_app, monkeypatch)
    cid, secret = env.new_chosen_client()
    threads, results = run_threads(
        6,
        lambda i: (
            env.app.test_client()
            .get("/api/branches", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
            .status_code
        ),
    )
    time.sleep(0.3)  # every thread is in: one runs bcrypt, the others wait for its answer
    slow_bcrypt.set()
    for t in threads:
        t.join(10)
    assert results == [200] * 6
    assert env.counter.take()[1] == 1


def get_in_thread(app: Flask, cid: str, secret: str) -> tuple[threading.Thread, list[Any]]:
    threads, results = run_threads(
        1,
        lambda i: (
            app.test_client()
            .get("/api/branches", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
            .status_code
        ),
    )
    return threads[0], results


def test_a_third_secret_while_two_are_pending_gets_429_at_once(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, slow_bcrypt: threading.Event
) -> None:
    env = make_env(make_app, monkeypatch)
    cid, secret = env.new_chosen_client()
    checked, checked_result = get_in_thread(env.app, cid, secret)
    time.sleep(0.2)  # the right secret's check is under way (held by slow_bcrypt)
    waiting, waiting_result = get_in_thread(env.app, cid, "guessed-secret-0")
    time.sleep(0.2)  # a second secret waits for its turn
    guesses = [env.get(cid, f"guessed-secret-{n}") for n in range(1, 6)]
    assert checked_result == [None] and waiting_result == [None]  # answered while both were pending
    for resp in guesses:
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
        assert resp.get_json()["moreInformation"] == "Too many failed attempts; retry later"
    slow_bcrypt.set()
    checked.join(10)
    waiting.join(10)
    assert checked_result == [200] and waiting_result == [401]
    assert env.take()[1] == 2
    assert env.get(cid, secret).status_code == 200


def test_old_and_new_secret_arriving_together_are_both_answered(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, slow_bcrypt: threading.Event
) -> None:
    # a rotation: some requests still carry the old secret while others bring the new one
    env = make_env(make_app, monkeypatch)
    cid, old = env.new_chosen_client()
    new = "a-chosen-secret-1"
    env.store.set_secret(cid, new)
    pending = [get_in_thread(env.app, cid, old)]
    time.sleep(0.2)
    pending += [get_in_thread(env.app, cid, new) for _ in range(4)]
    time.sleep(0.2)
    slow_bcrypt.set()
    for thread, _ in pending:
        thread.join(10)
    assert [result for _, (result,) in pending] == [401, 200, 200, 200, 200]
    assert env.take()[1] == 2  # one check per secret


def test_threads_churning_a_small_cache_get_every_answer_right(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(make_app, monkeypatch, CLIENTAUTH_CACHE_SIZE=2, CLIENTAUTH_REVOCATION_INTERVAL=0.01)
    clients = [env.new_client(f"app {n}") for n in range(5)]
    errors: list[str] = []

    def hammer(i: int) -> None:
        client = env.app.test_client()
        for n in range(40):
            cid, secret = clients[(i + n) % len(clients)]
            wrong = n % 5 == 0
            resp = client.get(
                "/api/branches",
                headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": "not-" + secret if wrong else secret},
            )
            expected = (401,) if wrong else (200,)
            body = resp.get_json()
            if resp.status_code == 429:  # another thread's check of this client ID was under way
                continue
            if resp.status_code not in expected or (not wrong and body["client_id"] != cid):
                errors.append(f"{resp.status_code} {body}")

    threads, _ = run_threads(8, hammer)
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(env.cache) <= 2


# -- the route table -------------------------------------------------------------------------------


def test_requirements_are_resolved_at_start_up_not_per_request(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(make_app, monkeypatch)
    auth = env.app.extensions["test_auth"]
    rows = auth.routes(env.app)
    table = env.app.extensions["clientauth"].table()
    assert {(r.rule, r.method) for r in rows} >= {("/api/branches", "GET"), ("/api/status", "GET")}
    resolved: list[Any] = []
    real = table.resolve
    monkeypatch.setattr(table, "resolve", lambda *a: resolved.append(a) or real(*a))
    cid, secret = env.new_client()
    for path in ("/api/branches", "/api/branches/3", "/api/status"):
        for _ in range(3):
            assert env.get(cid, secret, path=path).status_code == 200
    assert resolved == []


# -- the header fast path decides as the general path does ----------------------------------------


def test_the_fast_path_answers_exactly_as_the_general_path(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, other_process: ClientStore, database_url: str
) -> None:
    fast = make_env(make_app, monkeypatch, database_url=database_url)
    general = make_env(make_app, monkeypatch, database_url=database_url)
    monkeypatch.setattr(general.authenticator, "fast", lambda *a: None)
    cid, secret = fast.new_client()
    other, other_secret = fast.new_client("other")
    steps: list[tuple[str, Any]] = [
        ("right", (cid, secret)),
        ("right again (warm)", (cid, secret)),
        ("id only on id+secret", (cid, None)),
        ("wrong secret", (cid, secret[:-1] + ("A" if secret[-1] != "A" else "B"))),
        ("another client's secret", (cid, other_secret)),
        ("comma-joined id", (f"{cid},{cid}", secret)),
        ("comma-joined secret", (cid, f"{secret},{secret}")),
        ("unknown id", (generate_client_id(), secret)),
        ("empty secret", (cid, "")),
        ("other client", (other, other_secret)),
        ("disable", None),
        ("disabled", (cid, secret)),
        ("disabled, id-only route", (cid, None, "/api/branches/1")),
        ("enable", None),
        ("enabled again", (cid, secret)),
        ("delete other", None),
        ("deleted", (other, other_secret)),
    ]
    for label, call in steps:
        if call is None:
            if label == "disable":
                other_process.set_enabled(cid, False)
            elif label == "enable":
                other_process.set_enabled(cid, True)
            else:
                other_process.delete(other)
            for env in (fast, general):
                env.authenticator.revocation.refresh(force=True)
            continue
        answers = []
        for env in (fast, general):
            resp = env.get(*call)
            answers.append((resp.status_code, resp.get_json(), resp.headers.get("WWW-Authenticate")))
        assert answers[0] == answers[1], label


def test_cache_verified_answers_only_live_enabled_clients_with_a_secret_seen_before(clock: FakeClock) -> None:
    """The warm path's probe, without an app: what it may answer from memory, and what it leaves to
    the general check (``None``)."""
    from dataclasses import replace

    from flask_clientauth.cache import CredentialCache

    cache = CredentialCache(size=10, ttl=60.0, negative_size=10, negative_ttl=5.0, clock=clock)
    record = _record("cid")
    entry = cache.put("cid", record, cache.epoch)
    assert entry is not None
    cache.mark_verified(entry, cache.digest("good"))
    assert cache.verified("cid", "good") is entry
    assert cache.verified("cid", None) is entry  # a route that wants the ID only
    assert cache.verified("cid", "bad") is None  # never checked: bcrypt decides
    assert cache.verified("other", None) is None
    cache.current_until = clock() + 1  # a change-log poll falls due in a second
    assert cache.verified("cid", "good") is entry
    clock.advance(1)
    assert cache.verified("cid", "good") is None  # the general check polls first
    cache.current_until = clock() + 100
    clock.advance(61)
    assert cache.verified("cid", "good") is None  # expired
    cache.update({"cid": replace(record, enabled=False)})
    assert cache.verified("cid", "good") is None  # disabled: the general check says 403


# -- the cache alone -------------------------------------------------------------------------------


def _record(client_id: str, secret_hash: str = "$2b$12$x", enabled: bool = True) -> Any:
    """A client with one credential, as the store gives it."""
    from datetime import datetime, timezone

    from flask_clientauth.store import ClientRecord, CredentialRecord

    now = datetime.now(timezone.utc)
    credential = CredentialRecord(client_id, "", now, secret_hash=secret_hash)
    return ClientRecord(client_id, "App", "", enabled, now, now, credentials=(credential,))


def _cache(clock: FakeClock, size: int = 3, negative_size: int = 2) -> Any:
    from flask_clientauth.cache import CredentialCache

    return CredentialCache(size=size, ttl=60.0, negative_size=negative_size, negative_ttl=5.0, clock=clock)


def test_cache_eviction_gives_a_used_entry_a_second_chance(clock: FakeClock) -> None:
    cache = _cache(clock)
    for cid in "abc":
        cache.put(cid, _record(cid), cache.epoch)
    assert cache.verified("a", None) is not None  # used (a request it authenticated): survives the next eviction once
    assert cache.get("b") is not None  # a lookup alone (the secret may be wrong) is no use
    cache.put("d", _record("d"), cache.epoch)
    assert sorted(cache.cached("abcd")) == ["a", "c", "d"]  # b, the oldest not used, went
    cache.put("e", _record("e"), cache.epoch)
    assert sorted(cache.cached("abcde")) == ["a", "d", "e"]  # then c, the oldest now
    assert len(cache) == 3


def test_cache_entries_expire_after_the_ttl(clock: FakeClock) -> None:
    cache = _cache(clock)
    cache.put("a", _record("a"), cache.epoch)
    clock.advance(60)
    assert cache.get("a") is not None
    clock.advance(0.5)
    assert cache.get("a") is None


def test_cache_unknown_ids_are_kept_apart_bounded_and_briefly(clock: FakeClock) -> None:
    cache = _cache(clock, negative_size=2)
    for cid in ("x", "y", "z"):
        assert cache.put(cid, None, cache.epoch) is None
    assert [cache.is_unknown(cid) for cid in ("x", "y", "z")] == [False, True, True]  # the oldest went
    assert len(cache) == 0  # real clients are not pushed out by unknown IDs
    clock.advance(5.5)
    assert not cache.is_unknown("z")


def test_cache_a_lookup_that_began_before_an_eviction_is_not_kept(clock: FakeClock) -> None:
    cache = _cache(clock)
    epoch = cache.epoch
    cache.evict(["a"])  # a change polled while the lookup ran
    entry = cache.put("a", _record("a"), epoch)
    assert entry is not None and entry.record.client_id == "a"  # the request still gets its answer
    assert cache.get("a") is None  # but the cache does not keep it
    assert cache.put("a", None, epoch) is None and not cache.is_unknown("a")


def test_cache_update_keeps_verified_secrets_only_while_the_hash_is_the_same(clock: FakeClock) -> None:
    cache = _cache(clock)
    entry = cache.put("a", _record("a"), cache.epoch)
    cache.mark_verified(entry, cache.digest("good"))
    cache.update({"a": _record("a", enabled=False)})  # disabled: same hash
    assert cache.verified("a", "good") is None  # disabled clients are never served from memory
    cache.update({"a": _record("a")})
    assert cache.verified("a", "good") is not None  # enabled again: no bcrypt needed
    cache.update({"a": _record("a", secret_hash="$2b$12$new")})
    assert cache.verified("a", "good") is None  # a new secret starts afresh
    cache.update({"a": None})
    assert cache.get("a") is None


def test_cache_keeps_a_few_secrets_per_client_and_digests_are_keyed(clock: FakeClock) -> None:
    from flask_clientauth.cache import MAX_SECRETS_PER_CLIENT

    cache, other = _cache(clock), _cache(clock)
    assert cache.digest("s") == cache.digest("s") != other.digest("s")  # a key of its own per process
    entry = cache.put("a", _record("a"), cache.epoch)
    for n in range(MAX_SECRETS_PER_CLIENT + 1):
        cache.mark_verified(entry, cache.digest(f"s{n}"))
    assert len(entry.verified) <= MAX_SECRETS_PER_CLIENT
    assert cache.verified("a", f"s{MAX_SECRETS_PER_CLIENT}") is entry


def test_cache_of_size_zero_keeps_nothing(clock: FakeClock) -> None:
    cache = _cache(clock, size=0)
    entry = cache.put("a", _record("a"), cache.epoch)
    assert entry is not None and cache.get("a") is None and len(cache) == 0
