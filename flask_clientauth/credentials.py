"""Credential extraction: reading an API key from the request where its scheme says.

Header names are case-insensitive, query and cookie names exact, as HTTP has them.
"""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from flask import Request

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


def hide(request: Request, schemes: list[Scheme]) -> None:
    """Remove these keys from the request, so the view and anything it forwards never see them."""
    environ = request.environ
    query = [s.param for s in schemes if s.location == "query"]
    cookies = {s.param for s in schemes if s.location == "cookie"}
    for s in schemes:
        if s.location == "header":
            environ.pop(environ_key(s.param or ""), None)
    if query:
        pairs = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        qs = urlencode([(k, v) for k, v in pairs if k not in query])
        environ["QUERY_STRING"] = qs
        request.query_string = qs.encode("latin-1")
    if cookies and "HTTP_COOKIE" in environ:
        jar = SimpleCookie()
        try:
            jar.load(environ["HTTP_COOKIE"])
        except Exception:  # an unparsable jar: drop the cookies rather than keep the secret
            jar = SimpleCookie()
        kept = "; ".join(f"{k}={m.coded_value}" for k, m in jar.items() if k not in cookies)
        environ["HTTP_COOKIE"] = kept
    for cached in ("args", "cookies", "url", "full_path", "values"):
        request.__dict__.pop(cached, None)
