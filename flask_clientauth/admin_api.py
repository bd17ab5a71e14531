"""``ClientAuth.admin_api(login_required=...)``: a JSON blueprint mirroring ``flask clients``.

Every endpoint goes through :class:`~.service.ClientService` (as the CLI does) with the actor taken
from the app's login, and answers with the ``--json`` shapes; errors have API Connect's shape. It
serves its own OpenAPI document (``GET <prefix>/openapi.json``, see :func:`admin_api_document`).

CSRF: every write needs ``Content-Type: application/json`` (a cross-site HTML form cannot send
it; 415 otherwise). Secrets travel only in JSON bodies, never in a URL: a query string is checked
against each endpoint's parameters, so a stray ``?secret=`` is refused, not read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, g, json, request
from werkzeug.http import HTTP_STATUS_CODES

from .context import get_current_client
from .service import (
    ClientPage,
    ClientService,
    Created,
    ServiceError,
    credentials_dict,
    deleted_dict,
    revoked_dict,
)
from .store import ClientRecord, StoreBusy, StoreError
from .timespec import parse_datetime, parse_duration

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from .extension import ClientAuth

logger = logging.getLogger("flask_clientauth")

#: What ``login_required`` and ``can_manage`` look like.
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
CanManage = Callable[[ClientRecord], bool]


#: The admin API's own codes (beside :data:`.service.CODES`), with their HTTP status.
CODES = {
    "invalid_input": 400,
    "unsupported_media_type": 415,
    "cross_origin": 403,
    "client_id_missing": 401,
    "store_busy": 503,
    "store_unavailable": 503,
}


class _Refused(Exception):
    """An answer other than the service's own: 400 (the body or a parameter), 415 (not JSON)."""

    def __init__(self, status: int, message: str, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def error_response(status: int, message: str, code: str | None = None) -> Response:
    """API Connect's error shape, plus the stable ``code`` of the refusal."""
    body: dict[str, Any] = {
        "httpCode": str(status),
        "httpMessage": HTTP_STATUS_CODES.get(status, "Error"),
        "moreInformation": message,
    }
    if code is not None:
        body["code"] = code
    return _json(body, status)


def _json(data: Any, status: int = 200) -> Response:
    response = Response(json.dumps(data), status=status, mimetype="application/json")
    # a secret is shown once, in the body of one response: nothing may keep a copy
    response.headers["Cache-Control"] = "no-store"
    return response


def default_actor() -> str | None:
    """Who is logged in, for the audit log: Flask-Login's ``current_user.get_id()``, else the client
    Flask-ClientAuth authenticated (``client:<client ID>``), else the HTTP user name
    (``request.authorization``, ``REMOTE_USER``). ``None`` when nothing says."""
    if hasattr(current_app, "login_manager"):  # Flask-Login is set up on this app
        from flask_login import current_user  # type: ignore[import-not-found,unused-ignore]

        if getattr(current_user, "is_authenticated", False):
            return str(current_user.get_id())
    client = get_current_client()
    if client is not None and client.client_id is not None:
        return f"client:{client.client_id}"
    if request.authorization is not None and request.authorization.username:
        return request.authorization.username
    return request.remote_user or None


def checked_options(
    factory: str,
    what: str,
    login_required: Decorator | None,
    can_manage: CanManage | None,
    actor: Callable[[], str | None] | None,
) -> tuple[Decorator, Callable[[], str | None]]:
    """The checks of ``admin_api()`` and ``portal()`` arguments (a :class:`TypeError` naming the
    wrong one); the login decorator and the actor function to use."""
    if login_required is None or not callable(login_required):
        raise TypeError(
            f"{factory} needs login_required: the decorator of the app's login (e.g. flask_login.login_required), "
            f"so {what} can never be mounted open"
        )
    if can_manage is not None and not callable(can_manage):
        raise TypeError("can_manage must be a callable taking a ClientRecord and returning True or False")
    who = actor if actor is not None else default_actor
    if not callable(who):
        raise TypeError("actor must be a callable returning the logged-in user's name for the audit log")
    return login_required, who


def api_key_login(view: Callable[..., Any]) -> Callable[..., Any]:
    """A ``login_required`` for an admin API protected by Flask-ClientAuth itself: lets a request in
    only when the extension authenticated a client for it (401 otherwise, e.g. on an exempt route)."""
    import functools

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if get_current_client() is None:
            return error_response(401, "Client ID missing", "client_id_missing")
        return view(*args, **kwargs)

    return wrapper


#: Methods that change nothing: a cross-site one is refused only when a script would read the answer.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def from_another_site() -> bool:
    """Whether the browser says this request comes from another site.

    ``Sec-Fetch-Site`` decides when the browser sends it (``cross-site`` or ``same-site``: another
    site; ``same-origin`` or ``none``, typed or bookmarked: not). Without it, an ``Origin`` other
    than this host is another site; ``Origin: null`` says nothing (the portal's own forms send it,
    under its ``Referrer-Policy: no-referrer``). Automation sends neither header.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() != request.host.lower()


def _check_site() -> None:
    """CSRF beyond the JSON content type: a write, or a script's read, from another site is refused
    (an app whose CORS set-up lets credentials through would otherwise open the API to any site)."""
    if not from_another_site():
        return
    if request.method not in _SAFE_METHODS or request.headers.get("Sec-Fetch-Mode", "").lower() == "cors":
        logger.info("clientauth: admin API %s %s refused: from another site", request.method, request.path)
        raise _Refused(403, "refused: the request comes from another site", "cross_origin")


# -- reading the request ------------------------------------------------------------------
def _body(*allowed: str) -> dict[str, Any]:
    """The JSON object of a write; every key must be one of ``allowed``."""
    if request.mimetype != "application/json":
        raise _Refused(415, "send a JSON body with Content-Type: application/json", "unsupported_media_type")
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past the parser's depth
        raise _Refused(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _Refused(400, "the body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise _Refused(400, f"unknown field(s): {', '.join(unknown)[:200]} (known: {known})")
    return data


def _query(*allowed: str) -> dict[str, str]:
    """The query parameters; an unknown one (a secret put in a URL by mistake) is refused, unread."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise _Refused(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
    return {k: v for k, v in request.args.items()}


_KINDS = {"str": "a string", "bool": "true or false", "list": "a list"}


def _typed(data: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """``data[name]`` when it is a ``kind`` (or absent or null: ``default``); 400 otherwise."""
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _Refused(400, f"{name} must be {_KINDS.get(kind.__name__, kind.__name__)}")
    return value


def _date(data: dict[str, Any], name: str) -> datetime | None:
    value = _typed(data, name, str)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise _Refused(400, f"{name}: {exc}") from None


def _duration(data: dict[str, Any], name: str) -> timedelta | None:
    value = _typed(data, name, str)
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Refused(400, f"{name}: {exc}") from None


def _expiry(data: dict[str, Any], at: str = "expires_at") -> datetime | None:
    """``expires_at`` (a date) or ``ttl`` (a duration from now), not both."""
    expires_at, ttl = _date(data, at), _duration(data, "ttl")
    if expires_at is not None and ttl is not None:
        raise _Refused(400, f"give {at} or ttl, not both")
    if ttl is not None:
        from .store import utcnow

        return utcnow() + ttl
    return expires_at


def _int(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9:  # isdigit() alone takes "²", int() does not
        raise _Refused(400, f"{name} must be a whole number")
    return int(text)


def _roles_list(data: dict[str, Any], name: str) -> list[str]:
    values = _typed(data, name, list, ()) or []
    if not all(isinstance(v, str) for v in values):
        raise _Refused(400, f"{name} must be a list of role names")
    return list(values)


# -- the blueprint --------------------------------------------------------------------------
def build_admin_api(
    ext: ClientAuth,
    *,
    login_required: Decorator | None,
    can_manage: CanManage | None = None,
    actor: Callable[[], str | None] | None = None,
    exempt: bool = True,
    name: str = "clientauth_admin_api",
    security_schemes: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    scope: Callable[[], ColumnElement[bool] | None] | None = None,
) -> Blueprint:
    """The blueprint of :meth:`ClientAuth.admin_api` (see there)."""
    login_required, who = checked_options("admin_api()", "the API", login_required, can_manage, actor)
    bp = Blueprint(name, __name__)

    def service() -> ClientService:
        svc: ClientService | None = g.get("_clientauth_admin_service")
        if svc is None:
            where = None if scope is None else scope()
            svc = ClientService(ext.state(), actor=who(), can_manage=can_manage, scope=where)
            g._clientauth_admin_service = svc
        return svc

    def route(rule: str, methods: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
            def view(**kwargs: Any) -> Response:
                try:
                    _check_site()
                    result = f(**kwargs)
                except _Refused as refused:
                    return error_response(refused.status, refused.message, refused.code)
                except ServiceError as exc:
                    return error_response(exc.status, exc.message, exc.code)
                except StoreBusy:
                    return error_response(503, "the client store is busy; nothing was changed, try again", "store_busy")
                except StoreError as exc:
                    logger.error("clientauth: admin API %s %s: %s", request.method, request.path, exc)
                    return error_response(503, "Client registry unavailable", "store_unavailable")
                if isinstance(result, Response):
                    return result
                data, status = result if isinstance(result, tuple) else (result, 200)
                return _json(data, status)

            view.__name__ = f.__name__
            bp.add_url_rule(rule, f.__name__, login_required(view), methods=methods)
            return f

        return decorator

    @route("/openapi.json", ["GET"])
    def openapi() -> Any:
        _query()
        prefix = request.path[: -len("/openapi.json")]
        return admin_api_document(prefix, security_schemes=security_schemes, security=security)

    @route("/clients", ["GET"])
    def list_clients() -> Any:
        params = _query("search", "status", "page", "per_page")
        page: ClientPage = service().list_clients(
            search=params.get("search", ""),
            status=params.get("status") or None,
            page=_int(params, "page", 1),
            per_page=_int(params, "per_page", 50),
        )
        return page.to_dict()

    @route("/clients", ["POST"])
    def create_client() -> Any:
        data = _body("name", "description", "roles", "label", "expires_at", "ttl", "plan", "with_secret")
        if "name" not in data:
            raise _Refused(400, "name is required")
        created = service().create(
            _typed(data, "name", str),
            description=_typed(data, "description", str, "") or "",
            plan=_typed(data, "plan", str),
            roles=_roles_list(data, "roles"),
            label=_typed(data, "label", str, "") or "",
            expires_at=_expiry(data),
            with_secret=_typed(data, "with_secret", bool, True),
        )
        return created.to_dict(), 201

    @route("/clients/<client_id>", ["GET"])
    def show_client(client_id: str) -> Any:
        _query()
        return service().get(client_id).to_dict()

    @route("/clients/<client_id>", ["DELETE"])
    def delete_client(client_id: str) -> Any:
        _query()
        service().delete(client_id)
        return deleted_dict(client_id)

    @route("/clients/<client_id>/credentials", ["GET"])
    def list_credentials(client_id: str) -> Any:
        _query()
        return credentials_dict(service().get(client_id))

    @route("/clients/<client_id>/credentials", ["POST"])
    def add_credential(client_id: str) -> Any:
        data = _body("label", "expires_at", "ttl", "with_secret")
        created: Created = service().add_credential(
            client_id,
            label=_typed(data, "label", str, "") or "",
            expires_at=_expiry(data),
            with_secret=_typed(data, "with_secret", bool, True),
        )
        return created.to_dict(), 201

    @route("/credentials/<client_id>", ["DELETE"])
    def revoke_credential(client_id: str) -> Any:
        _query()
        service().revoke_credential(client_id)
        return revoked_dict(client_id)

    @route("/clients/<client_id>/reset-secret", ["POST"])
    def reset_secret(client_id: str) -> Any:
        data = _body("grace")
        return service().reset_secret(client_id, grace=_duration(data, "grace")).to_dict()

    @route("/clients/<client_id>/secret", ["PUT"])
    def set_secret(client_id: str) -> Any:
        data = _body("secret")
        secret = _typed(data, "secret", str)
        if secret is None:
            raise _Refused(400, "secret is required")
        return service().set_secret(client_id, secret).to_dict()

    @route("/clients/<client_id>/verify-secret", ["POST"])
    def verify_secret(client_id: str) -> Any:
        data = _body("secret")
        secret = _typed(data, "secret", str)
        if secret is None:
            raise _Refused(400, "secret is required")
        return {"client_id": client_id, "valid": service().verify_secret(client_id, secret)}

    @route("/clients/<client_id>/reset-client-id", ["POST"])
    def reset_client_id(client_id: str) -> Any:
        _body()
        return service().reset_client_id(client_id).to_dict()

    @route("/clients/<client_id>/expiry", ["PUT"])
    def set_expiry(client_id: str) -> Any:
        data = _body("expires_at", "ttl")
        if "expires_at" not in data and "ttl" not in data:
            raise _Refused(400, "give expires_at (a date, or null: never) or ttl (a duration from now)")
        return service().set_expiry(client_id, _expiry(data)).to_dict()

    @route("/clients/<client_id>/enable", ["POST"])
    def enable(client_id: str) -> Any:
        _body()
        return service().set_enabled(client_id, True).to_dict()

    @route("/clients/<client_id>/disable", ["POST"])
    def disable(client_id: str) -> Any:
        _body()
        return service().set_enabled(client_id, False).to_dict()

    @route("/clients/<client_id>/roles", ["PATCH"])
    def set_roles(client_id: str) -> Any:
        data = _body("add", "remove")
        return (
            service().set_roles(client_id, add=_roles_list(data, "add"), remove=_roles_list(data, "remove")).to_dict()
        )

    @route("/clients/<client_id>/plan", ["PUT"])
    def set_plan(client_id: str) -> Any:
        data = _body("plan")
        if "plan" not in data:
            raise _Refused(400, "give plan (a configured plan's name, or null: the default plan applies)")
        return service().set_plan(client_id, _typed(data, "plan", str)).to_dict()

    @route("/clients/<client_id>/usage", ["GET"])
    def usage(client_id: str) -> Any:
        _query()
        return service().usage(client_id)

    @route("/plans", ["GET"])
    def plans() -> Any:
        _query()
        return service().plans()

    @route("/audit", ["GET"])
    def audit() -> Any:
        params = _query("since")
        since = _date(params, "since")
        return [e.to_dict() for e in service().audit(since=since)]

    @route("/clients/<client_id>/audit", ["GET"])
    def client_audit(client_id: str) -> Any:
        params = _query("since")
        return [e.to_dict() for e in service().audit(client_id, since=_date(params, "since"))]

    if exempt:
        ext.exempt(bp)
    bp.record_once(lambda state: _check_registered(state.app, ext))
    return bp


def _check_registered(app: Any, ext: ClientAuth) -> None:
    if "clientauth" not in app.extensions or app.extensions["clientauth"].extension is not ext:
        raise RuntimeError("the admin API blueprint belongs to another ClientAuth: register it on that one's app")


# -- its OpenAPI document -------------------------------------------------------------------
_STRING = {"type": "string"}
_DATE = {"type": ["string", "null"], "format": "date-time"}
_ROLES = {"type": "array", "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,64}$"}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "API Connect's error shape, plus a stable code.",
        "properties": {
            "httpCode": _STRING,
            "httpMessage": _STRING,
            "moreInformation": _STRING,
            "code": _STRING,
        },
        "required": ["httpCode", "httpMessage", "moreInformation"],
    },
    "Credential": {
        "type": "object",
        "properties": {
            "client_id": _STRING,
            "label": _STRING,
            "created_at": {"type": "string", "format": "date-time"},
            "expires_at": _DATE,
            "last_used_at": _DATE,
            "enabled": {"type": "boolean"},
            "has_secret": {"type": "boolean"},
            "previous_secret_until": _DATE,
        },
    },
    "Client": {
        "type": "object",
        "description": "A client seen through one of its client IDs (the shape of `flask clients show --json`).",
        "properties": {
            "client_id": _STRING,
            "name": _STRING,
            "description": _STRING,
            "enabled": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "has_secret": {"type": "boolean"},
            "roles": _ROLES,
            "label": _STRING,
            "expires_at": _DATE,
            "last_used_at": _DATE,
            "previous_secret_until": _DATE,
            "plan": {"type": ["string", "null"]},
            "credentials": {"type": "array", "items": _ref("Credential")},
        },
    },
    "Created": {
        "description": "The client, and the new secret shown this once (null: an ID-only credential); "
        "after reset-client-id, previous_client_id instead.",
        "allOf": [
            _ref("Client"),
            {
                "type": "object",
                "properties": {"client_secret": {"type": ["string", "null"]}, "previous_client_id": _STRING},
            },
        ],
    },
    "ClientPage": {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": _ref("Client")},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    },
    "AuditEntry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "action": _STRING,
            "client_id": {"type": ["string", "null"]},
            "name": _STRING,
            "actor": {"type": ["string", "null"]},
            "detail": {"type": "object"},
        },
    },
}

_DURATION = {"type": "string", "description": "a whole number and a unit: 45s, 30m, 24h, 90d or 2w"}
_BODIES: dict[str, dict[str, Any]] = {
    "create": {
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 2000},
            "roles": _ROLES,
            "label": {"type": "string", "maxLength": 200},
            "expires_at": {"type": "string", "format": "date-time"},
            "ttl": _DURATION,
            "plan": {"type": "string"},
            "with_secret": {"type": "boolean", "default": True},
        },
        "required": ["name"],
    },
    "credential": {
        "properties": {
            "label": {"type": "string", "maxLength": 200},
            "expires_at": {"type": "string", "format": "date-time"},
            "ttl": _DURATION,
            "with_secret": {"type": "boolean", "default": True},
        }
    },
    "grace": {"properties": {"grace": _DURATION}},
    "secret": {"properties": {"secret": {"type": "string"}}, "required": ["secret"]},
    "expiry": {"properties": {"expires_at": {"type": ["string", "null"], "format": "date-time"}, "ttl": _DURATION}},
    "roles": {"properties": {"add": _ROLES, "remove": _ROLES}},
    "plan": {"properties": {"plan": {"type": ["string", "null"]}}, "required": ["plan"]},
    "empty": {"properties": {}},
}

