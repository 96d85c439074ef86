"""Run a scheduled job once per period across replicas, and claim rows safely.

``run_once(db, job, period, holder, fn)`` inserts (job, period) into ``job_runs``: the replica
whose insert succeeds runs ``fn``. A replica that dies mid-run leaves ``claimed_until`` in the
past; the next replica to tick takes the run over with a compare-and-set UPDATE. Works on
SQLite (one process) and PostgreSQL (several replicas).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.db import Database, utcnow
from store.models import JobRun

log = structlog.get_logger(__name__)

# How long a replica may hold a running job before another may take it over.
DEFAULT_CLAIM_SECONDS = 600


def _claim(db: Database, job: str, period: str, holder: str, claim_seconds: float) -> bool:
    now = utcnow()
    until = now + timedelta(seconds=claim_seconds)
    try:
        with db.session() as session:
            session.add(JobRun(job=job, period=period, holder=holder, started_at=now,
                               claimed_until=until, status="running"))
        return True
    except IntegrityError:
        pass
    with db.session() as session:
        taken = session.execute(
            update(JobRun).where(JobRun.job == job, JobRun.period == period,
                                 JobRun.finished_at.is_(None), JobRun.claimed_until < now)
            .values(holder=holder, claimed_until=until, started_at=now))
        return bool(taken.rowcount)  # type: ignore[attr-defined]


def run_once(db: Database, job: str, period: str, holder: str, fn: Callable[[], Any], *,
             claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> bool:
    """Run ``fn`` if this replica wins (job, period). Returns whether it ran here."""
    if not _claim(db, job, period, holder, claim_seconds):
        return False
    status, detail = "ok", None
    try:
        result = fn()
        detail = str(result)[:1000] if result is not None else None
    except Exception as exc:
        status, detail = "failed", f"{exc.__class__.__name__}: {exc}"
        log.error("job.failed", job=job, period=period, error=detail)
    with db.session() as session:
        session.execute(update(JobRun).where(
            JobRun.job == job, JobRun.period == period, JobRun.holder == holder)
            .values(finished_at=utcnow(), status=status, detail=detail))
    return True


def claimable(session: Session, query: Any) -> Any:
    """Add row locking that skips rows other replicas hold (PostgreSQL); SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query

