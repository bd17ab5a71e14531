"""Credentials of their own, roles, and the audit log.

Each client's one client ID and secret hash move from ``clientauth_clients`` into a row of the new
``clientauth_credentials``; the two old columns are emptied, not dropped (an app's own autogenerate
must never be led to drop them). ``flask clients init-db`` in the app's-db set-up makes the same move
through :func:`move_credentials` after the app's migrations have added the tables.

Revision ID: ca0002
Revises: ca0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "ca0002"
down_revision = "ca0001"
branch_labels = None
depends_on = None


def move_credentials(conn: sa.Connection) -> int:
    """Move every client's pre-ca0002 client ID and secret hash into a credential; how many moved.

    Idempotent (a moved client's old columns are empty), so ``init-db`` may run it on every deploy.
    """
    tables = sa.MetaData()
    tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
    clients, credentials = tables.tables["clientauth_clients"], tables.tables["clientauth_credentials"]
    legacy = clients.c.client_id.is_not(None)
    # Locks the rows: a second init-db at the same time waits, then finds nothing left to move.
    moving = len(conn.execute(sa.select(clients.c.id).where(legacy).with_for_update()).all())
    if moving:
        columns = ["client_pk", "client_id", "label", "secret_hash", "created_at", "updated_at"]
        kept = (clients.c.id, clients.c.client_id, sa.literal("", sa.String()), clients.c.secret_hash)
        conn.execute(
            sa.insert(credentials).from_select(
                columns, sa.select(*kept, clients.c.created_at, clients.c.updated_at).where(legacy)
            )
        )
        conn.execute(sa.update(clients).where(legacy).values(client_id=None, secret_hash=None))
    return moving


def upgrade() -> None:
    # The clients table first, while no foreign key points at it: SQLite's batch mode rebuilds it.
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.add_column(sa.Column("roles", sa.Text(), nullable=False, server_default=""))
        batch.alter_column("client_id", existing_type=sa.String(length=64), nullable=True)
    op.create_table(
        "clientauth_credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_pk", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_hash", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_pk"],
            ["clientauth_clients.id"],
            name=op.f("fk_clientauth_credentials_client_pk_clientauth_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clientauth_credentials")),
        sa.UniqueConstraint("client_id", name=op.f("uq_clientauth_credentials_client_id")),
    )
    op.create_index(op.f("ix_clientauth_credentials_client_pk"), "clientauth_credentials", ["client_pk"], unique=False)
    op.create_table(
        "clientauth_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("client_ref", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.String(length=64), nullable=True),
        sa.Column("client_name", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clientauth_audit")),
    )
    op.create_index(op.f("ix_clientauth_audit_created_at"), "clientauth_audit", ["created_at"], unique=False)
    op.create_index(op.f("ix_clientauth_audit_client_ref"), "clientauth_audit", ["client_ref"], unique=False)
    move_credentials(op.get_bind())


def _names(rows: list[sa.Row[Any]]) -> str:
    shown = ", ".join(repr(row.name) for row in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


def restore_credentials(conn: sa.Connection) -> int:
    """Put each client's one credential back into its row (the reverse of :func:`move_credentials`);
    how many. Refuses, changing nothing, when a client has several credentials or none."""
    tables = sa.MetaData()
    tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
    clients, credentials = tables.tables["clientauth_clients"], tables.tables["clientauth_credentials"]
    counted = (
        sa.select(clients.c.id, clients.c.name, sa.func.count(credentials.c.id).label("credentials"))
        .select_from(clients.outerjoin(credentials, credentials.c.client_pk == clients.c.id))
        .group_by(clients.c.id, clients.c.name)
        .order_by(clients.c.id)
    )
    rows = conn.execute(counted).all()
    several = [row for row in rows if row.credentials > 1]
    none = [row for row in rows if row.credentials == 0]
    if several or none:
        problems = []
        if several:
            problems.append(
                f"{len(several)} client(s) have several credentials ({_names(several)}): revoke all but one "
                "of each first (`flask clients credentials revoke CLIENT_ID`)"
            )
        if none:
            problems.append(f"{len(none)} client(s) have no credential ({_names(none)}): delete them first")
        raise RuntimeError(
            "cannot downgrade the client tables below revision ca0002, which keeps one credential per "
            f"client: {'; '.join(problems)}"
        )
    for row in conn.execute(sa.select(credentials)).all():
        conn.execute(
            sa.update(clients)
            .where(clients.c.id == row.client_pk)
            .values(client_id=row.client_id, secret_hash=row.secret_hash)
        )
    return len(rows)


def downgrade() -> None:
    """Back to one credential per client, held in its row. Roles, labels, expiry, grace periods and
    the audit log are lost; a client with several credentials (or none) stops the downgrade."""
    restore_credentials(op.get_bind())
    # Dropped with their indexes: MariaDB refuses to drop the index a foreign key needs.
    op.drop_table("clientauth_audit")
    op.drop_table("clientauth_credentials")
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.alter_column("client_id", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("roles")
