"""Requirement resolution: which policy each Flask URL rule and method enforces.

Flask rules are matched to spec operations by method and path template
(``/branches/<int:id>`` ~ ``/branches/{id}``), under the document's ``basePath`` /
``servers`` prefixes. The result is cached per (rule, method), so a request costs one
dictionary lookup.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from werkzeug.routing import Rule

from .requirements import Policy
from .spec import LISTED, Operation, Spec, SpecError, group_problems

_FLASK_VAR = re.compile(r"<(?:[^<>:]+:)?[^<>:]+>")
_SPEC_VAR = re.compile(r"\{[^{}/]+\}")
_SLASHES = re.compile(r"/{2,}")

PreflightMode = Literal["auto", "enforce", "allow"]
UnhandledMode = Literal["error", "deny"]


def flask_template(rule: str) -> str:
    """``/a/<int:id>/`` -> ``/a/{}``: the shape used to match rules with spec paths."""
    return _normalise(_FLASK_VAR.sub("{}", rule))


def spec_template(prefix: str, path: str) -> str:
    """``/v1`` + ``/a/{id}`` -> ``/v1/a/{}``."""
    return _normalise(prefix + _SPEC_VAR.sub("{}", path))


def _normalise(path: str) -> str:
    return _SLASHES.sub("/", path).rstrip("/") or "/"


@dataclass(frozen=True)
class Override:
    """A decorator's say on a view or blueprint: ``exempt`` or ``require`` named schemes."""

    kind: Literal["exempt", "require"]
    alternatives: tuple[tuple[str, ...], ...] = ()
    where: str = ""


@dataclass(frozen=True)
class RouteInfo:
    """One row of ``flask clients routes``; ``error`` says why the route cannot be enforced."""

    rule: str
    endpoint: str
    method: str
    operation: str | None
    policy: Policy
    error: str | None = None


class RouteError(SpecError):
    """One route and method that cannot be enforced (``rule`` of the error names both)."""

    def __init__(self, source: str, method: str, rule: str, operation: str | None, problem: str) -> None:
        where = f"{method} {rule}" + (f" (operation {operation})" if operation else "")
        super().__init__(source, f"{where}: {problem}")
        self.method = method
        self.url_rule = rule
        self.operation = operation
        self.problem = problem


class _SegmentNode:
    """One level of the spec's path templates: literal segments, and ``{}`` (a path variable)."""

    __slots__ = ("literal", "variable", "ops", "order")

    def __init__(self) -> None:
        self.literal: dict[str, _SegmentNode] = {}
        self.variable: _SegmentNode | None = None
        self.ops: dict[str, Operation] | None = None
        self.order = 0

    @classmethod
    def build(cls, index: Mapping[str, dict[str, Operation]]) -> _SegmentNode:
        root = cls()
        for order, (template, ops) in enumerate(index.items()):
            node = root
            for part in template.split("/"):
                if part == "{}":
                    node.variable = node.variable or cls()
                    node = node.variable
                else:
                    node = node.literal.setdefault(part, cls())
            node.ops, node.order = ops, order
        return root


