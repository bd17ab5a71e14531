"""The one service layer over the client store, used by the CLI, the portal and the admin API alike.

The store (:mod:`.store`) reads and writes; the service adds what every front end needs the same
way: who acts (``actor``, written to the audit log with each change), what that actor may manage
(``can_manage``: a client it may not manage is "not found", 404, and is absent from lists and audit
views), input checks that raise one :class:`ServiceError` (code, HTTP status, message; nothing is
changed), ``CLIENTAUTH_MAX_CREDENTIALS``, and pagination done in SQL. The JSON shapes of the
results are built here too (``to_dict``), so ``--json`` and the admin API answer alike.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ClientAuthError
from .keys import check_secret_format
from .plans import UnknownPlan, check_plan_name
from .store import (
    STATUSES,
    AuditRecord,
    ClientNotFound,
    ClientRecord,
    CredentialRecord,
    LastCredential,
    TooManyCredentials,
    check_label,
    check_name,
    check_role,
    check_role_count,
    utcnow,
)
from .timespec import MAX_DURATION

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from .extension import ClientAuthState
    from .planlimits import LimitUsage
    from .plans import Plan

T = TypeVar("T")

#: The most clients one page holds.
MAX_PER_PAGE = 500
#: The longest description and search text the service takes (a description is free text).
DESCRIPTION_MAX = 2000
SEARCH_MAX = 200
#: The longest secret :meth:`ClientService.verify_secret` looks at (bcrypt reads 72 bytes; generated
#: secrets are shorter): anything longer cannot be right.
SECRET_MAX = 1024
#: How many clients :meth:`ClientService.list_clients` reads at a time when ``can_manage`` filters.
BATCH = 500

# The codes of :class:`ServiceError` (stable: the admin API and the portal answer with them).
INVALID_INPUT = "invalid_input"
NOT_FOUND = "not_found"
NOT_PERMITTED = "not_permitted"
LAST_CREDENTIAL = "last_credential"
TOO_MANY_CREDENTIALS = "too_many_credentials"
UNKNOWN_PLAN = "unknown_plan"
PLAN_NOT_CONFIGURED = "plan_not_configured"
PLAN_LIMITS_UNAVAILABLE = "plan_limits_unavailable"
#: Every code of :class:`ServiceError` with its HTTP status.
CODES = {
    INVALID_INPUT: 400,
    UNKNOWN_PLAN: 400,
    NOT_PERMITTED: 403,
    NOT_FOUND: 404,
    LAST_CREDENTIAL: 409,
    TOO_MANY_CREDENTIALS: 409,
    PLAN_NOT_CONFIGURED: 409,
    PLAN_LIMITS_UNAVAILABLE: 503,
}


class ServiceError(ClientAuthError):
    """A request the service refuses; nothing was changed.

    ``code`` is stable (``invalid_input``, ``not_found``, ``not_permitted``, ``last_credential``,
    ``too_many_credentials``, ``unknown_plan``), ``status`` the HTTP status a front end answers with
    (400, 403, 404, 409), ``message`` one line for a person (never a secret), ``field`` the input it
    is about when there is one.
    """

    def __init__(self, code: str, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.field = field

    @classmethod
    def invalid(cls, field: str, message: str) -> ServiceError:
        return cls(INVALID_INPUT, 400, message, field=field)

    @classmethod
    def not_found(cls, client_id: str) -> ServiceError:
        return cls(NOT_FOUND, 404, f"no client with ID {client_id!r}")

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.status}, {self.message!r})"


@dataclass(frozen=True)
class Created:
    """A new credential, secret or client ID: the client seen through it, and the secret, this once.

    ``secret`` is ``None`` for an ID-only credential and after :meth:`ClientService.reset_client_id`
    (which keeps the secret and sets ``previous_client_id``). Never in a ``repr``.
    """

    record: ClientRecord
    secret: str | None = field(default=None, repr=False)
    previous_client_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape: the client, plus ``client_secret`` (or ``previous_client_id``)."""
        if self.previous_client_id is not None:
            return {**self.record.to_dict(), "previous_client_id": self.previous_client_id}
        return {**self.record.to_dict(), "client_secret": self.secret}


@dataclass(frozen=True)
class ClientPage:
    """One page of a client listing: ``items`` and where they are among ``total`` clients."""

    items: list[ClientRecord]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": [record.to_dict() for record in self.items],
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "pages": self.pages,
        }


def credentials_dict(record: ClientRecord) -> list[dict[str, Any]]:
    """Every credential of the client (the ``credentials list --json`` shape)."""
    now = utcnow()
    return [c.to_dict(enabled=record.enabled, now=now) for c in record.credentials]


