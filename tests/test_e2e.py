"""End to end: the example app in real server processes, driven over HTTP as in the tutorial.

Gunicorn serves the example with two workers (both spec variants: OpenAPI 2.0 with header
keys, 3.x with query keys) on a SQLite file in a temporary instance folder; the real
``flask clients`` CLI changes clients in the same database while the servers run. The
README's curl lines and ``python -m example_app`` (what ``make run`` starts) are replayed too.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from servers import (
    BATCH,
    BRANCH_NAMES,
    CLIENT_NAME,
    HTTP_TIMEOUT,
    PROPAGATION_LIMIT,
    README,
    Server,
    cli,
    cli_json,
    example_env,
    free_port,
    unauthorized,
)

#: Every test here starts a real server or process (``pytest -m "not slow"`` leaves them out).
pytestmark = pytest.mark.slow


def credentials(server: Server, client_id: str | None, secret: str | None) -> dict[str, Any]:
    """Request arguments sending the credentials where the server's spec wants them."""
    if server.variant == "openapi2":
        headers = {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
        return {"headers": {k: v for k, v in headers.items() if v is not None}, "params": {}}
    params = {"client_id": client_id, "client_secret": secret}
    return {"headers": {}, "params": {k: v for k, v in params.items() if v is not None}}


def call(server: Server, path: str, creds: dict[str, Any], method: str = "GET", **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        server.url + path,
        headers={**creds["headers"], **kwargs.pop("headers", {})},
        params={**creds["params"], **kwargs.pop("params", {})},
        timeout=HTTP_TIMEOUT,
        **kwargs,
    )


def every_worker_answers(
    server: Server, creds: dict[str, Any], *, status: int, before: int, since: float, limit: float
) -> dict[int, float]:
    """Probe ``GET /api/branches`` until every worker answers ``status``; return when each did.

    Until a worker switches it may answer ``before``; once it has answered ``status`` it must
    never answer anything else. Fails if some worker has not switched ``limit`` seconds
    after ``since``.
    """
    workers = server.worker_pids()
    switched: dict[int, float] = {}
    with ThreadPoolExecutor(BATCH) as pool:
        while True:
            tags = [secrets.token_hex(16) for _ in range(BATCH)]

            def probe(tag: str) -> tuple[int, float]:
                response = call(server, "/api/branches", creds, params={"probe": tag})
                return response.status_code, time.monotonic()

            answers = dict(zip(tags, pool.map(probe, tags), strict=True))
            served = server.served_by(tags)
            for tag in sorted(tags, key=lambda t: served[t][1]):  # each worker's own order
                pid = served[tag][0]
                code, at = answers[tag]
                if pid in switched:
                    assert code == status, f"worker {pid} answered {code} again after {status}"
                elif code == status:
                    switched[pid] = at - since
                else:
                    assert code == before, f"worker {pid} answered {code}, expected {before} or {status}"
            if set(switched) >= workers:
                return switched
            if time.monotonic() - since > limit:
                pytest.fail(f"after {limit}s only workers {sorted(switched)} of {sorted(workers)} answer {status}")
            time.sleep(0.05)


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["openapi2", "openapi3"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example under gunicorn, two workers, with its tables created by ``flask clients init-db``."""
    variant: str = request.param
    root = tmp_path_factory.mktemp(f"e2e-{variant}")
    env = example_env(root / "instance", variant)
    result = cli(env, "init-db")
    assert result.returncode == 0, result.stderr
    port = free_port()
    srv = Server(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "example_app/gunicorn_conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "example_app:create_app()",
        ],
        env,
        root,
        port,
        variant,
    )
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: Server) -> tuple[str, str]:
    """A new client registered with the CLI: (client ID, client secret)."""
    created = cli_json(server.env, "create", CLIENT_NAME)
    assert created["name"] == CLIENT_NAME
    return created["client_id"], created["client_secret"]


# -- the tutorial -------------------------------------------------------------------------
def test_status_is_public(server: Server) -> None:
    response = requests.get(server.url + "/api/status", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_tutorial(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client

    # Valid ID and secret: 200 and the branches.
    response = call(server, "/api/branches", credentials(server, client_id, secret))
    assert response.status_code == 200
    assert [b["name"] for b in response.json()] == BRANCH_NAMES

    # "replace the value with a random one": 401 Client ID not registered.
    response = call(server, "/api/branches", credentials(server, secrets.token_hex(16), secret))
    assert response.status_code == 401
    assert response.json() == unauthorized("Client ID not registered")

    # The right ID with a wrong secret.
    response = call(server, "/api/branches", credentials(server, client_id, secrets.token_urlsafe(32)))
    assert response.status_code == 401
    assert response.json() == unauthorized("Client secret invalid")

    # Nothing, or the ID alone where the secret is required.
    response = call(server, "/api/branches", credentials(server, None, None))
    assert response.status_code == 401
    assert response.json() == unauthorized("Client ID missing")
    response = call(server, "/api/branches", credentials(server, client_id, None))
    assert response.status_code == 401
    assert response.json() == unauthorized("Client secret missing")

    # GET /branches/{branchId} asks for the client ID only.
    response = call(server, "/api/branches/1", credentials(server, client_id, None))
    assert response.status_code == 200
    assert response.json()["name"] == "Downtown"
    response = call(server, "/api/branches/99", credentials(server, client_id, None))
    assert response.status_code == 404
    response = call(server, "/api/branches/1", credentials(server, secrets.token_hex(16), None))
    assert response.json() == unauthorized("Client ID not registered")

    # POST /branches records the calling application (current_client).
    response = call(
        server,
        "/api/branches",
        credentials(server, client_id, secret),
        "POST",
        json={"name": "Harbour", "phone": "+1-217-555-0199"},
    )
    assert response.status_code == 201
    assert response.json()["created_by"] == CLIENT_NAME
    assert response.headers["Location"] == f"/api/branches/{response.json()['id']}"


def test_credentials_only_where_the_spec_says(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    if server.variant == "openapi2":  # the 2.0 document wants headers: the query is refused
        wrong = {"headers": {}, "params": {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}}
        text = "Client ID must be sent in the header X-IBM-Client-Id"
    else:  # the 3.x document wants the query: API Connect's headers are refused
        wrong = {"headers": {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}, "params": {}}
        text = "Client ID must be sent in the query parameter client_id"
    response = call(server, "/api/branches", wrong)
    assert response.status_code == 401
    assert response.json() == unauthorized(text)


def test_reset_secret_reaches_every_worker(server: Server, client: tuple[str, str]) -> None:
    client_id, old = client
    old_creds = credentials(server, client_id, old)
    # Both workers verify the secret first, so both hold it in their caches.
    every_worker_answers(server, old_creds, status=200, before=200, since=time.monotonic(), limit=30)

    new = cli_json(server.env, "reset-secret", client_id)["client_secret"]
    changed = time.monotonic()
    assert new != old

    refused = every_worker_answers(server, old_creds, status=401, before=200, since=changed, limit=PROPAGATION_LIMIT)
    assert max(refused.values()) <= PROPAGATION_LIMIT
    response = call(server, "/api/branches", old_creds)
    assert response.json() == unauthorized("Client secret invalid")

    # The new secret works on every worker (one still caching the old hash refuses it until then).
    accepted = every_worker_answers(
        server,
        credentials(server, client_id, new),
        status=200,
        before=401,
        since=changed,
        limit=PROPAGATION_LIMIT,
    )
    assert max(accepted.values()) <= PROPAGATION_LIMIT

    # Neither secret ever reaches the server's logs, even when it travels in the query.
    log = server.output()
    assert old not in log and new not in log
    if server.variant == "openapi3":
        assert "client_secret=[REDACTED]" in log


def test_deleted_client_is_refused_by_every_worker(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    creds = credentials(server, client_id, secret)
    every_worker_answers(server, creds, status=200, before=200, since=time.monotonic(), limit=30)

    result = cli(server.env, "delete", client_id, "--yes")
    assert result.returncode == 0, result.stderr
    deleted = time.monotonic()

    refused = every_worker_answers(server, creds, status=401, before=200, since=deleted, limit=PROPAGATION_LIMIT)
    assert max(refused.values()) <= PROPAGATION_LIMIT
    response = call(server, "/api/branches", creds)
    assert response.json() == unauthorized("Client ID not registered")
    assert cli(server.env, "show", client_id).returncode != 0


def test_every_worker_refuses_a_disabled_client_once_the_interval_has_passed(
    server: Server, client: tuple[str, str]
) -> None:
    # The documented guarantee: a request that arrives one CLIENTAUTH_REVOCATION_INTERVAL (1 s
    # by default) after the change was committed is decided with it, in every worker.
    client_id, secret = client
    creds = credentials(server, client_id, secret)
    every_worker_answers(server, creds, status=200, before=200, since=time.monotonic(), limit=30)

    result = cli(server.env, "disable", client_id)
    assert result.returncode == 0, result.stderr
    time.sleep(1.0 + 0.1)  # the CLI committed before it exited
    every_worker_answers(server, creds, status=403, before=403, since=time.monotonic(), limit=30)
    assert call(server, "/api/branches", creds).json()["moreInformation"] == "Client disabled"

    assert cli(server.env, "enable", client_id).returncode == 0
    time.sleep(1.0 + 0.1)
    every_worker_answers(server, creds, status=200, before=200, since=time.monotonic(), limit=30)


# -- several credentials, rotation, expiry, leaks (issue 13) -------------------------------
#: Long enough to warm both workers first.
WARM_LIMIT = 30.0


def answers(server: Server, client_id: str, secret: str, *, status: int, before: int, limit: float) -> None:
    """Every worker answers ``status`` within ``limit`` seconds from now (``before`` until it switches)."""
    creds = credentials(server, client_id, secret)
    every_worker_answers(server, creds, status=status, before=before, since=time.monotonic(), limit=limit)


def test_credentials_add_gives_a_second_working_pair(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    answers(server, client_id, secret, status=200, before=200, limit=WARM_LIMIT)
    added = cli_json(server.env, "credentials", "add", client_id, "--label", "v2")
    assert added["client_id"] != client_id and added["name"] == CLIENT_NAME and added["label"] == "v2"
    answers(server, added["client_id"], added["client_secret"], status=200, before=401, limit=PROPAGATION_LIMIT)
    answers(server, client_id, secret, status=200, before=200, limit=PROPAGATION_LIMIT)  # the old pair too
    response = call(server, "/api/branches", credentials(server, added["client_id"], added["client_secret"]))
    assert response.status_code == 200


def test_credentials_revoke_stops_that_pair_only(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    added = cli_json(server.env, "credentials", "add", client_id)
    other, other_secret = added["client_id"], added["client_secret"]
    answers(server, client_id, secret, status=200, before=200, limit=WARM_LIMIT)
    answers(server, other, other_secret, status=200, before=200, limit=WARM_LIMIT)

    result = cli(server.env, "credentials", "revoke", other, "--yes")
    assert result.returncode == 0, result.stderr
    answers(server, other, other_secret, status=401, before=200, limit=PROPAGATION_LIMIT)
    response = call(server, "/api/branches", credentials(server, other, other_secret))
    assert response.json() == unauthorized("Client ID not registered")
    answers(server, client_id, secret, status=200, before=200, limit=PROPAGATION_LIMIT)


def test_reset_client_id_keeps_the_secret(server: Server, client: tuple[str, str]) -> None:
    old_id, secret = client
    answers(server, old_id, secret, status=200, before=200, limit=WARM_LIMIT)
    new_id = cli_json(server.env, "reset-client-id", old_id)["client_id"]
    assert new_id != old_id
    answers(server, old_id, secret, status=401, before=200, limit=PROPAGATION_LIMIT)
    assert call(server, "/api/branches", credentials(server, old_id, secret)).json() == unauthorized(
        "Client ID not registered"
    )
    answers(server, new_id, secret, status=200, before=401, limit=PROPAGATION_LIMIT)


def test_leaked_disable_refuses_the_client(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    answers(server, client_id, secret, status=200, before=200, limit=WARM_LIMIT)
    paste = f"2026-05-01 12:00:03 DEBUG calling /api/branches with client_secret={secret} (retry 2)\n"
    result = cli(server.env, "leaked", "--disable", stdin=paste)
    assert result.returncode == 0, result.stderr
    assert f"client {client_id}" in result.stdout and "disabled now" in result.stdout
    assert secret not in result.stdout + result.stderr
    answers(server, client_id, secret, status=403, before=200, limit=PROPAGATION_LIMIT)
    assert call(server, "/api/branches", credentials(server, client_id, secret)).json()["moreInformation"] == (
        "Client disabled"
    )
    [entry] = [e for e in cli_json(server.env, "audit", client_id) if e["action"] == "leaked"]
    assert entry["detail"] == {"disabled": True} and entry["actor"]


# Grace periods and expiry hold on every worker, the warm path included.
def sleep_until(moment: datetime) -> None:
    """Sleep until half a second after ``moment`` (a time the CLI printed: it read its own clock)."""
    time.sleep(max(0.0, (moment - datetime.now(timezone.utc)).total_seconds()) + 0.5)


def test_reset_secret_grace_keeps_the_old_secret_until_it_ends(server: Server, client: tuple[str, str]) -> None:
    client_id, old = client
    answers(server, client_id, old, status=200, before=200, limit=WARM_LIMIT)
    reset = cli_json(server.env, "reset-secret", client_id, "--grace", "6s")
    new, grace_ends = reset["client_secret"], datetime.fromisoformat(reset["previous_secret_until"])
    answers(server, client_id, new, status=200, before=401, limit=PROPAGATION_LIMIT)  # at once
    for _ in range(4):  # the old secret keeps working in the grace period
        assert call(server, "/api/branches", credentials(server, client_id, old)).status_code == 200
    sleep_until(grace_ends)
    # once it ends no worker accepts it, not even from a warm cache
    answers(server, client_id, old, status=401, before=401, limit=PROPAGATION_LIMIT)
    answers(server, client_id, new, status=200, before=200, limit=PROPAGATION_LIMIT)


def test_an_expired_credential_is_refused(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    added = cli_json(server.env, "credentials", "add", client_id, "--ttl", "6s")
    short, short_secret = added["client_id"], added["client_secret"]
    answers(server, short, short_secret, status=200, before=200, limit=2.0)
    sleep_until(datetime.fromisoformat(added["expires_at"]))
    answers(server, short, short_secret, status=401, before=401, limit=PROPAGATION_LIMIT)
    refused = call(server, "/api/branches", credentials(server, short, short_secret)).json()
    assert refused["moreInformation"] == "Client ID expired"
    answers(server, client_id, secret, status=200, before=200, limit=PROPAGATION_LIMIT)

    # expire sets it on a credential that already works, and --never lifts it
    sleep_until(datetime.fromisoformat(cli_json(server.env, "expire", client_id, "--ttl", "3s")["expires_at"]))
    answers(server, client_id, secret, status=401, before=401, limit=PROPAGATION_LIMIT)
    assert cli(server.env, "expire", client_id, "--never").returncode == 0
    answers(server, client_id, secret, status=200, before=401, limit=PROPAGATION_LIMIT)


# -- the README ---------------------------------------------------------------------------
README_BASE = "http://127.0.0.1:5000"
_EXPECT = re.compile(r"^#\s*->\s*(\d{3})\s*(.*)$")


def readme_curl_lines() -> list[tuple[str, int, str]]:
    """Every curl line of the README calling the example, with the status (and body) it shows."""
    lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    found = []
    for index, line in enumerate(lines):
        if not line.startswith("curl ") or README_BASE not in line:
            continue
        following = lines[index + 1] if index + 1 < len(lines) else ""
        expect = _EXPECT.match(following)
        assert expect is not None, f"README: no '# -> STATUS' line after {line!r}"
        found.append((line, int(expect.group(1)), expect.group(2)))
    return found


def run_curl(line: str, base_url: str, replacements: dict[str, str]) -> requests.Response:
    """Send the request a curl line describes (only the options the README uses)."""
    args = shlex.split(line)
    assert args[0] == "curl"
    method, url, headers, data = None, None, {}, None
    items = iter(args[1:])
    for arg in items:
        if arg in ("-i", "-s", "--include", "--silent"):
            continue
        if arg in ("-H", "--header"):
            name, _, value = next(items).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-X", "--request"):
            method = next(items)
        elif arg in ("-d", "--data"):
            data = next(items)
        elif arg.startswith("-"):
            raise AssertionError(f"README curl line uses an option this test does not know: {arg}")
        else:
            url = arg

    def fill(text: str) -> str:
        for placeholder, value in replacements.items():
            text = text.replace(placeholder, value)
        return text

    assert url is not None and url.startswith(README_BASE)
    if data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    return requests.request(
        method or ("POST" if data is not None else "GET"),
        fill(url.replace(README_BASE, base_url, 1)),
        headers={k: fill(v) for k, v in headers.items()},
        data=fill(data).encode() if data is not None else None,
        timeout=HTTP_TIMEOUT,
    )


def test_readme_curl_lines(server: Server, client: tuple[str, str]) -> None:
    client_id, secret = client
    lines = readme_curl_lines()
    assert len(lines) >= 6, "the README shows how to call the API with curl"
    ran = 0
    for line, status, shown in lines:
        if server.variant == "openapi2" and "client_id=" in line:
            continue
        if server.variant == "openapi3" and "X-IBM-" in line:
            continue
        response = run_curl(line, server.url, {"$CLIENT_ID": client_id, "$CLIENT_SECRET": secret})
        assert response.status_code == status, f"README: {line}"
        if shown.startswith("{"):
            assert response.json() == json.loads(shown), f"README: {line}"
        ran += 1
    assert ran >= 3


# -- python -m example_app (make run) -----------------------------------------------------
@pytest.mark.parametrize("variant", ["openapi2", "openapi3"])
def test_make_run_prints_a_working_curl_line(tmp_path: Path, variant: str) -> None:
    port = free_port()
    instance = tmp_path / "instance"
    env = example_env(instance, variant, PORT=str(port))
    srv = Server([sys.executable, "-m", "example_app"], env, tmp_path, port, variant)
    try:
        srv.wait_ready()
        line = srv.wait_for_output(r"^\s*(curl -i .*/api/branches.*)$").group(1)
        client_id = srv.wait_for_output(r"^Client ID:\s+(\S+)$").group(1)
        secret = srv.wait_for_output(r"^Client secret:\s+(\S+)").group(1)
        response = run_curl(line.replace(srv.url, README_BASE), srv.url, {})
        assert response.status_code == 200
        assert [b["name"] for b in response.json()] == BRANCH_NAMES

        # The default store: SQLite in the instance folder, shared with the CLI.
        assert (instance / "clientauth.sqlite3").is_file()
        listed = cli_json(env, "list")
        assert [(c["client_id"], c["name"]) for c in listed] == [(client_id, CLIENT_NAME)]

        # The development server's access log shows the request, never the secret.
        srv.wait_for_output(r'"GET /api/branches\S* HTTP/1\.1" 200')
        access_log = srv.stderr_path.read_text()
        assert secret not in access_log
        if variant == "openapi3":
            assert f"client_id={client_id}&client_secret=[REDACTED]" in access_log
    finally:
        code = srv.stop()  # SIGTERM: a Ctrl-C (SIGINT) is ignored when the suite runs in the background
    assert code == 0, srv.output()
