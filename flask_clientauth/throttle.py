"""Throttling of failed credential checks, per client ID and per remote address.

A wrong secret costs a bcrypt check (about a quarter of a second at cost 12) and an unknown
client ID a database lookup. Past the limits, requests that would cost either get 429
without running them. Counting uses the `limits` library: in-process by default, shared
across processes and hosts with a Redis (or Memcached, MongoDB) storage URI.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from .errors import ClientAuthError

logger = logging.getLogger("flask_clientauth")

STRATEGIES: dict[str, type[RateLimiter]] = {
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


#: The per-address key of every peer without an IP address: gunicorn on a unix socket gives
#: ``REMOTE_ADDR=""``, Werkzeug's server ``"<local>"``, other servers none. Such peers cannot be
#: told apart, so they share this one bucket (RFC 7239 calls such a node ``unknown`` too).
UNKNOWN_ADDRESS = "unknown"


def peer_ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's IP address, or ``None`` when ``address`` is missing, empty or not an IP address."""
    if not address:
        return None
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None


def address_key(address: str | None) -> str:
    """What the per-address limit counts: an IPv4 address, the /64 network of an IPv6 one, or
    :data:`UNKNOWN_ADDRESS` for a peer without an IP address.

    One IPv6 subscriber usually holds a whole /64 (2**64 addresses); counting each address
    apart would let it try without limit. IPv4-mapped IPv6 addresses count as their IPv4.
    """
    ip = peer_ip(address)
    if ip is None:
        return UNKNOWN_ADDRESS
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


#: Exhausted limits remembered in each process, at most (the oldest are forgotten first).
BLOCKED_MAX = 10_000


class ThrottleUnavailable(ClientAuthError):
    """The counter storage cannot be reached; the message never holds its address."""


class FailureThrottle:
    """Counts failures and says when a client ID or an address has had too many."""

    def __init__(
        self,
        storage_uri: str,
        *,
        per_client: str | None,
        per_address: str | None,
        strategy: str = "fixed-window",
        key_prefix: str = "clientauth",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"CLIENTAUTH_RATELIMIT_STRATEGY must be one of {', '.join(STRATEGIES)}")
        self._limiter = STRATEGIES[strategy](storage_from_string(storage_uri))
        self._per_client: RateLimitItem | None = parse(per_client) if per_client else None
        self._per_address: RateLimitItem | None = parse(per_address) if per_address else None
        self._prefix = key_prefix
        #: (kind, key) -> when its exhausted window resets (epoch seconds): while it lasts, the
        #: answer is known without asking the storage (a Redis round trip per refused request).
        self._blocked: dict[tuple[str, str], float] = {}
        self._warned_unknown = False

    def _keys(self, client_id: str | None, address: str | None) -> list[tuple[RateLimitItem, str, str]]:
        keys = []
        if self._per_client is not None and client_id is not None:
            keys.append((self._per_client, "client", client_id))
        if self._per_address is not None:
            key = address_key(address)
            if key == UNKNOWN_ADDRESS and not self._warned_unknown:
                self._warn_unknown(address)
            keys.append((self._per_address, "address", key))
        return keys

    def _warn_unknown(self, address: str | None) -> None:
        self._warned_unknown = True
        logger.warning(
            "clientauth: a request came without an IP address (REMOTE_ADDR %s), as from gunicorn on a"
            " unix socket: all such peers share one failure-throttle bucket, so one of them can make the"
            " others wait; behind a proxy, apply werkzeug's ProxyFix so that each client has its address",
            "missing" if address is None else repr(address[:40]),
        )

    def retry_after(self, client_id: str | None, address: str | None) -> int | None:
        """Seconds to wait when a limit is exhausted, else ``None``."""
        keys = self._keys(client_id, address)
        now = time.time()
        for _item, kind, key in keys:
            until = self._blocked.get((kind, key))
            if until is not None:
                if until > now:
                    return max(1, math.ceil(until - now))
                self._blocked.pop((kind, key), None)
        try:
            for item, kind, key in keys:
                if not self._limiter.test(item, self._prefix, kind, key):
                    reset, _ = self._limiter.get_window_stats(item, self._prefix, kind, key)
                    self._block((kind, key), reset)
                    return max(1, math.ceil(reset - time.time()))
        except Exception as exc:
            raise ThrottleUnavailable(f"rate-limit storage unavailable ({type(exc).__name__})") from None
        return None

    def _block(self, key: tuple[str, str], until: float) -> None:
        """Remember an exhausted limit until its window resets (counts only grow until then)."""
        self._blocked.pop(key, None)
        self._blocked[key] = until
        while len(self._blocked) > BLOCKED_MAX:
            try:
                del self._blocked[next(iter(self._blocked))]
            except (KeyError, RuntimeError, StopIteration):  # another thread got there first
                break

    def failed(self, client_id: str | None, address: str | None) -> None:
        """Count one failed check against the client ID and the address."""
        try:
            for item, kind, key in self._keys(client_id, address):
                self._limiter.hit(item, self._prefix, kind, key)
        except Exception as exc:
            raise ThrottleUnavailable(f"rate-limit storage unavailable ({type(exc).__name__})") from None

    def reset(self) -> None:
        """Forget every counter (tests, or after an incident)."""
        self._blocked.clear()
        self._limiter.storage.reset()