class RouteTable:
    """Maps (URL rule, method) to the policy to enforce, computed once per pair."""

    def __init__(
        self,
        spec: Spec,
        *,
        view_overrides: Mapping[Callable[..., Any], Override],
        blueprint_overrides: Mapping[Any, Override],
        handlers: Mapping[str, Callable[..., Any]],
        view_functions: Mapping[str, Callable[..., Any]],
        blueprints: Mapping[str, Any] | None = None,
        preflight: PreflightMode = "auto",
        unhandled: UnhandledMode = "error",
    ) -> None:
        self.spec = spec
        self._view_functions = view_functions
        self._views = view_overrides
        self._blueprints = blueprint_overrides
        self._app_blueprints = blueprints if blueprints is not None else {}
        self._handlers = handlers
        self._preflight = preflight
        self._unhandled = unhandled
        #: (id of a URL rule, method) -> its policy, filled on first use; read on every request.
        self.policies: dict[tuple[int, str], Policy] = {}
        self._lock = threading.Lock()
        self.index: dict[str, dict[str, Operation]] = {}
        self._tree: _SegmentNode | None = None
        for op in spec.operations:
            for prefix in op.prefixes or ("",):
                self.index.setdefault(spec_template(prefix, op.path), {})[op.method] = op
        if spec.global_policy is not None and spec.global_policy.alternatives:
            self.undocumented = dataclasses.replace(spec.global_policy, origin="undocumented: global")
        elif spec.global_policy is not None:
            self.undocumented = Policy(origin="undocumented: global (public)")
        else:
            self.undocumented = Policy(deny=True, origin="undocumented")

    def lookup(self, rule: Rule, method: str) -> Policy:
        """The policy for a matched rule; the hot path is one dict lookup."""
        key = (id(rule), method)
        policy = self.policies.get(key)
        if policy is None:
            policy = self.resolve(rule, method)
            with self._lock:
                self.policies[key] = policy
        return policy

    def operation_for(self, rule: str, method: str) -> Operation | None:
        template = flask_template(rule)
        ops = self.index.get(template) or self._covering(template)
        if not ops:
            return None
        op = ops.get(method)
        if op is None and method == "HEAD":
            op = ops.get("GET")
        return op

    def _covering(self, template: str) -> dict[str, Operation] | None:
        """Operations of the spec path whose variables match literal parts of ``template``.

        A gateway matches the URL ``/items/latest`` to ``/items/{id}``; a Flask rule
        ``/items/latest`` must get that operation's requirement too. The most literal
        candidate wins (the first in the document on a tie). A walk of a segment tree: the
        cost depends on the rule's depth, not on the size of the document.
        """
        if self._tree is None:
            self._tree = _SegmentNode.build(self.index)
        parts = template.split("/")
        best: tuple[int, int, dict[str, Operation]] | None = None
        stack = [(self._tree, 0, 0)]
        while stack:
            node, depth, literal = stack.pop()
            if depth == len(parts):
                if node.ops is not None and (best is None or (literal, -node.order) > best[:2]):
                    best = (literal, -node.order, node.ops)
                continue
            part = parts[depth]
            child = node.literal.get(part)
            if child is not None:
                stack.append((child, depth + 1, literal + ("{}" not in part)))
            if node.variable is not None:
                stack.append((node.variable, depth + 1, literal))
        return best[2] if best is not None else None

    def resolve(self, rule: Rule, method: str) -> Policy:
        """Compute the policy for one rule and method (decorators first, then the spec)."""
        endpoint = rule.endpoint or ""
        override = self._override(endpoint, self._view_functions.get(endpoint))
        op = self.operation_for(rule.rule, method)
        label = op.label if op is not None else None
        if override is not None:
            try:
                policy = self._from_override(override, op)
            except SpecError as exc:
                raise RouteError(self.spec.source, method, rule.rule, label, exc.rule) from None
        elif op is not None:
            policy = op.policy
        else:
            policy = self.undocumented
        if method == "OPTIONS" and self._preflight != "enforce":
            documented = op is not None and op.method == "OPTIONS"
            if self._preflight == "allow" or not documented:
                policy = dataclasses.replace(policy, allow_preflight=True)
        try:
            return self._apply_handlers(policy)
        except SpecError as exc:
            raise RouteError(self.spec.source, method, rule.rule, label, exc.rule) from None

    def _override(self, endpoint: str, view: Callable[..., Any] | None) -> Override | None:
        if view is not None:
            # a class-based view is decorated as a class; Flask keeps the function as_view() made
            found = self._views.get(view) or self._views.get(getattr(view, "view_class", view))
            if found is not None:
                return found
        # innermost blueprint first: "parent.child.view" -> "parent.child", then "parent"; the
        # app's registry gives the Blueprint object whatever name it was registered under
        parts = endpoint.split(".")[:-1]
        while parts:
            blueprint = self._app_blueprints.get(".".join(parts))
            found = self._blueprints.get(blueprint) if blueprint is not None else None
            if found is not None:
                return found
            parts.pop()
        return None

    def _from_override(self, override: Override, op: Operation | None) -> Policy:
        label = op.label if op is not None else None
        if override.kind == "exempt":
            return Policy(origin=f"exempt {override.where}".strip(), operation=label)
        if not override.alternatives:
            if self.spec.global_policy is None or not self.spec.global_policy.alternatives:
                raise SpecError(
                    self.spec.source,
                    f"@require() without scheme names on {override.where} needs a global "
                    "security requirement in the document",
                )
            return dataclasses.replace(self.spec.global_policy, origin=f"require {override.where}", operation=label)
        policy = self.spec.policy_for_names(
            [list(a) for a in override.alternatives],
            origin=f"require {override.where}",
            where=f"@require on {override.where}",
        )
        return dataclasses.replace(policy, operation=label)

    def _apply_handlers(self, policy: Policy) -> Policy:
        """Alternatives that need a scheme without verifier: an error, or (``deny``) removed.

        Such an alternative can never be satisfied here; it must never make a route public.
        """
        missing = {s.name: s.type for r in policy.alternatives for s in r.others if s.name not in self._handlers}
        if not missing:
            return policy
        names = sorted(missing)
        if self._unhandled == "error":
            listed = ", ".join(f"{name!r} ({missing[name]})" for name in names)
            raise SpecError(
                self.spec.source,
                f"security scheme(s) {listed} are not API keys and have no verifier; register one with "
                f"@auth.scheme_handler({names[0]!r}), or set CLIENTAUTH_UNHANDLED_SCHEMES = 'deny' to "
                "refuse what needs them",
            )
        kept = tuple(r for r in policy.alternatives if all(s.name in self._handlers for s in r.others))
        deny = not kept and not policy.optional
        return dataclasses.replace(policy, alternatives=kept, deny=deny, dropped=tuple(names))

    def inspect(self, rules: Iterable[Rule], *, limit: int | None = LISTED) -> tuple[list[RouteInfo], list[str]]:
        """Resolve every rule and method; the rows (errors included) and one line per distinct problem.

        A line names the routes a problem affects (``limit`` of them); methods of one rule are one route.
        """
        rows = []
        problems: dict[tuple[str, str | None, str], list[str]] = {}
        for rule in rules:
            for method in sorted(rule.methods or ()):
                op = self.operation_for(rule.rule, method)
                label = op.label if op is not None else None
                try:
                    policy = self.lookup(rule, method)
                except SpecError as exc:
                    problem = exc.problem if isinstance(exc, RouteError) else exc.rule
                    problems.setdefault((rule.rule, label, problem), []).append(method)
                    rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, label, Policy(deny=True), problem))
                    continue
                rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, label, policy))
        places = [
            (f"{', '.join(methods)} {rule}" + (f" (operation {operation})" if operation else ""), problem)
            for (rule, operation, problem), methods in problems.items()
        ]
        return rows, group_problems(places, noun="routes", limit=limit)

    def build(self, rules: Iterable[Rule]) -> list[RouteInfo]:
        """Resolve every rule and method now (start-up, diagnostics); raise naming every error."""
        rows, lines = self.inspect(rules)
        if len(lines) == 1 and "\n" not in lines[0]:
            raise SpecError(self.spec.source, lines[0])
        if lines:
            listed = "".join(f"\n  - {line}" for line in lines)
            raise SpecError(self.spec.source, f"these routes cannot be enforced:{listed}")
        return rows

    def unserved(self, rules: Iterable[Rule]) -> list[Operation]:
        """Spec operations that no Flask rule serves."""
        served = {(flask_template(r.rule), m) for r in rules for m in (r.methods or ())}
        return [op for key, ops in self.index.items() for op in ops.values() if (key, op.method) not in served]
