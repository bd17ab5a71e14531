"""Loading an OpenAPI 2.0 / 3.x document and reading its API key security from it.

Everything here runs once, at start-up. Any document that cannot be enforced exactly as
written raises :class:`SpecError`, naming the document and the rule it breaks.
"""

from __future__ import annotations

import difflib
import gc
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlsplit

from .errors import ClientAuthError
from .locations import LOCATIONS
from .requirements import KeyType, Location, Policy, Requirement, Scheme
from .store import check_role

SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Callable[[], Any]]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_API_KEY_LOCATIONS = {2: ("header", "query"), 3: tuple(LOCATIONS)}
_KNOWN_TYPES = {
    2: {"apiKey", "basic", "oauth2"},
    3: {"apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"},
}


#: How many places one grouped problem names before "and N more".
LISTED = 10


class SpecError(ClientAuthError):
    """The OpenAPI document cannot be enforced; the message names the document and the rule.

    ``message`` is the text after the document's name; ``where`` (the operation, scheme or route)
    and ``problem`` split it when known. An error that reports several problems keeps each in
    ``errors`` (itself when it is one).
    """

    def __init__(
        self, source: str, message: str, *, where: str | None = None, errors: Sequence[SpecError] = ()
    ) -> None:
        full = f"{where}: {message}" if where else message
        super().__init__(f"{source}: {full}")
        self.source = source
        self.message = full
        self.where = where
        self.problem = message
        self.errors: tuple[SpecError, ...] = tuple(errors) or (self,)

    @property
    def rule(self) -> str:
        """Deprecated alias of :attr:`message` (it holds a message, not a rule)."""
        return self.message


def group_problems(
    items: Iterable[tuple[str | None, str]], *, noun: str = "places", limit: int | None = LISTED
) -> list[str]:
    """One line per distinct problem, naming the places it affects (at most ``limit``, then "and N more").

    A vendor document can break one rule on a thousand operations: the advice is given once.
    """
    groups: dict[str, dict[str, None]] = {}
    for where, problem in items:
        found = groups.setdefault(problem, {})
        if where:
            found[where] = None
    lines = []
    for problem, unique in groups.items():
        places = list(unique)
        if len(places) <= 1:
            lines.append(f"{places[0]}: {problem}" if places else problem)
            continue
        shown = places if limit is None else places[:limit]
        more = f"; and {len(places) - len(shown)} more" if len(places) > len(shown) else ""
        lines.append(f"{problem}\n    in {len(places)} {noun}: {'; '.join(shown)}{more}")
    return lines


def error_lines(source: str, errors: Sequence[SpecError], *, limit: int | None = LISTED) -> list[str]:
    """The errors grouped by problem, one line (or two) each; an error about another file names it."""
    items: list[tuple[str | None, str]] = []
    for e in errors:
        where = e.where if e.source == source else e.source + (f", {e.where}" if e.where else "")
        items.append((where, e.problem))
    return group_problems(items, limit=limit)


def combine_errors(source: str, errors: Sequence[SpecError], *, title: str) -> SpecError:
    """One :class:`SpecError` for several (``title`` heads the list): grouped by problem, each kept in ``errors``."""
    if len(errors) == 1:
        return errors[0]
    listed = "".join(f"\n  - {line}" for line in error_lines(source, errors))
    return SpecError(source, f"{title}:{listed}", errors=[one for e in errors for one in e.errors])


