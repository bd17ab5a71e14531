"""A ``redis-server`` of a test's own, on a free port, that the test can stop and start again: the
counter store going away and coming back (empty, as a restarted cache without persistence does)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import pytest

STARTUP_TIMEOUT = 20.0


class RedisServer:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = open(self.directory / "redis.log", "ab")  # noqa: SIM115  # closed by stop()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited: {(self.directory / 'redis.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("redis-server did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        if self._log is not None:
            self._log.close()
        self.proc, self._log = None, None


class RedisMonitor:
    """The commands clients send to a Redis server (``MONITOR``), without those scripts run inside
    it: one entry per round trip. ``with RedisMonitor(url) as seen: ...``, then ``seen`` lists them."""

    SENTINEL = "clientauth-monitor-stop"

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._redis.monitor() as monitor:
            self._ready.set()
            for entry in monitor.listen():
                if self.SENTINEL in entry["command"]:
                    return
                if entry["client_type"] != "lua":
                    self.commands.append(entry["command"])

    def __enter__(self) -> list[str]:
        self._thread.start()
        self._ready.wait(10)
        time.sleep(0.1)  # MONITOR is in force once the server answered OK, inside monitor()
        return self.commands

    def __exit__(self, *exc: object) -> None:
        self._redis.echo(self.SENTINEL)
        self._thread.join(10)
        self._redis.close()
