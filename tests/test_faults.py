"""Faults: the database unreachable, a table missing, locks held, a corrupt hash, a broken spec.

Requests fail closed with a generic JSON 503 (or 401 for the one client whose stored hash is
corrupt), never an exception, even with ``TESTING`` and ``PROPAGATE_EXCEPTIONS`` on; when the
fault clears, the very next request succeeds, without a restart. The CLI answers faults with
one clear line and a non-zero exit, and writes nothing. Network faults are real: the app talks
to PostgreSQL / MariaDB through a TCP forwarder that the test cuts and restores, or the server
kills the app's connections.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import create_engine, make_url, text

from flask_clientauth import ClientStore, SpecError, StoreError

from conftest import TUTORIAL_SPEC, AppFactory, leaked_values, server_database

UNAVAILABLE = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "Client registry unavailable",
}
MISCONFIGURED = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "API security is misconfigured",
}
#: What must never show in a response, a log line or a CLI message about a fault.
INTERNALS = ("SELECT", "INSERT", "UPDATE", "clientauth_clients", "[SQL", "[parameters", "Traceback", "psycopg",
             "pymysql", "sqlite3", "OperationalError(", "ProgrammingError(", "$2b$")  # fmt: skip

STRICT = {"TESTING": True, "PROPAGATE_EXCEPTIONS": True}


def headers(cid: str, secret: str | None = None) -> dict[str, str]:
    out = {"X-IBM-Client-Id": cid}
    if secret is not None:
        out["X-IBM-Client-Secret"] = secret
    return out


def assert_unavailable(resp: Any, body: dict[str, str] = UNAVAILABLE) -> None:
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert resp.get_json() == body
    for word in INTERNALS:
        assert word not in resp.get_data(as_text=True)


def assert_logs_clean(caplog: pytest.LogCaptureFixture, *values: str) -> None:
    for record in caplog.records:
        message = record.getMessage()
        for word in ("[SQL", "[parameters", "SELECT", "INSERT", *values):
            assert word not in message, (word, message)
        assert record.exc_info is None or record.name != "flask_clientauth", message
    assert leaked_values(caplog.records, values) == []


def with_url(url: str, **parts: Any) -> str:
    return make_url(url).set(**parts).render_as_string(hide_password=False)


def backend_of(url: str) -> str:
    return make_url(url).get_backend_name()


# -- a TCP forwarder the test can cut ------------------------------------------------------------


class Forwarder:
    """Forwards 127.0.0.1:<port> to a database server; :meth:`cut` drops every connection and stops
    listening (clients get "connection refused"), :meth:`restore` listens again on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        self._spawn(self._accept, listener)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                downstream, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                downstream.close()
                continue
            with self._lock:
                self._sockets.update((downstream, upstream))
            self._spawn(self._pump, downstream, upstream)
            self._spawn(self._pump, upstream, downstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept() (close alone does not)
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture(params=["postgresql", "mariadb"])
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database on a database server (PostgreSQL, MariaDB), skipped when not configured."""
    yield from server_database(request.param)


@pytest.fixture
def forwarded(server_url: str) -> Iterator[tuple[str, Forwarder]]:
    """``server_url`` rewritten to go through a :class:`Forwarder`, and the forwarder."""
    target = make_url(server_url)
    forwarder = Forwarder(target.host or "127.0.0.1", target.port or (5432 if "postgres" in server_url else 3306))
    forwarder.restore()
    yield with_url(server_url, host="127.0.0.1", port=forwarder.port), forwarder
    forwarder.close()


def make_store(url: str) -> tuple[ClientStore, Any]:
    engine = create_engine(url, hide_parameters=True)
    return ClientStore(lambda: engine, bcrypt_rounds=4), engine


# -- the database unreachable, its connections killed --------------------------------------------------


def test_unreachable_database_answers_503_and_the_next_request_after_it_returns_succeeds(
    make_app: AppFactory, server_url: str, forwarded: tuple[str, Forwarder], caplog: pytest.LogCaptureFixture
) -> None:
    url, forwarder = forwarded
    app = make_app(database_url=url, CLIENTAUTH_REVOCATION_INTERVAL=0, CLIENTAUTH_RATELIMIT_ENABLED=False, **STRICT)
    store: ClientStore = app.extensions["clientauth"].store
    warm, warm_secret = store.create("Warm client")
    cold, cold_secret = store.create("Cold client")
    assert warm_secret is not None and cold_secret is not None
    client = app.test_client()
    assert client.get("/api/branches", headers=headers(warm.client_id, warm_secret)).status_code == 200

    forwarder.cut()
    for _ in range(2):
        # cached or not, nobody is let in while revocations cannot be read
        assert_unavailable(client.get("/api/branches", headers=headers(warm.client_id, warm_secret)))
        assert_unavailable(client.get("/api/branches", headers=headers(cold.client_id, cold_secret)))
        assert_unavailable(client.get("/api/branches/3", headers=headers(cold.client_id)))
    assert client.get("/api/status").status_code == 200  # a public operation needs no database

    forwarder.restore()
    assert client.get("/api/branches", headers=headers(cold.client_id, cold_secret)).status_code == 200
    assert client.get("/api/branches", headers=headers(warm.client_id, warm_secret)).status_code == 200
    assert_logs_clean(caplog, warm_secret, cold_secret)
    # the log names the server that could not be used (the message of the driver, never)
    assert any(f"127.0.0.1:{forwarder.port}" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def kill_connections(url: str, engine_tag: str) -> int:
    """Have the server terminate the app's connections (tagged with ``engine_tag``); return how many."""
    admin = create_engine(url)
    try:
        with admin.connect() as conn:
            if backend_of(url) == "postgresql":
                killed = conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :tag"),
                    {"tag": engine_tag},
                ).all()
                return len(killed)
            database = make_url(url).database
            rows = conn.execute(
                text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
                {"db": database},
            ).all()
            for (pid,) in rows:
                with contextlib.suppress(Exception):
                    conn.execute(text(f"KILL CONNECTION {int(pid)}"))
            return len(rows)
    finally:
        admin.dispose()


