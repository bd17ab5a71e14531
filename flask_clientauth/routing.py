"""Requirement resolution: which policy each Flask URL rule and method enforces.

Flask rules are matched to spec operations by method and path template
(``/branches/<int:id>`` ~ ``/branches/{id}``), under the document's ``basePath`` /
``servers`` prefixes, less ``CLIENTAUTH_BASE_PATH`` (the prefix the app is mounted under).
The result is cached per (rule, method), so a request costs one dictionary lookup.

OpenAPI matches concrete paths before templated ones: a rule such as ``/items/<id>`` also
serves ``/items/export``, which the document may secure on its own. The few rules that can
reach a more specific documented path get a :class:`ConcretePaths` instead of a policy; it
picks the operation by the request's path (only those rules pay for it).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import posixpath
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from werkzeug.routing import Map, Rule

from .requirements import Policy, Requirement
from .spec import LISTED, Operation, Spec, SpecError, group_problems

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger("flask_clientauth")

_FLASK_VAR = re.compile(r"<(?:[^<>:]+:)?[^<>:]+>")
_SPEC_VAR = re.compile(r"\{[^{}/]+\}")
_SLASHES = re.compile(r"/{2,}")

PreflightMode = Literal["auto", "enforce", "allow"]
UnhandledMode = Literal["error", "deny"]


def flask_template(rule: str) -> str:
    """``/a/<int:id>/`` -> ``/a/{}/``: the shape used to match rules with spec paths."""
    return _path_key(_FLASK_VAR.sub("{}", rule))


def spec_template(prefix: str, path: str) -> str:
    """``/v1`` + ``/a/{id}`` -> ``/v1/a/{}``."""
    return _path_key(prefix + _SPEC_VAR.sub("{}", path))


def _path_key(path: str) -> str:
    """Slashes merged, a trailing slash kept: ``/reports`` and ``/reports/`` are two paths."""
    return _SLASHES.sub("/", "/" + path.lstrip("/"))


def _other_slash(key: str) -> str:
    """``/reports`` <-> ``/reports/``: a rule matches the other form when its own is not documented."""
    if key == "/":
        return key
    return key[:-1] if key.endswith("/") else key + "/"


def _canonical(path: str) -> str:
    """A request path as the document reads it: slashes merged, ``.`` and ``..`` segments removed.

    Werkzeug hands ``<path:...>`` converters ``private//x`` or ``a/../private/x`` as they came, and
    the view may resolve them; the requirement must be that of the path they stand for.
    """
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if "/." in path:
        trailing = path.endswith("/")
        path = posixpath.normpath(path)
        if trailing and path != "/":
            path += "/"
    return path


#: How specific a template is: its literal segments, then segment by segment (literal, then variables
#: among text such as ``{}.pdf``, fewer first, then a bare variable), a trailing slash aside.
_Rank = tuple[int, tuple[int, ...]]


def _rank(key: str) -> _Rank:
    parts = key.rstrip("/").split("/")[1:] if key != "/" else []
    kinds = tuple(1000 if "{}" not in p else 0 if p == "{}" else 999 - p.count("{}") for p in parts)
    return kinds.count(1000), kinds


def _chunks_meet(a: str, b: str) -> bool:
    """Whether two segments of templates of one shape can match one concrete segment."""
    if a == b or a == "{}" or b == "{}":
        return True
    if "{}" not in a and "{}" not in b:
        return False  # two different literals
    if "{}" not in a or "{}" not in b:
        literal, template = (a, b) if "{}" not in a else (b, a)
        return _template_regex(template).fullmatch(literal) is not None
    # both text around variables: the texts before the first and after the last must agree
    head_a, tail_a, head_b, tail_b = a.split("{}")[0], a.split("{}")[-1], b.split("{}")[0], b.split("{}")[-1]
    heads = head_a.startswith(head_b) or head_b.startswith(head_a)
    return heads and (tail_a.endswith(tail_b) or tail_b.endswith(tail_a))


def _templates_meet(a: str, b: str) -> bool:
    """Whether one concrete path can match both templates (an over-approximation for several
    variables in one segment)."""
    pa, pb = a.split("/"), b.split("/")
    return len(pa) == len(pb) and all(_chunks_meet(x, y) for x, y in zip(pa, pb, strict=True))


def _template_regex(part: str) -> re.Pattern[str]:
    """What a template's segment with a variable among text (``{}.json``) matches."""
    return re.compile("[^/]+".join(re.escape(p) for p in part.split("{}")))


class _Segments:
    """Matches a concrete path, split into segments, against a template: ``{}`` is one non-empty
    segment; with ``rest``, the final ``{}`` takes every segment left (a ``<path:...>`` rule's view)."""

    __slots__ = ("parts", "rest")

    def __init__(self, key: str, rest: bool = False) -> None:
        parts = key.split("/")[1:]
        if rest:
            parts = parts[:-1]  # the final "{}" is whatever remains
        self.rest = rest
        #: Per segment: its text, ``None`` for ``{}``, or a pattern for a variable among text.
        self.parts: list[str | re.Pattern[str] | None] = [
            p if "{}" not in p else None if p == "{}" else _template_regex(p) for p in parts
        ]

    def __call__(self, segments: list[str]) -> bool:
        count = len(self.parts)
        if self.rest:
            if len(segments) <= count or not segments[count]:
                return False
        elif len(segments) != count:
            return False
        for part, segment in zip(self.parts, segments, strict=False):  # with rest, more segments than parts
            if part is None:
                if not segment:
                    return False
            elif isinstance(part, str):
                if part != segment:
                    return False
            elif part.fullmatch(segment) is None:
                return False
        return True


