"""The sandbox server: the emulated tools mounted under their prefixes, plus inspection.

``Sandbox`` holds the state; ``SandboxServer`` serves it with uvicorn in a background thread
on a free 127.0.0.1 port (tests, demo) or in the foreground (``saeko-sync sandbox``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import socket
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from sandbox.core import CallCounter, Clock, CountingMiddleware, FaultInjector, FaultMiddleware
from sandbox.webhooks import WebhookDeliverer
from sandbox.world import World, build_world

# module:class of each emulated tool.
TOOL_CLASSES = {
    "podio": "sandbox.podio.tool:PodioTool",
    "jira": "sandbox.jira.tool:JiraTool",
    "google": "sandbox.google.tool:GoogleTool",
}
SERVER_START_TIMEOUT_SECONDS = 10.0


class Tool(Protocol):
    """What an emulated tool provides to the server."""

    name: str

    def routes(self) -> list[BaseRoute]: ...
    def inspection_routes(self) -> list[BaseRoute]: ...
    def snapshot(self) -> dict[str, Any]: ...
    def error_body(
        self, status: int, path: str, retry_after: float | None
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]: ...
    def env(self) -> dict[str, str]: ...


class Sandbox:
    """All emulated tools sharing one clock, call counter, fault injector and webhook queue."""

    def __init__(self, world: World | None = None, *, clients: int = 20, seed: int = 7,
                 now: datetime | None = None) -> None:
        self.clock = Clock()
        self.world = world or build_world(clients=clients, seed=seed, now=now)
        self.calls = CallCounter()
        self.faults = FaultInjector(seed)
        self.webhooks = WebhookDeliverer()
        self.base_url = "http://127.0.0.1"
        self.tools: dict[str, Tool] = {}
        for name, target in TOOL_CLASSES.items():
            module_name, class_name = target.split(":")
            module = importlib.import_module(module_name)
            self.tools[name] = getattr(module, class_name)(self)

    def url(self, tool: str) -> str:
        """Base URL of one emulated tool, e.g. http://127.0.0.1:8765/podio."""
        return f"{self.base_url}/{tool}"

    def env(self) -> dict[str, str]:
        """Settings that point saeko-sync at this sandbox (for --write-env and tests)."""
        values: dict[str, str] = {}
        for tool in self.tools.values():
            values.update(tool.env())
        return values

    def _error_body(self, tool: str, status: int, path: str, retry_after: float | None
                    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if tool in self.tools:
            return self.tools[tool].error_body(status, path, retry_after)
        return json.dumps({"error": "fault"}).encode(), []

    def app(self) -> Any:
        routes: list[BaseRoute] = [Mount("/_sandbox", routes=self._inspection_routes())]
        for name, tool in self.tools.items():
            routes.append(Mount(f"/{name}", routes=tool.routes()))
        app = Starlette(routes=routes)
        app.router.redirect_slashes = False
        faulty = FaultMiddleware(app, self.faults, self._error_body)
        return CountingMiddleware(faulty, self.calls)

    # --- inspection API (docs/sandbox.md) -------------------------------------------

    def _inspection_routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self._info, methods=["GET"]),
            Route("/calls", self._calls, methods=["GET"]),
            Route("/calls/reset", self._calls_reset, methods=["POST"]),
            Route("/calls/journal", self._journal, methods=["GET"]),
            Route("/faults", self._faults, methods=["GET", "POST", "DELETE"]),
            Route("/faults/target", self._fault_target, methods=["GET", "POST"]),
            Route("/faults/kills", self._kills, methods=["GET"]),
            Route("/clock", self._clock, methods=["GET", "POST"]),
            Route("/webhooks", self._webhooks, methods=["GET", "POST"]),
            Route("/state/{tool}", self._state, methods=["GET"]),
        ]
        for name, tool in self.tools.items():
            routes.append(Mount(f"/{name}", routes=tool.inspection_routes()))
        return routes

    async def _info(self, _request: Request) -> JSONResponse:
        return JSONResponse({
            "tools": {name: self.url(name) for name in self.tools},
            "clients": len(self.world.clients),
            "seed": self.world.seed,
            "now": self.clock.now().isoformat(),
        })

    async def _calls(self, request: Request) -> JSONResponse:
        return JSONResponse(self.calls.snapshot(request.query_params.get("tool")))

    async def _calls_reset(self, _request: Request) -> JSONResponse:
        self.calls.reset()
        return JSONResponse({"ok": True})

    async def _journal(self, request: Request) -> JSONResponse:
        since = int(request.query_params.get("since", "0"))
        entries = self.calls.journal(since, request.query_params.get("tool"))
        return JSONResponse({"mark": self.calls.mark(),
                             "calls": [dataclasses.asdict(e) for e in entries]})

    async def _fault_target(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            pid = (await request.json()).get("pid")
            self.faults.kill_pid = int(pid) if pid is not None else None
        return JSONResponse({"pid": self.faults.kill_pid})

    async def _kills(self, _request: Request) -> JSONResponse:
        return JSONResponse({"fired": dict(self.faults.fired),
                             "kills": [dataclasses.asdict(k) for k in self.faults.kills]})

    async def _faults(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            try:
                fault = self.faults.add(**await request.json())
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(fault.public(), status_code=201)
        if request.method == "DELETE":
            self.faults.clear()
        return JSONResponse(self.faults.describe())

    async def _clock(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            if "freeze" in body:
                self.clock.freeze(datetime.fromisoformat(body["freeze"]))
            if "advance_seconds" in body:
                self.clock.advance(timedelta(seconds=float(body["advance_seconds"])))
            if body.get("unfreeze"):
                self.clock.unfreeze()
        return JSONResponse({"now": self.clock.now().isoformat()})

    async def _webhooks(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await request.json()
            self.webhooks.drop_next = int(body.get("drop_next", self.webhooks.drop_next))
            self.webhooks.duplicate_next = int(
                body.get("duplicate_next", self.webhooks.duplicate_next))
        return JSONResponse({"deliveries": self.webhooks.log[-500:]})

    async def _state(self, request: Request) -> JSONResponse:
        tool = self.tools.get(request.path_params["tool"])
        if tool is None:
            return JSONResponse({"error": f"no tool {request.path_params['tool']!r}"}, 404)
        return JSONResponse(tool.snapshot())


class SandboxServer:
    """Serves a Sandbox with uvicorn on 127.0.0.1 (a free port unless one is given)."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sandbox = sandbox
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        sandbox.base_url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(sandbox.app(), log_level="warning", access_log=False,
                                timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.sandbox.base_url

    def start(self) -> SandboxServer:
        """Start in a background thread and wait until it accepts connections."""
        self.sandbox.webhooks.start()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])),
            name="sandbox-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (saeko-sync sandbox)."""
        self.sandbox.webhooks.start()
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        finally:
            self.sandbox.webhooks.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=SERVER_START_TIMEOUT_SECONDS)
        self.sandbox.webhooks.stop()
        self._socket.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
