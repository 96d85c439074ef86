"""What actions run with: the connectors' clients, built lazily, one per tool and cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from core.errors import ConfigError
from core.settings import Settings

log = structlog.get_logger(__name__)


class ActionRuntime:
    """Holds the tool clients of one cycle; ``close()`` releases them.

    ``before_send`` and ``after_send`` are observability hooks called with the ledger key
    right before a tool is asked to make an effect, and right after it accepted it (before
    the ledger records it): tests use them to simulate a crash at the worst moments.
    """

    def __init__(self, settings: Settings, *,
                 before_send: Callable[[str], None] | None = None,
                 after_send: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.before_send = before_send
        self.after_send = after_send
        self._clients: dict[str, Any] = {}

    def client(self, tool: str) -> Any:
        """The client of ``tool`` (podio, jira, google), created on first use."""
        if tool not in self._clients:
            self._clients[tool] = _FACTORIES[tool](self.settings)
        return self._clients[tool]

    def close(self) -> None:
        for tool, client in self._clients.items():
            closer = getattr(client, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - closing must not hide results
                    log.warning("rules.client.close_failed", tool=tool, error=str(exc))
        self._clients.clear()


def _podio(settings: Settings) -> Any:
    if not settings.podio_configured:
        raise ConfigError("Podio no está configurado: define PODIO_CLIENT_ID y los ids de "
                          "las apps en .env")
    from connectors.podio.client import PodioClient

    return PodioClient.from_settings(settings)


def _jira(settings: Settings) -> Any:
    if not settings.jira_configured:
        raise ConfigError("Jira no está configurado: define JIRA_URL, JIRA_EMAIL y "
                          "JIRA_API_TOKEN en .env")
    from connectors.jira.client import JiraClient

    return JiraClient(settings)


def _google(settings: Settings) -> Any:
    from connectors.google import actions

    return actions.client_from_settings(settings)


_FACTORIES: dict[str, Callable[[Settings], Any]] = {
    "podio": _podio, "jira": _jira, "gmail": _google, "calendario": _google,
    "sheets": _google, "google": _google,
}