#: (method, path, operationId, summary, body, success status, response schema, query parameters)
_OPERATIONS: list[tuple[str, str, str, str, str | None, str, Any, list[str]]] = [
    ("get", "/openapi.json", "getOpenAPI", "This document", None, "200", {"type": "object"}, []),
    (
        "get",
        "/clients",
        "listClients",
        "One page of the clients (filter by name or client ID substring, and status)",
        None,
        "200",
        _ref("ClientPage"),
        ["search", "status", "page", "per_page"],
    ),
    (
        "post",
        "/clients",
        "createClient",
        "Register a client; its secret is shown once",
        "create",
        "201",
        _ref("Created"),
        [],
    ),
    (
        "get",
        "/clients/{client_id}",
        "getClient",
        "One client with all of its credentials",
        None,
        "200",
        _ref("Client"),
        [],
    ),
    (
        "delete",
        "/clients/{client_id}",
        "deleteClient",
        "Delete the client with all of its credentials",
        None,
        "200",
        {"type": "object", "properties": {"client_id": _STRING, "deleted": {"type": "boolean"}}},
        [],
    ),
    (
        "get",
        "/clients/{client_id}/credentials",
        "listCredentials",
        "Every credential of the client",
        None,
        "200",
        {"type": "array", "items": _ref("Credential")},
        [],
    ),
    (
        "post",
        "/clients/{client_id}/credentials",
        "addCredential",
        "Another client ID and secret for the client (at most CLIENTAUTH_MAX_CREDENTIALS)",
        "credential",
        "201",
        _ref("Created"),
        [],
    ),
    (
        "delete",
        "/credentials/{client_id}",
        "revokeCredential",
        "Delete one credential (not the client's last)",
        None,
        "200",
        {"type": "object", "properties": {"client_id": _STRING, "revoked": {"type": "boolean"}}},
        [],
    ),
    (
        "post",
        "/clients/{client_id}/reset-secret",
        "resetSecret",
        "A new generated secret, shown once; the old one works on for the grace period",
        "grace",
        "200",
        _ref("Created"),
        [],
    ),
    ("put", "/clients/{client_id}/secret", "setSecret", "Set a chosen secret", "secret", "200", _ref("Client"), []),
    (
        "post",
        "/clients/{client_id}/verify-secret",
        "verifySecret",
        "Whether a secret is the credential's (nothing is stored or audited)",
        "secret",
        "200",
        {"type": "object", "properties": {"client_id": _STRING, "valid": {"type": "boolean"}}},
        [],
    ),
    (
        "post",
        "/clients/{client_id}/reset-client-id",
        "resetClientId",
        "A new client ID for the credential; the secret is kept",
        "empty",
        "200",
        _ref("Created"),
        [],
    ),
    (
        "put",
        "/clients/{client_id}/expiry",
        "setExpiry",
        "When the credential stops working (null: never)",
        "expiry",
        "200",
        _ref("Client"),
        [],
    ),
    (
        "post",
        "/clients/{client_id}/enable",
        "enableClient",
        "Accept the client's requests",
        "empty",
        "200",
        _ref("Client"),
        [],
    ),
    (
        "post",
        "/clients/{client_id}/disable",
        "disableClient",
        "Refuse the client's requests (403)",
        "empty",
        "200",
        _ref("Client"),
        [],
    ),
    ("patch", "/clients/{client_id}/roles", "setRoles", "Add and remove roles", "roles", "200", _ref("Client"), []),
    (
        "get",
        "/audit",
        "listAudit",
        "The audit log of every client the user may manage, oldest first",
        None,
        "200",
        {"type": "array", "items": _ref("AuditEntry")},
        ["since"],
    ),
    (
        "get",
        "/clients/{client_id}/audit",
        "clientAudit",
        "One client's audit log, oldest first",
        None,
        "200",
        {"type": "array", "items": _ref("AuditEntry")},
        ["since"],
    ),
]

