"""Creating and upgrading the client tables, and keeping an app's own migrations off them.

Two set-ups (README, "Storage and migrations"):

- **Own engine** (``ClientAuth(app)``): ``flask clients init-db`` runs the shipped Alembic revisions,
  recorded in the version table :data:`VERSION_TABLE`.
- **The app's db** (``ClientAuth(app, db=db)``): the tables are in ``db.metadata`` and belong to the
  app's migrations like its own models' tables (``flask db migrate`` / ``flask db upgrade``);
  ``init-db`` creates them only where no migration of the app does, and never records a version.

Either way, pass :func:`include_object` to ``Migrate(app, db, include_object=include_object)`` so
that the app's autogenerate never proposes to drop what the first set-up keeps in a shared database.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, MetaData, inspect

from .errors import ClientAuthError
from .models import Base
from .store import safe_url

if TYPE_CHECKING:
    from alembic.config import Config

# Imported by name: the package is the repository's top-level ``migrations/`` folder, mapped
# to ``flask_clientauth.migrations`` by setup.cfg's ``package_dir``, which type checkers cannot follow.
_migrations = importlib.import_module("flask_clientauth.migrations")

#: The Alembic scripts shipped with the package (the repository's ``migrations/`` folder,
#: installed as the ``flask_clientauth.migrations`` package).
MIGRATIONS_DIR = os.path.dirname(os.path.abspath(str(_migrations.__file__)))
#: Where the shipped revision files live (only ``init-db`` reads them: never point an app's
#: ``version_locations`` here, or its next revision would be written inside the installed package).
VERSIONS_DIR = os.path.join(MIGRATIONS_DIR, "versions")
#: Our own version table, so that the app's ``alembic_version`` is never touched.
VERSION_TABLE = "clientauth_alembic_version"
#: The tables Flask-ClientAuth keeps.
TABLES = frozenset(Base.metadata.tables)
#: The data steps of the shipped revisions (module, function): an app's own migrations change only
#: the schema, so with ``ClientAuth(app, db=db)`` ``init-db`` runs these after ``flask db upgrade``.
#: Each is idempotent and returns how many clients it moved.
DATA_STEPS = (("flask_clientauth.migrations.versions.ca0002_credentials_and_audit", "move_credentials"),)


class SchemaError(ClientAuthError):
    """The client tables need a step ``init-db`` does not take; the message names the command to run."""


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's ``include_object`` hook for an app's own migrations: leave Flask-ClientAuth's tables alone.

    ``Migrate(app, db, include_object=include_object)``. It hides our version table, our tables
    when they are in the database but not in the app's metadata (the own-engine set-up sharing the
    app's database), and columns of our tables that the models do not declare: autogenerate then
    never proposes to drop them. With ``ClientAuth(app, db=db)`` the tables are in the app's
    metadata and stay included, so the app's migrations create and upgrade them. To combine it with a hook of your own, call it first and ``and`` the results.
    """
    if type_ == "column":
        # A column of ours in the database that this version no longer declares: an app's autogenerate
        # must never drop it (and what it holds); a later release of ours decides its fate.
        return not (reflected and compare_to is None and obj.table.name in TABLES)
    if type_ != "table":
        return True
    if name == VERSION_TABLE:
        return False
    return not (name in TABLES and reflected and compare_to is None)


def needs_include_object(engine: Engine, migrate: Any) -> bool:
    """Whether Flask-Migrate's app config ``migrate`` works on ``engine``'s database without
    :func:`include_object`: its autogenerate would then propose to drop our tables."""
    if migrate.configure_args.get("include_object") is include_object:
        return False
    ours, apps = engine.url, migrate.db.engine.url  # Flask-SQLAlchemy may add query options: compare the rest
    return (ours.get_backend_name(), ours.host, ours.port, ours.database) == (
        apps.get_backend_name(),
        apps.host,
        apps.port,
        apps.database,
    )


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    return config


