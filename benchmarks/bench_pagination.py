"""Client listings with 10,000 clients: what one page of ``ClientService.list_clients`` costs.

Usage: ``python benchmarks/bench_pagination.py [DATABASE_URL] [--clients N]`` (default: a
temporary SQLite file, 10,000 clients). The clients are inserted in bulk into a fresh set of
tables (existing ones are dropped: give it a throwaway database). Each case is run 20 times; the
median and the slowest are printed in milliseconds. A page is two SQL statements plus a COUNT
without ``can_manage``; with it, the clients that match the filter are read 500 at a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import insert

from flask_clientauth import ClientAuth, ClientService
from flask_clientauth.models import clients_table, credentials_table
from flask_clientauth.store import utcnow

SPEC = {"openapi": "3.0.3", "info": {"title": "bench", "version": "1"}, "paths": {}}
RUNS = 20


def load(app: Flask, count: int) -> None:
    store = app.extensions["clientauth"].store
    store.drop_all()
    store.create_all()
    now = utcnow()
    with store.engine.begin() as conn:
        rows = [
            {"name": f"client {i:05}", "description": "", "enabled": i % 10 != 0, "roles": "", "created_at": now}
            for i in range(count)
        ]
        conn.execute(insert(clients_table), [{**r, "updated_at": now} for r in rows])
        pks = [row.id for row in conn.execute(clients_table.select().order_by(clients_table.c.id))]
        conn.execute(
            insert(credentials_table),
            [
                {"client_pk": pk, "client_id": f"bench{pk:08}", "label": "", "created_at": now, "updated_at": now}
                for pk in pks
            ],
        )


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("--clients", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        app = Flask("bench", instance_path=tmp)
        app.config.update(CLIENTAUTH_SPEC=SPEC, CLIENTAUTH_DATABASE_URI=url)
        ClientAuth(app)
        state = app.extensions["clientauth"]
        load(app, args.clients)
        every = ClientService(state, actor="bench")

        def mine(record: Any) -> bool:
            return record.name.endswith("7")

        some = ClientService(state, actor="bench", can_manage=mine)
        scoped = ClientService(state, actor="bench", can_manage=mine, scope=clients_table.c.name.like("%7"))
        last = args.clients // 50
        cases = [
            ("page 1 of 50", lambda: every.list_clients()),
            (f"page {last} of 50 (the last)", lambda: every.list_clients(page=last)),
            ("search 'client 0424'", lambda: every.list_clients(search="client 0424")),
            ("status disabled, page 3", lambda: every.list_clients(status="disabled", page=3)),
            ("can_manage (1 in 10), page 1", lambda: some.list_clients()),
            ("can_manage + scope, page 1", lambda: scoped.list_clients()),
        ]
        print(f"{args.clients} clients on {state.store.engine.url.get_backend_name()}: ms per listing (median, max)")
        for name, call in cases:
            median, worst = timed(call)
            print(f"  {name:32} {median:8.1f} {worst:8.1f}")
        state.store.drop_all()
        state.store.engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
