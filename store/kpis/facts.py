"""The rows each KPI is computed from, read with SQLAlchemy Core (the same SQL on SQLite and
PostgreSQL), each with its local day and its dimension values.

Every read is bounded by the UTC range of the periods asked for (plus the look-back a KPI
needs, e.g. 30 days for reincidence); aggregation happens in ``store.kpis.measures`` in
Python, because medians and percentiles are not portable SQL. Times in the model are naive
UTC; a fact's day is its local day in the KPI zone (``config/kpis.yaml`` ``zona``).
Business hours are NOT recomputed: first-response and close times are the ones T2 and
T5/T6 wrote into the ticket (``first_response_hours``, ``close_hours``, business hours by
config/calendar.yaml); a ticket without them is left out of those KPIs.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Text, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from store.models import (
    ActionLedger,
    ChangeEvent,
    CheckIn,
    Client,
    Contract,
    Incident,
    Meeting,
    Staff,
    SurveyResponse,
    Task,
    Ticket,
    UsageMetric,
)

BAJA = "Baja"  # the client status of a cancelled account (config/podio.yaml clientes.estatus)
ESCALATED = "Escalado"  # the ticket status of an escalation (config/podio.yaml tickets.estatus)
CHECK_IN_KIND = "check-in"  # meetings.kind of a planned check-in (M8)
MEETING_CANCELLED = "cancelled"  # Calendar's event status
# What makes a Seguimiento (config/podio.yaml, app Seguimientos) a check-in done: type
# «Check-in» and resultado «Realizado» or empty. One definition for the KPI and M8's table.
DONE_KIND, DONE_OUTCOME = "Check-in", "Realizado"
RISK_RULE = "m1-salud-cliente"  # whose Podio tasks are the at-risk alerts
TASK_ACTION = "podio.tarea"
RENEWED = "Renovado"
RENEWAL_KIND = "Renovación"
NEW_KIND = "Nuevo"
LIVE_CONTRACT = ("Vigente", "En renovación", "Renovado")
CANCELLED_CONTRACT = "Cancelado"
# A renewal contract counts for a contract due on D if it starts from this many days before.
RENEWAL_LEAD_DAYS = 90

Dims = dict[str, tuple[str, str]]  # dimension -> (stable key, label)


@dataclass(frozen=True)
class Person:
    id: int
    key: str
    name: str
    role: str
    region: str | None


@dataclass(frozen=True)
class Account:
    id: int
    source_id: str
    name: str
    segment: str | None
    region: str | None
    am_id: int | None
    csm_id: int | None
    status: str | None
    signed_on: date | None
    product: str | None
    mrr: float | None
    health_score: float | None
    health_band: str | None
    edited_at: datetime | None
    filled: dict[str, bool]


@dataclass(frozen=True)
class TicketFact:
    id: int
    source_id: str
    title: str | None
    client_id: int | None
    am_id: int | None
    responsible_id: int | None
    priority: str | None
    module: str | None
    status: str | None
    channel: str | None
    jira_key: str | None
    opened_at: datetime | None
    first_response_at: datetime | None
    closed_at: datetime | None
    first_response_hours: float | None
    close_hours: float | None
    escalated: bool
    rating: float | None


@dataclass(frozen=True)
class AnswerFact:
    id: int
    kind: str
    submitted_at: datetime
    score: float
    comment: str | None
    email: str | None
    client_id: int | None
    ticket_id: int | None
    ticket_source_id: str | None
    responsible_id: int | None


@dataclass(frozen=True)
class ContractFact:
    id: int
    source_id: str
    client_id: int | None
    kind: str | None
    starts_on: date | None
    ends_on: date | None
    amount: float | None
    currency: str | None
    status: str | None


@dataclass(frozen=True)
class TaskFact:
    id: int
    responsible_id: int | None
    client_id: int | None
    due_on: date | None
    status: str | None
    completed_at: datetime | None
    created_at: datetime | None


@dataclass
class Facts:
    """Everything the KPIs of one range read, loaded once."""

    zone: ZoneInfo
    start: date
    end: date  # inclusive
    now: datetime
    people: dict[int, Person] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    tickets: list[TicketFact] = field(default_factory=list)
    answers: list[AnswerFact] = field(default_factory=list)
    contracts: list[ContractFact] = field(default_factory=list)
    # client id -> [(instant, old status, new status)], oldest first
    status_changes: dict[int, list[tuple[datetime, str | None, str | None]]] = field(
        default_factory=dict)
    planned_check_ins: list[tuple[int, datetime]] = field(default_factory=list)  # (client, at)
    done_check_ins: list[tuple[int, datetime]] = field(default_factory=list)
    usage: list[tuple[int, date, int | None]] = field(default_factory=list)  # client, week, kf
    tasks: list[TaskFact] = field(default_factory=list)
    risk_alerts: list[tuple[int | None, datetime, TaskFact | None]] = field(default_factory=list)

    # instant -> local day, shared by the windows of these facts (a zone conversion costs
    # microseconds and the KPIs ask for the same instants many times).
    days: dict[datetime, date] = field(default_factory=dict)
    # What the KPIs of one window (one period) share: the facts of the period by kind and by
    # dimension value, computed once (store.kpis.measures.Ctx.cached).
    memo: dict[Any, Any] = field(default_factory=dict)

    def day(self, instant: datetime) -> date:
        """The local day of a naive-UTC instant."""
        found = self.days.get(instant)
        if found is None:
            found = self.days[instant] = instant.replace(tzinfo=UTC).astimezone(
                self.zone).date()
        return found

    def window(self, start: date, end: date, lookback_days: int) -> Facts:
        """The same facts cut to what local days ``start``..``end`` can use (tickets and
        answers of the range and ``lookback_days`` before): each period reads its own slice
        instead of every fact of a year."""
        lo, hi = utc_bounds(start - timedelta(days=lookback_days), end, self.zone)
        lo_here = utc_bounds(start, end, self.zone)[0]

        def inside(instant: datetime | None, low: datetime = lo) -> bool:
            return instant is not None and low <= instant < hi

        cut = copy.copy(self)
        cut.memo = {}
        cut.tickets = [t for t in self.tickets if inside(t.opened_at)
                       or inside(t.first_response_at) or inside(t.closed_at)]
        cut.answers = [a for a in self.answers if inside(a.submitted_at, lo_here)]
        cut.planned_check_ins = [c for c in self.planned_check_ins if inside(c[1], lo_here)]
        cut.done_check_ins = [c for c in self.done_check_ins if inside(c[1], lo_here)]
        cut.usage = [u for u in self.usage if start <= u[1] <= end]
        cut.tasks = [t for t in self.tasks if t.due_on is not None and start <= t.due_on <= end]
        cut.risk_alerts = [r for r in self.risk_alerts if inside(r[1], lo_here)]
        return cut

    @functools.cached_property
    def contracts_by_client(self) -> dict[int | None, list[ContractFact]]:
        out: dict[int | None, list[ContractFact]] = defaultdict(list)
        for contract in self.contracts:
            out[contract.client_id].append(contract)
        return dict(out)


def utc_bounds(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The naive-UTC instants [from, to) of local days start..end (inclusive)."""
    def at(day: date) -> datetime:
        local = datetime(day.year, day.month, day.day, tzinfo=zone)
        return local.astimezone(UTC).replace(tzinfo=None)

    return at(start), at(end + timedelta(days=1))


