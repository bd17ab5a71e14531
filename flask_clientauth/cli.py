"""``flask clients ...``: operators' commands to manage clients and inspect the enforcement."""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo

from .keys import PepperMissing, check_secret_format, find_secrets
from .plans import Plans, UnknownPlan, check_plan_name
from .routing import RouteInfo, RouteTable
from .settings import ConfigurationError
from .spec import SpecError, error_lines, load_spec, read_document, unrequired_keys_warning
from .store import (
    COMMAND_FAULTS,
    ClientNotFound,
    ClientRecord,
    ClientStore,
    CredentialRecord,
    DuplicateClientId,
    LastCredential,
    StoreBusy,
    StoreError,
    check_label,
    check_role,
    store_error,
    utcnow,
)
from .timespec import DATE_HELP, DURATION_HELP, parse_datetime, parse_duration

if TYPE_CHECKING:  # the extension imports this module to register the group: no cycle at run time
    from .extension import ClientAuthState

F = TypeVar("F", bound=Callable[..., Any])

clients = AppGroup("clients", help="Manage API clients (client IDs and secrets) of Flask-ClientAuth.")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _state() -> ClientAuthState:
    state = current_app.extensions.get("clientauth")
    if state is None:
        raise click.ClickException("Flask-ClientAuth is not initialised on this app (ClientAuth(app)).")
    return state  # type: ignore[no-any-return]


def _store() -> ClientStore:
    return _state().store


