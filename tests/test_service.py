"""The service layer: what every front end (CLI, portal, admin API) gets alike — the actor in the
audit log, ``can_manage``, input checks that change nothing, the credential maximum, and pagination
in SQL that holds 10,000 clients. On every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import insert

from flask_clientauth.models import clients_table, credentials_table
from flask_clientauth.service import ClientService, Created, ServiceError
from flask_clientauth.store import utcnow

from conftest import AppFactory


@pytest.fixture
def app(make_app: AppFactory, database_url: str) -> Flask:
    return make_app(database_url=database_url)


def service(app: Flask, actor: str | None = "alice", **kw: Any) -> ClientService:
    return ClientService(app.extensions["clientauth"], actor=actor, **kw)


def owned_by(user: str) -> Any:
    """``can_manage`` of the tests: a client is ``user``'s when its description says so."""
    return lambda record: record.description == f"owner:{user}"


def audit_count(app: Flask) -> int:
    return len(app.extensions["clientauth"].store.audit())


def refused(code: str, status: int, call: Any, *args: Any, **kw: Any) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        call(*args, **kw)
    assert (info.value.code, info.value.status) == (code, status), info.value.message
    return info.value


def test_create_returns_the_secret_once_and_audits_the_actor(app: Flask) -> None:
    created = service(app).create("Mobile", roles=["admin", "read"], label="ci")
    assert isinstance(created, Created)
    assert created.secret is not None and created.secret.startswith("fcsk_")
    assert created.secret not in repr(created)
    shape = created.to_dict()
    assert shape["client_secret"] == created.secret and shape["roles"] == ["admin", "read"]
    [entry] = app.extensions["clientauth"].store.audit()
    assert (entry.action, entry.actor, entry.client_id) == ("create", "alice", created.record.client_id)


