"""Flask-ClientAuth as a user has it: a built wheel, installed (not editable) in a virtualenv of its own.

Built and installed once per test session (``installed(tmp_path_factory)``); each test then writes
a user's app (``USER_APP``) into a directory of its own and runs the real ``flask db ...`` and
``flask clients ...`` commands there in subprocesses. The wheel's dependencies are not installed
again: a ``.pth`` file lends the virtualenv the test environment's site-packages, after its own, so
``flask_clientauth`` itself is only found in the wheel (``Installed.package_dir`` checks it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

REPO = Path(__file__).resolve().parent.parent
#: What a wheel is built from (setup.cfg reads README.md and LICENSE).
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "flask_clientauth", "migrations")
TIMEOUT = 120

#: A user's app. The environment chooses the set-up, so one file serves every test:
#: ``CLIENTAUTH_SETUP`` ``own`` (``ClientAuth(app)`` on ``CLIENTAUTH_DATABASE_URI``) or ``db``
#: (``ClientAuth(app, db=db)``); ``USE_MIGRATE`` adds Flask-Migrate; ``INCLUDE_OBJECT`` passes
#: our hook to it as the README says; ``EXTRA_MODEL`` adds a second model of the app's own.
USER_APP = '''
import json
import logging
import os

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flask_clientauth import ClientAuth, current_client

SPEC = {
    "swagger": "2.0",
    "info": {"title": "Branches", "version": "1"},
    "basePath": "/api",
    "securityDefinitions": {
        "clientId": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Id"},
        "clientSecret": {"type": "apiKey", "in": "header", "name": "X-IBM-Client-Secret"},
    },
    "security": [{"clientId": [], "clientSecret": []}],
    "paths": {"/branches": {"get": {"responses": {"200": {"description": "ok"}}}}},
}

app = Flask(__name__, instance_path=os.path.abspath("instance"))
app.config.update(
    SQLALCHEMY_DATABASE_URI=os.environ["APP_DATABASE_URL"],
    CLIENTAUTH_SPEC=SPEC,
    CLIENTAUTH_BCRYPT_ROUNDS=4,
    CLIENTAUTH_REVOCATION_INTERVAL=0,
    CLIENTAUTH_RATELIMIT_ENABLED=False,
)
if "CLIENTAUTH_DATABASE_URI" in os.environ:
    app.config["CLIENTAUTH_DATABASE_URI"] = os.environ["CLIENTAUTH_DATABASE_URI"]

db = SQLAlchemy(app)


class Branch(db.Model):
    __tablename__ = "branch"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    city: Mapped[str] = mapped_column(String(80))


if os.environ.get("EXTRA_MODEL"):

    class Region(db.Model):
        __tablename__ = "region"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)


if os.environ.get("USE_MIGRATE"):
    from flask_migrate import Migrate

    if os.environ.get("INCLUDE_OBJECT"):
        from flask_clientauth.migrate import include_object

        migrate = Migrate(app, db, include_object=include_object)
    else:
        migrate = Migrate(app, db)

auth = ClientAuth(app, db=db) if os.environ["CLIENTAUTH_SETUP"] == "db" else ClientAuth(app)


@app.get("/api/branches")
def branches():
    return {"client": current_client.client_id}


@app.cli.command("call")
@click.argument("credentials")
def call(credentials):
    """GET /api/branches with each {"id": ..., "secret": ...} of the JSON list; print the statuses."""
    logging.basicConfig(level=logging.INFO, format="LOG %(levelname)s %(message)s")
    http = app.test_client()
    statuses = []
    for c in json.loads(credentials):
        headers = {"X-IBM-Client-Id": c["id"], "X-IBM-Client-Secret": c["secret"]}
        statuses.append(http.get("/api/branches", headers=headers).status_code)
    click.echo(json.dumps(statuses))
'''


@dataclass
class Installed:
    """The virtualenv holding the installed wheel."""

    python: Path
    package_dir: Path

    def package_files(self) -> set[str]:
        """Every file of the installed package (bytecode caches aside)."""
        return {
            str(p.relative_to(self.package_dir))
            for p in self.package_dir.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }


@dataclass
class UserApp:
    """A user's project directory with ``userapp.py``; :meth:`flask` runs ``flask --app userapp ...`` there."""

    installed: Installed
    directory: Path
    env: dict[str, str] = field(default_factory=dict)

    def flask(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.installed.python), "-m", "flask", "--app", "userapp", *args]
        result = subprocess.run(
            command,
            cwd=self.directory,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, f"{' '.join(args)}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def create(self, name: str, **env: str) -> dict[str, Any]:
        """``flask clients create NAME --json``: the new client, with its secret."""
        data: dict[str, Any] = json.loads(self.flask("clients", "create", name, "--json", **env).stdout)
        return data

    def call(self, *clients: dict[str, Any], **env: str) -> list[int]:
        """The status of ``GET /api/branches`` with each client's ID and secret."""
        credentials = json.dumps([{"id": c["client_id"], "secret": c["client_secret"]} for c in clients])
        return list(json.loads(self.flask("call", credentials, **env).stdout))

    def revision_files(self) -> list[Path]:
        """The app's own revision files, oldest first."""
        return sorted((self.directory / "migrations" / "versions").glob("*.py"), key=lambda p: p.stat().st_mtime)

    def revisions(self) -> list[str]:
        """The sources of the app's own revision files, oldest first."""
        return [p.read_text() for p in self.revision_files()]


_session: dict[str, Installed] = {}


def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel and install it in a fresh virtualenv, once per test session."""
    if "venv" in _session:
        return _session["venv"]
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    dist = root / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)])
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)])
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    lent = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (purelib / "_test_dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(lent)))
    found = run([str(python), "-c", "import flask_clientauth; print(flask_clientauth.__file__)"], cwd=root).strip()
    package_dir = Path(found).parent
    assert package_dir.parent == purelib, f"flask_clientauth imported from {found}, not from the wheel"
    _session["venv"] = Installed(python, package_dir)
    return _session["venv"]


def migrations_template(venv: Installed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What ``flask db init`` writes (the same for every app): run once per session, copied by ``db_init``."""
    if "migrations" not in _session_dirs:
        app = user_app(venv, tmp_path_factory.mktemp("db-init"), CLIENTAUTH_SETUP="db", USE_MIGRATE="1")
        app.flask("db", "init", APP_DATABASE_URL=f"sqlite:///{app.directory}/unused.sqlite3")
        _session_dirs["migrations"] = app.directory / "migrations"
    return _session_dirs["migrations"]


def db_init(app: UserApp, template: Path) -> None:
    """``flask db init`` in ``app``'s project, from the session's template."""
    shutil.copytree(template, app.directory / "migrations")


_session_dirs: dict[str, Path] = {}


def run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=clean_env())
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the test session's Python or Flask settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIENTAUTH_", "FLASK_", "SQLALCHEMY_", "PYTHON", "PYTEST"))
    }
    env.update(extra)
    return env


def user_app(installed: Installed, directory: Path, **env: str) -> UserApp:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "userapp.py").write_text(USER_APP)
    return UserApp(installed, directory, clean_env(**env))


def empty_database(url: str) -> None:
    """Drop every table: the app's, ours, both version tables."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = inspect(conn).get_table_names()
            for name in ("branch", "region", "alembic_version", "clientauth_alembic_version"):
                if name in names:
                    conn.execute(text(f"DROP TABLE {name}"))
        from flask_clientauth.models import Base

        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
