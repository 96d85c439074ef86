"""The read-only status page and health endpoint of `saeko-sync serve`.

The page (``/``, ``/status.json``, a trace ``/runs/{id}``) shows customer names, so it asks
for ``STATUS_TOKEN`` — ``Authorization: Bearer <token>``, ``?token=<token>`` or basic auth
with the token as password (any user name) — and answers 401 without it. With no token
configured it answers only when the service listens on a loopback address and the request
comes from this machine (403 otherwise, naming the setting). ``/healthz`` and ``/readyz``
stay open (``jobs.health``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import html
from typing import Any
from urllib.parse import quote

from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from jobs.status_data import snapshot
from jobs.status_page import STYLE, Markup, render
from store.db import Database
from store.models import RuleRun

__all__ = ["Markup", "build_routes", "render", "snapshot"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})


def _given_token(request: Request) -> str:
    """The token a request carries: Bearer header, ?token= or basic auth's password."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return request.query_params.get("token", "")


def refusal(request: Request, settings: Settings | None, host: str) -> Response | None:
    """None when the request may see the page; else the 401/403 answer, in Spanish."""
    token = settings.status_token.get_secret_value() if settings is not None else ""
    if token:
        if hmac.compare_digest(_given_token(request).encode(), token.encode()):
            return None
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>saeko-sync</title>"
            "<p>La página de estado pide el token de STATUS_TOKEN: como usuario y contraseña "
            "(cualquier usuario, el token como contraseña), en la cabecera "
            "<code>Authorization: Bearer …</code> o como <code>?token=…</code>.</p>",
            status_code=401, headers={"WWW-Authenticate": 'Basic realm="saeko-sync", '
                                                          'charset="UTF-8"'})
    client = request.client.host if request.client else ""
    if host in LOOPBACK_HOSTS and client in LOOPBACK_CLIENTS:
        return None
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>saeko-sync</title>"
        "<p>La página de estado muestra nombres de clientes: sin STATUS_TOKEN solo se sirve en "
        f"127.0.0.1 a este mismo equipo (SERVE_HOST es {html.escape(host)}). Define "
        "STATUS_TOKEN en .env (32+ caracteres al azar) y reinicia el servicio.</p>",
        status_code=403)


def _carry(request: Request) -> str:
    """The query to keep on the page's own links when the token came as ?token=."""
    token = request.query_params.get("token")
    return f"?token={quote(token)}" if token else ""


def render_trace(run: dict[str, Any]) -> str:
    """A rule run's trace as nested lists (its keys are Spanish already)."""
    def show(value: Any) -> str:
        if isinstance(value, dict):
            return "<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: {show(v)}</li>"
                                    for k, v in value.items()) + "</ul>"
        if isinstance(value, list):
            return ("<ol>" + "".join(f"<li>{show(v)}</li>" for v in value) + "</ol>"
                    if value else "—")
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "sí" if value else "no"
        return html.escape(str(value))

    return (f"<!doctype html><html lang=es><head><meta charset=utf-8><title>traza</title>"
            f"<style>{STYLE}</style></head><body><h1>Traza de {html.escape(run['rule'])}</h1>"
            f"<p class=muted>correlación {html.escape(str(run['correlation_id'] or '—'))}</p>"
            f"{show(run['trace'] or {})}</body></html>")


def build_routes(db: Database, quota: Any = None, settings: Settings | None = None,
                 host: str = "127.0.0.1", probes: Any = None) -> list[Route]:
    """``/`` (HTML), ``/status.json``, ``/runs/{id}`` (a trace; ``.json`` for machines),
    behind the page's authentication, and ``/healthz`` and ``/readyz``, open: ``probes``
    (the service) answers them with ``health()`` / ``ready()`` -> (status, JSON body);
    without it both only ping the database."""

    def _quota() -> dict[str, Any]:
        return quota() if callable(quota) else {}

    async def page(request: Request) -> Response:
        if (refused := refusal(request, settings, host)) is not None:
            return refused
        data = await run_in_threadpool(snapshot, db, _quota(), settings)
        return HTMLResponse(render(data, query=_carry(request)))

    async def as_json(request: Request) -> Response:
        if (refused := refusal(request, settings, host)) is not None:
            return refused
        return JSONResponse(await run_in_threadpool(snapshot, db, _quota(), settings))

    async def run(request: Request) -> Response:
        return await trace(request, as_json=False)

    async def run_json(request: Request) -> Response:
        return await trace(request, as_json=True)

    async def trace(request: Request, *, as_json: bool) -> Response:
        if (refused := refusal(request, settings, host)) is not None:
            return refused

        def load() -> dict[str, Any] | None:
            with db.session() as s:
                r = s.get(RuleRun, int(request.path_params["run_id"]))
                return None if r is None else {"rule": r.rule_id, "trace": r.trace,
                                               "correlation_id": r.correlation_id}
        found = await run_in_threadpool(load)
        if as_json:
            return JSONResponse(found or {"error": "no existe esa ejecución"},
                                status_code=200 if found else 404)
        if found is None:
            return HTMLResponse("<!doctype html><meta charset=utf-8><p>No existe esa "
                                "ejecución (quizá se borró por la retención de trazas).</p>",
                                status_code=404)
        return HTMLResponse(render_trace(found))

    def ping() -> tuple[int, dict[str, Any]]:
        try:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            return 503, {"status": "error", "problems": [
                f"la base de datos no responde ({exc.__class__.__name__}: {exc}); revisa "
                "DATABASE_URL"]}
        return 200, {"status": "ok", "problems": []}

    async def probe(check: Any) -> Response:
        code, body = await run_in_threadpool(check)
        return JSONResponse(body, status_code=code)

    async def health(_request: Request) -> Response:
        return await probe(probes.health if probes is not None else ping)

    async def ready(_request: Request) -> Response:
        return await probe(probes.ready if probes is not None else ping)

    return [Route("/", page), Route("/status.json", as_json),
            Route("/runs/{run_id:int}.json", run_json), Route("/runs/{run_id:int}", run),
            Route("/healthz", health), Route("/readyz", ready)]
