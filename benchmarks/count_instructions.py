"""Instructions per request of each in-process variant, and nothing else (a few minutes).

    python benchmarks/count_instructions.py [REQUESTS] [--credentials N]

The same callgrind count as ``run.py --only inprocess`` (see bench_inprocess.count_instructions),
without the timed rounds: a quick before/after check of a change to the request path. Prints each
variant's instructions per request and its overhead over bare Flask. Needs valgrind.
``--credentials N`` gives the client N credentials (the first one is used), as issue 13 compares.
``--plans`` adds the id+secret route with plans configured (issue 14): ``plan-none`` (the client on
no plan) and ``plan-memory`` (on a plan with one limit, counted in memory). ``--metrics`` adds the
public and id+secret routes with Prometheus metrics on (``metrics-public``, ``metrics-id-secret``),
and id+secret with the per-client label too (``metrics-client``); needs the ``metrics`` extra.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

import bench_inprocess
from bench_common import ensure_tables, make_store


def main(requests: int, credentials: int = 1, plans: bool = False, metrics: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="clientauth-count-") as tmp:
        url = f"sqlite:///{tmp}/clients.sqlite3"
        ensure_tables(url)
        store = make_store(url, 4)
        record, secret = store.create("bench in-process")
        for _ in range(credentials - 1):
            store.add_credential(record.client_id)
        store.engine.dispose()
        assert secret is not None
        client = (record.client_id, secret)
        variants, _ = bench_inprocess.build_variants(url, 4, client=client, plans=plans, metrics=metrics)
        names = [v.name for v in variants]
        result = bench_inprocess.count_instructions(url, 4, client, names, requests, plans=plans, metrics=metrics)
    if "skipped" in result:
        print(result["skipped"])
        return 1
    per_request = result["per_request"]
    bare = per_request["bare"]
    for name, count in per_request.items():
        overhead = "" if name == "bare" else f"{count - bare:+12,.0f}"
        print(f"{name:14s} {count:12,.0f} {overhead}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=1000)
    parser.add_argument("--credentials", type=int, default=1, help="credentials of the client (default 1)")
    parser.add_argument("--plans", action="store_true", help="add the variants with plans (issue 14)")
    parser.add_argument("--metrics", action="store_true", help="add the variants with metrics on (issue 14)")
    args = parser.parse_args()
    sys.exit(main(args.requests, args.credentials, args.plans, args.metrics))
