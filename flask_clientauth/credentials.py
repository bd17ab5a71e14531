"""The credentials a request carries, read once, and what the document allows it to carry.

Where a key is read from is its location's business (locations.py); this module decides what a
request's keys amount to: a value, sent twice, sent elsewhere, a second client.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Request

from . import errors
from .errors import AuthFailure
from .locations import LOCATIONS, CredentialLocation, Presented
from .requirements import Scheme


def where(scheme: Scheme) -> CredentialLocation:
    """The location of an API key scheme's key."""
    location = scheme.where
    if location is None:
        raise TypeError(f"security scheme {scheme.name!r} is not an API key")
    return location


class RequestKeys:
    """What one request carries, each key and each location's names read at most once."""

    __slots__ = ("request", "_keys", "_names")

    def __init__(self, request: Request) -> None:
        self.request = request
        self._keys: dict[tuple[CredentialLocation, str], Presented] = {}
        self._names: dict[CredentialLocation, set[str]] = {}

    def get(self, scheme: Scheme) -> Presented:
        """The scheme's key in its own location."""
        location = where(scheme)
        param = scheme.param or ""
        key = (location, location.ident(param))
        presented = self._keys.get(key)
        if presented is None:
            presented = self._keys[key] = location.read(self.request, param)
        return presented

    def sent_elsewhere(self, scheme: Scheme) -> bool:
        """Whether the key is in some other location than the spec's (under its name or API Connect's)."""
        own = where(scheme)
        kind = scheme.key_type or ""
        names = {scheme.param or ""} | {loc.v5_names[kind] for loc in LOCATIONS.values() if kind in loc.v5_names}
        for location in LOCATIONS.values():
            if location is own:
                continue
            sent = self._names.get(location)
            if sent is None:
                sent = self._names[location] = {location.fold(n) for n in location.names(self.request)}
            if any(location.fold(n) in sent for n in names):
                return True
        return False

    def read(self, scheme: Scheme, label: str, missing: errors.Reason) -> str:
        """The credential ``scheme`` names; raises :class:`AuthFailure` when it is missing, sent twice
        or sent elsewhere (``label`` names it in the failure: "Client ID", "Client secret")."""
        value, twice, _, _ = self.get(scheme)
        if twice:
            raise AuthFailure(errors.DUPLICATE, {"credential": label})
        if value is None:
            if self.sent_elsewhere(scheme):
                detail = {"credential": label, "location": scheme.describe_location()}
                raise AuthFailure(errors.WRONG_LOCATION, detail)
            raise AuthFailure(missing)
        return value

    def any_sent(self, schemes: Iterable[Scheme]) -> bool:
        """Whether anything was sent for these keys, in their location (even empty) or elsewhere."""
        return any(self.get(s).sent or self.sent_elsewhere(s) for s in schemes)

    def one_client(self, id_schemes: Iterable[Scheme]) -> None:
        """Refuse a request naming more than one client, in any client ID location of the document,
        used by this route or not: a view or backend reading another location must not see a second
        identity. The same ID in several locations is one client."""
        seen: set[str] = set()
        carriers = 0
        for scheme in id_schemes:
            values = self.get(scheme).values
            if values:
                carriers += 1
                seen.update(values)
        if len(seen) > 1:  # within one location it is the key sent twice, as the route's own check says
            raise (
                AuthFailure(errors.DUPLICATE, {"credential": "Client ID"})
                if carriers == 1
                else AuthFailure(errors.CONFLICT)
            )


def _by_location(schemes: Iterable[Scheme]) -> dict[CredentialLocation, list[str]]:
    grouped: dict[CredentialLocation, list[str]] = {}
    for s in schemes:
        grouped.setdefault(where(s), []).append(s.param or "")
    return grouped


class Guard:
    """What a fast-path request must not carry: the client ID locations other than its own, as
    the raw environ shows them (``Authenticator.fast`` reads it inline).

    A hit only sends the request to the general check, which decides.
    """

    __slots__ = ("header_keys", "raw")

    def __init__(self, others: Iterable[Scheme]) -> None:
        keys: list[str] = []
        raw: list[tuple[str, tuple[str, ...]]] = []
        for location, params in _by_location(others).items():
            present, needles = location.guard(params)
            keys.extend(present)
            if needles is not None and needles[1]:
                raw.append(needles)
        #: environ keys of the other header IDs: present at all sends the request on
        self.header_keys = tuple(keys)
        #: (environ key, strings whose presence in its raw value sends the request on)
        self.raw = tuple(raw)


class DocumentKeys:
    """Every API key the document defines, whatever the route: what a request may carry.

    The checks that look beyond an operation's own keys use it: a second client's ID in any
    ID location, and ``CLIENTAUTH_HIDE_CREDENTIALS``.
    """

    __slots__ = ("keys", "ids", "fast_guards", "hidden")

    def __init__(self, schemes: Iterable[Scheme] = ()) -> None:
        self.keys = tuple(s for s in schemes if s.is_api_key)
        ids: dict[tuple[CredentialLocation, str], Scheme] = {}
        for s in self.keys:
            if s.key_type == "client_id":
                ids.setdefault((where(s), where(s).ident(s.param or "")), s)
        self.ids = tuple(ids.values())
        #: header ID's environ key -> the other ID locations a fast-path request must not carry;
        #: empty when the document has one ID location (the fast path then costs what it did).
        guards: dict[str, Guard] = {}
        if len(self.ids) > 1:
            for s in self.ids:
                key = where(s).environ_key(s.param or "")
                if key is not None:
                    guards[key] = Guard(o for o in self.ids if o is not s)
        self.fast_guards = guards
        #: Every key's name by location: what ``CLIENTAUTH_HIDE_CREDENTIALS`` removes.
        self.hidden = tuple((location, frozenset(params)) for location, params in _by_location(self.keys).items())


def hide(request: Request, document: DocumentKeys) -> None:
    """Remove every key of the document from the request, so the view and anything it forwards never
    see them: every copy goes, everything else is kept verbatim."""
    for location, params in document.hidden:
        location.hide(request, params)
    for cached in ("args", "cookies", "url", "full_path", "values"):
        request.__dict__.pop(cached, None)
