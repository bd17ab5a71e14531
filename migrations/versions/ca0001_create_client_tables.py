"""Create the clientauth_clients and clientauth_events tables.

Revision ID: ca0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca0001"
down_revision = None
branch_labels = ("clientauth",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clientauth_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(length=128), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clientauth_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_clientauth_clients_client_id")),
    )
    op.create_table(
        "clientauth_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clientauth_events")),
    )
    op.create_index(
        op.f("ix_clientauth_events_created_at"), "clientauth_events", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_clientauth_events_created_at"), table_name="clientauth_events")
    op.drop_table("clientauth_events")
    op.drop_table("clientauth_clients")
