"""``flask clients ...``: operators' commands to manage clients and inspect the enforcement."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from flask import current_app
from flask.cli import AppGroup

from .extension import ClientAuthState
from .keys import check_secret_format
from .routing import RouteInfo
from .spec import SpecError
from .store import MISSING_TABLES, ClientNotFound, ClientRecord, DuplicateClientId, StoreBusy, StoreError, store_error

F = TypeVar("F", bound=Callable[..., Any])

clients = AppGroup("clients", help="Manage API clients (client IDs and secrets) of Flask-ClientAuth.")

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _state() -> ClientAuthState:
    state = current_app.extensions.get("clientauth")
    if state is None:
        raise click.ClickException("Flask-ClientAuth is not initialised on this app (ClientAuth(app)).")
    return state  # type: ignore[no-any-return]


def _errors(f: F) -> F:
    """Turn store faults and unknown IDs into one-line messages and a non-zero exit."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except ClientNotFound as exc:
            raise click.ClickException(f"no client with ID {exc.args[0]!r}") from None
        except DuplicateClientId as exc:
            raise click.ClickException(str(exc)) from None
        except StoreBusy:
            raise click.ClickException(
                "the client store is busy: a lock held by another transaction did not clear in time; "
                "nothing was changed, try again"
            ) from None
        except StoreError as exc:
            if exc.fault == MISSING_TABLES:  # the message names the command to run
                raise click.ClickException(str(exc)) from None
            where = "the app's database URI" if _state().extension.db is not None else "CLIENTAUTH_DATABASE_URI"
            raise click.ClickException(f"{exc}; check {where}") from None
        except SpecError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _echo_client(record: ClientRecord) -> None:
    click.echo(f"Client ID:   {record.client_id}")
    click.echo(f"Name:        {record.name}")
    if record.description:
        click.echo(f"Description: {record.description}")
    click.echo(f"Enabled:     {'yes' if record.enabled else 'no'}")
    click.echo(f"Secret:      {'set' if record.has_secret else 'none'}")
    click.echo(f"Created:     {record.created_at.isoformat(timespec='seconds')}")
    click.echo(f"Updated:     {record.updated_at.isoformat(timespec='seconds')}")


def _echo_secret(record: ClientRecord, secret: str, as_json: bool) -> None:
    if as_json:
        _echo_json({**record.to_dict(), "client_secret": secret})
        return
    _echo_client(record)
    click.echo(f"Client secret: {secret}")
    click.echo("Store the secret now: it is kept only as a hash and cannot be shown again.", err=True)


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
@click.option("--description", default="", help="Free text shown by 'show' and 'list'.")
@click.option("--no-secret", is_flag=True, help="Create an ID-only client (a secret can be set later).")
@json_option
@_errors
def create(name: str, description: str, no_secret: bool, as_json: bool) -> None:
    """Register a client; prints its ID and secret once."""
    try:
        record, secret = _state().store.create(name, description=description, with_secret=not no_secret)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    if secret is not None:
        _echo_secret(record, secret, as_json)
    elif as_json:
        _echo_json({**record.to_dict(), "client_secret": None})
    else:
        _echo_client(record)


@clients.command("list")
@json_option
@_errors
def list_(as_json: bool) -> None:
    """List every client (never secrets or hashes)."""
    records = _state().store.list()
    if as_json:
        _echo_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("No clients. Create one with 'flask clients create NAME'.")
        return
    click.echo(f"{'CLIENT ID':<34} {'ENABLED':<8} {'SECRET':<7} NAME")
    for r in records:
        click.echo(
            f"{r.client_id:<34} {'yes' if r.enabled else 'no':<8} {'set' if r.has_secret else 'none':<7} {r.name}"
        )


@clients.command("show")
@click.argument("client_id")
@json_option
@_errors
def show(client_id: str, as_json: bool) -> None:
    """Show one client."""
    record = _state().store.require(client_id)
    if as_json:
        _echo_json(record.to_dict())
    else:
        _echo_client(record)


@clients.command("reset-secret")
@click.argument("client_id")
@json_option
@_errors
def reset_secret(client_id: str, as_json: bool) -> None:
    """Give a client a new secret (same ID); the old secret stops working."""
    record, secret = _state().store.reset_secret(client_id)
    _echo_secret(record, secret, as_json)


@clients.command("set-secret")
@click.argument("client_id")
@json_option
@_errors
def set_secret(client_id: str, as_json: bool) -> None:
    """Set a secret read from a prompt, or from standard input when it is not a terminal."""
    state = _state()
    state.store.require(client_id)
    if sys.stdin is not None and sys.stdin.isatty():
        secret = click.prompt("Secret", hide_input=True, confirmation_prompt=True)
    else:
        secret = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    problem = check_secret_format(secret, min_length=state.min_secret_length)
    if problem is not None:
        raise click.ClickException(problem)
    record = state.store.set_secret(client_id, secret)
    if as_json:
        _echo_json(record.to_dict())
    else:
        click.echo(f"Secret set for client {record.client_id}.")


def _set_enabled(client_id: str, enabled: bool, as_json: bool) -> None:
    record = _state().store.set_enabled(client_id, enabled)
    if as_json:
        _echo_json(record.to_dict())
    else:
        click.echo(f"Client {record.client_id} {'enabled' if enabled else 'disabled'}.")


@clients.command("disable")
@click.argument("client_id")
@json_option
@_errors
def disable(client_id: str, as_json: bool) -> None:
    """Refuse a client's requests (403) until it is enabled again."""
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
    """Delete a client for good."""
    store = _state().store
    record = store.require(client_id)
    if not yes:
        click.confirm(f"Delete client {record.client_id} ({record.name})?", abort=True)
    store.delete(client_id)
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
    rows.sort(key=lambda r: (r.rule, r.method))
    unserved = sorted({op.label for op in table.unserved(rules)})
    undocumented = sorted(
        {f"{r.method} {r.rule}" for r in rows if r.operation is None and r.method not in ("HEAD", "OPTIONS")}
    )
    if as_json:
        _echo_json(
            {
                "spec": table.spec.source,
                "openapi": table.spec.version,
                "routes": [
                    {
                        "rule": r.rule,
                        "endpoint": r.endpoint,
                        "method": r.method,
                        "operation": r.operation,
                        "requirement": "error" if r.error else r.policy.describe(),
                        "alternatives": [list(a.names) for a in r.policy.alternatives],
                        "optional": r.policy.optional,
                        "origin": r.policy.origin,
                        "error": r.error,
                    }
                    for r in rows
                ],
                "unserved_operations": unserved,
                "undocumented_routes": undocumented,
                "errors": problems,
            }
        )
    else:
        _echo_routes(table.spec.source, table.spec.version, rows, unserved, undocumented, problems)
    if problems:
        sys.exit(1)


def _echo_routes(
    source: str,
    version: int,
    rows: list[RouteInfo],
    unserved: list[str],
    undocumented: list[str],
    problems: list[str],
) -> None:
    """The human form of ``routes``: one aligned table, then what does not match up."""
    click.echo(f"Spec: {source} (OpenAPI {'2.0' if version == 2 else '3.x'})")
    header = ("METHOD", "RULE", "OPERATION", "REQUIREMENT", "SCHEMES", "FROM")
    table = [
        (
            r.method,
            r.rule,
            r.operation or "-",
            "ERROR (see below)" if r.error else r.policy.describe(),
            " | ".join("+".join(a.names) for a in r.policy.alternatives) or "-",
            r.policy.origin or "-",
        )
        for r in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(len(header) - 1)]
    for cells in [header, *table]:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)), cells[-1]]).rstrip())
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