def upgrade(engine: Engine, revision: str = "clientauth@head") -> None:
    """Bring the client tables up to ``revision`` (default: the newest) with the shipped revisions."""
    _command("upgrade", engine, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the client tables back to ``revision`` with the shipped revisions (own-engine set-up).

    A revision that cannot keep every client refuses and changes nothing: below ca0002, each
    client must hold exactly one credential. That is checked before any revision runs, since a later
    revision's downgrade would otherwise already have changed tables where DDL is not transactional
    (MariaDB, SQLite).
    """
    if _goes_below(revision, "ca0002"):
        restore = importlib.import_module("flask_clientauth.migrations.versions.ca0002_credentials_and_audit")
        with engine.connect() as conn, conn.begin() as transaction:
            restore.restore_credentials(conn)  # raises, naming the clients, or would succeed: undo
            transaction.rollback()
    _command("downgrade", engine, revision)


def _goes_below(target: str, revision: str) -> bool:
    """Whether downgrading to ``target`` undoes ``revision`` (``False`` for a relative target such as ``-1``)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    name = target.removeprefix("clientauth@")
    if name == "base":
        return True
    try:
        found = script.get_revisions(name)
    except Exception:  # a relative or unknown target: Alembic says what is wrong with it
        return False
    return any(
        rev is not None
        and rev.revision != revision
        and revision in {r.revision for r in script.walk_revisions(base=rev.revision)}
        for rev in found
    )


def _command(name: str, engine: Engine, revision: str) -> None:
    from alembic import command

    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        getattr(command, name)(config, revision)


def current_revisions(conn: Connection) -> set[str]:
    """The shipped revisions recorded in :data:`VERSION_TABLE` (empty when there is none)."""
    from alembic.migration import MigrationContext

    return set(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads())


def _existing(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) & TABLES


def run_data_steps(conn: Connection) -> int:
    """Run :data:`DATA_STEPS` on tables already at this version's schema; how many clients were moved."""
    return sum(getattr(importlib.import_module(module), name)(conn) for module, name in DATA_STEPS)


def _moved(where: str, count: int, recorded: str = "") -> str:
    whose = "1 client's credential" if count == 1 else f"{count} clients' credentials"
    return f"Client tables upgraded in {where}: moved {whose} into clientauth_credentials{recorded}."


def _differences(conn: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would change in our tables to match ``metadata``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return type_ != "table" or name in TABLES

    context = MigrationContext.configure(conn, opts={"include_object": ours, "compare_type": True})
    return list(compare_metadata(context, metadata))


def init_own_tables(engine: Engine) -> str:
    """``init-db`` for the extension's own engine: run the shipped revisions; say what was done."""
    from alembic import command
    from alembic.script import ScriptDirectory

    where = safe_url(engine.url)
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as conn:
        before = current_revisions(conn)
        if not before and _existing(conn):
            # Made without the shipped revisions (by an app's migrations, or ``create_all``): adopt
            # them as they are when they match this version, never create them twice.
            if _existing(conn) != TABLES or _differences(conn, Base.metadata):
                raise SchemaError(
                    f"the client tables in {where} were not made by `flask clients init-db` and differ from "
                    "this version's: upgrade them with the migrations that made them (`flask db migrate`, "
                    "then `flask db upgrade`)"
                )
            config.attributes["connection"] = conn
            command.stamp(config, "clientauth@head")
            moved = run_data_steps(conn)  # an app's migrations upgraded them without the data step
            if moved:
                return _moved(where, moved, f" (revision {head}, now recorded)")
            return f"Client tables already up to date in {where} (revision {head}, now recorded)."
        config.attributes["connection"] = conn
        command.upgrade(config, "clientauth@head")
        after = current_revisions(conn)
    if not before:
        return f"Client tables created in {where} (revision {head})."
    if before == after:
        return f"Client tables already up to date in {where} (revision {head})."
    return f"Client tables upgraded in {where} from revision {', '.join(sorted(before))} to {head}."


def _app_revisions_create_tables(migrations_dir: str | None, tables: frozenset[str] = TABLES) -> bool:
    """Whether a revision of the app's Flask-Migrate history creates (one of) ``tables``."""
    if migrations_dir is None:
        return False
    names = tuple(f"'{name}'" for name in tables) + tuple(f'"{name}"' for name in tables)
    for path in Path(migrations_dir, "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8", errors="replace")
        if "create_table" in source and any(name in source for name in names):
            return True
    return False


def init_app_tables(engine: Engine, metadata: MetaData, migrations_dir: str | None) -> str:
    """``init-db`` with ``ClientAuth(app, db=db)``: the app's migrations own the tables.

    Creates missing tables only where no revision of the app (``migrations_dir``: Flask-Migrate's
    directory, ``None`` without Flask-Migrate) does; never records a version of ours.
    """
    where = safe_url(engine.url)
    generate = 'run `flask db migrate -m "Flask-ClientAuth tables"`, then `flask db upgrade`'
    if migrations_dir is not None and not os.path.isdir(migrations_dir):
        generate = f"run `flask db init`, then {generate.removeprefix('run ')}"
    with engine.begin() as conn:
        existing = _existing(conn)
        missing = TABLES - existing
        if missing and _app_revisions_create_tables(migrations_dir, missing):
            raise SchemaError(
                f"the client tables do not exist in {where} yet and the app's migrations create them: "
                "run `flask db upgrade`"
            )
        if existing:  # some or all: only the app's migrations may change them (never a partial create_all)
            if _differences(conn, metadata):
                if migrations_dir is None:
                    raise SchemaError(
                        f"the client tables in {where} differ from this version's, and the app has no "
                        "migrations to upgrade them: add Flask-Migrate (`Migrate(app, db)`), then run "
                        '`flask db init`, `flask db migrate -m "Flask-ClientAuth upgrade"`, `flask db upgrade`, '
                        "and `flask clients init-db` again"
                    )
                raise SchemaError(
                    f"the client tables in {where} differ from this version's: {generate}, "
                    "and `flask clients init-db` again"
                )
            moved = run_data_steps(conn)
            if moved:
                return _moved(where, moved)
            return f"Client tables already up to date in {where} (they belong to the app's database)."
        metadata.create_all(conn, tables=[metadata.tables[name] for name in sorted(TABLES)])
    return f"Client tables created in {where} (in the app's database, with no version of their own)."
