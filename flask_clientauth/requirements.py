"""The resolved security requirements: plain, immutable data computed once from the spec.

A :class:`Policy` is what one route enforces: a tuple of alternatives (OR), each a
:class:`Requirement` whose schemes must all be satisfied (AND).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .locations import LOCATIONS, CredentialLocation

#: The document's ``in`` values (the keys of ``locations.LOCATIONS``).
Location = Literal["header", "query", "cookie"]
KeyType = Literal["client_id", "client_secret"]


@dataclass(frozen=True)
class Scheme:
    """One security scheme of the document.

    ``param`` / ``location`` / ``key_type`` are set for ``apiKey`` schemes only; ``where`` is the
    object of ``location`` (reads, hides, forwards the key).
    """

    name: str
    type: str
    param: str | None = None
    location: Location | None = None
    key_type: KeyType | None = None
    where: CredentialLocation | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "where", LOCATIONS[self.location] if self.location is not None else None)

    @property
    def is_api_key(self) -> bool:
        return self.type == "apiKey"

    def describe_location(self) -> str:
        """``the header X-IBM-Client-Id``: where this key must be sent, in words."""
        words = self.where.words if self.where is not None else "header"
        return f"the {words} {self.param}"


@dataclass(frozen=True)
class Requirement:
    """One security requirement object: every scheme in it must be satisfied, and the client must
    hold every role of ``roles``."""

    schemes: tuple[Scheme, ...]
    #: The roles the client must hold (sorted, no repeats): the union of the lists of the object's
    #: API keys (OpenAPI 3.1), or ``@auth.require(roles=...)``.
    roles: tuple[str, ...] = ()
    client_id: Scheme | None = field(init=False, compare=False)
    client_secret: Scheme | None = field(init=False, compare=False)
    others: tuple[Scheme, ...] = field(init=False, compare=False)
    #: Names of all the schemes, and of the API key schemes (``current_client.schemes``).
    names: tuple[str, ...] = field(init=False, compare=False)
    key_names: tuple[str, ...] = field(init=False, compare=False)
    #: Header names under which ``current_client.headers`` offers the ID and the secret.
    forward_names: tuple[str, str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(sorted(set(self.roles))))
        ids = [s for s in self.schemes if s.key_type == "client_id"]
        secrets = [s for s in self.schemes if s.key_type == "client_secret"]
        object.__setattr__(self, "client_id", ids[0] if ids else None)
        object.__setattr__(self, "client_secret", secrets[0] if secrets else None)
        object.__setattr__(self, "others", tuple(s for s in self.schemes if not s.is_api_key))
        object.__setattr__(self, "names", tuple(s.name for s in self.schemes))
        object.__setattr__(self, "key_names", tuple(s.name for s in self.schemes if s.is_api_key))
        object.__setattr__(
            self,
            "forward_names",
            (
                _forward_name(ids[0] if ids else None, "X-IBM-Client-Id"),
                _forward_name(secrets[0] if secrets else None, "X-IBM-Client-Secret"),
            ),
        )

    def describe(self, *, location: bool = False) -> str:
        """``id``, ``id+secret [roles: admin]``, ``oauth(oauth2, handled-by-app)``; ``location`` adds
        ``(header)``."""
        parts = []
        if self.client_id is not None:
            keys = "id+secret" if self.client_secret is not None else "id"
            parts.append(f"{keys} ({self.client_id.location})" if location else keys)
        parts.extend(f"{s.name}({s.type}, handled-by-app)" for s in self.others)
        roles = f" [roles: {', '.join(self.roles)}]" if self.roles else ""
        return ("+".join(parts) or "anonymous") + roles


def _forward_name(scheme: Scheme | None, canonical: str) -> str:
    """A header key keeps its name; a query or cookie key is offered under API Connect's header name."""
    if scheme is None or scheme.where is None:
        return canonical
    return scheme.where.forward_name(scheme.param or "", canonical)


class FastPath(NamedTuple):
    """The common shape, checked without the general machinery: one requirement, without roles, the
    client ID (and the secret, if required) in headers. ``*_key`` are WSGI environ keys."""

    id_key: str
    secret_key: str | None
    requirement: Requirement
    #: The requirement's ``forward_names``, ``key_names`` and ``names``, copied here: a tuple field
    #: is read faster than a dataclass attribute, and the warm path reads each once per request.
    forward_names: tuple[str, str]
    key_names: tuple[str, ...]
    names: tuple[str, ...]


def _fast_path(alternatives: tuple[Requirement, ...], optional: bool, deny: bool) -> FastPath | None:
    if len(alternatives) != 1 or optional or deny:
        return None
    req = alternatives[0]
    cid, secret = req.client_id, req.client_secret
    # roles take the general path: a check here would cost every warm request without roles
    if req.others or req.roles or cid is None or cid.where is None:
        return None
    id_key = cid.where.environ_key(cid.param or "")
    secret_key = None if secret is None or secret.where is None else secret.where.environ_key(secret.param or "")
    if id_key is None or (secret is not None and secret_key is None):  # a key the environ does not hold as is
        return None
    return FastPath(
        id_key,
        secret_key,
        req,
        req.forward_names,
        req.key_names,
        req.names,
    )


@dataclass(frozen=True)
class Policy:
    """What one route enforces.

    ``alternatives`` empty and ``deny`` false means public. ``optional`` is set when the
    document lists ``{}`` among the alternatives: no credentials is fine, but credentials
    that are sent must be valid.
    """

    alternatives: tuple[Requirement, ...] = ()
    optional: bool = False
    deny: bool = False
    origin: str = ""
    operation: str | None = None
    #: CORS preflight (``OPTIONS`` + ``Access-Control-Request-Method``) passes without credentials.
    allow_preflight: bool = False
    #: Schemes without a verifier whose alternatives were removed (``CLIENTAUTH_UNHANDLED_SCHEMES = "deny"``);
    #: ``deny`` is set when no alternative remained.
    dropped: tuple[str, ...] = ()
    #: Nothing to check (no alternatives, not denied); a plain attribute: read on every request.
    public: bool = field(init=False, compare=False, repr=False)
    fast: FastPath | None = field(init=False, compare=False, repr=False)
    #: Some alternative reads a client ID: the change log must be polled before the check.
    reads_ids: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", not self.alternatives and not self.deny)
        object.__setattr__(self, "reads_ids", any(r.client_id is not None for r in self.alternatives))
        object.__setattr__(self, "fast", _fast_path(self.alternatives, self.optional, self.deny))

    @property
    def api_keys(self) -> list[Scheme]:
        """Every API key scheme any alternative names."""
        return list(dict.fromkeys(s for r in self.alternatives for s in r.schemes if s.is_api_key))

    def describe(self) -> str:
        if self.deny and self.dropped:
            text = f"refused (needs {', '.join(self.dropped)}: no handler)"
        elif self.deny:
            text = "denied (not described, no global requirement)"
        elif not self.alternatives:
            text = "public"
        else:
            several = len(self.alternatives) > 1
            text = " | ".join(r.describe(location=several) for r in self.alternatives)
            if len(self.alternatives) > 1:
                text = f"alternatives: {text}"
            if self.optional:
                text = f"optional({text})"
        if self.dropped and not self.deny:
            text += f" (without {', '.join(self.dropped)}: no handler)"
        if self.allow_preflight and not self.public:
            text += "; CORS preflight passes"
        return text