@pytest.mark.parametrize("pre_ping", [True, False], ids=["default-engine", "without-pre-ping"])
def test_connections_killed_by_the_server_do_not_poison_the_pool(
    make_app: AppFactory, server_url: str, pre_ping: bool, caplog: pytest.LogCaptureFixture
) -> None:
    tag = "clientauth-fault-test"
    connect_args = {"application_name": tag} if backend_of(server_url) == "postgresql" else {}
    app = make_app(
        database_url=server_url,
        CLIENTAUTH_CACHE_SIZE=0,  # every request reads the store
        CLIENTAUTH_RATELIMIT_ENABLED=False,
        # the default engine as it is; or with pre-ping turned off, as an app might configure it
        CLIENTAUTH_ENGINE_OPTIONS={"connect_args": connect_args, **({} if pre_ping else {"pool_pre_ping": False})},
        **STRICT,
    )
    store: ClientStore = app.extensions["clientauth"].store
    record, secret = store.create("Branch mobile app")
    assert secret is not None
    client = app.test_client()
    ok = headers(record.client_id, secret)
    for _round in range(2):
        assert client.get("/api/branches", headers=ok).status_code == 200
        assert kill_connections(server_url, tag) >= 1
        first = client.get("/api/branches", headers=ok)
        if pre_ping:
            assert first.status_code == 200  # the dead connection is noticed and replaced
        elif first.status_code != 200:
            assert_unavailable(first)  # it costs at most this one request ...
        assert client.get("/api/branches", headers=ok).status_code == 200  # ... and never the next
    assert_logs_clean(caplog, secret)