@dataclass(frozen=True)
class Override:
    """A decorator's say on a view or blueprint: ``exempt`` or ``require`` named schemes (and roles)."""

    kind: Literal["exempt", "require"]
    alternatives: tuple[tuple[str, ...], ...] = ()
    where: str = ""
    roles: tuple[str, ...] = ()


@dataclass
class Registrations:
    """What the decorators of one :class:`~flask_clientauth.ClientAuth` registered; every app it is
    ``init_app``'d on reads them (registrations after ``init_app`` count too)."""

    #: ``@auth.exempt`` / ``@auth.require`` on view functions and class-based views.
    views: dict[Any, Override] = field(default_factory=dict)
    #: The same on blueprints (every view they register).
    blueprints: dict[Any, Override] = field(default_factory=dict)
    #: ``@auth.scheme_handler(name)``: the check of each non-apiKey scheme.
    scheme_handlers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: ``@auth.error_handler``: the response of a refusal, instead of the JSON body.
    error_handler: Callable[..., Any] | None = None


@dataclass(frozen=True)
class RouteInfo:
    """One row of ``flask clients routes``; ``error`` says why the route cannot be enforced."""

    rule: str
    endpoint: str
    method: str
    operation: str | None
    policy: Policy
    error: str | None = None
    #: A documented path more specific than the rule that the rule also serves (``/items/export``
    #: under ``/items/<id>``): the row gives the requirement of requests to that path.
    path: str | None = None


class RouteError(SpecError):
    """One route and method that cannot be enforced (``message`` of the error names both)."""

    def __init__(self, source: str, method: str, rule: str, operation: str | None, problem: str) -> None:
        where = f"{method} {rule}" + (f" (operation {operation})" if operation else "")
        super().__init__(source, f"{where}: {problem}")
        self.method = method
        self.url_rule = rule
        self.operation = operation
        self.problem = problem


