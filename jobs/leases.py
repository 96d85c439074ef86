"""Leases that die with their holder, run-once jobs, and row claims that skip locked rows.

``hold(db, name)`` is the one lease primitive for every job that must run in one place at a
time (the rule cycle, each scheduled job). It is non-blocking and is released by the operating
system or the database server when the holder dies, so a restart or another replica takes
over at its next tick instead of waiting for an expiry:

- PostgreSQL: a session-level advisory lock held on a dedicated, non-pooled connection for the
  duration of the job. ``kill -9`` closes the socket and the server drops the lock at once; a
  host that vanishes is noticed by TCP keepalives within ``KEEPALIVE_*`` (under a minute).
- SQLite (one host): ``flock(LOCK_EX | LOCK_NB)`` on ``<database file>.<name>.lock``; the
  kernel releases it when the process dies.

``run_once(db, job, period, holder, fn)`` runs ``fn`` at most once per (job, period) across
replicas: the job's lease gives mutual exclusion and ``job_runs`` records which period ran,
with its status and detail. Holding the lease proves no live process is running the job, so a
row still ``running`` was left by a holder that died: the same period is taken over at once,
an older one is recorded as failed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from store.db import Database, utcnow
from store.models import JobRun

log = structlog.get_logger(__name__)

# Server-side TCP keepalives on a PostgreSQL lock connection: a holder whose host vanished
# (no FIN/RST, unlike kill -9) is dropped, with its lock, after idle + interval * count
# = 20 + 10 * 3 = 50 s, so another replica takes over within a minute (the default is ~2 h).
KEEPALIVE_IDLE_SECONDS = 20
KEEPALIVE_INTERVAL_SECONDS = 10
KEEPALIVE_COUNT = 3
# PostgreSQL truncates application_name to 63 bytes.
APPLICATION_NAME_MAX = 63
# A job_runs row's detail column holds at most this much of a result or error.
DETAIL_MAX = 1000

# One non-pooled engine per database URL for lock connections: closing one really closes it,
# so a lock never goes back into a pool and no lock-connection settings leak into sessions.
_LOCK_ENGINES: dict[str, Engine] = {}


class Skipped(Exception):  # noqa: N818 - it is an outcome, not an error
    """Raised by a job's ``fn`` that did not do its work (e.g. the rule cycle's own lease is
    held elsewhere); ``run_once`` records the period as ``skipped`` with the reason."""


@contextmanager
def hold(db: Database, name: str) -> Iterator[bool]:
    """Try to take the lease ``name`` without waiting; yield whether this holder got it.

    The lease is held until the block exits or the holder dies. It is not re-entrant: a second
    ``hold`` of the same name is refused even in the same process and thread.
    """
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        with _hold_postgres(db, name) as held:
            yield held
    elif dialect == "sqlite":
        with _hold_file(lock_path(db, name)) as held:
            yield held
    else:
        raise ValueError(f"leases are not implemented for {dialect}")


def lease_key(schema: str, name: str) -> int:
    """The advisory-lock key of lease ``name``: a stable signed 64-bit hash of schema and name.

    Advisory locks are per database, not per schema, so the schema is part of the key: two
    deployments (or test schemas) sharing a database do not exclude each other.
    """
    digest = hashlib.blake2b(f"{schema}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lease_application_name(name: str) -> str:
    """What a lock connection shows in ``pg_stat_activity.application_name``: who holds what."""
    return f"saeko-sync lease {name} {socket.gethostname()}-{os.getpid()}"[:APPLICATION_NAME_MAX]


def _lock_engine(db: Database) -> Engine:
    url = db.engine.url.render_as_string(hide_password=False)
    engine = _LOCK_ENGINES.get(url)
    if engine is None:
        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        _LOCK_ENGINES[url] = engine
    return engine


@contextmanager
def _hold_postgres(db: Database, name: str) -> Iterator[bool]:
    # AUTOCOMMIT: the connection sits idle while the job runs, not "idle in transaction".
    with _lock_engine(db).connect() as conn:
        schema = conn.scalar(text("SELECT current_schema()")) or ""
        conn.execute(text(
            "SELECT set_config('application_name', :app, false),"
            " set_config('tcp_keepalives_idle', :idle, false),"
            " set_config('tcp_keepalives_interval', :interval, false),"
            " set_config('tcp_keepalives_count', :count, false)"),
            {"app": lease_application_name(name), "idle": str(KEEPALIVE_IDLE_SECONDS),
             "interval": str(KEEPALIVE_INTERVAL_SECONDS), "count": str(KEEPALIVE_COUNT)})
        key = lease_key(schema, name)
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        try:
            yield held
        finally:
            # Closing the connection (NullPool) releases the lock too, but the server does it
            # asynchronously as its backend exits: unlock first so the next holder, even right
            # after us in this process, finds it free. A broken connection has lost it anyway.
            if held:
                with suppress(DBAPIError):
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def lock_path(db: Database, name: str) -> Path:
    """The SQLite lock file of lease ``name``: next to the database file; for an in-memory
    database (private to its process) a per-process file in the temp folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    url = make_url(db.url)
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return Path(tempfile.gettempdir()) / f"saeko-sync-{os.getpid()}-memory.{safe}.lock"
    return Path(f"{database}.{safe}.lock")


