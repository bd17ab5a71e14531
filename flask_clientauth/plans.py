"""Plans: which operations a client may call and how often (API Connect's plans).

A plan comes from ``CLIENTAUTH_PLANS`` or from an API Connect product document
(``CLIENTAUTH_PRODUCT``, read by :mod:`.product`); its operations are resolved against the app's
OpenAPI document when that is loaded, so a plan never names an operation the document lacks.
``CLIENTAUTH_PLANS`` is read in :mod:`.settings`, product documents and the resolution in
:mod:`.product`; enforcement (counters, 429, ``not_in_plan``) lives in :mod:`.planlimits`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from limits import RateLimitItem
from limits.limits import (
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
    RateLimitItemPerSecond,
    RateLimitItemPerYear,
)

from .errors import ClientAuthError
from .models import PLAN_MAX

if TYPE_CHECKING:
    from .spec import Spec

#: Each unit a limit may be given in, and how it is counted (a week is 7 days: `limits` has no weeks).
_UNITS: dict[str, tuple[type[RateLimitItem], int]] = {
    "second": (RateLimitItemPerSecond, 1),
    "minute": (RateLimitItemPerMinute, 1),
    "hour": (RateLimitItemPerHour, 1),
    "day": (RateLimitItemPerDay, 1),
    "week": (RateLimitItemPerDay, 7),
    "month": (RateLimitItemPerMonth, 1),
    "year": (RateLimitItemPerYear, 1),
}
#: ``5/minute``, ``1000 per day``, ``100 per 2 hours`` (`limits`), ``100/1hour``, ``10/30second`` (API Connect).
_LIMIT = re.compile(r"\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+)?\s*([A-Za-z]+)\s*", re.IGNORECASE)
#: A plan name: what ``flask clients plan`` takes and the ``plan`` column holds (API Connect's names fit).
_NAME = re.compile(rf"[A-Za-z0-9_.:-]{{1,{PLAN_MAX}}}")
_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


def parse_limit(text: str) -> RateLimitItem:
    """A rate limit from ``text``: `limits` syntax (``5/minute``, ``100 per second``) or API Connect's
    (``100/1hour``, ``10/30second``); :class:`ValueError` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a rate limit must be a string such as '5/minute', not {type(text).__name__}")
    match = _LIMIT.fullmatch(text)
    unit = match.group(3).lower() if match else ""
    unit = unit[:-1] if unit.endswith("s") and unit[:-1] in _UNITS else unit
    if match is None or unit not in _UNITS:
        what = f"unknown unit {match.group(3)!r}" if match else "not a rate limit"
        raise ValueError(
            f"{text[:80]!r}: {what}; give a count per period, such as '5/minute', '1000 per day', "
            f"'100/1hour' or '10/30second' (units: {', '.join(_UNITS)})"
        )
    amount, multiples = int(match.group(1)), int(match.group(2) or 1)
    if amount < 1 or multiples < 1:
        raise ValueError(
            f"{text[:80]!r}: a limit allows at least 1 call in at least 1 unit of time "
            "(to refuse an operation, leave it out of the plan's operations)"
        )
    cls, factor = _UNITS[unit]
    return cls(amount, multiples * factor)


def format_limit(item: RateLimitItem) -> str:
    """A limit as people write it: ``5 per minute``, ``10 per 30 seconds``."""
    unit = item.GRANULARITY.name
    if item.multiples == 1:
        return f"{item.amount} per {unit}"
    return f"{item.amount} per {item.multiples} {unit}s"


class UnknownPlan(ClientAuthError, LookupError):
    """A plan name that is not configured (a typo in the CLI, or a stored plan that was removed)."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        configured = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown plan {name!r} (configured plans: {configured})")


@dataclass(frozen=True)
class PlanLimit:
    """One limit of a plan as a counter: ``scope`` says which calls share it.

    ``"plan"`` and ``"burst"`` limits count all the client's calls the plan covers; an
    ``"operation"`` limit counts only ``operation``'s calls (a product's per-operation limit).
    """

    item: RateLimitItem
    scope: Literal["plan", "burst", "operation"]
    operation: str | None = None

    @property
    def key(self) -> str:
        """What tells this counter from the plan's others (with the client's key and the limit's)."""
        return self.scope if self.operation is None else f"{self.scope}:{self.operation}"


