"""Periods of a grain (local days): a day, an ISO week (Monday to Sunday), a month, a quarter,
with the label the sheets and reports show (2026-11-18, 2026-S47, 2026-11, 2026-T4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

GRAIN_NAMES = {"dia": "día", "semana": "semana", "mes": "mes", "trimestre": "trimestre"}


@dataclass(frozen=True, order=True)
class Period:
    start: date
    end: date  # inclusive
    grain: str | None = None
    label: str = ""

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def period_of(grain: str, day: date) -> Period:
    """The period of ``grain`` that holds local day ``day``."""
    if grain == "dia":
        return Period(day, day, grain, day.isoformat())
    if grain == "semana":
        start = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return Period(start, start + timedelta(days=6), grain, f"{year}-S{week:02d}")
    if grain == "mes":
        start = day.replace(day=1)
        return Period(start, _next_month(start) - timedelta(days=1), grain,
                      f"{day.year}-{day.month:02d}")
    if grain == "trimestre":
        quarter = (day.month - 1) // 3
        start = date(day.year, quarter * 3 + 1, 1)
        end = _next_month(_next_month(_next_month(start))) - timedelta(days=1)
        return Period(start, end, grain, f"{day.year}-T{quarter + 1}")
    raise ValueError(f"grano desconocido {grain!r}; usa dia, semana, mes o trimestre")


def last_periods(grain: str, today: date, count: int) -> list[Period]:
    """The ``count`` periods of ``grain`` ending with the one holding ``today``, oldest first."""
    out = [period_of(grain, today)]
    while len(out) < count:
        out.append(period_of(grain, out[-1].start - timedelta(days=1)))
    return out[::-1]


def custom(start: date, end: date) -> Period:
    """A free range of local days (``saeko-sync kpis --desde/--hasta``)."""
    if end < start:
        raise ValueError("el fin del periodo es anterior a su inicio")
    return Period(start, end, None, f"{start.isoformat()} a {end.isoformat()}")


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)
