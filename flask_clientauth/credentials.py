"""Credential extraction: reading an API key from the request where its scheme says.

Header names are case-insensitive, query and cookie names exact, as HTTP has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from flask import Request
from werkzeug.http import parse_cookie

from . import errors
from .errors import AuthFailure
from .requirements import V5_NAMES, Scheme, environ_key

_LOCATIONS = ("header", "query", "cookie")
_ODD = re.compile(r"[^\x20-\x7e]")


def extract(request: Request, scheme: Scheme) -> tuple[str | None, bool]:
    """The value of ``scheme``'s key and whether it was sent more than once.

    An empty value counts as absent. WSGI servers join repeated headers with ``", "``, so a
    comma in a header value means the header came twice (our IDs and secrets have none).
    """
    name = scheme.param or ""
    if scheme.location == "header":
        value = request.environ.get(environ_key(name))
        if not value:
            return None, False
        return value, "," in value
    values = request.args.getlist(name) if scheme.location == "query" else request.cookies.getlist(name)
    values = [v for v in values if v]
    if not values:
        return None, False
    value = values[0]
    if scheme.location == "cookie" and _raw_cookie_is_odd(request.environ.get("HTTP_COOKIE", ""), name):
        # Some cookie parsers strip a trailing CR/LF or U+2028: "<valid secret>\n" must not pass.
        value += "\x00"
    return value, len(values) > 1


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


def _names_in(request: Request, location: str) -> list[str]:
    if location == "header":
        return list(request.headers.keys())
    if location == "query":
        return list(request.args.keys())
    return list(request.cookies.keys())


def sent_elsewhere(request: Request, scheme: Scheme) -> bool:
    """Whether the key is in some other location than the spec's (under its name or API Connect's)."""
    names = {(scheme.param or "").lower()}
    names.update(v.lower() for (_, kt), v in V5_NAMES.items() if kt == scheme.key_type)
    # a header named client_id reaches WSGI as HTTP_CLIENT_ID and reads back as Client-Id
    header_names = {n.replace("_", "-") for n in names}
    return any(
        (n.lower().replace("_", "-") in header_names) if location == "header" else (n.lower() in names)
        for location in _LOCATIONS
        if location != scheme.location
        for n in _names_in(request, location)
    )


def presented(request: Request, scheme: Scheme) -> bool:
    """Whether anything was sent for this key in its own location (even an empty value)."""
    name = scheme.param or ""
    if scheme.location == "header":
        return environ_key(name) in request.environ
    if scheme.location == "query":
        return name in request.args
    return name in request.cookies


def sent_ids(request: Request, scheme: Scheme) -> list[str]:
    """Every non-empty value of a client ID key in its location (the parts of a joined header too)."""
    name = scheme.param or ""
    if scheme.location == "header":
        raw = request.environ.get(environ_key(name))
        return [v for v in (p.strip(" \t") for p in raw.split(",")) if v] if raw else []
    if scheme.location == "query":
        return [v for v in request.args.getlist(name) if v]
    return [v for v in request.cookies.getlist(name) if v]


class Guard:
    """What a fast-path request must not carry: the client ID locations other than its own, as
    the raw environ shows them (``Authenticator.fast`` reads it inline).

    A hit only sends the request to the general check, which decides: a query name can hide
    behind percent-encoding, so any ``%`` is a needle; cookie names are never decoded.
    """

    __slots__ = ("header_keys", "raw")

    def __init__(self, others: Iterable[Scheme]) -> None:
        others = list(others)
        #: environ keys of the other header IDs: present at all sends the request on
        self.header_keys = tuple(environ_key(s.param or "") for s in others if s.location == "header")
        query = [s.param or "" for s in others if s.location == "query"]
        cookies = tuple(s.param or "" for s in others if s.location == "cookie")
        needles = ("%", *query, *("+" for n in query if " " in n)) if query else ()
        #: (environ key, strings whose presence in its raw value sends the request on)
        self.raw = tuple((key, found) for key, found in (("QUERY_STRING", needles), ("HTTP_COOKIE", cookies)) if found)


class DocumentKeys:
    """Every API key the document defines, whatever the route: what a request may carry.

    The checks that look beyond an operation's own keys use it: a second client's ID in any
    ID location, and ``CLIENTAUTH_HIDE_CREDENTIALS``.
    """

    __slots__ = ("keys", "ids", "fast_guards")

    def __init__(self, schemes: Iterable[Scheme] = ()) -> None:
        self.keys = tuple(s for s in schemes if s.is_api_key)
        ids: dict[tuple[str | None, str], Scheme] = {}
        for s in self.keys:
            if s.key_type == "client_id":
                where = environ_key(s.param or "") if s.location == "header" else s.param or ""
                ids.setdefault((s.location, where), s)
        self.ids = tuple(ids.values())
        #: header ID's environ key -> the other ID locations a fast-path request must not carry;
        #: empty when the document has one ID location (the fast path then costs what it did).
        self.fast_guards = (
            {
                environ_key(s.param or ""): Guard(o for o in self.ids if o is not s)
                for s in self.ids
                if s.location == "header"
            }
            if len(self.ids) > 1
            else {}
        )


def hide(request: Request, schemes: Iterable[Scheme]) -> None:
    """Remove these keys from the request, so the view and anything it forwards never see them.

    Every copy goes: the headers, the query string (and ``RAW_URI`` / ``REQUEST_URI``, rewritten
    to the path and the filtered query string), the cookies. Everything else is kept verbatim:
    the other query parameters keep their order and encoding, repeated and blank ones included.
    """
    environ = request.environ
    query: set[str] = set()
    cookies: set[str] = set()
    for s in schemes:
        name = s.param or ""
        if s.location == "header":
            environ.pop(environ_key(name), None)
        elif s.location == "query":
            query.add(name)
        elif s.location == "cookie":
            cookies.add(name)
    qs = environ.get("QUERY_STRING", "")
    if query and qs:
        kept = "&".join(part for part in qs.split("&") if _query_name(part) not in query)
        if kept != qs:
            environ["QUERY_STRING"] = kept
            request.query_string = kept.encode("latin-1")
            for key in ("RAW_URI", "REQUEST_URI"):
                if key in environ:
                    environ[key] = environ[key].partition("?")[0] + (f"?{kept}" if kept else "")
    raw = environ.get("HTTP_COOKIE")
    if cookies and raw:
        # A Werkzeug cookie starts after a ";" or at the start, so splitting on ";" finds every
        # one (a quoted value holding ";" can only make us drop more, never keep a key).
        parts = (part.strip(" \t") for part in raw.split(";"))
        kept = "; ".join(part for part in parts if part and part.partition("=")[0].rstrip(" \t") not in cookies)
        if not cookies.isdisjoint(parse_cookie(kept)):  # a parser we do not read alike: keep no cookie
            kept = ""
        environ["HTTP_COOKIE"] = kept
    for cached in ("args", "cookies", "url", "full_path", "values"):
        request.__dict__.pop(cached, None)


def _query_name(part: str) -> str | None:
    """The name Werkzeug's ``request.args`` reads from one ``&``-separated part of the raw query."""
    pairs = parse_qsl(part.encode("latin-1").decode("utf-8", "replace"), keep_blank_values=True)
    return pairs[0][0] if pairs else None


