"""Both storage set-ups, in either order, as a user runs them: the real ``flask db`` and ``flask clients``
commands in subprocesses, against the installed wheel, on every backend (README, "Storage and migrations").

- the app's db (``ClientAuth(app, db=db)``): the app's migrations own our tables, with Flask-Migrate
  set up before ``init-db`` or after it;
- the own engine sharing the app's database, and the move from it to the app's db: the app's
  autogenerate, with our ``include_object`` hook, never proposes to drop or alter what we keep;
- and nothing the user generates is ever written inside the installed package.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from flask_clientauth import ClientStore
from flask_clientauth.migrate import TABLES
from installed import (
    Installed,
    UserApp,
    db_init,
    empty_database,
    installed,
    migrations_template,
    table_names,
    user_app,
)

#: Every test here starts a real server or process (``pytest -m "not slow"`` leaves them out).
pytestmark = pytest.mark.slow

OURS = tuple(sorted(TABLES))
VERSION_TABLE = "clientauth_alembic_version"


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return installed(tmp_path_factory)


@pytest.fixture(scope="session")
def initialised(venv: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrations_template(venv, tmp_path_factory)


@pytest.fixture
def url(database_url: str) -> Iterator[str]:
    """The backend's database with no table at all (the app's ``branch`` and ``alembic_version`` too)."""
    empty_database(database_url)
    yield database_url
    empty_database(database_url)


@pytest.fixture
def project(venv: Installed, url: str, tmp_path: Path) -> Iterator[UserApp]:
    """The user's project on ``url``; afterwards, the installed package holds exactly the files it had."""
    before = venv.package_files()
    yield user_app(venv, tmp_path / "project", APP_DATABASE_URL=url)
    assert venv.package_files() == before, "a file was written inside the installed package"


def create_clients(url: str, *names: str, disable: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Register clients straight in the store (as ``flask clients create --json`` prints them)."""
    engine = create_engine(url)
    try:
        store = ClientStore(lambda: engine, bcrypt_rounds=4)
        made = []
        for name in names:
            record, secret = store.create(name)
            if name in disable:
                store.set_enabled(record.client_id, False)
            made.append({"client_id": record.client_id, "client_secret": secret})
        return made
    finally:
        engine.dispose()


def assert_leaves_ours_alone(revision: str) -> None:
    """The app's generated revision neither creates, alters nor drops anything of ours."""
    assert "clientauth" not in revision, revision


def assert_creates_only(revision: str, *tables: str) -> None:
    created = {t for t in ("branch", "region", *OURS) if f"op.create_table('{t}'" in revision}
    assert created == set(tables), revision
    assert "drop_table" not in revision.split("def downgrade")[0], revision


def test_apps_db_with_flask_migrate_first(project: UserApp, url: str, initialised: Path) -> None:
    """The README's commands: ``flask db migrate`` puts our tables in the app's history; ``init-db`` then
    finds them up to date."""
    env = {"CLIENTAUTH_SETUP": "db", "USE_MIGRATE": "1", "INCLUDE_OBJECT": "1"}
    db_init(project, initialised)
    project.flask("db", "migrate", "-m", "Flask-ClientAuth tables", **env)
    (initial,) = project.revisions()
    assert_creates_only(initial, "branch", *OURS)
    project.flask("db", "upgrade", **env)
    result = project.flask("clients", "init-db", **env)
    assert result.stdout.startswith("Client tables already up to date in "), result.stdout
    assert VERSION_TABLE not in table_names(url)
    (client,) = create_clients(url, "Branch mobile app")
    assert project.call(client, **env) == [200]
    # the app's next model: its revision adds that table and nothing about ours
    project.flask("db", "migrate", "-m", "region", **env, EXTRA_MODEL="1")
    assert_leaves_ours_alone(project.revisions()[1])
    assert_creates_only(project.revisions()[1], "region")


def test_apps_db_with_init_db_first(project: UserApp, url: str, initialised: Path) -> None:
    """``init-db`` creates the tables without a version table of ours, so Flask-Migrate added later
    (even without our hook) finds nothing of ours to change."""
    env = {"CLIENTAUTH_SETUP": "db"}
    result = project.flask("clients", "init-db", **env)
    assert result.stdout.startswith("Client tables created in "), result.stdout
    assert VERSION_TABLE not in table_names(url)
    (client,) = create_clients(url, "Branch mobile app")

    env["USE_MIGRATE"] = "1"
    db_init(project, initialised)
    project.flask("db", "migrate", "-m", "initial", **env)
    (initial,) = project.revisions()
    assert_leaves_ours_alone(initial)
    assert_creates_only(initial, "branch")
    project.flask("db", "upgrade", **env)
    result = project.flask("clients", "init-db", **env)
    assert result.stdout.startswith("Client tables already up to date in "), result.stdout
    assert project.call(client, **env) == [200]


def test_own_engine_sharing_the_apps_database_then_moving_to_it(project: UserApp, url: str, initialised: Path) -> None:
    """``ClientAuth(app)`` with ``CLIENTAUTH_DATABASE_URI`` on the app's database and ``init-db`` first;
    Flask-Migrate with our hook added later; then the move to ``ClientAuth(app, db=db)``, as the README
    says. The app's autogenerate never proposes to drop our tables or our version table, and every
    client keeps its ID, secret and state."""
    own = {"CLIENTAUTH_SETUP": "own", "CLIENTAUTH_DATABASE_URI": url}
    assert project.flask("clients", "init-db", **own).stdout.startswith("Client tables created in ")
    assert {*OURS, VERSION_TABLE} <= table_names(url)
    enabled, disabled = create_clients(url, "Branch mobile app", "Retired kiosk", disable=("Retired kiosk",))

    own.update(USE_MIGRATE="1", INCLUDE_OBJECT="1")
    db_init(project, initialised)
    project.flask("db", "migrate", "-m", "initial", **own)
    (initial,) = project.revisions()
    assert_leaves_ours_alone(initial)
    assert_creates_only(initial, "branch")
    project.flask("db", "upgrade", **own)

    moved = {"CLIENTAUTH_SETUP": "db", "USE_MIGRATE": "1", "INCLUDE_OBJECT": "1"}
    result = project.flask("db", "migrate", "-m", "moved", **moved)
    assert "No changes in schema detected" in result.stderr, result.stderr
    assert len(project.revisions()) == 1
    result = project.flask("clients", "init-db", **moved)
    assert result.stdout.startswith("Client tables already up to date in "), result.stdout
    assert project.call(enabled, disabled, **moved) == [200, 403]
