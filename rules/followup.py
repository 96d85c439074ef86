"""What M6 (open-case follow-up) reads, exposed to rules as functions: which threshold of
its service target a ticket has reached, an agent's open cases ordered by urgency, and a
ticket's link in Podio.

The targets are the desk's SLA of ``config/kpis.yaml`` (section «sla»: first response and
resolution in business hours, per priority), the same the SLA KPI measures, so a reminder
and the dashboard never disagree about what «late» means. Elapsed time is counted in
business hours (``config/calendar.yaml``) from the ticket's opening to now.

- A threshold is a multiple of the target (``[1, 2, 4]``: the target, twice it, four times
  it). ``umbral_sla`` gives the highest one reached now, so after downtime only the current
  threshold is reminded (like M2's windows), never the ones skipped.
- A ticket still waits for its first response while it has no first-response date, its
  estatus is empty or «Nuevo» and it has no answer (T2's rule for «answered», so a reply
  whose T2 write has not landed yet does not count as late).
- An agent's open cases are the live tickets they are responsible for whose estatus is not
  a closed one; the most urgent first: the largest share of its pending target used up
  (first response while unanswered, resolution after), then priority, then age.

Read-only over the cycle's session; each look-up is made once per cycle (``env.memo``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from rules.data import Loader, Record
from rules.functions import Env, function, store_session
from store.kpis import config as kpis_config
from store.models import Ticket

FIRST_RESPONSE, RESOLUTION = "primera_respuesta", "resolucion"
KINDS = (FIRST_RESPONSE, RESOLUTION)
# The estatus that end a case: T5/T6 close it, or hand it to the AM.
CLOSED = ("Cerrado", "Enviado a AM")
PRIORITY_RANK = {"Crítica": 0, "Alta": 1, "Media": 2, "Baja": 3}
_MEMO = "followup"


def _sla(env: Env) -> kpis_config.Sla:
    if env.config_dir is None:
        raise ValueError("los objetivos de M6 están en config/kpis.yaml (sección «sla»): "
                         "solo funciona en un ciclo de reglas")
    memo: dict[str, Any] = env.memo.setdefault(_MEMO, {})
    if "sla" not in memo:
        memo["sla"] = kpis_config.load(env.config_dir).sla
    sla: kpis_config.Sla = memo["sla"]
    return sla


def _target(env: Env, priority: Any, kind: str) -> float:
    first, close = _sla(env).targets(priority if isinstance(priority, str) else None)
    return first if kind == FIRST_RESPONSE else close


def awaiting_first_response(ticket: Record) -> bool:
    """T2's «not answered yet»: no first-response date, estatus empty or «Nuevo», no answer."""
    return (ticket.get("fecha_primera_respuesta") is None
            and ticket.get("estatus") in (None, "", "Nuevo")
            and not ticket.get("respuesta"))


def _multiples(value: Any) -> list[float]:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("los umbrales van en una lista de múltiplos del objetivo, p. ej. en "
                         "datos:  umbrales: [1, 2, 4]")
    try:
        multiples = sorted(float(m) for m in value)
    except (TypeError, ValueError):
        raise ValueError("cada umbral es un número (1 = el objetivo, 2 = el doble…)") from None
    if multiples[0] <= 0:
        raise ValueError("los umbrales son múltiplos del objetivo mayores que cero")
    return multiples


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


@function("umbral_sla", 4, 4,
          "M6: el umbral más alto que alcanzó un ticket de su objetivo de servicio "
          "(config/kpis.yaml, «sla», por prioridad), en horas hábiles desde su apertura "
          "hasta ahora: la apertura, la prioridad, el tipo ('primera_respuesta' o "
          "'resolucion') y los múltiplos del objetivo; .multiplo, .nivel (1 el primero), "
          ".ultimo, .objetivo, .limite (horas), .horas y .desde (cuándo lo alcanzó); vacío "
          "si no alcanzó ninguno: "
          "umbral_sla(ticket.fecha_apertura, ticket.prioridad, 'primera_respuesta', "
          "datos.umbrales).nivel")
def _threshold(env: Env, opened: Any, priority: Any, kind: Any, multiples: Any
               ) -> dict[str, Any] | None:
    if kind not in KINDS:
        raise ValueError(f"tipo {kind!r} desconocido: usa 'primera_respuesta' o 'resolucion'")
    steps = _multiples(multiples)
    if not isinstance(opened, datetime):
        return None
    hours = env.calendar.business_hours_between(opened, env.now, env.zone)
    target = _target(env, priority, str(kind))
    reached = [i for i, m in enumerate(steps) if hours >= m * target]
    if not reached:
        return None
    level = reached[-1]
    limit = steps[level] * target
    return {"tipo": kind, "multiplo": _number(steps[level]), "nivel": level + 1,
            "ultimo": level == len(steps) - 1, "objetivo": _number(target),
            "limite": _number(limit), "horas": round(hours, 1),
            "desde": env.calendar.add_business_hours(opened, limit, env.zone)}


