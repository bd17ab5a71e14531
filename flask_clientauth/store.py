"""The client store: SQLAlchemy Core statements over the tables in :mod:`.models`.

Every lifecycle change runs in one transaction together with its entries in the change log (so
every process learns of it) and in the audit log (so the operator can tell who did what), so a
client is never half-written. The CLI, and any other front end, go through these methods alone.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

from sqlalchemy import (
    URL,
    Column,
    ColumnElement,
    Connection,
    Engine,
    LargeBinary,
    Select,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .errors import ClientAuthError
from .keys import (
    DEFAULT_SECRET_PREFIX,
    check_secret_format,
    fast_hash,
    generate_client_id,
    generate_secret,
    hash_secret,
    secret_matches,
    well_formed,
)
from .models import (
    ACTOR_MAX,
    LABEL_MAX,
    NAME_MAX,
    ROLE_MAX,
    ROLES_MAX,
    Base,
    audit_table,
    clients_table,
    credentials_table,
    events_table,
)
from .plans import check_plan_name

#: How long change-log entries are kept; pollers only need the last few seconds.
EVENT_RETENTION = timedelta(days=1)


#: What :attr:`StoreError.fault` names (``None``: another fault, named by its exception class only).
MISSING_TABLES = "missing_tables"
UNREACHABLE = "unreachable"
NO_DATABASE = "no_database"
AUTH_FAILED = "auth_failed"
#: Clients still hold their credential where it was before revision ca0002: with ``ClientAuth(app,
#: db=db)`` the app's ``flask db upgrade`` changes the schema, then ``flask clients init-db`` moves them.
NOT_MIGRATED = "not_migrated"
#: The faults whose message names the command that fixes them.
COMMAND_FAULTS = (MISSING_TABLES, NOT_MIGRATED)


class StoreError(ClientAuthError):
    """The client store could not be reached or used. The message never holds SQL, values or a password.

    ``fault`` names the cause when it is known (:data:`MISSING_TABLES`, :data:`UNREACHABLE`,
    :data:`NO_DATABASE`, :data:`AUTH_FAILED`, :data:`NOT_MIGRATED`), and the message then says what to do.
    """

    def __init__(self, message: str, *, fault: str | None = None) -> None:
        super().__init__(message)
        #: What went wrong when it is known: ``"missing_tables"``, ``"unreachable"``,
        #: ``"no_database"``, ``"auth_failed"`` or ``"not_migrated"``.
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


class TooManyCredentials(ClientAuthError, ValueError):
    """The client already has the most credentials allowed (``CLIENTAUTH_MAX_CREDENTIALS``)."""

    @classmethod
    def of(cls, client_id: str, name: str, maximum: int) -> TooManyCredentials:
        return cls(
            f"client {name!r} ({client_id}) already has {maximum} credentials, the maximum "
            "(CLIENTAUTH_MAX_CREDENTIALS): revoke one first"
        )


class LastCredential(ClientAuthError, ValueError):
    """Revoking the only credential of a client would leave it unreachable: disable or delete it."""

    @classmethod
    def of(cls, client_id: str, name: str) -> LastCredential:
        """The refusal for ``client_id``, the only credential of the client named ``name``."""
        return cls(
            f"{client_id} is the only credential of client {name!r}: "
            "disable or delete the client instead (`flask clients disable` / `delete`)"
        )


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime) -> datetime:
    """A stored timestamp in UTC (naive ones are stored as UTC; PostgreSQL answers in the session's zone)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _id_is(conn: Connection, column: Column[Any], client_id: str) -> ColumnElement[bool]:
    """``column = :id``, byte for byte: MySQL/MariaDB collations ignore case and trailing spaces."""
    condition = column == client_id
    if conn.dialect.name in ("mysql", "mariadb"):
        condition = condition & (cast(column, LargeBinary) == client_id.encode("utf-8"))
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


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _maybe_aware(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


@dataclass(frozen=True)
class CredentialRecord:
    """One client ID of a client and what goes with it. ``repr`` and :meth:`to_dict` omit the hashes."""

    client_id: str
    label: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    #: Until when the secret replaced by ``reset-secret --grace`` keeps working (``None``: it does not).
    previous_secret_until: datetime | None = None
    secret_hash: str | None = field(default=None, repr=False, compare=False)
    previous_secret_hash: str | None = field(default=None, repr=False, compare=False)

    @property
    def has_secret(self) -> bool:
        return self.secret_hash is not None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def hashes(self, now: datetime) -> list[str]:
        """The hashes a presented secret may match at ``now``: the secret's, then the one in its grace period."""
        found = [] if self.secret_hash is None else [self.secret_hash]
        until = self.previous_secret_until
        if self.previous_secret_hash is not None and until is not None and until > now:
            found.append(self.previous_secret_hash)
        return found

    def to_dict(self, *, enabled: bool = True, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        grace = self.previous_secret_until
        return {
            "client_id": self.client_id,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "expires_at": _iso(self.expires_at),
            "last_used_at": _iso(self.last_used_at),
            "enabled": enabled and not self.expired(now),
            "has_secret": self.has_secret,
            "previous_secret_until": _iso(grace) if grace is not None and grace > now else None,
        }

    @classmethod
    def from_row(cls, row: Any) -> CredentialRecord:
        return cls(
            client_id=row.client_id,
            label=row.label or "",
            created_at=_aware(row.created_at),
            expires_at=_maybe_aware(row.expires_at),
            last_used_at=_maybe_aware(row.last_used_at),
            previous_secret_until=_maybe_aware(row.previous_secret_until),
            secret_hash=row.secret_hash,
            previous_secret_hash=row.previous_secret_hash,
        )


@dataclass(frozen=True)
class ClientRecord:
    """A client as seen through one of its credentials, ``client_id`` (the first one in :meth:`ClientStore.list`).

    ``repr`` and :meth:`to_dict` never hold a secret or a hash.
    """

    client_id: str
    name: str
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    roles: tuple[str, ...] = ()
    credentials: tuple[CredentialRecord, ...] = field(default=(), repr=False)
    #: The client's plan by name (``None``: the default plan, if one is configured).
    plan: str | None = None
    #: The client's primary key (what the audit log refers to it by).
    pk: int = field(default=0, repr=False, compare=False)

    @cached_property
    def credential(self) -> CredentialRecord:
        """The credential :attr:`client_id` names."""
        for credential in self.credentials:
            if credential.client_id == self.client_id:
                return credential
        raise LookupError(self.client_id)

    @property
    def secret_hash(self) -> str | None:
        return self.credential.secret_hash

    @property
    def has_secret(self) -> bool:
        return self.credential.has_secret

    @property
    def label(self) -> str:
        return self.credential.label

    @property
    def expires_at(self) -> datetime | None:
        return self.credential.expires_at

    @property
    def last_used_at(self) -> datetime | None:
        return max((c.last_used_at for c in self.credentials if c.last_used_at), default=None)

    def client_ids(self) -> list[str]:
        return [c.client_id for c in self.credentials]

    def to_dict(self) -> dict[str, Any]:
        now = utcnow()
        credential = self.credential.to_dict(enabled=self.enabled, now=now)
        return {
            "client_id": self.client_id,
            "name": self.name,
            "description": self.description,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "has_secret": self.has_secret,
            "roles": list(self.roles),
            "plan": self.plan,
            "label": self.label,
            "expires_at": credential["expires_at"],
            "last_used_at": _iso(self.last_used_at),
            "previous_secret_until": credential["previous_secret_until"],
            "credentials": [c.to_dict(enabled=self.enabled, now=now) for c in self.credentials],
        }


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log: when, what, which client, who. Never a secret or a hash."""

    id: int
    created_at: datetime
    action: str
    client_id: str | None
    client_name: str
    actor: str | None
    detail: dict[str, Any]
    #: The primary key of the client the entry is about (it outlives the client's IDs).
    client_pk: int | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "action": self.action,
            "client_id": self.client_id,
            "name": self.client_name,
            "actor": self.actor,
            "detail": self.detail,
        }


def check_name(name: str) -> str:
    """The client name, stripped; :class:`ValueError` when it is unusable."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise ValueError(f"a client name must be 1 to {NAME_MAX} printable characters")
    return name


def check_label(label: str) -> str:
    """A credential label, stripped (may be empty); :class:`ValueError` when it is unusable."""
    label = label.strip()
    if len(label) > LABEL_MAX or not label.isprintable():
        raise ValueError(f"a credential label must be at most {LABEL_MAX} printable characters")
    return label


_ROLE = re.compile(rf"[A-Za-z0-9_.:/-]{{1,{ROLE_MAX}}}")


def check_role(role: str) -> str:
    """A role name as given; :class:`ValueError` when it is unusable."""
    if not _ROLE.fullmatch(role):
        raise ValueError(f"a role must be 1 to {ROLE_MAX} letters, digits or _ . : / - (got {role[:80]!r})")
    return role


def _begin_immediate(conn: Connection) -> None:
    """On SQLite, take the write lock now: pysqlite begins a transaction only at the first write,
    so the reads before it (``_locked``'s, whose ``FOR UPDATE`` SQLite ignores) would see rows that
    another writer is about to change, and a read-modify-write would lose that writer's update."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.dbapi_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def check_role_count(roles: Collection[str]) -> None:
    """:class:`ValueError` when a client would hold more than :data:`~.models.ROLES_MAX` roles."""
    if len(roles) > ROLES_MAX:
        raise ValueError(f"a client may hold at most {ROLES_MAX} roles (got {len(roles)})")


def _check_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValueError("an expiry must carry a time zone (give it in UTC)")
    return None if expires_at is None else expires_at.astimezone(timezone.utc)


#: The values of :meth:`ClientStore.find_clients`'s ``status``.
STATUSES = ("enabled", "disabled")


def _like(text: str) -> str:
    """``%text%`` for ``LIKE ... ESCAPE '!'``, the wildcards in ``text`` taken literally."""
    return "%" + text.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"


def _client_filter(search: str, status: str | None, where: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """The ``WHERE`` of a client listing: a substring of the name or of a client ID, the status, and
    the caller's own condition."""
    condition: ColumnElement[bool] = clients_table.c.id.is_not(None) if where is None else where
    if search:
        pattern = _like(search)
        ids = (
            select(credentials_table.c.id)
            .where(credentials_table.c.client_pk == clients_table.c.id)
            .where(func.lower(credentials_table.c.client_id).like(pattern, escape="!"))
        )
        condition = condition & or_(func.lower(clients_table.c.name).like(pattern, escape="!"), ids.exists())
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"a status must be one of {', '.join(STATUSES)} (got {status[:40]!r})")
        condition = condition & (clients_table.c.enabled == (status == "enabled"))
    return condition


def _roles(text: str | None) -> tuple[str, ...]:
    return tuple(sorted(set((text or "").split())))


#: The client's columns beside each of its credentials' (labelled where the names are shared).
_CLIENT_COLUMNS = (
    clients_table.c.id.label("pk"),
    clients_table.c.name,
    clients_table.c.description,
    clients_table.c.enabled,
    clients_table.c.roles,
    clients_table.c.plan,
    clients_table.c.created_at.label("client_created_at"),
    clients_table.c.updated_at.label("client_updated_at"),
)
_CREDENTIAL_COLUMNS = tuple(
    credentials_table.c[name]
    for name in (
        "client_id",
        "label",
        "secret_hash",
        "previous_secret_hash",
        "previous_secret_until",
        "created_at",
        "expires_at",
        "last_used_at",
    )
)


def _clients(rows: Iterable[Any], key: Callable[[Any], str]) -> dict[str, ClientRecord]:
    """Rows of (client, credential), grouped by ``key(row)``, as one :class:`ClientRecord` per key."""
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    records = {}
    for seen_as, group in grouped.items():
        first = group[0]
        records[seen_as] = ClientRecord(
            client_id=seen_as,
            name=first.name,
            description=first.description or "",
            enabled=bool(first.enabled),
            created_at=_aware(first.client_created_at),
            updated_at=_aware(first.client_updated_at),
            roles=_roles(first.roles),
            plan=first.plan,
            credentials=tuple(CredentialRecord.from_row(r) for r in group),
            pk=first.pk,
        )
    return records


class _StoreBase:
    """The connection, and what every read and change shares: the joined query, the locked read,
    the change-log and audit entries."""

    def __init__(
        self,
        get_engine: Callable[[], Engine],
        *,
        bcrypt_rounds: int = 12,
        secret_prefix: str = DEFAULT_SECRET_PREFIX,
        pepper: bytes | None = None,
    ) -> None:
        self._get_engine = get_engine
        self.bcrypt_rounds = bcrypt_rounds
        self.secret_prefix = secret_prefix
        self._pepper = pepper
        #: Called with a client ID after each committed change made through this store, so
        #: this process's cache drops it at once (other processes learn it from the change log).
        self.listeners: list[Callable[[str], None]] = []

    def __repr__(self) -> str:
        return f"<ClientStore {safe_url(self.engine.url)}>"

    @property
    def engine(self) -> Engine:
        return self._get_engine()

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        engine = self._get_engine()
        try:
            if write:
                with engine.begin() as conn:
                    _begin_immediate(conn)
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

    @staticmethod
    def _seen_through(conn: Connection, condition: Callable[[Any], ColumnElement[bool]]) -> Select[Any]:
        """Each credential of every client that has a credential ``mine`` meeting ``condition(mine)``."""
        mine = credentials_table.alias("mine")
        return (
            select(mine.c.client_id.label("seen_as"), *_CLIENT_COLUMNS, *_CREDENTIAL_COLUMNS)
            .select_from(mine)
            .join(clients_table, clients_table.c.id == mine.c.client_pk)
            .join(credentials_table, credentials_table.c.client_pk == clients_table.c.id)
            .where(condition(mine))
            .order_by(credentials_table.c.id)
        )

    @staticmethod
    def _check_migrated(conn: Connection) -> None:
        """Refuse to answer for the clients as if they were all here when some still hold their
        credential from before revision ca0002 (they get 401 until ``init-db`` moves it)."""
        legacy = conn.execute(
            select(func.count()).select_from(clients_table).where(clients_table.c.client_id.is_not(None))
        ).scalar_one()
        if legacy:
            raise StoreError(
                f"{legacy} client(s) in {safe_url(conn.engine.url)} still hold their client ID and secret from "
                "before the upgrade and cannot authenticate yet: run `flask clients init-db` to move them",
                fault=NOT_MIGRATED,
            )

    def _changed(self, client_ids: Iterable[str]) -> None:
        for client_id in client_ids:
            for listener in self.listeners:
                listener(client_id)

    def _log(self, conn: Connection, client_ids: Iterable[str], action: str) -> None:
        """Change-log entries: every process re-reads (or drops) these credentials at its next poll."""
        now = utcnow()
        ids = list(client_ids)
        if ids:
            conn.execute(
                insert(events_table),
                [{"client_id": c, "action": action.partition(".")[0], "created_at": now} for c in ids],
            )
        conn.execute(delete(events_table).where(events_table.c.created_at < now - EVENT_RETENTION))

    @staticmethod
    def _audit(
        conn: Connection,
        action: str,
        record: ClientRecord,
        actor: str | None,
        client_id: str | None = None,
        **detail: Any,
    ) -> None:
        conn.execute(
            insert(audit_table).values(
                created_at=utcnow(),
                action=action,
                client_ref=record.pk,
                client_id=client_id or record.client_id,
                client_name=record.name,
                actor=None if actor is None else actor[:ACTOR_MAX],
                detail=json.dumps(detail, sort_keys=True) if detail else "",
            )
        )

    def _locked(self, conn: Connection, client_id: str) -> ClientRecord:
        """The client of ``client_id``, its row locked until the transaction ends (no lost updates)."""
        # A locking read first: on MySQL / MariaDB (REPEATABLE READ) the transaction's snapshot is
        # taken by its first plain read, so a plain read here would let the record read below
        # predate a writer that committed while this one waited for the lock (a lost update).
        pk = conn.execute(
            select(credentials_table.c.client_pk)
            .where(_id_is(conn, credentials_table.c.client_id, client_id))
            .with_for_update()
        ).scalar()
        if pk is None:
            raise ClientNotFound(client_id)
        conn.execute(select(clients_table.c.id).where(clients_table.c.id == pk).with_for_update())
        rows = conn.execute(self._seen_through(conn, lambda mine: mine.c.client_id == client_id)).all()
        record = _clients((r for r in rows if r.seen_as == client_id), lambda r: r.seen_as).get(client_id)
        if record is None:
            raise ClientNotFound(client_id)
        return record

    def _hash_new(self, secret: str | None) -> str | None:
        return None if secret is None else fast_hash(secret, self._pepper)


class _StoreReads(_StoreBase):
    """Reading clients, the change log and the audit log."""

    def get(self, client_id: str) -> ClientRecord | None:
        """The client that has a credential with exactly this ID (compared byte for byte)."""
        with self._connect(write=False) as conn:
            rows = conn.execute(self._seen_through(conn, lambda mine: _id_is(conn, mine.c.client_id, client_id))).all()
        return _clients((r for r in rows if r.seen_as == client_id), lambda r: r.seen_as).get(client_id)

    def get_many(self, client_ids: Sequence[str]) -> dict[str, ClientRecord]:
        """The clients of these credential IDs (absent ones are missing from the result)."""
        wanted = set(client_ids)
        if not wanted:
            return {}
        with self._connect(write=False) as conn:
            rows = conn.execute(self._seen_through(conn, lambda mine: mine.c.client_id.in_(sorted(wanted)))).all()
        return _clients((r for r in rows if r.seen_as in wanted), lambda r: r.seen_as)

    def require(self, client_id: str) -> ClientRecord:
        record = self.get(client_id)
        if record is None:
            with self._connect(write=False) as conn:  # only on a miss, never on the request path
                self._check_migrated(conn)
            raise ClientNotFound(client_id)
        return record

    def list(self) -> list[ClientRecord]:
        """Every client, seen through its first credential."""
        with self._connect(write=False) as conn:
            self._check_migrated(conn)
            rows = conn.execute(
                select(*_CLIENT_COLUMNS, *_CREDENTIAL_COLUMNS)
                .join(credentials_table, credentials_table.c.client_pk == clients_table.c.id)
                .order_by(clients_table.c.id, credentials_table.c.id)
            ).all()
        by_pk = _clients(rows, lambda r: str(r.pk))
        return [dataclasses.replace(record, client_id=record.credentials[0].client_id) for record in by_pk.values()]

    def find_clients(
        self,
        *,
        search: str = "",
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        after: int = 0,
        pks: Iterable[int] | None = None,
        where: ColumnElement[bool] | None = None,
    ) -> builtins.list[ClientRecord]:
        """One page of clients, seen through their first credential, in the order they were created.

        ``search`` (case-insensitive) is a substring of the name or of any client ID; ``status`` is
        ``"enabled"`` or ``"disabled"``; ``after`` skips clients up to that primary key (to walk all
        of them in batches); ``pks`` keeps only those clients; ``where``: a condition of the
        caller's on ``clientauth_clients``. ``LIMIT``/``OFFSET`` in SQL: holds any number of clients.
        """
        with self._connect(write=False) as conn:
            self._check_migrated(conn)
            condition = _client_filter(search, status, where)
            if after:
                condition = condition & (clients_table.c.id > after)
            if pks is not None:
                condition = condition & clients_table.c.id.in_(sorted(set(pks)))
            page = select(clients_table.c.id).where(condition).order_by(clients_table.c.id).limit(limit).offset(offset)
            wanted = [row.id for row in conn.execute(page)]
            if not wanted:
                return []
            rows = conn.execute(
                select(*_CLIENT_COLUMNS, *_CREDENTIAL_COLUMNS)
                .join(credentials_table, credentials_table.c.client_pk == clients_table.c.id)
                .where(clients_table.c.id.in_(wanted))
                .order_by(clients_table.c.id, credentials_table.c.id)
            ).all()
        first: dict[int, str] = {}
        for row in rows:  # each client seen through its first credential
            first.setdefault(row.pk, row.client_id)
        return list(_clients(rows, lambda r: first[r.pk]).values())

    def count_clients(
        self, *, search: str = "", status: str | None = None, where: ColumnElement[bool] | None = None
    ) -> int:
        """How many clients :meth:`find_clients` would page through."""
        with self._connect(write=False) as conn:
            self._check_migrated(conn)
            query = select(func.count()).select_from(clients_table).where(_client_filter(search, status, where))
            return int(conn.execute(query).scalar_one())

    def find_by_secret(self, secret: str) -> ClientRecord | None:
        """The client whose generated secret (or one in its grace period) this is; ``None`` if none."""
        hashed = fast_hash(secret, self._pepper)
        with self._connect(write=False) as conn:
            client_id = conn.execute(
                select(credentials_table.c.client_id).where(
                    or_(credentials_table.c.secret_hash == hashed, credentials_table.c.previous_secret_hash == hashed)
                )
            ).scalar()
        return None if client_id is None else self.get(client_id)

    def verify_secret(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is the credential's (or its previous one, in its grace period). Never stored."""
        credential = self.require(client_id).credential
        return any(secret_matches(secret, hashed, self._pepper) for hashed in credential.hashes(utcnow()))

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

    def audit(self, client_id: str | None = None, *, since: datetime | None = None) -> builtins.list[AuditRecord]:
        """The audit log, oldest first: all of it, or one client's (by any of its IDs, past ones included)."""
        condition: ColumnElement[bool] = audit_table.c.id.is_not(None)
        with self._connect(write=False) as conn:
            if client_id is not None:
                pk = conn.execute(
                    select(credentials_table.c.client_pk).where(_id_is(conn, credentials_table.c.client_id, client_id))
                ).scalar()
                if pk is None:  # a deleted client, or an ID it no longer has
                    pk = conn.execute(
                        select(audit_table.c.client_ref)
                        .where(_id_is(conn, audit_table.c.client_id, client_id))
                        .order_by(audit_table.c.id.desc())
                    ).scalar()
                if pk is None:
                    raise ClientNotFound(client_id)
                condition = audit_table.c.client_ref == pk
            if since is not None:
                condition = condition & (audit_table.c.created_at >= since)
            rows = conn.execute(select(audit_table).where(condition).order_by(audit_table.c.id)).all()
        return [
            AuditRecord(
                id=r.id,
                created_at=_aware(r.created_at),
                action=r.action,
                client_id=r.client_id,
                client_name=r.client_name,
                actor=r.actor,
                detail=json.loads(r.detail) if r.detail else {},
                client_pk=r.client_ref,
            )
            for r in rows
        ]


class _CredentialChanges(_StoreReads):
    """Changes to one credential: add, revoke, new secret or client ID, expiry, last use."""

    def _new_credential(
        self,
        conn: Connection,
        client_pk: int,
        *,
        with_secret: bool,
        client_id: str | None,
        label: str,
        expires_at: datetime | None,
    ) -> tuple[str, str | None]:
        """Insert a credential; returns its ID and its secret (the only time the secret exists)."""
        secret = generate_secret(self.secret_prefix) if with_secret else None
        for _attempt in range(3):
            cid = client_id or generate_client_id()
            now = utcnow()
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(credentials_table).values(
                            client_pk=client_pk,
                            client_id=cid,
                            label=label,
                            secret_hash=self._hash_new(secret),
                            created_at=now,
                            updated_at=now,
                            expires_at=expires_at,
                        )
                    )
            except IntegrityError as exc:
                if client_id is None and _unique_violation(exc):
                    continue  # a random ID collided: draw another
                raise
            return cid, secret
        raise StoreError("could not generate a unique client ID")

    def add_credential(
        self,
        client_id: str,
        *,
        label: str = "",
        expires_at: datetime | None = None,
        with_secret: bool = True,
        actor: str | None = None,
        max_credentials: int | None = None,
    ) -> tuple[ClientRecord, str | None]:
        """A new client ID (and secret) for the client of ``client_id``; returns the client seen through it.

        Raises :class:`TooManyCredentials` when the client has ``max_credentials`` already
        (checked under the client's row lock: two at once cannot both pass).
        """
        label, expires_at = check_label(label), _check_expiry(expires_at)
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            if max_credentials is not None and len(record.credentials) >= max_credentials:
                raise TooManyCredentials.of(client_id, record.name, max_credentials)
            cid, secret = self._new_credential(
                conn, record.pk, with_secret=with_secret, client_id=None, label=label, expires_at=expires_at
            )
            self._log(conn, [cid], "credential")
            record = self._locked(conn, cid)
            self._audit(conn, "credential.add", record, actor, label=label, expires_at=_iso(expires_at))
        self._changed([cid])
        return record, secret

    def revoke_credential(self, client_id: str, *, actor: str | None = None) -> ClientRecord:
        """Delete one credential; the client's others keep working. Returns the client as it was.

        Raises :class:`LastCredential` for the client's only credential (disable or delete the client).
        """
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            if len(record.credentials) == 1:
                raise LastCredential.of(client_id, record.name)
            conn.execute(delete(credentials_table).where(_id_is(conn, credentials_table.c.client_id, client_id)))
            self._log(conn, [client_id], "revoke")
            self._audit(conn, "credential.revoke", record, actor, label=record.label)
        self._changed([client_id])
        return record

    def _update_credential(
        self, cid: str, action: str, actor: str | None, detail: Mapping[str, Any], **values: Any
    ) -> ClientRecord:
        client_id = cid
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            conn.execute(
                update(credentials_table)
                .where(_id_is(conn, credentials_table.c.client_id, client_id))
                .values(updated_at=utcnow(), **values)
            )
            new_id = values.get("client_id", client_id)
            self._log(conn, {client_id, new_id}, action)
            self._audit(conn, action, record, actor, client_id=client_id, **detail)
            record = self._locked(conn, new_id)
        self._changed({client_id, new_id})
        return record

    def reset_secret(
        self, client_id: str, *, grace: timedelta | None = None, actor: str | None = None
    ) -> tuple[ClientRecord, str]:
        """A new generated secret for the credential (same ID). The old one stops working at once, or
        keeps working for ``grace`` beside the new one."""
        if grace is not None and grace < timedelta(0):
            raise ValueError("a grace period cannot be negative")
        old = self.require(client_id).credential
        secret = generate_secret(self.secret_prefix)
        until = utcnow() + grace if grace and old.secret_hash is not None else None
        record = self._update_credential(
            client_id,
            "secret.reset",
            actor,
            {"previous_secret_until": _iso(until)},
            secret_hash=self._hash_new(secret),
            previous_secret_hash=old.secret_hash if until is not None else None,
            previous_secret_until=until,
        )
        return record, secret

    def set_secret(self, client_id: str, secret: str, *, actor: str | None = None) -> ClientRecord:
        """Set an operator-chosen secret, hashed with bcrypt (the caller checks its minimum length).

        Raises :class:`ValueError` for a secret that could never be accepted: more than 72 bytes
        (bcrypt would ignore the rest), not printable ASCII without spaces or commas, or starting
        with the prefix of generated secrets without being one.
        """
        problem = check_secret_format(secret, min_length=1)
        if problem is None and secret.startswith(self.secret_prefix) and not well_formed(secret, self.secret_prefix):
            # requests refuse such a secret unhashed, as a mistyped generated one: it could never work
            problem = f"a chosen secret must not start with {self.secret_prefix!r}, the prefix of generated secrets"
        if problem is not None:
            raise ValueError(problem)
        self.require(client_id)
        return self._update_credential(
            client_id,
            "secret.set",
            actor,
            {},
            secret_hash=hash_secret(secret, self.bcrypt_rounds),
            previous_secret_hash=None,
            previous_secret_until=None,
        )

    def reset_client_id(self, client_id: str, *, actor: str | None = None) -> ClientRecord:
        """A new ID for the credential; its secret is kept and the old ID stops working."""
        for _attempt in range(3):
            new_id = generate_client_id()
            try:
                return self._update_credential(
                    client_id, "client_id.reset", actor, {"new_client_id": new_id}, client_id=new_id
                )
            except DuplicateClientId:
                continue
        raise StoreError("could not generate a unique client ID")

    def set_expiry(self, client_id: str, expires_at: datetime | None, *, actor: str | None = None) -> ClientRecord:
        """When the credential stops working (``None``: never)."""
        expires_at = _check_expiry(expires_at)
        return self._update_credential(
            client_id, "expiry", actor, {"expires_at": _iso(expires_at)}, expires_at=expires_at
        )

    def touch(self, used: Mapping[str, datetime]) -> None:
        """Record when credentials were last used. Not a lifecycle change: no change-log or audit entry."""
        if not used:
            return
        column = credentials_table.c.last_used_at
        with self._connect(write=True) as conn:
            for client_id, at in used.items():
                conn.execute(
                    update(credentials_table)
                    .where(_id_is(conn, credentials_table.c.client_id, client_id))
                    .where(column.is_(None) | (column < at))
                    .values(last_used_at=at)
                )


class ClientStore(_CredentialChanges):
    """Reads and writes clients through an engine supplied on demand.

    ``get_engine`` is called per operation so that a Flask-SQLAlchemy ``db.engine`` (which
    needs an app context) works as well as an engine of our own. Every change takes an optional
    ``actor``, recorded in the audit log (the CLI passes the OS user).
    """

    def create(
        self,
        name: str,
        *,
        description: str = "",
        with_secret: bool = True,
        client_id: str | None = None,
        roles: Iterable[str] = (),
        label: str = "",
        expires_at: datetime | None = None,
        plan: str | None = None,
        actor: str | None = None,
    ) -> tuple[ClientRecord, str | None]:
        """Register a client with one credential; returns it and its secret (the only time the secret exists).

        Raises :class:`ValueError` for a name, label, role, plan name or expiry that is unusable. The
        store does not know which plans are configured: the caller checks ``plan`` against them.
        """
        name, label = check_name(name), check_label(label)
        plan = None if plan is None else check_plan_name(plan)
        role_set = sorted({check_role(r) for r in roles})
        check_role_count(role_set)
        expires_at = _check_expiry(expires_at)
        now = utcnow()
        with self._connect(write=True) as conn:
            pk = conn.execute(
                insert(clients_table).values(
                    name=name,
                    description=description,
                    enabled=True,
                    roles=" ".join(role_set),
                    plan=plan,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
            pk = pk[0] if pk else None
            if pk is None:
                raise StoreError("client store did not return the new client's key")
            cid, secret = self._new_credential(
                conn, pk, with_secret=with_secret, client_id=client_id, label=label, expires_at=expires_at
            )
            self._log(conn, [cid], "create")
            # read back: the database may keep less precision than we sent (MariaDB: seconds)
            record = self._locked(conn, cid)
            detail: dict[str, Any] = {"roles": role_set, "expires_at": _iso(expires_at)}
            if plan is not None:
                detail["plan"] = plan
            self._audit(conn, "create", record, actor, **detail)
        self._changed([cid])
        return record, secret

    def _update_client(
        self, client_id: str, action: str, actor: str | None, detail: Mapping[str, Any], **values: Any
    ) -> ClientRecord:
        return self._change_client(client_id, action, actor, lambda record: (detail, values))

    def _change_client(
        self,
        client_id: str,
        action: str,
        actor: str | None,
        change: Callable[[ClientRecord], tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> ClientRecord:
        """Update the client's row with ``change(record)`` -> ``(audit detail, column values)``,
        computed from the record as read under its row lock (a read-modify-write loses no update)."""
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            detail, values = change(record)
            conn.execute(
                update(clients_table).where(clients_table.c.id == record.pk).values(updated_at=utcnow(), **values)
            )
            self._log(conn, record.client_ids(), action)
            self._audit(conn, action, record, actor, **detail)
            record = self._locked(conn, client_id)
        self._changed(record.client_ids())
        return record

    def set_enabled(self, client_id: str, enabled: bool, *, actor: str | None = None) -> ClientRecord:
        """Enable or disable the client, with all of its credentials."""
        return self._update_client(client_id, "enable" if enabled else "disable", actor, {}, enabled=enabled)

    def set_roles(
        self, client_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = (), actor: str | None = None
    ) -> ClientRecord:
        """Add and remove roles of the client (adding one it has, or removing one it lacks, is no change)."""
        added, removed = {check_role(r) for r in add}, {check_role(r) for r in remove}
        if added & removed:
            raise ValueError(f"a role cannot be both added and removed: {', '.join(sorted(added & removed))}")

        def change(record: ClientRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            roles = sorted((set(record.roles) | added) - removed)
            check_role_count(roles)
            return {"added": sorted(added), "removed": sorted(removed), "roles": roles}, {"roles": " ".join(roles)}

        return self._change_client(client_id, "roles", actor, change)

    def set_plan(self, client_id: str, plan: str | None, *, actor: str | None = None) -> ClientRecord:
        """Put the client, with all of its credentials, on ``plan`` (``None``: the default plan).

        Audited as ``"plan"`` (the plan before and after) and written to the change log, so every
        process holds the client to the new plan within the revocation interval. The caller checks
        that ``plan`` is configured; :class:`ValueError` for a name that could never be one.
        """
        plan = None if plan is None else check_plan_name(plan)
        detail = {"previous": self.require(client_id).plan, "plan": plan}
        return self._update_client(client_id, "plan", actor, detail, plan=plan)

    def plan_counts(self) -> dict[str | None, int]:
        """How many clients are on each plan (``None``: clients without one)."""
        with self._connect(write=False) as conn:
            rows = conn.execute(select(clients_table.c.plan, func.count()).group_by(clients_table.c.plan)).all()
        return {row[0]: int(row[1]) for row in rows}

    def delete(self, client_id: str, *, actor: str | None = None) -> ClientRecord:
        """Delete the client and all of its credentials; returns it as it was."""
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            # explicit: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys on
            conn.execute(delete(credentials_table).where(credentials_table.c.client_pk == record.pk))
            conn.execute(delete(clients_table).where(clients_table.c.id == record.pk))
            self._log(conn, record.client_ids(), "delete")
            self._audit(conn, "delete", record, actor, client_ids=record.client_ids())
        self._changed(record.client_ids())
        return record

    def record_leak(self, client_id: str, *, disable: bool, actor: str | None = None) -> ClientRecord:
        """Note in the audit log that a secret of ``client_id`` was found leaked; disable the client if asked."""
        with self._connect(write=True) as conn:
            record = self._locked(conn, client_id)
            if disable and record.enabled:
                conn.execute(
                    update(clients_table)
                    .where(clients_table.c.id == record.pk)
                    .values(enabled=False, updated_at=utcnow())
                )
                self._log(conn, record.client_ids(), "disable")
            self._audit(conn, "leaked", record, actor, disabled=disable)
            record = self._locked(conn, client_id)
        self._changed(record.client_ids())
        return record

    def prune_audit(self, before: datetime) -> int:
        """Delete audit entries older than ``before``; how many went."""
        with self._connect(write=True) as conn:
            return int(conn.execute(delete(audit_table).where(audit_table.c.created_at < before)).rowcount or 0)

    def create_all(self) -> None:
        """Create the tables directly (tests, throwaway databases); prefer migrations."""
        with self._connect(write=True) as conn:
            Base.metadata.create_all(conn)

    def drop_all(self) -> None:
        with self._connect(write=True) as conn:
            Base.metadata.drop_all(conn)