class _SegmentNode:
    """One level of the spec's path templates: literal segments, and ``{}`` (a path variable)."""

    __slots__ = ("literal", "mixed", "variable", "key", "order")

    def __init__(self) -> None:
        self.literal: dict[str, _SegmentNode] = {}
        #: The children of ``literal`` whose segment holds a variable among text (``{}.json``).
        self.mixed: list[tuple[re.Pattern[str], _SegmentNode]] = []
        self.variable: _SegmentNode | None = None
        self.key: str | None = None
        self.order = 0

    def keys_below(self) -> list[str]:
        """The templates deeper than this node."""
        found, stack = [], [*self.literal.values(), *([self.variable] if self.variable else [])]
        while stack:
            node = stack.pop()
            if node.key is not None:
                found.append(node.key)
            stack.extend(node.literal.values())
            if node.variable is not None:
                stack.append(node.variable)
        return found

    def covering(self, key: str, templates: Mapping[str, _Template]) -> str | None:
        """The key of the most literal template whose variables match literal parts of ``key``.

        A walk of a segment tree: the cost depends on the rule's depth, not on the size of the document.
        """
        parts = key.split("/")
        best: tuple[_Rank, int, str] | None = None
        stack = [(self, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == len(parts):
                if node.key is not None:
                    candidate = (templates[node.key].rank, -node.order, node.key)
                    best = candidate if best is None or candidate[:2] > best[:2] else best
                continue
            part = parts[depth]
            child = node.literal.get(part)
            if child is not None:
                stack.append((child, depth + 1))
            if "{}" not in part:  # a literal part of the rule is also what ``{}.pdf`` may match
                stack.extend((child, depth + 1) for pattern, child in node.mixed if pattern.fullmatch(part))
            if node.variable is not None:
                stack.append((node.variable, depth + 1))
        return best[2] if best is not None else None

    def reach(self, shape: list[_Shape]) -> set[str]:
        """The templates a path the rule's ``shape`` serves may match: a walk of the segment tree.

        Over-approximated where two patterns meet (``<int:id>`` against ``{id}.json``).
        """
        found: set[str] = set()
        top = self.literal.get("")  # every key starts with "/": the tree's first segment is ""
        stack = [(top, 0)] if top is not None else []
        while stack:
            node, depth = stack.pop()
            if depth == len(shape):
                if node.key is not None:
                    found.add(node.key)
                continue
            text, regex, spans = shape[depth]
            if spans:  # a converter spanning slashes (``<path:...>``) may reach anything deeper
                found.update(node.keys_below())
                continue
            if node.variable is not None and text != "":  # a variable is never empty (a trailing slash)
                stack.append((node.variable, depth + 1))
            if text is not None:
                child = node.literal.get(text)
                if child is not None:
                    stack.append((child, depth + 1))
                stack.extend((child, depth + 1) for pattern, child in node.mixed if pattern.fullmatch(text))
            else:
                compiled = re.compile(regex)
                stack.extend(
                    (child, depth + 1)
                    for part, child in node.literal.items()
                    if "{}" in part or compiled.fullmatch(part) is not None
                )
        return found

    @classmethod
    def build(cls, keys: Iterable[str]) -> _SegmentNode:
        root = cls()
        for order, key in enumerate(keys):
            node = root
            for part in key.split("/"):
                if part == "{}":
                    node.variable = node.variable or cls()
                    node = node.variable
                elif part in node.literal:
                    node = node.literal[part]
                else:
                    child = node.literal[part] = cls()
                    if "{}" in part:
                        node.mixed.append((_template_regex(part), child))
                    node = child
            node.key, node.order = key, order
        return root


@dataclass(frozen=True)
class _Template:
    """One documented path under one server prefix: ``key`` is ``/v1/items/{}``."""

    key: str
    order: int
    ops: dict[str, Operation]
    #: The path as the document writes it, under its prefix: ``/v1/items/{itemId}``.
    shown: str

    @functools.cached_property
    def exact(self) -> _Segments:
        """Matches the concrete paths of this template (each ``{}`` one segment)."""
        return _Segments(self.key)

    @functools.cached_property
    def rest(self) -> _Segments:
        """The same, its final ``{}`` taking the rest of the path (read by a ``<path:...>`` rule)."""
        return _Segments(self.key, rest=True)

    @functools.cached_property
    def rank(self) -> _Rank:
        return _rank(self.key)

    @functools.cached_property
    def other(self) -> _Segments:
        """Matches the concrete paths of this template in the other trailing-slash form."""
        return _Segments(_other_slash(self.key))

    def op(self, method: str) -> Operation | None:
        op = self.ops.get(method)
        if op is None and method == "HEAD":
            op = self.ops.get("GET")
        return op


def _ambiguous(templates: Iterable[_Template]) -> list[str]:
    """Two templates equally specific (see :func:`_rank`) that can match one concrete path and ask
    for different things: no order of the document may decide between them (``/r/{a}.pdf`` and
    ``/r/x.{b}`` both match ``/r/x.pdf``)."""
    # equally specific templates have their literal segments in the same places: to meet, those
    # must be the same (grouping by them keeps this linear for the usual document)
    groups: dict[tuple[_Rank, tuple[str, ...]], list[_Template]] = {}
    for template in templates:
        if "{}" in template.key:
            literals = tuple(p for p in template.key.split("/") if "{}" not in p)
            groups.setdefault((template.rank, literals), []).append(template)
    found = []
    for group in groups.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if not _templates_meet(a.key, b.key):
                    continue
                methods = sorted(set(a.ops) | set(b.ops))
                differ = [
                    m
                    for m in methods
                    if (x := a.ops.get(m)) is None
                    or (y := b.ops.get(m)) is None
                    or not _same_requirement(x.policy, y.policy)
                ]
                if differ:
                    found.append(
                        f"paths {a.shown!r} and {b.shown!r} are equally specific and can both match one request "
                        f"path, with different requirements for {', '.join(differ)}: the document cannot say which "
                        "applies (make one more specific, or give both the same security)"
                    )
    return found


class DocumentPaths:
    """The document's operations by effective path (server prefix + path), as Flask rules see them.

    ``base_path`` (``CLIENTAUTH_BASE_PATH``) is removed from the server prefixes: the app is
    mounted under it, so its rules do not contain it. Two operations on one effective path and
    method (``/x/{a}`` and ``/x/{b}``; ``/v1/admin`` and ``/admin`` under a server ``/v1``) and an
    operation none of whose servers is under the base path are :class:`SpecError`\\ s.
    """

    def __init__(self, spec: Spec, base_path: str = "") -> None:
        self.spec = spec
        self.base_path = base_path
        self.templates: dict[str, _Template] = {}
        where: dict[tuple[str, str], str] = {}
        problems: list[str] = []
        for op in spec.operations:
            prefixes = [p for p in (self._strip(p) for p in op.prefixes or ("",)) if p is not None]
            if not prefixes:
                listed = ", ".join(repr(p) for p in op.prefixes)
                problems.append(
                    f"operation {op.label}: none of its server prefixes ({listed}) is under "
                    f"CLIENTAUTH_BASE_PATH {base_path!r}, so no route of this app can serve it"
                )
            for prefix in prefixes:
                key = spec_template(prefix, op.path)
                template = self.templates.get(key)
                if template is None:
                    shown = _path_key(prefix + op.path)
                    template = _Template(key, len(self.templates), {}, shown)
                    self.templates[key] = template
                described = f"{op.label}" + (f" under the server prefix {base_path + prefix}" if prefix else "")
                other = template.ops.get(op.method)
                if other is not None and other is not op:
                    problems.append(
                        f"{where[key, op.method]} and {described} are the same path {key!r}: a request cannot "
                        "tell them apart (rename one, or remove the duplicate)"
                    )
                    continue
                template.ops[op.method] = op
                where[key, op.method] = described
        problems += _ambiguous(self.templates.values())
        if problems:
            if len(problems) == 1:
                raise SpecError(spec.source, problems[0])
            raise SpecError(spec.source, "paths that cannot be enforced:" + "".join(f"\n  - {p}" for p in problems))
        self._tree = _SegmentNode.build(self.templates)
        self._rules: dict[int, tuple[tuple[_Template, bool] | None, list[_Template], bool]] = {}

    def _strip(self, prefix: str) -> str | None:
        """The server prefix as the app's rules see it; ``None`` if it is not under the base path.

        A prefix of ``""`` (no server path) is relative to wherever the app is served.
        """
        base = self.base_path
        if not base or not prefix:
            return prefix
        if prefix == base:
            return ""
        return prefix[len(base) :] if prefix.startswith(base + "/") else None

    def match(self, key: str) -> tuple[_Template, bool] | None:
        """The documented path a rule's template stands for, and whether it is the rule's own form.

        Exact first (``/reports/`` is not ``/reports`` when both are documented), then the other
        trailing slash, then the most literal template covering it (``/items/latest`` is
        ``/items/{id}``; first in the document on a tie).
        """
        for candidate, exact in ((key, True), (_other_slash(key), False)):
            template = self.templates.get(candidate)
            if template is not None:
                return template, exact
        for candidate, exact in ((key, True), (_other_slash(key), False)):
            found = self._tree.covering(candidate, self.templates)
            if found is not None:
                return self.templates[found], exact
        return None

    def for_rule(self, rule: Rule) -> tuple[tuple[_Template, bool] | None, list[_Template], bool]:
        """The rule's own documented path (see :meth:`match`), the other documented paths that may win
        for a path it serves (:meth:`reachable`), and whether a converter of it spans slashes."""
        found = self._rules.get(id(rule))
        if found is None:
            own = self.match(flask_template(rule.rule))
            shapes = _rule_shapes(rule)
            spans = shapes is None or any(multi for shape in shapes for _, _, multi in shape)
            found = self._rules[id(rule)] = (own, self.reachable(rule, own, shapes, spans), spans)
        return found

    def reachable(
        self, rule: Rule, own: tuple[_Template, bool] | None, shapes: list[list[_Shape]] | None, spans: bool
    ) -> list[_Template]:
        """The documented paths, other than the rule's own, that may win for a path the rule serves.

        ``/items/<id>`` serves ``/items/export``; ``/files/<path:p>`` serves ``/files/private/x``;
        ``/reports`` with ``strict_slashes=False`` serves ``/reports/``. A template counts if the
        rule may reach a path it matches and it may outrank the rule's own template there (more
        literal segments; on a tie, earlier in the document or exact where the own one is not).
        Over-approximated where unsure: that only costs the rule a per-request match.
        """
        floor: tuple[_Rank, int, int] = ((-1, ()), 0, 0)
        if own is not None:
            template, exact = own
            always_exact = exact and not spans and bool(rule.strict_slashes)
            floor = (template.rank, int(always_exact), -template.order)
        if shapes is None:
            keys: Iterable[str] = self.templates
        else:  # a path documented in one trailing-slash form alone also stands for the other
            keys = set().union(*(self._tree.reach(shape) for shape in shapes))
            keys |= {
                k for shape in shapes for k in self._tree.reach(_flip(shape)) if _other_slash(k) not in self.templates
            }
        return [
            template
            for key in keys
            if (template := self.templates[key]) is not (own[0] if own is not None else None)
            and (template.rank, 1, -template.order) > floor
        ]


#: One segment of a rule: its literal text (``None`` if it holds a converter), its regex, and
#: whether a converter in it matches slashes.
_Shape = tuple[str | None, str, bool]


def _rule_shapes(rule: Rule) -> list[list[_Shape]] | None:
    """The rule's path as segments, once per trailing-slash form it serves.

    Read from Werkzeug's parse of the rule (its converters' own regexes); ``None`` if unreadable.
    """
    trace = getattr(rule, "_trace", None)
    converters = getattr(rule, "_converters", None)
    if not trace or converters is None or (False, "|") not in trace:
        return None
    segments: list[_Shape] = []
    text: str | None = ""
    regex, spans = "", False
    for is_var, data in trace[trace.index((False, "|")) + 1 :]:
        if not is_var and data == "/":
            segments.append((text, regex, spans))
            text, regex, spans = "", "", False
        elif is_var:
            converter = converters.get(data)
            if converter is None:
                return None
            text, regex = None, regex + f"(?:{converter.regex})"
            spans = spans or not converter.part_isolating
        else:
            text = text + data if text is not None else None
            regex += re.escape(data)
    segments.append((text, regex, spans))
    shape = segments[1:]  # the first is the empty text before the leading "/"
    if rule.strict_slashes:
        return [shape]
    return [shape, _flip(shape)]


def _flip(shape: list[_Shape]) -> list[_Shape]:
    """The other trailing-slash form of a rule's shape."""
    empty: _Shape = ("", "", False)
    return shape[:-1] if shape and shape[-1] == empty else [*shape, empty]


class ConcretePaths:
    """The policy of a rule that also serves more specific documented paths, picked per request.

    ``entries`` are (matcher, policy) in OpenAPI's order of precedence: the most specific template
    first (:func:`_rank`), exact matches before the other trailing-slash form of a path documented in
    one form and before a converter spanning slashes, the document's order on a tie. The last entry
    matches every path: the rule's own template (or the undocumented policy).

    A path matches as requested and as rebuilt from the values the view receives (``/nums/042`` is
    ``/nums/42`` to ``<int:n>``); a path that cannot be rebuilt is a :class:`SpecError` (503).
    """

    __slots__ = ("entries", "default", "paths", "rule", "source", "_alone")

    def __init__(
        self,
        entries: list[tuple[Callable[[list[str]], bool], Policy]],
        default: Policy,
        paths: list[tuple[str, Operation | None, Policy]],
        rule: Rule | None = None,
        source: str = "",
    ) -> None:
        self.entries = entries
        #: The rule's own requirement (what ``flask clients routes`` shows on the rule's row).
        self.default = default
        #: (documented path, its operation for the method or None, policy), for the listing.
        self.paths = paths
        self.rule = rule
        self.source = source
        #: The rule alone in a map, to read the values of a path when a ``url_value_preprocessor`` took some.
        self._alone: Map | None = None

    def policy(self, path: str, view_args: Mapping[str, Any] | None = None) -> Policy:
        path = _canonical(path)
        segments = path.split("/")[1:]
        rebuilt = self._rebuilt(path, view_args) if view_args is not None and self.rule is not None else None
        for match, policy in self.entries:
            if match(segments) or (rebuilt is not None and match(rebuilt)):
                return policy
        return self.default  # not reached: the last entry matches everything

    def _rebuilt(self, path: str, view_args: Mapping[str, Any]) -> list[str] | None:
        """The path's segments as the rule builds them from the view's values (``to_url(to_python(raw))``),
        in the request's trailing-slash form; ``None`` when that is the path as requested."""
        assert self.rule is not None
        try:
            if not self.rule.arguments <= view_args.keys():  # a url_value_preprocessor took some
                view_args = self._match_alone(path)
            built = self.rule.build(view_args, append_unknown=False)
        except Exception as exc:  # a converter's to_url that fails on its own value: refuse, never guess
            problem = f"{self.rule.rule}: cannot rebuild the path {path!r} from its values ({exc})"
            raise SpecError(self.source, problem) from None
        if built is None:
            raise SpecError(self.source, f"{self.rule.rule}: cannot rebuild the path {path!r} from its values")
        url = unquote(built[1])
        if url != "/" and url.endswith("/") != path.endswith("/"):
            url = url + "/" if path.endswith("/") else url[:-1]
        url = _canonical(url)
        return url.split("/")[1:] if url != path else None

    def check_spelling(self, path: str, shown: str) -> None:
        """Refuse a documented literal the rule's converters write differently (``/nums/042`` under
        ``<int:n>``): ``/nums/42`` would give the view the same values under the template's requirement."""
        assert self.rule is not None
        try:
            values = self._match_alone(path)
        except Exception:  # the rule does not serve this spelling: nothing reaches it through the rule
            return
        rebuilt = self._rebuilt(path, values)
        if rebuilt is not None:
            raise SpecError(
                self.source,
                f"the documented path {shown!r} reaches {self.rule.rule} as {dict(values)!r}, which "
                f"{'/' + '/'.join(rebuilt)!r} also gives under another requirement: write the path as the "
                "route's converters build it",
            )

    def _match_alone(self, path: str) -> Mapping[str, Any]:
        """The values the rule's converters give ``path``, matched against the rule alone."""
        assert self.rule is not None
        if self._alone is None:
            mapped = self.rule.map
            rule = Rule(self.rule.rule, endpoint="alone", strict_slashes=False, merge_slashes=mapped.merge_slashes)
            self._alone = Map([rule], converters=mapped.converters, merge_slashes=mapped.merge_slashes)
        return self._alone.bind("localhost").match(path)[1]

    def __repr__(self) -> str:
        return f"<ConcretePaths {[p for p, _, _ in self.paths]}>"


def _everything(segments: list[str]) -> bool:
    return True


def _same_requirement(a: Policy, b: Policy) -> bool:
    """Whether two policies ask a request for the same (their labels aside)."""
    return (a.alternatives, a.optional, a.deny, a.allow_preflight, a.dropped) == (
        b.alternatives,
        b.optional,
        b.deny,
        b.allow_preflight,
        b.dropped,
    )


class ViewOverrides:
    """Which ``@auth.exempt`` / ``@auth.require`` applies to a view, and which matched none.

    Read from the registries of the :class:`~flask_clientauth.ClientAuth` and from the app's
    blueprints; a blueprint's decorator applies only to the endpoints it really registered.
    """

    def __init__(
        self, views: Mapping[Any, Override], blueprints: Mapping[Any, Override], app_blueprints: Mapping[str, Any]
    ) -> None:
        self._views = views
        self._blueprints = blueprints
        self._app_blueprints = app_blueprints
        #: Blueprint -> the endpoint names (without its prefix) it registers.
        self._blueprint_endpoints: dict[int, set[str]] = {}
        self._used: set[Any] = set()

    def find(self, endpoint: str, view: Callable[..., Any] | None, method: str) -> Override | None:
        """The innermost decorator that applies: a class-based view's method, its class, the view
        function (or a function it wraps), then the blueprints that really registered the endpoint."""
        for candidate in _decorated(view, method):
            try:
                found = self._views.get(candidate)
            except TypeError:  # an unhashable attribute of a view class
                continue
            if found is not None:
                self._used.add(candidate)
                return found
        # innermost blueprint first: "parent.child" then "parent"; the app's registry gives the
        # Blueprint object whatever name it was registered under
        owner = self._owner(endpoint)
        while owner:
            blueprint = self._app_blueprints.get(owner)
            found = self._blueprints.get(blueprint) if blueprint is not None else None
            if found is not None:
                return found
            owner = owner.rpartition(".")[0]
        return None

    def _owner(self, endpoint: str) -> str:
        """The name under which the blueprint that registered ``endpoint`` is registered ("" for the app).

        Not read from the name alone: ``app.add_url_rule(..., endpoint="docs.report")`` is the app's,
        even next to a blueprint ``docs`` (which would register its views as ``docs.<name>``).
        """
        prefix, _, local = endpoint.rpartition(".")
        blueprint = self._app_blueprints.get(prefix) if prefix else None
        if blueprint is None:
            return ""
        endpoints = self._blueprint_endpoints.get(id(blueprint))
        if endpoints is None:
            endpoints = self._blueprint_endpoints[id(blueprint)] = _blueprint_endpoints(blueprint)
        return prefix if local in endpoints else ""

    def unused(self) -> list[str]:
        """Where the decorators that matched no view so far were put."""
        return sorted(o.where for obj, o in self._views.items() if obj not in self._used)


class RulePolicies:
    """The policy of an operation (or of none: undocumented) on a rule: a decorator's instead of the
    document's, CORS preflights allowed, alternatives that need a scheme without verifier refused."""

    def __init__(
        self,
        spec: Spec,
        handlers: Mapping[str, Callable[..., Any]],
        preflight: PreflightMode = "auto",
        unhandled: UnhandledMode = "error",
    ) -> None:
        self.spec = spec
        self._handlers = handlers
        self._preflight = preflight
        self._unhandled = unhandled
        if spec.global_policy is not None and spec.global_policy.alternatives:
            self.undocumented = dataclasses.replace(spec.global_policy, origin="undocumented: global")
        elif spec.global_policy is not None:
            self.undocumented = Policy(origin="undocumented: global (public)")
        else:
            self.undocumented = Policy(deny=True, origin="undocumented")

    def finish(
        self,
        rule: Rule,
        method: str,
        op: Operation | None,
        override: Override | None,
        template: _Template | None = None,
    ) -> Policy:
        """The policy of ``op`` (``None``: undocumented) on this rule, decorators, preflight and handlers applied."""
        label = op.label if op is not None else None
        where = rule.rule if template is None else f"{rule.rule} (path {template.key})"
        if override is not None:
            try:
                policy = self._from_override(override, op)
            except SpecError as exc:
                raise RouteError(self.spec.source, method, where, label, exc.message) from None
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
            raise RouteError(self.spec.source, method, where, label, exc.message) from None

    def _from_override(self, override: Override, op: Operation | None) -> Policy:
        label = op.label if op is not None else None
        if override.kind == "exempt":
            return Policy(origin=f"exempt {override.where}".strip(), operation=label)
        origin = f"require {override.where}"
        if not override.alternatives:
            if self.spec.global_policy is None or not self.spec.global_policy.alternatives:
                raise SpecError(
                    self.spec.source,
                    f"@require() without scheme names on {override.where} needs a global "
                    "security requirement in the document",
                )
            policy = self.spec.global_policy
        else:
            policy = self.spec.policy_for_names(
                [list(a) for a in override.alternatives], origin=origin, where=f"@require on {override.where}"
            )
        if override.roles:
            policy = self._with_roles(policy, override)
        return dataclasses.replace(policy, origin=origin, operation=label)

    def _with_roles(self, policy: Policy, override: Override) -> Policy:
        """``@require(roles=...)``: every alternative asks for the roles too, and a client is needed."""
        keyless = [r.describe() for r in policy.alternatives if r.client_id is None]
        if keyless:
            raise SpecError(
                self.spec.source,
                f"@require(roles={list(override.roles)}) on {override.where}: roles are a client's, and the "
                f"alternative(s) {', '.join(keyless)} take no client ID; require a client ID key in each",
            )
        alternatives = tuple(
            dict.fromkeys(Requirement(r.schemes, r.roles + override.roles) for r in policy.alternatives)
        )
        return dataclasses.replace(policy, alternatives=alternatives, optional=False)

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


class MountCheck:
    """The mount point (``SCRIPT_NAME``) a request is served under, against the one the table was built for."""

    def __init__(self, spec: Spec, base_path: str) -> None:
        self.spec = spec
        self.base_path = base_path
        #: Server prefixes (less the base path) a mount point must not be part of: see :meth:`wrong`.
        self._prefixes = sorted({p for op in spec.operations for p in op.prefixes if p})

    def wrong(self, root: str) -> bool:
        """Whether a request's mount point (``SCRIPT_NAME``) contradicts what the table was built for.

        With ``CLIENTAUTH_BASE_PATH`` the app must be served under exactly it. Without, a mount
        point that the document's server URLs contain (``/api`` of ``https://host/api/v1``) was not
        removed from them, so the routes were matched against the wrong paths.
        """
        if root == self.base_path:
            return False
        if self.base_path:
            return True
        return any(p == root or p.startswith(root + "/") for p in self._prefixes)

    def hint(self, rules: list[Rule], rows: list[RouteInfo]) -> str | None:
        """When no route serves any operation but would once a leading part of the server prefixes is
        removed, the app is served under a prefix the document includes: say which, and the fix."""
        if not self.spec.operations or any(r.operation is not None for r in rows):
            return None
        keys = [flask_template(rule.rule) for rule in rules]
        stripped = sorted({p for op in self.spec.operations for p in op.prefixes if p})
        for prefix in stripped:
            parts = prefix.split("/")
            for end in range(2, len(parts) + 1):
                head = "/".join(parts[:end])
                try:
                    trial = DocumentPaths(self.spec, head)
                except SpecError:
                    continue
                if any(trial.match(key) is not None for key in keys):
                    rest = prefix[len(head) :] or "/"
                    return (
                        f"no route serves any operation of the document under its server prefix {prefix!r}, but "
                        f"routes match the operations under {rest!r}: if the app is served under {head!r} "
                        "(a SCRIPT_NAME mount, DispatcherMiddleware, a proxy's X-Forwarded-Prefix), set "
                        f"CLIENTAUTH_BASE_PATH = {head!r}"
                    )
        return None


class RouteTable:
    """Maps (URL rule, method) to the policy to enforce, computed once per pair."""

    def __init__(
        self,
        spec: Spec,
        *,
        view_overrides: Mapping[Any, Override],
        blueprint_overrides: Mapping[Any, Override],
        handlers: Mapping[str, Callable[..., Any]],
        view_functions: Mapping[str, Callable[..., Any]],
        blueprints: Mapping[str, Any] | None = None,
        preflight: PreflightMode = "auto",
        unhandled: UnhandledMode = "error",
        base_path: str = "",
    ) -> None:
        self.spec = spec
        self._view_functions = view_functions
        self.overrides = ViewOverrides(
            view_overrides, blueprint_overrides, blueprints if blueprints is not None else {}
        )
        self.rule_policies = RulePolicies(spec, handlers, preflight, unhandled)
        #: The prefix the app is served under (``CLIENTAUTH_BASE_PATH``; "" for none).
        self.base_path = base_path
        self.mounts = MountCheck(spec, base_path)
        self.paths = DocumentPaths(spec, base_path)
        #: (id of a URL rule, method) -> its policy, filled on first use; read on every request.
        self.policies: dict[tuple[int, str], Policy] = {}
        #: The same for the few rules whose requirement depends on the concrete path.
        self.concrete: dict[tuple[int, str], ConcretePaths] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_app(
        cls,
        spec: Spec,
        registrations: Registrations,
        settings: Settings,
        *,
        view_functions: Mapping[str, Callable[..., Any]],
        blueprints: Mapping[str, Any],
    ) -> RouteTable:
        """The table of an app: its views and blueprints, the decorators' registrations, the settings."""
        return cls(
            spec,
            view_overrides=registrations.views,
            blueprint_overrides=registrations.blueprints,
            handlers=registrations.scheme_handlers,
            view_functions=view_functions,
            blueprints=blueprints,
            preflight=settings.cors_preflight,
            unhandled=settings.unhandled_schemes,
            base_path=settings.base_path,
        )

    def lookup(self, rule: Rule, method: str, path: str, view_args: Mapping[str, Any] | None = None) -> Policy:
        """The policy of a request to ``path`` (relative to the app's root) matched by ``rule``, the view
        to receive ``view_args`` (the path is also matched as rebuilt from them: see :class:`ConcretePaths`).

        The hot path, one dict lookup in ``policies``, is inlined in the hook.
        """
        entry = self.entry(rule, method)
        return entry.policy(path, view_args) if isinstance(entry, ConcretePaths) else entry

    def entry(self, rule: Rule, method: str) -> Policy | ConcretePaths:
        """The rule's policy, or its :class:`ConcretePaths` when the concrete path decides."""
        key = (id(rule), method)
        found: Policy | ConcretePaths | None = self.policies.get(key) or self.concrete.get(key)
        if found is None:
            found = self.resolve(rule, method)
            with self._lock:
                if isinstance(found, ConcretePaths):
                    self.concrete[key] = found
                else:
                    self.policies[key] = found
        return found

    def operation_for(self, rule: str, method: str) -> Operation | None:
        """The operation a rule's template stands for (the concrete paths it also serves aside)."""
        found = self.paths.match(flask_template(rule))
        return found[0].op(method) if found is not None else None

    def wrong_mount(self, root: str) -> bool:
        """Whether a request's mount point contradicts what the table was built for (:meth:`MountCheck.wrong`)."""
        return self.mounts.wrong(root)

    def resolve(self, rule: Rule, method: str) -> Policy | ConcretePaths:
        """Compute the policy of one rule and method (decorators first, then the spec)."""
        endpoint = rule.endpoint or ""
        override = self.overrides.find(endpoint, self._view_functions.get(endpoint), method)
        own, others, spans = self.paths.for_rule(rule)
        op = own[0].op(method) if own is not None else None
        policy = self.rule_policies.finish(rule, method, op, override)
        if override is not None or not others:
            return policy  # a decorator decides for every path the rule serves
        return _concrete_paths(rule, method, own, others, spans, policy, self.rule_policies, self.paths.templates)

    def inspect(self, rules: Iterable[Rule], *, limit: int | None = LISTED) -> tuple[list[RouteInfo], list[str]]:
        """Resolve every rule and method; the rows (errors included) and one line per distinct problem.

        A line names the routes a problem affects (``limit`` of them); methods of one rule are one route.
        A rule that serves more specific documented paths gets one more row for each.
        """
        rules = list(rules)
        rows = []
        problems: dict[tuple[str, str | None, str], list[str]] = {}
        for rule in rules:
            for method in sorted(rule.methods or ()):
                op = self.operation_for(rule.rule, method)
                label = op.label if op is not None else None
                try:
                    entry = self.entry(rule, method)
                except SpecError as exc:
                    problem = exc.problem if isinstance(exc, RouteError) else exc.message
                    where = exc.url_rule if isinstance(exc, RouteError) else rule.rule
                    label = exc.operation if isinstance(exc, RouteError) else label
                    problems.setdefault((where, label, problem), []).append(method)
                    rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, label, Policy(deny=True), problem))
                    continue
                if not isinstance(entry, ConcretePaths):
                    rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, label, entry))
                    continue
                rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, label, entry.default))
                for path, path_op, policy in entry.paths:
                    path_label = path_op.label if path_op is not None else None
                    rows.append(RouteInfo(rule.rule, rule.endpoint or "", method, path_label, policy, path=path))
        places = [
            (f"{', '.join(methods)} {rule}" + (f" (operation {operation})" if operation else ""), problem)
            for (rule, operation, problem), methods in problems.items()
        ]
        lines = group_problems(places, noun="routes", limit=limit)
        hint = self.mounts.hint(rules, rows)
        if hint is not None:
            lines.append(hint)
        return rows, lines

    def build(self, rules: Iterable[Rule]) -> list[RouteInfo]:
        """Resolve every rule and method now (start-up, diagnostics); raise naming every error."""
        rows, lines = self.inspect(rules)
        if len(lines) == 1 and "\n" not in lines[0]:
            raise SpecError(self.spec.source, lines[0])
        if lines:
            listed = "".join(f"\n  - {line}" for line in lines)
            raise SpecError(self.spec.source, f"these routes cannot be enforced:{listed}")
        unused = self.overrides.unused()
        if unused:
            logger.warning(
                "clientauth: %s: @auth.exempt / @auth.require on %s matched no route of this app, so it has "
                "no effect here: decorate the function (or MethodView class or method) that is registered "
                "as the view",
                self.spec.source,
                ", ".join(unused),
            )
        return rows

    def unserved(self, rules: Iterable[Rule]) -> list[Operation]:
        """Spec operations that no Flask rule serves (through its template or a concrete path)."""
        served: set[int] = set()
        for rule in rules:
            own, others, _ = self.paths.for_rule(rule)
            templates = ([own[0]] if own is not None else []) + others
            served.update(id(op) for t in templates for m in rule.methods or () if (op := t.ops.get(m)) is not None)
        return [op for t in self.paths.templates.values() for op in t.ops.values() if id(op) not in served]


