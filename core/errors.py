"""The error tree. Every message says what to do next.

SaekoError
├── ConfigError            bad settings or admin YAML: fix the file/variable named
├── ConnectorError         talking to a tool failed
│   ├── TransientError     retry later (429/420/5xx/dropped connection); carries retry_after
│   │   └── UnreachableError  the tool's host never answered (DNS, refused): not retried
│   ├── AuthError          credentials rejected: fix them, retrying will not help
│   └── RemoteDataError    the tool answered with data we cannot use (4xx, bad shape)
└── RuleError              a rule could not be loaded or evaluated
"""

from __future__ import annotations


class SaekoError(Exception):
    """Base of every error saeko-sync raises on purpose."""


class ConfigError(SaekoError):
    """Settings or configuration files are wrong; the message names the fix."""


class ConnectorError(SaekoError):
    """A call to an external tool failed."""

    def __init__(self, message: str, *, status: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class TransientError(ConnectorError):
    """Worth retrying: rate limit, server error, dropped connection."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body)
        self.retry_after = retry_after


class UnreachableError(TransientError):
    """The tool's host could not be reached at all before it ever answered this client (a
    name that does not resolve, a refused connection, a connect timeout): most likely a
    wrong URL setting, so it is not retried within the call — the tool's remaining streams
    are skipped this cycle and the message names the URL and its setting."""

    def __init__(self, message: str, *, url: str, setting: str) -> None:
        super().__init__(message)
        self.url = url
        self.setting = setting


class AuthError(ConnectorError):
    """Credentials were rejected; retrying will not help."""


class RemoteDataError(ConnectorError):
    """The tool refused the request or answered something unusable."""


class RuleError(SaekoError):
    """A rule is invalid or failed to evaluate."""
