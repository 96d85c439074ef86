"""Each tool's quota as the tool reports it, shared by every process and replica.

A client notes what the tool says on every response (Podio: ``X-Rate-Limit-Limit`` /
``X-Rate-Limit-Remaining``, reference podio-api.md §3); after each unit of work (a rule
cycle in `serve` or `run`, an inbox batch, doctor's own calls) the process stores the latest
report per tool in ``store_meta`` (key ``quota:<tool>``), keeping the newest per credential
and ceiling whoever wrote it. The status page and `doctor` read it back, so they show the
tool's own figure, which counts every process, replica and person using the same key, and
not only this process's calls.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from connectors import registry
from core.settings import Settings
from store.db import Database, utcnow
from store.models import StoreMeta

log = structlog.get_logger(__name__)

META_PREFIX = "quota:"
# Podio's window is one hour (reference §3): a report older than that says nothing of now.
REPORT_WINDOW = timedelta(hours=1)


def current(settings: Settings, clients: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """tool -> this process's quota report (``Connector.quota``) for every enabled tool that
    has one; ``clients``: the tools' clients built so far (the others count no calls)."""
    out: dict[str, dict[str, Any]] = {}
    for connector in registry.connectors():
        if connector.quota is not None and connector.enabled(settings):
            out[connector.name] = connector.quota(settings, clients.get(connector.name))
    return out


def persist(db: Database, reports: dict[str, dict[str, Any]], holder: str) -> None:
    """Merge what the tools reported into ``store_meta``: per credential and ceiling the
    newest report wins, whichever process made it. Never raises (the status page is not
    worth failing work for)."""
    try:
        with db.session() as session:
            for tool, report in reports.items():
                fresh = report.get("reported") or []
                if not fresh:
                    continue
                row = session.get(StoreMeta, META_PREFIX + tool)
                known = {(r["credential"], r["limit"]): r
                         for r in ((row.value or {}).get("reported", []) if row else [])}
                for entry in fresh:
                    key = (entry["credential"], entry["limit"])
                    if key not in known or entry["at"] >= known[key]["at"]:
                        known[key] = {**entry, "holder": holder}
                value = {"reported": sorted(known.values(), key=lambda r: r["at"])}
                if row is None:
                    session.add(StoreMeta(key=META_PREFIX + tool, value=value,
                                          updated_at=utcnow()))
                else:
                    row.value, row.updated_at = value, utcnow()
    except Exception as exc:  # noqa: BLE001 - a lost report only leaves the page older
        log.warning("quota.persist_failed", error=f"{exc.__class__.__name__}: {exc}")


def stored(db: Database) -> dict[str, list[dict[str, Any]]]:
    """tool -> the stored reports (newest last), from every process."""
    with db.session() as session:
        rows = session.query(StoreMeta).filter(StoreMeta.key.startswith(META_PREFIX)).all()
        return {row.key[len(META_PREFIX):]: list((row.value or {}).get("reported", []))
                for row in rows}


def newest(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest report per credential and ceiling."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(reports, key=lambda r: r["at"]):
        out[(r["credential"], r["limit"])] = r
    return list(out.values())


def credential_label(tool: str, credential: str) -> str:
    """A report's credential as the tool names it for people (``Connector.credential_label``)."""
    try:
        label = registry.connector(tool).credential_label
    except KeyError:
        label = None
    return label(credential) if label is not None else credential


def tool_label(tool: str) -> str:
    return tool.capitalize()


def reported_text(tool: str, reports: list[dict[str, Any]], now: datetime,
                  fmt: Any = None) -> str | None:
    """What the tool said within the last hour, one phrase per credential and ceiling
    ("quedan 694 de 1000 (306 usadas en la hora), hace 2 min"), or None when it said
    nothing that recent. ``fmt`` formats the report's instant (default: "hace N min")."""
    recent = [r for r in newest(reports)
              if now - datetime.fromisoformat(r["at"]) <= REPORT_WINDOW]
    if not recent:
        return None
    parts = []
    for r in sorted(recent, key=lambda r: r["remaining"]):
        at = datetime.fromisoformat(r["at"])
        used = r["limit"] - r["remaining"]
        parts.append(f"{credential_label(tool, r['credential'])}: quedan {r['remaining']} de "
                     f"{r['limit']} ({used} usadas en la hora), {(fmt or ago)(at, now)}")
    return f"{tool_label(tool)} informa " + "; ".join(parts)


def ago(at: datetime, now: datetime) -> str:
    """'hace 3 min', 'hace 2 h', 'hace 5 días' ('ahora' under a minute)."""
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 60:
        return "ahora"
    if seconds < 3600:
        return f"hace {int(seconds // 60)} min"
    if seconds < 86400:
        return f"hace {int(seconds // 3600)} h"
    days = int(seconds // 86400)
    return f"hace {days} día{'s' if days != 1 else ''}"


def doctor_lines(settings: Settings, db: Database, clients: dict[str, Any] | None = None
                 ) -> list[tuple[str, bool, str]]:
    """doctor's quota checks, one per tool: what the tool reported in the last hour (from
    any process), else why there is nothing to show. Failing only when a report says no
    calls are left."""
    now = utcnow()
    try:
        known = stored(db)
    except Exception:  # noqa: BLE001 - no store yet: the tools' own reports only
        known = {}
    lines = []
    for tool, report in current(settings, clients or {}).items():
        merged = [*known.get(tool, []), *report.get("reported", [])]
        text = reported_text(tool, merged, now)
        if text is None:
            text = report.get("note") or (
                f"sin informe de {tool_label(tool)} en la última hora (lo guardan "
                "`saeko-sync serve` y `saeko-sync run` tras cada ciclo)")
        empty = any(r["remaining"] == 0 for r in newest(merged)
                    if now - datetime.fromisoformat(r["at"]) <= REPORT_WINDOW)
        lines.append((f"cuota {tool}", not empty, text))
    return lines
