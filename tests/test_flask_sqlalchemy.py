"""``ClientAuth(app, db=db)``: clients live in the app's own Flask-SQLAlchemy database."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Integer, String, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Mapped, mapped_column

from flask_clientauth import ClientAuth, current_client
from flask_clientauth.models import Base

from conftest import TUTORIAL_SPEC

OUR_TABLES = set(Base.metadata.tables)


def make_db() -> tuple[SQLAlchemy, type]:
    """A user's ``db`` with a model of its own."""
    db = SQLAlchemy()

    class Branch(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "branch"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        city: Mapped[str] = mapped_column(String(80))

    return db, Branch


def make_user_app(name: str, url: str, tmp_path: Path) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / f"instance-{name}"))
    app.config.update(
        TESTING=True,
        SQLALCHEMY_DATABASE_URI=url,
        CLIENTAUTH_SPEC=TUTORIAL_SPEC,
        CLIENTAUTH_BCRYPT_ROUNDS=4,
        CLIENTAUTH_REVOCATION_INTERVAL=0,
    )

    @app.get("/api/branches")
    def branches() -> Any:
        return jsonify(client_id=current_client.client_id if current_client else None, app=name)

    return app


@pytest.fixture
def cleanup() -> Iterator[Callable[[Flask, SQLAlchemy], None]]:
    """Register (app, db) pairs: their own tables are dropped and their engines disposed."""
    registered: list[tuple[Flask, SQLAlchemy]] = []
    yield lambda app, db: registered.append((app, db))
    for app, db in registered:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS branch"))
                Base.metadata.drop_all(conn)
            for engine in db.engines.values():
                engine.dispose()


def headers(client_id: str, secret: str) -> dict[str, str]:
    return {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}


def cli_create(app: Flask, name: str) -> tuple[str, str]:
    result = app.test_cli_runner().invoke(args=["clients", "create", name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data["client_id"], data["client_secret"]


def test_clients_live_in_the_apps_database(database_url: str, tmp_path: Path, cleanup: Any) -> None:
    db, Branch = make_db()
    app = make_user_app("single", database_url, tmp_path)
    db.init_app(app)
    ClientAuth(app, db=db)
    cleanup(app, db)
    assert OUR_TABLES <= set(db.metadata.tables)
    state = app.extensions["clientauth"]
    assert state.engine is None  # no engine of its own
    with app.app_context():
        assert state.store.engine is db.engine
        expected = make_url(database_url)
        got = db.engine.url
        assert (got.drivername, got.host, got.port, got.database) == (
            expected.drivername,
            expected.host,
            expected.port,
            expected.database,
        )
        db.create_all()  # the app's tables and ours, together
        assert OUR_TABLES | {"branch"} <= set(inspect(db.engine).get_table_names())

    client_id, secret = cli_create(app, "Branch mobile app")
    with app.app_context():
        # the row is in the app's database, readable through the app's own session
        clients = db.metadata.tables["clientauth_clients"]
        credentials = db.metadata.tables["clientauth_credentials"]
        names = (
            db.session.execute(
                select(clients.c.name)
                .join(credentials, credentials.c.client_pk == clients.c.id)
                .where(credentials.c.client_id == client_id)
            )
            .scalars()
            .all()
        )
        assert names == ["Branch mobile app"]
        db.session.add(Branch(city="Armonk"))
        db.session.commit()
    response = app.test_client().get("/api/branches", headers=headers(client_id, secret))
    assert response.status_code == 200
    assert response.get_json()["client_id"] == client_id
    assert app.test_client().get("/api/branches", headers=headers(client_id, "x" * 43)).status_code == 401
    # nothing went to the extension's default SQLite file
    assert not (Path(app.instance_path) / "clientauth.sqlite3").exists()

    # the same rows seen from outside the app
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ids = conn.execute(text("SELECT client_id FROM clientauth_credentials")).scalars().all()
    finally:
        engine.dispose()
    assert ids == [client_id]


# module-level objects, as in an app factory project
factory_db, _FactoryBranch = make_db()
factory_auth = ClientAuth(db=factory_db)


def create_app(name: str, url: str, tmp_path: Path) -> Flask:
    app = make_user_app(name, url, tmp_path)
    factory_db.init_app(app)
    factory_auth.init_app(app)
    return app


def test_app_factory(database_url: str, tmp_path: Path, cleanup: Any) -> None:
    assert OUR_TABLES <= set(factory_db.metadata.tables)
    app = create_app("factory", database_url, tmp_path)
    cleanup(app, factory_db)
    result = app.test_cli_runner().invoke(args=["clients", "init-db"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert OUR_TABLES <= set(inspect(factory_db.engine).get_table_names())
        assert factory_auth.store(app).engine is factory_db.engine
    client_id, secret = cli_create(app, "Factory client")
    response = app.test_client().get("/api/branches", headers=headers(client_id, secret))
    assert response.status_code == 200 and response.get_json()["client_id"] == client_id
    disabled = app.test_cli_runner().invoke(args=["clients", "disable", client_id])
    assert disabled.exit_code == 0, disabled.output
    assert app.test_client().get("/api/branches", headers=headers(client_id, secret)).status_code == 403


def test_two_apps_with_different_databases_keep_separate_clients(
    database_url: str, tmp_path: Path, cleanup: Any
) -> None:
    first = create_app("first", f"sqlite:///{tmp_path}/first.sqlite3", tmp_path)
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path}/second.sqlite3"
    second = create_app("second", database_url, tmp_path)
    cleanup(first, factory_db)
    cleanup(second, factory_db)
    for app in (first, second):
        with app.app_context():
            factory_db.create_all()

    one = cli_create(first, "Client of the first app")
    two = cli_create(second, "Client of the second app")

    for app, mine, other in ((first, one, two), (second, two, one)):
        client = app.test_client()
        response = client.get("/api/branches", headers=headers(*mine))
        assert response.status_code == 200
        assert response.get_json() == {"client_id": mine[0], "app": app.name}
        response = client.get("/api/branches", headers=headers(*other))
        assert response.status_code == 401
        assert response.get_json()["moreInformation"] == "Client ID not registered"
        listed = app.test_cli_runner().invoke(args=["clients", "list", "--json"])
        assert [c["client_id"] for c in json.loads(listed.stdout)] == [mine[0]]

    # a change in one app's database does not reach the other
    deleted = first.test_cli_runner().invoke(args=["clients", "delete", one[0], "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert first.test_client().get("/api/branches", headers=headers(*one)).status_code == 401
    assert second.test_client().get("/api/branches", headers=headers(*two)).status_code == 200
