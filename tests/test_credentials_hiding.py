"""``CLIENTAUTH_HIDE_CREDENTIALS``: no copy of a credential reaches the view, on real servers.

Gunicorn and Werkzeug's server put the request target in ``RAW_URI`` (and Werkzeug also in
``REQUEST_URI``) besides ``QUERY_STRING``: each copy goes, and every other query parameter keeps
its order and its encoding. Every API key of the document the request carried goes, not only
the route's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from servers import Server, database, serve

from conftest import CID, CSEC, HID, HSEC, QID, QSEC, get_operation, location_paths

#: Every test here starts a real server or process (``pytest -m "not slow"`` leaves them out).
pytestmark = pytest.mark.slow

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Hidden", "version": "1"},
    "components": {"securitySchemes": {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "cid": CID, "csec": CSEC}},
    "paths": {**location_paths(), "/api/status": get_operation([])},
}

ECHO = """
def echo():
    return jsonify(
        raw_uri=request.environ.get("RAW_URI"),
        request_uri=request.environ.get("REQUEST_URI"),
        query_string=request.environ.get("QUERY_STRING"),
        url=request.url,
        full_path=request.full_path,
        args=request.args.to_dict(flat=False),
        cookies=request.cookies.to_dict(flat=False),
        cookie_header=request.headers.get("Cookie"),
        headers=sorted(request.headers.keys()),
        client=current_client.client_id,
    )


for path in ("/header", "/query", "/cookie"):
    app.add_url_rule(path, path, echo)
"""

#: Other parameters, around and between the credentials: repeated, blank, without "=", encoded.
OTHERS = "a=1&b=x%20y+z&a=2&empty=&flag&enc=%C3%A9%2F"


class Served:
    def __init__(self, server: Server, cid: str, secret: str) -> None:
        self.server, self.cid, self.secret = server, cid, secret

    def get(self, target: str, **kwargs: Any) -> Any:
        resp = requests.get(self.server.url + target, timeout=10, **kwargs)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["client"] == self.cid
        return body


@pytest.fixture(params=["gunicorn", "werkzeug"], scope="module")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"hide-{request.param}")
    url, store = database(root)
    record, secret = store.create("Hidden app")
    assert secret is not None
    with serve(
        root, ECHO, spec=SPEC, database_url=url, server=request.param, CLIENTAUTH_HIDE_CREDENTIALS=True
    ) as server:
        yield Served(server, record.client_id, secret)


def assert_nothing_left(body: dict[str, Any], *values: str) -> None:
    text = repr({k: v for k, v in body.items() if k != "client"})
    for value in values:
        assert value not in text
    assert not {"X-Ibm-Client-Id", "X-Ibm-Client-Secret"} & set(body["headers"])


def test_the_query_keeps_every_other_parameter_verbatim_in_every_copy(served: Served) -> None:
    cid, secret = served.cid, served.secret
    # the route's keys in the query, another location's keys too, one under an encoded name
    query = f"a=1&client_id={cid}&b=x%20y+z&client%5Fsecret={secret}&a=2&empty=&flag&enc=%C3%A9%2F"
    body = served.get(f"/query?{query}", headers={"X-IBM-Client-Id": cid, "Cookie": f"app_client_id={cid}; t=1"})
    assert body["query_string"] == OTHERS
    assert body["raw_uri"] == f"/query?{OTHERS}"
    if served.server.variant == "werkzeug":
        assert body["request_uri"] == f"/query?{OTHERS}"
    # (request.url is an IRI: Werkzeug shows %C3%A9%2F as "é/")
    assert body["url"] == f"{served.server.url}/query?a=1&b=x%20y+z&a=2&empty=&flag&enc=é/"
    assert body["full_path"] == f"/query?{OTHERS}"
    assert body["args"] == {"a": ["1", "2"], "b": ["x y z"], "empty": [""], "flag": [""], "enc": ["é/"]}
    assert body["cookies"] == {"t": ["1"]}
    assert_nothing_left(body, cid, secret)


def test_keys_of_other_locations_go_when_the_route_reads_headers(served: Served) -> None:
    cid, secret = served.cid, served.secret
    body = served.get(
        f"/header?{OTHERS}&client_secret={secret}",
        headers={
            "X-IBM-Client-Id": cid,
            "X-IBM-Client-Secret": secret,
            "Cookie": f'theme=dark; app_client_id={cid}; lang="fr"; app_client_secret={secret}',
            "X-Trace": "abc",
        },
    )
    assert body["raw_uri"] == f"/header?{OTHERS}"
    assert body["query_string"] == OTHERS
    assert body["cookies"] == {"theme": ["dark"], "lang": ["fr"]}
    assert body["cookie_header"] == 'theme=dark; lang="fr"'
    assert "X-Trace" in body["headers"]
    assert_nothing_left(body, cid, secret)


def test_a_request_without_query_keys_keeps_its_uri(served: Served) -> None:
    cid, secret = served.cid, served.secret
    body = served.get("/cookie?x=%2F", headers={"Cookie": f"app_client_id={cid}; app_client_secret={secret}"})
    assert body["raw_uri"] == "/cookie?x=%2F"
    assert body["cookies"] == {}
    body = served.get(
        f"/cookie?client_id={cid}", headers={"Cookie": f"app_client_id={cid}; app_client_secret={secret}"}
    )
    assert body["raw_uri"] == "/cookie" and body["query_string"] == "" and body["url"].endswith("/cookie")
    assert_nothing_left(body, cid, secret)
