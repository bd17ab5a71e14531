"""``init_app`` checks every ``CLIENTAUTH_*`` value and names the key; unknown keys are logged."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from flask_clientauth import ConfigurationError
from flask_clientauth.settings import DEFAULTS, READERS

from conftest import AppFactory


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("CLIENTAUTH_BCRYPT_ROUNDS", 3, "CLIENTAUTH_BCRYPT_ROUNDS must be between 4 and 31, not 3"),
        ("CLIENTAUTH_BCRYPT_ROUNDS", 32, "CLIENTAUTH_BCRYPT_ROUNDS must be between 4 and 31, not 32"),
        ("CLIENTAUTH_BCRYPT_ROUNDS", "twelve", "CLIENTAUTH_BCRYPT_ROUNDS must be an integer, not 'twelve'"),
        ("CLIENTAUTH_BCRYPT_ROUNDS", 12.5, "CLIENTAUTH_BCRYPT_ROUNDS must be an integer, not float"),
        ("CLIENTAUTH_MIN_SECRET_LENGTH", 100, "CLIENTAUTH_MIN_SECRET_LENGTH must be between 1 and 72, not 100"),
        ("CLIENTAUTH_CACHE_SIZE", -1, "CLIENTAUTH_CACHE_SIZE must be at least 0, not -1"),
        ("CLIENTAUTH_CACHE_SIZE", True, "CLIENTAUTH_CACHE_SIZE must be an integer, not bool"),
        ("CLIENTAUTH_NEGATIVE_CACHE_SIZE", None, "CLIENTAUTH_NEGATIVE_CACHE_SIZE must be an integer, not NoneType"),
        ("CLIENTAUTH_CACHE_TTL", "5 minutes", "CLIENTAUTH_CACHE_TTL must be a number of seconds, not '5 minutes'"),
        ("CLIENTAUTH_NEGATIVE_CACHE_TTL", -1, "CLIENTAUTH_NEGATIVE_CACHE_TTL must be a finite number of seconds >= 0"),
        ("CLIENTAUTH_REVOCATION_INTERVAL", float("nan"), "CLIENTAUTH_REVOCATION_INTERVAL must be a finite number"),
        (
            "CLIENTAUTH_REVOCATION_INTERVAL",
            False,
            "CLIENTAUTH_REVOCATION_INTERVAL must be a number of seconds, not bool",
        ),
        ("CLIENTAUTH_RATELIMIT_ENABLED", "false", "CLIENTAUTH_RATELIMIT_ENABLED must be True or False, not 'false'"),
        ("CLIENTAUTH_HIDE_CREDENTIALS", "yes", "CLIENTAUTH_HIDE_CREDENTIALS must be True or False"),
        ("CLIENTAUTH_RATELIMIT_PER_CLIENT", "20 a minute", "CLIENTAUTH_RATELIMIT_PER_CLIENT must be a rate limit"),
        ("CLIENTAUTH_RATELIMIT_PER_ADDRESS", 60, "CLIENTAUTH_RATELIMIT_PER_ADDRESS must be a rate limit"),
        (
            "CLIENTAUTH_RATELIMIT_STRATEGY",
            "token-bucket",
            "CLIENTAUTH_RATELIMIT_STRATEGY must be 'fixed-window', 'moving-window' or 'sliding-window-counter'",
        ),
        ("CLIENTAUTH_ERROR_DETAIL", "verbose", "CLIENTAUTH_ERROR_DETAIL must be 'default' or 'gateway', not 'verbose'"),
        ("CLIENTAUTH_ENGINE_OPTIONS", "pool_size=5", "CLIENTAUTH_ENGINE_OPTIONS must be a dict, not str"),
        ("CLIENTAUTH_DATABASE_URI", 5432, "CLIENTAUTH_DATABASE_URI must be a database URL (str) or None, not int"),
        ("CLIENTAUTH_RATELIMIT_STORAGE_URI", None, "CLIENTAUTH_RATELIMIT_STORAGE_URI must be a string, not NoneType"),
        (
            "CLIENTAUTH_RATELIMIT_STORAGE_URI",
            "localhost:6379",
            "CLIENTAUTH_RATELIMIT_STORAGE_URI must be a limits storage URI such as 'memory://' or "
            "'redis://host:6379', not a value without '<scheme>://'",
        ),
        (
            "CLIENTAUTH_RATELIMIT_STORAGE_URI",
            "async+redis://:pw@localhost:6379",
            "CLIENTAUTH_RATELIMIT_STORAGE_URI must be a limits storage URI such as 'memory://' or "
            "'redis://host:6379', not the scheme 'async+redis'",
        ),
    ],
)
def test_a_bad_value_fails_init_app_naming_the_key(make_app: AppFactory, key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_app(**{key: value})
    assert str(info.value).startswith(expected)


def test_the_configuration_error_is_a_runtime_error() -> None:
    """Code that caught the RuntimeError ``init_app`` raised for the enum keys keeps working."""
    assert issubclass(ConfigurationError, RuntimeError)


@pytest.mark.parametrize(
    "config",
    [
        {"CLIENTAUTH_BCRYPT_ROUNDS": "4"},  # environment variables arrive as text
        {"CLIENTAUTH_BCRYPT_ROUNDS": 31, "CLIENTAUTH_CACHE_SIZE": 0, "CLIENTAUTH_NEGATIVE_CACHE_SIZE": "0"},
        {"CLIENTAUTH_CACHE_TTL": 0, "CLIENTAUTH_NEGATIVE_CACHE_TTL": "2.5", "CLIENTAUTH_REVOCATION_INTERVAL": 0.25},
        {"CLIENTAUTH_RATELIMIT_PER_CLIENT": None, "CLIENTAUTH_RATELIMIT_PER_ADDRESS": ""},
        {"CLIENTAUTH_RATELIMIT_PER_CLIENT": "100 per hour", "CLIENTAUTH_RATELIMIT_STRATEGY": "moving-window"},
        {"CLIENTAUTH_RATELIMIT_ENABLED": 0, "CLIENTAUTH_HIDE_CREDENTIALS": 1},
    ],
)
def test_good_values_are_accepted(make_app: AppFactory, config: dict[str, Any]) -> None:
    app = make_app(**config)
    assert app.test_client().get("/api/status").status_code == 200


def test_a_sqlalchemy_url_object_is_a_database_uri(make_app: AppFactory, sqlite_url: str) -> None:
    app = make_app(CLIENTAUTH_DATABASE_URI=make_url(sqlite_url))
    assert app.test_client().get("/api/branches").status_code == 401


def test_a_value_that_may_hold_a_password_is_never_shown(make_app: AppFactory) -> None:
    """A database URL pasted into the wrong key: the error names the key and the type, not the URL."""
    url = "postgresql://app:hunter2-very-secret@db.internal/clients"
    for key in (
        "CLIENTAUTH_CACHE_TTL",
        "CLIENTAUTH_BCRYPT_ROUNDS",
        "CLIENTAUTH_RATELIMIT_PER_CLIENT",
        "CLIENTAUTH_RATELIMIT_STORAGE_URI",
    ):
        with pytest.raises(ConfigurationError, match=key) as info:
            make_app(**{key: url})
        assert "hunter2" not in str(info.value) and "db.internal" not in str(info.value)
        assert "of type str" in str(info.value) or "the scheme 'postgresql'" in str(info.value)


def test_an_unknown_key_is_logged_with_the_closest_known_one(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    make_app(CLIENTAUTH_BCRYPT_ROUND=4, CLIENTAUTH_RATELIMIT_PER_IP="10/minute", CLIENTAUTH_XYZZY=1)
    warnings = [r for r in caplog.records if r.name == "flask_clientauth" and r.levelno == logging.WARNING]
    messages = [r.getMessage() for r in warnings]
    assert (
        "clientauth: unknown configuration key CLIENTAUTH_BCRYPT_ROUND is ignored; "
        "did you mean CLIENTAUTH_BCRYPT_ROUNDS?" in messages
    )
    assert any(m.startswith("clientauth: unknown configuration key CLIENTAUTH_RATELIMIT_PER_IP") for m in messages)
    assert "clientauth: unknown configuration key CLIENTAUTH_XYZZY is ignored" in messages


def test_known_keys_are_not_logged(make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_clientauth")
    make_app(**{k: v for k, v in DEFAULTS.items() if k not in ("CLIENTAUTH_SPEC", "CLIENTAUTH_DATABASE_URI")})
    assert not [r for r in caplog.records if "configuration key" in r.getMessage()]


def test_every_key_has_a_check() -> None:
    assert set(READERS) == set(DEFAULTS)


def test_a_database_driver_that_is_not_installed_names_the_key_and_the_extras(make_app: AppFactory) -> None:
    # "mysql://" means the MySQLdb driver, which the [mysql] extra does not install (pymysql is)
    with pytest.raises(ConfigurationError) as info:
        make_app(database_url="mysql://root:hunter2-password@127.0.0.1/x", create_tables=False)
    message = str(info.value)
    assert "CLIENTAUTH_DATABASE_URI" in message and "mysql+pymysql://" in message
    assert "hunter2" not in message


def test_a_url_as_the_spec_is_refused_without_showing_it(make_app: AppFactory) -> None:
    from flask_clientauth import SpecError

    with pytest.raises(SpecError) as info:
        make_app(spec="https://user:hunter2-password@example.com/openapi.yaml", create_tables=False)
    message = str(info.value)
    assert "URLs are not supported" in message and "hunter2" not in message
