"""Requests in several threads and processes while a secret is reset and a client deleted.

Each answer must be 200 with the old credential or 401 / 200 with the new one: never a 5xx,
never another client's identity, never an answer that belongs to neither state. Processes,
which poll the change log before each request here, must switch exactly at the change.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine

from flask_clientauth import ClientStore

from conftest import TUTORIAL_SPEC, AppFactory

THREADS = 4
DEADLINE = 60.0  # seconds any single wait may take before the test fails (never reached normally)


def headers(cid: str, secret: str) -> dict[str, str]:
    return {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}


@pytest.fixture
def writer_store(request: pytest.FixtureRequest, database_url: str) -> Iterator[ClientStore | None]:
    """``None``: changes go through the app's own store (this process); else a store on a separate
    engine, standing for the CLI in another process (the app learns of it from the change log)."""
    if request.param == "same-process":
        yield None
        return
    engine = create_engine(database_url)
    yield ClientStore(lambda: engine, bcrypt_rounds=4)
    engine.dispose()


def check_answer(label: str, status: int, body: dict[str, Any], sent: str, names: dict[str, str]) -> None:
    """An answer is a 200 for the very client whose credentials were sent, or a 401."""
    assert status in (200, 401), (label, status, body)
    if status == 200:
        assert body["client_id"] == sent and body["name"] == names[sent], (label, body)
    else:
        assert body["moreInformation"] in ("Client secret invalid", "Client ID not registered"), (label, body)


@pytest.mark.parametrize("writer_store", ["same-process", "another-process"], indirect=True)
def test_threads_while_a_secret_is_reset_and_the_client_deleted(
    make_app: AppFactory, database_url: str, writer_store: ClientStore | None
) -> None:
    app: Flask = make_app(
        database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0, CLIENTAUTH_RATELIMIT_ENABLED=False
    )
    store: ClientStore = app.extensions["clientauth"].store
    writer = writer_store or store
    a, a_old = store.create("Client A")
    b, b_secret = store.create("Client B")
    assert a_old is not None and b_secret is not None
    names = {a.client_id: "Client A", b.client_id: "Client B"}
    creds: dict[str, tuple[str, str]] = {"A-old": (a.client_id, a_old), "B": (b.client_id, b_secret)}
    phase = [0]
    rounds = [[0, 0, 0] for _ in range(THREADS)]
    results: list[tuple[int, str, int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    lock = threading.Lock()

    def work(n: int) -> None:
        client = app.test_client()
        try:
            while not stop.is_set():
                round_phase = phase[0]
                for label, (cid, secret) in list(creds.items()):
                    current = phase[0]  # read just before the request: a phase is announced after its change
                    resp = client.get("/api/branches", headers=headers(cid, secret))
                    with lock:
                        results.append((current, label, resp.status_code, resp.get_json()))
                rounds[n][round_phase] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def wait_rounds(current: int, count: int = 3) -> None:
        deadline = time.monotonic() + DEADLINE
        while any(r[current] < count for r in rounds) and not errors:
            assert time.monotonic() < deadline, rounds
            time.sleep(0.01)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    try:
        wait_rounds(0)
        _, a_new = writer.reset_secret(a.client_id)
        creds["A-new"] = (a.client_id, a_new)
        phase[0] = 1
        wait_rounds(1)
        writer.delete(a.client_id)
        phase[0] = 2
        wait_rounds(2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=DEADLINE)
    assert not errors, errors
    sent = {label: cid for label, (cid, _) in creds.items()}
    for current, label, status, body in results:
        check_answer(label, status, body, sent[label], names)
        if label == "B":
            assert status == 200, (current, label, body)  # nothing changed for B: never refused
        elif writer_store is None and current >= 1:
            # a change made in this process evicts the cache before it returns: requests started
            # after it never see the old state (another process's change shows within the interval)
            assert status == 401 or (label, current) == ("A-new", 1), (current, label, body)
            if current == 2:
                assert body["moreInformation"] == "Client ID not registered"
    assert {(c, label) for c, label, _, _ in results} >= {(0, "A-old"), (1, "A-new"), (2, "B")}
    # once the change log is read, the end state holds for everyone
    client = app.test_client()
    for label in ("A-old", "A-new"):
        resp = client.get("/api/branches", headers=headers(*creds[label]))
        assert (resp.status_code, resp.get_json()["moreInformation"]) == (401, "Client ID not registered")
    assert client.get("/api/branches", headers=headers(*creds["B"])).get_json()["client_id"] == b.client_id


@pytest.mark.parametrize("writer_store", ["same-process"], indirect=True)
def test_threads_see_the_new_secret_accepted_after_a_reset(
    make_app: AppFactory, database_url: str, writer_store: None
) -> None:
    """The other half of the promise: the new secret is accepted (within the revocation interval)."""
    app: Flask = make_app(
        database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0, CLIENTAUTH_RATELIMIT_ENABLED=False
    )
    store: ClientStore = app.extensions["clientauth"].store
    a, old = store.create("Client A")
    assert old is not None
    outcomes: queue.Queue[tuple[str, int]] = queue.Queue()
    barrier = threading.Barrier(THREADS + 1)
    secrets = {"old": old}

    def work() -> None:
        client = app.test_client()
        barrier.wait()
        for _ in range(15):
            for label, secret in list(secrets.items()):
                outcomes.put((label, client.get("/api/branches", headers=headers(a.client_id, secret)).status_code))

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    _, secrets["new"] = store.reset_secret(a.client_id)
    for t in threads:
        t.join(timeout=DEADLINE)
    seen: dict[str, set[int]] = {}
    while not outcomes.empty():
        label, status = outcomes.get()
        seen.setdefault(label, set()).add(status)
    assert seen["old"] <= {200, 401} and seen.get("new", {200}) <= {200, 401}
    client = app.test_client()
    assert client.get("/api/branches", headers=headers(a.client_id, secrets["new"])).status_code == 200
    assert client.get("/api/branches", headers=headers(a.client_id, old)).status_code == 401


# -- processes ----------------------------------------------------------------------------------

WORKER = """
import json, os, sys
from flask import Flask, jsonify
from flask_clientauth import ClientAuth, current_client

