"""Revocation: the change log polled, and clients changed elsewhere evicted from the cache.

This is the only place that evicts: a client disabled, deleted or given a new secret by another
process (or host) is learnt of here, at most one interval after the change was committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .cache import CredentialCache
from .store import ClientStore, StoreError

#: Change-log ids not yet seen below the newest one are re-read for this long
#: (a transaction may commit after a later one); after that they are taken as rolled back.
HOLE_WINDOW = 30.0

#: How long a request waits for another thread's change-log poll before 503.
POLL_WAIT = 5.0


class Revocation:
    """Polls the store's change log at most once per ``interval`` and applies it to the cache."""

    def __init__(
        self,
        store: ClientStore,
        cache: CredentialCache,
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache = cache
        self.interval = interval
        self.clock = clock
        #: When the next poll is due: until then the cache is as current as the guarantee requires
        #: (the cache's ``current_until``, which its warm-path probe reads).
        self.next_poll = 0.0
        cache.current_until = self.next_poll  # nothing is known current before the first poll
        self._last_event: int | None = None
        self._holes: dict[int, float] = {}
        self._lock = threading.Lock()
        #: Told of each poll: ``on_poll(seconds, ok)`` (metrics); ``None``: nobody asks.
        self.on_poll: Callable[[float, bool], None] | None = None

    def changed(self, client_id: str) -> None:
        """A write of this process (the store's listener): forget the client at once."""
        self.cache.evict((client_id,))

    def refresh(self, *, force: bool = False) -> None:
        """Poll the change log (at most once per interval) and apply what changed.

        The guarantee: a request that arrives at least one interval after a change was
        committed is decided with that change (it runs or waits for a poll that began after
        the commit); requests within the interval may still see the state before it.
        """
        now = self.clock()
        if not force and now < self.next_poll:
            return
        # Another thread polling: wait for its answer, so that no request that comes a full
        # interval after a change is served from before it; a poll stuck that long is a fault.
        if not self._lock.acquire(timeout=-1 if force else POLL_WAIT):
            raise StoreError("client store unavailable (the change-log poll did not finish)")
        try:
            if not force and now < self.next_poll:
                return
            started, ok = time.perf_counter(), False
            try:
                self._poll(now)
                ok = True
            except StoreError:
                self.cache.clear()  # cannot learn of revocations: trust nothing cached
                raise
            finally:
                if self.on_poll is not None:
                    self.on_poll(time.perf_counter() - started, ok)
            self.next_poll = cache_current = now + self.interval
            self.cache.current_until = cache_current
        finally:
            self._lock.release()

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
