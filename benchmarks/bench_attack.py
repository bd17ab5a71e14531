"""6. Attack: wrong secrets for a real client ID, as fast as one process can send them, while the
legitimate client (same ID, right secret) runs beside it.

The attacker is one Python process with several keep-alive connections, sending from another
loopback address (127.0.0.2, when the system lets us bind it) so that a per-address throttle can
tell it from the legitimate client on 127.0.0.1. Each round starts a fresh server (the throttle's
counters empty, as when an attack begins), measures the legitimate client alone, then under attack
(the attacker starts a moment before and stops after); the figure is its successful (2xx) requests/second under attack as a fraction
of alone (median over rounds). Responses are counted per status on both sides, so the throttle's
429s show (and a throttle that also refuses the legitimate client shows too).

If the installed Flask-ClientAuth knows ``CLIENTAUTH_RATELIMIT_ENABLED``, the scenario runs with
the throttle at its defaults and again with it off; otherwise once, as "no throttle".
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from bench_common import Server, creds, fmt, make_store, median, table, warm_workers
from loadgen import LoadResult, run_load

ATTACK_SOURCE = "127.0.0.2"


def _source_address() -> str:
    try:
        with socket.socket() as s:
            s.bind((ATTACK_SOURCE, 0))
        return ATTACK_SOURCE
    except OSError:
        return "127.0.0.1"


def has_throttle() -> bool:
    from flask_clientauth.extension import DEFAULTS

    return "CLIENTAUTH_RATELIMIT_ENABLED" in DEFAULTS


def _ok(res: LoadResult) -> float:
    """Successful requests per second."""
    total = sum(res.statuses.values()) or 1
    ok = sum(v for k, v in res.statuses.items() if k.startswith("2"))
    return res.rps * ok / total


def _variant(ctx: Any, label: str, config: dict[str, Any], cid: str, secret: str, source: str) -> dict[str, Any]:
    p = ctx.params
    good = creds(cid, secret)
    bad = creds(cid, "wrong-" + secret[6:])
    rounds: list[dict[str, Any]] = []
    server_args: dict[str, Any] = {
        "kind": "id-secret", "database_url": ctx.database_url, "workers": p["workers"],
        "threads": p["threads"], "bcrypt_rounds": p["client_rounds"], "config": config,
    }  # fmt: skip
    legit: dict[str, Any] = {
        "headers": good, "duration": p["attack_duration"], "connections": p["attack_legit_conns"],
        "count_statuses": True, "tool": ctx.loadgen,
    }  # fmt: skip
    for _ in range(p["attack_rounds"]):
        # a fresh server each round: the throttle's counters start empty, as at the start of an attack
        with Server(**server_args) as server:
            warm_workers(server, good)  # every worker checks the secret once
            if p["http_warmup"] > 0:
                run_load(server.url, **{**legit, "duration": p["http_warmup"]})
            alone = run_load(server.url, **legit)
            holder: dict[str, Any] = {}

            def attack(holder: dict[str, Any] = holder, url: str = server.url) -> None:
                try:
                    holder["res"] = run_load(
                        url,
                        headers=bad,
                        duration=p["attack_duration"] + 2 * p["attack_ramp"],
                        connections=p["attack_conns"],
                        source_address=source,
                        processes=1,
                    )
                except Exception as exc:  # noqa: BLE001 - reported below
                    holder["error"] = exc

            attacker = threading.Thread(target=attack, daemon=True)
            attacker.start()
            time.sleep(p["attack_ramp"])
            attacked = run_load(server.url, **legit)
            attacker.join(timeout=p["attack_duration"] + 120)
            if "error" in holder:
                raise RuntimeError(f"attack: the attacker failed: {holder['error']}")
            atk: LoadResult = holder["res"]
            rounds.append(
                {
                    "alone": alone.to_dict(),
                    "attacked": attacked.to_dict(),
                    "attacker": atk.to_dict(),
                    "ratio": _ok(attacked) / _ok(alone) if _ok(alone) else float("nan"),
                }
            )

    def stat(side: str, code: str) -> int:
        return sum(r[side]["statuses"].get(code, 0) for r in rounds)

    return {
        "label": label,
        "config": config,
        "rounds": rounds,
        "ratio": median(r["ratio"] for r in rounds),
        "alone_ok_rps": median(r["alone"]["rps"] for r in rounds),
        "attacked_rps": median(r["attacked"]["rps"] for r in rounds),
        "attacked_p99_ms": median(r["attacked"]["p99_ms"] for r in rounds),
        "alone_p99_ms": median(r["alone"]["p99_ms"] for r in rounds),
        "attacker_rps": median(r["attacker"]["rps"] for r in rounds),
        "attacker_p50_ms": median(r["attacker"]["p50_ms"] for r in rounds),
        "attacker_401": stat("attacker", "401"),
        "attacker_429": stat("attacker", "429"),
        "attacker_total": sum(r["attacker"]["requests"] for r in rounds),
        "legit_429": stat("attacked", "429"),
        "legit_non2xx": sum(v for r in rounds for k, v in r["attacked"]["statuses"].items() if not k.startswith("2")),
    }


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    store = make_store(ctx.database_url, p["client_rounds"])
    record, secret = store.create("bench attack")
    store.engine.dispose()
    assert secret is not None
    source = _source_address()
    throttle = has_throttle()
    if throttle:
        variants: list[tuple[str, dict[str, Any]]] = [("throttle on (defaults)", {})]
        if p["attack_throttle_off"]:
            variants.append(("throttle off", {"CLIENTAUTH_RATELIMIT_ENABLED": False}))
    else:
        variants = [("no throttle (not in this version)", {})]
    results = [_variant(ctx, label, cfg, record.client_id, secret, source) for label, cfg in variants]
    return {
        "variants": results,
        "throttle_available": throttle,
        "source": source,
        "attack_conns": p["attack_conns"],
        "legit_conns": p["attack_legit_conns"],
        "duration": p["attack_duration"],
        "bcrypt_rounds": p["client_rounds"],
        "database": ctx.database_label,
    }


def render(res: dict[str, Any]) -> str:
    rows = []
    for v in res["variants"]:
        rows.append(
            [
                v["label"],
                f"**{v['ratio']:.3f}**",
                fmt(v["alone_ok_rps"], 0),
                fmt(v["attacked_rps"], 0),
                f"{fmt(v['alone_p99_ms'], 1)} → {fmt(v['attacked_p99_ms'], 1)}",
                f"{fmt(v['attacker_rps'], 0)} (p50 {fmt(v['attacker_p50_ms'], 0)} ms)",
                f"{v['attacker_401']:,} / {v['attacker_429']:,} / {v['attacker_total']:,}",
                f"{v['legit_non2xx']:,} ({v['legit_429']:,} × 429)",
            ]
        )
    src = (
        f"from {res['source']}"
        if res["source"] != "127.0.0.1"
        else "from 127.0.0.1 (127.0.0.2 could not be bound: same address as the legitimate client)"
    )
    return (
        table(
            [
                "variant",
                "legit throughput under attack / alone",
                "legit req/s alone",
                "legit req/s attacked",
                "legit p99 ms alone → attacked",
                "attacker req/s",
                "attacker 401 / 429 / total",
                "legit refused",
            ],
            rows,
        )
        + f"\n\nAttacker: one process, {res['attack_conns']} keep-alive connections {src}, wrong secret for the "
        f"real client ID; legitimate client: {res['legit_conns']} connections from 127.0.0.1, "
        f"{res['duration']:g} s per measurement. Client secret hashed at bcrypt cost {res['bcrypt_rounds']}. "
        f"Throttle keys present: {'yes' if res['throttle_available'] else 'no'}. Store: {res['database']}."
    )
