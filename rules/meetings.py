"""M8: the meetings saeko-sync keeps in Google Calendar, planned from config/reuniones.yaml
and the store, compared with what it already wrote (the ``meetings`` table).

Four series: the weekly operations meeting (the COO with the AMs), the weekly desk review
(the COO with the agents), the COO's 1:1 with each AM (every N weeks) and each client's
check-in (TOP monthly, Estándar every two months), with the client's AM and contacts.

Each series has at most ONE upcoming occurrence at a time: the next one, created once it
falls within ``horizonte_dias``. ``plan(session, env, kind, entity_id)`` says what the series
of one person or client wants now (its occurrence: key, event id, times, attendees) and
which events of that series must go (a client in «Baja» or without AM, an inactive AM, a
check-in whose period changed with the segment). ``pendiente`` is true while the meetings
table does not show that state; the rules in config/rules/m8-*.yaml act on it through the
``calendario.reunion`` action, which writes the table through once Calendar has it.

Check-in times: each AM's check-ins of a period go to the first free slot (business days ×
``horas``) from ``dias_de_aviso`` days ahead; an event already created keeps its time while
its AM does not change, so a new client never moves another one. Event ids are derived from
the occurrence key (``event_id``), so a retried creation finds the same event.

KPI (``check_in_counts``): a planned check-in is a ``meetings`` row of kind 'check-in' not
cancelled, in the month of its start; it is done when the client has a Seguimiento
(``check_ins``) of type «Check-in» with resultado «Realizado» (or empty) that month.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.yamlconf import load_yaml_model_cached
from rules.functions import Env, function, store_session
from store.kpis.facts import check_in_done
from store.models import CheckIn, Client, Contact, Meeting, School, Staff

CONFIG_FILE = "reuniones.yaml"
SOURCE = "calendar"
CHECK_IN = "check-in"
WEEKLY = ("operaciones", "revision-mesa", "uno-a-uno")
KINDS = (*WEEKLY, CHECK_IN)
CONFIRMED, CANCELLED = "confirmed", "cancelled"  # Calendar's event statuses
LOST = ("Baja",)  # client statuses without check-ins
DAYS = {"lunes": 0, "martes": 1, "miercoles": 2, "miércoles": 2, "jueves": 3, "viernes": 4,
        "sabado": 5, "sábado": 5, "domingo": 6}
# Weeks of a series every N weeks count from this Monday.
WEEK_ANCHOR = date(2024, 1, 1)
_MEMO = "reuniones"


def event_id(key: str) -> str:
    """The Calendar event id of an occurrence: what ``connectors.google.actions.event_id_for``
    gives for the marker ``reunion:<key>`` (lowercase hex is valid base32hex)."""
    return hashlib.sha256(f"reunion:{key}".encode()).hexdigest()[:40]


# --- config ------------------------------------------------------------------------------


def _clock(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"«{value}» no es una hora: escríbela como \"09:30\"") from None


class WeeklyConfig(BaseModel):
    """One weekly series: its day, hour, length, every how many weeks, who attends."""

    model_config = ConfigDict(extra="forbid")
    dia: str
    hora: str
    duracion_minutos: int = Field(ge=5, le=480)
    cada_semanas: int = Field(default=1, ge=1, le=8)
    asistentes: list[str] = Field(default_factory=list)

    @field_validator("dia")
    @classmethod
    def _day(cls, value: str) -> str:
        if value.lower() not in DAYS:
            raise ValueError(f"«{value}» no es un día: usa lunes, martes, miercoles, jueves, "
                             "viernes, sabado o domingo")
        return value.lower()

    @field_validator("hora")
    @classmethod
    def _hour(cls, value: str) -> str:
        _clock(value)
        return value


class CheckInConfig(BaseModel):
    """Client check-ins: cadence per segment, slots, length, who is invited."""

    model_config = ConfigDict(extra="forbid")
    cadencia_meses: dict[str, int]
    cadencia_por_omision: int = Field(default=2, ge=1, le=12)
    horas: list[str] = Field(min_length=1)
    duracion_minutos: int = Field(ge=5, le=480)
    dias_de_aviso: int = Field(default=1, ge=0, le=30)
    contactos_invitados: list[str] = Field(default_factory=list)
    maximo_contactos: int = Field(default=3, ge=0, le=20)

    @field_validator("horas")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        for each in value:
            _clock(each)
        return sorted(value)

    @field_validator("cadencia_meses")
    @classmethod
    def _cadence(cls, value: dict[str, int]) -> dict[str, int]:
        for segment, months in value.items():
            if not 1 <= int(months) <= 12:
                raise ValueError(f"la cadencia de {segment} va de 1 a 12 meses")
        return value


class MeetingsConfig(BaseModel):
    """config/reuniones.yaml."""

    model_config = ConfigDict(extra="forbid")
    horizonte_dias: int = Field(ge=1, le=120)
    reuniones: dict[str, WeeklyConfig]
    check_ins: CheckInConfig

    @field_validator("reuniones")
    @classmethod
    def _kinds(cls, value: dict[str, WeeklyConfig]) -> dict[str, WeeklyConfig]:
        unknown = sorted(set(value) - set(WEEKLY))
        if unknown:
            raise ValueError(f"reunión desconocida: {', '.join(unknown)} (las reuniones son: "
                             f"{', '.join(WEEKLY)})")
        return value


def load(config_dir: Path) -> MeetingsConfig:
    """config/reuniones.yaml, read again only when it changes (ConfigError with file:line)."""
    return load_yaml_model_cached(Path(config_dir) / CONFIG_FILE, MeetingsConfig)


# --- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One meeting as it should be in Calendar."""

    key: str
    kind: str
    period: str
    start: datetime  # naive UTC
    end: datetime
    attendees: tuple[str, ...]
    staff_id: int | None
    client_id: int | None = None

    @property
    def event_id(self) -> str:
        return event_id(self.key)


