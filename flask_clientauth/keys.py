"""Generating client IDs and secrets, and hashing / checking secrets with bcrypt."""

from __future__ import annotations

import secrets
import string

import bcrypt

#: bcrypt only reads the first 72 bytes; longer secrets are refused, never truncated.
BCRYPT_MAX_BYTES = 72
_SECRET_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation) - {","}


def generate_client_id() -> str:
    """A new public client identifier: 128 random bits as 32 hex digits, like API Connect's."""
    return secrets.token_hex(16)


def generate_secret() -> str:
    """A new client secret: 256 random bits, URL-safe ASCII (43 characters)."""
    return secrets.token_urlsafe(32)


def plausible_secret(secret: str) -> bool:
    """Whether ``secret`` could be a stored secret: at most 72 printable ASCII characters, without
    spaces or commas (what generated and ``set-secret`` secrets are). Anything else is refused
    without running bcrypt; the length is tested first, so a huge value costs nothing.
    """
    return len(secret) <= BCRYPT_MAX_BYTES and _SECRET_CHARS.issuperset(secret)


def check_secret_format(secret: str, *, min_length: int) -> str | None:
    """Why an operator-chosen secret is unusable, or ``None`` when it is fine."""
    if len(secret) < min_length:
        return f"the secret must be at least {min_length} characters long"
    if len(secret.encode("utf-8")) > BCRYPT_MAX_BYTES:
        return f"the secret must be at most {BCRYPT_MAX_BYTES} bytes long"
    if not set(secret) <= _SECRET_CHARS:
        return "the secret may contain only printable ASCII characters, without spaces or commas"
    return None


def hash_secret(secret: str, rounds: int) -> str:
    return bcrypt.hashpw(secret.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time bcrypt check; oversized secrets and corrupt hashes never match."""
    raw = secret.encode("utf-8", "surrogateescape")
    if len(raw) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, stored_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
