"""Every failure the extension answers with, its status and its default text.

Responses have API Connect's shape::

    {"httpCode": "401", "httpMessage": "Unauthorized", "moreInformation": "Client ID not registered"}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from flask import Response, current_app

if TYPE_CHECKING:
    from flask.typing import ResponseReturnValue

    from .requirements import Policy

#: ``CLIENTAUTH_ERROR_DETAIL = "gateway"``: the DataPower API Gateway's one text for every 401.
GATEWAY_401_TEXT = "Invalid client id or secret."

REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests", 503: "Service Unavailable"}


@dataclass(frozen=True)
class Reason:
    """A kind of failure: a stable machine ``code``, an HTTP ``status`` and a default ``text``.

    ``rank`` orders failures of different alternatives: the most advanced attempt is reported.
    """

    code: str
    status: int
    text: str
    rank: int


CLIENT_ID_MISSING = Reason("client_id_missing", 401, "Client ID missing", 0)
WRONG_LOCATION = Reason("wrong_location", 401, "{credential} must be sent in {location}", 1)
CLIENT_SECRET_MISSING = Reason("client_secret_missing", 401, "Client secret missing", 2)
DUPLICATE = Reason("duplicate_credential", 401, "{credential} sent more than once", 3)
CONFLICT = Reason("conflicting_credentials", 401, "Credentials of more than one client sent", 3)
NOT_REGISTERED = Reason("client_id_not_registered", 401, "Client ID not registered", 4)
SECRET_INVALID = Reason("client_secret_invalid", 401, "Client secret invalid", 5)
SCHEME_REJECTED = Reason("credentials_rejected", 401, "Credentials rejected", 5)
DISABLED = Reason("client_disabled", 403, "Client disabled", 6)
EXPIRED = Reason("credential_expired", 401, "Client ID expired", 6)
#: A client that proved who it is (as far as the requirement asks) but lacks a role: as far as an
#: attempt gets, so it is reported over another alternative's missing or wrong credentials.
ROLE_MISSING = Reason("role_missing", 403, "Client lacks a required role", 6)
UNDOCUMENTED = Reason("operation_not_described", 403, "Operation not described by the API definition", 7)
SCHEME_UNSUPPORTED = Reason("scheme_not_supported", 403, "Security scheme not supported", 7)
THROTTLED = Reason("too_many_failures", 429, "Too many failed attempts; retry later", 8)
#: A client over a limit of its plan (API Connect's text); proof of identity came first, so it ranks high.
RATE_LIMITED = Reason("rate_limited", 429, "Rate Limit exceeded", 8)
#: An authenticated client whose plan does not include the operation (or names a plan no longer configured).
NOT_IN_PLAN = Reason("not_in_plan", 403, "Operation not included in the client's plan", 7)
STORE_UNAVAILABLE = Reason("store_unavailable", 503, "Client registry unavailable", 9)
CONFIG_ERROR = Reason("configuration_error", 503, "API security is misconfigured", 9)
#: The plan-limit counters cannot be reached and ``CLIENTAUTH_PLAN_LIMITS_ON_ERROR = "closed"``.
PLAN_LIMITS_UNAVAILABLE = Reason("plan_limits_unavailable", 503, "Rate limit service unavailable", 9)


class ClientAuthError(Exception):
    """The root of every error the package raises: ``except ClientAuthError`` catches them all."""


@dataclass
class AuthFailure(ClientAuthError):
    """A refused request: raised inside the check, turned into a response by the error handler."""

    reason: Reason
    detail: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int:
        return self.reason.status

    @property
    def code(self) -> str:
        return self.reason.code

    @property
    def message(self) -> str:
        return self.reason.text.format(**self.detail) if self.detail else self.reason.text

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def error_body(status: int, message: str) -> dict[str, str]:
    return {"httpCode": str(status), "httpMessage": REASONS.get(status, "Error"), "moreInformation": message}


def default_response(failure: AuthFailure, *, detail_mode: str = "default") -> Response:
    """The JSON response for a failure; ``detail_mode="gateway"`` gives every 401 one text."""
    message = failure.message
    if detail_mode == "gateway" and failure.status == 401:
        message = GATEWAY_401_TEXT
    body = json.dumps(error_body(failure.status, message))
    return Response(body, status=failure.status, mimetype="application/json", headers=failure.headers)


def respond(
    failure: AuthFailure,
    policy: Policy | None = None,
    *,
    handler: Callable[[AuthFailure], ResponseReturnValue] | None = None,
    detail_mode: str = "default",
) -> Response:
    """The response for a refusal: the app's ``@auth.error_handler``, or the JSON body.

    A 401 gets the route's ``WWW-Authenticate`` challenge (RFC 9110 requires one) unless the
    handler set its own.
    """
    if handler is not None:
        response = current_app.make_response(handler(failure))
        for name, value in failure.headers.items():  # Retry-After, X-RateLimit-*: unless the handler set its own
            response.headers.setdefault(name, value)
    else:
        response = default_response(failure, detail_mode=detail_mode)
    if response.status_code == 401 and policy is not None and "WWW-Authenticate" not in response.headers:
        challenge = www_authenticate(policy)
        if challenge:
            response.headers["WWW-Authenticate"] = challenge
    return response


def www_authenticate(policy: Policy) -> str:
    """The ``WWW-Authenticate`` value of a 401 on a route: one ``ApiKey`` challenge per place a client
    ID is accepted, e.g. ``ApiKey in="header", name="X-IBM-Client-Id"``.

    No scheme is registered for API keys; this is the form ASP.NET Core's ApiKey handlers send,
    with OpenAPI's own words (``in``, ``name``). It depends only on the route, never on what
    failed, so ``CLIENTAUTH_ERROR_DETAIL = "gateway"`` 401s stay identical. Empty when no
    alternative takes an API key (the app's scheme handlers know their own challenge).
    """
    challenges: list[str] = []
    for requirement in policy.alternatives:
        scheme = requirement.client_id
        if scheme is None or scheme.location is None or scheme.param is None:
            continue
        # a quoted-string of printable ASCII: a query or cookie name is shown as it is sent, encoded
        name = quote(scheme.param, safe="!#$&'()*+,/:;=?@[]~^`{|}<>%")
        challenge = f'ApiKey in="{scheme.location}", name="{name}"'
        if challenge not in challenges:
            challenges.append(challenge)
    return ", ".join(challenges)
