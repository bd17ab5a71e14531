"""schemathesis against the example app, driven by the app's own OpenAPI documents (2.0 and 3.0).

For every documented operation schemathesis generates requests from the document and sends
them, with a valid client's credentials where the document puts them (headers in 2.0, query
parameters in 3.0), to the app in process (WSGI). Every response is checked by all of
schemathesis' checks: no server error, status codes, content types and bodies as documented,
and ``ignored_auth``, which repeats a successful request without credentials and with
invalid ones and fails unless they are refused. A recorder around the app then proves that
each protected operation did succeed with the credentials and was refused without them.

Examples are bounded and derandomized, so the run is short and the same on every CI run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # example_app/ sits next to tests/, outside the installed package
    sys.path.insert(0, str(ROOT))

import example_app  # noqa: E402
from example_app import auth, create_app  # noqa: E402

EXAMPLE_DIR = Path(example_app.__file__).parent

#: EXAMPLE_SPEC -> (document, ID scheme, secret scheme, where the credentials go)
VARIANTS = {
    "openapi2": ("openapi.yaml", "clientIdHeader", "clientSecretHeader"),
    "openapi3": ("openapi3.yaml", "clientIdQuery", "clientSecretQuery"),
}

#: Generated requests per operation; the whole module stays well under 30 s.
MAX_EXAMPLES = 25


class Recorder:
    """WSGI middleware noting, for every request, its method, path, credentials sent and status.

    It also gives each request the ``REMOTE_ADDR`` a server on the loopback interface (or Flask's
    test client) would: schemathesis calls the app through Werkzeug's ``Client``, which sets none,
    and the failure throttle counts all peers without an IP address in one shared bucket that never
    gets a known address's exemption. A real client has an address; its 429 is not in the document.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], id_names: tuple[str, str]) -> None:
        self.app = app
        self.header, self.query = id_names
        self.calls: list[tuple[str, str, bool, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ.setdefault("REMOTE_ADDR", "127.0.0.1")
        with_id = bool(
            environ.get("HTTP_" + self.header.upper().replace("-", "_"))
            or f"{self.query}=" in environ.get("QUERY_STRING", "")
        )

        def recording_start_response(status: str, headers: Any, *args: Any) -> Any:
            self.calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], with_id, int(status.split()[0])))
            return start_response(status, headers, *args)

        return self.app(environ, recording_start_response)


def example_with_client(variant: str, tmp_path: Path) -> tuple[Any, Any, str]:
    """The example app on a SQLite file in ``tmp_path``, with one client: (app, its record, its secret)."""
    app = create_app(
        {
            "EXAMPLE_SPEC": variant,
            "CLIENTAUTH_DATABASE_URI": f"sqlite:///{tmp_path}/clients.sqlite3",
            "CLIENTAUTH_BCRYPT_ROUNDS": 4,
            "TESTING": True,
        }
    )
    state = auth.state(app)
    with app.app_context():
        state.store.create_all()
        record, secret = state.store.create("schemathesis")
    assert secret is not None
    return app, record, secret


@pytest.mark.parametrize("variant", VARIANTS)
def test_example_app_against_its_own_document(variant: str, tmp_path: Path) -> None:
    document, id_scheme, secret_scheme = VARIANTS[variant]
    app, record, secret = example_with_client(variant, tmp_path)
    recorder = Recorder(app.wsgi_app, ("X-IBM-Client-Id", "client_id"))
    app.wsgi_app = recorder  # type: ignore[method-assign]

    # the credentials, by scheme name: schemathesis sends them where the document says
    config = schemathesis.Config.from_dict(
        {"auth": {"openapi": {id_scheme: {"api_key": record.client_id}, secret_scheme: {"api_key": secret}}}}
    )
    schema = schemathesis.openapi.from_path(EXAMPLE_DIR / document, config=config)
    schema.app = app

    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate()  # every check schemathesis has, ignored_auth included

        check()

    documented = {(op.method, op.path): op for op in auth.state(app).spec().operations}
    assert sorted(labels) == sorted(f"{m} {p}" for m, p in documented)
    assert not [c for c in recorder.calls if c[3] >= 500]
    for (method, path), op in documented.items():
        pattern = "/api" + path.replace("{branchId}", "")
        calls = [
            c
            for c in recorder.calls
            if c[0] == method and (c[1] == pattern if "{" not in path else c[1].startswith(pattern))
        ]
        assert any(200 <= status < 300 for *_, status in calls), f"{method} {path} never succeeded"
        if op.policy.public:
            continue
        without = [status for _m, _p, with_id, status in calls if not with_id]
        assert without and set(without) == {401}, f"{method} {path}: requests without credentials got {without}"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("\x1f", 201),  # not white space to ECMA-262 (the document's ``\S``), though str.isspace() says so
        ("\x85Bank", 201),  # NEL: likewise
        (" \t\u3000\ufeff\u2028", 400),  # ECMAScript white space and line terminators only: blank
    ],
)
def test_the_example_app_calls_blank_what_its_documents_pattern_does(name: str, status: int, tmp_path: Path) -> None:
    app, record, secret = example_with_client("openapi2", tmp_path)
    headers = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}
    resp = app.test_client().post("/api/branches", headers=headers, json={"name": name})
    assert resp.status_code == status, resp.get_data(as_text=True)
    if status == 201:
        assert resp.get_json()["name"] == name  # kept as sent: the response still matches the pattern
