"""4. Scale: N clients in PostgreSQL, an active set of distinct clients hit in random order.

The N clients, each with one credential, are written with COPY and share ONE secret, stored as
generated secrets are (SHA-256): each worker's first request of a client costs one store lookup
and microseconds (the cold-path benchmark measures it beside bcrypt's figure).
Rows are kept between runs (recognised by their name and count), so a rerun skips the load.

For each cache configuration (the default ``CLIENTAUTH_CACHE_SIZE`` and one smaller than the
active set), a fresh gunicorn runs; the active set is hit in random order until the workers'
caches are full (or a time limit), then measured. Each worker counts its requests, store reads
(``store.get``), change-log polls and bcrypt checks, and reports its RSS from /proc.
"""

from __future__ import annotations

import glob
import hashlib
import http.client
import json
import os
import random
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Any

import bench_app
from bench_common import Server, connections_by_worker, creds, ensure_tables, fmt, table, warm_workers
from bench_http import balanced_load
from flask_clientauth.keys import fast_hash
from loadgen import run_load

SCALE_NAME = "bench-scale"
SCALE_SECRET = "bench-scale-secret-" + "s" * 24  # 43 characters, like a generated one


def client_id(i: int) -> str:
    return hashlib.md5(f"bench-scale-{i}".encode(), usedforsecurity=False).hexdigest()


def _psycopg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def load_clients(url: str, n: int, rounds: int) -> dict[str, Any]:
    """Make sure exactly the ``n`` scale clients exist, each with one credential whose secret is stored
    as generated secrets are (SHA-256); returns how long it took and whether it loaded. (``rounds`` is
    kept for the callers: generated secrets use no bcrypt.)"""
    import psycopg

    ensure_tables(url)
    stored = fast_hash(SCALE_SECRET, None)
    t0 = time.perf_counter()
    with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), min(c.secret_hash) FROM clientauth_credentials c"
            " JOIN clientauth_clients k ON k.id = c.client_pk WHERE k.name = %s",
            (SCALE_NAME,),
        ).fetchone()
        assert row is not None
        count, stored_hash = row
        if count == n and stored_hash == stored:
            total = conn.execute("SELECT count(*) FROM clientauth_credentials").fetchone()
            return {"loaded": False, "seconds": time.perf_counter() - t0, "rows": total[0] if total else n}
        now = datetime.now(timezone.utc)
        with conn.transaction():
            conn.execute("TRUNCATE clientauth_credentials, clientauth_clients RESTART IDENTITY")
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY clientauth_clients (id, name, description, enabled, roles, created_at, updated_at) FROM STDIN"
                ) as copy,
            ):
                for i in range(n):
                    copy.write_row((i + 1, SCALE_NAME, "", True, "", now, now))
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY clientauth_credentials (client_pk, client_id, label, secret_hash, created_at, updated_at)"
                    " FROM STDIN"
                ) as copy,
            ):
                for i in range(n):
                    copy.write_row((i + 1, client_id(i), "", stored, now, now))
            conn.execute("SELECT setval(pg_get_serial_sequence('clientauth_clients', 'id'), %s)", (n + 1,))
        conn.execute("ANALYZE clientauth_clients")
        conn.execute("ANALYZE clientauth_credentials")
    return {"loaded": True, "seconds": time.perf_counter() - t0, "rows": n}