def read(request: Request, scheme: Scheme, label: str, missing: errors.Reason) -> str:
    """The credential ``scheme`` names; raises :class:`AuthFailure` when it is missing, sent twice
    or sent elsewhere (``label`` names it in the failure: "Client ID", "Client secret")."""
    value, duplicate = extract(request, scheme)
    if duplicate:
        raise AuthFailure(errors.DUPLICATE, {"credential": label})
    if value is None:
        if sent_elsewhere(request, scheme):
            detail = {"credential": label, "location": scheme.describe_location()}
            raise AuthFailure(errors.WRONG_LOCATION, detail)
        raise AuthFailure(missing)
    return value


def one_client(request: Request, id_schemes: Iterable[Scheme]) -> None:
    """Refuse a request naming more than one client, in any client ID location of the document,
    used by this route or not: a view or backend reading another location must not see a second
    identity. The same ID in several locations is one client."""
    seen: set[str] = set()
    carriers = 0
    for scheme in id_schemes:
        values = sent_ids(request, scheme)
        if values:
            carriers += 1
            seen.update(values)
    if len(seen) > 1:  # within one location it is the key sent twice, as the route's own check says
        raise (
            AuthFailure(errors.DUPLICATE, {"credential": "Client ID"})
            if carriers == 1
            else AuthFailure(errors.CONFLICT)
        )
