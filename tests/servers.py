"""Real servers and processes for the tests: the example app under gunicorn (:class:`Server`), the
``flask clients`` CLI (:func:`cli`), and a test's own app module served by a real server: gunicorn
(one sync worker) or Werkzeug's.

That module is :data:`PRELUDE` (a Flask app protected by the document in ``SERVED_SPEC``, on the
SQLite file ``SERVED_DB``, with a public ``GET /api/status`` for the readiness probe) followed by
the test's own code. Used where the server matters: the environ it builds (``RAW_URI``,
``REQUEST_URI``, joined headers), and a thread that serves one request after another.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine

from flask_clientauth import ClientStore
from flask_clientauth.models import Base

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

#: The issue's promise: a CLI change reaches every server process within 5 seconds.
PROPAGATION_LIMIT = 5.0
STARTUP_TIMEOUT = 60.0
HTTP_TIMEOUT = 10.0
#: Concurrent requests per probing round, so that both gunicorn workers get some.
BATCH = 4

BRANCH_NAMES = ["Downtown", "Riverside", "Airport Terminal B"]
CLIENT_NAME = "Branch mobile app"


def unauthorized(text: str) -> dict[str, str]:
    return {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": text}


# -- processes ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_env(instance: Path, variant: str, **extra: str) -> dict[str, str]:
    """The environment ``create_app`` reads: spec variant, instance folder, fast bcrypt.

    ``CLIENTAUTH_DATABASE_URI`` is left unset: the store is the default SQLite file in the
    instance folder. Failure throttling has its own tests; it is off here so that the
    probing below counts only the tutorial's answers.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIENTAUTH_", "EXAMPLE_", "FLASK_", "GUNICORN_")) and k != "WEB_CONCURRENCY"
    }
    env.update(
        EXAMPLE_SPEC=variant,
        EXAMPLE_INSTANCE_PATH=str(instance),
        CLIENTAUTH_BCRYPT_ROUNDS="4",
        CLIENTAUTH_RATELIMIT_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def cli(
    env: dict[str, str], *args: str, stdin: str | None = None, close_stdin: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``flask --app example_app clients ARGS`` as an operator would (``close_stdin``: ``<&-``)."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "example_app", "clients", *args],
        cwd=REPO,
        env=env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=(lambda: os.close(0)) if close_stdin else None,
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    result = cli(env, *args, "--json")
    assert result.returncode == 0, f"flask clients {' '.join(args)} failed:\n{result.stderr}"
    return json.loads(result.stdout)


class Server:
    """A server process in its own process group; output goes to files in ``root``."""

    def __init__(self, cmd: list[str], env: dict[str, str], root: Path, port: int, variant: str) -> None:
        self.env = env
        self.variant = variant
        self.url = f"http://127.0.0.1:{port}"
        self.stdout_path = root / "server.out"
        self.stderr_path = root / "server.err"
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Wait (bounded) until the public status operation answers."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/api/status", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not answering after {STARTUP_TIMEOUT:.0f}s:\n{self.output()}")

    def wait_for_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output(), re.MULTILINE)
            if match is not None:
                return match
            if time.monotonic() > deadline:
                pytest.fail(f"{pattern!r} not in the server output after {timeout:.0f}s:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the whole process group and wait (bounded); kill it if it lingers.

        SIGTERM, not SIGINT: a suite started in the background (``make test &``, nohup, CI
        wrappers) hands its servers an ignored SIGINT, and they would only die by SIGKILL.
        """
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        return int(self.proc.returncode)

    # -- gunicorn: which worker answered ------------------------------------------------
    def worker_pids(self) -> set[int]:
        """The live gunicorn workers (two), from the error log."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            log = self.output()
            booted = {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", log)}
            gone = {int(p) for p in re.findall(r"Worker exiting \(pid: (\d+)\)", log)}
            live = booted - gone
            if len(live) == 2:
                return live
            if time.monotonic() > deadline:
                pytest.fail(f"expected 2 live gunicorn workers, found {sorted(live)}:\n{log}")
            time.sleep(0.05)

    def served_by(self, tags: list[str]) -> dict[str, tuple[int, int]]:
        """For each tagged request: the pid of the worker that answered it and its access-log line.

        A worker writes its lines in the order it handled the requests, so the line numbers
        order one worker's answers even when the client received them out of order.
        """
        pattern = re.compile(r"[?&]probe=([0-9a-f]{32})\S* HTTP/1\.[01]\" \d{3} .* <(\d+)>$")
        deadline = time.monotonic() + 10
        while True:
            lines = self.stdout_path.read_text().splitlines()
            found = {
                m.group(1): (int(m.group(2)), number)
                for number, line in enumerate(lines)
                for m in [pattern.search(line)]
                if m is not None
            }
            if all(t in found for t in tags):
                return {t: found[t] for t in tags}
            if time.monotonic() > deadline:
                missing = [t for t in tags if t not in found]
                pytest.fail(f"access log lines missing for {missing}:\n{self.output()}")
            time.sleep(0.02)


PRELUDE = """
import json, os
from flask import Flask, jsonify, request
from flask_clientauth import ClientAuth, client_key, current_client

app = Flask("served_app", instance_path=os.environ["SERVED_INSTANCE"])
app.config.update(
    CLIENTAUTH_SPEC=json.loads(os.environ["SERVED_SPEC"]),
    CLIENTAUTH_DATABASE_URI=os.environ["SERVED_DB"],
    CLIENTAUTH_BCRYPT_ROUNDS=4,
    CLIENTAUTH_RATELIMIT_ENABLED=False,
    **json.loads(os.environ["SERVED_CONFIG"]),
)
auth = ClientAuth(app)


@app.get("/api/status")
def status():
    return "ok"

"""

WERKZEUG = """
import sys
sys.path.insert(0, sys.argv[1])
from served_app import app
from werkzeug.serving import run_simple
run_simple("127.0.0.1", int(sys.argv[2]), app)
"""


def database(root: Path) -> tuple[str, ClientStore]:
    """A SQLite database with our tables under ``root``, and a store on it (the operator's side)."""
    url = f"sqlite:///{root / 'served.sqlite3'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    return url, ClientStore(lambda: engine, bcrypt_rounds=4)


@contextmanager
def serve(
    root: Path, code: str, *, spec: dict[str, Any], database_url: str, server: str = "gunicorn", **config: Any
) -> Iterator[Server]:
    """Serve :data:`PRELUDE` + ``code`` with ``server`` (``gunicorn`` or ``werkzeug``) until the block ends."""
    (root / "served_app.py").write_text(PRELUDE + code)
    port = free_port()
    if server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync"]
        cmd += ["--bind", f"127.0.0.1:{port}", "--chdir", str(root), "served_app:app"]
    else:
        (root / "run_werkzeug.py").write_text(WERKZEUG)
        cmd = [sys.executable, str(root / "run_werkzeug.py"), str(root), str(port)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIENTAUTH_", "FLASK_", "GUNICORN_")) and k != "WEB_CONCURRENCY"
    }
    env.update(
        SERVED_INSTANCE=str(root / "instance"),
        SERVED_SPEC=json.dumps(spec),
        SERVED_DB=database_url,
        SERVED_CONFIG=json.dumps(config),
        PYTHONUNBUFFERED="1",
    )
    srv = Server(cmd, env, root, port, server)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()
