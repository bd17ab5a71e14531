"""Plans: the plan each client is on (``None``: ``CLIENTAUTH_DEFAULT_PLAN``, or not limited).

Revision ID: ca0003
Revises: ca0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ca0003"
down_revision = "ca0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.add_column(sa.Column("plan", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Every client's plan is lost: after the downgrade, each is held to the default plan (if any)."""
    with op.batch_alter_table("clientauth_clients") as batch:
        batch.drop_column("plan")
