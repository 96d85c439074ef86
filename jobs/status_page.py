"""The status page's HTML, from ``jobs.status_data.snapshot``: in Spanish, times in the
department's zone, records as links into Podio and Jira."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from jobs import quota as quotas
from jobs import status_kpis

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;
font-size:.9rem;vertical-align:top}th{background:#f3f3f3;text-align:left}.ok{color:#157a15}
.bad{color:#b00020}.muted{color:#666;font-size:.85rem}h1{font-size:1.4rem}
h2{font-size:1.1rem;margin-top:1.5rem}"""

# Every state the page can show, in Spanish (the stored values stay English).
STATES = {"ok": "correcto", "failed": "falló", "running": "en curso", "skipped": "omitido",
          "done": "hecho", "dead": "muerto", "held": "retenido", "waiting": "en espera",
          "pending": "pendiente", "sent": "enviado", "omitted": "omitido"}
JOBS = {"sync": "sincronización", "rules": "reglas", "deletions": "borrados",
        "retention": "limpieza de trazas"}
WEEKDAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")


class Markup(str):
    """A string already escaped for HTML."""


def table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Markup) else html.escape(str(c))}"
                                    "</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body or '<tr><td colspan=99>—</td></tr>'}</table>"


def link(ref: dict[str, Any] | None, fallback: str = "—") -> Markup:
    """A record as a link ({label, url}), or its label alone."""
    if not ref:
        return Markup(html.escape(fallback))
    label = html.escape(str(ref.get("label") or fallback))
    url = ref.get("url")
    return Markup(f"<a href='{html.escape(str(url))}' target=_blank>{label}</a>" if url
                  else label)


def state(value: str | None, ok: bool | None = None) -> Markup:
    good = value in ("ok", "done", "sent") if ok is None else ok
    label = STATES.get(value or "", value or "—")
    return Markup(f"<span class={'ok' if good else 'bad'}>{html.escape(label)}</span>")


def every(seconds: float | None) -> str:
    """A period for people: 'cada 5 min', 'cada 30 s', 'cada 3 h', 'cada día'."""
    if not seconds:
        return "—"
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return "cada día" if days == 1 else f"cada {days} días"
    if seconds % 3600 == 0:
        return f"cada {int(seconds // 3600)} h"
    if seconds % 60 == 0:
        return f"cada {int(seconds // 60)} min"
    return f"cada {seconds:g} s"


class Clock:
    """Formats the snapshot's naive-UTC instants in the page's zone."""

    def __init__(self, zone: str, now: str | None) -> None:
        self.zone = ZoneInfo(zone)
        self.name = zone
        self.now = datetime.fromisoformat(now) if now else None

    def local(self, value: str | None) -> datetime | None:
        if not value:
            return None
        return datetime.fromisoformat(value).replace(tzinfo=ZoneInfo("UTC")).astimezone(self.zone)

    def at(self, value: str | None) -> str:
        """'07/12/2026 18:45'"""
        local = self.local(value)
        return f"{local:%d/%m/%Y %H:%M}" if local else "—"

    def weekday(self, value: str | None) -> str:
        """'lunes 12:05'"""
        local = self.local(value)
        return f"{WEEKDAYS[local.weekday()]} {local:%H:%M}" if local else "—"

    def ago(self, value: str | None) -> str:
        if not value or self.now is None:
            return ""
        return quotas.ago(datetime.fromisoformat(value), self.now)

    def at_ago(self, value: str | None) -> str:
        return f"{self.at(value)} ({self.ago(value)})" if value else "nunca"


def render(data: dict[str, Any], *, query: str = "") -> str:
    """The page. ``query`` ("?token=…") is carried by its own links (traces)."""
    clock = Clock(data.get("timezone") or "UTC", data.get("now"))
    refresh = int(data.get("refresh_seconds") or 0)
    meta = f"<meta http-equiv=refresh content={refresh}>" if refresh else ""
    parts = [f"<!doctype html><html lang=es><head><meta charset=utf-8>{meta}"
             f"<title>saeko-sync</title><style>{STYLE}{status_kpis.STYLE}</style></head><body>"
             "<h1>saeko-sync — estado</h1>",
             f"<p class=muted>Hora local ({html.escape(clock.name)}): "
             f"{html.escape(clock.at(data.get('now')))} · "
             + (f"se actualiza cada {refresh} s" if refresh else "sin recarga automática")
             + "</p>", status_kpis.render(data.get("kpis"))]
    parts.append(_syncs(data, clock))
    parts.append(_written(data))
    parts.append(_webhooks(data, clock))
    parts.append(_jobs(data, clock))
    parts.append(_quota(data, clock))
    parts.append(_rules(data, clock, query))
    parts.append("</body></html>")
    return "".join(parts)