_OPERATIONS += [
    (
        "put",
        "/clients/{client_id}/plan",
        "setPlan",
        "Put the client on a configured plan (null: the default plan applies)",
        "plan",
        "200",
        _ref("Client"),
        [],
    ),
    (
        "get",
        "/plans",
        "listPlans",
        "The configured plans, with how many of the user's clients are on each",
        None,
        "200",
        {"type": "array", "items": {"type": "object"}},
        [],
    ),
]

_OPERATIONS.append(
    (
        "get",
        "/clients/{client_id}/usage",
        "clientUsage",
        "For each limit of the client's plan: the limit, how much was used, what remains, when it resets",
        None,
        "200",
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "limit": _STRING,
                    "scope": _STRING,
                    "operation": {"type": ["string", "null"]},
                    "used": {"type": "integer"},
                    "remaining": {"type": "integer"},
                    "reset": {"type": ["integer", "null"]},
                    "reset_at": _DATE,
                },
            },
        },
        [],
    )
)

_QUERY: dict[str, dict[str, Any]] = {
    "search": {"type": "string", "maxLength": 200},
    "status": {"type": "string", "enum": ["enabled", "disabled"]},
    "page": {"type": "integer", "minimum": 1, "default": 1},
    "per_page": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    "since": {"type": "string", "format": "date-time"},
}


