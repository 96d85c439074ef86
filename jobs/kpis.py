"""``saeko-sync kpis``: the current figures in rich tables, and the KPI spreadsheet's
publication (M3's action, run now) and Looker Studio link."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from rich.console import Console
from rich.table import Table

from connectors.clients import ActionRuntime
from core.settings import Settings
from rules import dashboard
from store import kpis
from store.db import Database, utcnow
from store.kpis import formatting, looker
from store.kpis.periods import Period, custom, period_of

DIMENSION_NAMES = {"total": "total", "equipo": "equipo", "am": "AM", "segmento": "segmento",
                   "region": "región", "cliente": "cliente"}


def now_of(settings: Settings) -> datetime:
    """The clock the rules use (RULES_FROZEN_NOW when set)."""
    return settings.rules_frozen_now or utcnow()


def period_for(config: kpis.KpiConfig, grain: str, start: date | None, end: date | None,
               now: datetime) -> Period:
    if start is not None or end is not None:
        today = kpis.local_today(config, now)
        return custom(start or end or today, end or today)
    return period_of(grain, kpis.local_today(config, now))


def figures_table(values: Sequence[kpis.KpiValue], config: kpis.KpiConfig, period: Period,
                  dimension: str) -> Table:
    """One row per KPI (and dimension value), with its target and whether it is met."""
    definitions = config.by_id()
    grain = f" ({period.grain})" if period.grain else ""
    title = (f"KPIs de postventa · {period.label}{grain} · {period.start:%d/%m/%Y} a "
             f"{period.end:%d/%m/%Y}")
    table = Table(title=title)
    if dimension != "total":
        table.add_column(DIMENSION_NAMES[dimension])
    for name, justify in (("KPI", "left"), ("valor", "right"), ("meta", "right"),
                          ("cumple", "center"), ("n", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    order = {k.id: i for i, k in enumerate(config.kpis)}
    rows = sorted((v for v in values if v.dimension == dimension),
                  key=lambda v: (v.label, order[v.kpi]) if dimension != "total"
                  else ("", order[v.kpi]))
    for v in rows:
        definition = definitions[v.kpi]
        met = formatting.met(v.met)
        style = {"sí": "green", "no": "red"}.get(met)
        cells = [v.name, formatting.figure(v.value, v.unit), formatting.target(definition),
                 f"[{style}]{met}[/{style}]" if style else met, formatting.number(v.n, 0)]
        table.add_row(*([v.label] if dimension != "total" else []), *cells)
    return table


def show(console: Console, settings: Settings, db: Database, *, grain: str,
         dimension: str, start: date | None, end: date | None,
         only: Sequence[str] = ()) -> None:
    config = kpis.load_config(settings.config_dir, settings.rules_dir)
    now = now_of(settings)
    period = period_for(config, grain, start, end, now)
    with db.session() as session:
        values = kpis.run_periods(session, [period], by=dimension, config=config,
                                  kpis=list(only) or None, now=now)
    console.print(figures_table(values, config, period, dimension))


def publish(console: Console, settings: Settings, db: Database) -> None:
    """M3's publication now (idempotent: the same data rewrites the same cells)."""
    runtime = ActionRuntime(settings)
    try:
        where = dashboard.publish_now(db, runtime, now_of(settings))
    finally:
        runtime.close()
    if where is not None:
        console.print(f"Hoja de KPIs publicada: {len(where.tabs)} pestañas "
                      f"({', '.join(where.tabs)}) en la hoja {where.spreadsheet_id}.")


def looker_link(settings: Settings, db: Database) -> str | None:
    """The Looker Studio link for the published sheet (None before any publication)."""
    with db.session() as session:
        where = looker.place(session)
    if where is None:
        return None
    aliases = tuple(a.strip() for a in settings.looker_template_aliases.split(",") if a.strip())
    return looker.link(where, settings.looker_template_report_id, aliases)



def demo_report(console: Console, settings: Settings, db: Database, runtime: ActionRuntime,
                url: str) -> None:
    """`make demo`: publish the KPI sheet now, show the month's figures and where to look."""
    now = now_of(settings)
    where = dashboard.publish_now(db, runtime, now)
    show(console, settings, db, grain="mes", dimension="total", start=None, end=None)
    if where is None:
        return
    console.print(f"M3 · hoja de KPIs publicada en el sandbox ({len(where.tabs)} pestañas, "
                  f"una escritura por pestaña): {url}/_sandbox/google/sheets/"
                  f"{where.spreadsheet_id}/kpi_mensual — las demás: "
                  f"{', '.join(t for t in where.tabs if t != 'kpi_mensual')}. "
                  "Looker Studio: `saeko-sync kpis --looker`; columnas: docs/kpis.md.")