def load(session: Session, start: date, end: date, *, zone: str, now: datetime,
         lookback_days: int, crm_fields: list[str]) -> Facts:
    """Read the facts of local days ``start``..``end`` (and ``lookback_days`` before)."""
    tz = ZoneInfo(zone)
    facts = Facts(tz, start, end, now)
    lo, hi = utc_bounds(start - timedelta(days=lookback_days), end, tz)
    facts.people = _people(session)
    facts.accounts = _accounts(session, crm_fields)
    facts.tickets = _tickets(session, lo, hi)
    facts.answers = _answers(session, lo, hi)
    facts.contracts = _contracts(session)
    facts.status_changes = _status_changes(session)
    facts.planned_check_ins, facts.done_check_ins = _check_ins(session, lo, hi)
    facts.usage = _usage(session, start - timedelta(days=7), end)
    facts.tasks = _tasks(session, start, end)
    facts.risk_alerts = _risk_alerts(session, lo, hi)
    return facts


def _people(session: Session) -> dict[int, Person]:
    rows = session.execute(select(Staff.id, Staff.key, Staff.name, Staff.role, Staff.region))
    return {r.id: Person(r.id, r.key, r.name, r.role, r.region) for r in rows}


def _accounts(session: Session, crm_fields: list[str]) -> dict[int, Account]:
    columns = [getattr(Client, name) for name in crm_fields]
    stmt = select(Client.id, Client.source_id, Client.name, Client.segment, Client.region,
                  Client.am_id, Client.csm_id, Client.status, Client.signed_on, Client.product,
                  Client.mrr, Client.health_score, Client.health_band,
                  Client.source_updated_at, *columns).where(Client.deleted_at.is_(None))
    out: dict[int, Account] = {}
    for row in session.execute(stmt):
        values = row._mapping
        filled = {name: values[getattr(Client, name)] not in (None, "") for name in crm_fields}
        out[row.id] = Account(row.id, row.source_id, row.name or f"Cliente {row.source_id}",
                              row.segment, row.region, row.am_id, row.csm_id, row.status,
                              row.signed_on, row.product,
                              None if row.mrr is None else float(row.mrr), row.health_score,
                              row.health_band, row.source_updated_at, filled)
    return out