@dataclass(frozen=True)
class Operation:
    """One documented operation and the policy its document asks for.

    ``ref`` says where a ``$ref`` took it from (``paths/users.yaml#/get``), ``None`` when written in place.
    """

    method: str
    path: str
    prefixes: tuple[str, ...]
    policy: Policy
    ref: str | None = None
    #: The document's ``operationId`` (``None`` when it gives none).
    operation_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Spec:
    """The parts of an OpenAPI document that security enforcement needs.

    ``openapi`` is the version as written (``3.1.0``, ``2.0``); ``warnings`` what start-up logs.
    """

    source: str
    version: int
    schemes: dict[str, Scheme]
    global_policy: Policy | None
    operations: list[Operation] = field(default_factory=list)
    openapi: str = ""
    warnings: list[str] = field(default_factory=list)

    def policy_for_names(self, alternatives: list[list[str]], *, origin: str, where: str) -> Policy:
        """Build a policy from scheme names, as ``@auth.require`` gives them."""
        reqs: list[dict[str, list[str]]] = [{name: [] for name in names} for names in alternatives]
        return _parse_security(self, reqs, origin=origin, where=where)

    def used_schemes(self) -> set[str]:
        """Names of the schemes the document's requirements (global and per operation) use."""
        policies = [op.policy for op in self.operations]
        if self.global_policy is not None:
            policies.append(self.global_policy)
        return {name for p in policies for r in p.alternatives for name in r.names}


def load_spec(
    source: SpecSource,
    *,
    root_path: str | None = None,
    strict_names: bool = False,
) -> Spec:
    """Load, resolve and check an OpenAPI document from a path, a mapping or a callable.

    Every problem of the document is reported at once, in one :class:`SpecError`.
    """
    label, document, file = read_document(source, root_path=root_path)
    return _Parser(document, label, file, strict_names).parse()


