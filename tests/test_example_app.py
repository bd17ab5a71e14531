"""``make run`` / ``python -m example_app`` as a newcomer meets it: what it installs, a busy port,
repeated runs, and stopping its server when the suite runs in the background."""

from __future__ import annotations

import ast
import configparser
import contextlib
import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from servers import CLIENT_NAME, REPO, Server, cli, cli_json, example_env, free_port


def make_dry_run(*args: str) -> list[str]:
    # Under a parent make (``make test``, .ci/run), MAKELEVEL / MAKEFLAGS would make this one print
    # "Entering/Leaving directory" lines: run it as a user would, from a shell.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines()


@pytest.mark.skipif(not Path("/usr/bin/make").exists(), reason="make is not installed")
def test_make_run_installs_the_project_without_the_test_extras(tmp_path: Path) -> None:
    """The project and its portal extra (Flask-WTF: the portal's CSRF tokens), nothing for tests."""
    lines = make_dry_run(f"VENV={tmp_path}/venv")
    installs = [line for line in lines if "pip install" in line]
    assert installs == [f"{tmp_path}/venv/bin/python -m pip install -e '.[portal]'"]
    assert lines[-1] == f"PORT=5000 {tmp_path}/venv/bin/python -m example_app"
    assert make_dry_run(f"VENV={tmp_path}/venv", "PORT=5123")[-1].startswith("PORT=5123 ")


def test_the_example_imports_only_what_the_project_installs() -> None:
    """So ``make run``'s ``pip install -e '.[portal]'`` is enough: every third-party import of the
    example is an install requirement or in the portal extra (gunicorn, for its own config, is
    optional and guarded)."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    lines += config["options.extras_require"]["portal"].strip().splitlines()
    required = {re.split(r"[<>=\[; ]", line.strip())[0].lower().replace("_", "-") for line in lines}
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for path in (REPO / "example_app").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = {
            id(node)
            for handler in ast.walk(tree)
            if isinstance(handler, ast.Try)
            and any(isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in handler.handlers)
            for node in ast.walk(handler)
        }
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("example_app", "flask_clientauth", "__future__"):
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & required:
                    missing.add(f"{path.name}: {name}")
    assert not missing, f"the example imports packages make run does not install: {sorted(missing)}"


@contextlib.contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


@pytest.mark.slow
def test_a_busy_port_fails_before_a_client_is_created(tmp_path: Path) -> None:
    with busy_port() as port:
        env = example_env(tmp_path / "instance", "openapi2", PORT=str(port))
        assert cli(env, "init-db").returncode == 0
        result = subprocess.run(
            [sys.executable, "-m", "example_app"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is in use by another program" in result.stderr
    assert f"PORT={port + 1} make run" in result.stderr
    assert "Client secret" not in result.stdout
    assert cli_json(env, "list") == []


def run_once(root: Path, env: dict[str, str], port: int) -> tuple[Server, str, str]:
    """``python -m example_app`` serving, with the client ID and secret it printed."""
    root.mkdir()
    srv = Server([sys.executable, "-m", "example_app"], env, root, port, "openapi2")
    srv.wait_ready()
    client_id = srv.wait_for_output(r"^Client ID:\s+(\S+)$").group(1)
    secret = srv.wait_for_output(r"^Client secret:\s+(\S+)").group(1)
    return srv, client_id, secret


def branches(srv: Server, client_id: str, secret: str) -> requests.Response:
    headers = {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
    return requests.get(srv.url + "/api/branches", headers=headers, timeout=10)


@pytest.mark.slow
def test_repeated_runs_leave_one_working_demo_client(tmp_path: Path) -> None:
    """A second run reuses the first run's client: same ID, a new secret; the old secret stops working."""
    env = example_env(tmp_path / "instance", "openapi2", PORT=str(free_port()))
    port = int(env["PORT"])
    first, first_id, first_secret = run_once(tmp_path / "first", env, port)
    try:
        assert branches(first, first_id, first_secret).status_code == 200
    finally:
        assert first.stop() == 0, first.output()
    second, second_id, second_secret = run_once(tmp_path / "second", env, port)
    try:
        assert second_id == first_id and second_secret != first_secret
        assert "(from an earlier run: same ID, new secret)" in second.output()
        assert branches(second, second_id, second_secret).status_code == 200
        refused = branches(second, first_id, first_secret)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == 'ApiKey in="header", name="X-IBM-Client-Id"'
        listed = cli_json(env, "list")
        assert [(c["client_id"], c["name"], c["enabled"]) for c in listed] == [(first_id, CLIENT_NAME, True)]
    finally:
        assert second.stop() == 0, second.output()


