"""Issue 13 on a real server (gunicorn): a rotation's grace period and an expiry, set by another
process as the CLI would, and ``last_used_at`` written by the worker's own thread, on every
database."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine

from flask_clientauth import ClientStore
from servers import HTTP_TIMEOUT, PROPAGATION_LIMIT, database, serve
from test_verification import last_used

from conftest import TUTORIAL_SPEC

ROUTES = """
@app.get("/api/branches")
def branches():
    return jsonify(client_id=current_client.client_id, label=current_client.label)
"""


def call(url: str, client_id: str, secret: str) -> requests.Response:
    headers = {"X-IBM-Client-Id": client_id, "X-IBM-Client-Secret": secret}
    return requests.get(f"{url}/api/branches", headers=headers, timeout=HTTP_TIMEOUT)


def until(condition: Callable[[], bool], limit: float = PROPAGATION_LIMIT) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_grace_period_and_expiry_on_a_real_server(tmp_path: Path) -> None:
    url, store = database(tmp_path)
    record, old = store.create("Rotating", label="production")
    assert old is not None
    with serve(tmp_path, ROUTES, spec=TUTORIAL_SPEC, database_url=url) as server:
        assert call(server.url, record.client_id, old).json() == {"client_id": record.client_id, "label": "production"}
        grace = 3.0
        _, new = store.reset_secret(record.client_id, grace=timedelta(seconds=grace))
        grace_end = time.monotonic() + grace
        assert until(lambda: call(server.url, record.client_id, new).status_code == 200)
        assert time.monotonic() < grace_end - 0.5, "the reset took too long to arrive to test the grace"
        assert call(server.url, record.client_id, old).status_code == 200  # both, during the grace period
        time.sleep(max(0.0, grace_end - time.monotonic()) + 0.2)
        refused = call(server.url, record.client_id, old)
        assert refused.status_code == 401 and refused.json()["moreInformation"] == "Client secret invalid"
        assert call(server.url, record.client_id, new).status_code == 200

        store.set_expiry(record.client_id, datetime.now(timezone.utc) + timedelta(seconds=2))
        expires = time.monotonic() + 2
        time.sleep(1.2)  # the change reached the worker; the credential still works
        assert call(server.url, record.client_id, new).status_code == 200
        time.sleep(max(0.0, expires - time.monotonic()) + 0.2)
        expired = call(server.url, record.client_id, new)
        assert expired.status_code == 401
        assert expired.json() == {
            "httpCode": "401",
            "httpMessage": "Unauthorized",
            "moreInformation": "Client ID expired",
        }


def test_last_used_is_written_by_the_worker(tmp_path: Path, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        store = ClientStore(lambda: engine, bcrypt_rounds=4)
        store.create_all()
        record, secret = store.create("Used")
        idle, _ = store.create("Idle")
    finally:
        engine.dispose()
    assert secret is not None
    config: dict[str, Any] = {"CLIENTAUTH_LAST_USED_INTERVAL": 0.5}
    with serve(tmp_path, ROUTES, spec=TUTORIAL_SPEC, database_url=database_url, **config) as server:
        before = datetime.now(timezone.utc) - timedelta(seconds=1)
        for _ in range(3):
            assert call(server.url, record.client_id, secret).status_code == 200
        assert until(lambda: last_used(database_url, record.client_id) is not None)
    used = last_used(database_url, record.client_id)
    assert used is not None and before <= used <= datetime.now(timezone.utc)
    assert last_used(database_url, idle.client_id) is None
