"""``python -m example_app`` (what ``make run`` runs): set up, register a client, serve.

1. create or upgrade the client tables (the shipped migrations, as ``flask clients init-db``);
2. resolve every route against the spec, failing now if one cannot be enforced;
3. register a fresh client "Branch mobile app" and print a curl line with its ID and secret;
4. serve on http://127.0.0.1:$PORT (default 5000) until Ctrl-C.
"""

from __future__ import annotations

import os
import shlex
import sys

from flask import Flask

from flask_clientauth.migrate import upgrade

from . import auth, create_app

CLIENT_NAME = "Branch mobile app"


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


def main() -> None:
    port = int(os.environ.get("PORT", "5000"))
    app = create_app()
    state = auth.state(app)
    upgrade(state.store.engine)
    record, secret = state.store.create(CLIENT_NAME, description="Created by 'python -m example_app'")
    assert secret is not None
    base_url = f"http://127.0.0.1:{port}"
    spec = state.spec()
    print(f"Spec:          {spec.source} (OpenAPI {spec.openapi})", flush=True)
    print(f"Client:        {record.name}", flush=True)
    print(f"Client ID:     {record.client_id}", flush=True)
    print(f"Client secret: {secret}   (shown once: only its hash is stored)", flush=True)
    print("Call the API:", flush=True)
    print(f"  {curl_command(app, base_url, record.client_id, secret)}", flush=True)
    print(f"  curl -i {base_url}/api/status   # public", flush=True)
    sys.stdout.flush()
    app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False, debug=False)


if __name__ == "__main__":
    main()
