"""The per-process verified-credential cache.

After one successful bcrypt check, later requests with the same client ID and secret are
verified from memory: the cache keeps each client's record with keyed BLAKE2 digests of
secrets that matched (never the secrets). Unknown IDs are kept apart, in a smaller
negative cache, so a flood of random IDs cannot push real clients out.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .store import ClientRecord

#: How many verified secrets one client may have in the cache (rotation overlaps).
MAX_SECRETS_PER_CLIENT = 4


@dataclass
class Entry:
    record: ClientRecord
    expires: float
    verified: set[bytes] = field(default_factory=set)


class CredentialCache:
    """Thread-safe LRU with TTL. ``size=0`` disables caching altogether."""

    def __init__(self, *, size: int, ttl: float, negative_size: int, negative_ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self.negative_size = negative_size
        self.negative_ttl = negative_ttl
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._key = os.urandom(32)
        #: Bumped by every eviction; a read that started before one must not be cached.
        self.epoch = 0

    def digest(self, secret: str) -> bytes:
        return hashlib.blake2b(secret.encode("utf-8", "surrogateescape"), key=self._key, digest_size=16).digest()

    def get(self, client_id: str) -> Entry | None:
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        if entry.expires < time.monotonic():
            with self._lock:
                if self._entries.get(client_id) is entry:
                    del self._entries[client_id]
            return None
        with self._lock:
            if client_id in self._entries:
                self._entries.move_to_end(client_id)
        return entry

    def is_unknown(self, client_id: str) -> bool:
        expires = self._unknown.get(client_id)
        return expires is not None and expires >= time.monotonic()

    def put(self, client_id: str, record: ClientRecord | None, epoch: int) -> Entry | None:
        """Remember a lookup made when :attr:`epoch` was ``epoch`` (skipped if evictions came since)."""
        if self.size <= 0:
            return Entry(record, 0.0) if record is not None else None
        with self._lock:
            if epoch != self.epoch:
                return Entry(record, 0.0) if record is not None else None
            if record is None:
                self._unknown[client_id] = time.monotonic() + self.negative_ttl
                self._unknown.move_to_end(client_id)
                while len(self._unknown) > self.negative_size:
                    self._unknown.popitem(last=False)
                return None
            entry = Entry(record, time.monotonic() + self.ttl)
            self._entries[client_id] = entry
            self._entries.move_to_end(client_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return entry

    @staticmethod
    def mark_verified(entry: Entry, digest: bytes) -> None:
        if len(entry.verified) >= MAX_SECRETS_PER_CLIENT:
            entry.verified.clear()
        entry.verified.add(digest)

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
