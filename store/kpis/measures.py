"""One pure function per KPI of ``config/kpis.yaml``: facts of a period -> a value and a
sample size per value of a dimension. Ratios are percentages (0-100); ``n`` is the number
of answers, tickets, contracts or clients the value is computed over (its denominator)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from store.kpis.config import KpiConfig
from store.kpis.facts import (
    BAJA,
    LIVE_CONTRACT,
    NEW_KIND,
    RENEWAL_KIND,
    RENEWAL_LEAD_DAYS,
    RENEWED,
    ContractFact,
    Facts,
    TicketFact,
)
from store.kpis.periods import Period

DimValue = tuple[str, str]  # (stable key, label)
Result = dict[DimValue, tuple[float | None, int]]
T = TypeVar("T")
TOTAL: DimValue = ("total", "Todos")
NO_AM: DimValue = ("sin-am", "Sin AM")
NO_SEGMENT: DimValue = ("sin-segmento", "Sin segmento")
NO_REGION: DimValue = ("sin-region", "Sin región")
NO_CLIENT: DimValue = ("sin-cliente", "Sin cliente")
NO_TEAM: DimValue = ("sin-equipo", "Sin equipo")
PROMOTER_MIN, DETRACTOR_MAX = 9, 6  # NPS: promoters 9-10, detractors 0-6 (SPEC §11)
CSAT_GOOD_MIN = 4  # CSAT: 4-5 of 5 is satisfied (SPEC §11)
P90 = 0.9


class Ctx:
    """Facts, config and the dimension asked for, with the dimension value of a record."""

    def __init__(self, facts: Facts, config: KpiConfig, dim: str, today: date) -> None:
        self.facts, self.config, self.dim, self.today = facts, config, dim, today

    def of(self, client_id: int | None, person_id: int | None = None,
           am_id: int | None = None) -> DimValue | None:
        """The value of this context's dimension for a record of ``client_id`` handled by
        ``person_id`` (None: the dimension does not apply to it)."""
        dim = self.dim
        if dim == "total":
            return TOTAL
        account = self.facts.accounts.get(client_id) if client_id is not None else None
        if dim == "equipo":
            person = self.facts.people.get(person_id) if person_id is not None else None
            if person is None:
                return NO_TEAM
            team = self.config.equipos.get(person.role, person.role)
            return (team, team)
        if dim == "am":
            am = am_id if am_id is not None else (account.am_id if account else None)
            person = self.facts.people.get(am) if am is not None else None
            return (person.key, person.name) if person else NO_AM
        if dim == "cliente":
            return (account.source_id, account.name) if account else NO_CLIENT
        if account is None:
            return NO_SEGMENT if dim == "segmento" else NO_REGION
        if dim == "segmento":
            return (account.segment, account.segment) if account.segment else NO_SEGMENT
        return (account.region, account.region) if account.region else NO_REGION

    def in_period(self, instant: datetime | None, period: Period) -> bool:
        return instant is not None and period.contains(self.facts.day(instant))

    def cached(self, key: Any, make: Callable[[], T]) -> T:
        """``make()`` once per window (period) and key: the KPIs of a period share it."""
        memo = self.facts.memo
        if key not in memo:
            memo[key] = make()
        value: T = memo[key]
        return value

    def tickets_by(self, p: Period, when: str) -> dict[DimValue, list[Any]]:
        """The period's tickets whose ``when`` (opened_at, first_response_at, closed_at)
        falls in it, by this context's dimension."""
        items = self.cached(("tickets", when, p), lambda: [
            t for t in self.facts.tickets if self.in_period(getattr(t, when), p)])
        return self.cached(("tickets", when, p, self.dim), lambda: group(
            items, lambda t: self.of(t.client_id, t.responsible_id, t.am_id)))


def group(items: Iterable[T], key: Callable[[T], DimValue | None]) -> dict[DimValue, list[T]]:
    out: dict[DimValue, list[T]] = defaultdict(list)
    for item in items:
        value = key(item)
        if value is not None:
            out[value].append(item)
    return dict(out)


def pct(part: float, whole: float) -> float | None:
    return None if not whole else 100.0 * part / whole


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default, Excel's PERCENTILE.INC)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _ratio(groups: dict[DimValue, list[T]], good: Callable[[T], bool]) -> Result:
    return {k: (pct(sum(1 for i in v if good(i)), len(v)), len(v)) for k, v in groups.items()}


