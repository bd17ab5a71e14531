"""6. Attack: wrong secrets for a real client ID, as fast as one process can send them, while the
legitimate client (same ID, right secret) runs beside it.

The attacker is one Python process with several keep-alive connections, sending from another
loopback address (127.0.0.2, when the system lets us bind it) so that a per-address throttle can
tell it from the legitimate client on 127.0.0.1. It guesses: every request carries a new wrong
secret, so none is refused from memory and, without a throttle, every one costs a bcrypt check.
Each round starts a fresh server (the throttle's counters empty, as when an attack begins),
measures the legitimate client alone, then under attack (the attacker starts a moment before and
stops after; a full minute in the full run, so the per-minute limits go through a whole window);
the figure is its successful (2xx) requests/second under attack as a fraction of alone (median
over rounds). Responses are counted per status on both sides, so the throttle's 429s show (and a
throttle that also refuses the legitimate client shows too).

The server is one gunicorn worker: with two, keep-alive connections stay with the worker that
accepted them, and which worker gets the attacker's and which the client's is luck, which swamps
the figure; one worker also makes the in-memory failure counters exact.

Variants: the throttle at its defaults; the throttle off; and, for reference, the same flood of
*valid* requests (a second client with its right secret, from the attacker's address): the share
of the server any neighbour that busy takes, whatever the authentication. "vs a valid flood" is
the attack's figure divided by that one: 1.0 means wrong secrets cost the legitimate client no
more than the same traffic with right ones.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from bench_app import SECRET_HEADER
from bench_common import Server, creds, fmt, make_store, median, table, warm_workers
from flask_clientauth.keys import generate_secret
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


def _variant(
    ctx: Any,
    label: str,
    config: dict[str, Any],
    good: dict[str, str],
    flood: dict[str, str],
    source: str,
    *,
    guessing: bool,
) -> dict[str, Any]:
    """One scenario: the legitimate client (``good``) alone, then beside ``flood`` from ``source``."""
    p = ctx.params
    rounds: list[dict[str, Any]] = []
    server_args: dict[str, Any] = {
        "kind": "id-secret", "database_url": ctx.database_url, "workers": p["attack_workers"],
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
            if not guessing:
                warm_workers(server, flood)
            if p["http_warmup"] > 0:
                run_load(server.url, **{**legit, "duration": p["http_warmup"]})
            alone = run_load(server.url, **{**legit, "duration": p["attack_alone_duration"]})
            holder: dict[str, Any] = {}

            def attack(holder: dict[str, Any] = holder, url: str = server.url) -> None:
                try:
                    holder["res"] = run_load(
                        url,
                        headers=flood,
                        duration=p["attack_duration"] + 2 * p["attack_ramp"],
                        connections=p["attack_conns"],
                        source_address=source,
                        processes=1,
                        vary_header=SECRET_HEADER if guessing else None,
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
        "guessing": guessing,
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
    neighbour, neighbour_secret = store.create("bench attack: valid neighbour")
    store.engine.dispose()
    assert secret is not None and neighbour_secret is not None
    good = creds(record.client_id, secret)
    guesses = creds(record.client_id, generate_secret())  # well-formed (prefix, checksum), wrong
    valid_flood = creds(neighbour.client_id, neighbour_secret)
    source = _source_address()
    throttle = has_throttle()
    if throttle:
        variants: list[tuple[str, dict[str, Any], bool]] = [("guessing, throttle on (defaults)", {}, True)]
        if p["attack_throttle_off"]:
            variants.append(("guessing, throttle off", {"CLIENTAUTH_RATELIMIT_ENABLED": False}, True))
    else:
        variants = [("guessing, no throttle (not in this version)", {}, True)]
    variants.append(("reference: the same flood of valid requests (another client)", {}, False))
    results = [
        _variant(ctx, label, cfg, good, guesses if guessing else valid_flood, source, guessing=guessing)
        for label, cfg, guessing in variants
    ]
    reference = results[-1]["ratio"]
    for r in results:
        r["vs_valid_flood"] = r["ratio"] / reference if reference else float("nan")
    return {
        "variants": results,
        "throttle_available": throttle,
        "source": source,
        "attack_conns": p["attack_conns"],
        "legit_conns": p["attack_legit_conns"],
        "duration": p["attack_duration"],
        "alone_duration": p["attack_alone_duration"],
        "workers": p["attack_workers"],
        "threads": p["threads"],
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
                "-" if not v["guessing"] else f"{v['vs_valid_flood']:.2f}",
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
                "vs a valid flood",
                "legit req/s alone",
                "legit req/s attacked",
                "legit p99 ms alone → attacked",
                "attacker req/s",
                "attacker 401 / 429 / total",
                "legit refused",
            ],
            rows,
        )
        + f"\n\nAttacker: one process, {res['attack_conns']} keep-alive connections {src}, a new wrong secret for "
        f"the real client ID on every request; legitimate client: {res['legit_conns']} connections from 127.0.0.1, "
        f"{res['alone_duration']:g} s alone, {res['duration']:g} s under attack. Server: gunicorn, "
        f"{res['workers']} gthread worker(s) × {res['threads']} threads, failure counters in the worker's memory (the "
        "default storage). Client secret hashed at bcrypt cost "
        f"{res['bcrypt_rounds']}. "
        f"Throttle keys present: {'yes' if res['throttle_available'] else 'no'}. Store: {res['database']}."
    )
