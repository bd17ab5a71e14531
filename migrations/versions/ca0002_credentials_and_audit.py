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

import sqlalchemy as sa
from alembic import op

revision = "ca0002"
down_revision = "ca0001"
branch_labels = None
depends_on = None


def move_credentials(conn: sa.Connection) -> int:
    """Move every client's pre-ca0002 client ID and secret hash into a credential; how many moved."""
    tables = sa.MetaData()
    tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
    clients, credentials = tables.tables["clientauth_clients"], tables.tables["clientauth_credentials"]
    rows = conn.execute(
        sa.select(clients.c.id, clients.c.client_id, clients.c.secret_hash, clients.c.created_at, clients.c.updated_at)
        .where(clients.c.client_id.is_not(None))
        .with_for_update()
    ).all()
    for row in rows:
        conn.execute(
            sa.insert(credentials).values(
                client_pk=row.id,
                client_id=row.client_id,
                label="",
                secret_hash=row.secret_hash,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
        conn.execute(sa.update(clients).where(clients.c.id == row.id).values(client_id=None, secret_hash=None))
    return len(rows)


def upgrade() -> None:
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
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.add_column(sa.Column("roles", sa.Text(), nullable=False, server_default=""))
        batch.alter_column("client_id", existing_type=sa.String(length=64), nullable=True)
    move_credentials(op.get_bind())


def downgrade() -> None:
    conn = op.get_bind()
    tables = sa.MetaData()
    tables.reflect(conn, only=["clientauth_clients", "clientauth_credentials"])
    clients, credentials = tables.tables["clientauth_clients"], tables.tables["clientauth_credentials"]
    counts = conn.execute(sa.select(credentials.c.client_pk, sa.func.count()).group_by(credentials.c.client_pk)).all()
    if (
        any(count > 1 for _, count in counts)
        or conn.execute(
            sa.select(sa.func.count()).select_from(clients).where(~clients.c.id.in_(sa.select(credentials.c.client_pk)))
        ).scalar_one()
    ):
        raise RuntimeError(
            "cannot downgrade below ca0002: a client has more than one credential (or none); "
            "revoke the extra credentials first (`flask clients credentials revoke`)"
        )
    for row in conn.execute(sa.select(credentials)).all():
        conn.execute(
            sa.update(clients)
            .where(clients.c.id == row.client_pk)
            .values(client_id=row.client_id, secret_hash=row.secret_hash)
        )
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.alter_column("client_id", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("roles")
    op.drop_index(op.f("ix_clientauth_audit_client_ref"), table_name="clientauth_audit")
    op.drop_index(op.f("ix_clientauth_audit_created_at"), table_name="clientauth_audit")
    op.drop_table("clientauth_audit")
    op.drop_index(op.f("ix_clientauth_credentials_client_pk"), table_name="clientauth_credentials")
    op.drop_table("clientauth_credentials")