def _syncs(data: dict[str, Any], clock: Clock) -> str:
    return "<h2>Última sincronización por flujo</h2>" + table(
        ["fuente", "flujo", "estado", "última correcta", "último intento", "nuevos",
         "actualizados", "llamadas", "error"],
        [[s["source"], s["stream"], state(s["status"]), clock.at_ago(s.get("last_ok")),
          clock.at(s["finished"]), s["counts"].get("created", 0),
          s["counts"].get("updated", 0), s["counts"].get("api_calls", 0), s["error"] or ""]
         for s in data["syncs"]])


def _written(data: dict[str, Any]) -> str:
    return "<h2>Escrito hoy por automatización</h2>" + table(
        ["automatización", "reglas", "qué se escribió", "dónde mirar"],
        [[w["automation"], ", ".join(w["rules"]), w["written"],
          Markup(", ".join(link(r) for r in w["refs"][:8])
                 + (f" (+{len(w['refs']) - 8})" if len(w["refs"]) > 8 else "") or "—")]
         for w in data.get("written_today", [])])


def _webhooks(data: dict[str, Any], clock: Clock) -> str:
    inbox = data["inbox"]
    out = "<h2>Webhooks</h2>" + table(
        ["pendientes", "procesados", "muertos"],
        [[inbox.get("pending", 0), inbox.get("done", 0), inbox.get("dead", 0)]])
    if data.get("dead_deliveries"):
        out += "<h2>Entregas muertas: por qué</h2>" + table(
            ["entrega", "herramienta", "evento", "registro", "recibida", "intentos", "motivo"],
            [[d["id"], d["source"], d["kind"] or "—", link(d["record"]),
              clock.at(d["received"]), d["attempts"], d["reason"][:300]]
             for d in data["dead_deliveries"]])
    if data.get("dead_letters"):
        out += "<h2>Registros que no se pudieron leer</h2>" + table(
            ["fuente", "flujo", "registro", "desde", "motivo"],
            [[d["source"], d["stream"], link(d["record"]), clock.at(d["at"]),
              d["reason"][:300]] for d in data["dead_letters"]])
    return out


def _rules(data: dict[str, Any], clock: Clock, query: str) -> str:
    out = "<h2>Reglas recientes</h2>" + table(
        ["regla", "registro", "coincidió", "estado", "cuándo", "traza"],
        [[r["rule"], link(r["entity"]), "sí" if r["matched"] else "no", r["status"],
          clock.at(r["at"]), Markup(f"<a href='/runs/{r['id']}{html.escape(query)}'>ver</a>")]
         for r in data["rule_runs"]])
    out += "<h2>Reglas con errores</h2>" + table(
        ["regla", "archivo", "errores", "corre la última versión buena"],
        [[b["rule"], b["path"], Markup("<br>".join(html.escape(p) for p in b["problems"])),
          "sí" if b["fallback"] else "no"] for b in data["broken_rules"]])
    out += "<h2>Reglas que fallaron: eventos guardados para reintentar</h2>" + table(
        ["regla", "eventos", "intentos", "próximo intento", "error"],
        [[r["rule"], r["events"], r["attempts"],
          clock.at(r["next"]) if r["next"] else Markup(
              "<span class=bad>no se reintentará</span>"), (r["error"] or "")[:200]]
         for r in data["rule_retries"]])
    out += "<h2>Acciones con problemas o en espera</h2>" + table(
        ["regla", "acción", "registro", "estado", "intentos", "error"],
        [[a["rule"], a["action"], link(a["target"]), state(a["status"], ok=False),
          a["attempts"], a["error"] or ""] for a in data["problem_actions"]])
    return out


def _jobs(data: dict[str, Any], clock: Clock) -> str:
    return "<h2>Trabajos programados</h2>" + table(
        ["trabajo", "periodicidad", "periodo", "réplica", "estado", "detalle"],
        [[JOBS.get(j["job"], j["job"]), every(j.get("every")),
          clock.weekday(j.get("period_start") or j.get("started")), j["holder"],
          state(j["status"], ok=j["status"] != "failed"), (j["detail"] or "")[:160]]
         for j in data["jobs"]])


def _quota(data: dict[str, Any], clock: Clock) -> str:
    quota = data.get("quota") or {}
    if not quota:
        return ""
    now = clock.now or datetime.min
    rows = []
    for tool, q in quota.items():
        said = quotas.reported_text(tool, q.get("reported") or [], now,
                                    fmt=lambda at, _now: f"a las {clock.at(at.isoformat())}"
                                    f" ({quotas.ago(at, now)})")
        rows.append([quotas.tool_label(tool),
                     said or q.get("note") or "sin informe en la última hora",
                     f"{q.get('used', 0)} llamadas ({q.get('window', '')})",
                     q.get("limit") or "—"])
    return "<h2>Cuotas de API</h2>" + table(
        ["servicio", "lo que informa la herramienta (todos los procesos)", "este proceso",
         "límite propio por hora"], rows)