@dataclass
class Series:
    """What one series wants now and what it has (its rows of the meetings table)."""

    kind: str
    wanted: Occurrence | None
    rows: list[Meeting] = field(default_factory=list)  # the series' future confirmed rows
    current: Meeting | None = None  # the row of the wanted occurrence, any status

    @property
    def cancel(self) -> list[str]:
        wanted = self.wanted.event_id if self.wanted is not None else None
        return sorted(r.source_id for r in self.rows if r.source_id != wanted)

    @property
    def pending(self) -> bool:
        return bool(self.cancel) or (self.wanted is not None
                                     and _state(self.current) != _wanted_state(self.wanted))

    def record(self) -> dict[str, Any]:
        """What rules read: ``reunion(tipo, id)``."""
        w = self.wanted
        now_state = [_state(self.current)] + [_state(r) for r in self.rows]
        digest = hashlib.sha1(repr((_wanted_state(w) if w else None, self.cancel,
                                    now_state)).encode()).hexdigest()[:16]
        action = ("cancelar" if w is None else "crear" if self.current is None
                  or self.current.status == CANCELLED else "mover")
        return {"tipo": self.kind, "pendiente": self.pending, "huella": digest,
                "accion": action if self.pending else "ninguna",
                "clave": w.key if w else None, "evento": w.event_id if w else None,
                "periodo": w.period if w else None, "inicio": w.start if w else None,
                "fin": w.end if w else None, "invitados": list(w.attendees) if w else [],
                "responsable": w.staff_id if w else None, "cliente": w.client_id if w else None,
                "cancelar": self.cancel, "conocido": self.current is not None}


def _state(row: Meeting | None) -> tuple[Any, ...] | None:
    if row is None:
        return None
    return (row.status, row.starts_at, row.ends_at, row.staff_id,
            tuple((row.raw or {}).get("invitados") or ()))


def _wanted_state(w: Occurrence) -> tuple[Any, ...]:
    return (CONFIRMED, w.start, w.end, w.staff_id, w.attendees)


