"""Prometheus metrics of the check (``CLIENTAUTH_METRICS``, the ``[metrics]`` extra).

Each app keeps its own registry (never ``prometheus_client``'s global one), so that several apps
and test apps in one process do not collide. Under ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn with
several workers) the values live in that directory, as ``prometheus_client``'s multiprocess mode
keeps them, and :meth:`Metrics.exposition` adds up every process's files.

Nothing here runs when metrics are off: the extension then registers its plain hook and the
authenticator's own methods (see ``ClientAuthState.__init__``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Request, Response, current_app, has_request_context, request
from flask.typing import ResponseReturnValue

from .context import STATE_ATTR, AuthenticatedClient, AuthState
from .settings import ConfigurationError

if TYPE_CHECKING:
    from .errors import AuthFailure
    from .requirements import FastPath, Policy
    from .store import ClientRecord

logger = logging.getLogger("flask_clientauth")

#: How to get the extra, in every error that needs it.
INSTALL_HINT = "pip install 'Flask-ClientAuth[metrics]'"

#: The environment variable of ``prometheus_client``'s multiprocess mode (and its old lower-case spelling).
MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")

#: Seconds: a warm-path-missed check spans a cached fast hash (~10 µs) to bcrypt and a slow
#: database (~1 s); a change-log poll is one or two small queries.
CHECK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
POLL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: ``clientauth_requests_total``'s ``outcome`` values.
ALLOWED, REFUSED, PUBLIC = "allowed", "refused", "public"
#: The ``code`` of a refusal by a plan's limit (``errors.RATE_LIMITED``), counted apart as well.
RATE_LIMITED_CODE = "rate_limited"


def require_prometheus(what: str) -> Any:
    """The ``prometheus_client`` module; :class:`ConfigurationError` naming the extra when it is missing."""
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(f"{what} needs prometheus_client, which is not installed: {INSTALL_HINT}") from None
    return prometheus_client


def multiprocess_dir() -> str | None:
    """The directory of ``prometheus_client``'s multiprocess mode, as that library reads it, or ``None``."""
    for name in MULTIPROC_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


