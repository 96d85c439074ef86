"""What ``asignar_am`` reads from the store for M5's choice (``rules.assignment``): the
client, the active AMs of config/staff.yaml, every AM's weighted load and its latest
automatic assignment. Read-only; one decision per client and cycle, remembered in the
cycle's ``memo`` so that every action of a run (the Podio write, the task, the emails)
names the same AM.

Loads count the assignments of the same cycle: each client's AM is, in this order, the one
in the model (a Podio write already done is written through at once), the one of an
assignment planned in the ledger and not yet in Podio (planned, being sent or failed and
waiting for a retry), or the one decided earlier in this cycle (a dry-run writes nothing).
Clients in «Baja» load nobody.

"Least recently assigned" is read from the action ledger, the record of the assignments
saeko-sync made: the latest write to a client that set its ``am`` (done or on its way).
An AM who never got an account from saeko-sync comes first on a tie. Ledger ids grow with
time, so they order assignments even within one cycle (whose rows share one timestamp)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from rules import ledger as L
from rules.assignment import AmState, choose_am, weighted_loads
from rules.data import Loader, Record
from store.models import ActionLedger, Client

MEMO_KEY = "asignar_am"
NO_LOAD_STATUSES = ("Baja",)
IN_FLIGHT = (L.PLANNED, L.PENDING, L.FAILED)


@dataclass(frozen=True)
class Decision:
    """The AM for one client (a ``personal`` record, or None) and why, in Spanish;
    ``order`` ranks a new assignment among the others (0: nothing was assigned now)."""

    am: Record | None
    text: str
    am_id: int | None = None
    segment: str | None = None
    order: int = 0


@dataclass(frozen=True)
class Assignment:
    """One automatic assignment found in the ledger."""

    client_id: int
    am_id: int
    order: int
    in_flight: bool


def decide(session: Session, memo: dict[str, Any], client_id: Any,
           weights: Mapping[str, float] | None) -> Decision:
    """This cycle's decision for the client (decided now on first use)."""
    decided: dict[int, Decision] = memo.setdefault(MEMO_KEY, {})
    if client_id is None:
        return Decision(None, "No hay cliente.")
    key = int(client_id)
    if key not in decided:
        with session.no_autoflush:
            decided[key] = _decide(session, decided, key, weights)
    return decided[key]


def _decide(session: Session, decided: dict[int, Decision], client_id: int,
            weights: Mapping[str, float] | None) -> Decision:
    staff = Loader(session).load("personal", None, {})
    clients = {row.id: row for row in session.execute(select(
        Client.id, Client.am_id, Client.segment, Client.region, Client.status)
        .where(Client.deleted_at.is_(None)))}
    client = clients.get(client_id)
    if client is None:
        return Decision(None, f"El cliente #{client_id} ya no existe.")
    ledger = _ledger_assignments(session)
    owner = _owners(clients, ledger, decided)
    current = owner.get(client_id)
    if current is not None and current in staff:
        person = staff[current]
        return Decision(person, f"El cliente ya tiene AM: {person['nombre']} (no se cambia).",
                        current, client.segment)
    accounts = [(str(am), clients[c].segment) for c, am in owner.items()
                if clients[c].status not in NO_LOAD_STATUSES]
    loads = weighted_loads(accounts, weights)
    ams = [_state(p, loads, ledger, decided) for p in staff.values()
           if p["rol"] == "am" and p["activo"]]
    choice = choose_am(client.segment, client.region, ams, weights)
    order = max([a.order for a in ledger] + [d.order for d in decided.values()] + [0]) + 1
    chosen = next((p for p in staff.values() if p["clave"] == choice.am), None)
    if chosen is None:
        return Decision(None, choice.text, None, client.segment, order)
    return Decision(chosen, choice.text, chosen["id"], client.segment, order)


def _ledger_assignments(session: Session) -> list[Assignment]:
    """Every automatic AM assignment the ledger holds (done or on its way), oldest first:
    the effects on a client whose model columns (a Podio write's) include ``am_id``."""
    rows = session.execute(select(
        ActionLedger.id, ActionLedger.target, ActionLedger.payload, ActionLedger.status)
        .where(ActionLedger.target.like("cliente:%"),
               ActionLedger.status.in_((*IN_FLIGHT, L.DONE)),
               cast(ActionLedger.payload, Text).like('%"am_id"%'))
        .order_by(ActionLedger.id))
    out = []
    for row in rows:
        columns = ((row.payload or {}).get("args") or {}).get("columns") or {}
        am_id, target = columns.get("am_id"), str(row.target).split(":", 1)[1]
        if am_id is None or not target.isdigit():
            continue
        out.append(Assignment(int(target), int(am_id), row.id,
                              row.status in IN_FLIGHT))
    return out


def _owners(clients: Mapping[int, Any], ledger: list[Assignment],
            decided: Mapping[int, Decision]) -> dict[int, int]:
    """Client id -> its AM's staff id: the model's, else an assignment on its way, else
    this cycle's decision."""
    owner = {c: decision.am_id for c, decision in decided.items()
             if decision.am_id is not None and c in clients}
    owner.update({a.client_id: a.am_id for a in ledger
                  if a.in_flight and a.client_id in clients})
    owner.update({c: row.am_id for c, row in clients.items() if row.am_id is not None})
    return owner


def _state(person: Record, loads: Mapping[str, float], ledger: list[Assignment],
           decided: Mapping[int, Decision]) -> AmState:
    """An AM as ``choose_am`` sees it (loads are keyed by staff id)."""
    mine = [a for a in ledger if a.am_id == person["id"]]
    orders = [a.order for a in mine] + [d.order for d in decided.values()
                                        if d.am_id == person["id"] and d.order]
    last = max(orders) if orders else None
    capacity = person.get("capacidad")
    return AmState(str(person["clave"]), str(person["nombre"]), person.get("region"),
                   None if capacity is None else float(capacity),
                   loads.get(str(person["id"]), 0.0), last)
