"""The read-only status page and health endpoint of `saeko-sync serve`."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import func, select, text
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from core.settings import Settings
from jobs import status_kpis
from store.db import Database
from store.models import (
    ActionLedger,
    JobRun,
    RuleEventRetry,
    RuleRun,
    RuleState,
    SyncState,
    WebhookInbox,
)

_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;
font-size:.9rem}th{background:#f3f3f3;text-align:left}.ok{color:#157a15}.bad{color:#b00020}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else html.escape(str(c))}"
                                    "</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>—</td></tr>'}</table>"


class Markup(str):
    """A string already escaped for HTML."""


def snapshot(db: Database, quota: dict[str, Any] | None = None,
             settings: Settings | None = None) -> dict[str, Any]:
    """Everything the page shows, as data (also served as JSON at /status.json); with
    ``settings``, the month's headline KPIs too."""
    with db.session() as s:
        syncs = [{"source": st.source, "stream": st.stream, "status": st.last_status,
                  "finished": st.last_finished_at.isoformat(" ", "seconds")
                  if st.last_finished_at else None, "error": st.last_error,
                  "counts": st.last_counts or {}}
                 for st in s.scalars(select(SyncState).order_by(SyncState.source, SyncState.stream))]
        runs = [{"id": r.id, "rule": r.rule_id, "entity": f"{r.entity or ''} {r.entity_id or ''}",
                 "matched": r.matched, "status": r.status,
                 "at": r.started_at.isoformat(" ", "seconds")}
                for r in s.scalars(select(RuleRun).order_by(RuleRun.id.desc()).limit(25))]
        actions = [{"id": a.id, "rule": a.rule_id, "action": a.action, "status": a.status,
                    "attempts": a.attempts, "error": a.error}
                   for a in s.scalars(select(ActionLedger).where(
                       ActionLedger.status.in_(["failed", "dead", "held", "waiting"]))
                       .order_by(ActionLedger.id.desc()).limit(25))]
        retries = [{"rule": rule, "events": int(count), "attempts": int(attempts or 0),
                    "next": nxt.isoformat(" ", "seconds") if nxt else None, "error": error}
                   for rule, count, attempts, nxt, error in s.execute(select(
                       RuleEventRetry.rule_id, func.count(), func.max(RuleEventRetry.attempts),
                       func.min(RuleEventRetry.next_attempt_at),
                       func.max(RuleEventRetry.error)).group_by(RuleEventRetry.rule_id))]
        backlog = dict(s.execute(select(WebhookInbox.status, func.count())
                                 .group_by(WebhookInbox.status)).all())
        broken = [{"rule": r.rule_id, "path": r.path, "problems": [str(p) for p in r.problems],
                   "fallback": r.good_hash is not None}
                  for r in s.scalars(select(RuleState).order_by(RuleState.rule_id))
                  if r.problems]
        jobs = [{"job": j.job, "period": j.period, "holder": j.holder, "status": j.status,
                 "detail": j.detail} for j in s.scalars(
                     select(JobRun).order_by(JobRun.id.desc()).limit(15))]
    return {"syncs": syncs, "rule_runs": runs, "problem_actions": actions, "broken_rules": broken,
            "rule_retries": retries,
            "inbox": {k: int(v) for k, v in backlog.items()}, "jobs": jobs, "quota": quota or {},
            "kpis": status_kpis.headline(db, settings) if settings is not None else None}


