"""The account-management part of `saeko-sync demo`: the situations staged in the tools after
the simulated morning (through ``StaffSimulator``, as people do), the Monday on which the
schedules run, and the lines that report M1's first scoring and M7's escalations."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from rules.cycle import CycleReport
from rules.ledger import DONE
from sandbox.activity import StaffSimulator
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.models import ActionLedger, Staff

SCHEDULE_ZONE = ZoneInfo("America/Tijuana")  # the zone of the shipped schedules
SCHEDULE_TIME = time(12, 5)  # after M11's 12:00; M2 and M13 ran at 9:00 the same morning
M1 = "m1-salud-cliente"
# How many of each situation the demo stages (a few: enough to be seen in the tables).
CRITICAL, DETRACTORS, OVERDUE, DECISION_MAKERS, CHECK_INS, DROPS = 2, 2, 3, 2, 2, 2
PAYMENTS = 1  # a client with overdue invoices pays one
CONTRACTS_DUE = ((20, "Vigente"), (22, "Vigente"), (50, "Vigente"))  # days ahead, status
M8_CHANGES = ("reassign_am", "client_lost")  # one client to another AM, one in «Baja»
M8 = "m8-"  # the prefix of M8's rules (meetings and check-ins in Calendar)
NEW_CLIENTS = (("Colegio Nuevo Horizonte", "Tijuana", "Estándar"),
               ("Instituto Nuevo Bajío", "Bajío", "TOP"))


def stage_accounts(box: Sandbox, simulator: StaffSimulator, seed: int) -> Counter[str]:
    """Stage the account situations in the tools; returns how many of each were done.

    Deterministic with ``seed``: clients that are healthy now fall into «Crítica» (usage
    drop, a 70-day overdue invoice and an NPS detractor: M1, and M7 to the COO); others get
    a detractor, an overdue invoice, a new decision maker, a check-in or a usage drop; one
    overdue invoice is paid; a few contracts fall due (M2; the stalled ones M7); two new
    clients have no AM (M5); a ticket of a TOP or burbuja client turns «Crítica» (M7)."""
    world = box.world
    podio: Any = box.tools["podio"]
    rng = random.Random(seed)
    active = [c for c in world.clients if c.am and c.status == "Activo"]
    rng.shuffle(active)

    def band(client_key: int) -> str | None:
        value = podio.values(podio_item_id("clientes", client_key)).get("banda-salud")
        return str(value) if value else None

    healthy = [c for c in active if not c.declining and band(c.key) in ("Sana", "Atención")]
    critical = healthy[:CRITICAL]
    rest = [c for c in active if c not in critical]
    done: Counter[str] = Counter()

    def act(action: str, target: int | None = None, **details: object) -> None:
        outcome = simulator.act(action, target, **details)
        done[action if ": skipped" not in outcome else "skipped"] += 1

    def item(client_key: int) -> int:
        return podio_item_id("clientes", client_key)

    def directivo(client_key: int) -> int | None:
        schools = {s.key for s in world.schools if s.client_key == client_key}
        return next((u.key for u in world.users if u.school_key in schools
                     and u.role == "Directivo"), None)

    for client in critical:
        act("usage_drop", item(client.key), factor=0.35)
        act("overdue_invoice", client=item(client.key), days=70)
        if (user := directivo(client.key)) is not None:
            act("nps", user, score=2, reason="Estamos evaluando otras opciones")
    for client in rest[:DETRACTORS]:
        if (user := directivo(client.key)) is not None:
            act("nps", user, score=3, reason="El soporte tarda demasiado")
    rest = rest[DETRACTORS:]
    for client in rest[:OVERDUE]:
        act("overdue_invoice", client=item(client.key), days=35)
    rest = rest[OVERDUE:]
    for client in rest[:DECISION_MAKERS]:
        act("decision_maker", item(client.key))
    rest = rest[DECISION_MAKERS:]
    at_risk = [c for c in rest if band(c.key) in ("En riesgo", "Crítica")]
    for client in (at_risk + [c for c in rest if c not in at_risk])[:CHECK_INS]:
        act("check_in", item(client.key))
        rest.remove(client)
    for client in rest[:DROPS]:
        act("usage_drop", item(client.key), factor=0.55)
    rest = rest[DROPS:]
    morosos = {i.client_key for i in world.invoices if i.status == "Vencida"}
    for client in [c for c in rest if c.key in morosos][:PAYMENTS]:
        act("pay_invoice", client=item(client.key))
        rest.remove(client)
    for (days, status), client in zip(CONTRACTS_DUE, rest, strict=False):
        act("contract_due", client=item(client.key), days=days, status=status)
    for name, region, segment in NEW_CLIENTS:
        act("new_client", name=name, region=region, segment=segment)
    # M8: the plan of two check-ins changes: a client goes to another AM, one leaves.
    for action, client in zip(M8_CHANGES, rest[len(CONTRACTS_DUE):], strict=False):
        act(action, item(client.key))
    # M7: an agent raises a ticket of a TOP or burbuja client to «Crítica».
    special = [c for c in world.clients if (c.segment == "TOP" or c.burbuja)
               and c.status != "Baja"]
    for client in special:
        before = done["critical_ticket"]
        act("critical_ticket", client=item(client.key))
        if done["critical_ticket"] > before:
            break
        done["skipped"] -= 1  # that client had no open ticket: try the next
    return +done  # without the zero counts


def schedules_moment(after: datetime,
                     is_business: Callable[[datetime], bool] | None = None) -> datetime:
    """The next Monday at 12:05 in Tijuana after ``after`` (naive UTC), as naive UTC; a
    Monday that is not a business day (``is_business(instant)`` false) is skipped."""
    local = after.replace(tzinfo=UTC).astimezone(SCHEDULE_ZONE)
    day = local.date() + timedelta(days=(7 - local.weekday()) % 7)
    while True:
        moment = datetime.combine(day, SCHEDULE_TIME, tzinfo=SCHEDULE_ZONE)
        utc = moment.astimezone(UTC).replace(tzinfo=None)
        if moment > local and (is_business is None or is_business(utc)):
            return utc
        day += timedelta(days=7)


def _done(db: Database, since: datetime, until: datetime | None = None
          ) -> list[ActionLedger]:
    with db.session() as s:
        query = select(ActionLedger).where(ActionLedger.created_at >= since,
                                           ActionLedger.status == DONE)
        if until is not None:
            query = query.where(ActionLedger.created_at < until)
        return list(s.scalars(query.order_by(ActionLedger.id)))


def first_scoring_line(db: Database, switched: CycleReport, until: datetime) -> str | None:
    """M1's first scoring (the switch-on cycle) in one line, or None without M1."""
    rows = [r for r in _done(db, switched.started_at, until) if r.rule_id == M1]
    if M1 not in switched.rules and not rows:
        return None
    scored = {r.target for r in rows if r.action == "podio.actualizar"}
    tasks = sum(r.action == "podio.tarea" for r in rows)
    return (f"M1 · primera calificación al activar las reglas: {len(scored)} clientes "
            f"calificados (salud, banda y motivos escritos en Podio), {tasks} tareas para "
            "los AMs de los que ya estaban en riesgo; esa primera calificación no escala a "
            "la COO. La tabla de abajo muestra solo lo que cambió después.")


