"""Server logs without secrets: a credential or ticket in a query string is masked.

uvicorn logs each request's path with its query string, the access log for
HTTP and its error logger for WebSocket handshakes. Streams take a single-use
ticket there, and a client may still send a token the old way; neither may be
written to a log that many people read.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactQuerySecrets", "redact_server_logs"]

_SECRET_PARAM = re.compile(r"(?i)([?&](?:ticket|access_token|token|api_key)=)[^&\s\"]*")
_SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


class RedactQuerySecrets(logging.Filter):
    """Replaces the value of a secret-bearing query parameter with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_PARAM.sub(r"\1***", record.msg)
        return True


def redact_server_logs() -> None:
    """Mask query secrets in uvicorn's logs (once per process)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQuerySecrets) for f in logger.filters):
            logger.addFilter(RedactQuerySecrets())
