"""`saeko-sync reuniones`: M8's check-ins planned and done per AM in a month (the KPI
«% de check-ins completados vs. planeados», seed 001) and the next meetings in Calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import Settings
from rules import meetings
from store.models import Client, Staff

MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre")
KIND_NAMES = {"check-in": "Check-in", "operaciones": "Reunión operativa",
              "revision-mesa": "Revisión de la mesa", "uno-a-uno": "1:1"}


def percent(value: float | None) -> str:
    """A share as Mexico writes it: «66.7 %», «—» when nothing was planned."""
    return "—" if value is None else f"{value:,.1f} %"


def render(session: Session, settings: Settings, month: date) -> list[Table]:
    """The KPI table of ``month`` and the table of the next meetings."""
    now = settings.rules_frozen_now or datetime.now(UTC).replace(tzinfo=None)
    zone = ZoneInfo(settings.timezone)
    counts = meetings.check_in_counts(session, month, settings.timezone, now)
    kpi = Table(title=f"Check-ins de {MONTHS[month.month - 1]} de {month.year} por AM "
                      "(realizados = con minuta «Check-in» «Realizado» en Seguimientos)")
    for column in ("AM", "planeados", "realizados", "% realizados", "por venir"):
        kpi.add_column(column, justify="left" if column == "AM" else "right")
    for each in counts:
        kpi.add_row(each.name, f"{each.planned:,}", f"{each.done:,}", percent(each.percent),
                    f"{each.upcoming:,}")
    planned = sum(c.planned for c in counts)
    done = sum(c.done for c in counts)
    kpi.add_row("Total", f"{planned:,}", f"{done:,}",
                percent(100.0 * done / planned if planned else None),
                f"{sum(c.upcoming for c in counts):,}", style="bold")
    nxt = Table(title="Próximas reuniones en Google Calendar")
    for column in ("cuándo", "reunión", "título", "con", "cliente"):
        nxt.add_column(column)
    rows = meetings.upcoming(session, now)
    staff = {int(i): str(n) for i, n in session.execute(select(Staff.id, Staff.name))}
    ids = [r.client_id for r in rows if r.client_id is not None]
    clients = {int(i): str(n) for i, n in session.execute(
        select(Client.id, Client.name).where(Client.id.in_(ids)))} if ids else {}
    for row in rows:
        assert row.starts_at is not None
        when = row.starts_at.replace(tzinfo=UTC).astimezone(zone)
        nxt.add_row(f"{when:%d/%m/%Y %H:%M}", KIND_NAMES.get(row.kind or "", row.kind or "—"),
                    row.title or "—", staff.get(row.staff_id or 0, "—"),
                    clients.get(row.client_id or 0, "—"))
    return [kpi, nxt]
