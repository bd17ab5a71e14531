"""The per-request check: a route's policy against the request's credentials.

Cost on the hot path (known client, secret verified before): credential extraction, one
cache probe and one keyed digest. A request never makes more than one store lookup per
client ID presented and one bcrypt check per secret presented.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from flask import Request
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.response import Response as _Response

from . import errors
from .cache import CredentialCache, Entry
from .context import AuthenticatedClient, AuthState
from .credentials import DocumentKeys, extract, presented, sent_elsewhere, sent_ids
from .errors import AuthFailure
from .keys import plausible_secret, secret_matches
from .models import CLIENT_ID_MAX
from .requirements import FastPath, Policy, Requirement, Scheme
from .store import ClientStore, StoreError
from .throttle import FailureThrottle, ThrottleUnavailable, peer_ip

logger = logging.getLogger("flask_clientauth")

#: Change-log ids not yet seen below the newest one are re-read for this long
#: (a transaction may commit after a later one); after that they are taken as rolled back.
HOLE_WINDOW = 30.0


#: How long a request waits for another thread's change-log poll before 503.
POLL_WAIT = 5.0

#: How long a request waits for the running bcrypt check of its very secret before 429.
FLIGHT_WAIT = 2.0


class _Flight:
    """A bcrypt check under way for one client ID, and the one other check allowed to wait for it.

    A check is of one secret (its digest) against one stored hash: a request whose cache entry
    holds another hash (the secret was reset, and the change polled, while the check ran) must
    not take its answer.
    """

    __slots__ = ("check", "done", "ok", "next_check")

    def __init__(self, check: tuple[bytes, str]) -> None:
        self.check = check
        self.done = threading.Event()
        self.ok: bool | None = None
        self.next_check: tuple[bytes, str] | None = None


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
        throttle: FailureThrottle | None = None,
    ) -> None:
        self.store = store
        self.throttle = throttle
        self.cache = cache
        self.handlers = handlers
        self.revocation_interval = revocation_interval
        self._next_poll = 0.0
        self._last_event: int | None = None
        self._holes: dict[int, float] = {}
        self._poll_lock = threading.Lock()
        #: (client ID, address) pairs that authenticated before: exempt from the per-client
        #: limit, so a flood of wrong secrets for a client ID does not lock its owner out.
        self._known_addresses: OrderedDict[tuple[str, str | None], None] = OrderedDict()
        self._known_lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        self.use_document(DocumentKeys())

    def use_document(self, document: DocumentKeys) -> None:
        """The API keys of the loaded document: every client ID location a request may carry."""
        self.document = document
        self._guards = document.fast_guards

    # -- revocation -------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Poll the change log (at most once per interval) and apply what changed.

        The guarantee: a request that arrives at least one interval after a change was
        committed is decided with that change (it runs or waits for a poll that began after
        the commit); requests within the interval may still see the state before it.
        """
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        # Another thread polling: wait for its answer, so that no request that comes a full
        # interval after a change is served from before it; a poll stuck that long is a fault.
        if not self._poll_lock.acquire(timeout=-1 if force else POLL_WAIT):
            raise StoreError("client store unavailable (the change-log poll did not finish)")
        try:
            if not force and now < self._next_poll:
                return
            try:
                self._poll(now)
            except StoreError:
                self.cache.clear()  # cannot learn of revocations: trust nothing cached
                raise
            self._next_poll = now + self.revocation_interval
        finally:
            self._poll_lock.release()

    def _poll(self, now: float) -> None:
        previous = self._last_event
        if previous is None:
            self._last_event = self.store.latest_change()
            return
        newest, changed, seen = self.store.changes_after(previous, list(self._holes))
        for event_id in seen:
            self._holes.pop(event_id, None)
        for event_id in range(previous + 1, newest):
            if event_id not in seen:
                self._holes.setdefault(event_id, now + HOLE_WINDOW)
        self._holes = {k: v for k, v in self._holes.items() if v > now}
        self._last_event = newest
        if changed:
            cached = self.cache.cached(changed)
            fresh = self.store.get_many(cached)
            self.cache.evict(changed.difference(cached))  # e.g. a new client known as unknown
            self.cache.update({cid: fresh.get(cid) for cid in cached})

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
        now = time.monotonic()
        if now >= self._next_poll:
            return None
        entry = self.cache._entries.get(client_id)
        if entry is None or entry.expires < now or not entry.record.enabled:
            return None
        req = fast.requirement
        if fast.secret_key is None:
            entry.used = True
            headers = {req.forward_names[0]: client_id}
            return AuthState(
                AuthenticatedClient(client_id, entry.record.name, req.key_names, False, headers), req.names
            )
        secret = environ.get(fast.secret_key)
        if not secret or "," in secret or self.cache.digest(secret) not in entry.verified:
            return None
        entry.used = True
        if self.throttle is not None:  # _note_address, inline (a method call costs more than the check)
            address = environ.get("REMOTE_ADDR")
            if (client_id, address) not in self._known_addresses:
                self._remember_address(client_id, address)
        id_header, secret_header = req.forward_names
        headers = {id_header: client_id, secret_header: secret}
        return AuthState(AuthenticatedClient(client_id, entry.record.name, req.key_names, True, headers), req.names)

    def check(self, policy: Policy, request: Request) -> AuthState:
        """The request's auth state under ``policy``; raises :class:`AuthFailure` when refused."""
        if policy.deny:
            raise AuthFailure(errors.SCHEME_UNSUPPORTED if policy.dropped else errors.UNDOCUMENTED)
        self._one_client(policy, request)
        try:
            if policy.reads_ids:  # routes of the app's own schemes alone keep working without the store
                self.refresh()
            return self._check(policy, request)
        except (StoreError, ThrottleUnavailable) as exc:
            logger.error("clientauth: %s; answering 503", exc)
            raise AuthFailure(errors.STORE_UNAVAILABLE) from None

    def _one_client(self, policy: Policy, request: Request) -> None:
        """Refuse a request naming more than one client, in any client ID location of the document,
        used by this route or not: a view or backend reading another location must not see a
        second identity. The same ID in several locations is one client."""
        schemes = self.document.ids or tuple(r.client_id for r in policy.alternatives if r.client_id is not None)
        seen: set[str] = set()
        carriers = 0
        for scheme in schemes:
            values = sent_ids(request, scheme)
            if values:
                carriers += 1
                seen.update(values)
        if len(seen) > 1:  # within one location it is the key sent twice, as the route's own check says
            raise (
                AuthFailure(errors.DUPLICATE, {"credential": "Client ID"})
                if carriers == 1
                else AuthFailure(errors.CONFLICT)
            )

    def _check(self, policy: Policy, request: Request) -> AuthState:
        alternatives = policy.alternatives
        memo: dict[Any, Any] = {"address": request.remote_addr}
        best: AuthFailure | None = None
        for req in alternatives:
            outcome = self._attempt(req, request, memo)
            if isinstance(outcome, AuthState):
                return outcome
            if best is None or outcome.reason.rank > best.reason.rank:
                best = outcome
        if policy.optional and not any(  # credentials sent, even in the wrong place, must be valid
            presented(request, s) or sent_elsewhere(request, s) for r in alternatives for s in r.schemes if s.is_api_key
        ):
            return AuthState(None)
        assert best is not None
        raise best

    def _attempt(self, req: Requirement, request: Request, memo: dict[Any, Any]) -> AuthState | AuthFailure:
        client: AuthenticatedClient | None = None
        id_scheme = req.client_id
        if id_scheme is not None:
            found = self._client(req, id_scheme, request, memo)
            if not isinstance(found, AuthenticatedClient):
                return found
            client = found
        if not req.others:
            return AuthState(client, req.names)
        results: dict[str, Any] = {}
        for scheme in req.others:
            handler = self.handlers.get(scheme.name)
            if handler is None:  # resolution refuses such routes; never let one through
                return AuthFailure(errors.CONFIG_ERROR)
            try:
                result = handler(request)
            except HTTPException:
                raise
            except Exception:
                logger.exception("clientauth: the handler of scheme %r raised", scheme.name)
                return AuthFailure(errors.CONFIG_ERROR)
            # a response (or an HTTPException returned instead of raised, which Flask would send as one)
            # is truthy, and never a verdict
            if isinstance(result, (_Response, HTTPException, tuple)):
                logger.error(
                    "clientauth: the handler of scheme %r returned a response (%s), not a verdict; refusing. "
                    "Return a true value to accept, a false one to refuse, or raise (abort(403))",
                    scheme.name,
                    type(result).__name__,
                )
                return AuthFailure(errors.CONFIG_ERROR)
            if not result:
                return AuthFailure(errors.SCHEME_REJECTED)
            results[scheme.name] = result
        return AuthState(client, req.names, results)

    def _client(
        self, req: Requirement, id_scheme: Scheme, request: Request, memo: dict[Any, Any]
    ) -> AuthenticatedClient | AuthFailure:
        """The API key part of a requirement: the client ID, and the secret where required."""
        client_id, failure = self._read(request, id_scheme, "Client ID", errors.CLIENT_ID_MISSING)
        if failure is not None:
            return failure
        assert client_id is not None
        secret_scheme = req.client_secret
        secret: str | None = None
        if secret_scheme is not None:
            secret, failure = self._read(request, secret_scheme, "Client secret", errors.CLIENT_SECRET_MISSING)
            if failure is not None:
                return failure
        entry = self._lookup(client_id, memo)
        if entry is None:
            return AuthFailure(errors.NOT_REGISTERED)
        id_header, secret_header = req.forward_names
        if secret is None:
            headers = {id_header: client_id}
        else:
            if not self._verify(client_id, entry, secret, memo):
                return AuthFailure(errors.SECRET_INVALID)
            headers = {id_header: client_id, secret_header: secret}
        if not entry.record.enabled:
            return AuthFailure(errors.DISABLED)
        return AuthenticatedClient(client_id, entry.record.name, req.key_names, secret is not None, headers)

    @staticmethod
    def _read(
        request: Request, scheme: Scheme, label: str, missing: errors.Reason
    ) -> tuple[str | None, AuthFailure | None]:
        value, duplicate = extract(request, scheme)
        if duplicate:
            return None, AuthFailure(errors.DUPLICATE, {"credential": label})
        if value is None:
            if sent_elsewhere(request, scheme):
                detail = {"credential": label, "location": scheme.describe_location()}
                return None, AuthFailure(errors.WRONG_LOCATION, detail)
            return None, AuthFailure(missing)
        return value, None

    def _lookup(self, client_id: str, memo: dict[Any, Any]) -> Entry | None:
        """The client's cache entry; at most one store lookup per ID per request."""
        key = ("id", client_id)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        entry: Entry | None = None
        if len(client_id) <= CLIENT_ID_MAX and _printable(client_id):
            entry = self.cache.get(client_id)
            if entry is None and not self.cache.is_unknown(client_id):
                self._throttle(None, memo)
                epoch = self.cache.epoch
                record = self.store.get(client_id)
                entry = self.cache.put(client_id, record, epoch)
                if record is None and self.throttle is not None:
                    self.throttle.failed(None, memo["address"])
        memo[key] = entry
        return entry

    def _verify(self, client_id: str, entry: Entry, secret: str, memo: dict[Any, Any]) -> bool:
        """Whether ``secret`` is the client's; at most one bcrypt check per secret per request."""
        digest = self.cache.digest(secret)
        if digest in entry.verified:
            self._note_address(client_id, memo["address"])
            return True
        if digest in entry.rejected:  # refused by bcrypt before, for this very hash: not paid again,
            self._throttle(client_id, memo)  # but still a failure that counts
            if self.throttle is not None:
                self.throttle.failed(client_id, memo["address"])
            return False
        key = ("secret", client_id, digest)
        if key in memo:
            return memo[key]  # type: ignore[no-any-return]
        stored = entry.record.secret_hash
        ok = False
        if stored is not None and plausible_secret(secret):  # else refused without bcrypt, whatever its size
            self._throttle(client_id, memo)
            ok = self._hash_check(client_id, entry, digest, secret, stored)
            if not ok and not stored.startswith("$2"):
                logger.error("clientauth: the stored secret hash of client %s is corrupt", escape(client_id))
            if ok:
                if self.throttle is not None:
                    self._remember_address(client_id, memo["address"])
            elif self.throttle is not None:
                self.throttle.failed(client_id, memo["address"])
        memo[key] = ok
        return ok

    def _hash_check(self, client_id: str, entry: Entry, digest: bytes, secret: str, stored: str) -> bool:
        """bcrypt, one at a time per client ID in this process.

        Concurrent requests with the secret being checked, against the same stored hash, share
        that check (no stampede); one whose entry holds a newer hash (a reset, polled meanwhile)
        never takes the answer of a check against the old one. One other check may wait for
        its turn (a rotation: the old and the new secret arrive together); a third while those two are pending gets 429 at once, as does a
        wait longer than ``FLIGHT_WAIT``: guessed secrets for one client cannot occupy
        more than two worker threads. The answer is remembered in ``entry`` before the next
        check of the client ID can start.
        """
        deadline = time.monotonic() + FLIGHT_WAIT
        check = (digest, stored)
        while True:
            with self._flights_lock:
                flight = self._flights.get(client_id)
                if flight is None:
                    flight = self._flights[client_id] = _Flight(check)
                    break
                if flight.check != check:
                    if flight.next_check is None:
                        flight.next_check = check
                    elif flight.next_check != check:
                        raise AuthFailure(errors.THROTTLED, headers={"Retry-After": "1"})
            if not flight.done.wait(max(0.0, deadline - time.monotonic())):
                raise AuthFailure(errors.THROTTLED, headers={"Retry-After": "1"})
            if flight.check == check and flight.ok is not None:
                return flight.ok
            if digest in entry.verified:  # answered by a check that ran while this one waited
                return True
            if digest in entry.rejected:
                return False
            # the check that ran was of another secret or hash: this one's turn (or join whoever took it)
        try:
            flight.ok = secret_matches(secret, stored)
            if flight.ok:
                self.cache.mark_verified(entry, digest)
            else:
                self.cache.mark_rejected(entry, digest)
            return flight.ok
        finally:
            with self._flights_lock:
                del self._flights[client_id]
            flight.done.set()

    def _throttle(self, client_id: str | None, memo: dict[Any, Any]) -> None:
        """Refuse with 429, before any costly work, once the failure limits are reached."""
        if self.throttle is None:
            return
        address = memo["address"]
        if client_id is not None and (client_id, address) in self._known_addresses:
            client_id = None  # this address has proven it holds the secret before
        wait = self.throttle.retry_after(client_id, address)
        if wait is not None:
            raise AuthFailure(errors.THROTTLED, headers={"Retry-After": str(wait)})

    def _note_address(self, client_id: str, address: str | None) -> None:
        """Remember ``address`` after a secret verified from the cache: proof as good as bcrypt's.
        Without this, an owner's address first served from the cache (a second host of the owner,
        a new IP) would lose the exemption, and get 429, once the entry expires during a flood.
        An address already known is left in place: the hot path takes no lock."""
        if self.throttle is not None and (client_id, address) not in self._known_addresses:
            self._remember_address(client_id, address)

    def _remember_address(self, client_id: str, address: str | None) -> None:
        """Exempt ``address`` from the client's limit from now on, unless it is no IP address: peers
        without one (a unix socket) cannot be told apart, and an attacker among them must not
        inherit the owner's exemption."""
        if peer_ip(address) is None:
            return
        key = (client_id, address)
        with self._known_lock:
            self._known_addresses[key] = None
            self._known_addresses.move_to_end(key)
            while len(self._known_addresses) > max(self.cache.size, 1):
                self._known_addresses.popitem(last=False)
