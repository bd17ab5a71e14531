"""Plan limits over HTTP with Redis: exactness and Redis round trips per request (a minute or so).

    python benchmarks/bench_planlimits.py [--limit 200] [--requests 600] [--connections 8]

Starts a ``redis-server`` of its own on a free port (so that its command counts are this run's
alone) and the id+secret benchmark app under gunicorn (2 gthread workers of 4 threads) with one
plan of ``LIMIT/hour`` as the default, counted in that Redis. One client then sends REQUESTS
requests over CONNECTIONS keep-alive connections at once. Prints how many were admitted (must be
exactly LIMIT), the commands the workers sent to Redis (``MONITOR``: one round trip each; the
limited client's first request in each worker also makes the failure throttle's checks), the
commands Redis ran (``INFO commandstats``: the scripts' own commands too), and the request rates
of a client on a plan whose limit it never reaches and of one without a plan, in alternated rounds.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from bench_common import Server, creds, ensure_tables, free_port, make_store, warm_workers


def redis_commands(port: int) -> Counter[str]:
    """Every command the Redis server ran so far, by name (INFO itself left out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
            data += sock.recv(65536)
        header, _, rest = data.partition(b"\r\n")
        size = int(header[1:])
        while len(rest) < size + 2:
            rest += sock.recv(65536)
    counts: Counter[str] = Counter()
    for line in rest[:size].decode().splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            name, _, fields = line.partition(":")
            counts[name.removeprefix("cmdstat_")] = int(dict(f.split("=") for f in fields.split(","))["calls"])
    return counts


class RedisMonitor:
    """The commands clients send (``MONITOR``), without those the scripts run inside Redis: one entry
    per round trip, as ``with RedisMonitor(port) as sent: ...`` leaves them in ``sent``."""

    SENTINEL = "bench-monitor-stop"

    def __init__(self, port: int) -> None:
        import redis

        self._redis = redis.Redis(port=port)
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
        time.sleep(0.1)
        return self.commands

    def __exit__(self, *exc: object) -> None:
        self._redis.echo(self.SENTINEL)
        self._thread.join(10)
        self._redis.close()


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            redis_commands(port)
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def load(port: int, headers: dict[str, str], requests: int, connections: int) -> tuple[Counter[int], float]:
    """``requests`` GET /hello over ``connections`` keep-alive connections at once: (statuses, seconds)."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    share = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    barrier = threading.Barrier(connections + 1)

    def run(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: Counter[int] = Counter()
        barrier.wait()
        for _ in range(n):
            conn.request("GET", "/hello", headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine[resp.status] += 1
        conn.close()
        with lock:
            statuses.update(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in share]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return statuses, time.perf_counter() - started


def main(limit: int, requests: int, connections: int, rounds: int = 3) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clientauth-planlimits-") as tmp:
        redis_proc, redis_port = start_redis(tmp)
        try:
            url = f"sqlite:///{tmp}/clients.sqlite3"
            ensure_tables(url)
            store = make_store(url, 4)
            limited, limited_secret = store.create("limited", plan="bench")
            roomy, roomy_secret = store.create("roomy", plan="roomy")
            free, free_secret = store.create("no plan")
            store.engine.dispose()
            assert limited_secret is not None and free_secret is not None and roomy_secret is not None
            storage = f"redis://127.0.0.1:{redis_port}/0"
            config = {
                "CLIENTAUTH_PLANS": {
                    "bench": {"rate_limits": [f"{limit}/hour"]},
                    "roomy": {"rate_limits": ["1000000000/hour"]},
                },
                "CLIENTAUTH_RATELIMIT_STORAGE_URI": storage,
            }
            with Server("id-secret", url, bcrypt_rounds=4, config=config) as server:
                limited_headers = creds(limited.client_id, limited_secret)
                free_headers = creds(free.client_id, free_secret)
                roomy_headers = creds(roomy.client_id, roomy_secret)
                warm_workers(server, free_headers)
                warm_workers(server, roomy_headers)
                # the limited client's first request on each worker verifies its secret: not measured
                before = redis_commands(redis_port)
                with RedisMonitor(redis_port) as sent:
                    statuses, _seconds = load(server.port, limited_headers, requests, connections)
                delta = redis_commands(redis_port) - before
                # the rates: alternated rounds of a client always admitted (its limit out of reach)
                # and of one without a plan, each after a warm-up round
                rates: dict[str, list[float]] = {"plan": [], "none": []}
                for name, headers in (("plan", roomy_headers), ("none", free_headers)) * (rounds + 1):
                    _statuses, took = load(server.port, headers, requests, connections)
                    rates[name].append(requests / took)
        finally:
            redis_proc.kill()
            redis_proc.wait()
    client_commands = Counter(c.split()[0].strip('"').upper() for c in sent)
    return {
        "limit": limit,
        "requests": requests,
        "connections": connections,
        "admitted": statuses[200],
        "refused": statuses[429],
        "other": sum(n for s, n in statuses.items() if s not in (200, 429)),
        "evalsha_per_request": client_commands["EVALSHA"] / requests,
        "client_commands": dict(client_commands),
        "commands_run_by_redis": dict(delta),
        "rate_plan_median": statistics.median(rates["plan"][1:]),
        "rate_no_plan_median": statistics.median(rates["none"][1:]),
        "rates": rates,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    result = main(args.limit, args.requests, args.connections)
    for key, value in result.items():
        print(f"{key:32s} {value}")
    sys.exit(0 if result["admitted"] == args.limit and result["other"] == 0 else 1)