def test_our_engine_hides_parameters(make_app: AppFactory, database_url: str) -> None:
    """Values (secret hashes among them) never appear in SQLAlchemy's error texts, even in the
    suppressed ``__context__`` that error trackers may still read."""
    app = make_app(database_url=database_url, create_tables=False, CLIENTAUTH_ENGINE_OPTIONS={"pool_size": 2}
                   if backend_of(database_url) != "sqlite" else {})  # fmt: skip
    state = app.extensions["clientauth"]
    assert state.engine.hide_parameters is True  # also when other engine options are given
    chosen = "Operator-chosen-secret-1"
    with pytest.raises(StoreError) as info:  # the tables are missing
        state.store.create("Private name", description="private description")
    with pytest.raises(StoreError) as info2:
        state.store.set_secret("some-client-id", chosen)
    for exc in (info.value, info2.value):
        assert exc.__cause__ is None and exc.__suppress_context__
        context = f"{exc.__context__!s} {exc.__context__!r}"
        for value in ("Private name", "private description", "some-client-id", chosen, "$2b$"):
            assert value not in context and value not in str(exc)


# -- a table missing, a lock held ------------------------------------------------------------------


@contextlib.contextmanager
def renamed(url: str, table: str) -> Iterator[None]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        try:
            yield
        finally:
            with engine.begin() as conn:
                conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
    finally:
        engine.dispose()


def test_a_missing_table_answers_503_and_recovers_when_it_is_back(
    make_app: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0, CLIENTAUTH_RATELIMIT_ENABLED=False, **STRICT
    )
    store: ClientStore = app.extensions["clientauth"].store
    warm, warm_secret = store.create("Warm")
    cold, cold_secret = store.create("Cold")
    assert warm_secret is not None and cold_secret is not None
    client = app.test_client()
    assert client.get("/api/branches", headers=headers(warm.client_id, warm_secret)).status_code == 200

    with renamed(database_url, "clientauth_clients"):
        assert_unavailable(client.get("/api/branches", headers=headers(cold.client_id, cold_secret)))
        assert_unavailable(client.get("/api/branches/1", headers=headers(cold.client_id)))
    assert client.get("/api/branches", headers=headers(cold.client_id, cold_secret)).status_code == 200

    with renamed(database_url, "clientauth_events"):  # revocations cannot be read: nobody gets in
        assert_unavailable(client.get("/api/branches", headers=headers(warm.client_id, warm_secret)))
    assert client.get("/api/branches", headers=headers(warm.client_id, warm_secret)).status_code == 200
    assert_logs_clean(caplog, warm_secret, cold_secret)


def fast_lock_timeout(url: str) -> dict[str, Any]:
    """Engine options that make a blocked statement give up quickly (what the README recommends)."""
    backend = backend_of(url)
    if backend == "sqlite":
        return {"connect_args": {"timeout": 0.1}}
    if backend == "postgresql":
        return {"connect_args": {"options": "-c lock_timeout=100"}}
    # (0: give up at once; a deployment would choose a few seconds)
    return {"connect_args": {"init_command": "SET SESSION lock_wait_timeout = 0, SESSION innodb_lock_wait_timeout = 0"}}


