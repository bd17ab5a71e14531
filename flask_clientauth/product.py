"""The configured plans resolved against the document: ``CLIENTAUTH_PLANS``' and those of an API
Connect product document (``CLIENTAUTH_PRODUCT``), read here into :class:`~.plans.Plan` objects.

A product bundles APIs and plans; this app serves one API, so the product may list one. Each
plan's ``rate-limits`` / ``rate-limit`` and ``burst-limits`` become its limits, and a plan's
``apis: {API: {operations: [...]}}`` the operations it covers with their own rate limits. What the
extension cannot honour (a soft limit, several APIs, an unknown key that may change enforcement)
fails start-up with a :class:`~.spec.SpecError` naming the file, the plan and the feature;
docs/plans.rst has the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from limits import RateLimitItem

from .plans import OperationIndex, Plan, Plans, UnknownPlan, check_plan_name, parse_limit
from .settings import ConfigurationError
from .spec import Spec, SpecError, combine_errors, read_document

#: Product keys read here, and those that do not change what a gateway enforces (portal and
#: publishing matters), which are ignored.
_PRODUCT_READ = ("product", "plans", "apis")
_PRODUCT_IGNORED = ("info", "gateways", "visibility", "catalogs", "oauth-providers")
#: Plan keys read, and those ignored (``approval`` is met by the operator assigning the plan).
_PLAN_READ = ("rate-limit", "rate-limits", "burst-limits", "apis")
_PLAN_IGNORED = ("title", "description", "approval", "billing")
_LIMIT_KEYS = ("value", "hard-limit")
_OPERATION_KEYS = ("operationId", "operation", "path", "rate-limit", "rate-limits")
#: The product document versions read (the ``product:`` key).
PRODUCT_VERSIONS = ("1.0.0",)


def load_product(source: str, spec: Spec, *, root_path: str | None = None) -> tuple[Plan, ...]:
    """The plans of the product document at ``source`` (relative to ``root_path``, as ``CLIENTAUTH_SPEC``),
    their operations resolved against ``spec``; every problem at once, in one :class:`SpecError`."""
    label, document, _file = read_document(source, root_path=root_path)
    return _Product(label, document, spec).read()


class _Product:
    def __init__(self, label: str, document: Mapping[str, Any], spec: Spec) -> None:
        self.label = label
        self.doc = document
        self.index = OperationIndex(spec)
        self.errors: list[SpecError] = []

    def fail(self, message: str, where: str | None = None) -> SpecError:
        return SpecError(self.label, message, where=where)

    def read(self) -> tuple[Plan, ...]:
        version = self.doc.get("product")
        if version is None:
            raise self.fail("not an API Connect product document: it has no 'product: 1.0.0' key")
        if str(version) not in PRODUCT_VERSIONS:
            raise self.fail(
                f"product version {version!r} is not one this version reads ({', '.join(PRODUCT_VERSIONS)})"
            )
        self._unknown_keys(self.doc, None, _PRODUCT_READ + _PRODUCT_IGNORED, "product")
        self.api = self._api()
        plans_node = self.doc.get("plans")
        if not isinstance(plans_node, Mapping) or not plans_node:
            self.errors.append(self.fail("'plans' must be a mapping of plan name -> plan, with at least one plan"))
            plans_node = {}
        plans = []
        for name, body in plans_node.items():
            try:
                plans.append(self._plan(name, body))
            except SpecError as exc:
                self.errors.append(exc)
        if self.errors:
            raise combine_errors(self.label, self.errors, title=f"{len(self.errors)} problems in the product")
        return tuple(plans)

    def _unknown_keys(self, node: Mapping[Any, Any], where: str | None, known: tuple[str, ...], what: str) -> None:
        unknown = [str(k) for k in node if k not in known]
        if unknown:
            self.errors.append(
                self.fail(
                    f"cannot honour the {what} key(s) {', '.join(repr(k) for k in unknown)}: they may change what "
                    f"the gateway enforces, and this extension reads only {', '.join(known)}",
                    where,
                )
            )

    def _api(self) -> str | None:
        """The product's one API (its key in ``apis``), ``None`` when it lists none."""
        apis = self.doc.get("apis") or {}
        if not isinstance(apis, Mapping):
            self.errors.append(self.fail("'apis' must be a mapping of API name -> {$ref: file} or {name: api:version}"))
            return None
        if len(apis) > 1:  # alone: every plan naming one of them would be an error too
            raise self.fail(
                f"cannot honour a product of {len(apis)} APIs ({', '.join(map(str, apis))}): this app serves one "
                "OpenAPI document (CLIENTAUTH_SPEC), so the product may list only that API; split the product"
            )
        return next(iter(apis), None)

    def _plan(self, name: Any, body: Any) -> Plan:
        try:
            check_plan_name(name)
        except ValueError as exc:
            raise self.fail(str(exc), f"plan {name!r}") from None
        where = f"plan {name}"
        if not isinstance(body, Mapping):
            raise self.fail("a plan must be a mapping", where)
        self._unknown_keys(body, where, _PLAN_READ + _PLAN_IGNORED, "plan")
        if "rate-limit" in body and "rate-limits" in body:
            raise self.fail("give 'rate-limits' or the older 'rate-limit', not both", where)
        if "rate-limit" in body:
            rate = self._limits({"rate-limit": body["rate-limit"]}, where, "rate-limit")
        else:
            rate = self._limits(body.get("rate-limits"), where, "rate-limits")
        burst = self._limits(body.get("burst-limits"), where, "burst-limits", burst=True)
        operations, operation_limits = self._operations(body.get("apis"), where)
        title, description = body.get("title", ""), body.get("description", "")
        return Plan(
            name=name,
            rate_limits=rate,
            burst_limits=burst,
            operations=operations,
            operation_limits=MappingProxyType(operation_limits),
            title=title if isinstance(title, str) else str(title),
            description=description if isinstance(description, str) else str(description),
            source=self.label,
        )

    def _limits(self, node: Any, where: str, what: str, *, burst: bool = False) -> tuple[RateLimitItem, ...]:
        """``{name: {value: 100/1hour, hard-limit: true}}``; ``unlimited`` adds no limit."""
        if node is None:
            return ()
        if not isinstance(node, Mapping):
            raise self.fail(f"'{what}' must be a mapping of limit name -> {{value: ...}}", where)
        items = []
        for limit_name, limit in node.items():
            at = f"{where}, {what} {limit_name}" if what not in ("rate-limit",) else f"{where}, rate-limit"
            if not isinstance(limit, Mapping) or "value" not in limit:
                raise self.fail("a limit must be a mapping with a 'value' such as 100/1hour", at)
            unknown = [str(k) for k in limit if k not in _LIMIT_KEYS]
            if unknown:
                raise self.fail(
                    f"cannot honour {', '.join(repr(k) for k in unknown)} (a limit reads value and hard-limit)", at
                )
            value = limit["value"]
            if isinstance(value, str) and value.strip().lower() == "unlimited":
                continue  # nothing to exceed: hard or soft is the same
            hard = limit.get("hard-limit", True)
            if hard is not True:
                kind = (
                    "burst limits are always hard in API Connect" if burst else "a soft limit only logs in API Connect"
                )
                raise self.fail(
                    f"cannot honour hard-limit: {hard!r} ({kind}); this extension refuses every call over a limit: "
                    "set hard-limit: true, or remove the limit",
                    at,
                )
            try:
                items.append(parse_limit(value))
            except ValueError as exc:
                raise self.fail(f"cannot honour the limit {exc}", at) from None
        return tuple(items)

    def _operations(self, apis: Any, where: str) -> tuple[frozenset[str] | None, dict[str, tuple[RateLimitItem, ...]]]:
        """A plan's ``apis``: absent or empty, every operation; the product's API with ``operations``,
        those alone, with their own limits."""
        if apis is None or apis == {}:
            return None, {}
        if not isinstance(apis, Mapping):
            raise self.fail("'apis' must be a mapping of API name -> {operations: [...]}", where)
        operations: set[str] | None = None
        limits: dict[str, tuple[RateLimitItem, ...]] = {}
        for api_name, api in apis.items():
            at = f"{where}, api {api_name}"
            if api_name != self.api:
                listed = f"the product's API is {self.api!r}" if self.api else "the product lists no API"
                raise self.fail(f"the plan names an API the product does not list ({listed})", at)
            if api is None or api == {}:
                continue
            if not isinstance(api, Mapping) or set(api) - {"operations"}:
                raise self.fail("an API of a plan may only list 'operations'", at)
            entries = api.get("operations") or []
            if not isinstance(entries, list):
                raise self.fail("'operations' must be a list of {operationId: ...} or {operation: GET, path: /...}", at)
            operations = set() if operations is None else operations
            for number, entry in enumerate(entries, 1):
                label, own = self._operation(entry, f"{at}, operation {number}")
                operations.add(label)
                if own is not None:  # its own limits, even none ("unlimited"), replace the plan's
                    limits[label] = own
        return (None if operations is None else frozenset(operations)), limits

    def _operation(self, entry: Any, at: str) -> tuple[str, tuple[RateLimitItem, ...] | None]:
        if not isinstance(entry, Mapping):
            raise self.fail("an operation must be a mapping with operationId, or operation and path", at)
        unknown = [str(k) for k in entry if k not in _OPERATION_KEYS]
        if unknown:
            raise self.fail(f"cannot honour {', '.join(repr(k) for k in unknown)} on an operation", at)
        if "operationId" in entry:
            if "operation" in entry or "path" in entry:
                raise self.fail("give operationId, or operation and path, not both", at)
            name = str(entry["operationId"])
        elif "operation" in entry and "path" in entry:
            name = f"{str(entry['operation']).upper()} {entry['path']}"
        else:
            raise self.fail("an operation needs operationId, or operation (the method) and path", at)
        label = self.index.resolve(name)
        if label is None:
            raise self.fail(self.index.unknown(name), at)
        if "rate-limit" in entry and "rate-limits" in entry:
            raise self.fail("give 'rate-limits' or the older 'rate-limit', not both", at)
        if "rate-limit" in entry:
            return label, self._limits({"rate-limit": entry["rate-limit"]}, at, "rate-limit")
        if "rate-limits" in entry:
            return label, self._limits(entry["rate-limits"], at, "rate-limits")
        return label, None


