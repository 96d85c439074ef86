"""Shared machinery of the emulated tools: clock, call counters, fault injection."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


JOURNAL_SIZE = 50_000  # calls kept in order by CallCounter.journal (the oldest are dropped)


@dataclass(frozen=True)
class JournalEntry:
    """One call to an emulated tool, in arrival order (``seq`` from 1)."""

    seq: int
    tool: str
    method: str
    path: str  # the concrete path under the tool's prefix, e.g. /item/9000001
    route: str  # the route template, e.g. /item/{item_id:int}
    status: int | None  # the status answered; None if no response started (a kill, a drop)


class CallCounter:
    """Counts calls per (tool, 'METHOD route-template') and keeps them in order (journal)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._journal: deque[JournalEntry] = deque(maxlen=JOURNAL_SIZE)
        self._seq = 0
        self._lock = threading.Lock()

    def record(self, tool: str, method: str, route: str, path: str | None = None,
               status: int | None = None) -> None:
        with self._lock:
            self._counts[(tool, f"{method} {route}")] += 1
            self._seq += 1
            self._journal.append(JournalEntry(self._seq, tool, method, path or route, route,
                                              status))

    def mark(self) -> int:
        """The sequence number of the latest call (0 before any): ``journal(since=mark)``
        then gives what came after."""
        with self._lock:
            return self._seq

    def journal(self, since: int = 0, tool: str | None = None) -> list[JournalEntry]:
        """Calls with ``seq > since``, oldest first (at most the last JOURNAL_SIZE)."""
        with self._lock:
            return [e for e in self._journal
                    if e.seq > since and (tool is None or e.tool == tool)]

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
        """Zero the counters (the journal and its sequence numbers are kept)."""
        with self._lock:
            self._counts.clear()


FAULT_KINDS = ("status", "drop", "drop_after", "latency", "kill")
KILL_WHEN = ("before", "after")


