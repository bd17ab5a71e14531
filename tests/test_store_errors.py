"""Store faults name themselves and their fix, in the CLI and in the log of the first request.

Real faults on every backend: tables not created yet, a closed port, a database that does not
exist, a refused user or password. The CLI runs from the installed wheel (``flask clients list`` in a
subprocess); the request runs in-process and its log is read. No message ever shows the password.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from installed import Installed, installed, user_app

from conftest import AppFactory

#: Every test here starts a real server or process (``pytest -m "not slow"`` leaves them out).
pytestmark = pytest.mark.slow

PASSWORD = "Db-Password-1"
MISSING_TABLES = "the client tables do not exist in {url}: run `flask clients init-db` (or `flask db upgrade`)"


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return installed(tmp_path_factory)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server(backend: str) -> URL:
    var = {"postgresql": "CLIENTAUTH_TEST_POSTGRES_URL", "mariadb": "CLIENTAUTH_TEST_MARIADB_URL"}[backend]
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{backend}: set {var} to run this test on {backend}")
    return make_url(url)


def shown(url: URL) -> str:
    """How a message shows ``url``: the backend without its driver, the password masked."""
    auth = f"{url.username}{':***' if url.password else ''}@" if url.username else ""
    where = f"{url.host}:{url.port}" if url.port else (url.host or "")
    return f"{url.get_backend_name()}://{auth}{where}/{url.database}"


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def cli_error(venv: Installed, tmp_path: Path, url: str) -> str:
    """The one line ``flask clients list`` prints when the store at ``url`` cannot be used."""
    app = user_app(
        venv,
        tmp_path / "project",
        APP_DATABASE_URL=f"sqlite:///{tmp_path}/app.sqlite3",
        CLIENTAUTH_SETUP="own",
        CLIENTAUTH_DATABASE_URI=url,
    )
    result = app.flask("clients", "list", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: client store unavailable: "), result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    return lines[0].removeprefix("Error: client store unavailable: ")


def request_log(make_app: AppFactory, caplog: pytest.LogCaptureFixture, url: str) -> str:
    """What the log says about the store at the first request (answered 503)."""
    app = make_app(database_url=url, create_tables=False, CLIENTAUTH_RATELIMIT_ENABLED=False)
    headers = {"X-IBM-Client-Id": "0123456789abcdef0123456789abcdef", "X-IBM-Client-Secret": "s" * 43}
    with caplog.at_level(logging.INFO, logger="flask_clientauth"):
        assert app.test_client().get("/api/branches", headers=headers).status_code == 503
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert PASSWORD not in "".join(r.getMessage() for r in caplog.records)
    assert errors[0].startswith("clientauth: client store unavailable: "), errors
    return errors[0].removeprefix("clientauth: client store unavailable: ").removesuffix("; answering 503")


def with_password(url: str) -> str:
    """``url`` with a password where the server ignores it (PostgreSQL's trust authentication)."""
    parsed = make_url(url)
    return url_text(parsed.set(password=PASSWORD)) if parsed.get_backend_name() == "postgresql" else url


@pytest.fixture
def faulty_url(database_url: str) -> Iterator[str]:
    yield with_password(database_url)


def test_missing_tables(venv: Installed, tmp_path: Path, make_app: AppFactory, caplog, faulty_url: str) -> None:
    expected = MISSING_TABLES.format(url=shown(make_url(faulty_url)))
    if faulty_url.startswith("sqlite"):
        expected = MISSING_TABLES.format(url=faulty_url)
    assert cli_error(venv, tmp_path, faulty_url) == expected
    assert request_log(make_app, caplog, faulty_url) == expected


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_server_unreachable(venv: Installed, tmp_path: Path, make_app: AppFactory, caplog, backend: str) -> None:
    port = closed_port()
    url = server(backend).set(port=port, password=PASSWORD)
    expected = (
        f"cannot connect to the database server at 127.0.0.1:{port} (connection refused): "
        f"check that it runs and {shown(url)} is right"
    )
    assert cli_error(venv, tmp_path, url_text(url)) == f"{expected}; check CLIENTAUTH_DATABASE_URI"
    assert request_log(make_app, caplog, url_text(url)) == expected


@pytest.mark.parametrize("backend", ["postgresql", "mariadb", "sqlite"])
def test_database_missing(venv: Installed, tmp_path: Path, make_app: AppFactory, caplog, backend: str) -> None:
    if backend == "sqlite":
        url = make_url(f"sqlite:///{tmp_path}/no/such/directory/clients.sqlite3")
        expected = f"cannot open the SQLite database {url_text(url)}: its directory must exist and be writable"
    else:
        base = server(backend)
        url = base.set(database="clientauth_no_such_database", password=PASSWORD if backend == "postgresql" else None)
        server_at = f"{base.host}:{base.port or {'postgresql': 5432, 'mariadb': 3306}[backend]}"
        expected = (
            f"the database 'clientauth_no_such_database' does not exist on the server at {server_at}: "
            f"create it, or fix {shown(url)}"
        )
    assert cli_error(venv, tmp_path, url_text(url)) == f"{expected}; check CLIENTAUTH_DATABASE_URI"
    assert request_log(make_app, caplog, url_text(url)) == expected


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_authentication_failed(venv: Installed, tmp_path: Path, make_app: AppFactory, caplog, backend: str) -> None:
    """MariaDB's root has no password here, so one given is refused; PostgreSQL trusts any password,
    so the user is one that does not exist (refused the same way, SQLSTATE 28000)."""
    base = server(backend)
    user = "clientauth_no_such_role" if backend == "postgresql" else base.username
    url = base.set(username=user, password=PASSWORD)
    server_at = f"{base.host}:{base.port or {'postgresql': 5432, 'mariadb': 3306}[backend]}"
    expected = (
        f"the database server at {server_at} refused user {user!r} (authentication failed): "
        f"check the user name and password of {shown(url)}"
    )
    assert cli_error(venv, tmp_path, url_text(url)) == f"{expected}; check CLIENTAUTH_DATABASE_URI"
    assert request_log(make_app, caplog, url_text(url)) == expected