def deleted_dict(client_id: str) -> dict[str, Any]:
    return {"client_id": client_id, "deleted": True}


def revoked_dict(client_id: str) -> dict[str, Any]:
    return {"client_id": client_id, "revoked": True}


def _text(name: str, value: Any, maximum: int) -> str:
    if not isinstance(value, str):
        raise ServiceError.invalid(name, f"{name} must be a string")
    if len(value) > maximum:
        raise ServiceError.invalid(name, f"{name} must be at most {maximum} characters")
    return value


def _checked(name: str, check: Callable[[str], str], value: Any) -> str:
    """One of the store's checks (``check_name``, ``check_label``, ``check_role``) as a ServiceError."""
    if not isinstance(value, str):
        raise ServiceError.invalid(name, f"{name} must be a string")
    try:
        return check(value)
    except ValueError as exc:
        raise ServiceError.invalid(name, str(exc)) from None


def _roles(name: str, values: Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, (list, tuple, set, frozenset)):
        raise ServiceError.invalid(name, f"{name} must be a list of role names")
    return [_checked(name, check_role, v) for v in values]


def _checked_count(roles: list[str]) -> None:
    try:
        check_role_count(roles)
    except ValueError as exc:
        raise ServiceError.invalid("roles", str(exc)) from None


def _future(name: str, value: Any) -> datetime | None:
    """An expiry: ``None`` or an aware datetime after now (to stop a credential now, revoke it)."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ServiceError.invalid(name, f"{name} must be a date and time with a time zone")
    if value <= utcnow():
        raise ServiceError.invalid(
            name,
            f"{name} {value.isoformat(timespec='seconds')} is in the past; to stop a credential now, revoke it "
            "or disable the client",
        )
    return value


class ClientService:
    """What ``actor`` may do to the clients of one app (``state``: ``ClientAuth.state(app)``).

    ``can_manage(record) -> bool`` limits the clients the actor sees and changes (``None``: all).
    A client it refuses is reported exactly as a missing one (404 ``not_found``), so a listing,
    a lookup or an audit view never tells one actor about another's clients. Every change is
    written to the audit log with ``actor``.

    ``scope``: an SQL condition on ``clientauth_clients`` (:data:`.models.clients_table`) that the
    actor's clients meet, e.g. ``clients_table.c.description == f"owner:{user}"``. Clients outside
    it are not the actor's either, and listings filter by it in SQL, so that ``can_manage`` is
    asked only about the clients in scope (with 10,000 clients, the difference between reading
    them all and reading a page). ``can_manage`` stays the rule: keep the two consistent.
    """

    def __init__(
        self,
        state: ClientAuthState,
        *,
        actor: str | None,
        can_manage: Callable[[ClientRecord], bool] | None = None,
        scope: ColumnElement[bool] | None = None,
    ) -> None:
        self.state = state
        self.store = state.store
        self.actor = actor
        self.can_manage = can_manage
        self.scope = scope
        self.max_credentials: int | None = state.settings.max_credentials

    def __repr__(self) -> str:
        return f"<ClientService actor={self.actor!r}>"

    def _may(self, record: ClientRecord) -> bool:
        return self.can_manage is None or bool(self.can_manage(record))

    # -- reads ------------------------------------------------------------------------
    def get(self, client_id: str) -> ClientRecord:
        """The client of ``client_id`` (any of its IDs); ``not_found`` if there is none or it is not the actor's."""
        if not isinstance(client_id, str) or not client_id:
            raise ServiceError.invalid("client_id", "client_id must be a non-empty string")
        try:
            record = self.store.require(client_id)
        except ClientNotFound:
            raise ServiceError.not_found(client_id) from None
        if not self._may(record) or (
            self.scope is not None and not self.store.find_clients(pks=[record.pk], where=self.scope, limit=1)
        ):
            raise ServiceError.not_found(client_id)
        return record

    def list_clients(
        self, *, search: str = "", status: str | None = None, page: int = 1, per_page: int = 50
    ) -> ClientPage:
        """One page of the clients the actor may manage, in the order they were created.

        ``search``: a substring (any case) of the name or of a client ID; ``status``: ``"enabled"``
        or ``"disabled"``. The filter, the order, the count and the page are SQL (``LIMIT`` /
        ``OFFSET``). With ``can_manage``, which is Python, the filtered clients are read in
        batches of :data:`BATCH` and each is asked, so ``total`` and the pages count only the
        actor's clients: the cost grows with the clients that match the filter, never the answer.
        """
        search = _text("search", search, SEARCH_MAX).strip()
        if status is not None and status not in STATUSES:
            raise ServiceError.invalid("status", f"status must be one of {', '.join(STATUSES)}")
        for name, value, high in (("page", page, None), ("per_page", per_page, MAX_PER_PAGE)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high and value > high):
                bounds = f"between 1 and {high}" if high else "of at least 1"
                raise ServiceError.invalid(name, f"{name} must be a whole number {bounds}")
        offset = (page - 1) * per_page
        if self.can_manage is None:
            total = self.store.count_clients(search=search, status=status, where=self.scope)
            items = (
                self.store.find_clients(search=search, status=status, limit=per_page, offset=offset, where=self.scope)
                if offset < total
                else []
            )
            return ClientPage(items, total, page, per_page)
        items, total = [], 0
        for record in self._walk(search=search, status=status):
            if self._may(record):
                if offset <= total < offset + per_page:
                    items.append(record)
                total += 1
        return ClientPage(items, total, page, per_page)

    def _walk(self, *, search: str = "", status: str | None = None) -> Iterator[ClientRecord]:
        """Every client that matches, read :data:`BATCH` at a time (keyset: no growing OFFSET)."""
        after = 0
        while True:
            batch = self.store.find_clients(search=search, status=status, limit=BATCH, after=after, where=self.scope)
            yield from batch
            if len(batch) < BATCH:
                return
            after = batch[-1].pk

    def all_clients(self) -> Iterator[ClientRecord]:
        """Every client the actor may manage, in the order they were created (``flask clients list``)."""
        return (record for record in self._walk() if self._may(record))

    def audit(self, client_id: str | None = None, *, since: datetime | None = None) -> list[AuditRecord]:
        """The audit log, oldest first: all of it or one client's (any of its IDs, past ones included).

        With ``can_manage``, only entries about clients that exist and that the actor may manage
        (a deleted client's entries are no one's: shown to unrestricted actors only, as the CLI).
        """
        if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
            raise ServiceError.invalid("since", "since must be a date and time with a time zone")
        if client_id is not None and (self.can_manage is not None or self.scope is not None):
            self.get(client_id)  # not_found unless it exists and is the actor's
        try:
            entries = self.store.audit(client_id, since=since)
        except ClientNotFound:
            raise ServiceError.not_found(str(client_id)) from None
        if (self.can_manage is None and self.scope is None) or client_id is not None:
            return entries
        pks = sorted({e.client_pk for e in entries if e.client_pk is not None})
        mine: set[int] = set()
        for start in range(0, len(pks), BATCH):
            chunk = pks[start : start + BATCH]
            found = self.store.find_clients(pks=chunk, limit=len(chunk), where=self.scope)
            mine.update(r.pk for r in found if self._may(r))
        return [e for e in entries if e.client_pk in mine]

    def verify_secret(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is the credential's (or the previous one, in its grace period).

        Nothing is written, not even to the audit log; the secret is never kept.
        """
        self.get(client_id)
        if not isinstance(secret, str) or not secret:
            raise ServiceError.invalid("secret", "secret must be a non-empty string")
        if len(secret) > SECRET_MAX:
            return False
        return self.store.verify_secret(client_id, secret)

    # -- writes -----------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        description: str = "",
        plan: str | None = None,
        roles: Sequence[str] = (),
        label: str = "",
        expires_at: datetime | None = None,
        with_secret: bool = True,
    ) -> Created:
        """Register a client with one credential; the secret is in the result, this once.

        With ``can_manage``, the client as it would be is asked first: one the actor could not
        manage is refused (403 ``not_permitted``), never created out of its reach.
        """
        name = _checked("name", check_name, name)
        description = _text("description", description, DESCRIPTION_MAX)
        role_list = sorted(set(_roles("roles", roles)))
        _checked_count(role_list)
        label = _checked("label", check_label, label)
        expires_at = _future("expires_at", expires_at)
        plan = self._configured_plan(plan)
        if self.can_manage is not None:
            now = utcnow()
            credential = CredentialRecord(client_id="", label=label, created_at=now, expires_at=expires_at)
            draft = ClientRecord(
                client_id="",
                name=name,
                description=description,
                enabled=True,
                created_at=now,
                updated_at=now,
                roles=tuple(role_list),
                credentials=(credential,),
                plan=plan,
            )
            if not self._may(draft):
                raise ServiceError(NOT_PERMITTED, 403, f"you may not create a client named {name!r}")
        record, secret = self.store.create(
            name,
            description=description,
            with_secret=bool(with_secret),
            roles=role_list,
            label=label,
            expires_at=expires_at,
            plan=plan,
            actor=self.actor,
        )
        return Created(record, secret)

    def add_credential(
        self, client_id: str, *, label: str = "", expires_at: datetime | None = None, with_secret: bool = True
    ) -> Created:
        """Another client ID (and secret) for the client; at most ``CLIENTAUTH_MAX_CREDENTIALS`` (409)."""
        self.get(client_id)
        label = _checked("label", check_label, label)
        expires_at = _future("expires_at", expires_at)
        try:
            record, secret = self.store.add_credential(
                client_id,
                label=label,
                expires_at=expires_at,
                with_secret=bool(with_secret),
                actor=self.actor,
                max_credentials=self.max_credentials,
            )
        except TooManyCredentials as exc:
            raise ServiceError(TOO_MANY_CREDENTIALS, 409, str(exc)) from None
        except ClientNotFound:
            raise ServiceError.not_found(client_id) from None
        return Created(record, secret)

    def revoke_credential(self, client_id: str) -> ClientRecord:
        """Delete one credential (not the client's last: 409 ``last_credential``); the client as it was."""
        record = self.get(client_id)
        if len(record.credentials) == 1:
            raise ServiceError(LAST_CREDENTIAL, 409, str(LastCredential.of(client_id, record.name)))
        try:
            return self.store.revoke_credential(client_id, actor=self.actor)
        except LastCredential as exc:  # another went meanwhile
            raise ServiceError(LAST_CREDENTIAL, 409, str(exc)) from None
        except ClientNotFound:
            raise ServiceError.not_found(client_id) from None

    def reset_secret(self, client_id: str, *, grace: timedelta | None = None) -> Created:
        """A new generated secret for the credential; the old one stops now, or after ``grace``."""
        self.get(client_id)
        if grace is not None and (not isinstance(grace, timedelta) or not timedelta(0) < grace <= MAX_DURATION):
            raise ServiceError.invalid(
                "grace", f"grace must be a duration longer than zero, at most {MAX_DURATION.days}d"
            )
        record, secret = self._write(
            client_id, lambda: self.store.reset_secret(client_id, grace=grace, actor=self.actor)
        )
        return Created(record, secret)

    def set_secret(self, client_id: str, secret: str) -> ClientRecord:
        """Set a chosen secret (at least ``CLIENTAUTH_MIN_SECRET_LENGTH``), hashed with bcrypt."""
        self.get(client_id)
        if not isinstance(secret, str):
            raise ServiceError.invalid("secret", "secret must be a string")
        problem = check_secret_format(secret, min_length=self.state.min_secret_length)
        if problem is not None:
            raise ServiceError.invalid("secret", problem)
        try:
            return self._write(client_id, lambda: self.store.set_secret(client_id, secret, actor=self.actor))
        except ValueError as exc:  # the store's own check (the prefix of generated secrets)
            raise ServiceError.invalid("secret", str(exc)) from None

    def reset_client_id(self, client_id: str) -> Created:
        """A new ID for the credential (its secret is kept; the old ID stops working)."""
        self.get(client_id)
        record = self._write(client_id, lambda: self.store.reset_client_id(client_id, actor=self.actor))
        return Created(record, None, previous_client_id=client_id)

    def set_expiry(self, client_id: str, expires_at: datetime | None) -> ClientRecord:
        """When the credential stops working (``None``: never; a time already past is refused)."""
        self.get(client_id)
        expires_at = _future("expires_at", expires_at)
        return self._write(client_id, lambda: self.store.set_expiry(client_id, expires_at, actor=self.actor))

    def set_enabled(self, client_id: str, enabled: bool) -> ClientRecord:
        """Enable or disable the client, with all of its credentials."""
        self.get(client_id)
        if not isinstance(enabled, bool):
            raise ServiceError.invalid("enabled", "enabled must be true or false")
        return self._write(client_id, lambda: self.store.set_enabled(client_id, enabled, actor=self.actor))

    def set_roles(self, client_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> ClientRecord:
        """Add and remove roles; a role both added and removed is refused."""
        self.get(client_id)
        added, removed = _roles("add", add), _roles("remove", remove)
        both = sorted(set(added) & set(removed))
        if both:
            raise ServiceError.invalid("roles", f"a role cannot be both added and removed: {', '.join(both)}")
        try:
            return self._write(
                client_id, lambda: self.store.set_roles(client_id, add=added, remove=removed, actor=self.actor)
            )
        except ValueError as exc:  # more roles than a client may hold
            raise ServiceError.invalid("roles", str(exc)) from None

    def set_plan(self, client_id: str, plan: str | None) -> ClientRecord:
        """Put the client on a configured plan (``None``: off its plan, the default plan applies)."""
        self.get(client_id)
        plan = self._configured_plan(plan)
        return self._write(client_id, lambda: self.store.set_plan(client_id, plan, actor=self.actor))

    def plans(self) -> list[dict[str, Any]]:
        """The configured plans with how many clients are on each (the ``plans --json`` shape).

        With ``can_manage``, the counts are of the actor's clients only.
        """
        if self.can_manage is None and self.scope is None:
            counts = self.store.plan_counts()
        else:
            counts = dict(Counter(record.plan for record in self.all_clients()))
        return self.state.plans.report(counts)

    def plan_usage(self, client_id: str) -> tuple[ClientRecord, Plan | None, list[LimitUsage]]:
        """The client, its plan (``None``: not limited) and, for each of the plan's limits, what it used.

        ``plan_not_configured`` (409) when the client's plan is no longer configured (its requests
        get 403 ``not_in_plan``), ``plan_limits_unavailable`` (503) when the counters cannot be read.
        """
        from .planlimits import PlanLimitsUnavailable

        record = self.get(client_id)
        try:
            plan, rows = self.state.usage(record)
        except UnknownPlan as exc:
            raise ServiceError(
                PLAN_NOT_CONFIGURED,
                409,
                f"the client's plan {exc.name!r} is not configured: its requests are refused with 403 not_in_plan",
            ) from None
        except PlanLimitsUnavailable as exc:
            raise ServiceError(PLAN_LIMITS_UNAVAILABLE, 503, f"{exc}; check CLIENTAUTH_RATELIMIT_STORAGE_URI") from None
        return record, plan, rows

    def usage(self, client_id: str) -> list[dict[str, Any]]:
        """For each limit of the client's plan: limit, used, remaining, reset (the ``usage --json`` shape)."""
        return [row.to_dict() for row in self.plan_usage(client_id)[2]]

    def _configured_plan(self, plan: str | None) -> str | None:
        """``plan`` when it is configured (``None`` stays ``None``); ``unknown_plan`` otherwise."""
        if plan is None:
            return None
        try:
            check_plan_name(plan)
            self.state.plans.require(plan)
        except ValueError as exc:
            raise ServiceError.invalid("plan", str(exc)) from None
        except UnknownPlan as exc:
            raise ServiceError(UNKNOWN_PLAN, 400, str(exc), field="plan") from None
        return plan

    def delete(self, client_id: str) -> ClientRecord:
        """Delete the client with all of its credentials; returns it as it was."""
        self.get(client_id)
        return self._write(client_id, lambda: self.store.delete(client_id, actor=self.actor))

    def record_leak(self, secret: str, *, disable: bool) -> dict[str, Any]:
        """What a leaked secret belongs to, audited as ``leaked`` when it is a client's (the actor's,
        with ``can_manage``); with ``disable``, the client is disabled if the secret works.

        Returns ``client_id``, ``name``, ``works``, ``enabled``, ``disabled_now`` (``None`` when
        the secret is no client's); never the secret.
        """
        record = self.store.find_by_secret(secret)
        if record is not None:
            try:
                record = self.get(record.client_id)
            except ServiceError:
                record = None
        # an old secret past its grace period still has its hash stored, but no longer works
        works = record is not None and self.store.verify_secret(record.client_id, secret)
        disabled_now = False
        if record is not None:  # a known leak is audited, whether or not it is acted on
            known, disabled_now = record, works and disable and record.enabled
            record = self._write(
                known.client_id,
                lambda: self.store.record_leak(known.client_id, disable=works and disable, actor=self.actor),
            )
        return {
            "client_id": None if record is None else record.client_id,
            "name": None if record is None else record.name,
            "works": works,
            "enabled": None if record is None else record.enabled,
            "disabled_now": disabled_now,
        }

    def prune_audit(self, before: datetime) -> int:
        """Delete the audit entries (of every client) older than ``before``; how many went.

        Only for an actor without ``can_manage``: the entries are everyone's.
        """
        if self.can_manage is not None or self.scope is not None:
            raise ServiceError(NOT_PERMITTED, 403, "pruning the audit log needs an actor who may manage every client")
        if not isinstance(before, datetime) or before.tzinfo is None:
            raise ServiceError.invalid("before", "before must be a date and time with a time zone")
        return self.store.prune_audit(before)

    def _write(self, client_id: str, change: Callable[[], T]) -> T:
        """Run a store change; a client gone since :meth:`get` is ``not_found``."""
        try:
            return change()
        except ClientNotFound:
            raise ServiceError.not_found(client_id) from None
