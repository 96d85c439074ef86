"""Trace retention: rule runs that matched are kept TRACE_RETENTION_DAYS, the "no coincide"
ones TRACE_MISS_RETENTION_HOURS; everything younger stays, and so does the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.errors import ConfigError
from core.settings import load_settings
from jobs.service import Service
from store import retention
from store.db import Database, utcnow
from store.models import ActionLedger, RuleRun
from tests.test_serve_webhooks import TOKEN, free_port

# (name, matched, age): what each row is, and whether it must survive 7 days / 12 hours.
ROWS = [("match-old", True, timedelta(days=8)), ("match-edge", True, timedelta(days=6, hours=23)),
        ("match-new", True, timedelta(hours=1)), ("miss-old", False, timedelta(hours=13)),
        ("miss-day", False, timedelta(days=3)), ("miss-new", False, timedelta(hours=11))]
KEPT = {"match-edge", "match-new", "miss-new"}


def fill(db: Database, now: object) -> None:
    with db.session() as s:
        for name, matched, age in ROWS:
            s.add(RuleRun(rule_id=name, entity="ticket", entity_id=1, matched=matched,
                          status="coincide" if matched else "no coincide",
                          trace={"regla": name}, started_at=now - age))  # type: ignore[operator]
        s.add(ActionLedger(idempotency_key="k1", rule_id="match-old", action="podio.comentario",
                           status="done", run_id=1))


def test_old_traces_go_and_the_rest_stay(db: Database) -> None:
    now = utcnow()
    fill(db, now)
    settings = load_settings(database_url=db.url, trace_retention_days=7,
                             trace_miss_retention_hours=12)
    pruned = retention.prune_traces(settings, db, now=now)
    assert (pruned.matched, pruned.missed) == (1, 2)
    with db.session() as s:
        assert set(s.scalars(select(RuleRun.rule_id))) == KEPT
        assert s.scalar(select(func.count()).select_from(ActionLedger)) == 1  # ledger untouched
    assert retention.prune_traces(settings, db, now=now).total == 0  # nothing left to do


def test_a_bounded_run_deletes_in_batches_misses_first(db: Database,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`saeko-sync run` spends a few batches only: the "no coincide" traces go first."""
    now = utcnow()
    fill(db, now)
    monkeypatch.setattr(retention, "BATCH_ROWS", 1)
    settings = load_settings(database_url=db.url, trace_retention_days=7,
                             trace_miss_retention_hours=12)
    first = retention.prune_traces(settings, db, now=now, max_batches=2)
    assert (first.matched, first.missed) == (0, 2)
    rest = retention.prune_traces(settings, db, now=now)
    assert (rest.matched, rest.missed) == (1, 0)
    with db.session() as s:
        assert set(s.scalars(select(RuleRun.rule_id))) == KEPT


def test_serve_prunes_on_its_schedule(db: Database) -> None:
    fill(db, utcnow())
    settings = load_settings(database_url=db.url, webhook_token=TOKEN, trace_retention_days=7,
                             trace_miss_retention_hours=12, sync_interval_seconds=3600,
                             rules_interval_seconds=3600)
    service = Service(settings, db, port=free_port())
    service.retention_job()  # what the scheduler runs every hour
    with db.session() as s:
        assert set(s.scalars(select(RuleRun.rule_id))) == KEPT


def test_misses_are_never_kept_longer_than_matches() -> None:
    with pytest.raises(ConfigError, match="TRACE_MISS_RETENTION_HOURS"):
        load_settings(trace_retention_days=1, trace_miss_retention_hours=48)
