"""A client's usage trend from the weekly usage sheet: its recent weeks against its own
earlier weeks (seed 004: compare a client with itself, not with the others). Shared by M1
(the health score's usage signal) and M13 (the low-usage review).

Only complete weeks count: a week is complete once it has ended (its Monday + 7 days is
before ``today``), so a Monday's partial row does not read as a drop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import UsageMetric

RECENT_WEEKS = 4      # the weeks looked at
BASELINE_WEEKS = 8    # the earlier weeks they are compared with


@dataclass(frozen=True)
class Trend:
    """Average weekly active users, recent vs. earlier weeks; ``change`` is the relative
    change (-0.35 = a 35 % drop), None when there are not enough weeks to tell."""

    recent: float | None
    baseline: float | None
    weeks: int
    recent_weeks: int = RECENT_WEEKS
    baseline_weeks: int = BASELINE_WEEKS

    @property
    def change(self) -> float | None:
        if self.recent is None or not self.baseline:
            return None
        return self.recent / self.baseline - 1.0

    def describe(self) -> str:
        """'120 usuarios activos por semana en las últimas 4 semanas contra 200 en las 8
        anteriores (-40 %)', in Spanish."""
        if self.change is None:
            return f"no hay semanas suficientes para comparar ({self.weeks} semanas)"
        return (f"{self.recent:.0f} usuarios activos por semana en las últimas "
                f"{self.recent_weeks} semanas contra {self.baseline:.0f} en las "
                f"{self.baseline_weeks} anteriores ({self.change * 100:+.0f} %)")


def trend(weeks: Iterable[tuple[date, float]], today: date, recent_weeks: int = RECENT_WEEKS,
          baseline_weeks: int = BASELINE_WEEKS) -> Trend:
    """The trend of (week start, active users) rows as of ``today``."""
    complete = sorted((start, float(value)) for start, value in weeks
                      if value is not None and start + timedelta(days=7) <= today)
    values = [value for _start, value in complete]
    if len(values) < recent_weeks + max(1, baseline_weeks // 2):
        return Trend(None, None, len(values), recent_weeks, baseline_weeks)
    recent = values[-recent_weeks:]
    baseline = values[-recent_weeks - baseline_weeks:-recent_weeks]
    return Trend(sum(recent) / len(recent), sum(baseline) / len(baseline), len(values),
                 recent_weeks, baseline_weeks)


def trends(session: Session, today: date, client_ids: Iterable[int] | None = None,
           recent_weeks: int = RECENT_WEEKS, baseline_weeks: int = BASELINE_WEEKS
           ) -> dict[int, Trend]:
    """Client id -> its trend, from the store's usage rows (one query)."""
    since = today - timedelta(weeks=recent_weeks + baseline_weeks + 2)
    query = select(UsageMetric.client_id, UsageMetric.week_start, UsageMetric.active_users) \
        .where(UsageMetric.client_id.is_not(None), UsageMetric.week_start >= since,
               UsageMetric.deleted_at.is_(None))
    wanted = None if client_ids is None else set(client_ids)
    rows: dict[int, list[tuple[date, float]]] = {}
    for client_id, start, active in session.execute(query):
        if client_id is None or start is None or active is None or (
                wanted is not None and client_id not in wanted):
            continue
        rows.setdefault(int(client_id), []).append((start, float(active)))
    return {cid: trend(weeks, today, recent_weeks, baseline_weeks)
            for cid, weeks in rows.items()}


def as_record(value: Trend | None) -> Mapping[str, Any] | None:
    """A trend as rules read it: reciente, anterior, cambio (percent), semanas, texto."""
    if value is None:
        return None
    change = value.change
    return {"reciente": value.recent, "anterior": value.baseline,
            "cambio": None if change is None else round(change * 100, 1),
            "semanas": value.weeks, "texto": f"uso: {value.describe()}"}
