"""The per-process verified-credential cache.

After one successful bcrypt check, later requests with the same client ID and secret are
verified from memory: the cache keeps each client's record with keyed BLAKE2 digests of
secrets that matched (never the secrets). Unknown IDs are kept apart, in a smaller
negative cache, so a flood of random IDs cannot push real clients out.

A hit is one dictionary probe without a lock; eviction is CLOCK (second chance), and
entries also expire after the TTL.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from .store import ClientRecord

#: How many verified (and how many refused) secrets one client keeps in the cache.
MAX_SECRETS_PER_CLIENT = 4


class Entry:
    """A cached client: its record, and digests of secrets that matched or did not."""

    __slots__ = ("expires", "record", "rejected", "used", "verified")

    def __init__(self, record: ClientRecord, expires: float, verified: set[bytes] | None = None) -> None:
        self.record = record
        self.expires = expires
        self.verified: set[bytes] = verified if verified is not None else set()
        self.rejected: set[bytes] = set()
        self.used = False

    def __repr__(self) -> str:
        return f"<Entry {self.record.client_id!r} verified={len(self.verified)}>"


class CredentialCache:
    """Thread-safe bounded cache with TTL. ``size=0`` disables caching altogether."""

    def __init__(
        self,
        *,
        size: int,
        ttl: float,
        negative_size: int,
        negative_ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        #: What the TTLs are measured with (a fake in tests).
        self.clock = clock
        self.ttl = ttl
        self.negative_size = negative_size
        self.negative_ttl = negative_ttl
        self._entries: dict[str, Entry] = {}
        self._unknown: dict[str, float] = {}
        self._lock = threading.Lock()
        self._hasher = hashlib.blake2b(key=os.urandom(32), digest_size=16)
        # BLAKE2b holds the key as its first block and compresses it only when more data
        # follows; one byte now does that once, so each digest below costs one compression.
        self._hasher.update(b"\x00")
        #: Bumped by every eviction; a read that started before one must not be cached.
        self.epoch = 0
        #: Until when (by ``clock``) the entries are known to be current: :mod:`.revocation` moves it
        #: after each change-log poll; after it, :meth:`verified` leaves requests to the general check.
        self.current_until = math.inf

    def digest(self, secret: str) -> bytes:
        """A keyed digest of ``secret``: what the cache remembers instead of the secret."""
        hasher = self._hasher.copy()
        hasher.update(secret.encode("utf-8", "surrogateescape"))
        return hasher.digest()

    def get(self, client_id: str) -> Entry | None:
        """The live entry of ``client_id`` (no lock: a dict read is atomic)."""
        entry = self._entries.get(client_id)
        if entry is None or entry.expires < self.clock():
            return None
        entry.used = True
        return entry

    def verified(self, client_id: str, secret: str | None) -> Entry | None:
        """The warm path's probe: the live entry of an enabled client whose ``secret`` matched
        before (``None``: the route wants no secret); ``None`` when the general check must decide,
        e.g. because a change-log poll is due (:attr:`current_until`)."""
        now = self.clock()
        if now >= self.current_until:
            return None
        entry = self._entries.get(client_id)
        if entry is None or entry.expires < now or not entry.record.enabled:
            return None
        if secret is not None:
            hasher = self._hasher.copy()  # digest(), inline: a call less on the hot path
            hasher.update(secret.encode("utf-8", "surrogateescape"))
            if hasher.digest() not in entry.verified:
                return None
        entry.used = True
        return entry

    def is_unknown(self, client_id: str) -> bool:
        expires = self._unknown.get(client_id)
        return expires is not None and expires >= self.clock()

    def put(self, client_id: str, record: ClientRecord | None, epoch: int) -> Entry | None:
        """Remember a lookup made when :attr:`epoch` was ``epoch`` (skipped if evictions came since)."""
        if self.size <= 0:
            return Entry(record, 0.0) if record is not None else None
        with self._lock:
            if epoch != self.epoch:
                return Entry(record, 0.0) if record is not None else None
            if record is None:
                self._unknown.pop(client_id, None)
                self._unknown[client_id] = self.clock() + self.negative_ttl
                while len(self._unknown) > self.negative_size:
                    del self._unknown[next(iter(self._unknown))]
                return None
            entry = Entry(record, self.clock() + self.ttl)
            self._entries.pop(client_id, None)
            self._entries[client_id] = entry
            self._shrink()
            return entry

    def _shrink(self) -> None:
        """CLOCK eviction: the oldest entry goes unless it was used since its last chance."""
        entries = self._entries
        now = self.clock()
        while len(entries) > self.size:
            client_id = next(iter(entries))
            entry = entries.pop(client_id)
            if entry.used and entry.expires >= now:
                entry.used = False
                entries[client_id] = entry  # second chance: back to the end

    @staticmethod
    def mark_verified(entry: Entry, digest: bytes) -> None:
        if len(entry.verified) >= MAX_SECRETS_PER_CLIENT:
            entry.verified.clear()
        entry.verified.add(digest)

    @staticmethod
    def mark_rejected(entry: Entry, digest: bytes) -> None:
        if len(entry.rejected) >= MAX_SECRETS_PER_CLIENT:
            entry.rejected.clear()
        entry.rejected.add(digest)

    def cached(self, client_ids: Iterable[str]) -> list[str]:
        """Which of ``client_ids`` have an entry."""
        return [cid for cid in client_ids if cid in self._entries]

    def update(self, records: Mapping[str, ClientRecord | None]) -> None:
        """Apply fresh records of changed clients (``None``: deleted).

        Verified digests survive a change that kept the secret hash (a rename, a disable),
        so the next request is answered without bcrypt; a new hash starts afresh.
        """
        with self._lock:
            self.epoch += 1
            for client_id, record in records.items():
                self._unknown.pop(client_id, None)
                old = self._entries.pop(client_id, None)
                if record is None:
                    continue
                keep = old is not None and old.record.secret_hash == record.secret_hash
                self._entries[client_id] = Entry(
                    record, self.clock() + self.ttl, set(old.verified) if keep and old else None
                )
            self._shrink()

    def evict(self, client_ids: Iterable[str]) -> None:
        with self._lock:
            self.epoch += 1
            for cid in client_ids:
                self._entries.pop(cid, None)
                self._unknown.pop(cid, None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._entries.clear()
            self._unknown.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<CredentialCache {len(self._entries)}/{self.size} clients, {len(self._unknown)} unknown>"
