"""The :class:`ClientAuth` extension object."""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, Request, Response, after_this_request, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, Engine, create_engine, make_url
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule

from . import errors
from .cache import CredentialCache
from .cli import clients
from .context import AuthenticatedClient, AuthState
from .credentials import DocumentKeys, hide
from .dispatch import DispatchCheck
from .errors import AuthFailure, respond
from .metrics import Metrics, make_view
from .models import Base
from .planlimits import LimitUsage, PlanLimiter
from .plans import Plan, Plans, UnknownPlan
from .product import build_plans
from .requirements import FastPath, Policy
from .routing import Override, Registrations, RouteInfo, RouteTable
from .settings import DEFAULTS, ConfigurationError, Settings
from .spec import Spec, SpecError, load_spec, unrequired_keys_warning
from .store import ClientRecord, ClientStore, check_role
from .throttle import throttle_for
from .verify import Authenticator, escape

if TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy

logger = logging.getLogger("flask_clientauth")

F = TypeVar("F", bound=Callable[..., Any])
#: What ``exempt`` / ``require`` decorate: a view function, a class-based view or a blueprint.
V = TypeVar("V", bound=Callable[..., Any] | Blueprint)


class ClientAuthState:
    """Per-app state, kept in ``app.extensions["clientauth"]``."""

    def __init__(
        self, ext: ClientAuth, app: Flask, store: ClientStore, engine: Engine | None, settings: Settings
    ) -> None:
        self.extension = ext
        self.settings = settings
        self.store = store
        self.engine = engine
        self.error_detail = settings.error_detail
        self.hide_credentials = settings.hide_credentials
        self.min_secret_length = settings.min_secret_length
        self.cache = CredentialCache(
            size=settings.cache_size,
            ttl=settings.cache_ttl,
            negative_size=settings.negative_cache_size,
            negative_ttl=settings.negative_cache_ttl,
            clock=ext.clock,
        )
        # apps sharing one Redis keep their own counts
        self.throttle = throttle_for(settings, key_prefix=f"clientauth:{app.name}", memory=self.cache.size)
        self.authenticator = Authenticator(
            store,
            self.cache,
            handlers=ext.registrations.scheme_handlers,
            revocation_interval=settings.revocation_interval,
            throttle=self.throttle,
            clock=ext.clock,
            secret_prefix=settings.secret_prefix,
            pepper=settings.secret_pepper,
            last_used_interval=settings.last_used_interval,
        )
        store.listeners.append(self.authenticator.revocation.changed)
        #: Counts plan limits; ``None`` while no plan is configured (the request path then skips plans).
        self.limiter: PlanLimiter | None = None
        #: What the request path calls: the authenticator's checks, counted and timed when metrics are on
        #: (attributes of their own, so that metrics off costs the warm path nothing).
        self.fast: Callable[[FastPath, dict[str, Any]], AuthState | None] = self.authenticator.fast
        self.decide: Callable[[Policy, Request], AuthState] = self.authenticator.decide
        #: The function registered as the app's ``before_request`` (:meth:`before_request`, counted
        #: when metrics are on).
        self.hook: Callable[[], ResponseReturnValue | None] = self.before_request
        #: The app's Prometheus metrics (``CLIENTAUTH_METRICS``); ``None`` when off.
        self.metrics: Metrics | None = None
        if settings.metrics:
            self._use_metrics(Metrics(client_label=settings.metrics_client_label, plan_of=self.plan_name))
        self._root_path = app.root_path
        self._app = weakref.ref(app)  # the app holds the state (extensions, hooks): no cycle back
        self._view_functions = app.view_functions
        self._blueprints = app.blueprints
        self._spec: Spec | None = None
        self._plans: Plans | None = None
        self._table: RouteTable | None = None
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        #: Refuses a view whose method or rule changed after the check (apps with hooks of their own).
        self.dispatch_check = DispatchCheck(self, app)
        #: Set once every route was resolved (``routes()`` or the first request); the error, if any.
        self.routes_resolved = False
        self.startup_error: SpecError | None = None
        #: Every route resolved without error: requests skip the start-up check.
        self.routes_ok = False
        self._logged = False

    def _use_metrics(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.fast = metrics.fast(self.authenticator.fast)
        self.decide = metrics.decide(self.authenticator.decide)
        self.hook = metrics.hook(self.before_request)
        self.authenticator.on_lookup = metrics.lookup
        self.authenticator.revocation.on_poll = metrics.poll

    def spec(self) -> Spec:
        """The loaded document (a callable ``CLIENTAUTH_SPEC`` is called on first use)."""
        if self._spec is None:
            with self._lock:
                if self._spec is None:
                    spec = self._load_spec()
                    self._plans = self._build_plans(spec)  # resolved against this document, or no document
                    for warning in spec.warnings:  # once per app, at init_app when the document is a file
                        logger.warning("clientauth: %s", warning)
                    self.authenticator.use_document(DocumentKeys(spec.schemes.values()))
                    self._spec = spec
        return self._spec

    @property
    def plans(self) -> Plans:
        """The configured plans (empty when there are none), resolved against the document."""
        if self._plans is None:
            self.spec()
        assert self._plans is not None
        return self._plans

    def plan_name(self, record: ClientRecord) -> str:
        """The name of the plan a client is under (its own, else the default; ``""``: none). A stored
        plan that is no longer configured: its name as stored (such a client is refused)."""
        try:
            plan = self.plans.for_client(record.plan)
        except UnknownPlan:
            return record.plan or ""
        return plan.name if plan is not None else ""

    def _build_plans(self, spec: Spec) -> Plans:
        settings = self.settings
        try:
            return build_plans(
                settings.plans, settings.default_plan, spec, product=settings.product, root_path=self._root_path
            )
        except ConfigurationError as exc:
            if callable(settings.spec) and not isinstance(settings.spec, Mapping):
                # found on first use, where only a SpecError refuses requests with 503 and says why
                raise SpecError(spec.source, f"the plans do not fit the document: {exc}") from None
            raise

    def _load_spec(self) -> Spec:
        source = self.settings.spec
        if callable(source) and not isinstance(source, Mapping):
            # A callable builds the document from the app's routes (APIFlask, flask-smorest,
            # apispec): call it in an app context of this app and outside any request, so the
            # document does not depend on where it is first needed (e.g. APIFlask's AUTO_SERVERS
            # would take the first request's URL root, mount point included, as the server).
            return contextvars.Context().run(self._load_spec_in_app_context)
        return load_spec(source, root_path=self._root_path, strict_names=self.settings.strict_names)

    def _load_spec_in_app_context(self) -> Spec:
        app = self._app()
        assert app is not None, "the app was garbage-collected"
        with app.app_context():
            return load_spec(self.settings.spec, root_path=self._root_path, strict_names=self.settings.strict_names)

    def resolve_routes(self, rules: Iterable[Rule]) -> list[RouteInfo]:
        """Resolve every route; remember and raise the :class:`SpecError` if one cannot be enforced."""
        try:
            rows = self.table().build(rules)
        except SpecError as exc:
            self.startup_error, self.routes_resolved, self.routes_ok = exc, True, False
            raise
        except Exception as exc:  # anything else is just as unenforceable: fail closed, say why
            error = SpecError(
                _source_label(self.settings.spec), f"cannot resolve the routes ({type(exc).__name__}: {exc})"
            )
            self.startup_error, self.routes_resolved, self.routes_ok = error, True, False
            raise error from exc
        self.startup_error, self.routes_resolved, self.routes_ok = None, True, True
        warning = unrequired_keys_warning(self.spec(), [(f"{r.method} {r.rule}", r.policy) for r in rows])
        if warning is not None:
            logger.warning("clientauth: %s", warning)
        return rows

    def resolve_routes_once(self, rules: Iterable[Rule]) -> SpecError | None:
        """The request-time check, run once unless ``routes()`` ran: ``None`` when all is well.

        A failure is logged (CRITICAL, once) and refuses every request, as a failed start-up would.
        """
        with self._check_lock:
            if not self.routes_resolved:
                try:
                    self.resolve_routes(rules)
                except SpecError:
                    pass
            if self.startup_error is not None and not self._logged:
                self._logged = True
                logger.critical(
                    "clientauth: the API security cannot be enforced; every request is refused with 503 "
                    "until this is fixed: %s",
                    self.startup_error,
                )
        return self.startup_error

    #: Deprecated names of :meth:`resolve_routes` and :meth:`resolve_routes_once`.
    check = resolve_routes
    check_once = resolve_routes_once

    def table(self) -> RouteTable:
        if self._table is None:
            spec = self.spec()
            with self._lock:
                if self._table is None:
                    self._table = RouteTable.for_app(
                        spec,
                        self.extension.registrations,
                        self.settings,
                        view_functions=self._view_functions,
                        blueprints=self._blueprints,
                    )
        return self._table

    # -- the before_request hook (registered as this bound method: one call per request) ----
    def before_request(self) -> ResponseReturnValue | None:
        """Check the request against its route's policy; a response means "refused"."""
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        if not self.routes_ok and self.resolve_routes_once(current_app.url_map.iter_rules()) is not None:
            return self.respond(AuthFailure(errors.CONFIG_ERROR))  # fail closed, as start-up would
        rule = req.url_rule
        if rule is None:
            return None  # routing failed: Flask answers 404 / 405 and no view runs
        key = (id(rule), req.method)
        try:
            table = self._table or self.table()
            if req.root_path != table.base_path and table.wrong_mount(req.root_path):
                return self._refuse_mount(req)
            policy = table.policies.get(key) or table.lookup(rule, req.method, req.path, req.view_args)
        except SpecError as exc:
            logger.critical("clientauth: refusing %s %s: %s", req.method, rule.rule, exc)
            return self.respond(AuthFailure(errors.CONFIG_ERROR))
        except Exception:  # whatever went wrong, the route stays closed
            logger.exception("clientauth: cannot resolve the requirement of %s %s", req.method, rule.rule)
            return self.respond(AuthFailure(errors.CONFIG_ERROR))
        req._clientauth_checked = key  # type: ignore[attr-defined]  # what dispatch_request compares
        if policy.public:
            return None
        if policy.allow_preflight and req.method == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in req.environ:
            return None
        fast = policy.fast
        auth = None if fast is None else self.fast(fast, req.environ)
        if auth is None:
            try:
                auth = self.decide(policy, req)
            except AuthFailure as failure:
                logger.info("clientauth: %s %s -> %s %s", req.method, escape(req.path), failure.status, failure.code)
                return self.respond(failure, policy)
            except HTTPException:  # a scheme handler's abort(403): a refusal of the app's own
                raise
            except Exception:  # never a traceback to the client, never an open door
                logger.exception("clientauth: unexpected error while checking %s %s", req.method, escape(req.path))
                return self.respond(AuthFailure(errors.STORE_UNAVAILABLE))
        if self.limiter is not None and auth.client is not None:  # some plan exists: one check when not limited
            refusal = self._enforce_plan(req, policy, auth.client)
            if refusal is not None:
                return refusal
        req._clientauth_state = auth  # type: ignore[attr-defined]  # context.STATE_ATTR: this request's only
        if self.hide_credentials:
            hide(req, self.authenticator.document)  # every key of the document, not only this route's
        return None

    def _enforce_plan(self, req: Request, policy: Policy, client: AuthenticatedClient) -> Response | None:
        """The client's plan against this operation: ``None`` to go on, else the 403 / 429 / 503.

        A success leaves the tightest limit's window on the request, for :meth:`rate_limit_headers`.
        """
        record = client._record
        try:
            plan = (self._plans or self.plans).for_client(record.plan)  # loaded with the document by now
        except UnknownPlan as exc:  # fail closed: the plan's limits are unknown, so is what it allows
            logger.error(
                "clientauth: client %s has the plan %r, which is not configured (CLIENTAUTH_PLANS, CLIENTAUTH_PRODUCT);"
                " refusing it with 403 not_in_plan",
                escape(client.client_id),
                exc.name,
            )
            return self.respond(AuthFailure(errors.NOT_IN_PLAN), policy, client=client)
        if plan is None:
            return None
        assert self.limiter is not None
        try:
            window = self.limiter.check(record, plan, policy.operation)
        except AuthFailure as failure:
            logger.info(
                "clientauth: %s %s -> %s %s (client %s, plan %s)",
                req.method,
                escape(req.path),
                failure.status,
                failure.code,
                escape(client.client_id),
                plan.name,
            )
            return self.respond(failure, policy, client=client)
        if window is not None and self.settings.ratelimit_headers:
            req._clientauth_window = window  # type: ignore[attr-defined]
            after_this_request(self.rate_limit_headers)  # this request's alone: others pay nothing
        return None

    def usage(self, record: ClientRecord) -> tuple[Plan | None, list[LimitUsage]]:
        """The client's plan and, for each of its limits, what was used: read from the counters the
        requests count against (:class:`UnknownPlan` for a plan no longer configured,
        :class:`PlanLimitsUnavailable` when the storage is down). No plan: ``(None, [])``."""
        plan = self.plans.for_client(record.plan)
        if plan is None or self.limiter is None:
            return plan, []
        return plan, self.limiter.usage(record, plan)

    def rate_limit_headers(self, response: Response) -> Response:
        """The ``X-RateLimit-*`` headers of the request's tightest plan limit: registered with
        ``after_this_request`` by a request that has one, so that no other request runs it."""
        window = getattr(request, "_clientauth_window", None)
        headers = response.headers
        if window is not None and "X-RateLimit-Limit" not in headers:  # the view's own win
            items = window.headers().items()
            raw = getattr(headers, "_list", None)
            if isinstance(raw, list):  # our names and digits need none of add()'s checks (half a request's cost)
                raw.extend(items)
            else:
                headers.extend(items)
        return response

    def _refuse_mount(self, req: Request) -> Response:
        """The app is served under a prefix the routes were not matched for: refuse, saying why."""
        logger.critical(
            "clientauth: refusing %s %s: the app is served under %s (SCRIPT_NAME), but the routes were matched "
            "to the document for %r; set CLIENTAUTH_BASE_PATH to the prefix the app is mounted under",
            req.method,
            escape(req.path),
            escape(req.root_path),
            self.settings.base_path or "no prefix",
        )
        return self.respond(AuthFailure(errors.CONFIG_ERROR))

    def respond(
        self, failure: AuthFailure, policy: Policy | None = None, *, client: AuthenticatedClient | None = None
    ) -> Response:
        """The response for a refusal (see :func:`errors.respond`); every refusal comes through here.

        ``client``: the client refused after it authenticated (a plan's refusal), for the metrics.
        """
        if self.metrics is not None:
            self.metrics.refused(failure, client)
        handler = self.extension.registrations.error_handler
        return respond(failure, policy, handler=handler, detail_mode=self.error_detail)

    def __repr__(self) -> str:
        return f"<ClientAuthState spec={self._spec.source if self._spec else self.settings.spec!r}>"


class ClientAuth:
    """Enforce an OpenAPI document's API key security (client ID / client secret) on a Flask app.

    ``ClientAuth(app)`` or ``auth = ClientAuth(); auth.init_app(app)``. Pass ``db`` (a
    Flask-SQLAlchemy instance) to keep clients in the app's own database and migrations.
    ``clock`` measures the cache's TTLs, the revocation interval and the waits for a bcrypt
    check (``time.monotonic``; tests pass a fake one).
    """

    def __init__(
        self, app: Flask | None = None, *, db: SQLAlchemy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.clock = clock
        #: What the decorators below registered.
        self.registrations = Registrations()
        self._metrics_view: Callable[[], ResponseReturnValue] | None = None
        if db is not None:
            for table in Base.metadata.sorted_tables:
                if table.name not in db.metadata.tables:
                    table.to_metadata(db.metadata)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the config, load the spec (failing now if it is unusable), register the hook and CLI."""
        if "clientauth" in app.extensions:
            raise RuntimeError("Flask-ClientAuth is already registered on this app.")
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app.config)  # a ConfigurationError naming the key, before anything is built
        engine = None
        if self.db is not None:
            db = self.db
            get_engine: Callable[[], Engine] = lambda: db.engine  # noqa: E731
        else:
            engine = own = _create_engine(app, settings)
            get_engine = lambda: own  # noqa: E731
        store = ClientStore(
            get_engine,
            bcrypt_rounds=settings.bcrypt_rounds,
            secret_prefix=settings.secret_prefix,
            pepper=settings.secret_pepper,
        )
        state = ClientAuthState(self, app, store, engine, settings)
        if not callable(settings.spec):
            state.spec()  # a broken document fails start-up, naming its path and the rule
        app.extensions["clientauth"] = state

        if settings.plans or settings.product:  # not state.plans: a callable document is loaded on first use
            state.limiter = PlanLimiter(
                settings.ratelimit_storage_uri,
                strategy=settings.ratelimit_strategy,
                key_prefix=f"clientauth:{app.name}",  # apps sharing one Redis keep their own counts
                on_error=settings.plan_limits_on_error,
                clock=self.clock,
            )
        app.before_request(state.hook)
        # Flask calls ``self.dispatch_request()``: an instance attribute takes its place,
        # decided on the first request (see dispatch.py).
        app.dispatch_request = state.dispatch_check.first_dispatch_request  # type: ignore[method-assign]
        # First of the app's before_request functions, whatever order extensions were set up in:
        # the others (Flask-Limiter's key_func, the app's own hooks) can then use current_client.
        hooks = app.before_request_funcs[None]
        hooks.insert(0, hooks.pop())

        # The Flask-extension way: only apps with the extension get ``flask clients`` (an app whose
        # init_app refuses its document has ``python -m flask_clientauth check``: see __main__.py).
        app.cli.add_command(clients)

    # -- decorators -------------------------------------------------------------------
    def exempt(self, obj: V) -> V:
        """Make a view public, whatever the spec says: a function, a class-based view, one method of a
        ``MethodView`` (that method only), or a blueprint (every view it registers)."""
        self._register(obj, Override("exempt", where=_describe(obj)))
        return obj

    def require(
        self, *schemes: str, any_of: Sequence[Sequence[str]] | None = None, roles: Sequence[str] = ()
    ) -> Callable[[V], V]:
        """Protect a view or blueprint with named schemes: all of ``schemes``, or one group of ``any_of``.

        With no names, the document's global requirement applies. ``roles``: the client must also
        hold every one of them (403 ``role_missing``), whichever alternative it passes; a request
        without a client is then refused, even where the global requirement lists ``{}``. Works
        where :meth:`exempt` does.
        """
        if schemes and any_of:
            raise TypeError("pass scheme names or any_of, not both")
        if isinstance(roles, str):  # roles="admin" would ask for the roles "a", "d", "m", ...
            raise TypeError(f"roles must be a list of role names (write roles=[{roles!r}])")
        wanted = tuple(check_role(r) for r in roles)
        alternatives = tuple(tuple(a) for a in any_of) if any_of else ((tuple(schemes),) if schemes else ())

        def decorator(obj: V) -> V:
            self._register(obj, Override("require", alternatives, where=_describe(obj), roles=wanted))
            return obj

        return decorator

    def _register(self, obj: Any, override: Override) -> None:
        if isinstance(obj, Blueprint):
            self.registrations.blueprints[obj] = override
        else:
            self.registrations.views[obj] = override

    def scheme_handler(self, name: str) -> Callable[[F], F]:
        """Register the verifier of a non-apiKey scheme (oauth2, http, ...): ``f(request) -> verdict``.

        The verdict: a true value that is not a response (``True``, a claims dict, a user) accepts,
        and is kept in the request's ``AuthState.handler_results``; a false value (``False``,
        ``None``) refuses with 401 ``credentials_rejected``; an ``HTTPException`` (``abort(403)``)
        propagates as the app's own refusal. A response (``Response``, ``make_response(...)``,
        ``jsonify(...)``, a ``(body, status)`` tuple) never accepts: 503 ``configuration_error``,
        logged as an error, as is any other exception.
        """

        def decorator(f: F) -> F:
            self.registrations.scheme_handlers[name] = f
            return f

        return decorator

    def error_handler(
        self, f: Callable[[AuthFailure], ResponseReturnValue]
    ) -> Callable[[AuthFailure], ResponseReturnValue]:
        """Replace the JSON error response: ``f(failure) -> response``."""
        self.registrations.error_handler = f
        return f

    # -- API --------------------------------------------------------------------------
    @staticmethod
    def state(app: Flask | None = None) -> ClientAuthState:
        """The per-app state of ``app`` (default: the current app)."""
        target = app if app is not None else current_app
        return target.extensions["clientauth"]  # type: ignore[no-any-return]

    def store(self, app: Flask | None = None) -> ClientStore:
        """The client store of ``app`` (default: the current app)."""
        return self.state(app).store

    def admin_api(
        self,
        login_required: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        *,
        can_manage: Callable[[ClientRecord], bool] | None = None,
        actor: Callable[[], str | None] | None = None,
        exempt: bool = True,
        name: str = "clientauth_admin_api",
        security_schemes: dict[str, Any] | None = None,
        security: list[dict[str, list[str]]] | None = None,
        scope: Callable[[], ColumnElement[bool] | None] | None = None,
    ) -> Blueprint:
        """A JSON blueprint mirroring ``flask clients`` (see :doc:`admin_api`); register it under a prefix.

        ``login_required`` (required: the app's login decorator) wraps every view, so the API is
        never open; ``can_manage(record)`` limits the clients a user sees and changes; ``actor()``
        names the user in the audit log (default: :func:`~.admin_api.default_actor`). With
        ``exempt`` (the default) the app's document need not describe the API: ``login_required``
        guards it; ``exempt=False`` leaves it to the document (an API-key-protected admin API).
        ``security_schemes`` and ``security`` go into the OpenAPI document the blueprint serves
        (:func:`~.admin_api.admin_api_document`). ``scope()``, called per request, gives the SQL
        condition the user's clients meet (see :class:`~.service.ClientService`), so that listings
        filter in SQL before ``can_manage`` is asked.
        """
        from .admin_api import build_admin_api

        return build_admin_api(
            self,
            login_required=login_required,
            can_manage=can_manage,
            actor=actor,
            exempt=exempt,
            name=name,
            security_schemes=security_schemes,
            security=security,
            scope=scope,
        )

    def routes(self, app: Flask | None = None) -> list[RouteInfo]:
        """Resolve every route now; raises :class:`SpecError` naming everything that cannot be enforced.

        Call it at the end of the app factory, once routes and scheme handlers are registered,
        so that a bad configuration fails start-up. Otherwise the same check runs on the first
        request, and a failure there refuses every request with 503.
        """
        target = app if app is not None else current_app
        return self.state(target).resolve_routes(target.url_map.iter_rules())

    def portal(
        self,
        login_required: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        *,
        can_manage: Callable[[ClientRecord], bool] | None = None,
        actor: Callable[[], str | None] | None = None,
        scope: Callable[[], ColumnElement[bool] | None] | None = None,
        name: str = "clientauth_portal",
    ) -> Blueprint:
        """The "Sharing & keys" pages (see :doc:`portal`); register the blueprint under a prefix.

        ``login_required`` (required: the app's login decorator) wraps every page, so the portal is
        never open; ``can_manage(record)`` limits the clients a user sees and changes; ``actor()``
        names the user in the audit log (default: :func:`~.admin_api.default_actor`); ``scope()``, as
        for :meth:`admin_api`, an SQL condition the listings filter by first. The pages are
        exempt from the API key check (the app's document does not describe them). Needs Flask-WTF
        (``pip install 'Flask-ClientAuth[portal]'``) and the app's ``SECRET_KEY``.
        """
        from .portal import build_portal

        return build_portal(
            self, login_required=login_required, can_manage=can_manage, actor=actor, scope=scope, name=name
        )

    def metrics_view(self) -> Callable[[], ResponseReturnValue]:
        """A view serving the current app's Prometheus metrics (``CLIENTAUTH_METRICS``), to mount and
        protect: ``app.add_url_rule("/metrics", view_func=auth.require(roles=["metrics"])(auth.metrics_view()))``.

        One view per extension object, whichever app serves it (an app factory can decorate and
        mount it on each app). Raises :class:`ConfigurationError` when ``prometheus_client`` (the
        ``[metrics]`` extra) is not installed. On an app whose metrics are off, the view answers 404
        (and logs why).
        """
        if self._metrics_view is None:
            self._metrics_view = make_view()
        return self._metrics_view


def _source_label(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "__qualname__", type(source).__name__)


def _describe(obj: Any) -> str:
    if isinstance(obj, Blueprint):
        return f"blueprint {obj.name}"
    return getattr(obj, "__qualname__", repr(obj))


def _create_engine(app: Flask, settings: Settings) -> Engine:
    """The extension's own engine: ``CLIENTAUTH_DATABASE_URI`` or SQLite in the instance folder."""
    uri = settings.database_uri
    if uri is None:
        os.makedirs(app.instance_path, exist_ok=True)
        uri = "sqlite:///" + os.path.join(app.instance_path, "clientauth.sqlite3")
    options: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    options.update(settings.engine_options)
    try:
        return create_engine(uri, **options)
    except ImportError as exc:  # the URL names a DBAPI driver that is not installed
        dialect = make_url(uri).drivername
        raise ConfigurationError(
            f"CLIENTAUTH_DATABASE_URI: the database driver of {dialect!r} is not installed ({exc.name or exc}); "
            "install it, or name an installed one: 'postgresql+psycopg://' (pip install "
            "'Flask-ClientAuth[postgresql]'), 'mysql+pymysql://' (pip install 'Flask-ClientAuth[mysql]')"
        ) from None
