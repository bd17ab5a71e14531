"""The client store: SQLAlchemy Core statements over the tables in :mod:`.models`.

Every write runs in one transaction together with its entry in the change log, so a
client is never half-written and every process learns of the change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .errors import ClientAuthError
from .keys import check_secret_format, generate_client_id, generate_secret, hash_secret
from .models import NAME_MAX, Base, clients_table, events_table

#: How long change-log entries are kept; pollers only need the last few seconds.
EVENT_RETENTION = timedelta(days=1)


#: What :attr:`StoreError.fault` names (``None``: another fault, named by its exception class only).
MISSING_TABLES = "missing_tables"
UNREACHABLE = "unreachable"
NO_DATABASE = "no_database"
AUTH_FAILED = "auth_failed"


class StoreError(ClientAuthError):
    """The client store could not be reached or used. The message never holds SQL, values or a password.

    ``fault`` names the cause when it is known (:data:`MISSING_TABLES`, :data:`UNREACHABLE`,
    :data:`NO_DATABASE`, :data:`AUTH_FAILED`), and the message then says what to do.
    """

    def __init__(self, message: str, *, fault: str | None = None) -> None:
        super().__init__(message)
        #: What went wrong when it is known: ``"missing_tables"``, ``"unreachable"``,
        #: ``"no_database"`` or ``"auth_failed"``.
        self.fault = fault


class StoreBusy(StoreError):
    """A lock held by another transaction did not clear in time; nothing was changed."""


class DuplicateClientId(StoreError):
    """The client ID is already registered."""


def _unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a duplicate key (the only integrity error a client ID causes):
    SQLSTATE 23505 (PostgreSQL), error 1062 (MySQL/MariaDB), SQLite's UNIQUE / PRIMARY KEY."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":
        return True
    args = getattr(orig, "args", ())
    if args and args[0] == 1062:
        return True
    return getattr(orig, "sqlite_errorname", "") in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or (
        "UNIQUE constraint failed" in str(orig)
    )


class ClientNotFound(ClientAuthError, LookupError):
    """No client has that ID."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """A stored timestamp in UTC (naive ones are stored as UTC; PostgreSQL answers in the session's zone)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _id_is(conn: Connection, client_id: str) -> ColumnElement[bool]:
    """``client_id = :id``, byte for byte: MySQL/MariaDB collations ignore case and trailing spaces."""
    condition = clients_table.c.client_id == client_id
    if conn.dialect.name in ("mysql", "mariadb"):
        condition = condition & (cast(clients_table.c.client_id, LargeBinary) == client_id.encode("utf-8"))
    return condition


#: Lock timeouts, deadlocks and statement timeouts: PostgreSQL SQLSTATEs, MySQL/MariaDB error
#: numbers, SQLite primary result codes (SQLITE_BUSY, SQLITE_LOCKED).
_PG_BUSY = frozenset({"55P03", "40P01", "57014"})
_MYSQL_BUSY = frozenset({1205, 1213})
_SQLITE_BUSY = frozenset({5, 6})


def _lock_timeout(exc: SQLAlchemyError) -> bool:
    """Whether the database gave up waiting for a lock (a fault that clears by itself)."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) in _PG_BUSY or getattr(orig, "pgcode", None) in _PG_BUSY:
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in _MYSQL_BUSY:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_BUSY


def safe_url(url: URL) -> str:
    """The database URL to show: no password, no query, the backend without its driver."""
    return url.set(drivername=url.get_backend_name(), query={}).render_as_string(hide_password=True)


#: PostgreSQL SQLSTATEs, MySQL/MariaDB error numbers and, for what psycopg reports at connect time
#: without a SQLSTATE, libpq's message; only used to classify, never shown.
_PG_FAULTS = {"42P01": MISSING_TABLES, "3D000": NO_DATABASE, "28P01": AUTH_FAILED, "28000": AUTH_FAILED}
_MYSQL_FAULTS = {1146: MISSING_TABLES, 1049: NO_DATABASE, 1045: AUTH_FAILED, 1044: AUTH_FAILED}
_MYSQL_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013})
_LIBPQ_FAULTS = (
    (re.compile(r'database ".*" does not exist'), NO_DATABASE),
    (re.compile(r'password authentication failed|role ".*" does not exist|no password supplied'), AUTH_FAILED),
    (
        re.compile(r"^connection failed:|failed to resolve host|server closed the connection|timeout expired"),
        UNREACHABLE,
    ),
)
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
#: SQLite: SQLITE_CANTOPEN (the file or its directory is missing or not writable).
_SQLITE_CANTOPEN = 14
#: Why a connection failed, from the driver's message (phrases of libpq, PyMySQL and the OS).
_REASONS = (
    ("refused", "connection refused"),
    ("resolve host", "unknown host name"),
    ("name or service not known", "unknown host name"),
    ("nodename nor servname", "unknown host name"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("closed the connection", "the server closed the connection"),
    ("lost connection", "the server closed the connection"),
    ("gone away", "the server closed the connection"),
)


def _fault(orig: Any) -> tuple[str | None, str]:
    """The fault a DBAPI error stands for, and the driver's message (lower case) to take a reason from."""
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    number = args[0] if args and isinstance(args[0], int) else None
    message = " ".join(str(arg) for arg in args).lower()
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _PG_FAULTS:
        return _PG_FAULTS[sqlstate], message
    if number is not None:
        if number in _MYSQL_FAULTS:
            return _MYSQL_FAULTS[number], message
        return (UNREACHABLE if number in _MYSQL_UNREACHABLE else None), message
    if type(orig).__module__ == "sqlite3":  # sqlite_errorcode is Python 3.11+: the messages are SQLite's own
        if message.startswith("no such table"):
            return MISSING_TABLES, message
        code = getattr(orig, "sqlite_errorcode", None)
        cantopen = code & 0xFF == _SQLITE_CANTOPEN if isinstance(code, int) else "unable to open" in message
        return (NO_DATABASE if cantopen else None), message
    if type(orig).__module__.startswith(("psycopg", "psycopg2")):
        for pattern, fault in _LIBPQ_FAULTS:
            if pattern.search(message):
                return fault, message
    return None, message


def store_error(exc: SQLAlchemyError, url: URL) -> StoreError:
    """A :class:`StoreError` that names the fault behind ``exc`` and what to do about it.

    Built from the URL (password hidden) and error codes only: the driver's message can quote SQL
    and values, so it is never shown.
    """
    fault, message = _fault(getattr(exc, "orig", None))
    where = safe_url(url)
    server = f"{url.host or 'localhost'}:{url.port or _DEFAULT_PORTS.get(url.get_backend_name(), '?')}"
    if fault == MISSING_TABLES:
        text = f"the client tables do not exist in {where}: run `flask clients init-db` (or `flask db upgrade`)"
    elif fault == NO_DATABASE and url.get_backend_name() == "sqlite":
        text = f"cannot open the SQLite database {where}: its directory must exist and be writable"
    elif fault == NO_DATABASE:
        text = f"the database {url.database!r} does not exist on the server at {server}: create it, or fix {where}"
    elif fault == AUTH_FAILED:
        text = (
            f"the database server at {server} refused user {url.username!r} (authentication failed): "
            f"check the user name and password of {where}"
        )
    elif fault == UNREACHABLE:
        reason = next((why for phrase, why in _REASONS if phrase in message), "cannot connect")
        text = f"cannot connect to the database server at {server} ({reason}): check that it runs and {where} is right"
    else:
        return StoreError(f"client store unavailable ({type(exc).__name__}) at {where}")
    return StoreError(f"client store unavailable: {text}", fault=fault)


@dataclass(frozen=True)
class ClientRecord:
    """A stored client as read from the database. ``repr`` and :meth:`to_dict` omit the hash."""

    client_id: str
    name: str
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_secret(self) -> bool:
        return self.secret_hash is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["secret_hash"]
        data["has_secret"] = self.has_secret
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data

    @classmethod
    def from_row(cls, row: Any) -> ClientRecord:
        return cls(
            client_id=row.client_id,
            name=row.name,
            description=row.description or "",
            enabled=bool(row.enabled),
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
            secret_hash=row.secret_hash,
        )


def check_name(name: str) -> str:
    """The client name, stripped; :class:`ValueError` when it is unusable."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise ValueError(f"a client name must be 1 to {NAME_MAX} printable characters")
    return name


class ClientStore:
    """Reads and writes clients through an engine supplied on demand.

    ``get_engine`` is called per operation so that a Flask-SQLAlchemy ``db.engine`` (which
    needs an app context) works as well as an engine of our own.
    """

    def __init__(self, get_engine: Callable[[], Engine], *, bcrypt_rounds: int = 12) -> None:
        self._get_engine = get_engine
        self.bcrypt_rounds = bcrypt_rounds
        #: Called with a client ID after each committed change made through this store, so
        #: this process's cache drops it at once (other processes learn it from the change log).
        self.listeners: list[Callable[[str], None]] = []

    @property
    def engine(self) -> Engine:
        return self._get_engine()

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        engine = self._get_engine()
        try:
            if write:
                with engine.begin() as conn:
                    yield conn
            else:
                with engine.connect() as conn:
                    yield conn
        except IntegrityError as exc:
            if _unique_violation(exc):
                raise DuplicateClientId("client ID already registered") from None
            raise StoreError(f"client store refused the write ({type(exc.orig).__name__})") from None
        except SQLAlchemyError as exc:
            if _lock_timeout(exc):
                raise StoreBusy(f"client store busy ({type(exc).__name__})") from None
            raise store_error(exc, engine.url) from None

    # -- reads ------------------------------------------------------------------------
    def get(self, client_id: str) -> ClientRecord | None:
        """The client with exactly this ID (compared byte for byte, whatever the collation)."""
        with self._connect(write=False) as conn:
            row = conn.execute(select(clients_table).where(_id_is(conn, client_id))).first()
        if row is None or row.client_id != client_id:
            return None
        return ClientRecord.from_row(row)

    def get_many(self, client_ids: Sequence[str]) -> dict[str, ClientRecord]:
        """The clients with exactly these IDs (absent ones are missing from the result)."""
        wanted = set(client_ids)
        if not wanted:
            return {}
        with self._connect(write=False) as conn:
            rows = conn.execute(select(clients_table).where(clients_table.c.client_id.in_(sorted(wanted)))).all()
        return {r.client_id: ClientRecord.from_row(r) for r in rows if r.client_id in wanted}

    def require(self, client_id: str) -> ClientRecord:
        record = self.get(client_id)
        if record is None:
            raise ClientNotFound(client_id)
        return record

    def list(self) -> list[ClientRecord]:
        with self._connect(write=False) as conn:
            rows = conn.execute(select(clients_table).order_by(clients_table.c.id)).all()
        return [ClientRecord.from_row(r) for r in rows]

    def latest_change(self) -> int:
        """The id of the newest change-log entry (0 when there is none)."""
        with self._connect(write=False) as conn:
            return int(conn.execute(select(func.max(events_table.c.id))).scalar() or 0)

    def changes_after(self, last_id: int, also: Sequence[int] | None = None) -> tuple[int, set[str], set[int]]:
        """Changes with an id above ``last_id`` or in ``also``.

        Returns the newest id seen, the client IDs changed, and the event ids read.
        """
        condition = events_table.c.id > last_id
        if also:
            condition = condition | events_table.c.id.in_(also)
        with self._connect(write=False) as conn:
            rows = conn.execute(select(events_table.c.id, events_table.c.client_id).where(condition)).all()
        newest = max([last_id, *(r.id for r in rows)])
        return newest, {r.client_id for r in rows}, {r.id for r in rows}

    # -- writes -----------------------------------------------------------------------
    def _changed(self, client_id: str) -> None:
        for listener in self.listeners:
            listener(client_id)

    def _log(self, conn: Connection, client_id: str, action: str) -> None:
        now = utcnow()
        conn.execute(insert(events_table).values(client_id=client_id, action=action, created_at=now))
        conn.execute(delete(events_table).where(events_table.c.created_at < now - EVENT_RETENTION))

    def create(
        self,
        name: str,
        *,
        description: str = "",
        with_secret: bool = True,
        client_id: str | None = None,
    ) -> tuple[ClientRecord, str | None]:
        """Register a client; returns it and its secret (the only time the secret exists).

        Raises :class:`ValueError` for a name that is empty, too long or not printable.
        """
        name = check_name(name)
        secret = generate_secret() if with_secret else None
        hashed = hash_secret(secret, self.bcrypt_rounds) if secret is not None else None
        for _attempt in range(3):
            cid = client_id or generate_client_id()
            now = utcnow()
            try:
                with self._connect(write=True) as conn:
                    conn.execute(
                        insert(clients_table).values(
                            client_id=cid,
                            name=name,
                            description=description,
                            secret_hash=hashed,
                            enabled=True,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                    self._log(conn, cid, "create")
                    # read back: the database may keep less precision than we sent (MariaDB: seconds)
                    row = conn.execute(select(clients_table).where(_id_is(conn, cid))).one()
            except DuplicateClientId:
                if client_id is None:
                    continue  # a random ID collided: draw another
                raise
            self._changed(cid)
            return ClientRecord.from_row(row), secret
        raise StoreError("could not generate a unique client ID")

    def _update(self, client_id: str, action: str, **values: Any) -> ClientRecord:
        with self._connect(write=True) as conn:
            result = conn.execute(
                update(clients_table).where(_id_is(conn, client_id)).values(updated_at=utcnow(), **values)
            )
            if result.rowcount == 0:
                raise ClientNotFound(client_id)
            self._log(conn, client_id, action)
        self._changed(client_id)
        return self.require(client_id)

    def reset_secret(self, client_id: str) -> tuple[ClientRecord, str]:
        """Give the client a new random secret (same ID); the old one stops working."""
        self.require(client_id)
        secret = generate_secret()
        record = self._update(client_id, "secret", secret_hash=hash_secret(secret, self.bcrypt_rounds))
        return record, secret

    def set_secret(self, client_id: str, secret: str) -> ClientRecord:
        """Set an operator-chosen secret (the caller checks its minimum length).

        Raises :class:`ValueError` for a secret that could never be accepted: more than 72 bytes
        (bcrypt would ignore the rest), or not printable ASCII without spaces or commas.
        """
        problem = check_secret_format(secret, min_length=1)
        if problem is not None:
            raise ValueError(problem)
        self.require(client_id)
        return self._update(client_id, "secret", secret_hash=hash_secret(secret, self.bcrypt_rounds))

    def set_enabled(self, client_id: str, enabled: bool) -> ClientRecord:
        return self._update(client_id, "enable" if enabled else "disable", enabled=enabled)

    def delete(self, client_id: str) -> None:
        with self._connect(write=True) as conn:
            result = conn.execute(delete(clients_table).where(_id_is(conn, client_id)))
            if result.rowcount == 0:
                raise ClientNotFound(client_id)
            self._log(conn, client_id, "delete")
        self._changed(client_id)

    # -- schema -----------------------------------------------------------------------
    def create_all(self) -> None:
        """Create the tables directly (tests, throwaway databases); prefer migrations."""
        with self._connect(write=True) as conn:
            Base.metadata.create_all(conn)

    def drop_all(self) -> None:
        with self._connect(write=True) as conn:
            Base.metadata.drop_all(conn)