def _concrete_paths(
    rule: Rule,
    method: str,
    own: tuple[_Template, bool] | None,
    others: list[_Template],
    spans: bool,
    policy: Policy,
    rule_policies: RulePolicies,
    documented: Mapping[str, _Template],
) -> Policy | ConcretePaths:
    """The :class:`ConcretePaths` of a rule that serves the more specific documented paths ``others``
    (``policy`` is that of its own path), or ``policy`` when every one of them asks for the same."""
    # (rank, 2 exact / 1 the other slash form or the rest of a path / 0 anything, document order)
    ranked: list[tuple[tuple[_Rank, int, int], Callable[[list[str]], bool], Policy]] = []
    paths = []
    for template in [own[0]] if own is not None else []:
        ranked.append(((template.rank, 2, -template.order), template.exact, policy))
        ranked.append(((template.rank, 0, -template.order), _everything, policy))
    if own is None:
        ranked.append((((-1, ()), 0, 0), _everything, policy))
    for template in others:
        other_op = template.op(method)
        other = rule_policies.finish(rule, method, other_op, None, template)
        paths.append((template.shown, other_op, other))
        ranked.append(((template.rank, 2, -template.order), template.exact, other))
        if template.key != "/" and _other_slash(template.key) not in documented:  # one form serves both
            ranked.append(((template.rank, 1, -template.order), template.other, other))
        if spans and template.key.endswith("/{}"):
            ranked.append(((template.rank, 1, -template.order), template.rest, other))
    if all(_same_requirement(p, policy) for _, _, p in paths):
        return policy  # every path the rule reaches asks for the same
    ranked.sort(key=lambda entry: entry[0], reverse=True)
    concrete = ConcretePaths([(match, p) for _, match, p in ranked], policy, paths, rule, rule_policies.spec.source)
    for template, (shown, _op, other) in zip(others, paths, strict=True):
        if "{}" not in template.key and not _same_requirement(other, policy):
            concrete.check_spelling(template.key, shown)
    return concrete


