"""1. In-process: microseconds per request with no server, bare Flask versus protected.

The environ is built once per variant and ``app.wsgi_app(environ, start_response)`` is called in
a tight loop; the same is then done through ``app.test_client()``. Variants run interleaved in
short batches (a shuffled order every round) and each figure is the median over rounds; the
overhead of a variant is the median of its per-round difference to bare Flask in the same round.
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.test import EnvironBuilder

import bench_app
from bench_common import creds, fmt, make_store, median, table

#: The plan of the ``plan-*`` variants: one limit, never reached while counting.
PLAN_LIMIT = "1000000000/day"


@dataclass
class Variant:
    name: str
    label: str
    app: Any
    path: str
    headers: dict[str, str]


def build_variants(
    database_url: str,
    rounds: int,
    *,
    client: tuple[str, str] | None = None,
    config: dict[str, Any] | None = None,
    plans: bool = False,
    metrics: bool = False,
) -> tuple[list[Variant], list[str]]:
    """The apps to compare, for a new client (or ``client``: an existing ID and secret); ``plans`` adds
    the id+secret route with plans configured: the client without a plan, and on a plan (memory counters);
    ``metrics`` the public and id+secret routes with Prometheus metrics on (``CLIENTAUTH_METRICS``), and
    id+secret with the per-client label too."""
    notes: list[str] = []
    store = make_store(database_url, rounds)
    if client is None:
        record, new_secret = store.create("bench in-process")
        assert new_secret is not None
        cid, secret = record.client_id, new_secret
    else:
        cid, secret = client
    tokens = {cid: secret}
    variants = [
        Variant("bare", "bare Flask (no auth)", bench_app.create_app("bare"), "/hello", {}),
        Variant(
            "handwritten",
            "reference: hand-written before_request (dict + SHA-256 + compare_digest)",
            bench_app.create_app("handwritten", tokens=tokens),
            "/hello",
            creds(cid, secret),
        ),
    ]
    try:
        import flask_httpauth  # noqa: F401

        variants.append(
            Variant(
                "httpauth",
                "reference: flask-httpauth HTTPTokenAuth",
                bench_app.create_app("httpauth", tokens=tokens),
                "/hello",
                {bench_app.TOKEN_HEADER: secret},
            )
        )
    except ImportError:
        notes.append("flask-httpauth row skipped: not installed (`pip install flask-httpauth` to add it).")
    config = {"CLIENTAUTH_BCRYPT_ROUNDS": rounds, **(config or {})}
    protected = bench_app.create_app("id-secret", database_url, config=config)
    variants += [
        Variant("public", "ClientAuth, public route (security: [])", protected, "/public", {}),
        Variant(
            "id-only",
            "ClientAuth, id-only (warm)",
            bench_app.create_app("id-only", database_url, config=config),
            "/hello",
            creds(cid, None),
        ),
        Variant("id-secret", "ClientAuth, id+secret (warm)", protected, "/hello", creds(cid, secret)),
    ]
    if plans:
        plan = {"bench": {"rate_limits": [PLAN_LIMIT]}}
        unlimited = {**config, "CLIENTAUTH_PLANS": plan}
        limited = {**unlimited, "CLIENTAUTH_DEFAULT_PLAN": "bench"}
        variants += [
            Variant(
                "plan-none",
                "ClientAuth, id+secret (warm), plans configured, the client on none",
                bench_app.create_app("id-secret", database_url, config=unlimited),
                "/hello",
                creds(cid, secret),
            ),
            Variant(
                "plan-memory",
                f"ClientAuth, id+secret (warm), on a plan of {PLAN_LIMIT} (memory counters)",
                bench_app.create_app("id-secret", database_url, config=limited),
                "/hello",
                creds(cid, secret),
            ),
        ]
    if metrics:
        counted = {**config, "CLIENTAUTH_METRICS": True}
        with_metrics = bench_app.create_app("id-secret", database_url, config=counted)
        with_client = bench_app.create_app(
            "id-secret", database_url, config={**counted, "CLIENTAUTH_METRICS_CLIENT_LABEL": True}
        )
        variants += [
            Variant("metrics-public", "ClientAuth, public route, metrics on", with_metrics, "/public", {}),
            Variant(
                "metrics-id-secret",
                "ClientAuth, id+secret (warm), metrics on",
                with_metrics,
                "/hello",
                creds(cid, secret),
            ),
            Variant(
                "metrics-client",
                "ClientAuth, id+secret (warm), metrics on with the client label",
                with_client,
                "/hello",
                creds(cid, secret),
            ),
        ]
    store.engine.dispose()
    return variants, notes


def _environ(v: Variant) -> dict[str, Any]:
    builder = EnvironBuilder(path=v.path, method="GET", headers=list(v.headers.items()))
    try:
        return builder.get_environ()
    finally:
        builder.close()


def wsgi_runner(v: Variant) -> Callable[[int], int]:
    """``run(n)`` makes n requests through ``app.wsgi_app`` and returns the last status."""
    environ = _environ(v)
    wsgi = v.app.wsgi_app
    status = [""]

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Any:
        status[0] = s
        return None

    def run(n: int) -> int:
        for _ in range(n):
            body = wsgi(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return int(status[0][:3])

    return run


def client_runner(v: Variant) -> Callable[[int], int]:
    client = v.app.test_client()
    path, headers = v.path, v.headers

    def run(n: int) -> int:
        code = 0
        for _ in range(n):
            code = client.get(path, headers=headers).status_code
        return code

    return run


def measure(
    runners: dict[str, Callable[[int], int]], *, rounds: int, batch: int, seed: int = 6, cpu: bool = True
) -> dict[str, list[float]]:
    """Per-round µs/request of each runner, interleaved in a shuffled order every round.

    With ``cpu`` (the default) the clock is this thread's CPU time, not wall time: on a shared
    machine, time spent waiting for a core is not counted (cache effects of neighbours still are).
    """
    for name, run in runners.items():
        status = run(max(10, batch // 10))  # warm: first request, bytecode caches, the policy table
        if status != 200:
            raise RuntimeError(f"in-process variant {name!r} answered {status}, not 200: the benchmark is invalid")
    samples: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    rnd = random.Random(seed)
    clock = time.thread_time_ns if cpu else time.perf_counter_ns
    for _ in range(rounds):
        rnd.shuffle(order)
        for name in order:
            run = runners[name]
            gc.collect()
            t0 = clock()
            status = run(batch)
            elapsed = clock() - t0
            if status != 200:
                raise RuntimeError(f"in-process variant {name!r} answered {status} during the run")
            samples[name].append(elapsed / batch / 1000.0)
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    bare = samples["bare"]
    out = {}
    for name, vals in samples.items():
        diffs = [v - b for v, b in zip(vals, bare, strict=True)]
        out[name] = {
            "us_per_request": median(vals),
            "min_us": min(vals),
            "overhead_us": median(diffs),
            "overhead_min_us": min(vals) - min(bare),
            "ratio_to_bare": median(v / b for v, b in zip(vals, bare, strict=True)),
        }
    return out


# -- instruction counts (valgrind) ----------------------------------------------------------
#: Under valgrind a request takes ~50x longer, so a once-a-second change-log poll would come
#: 50x more often per request than in real time; the counted apps poll once a minute instead
#: (at real speed, one poll per second is well under 0.1% of the requests of a busy worker).
#: The last-used writer is off: its thread's write, once a minute, would land in some counted runs
#: and not others; the warm path's share of it (the entry's time of use) is counted all the same.
COUNT_CONFIG = {"CLIENTAUTH_REVOCATION_INTERVAL": 60.0, "CLIENTAUTH_LAST_USED_INTERVAL": 0}
BASELINE = "-"


def count_instructions(
    database_url: str,
    rounds: int,
    client: tuple[str, str],
    names: list[str],
    requests: int,
    plans: bool = False,
    metrics: bool = False,
) -> dict[str, Any]:
    """Instructions per request of each variant, counted by ``valgrind --tool=callgrind``.

    Every child process builds and warms all the variants, then makes ``requests`` calls of
    one of them; a child that makes none is the baseline subtracted from the others. Counts
    of executed instructions do not depend on what else the machine runs, unlike times.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"skipped": "valgrind is not installed (`apt-get install valgrind`)"}
    env = dict(
        os.environ,
        PYTHONHASHSEED="0",
        BENCH_COUNT_DATABASE_URL=database_url,
        BENCH_COUNT_CLIENT=json.dumps(list(client)),
        BENCH_COUNT_ROUNDS=str(rounds),
        BENCH_COUNT_PLANS="1" if plans else "",
        BENCH_COUNT_METRICS="1" if metrics else "",
    )
    totals: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="clientauth-callgrind-") as tmp:
        jobs = [BASELINE, *names]
        running: list[tuple[str, subprocess.Popen[str]]] = []
        # one process per core; one at a time on SQLite, whose locks would time out under valgrind
        parallel = 1 if database_url.startswith("sqlite") else os.cpu_count() or 1
        while jobs or running:
            while jobs and len(running) < parallel:
                name = jobs.pop(0)
                cmd = [
                    valgrind,
                    "--tool=callgrind",
                    f"--callgrind-out-file={os.path.join(tmp, 'callgrind.%p')}",
                    sys.executable,
                    os.path.abspath(__file__),
                    name,
                    str(0 if name == BASELINE else requests),
                ]
                proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                running.append((name, proc))
            name, proc = running.pop(0)
            out, err = proc.communicate()
            found = re.search(r"Collected : (\d+)", err)
            if proc.returncode != 0 or found is None or "COUNTED 200" not in out:
                raise RuntimeError(f"instruction count of {name!r} failed: {err[-2000:]}")
            totals[name] = int(found.group(1))
    base = totals.pop(BASELINE)
    return {"requests": requests, "per_request": {name: (total - base) / requests for name, total in totals.items()}}


