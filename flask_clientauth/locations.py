"""Where an API key travels: one object per OpenAPI ``in`` value (header, query, cookie).

Each location reads its keys from a request (into a :class:`Presented`), lists the names a
request sent there (a key sent in the wrong place is refused, not ignored), hides its keys
(``CLIENTAUTH_HIDE_CREDENTIALS``), names the header a key is forwarded under, and adds a key to
a test request. :data:`LOCATIONS` maps the document's ``in`` value to its object: nothing else
in the package branches on those names. Header names are case-insensitive, query and cookie
names exact, as HTTP has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple
from urllib.parse import parse_qsl, urlencode

from flask import Request
from werkzeug.http import parse_cookie

if TYPE_CHECKING:
    from .requirements import Scheme

_ODD = re.compile(r"[^\x20-\x7e]")


@lru_cache(maxsize=256)
def environ_key(header: str) -> str:
    """``X-IBM-Client-Id`` -> ``HTTP_X_IBM_CLIENT_ID``, the WSGI environ key of a header."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


class Presented(NamedTuple):
    """One key as a request carries it in its own location."""

    #: What the check compares: the first non-empty value; ``None`` when absent or empty.
    value: str | None
    #: Sent more than once (WSGI servers join a repeated header with ``", "``: our IDs and
    #: secrets hold no comma).
    twice: bool
    #: Anything was sent under the name, even an empty value.
    sent: bool
    #: Every non-empty value, the parts of a joined header too: the client IDs a request names.
    values: tuple[str, ...]