def resolve_operations(plans: Iterable[Plan], spec: Spec, key: str = "CLIENTAUTH_PLANS") -> tuple[Plan, ...]:
    """``plans`` with each operation named by its label; :class:`ConfigurationError` naming the plan,
    the entry and the document for one the document does not have."""
    index = OperationIndex(spec)
    resolved = []
    for plan in plans:
        if plan.operations is None:
            resolved.append(plan)
            continue
        labels = set()
        for entry in sorted(plan.operations):
            label = index.resolve(entry)
            if label is None:
                raise ConfigurationError(f"{key}[{plan.name!r}]['operations']: {index.unknown(entry)}")
            labels.add(label)
        resolved.append(replace(plan, operations=frozenset(labels)))
    return tuple(resolved)


def build_plans(
    config_plans: Iterable[Plan],
    default: str | None,
    spec: Spec,
    *,
    product: str | None = None,
    root_path: str | None = None,
) -> Plans:
    """Every plan (``CLIENTAUTH_PLANS`` and ``CLIENTAUTH_PRODUCT``'s), resolved against ``spec``.

    A plan name both define is an error (which one was meant is ambiguous), as is a default plan
    neither defines.
    """
    plans = list(resolve_operations(config_plans, spec))
    if product is not None:
        mine = {plan.name for plan in plans}
        for plan in load_product(product, spec, root_path=root_path):
            if plan.name in mine:
                raise ConfigurationError(
                    f"CLIENTAUTH_PLANS and CLIENTAUTH_PRODUCT ({plan.source}) both define the plan {plan.name!r}: "
                    "rename or remove one of them"
                )
            plans.append(plan)
    try:
        return Plans(plans, default)
    except UnknownPlan as exc:
        raise ConfigurationError(f"CLIENTAUTH_DEFAULT_PLAN: {exc}") from None
