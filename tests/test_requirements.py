"""Requirement resolution without an app: a document's ``security`` turned into ``Policy`` objects.

What each policy asks for (``describe``), which keys it reads, where the view finds them, and
whether the warm path may decide it (``fast``). Requests through Flask are in test_enforcement.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from flask_clientauth import SpecError, load_spec
from flask_clientauth.requirements import Policy, Requirement, Scheme

from conftest import CID, CSEC, HID, HSEC, QID, QSEC

OAUTH = {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://t.example/token", "scopes": {}}}}


def policy(security: Any) -> Policy:
    """The policy of ``GET /x`` under ``security`` (with the schemes hid/hsec, qid/qsec, cid/csec, oauth)."""
    schemes = {"hid": HID, "hsec": HSEC, "qid": QID, "qsec": QSEC, "cid": CID, "csec": CSEC, "oauth": OAUTH}
    spec = load_spec(
        {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "components": {"securitySchemes": schemes},
            "paths": {"/x": {"get": {"security": security, "responses": {"200": {"description": "ok"}}}}},
        }
    )
    return spec.operations[0].policy


@pytest.mark.parametrize(
    ("security", "described"),
    [
        ([{"hid": [], "hsec": []}], "id+secret"),
        ([{"hid": []}], "id"),
        ([], "public"),
        ([{}], "public"),
        ([{}, {"hid": []}], "optional(id)"),
        ([{"hid": []}, {"qid": [], "qsec": []}], "alternatives: id (header) | id+secret (query)"),
        ([{"hid": [], "oauth": []}], "id+oauth(oauth2, handled-by-app)"),
        ([{"hid": []}, {"hid": []}], "id"),  # a repeated alternative counts once
        ([{"hid": [], "hsec": []}, {"hsec": [], "hid": []}], "id+secret"),  # {a, b} is {b, a}
    ],
)
def test_what_a_policy_asks_for(security: Any, described: str) -> None:
    assert policy(security).describe() == described


def test_a_requirement_knows_its_keys_and_where_the_view_finds_them() -> None:
    (header,) = policy([{"hid": [], "hsec": []}]).alternatives
    assert (header.client_id.name, header.client_secret.name) == ("hid", "hsec")  # type: ignore[union-attr]
    assert header.forward_names == ("X-IBM-Client-Id", "X-IBM-Client-Secret")
    assert header.names == header.key_names == ("hid", "hsec") and header.others == ()
    (cookie,) = policy([{"cid": [], "csec": []}]).alternatives
    assert cookie.forward_names == ("X-IBM-Client-Id", "X-IBM-Client-Secret")  # API Connect's names
    (mixed,) = policy([{"hid": [], "oauth": []}]).alternatives
    assert mixed.client_secret is None and mixed.key_names == ("hid",) and mixed.names == ("hid", "oauth")
    assert [s.name for s in mixed.others] == ["oauth"]
    renamed = Requirement((Scheme("k", "apiKey", "X-App-Key", "header", "client_id"),))
    assert renamed.forward_names == ("X-App-Key", "X-IBM-Client-Secret")


@pytest.mark.parametrize(
    ("security", "fast"),
    [
        ([{"hid": [], "hsec": []}], ("HTTP_X_IBM_CLIENT_ID", "HTTP_X_IBM_CLIENT_SECRET")),
        ([{"hid": []}], ("HTTP_X_IBM_CLIENT_ID", None)),
        ([{"qid": [], "qsec": []}], None),  # not in headers
        ([{"cid": []}], None),
        ([{"hid": []}, {"qid": []}], None),  # alternatives
        ([{}, {"hid": []}], None),  # optional
        ([{"hid": [], "oauth": []}], None),  # a scheme handler must run
        ([], None),  # public: nothing to check
    ],
)
def test_the_warm_path_takes_one_requirement_in_headers_only(security: Any, fast: Any) -> None:
    found = policy(security).fast
    assert (found if found is None else (found.id_key, found.secret_key)) == fast


def test_public_denied_and_the_keys_a_policy_reads() -> None:
    assert Policy().public and not Policy().reads_ids
    assert not Policy(deny=True).public and Policy(deny=True).fast is None
    assert Policy(deny=True).describe() == "denied (not described, no global requirement)"
    both = policy([{"hid": [], "hsec": []}, {"qid": []}])
    assert both.reads_ids and not both.public
    assert [s.name for s in both.api_keys] == ["hid", "hsec", "qid"]
    assert not policy([{"oauth": []}]).reads_ids


def test_equal_policies_compare_equal_whatever_was_computed_from_them() -> None:
    assert policy([{"hid": []}]) == policy([{"hid": []}])
    assert policy([{"hid": []}]) != policy([{"hid": [], "hsec": []}])


@pytest.mark.parametrize(
    ("security", "error"),
    [
        ([{"nope": []}], "security scheme 'nope' is not defined"),
        ([{"hsec": []}], "is applied without a client ID key"),
        ([{"hid": [], "qsec": []}], "must be sent in the same location"),
        ([{"hid": [], "qid": []}], "at most one client ID key per requirement"),
        ({"hid": []}, "'security' must be a list"),
    ],
)
def test_requirements_that_cannot_be_enforced_are_spec_errors(security: Any, error: str) -> None:
    with pytest.raises(SpecError, match=error):
        policy(security)
