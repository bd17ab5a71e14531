"""Alembic environment for Flask-ClientAuth's own tables.

Used by ``flask clients init-db`` (which passes a connection) and by plain ``alembic``
with ``-x url=...`` or ``CLIENTAUTH_DATABASE_URI`` set.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from flask_clientauth.migrate import VERSION_TABLE
from flask_clientauth.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("CLIENTAUTH_DATABASE_URI")
    if not url:
        raise RuntimeError("give the database URL with -x url=... or CLIENTAUTH_DATABASE_URI")
    return url


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        render_as_batch=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_online(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    run_online(config.attributes["connection"])
else:
    engine = create_engine(_url())
    with engine.begin() as conn:
        run_online(conn)
    engine.dispose()