def admin_api_document(
    url_prefix: str = "",
    *,
    security_schemes: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    title: str = "Flask-ClientAuth admin API",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin API mounted at ``url_prefix`` (paths include it).

    Without ``security`` it describes no security (the app's login guards the API). To protect the
    API with Flask-ClientAuth itself, pass the API-key schemes and a requirement, e.g.
    ``security=[{"clientId": ["clientauth-admin"], "clientSecret": []}]``, and use the document
    as (or merge it into) ``CLIENTAUTH_SPEC``.
    """
    prefix = url_prefix.rstrip("/")
    errors = {
        status: {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
        for status, text in (
            ("400", "Bad input (nothing changed)"),
            ("404", "No such client, or not one the user may manage"),
            ("409", "Refused: the last credential, or the maximum of credentials"),
            ("415", "A write without Content-Type: application/json"),
        )
    }
    paths: dict[str, Any] = {}
    for method, path, operation_id, summary, body, status, schema, query in _OPERATIONS:
        operation: dict[str, Any] = {
            "operationId": operation_id,
            "summary": summary,
            "responses": {
                status: {"description": summary, "content": {"application/json": {"schema": schema}}},
                **{k: v for k, v in errors.items() if k != "409" or method != "get"},
            },
        }
        parameters = [
            {"name": "client_id", "in": "path", "required": True, "schema": {"type": "string"}}
            for _ in range("{client_id}" in path)
        ] + [{"name": name, "in": "query", "required": False, "schema": _QUERY[name]} for name in query]
        if parameters:
            operation["parameters"] = parameters
        if body is not None:
            schema_of_body = {"type": "object", "additionalProperties": False, **_BODIES[body]}
            operation["requestBody"] = {
                "required": body not in ("empty", "grace", "credential", "roles"),
                "content": {"application/json": {"schema": schema_of_body}},
            }
        paths.setdefault(prefix + path, {})[method] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1",
            "description": "Manage the clients of Flask-ClientAuth: the JSON shapes of `flask clients ... --json`.",
        },
        "paths": paths,
        "components": {"schemas": dict(_SCHEMAS)},
    }
    if security_schemes:
        document["components"]["securitySchemes"] = security_schemes
    if security is not None:
        document["security"] = security
    return document