class Metrics:
    """One app's metrics, and the hooks that record them.

    ``client_label``: the requests and rate-limit counters get a ``client`` label, the client ID
    of the credential that authenticated (never set from a refused credential: a caller could
    send any string). ``plan_of``: the plan label of an authenticated client's record.
    """

    def __init__(self, *, client_label: bool, plan_of: Callable[[ClientRecord], str]) -> None:
        prom = require_prometheus("CLIENTAUTH_METRICS")
        self._prom = prom
        self.client_label = client_label
        self.plan_of = plan_of
        self.multiprocess_dir = multiprocess_dir()
        if self.multiprocess_dir is not None:
            if not os.path.isdir(self.multiprocess_dir):
                raise ConfigurationError(
                    f"CLIENTAUTH_METRICS: PROMETHEUS_MULTIPROC_DIR is set to {self.multiprocess_dir!r}, which is "
                    "not a directory; create it (empty) before the server starts"
                )
            from prometheus_client import values

            if getattr(values, "ValueClass", None) is getattr(values, "MutexValue", object()):
                # values kept in memory: each process would serve only its own, or nothing at all
                raise ConfigurationError(
                    "CLIENTAUTH_METRICS: PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported, "
                    "so this process keeps its values in memory; set it in the environment the server starts in"
                )
        #: This app's registry (in multiprocess mode the scrape reads the directory instead).
        self.registry = prom.CollectorRegistry(auto_describe=True)
        registry = self.registry
        who = ("plan", "client") if client_label else ("plan",)
        self.requests = prom.Counter(
            "clientauth_requests",
            "Requests checked by Flask-ClientAuth, by outcome (allowed, refused, public) and refusal code",
            ("outcome", "code", *who),
            registry=registry,
        )
        self.rate_limited = prom.Counter(
            "clientauth_rate_limited",
            "Requests refused by a plan's rate limit (429 rate_limited)",
            who,
            registry=registry,
        )
        self.check_seconds = prom.Histogram(
            "clientauth_verification_seconds",
            "Duration of the checks the warm path did not answer (cache misses, secret hashing, store "
            "lookups, change-log polls), by outcome",
            ("outcome",),
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        self.cache_hits = prom.Counter(
            "clientauth_cache_hits",
            "Client lookups answered by the credential cache: known clients, and client IDs known to be unknown",
            ("kind",),
            registry=registry,
        )
        self.cache_misses = prom.Counter(
            "clientauth_cache_misses", "Client lookups that went to the client store", registry=registry
        )
        self.poll_seconds = prom.Histogram(
            "clientauth_changelog_poll_seconds",
            "Duration of the change-log polls (revocation), failed ones included",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.poll_errors = prom.Counter(
            "clientauth_changelog_poll_errors",
            "Change-log polls that failed (the store was unavailable)",
            registry=registry,
        )
        # the children every request touches, looked up once
        self._checked_allowed = self.check_seconds.labels(ALLOWED)
        self._checked_refused = self.check_seconds.labels(REFUSED)
        self._hit_known = self.cache_hits.labels("known")
        self._hit_unknown = self.cache_hits.labels("unknown")
        if client_label:
            self._public = self.requests.labels(PUBLIC, "", "", "")
        else:
            self._public = self.requests.labels(PUBLIC, "", "")

    # -- what the request path calls when metrics are on ------------------------------
    def hook(
        self, before_request: Callable[[], ResponseReturnValue | None]
    ) -> Callable[[], ResponseReturnValue | None]:
        """The app's ``before_request`` function: ``before_request``, then allowed and public requests
        counted (a refusal is counted by :meth:`refused`, which knows its code)."""

        def counted_before_request() -> ResponseReturnValue | None:
            response = before_request()
            if response is None:
                seen = request.__dict__
                auth = seen.get(STATE_ATTR)
                if auth is not None:
                    self.allowed(auth)
                elif "_clientauth_checked" in seen:  # resolved, and public (or a CORS preflight)
                    self._public.inc()
                # else: no rule matched; Flask answers 404 / 405 and no view runs
            return response

        counted_before_request.__wrapped__ = before_request  # type: ignore[attr-defined]
        return counted_before_request

    def fast(self, fast: Callable[[FastPath, dict[str, Any]], AuthState | None]) -> Callable[..., AuthState | None]:
        """The authenticator's warm path, its answers counted as cache hits."""
        hit = self._hit_known

        def counted_fast(policy: FastPath, environ: dict[str, Any]) -> AuthState | None:
            auth = fast(policy, environ)
            if auth is not None:
                hit.inc()
            return auth

        return counted_fast

    def decide(self, decide: Callable[[Policy, Request], AuthState]) -> Callable[[Policy, Request], AuthState]:
        """The authenticator's general check, timed."""
        allowed, refused = self._checked_allowed, self._checked_refused
        clock = time.perf_counter

        def timed_decide(policy: Policy, req: Request) -> AuthState:
            start = clock()
            try:
                auth = decide(policy, req)
            except BaseException:
                refused.observe(clock() - start)
                raise
            allowed.observe(clock() - start)
            return auth

        return timed_decide

    def allowed(self, auth: AuthState) -> None:
        plan, client = self._who(auth.client)
        if self.client_label:
            self.requests.labels(ALLOWED, "", plan, client).inc()
        else:
            self.requests.labels(ALLOWED, "", plan).inc()

    def refused(self, failure: AuthFailure, authenticated: AuthenticatedClient | None = None) -> None:
        """A refusal (every one goes through ``ClientAuthState.respond``); ``authenticated``: the client
        a plan refused (else the request's, if its check had passed)."""
        if authenticated is None and has_request_context():
            auth = request.__dict__.get(STATE_ATTR)
            authenticated = auth.client if auth is not None else None
        plan, client = self._who(authenticated)
        code = failure.code
        if self.client_label:
            self.requests.labels(REFUSED, code, plan, client).inc()
        else:
            self.requests.labels(REFUSED, code, plan).inc()
        if code == RATE_LIMITED_CODE:
            if self.client_label:
                self.rate_limited.labels(plan, client).inc()
            else:
                self.rate_limited.labels(plan).inc()

    def lookup(self, found: str) -> None:
        """A client lookup of the general check: ``"known"`` or ``"unknown"`` (cache hits), ``"store"`` (a miss)."""
        if found == "known":
            self._hit_known.inc()
        elif found == "unknown":
            self._hit_unknown.inc()
        else:
            self.cache_misses.inc()

    def poll(self, seconds: float, ok: bool) -> None:
        """A change-log poll took ``seconds``; ``ok``: it succeeded."""
        self.poll_seconds.observe(seconds)
        if not ok:
            self.poll_errors.inc()

    def _who(self, client: AuthenticatedClient | None) -> tuple[str, str]:
        """The plan and client labels of a request (``""`` without an authenticated client)."""
        if client is None:
            return "", ""
        return self.plan_of(client._record), client.client_id if self.client_label else ""

    # -- the scrape ---------------------------------------------------------------------
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format ``accept`` prefers (Prometheus text or OpenMetrics), and its content type.

        In multiprocess mode, every process's values in the directory, added up (the app's own
        metrics in that directory too: that is how ``prometheus_client``'s multiprocess mode reads it).
        """
        prom = self._prom
        registry = self.registry
        if self.multiprocess_dir is not None:
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type


def make_view() -> Callable[[], ResponseReturnValue]:
    """The view of :meth:`ClientAuth.metrics_view`: the current app's metrics."""
    require_prometheus("ClientAuth.metrics_view()")

    def metrics() -> ResponseReturnValue:
        state = current_app.extensions.get("clientauth")
        found: Metrics | None = getattr(state, "metrics", None)
        if found is None:
            logger.error(
                "clientauth: %s is the metrics view, but this app's metrics are off (CLIENTAUTH_METRICS); "
                "answering 404",
                request.path,
            )
            return Response("Not Found\n", status=404, content_type="text/plain; charset=utf-8")
        body, content_type = found.exposition(request.headers.get("Accept"))
        return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})

    metrics.__qualname__ = "metrics_view"  # what `flask clients routes` and errors name it by
    return metrics
