"""A client's plan in the store, on every backend: assigned, changed, counted, audited, seen by
every process through the change log, and kept by the ca0003 upgrade and downgrade."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import jsonify
from sqlalchemy import Engine, MetaData, create_engine, insert, inspect, select

from flask_clientauth import ClientStore, current_client
from flask_clientauth.migrate import downgrade, upgrade
from flask_clientauth.store import ClientNotFound
from test_migrations import current_revisions, schema_diff

from conftest import AppFactory, FakeClock, headers


@pytest.fixture
def store(make_app: AppFactory, database_url: str) -> ClientStore:
    return make_app(database_url=database_url).extensions["clientauth"].store  # type: ignore[no-any-return]


def test_create_with_a_plan_and_change_it(store: ClientStore) -> None:
    record, _ = store.create("Partner feed", plan="gold", actor="alice")
    second, _ = store.add_credential(record.client_id, label="ci")
    assert record.plan == "gold" and record.to_dict()["plan"] == "gold"
    assert store.require(second.client_id).plan == "gold"  # the client's, whichever credential it is seen by
    changed = store.set_plan(second.client_id, "silver", actor="bob")
    assert changed.plan == "silver" and store.require(record.client_id).plan == "silver"
    assert store.set_plan(record.client_id, None, actor="carol").plan is None
    entries = [(e.action, e.actor, e.detail) for e in store.audit(record.client_id)]
    assert entries[0] == ("create", "alice", {"roles": [], "expires_at": None, "plan": "gold"})
    assert entries[-2:] == [
        ("plan", "bob", {"previous": "gold", "plan": "silver"}),
        ("plan", "carol", {"previous": "silver", "plan": None}),
    ]


def test_plan_counts(store: ClientStore) -> None:
    assert store.plan_counts() == {}
    for name, plan in (("a", "gold"), ("b", "gold"), ("c", None), ("d", "bronze")):
        record, _ = store.create(name, plan=plan)
        store.add_credential(record.client_id)  # credentials are not clients
    assert store.plan_counts() == {"gold": 2, None: 1, "bronze": 1}


@pytest.mark.parametrize("name", ["", "gold plan", "x" * 65, "gold\n", "g\u00f6ld"])
def test_a_plan_name_that_could_never_be_configured_is_refused_and_nothing_changes(
    store: ClientStore, name: str
) -> None:
    with pytest.raises(ValueError, match="a plan name must be 1 to 64"):
        store.create("Refused", plan=name)
    record, _ = store.create("Kept", plan="gold")
    with pytest.raises(ValueError, match="a plan name must be 1 to 64"):
        store.set_plan(record.client_id, name)
    assert [c.name for c in store.list()] == ["Kept"] and store.require(record.client_id).plan == "gold"
    assert [e.action for e in store.audit()] == ["create"]


def test_set_plan_of_an_unknown_client(store: ClientStore) -> None:
    with pytest.raises(ClientNotFound):
        store.set_plan("no-such-client", "gold")


def test_every_process_sees_a_plan_change_within_the_revocation_interval(
    make_app: AppFactory, database_url: str, other_process: ClientStore, clock: FakeClock
) -> None:
    """The app caches the client; a plan changed by another process (the CLI) reaches the request's
    ``current_client.plan`` at the next poll of the change log, not before."""
    interval = 0.5
    app = make_app(database_url=database_url, routes=False, CLIENTAUTH_REVOCATION_INTERVAL=interval, clock=clock)
    app.add_url_rule("/api/branches", "branches", lambda: jsonify(plan=current_client.plan))
    record, secret = app.extensions["clientauth"].store.create("Mobile app", plan="bronze")
    assert secret is not None
    client = app.test_client()

    def plan_seen() -> Any:
        response = client.get("/api/branches", headers=headers(record.client_id, secret))
        assert response.status_code == 200
        return response.get_json()["plan"]

    assert plan_seen() == "bronze"
    other_process.set_plan(record.client_id, "gold", actor="cli")
    assert plan_seen() == "bronze"  # cached: the interval has not passed
    clock.advance(interval + 0.05)
    assert plan_seen() == "gold"
    other_process.set_plan(record.client_id, None)
    clock.advance(interval + 0.05)
    assert plan_seen() is None


# -- revision ca0003 ---------------------------------------------------------------------------


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url)
    yield eng
    eng.dispose()


def populate_at_ca0002(engine: Engine) -> dict[str, Any]:
    """A client with roles and two credentials, written with ca0002's schema (no plan column)."""
    upgrade(engine, "ca0002")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with engine.begin() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
        clients, credentials = tables.tables["clientauth_clients"], tables.tables["clientauth_credentials"]
        assert "plan" not in clients.c
        pk = conn.execute(
            insert(clients).values(
                name="Written at ca0002", description="", enabled=True, roles="admin", created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        ids = ["c" * 32, "d" * 32]
        for cid in ids:
            conn.execute(
                insert(credentials).values(client_pk=pk, client_id=cid, label="", created_at=now, updated_at=now)
            )
    return {"pk": pk, "client_ids": ids}


def test_ca0003_upgrade_keeps_every_client_without_a_plan_and_downgrade_drops_only_the_column(
    engine: Engine, database_url: str, make_app: AppFactory
) -> None:
    written = populate_at_ca0002(engine)
    upgrade(engine)
    assert current_revisions(engine) == {"ca0003"} and schema_diff(engine) == []
    store = make_app(database_url=database_url, create_tables=False).extensions["clientauth"].store
    record = store.require(written["client_ids"][1])
    assert (record.plan, record.roles, record.client_ids()) == (None, ("admin",), written["client_ids"])
    store.set_plan(record.client_id, "gold")

    downgrade(engine, "ca0002")
    assert current_revisions(engine) == {"ca0002"}
    assert "plan" not in {c["name"] for c in inspect(engine).get_columns("clientauth_clients")}
    with engine.connect() as conn:
        tables = MetaData()
        tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
        rows = conn.execute(
            select(tables.tables["clientauth_clients"].c.name, tables.tables["clientauth_clients"].c.roles)
        ).all()
        assert [tuple(r) for r in rows] == [("Written at ca0002", "admin")]
        assert len(conn.execute(select(tables.tables["clientauth_credentials"])).all()) == 2

    upgrade(engine)  # and back: the plan was lost with the column, the client kept
    assert schema_diff(engine) == [] and store.require(record.client_id).plan is None