def _stat(groups: dict[DimValue, list[float]], fn: Callable[[list[float]], float]) -> Result:
    return {k: (fn(v), len(v)) for k, v in groups.items() if v}


# --- satisfaction -----------------------------------------------------------------------


def _answers(c: Ctx, p: Period, kind: str) -> dict[DimValue, list[Any]]:
    def make() -> dict[DimValue, list[Any]]:
        items = [a for a in c.facts.answers
                 if a.kind == kind and c.in_period(a.submitted_at, p)]
        return group(items, lambda a: c.of(a.client_id, a.responsible_id))

    return c.cached(("answers", kind, p, c.dim), make)


def nps(c: Ctx, p: Period) -> Result:
    out: Result = {}
    for key, items in _answers(c, p, "nps").items():
        promoters = sum(1 for a in items if a.score >= PROMOTER_MIN)
        detractors = sum(1 for a in items if a.score <= DETRACTOR_MAX)
        out[key] = (100.0 * (promoters - detractors) / len(items), len(items))
    return out


def csat(c: Ctx, p: Period) -> Result:
    return _ratio(_answers(c, p, "csat"), lambda a: a.score >= CSAT_GOOD_MIN)


def csat_promedio(c: Ctx, p: Period) -> Result:
    return {k: (statistics.fmean(a.score for a in v), len(v))
            for k, v in _answers(c, p, "csat").items()}


# --- the desk ---------------------------------------------------------------------------


def _ticket_hours(c: Ctx, p: Period, when: str, hours: str) -> dict[DimValue, list[float]]:
    def make() -> dict[DimValue, list[float]]:
        grouped = c.tickets_by(p, when)
        out = {k: [float(getattr(t, hours)) for t in v if getattr(t, hours) is not None]
               for k, v in grouped.items()}
        return {k: v for k, v in out.items() if v}

    return c.cached(("hours", when, hours, p, c.dim), make)


def primera_respuesta_promedio(c: Ctx, p: Period) -> Result:
    return _stat(_ticket_hours(c, p, "first_response_at", "first_response_hours"),
                 statistics.fmean)


def primera_respuesta_mediana(c: Ctx, p: Period) -> Result:
    return _stat(_ticket_hours(c, p, "first_response_at", "first_response_hours"),
                 statistics.median)


def primera_respuesta_p90(c: Ctx, p: Period) -> Result:
    return _stat(_ticket_hours(c, p, "first_response_at", "first_response_hours"),
                 lambda v: percentile(v, P90))


def cierre_promedio(c: Ctx, p: Period) -> Result:
    return _stat(_ticket_hours(c, p, "closed_at", "close_hours"), statistics.fmean)


def cierre_mediana(c: Ctx, p: Period) -> Result:
    return _stat(_ticket_hours(c, p, "closed_at", "close_hours"), statistics.median)


def _closed(c: Ctx, p: Period) -> dict[DimValue, list[Any]]:
    return c.tickets_by(p, "closed_at")


def sla_met(config: KpiConfig, t: TicketFact) -> bool | None:
    """Whether a closed ticket met its priority's first-response and resolution targets
    (without a first response recorded, its close counts as one); None if not closed."""
    if t.closed_at is None or t.close_hours is None:
        return None
    first_target, close_target = config.sla.targets(t.priority)
    first = t.first_response_hours if t.first_response_hours is not None else t.close_hours
    return first <= first_target and t.close_hours <= close_target


def sla(c: Ctx, p: Period) -> Result:
    groups = {k: [t for t in v if t.close_hours is not None] for k, v in _closed(c, p).items()}
    return _ratio({k: v for k, v in groups.items() if v}, lambda t: bool(sla_met(c.config, t)))


def fcr(c: Ctx, p: Period) -> Result:
    return _ratio(_closed(c, p), lambda t: not t.escalated)


def reincidencia(c: Ctx, p: Period) -> Result:
    window = timedelta(days=c.config.reincidencia_dias)

    def opened_by_module() -> dict[tuple[int, str], list[datetime]]:
        seen: dict[tuple[int, str], list[datetime]] = defaultdict(list)
        for t in c.facts.tickets:
            if t.client_id is not None and t.module and t.opened_at is not None:
                seen[(t.client_id, t.module)].append(t.opened_at)
        return seen

    seen = c.cached("opened_by_module", opened_by_module)

    def repeat(t: Any) -> bool:
        return any(t.opened_at - window <= other < t.opened_at
                   for other in seen[(t.client_id, t.module)])

    groups = {k: [t for t in v if t.client_id is not None and t.module]
              for k, v in c.tickets_by(p, "opened_at").items()}
    return _ratio({k: v for k, v in groups.items() if v}, repeat)


