"""The client store on every backend: what is written, what is read, and what never leaks.

Each test takes ``database_url`` and so runs on SQLite, PostgreSQL and MariaDB (the last two
when ``CLIENTAUTH_TEST_POSTGRES_URL`` / ``CLIENTAUTH_TEST_MARIADB_URL`` are set).
"""

from __future__ import annotations

import re
import socket
import threading
import traceback
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from flask_clientauth import ClientNotFound, ClientStore, StoreError
from flask_clientauth.keys import secret_matches
from flask_clientauth.models import clients_table, credentials_table, events_table
from flask_clientauth.store import DuplicateClientId

from conftest import AppFactory

ID_RE = re.compile(r"^[0-9a-f]{32}$")
SECRET_RE = re.compile(r"^fcsk_[A-Za-z0-9]{49}$")
UTC_ZERO = timedelta(0)


@pytest.fixture
def db_app(make_app: AppFactory, database_url: str) -> Flask:
    """An app whose store uses the backend under test, with CLIENTAUTH_BCRYPT_ROUNDS=4."""
    return make_app(database_url=database_url)


@pytest.fixture
def st(db_app: Flask) -> ClientStore:
    return db_app.extensions["clientauth"].store  # type: ignore[no-any-return]


@pytest.fixture
def engine(db_app: Flask) -> Engine:
    return db_app.extensions["clientauth"].engine  # type: ignore[no-any-return]


def raw_client_row(engine: Engine, client_id: str) -> dict[str, Any]:
    """The credential's row and its client's, as stored."""
    with engine.connect() as conn:
        row = conn.execute(select(credentials_table).where(credentials_table.c.client_id == client_id)).one()
        client = conn.execute(select(clients_table).where(clients_table.c.id == row.client_pk)).one()
    return {**{f"client.{k}": v for k, v in client._mapping.items()}, **row._mapping}


def raw_events(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.id, events_table.c.client_id, events_table.c.action).order_by(events_table.c.id)
        ).all()
    return [(r.id, r.client_id, r.action) for r in rows]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- create -----------------------------------------------------------------------------


def test_create_returns_a_random_id_and_a_secret_kept_only_as_a_hash(st: ClientStore, engine: Engine) -> None:
    record, secret = st.create("Branch mobile app", description="The tutorial's app")
    assert secret is not None
    assert ID_RE.match(record.client_id)
    assert SECRET_RE.match(secret)
    assert record.name == "Branch mobile app"
    assert record.description == "The tutorial's app"
    assert record.enabled and record.has_secret

    row = raw_client_row(engine, record.client_id)
    assert row["secret_hash"].startswith("sha256$")  # generated: 256 random bits need no slow hash
    assert secret_matches(secret, row["secret_hash"])
    assert not any(secret in str(value) for value in row.values())
    assert not any(secret in str(value) for event in raw_events(engine) for value in event)
    assert secret not in repr(record) and row["secret_hash"] not in repr(record)
    assert "secret_hash" not in record.to_dict()
    assert row["secret_hash"] not in str(record.to_dict())

    other, other_secret = st.create("Branch mobile app")
    assert other.client_id != record.client_id and other_secret != secret


def test_bcrypt_cost_of_chosen_secrets_follows_the_config(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url=database_url, CLIENTAUTH_BCRYPT_ROUNDS=5)
    store = app.extensions["clientauth"].store
    record, _ = store.create("App")
    record = store.set_secret(record.client_id, "chosen-by-the-operator")
    assert record.secret_hash is not None and record.secret_hash.startswith("$2b$05$")
    assert secret_matches("chosen-by-the-operator", record.secret_hash)


def test_client_without_secret(st: ClientStore, engine: Engine) -> None:
    record, secret = st.create("ID only", with_secret=False)
    assert secret is None
    assert not record.has_secret
    assert raw_client_row(engine, record.client_id)["secret_hash"] is None
    fetched = st.get(record.client_id)
    assert fetched is not None and not fetched.has_secret and fetched.enabled


def test_only_a_duplicate_key_is_reported_as_a_duplicate_client_id(st: ClientStore) -> None:
    """Another integrity error (here a NOT NULL column left empty) is a store fault, not "already
    registered": the operator must not be told to pick another ID."""
    first, _ = st.create("First", client_id="fixed-client-id")
    row = {"client_id": "fixed-client-id", "client_pk": first.pk, "label": ""}
    now = datetime.now(timezone.utc)
    with pytest.raises(DuplicateClientId), st._connect(write=True) as conn:
        conn.execute(credentials_table.insert().values(**row, created_at=now, updated_at=now))
    with pytest.raises(StoreError) as info, st._connect(write=True) as conn:
        conn.execute(
            credentials_table.insert().values(**{**row, "client_id": "other-id"}, created_at=now, updated_at=None)
        )
    assert not isinstance(info.value, DuplicateClientId)
    assert "refused the write" in str(info.value) and "other-id" not in str(info.value)