spec, instance, database, control = sys.argv[1:]
app = Flask("worker", instance_path=instance)
app.config.update(
    CLIENTAUTH_SPEC=json.loads(spec),
    CLIENTAUTH_DATABASE_URI=database,
    CLIENTAUTH_BCRYPT_ROUNDS=4,
    CLIENTAUTH_REVOCATION_INTERVAL=0,
    CLIENTAUTH_RATELIMIT_ENABLED=False,
)
ClientAuth(app)
app.add_url_rule(
    "/api/branches", "branches", lambda: jsonify(client_id=current_client.client_id, name=current_client.name)
)
client = app.test_client()
results, rounds = [], {}
while True:
    with open(control) as f:
        state = json.load(f)  # read before the round: a phase is only announced once its change committed
    if state["stop"]:
        break
    phase = state["phase"]
    for label, cid, secret in state["creds"]:
        resp = client.get("/api/branches", headers={"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret})
        results.append([phase, label, resp.status_code, resp.get_json()])
    rounds[phase] = rounds.get(phase, 0) + 1
    if rounds[phase] <= 3:
        print(phase, flush=True)
print("RESULTS " + json.dumps(results), flush=True)
"""


class Workers:
    """Worker processes, each with its own app on the same database, driven by a control file."""

    def __init__(self, tmp_path: Path, database_url: str, count: int) -> None:
        self.control = tmp_path / "control.json"
        self.write(phase=0, creds=[], stop=False)
        script = tmp_path / "concurrency_worker.py"
        script.write_text(textwrap.dedent(WORKER))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTAUTH_")}
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(script),
                    json.dumps(TUTORIAL_SPEC),
                    str(tmp_path / f"w{n}"),
                    database_url,
                    str(self.control),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for n in range(count)
        ]
        self.lines: list[queue.Queue[str]] = []
        self.readers: list[threading.Thread] = []
        for proc in self.procs:
            q: queue.Queue[str] = queue.Queue()
            reader = threading.Thread(target=self._read, args=(proc, q), daemon=True)
            reader.start()
            self.lines.append(q)
            self.readers.append(reader)

    @staticmethod
    def _read(proc: subprocess.Popen[str], q: queue.Queue[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            q.put(line.rstrip("\n"))
        q.put("")  # end of output

    def write(self, **state: Any) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.control)  # atomic: a worker reads the old or the new state, never half

    def wait_rounds(self, phase: int, count: int = 2) -> None:
        """Until every worker finished ``count`` rounds in ``phase``."""
        for proc, q in zip(self.procs, self.lines, strict=True):
            seen = 0
            while seen < count:
                try:
                    line = q.get(timeout=DEADLINE)
                except queue.Empty:
                    pytest.fail(f"a worker made no progress in phase {phase}")
                if line == "":
                    pytest.fail(f"a worker exited: {proc.stderr.read() if proc.stderr else ''}")
                seen += line == str(phase)

    def results(self) -> list[list[Any]]:
        out = []
        for proc, q in zip(self.procs, self.lines, strict=True):
            proc.wait(timeout=DEADLINE)
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            lines = []
            while (line := q.get(timeout=DEADLINE)) != "":
                lines.append(line)
            (payload,) = [line for line in lines if line.startswith("RESULTS ")]
            out.append(json.loads(payload[len("RESULTS ") :]))
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=DEADLINE)
        for reader in self.readers:
            reader.join(timeout=DEADLINE)
        for proc in self.procs:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


@pytest.mark.slow
def test_processes_while_a_secret_is_reset_and_the_client_deleted(
    make_app: AppFactory, database_url: str, tmp_path: Path
) -> None:
    app = make_app(database_url=database_url)
    store: ClientStore = app.extensions["clientauth"].store
    a, a_old = store.create("Client A")
    b, b_secret = store.create("Client B")
    assert a_old is not None and b_secret is not None
    names = {a.client_id: "Client A", b.client_id: "Client B"}
    other_engine = create_engine(database_url)  # the operator's CLI, another process again
    cli_store = ClientStore(lambda: other_engine, bcrypt_rounds=4)
    workers = Workers(tmp_path, database_url, count=2)
    try:
        creds = [["A-old", a.client_id, a_old], ["B", b.client_id, b_secret]]
        workers.write(phase=0, creds=creds, stop=False)
        workers.wait_rounds(0)
        _, a_new = cli_store.reset_secret(a.client_id)
        creds.append(["A-new", a.client_id, a_new])
        workers.write(phase=1, creds=creds, stop=False)
        workers.wait_rounds(1)
        cli_store.delete(a.client_id)
        workers.write(phase=2, creds=creds, stop=False)
        workers.wait_rounds(2)
        workers.write(phase=2, creds=creds, stop=True)
        per_worker = workers.results()
    finally:
        workers.close()
        other_engine.dispose()
    sent = {label: cid for label, cid, _ in creds}
    # A round reads its phase before its requests; a phase is announced once its change committed,
    # and each request polls the change log first. So a round of phase N sees change N or later:
    allowed = {
        (0, "A-old"): {a.client_id, "Client secret invalid"},  # (the reset may commit mid-round)
        (1, "A-old"): {"Client secret invalid", "Client ID not registered"},
        (1, "A-new"): {a.client_id, "Client ID not registered"},  # never the old hash's refusal
        (2, "A-old"): {"Client ID not registered"},
        (2, "A-new"): {"Client ID not registered"},
    }
    for results in per_worker:
        assert {(p, label) for p, label, _, _ in results} >= set(allowed)
        for phase, label, status, body in results:
            check_answer(label, status, body, sent[label], names)
            if label == "B":
                assert status == 200
                continue
            got = body["client_id"] if status == 200 else body["moreInformation"]
            assert got in allowed[(phase, label)], (phase, label, body)
        # phase 1 saw the new secret accepted at least once (its rounds precede the delete)
        assert any(p == 1 and label == "A-new" and status == 200 for p, label, status, _ in results)


def test_concurrent_role_changes_lose_none(make_app: AppFactory, database_url: str) -> None:
    """Roles are read and written under the client's row lock: two admins changing roles at once
    must not undo each other (a lost removal would leave a client a role taken from it)."""
    app: Flask = make_app(database_url=database_url)
    store: ClientStore = app.extensions["clientauth"].store
    a, _ = store.create("Client A", roles=["admin"])
    barrier = threading.Barrier(THREADS * 2)
    errors: list[BaseException] = []

    def change(**roles: list[str]) -> None:
        try:
            barrier.wait(timeout=DEADLINE)
            store.set_roles(a.client_id, **roles)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=change, kwargs={"add": [f"role{n}"]}) for n in range(THREADS * 2 - 1)]
    threads.append(threading.Thread(target=change, kwargs={"remove": ["admin"]}))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE)
    assert not errors
    assert store.require(a.client_id).roles == tuple(sorted(f"role{n}" for n in range(THREADS * 2 - 1)))
