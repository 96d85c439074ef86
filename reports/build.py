"""M10: what one report says, computed from the model: the KPIs of ``config/informes.yaml``
for the period against their targets (``store.kpis``: the same computation as M3 and the
terminal), their trend over the earlier periods, the figures by AM, and the accounts that
need attention with their Podio links. Pure data; ``reports.render`` turns it into the
email, the PDF and the sheet tab."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import ConfigError
from core.settings import Settings
from reports import fmt
from reports.config import ReportsConfig, load_reports
from store import kpis
from store.kpis import formatting
from store.kpis.facts import BAJA, LIVE_CONTRACT, Facts
from store.kpis.measures import renewed
from store.kpis.periods import Period, last_periods, period_of
from store.models import Client, Staff

# Report kinds: the weekly one for the whole team and per AM, the monthly one for the COO.
TEAM_WEEKLY, AM_WEEKLY, MONTHLY = "semanal-equipo", "semanal-am", "mensual"
KINDS = (TEAM_WEEKLY, AM_WEEKLY, MONTHLY)
TITLES = {TEAM_WEEKLY: "Informe semanal del equipo de postventa",
          AM_WEEKLY: "Informe semanal de tus cuentas",
          MONTHLY: "Informe mensual de postventa para la dirección"}


@dataclass(frozen=True)
class Figure:
    """One KPI of the report, as read: value and target already formatted."""

    kpi: str
    name: str
    definition: str
    value: float | None
    unit: str
    shown: str
    target: str
    met: bool | None
    n: int

    @property
    def status(self) -> str:
        if self.value is None:
            return "sin datos"
        if self.met is None:
            return "sin meta"
        return "cumple" if self.met else "no cumple"


@dataclass(frozen=True)
class Attention:
    """An account that needs attention, with why and its Podio link."""

    name: str
    am: str
    band: str
    score: str
    reasons: str
    link: str


@dataclass
class Report:
    kind: str
    title: str
    period: Period
    audience: str  # «todo el equipo», the AM's name, «Dirección»
    generated: datetime
    figures: list[Figure]
    tickets: int
    trend: dict[str, list[tuple[str, float | None]]]
    by_am: dict[str, list[tuple[str, float | None]]]
    accounts: list[Attention]
    names: dict[str, str] = field(default_factory=dict)  # kpi id -> its name
    # The period's KPIs of the report, total and by AM (the sheet tab).
    rows: list[kpis.KpiValue] = field(default_factory=list)
    am_key: str | None = None
    am_email: str | None = None
    ams: list[str] = field(default_factory=list)  # every AM's name (the bars' rows)
    # The whole team's value of each «barras_por_am» KPI (the AM's report draws the AM
    # against it).
    team: dict[str, float | None] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The file name of this report: ``semanal-am-am-tijuana-1-2026-S48``."""
        who = f"-{self.am_key}" if self.am_key else ""
        return f"{self.kind}{who}-{self.period.label}"

    @property
    def period_text(self) -> str:
        if self.period.grain == "mes":
            return fmt.month(self.period.start)
        return f"semana {self.period.label[-2:]}, {fmt.span(self.period.start, self.period.end)}"


def grain_of(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"informe desconocido {kind!r}; usa {', '.join(KINDS)}")
    return "mes" if kind == MONTHLY else "semana"


def parse_period(label: str, grain: str) -> Period:
    """``2026-S48`` (ISO week) or ``2026-11`` (month) -> its Period."""
    try:
        if grain == "semana":
            year, week = label.split("-S")
            return period_of("semana", date.fromisocalendar(int(year), int(week), 1))
        year, month = label.split("-")
        return period_of("mes", date(int(year), int(month), 1))
    except ValueError:
        example = "2026-S48" if grain == "semana" else "2026-11"
        raise ConfigError(f"periodo {label!r} inválido para un informe por {grain}; p. ej. "
                          f"{example}") from None


def previous_period(grain: str, today: date) -> Period:
    """The last whole period before the one holding ``today`` (what a scheduled report
    covers: on Monday, the week that ended on Sunday)."""
    return period_of(grain, period_of(grain, today).start - timedelta(days=1))


