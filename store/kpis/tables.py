"""The KPI spreadsheet's tabs (M3), built from the model: tidy tables for Looker Studio.

Every tab is ONE table from A1 with one header row and stable column names (documented in
docs/kpis.md and in the ``columnas`` tab), one type per column: numbers as numbers, days as
dates, instants as local date-times (``config/kpis.yaml`` zona), yes/no as booleans, and
empty cells where there is no value. Rows are sorted, so the same data gives the same cells.

Tabs: ``kpi_diario``, ``kpi_semanal``, ``kpi_mensual``, ``kpi_trimestral`` (long format:
one row per period × KPI × dimension value), ``kpi_cliente_mensual`` (the same by client),
the detail tabs ``tickets``, ``respuestas``, ``cuentas``, ``renovaciones``, and
``diccionario`` (every KPI's definition) and ``columnas`` (every tab's columns).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from store import kpis
from store.kpis.config import KpiConfig
from store.kpis.facts import Facts
from store.kpis.measures import CSAT_GOOD_MIN, DETRACTOR_MAX, PROMOTER_MIN, renewed, sla_met
from store.kpis.periods import last_periods

GRAIN_TABS = {"dia": "kpi_diario", "semana": "kpi_semanal", "mes": "kpi_mensual",
              "trimestre": "kpi_trimestral"}
CLIENT_TAB = "kpi_cliente_mensual"

# Columns per tab: (name, type, description). Types: texto, numero, fecha, fecha_hora, si_no.
KPI_COLUMNS = [
    ("periodo", "texto", "el periodo: 2026-11-18 (día), 2026-S47 (semana ISO), 2026-11 (mes), "
                         "2026-T4 (trimestre)"),
    ("inicio", "fecha", "primer día del periodo (hora local)"),
    ("fin", "fecha", "último día del periodo"),
    ("kpi", "texto", "id del KPI (config/kpis.yaml; pestaña diccionario)"),
    ("nombre", "texto", "nombre del KPI"),
    ("dimension", "texto", "total, equipo, am, segmento, region o cliente"),
    ("clave_dimension", "texto", "clave estable del valor de la dimensión (clave del AM en "
                                 "config/staff.yaml, id de Podio del cliente…)"),
    ("valor_dimension", "texto", "el valor de la dimensión como se lee (nombre del AM, "
                                 "segmento…); «Todos» en total"),
    ("valor", "numero", "la cifra; vacía si no hay nada que medir en el periodo"),
    ("unidad", "texto", "%, h, puntos, cuentas…"),
    ("meta", "numero", "la meta (semillas), vacía si no hay"),
    ("cumple", "si_no", "si la cifra cumple la meta; vacía sin meta o sin cifra"),
    ("n", "numero", "respuestas, tickets, contratos o clientes sobre los que se calcula"),
]
TICKET_COLUMNS = [
    ("id_podio", "numero", "id del item del ticket en Podio"),
    ("titulo", "texto", "título del ticket"),
    ("cliente", "texto", "nombre del cliente"),
    ("id_cliente", "texto", "id de Podio del cliente"),
    ("segmento", "texto", "segmento del cliente"),
    ("region", "texto", "región del cliente"),
    ("am", "texto", "AM del ticket (o de su cliente)"),
    ("responsable", "texto", "responsable del ticket"),
    ("equipo", "texto", "equipo del responsable (config/kpis.yaml equipos)"),
    ("prioridad", "texto", "prioridad"),
    ("modulo", "texto", "módulo"),
    ("canal", "texto", "canal"),
    ("estatus", "texto", "estatus actual"),
    ("abierto", "fecha_hora", "apertura (hora local)"),
    ("primera_respuesta", "fecha_hora", "primera respuesta (hora local)"),
    ("horas_primera_respuesta", "numero", "horas hábiles a la primera respuesta (T2)"),
    ("cerrado", "fecha_hora", "cierre (hora local)"),
    ("horas_cierre", "numero", "horas hábiles al cierre (T5/T6)"),
    ("escalado", "si_no", "se escaló (Jira o estatus «Escalado» alguna vez)"),
    ("jira", "texto", "clave de la incidencia de Jira"),
    ("cumple_sla", "si_no", "cerrado dentro de los objetivos de su prioridad; vacío si abierto"),
    ("calificacion", "numero", "calificación CSAT del ticket"),
]
ANSWER_COLUMNS = [
    ("id", "numero", "id de la respuesta en el modelo"),
    ("tipo", "texto", "csat o nps"),
    ("fecha", "fecha_hora", "cuándo respondió (hora local)"),
    ("dia", "fecha", "el día local de la respuesta"),
    ("calificacion", "numero", "CSAT 1–5, NPS 0–10"),
    ("categoria", "texto", "NPS: promotor, pasivo o detractor; CSAT: satisfecho o no satisfecho"),
    ("cliente", "texto", "nombre del cliente"),
    ("id_cliente", "texto", "id de Podio del cliente"),
    ("segmento", "texto", "segmento del cliente"),
    ("region", "texto", "región del cliente"),
    ("am", "texto", "AM del cliente"),
    ("ticket", "texto", "id de Podio del ticket (CSAT)"),
    ("comentario", "texto", "comentario de la respuesta"),
]
ACCOUNT_COLUMNS = [
    ("id_cliente", "texto", "id de Podio del cliente"),
    ("cliente", "texto", "nombre"),
    ("segmento", "texto", "segmento"),
    ("region", "texto", "región"),
    ("am", "texto", "AM"),
    ("estatus", "texto", "estatus en Podio"),
    ("alta", "fecha", "fecha de alta"),
    ("mrr", "numero", "MRR"),
    ("salud", "numero", "puntaje de salud (M1)"),
    ("banda_salud", "texto", "banda de salud (M1)"),
    ("tickets_30_dias", "numero", "tickets abiertos en los últimos 30 días"),
    ("crm_completo", "si_no", "todos los campos clave llenos (config/kpis.yaml crm.campos)"),
    ("editado", "fecha_hora", "última edición en Podio (hora local)"),
]
RENEWAL_COLUMNS = [
    ("id_contrato", "texto", "id de Podio del contrato"),
    ("cliente", "texto", "nombre del cliente"),
    ("id_cliente", "texto", "id de Podio del cliente"),
    ("segmento", "texto", "segmento del cliente"),
    ("am", "texto", "AM del cliente"),
    ("tipo", "texto", "Nuevo o Renovación"),
    ("inicio", "fecha", "inicio del contrato"),
    ("fin", "fecha", "fin (vencimiento)"),
    ("monto", "numero", "monto"),
    ("moneda", "texto", "moneda"),
    ("estatus", "texto", "estatus del contrato"),
    ("dias_para_vencer", "numero", "días de hoy al fin (negativo: ya venció)"),
    ("renovado", "si_no", "«Renovado» o con contrato de renovación"),
]
DICTIONARY_COLUMNS = [
    ("kpi", "texto", "id del KPI"),
    ("nombre", "texto", "nombre"),
    ("definicion", "texto", "qué mide"),
    ("formula", "texto", "cómo se calcula"),
    ("unidad", "texto", "unidad"),
    ("meta", "numero", "meta, vacía si ninguna semilla la da"),
    ("sentido", "texto", ">= (al menos la meta) o <= (a lo más)"),
    ("foto", "si_no", "se calcula con los datos de hoy (solo en el periodo en curso)"),
    ("fuentes", "texto", "tablas del modelo de las que sale"),
    ("dimensiones", "texto", "dimensiones en que se publica"),
    ("semilla", "texto", "de dónde viene (semillas del departamento)"),
]
COLUMN_COLUMNS = [("pestana", "texto", "pestaña"), ("columna", "texto", "columna"),
                  ("tipo", "texto", "texto, numero, fecha, fecha_hora o si_no"),
                  ("descripcion", "texto", "qué contiene")]


@dataclass(frozen=True)
class Table:
    tab: str
    header: list[str]
    rows: list[list[Any]]


def _names(columns: list[tuple[str, str, str]]) -> list[str]:
    return [c[0] for c in columns]


def build(session: Session, config: KpiConfig, now: datetime) -> list[Table]:
    """Every tab of the KPI spreadsheet, from the model as of ``now``."""
    publish = config.publicacion
    today = now.replace(tzinfo=UTC).astimezone(ZoneInfo(config.zona)).date()
    grains = {g: last_periods(g, today, publish.grain(g).periodos) for g in GRAIN_TABS}
    client_months = last_periods("mes", today, publish.cliente_meses) \
        if publish.cliente_meses else []
    first = min([p[0].start for p in grains.values()] + [p.start for p in client_months])
    last = max([p[-1].end for p in grains.values()] + [p.end for p in client_months])
    loaded = kpis.load_facts(session, first, last, config=config, now=now)
    tables = []
    for grain, tab in GRAIN_TABS.items():
        values = kpis.evaluate(loaded, grains[grain], publish.grain(grain).dimensiones,
                               config=config)
        tables.append(Table(tab, _names(KPI_COLUMNS), [_kpi_row(v) for v in values]))
    client_values = kpis.evaluate(loaded, client_months, "cliente", config=config) \
        if client_months else []
    tables.append(Table(CLIENT_TAB, _names(KPI_COLUMNS),
                        [_kpi_row(v) for v in client_values if v.value is not None]))
    details = _Details(loaded, config, today)
    tables += [details.tickets(), details.answers(), details.accounts(), details.renewals(),
               _dictionary(config), _columns()]
    return tables


# The tables M3's condition built last (rules/dashboard.py), for its action
# (connectors/google/kpi_sheet.py) seconds later: at 2,000 clients one build takes about
# 20 s. The action reuses them only for the same database and ``now`` and when their
# fingerprint is the one the condition passed it (the action's «huella»), within
# REUSE_SECONDS; anything else builds afresh.
_kept: dict[str, tuple[float, tuple[str, str], str, list[Table]]] = {}
REUSE_SECONDS = 300.0


def build_and_keep(session: Session, config: KpiConfig, now: datetime) -> list[Table]:
    """``build``, kept for the publication that may follow (``kept``)."""
    built = build(session, config, now)
    _kept["last"] = (time.monotonic(), _where(session, now), fingerprint(built), built)
    return built


def kept(session: Session, now: datetime, print_: str) -> list[Table] | None:
    """The tables ``build_and_keep`` built for this database and ``now`` whose fingerprint
    is ``print_``, if built in the last REUSE_SECONDS."""
    hit = _kept.get("last")
    if hit is None or not print_:
        return None
    at, where, built_print, built = hit
    fresh = time.monotonic() - at <= REUSE_SECONDS
    return built if fresh and where == _where(session, now) and built_print == print_ else None


def _where(session: Session, now: datetime) -> tuple[str, str]:
    return session.get_bind().engine.url.render_as_string(hide_password=False), now.isoformat()


def fingerprint(tables: list[Table]) -> str:
    """A hash of every cell: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    for table in tables:
        digest.update(json.dumps([table.tab, table.header, table.rows], default=str,
                                 ensure_ascii=False).encode())
    return digest.hexdigest()[:32]


