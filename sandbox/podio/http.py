"""HTTP plumbing of the Podio emulator: routes that answer with and without the trailing
slash, and one wrapper that authenticates, counts the rate limit, runs the handler under
the state lock and turns ``PodioError`` into Podio's error body."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.podio.auth import Principal
from sandbox.podio.errors import NO_OPERATION, PodioError

if TYPE_CHECKING:
    from sandbox.podio.service import PodioService

Reply = tuple[int, Any]  # (status, JSON payload or None for an empty body)
_TRUE = ("1", "true")
_FALSE = ("0", "false")
_CONVERTOR_RE = re.compile(r":\w+}")


class SlashRoute(Route):
    """A route matching its path with and without a trailing slash (Podio clients call
    documented paths both ways; the app runs with redirect_slashes=False). One template
    per operation keeps the call counters per documented endpoint."""

    def __init__(self, path: str, endpoint: Callable[..., Any], methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        pattern = self.path_regex.pattern
        core = pattern[:-1] if pattern.endswith("$") else pattern
        self.path_regex = re.compile(core.rstrip("/") + "/?$")


@dataclass
class Call:
    """One API request as a handler sees it."""

    request: Request
    raw: bytes
    principal: Principal
    now: datetime

    def arg(self, name: str) -> Any:
        return self.request.path_params[name]

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def flag(self, name: str, default: bool) -> bool:
        """``hook`` / ``silent`` style switches: 1/0/true/false (§0)."""
        value = self.request.query_params.get(name)
        if value is None or value == "":
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise PodioError(400, f"Query parameter {name!r} takes true/false or 1/0, "
                              f"not {value!r}")

    def json(self) -> Any:
        if not self.raw.strip():
            return {}
        try:
            return json.loads(self.raw)
        except ValueError:
            raise PodioError(400, "The body is not valid JSON; send Content-Type: "
                                  "application/json", error="invalid_request") from None


Handler = Callable[[Call], Reply]


def respond(status: int, payload: Any, headers: dict[str, str]) -> Response:
    if payload is None:
        return Response(status_code=204 if status == 200 else status, headers=headers)
    return JSONResponse(payload, status_code=status, headers=headers)


def error_response(request: Request, exc: PodioError, headers: dict[str, str]) -> Response:
    url = str(request.url.replace(query=""))
    body = exc.body(url, request.url.query, request.method)
    return JSONResponse(body, status_code=exc.status, headers={**headers, **exc.headers})


def api_route(service: PodioService, method: str, path: str, handler: Handler) -> Route:
    """An authenticated, rate-limited operation; ``"METHOD path"`` names it for quotas."""
    operation = f"{method} {_CONVERTOR_RE.sub('}', path)}"  # e.g. "GET /item/{item_id}"

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        headers: dict[str, str] = {}
        try:
            with service.lock:
                now = service.now()
                principal = service.oauth.authenticate(
                    request.headers.get("authorization"),
                    request.query_params.get("oauth_token"), now)
                headers = service.limiter.charge(principal.quota_key, operation, now)
                status, payload = handler(Call(request, raw, principal, now))
        except PodioError as exc:
            return error_response(request, exc, headers)
        return respond(status, payload, headers)

    return SlashRoute(path, endpoint, [method])


def not_found_route() -> Route:
    """Catch-all: Podio answers unknown paths and methods with 404 'No matching operation'."""

    async def endpoint(request: Request) -> Response:
        return error_response(request, PodioError(404, NO_OPERATION, propagate=False), {})

    return Route("/{path:path}", endpoint,
                 methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