class CredentialLocation:
    """What every location does with its keys; ``param`` is a key's name in the document."""

    __slots__ = ()
    #: The document's ``in`` value, and the words for it in messages.
    name: ClassVar[str]
    words: ClassVar[str]
    #: The names API Connect's DataPower Gateway (v5 compatible) requires here, by key type.
    v5_names: ClassVar[Mapping[str, str]] = {}

    def read(self, request: Request, param: str) -> Presented:
        raise NotImplementedError

    def names(self, request: Request) -> Iterable[str]:
        """Every name the request sent in this location."""
        raise NotImplementedError

    def fold(self, name: str) -> str:
        """The form in which two names sent here are the same (a key under another spelling)."""
        return name.lower()

    def same_name(self, sent: str, expected: str) -> bool:
        return sent == expected

    def ident(self, param: str) -> str:
        """What makes two keys of this location one key."""
        return param

    def environ_key(self, param: str) -> str | None:
        """The environ key the warm path reads the key from directly (``None``: not readable so)."""
        return None

    def forward_name(self, param: str, canonical: str) -> str:
        """The header a verified key is offered under (``current_client.headers``): API Connect's."""
        return canonical

    def guard(self, params: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, tuple[str, ...]] | None]:
        """What tells the warm path that one of these keys may be present: environ keys present at
        all, and an environ key with the strings whose presence in its raw value sends a request on."""
        raise NotImplementedError

    def hide(self, request: Request, params: frozenset[str]) -> None:
        """Remove every copy of these keys from the request's environ."""
        raise NotImplementedError

    def put(self, environ: dict[str, Any], param: str, value: str) -> None:
        """Add a key to a test request, unless the request already has it here."""
        raise NotImplementedError

    def warning(self, scheme: Scheme) -> str | None:
        """A start-up warning about a key sent here, if any."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class HeaderLocation(CredentialLocation):
    __slots__ = ()
    name = "header"
    words = "header"
    v5_names: ClassVar[Mapping[str, str]] = {"client_id": "X-IBM-Client-Id", "client_secret": "X-IBM-Client-Secret"}

    def read(self, request: Request, param: str) -> Presented:
        key = environ_key(param)
        raw = request.environ.get(key)
        if not raw:
            return Presented(None, False, key in request.environ, ())
        return Presented(raw, "," in raw, True, tuple(v for v in (p.strip(" \t") for p in raw.split(",")) if v))

    def names(self, request: Request) -> Iterable[str]:
        return request.headers.keys()

    def fold(self, name: str) -> str:
        # a header named client_id reaches WSGI as HTTP_CLIENT_ID and reads back as Client-Id
        return name.lower().replace("_", "-")

    def same_name(self, sent: str, expected: str) -> bool:
        return sent.lower() == expected.lower()

    def ident(self, param: str) -> str:
        return environ_key(param)

    def environ_key(self, param: str) -> str | None:
        return environ_key(param)

    def forward_name(self, param: str, canonical: str) -> str:
        return param or canonical

    def guard(self, params: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, tuple[str, ...]] | None]:
        return tuple(environ_key(p) for p in params), None

    def hide(self, request: Request, params: frozenset[str]) -> None:
        for param in params:
            request.environ.pop(environ_key(param), None)

    def put(self, environ: dict[str, Any], param: str, value: str) -> None:
        environ.setdefault(environ_key(param), value)

    def warning(self, scheme: Scheme) -> str | None:
        param = scheme.param or ""
        if "_" not in param:
            return None
        return (
            f"security scheme {scheme.name!r} reads the header {param!r}, whose name contains '_': "
            "gunicorn and Werkzeug's server (by default) and nginx (underscores_in_headers off) drop such headers, so this "
            f"credential may never arrive; prefer {param.replace('_', '-')!r}"
        )


class QueryLocation(CredentialLocation):
    __slots__ = ()
    name = "query"
    words = "query parameter"
    v5_names: ClassVar[Mapping[str, str]] = {"client_id": "client_id", "client_secret": "client_secret"}

    def read(self, request: Request, param: str) -> Presented:
        args = request.args
        values = tuple(v for v in args.getlist(param) if v)
        return Presented(values[0] if values else None, len(values) > 1, param in args, values)

    def names(self, request: Request) -> Iterable[str]:
        return request.args.keys()

    def guard(self, params: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, tuple[str, ...]] | None]:
        # a query name can hide behind percent-encoding (and a space behind "+"): any "%" is a needle
        params = list(params)
        return (), ("QUERY_STRING", ("%", *params, *("+" for p in params if " " in p)))

    def hide(self, request: Request, params: frozenset[str]) -> None:
        """The query string loses these keys; ``RAW_URI`` / ``REQUEST_URI`` are rewritten to the path
        and the filtered query string. The other parameters keep their order and encoding, repeated
        and blank ones included."""
        environ = request.environ
        qs = environ.get("QUERY_STRING", "")
        if not qs:
            return
        kept = "&".join(part for part in qs.split("&") if _query_name(part) not in params)
        if kept != qs:
            environ["QUERY_STRING"] = kept
            request.query_string = kept.encode("latin-1")
            for key in ("RAW_URI", "REQUEST_URI"):
                if key in environ:
                    environ[key] = environ[key].partition("?")[0] + (f"?{kept}" if kept else "")

    def put(self, environ: dict[str, Any], param: str, value: str) -> None:
        query = environ.get("QUERY_STRING", "")
        if param not in dict(parse_qsl(query, keep_blank_values=True)):
            environ["QUERY_STRING"] = "&".join(filter(None, (query, urlencode({param: value}))))

    def warning(self, scheme: Scheme) -> str | None:
        if scheme.key_type != "client_secret":
            return None
        return (
            f"security scheme {scheme.name!r} takes the client secret in the query parameter "
            f"{scheme.param!r}; this is less secure, as the secret can end up in access logs: prefer a "
            "header, or redact the parameter from your logs"
        )


class CookieLocation(CredentialLocation):
    __slots__ = ()
    name = "cookie"
    words = "cookie"

    def read(self, request: Request, param: str) -> Presented:
        cookies = request.cookies
        values = tuple(v for v in cookies.getlist(param) if v)
        if not values:
            return Presented(None, False, param in cookies, ())
        value = values[0]
        if _raw_cookie_is_odd(request.environ.get("HTTP_COOKIE", ""), param):
            # Some cookie parsers strip a trailing CR/LF or U+2028: "<valid secret>\n" must not pass.
            value += "\x00"
        return Presented(value, len(values) > 1, True, values)

    def names(self, request: Request) -> Iterable[str]:
        return request.cookies.keys()

    def guard(self, params: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, tuple[str, ...]] | None]:
        return (), ("HTTP_COOKIE", tuple(params))  # cookie names are never decoded

    def hide(self, request: Request, params: frozenset[str]) -> None:
        environ = request.environ
        raw = environ.get("HTTP_COOKIE")
        if not raw:
            return
        # A Werkzeug cookie starts after a ";" or at the start, so splitting on ";" finds every
        # one (a quoted value holding ";" can only make us drop more, never keep a key).
        parts = (part.strip(" \t") for part in raw.split(";"))
        kept = "; ".join(part for part in parts if part and part.partition("=")[0].rstrip(" \t") not in params)
        if not params.isdisjoint(parse_cookie(kept)):  # a parser we do not read alike: keep no cookie
            kept = ""
        environ["HTTP_COOKIE"] = kept

    def put(self, environ: dict[str, Any], param: str, value: str) -> None:
        jar: SimpleCookie = SimpleCookie()
        raw = environ.get("HTTP_COOKIE", "")
        try:
            jar.load(raw)
        except CookieError:  # an unparsable header a test sent on purpose: add ours after it
            pass
        if param not in jar:
            jar[param] = value
            environ["HTTP_COOKIE"] = "; ".join(filter(None, (raw, f"{param}={jar[param].coded_value}")))


#: The document's ``in`` value -> its location.
LOCATIONS: dict[str, CredentialLocation] = {
    location.name: location for location in (HeaderLocation(), QueryLocation(), CookieLocation())
}


def _raw_cookie_is_odd(header: str, name: str) -> bool:
    """Whether a raw ``name=value`` pair of the Cookie header holds anything but printable ASCII.

    Cookie parsers differ on what they strip (CR/LF, Unicode spaces such as U+2028); our
    credentials are printable ASCII, so a value that needed stripping is never taken as valid.
    """
    if not _ODD.search(header):
        return False
    return any(
        _ODD.search(part.partition("=")[2].strip(" \t"))
        for part in header.split(";")
        if part.strip(" \t").partition("=")[0] == name
    )


def _query_name(part: str) -> str | None:
    """The name Werkzeug's ``request.args`` reads from one ``&``-separated part of the raw query."""
    pairs = parse_qsl(part.encode("latin-1").decode("utf-8", "replace"), keep_blank_values=True)
    return pairs[0][0] if pairs else None
