"""Trace retention: rule runs (``rule_runs``, each with its trace) are deleted by age.

Runs that matched are kept ``TRACE_RETENTION_DAYS``; the "no coincide" ones — most of them,
hundreds per rule on a first run — ``TRACE_MISS_RETENTION_HOURS``. Deletes go in batches of
primary keys (short transactions, no long lock on ``rule_runs`` while `serve` writes traces);
`serve` prunes everything due every hour, `saeko-sync run` a few batches after its cycle.
Nothing else refers to a run by id except the ledger's ``run_id`` (informative only: an
action's effect and idempotency key do not depend on its run's trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select

from core.settings import Settings
from store.db import Database, utcnow
from store.models import RuleRun

log = structlog.get_logger(__name__)

BATCH_ROWS = 1000  # ids per DELETE: a short transaction on SQLite and PostgreSQL alike
CHEAP_BATCHES = 3  # what `saeko-sync run` spends on it after a cycle (3,000 rows at most)
RETENTION_INTERVAL_SECONDS = 3600.0  # `serve` prunes hourly: retentions are hours and days


@dataclass
class Pruned:
    matched: int = 0
    missed: int = 0

    @property
    def total(self) -> int:
        return self.matched + self.missed


def prune_traces(settings: Settings, db: Database, *, now: datetime | None = None,
                 max_batches: int | None = None) -> Pruned:
    """Delete the rule runs older than their retention; ``max_batches`` bounds the work
    (None: until nothing is due). Returns how many of each kind were deleted. Ages are by
    the rules' clock (RULES_FROZEN_NOW when set), the one their start times were taken on."""
    now = now or settings.rules_frozen_now or utcnow()
    # The "no coincide" runs first: they are the bulk, and a bounded run should go to them.
    cutoffs = {False: now - timedelta(hours=settings.trace_miss_retention_hours),
               True: now - timedelta(days=settings.trace_retention_days)}
    pruned = Pruned()
    batches = 0
    for matched, cutoff in cutoffs.items():
        while max_batches is None or batches < max_batches:
            with db.session() as session:
                ids = list(session.scalars(
                    select(RuleRun.id).where(RuleRun.matched.is_(matched),
                                             RuleRun.started_at < cutoff)
                    .order_by(RuleRun.id).limit(BATCH_ROWS)))
                if ids:
                    session.execute(delete(RuleRun).where(RuleRun.id.in_(ids)))
            batches += 1
            if matched:
                pruned.matched += len(ids)
            else:
                pruned.missed += len(ids)
            if len(ids) < BATCH_ROWS:
                break
    if pruned.total:
        log.info("traces.pruned", matched=pruned.matched, missed=pruned.missed)
    return pruned
