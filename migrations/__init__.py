"""Alembic migrations for Flask-ClientAuth's tables (installed as ``flask_clientauth.migrations``).

Run them with ``flask clients init-db``, or add :data:`flask_clientauth.migrate.VERSIONS_DIR`
to your Flask-Migrate ``version_locations`` and run ``flask db upgrade heads``.
"""
