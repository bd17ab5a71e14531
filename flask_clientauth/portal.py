"""The "Sharing & keys" portal: server-rendered pages over :class:`~.service.ClientService`.

:meth:`ClientAuth.portal <flask_clientauth.ClientAuth.portal>` builds the blueprint; the app
registers it under a prefix of its own (``/admin/keys``). Every view is wrapped in the app's
``login_required``, then in the portal's own CSRF check (Flask-WTF's token, checked here whether
or not the app set up ``CSRFProtect``), and acts through a :class:`~.service.ClientService` made
for the logged-in actor with ``can_manage``: the portal never writes to the store itself.

Every portal response carries ``Cache-Control: no-store`` and a strict Content-Security-Policy
(scripts, styles and images from the portal's own static files only; no inline code). A secret is
only ever rendered into the response of the POST that made it: never into a URL, a flash message,
a redirect or a log line.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.sansio.blueprints import BlueprintSetupState
from sqlalchemy import ColumnElement
from werkzeug.exceptions import HTTPException

from . import explore
from .admin_api import CanManage, Decorator, checked_options, from_another_site
from .service import ClientService, Created, ServiceError
from .settings import ConfigurationError
from .store import StoreBusy, StoreError, utcnow
from .timespec import DATE_HELP, DURATION_HELP, parse_datetime, parse_duration

if TYPE_CHECKING:
    from .extension import ClientAuth

logger = logging.getLogger("flask_clientauth")

F = TypeVar("F", bound=Callable[..., Any])

#: Sent with every portal response. No inline script or style, nothing from another origin, no
#: framing, forms post only back to the app.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'none'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: Clients per page of the list.
PER_PAGE = 50
#: Flask-WTF's form field for the token.
CSRF_FIELD = "csrf_token"


class CSRFRefused(HTTPException):
    """A form posted without a valid CSRF token (or from another origin): nothing was changed."""

    code = 400
    description = "The form was not sent by this portal or has expired: reload the page and try again."


def build_portal(
    ext: ClientAuth,
    *,
    login_required: Decorator | None,
    can_manage: CanManage | None = None,
    actor: Callable[[], str | None] | None = None,
    scope: Callable[[], ColumnElement[bool] | None] | None = None,
    name: str = "clientauth_portal",
) -> Blueprint:
    """The blueprint of :meth:`ClientAuth.portal <flask_clientauth.ClientAuth.portal>` (see there)."""
    login, who = checked_options("portal()", "the portal", login_required, can_manage, actor)
    try:
        from flask_wtf.csrf import generate_csrf  # noqa: F401  (fail now, not on the first page)
    except ImportError:
        raise ImportError(
            "the portal needs Flask-WTF for its CSRF protection: pip install 'Flask-ClientAuth[portal]'"
        ) from None

    bp = Blueprint(
        name, __name__, template_folder="templates", static_folder="static/clientauth", static_url_path="/static"
    )
    bp.record_once(_check_app)
    # login_required guards every page; the app's document does not describe them, so the API key
    # check must not refuse them (403 operation_not_described).
    ext.exempt(bp)

    def service() -> ClientService:
        where = None if scope is None else scope()
        return ClientService(ext.state(), actor=who(), can_manage=can_manage, scope=where)

    def view(rule: str, methods: tuple[str, ...] = ("GET",)) -> Callable[[F], F]:
        def decorator(f: F) -> F:
            @functools.wraps(f)
            def checked(**kwargs: Any) -> Any:
                if request.method == "POST":
                    _check_csrf()
                try:
                    return f(**kwargs)
                except ServiceError as exc:
                    if exc.status == 404:
                        return _page("clientauth/error.html", code=404, title="Not found", message=exc.message)
                    flash(exc.message, "error")
                    back = kwargs.get("client_id")
                    return redirect(_url("client", client_id=back) if back else _url("clients"))
                except StoreBusy:
                    message = "The client store is busy; nothing was changed. Try again."
                    return _page("clientauth/error.html", code=503, title="Busy", message=message)
                except StoreError as exc:
                    logger.error("clientauth: portal %s %s: %s", request.method, request.path, exc)
                    message = "The client registry is unavailable."
                    return _page("clientauth/error.html", code=503, title="Unavailable", message=message)

            bp.add_url_rule(rule, f.__name__, login(checked), methods=list(methods))
            return f

        return decorator

    @bp.after_request
    def secure(response: Response) -> Response:
        for header, value in SECURITY_HEADERS.items():
            response.headers[header] = value
        return response

    @bp.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        # HTML, whatever the app answers its API's errors with (a JSON handler, say)
        title = "Form refused" if isinstance(exc, CSRFRefused) else (exc.name or "Error")
        return _page("clientauth/error.html", code=exc.code or 500, title=title, message=exc.description)

    @bp.app_template_filter("clientauth_time")
    def format_time(value: datetime | None) -> str:
        return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")

    @bp.context_processor
    def portal_context() -> dict[str, Any]:
        from flask_wtf.csrf import generate_csrf

        return {
            "csrf_token": generate_csrf,
            "csrf_field": CSRF_FIELD,
            "date_help": DATE_HELP,
            "duration_help": DURATION_HELP,
            "now": utcnow(),
        }

    # -- clients ---------------------------------------------------------------------------
    @view("/")
    def clients() -> Any:
        search = request.args.get("q", "")
        status = request.args.get("status") or None
        page = request.args.get("page", "1")
        if not (page.isascii() and page.isdigit()) or int(page) < 1:  # isdigit() alone takes "²"
            abort(404)
        listing = service().list_clients(search=search, status=status, page=int(page), per_page=PER_PAGE)
        if listing.page > listing.pages:
            abort(404)
        return _page("clientauth/clients.html", listing=listing, search=search, status=status or "")

    @view("/new", methods=("GET", "POST"))
    def create() -> Any:
        svc = service()
        plans = _plan_names(svc)
        if request.method == "GET":
            return _page("clientauth/create.html", form={}, plans=plans)
        form = request.form
        try:
            expires_at = _optional_date(form.get("expires_at", ""), "expires_at")
            created = svc.create(
                form.get("name", ""),
                description=form.get("description", ""),
                plan=form.get("plan") or None,
                roles=_words(form.get("roles", "")),
                label=form.get("label", ""),
                expires_at=expires_at,
                with_secret=form.get("with_secret") == "on",
            )
        except ServiceError as exc:
            flash(exc.message, "error")
            return _page("clientauth/create.html", code=exc.status, form=form, plans=plans)
        return _shown_once(created, "Client created", new_client=True)

    @view("/clients/<client_id>")
    def client(client_id: str) -> Any:
        svc = service()
        record = svc.get(client_id)
        return _page(
            "clientauth/client.html",
            record=record,
            plans=_plan_names(svc),
            max_credentials=svc.max_credentials,
            verified=None,
        )

    @view("/clients/<client_id>/credentials", methods=("POST",))
    def add_credential(client_id: str) -> Any:
        form = request.form
        created = service().add_credential(
            client_id,
            label=form.get("label", ""),
            expires_at=_optional_date(form.get("expires_at", ""), "expires_at"),
            with_secret=form.get("with_secret") == "on",
        )
        return _shown_once(created, "Credential added")

    @view("/clients/<client_id>/revoke", methods=("POST",))
    def revoke_credential(client_id: str) -> Any:
        record = service().revoke_credential(client_id)
        flash(f"Credential {client_id} revoked: it stops working now.", "ok")
        remaining = [c for c in record.client_ids() if c != client_id]
        return redirect(_url("client", client_id=remaining[0]) if remaining else _url("clients"))

    @view("/clients/<client_id>/reset-secret", methods=("POST",))
    def reset_secret(client_id: str) -> Any:
        raw = request.form.get("grace", "").strip()
        grace = None
        if raw:
            try:
                grace = parse_duration(raw)
            except ValueError as exc:
                raise ServiceError.invalid("grace", f"grace period: {exc}") from None
        created = service().reset_secret(client_id, grace=grace)
        return _shown_once(created, "Secret reset")

    @view("/clients/<client_id>/set-secret", methods=("POST",))
    def set_secret(client_id: str) -> Any:
        service().set_secret(client_id, request.form.get("secret", ""))
        flash(f"A secret was set for {client_id}.", "ok")
        return redirect(_url("client", client_id=client_id))

    @view("/clients/<client_id>/verify", methods=("POST",))
    def verify_secret(client_id: str) -> Any:
        svc = service()
        valid = svc.verify_secret(client_id, request.form.get("secret", ""))
        return _page(
            "clientauth/client.html",
            record=svc.get(client_id),
            plans=_plan_names(svc),
            max_credentials=svc.max_credentials,
            verified=(client_id, valid),
        )

    @view("/clients/<client_id>/reset-client-id", methods=("POST",))
    def reset_client_id(client_id: str) -> Any:
        created = service().reset_client_id(client_id)
        new_id = created.record.client_id
        flash(f"The client ID {client_id} was replaced by {new_id}; the secret is unchanged.", "ok")
        return redirect(_url("client", client_id=new_id))

    @view("/clients/<client_id>/enabled", methods=("POST",))
    def set_enabled(client_id: str) -> Any:
        enabled = request.form.get("enabled") == "1"
        record = service().set_enabled(client_id, enabled)
        flash(f"{record.name} is {'enabled' if enabled else 'disabled'}.", "ok")
        return redirect(_url("client", client_id=client_id))

    @view("/clients/<client_id>/plan", methods=("POST",))
    def set_plan(client_id: str) -> Any:
        record = service().set_plan(client_id, request.form.get("plan") or None)
        flash(f"{record.name}: plan {record.plan or '(default)'}.", "ok")
        return redirect(_url("client", client_id=client_id))

    @view("/clients/<client_id>/roles", methods=("POST",))
    def set_roles(client_id: str) -> Any:
        form = request.form
        record = service().set_roles(client_id, add=_words(form.get("add", "")), remove=_words(form.get("remove", "")))
        flash(f"{record.name}: roles {', '.join(record.roles) or '(none)'}.", "ok")
        return redirect(_url("client", client_id=client_id))

    @view("/clients/<client_id>/delete", methods=("GET", "POST"))
    def delete(client_id: str) -> Any:
        svc = service()
        if request.method == "GET":
            return _page("clientauth/delete.html", record=svc.get(client_id))
        record = svc.delete(client_id)
        flash(f"Client {record.name} was deleted with its {len(record.credentials)} credential(s).", "ok")
        return redirect(_url("clients"))

    # -- audit -----------------------------------------------------------------------------
    @view("/audit")
    def audit() -> Any:
        entries = service().audit()
        return _page("clientauth/audit.html", entries=list(reversed(entries)), record=None)

    @view("/clients/<client_id>/audit")
    def client_audit(client_id: str) -> Any:
        svc = service()
        record = svc.get(client_id)
        entries = svc.audit(client_id)
        return _page("clientauth/audit.html", entries=list(reversed(entries)), record=record)

    # -- explore ---------------------------------------------------------------------------
    @view("/explore", methods=("GET", "POST"))
    def explore_page() -> Any:
        operations = ext.state().spec().operations
        result = error = None
        chosen = None
        form: Mapping[str, str] = request.form if request.method == "POST" else request.args
        if request.method == "POST":
            chosen = _find_operation(operations, form.get("operation", ""))
            if chosen is None:
                abort(404)
            params = {p: form.get(f"path.{p}", "") for p in explore.path_params(chosen)}
            try:
                result = explore.call(
                    current_app._get_current_object(),  # type: ignore[attr-defined]
                    request,
                    chosen,
                    client_id=form.get("client_id", "").strip(),
                    secret=form.get("secret", ""),
                    params=params,
                    query=form.get("query", ""),
                    body=form.get("body", ""),
                )
            except explore.ExploreError as exc:
                error = str(exc)
            # the fields put back into the page: a secret typed into the query or body is masked
            secret = form.get("secret", "")
            form = {k: explore.masked(v, secret) for k, v in form.items() if k != "secret"}
        return _page(
            "clientauth/explore.html",
            operations=operations,
            chosen=chosen,
            form=form,
            result=result,
            error=error,
            explore=explore,
        )

    return bp


def _check_app(state: BlueprintSetupState) -> None:
    """At ``register_blueprint``: sessions (the login, the CSRF token) need a secret key."""
    app = state.app
    if not app.secret_key and not app.config.get("WTF_CSRF_SECRET_KEY"):
        raise ConfigurationError(
            "SECRET_KEY: the Flask-ClientAuth portal needs the app's SECRET_KEY (for its CSRF tokens and the "
            "login session); set it before registering the portal"
        )


def _check_csrf() -> None:
    """Flask-WTF's token check for the portal's forms, whether or not the app set up ``CSRFProtect``.

    Over HTTPS the form must also come from this host (the ``Referer``), as ``CSRFProtect`` asks.
    """
    from flask_wtf.csrf import ValidationError, same_origin, validate_csrf

    try:
        validate_csrf(request.form.get(CSRF_FIELD))
    except ValidationError as exc:
        logger.info("clientauth: portal %s %s refused: %s", request.method, request.path, exc)
        raise CSRFRefused() from None
    if from_another_site():  # over plain HTTP too: the browser's Sec-Fetch-Site, else Origin
        logger.info("clientauth: portal %s %s refused: from another site", request.method, request.path)
        raise CSRFRefused()
    if request.is_secure and not (request.referrer and same_origin(request.referrer, f"https://{request.host}/")):
        logger.info(
            "clientauth: portal %s %s refused: referrer missing or from another host", request.method, request.path
        )
        raise CSRFRefused()


def _page(template: str, *, code: int = 200, **context: Any) -> Response:
    return current_app.make_response((render_template(template, **context), code))


def _url(endpoint: str, **values: Any) -> str:
    return url_for(f".{endpoint}", **values)


def _shown_once(created: Created, title: str, *, new_client: bool = False) -> Response:
    """The page that shows a new secret, rendered into the POST's own response (never a redirect)."""
    return _page("clientauth/secret.html", created=created, title=title, new_client=new_client)


def _words(text: str) -> list[str]:
    """``"admin, reports"`` or ``"admin reports"`` -> ``["admin", "reports"]``."""
    return [w for w in text.replace(",", " ").split() if w]


def _optional_date(text: str, field: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        return parse_datetime(text)
    except ValueError as exc:
        raise ServiceError.invalid(field, f"{field}: {exc}") from None


def _plan_names(svc: ClientService) -> list[str]:
    """The configured plans' names (empty when the app has none): the configuration, no query."""
    return list(svc.state.plans)


def _find_operation(operations: list[Any], label: str) -> Any:
    return next((op for op in operations if op.label == label), None)
