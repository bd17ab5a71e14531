"""What a newcomer trips over in ``flask clients``: confirmation without a terminal, help texts, messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_clientauth import SpecError, load_spec
from test_cli import NAME, create, failed, ok, ok_json
from test_e2e import cli, example_env

from conftest import AppFactory


@pytest.fixture
def cli_app(make_app: AppFactory) -> Flask:
    return make_app(CLIENTAUTH_REVOCATION_INTERVAL=0)


def test_delete_without_a_terminal_says_to_pass_yes(cli_app: Flask) -> None:
    client_id, _secret = create(cli_app)
    result = failed(cli_app, "delete", client_id, "--json")  # CliRunner's stdin is empty, not a terminal
    assert result.stdout == ""
    assert "pass --yes to delete without asking" in result.stderr
    assert f"client {client_id} not deleted" in result.stderr
    assert ok_json(cli_app, "show", client_id)["client_id"] == client_id


def test_the_confirmation_question_goes_to_stderr(cli_app: Flask) -> None:
    """With ``--json`` and an answer, stdout holds the JSON result only."""
    client_id, _secret = create(cli_app)
    result = ok(cli_app, "delete", client_id, "--json", input="y\n")
    assert json.loads(result.stdout) == {"client_id": client_id, "deleted": True}
    assert f"Delete client {client_id} ({NAME})?" in result.stderr


def test_answering_no_still_aborts(cli_app: Flask) -> None:
    client_id, _secret = create(cli_app)
    result = failed(cli_app, "delete", client_id, input="n\n")
    assert "Aborted" in result.stderr and "--yes" not in result.stderr
    assert ok_json(cli_app, "show", client_id)["client_id"] == client_id


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


def test_delete_with_standard_input_closed_says_to_pass_yes(tmp_path: Path) -> None:
    """``flask clients delete ID <&-``: no stdin at all (Python's ``sys.stdin`` is ``None``)."""
    env = example_env(tmp_path / "instance", "openapi2")
    assert cli(env, "init-db").returncode == 0
    client_id = json.loads(cli(env, "create", "Nightly job", "--json").stdout)["client_id"]
    result = cli(env, "delete", client_id, "--json", close_stdin=True)
    assert result.returncode == 1
    assert "pass --yes to delete without asking" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(cli(env, "show", client_id, "--json").stdout)["client_id"] == client_id


def test_create_help_describes_what_list_shows(cli_app: Flask) -> None:
    help_text = " ".join(ok(cli_app, "create", "--help").stdout.split())
    client_id, _secret = create(cli_app, "--description", "Harbour kiosk")
    create(cli_app, "--no-secret")
    listing = ok(cli_app, "list").stdout
    header = listing.splitlines()[0]
    columns = ["CLIENT ID", "ENABLED", "SECRET", "NAME"]
    assert header.split() == ["CLIENT", "ID", "ENABLED", "SECRET", "NAME"]
    for column in columns:  # every column list prints is explained by create's help
        assert column in help_text, column
    assert "SECRET is 'none'" in help_text and " none " in listing  # --no-secret, as list shows it
    # --description says where the text is shown: there it is
    description_help = help_text.split("--description TEXT", 1)[1].split("--no-secret", 1)[0]
    assert "'list --json'" in description_help
    if "'list'" in description_help:
        assert "Harbour kiosk" in listing
    assert "Harbour kiosk" not in listing
    assert "Harbour kiosk" in ok(cli_app, "show", client_id).stdout
    assert any(c.get("description") == "Harbour kiosk" for c in ok_json(cli_app, "list"))


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