def _escalated_ticket_ids(session: Session, ticket_ids: set[int]) -> set[int]:
    """Tickets with a Jira incident or «Escalado» anywhere in their status history."""
    out: set[int] = {int(r[0] or 0) for r in session.execute(
        select(Incident.ticket_id).where(Incident.ticket_id.is_not(None)))}
    pattern = f"%{ESCALATED}%"
    events = session.execute(select(ChangeEvent.entity_id, ChangeEvent.changes).where(
        ChangeEvent.entity == "ticket", cast(ChangeEvent.changes, Text).like(pattern)))
    for entity_id, changes in events:
        values = _json(changes).get("status") or []
        if ESCALATED in values:
            out.add(entity_id)
    return out & ticket_ids


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def _tickets(session: Session, lo: datetime, hi: datetime) -> list[TicketFact]:
    stmt = select(Ticket.id, Ticket.source_id, Ticket.title, Ticket.client_id, Ticket.am_id,
                  Ticket.responsible_id, Ticket.priority, Ticket.module, Ticket.status,
                  Ticket.channel, Ticket.jira_key, Ticket.opened_at, Ticket.first_response_at,
                  Ticket.closed_at, Ticket.first_response_hours, Ticket.close_hours,
                  Ticket.rating).where(
        Ticket.deleted_at.is_(None),
        or_(and_(Ticket.opened_at >= lo, Ticket.opened_at < hi),
            and_(Ticket.first_response_at >= lo, Ticket.first_response_at < hi),
            and_(Ticket.closed_at >= lo, Ticket.closed_at < hi)))
    rows = list(session.execute(stmt))
    escalated = _escalated_ticket_ids(session, {r.id for r in rows})
    return [TicketFact(r.id, r.source_id, r.title, r.client_id, r.am_id, r.responsible_id,
                       r.priority, r.module, r.status, r.channel, r.jira_key, r.opened_at,
                       r.first_response_at, r.closed_at, r.first_response_hours, r.close_hours,
                       r.id in escalated or bool(r.jira_key), r.rating) for r in rows]


def _answers(session: Session, lo: datetime, hi: datetime) -> list[AnswerFact]:
    stmt = (select(SurveyResponse.id, SurveyResponse.kind, SurveyResponse.submitted_at,
                   SurveyResponse.score, SurveyResponse.comment, SurveyResponse.email,
                   func.coalesce(SurveyResponse.client_id, Ticket.client_id).label("client"),
                   SurveyResponse.ticket_id, SurveyResponse.ticket_source_id,
                   Ticket.responsible_id)
            .outerjoin(Ticket, Ticket.id == SurveyResponse.ticket_id)
            .where(SurveyResponse.deleted_at.is_(None),
                   SurveyResponse.kind.in_(("csat", "nps")),
                   SurveyResponse.score.is_not(None),
                   SurveyResponse.submitted_at >= lo, SurveyResponse.submitted_at < hi))
    return [AnswerFact(r.id, r.kind, r.submitted_at, float(r.score), r.comment, r.email,
                       r.client, r.ticket_id, r.ticket_source_id, r.responsible_id)
            for r in session.execute(stmt)]


def _contracts(session: Session) -> list[ContractFact]:
    stmt = select(Contract.id, Contract.source_id, Contract.client_id, Contract.kind,
                  Contract.starts_on, Contract.ends_on, Contract.amount, Contract.currency,
                  Contract.status).where(Contract.deleted_at.is_(None))
    return [ContractFact(r.id, r.source_id, r.client_id, r.kind, r.starts_on, r.ends_on,
                         None if r.amount is None else float(r.amount), r.currency, r.status)
            for r in session.execute(stmt)]


