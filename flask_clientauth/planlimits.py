"""Enforcing a client's plan: its rate limits, counted per client across all of its credentials.

Counters live in ``CLIENTAUTH_RATELIMIT_STORAGE_URI`` through the `limits` library, under the
library's own keys (``LIMITER/clientauth:<app>/plan/{<client pk>}/5/1/minute``), so that
``flask clients usage`` and any `limits` tool read the same numbers.

A request is admitted only when every limit has room, and then counts against every one of
them; a refused request counts against none. With Redis, that decision is one Lua script (one
round trip, atomic: exact under any concurrency); with the in-process memory storage it is taken
under a lock. Other storages (Memcached, MongoDB, Redis with the sliding-window-counter strategy)
go through the library's strategies one limit at a time: still never over the limit, but a
request refused by one limit may have counted against the limits checked before it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string

from . import errors
from .errors import AuthFailure, ClientAuthError
from .plans import format_limit
from .throttle import STRATEGIES

if TYPE_CHECKING:
    from .plans import Plan, PlanLimit
    from .store import ClientRecord

logger = logging.getLogger("flask_clientauth")

#: How often the memory counters whose window ended are forgotten (seconds).
SWEEP_INTERVAL = 60.0
#: ``CLIENTAUTH_PLAN_LIMITS_ON_ERROR = "open"``: the counter store's failure is logged at most this often.
OPEN_WARNING_INTERVAL = 60.0

# One call decides a request against all of its limits: refused (nothing counted) by the first
# limit without room, else counted against every one. ARGV[1] is the cost, then (limit, expiry)
# per key. Returns {0, count, ttl_ms, count, ttl_ms, ...} or {refusing index, count, ttl_ms}.
FIXED_WINDOW_LUA = """
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local count = tonumber(redis.call('get', KEYS[i])) or 0
  if count + cost > tonumber(ARGV[2 * i]) then
    return {i, count, redis.call('pttl', KEYS[i])}
  end