def _read_stats(stats_dir: str, pids: set[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for path in glob.glob(os.path.join(stats_dir, "*.json")):
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        if data["pid"] in pids:
            out[data["pid"]] = data
    return out


def _fresh_stats(stats_dir: str, pids: set[int], wait: float = 0.5) -> dict[int, dict[str, Any]]:
    time.sleep(wait)  # the workers write every 0.2 s
    return _read_stats(stats_dir, pids)


def _warm_every_worker(server: Server, pids: set[int], ids_file: str) -> None:
    """Send every active client once to every worker, over one keep-alive connection each."""
    with open(ids_file, encoding="ascii") as fh:
        ids = fh.read().split()
    by_pid = connections_by_worker(server.port, pids, creds(ids[0], SCALE_SECRET), 1)
    errors: list[str] = []

    def warm(pid: int, conn: http.client.HTTPConnection) -> None:
        try:
            for cid in ids:
                conn.request("GET", "/pid", headers=creds(cid, SCALE_SECRET))
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or int(body) != pid:
                    errors.append(f"worker {pid}: {resp.status}")
                    return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(f"worker {pid}: {type(exc).__name__}")
        finally:
            conn.close()

    threads = [threading.Thread(target=warm, args=(pid, conns[0])) for pid, conns in by_pid.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"scale warm-up failed: {errors[0]}")


def _one_config(ctx: Any, label: str, cache_size: int, ids_file: str, active: int) -> dict[str, Any]:
    p = ctx.params
    stats_dir = tempfile.mkdtemp(prefix="bench-scale-")
    server = Server(
        "id-secret",
        ctx.postgres_url,
        workers=p["workers"],
        threads=p["threads"],
        bcrypt_rounds=p["scale_rounds"],
        config={"CLIENTAUTH_CACHE_SIZE": cache_size},
        stats_dir=stats_dir,
    )
    try:
        return _measure(ctx, server, label, cache_size, ids_file, active, stats_dir)
    finally:
        shutil.rmtree(stats_dir, ignore_errors=True)


def _measure(
    ctx: Any, server: Server, label: str, cache_size: int, ids_file: str, active: int, stats_dir: str
) -> dict[str, Any]:
    p = ctx.params
    load: dict[str, Any] = {
        "ids_file": ids_file,
        "id_header": bench_app.ID_HEADER,
        "secret_header": bench_app.SECRET_HEADER,
        "secret": SCALE_SECRET,
        "connections": p["connections"],
        "tool": ctx.loadgen,
    }
    with server:
        pids = server.worker_pids()
        before = _fresh_stats(stats_dir, pids)
        for _ in range(50):  # every worker has loaded the app and written its first figures
            if len(before) == len(pids):
                break
            before = _fresh_stats(stats_dir, pids, wait=0.2)
        target = min(cache_size, active)
        t0 = time.perf_counter()
        warm_rounds = 0
        if cache_size >= active:
            _warm_every_worker(server, pids, ids_file)
        while True:
            res = run_load(server.url, duration=p["scale_warm_step"], **load)
            warm_rounds += 1
            if res.non2xx or res.errors:
                raise RuntimeError(f"scale warm-up: {res.statuses}, {res.errors} socket errors")
            stats = _fresh_stats(stats_dir, pids, wait=0.3)
            full = all((s.get("cached") or 0) >= 0.98 * target for s in stats.values()) and len(stats) == len(pids)
            if full or cache_size < active or time.perf_counter() - t0 > p["scale_warm_max"]:
                break
        warm_seconds = time.perf_counter() - t0
        start = _fresh_stats(stats_dir, pids, wait=0.3)
        res, balance, tries = balanced_load(server, duration=p["scale_duration"], **load)
        end = _fresh_stats(stats_dir, pids, wait=0.3)
        warm_workers(server, creds(client_id(0), SCALE_SECRET))
        one, _, _ = balanced_load(
            server,
            headers={bench_app.ID_HEADER: client_id(0), bench_app.SECRET_HEADER: SCALE_SECRET},
            duration=p["scale_duration"],
            connections=p["connections"],
            tool=ctx.loadgen,
        )
    if res.non2xx or res.errors:
        raise RuntimeError(f"scale: {res.statuses}, {res.errors} socket errors")

    def delta(key: str) -> int:
        return sum(end[pid][key] - start[pid][key] for pid in end if pid in start)

    requests = delta("requests") or 1
    return {
        "label": label,
        "cache_size": cache_size,
        "warm_seconds": warm_seconds,
        "warm_rounds": warm_rounds,
        "rps": res.rps,
        "balance": balance,
        "tries": tries,
        "p50_ms": res.p50_ms,
        "p99_ms": res.p99_ms,
        "one_client_rps": one.rps,
        "requests_counted": requests,
        "store_get_per_request": delta("store_get") / requests,
        "store_poll_per_request": delta("store_poll") / requests,
        "db_per_request": (delta("store_get") + delta("store_poll")) / requests,
        "bcrypt_per_request": delta("bcrypt") / requests,
        "cached": {pid: end[pid].get("cached") for pid in end},
        "rss_start_mib": {pid: before[pid]["rss_kib"] / 1024 for pid in before if before[pid].get("rss_kib")},
        "rss_end_mib": {pid: end[pid]["rss_kib"] / 1024 for pid in end if end[pid].get("rss_kib")},
        "bound_holds": all((end[pid].get("cached") or 0) <= cache_size for pid in end),
    }


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    if ctx.postgres_url is None:
        return {"skipped": ctx.postgres_skip_reason}
    n, active = p["scale_clients"], p["scale_active"]
    loaded = load_clients(ctx.postgres_url, n, p["scale_rounds"])
    rnd = random.Random(4)
    ids = [client_id(i) for i in rnd.sample(range(n), active)]
    fd, ids_file = tempfile.mkstemp(prefix="bench-ids-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write("\n".join(ids) + "\n")
    try:
        default_size = int(p["default_cache_size"])
        configs = [(f"CLIENTAUTH_CACHE_SIZE={default_size} (default)", default_size)]
        if p["scale_small_cache"]:
            small = max(10, active // 5)
            configs.append((f"CLIENTAUTH_CACHE_SIZE={small} (< active set)", small))
        results = [_one_config(ctx, label, size, ids_file, active) for label, size in configs]
    finally:
        os.unlink(ids_file)
    return {
        "clients": n,
        "active": active,
        "load": loaded,
        "configs": results,
        "bcrypt_rounds": p["scale_rounds"],
    }


def render(res: dict[str, Any]) -> str:
    if "skipped" in res:
        return f"Skipped: {res['skipped']}."
    rows = []
    for r in res["configs"]:
        cached = "/".join(str(v) for v in r["cached"].values())
        rss0 = "/".join(f"{v:.0f}" for v in r["rss_start_mib"].values())
        rss1 = "/".join(f"{v:.0f}" for v in r["rss_end_mib"].values())
        rows.append(
            [
                r["label"],
                fmt(r["rps"], 0),
                f"{r['rps'] / r['one_client_rps']:.2f}" if r["one_client_rps"] else "-",
                fmt(r["p99_ms"], 2),
                f"{cached} ({'holds' if r['bound_holds'] else 'EXCEEDED'})",
                f"{rss0} → {rss1}",
                f"{r['store_get_per_request']:.4f}",
                f"{r['db_per_request']:.4f}",
                f"{r['bcrypt_per_request']:.4f}",
            ]
        )
    load = res["load"]
    how = (
        f"loaded with COPY in {load['seconds']:.1f} s"
        if load["loaded"]
        else "already present (kept from a previous run)"
    )
    return (
        table(
            [
                "cache",
                "requests/s",
                "vs 1 client",
                "p99 ms",
                "cached per worker (bound)",
                "RSS MiB per worker start → end",
                "store.get / req",
                "DB round trips / req",
                "bcrypt / req",
            ],
            rows,
        )
        + f"\n\n{res['clients']:,} clients in PostgreSQL ({how}; {load['rows']:,} rows in the table), "
        f"{res['active']:,} distinct active clients in random order, one shared secret stored as "
        "generated secrets are (SHA-256). 'vs 1 client' = throughput against the same server hitting one client. Runs with workers' CPU use more than 2× apart were redone, as in part 2. "
        "DB round trips = store reads + change-log polls, counted inside each worker during the measured window."
    )
