"""``flask clients ...``: operators' commands to manage clients and inspect the enforcement."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo

from .keys import check_secret_format
from .routing import RouteInfo, RouteTable
from .spec import SpecError, error_lines, load_spec, read_document, unrequired_keys_warning
from .store import COMMAND_FAULTS, ClientNotFound, ClientRecord, DuplicateClientId, StoreBusy, StoreError, store_error

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
            if exc.fault in COMMAND_FAULTS:  # the message names the command to run
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
@click.option("--description", default="", help="Free text shown by 'show' and 'list --json'.")
@click.option(
    "--no-secret", is_flag=True, help="Create an ID-only client: SECRET is 'none' (set one later with 'set-secret')."
)
@json_option
@_errors
def create(name: str, description: str, no_secret: bool, as_json: bool) -> None:
    """Register a client named NAME; prints its client ID and secret once.

    The new client gets a generated CLIENT ID, is ENABLED, and has a generated SECRET (only its
    hash is stored), which is how 'list' shows it: CLIENT ID, ENABLED yes, SECRET set, NAME.
    """
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
        if not secret:
            raise click.ClickException(
                "no secret given: standard input is not a terminal and its first line is empty; "
                "pipe the secret in (printf '%s\\n' \"$SECRET\" | flask clients set-secret ID) or run it in a terminal"
            )
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
        try:  # the question goes to stderr: stdout holds only the result (--json)
            if sys.stdin is None:  # closed (``<&-``): input() would raise RuntimeError
                raise click.Abort()
            confirmed = click.confirm(f"Delete client {record.client_id} ({record.name})?", err=True)
        except click.Abort:  # end of input: nobody answered (no terminal, stdin empty or closed)
            raise click.ClickException(
                f"client {record.client_id} not deleted: no answer to the confirmation question "
                "(standard input is not a terminal); pass --yes to delete without asking"
            ) from None
        if not confirmed:
            raise click.Abort()
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
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header) - 1)]
    for row in [header, *cells]:
        click.echo("  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip())
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
