"""Running the shipped Alembic migrations against the client store."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.config import Config

# Imported by name: the package is the repository's top-level ``migrations/`` folder, mapped
# to ``flask_clientauth.migrations`` by setup.cfg's ``package_dir``, which type checkers cannot follow.
_migrations = importlib.import_module("flask_clientauth.migrations")

#: The Alembic scripts shipped with the package (the repository's ``migrations/`` folder,
#: installed as the ``flask_clientauth.migrations`` package).
MIGRATIONS_DIR = os.path.dirname(os.path.abspath(str(_migrations.__file__)))
#: Where the revision files live: add it to ``version_locations`` to use them from Flask-Migrate.
VERSIONS_DIR = os.path.join(MIGRATIONS_DIR, "versions")
#: Our own version table, so that the app's ``alembic_version`` is never touched.
VERSION_TABLE = "clientauth_alembic_version"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR)
    return config


def upgrade(engine: Engine, revision: str = "clientauth@head") -> None:
    """Bring the client tables up to ``revision`` (default: the newest)."""
    from alembic import command

    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
