"""Keep secrets (the API key, warehouse and state passwords) out of log lines, exception text and reprs.

It imports nothing from the package, so every stage, the warehouse first, can register its secrets."""

from __future__ import annotations

import hashlib
import logging
import re
import threading

REDACTED = "[redacted]"

# Loggers that may see request details: ours, and httpx/httpcore's debug output.
LOGGER_NAMES: tuple[str, ...] = (
    "userflow_assets.client",
    "userflow_assets.warehouse",
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")
_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(secret: str) -> None:
    """Remember a secret so `redact` and the log filter hide it from now on."""
    if not secret:
        return
    with _lock:
        _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret and any bearer token replaced."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


def fingerprint(secret: str) -> str:
    """A short, non-reversible name for a key, safe to show and to use as a registry key."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:12]


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback text with secrets redacted."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not drop the line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redacting_filter(
    extra: logging.Logger | logging.Handler | None = None,
) -> None:
    """Attach the filter to the client's and httpx's loggers (once) and to `extra`."""
    global _installed
    with _lock:
        first = not _installed
        _installed = True
    if first:
        for name in LOGGER_NAMES:
            logging.getLogger(name).addFilter(RedactingFilter())
    if extra is not None and not any(isinstance(f, RedactingFilter) for f in extra.filters):
        extra.addFilter(RedactingFilter())
