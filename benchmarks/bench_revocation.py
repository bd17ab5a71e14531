"""5. Revocation: from ``flask clients disable ID`` (the real CLI, another process) to a refusal in
every gunicorn worker.

Each trial creates a client and opens keep-alive connections until every worker has answered
``GET /pid`` (the worker's pid) with a 200 for it — so every worker has it cached. One thread per
connection then keeps sending the credential while the CLI runs. A trial ends when every worker
has refused the credential (a disabled client gets 403 after its secret checks out; 401 would do
too). The delay is measured from the change-log entry's timestamp (written in the CLI's
transaction, just before its commit) to the last worker's first refusal; the time from launching
the CLI is shown beside it (that includes the CLI's own start-up, ~1 s of imports).
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from datetime import timezone
from typing import Any

from bench_common import BENCH_DIR, Server, connections_by_worker, creds, fmt, make_store, median, table


class Hitter(threading.Thread):
    """Keeps one keep-alive connection to one worker busy; records that worker's first refusal."""

    def __init__(self, conn: http.client.HTTPConnection, pid: int, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.conn, self.pid, self.headers = conn, pid, headers
        self.refused_at: float | None = None
        self.refusal_ms: float | None = None
        self.requests = 0
        self.stop = threading.Event()
        self.error: str | None = None
        self.status: int | None = None

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                self.conn.request("GET", "/pid", headers=self.headers)
                resp = self.conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.error = type(exc).__name__
                return
            self.requests += 1
            if resp.status in (401, 403):
                self.status = resp.status
                self.refused_at = time.time()
                self.refusal_ms = (time.perf_counter() - t0) * 1000
                return
            if resp.status != 200:
                self.error = f"status {resp.status}"
                return


def _event_time(store: Any, client_id: str) -> float | None:
    from sqlalchemy import select

    from flask_clientauth.models import events_table

    with store.engine.connect() as conn:
        created = conn.execute(
            select(events_table.c.created_at)
            .where(events_table.c.client_id == client_id, events_table.c.action == "disable")
            .order_by(events_table.c.id.desc())
            .limit(1)
        ).scalar()
    if created is None:
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return float(created.timestamp())


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    store = make_store(ctx.database_url, p["client_rounds"])
    server = Server(
        "id-secret",
        ctx.database_url,
        workers=p["workers"],
        threads=p["threads"],
        bcrypt_rounds=p["client_rounds"],
    )
    cli_env = server.env()
    trials: list[dict[str, Any]] = []
    with server:
        pids = server.worker_pids()
        for i in range(p["revocation_trials"]):
            record, secret = store.create(f"bench revocation {i}")
            headers = creds(record.client_id, secret)
            by_pid = connections_by_worker(server.port, pids, headers, p["revocation_conns"])
            hitters = [Hitter(c, pid, headers) for pid, conns in by_pid.items() for c in conns]
            for h in hitters:
                h.start()
            time.sleep(0.05)
            cli_start = time.time()
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "flask",
                    "--app",
                    "bench_app:create_app",
                    "clients",
                    "disable",
                    record.client_id,
                ],
                env=cli_env,
                cwd=BENCH_DIR,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            cli_end = time.time()
            if out.returncode != 0:
                raise RuntimeError(f"revocation: the CLI failed: {out.stderr.strip()[-500:]}")
            deadline = time.monotonic() + p["revocation_timeout"]
            while time.monotonic() < deadline and any(h.is_alive() for h in hitters):
                time.sleep(0.005)
            for h in hitters:
                h.stop.set()
            for h in hitters:
                h.join(timeout=5)
                h.conn.close()
            errors = [h.error for h in hitters if h.error]
            if errors:
                raise RuntimeError(f"revocation: hitter failed: {errors[0]}")
            first_refusal: dict[int, float] = {}
            for h in hitters:
                if h.refused_at is not None:
                    first_refusal[h.pid] = min(first_refusal.get(h.pid, h.refused_at), h.refused_at)
            changed_at = _event_time(store, record.client_id) or cli_end
            all_refused = set(first_refusal) == pids
            last = max(first_refusal.values()) if first_refusal else float("nan")
            trials.append(
                {
                    "all_workers_refused": all_refused,
                    "from_change_ms": (last - changed_at) * 1000 if all_refused else None,
                    "first_worker_ms": (min(first_refusal.values()) - changed_at) * 1000 if first_refusal else None,
                    "from_cli_start_ms": (last - cli_start) * 1000 if all_refused else None,
                    "cli_ms": (cli_end - cli_start) * 1000,
                    "refusal_request_ms": max((h.refusal_ms or 0.0) for h in hitters),
                    "statuses": sorted({h.status for h in hitters if h.status}),
                    "requests": sum(h.requests for h in hitters),
                }
            )
    store.engine.dispose()
    ok = [t for t in trials if t["all_workers_refused"]]
    return {
        "trials": trials,
        "workers": p["workers"],
        "connections_per_worker": p["revocation_conns"],
        "interval": ctx.revocation_interval,
        "median_ms": median(t["from_change_ms"] for t in ok),
        "max_ms": max((t["from_change_ms"] for t in ok), default=float("nan")),
        "first_worker_median_ms": median(t["first_worker_ms"] for t in ok),
        "from_cli_start_median_ms": median(t["from_cli_start_ms"] for t in ok),
        "cli_median_ms": median(t["cli_ms"] for t in trials),
        "refusal_request_median_ms": median(t["refusal_request_ms"] for t in ok),
        "refusal_statuses": sorted({s for t in trials for s in t["statuses"]}),
        "failed_trials": len(trials) - len(ok),
        "timeout": p["revocation_timeout"],
        "database": ctx.database_label,
    }


def render(res: dict[str, Any]) -> str:
    rows = [
        [
            len(res["trials"]),
            f"**{fmt(res['median_ms'])}**",
            f"**{fmt(res['max_ms'])}**",
            fmt(res["first_worker_median_ms"]),
            fmt(res["from_cli_start_median_ms"]),
            fmt(res["cli_median_ms"]),
            fmt(res["refusal_request_median_ms"]),
            res["failed_trials"],
        ]
    ]
    return (
        table(
            [
                "trials",
                "change → refused in every worker, median ms",
                "max ms",
                "first worker, median ms",
                "from CLI launch, median ms",
                "CLI run ms",
                "refused request's own duration, median ms",
                "trials not refused in time",
            ],
            rows,
        )
        + f"\n\n`flask clients disable ID` as a subprocess; {res['workers']} gunicorn workers, "
        f"{res['connections_per_worker']} keep-alive connection(s) per worker sending the credential "
        f"continuously; CLIENTAUTH_REVOCATION_INTERVAL={res['interval']} (its default unless set). "
        f"Refusals answered {'/'.join(str(s) for s in res['refusal_statuses'])}. "
        "The refused request's duration shows what a worker did after learning of the change "
        "(a store read and, for a secret no longer in the cache, a bcrypt check). "
        f"A trial not refused within {res['timeout']:g} s counts as failed. Store: {res['database']}. "
        "Target: ≤ 1 s."
    )