@contextmanager
def _hold_file(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    # flock locks belong to the open file description: another open() of the same file, even
    # in this process, is refused. The file is never deleted (deleting lock files races).
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        if held:
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()}-{os.getpid()}\n".encode())  # for operators
        try:
            yield held
        finally:
            if held:  # explicit: a forked child sharing the descriptor must not keep it
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def run_once(db: Database, job: str, period: str, holder: str, fn: Callable[[], Any]) -> bool:
    """Run ``fn`` if this replica wins (job, period). Returns whether it ran here.

    Refused when another live holder runs ``job`` (any period) or the period already finished.
    A failing ``fn`` is recorded as ``failed`` with its error; ``Skipped`` as ``skipped``.
    """
    with hold(db, f"job:{job}") as held:
        if not held or not _claim(db, job, period, holder):
            return False
        status, detail = "ok", None
        try:
            result = fn()
            detail = str(result)[:DETAIL_MAX] if result is not None else None
        except Skipped as exc:
            status, detail = "skipped", str(exc)[:DETAIL_MAX]
        except Exception as exc:
            status, detail = "failed", f"{exc.__class__.__name__}: {exc}"[:DETAIL_MAX]
            log.error("job.failed", job=job, period=period, error=detail)
        with db.session() as session:
            session.execute(update(JobRun).where(
                JobRun.job == job, JobRun.period == period, JobRun.holder == holder)
                .values(finished_at=utcnow(), status=status, detail=detail))
    return True


def _claim(db: Database, job: str, period: str, holder: str) -> bool:
    """Record (job, period) as running here; the caller holds the job's lease."""
    now = utcnow()
    try:
        with db.session() as session:
            dead = session.scalars(select(JobRun).where(
                JobRun.job == job, JobRun.status == "running")).all()
            mine = next((r for r in dead if r.period == period), None)
            for run in dead:
                if run is not mine:
                    log.warning("job.abandoned", job=job, period=run.period, holder=run.holder)
                    run.status, run.finished_at = "failed", now
                    run.detail = f"interrumpido: {run.holder} murió antes de terminar"
            if mine is not None:
                log.warning("job.taken_over", job=job, period=period, dead_holder=mine.holder)
                mine.holder, mine.started_at = holder, now
                return True
            if session.scalar(select(JobRun.id).where(JobRun.job == job,
                                                      JobRun.period == period)) is not None:
                return False  # this period already ran
            session.add(JobRun(job=job, period=period, holder=holder, started_at=now,
                               status="running"))
        return True
    except IntegrityError:  # not expected under the lease; never run a period twice
        return False


def claimable(session: Session, query: Any) -> Any:
    """Add row locking that skips rows other replicas hold (PostgreSQL); SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query
