"""structlog set-up: readable in a terminal, JSON otherwise, secrets redacted.

Redaction runs on the rendered traceback too (``log.exception``): exception messages carry
URLs, form bodies and headers (an httpx or requests error names the URL it called).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "***"
_SECRET_KEYS = ("password", "secret", "token", "authorization", "api_key", "private_key")
# Secrets inside free text: `access_token=…`, `"password": "…"`, `Authorization: OAuth2 …`,
# `https://user:pass@host`.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)(\b[\w-]*(?:password|secret|token|api_key|apikey|private_key)[\w-]*"
                r"[\"']?\s*[:=]\s*[\"']?)[^\s&\"',;)}\]]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|oauth2|basic)\s+[\w.~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), rf"\1:{REDACTED}@"),
)


class SecretRedactor:
    """Processor that masks secret values and secret-looking keys in every event."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            for pattern, replacement in _SECRET_PATTERNS:
                value = pattern.sub(replacement, value)
            return value
        if isinstance(value, dict):
            return {k: self._redact_pair(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        return value

    def _redact_pair(self, key: str, value: Any) -> Any:
        if any(marker in str(key).lower() for marker in _SECRET_KEYS) and value:
            return REDACTED
        return self._clean(value)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]
                 ) -> Mapping[str, Any]:
        return {key: self._redact_pair(key, value) for key, value in event.items()}


def configure_logging(
    level: str = "INFO", fmt: str = "auto", secrets: Iterable[str] = ()
) -> None:
    """Configure structlog once for the process."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks become text first, so that redaction sees them too.
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
