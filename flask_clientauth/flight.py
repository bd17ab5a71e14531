"""The slow-hash check of a presented secret, one at a time per client ID in this process.

bcrypt costs about a quarter of a second: concurrent requests with the secret being checked share
that check (no stampede), and guessed secrets for one client cannot occupy more than two worker
threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from . import errors
from .cache import CredentialCache, Entry
from .errors import AuthFailure
from .keys import secret_matches

#: How long a request waits for the running bcrypt check of its very secret before 429.
FLIGHT_WAIT = 2.0


class _Flight:
    """A bcrypt check under way for one client ID, and the one other check allowed to wait for it.

    A check is of one secret (its digest) against one stored hash: a request whose cache entry
    holds another hash (the secret was reset, and the change polled, while the check ran) must
    not take its answer.
    """

    __slots__ = ("hashed", "done", "ok", "next_hashed")

    def __init__(self, hashed: tuple[bytes, str]) -> None:
        self.hashed = hashed
        self.done = threading.Event()
        self.ok: bool | None = None
        self.next_hashed: tuple[bytes, str] | None = None


class Flights:
    """The bcrypt checks under way, per client ID; answers are remembered in the cache entry."""

    def __init__(self, cache: CredentialCache, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.clock = clock
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    def matches(self, client_id: str, entry: Entry, digest: bytes, secret: str, stored: str) -> bool:
        """Whether ``secret`` (``digest`` its keyed digest) matches the ``stored`` hash.

        Concurrent requests with the secret being checked, against the same stored hash, share
        that check; one whose entry holds a newer hash (a reset, polled meanwhile) never takes the
        answer of a check against the old one. One other check may wait for its turn (a rotation:
        the old and the new secret arrive together); a third while those two are pending gets 429
        at once, as does a wait longer than ``FLIGHT_WAIT``. The answer is remembered in ``entry``
        before the next check of the client ID can start.
        """
        deadline = self.clock() + FLIGHT_WAIT
        hashed = (digest, stored)
        while True:
            with self._lock:
                flight = self._flights.get(client_id)
                if flight is None:
                    flight = self._flights[client_id] = _Flight(hashed)
                    break
                if flight.hashed != hashed:
                    if flight.next_hashed is None:
                        flight.next_hashed = hashed
                    elif flight.next_hashed != hashed:
                        raise AuthFailure(errors.THROTTLED, headers={"Retry-After": "1"})
            if not flight.done.wait(max(0.0, deadline - self.clock())):
                raise AuthFailure(errors.THROTTLED, headers={"Retry-After": "1"})
            if flight.hashed == hashed and flight.ok is not None:
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
            with self._lock:
                del self._flights[client_id]
            flight.done.set()
