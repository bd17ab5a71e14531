"""3. Cold path: a client's first request (store lookup + one hash check) and a secret rotation.

In-process, through ``app.wsgi_app``, for each bcrypt cost asked for (default 12 and 10):

* first request: a client created a moment ago, never seen by this process: one store read and
  one check of its generated secret (SHA-256); the second request (warm) is shown beside it; the
  same first request for a client whose secret an operator chose (``set_secret``: bcrypt at this
  cost), and a wrong secret of the generated format for a known client;
* rotation: ``store.reset_secret`` from the benchmark's own store object (as another process
  would: the app learns of it only through the change log), then the new secret is sent until it
  is accepted. Reported: how long the reset took, how long until the new secret got a 200, how
  many requests were refused meanwhile, the cost of the accepted request, and whether the old
  secret is refused afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import bcrypt
from werkzeug.test import EnvironBuilder

import bench_app
from bench_common import creds, fmt, make_store, median, table
from flask_clientauth.keys import generate_secret


def _call(app: Any, headers: dict[str, str]) -> tuple[int, float]:
    builder = EnvironBuilder(path="/hello", headers=list(headers.items()))
    environ = builder.get_environ()
    builder.close()
    status = [""]

    def start_response(s: str, h: Any, exc_info: Any = None) -> None:
        status[0] = s

    t0 = time.perf_counter()
    body = app.wsgi_app(environ, start_response)
    for _ in body:
        pass
    getattr(body, "close", lambda: None)()
    return int(status[0][:3]), (time.perf_counter() - t0) * 1000


def _one_cost(database_url: str, rounds: int, trials: int, timeout: float, settle: float) -> dict[str, Any]:
    store = make_store(database_url, rounds)
    # Throttle off: the rotation below sends the new secret in a tight loop until the poll, and
    # every refusal would count (these requests have no REMOTE_ADDR: one shared counter).
    config = {"CLIENTAUTH_BCRYPT_ROUNDS": rounds, "CLIENTAUTH_RATELIMIT_ENABLED": False}
    app = bench_app.create_app("id-secret", database_url, config=config)
    _call(app, {})  # the policy table, the change-log cursor

    raw_hash = bcrypt.hashpw(b"x" * 43, bcrypt.gensalt(rounds))
    t0 = time.perf_counter()
    bcrypt.checkpw(b"x" * 43, raw_hash)
    bcrypt_ms = (time.perf_counter() - t0) * 1000

    first, second, warm, chosen_first, wrong_first = [], [], [], [], []
    for i in range(trials):
        record, _ = store.create(f"bench cold chosen {i}")
        chosen = f"chosen-by-an-operator-{i:04d}"
        store.set_secret(record.client_id, chosen)
        status, ms = _call(app, creds(record.client_id, chosen))
        if status != 200:
            raise RuntimeError(f"cold path: first request with a chosen secret answered {status}")
        chosen_first.append(ms)
        generated, _ = store.create(f"bench cold wrong {i}")  # its secret is stored as SHA-256
        status, ms = _call(app, creds(generated.client_id, generate_secret()))  # well-formed, wrong
        if status != 401:
            raise RuntimeError(f"cold path: a wrong generated-format secret answered {status}")
        wrong_first.append(ms)
    for i in range(trials):
        record, secret = store.create(f"bench cold {i}")
        status, ms = _call(app, creds(record.client_id, secret))
        if status != 200:
            raise RuntimeError(f"cold path: first request answered {status}")
        first.append(ms)
        second.append(_call(app, creds(record.client_id, secret))[1])
        time.sleep(settle)  # past the next change-log poll, which sees this client's "create"
        _call(app, creds(record.client_id, secret))
        warm.append(_call(app, creds(record.client_id, secret))[1])

    reset_ms, accepted_after, refused, accepted_cost, old_refused = [], [], [], [], []
    for i in range(trials):
        record, old = store.create(f"bench rotation {i}")
        cid = record.client_id
        if _call(app, creds(cid, old))[0] != 200:
            raise RuntimeError("rotation: the original secret was refused")
        t0 = time.perf_counter()
        _, new = store.reset_secret(cid)
        t1 = time.perf_counter()
        reset_ms.append((t1 - t0) * 1000)
        n_refused = 0
        while True:
            status, ms = _call(app, creds(cid, new))
            if status == 200:
                accepted_after.append((time.perf_counter() - t1) * 1000)
                accepted_cost.append(ms)
                break
            n_refused += 1
            if time.perf_counter() - t1 > timeout:
                raise RuntimeError(f"rotation: the new secret was still refused after {timeout:.0f} s")
        refused.append(n_refused)
        old_refused.append(_call(app, creds(cid, old))[0] in (401, 403))
    store.engine.dispose()
    state = app.extensions["clientauth"]
    eng = getattr(state, "engine", None)
    if eng is not None:
        eng.dispose()
    return {
        "rounds": rounds,
        "trials": trials,
        "bcrypt_check_ms": bcrypt_ms,
        "first_request_ms": median(first),
        "first_request_max_ms": max(first),
        "chosen_first_request_ms": median(chosen_first),
        "wrong_generated_ms": median(wrong_first),
        "second_request_ms": median(second),
        "second_request_max_ms": max(second),
        "warm_request_ms": median(warm),
        "reset_secret_ms": median(reset_ms),
        "new_secret_accepted_after_ms": median(accepted_after),
        "new_secret_accepted_after_max_ms": max(accepted_after),
        "refused_before_accepted": median(refused),
        "refused_before_accepted_max": max(refused),
        "accepted_request_ms": median(accepted_cost),
        "old_secret_refused_after": all(old_refused),
    }


def run(ctx: Any) -> dict[str, Any]:
    p = ctx.params
    settle = ctx.revocation_interval + 0.1
    results = [_one_cost(ctx.database_url, r, p["cold_trials"], 30.0, settle) for r in p["cold_costs"]]
    return {"costs": results, "database": ctx.database_label}


def render(res: dict[str, Any]) -> str:
    rows = []
    for r in res["costs"]:
        rows.append(
            [
                r["rounds"],
                fmt(r["bcrypt_check_ms"]),
                f"{fmt(r['first_request_ms'], 3)} (max {fmt(r['first_request_max_ms'], 3)})",
                fmt(r["chosen_first_request_ms"]),
                fmt(r["wrong_generated_ms"], 3),
                f"{fmt(r['second_request_ms'], 3)} (max {fmt(r['second_request_max_ms'], 3)})",
                fmt(r["warm_request_ms"], 3),
                fmt(r["reset_secret_ms"]),
                f"{fmt(r['new_secret_accepted_after_ms'])} (max {fmt(r['new_secret_accepted_after_max_ms'])})",
                f"{fmt(r['refused_before_accepted'])} (max {r['refused_before_accepted_max']})",
                fmt(r["accepted_request_ms"]),
                "yes" if r["old_secret_refused_after"] else "NO",
            ]
        )
    text = table(
        [
            "bcrypt cost",
            "bcrypt check ms",
            "first request ms (generated secret)",
            "first request ms (chosen secret, bcrypt)",
            "wrong generated-format secret ms",
            "second request ms",
            "warm request ms",
            "reset-secret ms",
            "new secret accepted after ms",
            "new secret refused (times)",
            "accepted request ms",
            "old secret refused",
        ],
        rows,
    )
    trials = res["costs"][0]["trials"] if res["costs"] else 0
    return (
        text + f"\n\nIn-process (`app.wsgi_app`), medians of {trials} clients per cost. Store: {res['database']}. "
        "'new secret accepted after' counts from the moment `reset_secret` returned in another store "
        "object (the app learns of it through the change log); each refused attempt meanwhile cost a hash "
        "check against the old hash. Generated secrets are checked with SHA-256; only chosen ones pay bcrypt. 'second request' is sent right after the first; 'warm request' after the "
        "next change-log poll (which sees the client's own 'create' event) has passed."
    )
