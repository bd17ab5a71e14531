"""Shared fixtures and helpers: an app factory, a database URL parametrized over every backend, an
app with one client (``ClientEnv``), the routing tests' documents, the log check, call counters.

Storage tests take ``database_url`` and run on SQLite always, and on PostgreSQL and MariaDB
when ``CLIENTAUTH_TEST_POSTGRES_URL`` / ``CLIENTAUTH_TEST_MARIADB_URL`` are set (``.ci/run``
sets both); otherwise those variants skip, saying why.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from flask_clientauth import ClientAuth, ClientStore, current_client
from flask_clientauth.migrate import VERSION_TABLE
from flask_clientauth.models import Base
from redisserver import own_redis  # noqa: F401  # the fixture: a redis-server of the test's own

BACKENDS = {
    "sqlite": None,
    "postgresql": "CLIENTAUTH_TEST_POSTGRES_URL",
    "mariadb": "CLIENTAUTH_TEST_MARIADB_URL",
}

#: apiKey schemes under API Connect's names, in each location (cookies under names of our own).
HID = {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"}
HSEC = {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"}
QID = {"type": "apiKey", "in": "query", "name": "client_id"}
QSEC = {"type": "apiKey", "in": "query", "name": "client_secret"}
CID = {"type": "apiKey", "in": "cookie", "name": "app_client_id"}
CSEC = {"type": "apiKey", "in": "cookie", "name": "app_client_secret"}


def get_operation(security: Any) -> dict[str, Any]:
    """A path item with one ``get`` operation under ``security``."""
    return {"get": {"security": security, "responses": {"200": {"description": "ok"}}}}


def location_paths() -> dict[str, Any]:
    """``/header``, ``/query``, ``/cookie`` (id+secret) and ``/header/id``, ... (id only), for the
    schemes ``hid``/``hsec``, ``qid``/``qsec`` and ``cid``/``csec`` (the dicts above)."""
    paths: dict[str, Any] = {}
    for location, short in (("header", "h"), ("query", "q"), ("cookie", "c")):
        paths[f"/{location}"] = get_operation([{f"{short}id": [], f"{short}sec": []}])
        paths[f"/{location}/id"] = get_operation([{f"{short}id": []}])
    return paths


#: The tutorial's document: header keys, id+secret globally, one id-only and one public operation.
TUTORIAL_SPEC: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "Branches", "version": "1.0.0"},
    "basePath": "/api",
    "securityDefinitions": {
        "clientIdHeader": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"},
        "clientSecretHeader": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"},
    },
    "security": [{"clientIdHeader": [], "clientSecretHeader": []}],
    "paths": {
        "/branches": {"get": {"responses": {"200": {"description": "branches"}}}},
        "/branches/{branchId}": {
            "get": {"security": [{"clientIdHeader": []}], "responses": {"200": {"description": "one"}}}
        },
        "/status": {"get": {"security": [], "responses": {"200": {"description": "public"}}}},
    },
}


def reset_database(url: str) -> None:
    """Drop our tables (and our Alembic version table) so every test starts empty."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text(f"DROP TABLE IF EXISTS {VERSION_TABLE}"))
    finally:
        engine.dispose()


def server_database(backend: str) -> Iterator[str]:
    """The configured URL of a database server (``postgresql``, ``mariadb``), emptied before and
    after use; the test skips, saying which variable to set, when there is none."""
    var = BACKENDS[backend]
    assert var is not None
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{backend}: set {var} to run this test on {backend}")
    reset_database(url)
    yield url
    reset_database(url)


@pytest.fixture(params=list(BACKENDS))
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database on each backend (no tables of ours)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/clients.sqlite3"
    else:
        yield from server_database(request.param)


@pytest.fixture
def other_process(database_url: str) -> Iterator[ClientStore]:
    """A second ClientStore on the same database, standing for another process (the CLI, a worker)."""
    engine = create_engine(database_url)
    yield ClientStore(lambda: engine, bcrypt_rounds=4)
    engine.dispose()


