"""M8's rule action ``calendario.reunion``: bring one meeting series to what its plan wants
(``reunion(tipo, id)``, rules/meetings.py) — create or move its next event, cancel the ones
that no longer belong — and write the ``meetings`` table through.

Sending is idempotent by construction: the event id comes from the occurrence key (a retried
insert answers 409 and the event is read and patched only if it differs), and cancelling an
already cancelled event is a no-op (Calendar's 410). So after a crash between the Calendar
call and the ledger's «done», the look-up (``find``) reads the event: if Calendar already
shows the wanted state the row is done (and the table written through); if not, sending
again converges without a duplicate. An occurrence the store never wrote (a new store on a
calendar M8 already keeps) is adopted as Calendar shows it, not rewritten: the next cycle
compares it with the plan.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.clients import ActionRuntime
from rules.actions.base import (
    BOOLEAN,
    TEXT,
    VALUE,
    ActionType,
    Param,
    PrepareContext,
    Prepared,
    from_json,
    short,
    to_json,
)
from store.models import Meeting, Staff

SOURCE = "calendar"  # rules.meetings.SOURCE: the meetings rows saeko-sync writes
# Event id -> the event as Calendar showed it, when ``_send`` adopted it instead of writing:
# left for ``written``, which the engine calls right after the send, in the same process
# (the ledger's args are re-read from the store in between, so they cannot carry it).
_ADOPTED: dict[str, dict[str, Any]] = {}


def _prepare(values: dict[str, Any], _ctx: PrepareContext) -> Prepared:
    plan = values.get("reunion")
    if not isinstance(plan, dict) or "tipo" not in plan:
        raise ValueError("«reunion» debe ser el plan de una serie: "
                         "{{ reunion('check-in', cliente.id) }}")
    cancel = [str(e) for e in plan.get("cancelar") or []]
    if not plan.get("pendiente"):
        return Prepared({"kind": plan["tipo"], "cancel": [], "event": None},
                        "calendar:" + str(plan.get("clave")), "nada que cambiar",
                        skip_reason="Calendar ya tiene esta reunión como debe estar")
    payload: dict[str, Any] = {"kind": plan["tipo"], "cancel": cancel, "event": None,
                               "change": plan.get("accion")}
    if plan.get("clave"):
        payload["event"] = to_json({
            "key": plan["clave"], "id": plan["evento"], "period": plan.get("periodo"),
            "start": plan["inicio"], "end": plan["fin"],
            "attendees": list(plan.get("invitados") or []),
            "staff_id": plan.get("responsable"), "client_id": plan.get("cliente"),
            "title": values["titulo"], "description": values.get("descripcion") or "",
            "meet": bool(values.get("meet", True)), "known": bool(plan.get("conocido"))})
    what = []
    if payload["event"]:
        what.append(f"evento «{short(values['titulo'], 50)}» el {short(plan['inicio'])}")
    if cancel:
        what.append(f"cancela {len(cancel)} evento(s)")
    target = "calendar:" + (plan.get("clave") or ",".join(cancel))
    return Prepared(payload, target, " y ".join(what) or "nada")


def _send(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str:
    from connectors.google import actions

    client = rt.client("google")
    for event_id in payload.get("cancel") or []:
        actions.cancel_event(client, event_id)
    event = from_json(payload.get("event"))
    if not event:
        return "cancelado " + ",".join(payload.get("cancel") or [])
    if not event.get("known"):
        # The store never wrote this occurrence (a new store on a calendar M8 already
        # keeps, or a write-through lost): adopt the event as Calendar has it, without
        # touching it; the next cycle compares it with the plan and moves it if needed.
        found = actions.read_event(client, event["id"])
        if found is not None:
            _ADOPTED[str(found["id"])] = _shown(found)
            return str(found["id"])
    return str(actions.upsert_event(
        client, marker=f"reunion:{event['key']}", start=event["start"], end=event["end"],
        summary=event["title"], attendees=event["attendees"],
        description=event["description"], meet=event["meet"]))


def _find(rt: ActionRuntime, payload: dict[str, Any], _marker: str) -> str | None:
    """The ref when Calendar already shows what the payload wants, else None (sending again
    is safe: it converges)."""
    from connectors.google import actions

    client = rt.client("google")
    for event_id in payload.get("cancel") or []:
        found = actions.read_event(client, event_id)
        if found is not None and found.get("status") != "cancelled":
            return None
    event = from_json(payload.get("event"))
    if not event:
        return "cancelado " + ",".join(payload.get("cancel") or [])
    found = actions.read_event(client, event["id"])
    if found is None or found.get("status") == "cancelled":
        return None
    start = (found.get("start") or {}).get("dateTime")
    end = (found.get("end") or {}).get("dateTime")
    emails = sorted(str(a.get("email", "")).lower() for a in found.get("attendees") or [])
    same = (start is not None and end is not None
            and _naive(start) == event["start"] and _naive(end) == event["end"]
            and emails == sorted(event["attendees"])
            and (not event["meet"] or bool(found.get("hangoutLink"))))
    return str(found["id"]) if same else None


def _shown(found: dict[str, Any]) -> dict[str, Any]:
    """What the meetings row keeps of an event as Calendar shows it."""
    start = (found.get("start") or {}).get("dateTime")
    end = (found.get("end") or {}).get("dateTime")
    return {"start": _naive(start) if start else None, "end": _naive(end) if end else None,
            "status": "cancelled" if found.get("status") == "cancelled" else "confirmed",
            "attendees": sorted(str(a.get("email", "")).lower()
                                for a in found.get("attendees") or [])}


def _naive(text: str) -> datetime:
    from datetime import UTC

    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def written(session: Session, _config: Any, payload: dict[str, Any]) -> None:
    """The meetings rows of a done ``calendario.reunion``: the event (confirmed) with its
    kind, client, staff, times and attendees; the cancelled ones marked so. There is no
    Calendar stream: this write-through is what the table knows."""
    kind = payload.get("kind")
    rows = {r.source_id: r for r in session.scalars(select(Meeting).where(
        Meeting.source == SOURCE,
        Meeting.source_id.in_([*(payload.get("cancel") or []),
                               *([payload["event"]["id"]] if payload.get("event") else [])])))}
    for event_id in payload.get("cancel") or []:
        row = rows.get(event_id)
        if row is not None:
            row.status = "cancelled"
    event = from_json(payload.get("event"))
    if not event:
        return
    row = rows.get(event["id"])
    if row is None:
        row = Meeting(source=SOURCE, source_id=event["id"])
        session.add(row)
    shown = _ADOPTED.pop(event["id"], None) or {
        "start": event["start"], "end": event["end"], "status": "confirmed",
        "attendees": sorted(event["attendees"])}
    row.kind, row.title = kind, str(event["title"])[:300]
    row.client_id = event.get("client_id")
    row.staff_id = _staff_among(session, event.get("staff_id"), shown["attendees"])
    row.starts_at, row.ends_at, row.status = shown["start"], shown["end"], shown["status"]
    row.raw = {"clave": event["key"], "periodo": event.get("period"),
               "invitados": list(shown["attendees"])}
    session.flush()


def _staff_among(session: Session, planned: int | None, attendees: list[str]) -> int | None:
    """The staff member of a row: the planned one, or, for an adopted event that invites
    someone else in that role (its AM changed while the store did not know it), that one."""
    if planned is None:
        return None
    person = session.get(Staff, planned)
    if person is None or person.email.lower() in attendees:
        return planned
    other = session.scalars(select(Staff.id).where(
        Staff.role == person.role, func.lower(Staff.email).in_(attendees))).first()
    return int(other) if other is not None else None


ACTIONS = [
    ActionType("calendario.reunion",
               "Crea, mueve o cancela la próxima reunión de una serie (M8) en Calendar, con "
               "Meet e invitados; una vez por cambio del plan.",
               {"reunion": Param(VALUE, required=True,
                                 doc="el plan de la serie: {{ reunion('check-in', cliente.id) }}"),
                "titulo": Param(TEXT, required=True), "descripcion": Param(TEXT),
                "meet": Param(BOOLEAN, default=True)},
               _prepare, _send, _find, written=written, settings=("GOOGLE_DELEGATED_USER",)),
]