def _utc(day: date, clock: time, zone: str) -> datetime:
    return datetime.combine(day, clock, ZoneInfo(zone)).astimezone(UTC).replace(tzinfo=None)


class Planner:
    """Plans every series once per cycle (one query per table), kept in ``env.memo``."""

    def __init__(self, session: Session, env: Env, config: MeetingsConfig) -> None:
        self.s, self.env, self.config = session, env, config
        self.now, self.zone = env.now, env.calendar.default_zone
        self.horizon = env.now + timedelta(days=config.horizonte_dias)
        self.staff = list(session.scalars(select(Staff).order_by(Staff.key)))
        self.rows: dict[str, list[Meeting]] = {}
        self.by_event: dict[str, Meeting] = {}
        for row in session.scalars(select(Meeting).where(
                Meeting.source == SOURCE, Meeting.deleted_at.is_(None)).order_by(Meeting.id)):
            self.by_event[row.source_id] = row
            self.rows.setdefault(row.kind or "", []).append(row)
        self._ams = [p for p in self.staff if p.active and p.role == "am"]
        # Email -> (start, end) of the weekly meetings still to come that invite it.
        self._busy: dict[str, list[tuple[datetime, datetime]]] | None = None

    # --- weekly series ---------------------------------------------------------------

    def _active(self, *roles: str) -> list[Staff]:
        return [p for p in self.staff if p.active and p.role in roles]

    def _next_weekly(self, kind: str, spec: WeeklyConfig, owner: str, offset: int = 0
                     ) -> tuple[str, str, datetime] | None:
        """(key, period, start) of the series' next occurrence starting after now."""
        today = self.env.calendar.local_date(self.now, self.zone)
        monday = today - timedelta(days=today.weekday())
        clock = (datetime.combine(today, _clock(spec.hora))
                 + timedelta(minutes=offset * spec.duracion_minutos)).time()
        for week in range(-1, 9 * spec.cada_semanas):  # -1: one a holiday moved here
            start_of_week = monday + timedelta(weeks=week)
            if ((start_of_week - WEEK_ANCHOR).days // 7) % spec.cada_semanas:
                continue
            day = start_of_week + timedelta(days=DAYS[spec.dia])
            while not self.env.calendar.is_business_day(day, self.zone):
                day += timedelta(days=1)  # a holiday moves it to the next business day
            start = _utc(day, clock, self.zone)
            if start > self.now:
                year, number, _ = start_of_week.isocalendar()
                period = f"{year}-S{number:02d}"
                return f"{kind}:{owner}:{period}", period, start
        return None

    def weekly(self, kind: str, person_id: int) -> Series:
        spec = self.config.reuniones.get(kind)
        person = next((p for p in self.staff if p.id == person_id), None)
        rows = [r for r in self.rows.get(kind, []) if r.staff_id == person_id
                and r.status == CONFIRMED and r.starts_at is not None
                and r.starts_at > self.now]
        wanted: Occurrence | None = None
        if spec is not None and person is not None and person.active:
            if kind == "uno-a-uno":
                ams = self._active("am")
                chiefs = self._active("coo")
                offset = next((n for n, p in enumerate(ams) if p.id == person_id), None)
                people = [*chiefs[:1], person] if person.role == "am" and chiefs else []
            else:
                offset = 0
                people = self._active(*spec.asistentes)
                if person not in people:
                    people = []
            found = (self._next_weekly(kind, spec, person.key, offset or 0)
                     if people and offset is not None else None)
            if found is not None and found[2] <= self.horizon:
                key, period, start = found
                wanted = Occurrence(key, kind, period, start,
                                    start + timedelta(minutes=spec.duracion_minutos),
                                    tuple(sorted({p.email.lower() for p in people})),
                                    person_id)
        return self._series(kind, wanted, rows)

    def _series(self, kind: str, wanted: Occurrence | None, rows: list[Meeting]) -> Series:
        current = self.by_event.get(wanted.event_id) if wanted is not None else None
        return Series(kind, wanted, rows, current)

    # --- check-ins -------------------------------------------------------------------

    def _period(self, day: date, months: int) -> tuple[date, date, str]:
        """(first day, day after the last, label) of the period of ``months`` holding day."""
        index = day.year * 12 + day.month - 1
        first = index - index % months
        start = date(first // 12, first % 12 + 1, 1)
        last = first + months
        after = date(last // 12, last % 12 + 1, 1)
        label = (f"{start:%Y-%m}" if months == 1
                 else f"{start:%Y-%m}/{after - timedelta(days=1):%Y-%m}")
        return start, after, label

    def _slots(self, start: date, after: date, earliest: date) -> Iterable[datetime]:
        spec = self.config.check_ins
        day = max(start, earliest)
        while day < after:
            if self.env.calendar.is_business_day(day, self.zone):
                for hour in spec.horas:
                    yield _utc(day, _clock(hour), self.zone)
            day += timedelta(days=1)

    def check_ins(self) -> dict[int, Series]:
        """Every client's check-in series (clients that have or had one, or should)."""
        spec = self.config.check_ins
        today = self.env.calendar.local_date(self.now, self.zone)
        earliest = today + timedelta(days=spec.dias_de_aviso)
        active_am = {p.id: p for p in self._active("am")}
        clients = list(self.s.scalars(select(Client).where(Client.deleted_at.is_(None))
                                      .order_by(Client.id)))
        rows = self.rows.get(CHECK_IN, [])
        future = [r for r in rows if r.status == CONFIRMED and r.starts_at is not None
                  and r.starts_at > self.now]
        contacts = self._contacts()
        by_client: dict[int, list[Meeting]] = {}
        for r in rows:
            if r.client_id is not None:
                by_client.setdefault(r.client_id, []).append(r)
        taken: dict[int, set[datetime]] = {}
        wanted: dict[int, Occurrence | None] = {}
        todo: list[tuple[Client, int, date, str]] = []
        for client in clients:
            am = active_am.get(client.am_id) if client.am_id is not None else None
            if am is None or client.status in LOST:
                wanted[client.id] = None
                continue
            months = int(spec.cadencia_meses.get(client.segment or "",
                                                 spec.cadencia_por_omision))
            start, after, label = self._period(today, months)
            mine = [r for r in by_client.get(client.id, []) if r.status == CONFIRMED
                    and r.starts_at is not None]
            if any((r.starts_at or datetime.max) <= self.now
                   and (r.raw or {}).get("periodo") == label for r in mine):
                start, after, label = self._period(after, months)  # this one happened
            key = f"{CHECK_IN}:{client.source_id}:{label}"
            kept = self.by_event.get(event_id(key))
            if kept is not None and kept.status == CONFIRMED and kept.staff_id == am.id \
                    and kept.starts_at is not None and kept.starts_at > self.now:
                taken.setdefault(am.id, set()).add(kept.starts_at)
                wanted[client.id] = self._check_in(key, label, kept.starts_at, am, client,
                                                   contacts)
            else:
                todo.append((client, am.id, start, label))
        for r in future:  # slots of events that stay (or wait to be moved)
            if r.staff_id is not None and r.starts_at is not None:
                taken.setdefault(r.staff_id, set()).add(r.starts_at)
        length = timedelta(minutes=spec.duracion_minutos)
        for client, am_id, start, label in todo:
            am = active_am[am_id]
            busy = taken.setdefault(am_id, set())
            months = int(spec.cadencia_meses.get(client.segment or "",
                                                 spec.cadencia_por_omision))
            slot: datetime | None = None
            for period_start in (start, self._period(self._period(start, months)[1],
                                                     months)[0]):
                p_start, p_after, p_label = self._period(period_start, months)
                slot = next((s for s in self._slots(p_start, p_after, earliest)
                             if s not in busy and s > self.now
                             and not self._occupied(am, s, s + length)), None)
                if slot is not None:
                    label = p_label
                    break
            if slot is None or slot > self.horizon:
                wanted[client.id] = None if slot is None else _LATER
                continue
            busy.add(slot)
            wanted[client.id] = self._check_in(f"{CHECK_IN}:{client.source_id}:{label}", label,
                                               slot, am, client, contacts)
        out: dict[int, Series] = {}
        future_set = {id(r) for r in future}
        for client in clients:
            want = wanted.get(client.id)
            mine = [r for r in by_client.get(client.id, []) if id(r) in future_set]
            if want is _LATER:  # the next one is beyond the horizon: nothing to do yet
                out[client.id] = Series(CHECK_IN, None, [])
                continue
            out[client.id] = self._series(CHECK_IN, want, mine)
        return out

    def _occupied(self, am: Staff, start: datetime, end: datetime) -> bool:
        """Whether the AM has another meeting then: an event saeko-sync keeps that invites
        them, or the weekly slot of a series they attend (every week, holidays aside)."""
        if self._busy is None:
            self._busy = {}
            for kind, rows in self.rows.items():
                for r in rows:
                    if (kind != CHECK_IN and r.status == CONFIRMED and r.starts_at is not None
                            and r.ends_at is not None and r.ends_at > self.now):
                        for invited in (r.raw or {}).get("invitados") or ():
                            self._busy.setdefault(str(invited), []).append(
                                (r.starts_at, r.ends_at))
        if any(b < end and start < e for b, e in self._busy.get(am.email.lower(), ())):
            return True
        ams = self._ams
        for kind, spec in self.config.reuniones.items():
            if kind == "uno-a-uno":
                offset = next((n for n, p in enumerate(ams) if p.id == am.id), None)
            else:
                offset = 0 if am.role in spec.asistentes else None
            if offset is None:
                continue
            local = start.replace(tzinfo=UTC).astimezone(ZoneInfo(self.zone))
            if local.weekday() != DAYS[spec.dia]:
                continue
            begins = _utc(local.date(), _clock(spec.hora), self.zone) \
                + timedelta(minutes=offset * spec.duracion_minutos)
            if begins < end and start < begins + timedelta(minutes=spec.duracion_minutos):
                return True
        return False

    def _check_in(self, key: str, label: str, start: datetime, am: Staff, client: Client,
                  contacts: dict[int, list[str]]) -> Occurrence:
        spec = self.config.check_ins
        invited = contacts.get(client.id, [])[:spec.maximo_contactos]
        return Occurrence(key, CHECK_IN, label, start,
                          start + timedelta(minutes=spec.duracion_minutos),
                          tuple(sorted({am.email.lower(), *invited})), am.id, client.id)

    def _contacts(self) -> dict[int, list[str]]:
        """Client id -> the emails of its contacts with an invited role, first registered
        first."""
        roles = self.config.check_ins.contactos_invitados
        if not roles:
            return {}
        out: dict[int, list[str]] = {}
        for client_id, email in self.s.execute(
                select(School.client_id, Contact.email)
                .join(School, School.id == Contact.school_id)
                .where(Contact.deleted_at.is_(None), Contact.role.in_(roles),
                       Contact.email.is_not(None), School.client_id.is_not(None))
                .order_by(Contact.id)):
            if client_id is None or not email:
                continue
            found = out.setdefault(int(client_id), [])
            if str(email).lower() not in found:
                found.append(str(email).lower())
        return out


_LATER = Occurrence("", "", "", datetime.min, datetime.min, (), None)


def plan(session: Session, env: Env, kind: str, entity_id: int) -> Series:
    """The series of ``kind`` for a person (weekly kinds) or a client (check-ins)."""
    if kind not in KINDS:
        raise ValueError(f"reunión desconocida «{kind}»: usa {', '.join(KINDS)}")
    if env.config_dir is None:
        raise ValueError("reunion lee config/reuniones.yaml: solo funciona en un ciclo de reglas")
    memo: dict[Any, Any] = env.memo.setdefault(_MEMO, {})
    if "planner" not in memo:
        memo["planner"] = Planner(session, env, load(env.config_dir))
    planner: Planner = memo["planner"]
    if kind == CHECK_IN:
        if "check-ins" not in memo:
            memo["check-ins"] = planner.check_ins()
        found = memo["check-ins"].get(int(entity_id))
        return found if found is not None else Series(CHECK_IN, None, [])
    return planner.weekly(kind, int(entity_id))


@function("reunion", 2, 2,
          "la próxima reunión de una serie (M8, config/reuniones.yaml): "
          "reunion('check-in', cliente.id), reunion('operaciones', personal.id), "
          "'revision-mesa', 'uno-a-uno'; .pendiente (Calendar no la tiene así todavía), "
          ".huella (para «una_vez_por»), .accion (crear, mover, cancelar), .inicio, .fin, "
          ".invitados, .periodo, .cancelar (eventos que sobran)")
def _meeting(env: Env, kind: Any, entity_id: Any) -> dict[str, Any] | None:
    if entity_id is None:
        return None
    if isinstance(entity_id, dict):
        entity_id = entity_id.get("id")
    return plan(store_session(env, "reunion"), env, str(kind), int(entity_id)).record()


# --- the KPI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckInCount:
    """One AM's check-ins of a month: planned (not cancelled) and done (the client has a
    Seguimiento «Check-in» «Realizado» that month)."""

    staff_id: int
    name: str
    planned: int
    done: int
    upcoming: int

    @property
    def percent(self) -> float | None:
        return None if not self.planned else 100.0 * self.done / self.planned


def month_bounds(month: date, zone: str) -> tuple[datetime, datetime]:
    """The month of ``month`` as naive UTC instants [start, end) in ``zone``."""
    first = month.replace(day=1)
    after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _utc(first, time(), zone), _utc(after, time(), zone)


def check_in_counts(session: Session, month: date, zone: str, now: datetime
                    ) -> list[CheckInCount]:
    """Check-ins planned and done per AM in the month of ``month`` (local ``zone``)."""
    start, end = month_bounds(month, zone)
    planned = session.execute(
        select(Meeting.staff_id, Meeting.client_id, Meeting.starts_at)
        .where(Meeting.source == SOURCE, Meeting.kind == CHECK_IN,
               Meeting.deleted_at.is_(None), Meeting.status != CANCELLED,
               Meeting.starts_at >= start, Meeting.starts_at < end)).all()
    done_clients = set(session.scalars(
        select(CheckIn.client_id).where(
            check_in_done(), CheckIn.happened_at >= start, CheckIn.happened_at < end)))
    names = {int(i): str(n) for i, n in session.execute(select(Staff.id, Staff.name))}
    counts: dict[int, list[int]] = {}
    for staff_id, client_id, starts_at in planned:
        if staff_id is None:
            continue
        each = counts.setdefault(int(staff_id), [0, 0, 0])
        each[0] += 1
        each[1] += client_id in done_clients
        each[2] += starts_at is not None and starts_at > now
    for am_id, in session.execute(select(Staff.id).where(Staff.role == "am",
                                                          Staff.active.is_(True))):
        counts.setdefault(int(am_id), [0, 0, 0])
    return sorted((CheckInCount(k, names.get(k, f"#{k}"), *v) for k, v in counts.items()),
                  key=lambda c: c.name)


def upcoming(session: Session, now: datetime, limit: int = 20) -> list[Meeting]:
    """The next meetings saeko-sync keeps in Calendar, soonest first."""
    return list(session.scalars(
        select(Meeting).where(Meeting.source == SOURCE, Meeting.deleted_at.is_(None),
                              Meeting.status == CONFIRMED, Meeting.starts_at > now)
        .order_by(Meeting.starts_at, Meeting.id).limit(limit)))


def count_by_kind(session: Session) -> dict[tuple[str, str], int]:
    """(kind, status) -> rows of the meetings table."""
    return {(str(k), str(st)): int(n) for k, st, n in session.execute(
        select(Meeting.kind, Meeting.status, func.count()).where(Meeting.source == SOURCE)
        .group_by(Meeting.kind, Meeting.status))}
