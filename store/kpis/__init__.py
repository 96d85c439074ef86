"""The department's KPIs (SPEC §11), defined in ``config/kpis.yaml`` and computed from the
model: one place for the terminal (``saeko-sync kpis``), the KPI spreadsheet (M3), the
status page and the reports (M10/M12).

API (what a caller uses)::

    from store import kpis

    config = kpis.load_config(settings.config_dir)            # definitions + targets
    values = kpis.compute(session, date(2026, 11, 1), date(2026, 11, 30), by="am",
                          config=config)                         # one free period
    values = kpis.series(session, "semana", date(2026, 9, 1), date(2026, 11, 30),
                         by=("total", "am"), config=config)      # every week in the range
    kpis.current(session, "mes", config=config)                 # the month so far, total

Each returns ``list[KpiValue]``: kpi id, Spanish name, period (grain, label, first and last
local day), dimension (``total``, ``equipo``, ``am``, ``segmento``, ``region``, ``cliente``)
with its value's stable key and label, the value (``None`` when there is nothing to
measure — e.g. no planned check-ins: empty, not 0 % nor 100 %), unit, target, whether it is
met, and ``n`` (the answers, tickets, contracts or clients it is computed over). Rows for a
dimension exist only for values with data; the ``total`` row of every KPI is always there.

Periods are local days in ``config/kpis.yaml``'s zone. An event KPI counts a fact in the
period it happened (an answer by its answer time, a close by its closing time); a snapshot
KPI (``foto: true``: AM load, CRM upkeep, automated processes) reads today's data and is
only computed for a period that holds today. Business hours come from the ticket fields T2
and T5/T6 wrote (``store.kpis.facts``), not recomputed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from store.db import utcnow
from store.kpis import facts as facts_mod
from store.kpis.config import DIMENSIONS, GRAINS, KpiConfig, KpiDef, count_active_rules
from store.kpis.config import load as _load_config
from store.kpis.measures import MEASURES, Ctx
from store.kpis.periods import Period, custom, last_periods, period_of

__all__ = ["DIMENSIONS", "GRAINS", "KpiConfig", "KpiDef", "KpiValue", "Period", "compute",
           "count_active_rules", "current", "custom", "evaluate", "last_periods", "load_config",
           "load_facts", "local_today", "period_of", "run_periods", "series"]

VALUE_DIGITS = 4  # values are rounded so that the same data always gives the same cells


@dataclass(frozen=True)
class KpiValue:
    """One KPI for one period and one dimension value."""

    kpi: str
    name: str
    grain: str | None
    period: str
    start: date
    end: date
    dimension: str
    key: str
    label: str
    value: float | None
    unit: str
    target: float | None
    direction: str | None
    met: bool | None
    n: int


def load_config(config_dir: Path, rules_dir: Path | None = None) -> KpiConfig:
    """``config/kpis.yaml`` with the count of active rules (``rules_dir``, default
    ``config_dir/rules``)."""
    config = _load_config(config_dir)
    if rules_dir is not None:
        config = config.model_copy(update={"active_rules": count_active_rules(
            rules_dir.parent if rules_dir.name == "rules" else rules_dir)})
    return config


def compute(session: Session, start: date, end: date, *, by: str | Sequence[str] = "total",
            config: KpiConfig, kpis: Iterable[str] | None = None,
            now: datetime | None = None) -> list[KpiValue]:
    """Every KPI (or those of ``kpis``) for local days ``start``..``end``."""
    return _run(session, [custom(start, end)], by, config, kpis, now)


def series(session: Session, grain: str, start: date, end: date, *,
           by: str | Sequence[str] = "total", config: KpiConfig,
           kpis: Iterable[str] | None = None, now: datetime | None = None) -> list[KpiValue]:
    """Every period of ``grain`` that overlaps ``start``..``end`` (facts read once)."""
    periods = []
    day = start
    while day <= end:
        period = period_of(grain, day)
        periods.append(period)
        day = period.end + timedelta(days=1)
    return _run(session, periods, by, config, kpis, now)


def current(session: Session, grain: str = "mes", *, by: str | Sequence[str] = "total",
            config: KpiConfig, kpis: Iterable[str] | None = None,
            now: datetime | None = None) -> list[KpiValue]:
    """The period of ``grain`` that holds today (so far)."""
    now = now or utcnow()
    day = local_today(config, now)
    return _run(session, [period_of(grain, day)], by, config, kpis, now)


def run_periods(session: Session, periods: Sequence[Period], *, by: str | Sequence[str],
                config: KpiConfig, kpis: Iterable[str] | None = None,
                now: datetime | None = None) -> list[KpiValue]:
    """Any list of periods (M3 publishes several grains from one read)."""
    return _run(session, list(periods), by, config, kpis, now)


def local_today(config: KpiConfig, now: datetime) -> date:
    """The local day of ``now`` in the KPI zone."""
    return now.replace(tzinfo=UTC).astimezone(ZoneInfo(config.zona)).date()


def _run(session: Session, periods: list[Period], by: str | Sequence[str], config: KpiConfig,
         kpis: Iterable[str] | None, now: datetime | None) -> list[KpiValue]:
    if not periods:
        return []
    now = now or utcnow()
    loaded = load_facts(session, min(p.start for p in periods), max(p.end for p in periods),
                        config=config, now=now)
    return evaluate(loaded, periods, by, config=config, kpis=kpis)


def load_facts(session: Session, start: date, end: date, *, config: KpiConfig,
               now: datetime) -> facts_mod.Facts:
    """The facts of local days ``start``..``end`` (read once, for ``evaluate``)."""
    return facts_mod.load(session, start, end, zone=config.zona, now=now,
                          lookback_days=max(config.reincidencia_dias, 1),
                          crm_fields=config.crm.campos)


def evaluate(loaded: facts_mod.Facts, periods: Sequence[Period], by: str | Sequence[str], *,
             config: KpiConfig, kpis: Iterable[str] | None = None) -> list[KpiValue]:
    """The KPIs of each period and dimension from facts already read (``load_facts``)."""
    dims = [by] if isinstance(by, str) else list(by)
    for dim in dims:
        if dim not in DIMENSIONS:
            raise ValueError(f"dimensión desconocida {dim!r}; usa {', '.join(DIMENSIONS)}")
    definitions = config.by_id()
    wanted = list(kpis) if kpis is not None else list(definitions)
    for kpi_id in wanted:
        if kpi_id not in definitions or kpi_id not in MEASURES:
            raise ValueError(f"KPI desconocido {kpi_id!r}; los de config/kpis.yaml: "
                             f"{', '.join(definitions)}")
    today = local_today(config, loaded.now)
    out: list[KpiValue] = []
    for period in periods:
        window = loaded.window(period.start, period.end, config.reincidencia_dias)
        for dim in dims:
            ctx = Ctx(window, config, dim, today)
            for kpi_id in wanted:
                definition = definitions[kpi_id]
                if dim not in definition.dimensiones:
                    continue
                if definition.foto and not period.contains(today):
                    continue
                out.extend(_values(definition, period, dim, MEASURES[kpi_id](ctx, period)))
    return out


def _values(definition: KpiDef, period: Period, dim: str,
            result: dict[tuple[str, str], tuple[float | None, int]]) -> list[KpiValue]:
    if dim == "total" and not result:
        result = {("total", "Todos"): (None, 0)}
    rows = []
    for (key, label), (value, n) in sorted(result.items(), key=lambda kv: kv[0][1]):
        rounded = None if value is None else round(value, VALUE_DIGITS)
        rows.append(KpiValue(definition.id, definition.nombre, period.grain, period.label,
                             period.start, period.end, dim, key, label, rounded,
                             definition.unidad, definition.meta, definition.sentido,
                             definition.met(rounded), n))
    return rows
