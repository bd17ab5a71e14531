"""The configuration keys: their defaults, and the checks ``init_app`` runs on them.

One declaration (:data:`DEFAULTS` plus a reader per key) feeds the defaults, the validation, the
typed :class:`Settings` the extension reads, and the docs' tables (``tests/test_docs.py`` compares
them). A bad value raises
:class:`ConfigurationError` naming the key; an unknown ``CLIENTAUTH_*`` key is logged.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import ClientAuthError

if TYPE_CHECKING:
    from limits import RateLimitItem

    from .plans import Plan

logger = logging.getLogger("flask_clientauth")

#: Every configuration key with its default (documented in the README and docs/config.rst).
DEFAULTS: dict[str, Any] = {
    "CLIENTAUTH_SPEC": None,
    "CLIENTAUTH_BASE_PATH": None,
    "CLIENTAUTH_DATABASE_URI": None,
    "CLIENTAUTH_ENGINE_OPTIONS": {},
    "CLIENTAUTH_BCRYPT_ROUNDS": 12,
    "CLIENTAUTH_MIN_SECRET_LENGTH": 16,
    "CLIENTAUTH_SECRET_PREFIX": "fcsk_",
    "CLIENTAUTH_SECRET_PEPPER": None,
    "CLIENTAUTH_LAST_USED_INTERVAL": 60.0,
    "CLIENTAUTH_MAX_CREDENTIALS": 5,
    "CLIENTAUTH_ERROR_DETAIL": "default",
    "CLIENTAUTH_HIDE_CREDENTIALS": False,
    "CLIENTAUTH_STRICT_NAMES": False,
    "CLIENTAUTH_CORS_PREFLIGHT": "auto",
    "CLIENTAUTH_UNHANDLED_SCHEMES": "error",
    "CLIENTAUTH_CACHE_SIZE": 10_000,
    "CLIENTAUTH_CACHE_TTL": 300.0,
    "CLIENTAUTH_NEGATIVE_CACHE_SIZE": 10_000,
    "CLIENTAUTH_NEGATIVE_CACHE_TTL": 5.0,
    "CLIENTAUTH_REVOCATION_INTERVAL": 1.0,
    "CLIENTAUTH_RATELIMIT_ENABLED": True,
    "CLIENTAUTH_RATELIMIT_STORAGE_URI": "memory://",
    "CLIENTAUTH_RATELIMIT_STRATEGY": "fixed-window",
    "CLIENTAUTH_RATELIMIT_PER_CLIENT": "20/minute",
    "CLIENTAUTH_RATELIMIT_PER_ADDRESS": "60/minute",
    "CLIENTAUTH_PLANS": {},
    "CLIENTAUTH_DEFAULT_PLAN": None,
    "CLIENTAUTH_PRODUCT": None,
    "CLIENTAUTH_RATELIMIT_HEADERS": True,
    "CLIENTAUTH_PLAN_LIMITS_ON_ERROR": "closed",
    "CLIENTAUTH_METRICS": False,
    "CLIENTAUTH_METRICS_CLIENT_LABEL": False,
}

#: bcrypt's cost range (``bcrypt.gensalt`` refuses anything else, at the first hash).
BCRYPT_ROUNDS_RANGE = (4, 31)
#: bcrypt reads 72 bytes: a longer minimum would refuse every secret ``set-secret`` is given.
SECRET_LENGTH_RANGE = (1, 72)
RATELIMIT_STRATEGIES = ("fixed-window", "moving-window", "sliding-window-counter")


class ConfigurationError(ClientAuthError, RuntimeError):
    """A ``CLIENTAUTH_*`` value ``init_app`` cannot use; the message names the key, never a secret."""


def _shown(value: Any) -> str:
    """The value for an error message: numbers and short plain words; only the type of anything that
    could carry a password (a URI with credentials) or is long."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    if isinstance(value, str) and len(value) <= 40 and not any(c in value for c in ":@"):
        return repr(value)
    return f"a value of type {type(value).__name__}"