@dataclass(frozen=True)
class Plan:
    """A plan: its limits and the operations it covers (labels such as ``"GET /branches"``).

    ``operations`` ``None`` covers every operation, the routes outside the document included; a
    plan that lists operations covers those alone. ``operation_limits`` are a product's
    per-operation rate limits: as in API Connect they take the place of the plan's rate limits for
    that operation (its burst limits still apply).
    """

    name: str
    rate_limits: tuple[RateLimitItem, ...] = ()
    burst_limits: tuple[RateLimitItem, ...] = ()
    operations: frozenset[str] | None = None
    operation_limits: Mapping[str, tuple[RateLimitItem, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    title: str = ""
    description: str = ""
    #: Where the plan was defined: ``"CLIENTAUTH_PLANS"`` or the product document's path.
    source: str = field(default="CLIENTAUTH_PLANS", compare=False)

    def covers(self, operation: str | None) -> bool:
        """Whether a client on this plan may call ``operation`` (``None``: a route outside the document)."""
        return self.operations is None or (operation is not None and operation in self.operations)

    def counters(self, operation: str | None) -> tuple[PlanLimit, ...]:
        """The limits a call to ``operation`` counts against, each with the scope of its counter."""
        burst = tuple(PlanLimit(item, "burst") for item in self.burst_limits)
        own = self.operation_limits.get(operation) if operation is not None else None
        if own is not None:
            return burst + tuple(PlanLimit(item, "operation", operation) for item in own)
        return burst + tuple(PlanLimit(item, "plan") for item in self.rate_limits)

    def limits_for(self, operation: str | None) -> tuple[RateLimitItem, ...]:
        """The limits a call to ``operation`` is held to: the plan's burst limits, and the operation's
        own rate limits where the plan has them, else the plan's rate limits."""
        return tuple(limit.item for limit in self.counters(operation))

    @property
    def unlimited(self) -> bool:
        """No limit at all (the plan may still restrict the operations)."""
        return not (self.rate_limits or self.burst_limits or any(self.operation_limits.values()))

    def to_dict(self) -> dict[str, Any]:
        """The ``flask clients plans --json`` shape (``clients`` and ``default`` are added there)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "source": self.source,
            "rate_limits": [format_limit(i) for i in self.rate_limits],
            "burst_limits": [format_limit(i) for i in self.burst_limits],
            "operations": None if self.operations is None else sorted(self.operations),
            "operation_limits": {
                op: [format_limit(i) for i in items] for op, items in sorted(self.operation_limits.items())
            },
        }


class Plans(Mapping[str, Plan]):
    """The configured plans by name, and the default plan (``None``: clients without a plan are not limited)."""

    def __init__(self, plans: Iterable[Plan] = (), default: str | None = None) -> None:
        self._plans = {plan.name: plan for plan in plans}
        if default is not None and default not in self._plans:
            raise UnknownPlan(default, self._plans)
        self.default: Plan | None = None if default is None else self._plans[default]

    def __getitem__(self, name: str) -> Plan:
        return self._plans[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plans)

    def __len__(self) -> int:
        return len(self._plans)

    def __repr__(self) -> str:
        default = f" default={self.default.name!r}" if self.default else ""
        return f"<Plans {sorted(self._plans)}{default}>"

    def require(self, name: str) -> Plan:
        """The plan called ``name``; :class:`UnknownPlan` (listing the configured ones) when there is none."""
        try:
            return self._plans[name]
        except KeyError:
            raise UnknownPlan(name, self._plans) from None

    def report(self, counts: Mapping[str | None, int]) -> list[dict[str, Any]]:
        """Each plan's :meth:`Plan.to_dict` with ``configured``, ``default``, ``clients`` (on it by
        name) and ``clients_by_default`` (without a plan, held to it as the default); then each stored
        plan name that is not configured (``configured`` false: those clients are refused).
        The ``flask clients plans --json`` shape; ``counts`` is :meth:`.ClientStore.plan_counts`."""
        report = []
        for plan in self._plans.values():
            is_default = plan is self.default
            report.append(
                {
                    **plan.to_dict(),
                    "configured": True,
                    "default": is_default,
                    "clients": counts.get(plan.name, 0),
                    "clients_by_default": counts.get(None, 0) if is_default else 0,
                }
            )
        for name in sorted(n for n in counts if n is not None and n not in self._plans):
            report.append({"name": name, "configured": False, "default": False, "clients": counts[name]})
        return report

    def for_client(self, plan_name: str | None) -> Plan | None:
        """The plan a client with ``plan_name`` stored is held to: its own, else the default, else
        ``None`` (not limited). A stored name that is no longer configured raises :class:`UnknownPlan`."""
        if plan_name is None:
            return self.default
        return self.require(plan_name)


def check_plan_name(name: Any) -> str:
    """A plan name as given; :class:`ValueError` when it could never be stored or typed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name[:80]) if isinstance(name, str) else type(name).__name__
        raise ValueError(f"a plan name must be 1 to {PLAN_MAX} letters, digits or _ . : - (got {shown})")
    return name


# -- operations -------------------------------------------------------------------------------


class OperationIndex:
    """The document's operations by label and by operationId (what plans may name)."""

    def __init__(self, spec: Spec) -> None:
        self.source = spec.source
        self.labels = {op.label for op in spec.operations}
        self.by_id = {op.operation_id: op.label for op in spec.operations if op.operation_id}

    def resolve(self, entry: str) -> str | None:
        """``entry`` (``"get /branches"``, ``"GET /branches"`` or an operationId) as a label, ``None`` if unknown."""
        method, _, path = entry.strip().partition(" ")
        if method.upper() in _METHODS and path.strip().startswith("/"):
            label = f"{method.upper()} {path.strip()}"
            return label if label in self.labels else None
        return self.by_id.get(entry.strip())

    def unknown(self, entry: str) -> str:
        """Why ``entry`` resolves to nothing, with the closest operations the document has."""
        import difflib

        close = difflib.get_close_matches(entry.strip(), [*self.labels, *self.by_id], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return f"{entry!r} is neither an operation ('METHOD /path') nor an operationId of {self.source}{hint}"
