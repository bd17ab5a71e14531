"""One request, one identity: ``current_client`` never outlives its request, and a request naming
two clients, in any client ID location the document defines, is refused.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, jsonify, request

from flask_clientauth import current_client
from flask_clientauth.context import get_auth_state
from servers import database, serve

from conftest import CID, CSEC, HID, HSEC, QID, QSEC, TUTORIAL_SPEC, AppFactory, get_operation, location_paths

CONFLICT = {
    "httpCode": "401",
    "httpMessage": "Unauthorized",
    "moreInformation": "Credentials of more than one client sent",
}

# -- current_client belongs to one request --------------------------------------------------------

#: The app leaves an app context pushed, as many app factories do: Flask then reuses it (and its
#: ``g``) for every request of the thread, and a gunicorn sync worker has one thread.
LEFT_PUSHED = """
from flask_clientauth.context import get_auth_state


@app.get("/api/branches")
def branches():
    return jsonify(client=current_client.client_id if current_client else None)


@app.after_request
def seen(response):
    state = get_auth_state()
    response.headers["X-Seen-Client"] = current_client.client_id if current_client else "-"
    response.headers["X-Seen-State"] = "-" if state is None else ",".join(state.schemes)
    response.headers["X-Seen-Key"] = client_key()
    return response


app.app_context().push()
"""


@pytest.mark.slow
def test_current_client_is_reset_on_every_request_of_a_reused_worker_thread(tmp_path: Path) -> None:
    url, store = database(tmp_path)
    record, secret = store.create("Client A")
    assert secret is not None
    a = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}
    with serve(tmp_path, LEFT_PUSHED, spec=TUTORIAL_SPEC, database_url=url) as server:

        def get(path: str, headers: dict[str, str] | None = None, **kw: Any) -> requests.Response:
            return requests.get(server.url + path, headers=headers, timeout=10, **kw)

        for _ in range(2):  # one worker, one thread: every request after the first reuses it
            resp = get("/api/branches", a)
            assert resp.status_code == 200 and resp.json() == {"client": record.client_id}
            assert resp.headers["X-Seen-Client"] == record.client_id
            assert resp.headers["X-Seen-Key"] == f"client:{record.client_id}"
            # a public route: no client, whatever the previous request was
            resp = get("/api/status")
            assert resp.status_code == 200
            assert (resp.headers["X-Seen-Client"], resp.headers["X-Seen-State"]) == ("-", "-")
            assert resp.headers["X-Seen-Key"] == "address:127.0.0.1"
            get("/api/branches", a)
            # a refusal: what after_request hooks and error handlers see is no client either
            resp = get("/api/branches", {**a, "X-IBM-Client-Secret": secret + "x"})
            assert resp.status_code == 401
            assert (resp.headers["X-Seen-Client"], resp.headers["X-Seen-State"]) == ("-", "-")
            get("/api/branches", a)
            resp = get("/api/branches", {"X-IBM-Client-Id": "unknown-client"})
            assert resp.status_code == 401 and resp.headers["X-Seen-Client"] == "-"


def test_the_state_is_the_requests_not_the_app_contexts(make_app: AppFactory) -> None:
    app = make_app()
    store = app.extensions["clientauth"].store
    record, secret = store.create("Client A")
    headers = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}
    with app.app_context():  # one app context around both requests, as a pushed one is
        client = app.test_client()
        assert client.get("/api/branches", headers=headers).get_json()["client_id"] == record.client_id
        assert client.get("/api/status").get_json()["client_id"] is None
        with app.test_request_context("/api/status"):
            assert not current_client and get_auth_state() is None


# -- two identities are a conflict ---------------------------------------------------------------

#: Client IDs (and secrets) in the header, the query and a cookie; each operation uses one location.
SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Identity", "version": "1"},
    "components": {"securitySchemes": {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "cid": CID, "csec": CSEC}},
    "paths": {**location_paths(), "/public": get_operation([]), "/api/status": get_operation([])},
}

#: The other client's ID, in each location the document defines (the names of the dicts above).
ELSEWHERE = {
    "header": lambda cid: {"headers": {"X-IBM-Client-Id": cid}},
    "query": lambda cid: {"query_string": {"client_id": cid}},
    "query (percent-encoded name)": lambda cid: {"query_string": f"client%5Fid={cid}"},
    "cookie": lambda cid: {"headers": {"Cookie": f"app_client_id={cid}"}},
}

#: The route's own credentials, by location.
OWN = {
    "header": lambda cid, secret: {"headers": {"X-IBM-Client-Id": cid, "X-IBM-Client-Secret": secret}},
    "query": lambda cid, secret: {"query_string": {"client_id": cid, "client_secret": secret}},
    "cookie": lambda cid, secret: {"headers": {"Cookie": f"app_client_id={cid}; app_client_secret={secret}"}},
}


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Test-client arguments of several locations together (cookies joined, query strings too)."""
    out: dict[str, Any] = {"headers": {}}
    for part in parts:
        for key, value in part.get("headers", {}).items():
            out["headers"][key] = (
                f"{out['headers'][key]}; {value}" if key == "Cookie" and key in out["headers"] else value
            )
        if "query_string" in part:
            qs = part["query_string"]
            qs = qs if isinstance(qs, str) else "&".join(f"{k}={v}" for k, v in qs.items())
            out["query_string"] = f"{out['query_string']}&{qs}" if "query_string" in out else qs
    return out


