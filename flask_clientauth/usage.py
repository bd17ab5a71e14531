"""``last_used_at``, written off the request path.

A request only notes a use in memory: the warm path's cache entry already records when it last
authenticated a request (``Entry.used``, CLOCK's mark), and the general check notes its successes
in a dict. One daemon thread per process writes what was noted, one ``store.touch`` per
``CLIENTAUTH_LAST_USED_INTERVAL`` seconds per app: no request waits for that write, and a write
that fails is logged (a WARNING, at most once per interval), retried at the next one, and never
fails a request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from datetime import timedelta

from .cache import CredentialCache
from .errors import ClientAuthError
from .store import ClientStore, utcnow

logger = logging.getLogger("flask_clientauth")

#: The flusher re-reads the recorders at least this often (a new one may want an earlier flush).
MAX_SLEEP = 5.0


class UsageRecorder:
    """The uses of one app's credentials, written to its store every ``interval`` seconds.

    ``interval`` 0 turns recording off: :meth:`note` and :meth:`start` do nothing.
    """

    def __init__(
        self,
        store: ClientStore,
        cache: CredentialCache,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache = cache
        self.interval = interval
        self.clock = clock
        #: Uses noted by the general check (client ID -> ``clock()``), and failed writes to retry.
        self._pending: dict[str, float] = {}
        #: When (``time.monotonic``) the flusher thread writes next.
        self.due = time.monotonic() + interval
        self._pid = 0
        self._warned_at: float | None = None
        self._lock = threading.Lock()
        if interval > 0:
            cache.dropped_uses = {}

    def note(self, client_id: str) -> None:
        """A request authenticated with ``client_id`` now (the general check; a dict write)."""
        if self.interval > 0:
            if self._pid != os.getpid():  # the first request of this process
                self.start()
            self._pending[client_id] = self.clock()

    def start(self) -> None:
        """Make sure this process's flusher thread writes for this recorder (a new process after a
        fork has none: its parent's thread did not come along)."""
        pid = os.getpid()
        if self._pid != pid and self.interval > 0:
            if self._pid:  # a forked child: the parent writes its own notes, and may have held the lock
                self._lock = threading.Lock()
                self._pending = {}
            self._pid = pid
            _flusher().add(self)

    def flush(self) -> int:
        """Write the uses noted since the last flush; how many credentials were written.

        Never raises: a failed write is logged and its uses kept for the next flush.
        """
        if self.interval <= 0:
            return 0
        with self._lock:
            pending, self._pending = self._pending, {}
            uses = self.cache.take_uses()
            for client_id, used in list(pending.items()):  # a request may still be writing to it
                uses[client_id] = max(used, uses.get(client_id, 0.0))
            if not uses:
                return 0
            wall, now = utcnow(), self.clock()
            try:
                self.store.touch({cid: wall - timedelta(seconds=now - used) for cid, used in uses.items()})
            except Exception as exc:  # never a request's failure; the next flush retries
                for client_id, used in uses.items():
                    self._pending[client_id] = max(used, self._pending.get(client_id, 0.0))
                self._warn(exc)
                return 0
            return len(uses)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._warned_at is not None and now - self._warned_at < self.interval:
            return
        self._warned_at = now
        # our errors' messages never hold SQL, values or a password; others are named only
        detail = str(exc) if isinstance(exc, ClientAuthError) else type(exc).__name__
        logger.warning(
            "clientauth: cannot record when credentials were last used (%s); retrying in %g s", detail, self.interval
        )


class _Flusher:
    """The daemon thread of this process that runs every recorder's :meth:`~UsageRecorder.flush`
    when due. Recorders are held weakly: an app that goes away takes its recorder with it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.recorders: weakref.WeakSet[UsageRecorder] = weakref.WeakSet()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="clientauth-last-used", daemon=True)
        self.thread.start()

    def add(self, recorder: UsageRecorder) -> None:
        self.recorders.add(recorder)
        self.wake.set()

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            for recorder in list(self.recorders):
                if recorder.due <= now:
                    recorder.due = now + recorder.interval
                    try:
                        recorder.flush()
                    except Exception:  # a bug must not end the thread (and every app's writes)
                        logger.exception("clientauth: recording when credentials were last used failed")
            dues = [r.due for r in list(self.recorders)]
            self.wake.wait(min([MAX_SLEEP, *(due - time.monotonic() for due in dues)]))
            self.wake.clear()


_current: _Flusher | None = None
_current_lock = threading.Lock()


def _after_fork() -> None:
    global _current, _current_lock
    _current, _current_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _flusher() -> _Flusher:
    """This process's flusher (a new one in a forked child, whose parent's thread did not follow)."""
    global _current
    with _current_lock:
        if _current is None or _current.pid != os.getpid():
            _current = _Flusher()
        return _current
