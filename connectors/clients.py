"""The tool clients of a process, built lazily through ``connectors.registry``, one per tool.

Sync, the inbox worker and the rule actions share them (tokens, connections and client-side
quotas are per client).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from connectors import registry
from core.errors import ConnectorError
from core.settings import Settings

log = structlog.get_logger(__name__)
# After a tool could not be reached (e.g. Jira's serverInfo failing at connect, each try
# with its own retries), how long its actions fail fast before connecting is tried again.
CONNECT_RETRY_SECONDS = 60.0


class ActionRuntime:
    """Holds the tool clients of one process or cycle; ``close()`` releases them.

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
        self._unreachable: dict[str, tuple[float, Exception]] = {}

    def client(self, tool: str) -> Any:
        """The client of ``tool`` (a name of ``connectors.registry.TOOLS``), created on first
        use. A tool that could not be reached is not tried again for CONNECT_RETRY_SECONDS:
        each action on it fails at once with the same error (and is retried later by the
        ledger)."""
        if tool not in self._clients:
            failed = self._unreachable.get(tool)
            if failed is not None and time.monotonic() - failed[0] < CONNECT_RETRY_SECONDS:
                raise failed[1]
            try:
                self._clients[tool] = registry.connector(tool).client(self.settings)
            except ConnectorError as exc:
                self._unreachable[tool] = (time.monotonic(), exc)
                raise
            self._unreachable.pop(tool, None)
        return self._clients[tool]

    def built(self) -> dict[str, Any]:
        """tool -> client, of the clients built so far (nothing is built)."""
        return dict(self._clients)

    def close(self) -> None:
        for tool, client in self._clients.items():
            closer = getattr(client, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as exc:  # noqa: BLE001 - closing must not hide results
                    log.warning("rules.client.close_failed", tool=tool, error=str(exc))
        self._clients.clear()
