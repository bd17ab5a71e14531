"""The app's scheme handlers (``@auth.scheme_handler``): their verdicts on a request.

A handler verifies a scheme the extension does not know (oauth2, http, ...). Its verdict is a
true value to accept (kept in ``AuthState.handler_results``), a false one to refuse; an
``HTTPException`` is the app's own refusal and propagates. Anything else fails closed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Request
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.response import Response as _Response

from . import errors
from .errors import AuthFailure
from .requirements import Scheme

logger = logging.getLogger("flask_clientauth")


def verdicts(
    handlers: Mapping[str, Callable[[Request], Any]], schemes: Iterable[Scheme], request: Request
) -> dict[str, Any]:
    """Each scheme's accepting verdict, by name; raises :class:`AuthFailure` at the first refusal."""
    results: dict[str, Any] = {}
    for scheme in schemes:
        handler = handlers.get(scheme.name)
        if handler is None:  # resolution refuses such routes; never let one through
            raise AuthFailure(errors.CONFIG_ERROR)
        try:
            result = handler(request)
        except HTTPException:
            raise
        except Exception:
            logger.exception("clientauth: the handler of scheme %r raised", scheme.name)
            raise AuthFailure(errors.CONFIG_ERROR) from None
        # a response (or an HTTPException returned instead of raised, which Flask would send as one)
        # is truthy, and never a verdict
        if isinstance(result, (_Response, HTTPException, tuple)):
            logger.error(
                "clientauth: the handler of scheme %r returned a response (%s), not a verdict; refusing. "
                "Return a true value to accept, a false one to refuse, or raise (abort(403))",
                scheme.name,
                type(result).__name__,
            )
            raise AuthFailure(errors.CONFIG_ERROR)
        if not result:
            raise AuthFailure(errors.SCHEME_REJECTED)
        results[scheme.name] = result
    return results
