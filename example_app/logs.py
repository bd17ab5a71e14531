"""Keeping client secrets out of the example's access logs.

With the OpenAPI 3.x variant the secret travels in the query string, and every access log
writes the request line. :class:`RedactSecrets` (a :class:`logging.Filter` on the ``werkzeug``
logger) and :class:`GunicornLogger` (gunicorn's ``logger_class``) replace the value of every
secret query parameter with ``[REDACTED]`` before a line is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

REDACTED = "[REDACTED]"

#: Always redacted, whatever the spec says: API Connect's query name for the client secret.
DEFAULT_NAMES = ("client_secret",)


class RedactSecrets(logging.Filter):
    """Rewrite log records so that ``NAME=value`` becomes ``NAME=[REDACTED]`` for every secret name."""

    def __init__(self, names: Iterable[str] = DEFAULT_NAMES) -> None:
        super().__init__()
        self.names: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(names)

    def add(self, names: Iterable[str]) -> None:
        """Also redact these query parameter names."""
        self.names.update(n for n in names if n)
        spellings = sorted({s for n in self.names for s in (n, quote(n, safe=""))}, key=len, reverse=True)
        alternatives = "|".join(re.escape(s) for s in spellings)
        # The name must start a parameter: not preceded by a character a name could contain.
        self._pattern = re.compile(rf"(?<![\w.%-])((?:{alternatives})=)[^&;\s\"']*", re.IGNORECASE)

    def redact(self, text: str) -> str:
        assert self._pattern is not None
        return self._pattern.sub(lambda m: m.group(1) + REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: let logging report it as usual
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


#: The filter installed on the ``werkzeug`` logger (shared by every app of the process).
werkzeug_filter = RedactSecrets()


def install(names: Iterable[str] = ()) -> RedactSecrets:
    """Redact ``names`` (and ``client_secret``) in the werkzeug development server's log lines."""
    werkzeug_filter.add(names)
    logger = logging.getLogger("werkzeug")
    if werkzeug_filter not in logger.filters:
        logger.addFilter(werkzeug_filter)
    return werkzeug_filter


def redact_atoms(atoms: dict[str, Any], redactor: RedactSecrets = werkzeug_filter) -> dict[str, Any]:
    """Gunicorn's access-log atoms with secrets removed.

    Request-line atoms (``r``, ``q``, ``{raw_uri}e``, ...) get their secret query values
    redacted; header and environ atoms whose name mentions a secret
    (``{x-ibm-client-secret}i``, ``{http_x_ibm_client_secret}e``) are dropped entirely.
    """
    clean: dict[str, Any] = {}
    for key, value in atoms.items():
        if "secret" in key.lower():
            clean[key] = REDACTED
        elif isinstance(value, str):
            clean[key] = redactor.redact(value)
        else:
            clean[key] = value
    return clean


try:  # gunicorn is optional: it is only needed to serve the example with gunicorn
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # pragma: no cover
    pass
else:

    class GunicornLogger(_GunicornLogger):  # type: ignore[misc]
        """``logger_class`` for gunicorn: the access log never shows a client secret."""

        def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
            return redact_atoms(super().atoms(resp, req, environ, request_time))
