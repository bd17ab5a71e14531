"""The shipped Alembic migrations produce exactly the models' schema, on every backend.

Both set-ups are covered in-process here: ``flask_clientauth.migrate.upgrade`` / ``flask clients
init-db`` (our own version table), and Flask-Migrate in a user's app (``flask db migrate``
autogenerating our tables from ``db.metadata``). The same set-ups run from an installed wheel, in
either order, in test_migrations_flask_migrate.py; upgrades with rows in test_migrations_upgrade.py.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Engine, Integer, MetaData, String, create_engine, inspect, text
from sqlalchemy.orm import Mapped, mapped_column

from flask_clientauth import ClientAuth
from flask_clientauth.migrate import (
    MIGRATIONS_DIR,
    TABLES,
    VERSION_TABLE,
    VERSIONS_DIR,
    alembic_config,
    downgrade,
    include_object,
    upgrade,
)
from flask_clientauth.models import Base

from conftest import TUTORIAL_SPEC, AppFactory

OUR_TABLES = set(TABLES)
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

#: Flask-Migrate's env.py template calls Flask-SQLAlchemy's deprecated ``get_engine()`` first.
FLASK_MIGRATE_TEMPLATE_WARNING = "ignore:'get_engine' is deprecated:DeprecationWarning"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def schema_diff(engine: Engine, metadata: MetaData = Base.metadata) -> list[Any]:
    """What autogenerate would change to make the database match ``metadata`` (our tables only)."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diffs if not _is_version_table(d)]


def _is_version_table(diff: Any) -> bool:
    return bool(diff[0] == "remove_table" and diff[1].name in (VERSION_TABLE, "alembic_version"))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def current_revisions(engine: Engine, version_table: str = VERSION_TABLE) -> set[str]:
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn, opts={"version_table": version_table}).get_current_heads())


def heads() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def test_upgrade_creates_exactly_the_models_schema(engine: Engine) -> None:
    assert not tables(engine) & OUR_TABLES
    upgrade(engine)
    assert OUR_TABLES <= tables(engine)
    assert schema_diff(engine) == []
    assert current_revisions(engine) == heads() == {HEAD}
    assert "alembic_version" not in tables(engine)  # the app's own Alembic history is untouched


def test_upgrade_twice_is_a_no_op(engine: Engine, make_app: AppFactory, database_url: str) -> None:
    upgrade(engine)
    app = make_app(database_url=database_url, create_tables=False)
    store = app.extensions["clientauth"].store
    record, _ = store.create("Survivor")
    upgrade(engine)
    assert current_revisions(engine) == heads()
    assert schema_diff(engine) == []
    assert [r.client_id for r in store.list()] == [record.client_id]


def test_downgrade_to_base_removes_the_tables(engine: Engine) -> None:
    upgrade(engine)
    downgrade(engine, "clientauth@base")
    assert not tables(engine) & OUR_TABLES
    assert current_revisions(engine) == set()
    upgrade(engine)  # and back up again
    assert schema_diff(engine) == []


def test_downgrade_below_credentials_puts_each_client_id_back(
    engine: Engine, make_app: AppFactory, database_url: str
) -> None:
    """ca0002 -> ca0001 with one credential per client: each client row gets its client ID and secret
    hash back (a pre-ca0002 release reads them there), and upgrading again moves them once more."""
    upgrade(engine)
    app = make_app(database_url=database_url, create_tables=False)
    store = app.extensions["clientauth"].store
    kept, secret = store.create("Kept")
    id_only, _ = store.create("ID only", with_secret=False)
    downgrade(engine, "ca0001")
    assert current_revisions(engine) == {"ca0001"}
    assert tables(engine) & OUR_TABLES == {"clientauth_clients", "clientauth_events"}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, client_id, secret_hash FROM clientauth_clients ORDER BY id")).all()
    assert [(r.name, r.client_id, r.secret_hash is not None) for r in rows] == [
        ("Kept", kept.client_id, True),
        ("ID only", id_only.client_id, False),
    ]
    upgrade(engine)
    assert schema_diff(engine) == []
    assert [r.client_id for r in store.list()] == [kept.client_id, id_only.client_id]
    assert store.verify_secret(kept.client_id, secret)


def test_downgrade_below_credentials_refuses_a_client_with_several(
    engine: Engine, make_app: AppFactory, database_url: str
) -> None:
    """A client with two credentials cannot go back to one client ID per row: nothing is changed,
    and the message names the client and the command that fixes it."""
    upgrade(engine)
    app = make_app(database_url=database_url, create_tables=False)
    store = app.extensions["clientauth"].store
    store.create("Single")
    several, _ = store.create("Two keys")
    store.add_credential(several.client_id, label="second")
    with pytest.raises(RuntimeError) as caught:
        downgrade(engine, "ca0001")
    message = str(caught.value)
    assert message.startswith("cannot downgrade the client tables below revision ca0002"), message
    assert "1 client(s) have several credentials ('Two keys')" in message
    assert "`flask clients credentials revoke CLIENT_ID`" in message
    assert current_revisions(engine) == {HEAD}
    assert schema_diff(engine) == []
    assert len(store.require(several.client_id).credentials) == 2


