"""The authenticated client in the request context: ``current_client``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from flask import Request, has_request_context, request
from werkzeug.local import LocalProxy

if TYPE_CHECKING:
    from .store import ClientRecord

#: The attribute of the request object that holds the check's result. Not ``g``: ``g`` belongs
#: to the app context, which Flask reuses for every request of a thread when the app left one
#: pushed (``app.app_context().push()`` at import, common in app factories), so a client would
#: outlive its request. A request object is new for every request: nothing to reset.
STATE_ATTR = "_clientauth_state"


class AuthenticatedClient:
    """The client a request authenticated as, seen through the credential it used.

    ``client_id`` and ``label`` are the credential's; ``name`` and ``roles`` the client's (the
    application's, in API Connect's words). ``headers`` holds the credentials as message headers
    to forward to a backend, as API Connect's set-variable policy does; ``context`` API Connect's
    ``client.app.*`` names. The secret is never part of ``repr`` or ``str``. Built on every
    request, so kept lean: the names are read from the client's record when asked for.
    """

    __slots__ = ("client_id", "_record", "schemes", "secret_verified", "_headers")

    def __init__(
        self,
        client_id: str,
        record: ClientRecord,
        schemes: tuple[str, ...],
        secret_verified: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.client_id = client_id
        self._record = record
        self.schemes = schemes
        self.secret_verified = secret_verified
        self._headers = headers or {}

    @property
    def name(self) -> str:
        """The client's registered name (API Connect's ``client.app.name``)."""
        return self._record.name

    @property
    def roles(self) -> tuple[str, ...]:
        """The client's roles, sorted."""
        return self._record.roles

    @property
    def plan(self) -> str | None:
        """The client's plan by name (``None``: the default plan applies, if there is one)."""
        return self._record.plan

    @property
    def label(self) -> str:
        """The label of the credential the request used (``""`` when it has none)."""
        return self._record.label

    @property
    def headers(self) -> dict[str, str]:
        """Credential headers to forward, e.g. ``{"X-IBM-Client-Id": ..., "X-IBM-Client-Secret": ...}``."""
        return dict(self._headers)

    @property
    def context(self) -> dict[str, str]:
        """API Connect's context variables: ``client.app.id`` and ``client.app.name``."""
        return {"client.app.id": self.client_id, "client.app.name": self.name}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuthenticatedClient):
            return NotImplemented
        return (self.client_id, self.name, self.schemes) == (other.client_id, other.name, other.schemes)

    def __hash__(self) -> int:
        return hash((self.client_id, self.name, self.schemes))

    def __repr__(self) -> str:
        return (
            f"AuthenticatedClient(client_id={self.client_id!r}, name={self.name!r}, roles={self.roles!r}, "
            f"label={self.label!r}, schemes={self.schemes!r}, secret_verified={self.secret_verified!r})"
        )

    def __str__(self) -> str:
        return self.client_id


class AuthState:
    """Everything the check left in the request context."""

    __slots__ = ("client", "schemes", "handler_results")

    def __init__(
        self,
        client: AuthenticatedClient | None,
        schemes: tuple[str, ...] = (),
        handler_results: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.schemes = schemes
        self.handler_results = handler_results or {}

    def __repr__(self) -> str:
        return f"AuthState(client={self.client!r}, schemes={self.schemes!r})"


def get_auth_state() -> AuthState | None:
    """The check's result for this request, or ``None`` (outside a request, public route, refusal)."""
    if not has_request_context():
        return None
    return cast("AuthState | None", getattr(request, STATE_ATTR, None))


def get_current_client() -> AuthenticatedClient | None:
    """The authenticated client of this request, or ``None``."""
    state = get_auth_state()
    return state.client if state is not None else None


def set_auth_state(state: AuthState, req: Request | None = None) -> None:
    """Put the check's result on this request (``req``, default: the current one)."""
    setattr(req if req is not None else request, STATE_ATTR, state)


#: The authenticated client of the current request; falsy (``None``) when there is none.
current_client: AuthenticatedClient | None = cast("AuthenticatedClient | None", LocalProxy(get_current_client))


def client_key() -> str:
    """A rate-limit key: ``client:<client ID>`` for an authenticated client, else ``address:<remote address>``.

    Made for Flask-Limiter's ``key_func`` (``Limiter(client_key, app=app)``): each client
    application gets its own quota, as with API Connect's plans, and requests without a client
    (public routes) count against their address. Flask-ClientAuth's check runs before every
    other ``before_request`` function of the app, so the client is known when the limiter asks,
    whichever extension was set up first.
    """
    client = get_current_client()
    if client is not None:
        return f"client:{client.client_id}"
    return f"address:{request.remote_addr or 'unknown'}"