def build(session: Session, settings: Settings, kind: str, period_label: str, *,
          am_key: str | None = None, now: datetime) -> Report:
    """The report ``kind`` for the period ``period_label`` (``am_key`` for ``semanal-am``)."""
    grain = grain_of(kind)
    if (kind == AM_WEEKLY) != bool(am_key):
        raise ConfigError("el informe semanal de un AM necesita el AM (--am EMAIL), y solo él")
    config = kpis.load_config(settings.config_dir, settings.rules_dir)
    rconfig = load_reports(settings.config_dir, set(config.by_id()))
    period = parse_period(period_label, grain)
    part = rconfig.mensual if grain == "mes" else rconfig.semanal
    periods = last_periods(grain, period.end, part.tendencia)
    wanted = list(dict.fromkeys(part.kpis + rconfig.graficas.tendencia
                                + rconfig.graficas.barras_por_am))
    facts = kpis.load_facts(session, periods[0].start, period.end, config=config, now=now)
    values = kpis.evaluate(facts, periods, ("total", "am"), config=config, kpis=wanted)
    staff = session.scalars(select(Staff).where(Staff.key == am_key)).first() if am_key else None
    if am_key and staff is None:
        raise ConfigError(f"no hay nadie con la clave {am_key!r} en config/staff.yaml")
    dim, key = ("am", am_key) if am_key else ("total", "total")

    def value_of(kpi: str, p: Period, d: str = dim, k: str | None = key) -> kpis.KpiValue | None:
        return next((v for v in values if v.kpi == kpi and v.start == p.start
                     and v.dimension == d and v.key == k), None)

    definitions = config.by_id()
    figures = []
    for kpi_id in part.kpis:
        d = definitions[kpi_id]
        v = value_of(kpi_id, period)
        val = v.value if v else None
        figures.append(Figure(kpi_id, d.nombre, d.definicion, val, d.unidad,
                              formatting.figure(val, d.unidad), formatting.target(d),
                              v.met if v else None, v.n if v else 0))
    trend = {k: [(_short_label(p), getattr(value_of(k, p), "value", None)) for p in periods]
             for k in rconfig.graficas.tendencia}
    by_am = {k: [(v.label, v.value) for v in values if v.kpi == k and v.start == period.start
                 and v.dimension == "am" and v.key != "sin-am"]
             for k in rconfig.graficas.barras_por_am}
    am_id = staff.id if staff else None
    audience = staff.name if staff else ("Dirección" if kind == MONTHLY else "todo el equipo")
    return Report(kind, TITLES[kind], period, audience, now, figures,
                  _tickets(facts, period, am_id), trend, by_am,
                  _attention(session, facts, rconfig, period, am_id),
                  {k: definitions[k].nombre for k in wanted},
                  [v for v in values if v.start == period.start and v.kpi in part.kpis],
                  am_key, staff.email if staff else None,
                  sorted(p.name for p in facts.people.values() if p.role == "am"),
                  {k: getattr(value_of(k, period, "total", "total"), "value", None)
                   for k in rconfig.graficas.barras_por_am})


def _short_label(p: Period) -> str:
    if p.grain == "mes":
        return f"{fmt.MONTHS[p.start.month - 1][:3]} {p.start.year}"
    return f"S{p.label[-2:]}"


def _tickets(facts: Facts, period: Period, am_id: int | None) -> int:
    """Tickets opened in the period (of the AM's clients)."""
    return sum(1 for t in facts.tickets if t.opened_at is not None
               and period.contains(facts.day(t.opened_at))
               and (am_id is None or t.am_id == am_id
                    or (t.am_id is None and t.client_id is not None
                        and getattr(facts.accounts.get(t.client_id), "am_id", None) == am_id)))


def _attention(session: Session, facts: Facts, config: ReportsConfig, period: Period,
               am_id: int | None) -> list[Attention]:
    """Active accounts in a risk band (M1), or with a live contract ending within
    ``vencen_en_dias`` of the period's end and not renewed; riskiest first."""
    horizon = period.end + timedelta(days=config.atencion.vencen_en_dias)
    due: dict[int, date] = {}
    for k in facts.contracts:
        if (k.client_id is not None and k.ends_on is not None and k.status in LIVE_CONTRACT
                and period.end <= k.ends_on <= horizon and not renewed(facts, k)):
            due[k.client_id] = min(k.ends_on, due.get(k.client_id, k.ends_on))
    rows = {c.id: c for c in session.scalars(select(Client).where(Client.deleted_at.is_(None)))}
    out: list[tuple[float, str, Attention]] = []
    for account in facts.accounts.values():
        if account.status == BAJA or (am_id is not None and account.am_id != am_id):
            continue
        risky = account.health_band in config.atencion.bandas
        if not risky and account.id not in due:
            continue
        reasons = []
        row = rows.get(account.id)
        if risky:
            reasons.append(row.health_reasons if row and row.health_reasons else
                            f"banda {account.health_band}")
        if account.id in due:
            reasons.append(f"contrato vence el {fmt.short_day(due[account.id])} sin renovar")
        am = facts.people.get(account.am_id) if account.am_id is not None else None
        raw = (row.raw or {}) if row else {}
        score = account.health_score
        out.append((score if score is not None else 101.0, account.name, Attention(
            account.name, am.name if am else "Sin AM", account.health_band or fmt.EMPTY,
            fmt.number(score, 0) if score is not None else fmt.EMPTY,
            "; ".join(" ".join(r.split()) for r in reasons), str(raw.get("link") or ""))))
    return [a for _score, _name, a in sorted(out, key=lambda t: (t[0], t[1]))]