def read_document(source: SpecSource, *, root_path: str | None = None) -> tuple[str, Mapping[str, Any], Path | None]:
    """The document as read (nothing resolved): how errors name it, its mapping, and its file if it is one."""
    label = "<CLIENTAUTH_SPEC>"
    file: Path | None = None
    if callable(source) and not isinstance(source, Mapping):
        label = f"<{getattr(source, '__qualname__', repr(source))}()>"
        try:  # whatever the app's builder raises is a document that cannot be enforced
            document = source()
            if callable(getattr(document, "to_dict", None)):  # apispec.APISpec
                document = document.to_dict()
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(label, f"building the document raised {type(exc).__name__}: {exc}") from exc
    elif isinstance(source, Mapping):
        label = "<dict>"
        document = source
    elif isinstance(source, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", source):
        # a URL, not a path; its user-info may hold a password, so only the scheme is shown
        raise SpecError(
            "<CLIENTAUTH_SPEC>",
            f"{source.split('://', 1)[0]}:// URLs are not supported: CLIENTAUTH_SPEC takes a file path, a dict or "
            "a callable (download the document at build time and ship it with the app)",
        )
    elif isinstance(source, (str, os.PathLike)):
        file = Path(source)
        if not file.is_absolute() and root_path is not None:
            file = Path(root_path) / file
        label = str(file)
        document = _read_file(file, label)
    else:
        raise SpecError(label, f"unsupported CLIENTAUTH_SPEC value of type {type(source).__name__}")
    if not isinstance(document, Mapping):
        raise SpecError(label, "the document is not a mapping (JSON object / YAML mapping)")
    return label, document, file


def _read_file(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(label, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(label, f"cannot read the file: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(label, f"invalid JSON: {exc}") from None
    import yaml

    # libyaml's parser when PyYAML was built with it (the same documents, several times faster).
    # The collector is paused meanwhile: the parse only allocates, and a large document would
    # otherwise set off full collections over a growing heap (half the time, and superlinear).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SpecError(label, f"invalid YAML: {exc}") from None
    finally:
        if collecting:
            gc.enable()


#: A ``$ref`` that is not a relative reference: ``https://...``, ``//host/...``, ``file:...``.
_REMOTE_REF = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|//)")
#: Keys OpenAPI (2.0 / 3.x) defines where security is read: only other keys are checked for misspellings.
_KNOWN_KEYS = frozenset(
    (
        *HTTP_METHODS,
        *("swagger", "openapi", "info", "host", "basePath", "schemes", "consumes", "produces", "paths"),
        *("definitions", "parameters", "responses", "securityDefinitions", "tags", "externalDocs"),
        *("servers", "components", "webhooks", "jsonSchemaDialect", "summary", "description", "$ref"),
        *("operationId", "requestBody", "callbacks", "deprecated"),
    )
)
#: Keys a ``$ref``'s siblings may not redefine differently from what it points to (security depends on them).
_GUARDED_KEYS = frozenset((*HTTP_METHODS, "servers", "security"))


@dataclass(frozen=True)
class _File:
    """A file nodes are read from: a ``$ref`` in it is relative to it, ``#/...`` points into it."""

    root: Any
    base: Path | None  # its directory; None when the document is not a file
    name: str  # "" for the main document, else its path relative to the main document's directory


@dataclass
class _Resolved:
    """What a chain of ``$ref`` leads to: the node, its file, where it came from, and its siblings' files."""

    node: Any
    file: _File
    ref: str | None = None  # ``paths/users.yaml#/get``: the last target, for ``Operation.ref``
    key_files: dict[str, _File] = field(default_factory=dict)

    def file_of(self, key: str) -> _File:
        return self.key_files.get(key, self.file)


class _Report:
    """What a parse finds: errors, kept to be raised together at the end, and warnings for start-up to log."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.errors: list[SpecError] = []
        self.warnings: list[str] = []

    def fail(self, message: str, where: str | None = None) -> SpecError:
        return SpecError(self.label, message, where=where)

    def warn(self, message: str, where: str | None = None) -> None:
        self.warnings.append(f"{self.label}: {where}: {message}" if where else f"{self.label}: {message}")

    def collect(self, step: Callable[..., Any], *args: Any) -> Any:
        """Run one independent step of the parse; an error is kept for the report, not raised."""
        try:
            return step(*args)
        except SpecError as exc:
            self.errors.append(exc)
            return None


class _Refs:
    """``$ref`` resolution: local and relative-file references; each file is read once."""

    def __init__(self, report: _Report, document: Mapping[str, Any], path: Path | None) -> None:
        self.fail = report.fail
        self.main = _File(document, path.parent if path is not None else None, "")
        self._files: dict[Path, _File] = {}
        if path is not None:
            self._files[path.resolve()] = self.main

    def resolve(self, node: Any, where: str, file: _File | None = None) -> _Resolved:
        """Follow a chain of ``$ref`` (local and relative-file refs), merging the siblings written next to each.

        OpenAPI leaves a field defined both next to the ``$ref`` and in its target undefined: if that field
        decides security (an operation, ``servers``, ``security``) and the two differ, that is an error.
        """
        file = file or self.main
        seen: set[tuple[str, str]] = set()
        siblings: dict[str, tuple[Any, _File]] = {}
        target: str | None = None
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str):
                raise self.fail("$ref must be a string", where)
            for key, value in node.items():
                if key != "$ref" and key not in siblings:
                    siblings[key] = (value, file)
            in_file = f" (in {file.name})" if file.name else ""
            if _REMOTE_REF.match(ref):
                raise self.fail(
                    f"$ref {ref!r}{in_file} is not a relative reference: remote references are not supported "
                    "(save the file next to the document and refer to it by a relative path)",
                    where,
                )
            file_part, _, pointer = ref.partition("#")
            if file_part:
                if file.base is None:
                    raise self.fail(f"$ref {ref!r} points to a file, but the spec is not a file", where)
                file = self._file(file.base / unquote(file_part), ref, in_file, where)
            key = (file.name, pointer)
            if key in seen:
                raise self.fail(f"circular $ref {ref!r}{in_file}", where)
            seen.add(key)
            node = self._pointer(file.root, pointer, ref, in_file, where)
            target = f"{file.name}#{pointer}"
        resolved = _Resolved(node, file, target)
        if siblings and isinstance(node, Mapping):
            merged = dict(node)
            for key, (value, sibling_file) in siblings.items():
                if key in merged and merged[key] != value and key in _GUARDED_KEYS:
                    raise self.fail(
                        f"{key!r} is written both next to a $ref and in its target {target!r}, differently: "
                        "OpenAPI leaves that undefined; keep one",
                        where,
                    )
                if key == "security" and key not in merged:
                    # OpenAPI 3.1 ignores a Reference's siblings (but summary and description), and a
                    # merge would apply them: two readings, one of them weaker. Refuse, never guess.
                    raise self.fail(
                        f"'security' is written next to a $ref whose target {target!r} has none: OpenAPI 3.1 "
                        "ignores it there, other tools apply it; write it in the target",
                        where,
                    )
                if key not in merged:
                    merged[key] = value
                    resolved.key_files[key] = sibling_file
            resolved.node = merged
        return resolved

    def _file(self, path: Path, ref: str, in_file: str, where: str) -> _File:
        path = path.resolve()
        found = self._files.get(path)
        if found is None:
            try:
                root = _read_file(path, str(path))
            except SpecError as exc:
                raise self.fail(f"$ref {ref!r}{in_file}: {path}: {exc.message}", where) from None
            base = self.main.base
            name = os.path.relpath(path, base) if base is not None else str(path)
            found = self._files[path] = _File(root, path.parent, Path(name).as_posix())
        return found

    def _pointer(self, doc: Any, pointer: str, ref: str, in_file: str, where: str) -> Any:
        node = doc
        if pointer and not pointer.startswith("/"):
            raise self.fail(f"$ref {ref!r}{in_file} does not resolve (a JSON pointer starts with '/')", where)
        for raw in pointer.split("/")[1:] if pointer else ():
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(f"$ref {ref!r}{in_file} does not resolve", where)
        return node


class _Schemes:
    """The document's security schemes (``securityDefinitions`` / ``components.securitySchemes``)."""

    def __init__(self, report: _Report, refs: _Refs, doc: Mapping[str, Any], openapi: str, strict: bool) -> None:
        self.report = report
        self.fail = report.fail
        self.refs = refs
        self.doc = doc
        self.openapi = openapi
        self.strict = strict
        #: Schemes whose definition is in error: requirements naming them are not reported again.
        self.broken: set[str] = set()

    def read(self, version: int) -> dict[str, Scheme]:
        if version == 2:
            raw = self.doc.get("securityDefinitions") or {}
            where = "securityDefinitions"
        else:
            components = self.doc.get("components") or {}
            if not isinstance(components, Mapping):
                self.report.errors.append(self.fail("'components' must be a mapping"))
                components = {}
            raw = components.get("securitySchemes") or {}
            where = "components.securitySchemes"
        if not isinstance(raw, Mapping):
            self.report.errors.append(self.fail(f"{where} must be a mapping"))
            return {}
        other = self.doc.get("components") if version == 2 else self.doc
        misplaced = "components.securitySchemes" if version == 2 else "securityDefinitions"
        if isinstance(other, Mapping) and (other.get("securitySchemes") if version == 2 else other.get(misplaced)):
            self.report.warn(
                f"{misplaced} is not OpenAPI {self.openapi}'s: its schemes are ignored; write them in {where}"
            )
        schemes: dict[str, Scheme] = {}
        for key, body in raw.items():
            name = str(key)
            scheme = self.report.collect(self._scheme, name, body, version, where)
            if scheme is None:
                self.broken.add(name)
            else:
                schemes[name] = scheme
        return schemes

    def _scheme(self, name: str, body: Any, version: int, where: str) -> Scheme:
        at = f"{where}.{name}"
        body = self.refs.resolve(body, at).node
        if not isinstance(body, Mapping):
            raise self.fail("the security scheme must be a mapping", at)
        kind = body.get("type")
        if not isinstance(kind, str) or kind not in _KNOWN_TYPES[version]:
            raise self.fail(
                f"unknown security scheme type {kind!r} for OpenAPI {version} "
                f"(expected one of {', '.join(sorted(_KNOWN_TYPES[version]))})",
                at,
            )
        if kind == "mutualTLS" and re.match(r"^3\.0(\.|$)", self.openapi):
            raise self.fail(f"security scheme type 'mutualTLS' needs OpenAPI 3.1 (this is {self.openapi})", at)
        if kind != "apiKey":
            return Scheme(name=name, type=kind)
        param = body.get("name")
        if not isinstance(param, str) or not param.strip():
            raise self.fail("an apiKey scheme needs a non-empty 'name'", at)
        location = body.get("in")
        if not isinstance(location, str) or location not in _API_KEY_LOCATIONS[version]:
            allowed = ", ".join(_API_KEY_LOCATIONS[version])
            raise self.fail(
                f"'in: {location}' is not allowed for an apiKey in OpenAPI {version} (allowed: {allowed})", at
            )
        key_type: Any = body.get("x-key-type")
        if key_type is None:
            key_type = "client_secret" if "secret" in param.lower() else "client_id"
        elif not isinstance(key_type, str) or key_type not in ("client_id", "client_secret"):
            raise self.fail(f"x-key-type must be 'client_id' or 'client_secret', not {key_type!r}", at)
        loc: Location = location  # type: ignore[assignment]
        kt: KeyType = key_type
        scheme = Scheme(name=name, type="apiKey", param=param, location=loc, key_type=kt)
        if self.strict:
            carrier = LOCATIONS[loc]
            expected = carrier.v5_names.get(kt)
            if expected is None:
                allowed = " or ".join(n for n, w in LOCATIONS.items() if w.v5_names)
                raise self.fail(f"CLIENTAUTH_STRICT_NAMES allows API keys only in the {allowed}, not in the {loc}", at)
            if not carrier.same_name(param, expected):
                raise self.fail(
                    f"CLIENTAUTH_STRICT_NAMES requires the {kt} key in the {loc} to be named {expected!r}, "
                    f"not {param!r}",
                    at,
                )
        return scheme


class _Servers:
    """The path prefixes operations are served under: 2.0's ``basePath``, 3.x's ``servers`` (variables expanded)."""

    def __init__(self, report: _Report, doc: Mapping[str, Any], version: int) -> None:
        self.fail = report.fail
        self.doc = doc
        self.version = version

    def prefixes(self, node: Mapping[str, Any], inherited: tuple[str, ...], where: str) -> tuple[str, ...]:
        if self.version == 2:
            if node is not self.doc:
                return inherited
            base = node.get("basePath") or "/"
            if not isinstance(base, str) or not base.startswith("/"):
                raise self.fail(f"basePath {base!r} must start with '/'")
            return (base.rstrip("/"),)
        servers = node.get("servers")
        if servers is None or servers == []:
            return tuple(p.rstrip("/") for p in inherited)
        if not isinstance(servers, list):
            raise self.fail("'servers' must be a list", where)
        out: list[str] = []
        for server in servers:
            if not isinstance(server, Mapping) or not isinstance(server.get("url"), str):
                raise self.fail("every server needs a 'url' string", where)
            for url in self._expand(server["url"], server.get("variables"), where):
                path = self._path(url, where)
                if path not in out:
                    out.append(path)
        return tuple(out)

    def _expand(self, url: str, variables: Any, where: str) -> list[str]:
        """Every concrete URL a server URL template stands for (its enum values and default)."""
        if variables is not None and not isinstance(variables, Mapping):
            raise self.fail(f"server {url!r}: 'variables' must be a mapping", where)
        urls = [url]
        for name in dict.fromkeys(re.findall(r"\{([^}]*)\}", url)):
            var = (variables or {}).get(name)
            if not isinstance(var, Mapping):
                raise self.fail(
                    f"server URL {url!r} uses the variable {{{name}}}, which its 'variables' do not define "
                    "(it cannot be matched to any request path)",
                    where,
                )
            values: list[str] = []
            enum = var.get("enum")
            if isinstance(enum, list):
                values.extend(str(v) for v in enum)
            if "default" in var and var["default"] is not None and str(var["default"]) not in values:
                values.append(str(var["default"]))
            if not values:
                raise self.fail(f"server URL {url!r}: the variable {name!r} needs a 'default'", where)
            urls = [u.replace("{" + name + "}", v) for u in urls for v in values]
        return urls

    def _path(self, url: str, where: str) -> str:
        """The path part of a server URL; a relative URL whose first segment looks like a host is an error.

        OpenAPI reads ``api.example.com/v1`` as a path relative to the document, but its author most
        likely meant a host: rather than guess which, ask for an unambiguous form.
        """
        if "://" in url or url.startswith("//"):
            path = urlsplit(url).path
        else:
            path = url.split("?")[0].split("#")[0]
            first = path.split("/")[0]
            if first not in ("", ".", "..") and ("." in first or ":" in first):
                raise self.fail(
                    f"server URL {url!r} has no scheme, and {first!r} looks like a host: OpenAPI reads it as the "
                    f"relative path {path!r}; write 'https://{path}' (or '//{path}') for a host, or '/{path}' for "
                    "a path",
                    where,
                )
        path = posixpath.normpath("/" + path.lstrip("/"))  # "./v1", "v1" -> "/v1"
        return "" if path == "/" else path


class _Parser:
    """The document read into a :class:`Spec`: its version, then schemes, prefixes and operations."""

    def __init__(self, document: Mapping[str, Any], label: str, path: Path | None, strict: bool) -> None:
        self.label = label
        self.doc = document
        self.strict = strict
        self.openapi = "2.0"
        self.report = _Report(label)
        self.fail = self.report.fail
        self.refs = _Refs(self.report, document, path)

    # -- document ---------------------------------------------------------------------
    def parse(self) -> Spec:
        version = self._version()
        spec = Spec(source=self.label, version=version, schemes={}, global_policy=None, openapi=self.openapi)
        self.schemes = _Schemes(self.report, self.refs, self.doc, self.openapi, self.strict)
        spec.schemes = self.schemes.read(version)
        self.servers = _Servers(self.report, self.doc, version)
        self._check_keys(self.doc, None, "document")
        if "security" in self.doc:
            spec.global_policy = self.report.collect(self._global_security, spec)
        prefixes = self.report.collect(self.servers.prefixes, self.doc, ("/",), "servers") or ("",)
        paths = self.doc.get("paths") or {}
        if not isinstance(paths, Mapping):
            self.report.errors.append(self.fail("'paths' must be a mapping"))
            paths = {}
        for path, item in paths.items():
            if isinstance(path, str) and path.startswith("x-"):
                continue
            self.report.collect(self._path, spec, path, item, prefixes)
        errors = self.report.errors
        if errors:
            raise combine_errors(self.label, errors, title=f"{len(errors)} problems in the document")
        for warning in _usage_warnings(spec):
            self.report.warn(warning)
        spec.warnings = self.report.warnings
        return spec

    def _global_security(self, spec: Spec) -> Policy:
        return self._security(spec, self.doc["security"], origin="global", where="global security")

    def _path(self, spec: Spec, path: Any, raw: Any, prefixes: tuple[str, ...]) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise self.fail(f"path {path!r} must start with '/'")
        where = f"path {path}"
        item = self.refs.resolve(raw, where)
        if not isinstance(item.node, Mapping):
            raise self.fail("the path item must be a mapping", where)
        self._check_keys(item.node, where, "path")
        item_prefixes = self.servers.prefixes(item.node, prefixes, f"{where}: servers")
        for method in HTTP_METHODS:
            if method in item.node:
                self.report.collect(self._operation, spec, method, path, item, item_prefixes)

    def _operation(self, spec: Spec, method: str, path: str, item: _Resolved, prefixes: tuple[str, ...]) -> None:
        where = f"operation {method.upper()} {path}"
        found = self.refs.resolve(item.node[method], where, item.file_of(method))
        op = found.node
        if not isinstance(op, Mapping):
            raise self.fail("the operation must be a mapping", where)
        self._check_keys(op, where, "operation")
        if "security" in op:
            policy = self._security(spec, op["security"], origin="operation", where=where)
        elif spec.global_policy is not None:
            policy = spec.global_policy
        else:
            policy = Policy(origin="operation")
        policy = Policy(
            policy.alternatives, policy.optional, origin=policy.origin, operation=f"{method.upper()} {path}"
        )
        ref = found.ref or (f"{item.ref}/{method}" if item.ref else None)
        spec.operations.append(
            Operation(
                method=method.upper(),
                path=path,
                prefixes=self.servers.prefixes(op, prefixes, f"{where}: servers"),
                policy=policy,
                ref=ref,
                operation_id=op["operationId"] if isinstance(op.get("operationId"), str) else None,
            )
        )

    def _security(self, spec: Spec, raw: Any, *, origin: str, where: str) -> Policy:
        if isinstance(raw, list) and any(
            isinstance(obj, Mapping) and any(str(name) in self.schemes.broken for name in obj) for obj in raw
        ):
            return Policy(deny=True, origin=origin)  # the scheme's own error says it: not once more per operation
        return _parse_security(spec, raw, origin=origin, where=where)

    def _check_keys(self, node: Mapping[Any, Any], where: str | None, level: str) -> None:
        """Keys OpenAPI ignores where a reader would expect security: loud warnings, or errors."""
        for key in node:
            if not isinstance(key, str) or key.startswith("x-"):
                continue
            if level == "path" and key.lower() in HTTP_METHODS and key != key.lower():
                # OpenAPI's method keys are case-sensitive: this operation does not exist for it, and the
                # route would silently get another requirement (the global one, or none)
                raise self.fail(
                    f"{key!r} is not an operation: OpenAPI's method keys are lower-case, so it would be ignored "
                    f"and {key.upper()} requests would get another requirement; write {key.lower()!r}",
                    where,
                )
            if key == "security" and level != "path":
                continue
            if key in _KNOWN_KEYS:
                continue
            if key == "security" or difflib.get_close_matches(key.lower(), ["security"], n=1, cutoff=0.75):
                if level == "path" and key == "security":
                    text = (
                        "'security' on a path item is not OpenAPI: it is ignored, and its operations get the "
                        "global requirement (or none); put 'security' on each operation"
                    )
                else:
                    text = f"{key!r} is not 'security': it is ignored; if it was meant as security, spell it 'security'"
                self.report.warn(text, where)

    def _version(self) -> int:
        swagger, openapi = self.doc.get("swagger"), self.doc.get("openapi")
        if swagger is not None:
            if str(swagger) != "2.0":
                raise self.fail(f"unsupported swagger version {swagger!r} (expected '2.0')")
            return 2
        if isinstance(openapi, (int, float)) and not isinstance(openapi, bool):
            openapi = str(openapi)  # unquoted YAML ``openapi: 3.1``, read as ``swagger: 2.0`` is
        if isinstance(openapi, str) and re.match(r"^3\.\d+(\.\d+)?", openapi):
            self.openapi = openapi
            return 3
        if openapi is not None:
            raise self.fail(f"unsupported openapi version {openapi!r} (expected 3.x)")
        raise self.fail("not an OpenAPI document: neither 'swagger: \"2.0\"' nor 'openapi: 3.x'")


def _usage_warnings(spec: Spec) -> list[str]:
    """Warnings about the API keys the document's requirements use (unused ones cannot harm)."""
    warnings = []
    used = spec.used_schemes()
    for scheme in spec.schemes.values():
        if scheme.name not in used or not scheme.is_api_key:
            continue
        warning = scheme.where.warning(scheme) if scheme.where is not None else None
        if warning is not None:
            warnings.append(warning)
    return warnings


def _parse_security(spec: Spec, raw: Any, *, origin: str, where: str) -> Policy:
    """Turn a ``security`` list into a policy, enforcing the seeds' rules on each requirement."""
    if not isinstance(raw, list):
        raise SpecError(spec.source, "'security' must be a list of requirement objects", where=where)
    alternatives: list[Requirement] = []
    optional = False
    for index, obj in enumerate(raw):
        at = f"{where}, requirement #{index + 1}"
        if not isinstance(obj, Mapping):
            raise SpecError(spec.source, "a security requirement must be a mapping", where=at)
        if not obj:
            optional = True
            continue
        schemes = []
        roles: list[str] = []
        for name, listed in obj.items():
            scheme = spec.schemes.get(str(name))
            if scheme is None:
                raise SpecError(spec.source, f"security scheme {name!r} is not defined", where=at)
            if scheme.is_api_key:
                roles.extend(_roles(spec, scheme, listed, at))
            schemes.append(scheme)
        req = Requirement(tuple(schemes), tuple(roles))
        _check_requirement(spec.source, req, at)
        # {a, b} is {b, a}; {a: [admin]} is another alternative than {a: []}
        if all((set(req.schemes), req.roles) != (set(a.schemes), a.roles) for a in alternatives):
            alternatives.append(req)
    if optional and not alternatives:
        return Policy(origin=origin)
    return Policy(tuple(alternatives), optional=optional, origin=origin)


def _roles(spec: Spec, scheme: Scheme, listed: Any, at: str) -> list[str]:
    """The roles an API key's list names: OpenAPI 3.1 only; 3.0 and 2.0 say the list MUST be empty,
    and a document that names roles there means them: ignoring them would let every client pass."""
    if listed is None or listed == []:
        return []
    if not isinstance(listed, list):
        raise SpecError(
            spec.source, f"the value of {scheme.name!r} must be a list (write '{scheme.name}: []')", where=at
        )
    if spec.version != 3 or re.match(r"^3\.0(\.|$)", spec.openapi):
        raise SpecError(
            spec.source,
            f"API key scheme {scheme.name!r} is required with the roles {[str(r) for r in listed]}: OpenAPI "
            f"{spec.openapi} says the list MUST be empty for an apiKey scheme (role lists need OpenAPI 3.1), and "
            f"ignoring them would let every client pass; remove them (write '{scheme.name}: []'), or declare "
            "'openapi: 3.1.0'",
            where=at,
        )
    roles = []
    for role in listed:
        if not isinstance(role, str):  # YAML reads ``[1, yes]`` as a number and a boolean
            raise SpecError(
                spec.source, f"API key scheme {scheme.name!r}: a role must be a string (quote {role!r})", where=at
            )
        try:
            roles.append(check_role(role))
        except ValueError as exc:  # no client could ever hold it: the requirement could never be met
            raise SpecError(spec.source, f"API key scheme {scheme.name!r}: {exc}", where=at) from None
    return roles


def _check_requirement(source: str, req: Requirement, at: str) -> None:
    """The seeds' limits on the API keys one requirement may combine."""
    keys = [s for s in req.schemes if s.is_api_key]
    ids = [s for s in keys if s.key_type == "client_id"]
    secrets = [s for s in keys if s.key_type == "client_secret"]
    names = ", ".join(s.name for s in keys)
    if len(keys) > 2:
        raise SpecError(source, f"more than two API key schemes in one requirement ({names})", where=at)
    if len(ids) > 1:
        raise SpecError(
            source,
            f"at most one client ID key per requirement ({names}); a key is a client secret when its "
            "name contains 'secret' (any case) or it has x-key-type: client_secret, otherwise a client ID",
            where=at,
        )
    if len(secrets) > 1:
        raise SpecError(source, f"at most one client secret key per requirement ({names})", where=at)
    if secrets and not ids:
        raise SpecError(source, f"client secret key {secrets[0].name!r} is applied without a client ID key", where=at)
    if ids and secrets and ids[0].location != secrets[0].location:
        raise SpecError(
            source,
            f"client ID ({ids[0].location}) and client secret ({secrets[0].location}) must be sent in the same location",
            where=at,
        )


def unrequired_keys_warning(spec: Spec, routes: Iterable[tuple[str, Policy]]) -> str | None:
    """The document defines API keys that no requirement uses: how many routes are public because of it.

    ``routes`` are the resolved ``("METHOD rule", policy)`` pairs; ``HEAD`` and ``OPTIONS`` are not counted.
    """
    keys = sorted(s.name for s in spec.schemes.values() if s.is_api_key)
    routes = list(routes)
    used = spec.used_schemes() | {s.name for _, p in routes for r in p.alternatives for s in r.schemes}
    if not keys or used.intersection(keys):
        return None
    public = {
        label
        for label, policy in routes
        if policy.public and not policy.origin.startswith("exempt") and label.split(" ")[0] not in ("HEAD", "OPTIONS")
    }
    return (
        f"{spec.source}: the document defines the API key scheme(s) {', '.join(map(repr, keys))}, but no security "
        f"requirement uses them (no global 'security', none on an operation): {len(public)} route(s) are public "
        "because of it; add a 'security' requirement where the keys are meant to be required"
    )
