"""Shared pieces: the machine description, databases, gunicorn servers, small statistics."""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)


# -- statistics -----------------------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    vals = list(values)
    return statistics.median(vals) if vals else float("nan")


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


# -- the machine ----------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def _git_revision() -> str | None:
    try:
        rev = subprocess.run(
            ["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO_DIR, "status", "--porcelain", "--", "flask_clientauth"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + (" + uncommitted changes in flask_clientauth/" if dirty else "")) if rev else None


def machine_info(pg_version: str | None, loadgen: str) -> dict[str, Any]:
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    mem = _mem_total_gib()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gib": round(mem, 1) if mem else None,
        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version() + f" ({platform.python_implementation()})",
        "flask": _version("flask"),
        "werkzeug": _version("werkzeug"),
        "sqlalchemy": _version("sqlalchemy"),
        "bcrypt": _version("bcrypt"),
        "gunicorn": _version("gunicorn"),
        "psycopg": _version("psycopg"),
        "flask_httpauth": _version("flask-httpauth"),
        "flask_clientauth": _version("Flask-ClientAuth"),
        "git": _git_revision(),
        "postgresql": pg_version,
        "load_generator": loadgen,
    }


# -- databases ------------------------------------------------------------------------------
def postgres_version(url: str | None) -> tuple[str | None, str | None]:
    """(server version, None) when ``url`` answers, else (None, why not)."""
    if not url:
        return None, "no PostgreSQL URL (set CLIENTAUTH_BENCH_POSTGRES_URL or pass --postgres-url)"
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SHOW server_version")).scalar()
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return None, f"PostgreSQL not reachable ({type(exc).__name__})"
    return f"PostgreSQL {version}", None


def ensure_tables(url: str) -> None:
    from sqlalchemy import create_engine

    from flask_clientauth.models import Base

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.create_all(conn)
    finally:
        engine.dispose()


def make_store(url: str, rounds: int) -> Any:
    """A :class:`ClientStore` on its own engine (the benchmark's side, not a server's)."""
    from sqlalchemy import create_engine

    from flask_clientauth.store import ClientStore

    engine = create_engine(url)
    return ClientStore(lambda: engine, bcrypt_rounds=rounds)


# -- HTTP helpers ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def creds(client_id: str, secret: str | None) -> dict[str, str]:
    from bench_app import ID_HEADER, SECRET_HEADER

    headers = {ID_HEADER: client_id}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return headers


def connections_by_worker(
    port: int, pids: set[int], headers: dict[str, str], per_worker: int, timeout: float = 30.0
) -> dict[int, list[http.client.HTTPConnection]]:
    """Open connections until each worker holds ``per_worker`` of them (each answered 200).

    Which worker accepts a connection is up to the workers (and one may still be loading the
    app), so this retries for up to ``timeout`` seconds, pausing a little after each miss.
    """
    by_pid: dict[int, list[http.client.HTTPConnection]] = {pid: [] for pid in pids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(v) >= per_worker for v in by_pid.values()):
            break
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/pid", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET /pid was refused ({resp.status})")
        pid = int(body)
        if pid in by_pid and len(by_pid[pid]) < per_worker:
            by_pid[pid].append(conn)
        else:
            conn.close()
            time.sleep(0.02)
    missing = [pid for pid, v in by_pid.items() if len(v) < per_worker]
    if missing:
        raise RuntimeError(f"could not reach worker(s) {missing} with new connections")
    return by_pid


def warm_workers(server: Server, headers: dict[str, str]) -> None:
    """Have every worker verify ``headers`` once (one bcrypt each, one at a time), then close."""
    by_pid = connections_by_worker(server.port, server.worker_pids(), headers, 1)
    for conns in by_pid.values():
        for conn in conns:
            conn.close()


def _gunicorn_flags() -> list[str]:
    try:
        from gunicorn.config import KNOWN_SETTINGS

        names = {s.name for s in KNOWN_SETTINGS}
    except Exception:  # noqa: BLE001
        names = set()
    return ["--no-control-socket"] if "control_socket" in names else []


@dataclass
class Server:
    """A gunicorn server of one benchmark app on 127.0.0.1 and a free port."""

    kind: str
    database_url: str | None
    workers: int = 2
    threads: int = 4
    bcrypt_rounds: int = 12
    config: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    stats_dir: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _log: Any = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (BENCH_DIR, REPO_DIR, env.get("PYTHONPATH")) if p)
        env["BENCH_APP_KIND"] = self.kind
        env["BENCH_BCRYPT_ROUNDS"] = str(self.bcrypt_rounds)
        env["BENCH_CONFIG"] = json.dumps(self.config)
        env["BENCH_TOKENS"] = json.dumps(self.tokens)
        if self.database_url:
            env["BENCH_DATABASE_URL"] = self.database_url
        if self.stats_dir:
            env["BENCH_STATS_DIR"] = self.stats_dir
        else:
            env.pop("BENCH_STATS_DIR", None)
        return env

    def start(self, timeout: float = 60.0) -> Server:
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the server's life
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(self.workers),
            "--worker-class", "gthread",
            "--threads", str(self.threads),
            "--bind", f"127.0.0.1:{self.port}",
            "--keep-alive", "60",
            "--timeout", "120",
            "--graceful-timeout", "3",
            "--log-level", "warning",
            *_gunicorn_flags(),
            "bench_app:create_app()",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            env=self.env(),
            cwd=BENCH_DIR,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.kind}) exited: {self.log_tail()}")
            try:
                status, _ = http_get(self.port, "/public", timeout=2)
                if status == 200 and len(self.worker_pids()) >= self.workers:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn ({self.kind}) did not become ready in {timeout:.0f} s")

    def cpu_ticks(self) -> dict[int, int]:
        """User + system CPU ticks used so far by each worker (from /proc/PID/stat)."""
        ticks = {}
        for pid in self.worker_pids():
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            ticks[pid] = int(fields[11]) + int(fields[12])
        return ticks

    def worker_pids(self) -> set[int]:
        """The master's children, read from /proc."""
        assert self.proc is not None
        master = self.proc.pid
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    stat = fh.read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) > 2 and int(fields[1]) == master:
                pids.add(int(entry))
        return pids

    def log_tail(self, size: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        data: bytes = self._log.read()
        return data.decode("utf-8", "replace")[-size:]

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # our own gunicorn's process group
                proc.wait(timeout=10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Server:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
