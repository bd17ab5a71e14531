"""Issue 13's commands: several credentials per client, rotation, expiry, roles, the audit log and
leaked secrets, through Flask's CLI runner on every backend, and their effect on real requests.

What verification does with grace periods and expiry at request time has its own tests; here the
CLI's view of them is checked with ``verify-secret`` and ``show``.
"""

from __future__ import annotations

import json
import pwd
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_clientauth.keys import generate_secret
from flask_clientauth.store import utcnow
from test_cli import NAME, call, create, failed, latest_change, ok, ok_json, run

from conftest import AppFactory

OPERATOR = "audit-operator"
#: The exact fields of ``credentials list --json`` (never a secret or a hash).
CREDENTIAL_FIELDS = {
    "client_id",
    "label",
    "created_at",
    "expires_at",
    "last_used_at",
    "enabled",
    "has_secret",
    "previous_secret_until",
}
AUDIT_FIELDS = {"id", "created_at", "action", "client_id", "name", "actor", "detail"}


@pytest.fixture
def cli_app(make_app: AppFactory, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Flask:
    monkeypatch.setenv("LOGNAME", OPERATOR)  # what getpass.getuser() reads first
    return make_app(database_url=database_url, CLIENTAUTH_REVOCATION_INTERVAL=0)


def add(app: Flask, client_id: str, *extra: str) -> tuple[str, str]:
    data = ok_json(app, "credentials", "add", client_id, *extra)
    return data["client_id"], data["client_secret"]


def verify(app: Flask, client_id: str, secret: str) -> str:
    result = run(app, "verify-secret", client_id, input=secret + "\n")
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    return result.stdout.strip()


def audit(app: Flask, *args: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = ok_json(app, "audit", *args)
    return entries


def around(value: str | None, expected: datetime, slack: float = 60) -> bool:
    assert value is not None
    return abs((datetime.fromisoformat(value) - expected).total_seconds()) < slack


def state(app: Flask) -> tuple[Any, int, int]:
    """Everything a refused command must leave alone: the clients, the change log, the audit log."""
    return ok_json(app, "list"), latest_change(app), len(audit(app))


# -- several credentials per client -----------------------------------------------------


def test_credentials_add_list_and_revoke(cli_app: Flask) -> None:
    first, first_secret = create(cli_app, "--label", "phones")
    data = ok_json(cli_app, "credentials", "add", first, "--label", "ci")
    second, second_secret = data["client_id"], data["client_secret"]
    assert second != first and second_secret != first_secret
    assert data["name"] == NAME and data["label"] == "ci" and data["has_secret"] is True  # create's shape
    assert {"client_id", "client_secret", "name", "enabled", "created_at"} <= set(data)
    assert call(cli_app, second, second_secret).status_code == 200
    assert call(cli_app, first, first_secret).status_code == 200
    assert call(cli_app, first, second_secret).status_code == 401  # a secret belongs to its own ID

    text = ok(cli_app, "credentials", "add", first, "--label", "laptop").stdout
    third = re.search(r"^Client ID:\s+([0-9a-f]{32})$", text, re.M).group(1)  # type: ignore[union-attr]
    assert "Label:       laptop" in text and re.search(r"^Client secret: fcsk_\w+$", text, re.M)

    listed = ok_json(cli_app, "credentials", "list", second)
    assert [c["client_id"] for c in listed] == [first, second, third]
    assert [c["label"] for c in listed] == ["phones", "ci", "laptop"]
    for item in listed:
        assert set(item) == CREDENTIAL_FIELDS
        assert item["enabled"] is True and item["expires_at"] is None and item["last_used_at"] is None
    table = ok(cli_app, "credentials", "list", first).stdout
    assert table.splitlines()[0].split() == ["CLIENT", "ID", "ENABLED", "SECRET", "EXPIRES", "LAST", "USED", "LABEL"]
    assert all(cid in table for cid in (first, second, third))
    for out in (json.dumps(listed), table, ok(cli_app, "show", first).stdout, json.dumps(ok_json(cli_app, "list"))):
        assert first_secret not in out and second_secret not in out and "sha256$" not in out

    # revoke asks, like delete; without anyone to answer it refuses
    result = failed(cli_app, "credentials", "revoke", second)
    assert "pass --yes to revoke without asking" in result.stderr and result.stdout == ""
    failed(cli_app, "credentials", "revoke", second, input="n\n")
    assert call(cli_app, second, second_secret).status_code == 200
    answered = ok(cli_app, "credentials", "revoke", second, "--json", input="y\n")
    assert f"Revoke credential {second} (ci) of client {NAME!r}?" in answered.stderr
    assert json.loads(answered.stdout) == {"client_id": second, "revoked": True}
    response = call(cli_app, second, second_secret)
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client ID not registered"
    assert call(cli_app, first, first_secret).status_code == 200
    assert "keeps 1 other credential" in ok(cli_app, "credentials", "revoke", third, "--yes").stdout

    # the last credential is refused, before any question, with the store's message
    before = state(cli_app)
    for args in (("credentials", "revoke", first), ("credentials", "revoke", first, "--yes")):
        result = failed(cli_app, *args, input="y\n")
        assert f"{first} is the only credential of client {NAME!r}" in result.stderr
        assert "disable or delete the client instead" in result.stderr and "Revoke credential" not in result.stderr
    assert state(cli_app) == before
    assert call(cli_app, first, first_secret).status_code == 200


def test_an_id_only_credential(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    data = ok_json(cli_app, "credentials", "add", client_id, "--no-secret")
    assert data["client_secret"] is None and data["has_secret"] is False
    assert call(cli_app, data["client_id"], path="/api/branches/7").status_code == 200
    assert call(cli_app, data["client_id"], secret).status_code == 401
    text = ok(cli_app, "credentials", "add", client_id, "--no-secret").stdout
    assert "Client secret" not in text and "Secret:      none" in text


def test_every_command_takes_any_of_the_clients_ids(cli_app: Flask) -> None:
    first, first_secret = create(cli_app, "--description", "Tutorial client")
    second, second_secret = add(cli_app, first, "--label", "second")
    seen = ok_json(cli_app, "show", second)
    assert seen["client_id"] == second and seen["name"] == NAME and seen["description"] == "Tutorial client"
    assert seen["label"] == "second"
    assert [c["client_id"] for c in seen["credentials"]] == [first, second]

    ok(cli_app, "disable", second)  # the client, with every credential
    assert call(cli_app, first, first_secret).status_code == 403
    assert call(cli_app, second, second_secret).status_code == 403
    ok(cli_app, "enable", first)
    assert call(cli_app, second, second_secret).status_code == 200

    # a credential-level command changes the credential named, and only it
    chosen = "Operator-Chosen-secret-42"
    ok(cli_app, "set-secret", second, input=chosen + "\n")
    assert call(cli_app, second, chosen).status_code == 200
    assert call(cli_app, first, first_secret).status_code == 200
    new = ok_json(cli_app, "reset-secret", first)["client_secret"]
    assert call(cli_app, first, new).status_code == 200 and call(cli_app, second, chosen).status_code == 200

    assert ok_json(cli_app, "roles", second, "--add", "admin")["roles"] == ["admin"]
    assert ok_json(cli_app, "show", first)["roles"] == ["admin"]

    assert ok_json(cli_app, "delete", second, "--yes") == {"client_id": second, "deleted": True}
    assert call(cli_app, first, new).status_code == 401
    assert ok_json(cli_app, "list") == []


def test_delete_names_the_other_credentials(cli_app: Flask) -> None:
    client_id, _ = create(cli_app)
    add(cli_app, client_id)
    result = failed(cli_app, "delete", client_id, input="n\n")
    assert f"Delete client {client_id} ({NAME}) with its 1 other credential(s)?" in result.stderr


# -- show and list ----------------------------------------------------------------------


def test_show_and_list_give_roles_expiry_last_use_and_credentials(cli_app: Flask) -> None:
    first, _ = create(cli_app, "--role", "reports", "--role", "admin", "--expires", "2030-01-31", "--label", "main")
    second, _ = add(cli_app, first, "--label", "ci")
    other, _ = create(cli_app)
    used = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    cli_app.extensions["clientauth"].store.touch({second: used})

    shown = ok_json(cli_app, "show", first)
    assert shown["roles"] == ["admin", "reports"]
    assert shown["expires_at"] == "2030-01-31T00:00:00+00:00"
    assert shown["last_used_at"] == used.isoformat()  # the client's: the latest of its credentials
    assert shown["previous_secret_until"] is None
    assert [(c["client_id"], c["label"], c["expires_at"]) for c in shown["credentials"]] == [
        (first, "main", "2030-01-31T00:00:00+00:00"),
        (second, "ci", None),
    ]
    assert shown["credentials"][1]["last_used_at"] == used.isoformat()

    text = ok(cli_app, "show", first).stdout
    for line in (
        "Roles:       admin, reports",
        "Expires:     2030-01-31T00:00:00+00:00",
        "Last used:   2026-03-04T05:06:07+00:00",
        "Label:       main",
        "Credentials (2):",
    ):
        assert line in text, line
    assert second in text and "2026-03-04T05:06Z" in text
    assert "Roles:       none" in ok(cli_app, "show", other).stdout

    listed = ok_json(cli_app, "list")
    assert [c["client_id"] for c in listed] == [first, other]  # one object per client
    assert [c["client_id"] for c in listed[0]["credentials"]] == [first, second]
    assert {"roles", "expires_at", "last_used_at", "credentials", "label"} <= set(listed[0])
    rows = ok(cli_app, "list").stdout.splitlines()[1:]  # one row per credential
    assert [row.split()[0] for row in rows] == [first, second, other]
    assert "2030-01-31T00:00Z" in rows[0] and "admin,reports" in rows[0] and "main" in rows[0]
    assert "2026-03-04T05:06Z" in rows[1] and "ci" in rows[1]


# -- secrets: reset with grace, verify --------------------------------------------------


def test_reset_secret_with_a_grace_period(cli_app: Flask) -> None:
    client_id, old = create(cli_app)
    data = ok_json(cli_app, "reset-secret", client_id, "--grace", "24h")
    new = data["client_secret"]
    assert around(data["previous_secret_until"], utcnow() + timedelta(hours=24))
    assert call(cli_app, client_id, new).status_code == 200  # at once
    assert verify(cli_app, client_id, old) == "valid"  # until the grace period ends
    assert verify(cli_app, client_id, new) == "valid"
    shown = ok_json(cli_app, "show", client_id)
    assert shown["previous_secret_until"] == data["previous_secret_until"]
    assert re.search(r"^Old secret:  works until \S+", ok(cli_app, "show", client_id).stdout, re.M)
    [(key, until)] = audit(cli_app, client_id)[-1]["detail"].items()  # MariaDB stores whole seconds
    assert key == "previous_secret_until" and around(until, datetime.fromisoformat(data["previous_secret_until"]), 1)

    # a reset without --grace ends it: only the newest secret works
    newest = ok_json(cli_app, "reset-secret", client_id)["client_secret"]
    assert [verify(cli_app, client_id, s) for s in (old, new, newest)] == ["invalid", "invalid", "valid"]
    assert "Old secret" not in ok(cli_app, "show", client_id).stdout

    # and it ends by itself
    ok(cli_app, "reset-secret", client_id, "--grace", "1s")
    assert verify(cli_app, client_id, newest) == "valid"
    time.sleep(1.2)
    assert verify(cli_app, client_id, newest) == "invalid"
    assert ok_json(cli_app, "show", client_id)["previous_secret_until"] is None


def test_verify_secret(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    result = ok(cli_app, "verify-secret", client_id, input=secret + "\n")
    assert result.stdout == "valid\n" and secret not in result.output
    other = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    wrong = run(cli_app, "verify-secret", client_id, input=other + "\n")
    assert wrong.exit_code == 1 and wrong.stdout == "invalid\n"
    assert verify(cli_app, client_id, "not-even-the-format") == "invalid"

    empty = failed(cli_app, "verify-secret", client_id, input="\n")
    assert "no secret given" in empty.stderr and "valid" not in empty.stdout
    # never from the command line
    for args in (("verify-secret", client_id, secret), ("verify-secret", client_id, "--secret", secret)):
        assert run(cli_app, *args, input=secret + "\n").exit_code == 2
    unknown = failed(cli_app, "verify-secret", "0" * 32, input=secret + "\n")
    assert "no client with ID" in unknown.stderr and unknown.stdout == ""

    # checking writes nothing, not even to the audit log
    before = state(cli_app)
    verify(cli_app, client_id, secret)
    assert state(cli_app) == before

    # the secret is right, yet requests are refused: the answer says so on stderr
    ok(cli_app, "disable", client_id)
    disabled = ok(cli_app, "verify-secret", client_id, input=secret + "\n")
    assert disabled.stdout == "valid\n" and "the client is disabled" in disabled.stderr


def test_verify_secret_of_a_chosen_secret(cli_app: Flask) -> None:
    client_id, _ = create(cli_app, "--no-secret")
    assert verify(cli_app, client_id, "Operator-Chosen-secret-42") == "invalid"  # no secret at all
    ok(cli_app, "set-secret", client_id, input="Operator-Chosen-secret-42\n")
    assert verify(cli_app, client_id, "Operator-Chosen-secret-42") == "valid"  # bcrypt
    assert verify(cli_app, client_id, "Operator-Chosen-secret-43") == "invalid"


def test_reset_client_id(cli_app: Flask) -> None:
    old_id, secret = create(cli_app)
    other, other_secret = add(cli_app, old_id)
    assert call(cli_app, old_id, secret).status_code == 200
    data = ok_json(cli_app, "reset-client-id", old_id)
    new_id = data["client_id"]
    assert new_id != old_id and re.fullmatch(r"[0-9a-f]{32}", new_id)
    assert data["previous_client_id"] == old_id and data["name"] == NAME and "client_secret" not in data
    response = call(cli_app, old_id, secret)
    assert response.status_code == 401
    assert response.get_json()["moreInformation"] == "Client ID not registered"
    assert call(cli_app, new_id, secret).status_code == 200
    assert call(cli_app, other, other_secret).status_code == 200
    entry = audit(cli_app, new_id)[-1]
    assert entry["action"] == "client_id.reset" and entry["client_id"] == old_id
    assert entry["detail"] == {"new_client_id": new_id}
    assert audit(cli_app, old_id) == audit(cli_app, new_id)  # a past ID still finds the client's log

    text = ok(cli_app, "reset-client-id", new_id).stdout
    assert re.fullmatch(rf"New client ID: [0-9a-f]{{32}} \(was {new_id}\); the secret is unchanged\.\n", text)
    failed(cli_app, "show", new_id)


# -- expiry -----------------------------------------------------------------------------


def test_expire(cli_app: Flask) -> None:
    client_id, _ = create(cli_app)
    other, _ = add(cli_app, client_id)
    data = ok_json(cli_app, "expire", client_id, "--ttl", "30d")
    assert around(data["expires_at"], utcnow() + timedelta(days=30))
    assert ok_json(cli_app, "expire", client_id, "--at", "2030-01-31")["expires_at"] == "2030-01-31T00:00:00+00:00"
    text = ok(cli_app, "expire", client_id, "--at", "2030-01-31T12:00:00+01:00").stdout
    assert text == f"Credential {client_id} expires at 2030-01-31T11:00:00+00:00.\n"
    listed = {c["client_id"]: c["expires_at"] for c in ok_json(cli_app, "credentials", "list", client_id)}
    assert listed == {client_id: "2030-01-31T11:00:00+00:00", other: None}  # the credential's own
    assert ok(cli_app, "expire", client_id, "--never").stdout == f"Credential {client_id} never expires.\n"
    assert ok_json(cli_app, "show", client_id)["expires_at"] is None
    entries = [e for e in audit(cli_app, client_id) if e["action"] == "expiry"]
    assert [e["detail"]["expires_at"] for e in entries][1:] == [
        "2030-01-31T00:00:00+00:00",
        "2030-01-31T11:00:00+00:00",
        None,
    ]


def test_create_and_add_with_an_expiry(cli_app: Flask) -> None:
    data = ok_json(cli_app, "create", NAME, "--ttl", "90d")
    assert around(data["expires_at"], utcnow() + timedelta(days=90))
    data = ok_json(cli_app, "create", NAME, "--expires", "2031-06-01T08:00:00Z")
    assert data["expires_at"] == "2031-06-01T08:00:00+00:00"
    added = ok_json(cli_app, "credentials", "add", data["client_id"], "--ttl", "2w")
    assert around(added["expires_at"], utcnow() + timedelta(weeks=2))
    added = ok_json(cli_app, "credentials", "add", data["client_id"], "--expires", "2032-01-01")
    assert added["expires_at"] == "2032-01-01T00:00:00+00:00"
    assert call(cli_app, added["client_id"], added["client_secret"]).status_code == 200


def test_an_expired_credential_is_shown_expired(cli_app: Flask) -> None:
    client_id, secret = create(cli_app)
    ok(cli_app, "expire", client_id, "--ttl", "1s")
    time.sleep(1.2)
    assert ok_json(cli_app, "credentials", "list", client_id)[0]["enabled"] is False
    assert "(expired: its requests get 401)" in ok(cli_app, "show", client_id).stdout
    result = ok(cli_app, "verify-secret", client_id, input=secret + "\n")
    assert result.stdout == "valid\n" and "the credential expired at" in result.stderr


# -- roles ------------------------------------------------------------------------------


def test_roles(cli_app: Flask) -> None:
    client_id, _ = create(cli_app, "--role", "reports:read", "--role", "admin")
    assert ok(cli_app, "roles", client_id).stdout == "admin\nreports:read\n"
    data = ok_json(cli_app, "roles", client_id, "--add", "billing", "--add", "audit", "--remove", "admin")
    assert data["roles"] == ["audit", "billing", "reports:read"] and data["client_id"] == client_id
    assert ok_json(cli_app, "roles", client_id)["roles"] == ["audit", "billing", "reports:read"]
    entry = audit(cli_app, client_id)[-1]
    assert entry["action"] == "roles" and entry["actor"] == OPERATOR
    assert entry["detail"] == {
        "added": ["audit", "billing"],
        "removed": ["admin"],
        "roles": ["audit", "billing", "reports:read"],
    }
    empty = ok(cli_app, "roles", client_id, "--remove", "audit", "--remove", "billing", "--remove", "reports:read")
    assert empty.stdout == "" and "has no roles" in empty.stderr


# -- bad input changes nothing ----------------------------------------------------------

BAD = [
    (("create", NAME, "--ttl", "0d"), "longer than zero"),
    (("create", NAME, "--ttl", "1y"), "not a duration"),
    (("create", NAME, "--expires", "2020-01-01"), "in the past"),
    (("create", NAME, "--expires", "2030-01-01", "--ttl", "1d"), "not both"),
    (("create", NAME, "--expires", "31/01/2030"), "not a date"),
    (("create", NAME, "--role", "two words"), "a role must be"),
    (("create", NAME, "--label", "x" * 201), "a credential label must be"),
    (("credentials", "add", "{id}", "--ttl", "-1d"), "not a duration"),
    (("credentials", "add", "{id}", "--expires", "2020-01-01T00:00:00Z"), "in the past"),
    (("credentials", "add", "{id}", "--label", "tab\there"), "a credential label must be"),
    (("reset-secret", "{id}", "--grace", "0s"), "longer than zero"),
    (("reset-secret", "{id}", "--grace", "24"), "not a duration"),
    (("expire", "{id}"), "exactly one of"),
    (("expire", "{id}", "--never", "--ttl", "1d"), "got --ttl, --never"),
    (("expire", "{id}", "--at", "2020-01-01"), "in the past"),
    (("expire", "{id}", "--at", "2030-02-30"), "not a valid date"),
    (("expire", "{id}", "--ttl", "36501d"), "at most 36500d"),
    (("roles", "{id}", "--add", "no spaces"), "a role must be"),
    (("roles", "{id}", "--add", "x", "--remove", "x"), "both added and removed"),
    (("audit", "--since", "yesterday"), "not a date"),
    (("audit", "--prune-before", "2999-01-01"), "in the future"),
    (("audit", "{id}", "--prune-before", "2020-01-01"), "give it alone"),
    (("credentials", "add", "0" * 32), "no client with ID"),
    (("credentials", "list", "0" * 32), "no client with ID"),
    (("credentials", "revoke", "0" * 32, "--yes"), "no client with ID"),
    (("reset-client-id", "0" * 32), "no client with ID"),
    (("expire", "0" * 32, "--never"), "no client with ID"),
    (("roles", "0" * 32), "no client with ID"),
    (("audit", "0" * 32), "no client with ID"),
    (("leaked", "/no/such/file.txt"), "does not exist"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a).replace("{id}", "ID")[:60] for a, _ in BAD])
def test_bad_input_is_refused_and_changes_nothing(cli_app: Flask, args: tuple[str, ...], message: str) -> None:
    client_id, secret = create(cli_app)
    before = state(cli_app)
    result = failed(cli_app, *(a.replace("{id}", client_id) for a in args), input="y\n")
    assert message in result.stderr, result.stderr
    assert result.stdout == ""
    assert state(cli_app) == before
    assert call(cli_app, client_id, secret).status_code == 200


# -- the audit log ----------------------------------------------------------------------


def test_every_lifecycle_change_is_audited_with_its_actor(cli_app: Flask, tmp_path: Path) -> None:
    client_id, secret = create(cli_app, "--role", "admin")
    second, _ = add(cli_app, client_id, "--label", "ci")
    ok(cli_app, "credentials", "revoke", second, "--yes")
    ok(cli_app, "reset-secret", client_id)
    ok(cli_app, "set-secret", client_id, input="Operator-Chosen-secret-42\n")
    new_id = ok_json(cli_app, "reset-client-id", client_id)["client_id"]
    new_secret = ok_json(cli_app, "reset-secret", new_id)["client_secret"]
    ok(cli_app, "disable", new_id)
    ok(cli_app, "enable", new_id)
    ok(cli_app, "expire", new_id, "--ttl", "30d")
    ok(cli_app, "roles", new_id, "--add", "reports")
    (tmp_path / "paste.txt").write_text(f"token: {new_secret}\n")
    ok(cli_app, "leaked", str(tmp_path / "paste.txt"), "--disable")
    ok(cli_app, "delete", new_id, "--yes")

    entries = audit(cli_app)
    assert [e["action"] for e in entries] == [
        "create",
        "credential.add",
        "credential.revoke",
        "secret.reset",
        "secret.set",
        "client_id.reset",
        "secret.reset",
        "disable",
        "enable",
        "expiry",
        "roles",
        "leaked",
        "delete",
    ]
    for entry in entries:
        assert set(entry) == AUDIT_FIELDS
        assert entry["actor"] == OPERATOR and entry["name"] == NAME
    assert [e["client_id"] for e in entries][:3] == [client_id, second, second]
    dumped = json.dumps(entries)
    assert secret not in dumped and new_secret not in dumped and "sha256$" not in dumped and "$2b$" not in dumped
    # a deleted client's log stays, under any ID it had
    assert audit(cli_app, client_id) == entries == audit(cli_app, second)

    text = ok(cli_app, "audit").stdout
    assert text.splitlines()[0].split() == ["TIME", "ACTION", "CLIENT", "ID", "ACTOR", "NAME", "DETAIL"]
    assert len(text.splitlines()) == len(entries) + 1 and OPERATOR in text and 'label="ci"' in text


def test_audit_of_one_client_since_and_prune(cli_app: Flask) -> None:
    first, _ = create(cli_app)
    ok(cli_app, "disable", first)
    time.sleep(1.1)  # MariaDB keeps whole seconds
    cut = utcnow()
    time.sleep(1.1)
    second, _ = create(cli_app)
    ok(cli_app, "disable", second)

    assert [e["action"] for e in audit(cli_app, first)] == ["create", "disable"]
    assert [e["client_id"] for e in audit(cli_app, "--since", cut.isoformat())] == [second, second]
    assert audit(cli_app, first, "--since", cut.isoformat()) == []
    assert audit(cli_app, "--since", "2999-01-01") == []
    assert "No audit entries." in ok(cli_app, "audit", "--since", "2999-01-01").stderr

    pruned = ok_json(cli_app, "audit", "--prune-before", cut.isoformat())
    assert pruned == {"pruned": 2, "before": cut.isoformat()}
    assert [e["client_id"] for e in audit(cli_app)] == [second, second]
    assert "Deleted 0 audit entries" in ok(cli_app, "audit", "--prune-before", cut.isoformat()).stdout


def test_the_actor_without_a_user_name_is_the_uid(cli_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> Any:
        raise KeyError(uid)  # a container's arbitrary uid without a passwd entry

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    client_id, _ = create(cli_app)
    assert audit(cli_app, client_id)[0]["actor"] == f"uid:{os.getuid()}"


# -- leaked secrets ---------------------------------------------------------------------


def test_leaked(cli_app: Flask, tmp_path: Path) -> None:
    leaky, leaky_secret = create(cli_app)
    safe, safe_secret = create(cli_app)
    stranger = generate_secret()  # well-formed, but nobody's
    mistyped = leaky_secret[:-1] + ("A" if leaky_secret[-1] != "A" else "B")  # the checksum fails
    report = tmp_path / "paste.txt"
    report.write_text(f"curl -H 'X-IBM-Client-Secret: {leaky_secret}'\n{stranger} {mistyped} {leaky_secret}\n")

    found = ok_json(cli_app, "leaked", str(report))
    assert found == [
        {
            "masked_secret": f"fcsk_...{leaky_secret[-4:]}",
            "client_id": leaky,
            "name": NAME,
            "works": True,
            "enabled": True,
            "disabled_now": False,
        },
        {
            "masked_secret": f"fcsk_...{stranger[-4:]}",
            "client_id": None,
            "name": None,
            "works": False,
            "enabled": None,
            "disabled_now": False,
        },
    ]
    text = ok(cli_app, "leaked", str(report)).stdout
    assert f"client {leaky} ({NAME}): works" in text and "belongs to no client" in text
    for out in (text, json.dumps(found)):
        assert leaky_secret not in out and stranger not in out and mistyped not in out
    # without --disable the leak is recorded (once a run, for the client it belongs to) and nothing else
    leaks = [(e["action"], e["client_id"], e["detail"]) for e in audit(cli_app) if e["action"] == "leaked"]
    assert leaks == [("leaked", leaky, {"disabled": False})] * 2
    assert call(cli_app, leaky, leaky_secret).status_code == 200

    result = ok(cli_app, "leaked", "--disable", input=report.read_text())  # standard input
    assert f"client {leaky} ({NAME}): disabled now" in result.stdout and leaky_secret not in result.output
    response = call(cli_app, leaky, leaky_secret)
    assert response.status_code == 403
    assert response.get_json()["moreInformation"] == "Client disabled"
    assert call(cli_app, safe, safe_secret).status_code == 200
    entry = audit(cli_app, leaky)[-1]
    assert (entry["action"], entry["actor"], entry["detail"]) == ("leaked", OPERATOR, {"disabled": True})

    assert ok(cli_app, "leaked", input="nothing here\n").stdout == "No secrets of this app's format (fcsk_...) found.\n"


def test_leaked_old_secret_past_its_grace_period(cli_app: Flask) -> None:
    client_id, old = create(cli_app)
    ok(cli_app, "reset-secret", client_id, "--grace", "1s")
    time.sleep(1.2)
    [found] = ok_json(cli_app, "leaked", "--disable", input=old)
    assert found["client_id"] == client_id and found["works"] is False and found["disabled_now"] is False
    assert ok_json(cli_app, "show", client_id)["enabled"] is True  # it no longer works: nothing to stop
    assert audit(cli_app, client_id)[-1]["detail"] == {"disabled": False}
    assert "no longer works" in ok(cli_app, "leaked", input=old).stdout


def test_leaked_uses_the_configured_prefix(make_app: AppFactory) -> None:
    app = make_app(CLIENTAUTH_SECRET_PREFIX="acme_", CLIENTAUTH_REVOCATION_INTERVAL=0)
    client_id, secret = create(app)
    assert secret.startswith("acme_")
    other = generate_secret()  # the default prefix: not this app's format
    [found] = ok_json(app, "leaked", input=f"{other}\n{secret}\n")
    assert found["client_id"] == client_id and found["masked_secret"] == f"acme_...{secret[-4:]}"


def test_every_new_data_command_prints_json(cli_app: Flask, tmp_path: Path) -> None:
    client_id, secret = create(cli_app)
    second, _ = add(cli_app, client_id)
    assert isinstance(ok_json(cli_app, "credentials", "list", client_id), list)
    assert isinstance(ok_json(cli_app, "audit"), list)
    assert isinstance(ok_json(cli_app, "leaked", input=secret), list)
    for args in (("expire", second, "--never"), ("roles", second), ("reset-secret", second, "--grace", "1h")):
        assert ok_json(cli_app, *args)["client_id"] == second
    assert ok_json(cli_app, "credentials", "revoke", second, "--yes")["client_id"] == second