def _status_changes(session: Session) -> dict[int, list[tuple[datetime, str | None, str | None]]]:
    """Every client status change seen, oldest first (a created event counts: old None)."""
    out: dict[int, list[tuple[datetime, str | None, str | None]]] = defaultdict(list)
    stmt = select(ChangeEvent.entity_id, ChangeEvent.changes, ChangeEvent.changed_at,
                  ChangeEvent.seen_at).where(
        ChangeEvent.entity == "cliente", cast(ChangeEvent.changes, Text).like('%"status"%')
    ).order_by(ChangeEvent.id)
    for entity_id, changes, changed_at, seen_at in session.execute(stmt):
        values = _json(changes).get("status")
        if isinstance(values, list) and len(values) == 2:
            out[entity_id].append((changed_at or seen_at, values[0], values[1]))
    for changes_of in out.values():
        changes_of.sort(key=lambda c: c[0])
    return dict(out)


def _check_ins(session: Session, lo: datetime, hi: datetime
               ) -> tuple[list[tuple[int, datetime]], list[tuple[int, datetime]]]:
    planned = [(int(r[0] or 0), r[1]) for r in session.execute(
        select(Meeting.client_id, Meeting.starts_at).where(
            Meeting.deleted_at.is_(None), func.lower(Meeting.kind) == CHECK_IN_KIND,
            Meeting.client_id.is_not(None),
            or_(Meeting.status.is_(None), Meeting.status != MEETING_CANCELLED),
            Meeting.starts_at >= lo, Meeting.starts_at < hi)) if r[1] is not None]
    done = [(int(r[0] or 0), r[1]) for r in session.execute(
        select(CheckIn.client_id, CheckIn.happened_at).where(
            check_in_done(), CheckIn.client_id.is_not(None),
            CheckIn.happened_at >= lo, CheckIn.happened_at < hi)) if r[1] is not None]
    return planned, done


def check_in_done() -> ColumnElement[bool]:
    """The Seguimientos that are check-ins done (the KPI ``checkins`` and M8's counts)."""
    return and_(CheckIn.deleted_at.is_(None), CheckIn.kind == DONE_KIND,
                or_(CheckIn.outcome.is_(None), CheckIn.outcome == DONE_OUTCOME))


def _usage(session: Session, start: date, end: date) -> list[tuple[int, date, int | None]]:
    return [(int(r[0] or 0), r[1], r[2]) for r in session.execute(
        select(UsageMetric.client_id, UsageMetric.week_start, UsageMetric.key_features).where(
            UsageMetric.deleted_at.is_(None), UsageMetric.client_id.is_not(None),
            UsageMetric.week_start >= start, UsageMetric.week_start <= end))
        if r[1] is not None]


def _task_fact(r: Any) -> TaskFact:
    return TaskFact(r.id, r.responsible_id, r.client_id, r.due_on, r.status, r.completed_at,
                    r.created_at)


_TASK_COLUMNS = (Task.id, Task.responsible_id, Task.client_id, Task.due_on, Task.status,
                 Task.completed_at, Task.created_at)


def _tasks(session: Session, start: date, end: date) -> list[TaskFact]:
    return [_task_fact(r) for r in session.execute(select(*_TASK_COLUMNS).where(
        Task.deleted_at.is_(None), Task.due_on >= start, Task.due_on <= end))]


def _risk_alerts(session: Session, lo: datetime, hi: datetime
                 ) -> list[tuple[int | None, datetime, TaskFact | None]]:
    """M1's at-risk tasks created in the range: (client, created, the synced task or None).
    The ledger's ``external_ref`` of a done podio.tarea is «tarea <task id>»."""
    rows = list(session.execute(select(
        ActionLedger.target, ActionLedger.external_ref, ActionLedger.created_at,
        ActionLedger.payload).where(
        ActionLedger.rule_id == RISK_RULE, ActionLedger.action == TASK_ACTION,
        ActionLedger.status == "done", ActionLedger.created_at >= lo,
        ActionLedger.created_at < hi)))
    ids = {ref.split()[-1] for _t, ref, _c, _p in rows if ref and ref.split()[-1].isdigit()}
    tasks = {}
    if ids:
        tasks = {r.source_id: _task_fact(r) for r in session.execute(
            select(Task.source_id, *_TASK_COLUMNS).where(Task.source == "podio",
                                                         Task.source_id.in_(ids)))}
    out: list[tuple[int | None, datetime, TaskFact | None]] = []
    for _target, ref, created, payload in rows:
        task_id = ref.split()[-1] if ref else None
        client = _payload_entity(payload)
        out.append((client, created, tasks.get(task_id) if task_id else None))
    return out


def _payload_entity(payload: Any) -> int | None:
    """The client id a ledger row was for (the rule entity id kept in its payload)."""
    match = _json(payload).get("match")
    value = match.get("entity_id") if isinstance(match, dict) else None
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None
