"""Prometheus metrics (``CLIENTAUTH_METRICS``): what is counted, the view an app mounts and protects,
one registry per app, the package without ``prometheus_client``, and gunicorn's multiprocess mode
(two workers, counts added up across them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from flask_clientauth import ClientAuth, ConfigurationError
from flask_clientauth.models import Base
from servers import REPO, Server, cli, cli_json, example_env, free_port

from conftest import TUTORIAL_SPEC, AppFactory, ClientEnv, FakeClock, headers, new_client

ON = {"CLIENTAUTH_METRICS": True}
METRICS_ROLE = "metrics"


class Scrape:
    """One scrape of the metrics view, parsed: ``scrape.value(name, **labels)`` (0 when absent)."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every series of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls).get(label, "") for (n, ls), _ in self.samples.items() if n == name}


def mount(app: Flask, **client: Any) -> tuple[str, str]:
    """The documented recipe: ``/metrics`` for clients with the role ``metrics``; such a client."""
    auth: ClientAuth = app.extensions["test_auth"]
    app.add_url_rule("/metrics", view_func=auth.require(roles=[METRICS_ROLE])(auth.metrics_view()))
    return new_client(app, "Prometheus", roles=[METRICS_ROLE], **client)


def scrape(app: Flask, scraper: tuple[str, str]) -> Scrape:
    response = app.test_client().get("/metrics", headers=headers(*scraper))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    return Scrape(response.get_data(as_text=True))


# -- off by default --------------------------------------------------------------------------------
def test_off_by_default_the_request_path_is_the_plain_one(make_app: AppFactory) -> None:
    """No metrics object, the plain hook registered, the authenticator's own methods called: nothing
    on the request path (the instruction counts in benchmarks/README.md measure it)."""
    app = make_app()
    state = app.extensions["clientauth"]
    assert state.metrics is None
    assert app.before_request_funcs[None][0] == state.before_request
    assert state.fast == state.authenticator.fast and state.decide == state.authenticator.decide
    assert state.authenticator.on_lookup is None and state.authenticator.revocation.on_poll is None