def ignored_signals(pid: int) -> int:
    """The process's mask of ignored signals (Linux ``/proc/PID/status``)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^SigIgn:\s+([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc/PID/status (Linux)")
def test_a_server_started_from_a_background_job_still_stops(tmp_path: Path) -> None:
    """``make test &`` hands every child an ignored SIGINT; the servers the tests start must still stop
    when the test ends, by SIGTERM, on their own (exit status 0, not a SIGKILL after the timeout)."""
    env = example_env(tmp_path / "instance", "openapi2", PORT=str(free_port()))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does for a background job
    try:
        srv = Server([sys.executable, "-m", "example_app"], env, tmp_path, int(env["PORT"]), "openapi2")
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        srv.wait_ready()
        assert ignored_signals(srv.proc.pid) & (1 << (signal.SIGINT - 1)), "the server inherited the ignored SIGINT"
    finally:
        code = srv.stop()
    assert code == 0, srv.output()
    assert json.loads(cli(env, "list", "--json").stdout)[0]["name"] == CLIENT_NAME


@pytest.mark.slow
def test_make_run_prints_the_portal_and_a_login_that_works(tmp_path: Path) -> None:
    """What a newcomer does after ``make run``: open the printed URL, log in with the printed user
    and password, and see the demo client; a wrong password or no login gets nothing."""
    env = example_env(tmp_path / "instance", "openapi2", PORT=str(free_port()))
    srv, client_id, _secret = run_once(tmp_path / "run", env, int(env["PORT"]))
    try:
        url = srv.wait_for_output(r"^  Portal:\s+(\S+)$").group(1)
        user = srv.wait_for_output(r"^  User:\s+(\S+)$").group(1)
        password = srv.wait_for_output(r"^  Password:\s+(\S+)").group(1)
        assert url == f"{srv.url}/admin/keys/" and user == "admin" and len(password) >= 12
        browser = requests.Session()
        login = browser.get(url, timeout=10)  # redirected to the login page
        assert login.url.startswith(f"{srv.url}/login?next=/admin/keys/")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        wrong = browser.post(login.url, data={"csrf_token": token, "username": user, "password": "x"}, timeout=10)
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        page = browser.post(login.url, data={"csrf_token": token, "username": user, "password": password}, timeout=10)
        assert page.status_code == 200 and page.url == url
        assert CLIENT_NAME in page.text and client_id in page.text
        assert page.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        assert requests.get(url, allow_redirects=False, timeout=10).status_code == 302
        # the admin API, behind the same login
        listed = browser.get(f"{srv.url}/admin/api/clients", timeout=10)
        assert listed.status_code == 200
        assert [c["client_id"] for c in listed.json()["items"]] == [client_id]
        assert requests.get(f"{srv.url}/admin/api/clients", timeout=10).status_code == 401
    finally:
        assert srv.stop() == 0, srv.output()
    assert password not in srv.output().split("  Password:")[1].split("\n", 1)[1]  # printed once, never logged


@pytest.mark.slow
def test_the_chosen_admin_password_is_not_printed(tmp_path: Path) -> None:
    env = example_env(
        tmp_path / "instance", "openapi2", PORT=str(free_port()), EXAMPLE_ADMIN_PASSWORD="chosen-pass-123"
    )
    srv, _client_id, _secret = run_once(tmp_path / "run", env, int(env["PORT"]))
    try:
        assert srv.wait_for_output(r"^  Password:\s+(.+)$").group(1) == "(EXAMPLE_ADMIN_PASSWORD)"
    finally:
        assert srv.stop() == 0, srv.output()
    assert "chosen-pass-123" not in srv.output()
