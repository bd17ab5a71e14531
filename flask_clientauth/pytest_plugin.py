"""pytest plugin of Flask-ClientAuth (registered through the ``pytest11`` entry point).

It provides the ``clientauth_client`` fixture: a factory that registers a client in the app's
client store and returns a :class:`~flask_clientauth.testing.ClientAuthTestClient` sending its
credentials where the spec wants them. The clients it created are deleted after the test::

    def test_branches(clientauth_client):
        client = clientauth_client("Branch mobile app")  # uses your ``app`` fixture
        assert client.get("/api/branches").status_code == 200

Pass ``app=`` to use another app than the ``app`` fixture, ``with_secret=False`` for an
ID-only client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flask import Flask

    from .testing import ClientAuthTestClient


@pytest.fixture
def clientauth_client(request: pytest.FixtureRequest) -> Iterator[Callable[..., ClientAuthTestClient]]:
    """Factory ``clientauth_client(name="pytest client", *, app=None, with_secret=True, description="")``."""
    from .store import ClientNotFound
    from .testing import ClientAuthTestClient

    created: list[tuple[Flask, str]] = []

    def make(
        name: str = "pytest client",
        *,
        app: Flask | None = None,
        with_secret: bool = True,
        description: str = "",
    ) -> ClientAuthTestClient:
        target: Any = app if app is not None else request.getfixturevalue("app")
        state = target.extensions.get("clientauth")
        if state is None:
            raise RuntimeError("Flask-ClientAuth is not initialised on this app (ClientAuth(app)).")
        with target.app_context():  # a Flask-SQLAlchemy store needs one
            record, secret = state.store.create(name, description=description, with_secret=with_secret)
        created.append((target, record.client_id))
        return ClientAuthTestClient(target, target.response_class, use_cookies=True, auth_client=(record, secret))

    yield make
    for target, client_id in reversed(created):
        with target.app_context():
            try:
                target.extensions["clientauth"].store.delete(client_id)
            except ClientNotFound:  # the test deleted it
                pass
