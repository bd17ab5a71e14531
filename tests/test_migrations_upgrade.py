"""Schema upgrades with real rows: a database at an older revision, upgraded to head in both set-ups.

Generic over the shipped history: every released revision is a starting point (``PAIRS``), so a
schema change only adds a revision file and these tests upgrade to it. The rows are written at the
first revision, whose schema never changes (a released migration is never edited): clients with a
secret, a disabled one, an ID-only one, and their change log. After the upgrade, from the installed
wheel: no row lost, every client in its state, every secret still accepted.

- own engine: ``flask clients init-db`` runs the shipped revisions, data steps included;
- the app's db: the app's ``flask db migrate`` generates the schema step (without dropping anything
  of ours) and ``flask db upgrade`` applies it; until ``init-db`` runs the revisions' data steps
  (``migrate.DATA_STEPS``) the clients they concern fail closed, and the CLI says to run it.
"""

from __future__ import annotations

import importlib
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, func, insert, inspect, select, text

from flask_clientauth.migrate import DATA_STEPS, VERSION_TABLE, alembic_config, upgrade
from installed import (
    Installed,
    UserApp,
    db_init,
    empty_database,
    installed,
    migrations_template,
    user_app,
)

SCRIPT = ScriptDirectory.from_config(alembic_config())
#: The shipped revisions, oldest first.
HISTORY = [r.revision for r in reversed(list(SCRIPT.walk_revisions("base", "heads")))]
FIRST, HEAD = HISTORY[0], HISTORY[-1]
#: (start, target): each released revision, upgraded to head.
PAIRS = [(start, HEAD) for start in HISTORY]
#: The revisions with a data step, which the app's-db set-up leaves to ``init-db``.
DATA_STEP_REVISIONS = [importlib.import_module(module).revision for module, _ in DATA_STEPS]

#: Clients written at the first revision: (name, secret or None, enabled). The first secret has the
#: shape the first release generated (``token_urlsafe(32)``), the second is an operator's choice;
#: both are bcrypt hashes, as the first release stored every secret.
CLIENTS = [
    ("Branch mobile app", secrets.token_urlsafe(32), True),
    ("Retired kiosk", "Secret-of-the-retired-kiosk-02", False),
    ("Partner feed", None, True),
]


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return installed(tmp_path_factory)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    empty_database(database_url)
    eng = create_engine(database_url)
    yield eng
    eng.dispose()
    empty_database(database_url)


def at_revision(engine: Engine, start: str) -> list[dict[str, Any]]:
    """The database at ``start`` holding ``CLIENTS`` and their change log, written at the first revision."""
    upgrade(engine, FIRST)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    written = []
    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["clientauth_clients", "clientauth_events"])
        clients, events = tables.tables["clientauth_clients"], tables.tables["clientauth_events"]
        for name, secret, enabled in CLIENTS:
            client_id = secrets.token_hex(16)
            hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4)).decode() if secret else None
            conn.execute(
                insert(clients).values(
                    client_id=client_id,
                    name=name,
                    description=f"written at {FIRST}",
                    secret_hash=hashed,
                    enabled=enabled,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(insert(events).values(client_id=client_id, action="create", created_at=now))
            if not enabled:
                conn.execute(insert(events).values(client_id=client_id, action="disable", created_at=now))
            written.append({"client_id": client_id, "client_secret": secret, "name": name, "enabled": enabled})
    upgrade(engine, start)
    return written


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(text(table))).scalar_one())


def event_count(engine: Engine) -> int:
    return count(engine, "clientauth_events")


def with_secret(written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in written if c["client_secret"] is not None]


def assert_rows_kept(app: UserApp, engine: Engine, written: list[dict[str, Any]], events: int, **env: str) -> None:
    """Every client written at the first revision is a client with one credential under its old client
    ID, in its state; its old bcrypt secret still authenticates (and is not re-hashed); no event lost."""
    listed = {c["client_id"]: c for c in json.loads(app.flask("clients", "list", "--json", **env).stdout)}
    assert set(listed) == {c["client_id"] for c in written}
    for client in written:
        row = listed[client["client_id"]]
        assert (row["name"], row["enabled"], row["has_secret"], row["description"]) == (
            client["name"],
            client["enabled"],
            client["client_secret"] is not None,
            f"written at {FIRST}",
        )
        assert [c["client_id"] for c in row["credentials"]] == [client["client_id"]]
        assert row["plan"] is None  # ca0003: on no plan, so held to the default plan (if any) as before
    assert count(engine, "clientauth_clients") == count(engine, "clientauth_credentials") == len(written)
    assert app.call(*with_secret(written), **env) == [200 if c["enabled"] else 403 for c in with_secret(written)]
    with engine.connect() as conn:
        hashes = conn.execute(text("SELECT secret_hash FROM clientauth_credentials WHERE secret_hash IS NOT NULL"))
        assert all(h.startswith("$2b$") for (h,) in hashes)  # kept as bcrypt: `reset-secret` moves them on
    assert event_count(engine) == events