class _SetupRecorder:
    """Stands in for Flask's ``BlueprintSetupState`` when a blueprint's setup functions are replayed:
    it notes the endpoints they add; whatever else they reach for does not exist here."""

    __slots__ = ("endpoints",)

    def __init__(self) -> None:
        self.endpoints: set[str] = set()

    def add_url_rule(self, rule: str, endpoint: str | None = None, view_func: Any = None, **options: Any) -> None:
        self.endpoints.add(endpoint if endpoint is not None else getattr(view_func, "__name__", ""))


def _blueprint_endpoints(blueprint: Any) -> set[str]:
    """The endpoint names a blueprint registers (without its name): its setup functions replayed.

    Flask records each ``add_url_rule`` of a blueprint as a setup function called with the
    registration's state; replaying them with a recorder lists them whatever the order of the
    decorator and ``register_blueprint``. The ones that set up the app (hooks, filters) fail on the
    recorder and are skipped: they add no view.
    """
    recorder = _SetupRecorder()
    for setup in getattr(blueprint, "deferred_functions", ()):
        try:
            setup(recorder)
        except Exception:  # a setup function for the app itself (hooks, filters), not for a view
            pass
    if getattr(blueprint, "has_static_folder", False):  # added by Blueprint.register itself
        recorder.endpoints.add("static")
    return recorder.endpoints


def _decorated(view: Callable[..., Any] | None, method: str) -> list[Any]:
    """What a decorator may have been put on, innermost first: the method of a class-based view
    that ``method`` dispatches to, the view class, the view function and the functions it wraps."""
    if view is None:
        return []
    found: list[Any] = []
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        handler = getattr(view_class, method.lower(), None)
        if handler is None and method == "HEAD":  # MethodView answers HEAD with get()
            handler = getattr(view_class, "get", None)
        found += [handler, view_class] if handler is not None else [view_class]
    while view is not None and len(found) < 16:
        found.append(view)
        view = getattr(view, "__wrapped__", None)
    return found