def _live_accounts(c: Ctx) -> dict[DimValue, list[Any]]:
    return c.cached(("live_accounts", c.dim), lambda: group(
        [a for a in c.facts.accounts.values() if a.status != BAJA], lambda a: c.of(a.id)))


def tickets_por_cuenta(c: Ctx, p: Period) -> Result:
    tickets = c.tickets_by(p, "opened_at")
    return {k: (len(tickets.get(k, [])) / len(v), len(v))
            for k, v in _live_accounts(c).items() if v}


# --- accounts ---------------------------------------------------------------------------


def _status_at(c: Ctx, client_id: int, instant: datetime, current: str | None) -> str | None:
    changes = c.facts.status_changes.get(client_id) or []
    before = [ch for ch in changes if ch[0] < instant]
    if before:
        return before[-1][2]
    if changes:  # its first seen change is later: the status it had before it
        first = changes[0]
        return first[1] if first[1] is not None else ("Activo" if first[2] == BAJA else first[2])
    return current


def _churn(c: Ctx, p: Period) -> dict[DimValue, list[bool]]:
    start = _utc_start(c, p.start)
    end = _utc_start(c, p.end + timedelta(days=1))
    out: dict[DimValue, list[bool]] = defaultdict(list)
    for account in c.facts.accounts.values():
        if account.signed_on is not None and account.signed_on >= p.start:
            continue
        if _status_at(c, account.id, start, account.status) == BAJA:
            continue
        churned = any(start <= at < end and new == BAJA and old != BAJA
                      for at, old, new in c.facts.status_changes.get(account.id) or [])
        key = c.of(account.id)
        if key is not None:
            out[key].append(churned)
    return dict(out)


def _utc_start(c: Ctx, day: date) -> datetime:
    from store.kpis.facts import utc_bounds

    return utc_bounds(day, day, c.facts.zone)[0]


def churn(c: Ctx, p: Period) -> Result:
    return {k: (pct(sum(v), len(v)), len(v)) for k, v in _churn(c, p).items()}


def retencion(c: Ctx, p: Period) -> Result:
    return {k: (None if value is None else 100.0 - value, n)
            for k, (value, n) in churn(c, p).items()}


def renewed(facts: Facts, k: ContractFact) -> bool:
    """«Renovado», or a renewal contract of the same client starting from RENEWAL_LEAD_DAYS
    before this one's end (and after its start)."""
    if k.status == RENEWED:
        return True
    if k.ends_on is None:
        return False
    lead = k.ends_on - timedelta(days=RENEWAL_LEAD_DAYS)
    return any(o.id != k.id and o.kind == RENEWAL_KIND
               and o.starts_on is not None and o.starts_on >= lead
               and (k.starts_on is None or o.starts_on > k.starts_on)
               for o in facts.contracts_by_client.get(k.client_id, []))


def renovaciones(c: Ctx, p: Period) -> Result:
    last = min(p.end, c.today)
    due = [k for k in c.facts.contracts if k.ends_on is not None and p.start <= k.ends_on <= last]
    return _ratio(group(due, lambda k: c.of(k.client_id)), lambda k: renewed(c.facts, k))


def expansion(c: Ctx, p: Period) -> Result:
    contracts = c.facts.contracts
    expanded: set[int] = set()
    for k in contracts:
        if k.client_id is None or k.starts_on is None or not p.contains(k.starts_on):
            continue
        others = [o for o in c.facts.contracts_by_client.get(k.client_id, []) if o.id != k.id]
        if k.kind == NEW_KIND and any(
                o.status in LIVE_CONTRACT and o.starts_on is not None and o.ends_on is not None
                and o.starts_on <= k.starts_on <= o.ends_on for o in others):
            expanded.add(k.client_id)
        if k.kind == RENEWAL_KIND and k.amount is not None:
            previous = [o for o in others if o.ends_on is not None and o.amount is not None
                        and o.ends_on <= k.starts_on + timedelta(days=RENEWAL_LEAD_DAYS)
                        and (o.starts_on is None or o.starts_on < k.starts_on)]
            latest = max(previous, key=lambda o: o.ends_on or date.min) if previous else None
            if latest is not None and (latest.amount or 0.0) < k.amount:
                expanded.add(k.client_id)
    grouped = group(sorted(expanded), lambda cid: c.of(cid))
    out: Result = {k: (float(len(v)), len(v)) for k, v in grouped.items()}
    if c.dim == "total":
        out.setdefault(TOTAL, (0.0, 0))
    return out