def _count_child(name: str, requests: int) -> None:
    """The process valgrind runs: build and warm every variant, then ``requests`` calls of ``name``."""
    client = json.loads(os.environ["BENCH_COUNT_CLIENT"])
    variants, _ = build_variants(
        os.environ["BENCH_COUNT_DATABASE_URL"],
        int(os.environ["BENCH_COUNT_ROUNDS"]),
        client=(client[0], client[1]),
        config=COUNT_CONFIG,
        plans=bool(os.environ.get("BENCH_COUNT_PLANS")),
        metrics=bool(os.environ.get("BENCH_COUNT_METRICS")),
    )
    runners = {v.name: wsgi_runner(v) for v in variants}
    for variant in variants:
        response = variant.app.test_client().get(variant.path, headers=variant.headers)
        if response.status_code != 200 or runners[variant.name](20) != 200:
            raise SystemExit(f"variant {variant.name!r} answered {response.status_code}: {response.get_data()[:300]!r}")
    status = runners[name](requests) if requests else 200
    print(f"COUNTED {status}")


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    store = make_store(ctx.database_url, p["client_rounds"])
    record, secret = store.create("bench in-process")
    store.engine.dispose()
    assert secret is not None
    credentials = (record.client_id, secret)
    variants, notes = build_variants(ctx.database_url, p["client_rounds"], client=credentials)
    wsgi = measure({v.name: wsgi_runner(v) for v in variants}, rounds=p["inproc_rounds"], batch=p["inproc_batch"])
    client = measure(
        {v.name: client_runner(v) for v in variants},
        rounds=p["inproc_rounds"],
        batch=max(10, p["inproc_batch"] // 4),
    )
    if p["inproc_instructions"]:
        instructions = count_instructions(
            ctx.database_url, p["client_rounds"], credentials, [v.name for v in variants], p["inproc_instructions"]
        )
    else:
        instructions = {"skipped": "not in --smoke mode (valgrind needs a few minutes)"}
    return {
        "labels": {v.name: v.label for v in variants},
        "instructions": instructions,
        "rounds": p["inproc_rounds"],
        "batch_wsgi": p["inproc_batch"],
        "batch_test_client": max(10, p["inproc_batch"] // 4),
        "wsgi": summarize(wsgi),
        "test_client": summarize(client),
        "database": ctx.database_label,
        "notes": notes,
    }


def render(res: dict[str, Any]) -> str:
    rows = []
    for name, label in res["labels"].items():
        w, c = res["wsgi"][name], res["test_client"][name]
        rows.append(
            [
                label,
                fmt(w["us_per_request"]),
                "-" if name == "bare" else f"{w['overhead_us']:+.1f}",
                "-" if name == "bare" else f"{w['overhead_min_us']:+.1f}",
                fmt(c["us_per_request"]),
                "-" if name == "bare" else f"{c['overhead_us']:+.1f}",
            ]
        )
    text = table(
        [
            "variant (GET /hello → 'ok')",
            "wsgi_app µs/req",
            "overhead µs",
            "overhead, fastest batches µs",
            "test_client µs/req",
            "overhead µs",
        ],
        rows,
    )
    info = (
        f"\nCPU time of the benchmark thread (not wall time). Medians of {res['rounds']} interleaved rounds (batches of {res['batch_wsgi']} direct WSGI calls, "
        f"{res['batch_test_client']} test-client requests); overhead = median of the per-round difference to "
        f"bare Flask; 'fastest batches' = the variant's fastest batch minus bare Flask's fastest. Store: {res['database']}. Target: id+secret warm adds ≤ 5 µs (wsgi_app column)."
    )
    return text + info + render_instructions(res) + "".join(f"\n\n{n}" for n in res["notes"])


def render_instructions(res: dict[str, Any]) -> str:
    counts = res.get("instructions") or {}
    if "per_request" not in counts:
        return f"\n\nInstructions per request: skipped, {counts.get('skipped', 'not measured')}."
    per = counts["per_request"]
    bare = per["bare"]
    us_per_instruction = res["wsgi"]["bare"]["us_per_request"] / bare
    rows = [
        [
            res["labels"][name],
            f"{n:,.0f}",
            "-" if name == "bare" else f"{n - bare:+,.0f}",
            "-" if name == "bare" else f"{(n - bare) / bare * 100:+.1f}%",
            "-" if name == "bare" else f"{(n - bare) * us_per_instruction:+.1f}",
        ]
        for name, n in per.items()
    ]
    text = table(
        ["variant", "instructions/req", "overhead", "overhead % of bare", "≈ µs at this run's bare speed"],
        rows,
    )
    return (
        "\n\nInstructions per request (`valgrind --tool=callgrind`, the same for any load on the machine): "
        f"{counts['requests']:,} direct WSGI calls of each variant, minus a run that made none.\n\n"
        + text
        + "\n\nThe last column converts the overhead at bare Flask's measured µs per instruction (above): "
        "a reading of the instruction overhead in time, free of the timing noise."
    )


if __name__ == "__main__":
    _count_child(sys.argv[1], int(sys.argv[2]))