end
local out = {0}
for i = 1, #KEYS do
  local count = redis.call('incrby', KEYS[i], cost)
  local ttl = redis.call('pttl', KEYS[i])
  if ttl < 0 then
    local expiry = tonumber(ARGV[2 * i + 1])
    redis.call('expire', KEYS[i], expiry)
    ttl = expiry * 1000
  end
  out[#out + 1] = count
  out[#out + 1] = ttl
end
return out
"""

# The moving window, in the `limits` list format (newest timestamp first, trimmed to the limit).
# ARGV[1] is now (seconds, a string: Lua numbers returned to Redis lose their fraction), ARGV[2] the
# cost, then (limit, expiry) per key. Returns {0, count, oldest, ...} or {index, count, oldest}, the
# count and oldest timestamp of the entries inside the window.
MOVING_WINDOW_LUA = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local function window(key, limit, expiry)
  local low, high, found = 0, limit - 1, nil
  while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', key, mid))
    if value and value >= now - expiry then found = mid; low = mid + 1 else high = mid - 1 end
  end
  if found == nil then return 0, now end
  return found + 1, tonumber(redis.call('lindex', key, found))
end
for i = 1, #KEYS do
  local limit, expiry = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  local entry = tonumber(redis.call('lindex', KEYS[i], limit - cost))
  if cost > limit or (entry and entry >= now - expiry) then
    local count, oldest = window(KEYS[i], limit, expiry)
    return {i, count, tostring(oldest)}
  end
end
local out = {0}
for i = 1, #KEYS do
  local limit, expiry = tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  for _ = 1, cost do redis.call('lpush', KEYS[i], ARGV[1]) end
  redis.call('ltrim', KEYS[i], 0, limit - 1)
  redis.call('expire', KEYS[i], expiry)
  local count, oldest = window(KEYS[i], limit, expiry)
  out[#out + 1] = count
  out[#out + 1] = tostring(oldest)
end
return out
"""


class PlanLimitsUnavailable(ClientAuthError):
    """The counter storage cannot be reached; the message never holds its address."""


class PlanCounter(NamedTuple):
    """One limit of a plan as counted for a request: its `limits` key is ``head + str(pk) + tail``
    (exactly what ``item.key_for(*identifiers)`` builds, put together without its calls)."""

    limit: PlanLimit
    amount: int
    expiry: int
    head: str
    tail: str

    def key(self, pk: int) -> str:
        return f"{self.head}{pk}{self.tail}"


class Window(NamedTuple):
    """Where a client stands under one limit: what ``X-RateLimit-*`` report."""

    limit: int
    remaining: int
    #: When the window resets, in epoch seconds.
    reset: float

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (epoch seconds, as GitHub and Flask-Limiter)."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset)),
        }


@dataclass(frozen=True)
class LimitUsage:
    """One limit of a client's plan, as ``flask clients usage`` shows it."""

    limit: PlanLimit
    used: int
    remaining: int
    #: Epoch seconds; ``None`` while no window is open (the first request opens one).
    reset: float | None

    def to_dict(self) -> dict[str, Any]:
        reset = None if self.reset is None else math.ceil(self.reset)
        return {
            "limit": format_limit(self.limit.item),
            "scope": self.limit.scope,
            "operation": self.limit.operation,
            "used": self.used,
            "remaining": self.remaining,
            "reset": reset,
            "reset_at": None if reset is None else datetime.fromtimestamp(reset, timezone.utc).isoformat(),
        }


class PlanLimiter:
    """Counts requests against plan limits, per client (``ClientRecord.pk``), in one storage."""

    def __init__(
        self,
        storage_uri: str,
        *,
        strategy: str = "fixed-window",
        key_prefix: str = "clientauth",
        on_error: str = "closed",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        storage = storage_from_string(storage_uri)
        assert isinstance(storage, Storage), "an async storage URI (settings.storage_uri refuses them)"
        self.storage: Storage = storage
        self.strategy = strategy
        self._limiter = STRATEGIES[strategy](self.storage)
        self._prefix = key_prefix
        self.fail_open = on_error == "open"
        self._clock = clock
        self._warned_at: float | None = None
        self._lock = threading.Lock()
        #: (id of the plan, operation) -> (the plan, its counters); a Plan holds a dict: not hashable.
        self._rules: dict[tuple[int, str | None], tuple[Plan, tuple[PlanCounter, ...]]] = {}
        self._script: Any = None
        if isinstance(self.storage, RedisStorage) and strategy in ("fixed-window", "moving-window"):
            lua = FIXED_WINDOW_LUA if strategy == "fixed-window" else MOVING_WINDOW_LUA
            self._script = self.storage.get_connection().register_script(lua.encode())
            #: The storage's key prefix ("LIMITS:"), as its ``prefixed_key`` writes it (older ``limits``
            #: releases have no ``key_prefix`` attribute).
            self._redis_prefix = self.storage.prefixed_key("")
        #: Memory counters are this process's alone: a lock makes test-then-count exact.
        self._exclusive = isinstance(self.storage, MemoryStorage)
        #: Fixed windows in memory: counted with the storage's own get / incr, without the strategy's calls.
        self._memory_fixed = (
            self._exclusive
            and strategy == "fixed-window"
            and hasattr(self.storage, "storage")
            and hasattr(self.storage, "expirations")
        )
        self._next_sweep = 0.0

    # -- keys ---------------------------------------------------------------------------
    def identifiers(self, pk: int, limit: PlanLimit) -> tuple[str, ...]:
        """The `limits` identifiers of a client's counter: ``clientauth:<app>``, the limit's scope
        (``plan``, ``burst``, ``operation``), the client, the operation if any. The primary key is a
        Redis Cluster hash tag (``{17}``): a script may only touch keys of one slot, and all of a
        client's keys share it. A client keeps its counts when it changes plans."""
        if limit.operation is None:
            return (self._prefix, limit.scope, f"{{{pk}}}")
        return (self._prefix, limit.scope, f"{{{pk}}}", limit.operation)

    def rules(self, plan: Plan, operation: str | None) -> tuple[PlanCounter, ...]:
        """The plan's counters for ``operation`` (:meth:`Plan.counters`), computed once per (plan, operation);
        a limit listed twice is one counter."""
        known = self._rules.get((id(plan), operation))
        if known is not None and known[0] is plan:
            return known[1]
        counters = []
        for limit in dict.fromkeys(plan.counters(operation)):
            head, _, tail = limit.item.key_for(*self.identifiers(0, limit)).partition("{0}")
            counters.append(PlanCounter(limit, limit.item.amount, limit.item.get_expiry(), head + "{", "}" + tail))
        rules = tuple(counters)
        self._rules[(id(plan), operation)] = (plan, rules)
        return rules

    # -- the check ------------------------------------------------------------------------
    def check(self, record: ClientRecord, plan: Plan, operation: str | None) -> Window | None:
        """Count one request of ``record``'s client to ``operation`` under ``plan``.

        Returns the tightest limit's window (least remaining), or ``None`` when the plan sets no
        limit here (or the storage is down and ``CLIENTAUTH_PLAN_LIMITS_ON_ERROR = "open"``).
        Raises :class:`AuthFailure`: 403 ``not_in_plan``, 429 ``rate_limited``, or 503
        ``plan_limits_unavailable`` when the storage is down and limits fail closed.
        """
        if not plan.covers(operation):
            raise AuthFailure(errors.NOT_IN_PLAN)
        rules = self.rules(plan, operation)
        if not rules:
            return None
        try:
            refused, windows = self.hit(record.pk, rules)
        except PlanLimitsUnavailable as exc:
            if not self.fail_open:
                logger.error("clientauth: %s; answering 503 (CLIENTAUTH_PLAN_LIMITS_ON_ERROR = 'closed')", exc)
                raise AuthFailure(errors.PLAN_LIMITS_UNAVAILABLE) from None
            now = self._clock()
            if self._warned_at is None or now - self._warned_at >= OPEN_WARNING_INTERVAL:
                self._warned_at = now
                logger.warning(
                    "clientauth: %s; serving requests without plan limits (CLIENTAUTH_PLAN_LIMITS_ON_ERROR = 'open';"
                    " said at most once a minute)",
                    exc,
                )
            return None
        if refused is not None:
            window = windows[0]
            headers = window.headers()
            headers["Retry-After"] = str(max(1, math.ceil(window.reset - time.time())))
            raise AuthFailure(errors.RATE_LIMITED, headers=headers)
        if len(windows) == 1:
            return windows[0]
        return min(windows, key=lambda w: (w.remaining, -w.reset))

    def hit(self, pk: int, rules: tuple[PlanCounter, ...], cost: int = 1) -> tuple[PlanLimit | None, list[Window]]:
        """Count ``cost`` against every limit of ``rules`` if each has room, else against none.

        Returns ``(None, one window per rule)`` when counted, ``(the refusing rule, [its window])``
        when refused. Raises :class:`PlanLimitsUnavailable` when the storage fails.
        """
        try:
            if self._script is not None:
                return self._hit_redis(pk, rules, cost)
            if self._memory_fixed:
                with self._lock:
                    return self._hit_memory(pk, rules, cost)
            if self._exclusive:
                with self._lock:
                    return self._hit_library(pk, rules, cost)
            return self._hit_library(pk, rules, cost)
        except Exception as exc:
            raise PlanLimitsUnavailable(f"rate-limit storage unavailable ({type(exc).__name__})") from None

    def _hit_redis(self, pk: int, rules: tuple[PlanCounter, ...], cost: int) -> tuple[PlanLimit | None, list[Window]]:
        prefix = self._redis_prefix
        keys = [f"{prefix}{c.head}{pk}{c.tail}" for c in rules]
        now = time.time()
        fixed = self.strategy == "fixed-window"
        args: list[Any] = [cost] if fixed else [repr(now), cost]
        for counter in rules:
            args += (counter.amount, counter.expiry)
        out = self._script(keys, args)
        first = int(out[0])
        picked = rules if first == 0 else (rules[first - 1],)
        windows = []
        for counter, count, when in zip(picked, out[1::2], out[2::2], strict=True):
            if not fixed:
                reset = float(when) + counter.expiry
            elif int(when) < 0:  # no counter yet (refused by a cost larger than the limit)
                reset = now + counter.expiry
            else:
                reset = now + int(when) / 1000
            windows.append(Window(counter.amount, max(0, counter.amount - int(count)), reset))
        return (None if first == 0 else rules[first - 1].limit), windows

    def _hit_memory(self, pk: int, rules: tuple[PlanCounter, ...], cost: int) -> tuple[PlanLimit | None, list[Window]]:
        """Fixed windows in this process, under the lock: each counter checked, then all counted.

        Reads and writes the memory storage's own tables (``storage`` and ``expirations``, as its
        ``get`` and ``incr`` do) without ``incr``: that starts an expiry thread whenever its last
        one ended (every 10 ms), which would cost a busy worker a thread start every few requests.
        :meth:`_sweep` forgets ended windows instead, once a minute.
        """
        storage: MemoryStorage = self.storage  # type: ignore[assignment]
        counts, expirations = storage.storage, storage.expirations
        now = time.time()
        if now >= self._next_sweep:
            self._sweep(now)
        keys = [f"{c.head}{pk}{c.tail}" for c in rules]
        for counter, key in zip(rules, keys, strict=True):
            count = counts.get(key, 0) if expirations.get(key, 0) > now else 0
            if count + cost > counter.amount:
                reset = expirations.get(key, now + counter.expiry)
                return counter.limit, [Window(counter.amount, max(0, counter.amount - count), reset)]
        windows = []
        for counter, key in zip(rules, keys, strict=True):
            if expirations.get(key, 0) > now:
                count = counts[key] = counts[key] + cost
            else:  # a new window opens with this request
                count = counts[key] = cost
                expirations[key] = now + counter.expiry
            windows.append(Window(counter.amount, counter.amount - count, expirations[key]))
        return None, windows

    def _sweep(self, now: float) -> None:
        """Forget the memory counters whose window ended (the lock is held)."""
        storage: MemoryStorage = self.storage  # type: ignore[assignment]
        for key in [k for k, until in storage.expirations.items() if until <= now]:
            storage.storage.pop(key, None)
            storage.expirations.pop(key, None)
        self._next_sweep = now + SWEEP_INTERVAL

    def _hit_library(self, pk: int, rules: tuple[PlanCounter, ...], cost: int) -> tuple[PlanLimit | None, list[Window]]:
        limiter = self._limiter
        keyed = [(counter.limit, self.identifiers(pk, counter.limit)) for counter in rules]
        if self._exclusive:  # nothing else counts in between: refuse before counting anything
            for limit, ids in keyed:
                if not limiter.test(limit.item, *ids, cost=cost):
                    return limit, [self._window(limit, ids)]
        for limit, ids in keyed:
            if not limiter.hit(limit.item, *ids, cost=cost):  # atomic per limit: never over it
                return limit, [self._window(limit, ids)]
        return None, [self._window(limit, ids) for limit, ids in keyed]

    def _window(self, rule: PlanLimit, ids: tuple[str, ...]) -> Window:
        reset, remaining = self._limiter.get_window_stats(rule.item, *ids)
        return Window(rule.item.amount, max(0, remaining), reset)

    # -- reading --------------------------------------------------------------------------
    def usage(self, record: ClientRecord, plan: Plan) -> list[LimitUsage]:
        """Each limit of ``plan`` (plan-wide, then each operation's) with what ``record``'s client used.

        Reads the counters without counting; raises :class:`PlanLimitsUnavailable` when the storage fails.
        """
        rules = [c.limit for c in self.rules(plan, None)]
        for operation in sorted(plan.operation_limits):
            rules.extend(c.limit for c in self.rules(plan, operation) if c.limit.scope == "operation")
        try:
            with self._lock if self._exclusive else contextlib.nullcontext():
                rows = self._read(record.pk, rules)
        except Exception as exc:
            raise PlanLimitsUnavailable(f"rate-limit storage unavailable ({type(exc).__name__})") from None
        return rows

    def _read(self, pk: int, rules: list[PlanLimit]) -> list[LimitUsage]:
        rows = []
        for rule in rules:
            reset, remaining = self._limiter.get_window_stats(rule.item, *self.identifiers(pk, rule))
            remaining = max(0, min(remaining, rule.item.amount))
            used = rule.item.amount - remaining
            rows.append(LimitUsage(rule, used, remaining, reset if used else None))
        return rows

    def reset(self) -> None:
        """Forget every counter of this storage (tests, or after an incident)."""
        self.storage.reset()

    def close(self) -> None:
        """Close the storage's connections (a Redis connection pool); the next use opens new ones."""
        pool = getattr(getattr(self.storage, "storage", None), "connection_pool", None)
        if pool is not None:
            pool.disconnect()