@contextlib.contextmanager
def tables_locked(url: str) -> Iterator[None]:
    """Another connection holds a write lock on our tables (SQLite: on the whole file)."""
    backend = backend_of(url)
    if backend == "sqlite":
        conn = sqlite3.connect(make_url(url).database or "", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                with conn.begin():
                    conn.execute(text("LOCK TABLE clientauth_clients, clientauth_events IN ACCESS EXCLUSIVE MODE"))
                    yield
            else:
                conn.execute(text("LOCK TABLES clientauth_clients WRITE, clientauth_events WRITE"))
                try:
                    yield
                finally:
                    conn.execute(text("UNLOCK TABLES"))
    finally:
        engine.dispose()


def test_a_lock_timeout_answers_503_and_the_next_request_after_it_clears_succeeds(
    make_app: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        database_url=database_url,
        CLIENTAUTH_REVOCATION_INTERVAL=0,
        CLIENTAUTH_RATELIMIT_ENABLED=False,
        CLIENTAUTH_ENGINE_OPTIONS=fast_lock_timeout(database_url),
        **STRICT,
    )
    store: ClientStore = app.extensions["clientauth"].store
    record, secret = store.create("Branch mobile app")
    assert secret is not None
    client = app.test_client()
    with tables_locked(database_url):
        assert_unavailable(client.get("/api/branches", headers=headers(record.client_id, secret)))
    assert client.get("/api/branches", headers=headers(record.client_id, secret)).status_code == 200
    with tables_locked(database_url):  # cached now, but the change log cannot be read either
        assert_unavailable(client.get("/api/branches", headers=headers(record.client_id, secret)))
    assert client.get("/api/branches", headers=headers(record.client_id, secret)).status_code == 200
    assert_logs_clean(caplog, secret)


# -- a corrupt stored hash -----------------------------------------------------------------------------

CORRUPT_HASHES = {
    "garbage": "not-a-bcrypt-hash",
    "empty": "",
    "truncated": "$2b$04$abcdefghijklmnopqrstuv",
    "bad-salt": "$2b$04$" + "!" * 53,
    "bad-cost": "$2b$99$" + "a" * 53,
    "other-algorithm": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    "non-ascii": "$2b$04$" + "\u00e9" * 53,
    "truncated-sha256": "sha256$0123abcd",
    "uppercase-sha256": "SHA256$" + "a" * 64,
}


def test_a_corrupt_stored_hash_refuses_that_client_only(
    make_app: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(
        database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0, CLIENTAUTH_RATELIMIT_ENABLED=False, **STRICT
    )
    store: ClientStore = app.extensions["clientauth"].store
    healthy, healthy_secret = store.create("Healthy")
    victim, victim_secret = store.create("Victim")
    assert healthy_secret is not None and victim_secret is not None
    client = app.test_client()
    engine = create_engine(database_url)
    try:
        for name, corrupt in CORRUPT_HASHES.items():
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE clientauth_credentials SET secret_hash = :h WHERE client_id = :c"),
                    {"h": corrupt, "c": victim.client_id},
                )
            store.set_enabled(victim.client_id, True)  # a change-log entry: the app re-reads the row
            resp = client.get("/api/branches", headers=headers(victim.client_id, victim_secret))
            assert resp.status_code == 401, name
            assert resp.get_json()["moreInformation"] == "Client secret invalid"
            assert client.get("/api/branches", headers=headers(healthy.client_id, healthy_secret)).status_code == 200
            for record in caplog.records:
                assert not (corrupt and corrupt in record.getMessage()), name
        # the client ID alone still identifies it where no secret is asked for
        assert client.get("/api/branches/2", headers=headers(victim.client_id)).status_code == 200
    finally:
        engine.dispose()
    corrupt_logged = [r for r in caplog.records if "corrupt" in r.getMessage()]
    assert corrupt_logged and all(victim.client_id in r.getMessage() for r in corrupt_logged)
    # and the operator's fix works at once
    _, new_secret = store.reset_secret(victim.client_id)
    assert client.get("/api/branches", headers=headers(victim.client_id, new_secret)).status_code == 200


# -- a broken spec -----------------------------------------------------------------------------------


def test_a_spec_callable_that_raises_refuses_every_request(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Never a partly protected app: the document cannot be built, so nothing is served, not even the
    public operations, and no exception escapes (``TESTING``, ``PROPAGATE_EXCEPTIONS``)."""
    calls = []

    def build() -> dict[str, Any]:
        calls.append(1)
        raise KeyError("components")

    app = make_app(spec=build, **STRICT)
    store: ClientStore = app.extensions["clientauth"].store
    record, secret = store.create("Branch mobile app")
    assert secret is not None
    with pytest.raises(SpecError, match="KeyError"):
        app.extensions["test_auth"].routes(app)
    client = app.test_client()
    for path, hdrs in (("/api/status", {}), ("/api/branches", headers(record.client_id, secret)), ("/nowhere", {})):
        assert_unavailable(client.get(path, headers=hdrs), MISCONFIGURED)
    assert any("KeyError" in r.getMessage() for r in caplog.records if r.levelname == "CRITICAL")


def test_a_spec_file_broken_at_start_up_fails_start_up(make_app: AppFactory, tmp_path: Any) -> None:
    broken = tmp_path / "openapi.json"
    broken.write_text(json.dumps(TUTORIAL_SPEC)[:-20])
    with pytest.raises(SpecError, match="invalid JSON"):
        make_app(spec=str(broken), create_tables=False)
    unknown_scheme = json.loads(json.dumps(TUTORIAL_SPEC))
    unknown_scheme["security"] = [{"clientIdHeader": [], "noSuchScheme": []}]
    with pytest.raises(SpecError, match="noSuchScheme"):
        make_app(spec=unknown_scheme, create_tables=False)


# -- the CLI against a locked or unreachable database ------------------------------------------------


def cli(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["clients", *args], input=input)


def snapshot(url: str) -> tuple[Any, ...]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            clients = conn.execute(
                text(
                    "SELECT c.client_id, k.name, c.secret_hash, k.enabled FROM clientauth_credentials c"
                    " JOIN clientauth_clients k ON k.id = c.client_pk ORDER BY c.client_id"
                )
            ).all()
            events = conn.execute(text("SELECT COUNT(*) FROM clientauth_events")).scalar()
        return (tuple(tuple(r) for r in clients), events)
    finally:
        engine.dispose()


def assert_one_clear_line(result: Result, *words: str) -> None:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for word in words:
        assert word in lines[0], result.output
    for word in INTERNALS:
        assert word not in result.output


def test_cli_against_a_locked_database(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url=database_url, CLIENTAUTH_ENGINE_OPTIONS=fast_lock_timeout(database_url))
    store: ClientStore = app.extensions["clientauth"].store
    record, _ = store.create("Existing")
    cid = record.client_id
    before = snapshot(database_url)
    with tables_locked(database_url):
        for args, stdin in (
            (("create", "New client", "--json"), None),
            (("reset-secret", cid), None),
            (("set-secret", cid), "Operator-chosen-secret-1\n"),
            (("disable", cid), None),
            (("delete", cid, "--yes"), None),
            (("list", "--json"), None),
        ):
            result = cli(app, *args, input=stdin)
            assert_one_clear_line(result, "busy", "try again")
            assert "Operator-chosen-secret-1" not in result.output
    assert snapshot(database_url) == before  # no half-written client, no stray change-log entry
    assert cli(app, "list").exit_code == 0


def test_cli_against_an_unreachable_database_writes_nothing(
    make_app: AppFactory, server_url: str, forwarded: tuple[str, Forwarder]
) -> None:
    url, forwarder = forwarded
    app = make_app(database_url=url)
    store: ClientStore = app.extensions["clientauth"].store
    record, _ = store.create("Existing")
    before = snapshot(server_url)
    forwarder.cut()
    for args in (("create", "New client"), ("reset-secret", record.client_id), ("delete", record.client_id, "--yes")):
        assert_one_clear_line(cli(app, *args), "unavailable", "CLIENTAUTH_DATABASE_URI")
    forwarder.restore()
    assert snapshot(server_url) == before
    assert cli(app, "show", record.client_id).exit_code == 0


def test_an_unexpected_error_while_resolving_routes_refuses_every_request(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only SpecError: whatever breaks the route resolution, no request reaches a view."""
    app = make_app(PROPAGATE_EXCEPTIONS=True)

    def broken(self: Any, rule: Any, method: str) -> Any:
        raise RuntimeError("resolution bug")

    monkeypatch.setattr("flask_clientauth.routing.RouteTable.resolve", broken)
    client = app.test_client()
    for path in ("/api/status", "/api/branches"):
        resp = client.get(path)
        assert resp.status_code == 503
        assert resp.get_json()["moreInformation"] == "API security is misconfigured"
    assert any("resolution bug" in r.getMessage() for r in caplog.records)


def test_every_package_error_shares_one_root() -> None:
    """``except ClientAuthError`` catches whatever the package raises; the older bases still hold."""
    import flask_clientauth as fca
    from flask_clientauth.migrate import SchemaError

    errors = (
        fca.AuthFailure,
        fca.SpecError,
        fca.StoreError,
        fca.StoreBusy,
        fca.DuplicateClientId,
        fca.ClientNotFound,
        fca.ConfigurationError,
        fca.ThrottleUnavailable,
        SchemaError,
    )
    for error in errors:
        assert issubclass(error, fca.ClientAuthError), error
    assert issubclass(fca.ConfigurationError, RuntimeError)
    assert issubclass(fca.ClientNotFound, LookupError)
