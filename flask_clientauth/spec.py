"""Loading an OpenAPI 2.0 / 3.x document and reading its API key security from it.

Everything here runs once, at start-up. Any document that cannot be enforced exactly as
written raises :class:`SpecError`, naming the document and the rule it breaks.
"""

from __future__ import annotations

import gc
import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlsplit

from .requirements import V5_NAMES, KeyType, Location, Policy, Requirement, Scheme

SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Callable[[], Any]]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_API_KEY_LOCATIONS = {2: ("header", "query"), 3: ("header", "query", "cookie")}
_KNOWN_TYPES = {
    2: {"apiKey", "basic", "oauth2"},
    3: {"apiKey", "http", "oauth2", "openIdConnect", "mutualTLS"},
}


class SpecError(Exception):
    """The OpenAPI document cannot be enforced; the message names the document and the rule."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.rule = message


@dataclass(frozen=True)
class Operation:
    """One documented operation and the policy its document asks for."""

    method: str
    path: str
    prefixes: tuple[str, ...]
    policy: Policy
    operation_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Spec:
    """The parts of an OpenAPI document that security enforcement needs."""

    source: str
    version: int
    schemes: dict[str, Scheme]
    global_policy: Policy | None
    operations: list[Operation] = field(default_factory=list)

    def policy_for_names(self, alternatives: list[list[str]], *, origin: str, where: str) -> Policy:
        """Build a policy from scheme names, as ``@auth.require`` gives them."""
        reqs: list[dict[str, list[str]]] = [{name: [] for name in names} for names in alternatives]
        return _parse_security(self, reqs, origin=origin, where=where)


def load_spec(
    source: SpecSource,
    *,
    root_path: str | None = None,
    strict_names: bool = False,
) -> Spec:
    """Load, resolve and check an OpenAPI document from a path, a mapping or a callable."""
    label = "<CLIENTAUTH_SPEC>"
    base_dir: Path | None = None
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
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_absolute() and root_path is not None:
            path = Path(root_path) / path
        label = str(path)
        base_dir = path.parent
        document = _read_file(path, label)
    else:
        raise SpecError(label, f"unsupported CLIENTAUTH_SPEC value of type {type(source).__name__}")
    if not isinstance(document, Mapping):
        raise SpecError(label, "the document is not a mapping (JSON object / YAML mapping)")
    return _Parser(document, label, base_dir, strict_names).parse()


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


class _Parser:
    def __init__(self, document: Mapping[str, Any], label: str, base_dir: Path | None, strict: bool) -> None:
        self.doc = document
        self.label = label
        self.base_dir = base_dir
        self.strict = strict
        self.openapi = "2.0"
        self._files: dict[Path, Any] = {}

    def fail(self, message: str) -> SpecError:
        return SpecError(self.label, message)

    # -- $ref -------------------------------------------------------------------------
    def resolve(self, node: Any, where: str) -> Any:
        """Follow a chain of ``$ref`` until a node without one (local and file refs)."""
        seen: set[str] = set()
        doc: Any = self.doc
        base = self.base_dir
        while isinstance(node, Mapping) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str):
                raise self.fail(f"{where}: $ref must be a string")
            file_part, _, pointer = ref.partition("#")
            key = f"{base}:{ref}"
            if key in seen:
                raise self.fail(f"{where}: circular $ref {ref!r}")
            seen.add(key)
            if file_part:
                if base is None:
                    raise self.fail(f"{where}: $ref {ref!r} points to a file, but the spec is not a file")
                path = (base / file_part).resolve()
                if path not in self._files:
                    self._files[path] = _read_file(path, str(path))
                doc, base = self._files[path], path.parent
            node = self._pointer(doc, pointer, ref, where)
        return node

    def _pointer(self, doc: Any, pointer: str, ref: str, where: str) -> Any:
        node = doc
        for raw in [p for p in pointer.split("/") if p]:
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(f"{where}: $ref {ref!r} does not resolve")
        return node

    # -- document ---------------------------------------------------------------------
    def parse(self) -> Spec:
        version = self._version()
        schemes = self._schemes(version)
        spec = Spec(source=self.label, version=version, schemes=schemes, global_policy=None)
        if "security" in self.doc:
            spec.global_policy = _parse_security(spec, self.doc["security"], origin="global", where="global security")
        prefixes = self._prefixes(self.doc, version, ("/",))
        paths = self.doc.get("paths") or {}
        if not isinstance(paths, Mapping):
            raise self.fail("'paths' must be a mapping")
        for path, item in paths.items():
            if not isinstance(path, str) or path.startswith("x-"):
                continue
            if not path.startswith("/"):
                raise self.fail(f"path {path!r} must start with '/'")
            item = self.resolve(item, f"path {path}")
            if not isinstance(item, Mapping):
                raise self.fail(f"path {path}: the path item must be a mapping")
            item_prefixes = self._prefixes(item, version, prefixes)
            for method in HTTP_METHODS:
                if method not in item:
                    continue
                op = item[method]
                where = f"operation {method.upper()} {path}"
                if not isinstance(op, Mapping):
                    raise self.fail(f"{where}: the operation must be a mapping")
                if "security" in op:
                    policy = _parse_security(spec, op["security"], origin="operation", where=where)
                elif spec.global_policy is not None:
                    policy = spec.global_policy
                else:
                    policy = Policy(origin="operation")
                policy = Policy(
                    policy.alternatives,
                    policy.optional,
                    origin=policy.origin,
                    operation=f"{method.upper()} {path}",
                )
                spec.operations.append(
                    Operation(
                        method=method.upper(),
                        path=path,
                        prefixes=self._prefixes(op, version, item_prefixes),
                        policy=policy,
                        operation_id=op.get("operationId"),
                    )
                )
        return spec

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

    def _schemes(self, version: int) -> dict[str, Scheme]:
        if version == 2:
            raw = self.doc.get("securityDefinitions") or {}
            where = "securityDefinitions"
        else:
            components = self.doc.get("components") or {}
            raw = components.get("securitySchemes") or {} if isinstance(components, Mapping) else {}
            where = "components.securitySchemes"
        if not isinstance(raw, Mapping):
            raise self.fail(f"{where} must be a mapping")
        schemes = {
            str(name): self._scheme(str(name), self.resolve(body, f"{where}.{name}"), version, where)
            for name, body in raw.items()
        }
        ids = [s for s in schemes.values() if s.key_type == "client_id"]
        secrets = [s for s in schemes.values() if s.key_type == "client_secret"]
        if self.strict:
            for s in ids + secrets:
                assert s.location is not None and s.key_type is not None
                expected = V5_NAMES.get((s.location, s.key_type))
                if expected is None or (
                    s.param != expected
                    and not (s.location == "header" and s.param and s.param.lower() == expected.lower())
                ):
                    raise self.fail(
                        f"{where}.{s.name}: CLIENTAUTH_STRICT_NAMES requires the {s.key_type} key in "
                        f"the {s.location} to be named {expected!r}, not {s.param!r}"
                        if expected
                        else f"{where}.{s.name}: CLIENTAUTH_STRICT_NAMES allows API keys only in the "
                        f"header or query, not in the {s.location}"
                    )
        return schemes

    def _scheme(self, name: str, body: Any, version: int, where: str) -> Scheme:
        at = f"{where}.{name}"
        if not isinstance(body, Mapping):
            raise self.fail(f"{at}: the security scheme must be a mapping")
        kind = body.get("type")
        if kind not in _KNOWN_TYPES[version]:
            raise self.fail(
                f"{at}: unknown security scheme type {kind!r} for OpenAPI {version} "
                f"(expected one of {', '.join(sorted(_KNOWN_TYPES[version]))})"
            )
        if kind == "mutualTLS" and re.match(r"^3\.0(\.|$)", self.openapi):
            raise self.fail(f"{at}: security scheme type 'mutualTLS' needs OpenAPI 3.1 (this is {self.openapi})")
        if kind != "apiKey":
            return Scheme(name=name, type=str(kind))
        param = body.get("name")
        if not isinstance(param, str) or not param.strip():
            raise self.fail(f"{at}: an apiKey scheme needs a non-empty 'name'")
        location = body.get("in")
        if location not in _API_KEY_LOCATIONS[version]:
            allowed = ", ".join(_API_KEY_LOCATIONS[version])
            raise self.fail(
                f"{at}: 'in: {location}' is not allowed for an apiKey in OpenAPI {version} (allowed: {allowed})"
            )
        key_type: Any = body.get("x-key-type")
        if key_type is None:
            key_type = "client_secret" if "secret" in param.lower() else "client_id"
        elif key_type not in ("client_id", "client_secret"):
            raise self.fail(f"{at}: x-key-type must be 'client_id' or 'client_secret', not {key_type!r}")
        loc: Location = location
        kt: KeyType = key_type
        return Scheme(name=name, type="apiKey", param=param, location=loc, key_type=kt)

    def _prefixes(self, node: Mapping[str, Any], version: int, inherited: tuple[str, ...]) -> tuple[str, ...]:
        if version == 2:
            if node is not self.doc:
                return inherited
            base = node.get("basePath") or "/"
            if not isinstance(base, str) or not base.startswith("/"):
                raise self.fail(f"basePath {base!r} must start with '/'")
            return (base.rstrip("/"),)
        servers = node.get("servers")
        if not servers:
            return tuple(p.rstrip("/") for p in inherited)
        if not isinstance(servers, list):
            raise self.fail("'servers' must be a list")
        out: list[str] = []
        for server in servers:
            if not isinstance(server, Mapping) or not isinstance(server.get("url"), str):
                raise self.fail("every server needs a 'url' string")
            for url in _expand_server_url(server["url"], server.get("variables") or {}):
                path = urlsplit(url).path if "://" in url or url.startswith("//") else url.split("?")[0]
                path = posixpath.normpath("/" + path.lstrip("/"))  # "./v1", "v1" -> "/v1"
                path = "" if path == "/" else path
                if path not in out:
                    out.append(path)
        return tuple(out)


def _expand_server_url(url: str, variables: Mapping[str, Any]) -> list[str]:
    """Every concrete URL a server URL template stands for (enum values, else the default)."""
    urls = [url]
    for name in re.findall(r"\{([^}]+)\}", url):
        var = variables.get(name) if isinstance(variables, Mapping) else None
        values: list[str]
        if isinstance(var, Mapping) and isinstance(var.get("enum"), list) and var["enum"]:
            values = [str(v) for v in var["enum"]]
        elif isinstance(var, Mapping) and "default" in var:
            values = [str(var["default"])]
        else:
            values = [""]
        urls = [u.replace("{" + name + "}", v) for u in urls for v in values]
    return urls


def _parse_security(spec: Spec, raw: Any, *, origin: str, where: str) -> Policy:
    """Turn a ``security`` list into a policy, enforcing the seeds' rules on each requirement."""
    if not isinstance(raw, list):
        raise SpecError(spec.source, f"{where}: 'security' must be a list of requirement objects")
    alternatives: list[Requirement] = []
    optional = False
    for index, obj in enumerate(raw):
        at = f"{where}, requirement #{index + 1}"
        if not isinstance(obj, Mapping):
            raise SpecError(spec.source, f"{at}: a security requirement must be a mapping")
        if not obj:
            optional = True
            continue
        schemes = []
        for name in obj:
            scheme = spec.schemes.get(str(name))
            if scheme is None:
                raise SpecError(spec.source, f"{at}: security scheme {name!r} is not defined")
            schemes.append(scheme)
        req = Requirement(tuple(schemes))
        _check_requirement(spec.source, req, at)
        if all(set(req.schemes) != set(a.schemes) for a in alternatives):  # {a, b} is {b, a}
            alternatives.append(req)
    if optional and not alternatives:
        return Policy(origin=origin)
    return Policy(tuple(alternatives), optional=optional, origin=origin)


def _check_requirement(source: str, req: Requirement, at: str) -> None:
    """The seeds' limits on the API keys one requirement may combine."""
    keys = [s for s in req.schemes if s.is_api_key]
    ids = [s for s in keys if s.key_type == "client_id"]
    secrets = [s for s in keys if s.key_type == "client_secret"]
    names = ", ".join(s.name for s in keys)
    if len(keys) > 2:
        raise SpecError(source, f"{at}: more than two API key schemes in one requirement ({names})")
    if len(ids) > 1:
        raise SpecError(
            source,
            f"{at}: at most one client ID key per requirement ({names}); a key is a client secret when its "
            "name contains 'secret' (any case) or it has x-key-type: client_secret, otherwise a client ID",
        )
    if len(secrets) > 1:
        raise SpecError(source, f"{at}: at most one client secret key per requirement ({names})")
    if secrets and not ids:
        raise SpecError(source, f"{at}: client secret key {secrets[0].name!r} is applied without a client ID key")
    if ids and secrets and ids[0].location != secrets[0].location:
        raise SpecError(
            source,
            f"{at}: client ID ({ids[0].location}) and client secret ({secrets[0].location}) "
            "must be sent in the same location",
        )