def test_the_view_on_an_app_whose_metrics_are_off_answers_404_and_says_why(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    scraper = mount(app)
    response = app.test_client().get("/metrics", headers=headers(*scraper))
    assert response.status_code == 404
    assert "CLIENTAUTH_METRICS" in caplog.text


def test_the_flags_are_checked(make_app: AppFactory) -> None:
    for key in ("CLIENTAUTH_METRICS", "CLIENTAUTH_METRICS_CLIENT_LABEL"):
        with pytest.raises(ConfigurationError, match=key):
            make_app(**{key: "yes"})


# -- what is counted -------------------------------------------------------------------------------
def test_requests_by_outcome_and_refusal_code(make_app: AppFactory) -> None:
    env = ClientEnv.of(make_app(**ON))
    app, client, cid, secret = env.app, env.client, env.cid, env.secret
    scraper = mount(app)
    for _ in range(3):
        assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200
    assert client.get("/api/branches/1", headers=headers(cid)).status_code == 200  # id-only operation
    assert client.get("/api/branches").status_code == 401
    assert client.get("/api/branches", headers=headers(cid, "fcsk_wrong")).status_code == 401
    assert client.get("/api/branches", headers=headers("no-such-client", secret)).status_code == 401
    assert client.get("/api/branches", headers=headers(cid)).status_code == 401
    for _ in range(2):
        assert client.get("/api/status").status_code == 200
    assert client.get("/no/such/route").status_code == 404  # no rule: nothing was checked
    assert client.get("/metrics", headers=headers(cid, secret)).status_code == 403  # not a scraper

    found = scrape(app, scraper)
    requests_total = "clientauth_requests_total"
    # 4 of the app's client, and this scrape (counted before the view runs)
    assert found.value(requests_total, outcome="allowed", code="", plan="") == 5
    assert found.value(requests_total, outcome="public", code="", plan="") == 2
    refused = {
        "client_id_missing": 1,
        "client_secret_invalid": 1,
        "client_id_not_registered": 1,
        "client_secret_missing": 1,
        "role_missing": 1,
    }
    for code, count in refused.items():
        assert found.value(requests_total, outcome="refused", code=code, plan="") == count, code
    assert found.total(requests_total) == 5 + 2 + sum(refused.values())
    assert found.total("clientauth_rate_limited_total") == 0


PLANS = {
    "bronze": {"rate_limits": ["3/minute"]},
    "gold": {"rate_limits": ["100/second"], "operations": ["GET /branches"]},
    "free": {},
}


def test_requests_by_plan_and_rate_limited_requests(make_app: AppFactory) -> None:
    """The plan label is the client's plan (its own, else the default), on what it was allowed and
    on what its plan refused; 429 ``rate_limited`` are counted apart too."""
    app = make_app(**ON, CLIENTAUTH_METRICS_CLIENT_LABEL=True, CLIENTAUTH_PLANS=PLANS, CLIENTAUTH_DEFAULT_PLAN="bronze")
    scraper = mount(app, plan="free")
    bronze = new_client(app, "Bronze app")  # the default plan
    gold = new_client(app, "Gold app", plan="gold")
    retired = new_client(app, "Retired app")
    app.extensions["clientauth"].store.set_plan(retired[0], "retired")  # a plan since removed from the configuration
    client = app.test_client()
    statuses = [client.get("/api/branches", headers=headers(*bronze)).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    for _ in range(2):
        assert client.get("/api/branches", headers=headers(*gold)).status_code == 200
    assert client.get("/api/branches/1", headers=headers(gold[0])).status_code == 403  # not in gold
    assert client.get("/api/branches", headers=headers(*retired)).status_code == 403
    assert client.get("/api/status").status_code == 200

    found = scrape(app, scraper)
    requests_total = "clientauth_requests_total"
    assert found.value(requests_total, outcome="allowed", code="", plan="bronze", client=bronze[0]) == 3
    assert found.value(requests_total, outcome="refused", code="rate_limited", plan="bronze", client=bronze[0]) == 2
    assert found.value("clientauth_rate_limited_total", plan="bronze", client=bronze[0]) == 2
    assert found.total("clientauth_rate_limited_total") == 2
    assert found.value(requests_total, outcome="allowed", code="", plan="gold", client=gold[0]) == 2
    assert found.value(requests_total, outcome="refused", code="not_in_plan", plan="gold", client=gold[0]) == 1
    assert found.value(requests_total, outcome="refused", code="not_in_plan", plan="retired", client=retired[0]) == 1
    assert found.value(requests_total, outcome="public", code="", plan="", client="") == 1
    assert found.value(requests_total, outcome="allowed", code="", plan="free", client=scraper[0]) == 1


def test_rate_limited_requests_by_plan_without_the_client_label(make_app: AppFactory) -> None:
    app = make_app(**ON, CLIENTAUTH_PLANS=PLANS, CLIENTAUTH_DEFAULT_PLAN="bronze")
    scraper = mount(app, plan="free")
    bronze = new_client(app, "Bronze app")
    statuses = [app.test_client().get("/api/branches", headers=headers(*bronze)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    found = scrape(app, scraper)
    assert found.value("clientauth_rate_limited_total", plan="bronze") == 1
    assert found.value("clientauth_requests_total", outcome="refused", code="rate_limited", plan="bronze") == 1
    assert found.value("clientauth_requests_total", outcome="allowed", code="", plan="bronze") == 3
    assert found.value("clientauth_requests_total", outcome="allowed", code="", plan="free") == 1


def test_cache_hits_and_misses(make_app: AppFactory) -> None:
    """A store lookup is a miss; a client found in the cache (the warm path, or the general check) or
    an ID known to be unknown is a hit."""
    env = ClientEnv.of(make_app(**ON, CLIENTAUTH_RATELIMIT_ENABLED=False))
    app, client, cid, secret = env.app, env.client, env.cid, env.secret
    scraper = mount(app)
    for _ in range(4):  # one lookup, then the warm path
        assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200
    for _ in range(3):  # one lookup, then the negative cache
        assert client.get("/api/branches", headers=headers("no-such-client", secret)).status_code == 401
    # the scraper's own request: a lookup (the scrape is counted before the view runs)
    found = scrape(app, scraper)
    assert found.value("clientauth_cache_misses_total") == 1 + 1 + 1
    assert found.value("clientauth_cache_hits_total", kind="known") == 3
    assert found.value("clientauth_cache_hits_total", kind="unknown") == 2


def test_verification_latency_times_the_checks_the_warm_path_did_not_answer(make_app: AppFactory) -> None:
    """The first request of a client (store lookup, hash) is observed; its warm repeats are not."""
    env = ClientEnv.of(make_app(**ON))
    app, client, cid, secret = env.app, env.client, env.cid, env.secret
    scraper = mount(app)
    for _ in range(5):
        assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200
    assert client.get("/api/branches", headers=headers(cid, "fcsk_wrong")).status_code == 401
    found = scrape(app, scraper)
    count = "clientauth_verification_seconds_count"
    assert found.value(count, outcome="allowed") == 2  # the client's first request, and the scraper's
    assert found.value(count, outcome="refused") == 1
    assert found.value("clientauth_verification_seconds_bucket", outcome="allowed", le="+Inf") == 2
    assert found.value("clientauth_verification_seconds_sum", outcome="allowed") > 0


def test_change_log_polls_and_their_errors(make_app: AppFactory, database_url: str, clock: FakeClock) -> None:
    """Each poll is timed; one that fails (the change log gone) is counted as an error, and the
    request answered 503 as without metrics."""
    app = make_app(database_url=database_url, clock=clock, **ON, CLIENTAUTH_REVOCATION_INTERVAL=1.0)
    scraper = mount(app)
    cid, secret = new_client(app, "Branch mobile app")
    client = app.test_client()
    assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200  # poll 1
    clock.advance(2)
    assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200  # poll 2

    events = Base.metadata.tables["clientauth_events"]
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {events.name}"))
        clock.advance(2)
        response = client.get("/api/branches", headers=headers(cid, secret))  # poll 3 fails
        assert response.status_code == 503
        assert response.json == {
            "httpCode": "503",
            "httpMessage": "Service Unavailable",
            "moreInformation": "Client registry unavailable",
        }
    finally:
        events.create(engine, checkfirst=True)
        engine.dispose()
    found = scrape(app, scraper)  # poll 4 (the failed one left the next one due at once)
    assert found.value("clientauth_changelog_poll_seconds_count") == 4
    assert found.value("clientauth_changelog_poll_errors_total") == 1
    assert found.value("clientauth_requests_total", outcome="refused", code="store_unavailable", plan="") == 1


def test_the_client_label_only_when_asked_and_never_from_a_refused_credential(make_app: AppFactory) -> None:
    env = ClientEnv.of(make_app(**ON, CLIENTAUTH_METRICS_CLIENT_LABEL=True))
    app, client, cid, secret = env.app, env.client, env.cid, env.secret
    scraper = mount(app)
    for _ in range(2):
        assert client.get("/api/branches", headers=headers(cid, secret)).status_code == 200
    # what a caller sends as an ID must never become a series of its own
    for n in range(3):
        assert client.get("/api/branches", headers=headers(f"made-up-{n}", secret)).status_code == 401
    assert client.get("/api/branches", headers=headers(cid, "fcsk_wrong")).status_code == 401
    found = scrape(app, scraper)
    requests_total = "clientauth_requests_total"
    assert found.value(requests_total, outcome="allowed", code="", plan="", client=cid) == 2
    assert found.value(requests_total, outcome="allowed", code="", plan="", client=scraper[0]) == 1
    assert found.label_values(requests_total, "client") == {cid, scraper[0], ""}
    assert found.value(requests_total, outcome="refused", code="client_id_not_registered", plan="", client="") == 3
    assert found.value(requests_total, outcome="refused", code="client_secret_invalid", plan="", client="") == 1
    assert secret not in found.body

    without = make_app(**ON)
    scraper = mount(without)
    assert "client" not in {k for (_, ls) in scrape(without, scraper).samples for k, _ in ls}


def test_each_app_counts_in_its_own_registry(make_app: AppFactory, tmp_path: Path) -> None:
    first = make_app(**ON)
    second = make_app(**ON, database_url=f"sqlite:///{tmp_path}/second.sqlite3")
    scrapers = [mount(first), mount(second)]
    cid, secret = new_client(first, "Branch mobile app")
    for _ in range(3):
        assert first.test_client().get("/api/branches", headers=headers(cid, secret)).status_code == 200
    assert second.test_client().get("/api/status").status_code == 200
    one, two = scrape(first, scrapers[0]), scrape(second, scrapers[1])
    assert one.value("clientauth_requests_total", outcome="allowed", code="", plan="") == 4
    assert one.value("clientauth_requests_total", outcome="public", code="", plan="") == 0
    assert two.value("clientauth_requests_total", outcome="allowed", code="", plan="") == 1
    assert two.value("clientauth_requests_total", outcome="public", code="", plan="") == 1
    from prometheus_client import REGISTRY

    assert (
        REGISTRY.get_sample_value("clientauth_requests_total", {"outcome": "allowed", "code": "", "plan": ""}) is None
    )


def test_openmetrics_when_the_scraper_asks_for_it(make_app: AppFactory) -> None:
    app = make_app(**ON)
    scraper = mount(app)
    response = app.test_client().get(
        "/metrics", headers={**headers(*scraper), "Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


# -- mounting the view -----------------------------------------------------------------------------
def test_the_view_outside_the_document_takes_the_undocumented_routes_requirement(make_app: AppFactory) -> None:
    """``/metrics`` is no operation of the document: without a decorator it gets what undocumented
    routes get, the global requirement (any client may read it), nothing under a global
    ``security: []`` (anyone may), 403 in a document without one. Hence the recipe's decorator."""
    app = make_app(**ON)
    auth: ClientAuth = app.extensions["test_auth"]
    app.add_url_rule("/metrics", view_func=auth.metrics_view())
    cid, secret = new_client(app, "Branch mobile app")
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=headers(cid, secret)).status_code == 200

    paths = {"/branches": {"get": {"security": TUTORIAL_SPEC["security"], "responses": {"200": {"description": "ok"}}}}}
    without_global = {k: v for k, v in TUTORIAL_SPEC.items() if k != "security"} | {"paths": paths}
    closed = make_app(spec=without_global, routes=False, **ON)
    auth = closed.extensions["test_auth"]
    closed.add_url_rule("/metrics", view_func=auth.metrics_view())
    response = closed.test_client().get("/metrics")
    assert response.status_code == 403 and response.json["moreInformation"].startswith("Operation not described")

    open_spec = without_global | {"security": []}
    opened = make_app(spec=open_spec, routes=False, **ON)
    auth = opened.extensions["test_auth"]
    opened.add_url_rule("/metrics", view_func=auth.metrics_view())
    assert opened.test_client().get("/metrics").status_code == 200  # what the decorator is there to prevent


def test_the_recipes_require_a_role_or_exempt_for_the_apps_own_protection(make_app: AppFactory) -> None:
    env = ClientEnv.of(make_app(**ON))
    app, client, cid, secret = env.app, env.client, env.cid, env.secret
    scraper = mount(app)
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=headers(cid, secret))
    assert response.status_code == 403 and response.json["moreInformation"] == "Client lacks a required role"
    assert client.get("/metrics", headers=headers(*scraper)).status_code == 200

    paths = {"/branches": {"get": {"responses": {"200": {"description": "ok"}}}}}
    behind_a_proxy = make_app(spec=TUTORIAL_SPEC | {"paths": paths}, routes=False, **ON)
    auth = behind_a_proxy.extensions["test_auth"]
    behind_a_proxy.add_url_rule("/metrics", view_func=auth.exempt(auth.metrics_view()))
    auth.routes(behind_a_proxy)
    assert behind_a_proxy.test_client().get("/metrics").status_code == 200


def test_one_view_per_extension_object_for_app_factories(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An app factory decorating and mounting ``auth.metrics_view()`` on each app it builds, with one
    module-level ``ClientAuth``: the same view each time, the same requirement on every app."""
    auth = ClientAuth()
    apps = []
    for n in range(2):
        app = Flask(f"factory{n}", instance_path=str(tmp_path))
        app.config.update(
            CLIENTAUTH_SPEC=TUTORIAL_SPEC, CLIENTAUTH_DATABASE_URI=f"sqlite:///{tmp_path}/{n}.sqlite3", **ON
        )
        auth.init_app(app)
        app.add_url_rule("/metrics", view_func=auth.require(roles=[METRICS_ROLE])(auth.metrics_view()))
        auth.routes(app)
        auth.store(app).create_all()
        apps.append(app)
    assert auth.metrics_view() is auth.metrics_view()
    assert "matched no route" not in caplog.text
    for app in apps:
        assert app.test_client().get("/metrics").status_code == 401
        assert app.test_client().get("/metrics", headers=headers(*new_client(app))).status_code == 403
        scraper = new_client(app, "Prometheus", roles=[METRICS_ROLE])
        assert app.test_client().get("/metrics", headers=headers(*scraper)).status_code == 200


# -- without prometheus_client ---------------------------------------------------------------------
WITHOUT_PROMETHEUS = """
import json, sys
sys.modules["prometheus_client"] = None  # as if the [metrics] extra were not installed
from flask import Flask
from flask_clientauth import ClientAuth, ConfigurationError

spec = json.loads(sys.argv[1])
app = Flask("plain", instance_path=sys.argv[2])
app.config.update(CLIENTAUTH_SPEC=spec, CLIENTAUTH_BCRYPT_ROUNDS=4)
auth = ClientAuth(app)
app.add_url_rule("/api/status", "status", lambda: "ok")
app.add_url_rule("/api/branches", "branches", lambda: "ok")
auth.store(app).create_all()
record, secret = auth.store(app).create("Branch mobile app")
sent = {"X-IBM-Client-Id": record.client_id, "X-IBM-Client-Secret": secret}
statuses = [app.test_client().get(path, headers=h).status_code for path, h in (("/api/status", {}), ("/api/branches", {}), ("/api/branches", sent))]
print("works", *statuses)
try:
    auth.metrics_view()
except ConfigurationError as exc:
    print("view:", exc)
on = Flask("metrics", instance_path=sys.argv[2])
on.config.update(CLIENTAUTH_SPEC=spec, CLIENTAUTH_DATABASE_URI="sqlite://", CLIENTAUTH_METRICS=True)
try:
    ClientAuth(on)
except ConfigurationError as exc:
    print("config:", exc)
"""


def test_without_prometheus_client_the_package_works_and_asking_for_metrics_names_the_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PROMETHEUS, json.dumps(TUTORIAL_SPEC), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "works 200 401 200"
    hint = "pip install 'Flask-ClientAuth[metrics]'"
    assert lines[1].startswith("view: ClientAuth.metrics_view() needs prometheus_client") and hint in lines[1]
    assert lines[2].startswith("config: CLIENTAUTH_METRICS needs prometheus_client") and hint in lines[2]


def test_a_multiprocess_directory_that_is_not_one_fails_start_up(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"PROMETHEUS_MULTIPROC_DIR is set to .*, which is not a directory"):
        make_app(**ON)
    make_app()  # metrics off: the variable is none of the extension's business


def test_a_multiprocess_directory_set_after_prometheus_client_was_imported_fails_start_up(
    make_app: AppFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prometheus_client reads the variable when it is imported: set later, this process would keep its
    values in memory, and scrapes would miss them."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="set after prometheus_client was imported"):
        make_app(**ON)


# -- gunicorn, two workers, multiprocess mode -------------------------------------------------------
@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    """The example under gunicorn, two sync workers, metrics on in multiprocess mode."""
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"left by a previous run")  # on_starting clears it
    env = example_env(
        tmp_path / "instance",
        "openapi2",
        CLIENTAUTH_METRICS="true",
        CLIENTAUTH_METRICS_CLIENT_LABEL="true",
        PROMETHEUS_MULTIPROC_DIR=str(multiproc),
    )
    assert cli(env, "init-db").returncode == 0
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", "example_app/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}"]
    server = Server([*cmd, "--workers", "2", "example_app:create_app()"], env, tmp_path, port, "openapi2")
    try:
        server.wait_ready()
        yield server, env
    finally:
        server.stop()


@pytest.mark.slow
def test_gunicorn_two_workers_the_counts_add_up_across_workers(gunicorn: tuple[Server, dict[str, str]]) -> None:
    server, env = gunicorn
    app_client = cli_json(env, "create", "Branch mobile app")
    scraper = cli_json(env, "create", "Prometheus", "--role", METRICS_ROLE)
    app_headers = {"X-IBM-Client-Id": app_client["client_id"], "X-IBM-Client-Secret": app_client["client_secret"]}
    scraper_headers = {"X-IBM-Client-Id": scraper["client_id"], "X-IBM-Client-Secret": scraper["client_secret"]}
    workers = server.worker_pids()

    def send(n: int, sent_headers: dict[str, str]) -> tuple[str, int]:
        tag = f"{n:032x}"  # in the access log, with the pid of the worker that answered
        with requests.Session() as http:  # a new connection each time: the kernel spreads them
            status = http.get(f"{server.url}/api/branches?probe={tag}", headers=sent_headers, timeout=10).status_code
        return tag, status

    wrong = {**app_headers, "X-IBM-Client-Secret": "fcsk_wrong"}
    statuses: dict[str, int] = {}
    with ThreadPoolExecutor(8) as pool:
        for round_number in range(50):  # until each worker answered some of each kind
            batch = [pool.submit(send, round_number * 100 + k, app_headers) for k in range(8)]
            batch += [pool.submit(send, round_number * 100 + 50 + k, wrong) for k in range(4)]
            statuses.update(future.result() for future in batch)
            served = {(pid, statuses[tag]) for tag, (pid, _) in server.served_by(list(statuses)).items()}
            if served == {(pid, status) for pid in workers for status in (200, 401)}:
                break
    assert served == {(pid, status) for pid in workers for status in (200, 401)}, served
    allowed = sum(status == 200 for status in statuses.values())
    refused = sum(status == 401 for status in statuses.values())
    assert allowed + refused == len(statuses)

    scraped_by: set[int] = set()
    requests_total = "clientauth_requests_total"
    done = 0  # scrapes answered before this round

    def scrape(tag: str) -> Any:
        return requests.get(f"{server.url}/metrics?probe={tag}", headers=scraper_headers, timeout=10)

    with ThreadPoolExecutor(2) as pool:
        for round_number in range(1, 41):
            # two at once: a sync worker takes one request at a time, so the other worker takes the
            # second (one after the other, the same worker may win every accept)
            tags = [f"{10**6 + 2 * round_number + k:032x}" for k in range(2)]
            for response in pool.map(scrape, tags):
                assert response.status_code == 200, response.text
                found = Scrape(response.text)
                # the whole server's counts, whichever worker answered: not that worker's share
                assert (
                    found.value(requests_total, outcome="allowed", code="", plan="", client=app_client["client_id"])
                    == allowed
                )
                assert (
                    found.value(requests_total, outcome="refused", code="client_secret_invalid", plan="", client="")
                    == refused
                )
                # this scrape, the earlier ones, and maybe the one beside it
                scrapes = found.value(requests_total, outcome="allowed", code="", plan="", client=scraper["client_id"])
                assert done < scrapes <= done + 2
                assert found.value("clientauth_verification_seconds_count", outcome="refused") == refused
                hits = found.value("clientauth_cache_hits_total", kind="known")
                misses = found.value("clientauth_cache_misses_total")
                # one client lookup per allowed request (the one beside it may have looked up already);
                # a malformed secret is refused before any lookup
                assert allowed + scrapes <= hits + misses <= allowed + done + 2
            done += 2
            scraped_by.update(pid for pid, _line in server.served_by(tags).values())
            if scraped_by == workers and round_number >= 2:
                break
    assert scraped_by == workers, "both workers answered scrapes"
    assert "left by a previous run" not in found.body

    # a worker that exits (and is replaced) leaves its counts counted
    victim = next(iter(workers))
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while True:
        live = server.worker_pids()  # (two live workers, or the test fails)
        if victim not in live:
            break
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    response = requests.get(f"{server.url}/metrics", headers=scraper_headers, timeout=10)
    found = Scrape(response.text)
    assert (
        found.value("clientauth_requests_total", outcome="allowed", code="", plan="", client=app_client["client_id"])
        == allowed
    )
    assert (
        found.value("clientauth_requests_total", outcome="refused", code="client_secret_invalid", plan="", client="")
        == refused
    )