class Identity:
    def __init__(self, make_app: AppFactory) -> None:
        self.views: list[Any] = []
        self.app: Flask = make_app(spec=copy.deepcopy(SPEC), routes=False)
        for path in SPEC["paths"]:
            self.app.add_url_rule(path, path, self.view)
        store = self.app.extensions["clientauth"].store
        a, a_secret = store.create("Client A")
        b, _ = store.create("Client B")
        assert a_secret is not None
        self.a, self.a_secret, self.b = a.client_id, a_secret, b.client_id
        self.client = self.app.test_client(use_cookies=False)

    def view(self) -> Any:
        self.views.append((current_client.client_id if current_client else None, dict(request.headers)))
        return jsonify(client=current_client.client_id if current_client else None)


@pytest.fixture
def ident(make_app: AppFactory) -> Identity:
    return Identity(make_app)


@pytest.mark.parametrize(
    ("own", "elsewhere"),
    # (the route's own location twice is a key sent twice: test_enforcement)
    [(own, other) for own in OWN for other in ELSEWHERE if not other.startswith(own)],
)
def test_another_clients_id_in_a_location_the_route_does_not_use_is_a_conflict(
    ident: Identity, own: str, elsewhere: str
) -> None:
    path = f"/{own}"
    creds = OWN[own](ident.a, ident.a_secret)
    assert ident.client.get(path, **creds).status_code == 200  # warm: the fast path knows the client
    resp = ident.client.get(path, **merged(creds, ELSEWHERE[elsewhere](ident.b)))
    assert resp.status_code == 401 and resp.get_json() == CONFLICT
    # the ID alone (no secret wanted), too
    resp = ident.client.get(f"{path}/id", **merged(_id_only(own, ident.a), ELSEWHERE[elsewhere](ident.b)))
    assert resp.status_code == 401 and resp.get_json() == CONFLICT
    assert len(ident.views) == 1  # only the warm-up reached a view


def _id_only(location: str, cid: str) -> dict[str, Any]:
    return {
        "header": {"headers": {"X-IBM-Client-Id": cid}},
        "query": {"query_string": {"client_id": cid}},
        "cookie": {"headers": {"Cookie": f"app_client_id={cid}"}},
    }[location]


@pytest.mark.parametrize("elsewhere", [other for other in ELSEWHERE if other != "header"])
def test_the_same_id_in_another_location_is_one_client(ident: Identity, elsewhere: str) -> None:
    creds = OWN["header"](ident.a, ident.a_secret)
    for _ in range(2):  # cold, then warm (the fast path)
        resp = ident.client.get("/header", **merged(creds, ELSEWHERE[elsewhere](ident.a)))
        assert resp.status_code == 200 and resp.get_json() == {"client": ident.a}


def test_two_ids_in_one_location_the_route_does_not_use_are_refused(ident: Identity) -> None:
    creds = OWN["header"](ident.a, ident.a_secret)
    resp = ident.client.get("/header", **merged(creds, {"query_string": f"client_id={ident.a}&client_id={ident.b}"}))
    assert resp.status_code == 401 and resp.get_json() == CONFLICT
    assert ident.views == []


@pytest.mark.slow
def test_a_warm_client_is_refused_with_another_id_in_the_query_on_a_real_server(tmp_path: Path) -> None:
    url, store = database(tmp_path)
    a, secret = store.create("Client A")
    b, _ = store.create("Client B")
    assert secret is not None
    code = """
@app.get("/header")
def header():
    return jsonify(client=current_client.client_id, seen=request.args.get("client_id"))
"""
    with serve(tmp_path, code, spec=SPEC, database_url=url) as server:
        headers = {"X-IBM-Client-Id": a.client_id, "X-IBM-Client-Secret": secret}
        for _ in range(2):
            assert requests.get(server.url + "/header", headers=headers, timeout=10).status_code == 200
        resp = requests.get(server.url + "/header", headers=headers, params={"client_id": b.client_id}, timeout=10)
        assert resp.status_code == 401 and resp.json() == CONFLICT
