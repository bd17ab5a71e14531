"""Helpers for the tests of apps protected by Flask-ClientAuth.

Instead of a switch that turns authentication off in tests, register a client and let the
test client send its credentials where the app's OpenAPI document wants them::

    from flask_clientauth.testing import ClientAuthTestClient

    app.test_client_class = ClientAuthTestClient
    with app.app_context():
        record, secret = auth.store(app).create("Tests")
    client = app.test_client(client_id=record.client_id, client_secret=secret)
    # or: app.test_client(auth_client=(record, secret))
    client.get("/api/branches")  # the headers, query parameters or cookies the spec names

With pytest, the ``clientauth_client`` fixture (see :mod:`flask_clientauth.pytest_plugin`)
does the registration, and removes the client after the test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException

from .credentials import where
from .requirements import Policy, Requirement, Scheme
from .spec import SpecError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .extension import ClientAuthState

__all__ = ["ClientAuthTestClient"]


class ClientAuthTestClient(FlaskClient):
    """A Flask test client that authenticates every request as one client.

    Use it as the app's ``test_client_class`` and pass the client to ``app.test_client()``:
    ``client_id=`` (and ``client_secret=`` where the spec asks for one), or
    ``auth_client=(record_or_id, secret)`` as :meth:`ClientStore.create
    <flask_clientauth.ClientStore.create>` returns it.

    For each request (redirects followed included) it finds the route and method the app will
    match, takes the requirement Flask-ClientAuth enforces there, and sends the client ID and,
    when that requirement includes one, the secret in the header, query parameter or cookie the
    requirement names (a client without a secret sends its ID, and the app answers "Client
    secret missing" where a secret is wanted). Public routes get no credentials; a URL that
    matches no route gets the document's global requirement. A credential the request already
    carries in that place is left as it is, so a test can still send a wrong one. Without a
    client it is a plain :class:`~flask.testing.FlaskClient`.
    """

    def __init__(
        self,
        *args: Any,
        client_id: str | None = None,
        client_secret: str | None = None,
        auth_client: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if auth_client is not None:
            if client_id is not None or client_secret is not None:
                raise TypeError("pass auth_client or client_id / client_secret, not both")
            client_id, client_secret = _unpack(auth_client)
        if client_secret is not None and client_id is None:
            raise TypeError("client_secret needs a client_id")
        if client_id is not None and "clientauth" not in self.application.extensions:
            raise RuntimeError("Flask-ClientAuth is not initialised on this app (ClientAuth(app)).")
        #: The client every request authenticates as (``None``: none, a plain test client).
        self.client_id = client_id
        self.client_secret = client_secret

    # Werkzeug calls this for every request it sends, redirects included, with the final
    # environ, just after putting the cookie jar into it: the one place where a cookie
    # credential can be added without being overwritten by the jar.
    def _add_cookies_to_wsgi(self, environ: WSGIEnvironment) -> None:
        super()._add_cookies_to_wsgi(environ)
        if self.client_id is not None:
            self._add_credentials(environ)

    def requirement_for(self, environ: WSGIEnvironment) -> Requirement | None:
        """The requirement whose credentials this client sends with a request (``None``: none)."""
        policy = self._policy(environ)
        if policy is None or policy.public or policy.deny:
            return None
        with_id = [r for r in policy.alternatives if r.client_id is not None]
        complete = [r for r in with_id if r.client_secret is None or self.client_secret is not None]
        # one the key alone satisfies first; then one that also needs the app's own schemes
        # (oauth2, ...) whose credentials the test adds itself; else, for a client without a
        # secret, its ID where a secret is also wanted (the app answers "Client secret missing")
        for candidates in ([r for r in complete if not r.others], complete, with_id):
            if candidates:
                return candidates[0]
        return None

    def _policy(self, environ: WSGIEnvironment) -> Policy | None:
        app = self.application
        state: ClientAuthState = app.extensions["clientauth"]
        try:
            request = app.request_class(environ, populate_request=False)
            adapter = app.create_url_adapter(request)
            if adapter is None:
                raise LookupError
            rule, args = adapter.match(return_rule=True)
        except (HTTPException, LookupError):  # RequestRedirect and an untrusted host are HTTPExceptions
            return state.spec().global_policy  # 404, 405, redirect: what the gateway would ask for
        try:
            return state.table().lookup(rule, environ.get("REQUEST_METHOD", "GET"), request.path, args)
        except SpecError:
            return None  # the app answers 503 whatever is sent

    def _add_credentials(self, environ: WSGIEnvironment) -> None:
        requirement = self.requirement_for(environ)
        if requirement is None:
            return
        for scheme, value in ((requirement.client_id, self.client_id), (requirement.client_secret, self.client_secret)):
            if scheme is not None and value is not None:
                _put(environ, scheme, value)


def _unpack(auth_client: Any) -> tuple[str, str | None]:
    """``(record or ID, secret)``, or a record / ID alone (an ID-only client)."""
    secret: str | None = None
    if isinstance(auth_client, Sequence) and not isinstance(auth_client, str):
        if len(auth_client) != 2:
            raise TypeError("auth_client must be (record or client ID, secret)")
        auth_client, secret = auth_client
    client_id = auth_client if isinstance(auth_client, str) else getattr(auth_client, "client_id", None)
    if not isinstance(client_id, str):
        raise TypeError("auth_client must be a ClientRecord or a client ID, optionally with its secret")
    return client_id, secret


def _put(environ: WSGIEnvironment, scheme: Scheme, value: str) -> None:
    """Add one credential where ``scheme`` says, unless the request already has it there."""
    where(scheme).put(environ, scheme.param or "", value)