@dataclass
class Fault:
    """One injected fault.

    kind: ``status`` answers ``status`` (e.g. 420, 429, 500) without doing the work;
    ``drop`` closes the connection without doing the work; ``drop_after`` does the work and
    then breaks the response (a lost response); ``latency`` delays by ``delay`` seconds
    (before the tool reads the request; with ``late`` the request is read first, so the tool
    still does the work after the delay even if the client gave up — a late completion);
    ``kill`` sends SIGKILL to process ``pid`` (default: the injector's registered
    ``FaultInjector.kill_pid``, the client under test) ``when="before"`` the work is done, or
    ``when="after"`` it, before answering — then the connection is dropped, as the client is
    gone.
    It applies to requests whose method (one, or several separated by commas: "POST,PUT")
    and path match — with ``from_pid``, only those sent by that process (Linux: the client
    socket's owner, read from /proc) —: the first ``skip`` matching requests pass untouched,
    then either the next ``count`` of them or each with probability ``rate``.
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
    skip: int = 0
    late: bool = False
    when: str = "before"
    pid: int | None = None
    from_pid: bool = False
    hits: int = 0
    seen: int = 0
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    _methods: frozenset[str] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")
        if self.when not in KILL_WHEN:
            raise ValueError(f"unknown kill moment {self.when!r}; one of {KILL_WHEN}")
        if self.skip < 0:
            raise ValueError("skip must be 0 or more")
        self._pattern = re.compile(self.path) if self.path else None
        self._methods = frozenset(m.strip().upper() for m in (self.method or "").split(",")
                                  if m.strip())
        if self.rate is not None:
            self.count = None

    def matches(self, tool: str, method: str, path: str, rng: random.Random,
                sent_by: Callable[[int | None], bool] | None = None) -> bool:
        if self.tool and self.tool != tool:
            return False
        if self._methods and method.upper() not in self._methods:
            return False
        if self._pattern and not self._pattern.search(path):
            return False
        if self.from_pid and (sent_by is None or not sent_by(self.pid)):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.count is not None:
            return self.hits < self.count
        return rng.random() < (self.rate or 0.0)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Kill:
    """A ``kill`` fault that fired: which request, which process, before or after the work."""

    tool: str
    method: str
    path: str
    when: str
    pid: int | None  # None: no process was registered, so nothing was killed
    at: float  # time.monotonic() when the signal was sent


class FaultInjector:
    """Holds the active faults; the middleware asks it for each request.

    ``kill_pid`` is the process a ``kill`` fault signals (the harness registers the client it
    runs, e.g. a `saeko-sync run` subprocess); ``fired`` counts the faults applied per kind
    and ``kills`` lists the kill faults that fired.
    """

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.kill_pid: int | None = None
        self.fired: Counter[str] = Counter()
        self.kills: list[Kill] = []

    def add(self, **spec: Any) -> Fault:
        fault = Fault(**spec)
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random draws of rate faults from ``seed`` (one trial per seed)."""
        with self._lock:
            self._rng = random.Random(seed)

    def kill(self, tool: str, method: str, path: str, when: str, pid: int | None = None
             ) -> Kill:
        """SIGKILL ``pid`` (default: the registered process), if any and still there;
        record it."""
        pid = pid if pid is not None else self.kill_pid
        if pid is not None and pid > 1 and pid != os.getpid():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pid = None
        else:
            pid = None
        record = Kill(tool, method, path, when, pid, time.monotonic())
        with self._lock:
            self.kills.append(record)
        return record

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def pick(self, tool: str, method: str, path: str,
             ports: tuple[int, int] | None = None) -> list[Fault]:
        """Faults that fire for this request (latency ones plus at most one failure).
        ``ports`` (client port, server port) lets ``from_pid`` faults find the sender."""

        def sent_by(pid: int | None) -> bool:
            target = pid if pid is not None else self.kill_pid
            return target is not None and ports is not None and socket_owned_by(target, *ports)

        chosen: list[Fault] = []
        failure_taken = False
        with self._lock:
            for fault in self._faults:
                if fault.kind != "latency" and failure_taken:
                    continue
                if fault.matches(tool, method, path, self._rng, sent_by):
                    fault.hits += 1
                    self.fired[fault.kind] += 1
                    chosen.append(fault)
                    failure_taken = failure_taken or fault.kind != "latency"
        return chosen


def socket_owned_by(pid: int, client_port: int, server_port: int) -> bool:
    """True when process ``pid`` holds the TCP socket 127.0.0.1:client_port ->
    :server_port (Linux /proc; False elsewhere or when it cannot tell)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            local, remote = parts[1].rsplit(":", 1)[1], parts[2].rsplit(":", 1)[1]
            if int(local, 16) == client_port and int(remote, 16) == server_port:
                inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return False
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        fds = list(fd_dir.iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


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
        client, server = scope.get("client"), scope.get("server")
        ports = (int(client[1]), int(server[1])) if client and server else None
        for fault in self.injector.pick(tool, scope["method"], sub_path, ports):
            if fault.kind == "latency":
                if fault.late:  # the tool has the request and does it, however late
                    receive = await _buffered(receive)
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
            elif fault.kind == "kill":
                if fault.when == "after":
                    await self.app(scope, receive, _swallow)
                self.injector.kill(tool, scope["method"], sub_path, fault.when, fault.pid)
                await _send_broken(send)
                return
        await self.app(scope, receive, send)


async def _swallow(_message: Message) -> None:
    return None


async def _buffered(receive: Receive) -> Receive:
    """Read the whole request body now; the returned ``receive`` replays it, then defers to
    the real one (which reports the client's disconnect)."""
    chunks: list[bytes] = []
    for _ in range(100_000):  # bounded: a body arrives in finitely many chunks
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await receive()

    return replay


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

        def record(status: int | None = None) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = scope.get("route")
                template = getattr(route, "path", None) or sub_path
                self.counter.record(tool, scope["method"], template, sub_path, status)

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            record()
