"""Client IDs and secrets: generating them, recognising generated secrets, hashing and checking.

Two kinds of secret, two hashes (docs, "Credentials and rotation"):

- **generated** secrets (``create``, ``reset-secret``, ``credentials add``) carry 256 random bits,
  so a fast hash is as safe as a slow one (NIST SP 800-63B): SHA-256, or HMAC-SHA-256 under
  ``CLIENTAUTH_SECRET_PEPPER``, stored as ``sha256$<hex>`` / ``hmac-sha256$<hex>``. They have a
  recognisable shape, ``PREFIX + 43 base62 characters + a 6-character CRC32 checksum``, so secret
  scanners find leaked ones and a mistyped one is refused before any lookup.
- **chosen** secrets (``set-secret``) may be short: bcrypt at ``CLIENTAUTH_BCRYPT_ROUNDS``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib

import bcrypt

from .errors import ClientAuthError

#: bcrypt only reads the first 72 bytes; longer secrets are refused, never truncated.
BCRYPT_MAX_BYTES = 72
_SECRET_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation) - {","}

#: What generated secrets start with unless ``CLIENTAUTH_SECRET_PREFIX`` says otherwise.
DEFAULT_SECRET_PREFIX = "fcsk_"
#: A prefix: a letter, then letters, digits or ``_``; at most 16 characters in all.
PREFIX_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
#: 43 base62 characters hold 256 random bits (62**43 > 2**256).
RANDOM_LENGTH = 43
CHECKSUM_LENGTH = 6
#: The stored forms of fast hashes; bcrypt's start with ``$2``.
SHA256 = "sha256$"
HMAC_SHA256 = "hmac-sha256$"


class PepperMissing(ClientAuthError):
    """A stored hash was made with ``CLIENTAUTH_SECRET_PEPPER``, and the app has none configured."""


def generate_client_id() -> str:
    """A new public client identifier: 128 random bits as 32 hex digits, like API Connect's."""
    return secrets.token_hex(16)


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def generate_secret(prefix: str = DEFAULT_SECRET_PREFIX) -> str:
    """A new client secret: ``prefix``, 256 random bits in base62, and a checksum of them."""
    random_part = "".join(secrets.choice(_BASE62) for _ in range(RANDOM_LENGTH))
    return prefix + random_part + _checksum(random_part)


def secret_pattern(prefix: str = DEFAULT_SECRET_PREFIX) -> str:
    """The regular expression of generated secrets, for gitleaks, trufflehog or GitHub's custom patterns."""
    return rf"\b{re.escape(prefix)}[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}\b"


def well_formed(secret: str, prefix: str = DEFAULT_SECRET_PREFIX) -> bool:
    """Whether ``secret`` is a generated secret as issued: the prefix, the length, the checksum."""
    if len(secret) != len(prefix) + RANDOM_LENGTH + CHECKSUM_LENGTH or not secret.startswith(prefix):
        return False
    body = secret[len(prefix) :]
    if not (body.isascii() and body.isalnum()):
        return False
    return _checksum(body[:RANDOM_LENGTH]) == body[RANDOM_LENGTH:]


def find_secrets(text: str, prefix: str = DEFAULT_SECRET_PREFIX) -> list[str]:
    """Every well-formed generated secret in ``text``, once each, in order of appearance."""
    found = dict.fromkeys(m.group(0) for m in re.finditer(secret_pattern(prefix), text))
    return [secret for secret in found if well_formed(secret, prefix)]


def plausible_secret(secret: str) -> bool:
    """Whether ``secret`` could be a stored secret: at most 72 printable ASCII characters, without
    spaces or commas (what generated and ``set-secret`` secrets are). Anything else is refused
    without hashing; the length is tested first, so a huge value costs nothing.
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
    """bcrypt, for operator-chosen secrets."""
    return bcrypt.hashpw(secret.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def fast_hash(secret: str, pepper: bytes | None) -> str:
    """The stored form of a generated secret: HMAC-SHA-256 under ``pepper``, else SHA-256."""
    raw = secret.encode("utf-8", "surrogateescape")
    if pepper:
        return HMAC_SHA256 + hmac.new(pepper, raw, hashlib.sha256).hexdigest()
    return SHA256 + hashlib.sha256(raw).hexdigest()


def is_slow(stored_hash: str) -> bool:
    """Whether checking against ``stored_hash`` runs bcrypt (an operator-chosen or pre-1.0 secret)."""
    return not stored_hash.startswith((SHA256, HMAC_SHA256))


def secret_matches(secret: str, stored_hash: str, pepper: bytes | None = None) -> bool:
    """Constant-time check against either kind of hash; oversized secrets and corrupt hashes never match.

    Raises :class:`PepperMissing` for an HMAC hash when ``pepper`` is ``None``.
    """
    if stored_hash.startswith(HMAC_SHA256):
        if not pepper:
            raise PepperMissing("a stored secret hash needs CLIENTAUTH_SECRET_PEPPER, which is not set")
        return hmac.compare_digest(fast_hash(secret, pepper), stored_hash)
    if stored_hash.startswith(SHA256):
        return hmac.compare_digest(fast_hash(secret, None), stored_hash)
    raw = secret.encode("utf-8", "surrogateescape")
    if len(raw) > BCRYPT_MAX_BYTES:
        return False
    try:
        return bcrypt.checkpw(raw, stored_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
