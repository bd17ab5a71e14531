"""The dispatch check: a view runs only under the requirement its request was checked against.

An app's own ``before_request`` can set ``request.method`` (a method override header) or re-route
after ours; this refuses such a request (503, logged) unless the requirement stayed the same.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, request
from flask.typing import ResponseReturnValue

from . import errors
from .errors import AuthFailure
from .requirements import Policy

if TYPE_CHECKING:
    from .extension import ClientAuthState

try:  # the context variable behind ``request``: the dispatch check reads it on every request
    from flask.globals import _cv_request
except ImportError:  # pragma: no cover - a Flask that renamed it
    _cv_request = None  # type: ignore[assignment]

logger = logging.getLogger("flask_clientauth")


class DispatchCheck:
    """Takes the place of one app's ``dispatch_request``; the app is held weakly."""

    def __init__(self, state: ClientAuthState, app: Flask) -> None:
        self._state = state
        self._app = weakref.ref(app)
        own = app.__dict__.get("dispatch_request")
        #: The app's own ``dispatch_request``: its class's, called with the app (a bound method
        #: would hold the app), or one the app set on itself before ``init_app``.
        self._dispatch: Callable[[Any], ResponseReturnValue] = (
            type(app).dispatch_request if own is None else (lambda _app: own())
        )

    def first_dispatch_request(self) -> ResponseReturnValue:
        """The app's ``dispatch_request`` until the first request: decides whether requests need
        :meth:`dispatch_request`'s check, then takes itself out.

        Only a ``before_request`` function of the app's (or a blueprint's) runs between our check
        and the view; Flask allows none to be added once requests are served. Without any, the
        app keeps its own ``dispatch_request`` and the check costs nothing.
        """
        ours = self._state.hook
        app = self._app()
        assert app is not None, "the app was garbage-collected"
        if any(f != ours for funcs in app.before_request_funcs.values() for f in funcs):
            app.dispatch_request = self.dispatch_request  # type: ignore[method-assign]
        else:
            app.__dict__.pop("dispatch_request", None)
        return self.dispatch_request()

    def dispatch_request(self) -> ResponseReturnValue:
        """The app's ``dispatch_request``, refusing a view whose method or rule changed after the check.

        An app's own ``before_request`` can set ``request.method`` (a method override header) or
        re-route after ours; Flask then runs, e.g., a ``MethodView``'s ``delete`` on a request
        checked as ``GET``. Installed as the app's ``dispatch_request`` when the app has such
        functions: a comparison per request.
        """
        req: Request = _cv_request.get().request if _cv_request is not None else request
        try:
            same = req._clientauth_checked == (id(req.url_rule), req.method)  # type: ignore[attr-defined]
        except AttributeError:
            same = False
        if not same:
            refusal = self._changed_after_check(req)
            if refusal is not None:
                return refusal
        app = self._app()
        assert app is not None, "the app was garbage-collected"
        return self._dispatch(app)

    def _changed_after_check(self, req: Request) -> Response | None:
        """``None`` when the view may run after all: the requirement it is dispatched under is public,
        or the one the request was checked against; otherwise the refusal (503, logged)."""
        rule = req.url_rule
        if rule is None:
            return None  # routing failed: Flask raises the routing error, no view runs
        checked: tuple[int, str] | None = getattr(req, "_clientauth_checked", None)
        try:
            table = self._state.table()
            now = table.lookup(rule, req.method, req.path, req.view_args)
            if checked is not None and checked[0] == id(rule):  # same rule, another method
                before: Policy | None = table.lookup(rule, checked[1], req.path, req.view_args)
            else:  # re-routed: only a rule whose policy does not depend on the path is known
                before = table.policies.get(checked) if checked is not None else None
        except Exception:
            logger.exception("clientauth: cannot resolve the requirement of %s %s", req.method, rule.rule)
            return self._state.respond(AuthFailure(errors.CONFIG_ERROR))
        if now.public or (before is not None and _same_requirement(before, now)):
            return None
        logger.error(
            "clientauth: refusing %s %s: the method or rule changed after the credentials were checked%s "
            "(an override in a before_request function?); override methods in WSGI middleware, before Flask",
            req.method,
            rule.rule,
            f" (as {checked[1]})" if checked is not None else " (never checked)",
        )
        return self._state.respond(AuthFailure(errors.CONFIG_ERROR))


def _same_requirement(checked: Policy, now: Policy) -> bool:
    """Whether a request checked under ``checked`` has met ``now`` too: the same alternatives, and
    checked for real (not waved through as a CORS preflight)."""
    return (
        not checked.public
        and not checked.deny
        and not checked.allow_preflight
        and (checked.alternatives, checked.optional) == (now.alternatives, now.optional)
    )
