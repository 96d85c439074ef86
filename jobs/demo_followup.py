"""M6's part of `saeko-sync demo`: what the open-case follow-up did in a cycle, in one line
(reminders by target, the desk lead's emails, the escalations to the COO, the digests)."""

from __future__ import annotations

from collections import Counter

from jobs.demo_accounts import _done
from rules.cycle import CycleReport
from store.db import Database

FIRST_RESPONSE, RESOLUTION = "m6-sin-primera-respuesta", "m6-resolucion-vencida"
DIGEST = "m6-resumen-diario"
REMINDERS = ("podio.comentario", "podio.tarea")


def _n(count: int, one: str, several: str) -> str:
    return f"{count} {one if count == 1 else several}"


def followup_line(db: Database, report: CycleReport) -> str | None:
    """M6 in this cycle in one line; None when it did nothing (or is not loaded)."""
    rows = [r for r in _done(db, report.started_at)
            if str(r.rule_id).startswith("m6-")]
    if not rows:
        return None
    reminders: Counter[str] = Counter()
    tickets: set[str] = set()
    lead = coo = 0
    digests: list[str] = []
    for row in rows:
        escalation = row.idempotency_key.startswith("m7|esc:")
        if row.rule_id == DIGEST:
            digests.append(str(((row.payload or {}).get("args") or {}).get("subject", "")))
        elif escalation:
            coo += row.action == "gmail.enviar"
        elif row.action in REMINDERS:
            reminders[str(row.rule_id)] += 1
            tickets.add(str(row.target))
        elif row.action == "gmail.enviar":
            lead += 1
    parts = [f"{_n(sum(reminders.values()), 'recordatorio', 'recordatorios')} al responsable "
             f"({reminders[FIRST_RESPONSE]} sin primera respuesta, {reminders[RESOLUTION]} "
             f"de resolución, en {_n(len(tickets), 'ticket', 'tickets')})",
             f"{_n(lead, 'aviso', 'avisos')} al líder de la mesa",
             f"{_n(coo, 'escalamiento', 'escalamientos')} a la COO (M7)"]
    if digests:
        parts.append(f"{_n(len(digests), 'resumen diario', 'resúmenes diarios')} por agente "
                     f"(«{digests[0]}»" + (f" y {len(digests) - 1} más)" if len(digests) > 1
                                           else ")"))
    return "M6 · seguimiento de casos abiertos en este ciclo: " + ", ".join(parts) + "."
