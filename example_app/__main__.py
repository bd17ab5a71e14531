"""``python -m example_app`` (what ``make run`` runs): set up, register a client, serve.

1. resolve every route against the spec, failing now if one cannot be enforced;
2. take the port (``PORT``, default 5000) on 127.0.0.1, failing with a clear message, before
   anything is written, when another program holds it;
3. create or upgrade the client tables (the shipped migrations, as ``flask clients init-db``);
4. give the demo client "Branch mobile app" a new secret and print a curl line with its ID and
   secret. The client is made once per store and reused by later runs (same ID, new secret: the
   previous run's secret stops working), so repeated runs leave one working demo client;
5. print the "Sharing & keys" portal's URL (``/admin/keys/``) with the operator login: user
   ``admin`` (``EXAMPLE_ADMIN_USER``) and the password ``EXAMPLE_ADMIN_PASSWORD``, or, when it is
   not set, a random one made for this run;
6. serve on http://127.0.0.1:$PORT until Ctrl-C or SIGTERM (both exit with status 0).
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import signal
import socket
import sys
from types import FrameType

from flask import Flask
from werkzeug.serving import make_server

from flask_clientauth import ClientRecord, ClientStore
from flask_clientauth.migrate import upgrade

from . import auth, create_app
from .login import DEFAULT_USER

CLIENT_NAME = "Branch mobile app"
#: Marks the clients this script made, so that a later run reuses them (and never touches the user's own).
CLIENT_DESCRIPTION = "Created by 'python -m example_app'"
HOST = "127.0.0.1"


def curl_command(app: Flask, base_url: str, client_id: str, secret: str, path: str = "/branches") -> str:
    """A curl line calling ``GET path`` with the credentials where the app's spec wants them."""
    spec = auth.state(app).spec()
    operation = next(op for op in spec.operations if op.method == "GET" and op.path == path)
    requirement = operation.policy.alternatives[0]
    url = base_url.rstrip("/") + (operation.prefixes[0] if operation.prefixes else "") + path
    headers: list[str] = []
    query: list[str] = []
    for scheme, value in ((requirement.client_id, client_id), (requirement.client_secret, secret)):
        if scheme is None:
            continue
        if scheme.location == "header":
            headers += ["-H", f"{scheme.param}: {value}"]
        elif scheme.location == "query":
            query.append(f"{scheme.param}={value}")
        else:
            headers += ["--cookie", f"{scheme.param}={value}"]
    if query:
        url += "?" + "&".join(query)
    return shlex.join(["curl", "-i", *headers, url])


def listen(port: int) -> socket.socket:
    """The server's listening socket, taken before any client is made; a busy port ends the run here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Werkzeug: restart despite TIME_WAIT
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "is in use by another program" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise SystemExit(
            f"example_app: port {port} on {HOST} {reason}; nothing was changed. Stop that program, or choose "
            f"another port: PORT={port + 1} make run (or PORT={port + 1} python -m example_app)"
        ) from None
    return sock


def demo_client(store: ClientStore) -> tuple[ClientRecord, str, bool]:
    """The demo client with a new secret, and whether an earlier run made it.

    Earlier runs' client keeps its ID and is enabled again; more than one (as older versions of
    this script left behind) are deleted but the first.
    """
    earlier = [r for r in store.list() if r.name == CLIENT_NAME and r.description == CLIENT_DESCRIPTION]
    if not earlier:
        record, secret = store.create(CLIENT_NAME, description=CLIENT_DESCRIPTION)
        assert secret is not None
        return record, secret, False
    keep, *extra = earlier
    for record in extra:
        store.delete(record.client_id)
    if not keep.enabled:
        store.set_enabled(keep.client_id, True)
    record, secret = store.reset_secret(keep.client_id)
    return record, secret, True


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the server's loop ends on it, as on Ctrl-C


def main() -> None:
    raw_port = os.environ.get("PORT", "5000")
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        raise SystemExit(f"example_app: PORT must be a TCP port number (1-65535), not {raw_port!r}")
    port = int(raw_port)
    generated = not os.environ.get("EXAMPLE_ADMIN_PASSWORD")
    app = create_app({"EXAMPLE_ADMIN_PASSWORD": secrets.token_urlsafe(12)} if generated else None)
    sock = listen(port)
    state = auth.state(app)
    upgrade(state.store.engine)
    record, secret, reused = demo_client(state.store)
    base_url = f"http://{HOST}:{port}"
    spec = state.spec()
    print(f"Spec:          {spec.source} (OpenAPI {spec.openapi})", flush=True)
    note = "   (from an earlier run: same ID, new secret)" if reused else ""
    print(f"Client:        {record.name}{note}", flush=True)
    print(f"Client ID:     {record.client_id}", flush=True)
    print(f"Client secret: {secret}   (shown once: only its hash is stored)", flush=True)
    print("Call the API:", flush=True)
    print(f"  {curl_command(app, base_url, record.client_id, secret)}", flush=True)
    print(f"  curl -i {base_url}/api/status   # public", flush=True)
    user = app.config.get("EXAMPLE_ADMIN_USER") or DEFAULT_USER
    password = app.config["EXAMPLE_ADMIN_PASSWORD"] if generated else "(EXAMPLE_ADMIN_PASSWORD)"
    note = "   (new for every run; set EXAMPLE_ADMIN_PASSWORD to choose one)" if generated else ""
    print("Manage keys and explore the API in your browser:", flush=True)
    print(f"  Portal:      {base_url}/admin/keys/", flush=True)
    print(f"  User:        {user}", flush=True)
    print(f"  Password:    {password}{note}", flush=True)
    print(
        f"  Admin API:   {base_url}/admin/api/clients (JSON, same login; its document: /admin/api/openapi.json)",
        flush=True,
    )
    sys.stdout.flush()
    server = make_server(HOST, port, app, threaded=True, fd=sock.fileno())
    sock.close()  # the server holds its own copy of the socket
    signal.signal(signal.SIGTERM, _stop)  # also when started with SIGINT ignored (a background job)
    server.log_startup()
    server.serve_forever()


if __name__ == "__main__":
    main()