def _kpi_row(v: kpis.KpiValue) -> list[Any]:
    return [v.period, v.start, v.end, v.kpi, v.name, v.dimension, v.key, v.label, v.value,
            v.unit, v.target, v.met, v.n]


class _Details:
    """The drill-down tabs, from the same facts."""

    def __init__(self, loaded: Facts, config: KpiConfig, today: date) -> None:
        self.f, self.config, self.today = loaded, config, today
        self.since = today - timedelta(days=config.publicacion.detalle_dias)

    def local(self, instant: datetime | None) -> datetime | None:
        if instant is None:
            return None
        return instant.replace(tzinfo=UTC).astimezone(self.f.zone).replace(tzinfo=None)

    def recent(self, instant: datetime | None) -> bool:
        return instant is not None and self.since <= self.f.day(instant) <= self.today

    def client(self, client_id: int | None) -> tuple[str | None, str | None, str | None,
                                                     str | None, str | None]:
        account = self.f.accounts.get(client_id) if client_id is not None else None
        if account is None:
            return None, None, None, None, None
        am = self.f.people.get(account.am_id) if account.am_id is not None else None
        return (account.name, account.source_id, account.segment, account.region,
                am.name if am else None)

    def person(self, person_id: int | None) -> str | None:
        person = self.f.people.get(person_id) if person_id is not None else None
        return person.name if person else None

    def tickets(self) -> Table:
        rows = []
        for t in sorted(self.f.tickets, key=lambda t: (t.opened_at or datetime.min, t.id)):
            if not (self.recent(t.opened_at) or self.recent(t.closed_at)):
                continue
            name, source, segment, region, am = self.client(t.client_id)
            if t.am_id is not None:
                am = self.person(t.am_id)
            person = self.f.people.get(t.responsible_id) if t.responsible_id else None
            team = self.config.equipos.get(person.role, person.role) if person else None
            met = sla_met(self.config, t)
            rows.append([_int(t.source_id), t.title, name, source, segment, region, am,
                         person.name if person else None, team, t.priority, t.module,
                         t.channel, t.status, self.local(t.opened_at),
                         self.local(t.first_response_at), t.first_response_hours,
                         self.local(t.closed_at), t.close_hours, t.escalated, t.jira_key, met,
                         t.rating])
        return Table("tickets", _names(TICKET_COLUMNS), rows)

    def answers(self) -> Table:
        rows = []
        for a in sorted(self.f.answers, key=lambda a: (a.submitted_at, a.id)):
            if not self.recent(a.submitted_at):
                continue
            name, source, segment, region, am = self.client(a.client_id)
            if a.kind == "nps":
                category = ("promotor" if a.score >= PROMOTER_MIN else
                            "detractor" if a.score <= DETRACTOR_MAX else "pasivo")
            else:
                category = "satisfecho" if a.score >= CSAT_GOOD_MIN else "no satisfecho"
            rows.append([a.id, a.kind, self.local(a.submitted_at), self.f.day(a.submitted_at),
                         a.score, category, name, source, segment, region, am,
                         a.ticket_source_id, a.comment])
        return Table("respuestas", _names(ANSWER_COLUMNS), rows)

    def accounts(self) -> Table:
        month_ago = self.today - timedelta(days=30)
        opened: dict[int, int] = {}
        for t in self.f.tickets:
            if t.client_id is not None and t.opened_at is not None \
                    and month_ago <= self.f.day(t.opened_at) <= self.today:
                opened[t.client_id] = opened.get(t.client_id, 0) + 1
        rows = []
        for a in sorted(self.f.accounts.values(), key=lambda a: (a.name, a.id)):
            am = self.person(a.am_id)
            rows.append([a.source_id, a.name, a.segment, a.region, am, a.status, a.signed_on,
                         a.mrr, a.health_score, a.health_band, opened.get(a.id, 0),
                         all(a.filled.values()), self.local(a.edited_at)])
        return Table("cuentas", _names(ACCOUNT_COLUMNS), rows)

    def renewals(self) -> Table:
        back, ahead = self.config.publicacion.renovaciones_dias
        low, high = self.today + timedelta(days=back), self.today + timedelta(days=ahead)
        rows = []
        for k in sorted(self.f.contracts, key=lambda k: (k.ends_on or date.min, k.id)):
            if k.ends_on is None or not low <= k.ends_on <= high:
                continue
            name, source, segment, _region, am = self.client(k.client_id)
            rows.append([k.source_id, name, source, segment, am, k.kind, k.starts_on,
                         k.ends_on, k.amount, k.currency, k.status,
                         (k.ends_on - self.today).days, renewed(self.f, k)])
        return Table("renovaciones", _names(RENEWAL_COLUMNS), rows)


def _int(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _dictionary(config: KpiConfig) -> Table:
    rows = [[k.id, k.nombre, k.definicion, k.formula, k.unidad, k.meta, k.sentido, k.foto,
             ", ".join(k.fuentes), ", ".join(k.dimensiones), k.semilla] for k in config.kpis]
    return Table("diccionario", _names(DICTIONARY_COLUMNS), rows)


TAB_COLUMNS = {**{tab: KPI_COLUMNS for tab in [*GRAIN_TABS.values(), CLIENT_TAB]},
               "tickets": TICKET_COLUMNS, "respuestas": ANSWER_COLUMNS,
               "cuentas": ACCOUNT_COLUMNS, "renovaciones": RENEWAL_COLUMNS,
               "diccionario": DICTIONARY_COLUMNS, "columnas": COLUMN_COLUMNS}


def _columns() -> Table:
    rows = [[tab, name, kind, doc] for tab, columns in TAB_COLUMNS.items()
            for name, kind, doc in columns]
    return Table("columnas", _names(COLUMN_COLUMNS), rows)


__all__ = ["CLIENT_TAB", "GRAIN_TABS", "TAB_COLUMNS", "Table", "build", "fingerprint"]
