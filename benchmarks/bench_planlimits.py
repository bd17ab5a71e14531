"""Plan limits over HTTP with Redis: exactness and Redis round trips per request (a minute or so).

    python benchmarks/bench_planlimits.py [--limit 200] [--requests 600] [--connections 8]

Starts a ``redis-server`` of its own on a free port (so that its command counts are this run's
alone) and the id+secret benchmark app under gunicorn (2 gthread workers of 4 threads) with one
plan of ``LIMIT/hour`` as the default, counted in that Redis. One client then sends REQUESTS
requests over CONNECTIONS keep-alive connections at once. Prints how many were admitted (must be
exactly LIMIT), the Redis commands run per request (from ``INFO commandstats`` before and after),
and the request rate with and without the plan.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
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


def main(limit: int, requests: int, connections: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="clientauth-planlimits-") as tmp:
        redis_proc, redis_port = start_redis(tmp)
        try:
            url = f"sqlite:///{tmp}/clients.sqlite3"
            ensure_tables(url)
            store = make_store(url, 4)
            limited, limited_secret = store.create("limited", plan="bench")
            free, free_secret = store.create("no plan")
            store.engine.dispose()
            assert limited_secret is not None and free_secret is not None
            storage = f"redis://127.0.0.1:{redis_port}/0"
            config = {
                "CLIENTAUTH_PLANS": {"bench": {"rate_limits": [f"{limit}/hour"]}},
                "CLIENTAUTH_RATELIMIT_STORAGE_URI": storage,
            }
            with Server("id-secret", url, bcrypt_rounds=4, config=config) as server:
                limited_headers = creds(limited.client_id, limited_secret)
                free_headers = creds(free.client_id, free_secret)
                warm_workers(server, free_headers)
                # the limited client's first request on each worker verifies its secret: not measured
                before = redis_commands(redis_port)
                statuses, seconds = load(server.port, limited_headers, requests, connections)
                delta = redis_commands(redis_port) - before
                free_statuses, free_seconds = load(server.port, free_headers, requests, connections)
                free_delta = redis_commands(redis_port) - before - delta
        finally:
            redis_proc.kill()
            redis_proc.wait()
    return {
        "limit": limit,
        "requests": requests,
        "connections": connections,
        "admitted": statuses[200],
        "refused": statuses[429],
        "other": sum(n for s, n in statuses.items() if s not in (200, 429)),
        "redis_commands": dict(delta),
        "redis_per_request": sum(delta.values()) / requests,
        "rate_with_plan": requests / seconds,
        "rate_without_plan": requests / free_seconds,
        "redis_per_request_without_plan": sum(free_delta.values()) / requests,
        "free_statuses": dict(free_statuses),
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