def test_duplicate_explicit_client_id_writes_nothing(st: ClientStore, engine: Engine) -> None:
    first, _ = st.create("First", client_id="fixed-client-id")
    before = st.latest_change()
    with pytest.raises(DuplicateClientId) as info:
        st.create("Second", client_id="fixed-client-id")
    assert isinstance(info.value, StoreError)
    assert "fixed-client-id" not in str(info.value) and "Second" not in str(info.value)
    assert [r.name for r in st.list()] == ["First"]
    record = st.get("fixed-client-id")
    assert record is not None and record.name == "First" and record.secret_hash == first.secret_hash
    assert st.latest_change() == before
    assert [e[2] for e in raw_events(engine)] == ["create"]


# -- reads ------------------------------------------------------------------------------


def test_get_compares_ids_exactly(st: ClientStore) -> None:
    record, _ = st.create("App")
    cid = record.client_id
    found = st.get(cid)
    assert found is not None and found.client_id == cid and found.name == "App"
    # MariaDB's default collation ignores case and trailing spaces: the store must not.
    for variant in (cid.upper(), cid + " ", " " + cid, cid[:-1], cid + "0"):
        assert st.get(variant) is None, variant
        with pytest.raises(ClientNotFound):
            st.require(variant)


def test_writes_with_a_near_miss_id_touch_nothing(st: ClientStore) -> None:
    record, secret = st.create("App")
    cid = record.client_id
    before = st.latest_change()
    for variant in (cid.upper(), cid + " "):
        with pytest.raises(ClientNotFound):
            st.set_enabled(variant, False)
        with pytest.raises(ClientNotFound):
            st.reset_secret(variant)
        with pytest.raises(ClientNotFound):
            st.set_secret(variant, "an-operator-secret-1")
        with pytest.raises(ClientNotFound):
            st.delete(variant)
    after = st.get(cid)
    assert after is not None and after.enabled
    assert after.secret_hash == record.secret_hash and secret is not None
    assert secret_matches(secret, after.secret_hash)
    assert st.latest_change() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 201, "tab\there", "nul\x00"])
def test_unusable_names_are_refused_before_writing(st: ClientStore, engine: Engine, name: str) -> None:
    with pytest.raises(ValueError, match="printable characters"):
        st.create(name)
    assert st.list() == []
    assert raw_events(engine) == []


def test_list_is_in_creation_order(st: ClientStore) -> None:
    assert st.list() == []
    names = ["Zeta", "alpha", "Mid", "beta"]
    created = [st.create(n)[0].client_id for n in names]
    listed = st.list()
    assert [r.client_id for r in listed] == created
    assert [r.name for r in listed] == names


# -- writes -----------------------------------------------------------------------------


def test_reset_secret_keeps_the_id_and_replaces_the_hash(st: ClientStore, engine: Engine) -> None:
    record, old_secret = st.create("App")
    assert old_secret is not None
    updated, new_secret = st.reset_secret(record.client_id)
    assert updated.client_id == record.client_id
    assert SECRET_RE.match(new_secret) and new_secret != old_secret
    row = raw_client_row(engine, record.client_id)
    assert row["secret_hash"] != record.secret_hash
    assert row["secret_hash"].startswith("sha256$")
    assert secret_matches(new_secret, row["secret_hash"])
    assert not secret_matches(old_secret, row["secret_hash"])
    assert not any(new_secret in str(v) for v in row.values())


def test_reset_secret_gives_an_id_only_client_a_secret(st: ClientStore) -> None:
    record, _ = st.create("ID only", with_secret=False)
    updated, secret = st.reset_secret(record.client_id)
    assert updated.has_secret and updated.secret_hash is not None
    assert secret_matches(secret, updated.secret_hash)


def test_set_secret(st: ClientStore, engine: Engine) -> None:
    record, _ = st.create("ID only", with_secret=False)
    chosen = "Operator-chosen-secret-42"
    updated = st.set_secret(record.client_id, chosen)
    assert updated.client_id == record.client_id and updated.has_secret
    row = raw_client_row(engine, record.client_id)
    assert row["secret_hash"].startswith("$2b$04$")
    assert secret_matches(chosen, row["secret_hash"])
    assert not any(chosen in str(v) for v in row.values())


