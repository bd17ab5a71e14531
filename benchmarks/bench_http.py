"""2. Over HTTP: gunicorn (2 gthread workers) serving bare Flask versus the protected app.

Both servers run side by side on 127.0.0.1; the load generator alternates between them (A/B,
B/A, ...) for several rounds of the same length, after a warm-up that lets every worker do its one
bcrypt check. Reported: medians over rounds of requests/second and p50/p99 latency, and the median
of the per-round ratios protected/bare.
"""

from __future__ import annotations

from typing import Any

import bench_app
from bench_common import Server, creds, fmt, make_store, median, table
from loadgen import run_load


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    store = make_store(ctx.database_url, p["client_rounds"])
    record, secret = store.create("bench http")
    store.engine.dispose()
    assert secret is not None
    headers = creds(record.client_id, secret)
    servers = {
        "bare": Server("bare", ctx.database_url, workers=p["workers"], threads=p["threads"]),
        "id-secret": Server("id-secret", ctx.database_url, workers=p["workers"], threads=p["threads"], bcrypt_rounds=p["client_rounds"]),
    }  # fmt: skip
    rounds: list[dict[str, Any]] = []
    try:
        for s in servers.values():
            s.start()
        for s in servers.values():  # warm-up: every worker checks the secret once
            if p["http_warmup"] > 0:
                run_load(s.url, headers=headers, duration=p["http_warmup"], connections=p["connections"], tool=ctx.loadgen)  # fmt: skip
        for i in range(p["http_rounds"]):
            order = ["bare", "id-secret"] if i % 2 == 0 else ["id-secret", "bare"]
            row: dict[str, Any] = {}
            for name in order:
                res = run_load(
                    servers[name].url,
                    headers=headers,
                    duration=p["http_duration"],
                    connections=p["connections"],
                    tool=ctx.loadgen,
                )
                if res.non2xx or res.errors:
                    raise RuntimeError(
                        f"http: {name} answered {res.statuses} with {res.errors} socket errors"
                    )
                row[name] = res.to_dict()
            rounds.append(row)
    finally:
        for s in servers.values():
            s.stop()
    summary: dict[str, Any] = {}
    for name in ("bare", "id-secret"):
        summary[name] = {
            k: median(r[name][k] for r in rounds) for k in ("rps", "p50_ms", "p90_ms", "p99_ms", "mean_ms")
        }
    summary["ratio_rps"] = median(r["id-secret"]["rps"] / r["bare"]["rps"] for r in rounds)
    summary["ratio_p50"] = median(r["id-secret"]["p50_ms"] / r["bare"]["p50_ms"] for r in rounds)
    summary["ratio_p99"] = median(r["id-secret"]["p99_ms"] / r["bare"]["p99_ms"] for r in rounds)
    return {
        "rounds": rounds,
        "summary": summary,
        "duration": p["http_duration"],
        "connections": p["connections"],
        "workers": p["workers"],
        "threads": p["threads"],
        "tool": rounds[0]["bare"]["tool"] if rounds else ctx.loadgen,
        "database": ctx.database_label,
        "header": bench_app.ID_HEADER,
    }


def render(res: dict[str, Any]) -> str:
    s = res["summary"]
    rows = [
        ["bare Flask", fmt(s["bare"]["rps"], 0), fmt(s["bare"]["p50_ms"], 2), fmt(s["bare"]["p99_ms"], 2)],
        ["ClientAuth id+secret (warm)", fmt(s["id-secret"]["rps"], 0), fmt(s["id-secret"]["p50_ms"], 2), fmt(s["id-secret"]["p99_ms"], 2)],
        ["**ratio protected/bare**", f"**{s['ratio_rps']:.3f}**", f"{s['ratio_p50']:.3f}", f"**{s['ratio_p99']:.3f}**"],
    ]  # fmt: skip
    per_round = ", ".join(f"{r['id-secret']['rps'] / r['bare']['rps']:.3f}" for r in res["rounds"])
    return (
        table(["server", "requests/s", "p50 ms", "p99 ms"], rows)
        + f"\n\ngunicorn {res['workers']} gthread workers × {res['threads']} threads on 127.0.0.1, "
        f"load generator {res['tool']} with {res['connections']} keep-alive connections, "
        f"{len(res['rounds'])} alternated rounds of {res['duration']:g} s per server (medians); "
        f"per-round rps ratios: {per_round}. Store: {res['database']}. "
        "Targets: ratio ≥ 0.95, p99 ≤ 1.1× bare."
    )