def sqlite_with_client(directory: Any, name: str) -> tuple[str, str, str]:
    """A SQLite file in ``directory`` with our tables and one client: (URL, client ID, secret)."""
    database = f"sqlite:///{directory}/clients.sqlite3"
    engine = create_engine(database)
    try:
        store = ClientStore(lambda: engine, bcrypt_rounds=4)
        store.create_all()
        record, secret = store.create(name)
    finally:
        engine.dispose()
    assert secret is not None
    return database, record.client_id, secret


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/clients.sqlite3"


AppFactory = Callable[..., Flask]


class FakeClock:
    """A monotonic clock that moves only when told: ``make_app(clock=clock)``, then ``clock.advance(s)``
    instead of sleeping through a TTL or an interval."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_app(tmp_path: Any, sqlite_url: str) -> Iterator[AppFactory]:
    """Build a protected app: ``make_app(spec=..., database_url=..., create_tables=True, **config)``.

    Unless ``routes=False``, it serves ``/api/branches``, ``/api/branches/<int:branchId>`` and
    ``/api/status`` (the tutorial's operations), each answering with the current client.
    """
    engines = []

    def factory(
        spec: Any = None,
        *,
        database_url: str | None = None,
        create_tables: bool = True,
        routes: bool = True,
        clock: Callable[[], float] | None = None,
        **config: Any,
    ) -> Flask:
        app = Flask("testapp", instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            CLIENTAUTH_SPEC=copy.deepcopy(spec if spec is not None else TUTORIAL_SPEC),
            CLIENTAUTH_DATABASE_URI=database_url or sqlite_url,
            CLIENTAUTH_BCRYPT_ROUNDS=4,
        )
        app.config.update(config)
        auth = ClientAuth(app) if clock is None else ClientAuth(app, clock=clock)
        app.extensions["test_auth"] = auth
        if routes:

            def whoami(**kwargs: Any) -> Any:
                client = current_client
                return jsonify(
                    client_id=client.client_id if client else None,
                    name=client.name if client else None,
                    args=kwargs,
                )

            app.add_url_rule("/api/branches", "branches", whoami)
            app.add_url_rule("/api/branches/<int:branchId>", "branch", whoami)
            app.add_url_rule("/api/status", "status", whoami)
        state = app.extensions["clientauth"]
        if state.engine is not None:
            engines.append(state.engine)
        if create_tables:
            with app.app_context():
                state.store.create_all()
        return app

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def store(app: Flask) -> Any:
    return app.extensions["clientauth"].store


# -- documents and apps for the routing tests (schemes hid/hsec in the header, qid/qsec in the query) --

SCHEMES = {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC}
ID_AND_SECRET: list[dict[str, list[str]]] = [{"hid": [], "hsec": []}]

NOT_DESCRIBED = {
    "httpCode": "403",
    "httpMessage": "Forbidden",
    "moreInformation": "Operation not described by the API definition",
}
MISCONFIGURED = {
    "httpCode": "503",
    "httpMessage": "Service Unavailable",
    "moreInformation": "API security is misconfigured",
}


def op(security: Any = None) -> dict[str, Any]:
    """An operation, under ``security`` when given (else the document's)."""
    out: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
    if security is not None:
        out["security"] = security
    return out


def doc3(paths: dict[str, Any], security: Any = ID_AND_SECRET, schemes: Any = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {"securitySchemes": schemes or SCHEMES},
        "paths": paths,
        **extra,
    }
    if security is not None:
        d["security"] = security
    return d


def doc2(paths: dict[str, Any], security: Any = ID_AND_SECRET, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "securityDefinitions": SCHEMES,
        "paths": paths,
        **extra,
    }
    if security is not None:
        d["security"] = security
    return d


def view(**kwargs: Any) -> Any:
    """A view answering with the current client and its arguments."""
    return jsonify(
        client=current_client.client_id if current_client else None, args={k: str(v) for k, v in kwargs.items()}
    )


def build(make_app: Any, spec: dict[str, Any], rules: Sequence[tuple[str, ...]] = (), **config: Any) -> Flask:
    """An app with ``spec`` serving ``rules``: (rule, [METHODS...]) tuples."""
    app = make_app(spec=spec, routes=False, **config)
    for i, (rule, *methods) in enumerate(rules):
        app.add_url_rule(rule, f"r{i}", view, methods=methods or ["GET"])
    return app


def auth_of(app: Flask) -> ClientAuth:
    """The ``ClientAuth`` that ``make_app`` made."""
    return app.extensions["test_auth"]  # type: ignore[no-any-return]


def headers(cid: str, secret: str | None = None) -> dict[str, str]:
    """The client ID (and secret) under API Connect's header names."""
    h = {"X-IBM-Client-Id": cid}
    if secret is not None:
        h["X-IBM-Client-Secret"] = secret
    return h


# -- no secret in the logs -------------------------------------------------------------------

#: Watched values shorter than this are not looked for (tests pass short made-up strings freely).
MIN_WATCHED_LENGTH = 8


def leaked_values(records: Any, watched: Any) -> list[tuple[Any, str]]:
    """``(record, value)`` for every watched value found in a log record's message or traceback."""
    import logging

    values = [v for v in set(watched) if len(v) >= MIN_WATCHED_LENGTH]
    if not values:
        return []
    formatter = logging.Formatter()
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        if record.stack_info:
            text += record.stack_info
        found.extend((record, v) for v in values if v in text)
    return found


@pytest.fixture(autouse=True)
def no_secret_in_logs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """After every test: no secret generated or set in it, nor its stored hash, reached a log record.

    Secrets are recorded where they come into being (``generate_secret``) and where any secret is
    hashed (``hash_secret``, bcrypt: also the inputs of ``ClientStore.set_secret``; ``fast_hash``,
    generated secrets); ``flask_clientauth``
    logs at DEBUG meanwhile. Yields the watched list (a test may add values to it).
    """
    import logging

    from flask_clientauth import keys
    from flask_clientauth import store as store_module

    watched: list[str] = []
    real_generate, real_hash, real_fast = keys.generate_secret, keys.hash_secret, keys.fast_hash

    def generate_secret(*args: Any) -> str:
        secret = real_generate(*args)
        watched.append(secret)
        return secret

    def fast_hash(secret: str, pepper: bytes | None) -> str:
        hashed = real_fast(secret, pepper)
        watched.extend((secret, hashed, hashed.partition("$")[2]))
        return hashed

    def hash_secret(secret: str, rounds: int) -> str:
        hashed = real_hash(secret, rounds)
        watched.extend((secret, hashed, hashed[-31:]))  # the whole hash, and its checksum part
        return hashed

    for module in (keys, store_module):
        monkeypatch.setattr(module, "generate_secret", generate_secret)
        monkeypatch.setattr(module, "hash_secret", hash_secret)
        monkeypatch.setattr(module, "fast_hash", fast_hash)
    caplog.set_level(logging.DEBUG, logger="flask_clientauth")
    yield watched
    leaks = leaked_values([*caplog.get_records("setup"), *caplog.get_records("call")], watched)
    if leaks:
        where = sorted({f"{r.name} {r.levelname} ({r.pathname}:{r.lineno})" for r, _ in leaks})
        pytest.fail(f"a secret or a secret hash reached the logs: {'; '.join(where)}", pytrace=False)


class CallCounter:
    """Counts store lookups, secret checks and change-log polls (the real database and hashes still answer).

    ``checks`` counts every check of a secret against a stored hash: a fast one (SHA-256 /
    HMAC-SHA-256, generated secrets) or bcrypt (chosen secrets), which ``bcrypts`` counts apart.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
        import flask_clientauth.flight
        import flask_clientauth.secretcheck

        self.gets = 0
        self.checks = 0
        self.bcrypts = 0
        self.polls = 0
        real_get, real_match = store.get, flask_clientauth.flight.secret_matches
        real_fast = flask_clientauth.secretcheck.secret_matches

        def get(client_id: str) -> Any:
            self.gets += 1
            return real_get(client_id)

        def secret_matches(secret: str, stored_hash: str) -> bool:
            self.checks += 1
            self.bcrypts += 1
            return real_match(secret, stored_hash)

        def fast_matches(secret: str, stored_hash: str, pepper: bytes | None = None) -> bool:
            self.checks += 1
            return real_fast(secret, stored_hash, pepper)

        def polling(real: Callable[..., Any]) -> Callable[..., Any]:
            def poll(*args: Any, **kwargs: Any) -> Any:
                self.polls += 1
                return real(*args, **kwargs)

            return poll

        monkeypatch.setattr(store, "get", get)
        monkeypatch.setattr(store, "latest_change", polling(store.latest_change))
        monkeypatch.setattr(store, "changes_after", polling(store.changes_after))
        monkeypatch.setattr(flask_clientauth.flight, "secret_matches", secret_matches)
        monkeypatch.setattr(flask_clientauth.secretcheck, "secret_matches", fast_matches)

    def take_polls(self) -> int:
        """Change-log polls since the last call."""
        out, self.polls = self.polls, 0
        return out

    def take(self) -> tuple[int, int]:
        """(store lookups, secret checks) since the last call."""
        out = (self.gets, self.checks)
        self.gets = self.checks = 0
        return out

    def take_bcrypts(self) -> int:
        """bcrypt checks since the last call."""
        out, self.bcrypts = self.bcrypts, 0
        return out


def new_client(app: Flask, name: str = "another app", **kw: Any) -> tuple[str, str]:
    """Registers a client in the app's store: its ID and secret (``None`` with ``secret=False``)."""
    record, secret = app.extensions["clientauth"].store.create(name, **kw)
    return record.client_id, secret


E = TypeVar("E", bound="ClientEnv")


@dataclass
class ClientEnv:
    """An app with one registered client (``cid``, ``secret``) and a test client without a cookie jar.

    With a ``monkeypatch``, ``take()`` counts store lookups and secret checks (:class:`CallCounter`).
    Test modules subclass it with their own ways of sending credentials.
    """

    app: Flask
    client: FlaskClient
    store: ClientStore
    cid: str
    secret: str
    counter: CallCounter | None = None

    @classmethod
    def of(cls: type[E], app: Flask, monkeypatch: pytest.MonkeyPatch | None = None, **fields: Any) -> E:
        store: ClientStore = app.extensions["clientauth"].store
        cid, secret = new_client(app, "Branch mobile app")
        assert secret is not None
        counter = None if monkeypatch is None else CallCounter(monkeypatch, store)
        return cls(app, app.test_client(use_cookies=False), store, cid, secret, counter, **fields)

    def take(self) -> tuple[int, int]:
        """(store lookups, secret checks) since the last call."""
        assert self.counter is not None
        return self.counter.take()

    def new_client(self, name: str = "another app", **kw: Any) -> tuple[str, str]:
        return new_client(self.app, name, **kw)


# -- what was skipped for want of a server ----------------------------------------------------

#: The variables that enable each server's tests (``.ci/run`` exports all three).
SERVER_VARIABLES = {
    "CLIENTAUTH_TEST_POSTGRES_URL": "PostgreSQL",
    "CLIENTAUTH_TEST_MARIADB_URL": "MariaDB",
    "CLIENTAUTH_TEST_REDIS_URL": "Redis",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Count the tests skipped because a server's URL is unset, so a green run on SQLite alone
    does not pass for a full one."""
    counts = dict.fromkeys(SERVER_VARIABLES, 0)
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for variable in SERVER_VARIABLES:
            if variable in reason:
                counts[variable] += 1
                break
    if not any(counts.values()):
        return
    terminalreporter.section("tests skipped: database / Redis URLs not set")
    for variable, server in SERVER_VARIABLES.items():
        if counts[variable]:
            count = counts[variable]
            terminalreporter.line(f"{server}: {count} test{'s' if count != 1 else ''} skipped ({variable} is not set)")
    terminalreporter.line(
        "To run them all, export the URLs as README.md's 'Running the tests' shows (as .ci/run does)."
    )