def escalations_line(db: Database, report: CycleReport) -> str:
    """M7: every task and email for the COO in this cycle, whichever rule made it."""
    with db.session() as s:
        coo = list(s.scalars(select(Staff).where(Staff.role == "coo")))
    users = {p.podio_user_id for p in coo if p.podio_user_id is not None}
    emails = {p.email.lower() for p in coo}
    by_rule: Counter[str] = Counter()
    tasks = mails = 0
    for row in _done(db, report.started_at):
        args = (row.payload or {}).get("args") or {}
        if row.action == "podio.tarea" and args.get("responsible_user_id") in users:
            tasks += 1
        elif row.action == "gmail.enviar" and emails & {str(t).lower()
                                                       for t in args.get("to") or []}:
            mails += 1
        else:
            continue
        by_rule[str(row.rule_id)] += 1
    if not by_rule:
        return "M7 · escalamientos a la COO en este ciclo: ninguno."
    rules = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
    return (f"M7 · escalamientos a la COO en este ciclo (de todas las reglas): {tasks} "
            f"tareas y {mails} correos; efectos por regla: {rules}.")


def meetings_line(db: Database, since: datetime, until: datetime | None = None,
                  title: str = "al activar las reglas") -> str | None:
    """M8's Calendar effects between ``since`` and ``until`` in one line: the events
    created (by kind), moved and cancelled; None without M8's rules or effects."""
    rows = [r for r in _done(db, since, until) if str(r.rule_id).startswith(M8)
            and r.action == "calendario.reunion"]
    if not rows:
        return None
    kinds: Counter[str] = Counter()
    moved = cancelled = 0
    for row in rows:
        args = (row.payload or {}).get("args") or {}
        cancelled += len(args.get("cancel") or [])
        if args.get("change") == "mover":
            moved += 1
        elif args.get("event"):
            kinds[str(args.get("kind"))] += 1
    names = {"check-in": "check-ins", "operaciones": "reunión operativa",
             "revision-mesa": "revisión de la mesa", "uno-a-uno": "1:1"}
    made = ", ".join(f"{n} {names.get(k, k)}" for k, n in sorted(kinds.items()))
    created = sum(kinds.values())

    def n(count: int, one: str, several: str) -> str:
        return f"{count} {one if count == 1 else several}"

    return (f"M8 · reuniones en Google Calendar {title}: {n(created, 'creada', 'creadas')} "
            f"con Meet ({made or 'ninguna'}), {n(moved, 'movida', 'movidas')} (otro AM, otro "
            f"horario) y {n(cancelled, 'cancelada', 'canceladas')} (cliente en «Baja», sin "
            "AM o AM inactivo); `saeko-sync reuniones` muestra los check-ins por AM.")
