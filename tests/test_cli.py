"""``flask clients ...`` through Flask's CLI runner, and its effect on real requests.

Commands that touch storage run on every backend (``database_url``). The apps poll the
change log on every request (``CLIENTAUTH_REVOCATION_INTERVAL=0``), so a CLI change shows
in the very next request of the test client. Also what a newcomer trips over: confirmation
without a terminal, help texts, messages.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from flask_clientauth import SpecError, load_spec
from flask_clientauth.cli import clients
from flask_clientauth.keys import secret_matches
from servers import cli, example_env

from conftest import TUTORIAL_SPEC, AppFactory

ID_LINE = re.compile(r"^Client ID:\s+([0-9a-f]{32})$", re.M)
SECRET_LINE = re.compile(r"^Client secret:\s+(\S+)$", re.M)
NAME = "Branch mobile app"


@pytest.fixture
def cli_app(make_app: AppFactory, database_url: str) -> Flask:
    return make_app(database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0)


def run(app: Flask, *args: str, input: str | None = None) -> Result:
    return app.test_cli_runner().invoke(args=["clients", *args], input=input)


def ok(app: Flask, *args: str, input: str | None = None) -> Result:
    result = run(app, *args, input=input)
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result


def ok_json(app: Flask, *args: str, input: str | None = None) -> Any:
    return json.loads(ok(app, *args, "--json", input=input).stdout)


def failed(app: Flask, *args: str, input: str | None = None) -> Result:
    """A refused command: non-zero exit, a message, never a traceback."""
    result = run(app, *args, input=input)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def create(app: Flask, *extra: str) -> tuple[str, str]:
    data = ok_json(app, "create", NAME, *extra)
    return data["client_id"], data["client_secret"]


def call(app: Flask, client_id: str, secret: str | None = None, path: str = "/api/branches") -> Any:
    headers = {"X-IBM-Client-Id": client_id}
    if secret is not None:
        headers["X-IBM-Client-Secret"] = secret
    return app.test_client().get(path, headers=headers)


def stored_hash(app: Flask, client_id: str) -> str | None:
    record = app.extensions["clientauth"].store.get(client_id)
    assert record is not None
    return record.secret_hash  # type: ignore[no-any-return]


def latest_change(app: Flask) -> int:
    return app.extensions["clientauth"].store.latest_change()  # type: ignore[no-any-return]


# -- create and the secret shown once ---------------------------------------------------


def test_create_shows_the_secret_once_and_never_again(cli_app: Flask) -> None:
    result = ok(cli_app, "create", NAME, "--description", "Tutorial client")
    client_id = ID_LINE.search(result.stdout).group(1)  # type: ignore[union-attr]
    secret = SECRET_LINE.search(result.stdout).group(1)  # type: ignore[union-attr]
    assert result.stdout.count(secret) == 1
    assert "cannot be shown again" in result.output
    hashed = stored_hash(cli_app, client_id)
    assert hashed is not None

    outputs = [
        ok(cli_app, "list"),
        ok(cli_app, "list", "--json"),
        ok(cli_app, "show", client_id),
        ok(cli_app, "show", client_id, "--json"),
        ok(cli_app, "disable", client_id),
        ok(cli_app, "disable", client_id, "--json"),
        ok(cli_app, "enable", client_id),
        ok(cli_app, "enable", client_id, "--json"),
    ]
    for out in outputs:
        assert client_id in out.output
        assert secret not in out.output
        assert hashed not in out.output and "$2b$" not in out.output
    shown = ok(cli_app, "show", client_id).stdout
    assert NAME in shown and "Tutorial client" in shown and "Secret:      set" in shown

    response = call(cli_app, client_id, secret)
    assert response.status_code == 200
    assert response.get_json()["client_id"] == client_id
    assert response.get_json()["name"] == NAME


def test_create_json(cli_app: Flask) -> None:
    data = ok_json(cli_app, "create", NAME, "--description", "Mobile banking")
    assert {"client_id", "client_secret", "name"} <= set(data)
    assert data["name"] == NAME and data["description"] == "Mobile banking"
    assert re.fullmatch(r"[0-9a-f]{32}", data["client_id"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", data["client_secret"])
    assert data["enabled"] is True and data["has_secret"] is True
    assert "secret_hash" not in data
    assert call(cli_app, data["client_id"], data["client_secret"]).status_code == 200
    listed = ok_json(cli_app, "list")
    assert [(c["client_id"], c["name"], c["description"]) for c in listed] == [
        (data["client_id"], NAME, "Mobile banking")
    ]
    assert data["client_secret"] not in json.dumps(listed)


def test_create_without_secret(cli_app: Flask) -> None:
    data = ok_json(cli_app, "create", "Partner", "--no-secret")
    assert data["client_secret"] is None and data["has_secret"] is False
    client_id = data["client_id"]
    text = ok(cli_app, "create", "Partner two", "--no-secret").stdout
    assert "Client secret" not in text and ID_LINE.search(text)
    assert "Secret:      none" in ok(cli_app, "show", client_id).stdout
    # the ID-only operation accepts it; the ID+secret one cannot be satisfied without a secret
    assert call(cli_app, client_id, path="/api/branches/7").status_code == 200
    response = call(cli_app, client_id, "whatever-secret-value")
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client secret invalid"


# -- reset-secret / set-secret ----------------------------------------------------------


def test_reset_secret(cli_app: Flask) -> None:
    client_id, old = create(cli_app)
    assert call(cli_app, client_id, old).status_code == 200  # now cached as verified
    result = ok(cli_app, "reset-secret", client_id)
    assert ID_LINE.search(result.stdout).group(1) == client_id  # type: ignore[union-attr]
    new = SECRET_LINE.search(result.stdout).group(1)  # type: ignore[union-attr]
    assert new != old and result.stdout.count(new) == 1
    response = call(cli_app, client_id, old)
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client secret invalid"
    assert call(cli_app, client_id, new).status_code == 200
    assert new not in ok(cli_app, "show", client_id, "--json").output

    data = ok_json(cli_app, "reset-secret", client_id)
    assert data["client_id"] == client_id and data["client_secret"] not in (old, new)
    assert call(cli_app, client_id, new).status_code == 401
    assert call(cli_app, client_id, data["client_secret"]).status_code == 200


def test_set_secret_reads_stdin(cli_app: Flask) -> None:
    client_id, _ = create(cli_app, "--no-secret")
    chosen = "Operator-Chosen-secret-42"
    result = ok(cli_app, "set-secret", client_id, input=chosen + "\n")
    assert chosen not in result.output
    assert client_id in result.output
    assert call(cli_app, client_id, chosen).status_code == 200

    other = "Another.operator~secret_7"
    data = ok_json(cli_app, "set-secret", client_id, input=other + "\n")
    assert data["client_id"] == client_id and data["has_secret"] is True
    assert other not in json.dumps(data)
    assert call(cli_app, client_id, chosen).status_code == 401
    assert call(cli_app, client_id, other).status_code == 200


BAD_SECRETS = {
    "too-short": ("short-secret", "at least 16 characters"),
    "empty": ("", "no secret given"),
    "oversized": ("A" * 73, "at most 72 bytes"),
    "oversized-utf8": ("\u00e9" * 40, "at most 72 bytes"),
    "non-ascii": ("p\u00e4sswort-geheim-123", "printable ASCII"),
    "space": ("two words secret value", "printable ASCII"),
    "tab": ("tab\tinside-the-secret", "printable ASCII"),
}


@pytest.mark.parametrize("bad", list(BAD_SECRETS))
def test_set_secret_rejects_unusable_secrets(cli_app: Flask, bad: str) -> None:
    value, message = BAD_SECRETS[bad]
    client_id, secret = create(cli_app)
    before_hash, before_event = stored_hash(cli_app, client_id), latest_change(cli_app)
    result = failed(cli_app, "set-secret", client_id, input=value + "\n")
    assert message in result.output
    if value:
        assert value not in result.output
    assert stored_hash(cli_app, client_id) == before_hash
    assert latest_change(cli_app) == before_event
    assert call(cli_app, client_id, secret).status_code == 200


def test_set_secret_never_takes_the_secret_as_an_argument(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    before = stored_hash(cli_app, client_id)
    attempt = "Secret-on-the-command-line-1"
    for args in (
        ("set-secret", client_id, attempt),
        ("set-secret", client_id, "--secret", attempt),
        ("set-secret", "--secret", attempt, client_id),
    ):
        result = run(cli_app, *args, input="Secret-from-standard-input-1\n")
        assert result.exit_code == 2, result.output  # usage error
    assert stored_hash(cli_app, client_id) == before
    assert call(cli_app, client_id, secret).status_code == 200
    assert call(cli_app, client_id, attempt).status_code == 401


# -- disable / enable / delete ----------------------------------------------------------


def test_disable_and_enable(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    assert call(cli_app, client_id, secret).status_code == 200
    assert "disabled" in ok(cli_app, "disable", client_id).stdout
    response = call(cli_app, client_id, secret)
    assert response.status_code == 403
    assert response.get_json() == {"httpCode": "403", "httpMessage": "Forbidden", "moreInformation": "Client disabled"}
    assert ok_json(cli_app, "show", client_id)["enabled"] is False
    assert ok_json(cli_app, "enable", client_id)["enabled"] is True
    assert call(cli_app, client_id, secret).status_code == 200


def test_delete_asks_for_confirmation(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    assert call(cli_app, client_id, secret).status_code == 200
    for answer in ("n\n", "\n", ""):
        result = failed(cli_app, "delete", client_id, input=answer)
        assert "Delete client" in result.output
        assert ok_json(cli_app, "show", client_id)["client_id"] == client_id
    assert call(cli_app, client_id, secret).status_code == 200
    result = ok(cli_app, "delete", client_id, input="y\n")
    assert "deleted" in result.stdout
    response = call(cli_app, client_id, secret)
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client ID not registered"
    assert ok_json(cli_app, "list") == []


def test_delete_yes(cli_app: Flask) -> None:
    first, _ = create(cli_app)
    second, secret = create(cli_app)
    result = ok(cli_app, "delete", first, "--yes")
    assert "Delete client" not in result.output
    assert ok_json(cli_app, "delete", second, "--yes") == {"client_id": second, "deleted": True}
    assert ok_json(cli_app, "list") == []
    assert call(cli_app, second, secret).status_code == 401


# -- errors -----------------------------------------------------------------------------

UNKNOWN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "args",
    [
        ("show", UNKNOWN),
        ("show", UNKNOWN, "--json"),
        ("reset-secret", UNKNOWN),
        ("set-secret", UNKNOWN),
        ("disable", UNKNOWN),
        ("enable", UNKNOWN, "--json"),
        ("delete", UNKNOWN),
        ("delete", UNKNOWN, "--yes"),
    ],
    ids=lambda a: "-".join(x for x in a if x != UNKNOWN),
)
def test_unknown_id(cli_app: Flask, args: tuple[str, ...]) -> None:
    known, _ = create(cli_app)
    before = latest_change(cli_app)
    result = failed(cli_app, *args, input="Valid-secret-value-123\ny\n")
    assert f"no client with ID '{UNKNOWN}'" in result.output
    assert latest_change(cli_app) == before
    assert [c["client_id"] for c in ok_json(cli_app, "list")] == [known]


def test_near_miss_ids_are_unknown(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    for variant in (client_id.upper(), client_id + " "):
        failed(cli_app, "disable", variant)
        failed(cli_app, "delete", variant, "--yes")
    assert ok_json(cli_app, "show", client_id)["enabled"] is True
    assert call(cli_app, client_id, secret).status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ("create",),
        ("create", ""),
        ("create", "   "),
        ("create", "x" * 201),
        ("create", "bad\x00name"),
        ("create", "line\nbreak"),
    ],
    ids=["missing", "empty", "blank", "too-long", "nul", "newline"],
)
def test_bad_create_arguments(cli_app: Flask, args: tuple[str, ...]) -> None:
    result = failed(cli_app, *args)
    assert "NAME" in result.output or "name" in result.output
    assert ok_json(cli_app, "list") == []


def test_every_data_command_prints_json(cli_app: Flask) -> None:
    created = ok_json(cli_app, "create", NAME)
    client_id = created["client_id"]
    assert isinstance(ok_json(cli_app, "list"), list)
    for args, input in [
        (("show", client_id), None),
        (("reset-secret", client_id), None),
        (("set-secret", client_id), "Json-mode-secret-value-1\n"),
        (("disable", client_id), None),
        (("enable", client_id), None),
        (("delete", client_id, "--yes"), None),
    ]:
        data = ok_json(cli_app, *args, input=input)
        assert data["client_id"] == client_id, args
    routes = ok_json(cli_app, "routes")
    assert isinstance(routes["routes"], list)
    data_commands = {"create", "list", "show", "reset-secret", "set-secret", "disable", "enable", "delete", "routes"}
    for name in data_commands:
        assert "as_json" in {p.name for p in clients.commands[name].params}, name


def test_routes(make_app: AppFactory) -> None:
    app = make_app()
    data = json.loads(ok(app, "routes", "--json").stdout)
    rows = {(r["method"], r["rule"]): r for r in data["routes"]}
    assert rows[("GET", "/api/branches")]["operation"] == "GET /branches"
    assert rows[("GET", "/api/branches")]["requirement"] == "id+secret"
    assert rows[("GET", "/api/branches/<int:branchId>")]["operation"] == "GET /branches/{branchId}"
    assert rows[("GET", "/api/branches/<int:branchId>")]["requirement"] == "id"
    assert rows[("GET", "/api/status")]["requirement"] == "public"
    for row in data["routes"]:
        assert {"rule", "endpoint", "method", "operation", "requirement", "origin"} <= set(row)

    text = ok(app, "routes").stdout
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("GET ")}
    assert "GET /branches" in lines["/api/branches"] and "id+secret" in lines["/api/branches"]
    assert "GET /branches/{branchId}" in lines["/api/branches/<int:branchId>"]
    assert "public" in lines["/api/status"]


# -- the database cannot be used --------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_store_message(result: Result, *words: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0], result.output
    for word in ("SELECT", "INSERT", "[SQL", "Db-Password"):
        assert word not in result.output


@pytest.mark.parametrize(
    "command", [("list",), ("list", "--json"), ("show", UNKNOWN), ("create", NAME), ("disable", UNKNOWN)]
)
def test_missing_tables_give_one_line_pointing_to_init_db(
    make_app: AppFactory, database_url: str, command: tuple[str, ...]
) -> None:
    app = make_app(database_url=database_url, create_tables=False)
    assert_store_message(failed(app, *command), "tables do not exist", "flask clients init-db")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://clientauth:Db-Password-1@127.0.0.1:{port}/clientauth",
        "mysql+pymysql://clientauth:Db-Password-1@127.0.0.1:{port}/clientauth",
        "sqlite:///{tmp}/no/such/directory/clients.sqlite3",
    ],
    ids=["postgresql", "mariadb", "sqlite"],
)
def test_unreachable_database_gives_one_line(make_app: AppFactory, url: str, tmp_path: Path) -> None:
    port = _closed_port()
    app = make_app(database_url=url.format(port=port, tmp=tmp_path), create_tables=False)
    # the server and why it cannot be used, not "run init-db" (which would fail the same way)
    expected = ("cannot open the SQLite database",) if url.startswith("sqlite") else (f"127.0.0.1:{port}", "refused")
    for command in (("list",), ("create", NAME), ("init-db",)):
        assert_store_message(failed(app, *command), *expected, "CLIENTAUTH_DATABASE_URI")
        assert "init-db" not in failed(app, *command).output


def test_commands_need_the_extension() -> None:
    app = Flask("plain")
    result = app.test_cli_runner().invoke(clients, ["list"])
    assert result.exit_code != 0
    assert "ClientAuth" in result.output and "Traceback" not in result.output


# -- concurrent edits -------------------------------------------------------------------

APP_MODULE = """
import json, os
from flask import Flask
from flask_clientauth import ClientAuth