def test_every_write_is_audited_with_the_actor(app: Flask) -> None:
    svc = service(app, "bob")
    cid = svc.create("App").record.client_id
    other = svc.add_credential(cid, label="laptop").record.client_id
    svc.reset_secret(cid, grace=timedelta(hours=1))
    svc.set_secret(other, "a-chosen-secret-of-length")
    assert svc.verify_secret(other, "a-chosen-secret-of-length")
    assert not svc.verify_secret(other, "wrong-secret-wrong-secret")
    svc.set_expiry(cid, utcnow() + timedelta(days=3))
    svc.set_enabled(cid, False)
    svc.set_roles(cid, add=["x"])
    svc.revoke_credential(other)
    new_id = svc.reset_client_id(cid).record.client_id
    svc.delete(new_id)
    actions = [(e.action, e.actor) for e in svc.audit()]
    assert actions == [
        (a, "bob")
        for a in (
            "create",
            "credential.add",
            "secret.reset",
            "secret.set",
            "expiry",
            "disable",
            "roles",
            "credential.revoke",
            "client_id.reset",
            "delete",
        )
    ]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, c: s.create(""), "name"),
        (lambda s, c: s.create("x" * 201), "name"),
        (lambda s, c: s.create(42), "name"),
        (lambda s, c: s.create("ok", roles="admin"), "roles"),
        (lambda s, c: s.create("ok", roles=["bad role"]), "roles"),
        (lambda s, c: s.create("ok", label="l" * 201), "label"),
        (lambda s, c: s.create("ok", description="d" * 2001), "description"),
        (lambda s, c: s.create("ok", expires_at=utcnow() - timedelta(seconds=1)), "expires_at"),
        (lambda s, c: s.create("ok", expires_at=utcnow().replace(tzinfo=None) + timedelta(days=1)), "expires_at"),
        (lambda s, c: s.add_credential(c, label="a\x00b"), "label"),
        (lambda s, c: s.reset_secret(c, grace=timedelta(0)), "grace"),
        (lambda s, c: s.reset_secret(c, grace=timedelta(days=40000)), "grace"),
        (lambda s, c: s.set_secret(c, "short"), "secret"),
        (lambda s, c: s.set_secret(c, "fcsk_looks-generated-but-is-not"), "secret"),
        (lambda s, c: s.set_expiry(c, utcnow()), "expires_at"),
        (lambda s, c: s.set_enabled(c, "yes"), "enabled"),
        (lambda s, c: s.set_roles(c, add=["a"], remove=["a"]), "roles"),
        (lambda s, c: s.set_roles(c, add=["a b"]), "add"),
        (lambda s, c: s.list_clients(page=0), "page"),
        (lambda s, c: s.list_clients(per_page=501), "per_page"),
        (lambda s, c: s.list_clients(status="gone"), "status"),
        (lambda s, c: s.list_clients(search="s" * 201), "search"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(app: Flask, call: Any, field: str) -> None:
    svc = service(app)
    cid = svc.create("App").record.client_id
    before, entries = svc.get(cid), audit_count(app)
    error = refused("invalid_input", 400, call, svc, cid)
    assert error.field == field
    assert svc.get(cid) == before and audit_count(app) == entries
    assert svc.list_clients().total == 1


def test_unknown_client_is_not_found(app: Flask) -> None:
    svc = service(app)
    error = refused("not_found", 404, svc.get, "nope")
    assert error.message == "no client with ID 'nope'"
    for call in (svc.delete, svc.reset_client_id, svc.revoke_credential, svc.audit):
        refused("not_found", 404, call, "nope")


def test_the_maximum_of_credentials(make_app: AppFactory, database_url: str) -> None:
    app = make_app(database_url=database_url, CLIENTAUTH_MAX_CREDENTIALS=3)
    svc = service(app)
    cid = svc.create("App").record.client_id
    svc.add_credential(cid)
    svc.add_credential(cid)
    entries = audit_count(app)
    error = refused("too_many_credentials", 409, svc.add_credential, cid)
    assert "3 credentials, the maximum (CLIENTAUTH_MAX_CREDENTIALS)" in error.message
    assert len(svc.get(cid).credentials) == 3 and audit_count(app) == entries


def test_the_default_maximum_is_five(app: Flask) -> None:
    svc = service(app)
    cid = svc.create("App").record.client_id
    for _ in range(4):
        svc.add_credential(cid)
    refused("too_many_credentials", 409, svc.add_credential, cid)


def test_the_last_credential_cannot_be_revoked(app: Flask) -> None:
    svc = service(app)
    cid = svc.create("App").record.client_id
    error = refused("last_credential", 409, svc.revoke_credential, cid)
    assert "disable or delete the client instead" in error.message


def test_can_manage_hides_other_actors_clients(app: Flask) -> None:
    alice = service(app, "alice", can_manage=owned_by("alice"))
    bob = service(app, "bob", can_manage=owned_by("bob"))
    mine = alice.create("A1", description="owner:alice").record.client_id
    alice.create("A2", description="owner:alice")
    theirs = bob.create("B1", description="owner:bob").record.client_id
    refused("not_permitted", 403, alice.create, "B2", description="owner:bob")
    assert [r.name for r in alice.list_clients().items] == ["A1", "A2"]
    assert alice.list_clients().total == 2 and bob.list_clients().total == 1
    before, entries = bob.get(theirs), audit_count(app)
    for call in (
        alice.get,
        alice.delete,
        alice.reset_client_id,
        alice.reset_secret,
        alice.add_credential,
        alice.audit,
        lambda c: alice.set_enabled(c, False),
        lambda c: alice.set_roles(c, add=["x"]),
        lambda c: alice.set_expiry(c, None),
        lambda c: alice.set_secret(c, "a-long-enough-secret"),
        lambda c: alice.verify_secret(c, "whatever-it-is"),
    ):
        error = refused("not_found", 404, call, theirs)
        assert error.message == f"no client with ID {theirs!r}"  # the same words as for a missing one
    assert bob.get(theirs) == before and audit_count(app) == entries
    assert {e.client_id for e in alice.audit()} == {mine, alice.list_clients().items[1].client_id}
    assert [e.client_id for e in bob.audit()] == [theirs]
    assert len(service(app, "root").audit()) == 3  # no can_manage: everything


def test_can_manage_pages_count_only_the_actors_clients(app: Flask) -> None:
    store = app.extensions["clientauth"].store
    for i in range(12):
        store.create(f"key-{i:02}", description="owner:alice" if i % 3 == 0 else "owner:bob")
    alice = service(app, can_manage=owned_by("alice"))
    first, second = alice.list_clients(per_page=3), alice.list_clients(page=2, per_page=3)
    assert (first.total, first.pages) == (4, 2)
    assert [r.name for r in first.items + second.items] == ["key-00", "key-03", "key-06", "key-09"]
    assert alice.list_clients(search="KEY-03").total == 1 and alice.list_clients(search="key-1").total == 0


def test_scope_filters_in_sql_and_hides_like_can_manage(app: Flask) -> None:
    store = app.extensions["clientauth"].store
    for i in range(6):
        store.create(f"key-{i}", description="owner:alice" if i % 2 else "owner:bob")
    theirs = store.find_clients(search="key-0")[0].client_id
    scope = clients_table.c.description == "owner:alice"
    for alice in (service(app, scope=scope), service(app, scope=scope, can_manage=owned_by("alice"))):
        page = alice.list_clients(per_page=2)
        assert (page.total, page.pages, [r.name for r in page.items]) == (3, 2, ["key-1", "key-3"])
        refused("not_found", 404, alice.get, theirs)
        refused("not_found", 404, alice.set_enabled, theirs, False)
        assert {e.client_name for e in alice.audit()} == {"key-1", "key-3", "key-5"}
    assert service(app, scope=scope, can_manage=lambda r: r.name != "key-3").list_clients().total == 2


def test_search_and_status(app: Flask) -> None:
    svc = service(app)
    a = svc.create("Payments 100%").record
    svc.create("payments_batch")
    c = svc.create("Other").record
    svc.set_enabled(c.client_id, False)
    assert [r.name for r in svc.list_clients(search="PAYMENTS").items] == ["Payments 100%", "payments_batch"]
    assert [r.name for r in svc.list_clients(search="100%").items] == ["Payments 100%"]
    assert [r.name for r in svc.list_clients(search="s_b").items] == ["payments_batch"]  # _ is no wildcard
    assert [r.name for r in svc.list_clients(search=a.client_id[3:12]).items] == ["Payments 100%"]
    assert [r.name for r in svc.list_clients(status="disabled").items] == ["Other"]
    assert svc.list_clients(status="enabled").total == 2
    assert svc.list_clients(page=9).items == [] and svc.list_clients(page=9).total == 3


def test_a_page_holds_every_credential_of_its_clients(app: Flask) -> None:
    svc = service(app)
    cid = svc.create("Two").record.client_id
    svc.add_credential(cid)
    [record] = svc.list_clients().items
    assert record.client_id == cid and len(record.credentials) == 2


def bulk_clients(app: Flask, count: int) -> None:
    """``count`` clients, inserted in one statement each for the clients and their credentials."""
    store = app.extensions["clientauth"].store
    now = utcnow()
    with store.engine.begin() as conn:
        conn.execute(
            insert(clients_table),
            [
                {
                    "name": f"client {i:05}",
                    "description": "",
                    "enabled": i % 10 != 0,
                    "roles": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )
        pks = [row.id for row in conn.execute(clients_table.select().order_by(clients_table.c.id))]
        conn.execute(
            insert(credentials_table),
            [
                {"client_pk": pk, "client_id": f"bulk{pk:08}", "label": "", "created_at": now, "updated_at": now}
                for pk in pks
            ],
        )


def test_ten_thousand_clients(app: Flask) -> None:
    bulk_clients(app, 10_000)
    svc = service(app)
    page = svc.list_clients(page=200, per_page=50)
    assert (page.total, page.pages, len(page.items)) == (10_000, 200, 50)
    assert page.items[-1].name == "client 09999"
    assert svc.list_clients(status="disabled").total == 1_000
    found = svc.list_clients(search="client 0424")
    assert [r.name for r in found.items] == [f"client 0424{i}" for i in range(10)]
    narrowed = service(app, can_manage=lambda r: r.name.endswith("7"))
    last = narrowed.list_clients(page=20, per_page=50)
    assert (last.total, len(last.items), last.items[-1].name) == (1_000, 50, "client 09997")
