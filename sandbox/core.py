"""Shared machinery of the emulated tools: clock, call counters, fault injection."""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Clock:
    """The sandbox's notion of now (UTC, naive). Tests may freeze or advance it."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return datetime.now(UTC).replace(tzinfo=None, microsecond=0) + self._offset

    def freeze(self, at: datetime) -> None:
        with self._lock:
            self._frozen = at.replace(tzinfo=None)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += delta
            else:
                self._offset += delta

    def unfreeze(self) -> None:
        with self._lock:
            self._frozen = None


class CallCounter:
    """Counts calls per (tool, 'METHOD route-template')."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, tool: str, method: str, route: str) -> None:
        with self._lock:
            self._counts[(tool, f"{method} {route}")] += 1

    def snapshot(self, tool: str | None = None) -> dict[str, dict[str, int]]:
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (t, endpoint), n in sorted(self._counts.items()):
                if tool is None or t == tool:
                    out.setdefault(t, {})[endpoint] = n
            return out

    def total(self, tool: str, contains: str = "") -> int:
        """Calls to ``tool`` whose 'METHOD route' contains ``contains``."""
        with self._lock:
            return sum(
                n for (t, endpoint), n in self._counts.items() if t == tool and contains in endpoint
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


FAULT_KINDS = ("status", "drop", "drop_after", "latency")


@dataclass
class Fault:
    """One injected fault.

    kind: ``status`` answers ``status`` (e.g. 420, 429, 500) without doing the work;
    ``drop`` closes the connection without doing the work; ``drop_after`` does the work and
    then breaks the response (a lost response); ``latency`` delays by ``delay`` seconds.
    It applies to requests whose method and path match, either the next ``count`` of them or
    each with probability ``rate``.
    """

    kind: str
    tool: str | None = None
    path: str = ""
    method: str | None = None
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    count: int | None = 1
    rate: float | None = None
    hits: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")
        self._pattern = re.compile(self.path) if self.path else None
        if self.rate is not None:
            self.count = None

    def matches(self, tool: str, method: str, path: str, rng: random.Random) -> bool:
        if self.tool and self.tool != tool:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self._pattern and not self._pattern.search(path):
            return False
        if self.count is not None:
            return self.hits < self.count
        return rng.random() < (self.rate or 0.0)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class FaultInjector:
    """Holds the active faults; the middleware asks it for each request."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, **spec: Any) -> Fault:
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def pick(self, tool: str, method: str, path: str) -> list[Fault]:
        """Faults that fire for this request (latency ones plus at most one failure)."""
        chosen: list[Fault] = []
        failure_taken = False
        with self._lock:
            for fault in self._faults:
                if fault.kind != "latency" and failure_taken:
                    continue
                if fault.matches(tool, method, path, self._rng):
                    fault.hits += 1
                    chosen.append(fault)
                    failure_taken = failure_taken or fault.kind != "latency"
        return chosen


TOOL_PREFIXES = ("podio", "jira", "google")


def tool_of(path: str) -> tuple[str | None, str]:
    """'/podio/item/1' -> ('podio', '/item/1')."""
    for tool in TOOL_PREFIXES:
        prefix = f"/{tool}"
        if path == prefix or path.startswith(prefix + "/"):
            return tool, path[len(prefix):] or "/"
    return None, path


class FaultMiddleware:
    """ASGI middleware applying the injector's faults to the emulated tools' routes."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, error_body: Any) -> None:
        self.app = app
        self.injector = injector
        self.error_body = error_body  # callable(tool, status, path) -> (bytes, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tool, sub_path = tool_of(scope["path"])
        if tool is None:
            await self.app(scope, receive, send)
            return
        for fault in self.injector.pick(tool, scope["method"], sub_path):
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "status":
                body, headers = self.error_body(tool, fault.status, sub_path, fault.retry_after)
                await _send_simple(send, fault.status, body, headers)
                return
            elif fault.kind == "drop":
                await _send_broken(send)
                return
            elif fault.kind == "drop_after":
                await self.app(scope, receive, _swallow)
                await _send_broken(send)
                return
        await self.app(scope, receive, send)


async def _swallow(_message: Message) -> None:
    return None


async def _send_simple(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    base = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": base + headers})
    await send({"type": "http.response.body", "body": body})


class DroppedConnection(Exception):
    """Raised after a partial response so the server closes the socket mid-body."""


async def _send_broken(send: Send) -> None:
    # Promise a body, send a fragment and fail: the server aborts the connection and the
    # client sees a dropped connection, as when a proxy or network cuts a response.
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
    })
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise DroppedConnection("sandbox fault: connection dropped")


class CountingMiddleware:
    """Counts every call to an emulated tool by the route template that served it.

    The call is recorded when the response starts (before the client can read it), so a test
    reading the counters right after a call never undercounts.
    """

    def __init__(self, app: ASGIApp, counter: CallCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tool, sub_path = tool_of(scope["path"]) if scope["type"] == "http" else (None, "")
        if tool is None:
            await self.app(scope, receive, send)
            return
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = scope.get("route")
                template = getattr(route, "path", None) or sub_path
                self.counter.record(tool, scope["method"], template)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            record()