def test_set_enabled(st: ClientStore) -> None:
    record, _ = st.create("App")
    disabled = st.set_enabled(record.client_id, False)
    assert not disabled.enabled
    fetched = st.get(record.client_id)
    assert fetched is not None and not fetched.enabled
    assert fetched.updated_at >= fetched.created_at
    enabled = st.set_enabled(record.client_id, True)
    assert enabled.enabled
    fetched = st.get(record.client_id)
    assert fetched is not None and fetched.enabled
    assert fetched.secret_hash == record.secret_hash  # enabling touches nothing else


def test_delete(st: ClientStore) -> None:
    keep, _ = st.create("Keep")
    gone, _ = st.create("Gone")
    st.delete(gone.client_id)
    assert st.get(gone.client_id) is None
    assert [r.client_id for r in st.list()] == [keep.client_id]
    with pytest.raises(ClientNotFound):
        st.delete(gone.client_id)


def test_unknown_ids_raise_client_not_found_and_log_nothing(st: ClientStore) -> None:
    st.create("Someone")
    before = st.latest_change()
    unknown = "0" * 32
    assert st.get(unknown) is None
    calls = [
        lambda: st.require(unknown),
        lambda: st.reset_secret(unknown),
        lambda: st.set_secret(unknown, "an-operator-secret-1"),
        lambda: st.set_enabled(unknown, False),
        lambda: st.set_enabled(unknown, True),
        lambda: st.delete(unknown),
    ]
    for call in calls:
        with pytest.raises(ClientNotFound) as info:
            call()
        assert info.value.args == (unknown,)
    assert st.latest_change() == before


# -- the change log ---------------------------------------------------------------------


def test_every_write_logs_exactly_one_event(st: ClientStore, engine: Engine) -> None:
    assert st.latest_change() == 0
    record, _ = st.create("App")
    cid = record.client_id
    steps = [
        ("secret", lambda: st.reset_secret(cid)),
        ("secret", lambda: st.set_secret(cid, "an-operator-secret-1")),
        ("disable", lambda: st.set_enabled(cid, False)),
        ("enable", lambda: st.set_enabled(cid, True)),
        ("delete", lambda: st.delete(cid)),
    ]
    first = st.latest_change()
    assert first > 0
    newest, changed, seen = st.changes_after(0)
    assert (newest, changed, seen) == (first, {cid}, {first})
    for action, write in steps:
        before = st.latest_change()
        write()
        newest, changed, seen = st.changes_after(before)
        assert len(seen) == 1, action
        assert newest == st.latest_change() == max(seen) > before
        assert changed == {cid}
    assert [(e[1], e[2]) for e in raw_events(engine)] == [
        (cid, "create"),
        *((cid, action) for action, _ in steps),
    ]


def test_changes_after_rereads_listed_ids(st: ClientStore) -> None:
    a, _ = st.create("A")
    first = st.latest_change()
    b, _ = st.create("B")
    latest = st.latest_change()
    newest, changed, seen = st.changes_after(latest, also=[first])
    assert newest == latest
    assert changed == {a.client_id} and seen == {first}
    assert b.client_id not in changed


def test_write_and_its_event_share_one_transaction(st: ClientStore, engine: Engine) -> None:
    """When the event cannot be written, the client change is rolled back with it."""
    record, secret = st.create("App")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {events_table.name}"))
    with pytest.raises(StoreError):
        st.create("Never stored")
    with pytest.raises(StoreError):
        st.set_enabled(record.client_id, False)
    with pytest.raises(StoreError):
        st.reset_secret(record.client_id)
    with pytest.raises(StoreError):
        st.delete(record.client_id)
    assert [r.name for r in st.list()] == ["App"]
    after = st.get(record.client_id)
    assert after is not None and after.enabled
    assert after.secret_hash == record.secret_hash and secret is not None
    assert secret_matches(secret, after.secret_hash)


# -- timestamps -------------------------------------------------------------------------


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None and value.utcoffset() == UTC_ZERO, value


def test_timestamps_are_timezone_aware_utc(st: ClientStore) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    record, _ = st.create("App")
    after = datetime.now(timezone.utc)
    fetched = st.get(record.client_id)
    assert fetched is not None
    updated = st.set_enabled(record.client_id, False)
    for r in (record, fetched, updated, *st.list()):
        assert_utc(r.created_at)
        assert_utc(r.updated_at)
        assert before <= r.created_at <= after  # stored as UTC, not shifted by a zone
    # what create() returns is what the database kept (MariaDB keeps whole seconds)
    assert fetched.created_at == record.created_at
    assert fetched.to_dict() == record.to_dict()
    assert updated.updated_at >= updated.created_at
    assert datetime.fromisoformat(record.to_dict()["created_at"]).utcoffset() == UTC_ZERO


