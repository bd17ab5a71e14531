"""The authenticated client in the request context: ``current_client``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from flask import g, has_request_context
from werkzeug.local import LocalProxy

_G_KEY = "_clientauth"


@dataclass(frozen=True)
class AuthenticatedClient:
    """The client a request authenticated as.

    ``headers`` holds the credentials as message headers to forward to a backend, as API
    Connect's set-variable policy does; ``context`` API Connect's ``client.app.*`` names.
    The secret is never part of ``repr`` or ``str``.
    """

    client_id: str
    name: str
    schemes: tuple[str, ...]
    secret_verified: bool
    _headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        """Credential headers to forward, e.g. ``{"X-IBM-Client-Id": ..., "X-IBM-Client-Secret": ...}``."""
        return dict(self._headers)

    @property
    def context(self) -> dict[str, str]:
        return {"client.app.id": self.client_id, "client.app.name": self.name}

    def __str__(self) -> str:
        return self.client_id


@dataclass(frozen=True)
class AuthState:
    """Everything the check left in the request context."""

    client: AuthenticatedClient | None
    schemes: tuple[str, ...] = ()
    handler_results: Mapping[str, Any] = field(default_factory=dict, repr=False)


def get_auth_state() -> AuthState | None:
    """The check's result for this request, or ``None`` (outside a request, public route)."""
    if not has_request_context():
        return None
    return cast("AuthState | None", g.get(_G_KEY))


def get_current_client() -> AuthenticatedClient | None:
    """The authenticated client of this request, or ``None``."""
    state = get_auth_state()
    return state.client if state is not None else None


def set_auth_state(state: AuthState) -> None:
    setattr(g, _G_KEY, state)


#: The authenticated client of the current request; falsy (``None``) when there is none.
current_client: AuthenticatedClient | None = cast(
    "AuthenticatedClient | None", LocalProxy(get_current_client)
)
