"""Explore: call one documented operation of the app with a client ID and a typed secret.

The request runs **in-process**, through the app's own WSGI callable (middleware included), in a
fresh context: nothing of the portal's request (its ``g``, its login, its session cookie) reaches
it. Not over HTTP, because:

- there is no URL to choose, so no request to any other host (no SSRF);
- it works whatever the app's public URL is (proxies, TLS, a mount prefix) and on a server with
  one worker or thread, which would wait on itself;
- the secret never crosses the network or a server's access log, even where the document puts it
  in the query string.

The credentials go where the operation's document says, through the scheme's location object
(:mod:`.locations`); the app's check is the real one. The secret is kept in no attribute, log line
or result: :class:`Exchange` shows what was sent with the secret masked, and the response with
any copy of the secret masked too.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from flask import Flask, Request
from werkzeug.test import EnvironBuilder, run_wsgi_app

if TYPE_CHECKING:
    from .requirements import Requirement
    from .spec import Operation

#: The most of a response body the page shows.
BODY_LIMIT = 64 * 1024
#: The longest body and query string a form may send.
INPUT_LIMIT = 64 * 1024
#: What stands for the secret wherever it would be shown.
MASK = "[secret]"
#: A secret shorter than this is not searched for in responses (it would mask ordinary text).
MIN_MASKED = 8
#: Methods that send the body field.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_PARAM = re.compile(r"\{([^{}]+)\}")


class ExploreError(ValueError):
    """A form that cannot be sent as it is (a missing path parameter, a body too long)."""


def masked(text: str, secret: str) -> str:
    """``text`` with every copy of ``secret`` (as typed, or URL-encoded) shown as :data:`MASK`."""
    if len(secret) < MIN_MASKED:
        return text
    return text.replace(secret, MASK).replace(quote_plus(secret), MASK)


def path_params(operation: Operation) -> list[str]:
    """The ``{name}`` parameters of the operation's path template, in order."""
    return _PARAM.findall(operation.path)


def api_key_requirement(operation: Operation) -> Requirement | None:
    """The first alternative of the operation that takes a client ID (``None``: none does)."""
    for requirement in operation.policy.alternatives:
        if requirement.client_id is not None:
            return requirement
    return None


def display_path(operation: Operation) -> str:
    """The operation's path as the app serves it: the document's prefix and the template."""
    prefix = operation.prefixes[0] if operation.prefixes else ""
    return prefix.rstrip("/") + operation.path


def operation_path(operation: Operation, values: dict[str, str]) -> str:
    """The path to call: the document's prefix (basePath / server) and the template filled in."""
    missing = [name for name in path_params(operation) if not values.get(name)]
    if missing:
        raise ExploreError(f"give a value for the path parameter {', '.join(missing)}")
    prefix = operation.prefixes[0] if operation.prefixes else ""
    return prefix.rstrip("/") + _PARAM.sub(lambda m: quote(values[m.group(1)], safe=""), operation.path)


@dataclass(frozen=True)
class Exchange:
    """One call and its answer, fit to show: the secret masked everywhere."""

    method: str
    url: str
    #: Where each credential went: ``("header X-IBM-Client-Id", "<id>")``, the secret as :data:`MASK`.
    sent: list[tuple[str, str]]
    status: str
    headers: list[tuple[str, str]]
    body: str
    truncated: bool = False
    is_json: bool = field(default=False)


def call(
    app: Flask,
    outer: Request,
    operation: Operation,
    *,
    client_id: str,
    secret: str,
    params: dict[str, str],
    query: str = "",
    body: str = "",
    content_type: str = "application/json",
) -> Exchange:
    """Send the operation to ``app`` as ``outer``'s host would receive it; the answer, secret masked."""
    if len(query) > INPUT_LIMIT or len(body) > INPUT_LIMIT:
        raise ExploreError(f"the query string and the body may each be at most {INPUT_LIMIT} characters")
    path = operation_path(operation, params)
    method = operation.method
    data = body.encode("utf-8") if body and method in BODY_METHODS else None
    builder = EnvironBuilder(
        path=path,
        base_url=outer.host_url.rstrip("/") + outer.script_root,
        method=method,
        query_string=query.lstrip("?") or None,
        data=data,
        content_type=content_type if data is not None else None,
    )
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["REMOTE_ADDR"] = outer.remote_addr or "127.0.0.1"
    shown = dict(environ)  # the same request with the secret masked: what the page shows
    sent: list[tuple[str, str]] = []
    requirement = api_key_requirement(operation)
    if requirement is not None:
        for scheme, value, mask in (
            (requirement.client_id, client_id, client_id),
            (requirement.client_secret, secret, MASK),
        ):
            if scheme is None or scheme.where is None or not value:
                continue
            scheme.where.put(environ, scheme.param or "", value)
            scheme.where.put(shown, scheme.param or "", mask)
            sent.append((f"{scheme.where.words} {scheme.param}", mask))
    # masked too where the user typed the secret into the query string field
    shown_query = masked(shown.get("QUERY_STRING", ""), secret).replace(quote_plus(MASK), MASK)
    shown_url = path + ("?" + shown_query if shown_query else "")
    # A fresh context: the portal's app context (its g, the login) must not be the inner request's.
    status, headers, raw = contextvars.Context().run(_run, app, environ)
    return _exchange(method, shown_url, sent, status, headers, raw, secret)


def _run(app: Flask, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    try:
        raw = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    return status, list(headers.items()), raw


def _exchange(
    method: str,
    url: str,
    sent: list[tuple[str, str]],
    status: str,
    headers: list[tuple[str, str]],
    raw: bytes,
    secret: str,
) -> Exchange:
    truncated = len(raw) > BODY_LIMIT
    text = raw[:BODY_LIMIT].decode("utf-8", "replace")
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    is_json = False
    if not truncated and "json" in content_type:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            is_json = True
        except ValueError:
            pass
    text = masked(text, secret)
    headers = [(k, masked(v, secret)) for k, v in headers]
    return Exchange(method, url, sent, status, headers, text, truncated, is_json)