def test_history_is_one_line_from_the_first_revision() -> None:
    """The harness walks one line of revisions; a branch or a second base would need it extended."""
    assert SCRIPT.get_bases() == [FIRST] and SCRIPT.get_heads() == [HEAD]
    assert SCRIPT.get_revision(FIRST).branch_labels == {"clientauth"}


@pytest.mark.slow
@pytest.mark.parametrize(("start", "target"), PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_own_engine_upgrade_keeps_every_row(
    venv: Installed, engine: Engine, database_url: str, tmp_path: Path, start: str, target: str
) -> None:
    written = at_revision(engine, start)
    events = event_count(engine)
    env = {"CLIENTAUTH_SETUP": "own", "CLIENTAUTH_DATABASE_URI": database_url}
    app = user_app(venv, tmp_path / "project", APP_DATABASE_URL=f"sqlite:///{tmp_path}/app.sqlite3")
    said = app.flask("clients", "init-db", **env).stdout
    if start == target:
        assert said.startswith("Client tables already up to date in "), said
    else:
        assert said.startswith("Client tables upgraded in ") and f"from revision {start} to {target}" in said, said
    with engine.connect() as conn:
        assert MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads() == (target,)
    assert_rows_kept(app, engine, written, events, **env)


@pytest.mark.slow
@pytest.mark.parametrize(("start", "target"), PAIRS, ids=[f"{s}-{t}" for s, t in PAIRS])
def test_apps_db_upgrade_keeps_every_row(
    venv: Installed,
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    start: str,
    target: str,
) -> None:
    """The tables as the app's own migrations made them at ``start`` (no version table of ours); the
    app's next ``flask db migrate`` + ``flask db upgrade`` brings them to this version's models, and
    ``init-db`` the rows, once."""
    written = at_revision(engine, start)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))
    events = event_count(engine)
    env = {"CLIENTAUTH_SETUP": "db", "USE_MIGRATE": "1"}
    app = user_app(venv, tmp_path / "project", APP_DATABASE_URL=database_url)
    db_init(app, migrations_template(venv, tmp_path_factory))
    app.flask("db", "migrate", "-m", "Flask-ClientAuth upgrade", **env)
    (revision,) = app.revisions()
    upgrade_ops = revision.split("def downgrade")[0]
    assert "drop_table" not in upgrade_ops and "drop_column" not in upgrade_ops, revision
    app.flask("db", "upgrade", **env)
    moves = any(HISTORY.index(start) < HISTORY.index(step) for step in DATA_STEP_REVISIONS)
    if moves:
        # this version's schema, the old rows not moved yet: those clients fail closed, the CLI says why
        assert app.call(*with_secret(written), **env) == [401] * len(with_secret(written))
        listed = app.flask("clients", "list", check=False, **env)
        assert listed.returncode == 1 and listed.stderr.count("\n") == 1, listed.stderr
        assert f"{len(CLIENTS)} client(s) in " in listed.stderr, listed.stderr
        assert listed.stderr.rstrip().endswith("run `flask clients init-db` to move them"), listed.stderr
        said = app.flask("clients", "init-db", **env).stdout
        assert said.startswith("Client tables upgraded in "), said
        assert f"moved {len(CLIENTS)} clients' credentials into clientauth_credentials" in said, said
    said = app.flask("clients", "init-db", **env).stdout
    assert said.startswith("Client tables already up to date in "), said
    assert_rows_kept(app, engine, written, events, **env)
    if moves and start == FIRST:
        downgrade_apps_revision(app, engine, written, **env)


def downgrade_apps_revision(app: UserApp, engine: Engine, written: list[dict[str, Any]], **env: str) -> None:
    """Back below ca0002 through the app's own generated revision, edited as the README says: the rows
    move back first, and the credentials table is dropped with its index (MariaDB's foreign key needs it)."""
    (path,) = app.revision_files()
    source = path.read_text()
    restore = (
        "from flask_clientauth.migrations.versions.ca0002_credentials_and_audit import restore_credentials\n"
        "    restore_credentials(op.get_bind())\n"
    )
    source = source.replace("def downgrade():\n", f"def downgrade():\n    {restore}", 1)
    index_drop = (
        "    with op.batch_alter_table('clientauth_credentials', schema=None) as batch_op:\n"
        "        batch_op.drop_index(batch_op.f('ix_clientauth_credentials_client_pk'))\n\n"
    )
    assert index_drop in source, source
    path.write_text(source.replace(index_drop, ""))
    app.flask("db", "downgrade", "base", **env)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT client_id, secret_hash FROM clientauth_clients")).all()
    assert {row.client_id for row in rows} == {c["client_id"] for c in written}
    assert sorted(row.secret_hash is not None for row in rows) == sorted(
        c["client_secret"] is not None for c in written
    )
    assert "clientauth_credentials" not in inspect(engine).get_table_names()
