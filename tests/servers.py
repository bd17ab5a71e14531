"""A test's own app module served by a real server: gunicorn (one sync worker) or Werkzeug's.

The module is :data:`PRELUDE` (a Flask app protected by the document in ``SERVED_SPEC``, on the
SQLite file ``SERVED_DB``, with a public ``GET /api/status`` for the readiness probe) followed by
the test's own code. Used where the server matters: the environ it builds (``RAW_URI``,
``REQUEST_URI``, joined headers), and a thread that serves one request after another.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from flask_clientauth import ClientStore
from flask_clientauth.models import Base
from test_e2e import Server, free_port

PRELUDE = """
import json, os
from flask import Flask, jsonify, request
from flask_clientauth import ClientAuth, client_key, current_client

app = Flask("served_app", instance_path=os.environ["SERVED_INSTANCE"])
app.config.update(
    CLIENTAUTH_SPEC=json.loads(os.environ["SERVED_SPEC"]),
    CLIENTAUTH_DATABASE_URI=os.environ["SERVED_DB"],
    CLIENTAUTH_BCRYPT_ROUNDS=4,
    CLIENTAUTH_RATELIMIT_ENABLED=False,
    **json.loads(os.environ["SERVED_CONFIG"]),
)
auth = ClientAuth(app)


@app.get("/api/status")
def status():
    return "ok"

"""

WERKZEUG = """
import sys
sys.path.insert(0, sys.argv[1])
from served_app import app
from werkzeug.serving import run_simple
run_simple("127.0.0.1", int(sys.argv[2]), app)
"""


def database(root: Path) -> tuple[str, ClientStore]:
    """A SQLite database with our tables under ``root``, and a store on it (the operator's side)."""
    url = f"sqlite:///{root / 'served.sqlite3'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    return url, ClientStore(lambda: engine, bcrypt_rounds=4)


@contextmanager
def serve(
    root: Path, code: str, *, spec: dict[str, Any], database_url: str, server: str = "gunicorn", **config: Any
) -> Iterator[Server]:
    """Serve :data:`PRELUDE` + ``code`` with ``server`` (``gunicorn`` or ``werkzeug``) until the block ends."""
    (root / "served_app.py").write_text(PRELUDE + code)
    port = free_port()
    if server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "sync"]
        cmd += ["--bind", f"127.0.0.1:{port}", "--chdir", str(root), "served_app:app"]
    else:
        (root / "run_werkzeug.py").write_text(WERKZEUG)
        cmd = [sys.executable, str(root / "run_werkzeug.py"), str(root), str(port)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLIENTAUTH_", "FLASK_", "GUNICORN_")) and k != "WEB_CONCURRENCY"
    }
    env.update(
        SERVED_INSTANCE=str(root / "instance"),
        SERVED_SPEC=json.dumps(spec),
        SERVED_DB=database_url,
        SERVED_CONFIG=json.dumps(config),
        PYTHONUNBUFFERED="1",
    )
    srv = Server(cmd, env, root, port, server)
    try:
        srv.wait_ready()
        yield srv
    finally:
        srv.stop()