@function("reglas_encendidas", 0, 0,
          "cuándo se encendieron las reglas en esta base de datos (su primer ciclo de "
          "reglas); vacío si todavía no: umbral_sla(…).desde > reglas_encendidas() avisa solo "
          "lo que pasó después (M6: una base nueva no repite los avisos de antes)")
def _switched_on(env: Env) -> datetime | None:
    from rules.event_phase import RULES_SWITCHED_ON
    from store.models import StoreMeta

    memo: dict[str, Any] = env.memo.setdefault(_MEMO, {})
    if "switched_on" not in memo:
        row = store_session(env, "reglas_encendidas").get(StoreMeta, RULES_SWITCHED_ON)
        at = (row.value or {}).get("at") if row is not None else None
        memo["switched_on"] = datetime.fromisoformat(at) if at else None
    value: datetime | None = memo["switched_on"]
    return value


def _links(env: Env, ids: list[int]) -> dict[int, str]:
    """Store id -> the ticket's Podio link (the item's own ``link`` as synced)."""
    from store.entities import item_url

    session = store_session(env, "enlace_podio")
    memo: dict[int, str] = env.memo.setdefault(_MEMO, {}).setdefault("links", {})
    wanted = [i for i in ids if i not in memo]
    for start in range(0, len(wanted), 900):
        for row in session.execute(select(Ticket.id, Ticket.source_id, Ticket.raw)
                                   .where(Ticket.id.in_(wanted[start:start + 900]))):
            memo[row.id] = item_url(row.source_id, row.raw)
    return {i: memo[i] for i in ids if i in memo}


@function("enlace_podio", 1, 1,
          "el enlace a un ticket en Podio (el del item, como lo da Podio): "
          "enlace_podio(ticket.id)")
def _link(env: Env, ticket_id: Any) -> str | None:
    if ticket_id is None:
        return None
    return _links(env, [int(ticket_id)]).get(int(ticket_id))


def _urgency(env: Env, ticket: Record) -> Record:
    """The ticket with what the digest shows: the pending target, hours, share used, link."""
    kind = FIRST_RESPONSE if awaiting_first_response(ticket) else RESOLUTION
    opened = ticket.get("fecha_apertura")
    hours = env.calendar.business_hours_between(opened, env.now, env.zone) \
        if isinstance(opened, datetime) else 0.0
    target = _target(env, ticket.get("prioridad"), kind)
    share = hours / target if target else 0.0
    return {**ticket, "pendiente": "primera respuesta" if kind == FIRST_RESPONSE
            else "resolución", "sin_respuesta": kind == FIRST_RESPONSE,
            "horas": round(hours, 1), "objetivo": _number(target),
            "veces": round(share, 1), "vencido": share >= 1, "urgencia": share}


@function("casos_abiertos", 1, 2,
          "M6: los tickets abiertos de los que una persona es responsable (estatus que no es "
          "de cierre: «Cerrado», «Enviado a AM», o la lista dada), del más urgente al menos: "
          "la mayor parte usada de su objetivo pendiente (primera respuesta o resolución), "
          "luego prioridad y antigüedad; cada uno con pendiente, sin_respuesta, horas, "
          "objetivo, veces, vencido y enlace: casos_abiertos(personal.id)")
def _open_cases(env: Env, person: Any, closed: Any = None) -> list[Record]:
    person_id = person.get("id") if isinstance(person, dict) else person
    if person_id is None:
        return []
    done = tuple(closed) if isinstance(closed, list | tuple) else CLOSED
    memo: dict[Any, Any] = env.memo.setdefault(_MEMO, {})
    key = ("open", done)
    session = store_session(env, "casos_abiertos")
    if key not in memo:
        rows = session.execute(
            select(Ticket.id, Ticket.responsible_id)
            .where(Ticket.deleted_at.is_(None), Ticket.responsible_id.is_not(None),
                   (Ticket.status.is_(None)) | (Ticket.status.not_in(done)))).all()
        by_person: dict[int, list[int]] = {}
        for ticket_id, responsible in rows:
            if responsible is not None:
                by_person.setdefault(int(responsible), []).append(int(ticket_id))
        memo[key] = by_person
    ids = memo[key].get(int(person_id), [])
    if not ids:
        return []
    records = Loader(session).load("ticket", ids, {"cliente": {}})
    links = _links(env, ids)
    cases = [{**_urgency(env, records[i]), "enlace": links.get(i)} for i in ids
             if i in records]
    cases.sort(key=lambda c: (-c["urgencia"], PRIORITY_RANK.get(c.get("prioridad") or "", 9),
                              c.get("fecha_apertura") or datetime.max, c["id"]))
    return cases