def render(data: dict[str, Any]) -> str:
    def state(ok: bool, label: str) -> Markup:
        return Markup(f"<span class={'ok' if ok else 'bad'}>{html.escape(label)}</span>")

    parts = [f"<!doctype html><html lang=es><head><meta charset=utf-8><title>saeko-sync</title>"
             f"<style>{_STYLE}{status_kpis.STYLE}</style></head><body>"
             "<h1>saeko-sync — estado</h1>", status_kpis.render(data.get("kpis"))]
    parts.append("<h2>Última sincronización por flujo</h2>" + _table(
        ["fuente", "flujo", "estado", "terminó (UTC)", "nuevos", "actualizados", "llamadas",
         "error"],
        [[s["source"], s["stream"], state(s["status"] == "ok", s["status"] or "—"),
          s["finished"] or "—", s["counts"].get("created", 0), s["counts"].get("updated", 0),
          s["counts"].get("api_calls", 0), s["error"] or ""] for s in data["syncs"]]))
    inbox = data["inbox"]
    parts.append("<h2>Webhooks</h2>" + _table(
        ["pendientes", "procesados", "muertos"],
        [[inbox.get("pending", 0), inbox.get("done", 0), inbox.get("dead", 0)]]))
    parts.append("<h2>Reglas recientes</h2>" + _table(
        ["regla", "entidad", "coincidió", "estado", "cuándo (UTC)", "traza"],
        [[r["rule"], r["entity"], "sí" if r["matched"] else "no", r["status"], r["at"],
          Markup(f"<a href='/runs/{r['id']}'>ver</a>")] for r in data["rule_runs"]]))
    parts.append("<h2>Reglas con errores</h2>" + _table(
        ["regla", "archivo", "errores", "corre la última versión buena"],
        [[b["rule"], b["path"], "; ".join(b["problems"]), "sí" if b["fallback"] else "no"]
         for b in data["broken_rules"]]))
    parts.append("<h2>Reglas que fallaron: eventos guardados para reintentar</h2>" + _table(
        ["regla", "eventos", "intentos", "próximo intento (UTC)", "error"],
        [[r["rule"], r["events"], r["attempts"],
          r["next"] or state(False, "no se reintentará"), (r["error"] or "")[:200]]
         for r in data["rule_retries"]]))
    parts.append("<h2>Acciones con problemas o en espera</h2>" + _table(
        ["id", "regla", "acción", "estado", "intentos", "error"],
        [[a["id"], a["rule"], a["action"], state(False, a["status"]), a["attempts"],
          a["error"] or ""] for a in data["problem_actions"]]))
    parts.append("<h2>Trabajos programados</h2>" + _table(
        ["trabajo", "periodo", "réplica", "estado", "detalle"],
        [[j["job"], j["period"], j["holder"], state(j["status"] != "failed", j["status"]),
          (j["detail"] or "")[:120]] for j in data["jobs"]]))
    quota = data["quota"]
    if quota:
        parts.append("<h2>Cuotas de API</h2>" + _table(
            ["servicio", "usadas última hora", "límite"],
            [[name, q.get("used", "—"), q.get("limit", "—")] for name, q in quota.items()]))
    parts.append("</body></html>")
    return "".join(parts)


def build_routes(db: Database, quota: Any = None, settings: Settings | None = None
                 ) -> list[Route]:
    """``/`` (HTML), ``/status.json``, ``/runs/{id}`` (a trace) and ``/healthz``."""

    def _quota() -> dict[str, Any]:
        return quota() if callable(quota) else {}

    async def page(_request: Request) -> Response:
        data = await run_in_threadpool(snapshot, db, _quota(), settings)
        return HTMLResponse(render(data))

    async def as_json(_request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(snapshot, db, _quota(), settings))

    async def run(request: Request) -> Response:
        def load() -> dict[str, Any] | None:
            with db.session() as s:
                r = s.get(RuleRun, int(request.path_params["run_id"]))
                return None if r is None else {"rule": r.rule_id, "trace": r.trace,
                                               "correlation_id": r.correlation_id}
        found = await run_in_threadpool(load)
        return JSONResponse(found or {"error": "no such run"}, status_code=200 if found else 404)

    async def health(_request: Request) -> Response:
        def ping() -> None:
            with db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        try:
            await run_in_threadpool(ping)
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            return JSONResponse({"status": "error", "database": str(exc)}, status_code=503)
        return JSONResponse({"status": "ok"})

    return [Route("/", page), Route("/status.json", as_json),
            Route("/runs/{run_id:int}", run), Route("/healthz", health)]