app = Flask(__name__)
app.config.update(
    CLIENTAUTH_SPEC=json.loads({spec!r}),
    CLIENTAUTH_DATABASE_URI=os.environ["CLIENTAUTH_TEST_URL"],
    CLIENTAUTH_BCRYPT_ROUNDS=4,
)
ClientAuth(app)
"""


@pytest.mark.slow
def test_concurrent_secret_resets_from_two_processes(cli_app: Flask, database_url: str, tmp_path: Path) -> None:
    """Two operators reset the same secret at once: exactly one printed secret works afterwards."""
    (tmp_path / "concurrent_app.py").write_text(textwrap.dedent(APP_MODULE.format(spec=json.dumps(TUTORIAL_SPEC))))
    client_id, original = create(cli_app)
    env = {"CLIENTAUTH_TEST_URL": database_url, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "flask", "--app", "concurrent_app", "clients", "reset-secret", client_id, "--json"]
    for _round in range(2):
        before = latest_change(cli_app)
        procs = [
            subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outcomes = [(*p.communicate(timeout=120), p.returncode) for p in procs]
        printed = []
        for out, err, code in outcomes:
            assert "Traceback" not in err, err
            if code == 0:
                data = json.loads(out)
                assert data["client_id"] == client_id
                printed.append(data["client_secret"])
            else:  # a loser may be refused, with one line and without a secret
                assert out == "" and len(err.strip().splitlines()) == 1, err
        assert printed
        hashed = stored_hash(cli_app, client_id)
        assert hashed is not None and hashed.startswith("sha256$")
        assert [secret_matches(s, hashed) for s in printed].count(True) == 1
        assert not secret_matches(original, hashed)
        winner = next(s for s in printed if secret_matches(s, hashed))
        assert call(cli_app, client_id, winner).status_code == 200
        for loser in [s for s in printed if s != winner] + [original]:
            assert call(cli_app, client_id, loser).status_code == 401
        _, changed, seen = cli_app.extensions["clientauth"].store.changes_after(before)
        assert changed == {client_id} and len(seen) == len(printed)
        original = winner


# -- registration -----------------------------------------------------------------------


def test_clients_is_registered_by_init_app_only(make_app: AppFactory) -> None:
    # the Flask-extension way: no `flask.commands` entry point, so apps without ClientAuth have no group
    assert not [ep for ep in importlib.metadata.entry_points(group="flask.commands") if ep.name == "clients"]
    assert "clients" not in Flask("plain").cli.commands
    assert make_app().cli.commands["clients"] is clients


# -- what a newcomer trips over: confirmation without a terminal, help texts, messages ------------------


@pytest.fixture
def sqlite_cli_app(make_app: AppFactory) -> Flask:
    return make_app(CLIENTAUTH_REVOCATION_INTERVAL=0)


def test_delete_without_a_terminal_says_to_pass_yes(sqlite_cli_app: Flask) -> None:
    client_id, _secret = create(sqlite_cli_app)
    result = failed(sqlite_cli_app, "delete", client_id, "--json")  # CliRunner's stdin is empty, not a terminal
    assert result.stdout == ""
    assert "pass --yes to delete without asking" in result.stderr
    assert f"client {client_id} not deleted" in result.stderr
    assert ok_json(sqlite_cli_app, "show", client_id)["client_id"] == client_id


def test_the_confirmation_question_goes_to_stderr(sqlite_cli_app: Flask) -> None:
    """With ``--json`` and an answer, stdout holds the JSON result only."""
    client_id, _secret = create(sqlite_cli_app)
    result = ok(sqlite_cli_app, "delete", client_id, "--json", input="y\n")
    assert json.loads(result.stdout) == {"client_id": client_id, "deleted": True}
    assert f"Delete client {client_id} ({NAME})?" in result.stderr


def test_answering_no_still_aborts(sqlite_cli_app: Flask) -> None:
    client_id, _secret = create(sqlite_cli_app)
    result = failed(sqlite_cli_app, "delete", client_id, input="n\n")
    assert "Aborted" in result.stderr and "--yes" not in result.stderr
    assert ok_json(sqlite_cli_app, "show", client_id)["client_id"] == client_id


@pytest.mark.slow
def test_delete_in_a_script_without_a_terminal(tmp_path: Path) -> None:
    """The real ``flask`` command with stdin closed, as in a CI job or a cron script."""
    env = example_env(tmp_path / "instance", "openapi2")
    assert cli(env, "init-db").returncode == 0
    client_id = json.loads(cli(env, "create", "Nightly job", "--json").stdout)["client_id"]
    result = cli(env, "delete", client_id, "--json")  # stdin is /dev/null
    assert result.returncode == 1
    assert result.stdout == ""
    assert "pass --yes to delete without asking" in result.stderr and "Traceback" not in result.stderr
    assert cli(env, "delete", client_id, "--json", "--yes").returncode == 0


@pytest.mark.slow
def test_delete_with_standard_input_closed_says_to_pass_yes(tmp_path: Path) -> None:
    """``flask clients delete ID <&-``: no stdin at all (Python's ``sys.stdin`` is ``None``)."""
    env = example_env(tmp_path / "instance", "openapi2")
    assert cli(env, "init-db").returncode == 0
    client_id = json.loads(cli(env, "create", "Nightly job", "--json").stdout)["client_id"]
    result = cli(env, "delete", client_id, "--json", close_stdin=True)
    assert result.returncode == 1
    assert "pass --yes to delete without asking" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(cli(env, "show", client_id, "--json").stdout)["client_id"] == client_id


def test_create_help_describes_what_list_shows(sqlite_cli_app: Flask) -> None:
    help_text = " ".join(ok(sqlite_cli_app, "create", "--help").stdout.split())
    client_id, _secret = create(sqlite_cli_app, "--description", "Harbour kiosk")
    create(sqlite_cli_app, "--no-secret")
    listing = ok(sqlite_cli_app, "list").stdout
    header = listing.splitlines()[0]
    columns = ["CLIENT ID", "ENABLED", "SECRET", "EXPIRES", "LAST USED", "ROLES", "PLAN", "LABEL", "NAME"]
    assert header.split() == " ".join(columns).split()
    for column in columns:  # every column list prints is explained by create's help
        assert column in help_text, column
    assert "SECRET is 'none'" in help_text and " none " in listing  # --no-secret, as list shows it
    # --description says where the text is shown: there it is
    description_help = help_text.split("--description TEXT", 1)[1].split("--no-secret", 1)[0]
    assert "'list --json'" in description_help
    if "'list'" in description_help:
        assert "Harbour kiosk" in listing
    assert "Harbour kiosk" not in listing
    assert "Harbour kiosk" in ok(sqlite_cli_app, "show", client_id).stdout
    assert any(c.get("description") == "Harbour kiosk" for c in ok_json(sqlite_cli_app, "list"))


def test_two_client_id_keys_explains_how_key_types_are_told_apart() -> None:
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "components": {
            "securitySchemes": {
                "appId": {"type": "apiKey", "in": "header", "name": "X-App-Id"},
                "appKey": {"type": "apiKey", "in": "header", "name": "X-App-Key"},  # meant as the secret
            }
        },
        "security": [{"appId": [], "appKey": []}],
        "paths": {},
    }
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    message = str(info.value)
    assert "at most one client ID key per requirement (appId, appKey)" in message
    assert "name contains 'secret'" in message
    assert "x-key-type: client_secret" in message
