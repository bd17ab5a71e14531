"""Whether a presented secret is a credential's: its secret, or the previous one in its grace period.

Generated secrets are stored as SHA-256 / HMAC-SHA-256 (:mod:`.keys`): checked inline, in
microseconds, with no single-flight and no cap on threads. Chosen secrets (``set-secret``) and
hashes from before version 1.0 are bcrypt: those go through :class:`.flight.Flights`, one check at a
time per client ID. Either answer is remembered in the cache entry (a digest of the secret).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from .cache import CredentialCache, Entry
from .flight import Flights
from .keys import DEFAULT_SECRET_PREFIX, is_slow, secret_matches, well_formed

logger = logging.getLogger("flask_clientauth")


class SecretCheck:
    """Checks secrets against the hashes of cached credentials, for one app."""

    def __init__(
        self,
        cache: CredentialCache,
        *,
        prefix: str = DEFAULT_SECRET_PREFIX,
        pepper: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.prefix = prefix
        self._pepper = pepper
        self.flights = Flights(cache, clock=clock)

    def malformed(self, secret: str) -> bool:
        """Whether ``secret`` looks generated (our prefix) but is not as issued (length, checksum): a
        typo or a guess, refused before any lookup or hash."""
        return secret.startswith(self.prefix) and not well_formed(secret, self.prefix)

    def matches(self, client_id: str, entry: Entry, digest: bytes, secret: str, now: datetime) -> bool:
        """Whether ``secret`` (``digest`` its keyed digest) matches a hash the credential accepts at
        ``now``; the answer is remembered in ``entry``.

        Raises :class:`~.keys.PepperMissing` for an HMAC hash when the app has no pepper.
        """
        slow = []
        for stored in entry.record.credential.hashes(now):
            if is_slow(stored):
                slow.append(stored)
            elif secret_matches(secret, stored, self._pepper):
                self.cache.mark_verified(entry, digest)
                return True
        for stored in slow:  # at most one in practice: a reset always makes a fast hash
            if self.flights.matches(client_id, entry, digest, secret, stored):
                return True
            if not stored.startswith("$2"):
                logger.error("clientauth: the stored secret hash of client %r is corrupt", client_id[:80])
        if not slow:
            self.cache.mark_rejected(entry, digest)
        return False
