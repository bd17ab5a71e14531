"""The per-process verified-credential cache.

After one successful check of a secret (a fast hash, or bcrypt for a chosen secret), later
requests with the same client ID and secret are verified from memory: the cache keeps each
credential's record with keyed BLAKE2 digests of secrets that matched (never the secrets).
Unknown IDs are kept apart, in a smaller negative cache, so a flood of random IDs cannot push
real clients out.

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
from datetime import datetime, timezone
from functools import partial

from .store import ClientRecord

#: The current time in UTC; a partial, not a function, so that the cache reaches no module globals
#: (tests walk everything the cache reaches, looking for secrets).
UTC_NOW: Callable[[], datetime] = partial(datetime.now, timezone.utc)

#: How many verified (and how many refused) secrets one client keeps in the cache.
MAX_SECRETS_PER_CLIENT = 4


class Entry:
    """A cached credential: the client's record, digests of secrets that matched or did not, and
    until when (by the cache's clock) the entry may answer.

    ``expires`` is the earliest of the TTL's end, the end of the grace period of a previous secret
    and the credential's expiry, so the warm path's one deadline compare covers all three;
    ``usable`` is false for a disabled client or an expired credential (the general check says why).
    """

    __slots__ = ("chance", "expires", "record", "rejected", "reported", "usable", "used", "verified")

    def __init__(
        self, record: ClientRecord, expires: float, verified: set[bytes] | None = None, *, usable: bool = True
    ) -> None:
        self.record = record
        self.expires = expires
        self.usable = usable
        self.verified: set[bytes] = verified if verified is not None else set()
        self.rejected: set[bytes] = set()
        #: When (by the cache's clock) the entry last authenticated a request; 0.0: never.
        #: The CLOCK eviction's "used" mark, and what :mod:`.usage` writes as ``last_used_at``.
        self.used = 0.0
        #: ``used`` when the entry last got a second chance (used since: it gets another).
        self.chance = 0.0
        #: ``used`` when :meth:`CredentialCache.take_uses` last reported it.
        self.reported = 0.0

    def __repr__(self) -> str:
        return f"<Entry {self.record.client_id!r} verified={len(self.verified)}>"


def _hashes(record: ClientRecord) -> tuple[object, ...]:
    """What verified digests depend on: the secret's hash, and the previous one with its grace period."""
    credential = record.credential
    return (credential.secret_hash, credential.previous_secret_hash, credential.previous_secret_until)


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
        wall: Callable[[], datetime] = UTC_NOW,
    ) -> None:
        self.size = size
        #: What the TTLs are measured with (a fake in tests).
        self.clock = clock
        #: What expiry and grace periods (UTC datetimes) are compared with.
        self.wall = wall
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
        #: Uses of entries dropped since :meth:`take_uses` last ran (client ID -> ``Entry.used``),
        #: so that dropping an entry never loses its ``last_used_at``; ``None`` while nobody asks.
        self.dropped_uses: dict[str, float] | None = None

    def entry(self, record: ClientRecord, verified: set[bytes] | None = None) -> Entry:
        """A new entry for ``record``, expiring at the end of the TTL, of the previous secret's grace
        period or of the credential, whichever comes first."""
        now, wall = self.clock(), self.wall()
        expires = now + self.ttl
        credential = record.credential
        usable = record.enabled
        if credential.expires_at is not None:
            left = (credential.expires_at - wall).total_seconds()
            if left <= 0:
                usable = False  # decided by the general check each time; the TTL bounds the entry
            else:
                expires = min(expires, now + left)
        grace = credential.previous_secret_until
        if credential.previous_secret_hash is not None and grace is not None:
            left = (grace - wall).total_seconds()
            if left > 0:
                expires = min(expires, now + left)
            else:
                verified = None  # the previous secret's digest may be among them: its time is over
        return Entry(record, expires, verified, usable=usable)

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
        return entry

    def verified(self, client_id: str, secret: str | None) -> Entry | None:
        """The warm path's probe: the live entry of a usable credential (enabled, not expired) whose
        ``secret`` matched before (``None``: the route wants no secret); ``None`` when the general
        check must decide, e.g. because a change-log poll is due (:attr:`current_until`)."""
        now = self.clock()
        if now >= self.current_until:
            return None
        entry = self._entries.get(client_id)
        if entry is None or entry.expires < now or not entry.usable:
            return None
        if secret is not None:
            hasher = self._hasher.copy()  # digest(), inline: a call less on the hot path
            hasher.update(secret.encode("utf-8", "surrogateescape"))
            if hasher.digest() not in entry.verified:
                return None
        entry.used = now
        return entry

    def is_unknown(self, client_id: str) -> bool:
        expires = self._unknown.get(client_id)
        return expires is not None and expires >= self.clock()

    def put(self, client_id: str, record: ClientRecord | None, epoch: int) -> Entry | None:
        """Remember a lookup made when :attr:`epoch` was ``epoch`` (skipped if evictions came since)."""
        if self.size <= 0:
            return self.entry(record) if record is not None else None
        with self._lock:
            if epoch != self.epoch:
                return self.entry(record) if record is not None else None
            if record is None:
                self._unknown.pop(client_id, None)
                self._unknown[client_id] = self.clock() + self.negative_ttl
                while len(self._unknown) > self.negative_size:
                    del self._unknown[next(iter(self._unknown))]
                return None
            entry = self.entry(record)
            self._drop(client_id)
            self._entries[client_id] = entry
            self._shrink()
            return entry

    def _shrink(self) -> None:
        """CLOCK eviction: the oldest entry goes unless it was used since its last chance."""
        entries = self._entries
        now = self.clock()
        while len(entries) > self.size:
            client_id = next(iter(entries))
            entry = entries[client_id]
            if entry.used > entry.chance and entry.expires >= now:
                del entries[client_id]
                entry.chance = entry.used
                entries[client_id] = entry  # second chance: back to the end
            else:
                self._drop(client_id)

    def _drop(self, client_id: str) -> Entry | None:
        """Remove an entry (under the lock), keeping its last use for :meth:`take_uses`."""
        entry = self._entries.pop(client_id, None)
        dropped = self.dropped_uses
        if entry is not None and entry.used > entry.reported and dropped is not None:
            dropped[client_id] = max(entry.used, dropped.get(client_id, 0.0))
        return entry

    def take_uses(self) -> dict[str, float]:
        """Every credential whose entry authenticated a request since the last call (client ID ->
        when it last did, by :attr:`clock`), entries dropped meanwhile included."""
        with self._lock:
            uses, self.dropped_uses = self.dropped_uses or {}, {}
            for cid, entry in self._entries.items():
                used = entry.used  # read once: a request may set it meanwhile, and is reported next time
                if used > entry.reported:
                    entry.reported = used
                    uses[cid] = max(used, uses.get(cid, 0.0))
        return uses

    def mark_used(self, entry: Entry) -> None:
        """The general check authenticated a request with ``entry`` (the warm path marks it inline)."""
        now = self.clock()
        if entry.used:
            entry.used = now
        else:  # its first use: one for last_used_at, not yet a second chance from the CLOCK eviction
            entry.used = entry.chance = now

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

        Verified digests survive a change that kept the secret's hash, the previous one and its grace
        period (a rename, a disable, new roles), so the next request is answered without a hash
        check; any other change of them starts afresh. The entry's last use is carried over.
        """
        with self._lock:
            self.epoch += 1
            for client_id, record in records.items():
                self._unknown.pop(client_id, None)
                if record is None:
                    self._drop(client_id)
                    continue
                old = self._entries.pop(client_id, None)
                keep = old is not None and _hashes(old.record) == _hashes(record)
                entry = self._entries[client_id] = self.entry(record, set(old.verified) if keep and old else None)
                if old is not None:
                    entry.used, entry.chance, entry.reported = old.used, old.chance, old.reported
            self._shrink()

    def evict(self, client_ids: Iterable[str]) -> None:
        with self._lock:
            self.epoch += 1
            for cid in client_ids:
                self._drop(cid)
                self._unknown.pop(cid, None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            for cid in list(self._entries):
                self._drop(cid)
            self._unknown.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<CredentialCache {len(self._entries)}/{self.size} clients, {len(self._unknown)} unknown>"