def integer(key: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """An ``int`` (or a string of one, as environment variables give) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigurationError(f"{key} must be an integer, not {type(value).__name__}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{key} must be an integer, not {_shown(value)}") from None
    if number < low or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigurationError(f"{key} must be {bounds}, not {number}")
    return number


def number(key: str, value: Any) -> float:
    """A finite number of seconds ``>= 0`` (``int``, ``float`` or a string of one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigurationError(f"{key} must be a number of seconds, not {type(value).__name__}")
    try:
        seconds = float(value)
    except ValueError:
        raise ConfigurationError(f"{key} must be a number of seconds, not {_shown(value)}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"{key} must be a finite number of seconds >= 0, not {_shown(value)}")
    return seconds


def flag(key: str, value: Any) -> bool:
    """``True`` / ``False`` (or ``1`` / ``0``): a string such as ``"false"`` would be true."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ConfigurationError(f"{key} must be True or False, not {_shown(value)}")


def choice(key: str, value: Any, options: tuple[str, ...]) -> str:
    if value in options:
        return str(value)
    allowed = ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}"
    raise ConfigurationError(f"{key} must be {allowed}, not {_shown(value)}")


def rate_limit(key: str, value: Any) -> str | None:
    """A limit in the `limits` notation (``"20/minute"``, ``"100 per hour"``); ``None`` or ``""``: none."""
    if value is None or value == "":
        return None
    from limits import parse

    if isinstance(value, str):
        try:
            parse(value)
        except ValueError:
            pass
        else:
            return value
    raise ConfigurationError(
        f"{key} must be a rate limit such as '20/minute' or '100 per hour' (or None for no limit), not {_shown(value)}"
    )


def storage_uri(key: str, value: Any) -> str:
    """A `limits` storage URI of a synchronous storage (``memory://``, ``redis://...``); only its scheme
    is ever shown, the rest may hold a password."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a string, not {type(value).__name__}")
    from limits import storage

    scheme, found, _rest = value.partition("://")
    known = sorted(s for s in getattr(storage, "SCHEMES", {}) if not s.startswith("async+"))
    if not found or (known and scheme not in known):
        shown = f"the scheme {scheme!r}" if found else "a value without '<scheme>://'"
        raise ConfigurationError(
            f"{key} must be a limits storage URI such as 'memory://' or 'redis://host:6379', not {shown}"
            f" (known schemes: {', '.join(known)})"
        )
    return value


def _mapping(key: str, value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise ConfigurationError(f"{key} must be a dict, not {type(value).__name__}")


def _as_is(key: str, value: Any) -> Any:
    return value


def _spec(key: str, value: Any) -> Any:
    if value is None:
        raise ConfigurationError(f"{key} must be set to an OpenAPI document (path, dict or callable).")
    return value


def base_path(key: str, value: Any) -> str:
    """The prefix the app is mounted under, as ``"/api"``; ``""`` for none (``None`` or ``""``)."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not value.startswith("/") or "//" in value or "{" in value:
        raise ConfigurationError(
            f"{key} must be a path starting with '/' (the prefix the app is mounted under), not {_shown(value)}"
        )
    return value.rstrip("/")


def _secret_prefix(key: str, value: Any) -> str:
    from .keys import PREFIX_PATTERN

    if not isinstance(value, str) or not PREFIX_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{key} must be a letter followed by up to 15 letters, digits or '_', not {_shown(value)}"
        )
    return value


#: A pepper shorter than this is no secret worth the name (HMAC keys: at least the hash's 256 bits).
PEPPER_MIN_BYTES = 32


def _pepper(key: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, (str, bytes)):
        raise ConfigurationError(f"{key} must be a string or bytes, not {type(value).__name__}")
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if len(raw) < PEPPER_MIN_BYTES:  # never shown: it is a secret
        raise ConfigurationError(f"{key} must be at least {PEPPER_MIN_BYTES} bytes long")
    return raw


_PLAN_KEYS = ("rate_limits", "burst_limits", "operations", "title", "description")


def _plan_limits(key: str, value: Any) -> tuple[RateLimitItem, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(f"{key} must be a list of limits such as ['5/minute', '1000/day']")
    from .plans import parse_limit

    items = []
    for text in value:
        try:
            items.append(parse_limit(text))
        except ValueError as exc:
            raise ConfigurationError(f"{key}: {exc}") from None
    return tuple(items)


def read_config_plans(key: str, value: Any) -> tuple[Plan, ...]:
    """``CLIENTAUTH_PLANS`` read into plans whose ``operations`` are still as written
    (``"GET /branches"`` or an operationId): :func:`.product.resolve_operations` maps them to labels."""
    from .plans import Plan, check_plan_name

    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{key} must be a dict of plan name -> {{'rate_limits': [...]}}, not {type(value).__name__}"
        )
    plans = []
    for name, body in value.items():
        try:
            check_plan_name(name)
        except ValueError as exc:
            raise ConfigurationError(f"{key}: {exc}") from None
        where = f"{key}[{name!r}]"
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigurationError(
                f"{where} must be a dict with 'rate_limits' (and 'operations'), not {type(body).__name__}"
            )
        unknown = sorted(str(k) for k in body if k not in _PLAN_KEYS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)} (known: {', '.join(_PLAN_KEYS)})"
            )
        operations = body.get("operations")
        if operations is not None:
            if isinstance(operations, str) or not isinstance(operations, (list, tuple, set, frozenset)):
                raise ConfigurationError(f"{where}['operations'] must be a list of 'METHOD /path' or operationIds")
            if not all(isinstance(op, str) and op.strip() for op in operations):
                raise ConfigurationError(f"{where}['operations'] must hold 'METHOD /path' strings or operationIds")
        for text_key in ("title", "description"):
            if not isinstance(body.get(text_key, ""), str):
                raise ConfigurationError(f"{where}[{text_key!r}] must be a string")
        plans.append(
            Plan(
                name=name,
                rate_limits=_plan_limits(f"{where}['rate_limits']", body.get("rate_limits", ())),
                burst_limits=_plan_limits(f"{where}['burst_limits']", body.get("burst_limits", ())),
                operations=None if operations is None else frozenset(op.strip() for op in operations),
                title=body.get("title", ""),
                description=body.get("description", ""),
            )
        )
    return tuple(plans)


def read_default_plan(key: str, value: Any) -> str | None:
    from .plans import check_plan_name

    if value is None or value == "":
        return None
    try:
        return check_plan_name(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}: {exc}") from None


def _path(key: str, value: Any) -> str | None:
    """A file path (relative ones are resolved as ``CLIENTAUTH_SPEC``'s), or ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be the path of a file (str), not {type(value).__name__}")
    return value


def _database_uri(key: str, value: Any) -> Any:
    from sqlalchemy.engine import URL

    if value is None or isinstance(value, (str, URL)):  # create_engine takes both
        return value
    raise ConfigurationError(f"{key} must be a database URL (str) or None, not {type(value).__name__}")


#: The reader of each key: ``reader(key, value) -> typed value``, or :class:`ConfigurationError`.
READERS: dict[str, Callable[[str, Any], Any]] = {
    "CLIENTAUTH_SPEC": _spec,
    "CLIENTAUTH_BASE_PATH": base_path,
    "CLIENTAUTH_DATABASE_URI": _database_uri,
    "CLIENTAUTH_ENGINE_OPTIONS": _mapping,
    "CLIENTAUTH_BCRYPT_ROUNDS": lambda k, v: integer(k, v, *BCRYPT_ROUNDS_RANGE),
    "CLIENTAUTH_MIN_SECRET_LENGTH": lambda k, v: integer(k, v, *SECRET_LENGTH_RANGE),
    "CLIENTAUTH_SECRET_PREFIX": _secret_prefix,
    "CLIENTAUTH_SECRET_PEPPER": _pepper,
    "CLIENTAUTH_LAST_USED_INTERVAL": number,
    "CLIENTAUTH_MAX_CREDENTIALS": lambda k, v: None if v is None else integer(k, v, 1),
    "CLIENTAUTH_ERROR_DETAIL": lambda k, v: choice(k, v, ("default", "gateway")),
    "CLIENTAUTH_HIDE_CREDENTIALS": flag,
    "CLIENTAUTH_STRICT_NAMES": flag,
    "CLIENTAUTH_CORS_PREFLIGHT": lambda k, v: choice(k, v, ("auto", "enforce", "allow")),
    "CLIENTAUTH_UNHANDLED_SCHEMES": lambda k, v: choice(k, v, ("error", "deny")),
    "CLIENTAUTH_CACHE_SIZE": integer,
    "CLIENTAUTH_CACHE_TTL": number,
    "CLIENTAUTH_NEGATIVE_CACHE_SIZE": integer,
    "CLIENTAUTH_NEGATIVE_CACHE_TTL": number,
    "CLIENTAUTH_REVOCATION_INTERVAL": number,
    "CLIENTAUTH_RATELIMIT_ENABLED": flag,
    "CLIENTAUTH_RATELIMIT_STORAGE_URI": storage_uri,
    "CLIENTAUTH_RATELIMIT_STRATEGY": lambda k, v: choice(k, v, RATELIMIT_STRATEGIES),
    "CLIENTAUTH_RATELIMIT_PER_CLIENT": rate_limit,
    "CLIENTAUTH_RATELIMIT_PER_ADDRESS": rate_limit,
    "CLIENTAUTH_PLANS": read_config_plans,
    "CLIENTAUTH_DEFAULT_PLAN": read_default_plan,
    "CLIENTAUTH_PRODUCT": _path,
    "CLIENTAUTH_RATELIMIT_HEADERS": flag,
    "CLIENTAUTH_PLAN_LIMITS_ON_ERROR": lambda k, v: choice(k, v, ("closed", "open")),
    "CLIENTAUTH_METRICS": flag,
    "CLIENTAUTH_METRICS_CLIENT_LABEL": flag,
}


def read_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every key's typed value (defaults filled in); raises :class:`ConfigurationError` on the first bad one.

    Also logs a WARNING for each unknown ``CLIENTAUTH_*`` key, with the closest known one.
    """
    warn_unknown(config)
    return {key: READERS.get(key, _as_is)(key, config.get(key, default)) for key, default in DEFAULTS.items()}


@dataclass(frozen=True)
class Settings:
    """The typed configuration of one app, read once by ``init_app``: one field per key of
    :data:`DEFAULTS`, named as the key without ``CLIENTAUTH_``, lower-case."""

    spec: Any
    base_path: str
    database_uri: Any
    engine_options: Mapping[str, Any]
    bcrypt_rounds: int
    min_secret_length: int
    secret_prefix: str
    secret_pepper: bytes | None = field(repr=False)
    last_used_interval: float
    max_credentials: int | None
    error_detail: Literal["default", "gateway"]
    hide_credentials: bool
    strict_names: bool
    cors_preflight: Literal["auto", "enforce", "allow"]
    unhandled_schemes: Literal["error", "deny"]
    cache_size: int
    cache_ttl: float
    negative_cache_size: int
    negative_cache_ttl: float
    revocation_interval: float
    ratelimit_enabled: bool
    ratelimit_storage_uri: str
    ratelimit_strategy: str
    ratelimit_per_client: str | None
    ratelimit_per_address: str | None
    #: ``CLIENTAUTH_PLANS`` read (operations as written; resolved when the document is loaded).
    plans: tuple[Plan, ...]
    default_plan: str | None
    product: str | None
    ratelimit_headers: bool
    plan_limits_on_error: Literal["closed", "open"]
    metrics: bool
    metrics_client_label: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Read ``config`` (defaults filled in): :class:`ConfigurationError` naming the first bad key."""
        return cls(**{field_name(key): value for key, value in read_settings(config).items()})


def field_name(key: str) -> str:
    """The :class:`Settings` field of a configuration key: ``CLIENTAUTH_CACHE_TTL`` -> ``cache_ttl``."""
    return key.removeprefix("CLIENTAUTH_").lower()


def warn_unknown(config: Mapping[str, Any]) -> None:
    """A misspelt key would silently leave its default in force: say so, once per ``init_app``."""
    for key in sorted(k for k in config if isinstance(k, str) and k.startswith("CLIENTAUTH_")):
        if key in DEFAULTS:
            continue
        # compared without the prefix every key shares, or any key would look close to any other
        suffixes = {k.removeprefix("CLIENTAUTH_"): k for k in DEFAULTS}
        close = difflib.get_close_matches(key.removeprefix("CLIENTAUTH_"), suffixes, n=1)
        hint = f"; did you mean {suffixes[close[0]]}?" if close else ""
        logger.warning("clientauth: unknown configuration key %s is ignored%s", key, hint)
