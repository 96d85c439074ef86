"""Outgoing webhook deliveries, like the real tools make them: fire and forget, in the
background, with switches to drop, duplicate or delay deliveries for reliability tests."""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

log = structlog.get_logger(__name__)

DELIVERY_TIMEOUT_SECONDS = 5.0


@dataclass
class Delivery:
    tool: str
    url: str
    body: bytes
    headers: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)


class WebhookDeliverer:
    """A queue and one worker thread that POSTs deliveries; records what happened to each."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.log: list[dict[str, Any]] = []
        self.drop_next = 0
        self.duplicate_next = 0
        self.paused = False
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT_SECONDS + 1)
            self._thread = None

    def enqueue(self, delivery: Delivery) -> None:
        with self._lock:
            if self.drop_next > 0:
                self.drop_next -= 1
                self.log.append({"url": delivery.url, "meta": delivery.meta, "result": "dropped"})
                return
            copies = 2 if self.duplicate_next > 0 else 1
            self.duplicate_next = max(0, self.duplicate_next - 1)
        for _ in range(copies):
            self._queue.put(delivery)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery was attempted (for tests)."""
        done = threading.Event()
        self._queue.put(Delivery("_", "", b"", {}, {"_marker": done}))
        return done.wait(timeout)

    def _run(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
            while (item := self._queue.get()) is not None:
                marker = item.meta.get("_marker")
                if marker is not None:
                    marker.set()
                    continue
                try:
                    response = client.post(item.url, content=item.body, headers=item.headers)
                    result: Any = response.status_code
                except httpx.HTTPError as exc:
                    result = f"error: {exc.__class__.__name__}"
                with self._lock:
                    self.log.append({"url": item.url, "meta": item.meta, "result": result})
                log.debug("sandbox.webhook.delivered", tool=item.tool, url=item.url, result=result)