def test_timestamps_stay_utc_when_the_session_time_zone_is_not(make_app: AppFactory, database_url: str) -> None:
    backend = make_url(database_url).get_backend_name()
    if backend == "postgresql":
        connect_args: dict[str, Any] = {"options": "-c timezone=America/New_York"}
    elif backend in ("mysql", "mariadb"):
        connect_args = {"init_command": "SET time_zone = '+05:00'"}
    else:
        pytest.skip("SQLite has no session time zone")
    app = make_app(database_url=database_url, CLIENTAUTH_ENGINE_OPTIONS={"connect_args": connect_args})
    st = app.extensions["clientauth"].store
    before = datetime.now(timezone.utc).replace(microsecond=0)
    record, _ = st.create("App")
    after = datetime.now(timezone.utc)
    for r in (record, st.get(record.client_id), *st.list()):
        assert r is not None
        assert_utc(r.created_at)
        assert_utc(r.updated_at)
        assert before <= r.created_at <= after


# -- faults -----------------------------------------------------------------------------

SQL_WORDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "clientauth_clients", "clientauth_events")


def assert_clean(exc: BaseException, *values: str) -> None:
    """Neither the message nor a logged traceback shows SQL, the driver's error or any value sent."""
    message = f"{exc} {exc!r}"
    for word in (*SQL_WORDS, *values):
        assert word not in message, word
    # the driver's exception (its text quotes SQL and values) is not chained into tracebacks
    assert exc.__cause__ is None and exc.__suppress_context__
    logged = "".join(traceback.format_exception(exc))
    for word in ("[SQL:", "[parameters:", "sqlalchemy.exc", "psycopg", "pymysql", "sqlite3."):
        assert word not in logged, word


def test_missing_tables_raise_store_error(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url=database_url, create_tables=False)
    st: ClientStore = app.extensions["clientauth"].store
    secret = "Very-private-secret-value-1"
    name = "Private client name"
    calls: list[tuple[Any, tuple[str, ...]]] = [
        (lambda: st.get("someclientid"), ("someclientid",)),
        (lambda: st.list(), ()),
        (lambda: st.latest_change(), ()),
        (lambda: st.changes_after(0), ()),
        (lambda: st.create(name, description="private description"), (name, "private description")),
        (lambda: st.set_secret("someclientid", secret), (secret, "someclientid")),
        (lambda: st.set_enabled("someclientid", False), ("someclientid",)),
        (lambda: st.delete("someclientid"), ("someclientid",)),
    ]
    for call, values in calls:
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, DuplicateClientId)
        assert_clean(info.value, *values)


UNREACHABLE = {
    "postgresql": "postgresql+psycopg://clientauth:Db-Password-123@127.0.0.1:{port}/clientauth",
    "mariadb": "mysql+pymysql://clientauth:Db-Password-123@127.0.0.1:{port}/clientauth",
    "sqlite": "sqlite:///{tmp}/no/such/directory/clients.sqlite3",
}


@pytest.mark.parametrize("backend", list(UNREACHABLE))
def test_unreachable_database_raises_store_error(backend: str, tmp_path: Any) -> None:
    url = UNREACHABLE[backend].format(port=closed_port(), tmp=tmp_path)
    engine = create_engine(url, hide_parameters=True)
    st = ClientStore(lambda: engine, bcrypt_rounds=4)
    secret = "Very-private-secret-value-1"
    try:
        for call in (lambda: st.get("someclientid"), lambda: st.create("App"), lambda: st.set_secret("x", secret)):
            with pytest.raises(StoreError) as info:
                call()
            assert_clean(info.value, "Db-Password-123", secret, "someclientid")
    finally:
        engine.dispose()


# -- concurrency ------------------------------------------------------------------------


def test_concurrent_secret_resets_leave_one_consistent_secret(st: ClientStore, engine: Engine) -> None:
    record, _ = st.create("App")
    cid = record.client_id
    for _round in range(3):
        workers = 4
        barrier = threading.Barrier(workers)
        secrets: list[str] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def reset(
            barrier: threading.Barrier = barrier,
            lock: threading.Lock = lock,
            failures: list[BaseException] = failures,
            secrets: list[str] = secrets,
        ) -> None:
            barrier.wait()
            try:
                _, secret = st.reset_secret(cid)
            except StoreError as exc:  # a loser may be refused (lock timeout), never half-written
                with lock:
                    failures.append(exc)
                return
            with lock:
                secrets.append(secret)

        before = st.latest_change()
        threads = [threading.Thread(target=reset) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert secrets, failures
        stored = raw_client_row(engine, cid)["secret_hash"]
        assert stored.startswith("sha256$")
        assert [secret_matches(s, stored) for s in secrets].count(True) == 1
        _, changed, seen = st.changes_after(before)
        assert changed == {cid} and len(seen) == len(secrets)
