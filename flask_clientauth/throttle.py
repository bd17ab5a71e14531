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
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from . import errors
from .errors import AuthFailure, ClientAuthError

if TYPE_CHECKING:
    from .settings import Settings

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


class NoThrottle:
    """``CLIENTAUTH_RATELIMIT_ENABLED = False``: nothing is counted, refused or remembered."""

    #: Whether :meth:`FailureThrottle.note` does anything (the fast path inlines it).
    remembers = False
    known: Mapping[tuple[str, str | None], None] = {}

    def check(self, client_id: str | None, address: str | None) -> None:
        """Never refuses."""

    def failed(self, client_id: str | None, address: str | None) -> None:
        """Counts nothing."""

    def note(self, client_id: str, address: str | None) -> None:
        """Remembers nothing."""

    def remember(self, client_id: str, address: str | None) -> None:
        """Remembers nothing."""

    def reset(self) -> None:
        """Nothing to forget."""


class FailureThrottle(NoThrottle):
    """The failure rules: counts failures, refuses a client ID or an address that had too many,
    and exempts an address from a client's limit once it proved it holds the client's secret."""

    remembers = True

    def __init__(
        self,
        storage_uri: str,
        *,
        per_client: str | None,
        per_address: str | None,
        strategy: str = "fixed-window",
        key_prefix: str = "clientauth",
        memory: int = 1,
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
        #: (client ID, address) pairs that authenticated before: exempt from the per-client limit,
        #: so that a flood of wrong secrets for a client ID does not lock its owner out. At most
        #: ``memory`` pairs (the cache's size), the least recently proven forgotten first.
        self.known: OrderedDict[tuple[str, str | None], None] = OrderedDict()
        self._known_lock = threading.Lock()
        self._memory = max(memory, 1)

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

    def check(self, client_id: str | None, address: str | None) -> None:
        """Refuse with 429, before any costly work, once the failure limits are reached.
        ``client_id`` is ``None`` for a check that costs a store lookup, not a bcrypt check."""
        if client_id is not None and (client_id, address) in self.known:
            client_id = None  # this address has proven it holds the secret before
        wait = self.retry_after(client_id, address)
        if wait is not None:
            raise AuthFailure(errors.THROTTLED, headers={"Retry-After": str(wait)})

    def note(self, client_id: str, address: str | None) -> None:
        """Remember ``address`` after a secret verified from the cache: proof as good as bcrypt's.
        Without this, an owner's address first served from the cache (a second host of the owner,
        a new IP) would lose the exemption, and get 429, once the entry expires during a flood.
        An address already known is left in place: the hot path takes no lock."""
        if (client_id, address) not in self.known:
            self.remember(client_id, address)

    def remember(self, client_id: str, address: str | None) -> None:
        """Exempt ``address`` from the client's limit from now on, unless it is no IP address: peers
        without one (a unix socket) cannot be told apart, and an attacker among them must not
        inherit the owner's exemption."""
        if peer_ip(address) is None:
            return
        key = (client_id, address)
        with self._known_lock:
            self.known[key] = None
            self.known.move_to_end(key)
            while len(self.known) > self._memory:
                self.known.popitem(last=False)

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


def throttle_for(settings: Settings, *, key_prefix: str, memory: int) -> NoThrottle:
    """The throttle ``CLIENTAUTH_RATELIMIT_*`` configure; ``memory`` bounds the known addresses."""
    if not settings.ratelimit_enabled:
        return NoThrottle()
    return FailureThrottle(
        settings.ratelimit_storage_uri,
        per_client=settings.ratelimit_per_client,
        per_address=settings.ratelimit_per_address,
        strategy=settings.ratelimit_strategy,
        key_prefix=key_prefix,
        memory=memory,
    )
