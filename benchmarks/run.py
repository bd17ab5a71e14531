#!/usr/bin/env python
"""Flask-ClientAuth benchmarks: ``python benchmarks/run.py [--quick | --smoke] [--only NAME ...] [--json OUT]``.

Prints a markdown report (the machine, then one table per benchmark) on standard output and
progress on standard error. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_attack
import bench_cold
import bench_http
import bench_inprocess
import bench_revocation
import bench_scale
import bench_startup
from bench_common import ensure_tables, machine_info, postgres_version, table
from loadgen import choose, wrk_path

SECTIONS = {
    "inprocess": ("1. In-process: µs per request", bench_inprocess),
    "http": ("2. Over HTTP: gunicorn, bare vs protected", bench_http),
    "cold": ("3. Cold path: first request and rotation", bench_cold),
    "scale": ("4. Scale: many clients in PostgreSQL", bench_scale),
    "revocation": ("5. Revocation: CLI disable → refused in every worker", bench_revocation),
    "attack": ("6. Attack: wrong secrets beside a legitimate client", bench_attack),
    "startup": ("7. Start-up: N operations matched to N Flask routes", bench_startup),
}

#: Sizes and durations per mode. ``client_rounds`` is the bcrypt cost of the clients the
#: benchmarks create (the configured cost); ``--bcrypt-rounds`` overrides it.
MODES: dict[str, dict[str, Any]] = {
    "full": {
        "client_rounds": 12,
        "workers": 2,
        "threads": 4,
        "connections": 16,
        "inproc_rounds": 30,
        "inproc_batch": 2000,
        "inproc_instructions": 3000,
        "http_rounds": 4,
        "http_duration": 5.0,
        "http_warmup": 2.0,
        "cold_costs": [12, 10],
        "cold_trials": 10,
        "scale_clients": 1_000_000,
        "scale_active": 10_000,
        "scale_rounds": 4,
        "scale_duration": 5.0,
        "scale_warm_step": 5.0,
        "scale_warm_max": 150.0,
        "revocation_trials": 20,
        "revocation_conns": 2,
        "revocation_timeout": 10.0,
        "attack_rounds": 1,
        "attack_workers": 1,
        "attack_duration": 60.0,
        "attack_alone_duration": 15.0,
        "attack_ramp": 0.5,
        "attack_conns": 8,
        "attack_legit_conns": 8,
        "scale_small_cache": True,
        "attack_throttle_off": True,
        "startup_sizes": [250, 500, 1000, 2000, 4000],
        "startup_repeats": 3,
    },
    "quick": {
        "inproc_rounds": 10,
        "inproc_batch": 1000,
        "inproc_instructions": 1000,
        "http_rounds": 2,
        "http_duration": 1.0,
        "http_warmup": 1.0,
        "cold_costs": [12],
        "cold_trials": 5,
        "scale_clients": 10_000,
        "scale_active": 2_000,
        "scale_duration": 1.0,
        "scale_warm_step": 2.0,
        "scale_warm_max": 30.0,
        "revocation_trials": 5,
        "attack_rounds": 1,
        "attack_duration": 5.0,
        "attack_alone_duration": 2.0,
        "attack_ramp": 0.3,
    },
    "smoke": {
        "client_rounds": 4,
        "connections": 4,
        "inproc_rounds": 3,
        "inproc_batch": 100,
        "inproc_instructions": 0,
        "http_rounds": 1,
        "http_duration": 0.5,
        "cold_costs": [4],
        "cold_trials": 2,
        "scale_clients": 1_000,
        "scale_active": 100,
        "scale_duration": 0.5,
        "scale_warm_step": 0.5,
        "scale_warm_max": 3.0,
        "revocation_trials": 1,
        "revocation_conns": 1,
        "attack_rounds": 1,
        "attack_duration": 0.5,
        "attack_alone_duration": 0.5,
        "attack_ramp": 0.2,
        "attack_conns": 2,
        "attack_legit_conns": 2,
        "http_warmup": 0.0,
        "scale_small_cache": False,
        "attack_throttle_off": False,
        "startup_sizes": [50, 100],
        "startup_repeats": 1,
    },
}


@dataclass
class Context:
    params: dict[str, Any]
    database_url: str
    database_label: str
    postgres_url: str | None
    postgres_skip_reason: str | None
    loadgen: str
    revocation_interval: float
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="shorter runs, 10,000 clients for the scale part")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds in all, no thresholds (CI)")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=list(SECTIONS),
        metavar="NAME",
        help=f"run only these: {', '.join(SECTIONS)}",
    )
    ap.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    ap.add_argument(
        "--postgres-url",
        default=os.environ.get("CLIENTAUTH_BENCH_POSTGRES_URL") or os.environ.get("CLIENTAUTH_TEST_POSTGRES_URL"),
        help="PostgreSQL database for the scale part, and the store of every other part (default: "
        "$CLIENTAUTH_BENCH_POSTGRES_URL, else $CLIENTAUTH_TEST_POSTGRES_URL). Its clientauth_clients "
        "table is TRUNCATED and refilled by the scale part: give it a database of its own.",
    )
    ap.add_argument("--sqlite", action="store_true", help="use a temporary SQLite store for every part but scale")
    ap.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator (auto: wrk if installed)",
    )
    ap.add_argument("--bcrypt-rounds", type=int, help="bcrypt cost of the benchmark's clients (default 12; smoke 4)")
    ap.add_argument("--clients", type=int, help="scale part: number of clients in PostgreSQL")
    ap.add_argument("--active", type=int, help="scale part: number of distinct active clients")
    ap.add_argument("--profile", action="store_true", help="append a cProfile of the warm id+secret in-process path")
    return ap.parse_args(argv)


def _progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def profile_hot_path(ctx: Context, requests: int = 20000) -> str:
    """cProfile of ``requests`` warm id+secret calls of ``app.wsgi_app``.

    Shows the hook's share of the request, every Flask-ClientAuth function (own and cumulative
    time per call), then the top functions overall.
    """
    import cProfile
    import io
    import pstats

    variants, _ = bench_inprocess.build_variants(ctx.database_url, ctx.params["client_rounds"])
    by_name = {v.name: v for v in variants}
    out = io.StringIO()
    run = bench_inprocess.wsgi_runner(by_name["id-secret"])
    run(1000)
    prof = cProfile.Profile()
    prof.enable()
    run(requests)
    prof.disable()
    stats = pstats.Stats(prof, stream=out)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    rows = []
    hook = 0.0
    for (path, line, func), (_cc, nc, tt, ct, _callers) in raw.items():
        if "flask_clientauth" in path:
            rows.append((tt, ct, nc, f"{os.path.basename(path)}:{line}({func})"))
            if func == "before_request":
                hook = ct
        elif func in ("ensure_sync", "_has_code_flag", "iscoroutinefunction"):
            rows.append((tt, ct, nc, f"{os.path.basename(path)}:{line}({func}) [Flask, per hook]"))
    out.write(
        f"\n{requests} warm id+secret requests through app.wsgi_app under cProfile (which inflates small "
        f"calls): the hook (`_before_request`, cumulative) is {hook / total * 100:.1f}% of the total.\n\n"
    )
    out.write(
        table(
            ["function", "calls/request", "own µs/request", "cumulative µs/request"],
            [
                [name, f"{nc / requests:g}", f"{tt / requests * 1e6:.2f}", f"{ct / requests * 1e6:.2f}"]
                for tt, ct, nc, name in sorted(rows, reverse=True)
            ],
        )
    )
    out.write("\n\nTop 25 functions overall by own time:\n\n```\n")
    stats.sort_stats("tottime").print_stats(25)
    out.write("```\n")
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmpdir = tempfile.mkdtemp(prefix="clientauth-bench-")
    try:
        return _run(args, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _run(args: argparse.Namespace, tmpdir: str) -> int:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    params = dict(MODES["full"])
    if mode != "full":
        params.update(MODES[mode])
    if args.bcrypt_rounds is not None:
        params["client_rounds"] = args.bcrypt_rounds
        if mode != "smoke":
            params["cold_costs"] = sorted({12, args.bcrypt_rounds}, reverse=True)
    if args.clients is not None:
        params["scale_clients"] = args.clients
    if args.active is not None:
        params["scale_active"] = args.active
    params["scale_active"] = min(params["scale_active"], params["scale_clients"])

    from flask_clientauth.extension import DEFAULTS

    params["default_cache_size"] = DEFAULTS.get("CLIENTAUTH_CACHE_SIZE", 10_000)
    selected = args.only or list(SECTIONS)
    pg_version, pg_reason = postgres_version(args.postgres_url)
    if pg_version and not args.sqlite:
        database_url, database_label = args.postgres_url, f"{pg_version} (127.0.0.1)"
    else:
        database_url = f"sqlite:///{os.path.join(tmpdir, 'clients.sqlite3')}"
        database_label = "SQLite (temporary file)"
    try:
        loadgen = choose(args.loadgen)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    loadgen_label = (
        f"wrk ({wrk_path()})" if loadgen == "wrk" else "Python http.client keep-alive generator (wrk not used)"
    )
    ctx = Context(
        params=params,
        database_url=database_url,
        database_label=database_label,
        postgres_url=args.postgres_url if pg_version else None,
        postgres_skip_reason=pg_reason,
        loadgen=loadgen,
        revocation_interval=float(DEFAULTS.get("CLIENTAUTH_REVOCATION_INTERVAL", 1.0)),
    )
    ensure_tables(database_url)
    machine = machine_info(pg_version, loadgen_label)
    _progress(f"mode {mode}; store {database_label}; load generator {loadgen}; sections {', '.join(selected)}")

    results: dict[str, Any] = {}
    failed = []
    for name in selected:
        title, module = SECTIONS[name]
        _progress(f"{name}: running")
        t0 = time.perf_counter()
        try:
            res = module.run(ctx)
            error = None
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next part
            traceback.print_exc()
            res, error = {}, f"{type(exc).__name__}: {exc}"
            failed.append(name)
        elapsed = time.perf_counter() - t0
        results[name] = {"title": title, "result": res, "error": error, "seconds": elapsed}
        _progress(f"{name}: {'FAILED' if error else 'done'} in {elapsed:.1f} s")

    report = [f"# Flask-ClientAuth benchmark ({mode} mode)", "", "## Machine", ""]
    report.append(table(["", ""], [[k, v if v is not None else "-"] for k, v in machine.items()]))
    for name in selected:
        entry = results[name]
        report += ["", f"## {entry['title']}", ""]
        if entry["error"]:
            report.append(f"FAILED: {entry['error']}")
        else:
            report.append(SECTIONS[name][1].render(entry["result"]))
        report.append(f"\n_({entry['seconds']:.1f} s)_")
    machine["load_average_at_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report.append(
        f"\nLoad average at start {machine['load_average_at_start']}, at end {machine['load_average_at_end']} "
        f"({machine['cores']} cores): anything else running on the machine shows in the absolute figures; "
        "the ratios come from interleaved or alternated runs."
    )
    if args.profile:
        report += ["", "## Profile of the warm id+secret path", profile_hot_path(ctx)]
    print("\n".join(report), flush=True)

    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {"mode": mode, "machine": machine, "params": params, "results": results},
                fh,
                indent=2,
                default=str,
            )
    if failed:
        print(f"\nFailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
