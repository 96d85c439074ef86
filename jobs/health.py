"""What `serve` answers on ``/healthz`` (is it doing its job?) and ``/readyz`` (may it take
traffic?), for a load balancer, an orchestrator or a monitor.

- ``/healthz`` — 503 when the database does not answer, when a stream failed every attempt
  of its last ``HEALTH_FAILED_CYCLES`` sync cycles (its data is going stale), or when the
  inbox worker or the rule cycle is stuck; 200 otherwise. The body (JSON) names each
  problem in Spanish.
- ``/readyz`` — 503 until the database answers, its migrations are current and this
  process finished its first sync cycle; 200 after.

A stream's failures are read from ``sync_state`` (every replica sees the same): it has
failed its last N cycles when its last attempt failed and it has not succeeded for N sync
intervals (since this process started, for a stream that never succeeded). A source that
fails before any of its streams ran (a client that cannot connect on a first run) has no
``sync_state`` rows yet: the process counts those cycles itself.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from store.db import Database, utcnow
from store.models import JobRun, SyncState

# A stream (or a source) is unhealthy after this many sync cycles in a row with every
# attempt failed: one failed cycle is a blip the next one usually fixes.
HEALTH_FAILED_CYCLES = 3
# The worker waits for the clients' lock while a sync or a rule cycle runs, and one call
# may retry for PODIO_MAX_RETRY_SECONDS (900 s by default) while Podio is down: only twice
# that without a turn is "stuck".
WORKER_STUCK_SECONDS = 1800.0


@dataclass
class Liveness:
    """What the service's own threads report: the worker's last turn, the first cycle, and
    the sources whose whole sync failed (before any stream ran) cycles in a row."""

    started: datetime = field(default_factory=utcnow)
    worker_beat: float = field(default_factory=time.monotonic)
    worker: threading.Thread | None = None
    first_cycle: datetime | None = None
    source_failures: dict[str, int] = field(default_factory=dict)

    def beat(self) -> None:
        self.worker_beat = time.monotonic()

    def note_cycle(self, errors: list[str]) -> None:
        """After a sync cycle: its sources that failed as a whole (``"source: cause"``)."""
        failed = {error.split(":", 1)[0] for error in errors}
        self.source_failures = {source: self.source_failures.get(source, 0) + 1
                                for source in failed}
        self.cycle_seen()

    def cycle_seen(self) -> None:
        """A sync tick ended (run here, or taken by another replica)."""
        self.first_cycle = self.first_cycle or utcnow()


def _ago(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def stream_problems(db: Database, sources: list[str], sync_interval: float, since: datetime,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """The streams of ``sources`` (the configured ones: a source switched off keeps its old
    rows) whose every attempt failed in their last HEALTH_FAILED_CYCLES cycles."""
    now = now or utcnow()
    window = timedelta(seconds=HEALTH_FAILED_CYCLES * sync_interval)
    with db.session() as s:
        rows = list(s.scalars(select(SyncState).where(SyncState.last_status == "failed",
                                                      SyncState.source.in_(sources))
                              .order_by(SyncState.source, SyncState.stream)))
    out = []
    for row in rows:
        # Counted within this process's life: a success before it started (the service
        # was down) does not make its first failed cycle the last N.
        good = max(row.last_ok_at, since) if row.last_ok_at else since
        if now - good < window:
            continue
        since_ok = (f"último éxito hace {_ago((now - row.last_ok_at).total_seconds())}"
                    if row.last_ok_at else "nunca se sincronizó")
        # The cause stays on the status page (behind STATUS_TOKEN): this endpoint is open.
        out.append({"stream": f"{row.source}/{row.stream}",
                    "last_ok": row.last_ok_at.isoformat() if row.last_ok_at else None,
                    "problem": f"flujo {row.source}/{row.stream}: fallaron todos sus intentos "
                               f"de los últimos {HEALTH_FAILED_CYCLES} ciclos ({since_ok}); la "
                               "causa está en la página de estado"})
    return out


def worker_problems(db: Database, live: Liveness, stuck_seconds: float,
                    now: datetime | None = None) -> list[str]:
    """The inbox worker dead or without a turn for ``stuck_seconds``, and a rule cycle (the
    scheduled ``rules`` job, any replica) running for longer than that."""
    now = now or utcnow()
    problems = []
    if live.worker is not None and not live.worker.is_alive():
        problems.append("el trabajador de webhooks y reglas se detuvo: reinicia el servicio "
                        "(el registro dice por qué, evento worker.error)")
    else:
        idle = time.monotonic() - live.worker_beat
        if idle > stuck_seconds:
            problems.append(f"el trabajador de webhooks y reglas no avanza desde hace "
                            f"{_ago(idle)} (un ciclo o una llamada colgada): revisa el "
                            "registro y reinicia el servicio")
    with db.session() as s:
        running = s.scalars(select(JobRun).where(JobRun.job == "rules",
                                                 JobRun.status == "running")
                            .order_by(JobRun.started_at)).first()
    if running is not None and (now - running.started_at).total_seconds() > stuck_seconds:
        problems.append(f"el ciclo de reglas lleva {_ago((now - running.started_at).total_seconds())} "
                        f"corriendo (réplica {running.holder}): revisa el registro y reinicia "
                        "esa réplica")
    return problems


def source_problems(live: Liveness) -> list[dict[str, Any]]:
    """Sources that failed as a whole HEALTH_FAILED_CYCLES cycles in a row in this process."""
    return [{"stream": source, "last_ok": None,
             "problem": f"fuente {source}: falló entera en los últimos {count} ciclos; la "
                        "causa está en la página de estado (o `saeko-sync doctor`)"}
            for source, count in sorted(live.source_failures.items())
            if count >= HEALTH_FAILED_CYCLES]


def migration_problem(db: Database) -> str | None:
    """None when the database's migration is the code's head; else what to run."""
    current, head = db.revisions()
    if current != head:
        return (f"migración {current or 'ninguna'} ≠ {head}: ejecuta `saeko-sync db upgrade` "
                "y reinicia el servicio")
    return None


def health(db: Database, live: Liveness, sources: list[str], sync_interval: float,
           stuck_seconds: float) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of ``/healthz``."""
    try:
        streams = (stream_problems(db, sources, sync_interval, live.started)
                   + source_problems(live))
        worker = worker_problems(db, live, stuck_seconds)
    except Exception as exc:  # noqa: BLE001 - health reports any failure
        return 503, {"status": "error", "problems": [
            f"la base de datos no responde ({exc.__class__.__name__}: {exc}); revisa "
            "DATABASE_URL"]}
    problems = [s["problem"] for s in streams] + worker
    body = {"status": "error" if problems else "ok", "problems": problems,
            "failing_streams": [{k: v for k, v in s.items() if k != "problem"}
                                for s in streams], "worker": worker}
    return (503 if problems else 200), body


def readiness(db: Database, live: Liveness) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body of ``/readyz``."""
    problems = []
    try:
        if (migration := migration_problem(db)) is not None:
            problems.append(migration)
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        problems.append(f"la base de datos no responde ({exc.__class__.__name__}: {exc}); "
                        "revisa DATABASE_URL")
    if live.first_cycle is None:
        problems.append("el primer ciclo de sincronización aún no termina")
    return (503 if problems else 200), {"status": "error" if problems else "ok",
                                        "problems": problems}
