"""The per-request check: a route's policy against the request's credentials.

Cost on the hot path (known client, secret verified before): credential extraction, one
cache probe and one keyed digest. A request never makes more than one store lookup per
client ID presented and one hash check per secret presented (bcrypt only for chosen secrets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Request

from . import errors
from .cache import CredentialCache, Entry
from .context import AuthenticatedClient, AuthState
from .credentials import DocumentKeys, RequestKeys
from .errors import AuthFailure
from .handlers import verdicts
from .keys import DEFAULT_SECRET_PREFIX, PepperMissing, plausible_secret
from .models import CLIENT_ID_MAX
from .requirements import FastPath, Policy, Requirement, Scheme
from .revocation import Revocation
from .secretcheck import SecretCheck
from .store import ClientStore, StoreError
from .throttle import NoThrottle, ThrottleUnavailable
from .usage import UsageRecorder

logger = logging.getLogger("flask_clientauth")


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value


def escape(value: str, limit: int = 80) -> str:
    """A value safe to put in a log line: quoted, escaped, cut to ``limit`` characters."""
    return repr(value[:limit] + ("..." if len(value) > limit else ""))


class Authenticator:
    """Decides requests for one app: credentials, cache, store, change-log polling."""

    def __init__(
        self,
        store: ClientStore,
        cache: CredentialCache,
        *,
        handlers: Mapping[str, Callable[[Request], Any]],
        revocation_interval: float = 1.0,
        throttle: NoThrottle | None = None,
        clock: Callable[[], float] = time.monotonic,
        secret_prefix: str = DEFAULT_SECRET_PREFIX,
        pepper: bytes | None = None,
        last_used_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.throttle = throttle or NoThrottle()
        #: The throttle's known-address memory, for the fast path; ``None`` when it remembers nothing.
        self._known = self.throttle.known if self.throttle.remembers else None
        self.cache = cache
        self.handlers = handlers
        self.clock = clock
        self.revocation = Revocation(store, cache, interval=revocation_interval, clock=clock)
        self.secrets = SecretCheck(cache, prefix=secret_prefix, pepper=pepper, clock=clock)
        self.flights = self.secrets.flights
        #: ``last_used_at``: noted here, written by a thread (CLIENTAUTH_LAST_USED_INTERVAL).
        self.usage = UsageRecorder(store, cache, interval=last_used_interval, clock=clock)
        #: Told where each client lookup of the general check was answered: ``"known"`` or
        #: ``"unknown"`` (the cache), ``"store"`` (metrics); ``None``: nobody asks.
        self.on_lookup: Callable[[str], None] | None = None
        self.use_document(DocumentKeys())

    def use_document(self, document: DocumentKeys) -> None:
        """The API keys of the loaded document: every client ID location a request may carry."""
        self.document = document
        self._guards = document.fast_guards

    # -- the check --------------------------------------------------------------------
    def fast(self, fast: FastPath, environ: dict[str, Any]) -> AuthState | None:
        """The warm path for a :class:`FastPath` policy: a known, enabled client whose secret
        was verified before, in the headers, while no change-log poll is due. ``None`` means
        "not decided here": the general check runs and gives the same answer, or the error.
        """
        client_id = environ.get(fast.id_key)
        if not client_id or "," in client_id:
            return None
        guards = self._guards
        if guards:  # the document has other client ID locations: nothing may be sent there
            guard = guards.get(fast.id_key)  # (inline: a method call here costs ~900 instructions)
            if guard is None:
                return None
            for key in guard.header_keys:
                if key in environ:
                    return None
            for key, needles in guard.raw:
                value = environ.get(key)
                if value:
                    for needle in needles:
                        if needle in value:
                            return None
        secret_key = fast.secret_key
        if secret_key is None:
            entry = self.cache.verified(client_id, None)
            if entry is None:
                return None
            headers = {fast.forward_names[0]: client_id}
            return AuthState(AuthenticatedClient(client_id, entry.record, fast.key_names, False, headers), fast.names)
        secret = environ.get(secret_key)
        if not secret or "," in secret:
            return None
        entry = self.cache.verified(client_id, secret)
        if entry is None:
            return None
        known = self._known
        if known is not None:  # self.throttle.note(), inline (a method call costs more than the check)
            address = environ.get("REMOTE_ADDR")
            if (client_id, address) not in known:
                self.throttle.remember(client_id, address)
        id_header, secret_header = fast.forward_names
        headers = {id_header: client_id, secret_header: secret}
        return AuthState(AuthenticatedClient(client_id, entry.record, fast.key_names, True, headers), fast.names)

    def decide(self, policy: Policy, request: Request) -> AuthState:
        """The request's auth state under ``policy``; raises :class:`AuthFailure` when refused."""
        if policy.deny:
            raise AuthFailure(errors.SCHEME_UNSUPPORTED if policy.dropped else errors.UNDOCUMENTED)
        sent = RequestKeys(request)
        sent.one_client(self.document.ids or tuple(r.client_id for r in policy.alternatives if r.client_id is not None))
        try:
            if policy.reads_ids:  # routes of the app's own schemes alone keep working without the store
                self.revocation.refresh()
            state = self._first_passing(policy, sent)
        except (StoreError, ThrottleUnavailable) as exc:
            logger.error("clientauth: %s; answering 503", exc)
            raise AuthFailure(errors.STORE_UNAVAILABLE) from None
        except PepperMissing as exc:  # its message names the setting, never the hash
            logger.error("clientauth: %s (give it the value the secret was made with); answering 503", exc)
            raise AuthFailure(errors.CONFIG_ERROR) from None
        if state.client is not None:
            self.usage.note(state.client.client_id)
        return state

    def _first_passing(self, policy: Policy, sent: RequestKeys) -> AuthState:
        alternatives = policy.alternatives
        memo: dict[Any, Any] = {"address": sent.request.remote_addr}
        best: AuthFailure | None = None
        for requirement in alternatives:
            try:
                return self._attempt(requirement, sent, memo)
            except AuthFailure as failure:
                if failure.reason is errors.THROTTLED:  # refused whatever the other alternatives hold
                    raise
                if best is None or failure.reason.rank > best.reason.rank:
                    best = failure
        # credentials sent, even in the wrong place, must be valid
        if policy.optional and not sent.any_sent(s for r in alternatives for s in r.schemes if s.is_api_key):
            return AuthState(None)
        assert best is not None
        raise best

    def _attempt(self, requirement: Requirement, sent: RequestKeys, memo: dict[Any, Any]) -> AuthState:
        """The state under one alternative; raises :class:`AuthFailure` when it refuses."""
        id_scheme = requirement.client_id
        client = None if id_scheme is None else self._client(requirement, id_scheme, sent, memo)
        if not requirement.others:
            return AuthState(client, requirement.names)
        return AuthState(client, requirement.names, verdicts(self.handlers, requirement.others, sent.request))

    def _client(
        self, requirement: Requirement, id_scheme: Scheme, sent: RequestKeys, memo: dict[Any, Any]
    ) -> AuthenticatedClient:
        """The API key part of a requirement: the client ID, and the secret where required."""
        client_id = sent.read(id_scheme, "Client ID", errors.CLIENT_ID_MISSING)
        secret_scheme = requirement.client_secret
        secret: str | None = None
        if secret_scheme is not None:
            secret = sent.read(secret_scheme, "Client secret", errors.CLIENT_SECRET_MISSING)
            if self.secrets.malformed(secret):  # a typo or a guess: no lookup, no hash
                raise AuthFailure(errors.SECRET_INVALID)
        entry = self._lookup(client_id, memo)
        if entry is None:
            raise AuthFailure(errors.NOT_REGISTERED)
        id_header, secret_header = requirement.forward_names
        if secret is None:
            headers = {id_header: client_id}
        else:
            if not self._verify(client_id, entry, secret, memo):
                raise AuthFailure(errors.SECRET_INVALID)
            headers = {id_header: client_id, secret_header: secret}
        if not entry.record.enabled:
            raise AuthFailure(errors.DISABLED)
        if entry.record.credential.expired(self.cache.wall()):
            raise AuthFailure(errors.EXPIRED)
        if requirement.roles:
            _check_roles(requirement, entry.record.roles, client_id)
        self.cache.mark_used(entry)
        return AuthenticatedClient(client_id, entry.record, requirement.key_names, secret is not None, headers)

    def _lookup(self, client_id: str, memo: dict[Any, Any]) -> Entry | None:
        """The client's cache entry; at most one store lookup per ID per request."""
        key = ("id", client_id)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        entry: Entry | None = None
        if len(client_id) <= CLIENT_ID_MAX and _printable(client_id):
            entry = self.cache.get(client_id)
            found = "known"
            if entry is None:
                found = "unknown"
                if not self.cache.is_unknown(client_id):
                    found = "store"
                    self.throttle.check(None, memo["address"])
                    epoch = self.cache.epoch
                    record = self.store.get(client_id)
                    entry = self.cache.put(client_id, record, epoch)
                    if record is None:
                        self.throttle.failed(None, memo["address"])
            if self.on_lookup is not None:
                self.on_lookup(found)
        memo[key] = entry
        return entry

    def _verify(self, client_id: str, entry: Entry, secret: str, memo: dict[Any, Any]) -> bool:
        """Whether ``secret`` is the credential's (or its previous one's, in its grace period); at most
        one check per secret per request."""
        digest = self.cache.digest(secret)
        if digest in entry.verified:
            self.throttle.note(client_id, memo["address"])
            return True
        if digest in entry.rejected:  # refused by bcrypt before, for this very hash: not paid again,
            self.throttle.check(client_id, memo["address"])  # but still a failure that counts
            self.throttle.failed(client_id, memo["address"])
            return False
        key = ("secret", client_id, digest)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        ok = False
        if entry.record.has_secret and plausible_secret(secret):  # else refused unhashed, whatever its size
            self.throttle.check(client_id, memo["address"])
            ok = self.secrets.matches(client_id, entry, digest, secret, self.cache.wall())
            if ok:
                self.throttle.remember(client_id, memo["address"])
            else:
                self.throttle.failed(client_id, memo["address"])
        memo[key] = ok
        return ok


def _check_roles(requirement: Requirement, held: tuple[str, ...], client_id: str) -> None:
    """Refuse a client (found, its secret verified, enabled) that lacks a role of ``requirement``.

    The response names no role (to a caller that need not know them); the log does, for the operator.
    """
    missing = [role for role in requirement.roles if role not in held]
    if missing:
        logger.info("clientauth: client %s lacks the role(s) %s", escape(client_id), ", ".join(missing))
        raise AuthFailure(errors.ROLE_MISSING)