def riesgo_a_tiempo(c: Ctx, p: Period) -> Result:
    known = [(cid, task) for cid, created, task in c.facts.risk_alerts
             if task is not None and c.in_period(created, p)]

    def in_time(item: Any) -> bool:
        task = item[1]
        if task.completed_at is None:
            return False
        return task.due_on is None or c.facts.day(task.completed_at) <= task.due_on

    return _ratio(group(known, lambda i: c.of(i[0], i[1].responsible_id)), in_time)


def carga_am(c: Ctx, p: Period) -> Result:
    weights = c.config.pesos_carga
    load: dict[int, list[float]] = defaultdict(list)
    for a in c.facts.accounts.values():
        if a.status != BAJA and a.am_id is not None:
            load[a.am_id].append(weights.get(a.segment or "", 1.0))
    people = c.facts.people
    if c.dim == "am":
        return {(people[am].key, people[am].name) if am in people else NO_AM:
                (sum(v), len(v)) for am, v in load.items()}
    if c.dim == "region":
        by: dict[DimValue, list[float]] = defaultdict(list)
        for am, v in load.items():
            region = people[am].region if am in people else None
            by[(region, region) if region else NO_REGION].append(sum(v))
        return {k: (statistics.fmean(v), len(v)) for k, v in by.items()}
    totals = [sum(v) for v in load.values()]
    return {TOTAL: (statistics.fmean(totals) if totals else None, len(totals))}


def checkins(c: Ctx, p: Period) -> Result:
    planned: dict[int, int] = defaultdict(int)
    done: dict[int, int] = defaultdict(int)
    for client, at in c.facts.planned_check_ins:
        if c.in_period(at, p):
            planned[client] += 1
    for client, at in c.facts.done_check_ins:
        if c.in_period(at, p) and client in planned:
            done[client] += 1
    groups = group(planned, lambda cid: c.of(cid))
    out: Result = {}
    for key, clients in groups.items():
        total = sum(planned[cid] for cid in clients)
        made = sum(min(done[cid], planned[cid]) for cid in clients)
        out[key] = (pct(made, total), total)
    return out


def uso_activo(c: Ctx, p: Period) -> Result:
    weeks: dict[int, list[int | None]] = defaultdict(list)
    for client, week, key_features in c.facts.usage:
        if p.contains(week):
            weeks[client].append(key_features)
    if not weeks:
        return {}

    def active(a: Any) -> bool:
        rows = weeks.get(a.id) or []
        return bool(rows) and all((kf or 0) >= 1 for kf in rows)

    return _ratio(_live_accounts(c), active)


def crm_al_dia(c: Ctx, p: Period) -> Result:
    since = c.facts.now - timedelta(days=c.config.crm.dias)

    def upkept(a: Any) -> bool:
        return all(a.filled.values()) and a.edited_at is not None and a.edited_at >= since

    return _ratio(_live_accounts(c), upkept)


def tareas_a_tiempo(c: Ctx, p: Period) -> Result:
    items = [t for t in c.facts.tasks if t.due_on is not None and p.contains(t.due_on)
             and (t.due_on < c.today or t.completed_at is not None)]

    def in_time(t: Any) -> bool:
        return t.completed_at is not None and c.facts.day(t.completed_at) <= t.due_on

    def key(t: Any) -> DimValue | None:
        if c.dim == "am":
            person = c.facts.people.get(t.responsible_id)
            if person is None or person.role != "am":
                return None
            return c.of(t.client_id, t.responsible_id, t.responsible_id)
        return c.of(t.client_id, t.responsible_id)

    return _ratio(group(items, key), in_time)


def procesos_automatizados(c: Ctx, p: Period) -> Result:
    count = c.config.active_rules
    return {TOTAL: (None if count is None else float(count), count or 0)}


MEASURES: dict[str, Callable[[Ctx, Period], Result]] = {
    fn.__name__: fn for fn in (
        nps, csat, csat_promedio, primera_respuesta_promedio, primera_respuesta_mediana,
        primera_respuesta_p90, cierre_promedio, cierre_mediana, sla, fcr, churn, retencion,
        renovaciones, expansion, riesgo_a_tiempo, carga_am, checkins, tickets_por_cuenta,
        reincidencia, uso_activo, crm_al_dia, tareas_a_tiempo, procesos_automatizados)}