def _actor() -> str:
    """Who runs the command, for the audit log: the OS user name, else the numeric user ID."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):  # no USER/LOGNAME and no passwd entry (a container's random uid)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _errors(f: F) -> F:
    """Turn store faults and unknown IDs into one-line messages and a non-zero exit."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ClientNotFound as exc:
            raise click.ClickException(f"no client with ID {exc.args[0]!r}") from None
        except (DuplicateClientId, LastCredential, PepperMissing, UnknownPlan) as exc:
            raise click.ClickException(str(exc)) from None
        except StoreBusy:
            raise click.ClickException(
                "the client store is busy: a lock held by another transaction did not clear in time; "
                "nothing was changed, try again"
            ) from None
        except StoreError as exc:
            if exc.fault in COMMAND_FAULTS:  # the message names the command to run
                raise click.ClickException(str(exc)) from None
            where = "the app's database URI" if _state().extension.db is not None else "CLIENTAUTH_DATABASE_URI"
            raise click.ClickException(f"{exc}; check {where}") from None
        except (SpecError, ConfigurationError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


# -- option values ----------------------------------------------------------------------
class _Parsed(click.ParamType):  # type: ignore[type-arg]  # generic in newer click only
    """A click type from one of :mod:`.timespec`'s parsers (its ValueError becomes a usage error)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _Parsed("duration", parse_duration)
DATE = _Parsed("date", parse_datetime)


def _checked(check: Callable[[str], str]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback applying one of the store's checks (``check_label``, ``check_role``) up front."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            if isinstance(value, tuple):
                return tuple(check(v) for v in value)
            return None if value is None else check(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None

    return callback


label_option = click.option(
    "--label", default="", callback=_checked(check_label), help="A name for this credential (e.g. 'ci', 'laptop')."
)
no_secret_option = click.option(
    "--no-secret", is_flag=True, help="An ID-only credential: SECRET is 'none' (set one later with 'set-secret')."
)
expires_option = click.option(
    "--expires", type=DATE, metavar="DATE", help=f"When the credential stops working (401): {DATE_HELP}."
)
plan_option = click.option(
    "--plan",
    metavar="PLAN",
    callback=_checked(check_plan_name),
    help="The client's plan (see 'flask clients plans'); without one, the default plan applies.",
)
ttl_option = click.option(
    "--ttl", type=DURATION, metavar="DURATION", help=f"How long from now the credential works: {DURATION_HELP}."
)


def _expiry(at: datetime | None, ttl: timedelta | None, at_option: str) -> datetime | None:
    """The expiry that ``--expires``/``--at`` or ``--ttl`` give; a time already past is refused."""
    if at is not None and ttl is not None:
        raise click.UsageError(f"give {at_option} or --ttl, not both")
    now = utcnow()
    if ttl is not None:
        return now + ttl
    if at is not None and at <= now:
        raise click.BadParameter(
            f"{_time(at)} is in the past; to stop a credential now, revoke it ('credentials revoke') "
            "or disable the client",
            param_hint=f"'{at_option}'",
        )
    return at


# -- output -----------------------------------------------------------------------------
def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _time(value: datetime | None, none: str = "-") -> str:
    return none if value is None else value.isoformat(timespec="seconds")


def _short(value: datetime | None) -> str:
    """A time in a table column: UTC to the minute (``show`` and ``--json`` give it exactly)."""
    return "-" if value is None else value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns aligned to their widest cell; the last one is not padded (free text)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip())


#: The columns of one credential in ``list`` and ``credentials list``.
_CREDENTIAL_HEADER = ("CLIENT ID", "ENABLED", "SECRET", "EXPIRES", "LAST USED")


def _credential_cells(record: ClientRecord, credential: CredentialRecord, now: datetime) -> tuple[str, ...]:
    return (
        credential.client_id,
        "yes" if record.enabled and not credential.expired(now) else "no",
        "set" if credential.has_secret else "none",
        _short(credential.expires_at),
        _short(credential.last_used_at),
    )


def _echo_credentials(record: ClientRecord) -> None:
    now = utcnow()
    rows = [(*_credential_cells(record, c, now), c.label or "-") for c in record.credentials]
    _echo_table((*_CREDENTIAL_HEADER, "LABEL"), rows)


def _echo_client(record: ClientRecord, *, credentials: bool = False) -> None:
    """The client as seen through ``record.client_id``; with ``credentials``, all of them below."""
    credential, now = record.credential, utcnow()
    click.echo(f"Client ID:   {record.client_id}")
    click.echo(f"Name:        {record.name}")
    if record.description:
        click.echo(f"Description: {record.description}")
    click.echo(f"Enabled:     {'yes' if record.enabled else 'no'}")
    click.echo(f"Secret:      {'set' if record.has_secret else 'none'}")
    if credential.label:
        click.echo(f"Label:       {credential.label}")
    click.echo(f"Roles:       {', '.join(record.roles) or 'none'}")
    click.echo(f"Plan:        {_plan_text(record.plan)}")
    expired = " (expired: its requests get 401)" if credential.expired(now) else ""
    click.echo(f"Expires:     {_time(credential.expires_at, 'never')}{expired}")
    grace = credential.previous_secret_until
    if grace is not None and grace > now:
        click.echo(f"Old secret:  works until {_time(grace)} (reset-secret --grace)")
    click.echo(f"Last used:   {_time(record.last_used_at, 'never')}")
    click.echo(f"Created:     {_time(record.created_at)}")
    click.echo(f"Updated:     {_time(record.updated_at)}")
    if credentials:
        click.echo(f"\nCredentials ({len(record.credentials)}):")
        _echo_credentials(record)


def _configured_plans() -> Plans | None:
    """The configured plans, ``None`` when they cannot be built (the reason is the start-up error)."""
    try:
        return _state().plans
    except (SpecError, ConfigurationError):
        return None


def _plan_text(plan: str | None) -> str:
    """The client's plan as ``show`` gives it, saying what a missing or unknown one means."""
    plans = _configured_plans()
    if plan is None:
        if plans is not None and plans.default is not None:
            return f"none (the default plan, {plans.default.name}, applies)"
        return "none (not limited)"
    if plans is not None and plan not in plans:
        return f"{plan} (not configured: its requests are refused with 403 not_in_plan)"
    return plan


def _require_plan(plan: str) -> None:
    """Refuse, changing nothing, a plan that is not configured (the message lists the configured ones)."""
    _state().plans.require(plan)


def _echo_secret(record: ClientRecord, secret: str | None, as_json: bool) -> None:
    """A new credential or secret: the record, and the secret once (``None``: an ID-only credential)."""
    if as_json:
        _echo_json({**record.to_dict(), "client_secret": secret})
        return
    _echo_client(record)
    if secret is not None:
        click.echo(f"Client secret: {secret}")
        click.echo("Store the secret now: it is kept only as a hash and cannot be shown again.", err=True)


def _read_secret(command: str, *, confirm: bool) -> str:
    """A secret from a hidden prompt on a terminal, else the first line of stdin; never from argv."""
    if sys.stdin is not None and sys.stdin.isatty():
        return str(click.prompt("Secret", hide_input=True, confirmation_prompt=confirm))
    secret = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not secret:
        raise click.ClickException(
            "no secret given: standard input is not a terminal and its first line is empty; pipe the secret in "
            f"(printf '%s\\n' \"$SECRET\" | flask clients {command} ID) or run it in a terminal"
        )
    return secret


def _confirm(question: str, refused: str, flag: str = "--yes") -> None:
    """Ask on stderr (stdout holds only the result, e.g. ``--json``); refuse when nobody can answer."""
    try:
        if sys.stdin is None:  # closed (``<&-``): input() would raise RuntimeError
            raise click.Abort()
        confirmed = click.confirm(question, err=True)
    except click.Abort:  # end of input: nobody answered (no terminal, stdin empty or closed)
        raise click.ClickException(
            f"{refused}: no answer to the confirmation question (standard input is not a terminal); {flag}"
        ) from None
    if not confirmed:
        raise click.Abort()


# -- commands ---------------------------------------------------------------------------
@clients.command("init-db")
@_errors
def init_db() -> None:
    """Create or upgrade the client tables; says "created", "upgraded" or "already up to date".

    With the extension's own engine it runs the shipped migrations. With ``ClientAuth(app, db=db)``
    the tables belong to the app's migrations: it creates them only where none of the app's
    revisions does, and otherwise names the ``flask db`` command to run.
    """
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from .migrate import SchemaError, init_app_tables, init_own_tables, needs_include_object

    state = _state()
    engine = state.store.engine
    db = state.extension.db
    migrate = current_app.extensions.get("migrate")
    try:
        if db is None:
            message = init_own_tables(engine)
        else:
            directory = migrate.directory if migrate is not None and getattr(migrate, "db", None) is db else None
            message = init_app_tables(engine, db.metadata, directory)
    except SQLAlchemyError as exc:  # as the store does: no SQL, no values in the message
        raise store_error(exc, engine.url) from None
    except (CommandError, SchemaError) as exc:  # e.g. a revision this version does not know
        raise click.ClickException(f"cannot migrate the client tables: {exc}") from None
    click.echo(message)
    if db is None and migrate is not None and needs_include_object(engine, migrate):
        click.echo(
            "Note: the app's Flask-Migrate works on this database too: pass it our hook, "
            "`Migrate(app, db, include_object=flask_clientauth.migrate.include_object)`, "
            "so that `flask db migrate` leaves the client tables alone.",
            err=True,
        )


@clients.command("create")
@click.argument("name")
@click.option("--description", default="", help="Free text shown by 'show' and 'list --json'.")
@no_secret_option
@label_option
@click.option(
    "--role", "roles", multiple=True, metavar="ROLE", callback=_checked(check_role), help="A role (repeat for more)."
)
@plan_option
@expires_option
@ttl_option
@json_option
@_errors
def create(
    name: str,
    description: str,
    no_secret: bool,
    label: str,
    roles: tuple[str, ...],
    plan: str | None,
    expires: datetime | None,
    ttl: timedelta | None,
    as_json: bool,
) -> None:
    """Register a client named NAME with one credential; prints its client ID and secret once.

    The new client gets a generated CLIENT ID, is ENABLED, and has a generated SECRET (only its
    hash is stored); it EXPIRES never unless --expires or --ttl says when, is LAST USED never
    until its first request, has the ROLES of --role, the PLAN of --plan (else "-": the default
    plan applies) and the LABEL of --label. That is how 'list' shows it: CLIENT ID, ENABLED yes,
    SECRET set, EXPIRES, LAST USED, ROLES, PLAN, LABEL, NAME.
    """
    expires_at = _expiry(expires, ttl, "--expires")
    if plan is not None:
        _require_plan(plan)
    try:
        record, secret = _store().create(
            name,
            description=description,
            with_secret=not no_secret,
            roles=roles,
            label=label,
            expires_at=expires_at,
            plan=plan,
            actor=_actor(),
        )
    except ValueError as exc:  # the name: the options were checked as they were parsed
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    _echo_secret(record, secret, as_json)


@clients.command("list")
@json_option
@_errors
def list_(as_json: bool) -> None:
    """List every client with its credentials, one row each (never secrets or hashes)."""
    records = _store().list()
    if as_json:
        _echo_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("No clients. Create one with 'flask clients create NAME'.")
        return
    now = utcnow()
    rows = [
        (*_credential_cells(r, c, now), ",".join(r.roles) or "-", r.plan or "-", c.label or "-", r.name)
        for r in records
        for c in r.credentials
    ]
    _echo_table((*_CREDENTIAL_HEADER, "ROLES", "PLAN", "LABEL", "NAME"), rows)


@clients.command("show")
@click.argument("client_id")
@json_option
@_errors
def show(client_id: str, as_json: bool) -> None:
    """Show one client, seen through CLIENT_ID, with all of its credentials."""
    record = _store().require(client_id)
    if as_json:
        _echo_json(record.to_dict())
    else:
        _echo_client(record, credentials=True)


@clients.group("credentials")
def credentials_group() -> None:
    """A client's credentials: several client ID + secret pairs for one client (add, list, revoke)."""


@credentials_group.command("add")
@click.argument("client_id")
@label_option
@expires_option
@ttl_option
@no_secret_option
@json_option
@_errors
def credentials_add(
    client_id: str, label: str, expires: datetime | None, ttl: timedelta | None, no_secret: bool, as_json: bool
) -> None:
    """Give the client of CLIENT_ID another credential: a new client ID and secret, shown once.

    The client's other credentials keep working.
    """
    expires_at = _expiry(expires, ttl, "--expires")
    record, secret = _store().add_credential(
        client_id, label=label, expires_at=expires_at, with_secret=not no_secret, actor=_actor()
    )
    _echo_secret(record, secret, as_json)


@credentials_group.command("list")
@click.argument("client_id")
@json_option
@_errors
def credentials_list(client_id: str, as_json: bool) -> None:
    """Every credential of the client of CLIENT_ID (never a secret or a hash)."""
    record = _store().require(client_id)
    if as_json:
        now = utcnow()
        _echo_json([c.to_dict(enabled=record.enabled, now=now) for c in record.credentials])
    else:
        _echo_credentials(record)


@credentials_group.command("revoke")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@_errors
def credentials_revoke(client_id: str, yes: bool, as_json: bool) -> None:
    """Delete the credential CLIENT_ID: that pair stops working, the client's others keep working.

    The client's last credential cannot be revoked: disable or delete the client instead.
    """
    store = _store()
    record = store.require(client_id)
    if len(record.credentials) == 1:  # before asking; the store refuses it too, should one go meanwhile
        raise LastCredential.of(client_id, record.name)
    if not yes:
        label = f" ({record.label})" if record.label else ""
        _confirm(
            f"Revoke credential {client_id}{label} of client {record.name!r}?",
            f"credential {client_id} not revoked",
            "pass --yes to revoke without asking",
        )
    record = store.revoke_credential(client_id, actor=_actor())
    if as_json:
        _echo_json({"client_id": client_id, "revoked": True})
    else:
        others = len(record.credentials) - 1
        click.echo(f"Credential {client_id} revoked; client {record.name!r} keeps {others} other credential(s).")


@clients.command("reset-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    type=DURATION,
    metavar="DURATION",
    help=f"Keep the old secret working this long beside the new one ({DURATION_HELP}); "
    "without it, the old secret stops working at once.",
)
@json_option
@_errors
def reset_secret(client_id: str, grace: timedelta | None, as_json: bool) -> None:
    """Give the credential a new secret (same ID), shown once; the new secret works at once.

    The old secret stops working at once, or with --grace when the grace period ends ('show'
    tells when).
    """
    record, secret = _store().reset_secret(client_id, grace=grace, actor=_actor())
    _echo_secret(record, secret, as_json)


@clients.command("set-secret")
@click.argument("client_id")
@json_option
@_errors
def set_secret(client_id: str, as_json: bool) -> None:
    """Set a secret read from a prompt, or from standard input when it is not a terminal."""
    state = _state()
    state.store.require(client_id)
    secret = _read_secret("set-secret", confirm=True)
    problem = check_secret_format(secret, min_length=state.min_secret_length)
    if problem is not None:
        raise click.ClickException(problem)
    record = state.store.set_secret(client_id, secret, actor=_actor())
    if as_json:
        _echo_json(record.to_dict())
    else:
        click.echo(f"Secret set for client {record.client_id}.")


@clients.command("verify-secret")
@click.argument("client_id")
@_errors
def verify_secret(client_id: str) -> None:
    """Check a secret read from a prompt, or from the first line of standard input when it is not a
    terminal (never from an argument): prints "valid" and exits 0, or prints "invalid" and exits 1.

    The previous secret counts as valid during its grace period. The secret is only checked:
    nothing is written, not even to the audit log.
    """
    store = _store()
    record = store.require(client_id)
    secret = _read_secret("verify-secret", confirm=False)
    if not store.verify_secret(client_id, secret):
        click.echo("invalid")
        sys.exit(1)
    click.echo("valid")
    # the secret is right, but requests may still be refused: say so where scripts do not parse
    if not record.enabled:
        click.echo("Note: the client is disabled; its requests get 403.", err=True)
    if record.credential.expired(utcnow()):
        click.echo(f"Note: the credential expired at {_time(record.expires_at)}; its requests get 401.", err=True)


@clients.command("reset-client-id")
@click.argument("client_id")
@json_option
@_errors
def reset_client_id(client_id: str, as_json: bool) -> None:
    """Give the credential CLIENT_ID a new client ID; its secret is kept and the old ID stops working."""
    record = _store().reset_client_id(client_id, actor=_actor())
    if as_json:
        _echo_json({**record.to_dict(), "previous_client_id": client_id})
    else:
        click.echo(f"New client ID: {record.client_id} (was {client_id}); the secret is unchanged.")


@clients.command("expire")
@click.argument("client_id")
@click.option("--at", type=DATE, metavar="DATE", help=f"When the credential stops working: {DATE_HELP}.")
@click.option("--ttl", type=DURATION, metavar="DURATION", help=f"How long from now it works: {DURATION_HELP}.")
@click.option("--never", is_flag=True, help="Remove the expiry.")
@json_option
@_errors
def expire(client_id: str, at: datetime | None, ttl: timedelta | None, never: bool, as_json: bool) -> None:
    """Set when the credential CLIENT_ID stops working (its requests then get 401 credential_expired).

    Give exactly one of --at, --ttl or --never. The client's other credentials keep their own expiry.
    """
    given = [name for name, value in (("--at", at), ("--ttl", ttl), ("--never", never)) if value]
    if len(given) != 1:
        raise click.UsageError(
            "give exactly one of --at DATE, --ttl DURATION or --never" + (f" (got {', '.join(given)})" if given else "")
        )
    record = _store().set_expiry(client_id, None if never else _expiry(at, ttl, "--at"), actor=_actor())
    if as_json:
        _echo_json(record.to_dict())
    elif record.expires_at is None:
        click.echo(f"Credential {record.client_id} never expires.")
    else:
        click.echo(f"Credential {record.client_id} expires at {_time(record.expires_at)}.")


@clients.command("roles")
@click.argument("client_id")
@click.option("--add", multiple=True, metavar="ROLE", callback=_checked(check_role), help="Give the client ROLE.")
@click.option("--remove", multiple=True, metavar="ROLE", callback=_checked(check_role), help="Take ROLE away.")
@json_option
@_errors
def roles(client_id: str, add: tuple[str, ...], remove: tuple[str, ...], as_json: bool) -> None:
    """Print the client's roles, one a line, after adding and removing the ones given.

    Roles are the client's: every credential of it has them. A role listed on an API-key
    requirement in the document, or in ``@auth.require(roles=...)``, is needed to pass it (403).
    """
    store = _store()
    if add or remove:
        try:
            record = store.set_roles(client_id, add=add, remove=remove, actor=_actor())
        except ValueError as exc:  # one role both added and removed
            raise click.UsageError(str(exc)) from None
    else:
        record = store.require(client_id)
    if as_json:
        _echo_json(record.to_dict())
    elif record.roles:
        click.echo("\n".join(record.roles))
    else:
        click.echo(f"Client {record.client_id} has no roles.", err=True)


@clients.command("plan")
@click.argument("client_id")
@click.argument("plan", required=False, callback=_checked(check_plan_name))
@click.option("--none", "no_plan", is_flag=True, help="Take the client off its plan (the default plan applies).")
@json_option
@_errors
def plan(client_id: str, plan: str | None, no_plan: bool, as_json: bool) -> None:
    """Put the client (all of its credentials) on PLAN, or take it off with --none; without
    either, print its plan.

    Every process holds the client to the new plan within CLIENTAUTH_REVOCATION_INTERVAL. A plan
    that is not configured is refused and nothing is changed.
    """
    store = _store()
    if plan is not None and no_plan:
        raise click.UsageError("give PLAN or --none, not both")
    if plan is not None:
        _require_plan(plan)
        record = store.set_plan(client_id, plan, actor=_actor())
    elif no_plan:
        record = store.set_plan(client_id, None, actor=_actor())
    else:
        record = store.require(client_id)
    if as_json:
        _echo_json(record.to_dict())
    else:
        click.echo(f"Client {record.client_id} ({record.name}): plan {_plan_text(record.plan)}")


@clients.command("plans")
@json_option
@_errors
def plans_(as_json: bool) -> None:
    """List the configured plans: limits, operations, and how many clients are on each.

    Clients without a plan are held to the default plan (CLIENTAUTH_DEFAULT_PLAN), or not limited
    when there is none. A plan that clients are on but that is no longer configured is listed too:
    their requests are refused (403 not_in_plan) until they are moved to another plan.
    """
    state = _state()
    report = state.plans.report(state.store.plan_counts())
    if as_json:
        _echo_json(report)
        return
    if not report:
        click.echo("No plans configured (CLIENTAUTH_PLANS, CLIENTAUTH_PRODUCT): clients are not limited.")
        return
    for number, entry in enumerate(report):
        if number:
            click.echo("")
        _echo_plan(entry)
    if state.plans.default is None:
        click.echo("\nNo default plan: clients without a plan are not limited.")


def _echo_plan(entry: Mapping[str, Any]) -> None:
    name = entry["name"]
    if not entry["configured"]:
        click.echo(
            f"{name} (NOT CONFIGURED): {entry['clients']} client(s) on it are refused with 403 not_in_plan; "
            "move them with 'flask clients plan CLIENT_ID PLAN'"
        )
        return
    title = f" - {entry['title']}" if entry["title"] and entry["title"] != name else ""
    click.echo(f"{name}{' (default)' if entry['default'] else ''}{title}")
    by_default = f" (+{entry['clients_by_default']} without a plan)" if entry["default"] else ""
    click.echo(f"  Clients:     {entry['clients']}{by_default}")
    click.echo(f"  Rate limits: {', '.join(entry['rate_limits']) or 'unlimited'}")
    if entry["burst_limits"]:
        click.echo(f"  Burst:       {', '.join(entry['burst_limits'])}")
    operations = entry["operations"]
    click.echo(f"  Operations:  {'all' if operations is None else len(operations)}")
    for label in operations or ():
        own = entry["operation_limits"].get(label)
        limits = "" if own is None else f"  ({', '.join(own) or 'unlimited'}, instead of the plan's rate limits)"
        click.echo(f"    {label}{limits}")
    if entry["source"] != "CLIENTAUTH_PLANS":
        click.echo(f"  From:        {entry['source']}")


@clients.command("audit")
@click.argument("client_id", required=False)
@click.option("--since", type=DATE, metavar="DATE", help=f"Only entries from then on: {DATE_HELP}.")
@click.option(
    "--prune-before",
    type=DATE,
    metavar="DATE",
    help="Delete the entries (of every client) older than DATE instead of listing any.",
)
@json_option
@_errors
def audit(client_id: str | None, since: datetime | None, prune_before: datetime | None, as_json: bool) -> None:
    """List the audit log, oldest first: every lifecycle change, when, which client, and who (the OS
    user for these commands); CLIENT_ID: one client's entries (any of its IDs, also past ones).

    Entries are kept until pruned with --prune-before. They never hold a secret or a hash.
    """
    store = _store()
    if prune_before is not None:
        if client_id is not None or since is not None:
            raise click.UsageError("--prune-before deletes old entries of every client: give it alone")
        if prune_before > utcnow():
            raise click.BadParameter(f"{_time(prune_before)} is in the future", param_hint="'--prune-before'")
        count = store.prune_audit(prune_before)
        if as_json:
            _echo_json({"pruned": count, "before": prune_before.isoformat()})
        else:
            click.echo(f"Deleted {count} audit entries older than {_time(prune_before)}.")
        return
    entries = store.audit(client_id, since=since)
    if as_json:
        _echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo("No audit entries.", err=True)
        return
    rows = [
        (
            _time(e.created_at),
            e.action,
            e.client_id or "-",
            e.actor or "-",
            e.client_name,
            " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(e.detail.items())),
        )
        for e in entries
    ]
    _echo_table(("TIME", "ACTION", "CLIENT ID", "ACTOR", "NAME", "DETAIL"), rows)


def _masked(secret: str, prefix: str) -> str:
    """What ``leaked`` shows of a secret: enough to tell it apart, too little to use."""
    return f"{prefix}...{secret[-4:]}"


@clients.command("leaked")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--disable", is_flag=True, help="Disable each client a working secret belongs to.")
@json_option
@_errors
def leaked(file: str | None, disable: bool, as_json: bool) -> None:
    """Find the secrets of this app's format in FILE (or standard input: a paste, a leak report) and
    name the clients they belong to; with --disable, disable those clients.

    Secrets are shown masked (the prefix and their last 4 characters), never whole. Each one that
    belongs to a client is recorded in the audit log ('leaked'), with --disable or without.
    """
    store = _store()
    if file is None or file == "-":
        if sys.stdin is None:
            raise click.ClickException("no FILE given and standard input is closed")
        if sys.stdin.isatty():
            click.echo("Reading the text from standard input; end it with Ctrl-D.", err=True)
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    else:
        text = Path(file).read_bytes().decode("utf-8", "replace")
    prefix, actor = store.secret_prefix, _actor()
    found = []
    for secret in find_secrets(text, prefix):
        record = store.find_by_secret(secret)
        # an old secret past its grace period still has its hash stored, but no longer works
        works = record is not None and store.verify_secret(record.client_id, secret)
        disabled_now = False
        if record is not None:  # a known leak is audited, whether or not it is acted on
            disabled_now = works and disable and record.enabled
            record = store.record_leak(record.client_id, disable=works and disable, actor=actor)
        found.append(
            {
                "masked_secret": _masked(secret, prefix),
                "client_id": None if record is None else record.client_id,
                "name": None if record is None else record.name,
                "works": works,
                "enabled": None if record is None else record.enabled,
                "disabled_now": disabled_now,
            }
        )
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo(f"No secrets of this app's format ({prefix}...) found.")
        return
    for item in found:
        if item["client_id"] is None:
            state = "belongs to no client"
        else:
            state = f"client {item['client_id']} ({item['name']}): " + (
                "no longer works (an old secret past its grace period)"
                if not item["works"]
                else "disabled now"
                if item["disabled_now"]
                else "works; the client is enabled (--disable disables it)"
                if item["enabled"]
                else "the client is disabled"
            )
        click.echo(f"{item['masked_secret']}  {state}")


def _set_enabled(client_id: str, enabled: bool, as_json: bool) -> None:
    record = _store().set_enabled(client_id, enabled, actor=_actor())
    if as_json:
        _echo_json(record.to_dict())
    else:
        click.echo(f"Client {record.client_id} {'enabled' if enabled else 'disabled'}.")


@clients.command("disable")
@click.argument("client_id")
@json_option
@_errors
def disable(client_id: str, as_json: bool) -> None:
    """Refuse a client's requests (403), through every credential, until it is enabled again."""
    _set_enabled(client_id, False, as_json)


@clients.command("enable")
@click.argument("client_id")
@json_option
@_errors
def enable(client_id: str, as_json: bool) -> None:
    """Accept a disabled client's requests again."""
    _set_enabled(client_id, True, as_json)


@clients.command("delete")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@_errors
def delete(client_id: str, yes: bool, as_json: bool) -> None:
    """Delete a client for good, with all of its credentials."""
    store = _store()
    record = store.require(client_id)
    if not yes:
        others = len(record.credentials) - 1
        also = f" with its {others} other credential(s)" if others else ""
        _confirm(
            f"Delete client {record.client_id} ({record.name}){also}?",
            f"client {record.client_id} not deleted",
            "pass --yes to delete without asking",
        )
    store.delete(client_id, actor=_actor())
    if as_json:
        _echo_json({"client_id": client_id, "deleted": True})
    else:
        click.echo(f"Client {client_id} deleted.")


@clients.command("routes")
@json_option
@_errors
def routes(as_json: bool) -> None:
    """Show every route with the operation it matched and the requirement enforced.

    Exits with status 1, after the listing, when a route cannot be enforced.
    """
    state = _state()
    table = state.table()
    rules = list(current_app.url_map.iter_rules())
    rows, problems = table.inspect(rules)
    rows.sort(key=lambda r: (r.rule, r.method))  # stable: a rule's concrete paths stay under its row
    # one row per rule text and method: of two rules with one text (``/x`` GET, ``/x`` POST, each with
    # Flask's automatic OPTIONS) Werkzeug sends the method to the first registered; the other never runs
    unique: dict[tuple[str, str, str | None], RouteInfo] = {}
    for row in rows:
        unique.setdefault((row.rule, row.method, row.path), row)
    rows = list(unique.values())
    unserved = sorted({op.label for op in table.unserved(rules)})
    refs = {op.label: op.ref for op in table.spec.operations if op.ref}
    undocumented = sorted(
        {
            f"{r.method} {r.rule}" + (f" (path {r.path})" if r.path else "")
            for r in rows
            if r.operation is None and r.method not in ("HEAD", "OPTIONS")
        }
    )
    if as_json:
        _echo_json(
            {
                "spec": table.spec.source,
                "openapi": table.spec.openapi,
                "base_path": table.base_path,
                "routes": [
                    {
                        "rule": r.rule,
                        "path": r.path,
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "operation": r.operation,
                        "requirement": "error" if r.error else r.policy.describe(),
                        "alternatives": [list(a.names) for a in r.policy.alternatives],
                        "roles": [list(a.roles) for a in r.policy.alternatives],
                        "optional": r.policy.optional,
                        "origin": r.policy.origin,
                        "error": r.error,
                        "ref": refs.get(r.operation or ""),
                    }
                    for r in rows
                ],
                "unserved_operations": unserved,
                "undocumented_routes": undocumented,
                "errors": problems,
            }
        )
    else:
        _echo_routes(table, rows, refs, unserved, undocumented, problems)
    if problems:
        sys.exit(1)


def _echo_routes(
    table: RouteTable,
    rows: list[RouteInfo],
    refs: dict[str, str],
    unserved: list[str],
    undocumented: list[str],
    problems: list[str],
) -> None:
    """The human form of ``routes``: one aligned table, then what does not match up."""
    spec = table.spec
    mount = f"; the app is served under {table.base_path} (CLIENTAUTH_BASE_PATH)" if table.base_path else ""
    click.echo(f"Spec: {spec.source} (OpenAPI {spec.openapi}){mount}")
    header = ("METHOD", "RULE", "OPERATION", "REQUIREMENT", "SCHEMES", "FROM")
    cells = [
        (
            r.method,
            f"{r.rule} = {r.path}" if r.path else r.rule,
            r.operation or "-",
            "ERROR (see below)" if r.error else r.policy.describe(),
            " | ".join("+".join(a.names) for a in r.policy.alternatives) or "-",
            (r.policy.origin or "-") + (f" via $ref {refs[r.operation]}" if r.operation in refs else ""),
        )
        for r in rows
    ]
    _echo_table(header, cells)
    sections = (
        ("Spec operations no route serves:", unserved),
        ("Routes the spec does not describe:", undocumented),
        ("Routes that cannot be enforced (every request is refused with 503 until fixed):", problems),
    )
    for title, lines in sections:
        if lines:
            click.echo(f"\n{title}")
            for line in lines:
                click.echo(f"  {line}")


@clients.command("check", with_appcontext=False)
@click.argument("spec_path", required=False, type=click.Path(dir_okay=False))
@json_option
def check(spec_path: str | None, as_json: bool) -> None:
    """Validate the OpenAPI document and report everything found: validator errors, the problems
    Flask-ClientAuth refuses to start with, routes that cannot be enforced, and warnings.

    SPEC_PATH checks that file instead of the app's CLIENTAUTH_SPEC (works even when the app does not
    start). Exits with status 1 when there is an error; warnings alone do not fail.
    """
    report = _check(spec_path)
    if as_json:
        _echo_json(report)
    else:
        _echo_check(report)
    if report["validator_errors"] or report["errors"] or report["route_errors"]:
        sys.exit(1)


def _check(spec_path: str | None) -> dict[str, Any]:
    """What ``check`` reports, as plain data (the ``--json`` form)."""
    report: dict[str, Any] = {
        "spec": spec_path,
        "openapi": None,
        "validator": None,
        "validator_errors": [],
        "errors": [],
        "route_errors": [],
        "warnings": [],
    }
    app: Flask | None = None
    source: Any = spec_path
    root_path: str | None = None
    strict = False
    if spec_path is None:
        try:
            app = click.get_current_context().ensure_object(ScriptInfo).load_app()
        except SpecError as exc:  # init_app refused the document: report it, and validate that file
            report["errors"] = error_lines(exc.source, exc.errors, limit=None)
            report["spec"] = source = exc.source if Path(exc.source).is_file() else None
        else:
            if "clientauth" not in app.extensions:
                raise click.ClickException("Flask-ClientAuth is not initialised on this app (ClientAuth(app)).")
            source, root_path = app.config["CLIENTAUTH_SPEC"], app.root_path
            strict = bool(app.config["CLIENTAUTH_STRICT_NAMES"])
    if source is None:
        return report
    with app.app_context() if app is not None else contextlib.nullcontext():
        try:
            label, document, file = read_document(source, root_path=root_path)
        except SpecError as exc:
            report["spec"], report["errors"] = exc.source, [exc.message]
            return report
        report["spec"] = label
        report["validator"], report["validator_errors"] = _validate(document, file)
        if report["errors"]:
            return report
        try:
            spec = load_spec(source, root_path=root_path, strict_names=strict)
        except SpecError as exc:
            report["errors"] = error_lines(exc.source, exc.errors, limit=None)
            return report
        report["openapi"], report["warnings"] = spec.openapi, list(spec.warnings)
        if app is None:
            return report
        rows, report["route_errors"] = _state().table().inspect(current_app.url_map.iter_rules(), limit=None)
        warning = unrequired_keys_warning(spec, [(f"{r.method} {r.rule}", r.policy) for r in rows if not r.error])
        if warning is not None:
            report["warnings"].append(warning)
    return report


def _validate(document: Mapping[str, Any], file: Path | None) -> tuple[str, list[str]]:
    """Every error openapi-spec-validator finds (never fetching a remote ``$ref``)."""
    try:
        from jsonschema_path.handlers import default_handlers
        from openapi_spec_validator import __version__
        from openapi_spec_validator.shortcuts import get_validator_cls
        from openapi_spec_validator.validation.exceptions import ValidatorDetectError
    except ImportError:
        raise click.ClickException(
            "'flask clients check' needs openapi-spec-validator: pip install 'Flask-ClientAuth[check]'"
        ) from None
    name = f"openapi-spec-validator {__version__}"
    try:
        cls = get_validator_cls(document)
    except ValidatorDetectError:
        return name, ["$: neither 'swagger: \"2.0\"' nor a supported 'openapi' version"]
    local = type(cls.__name__, (cls,), {"resolver_handlers": {"file": default_handlers["file"]}})
    errors = []
    try:
        for error in local(document, base_uri=file.resolve().as_uri() if file is not None else "").iter_errors():
            path = getattr(error, "json_path", "$")
            message = str(error.message).split("\n")[0]  # the rest repeats the schema and the instance
            message = message if len(message) <= 300 else message[:300] + "..."
            errors.append(f"{path}: {message}")
    except Exception as exc:  # e.g. a $ref it cannot resolve: what it found so far, and why it stopped
        errors.append(f"the validator stopped ({type(exc).__name__}: {exc})")
    return name, errors


def _echo_check(report: dict[str, Any]) -> None:
    """The human form of ``check``: each section with every item, then a one-line verdict."""
    version = f" (OpenAPI {report['openapi']})" if report["openapi"] else ""
    click.echo(f"Spec: {report['spec'] or '-'}{version}")
    sections = (
        (f"Validator ({report['validator']})" if report["validator"] else "Validator", report["validator_errors"]),
        ("Flask-ClientAuth refuses the document", report["errors"]),
        ("Routes that cannot be enforced", report["route_errors"]),
        ("Warnings", report["warnings"]),
    )
    for title, lines in sections:
        if lines:
            click.echo(f"\n{title}: {len(lines)}")
            for line in lines:
                click.echo(f"  - {line}")
    failed = sum(len(report[k]) for k in ("validator_errors", "errors", "route_errors"))
    click.echo(f"\n{failed} error(s), {len(report['warnings'])} warning(s)." if failed else "\nNo errors found.")


@clients.command("usage")
@click.argument("client_id")
@json_option
@_errors
def usage(client_id: str, as_json: bool) -> None:
    """For each limit of the client's plan: the limit, how much was used, what remains, when it resets.

    Read from the counters the requests count against (CLIENTAUTH_RATELIMIT_STORAGE_URI): with
    Redis, what every server process counted; with memory:// only this process's, always nothing.
    """
    from .planlimits import PlanLimitsUnavailable
    from .plans import UnknownPlan

    state = _state()
    record = state.store.require(client_id)
    try:
        plan, rows = state.usage(record)
    except UnknownPlan as exc:
        raise click.ClickException(
            f"the client's plan {exc.name!r} is not configured: its requests are refused with 403 not_in_plan"
        ) from None
    except PlanLimitsUnavailable as exc:
        raise click.ClickException(f"{exc}; check CLIENTAUTH_RATELIMIT_STORAGE_URI") from None
    if state.settings.ratelimit_storage_uri.startswith("memory://") and rows:
        click.echo(
            "note: CLIENTAUTH_RATELIMIT_STORAGE_URI is memory://: each server process counts on its own, "
            "this command sees none of it (use Redis to share the counters)",
            err=True,
        )
    if as_json:
        _echo_json([row.to_dict() for row in rows])
        return
    if plan is None:
        click.echo(f"{record.client_id}: no plan; its requests are not limited.")
        return
    click.echo(f"{record.client_id}: plan {plan.name}")
    if not rows:
        click.echo("The plan sets no rate limit.")
        return
    cells = []
    for row in rows:
        data = row.to_dict()
        where = data["operation"] or "all operations"
        reset = "-"
        if data["reset"] is not None:
            at = datetime.fromtimestamp(data["reset"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            reset = f"{at} (in {max(0, data['reset'] - int(time.time()))}s)"
        cells.append((data["limit"], data["scope"], str(row.used), str(row.remaining), reset, where))
    _echo_table(("LIMIT", "SCOPE", "USED", "REMAINING", "RESETS", "APPLIES TO"), cells)
