"""Alembic migrations for Flask-ClientAuth's tables (installed as ``flask_clientauth.migrations``).

``flask clients init-db`` runs them for the extension's own engine. With ``ClientAuth(app, db=db)``
the app's own Flask-Migrate history holds the tables instead; never add this directory to an app's
``version_locations`` (its next revision would be written here, inside the installed package).
"""