def test_include_object_keeps_autogenerate_off_columns_of_ours(engine: Engine) -> None:
    """A column of our tables that the models no longer declare (a later release's leftover) is never
    proposed for dropping by an app's autogenerate that uses our hook."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE clientauth_clients ADD COLUMN retired VARCHAR(10)"))

    def removed_columns(**opts: Any) -> list[str]:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
        return [d[3].name for d in diffs if d[0] == "remove_column"]

    assert removed_columns() == ["retired"]  # what autogenerate would do without the hook
    assert removed_columns(include_object=include_object) == []


def test_init_db_command(make_app: AppFactory, database_url: str, engine: Engine) -> None:
    app = make_app(database_url=database_url, create_tables=False)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clients", "init-db"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Client tables created in ") and f"(revision {HEAD})" in result.output
    assert schema_diff(engine) == []
    assert current_revisions(engine) == heads()
    created = runner.invoke(args=["clients", "create", "After init-db"])
    assert created.exit_code == 0, created.output
    again = runner.invoke(args=["clients", "init-db"])
    assert again.exit_code == 0, again.output
    assert again.output.startswith("Client tables already up to date in "), again.output
    listed = runner.invoke(args=["clients", "list"])
    assert "After init-db" in listed.output


def test_init_db_on_an_unknown_revision_fails_cleanly(make_app: AppFactory, database_url: str, engine: Engine) -> None:
    """A database migrated by a newer release: one line, non-zero exit, nothing touched."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'ca9999'"))
    app = make_app(database_url=database_url, create_tables=False)
    result = app.test_cli_runner().invoke(args=["clients", "init-db"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "ca9999" in lines[0], result.output
    assert current_revisions(engine) == {"ca9999"}
    assert OUR_TABLES <= tables(engine)


def test_every_revision_carries_the_clientauth_branch_label() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.dir == MIGRATIONS_DIR
    revisions = list(script.walk_revisions())
    assert revisions
    bases = [r for r in revisions if r.down_revision is None]
    assert [r.revision for r in bases] == ["ca0001"]
    assert bases[0].branch_labels == {"clientauth"}
    on_branch = {r.revision for r in script.iterate_revisions("clientauth@head", "base")}
    assert on_branch == {r.revision for r in revisions}
    assert os.path.dirname(bases[0].path) == VERSIONS_DIR
    assert script.get_revision("clientauth@head").revision in heads()


# -- Flask-Migrate in a user's app ------------------------------------------------------


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """Flask-Migrate's env.py runs ``logging.config.fileConfig``, which disables every other
    logger; put the logging set-up back so later tests still see ``flask_clientauth`` logs."""
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {
        name: (lg.disabled, lg.level, list(lg.handlers), lg.propagate)
        for name, lg in logging.root.manager.loggerDict.items()
        if isinstance(lg, logging.Logger)
    }
    yield
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.disabled, lg.level, handlers, lg.propagate = saved[name]
            lg.handlers[:] = handlers
        else:
            lg.disabled = False
            lg.handlers.clear()


@pytest.fixture
def drop_alembic_version(database_url: str) -> Iterator[None]:
    """Flask-Migrate's ``alembic_version`` is not ours: conftest leaves it, so drop it here."""

    def drop() -> None:
        eng = create_engine(database_url)
        try:
            with eng.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        finally:
            eng.dispose()

    drop()
    yield
    drop()


def user_app(database_url: str, tmp_path: Path) -> tuple[Flask, Any, str]:
    """A user's app: Flask-SQLAlchemy ``db`` with a model of its own, Flask-Migrate, ClientAuth."""
    db = SQLAlchemy()

    class Branch(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "branch"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        city: Mapped[str] = mapped_column(String(80))

    app = Flask("userapp", instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=database_url,
        CLIENTAUTH_SPEC=TUTORIAL_SPEC,
        CLIENTAUTH_BCRYPT_ROUNDS=4,
        CLIENTAUTH_REVOCATION_INTERVAL=0,
    )
    db.init_app(app)
    directory = str(tmp_path / "migrations")
    Migrate(app, db, directory=directory)
    ClientAuth(app, db=db)

    @app.get("/api/branches")
    def branches() -> Any:
        return {"branches": []}

    return app, db, directory


def drop_user_tables(app: Flask, db: Any) -> None:
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS branch"))
        db.engine.dispose()


def authenticates(app: Flask) -> bool:
    with app.app_context():
        record, secret = app.extensions["clientauth"].store.create("Via Flask-Migrate")
    response = app.test_client().get(
        "/api/branches", headers={"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}
    )
    return response.status_code == 200


@pytest.mark.filterwarnings(FLASK_MIGRATE_TEMPLATE_WARNING)
@pytest.mark.usefixtures("keep_logging", "drop_alembic_version")
def test_flask_migrate_autogenerate_includes_our_tables(database_url: str, tmp_path: Path) -> None:
    app, db, directory = user_app(database_url, tmp_path)
    try:
        assert OUR_TABLES <= set(db.metadata.tables)
        runner = app.test_cli_runner()
        for args in (["db", "init", "-d", directory], ["db", "migrate", "-d", directory, "-m", "initial"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, result.output
        generated = list(Path(directory, "versions").glob("*.py"))
        assert len(generated) == 1
        source = generated[0].read_text()
        for table in (*OUR_TABLES, "branch"):
            assert f"op.create_table('{table}'" in source or f'op.create_table("{table}"' in source, table
        # a revision of the app creates the tables: init-db leaves them to it and names the command
        early = runner.invoke(args=["clients", "init-db"])
        assert early.exit_code == 1 and early.output.count("\n") == 1, early.output
        assert "do not exist" in early.output and early.output.rstrip().endswith("run `flask db upgrade`")
        with app.app_context():
            assert not tables(db.engine) & OUR_TABLES
        result = runner.invoke(args=["db", "upgrade", "-d", directory])
        assert result.exit_code == 0, result.output
        with app.app_context():
            assert OUR_TABLES | {"branch"} <= tables(db.engine)
            assert schema_diff(db.engine, db.metadata) == []
            assert VERSION_TABLE not in tables(db.engine)
        # the app's migrations hold the tables: init-db finds them up to date and records nothing
        for _ in range(2):
            result = runner.invoke(args=["clients", "init-db"])
            assert result.exit_code == 0, result.output
            assert result.output.startswith("Client tables already up to date in "), result.output
        with app.app_context():
            assert VERSION_TABLE not in tables(db.engine)
        assert authenticates(app)
        # tables that no longer match the models (here: an index gone): the commands that fix it
        with app.app_context(), db.engine.begin() as conn:
            on = " ON clientauth_events" if conn.dialect.name in ("mysql", "mariadb") else ""
            conn.execute(text(f"DROP INDEX ix_clientauth_events_created_at{on}"))
        stale = runner.invoke(args=["clients", "init-db"])
        assert stale.exit_code == 1 and stale.output.count("\n") == 1, stale.output
        assert "differ from this version's" in stale.output
        assert 'run `flask db migrate -m "Flask-ClientAuth tables"`, then `flask db upgrade`' in stale.output
    finally:
        drop_user_tables(app, db)


def test_init_db_adopts_tables_made_without_the_shipped_revisions(
    make_app: AppFactory, database_url: str, engine: Engine
) -> None:
    """Tables made by ``create_all`` (or an app's migrations) on our own engine: recorded, not made twice."""
    app = make_app(database_url=database_url, create_tables=True)
    record, _ = app.extensions["clientauth"].store.create("Made before init-db")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["clients", "init-db"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Client tables already up to date in ") and "now recorded" in result.output
    assert current_revisions(engine) == heads()
    again = runner.invoke(args=["clients", "init-db"])
    assert again.output.startswith("Client tables already up to date in ") and "now recorded" not in again.output
    assert [r.client_id for r in app.extensions["clientauth"].store.list()] == [record.client_id]


@pytest.mark.parametrize("hook", [False, True], ids=["without-include_object", "with-include_object"])
def test_init_db_on_the_apps_database_asks_for_the_hook(database_url: str, tmp_path: Path, hook: bool) -> None:
    """``ClientAuth(app)`` on the database the app's Flask-Migrate works on: without our hook, its next
    autogenerate would propose to drop the client tables, so ``init-db`` says how to pass it."""
    from flask_clientauth.migrate import include_object

    db = SQLAlchemy()
    app = Flask("sharedapp", instance_path=str(tmp_path / "instance"))
    app.config.update(
        SQLALCHEMY_DATABASE_URI=database_url,
        CLIENTAUTH_DATABASE_URI=database_url,
        CLIENTAUTH_SPEC=TUTORIAL_SPEC,
        CLIENTAUTH_BCRYPT_ROUNDS=4,
    )
    db.init_app(app)
    Migrate(app, db, directory=str(tmp_path / "migrations"), **({"include_object": include_object} if hook else {}))
    state = ClientAuth(app).state(app)
    try:
        result = app.test_cli_runner().invoke(args=["clients", "init-db"])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Client tables created in ")
        if hook:
            assert result.stderr == ""
        else:
            assert "include_object=flask_clientauth.migrate.include_object" in result.stderr
    finally:
        assert state.engine is not None
        state.engine.dispose()
        with app.app_context():
            db.engine.dispose()
