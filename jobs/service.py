"""`saeko-sync serve`: webhook receiver + inbox worker + scheduler in one process.

- HTTP (Starlette on uvicorn): ``/hooks/<tool>/{token}`` for each tool that sends webhooks
  (``jobs.webhooks``), the status page ``/``, ``/status.json``, ``/runs/{id}``, ``/healthz``
  and ``/readyz`` (``jobs.health``).
- Inbox worker thread: woken by each stored delivery (and every second), processes deliveries
  and then runs the event rules on what changed.
- Scheduler (APScheduler 3.11, BackgroundScheduler): the incremental sync cycle — the safety
  net for lost webhooks — and the rule cycle; each runs under its job's lease
  (``jobs.leases``, released when the holder dies) and is recorded per period in
  ``job_runs``, so several replicas on one PostgreSQL run each period once.
- SIGTERM/SIGINT: uvicorn stops accepting, the worker finishes its current delivery and
  releases the rest of its claims, the scheduler waits for running jobs.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from datetime import UTC, datetime
from typing import Any

import structlog
import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import update
from starlette.applications import Starlette

from connectors import registry
from connectors.clients import ActionRuntime
from core.settings import Settings
from jobs import health, quota, status, webhooks
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from jobs.inbox import InboxWorker
from jobs.leases import Skipped, run_once
from jobs.safety_net import plan_polling
from rules.engine import run_cycle
from store.db import Database, utcnow
from store.models import WebhookInbox
from store.retention import RETENTION_INTERVAL_SECONDS, prune_traces

log = structlog.get_logger(__name__)

WORKER_IDLE_SECONDS = 1.0  # the worker also polls this often (deliveries stored elsewhere)


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Service:
    """Everything `serve` runs; ``start()`` in the background (tests) or ``run()`` (CLI)."""

    def __init__(self, settings: Settings, db: Database, *, host: str = "127.0.0.1",
                 port: int = 8080,
                 worker_stuck_seconds: float = health.WORKER_STUCK_SECONDS) -> None:
        self.settings = settings
        self.db = db
        self.holder = replica_name()
        # One set of long-lived clients (tokens, connections, client-side quotas) for the
        # sync, the inbox worker and the rules. Work that uses them is serialised by
        # ``_work``: some clients (Google's httplib2) are not thread-safe, and the tools'
        # quotas, not the CPU, are the limit.
        self.runtime = ActionRuntime(settings)
        self.worker = InboxWorker(settings, db, self.holder, runtime=self.runtime)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._work = threading.RLock()
        self.live = health.Liveness()
        self.worker_stuck_seconds = worker_stuck_seconds
        routes = (webhooks.build_routes(settings, db, notify=self._wake.set)
                  + status.build_routes(db, quota=self.quota, settings=settings,
                                        host=host, probes=self))
        self.app = Starlette(routes=routes)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port,
                                                    log_level="warning", access_log=False))
        self.host, self.port = host, port
        self._socket: socket.socket | None = None
        self.scheduler = BackgroundScheduler(timezone=settings.timezone)
        self._threads: list[threading.Thread] = []
        self._polled: set[str] = set()  # sources this process has polled (jobs.safety_net)

    # --- quota report -----------------------------------------------------------------

    def quota(self) -> dict[str, Any]:
        """tool -> this process's quota report (jobs/quota.py), for the tools that keep one."""
        return quota.current(self.settings, self.runtime.built())

    def _share_quota(self) -> None:
        """Store what the tools last reported, for the other replicas, `doctor` and the page."""
        quota.persist(self.db, self.quota(), self.holder)

    # --- health -------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, Any]]:
        """``/healthz``: streams failing cycle after cycle, the worker or the rules stuck (a
        failing stream is polled at every tick, safety net or not: ``jobs.safety_net``)."""
        return health.health(self.db, self.live, configured_sources(self.settings),
                             self.settings.sync_interval_seconds, self.worker_stuck_seconds)

    def ready(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: database reachable, migrations current, first sync cycle done."""
        return health.readiness(self.db, self.live)

    # --- work ---------------------------------------------------------------------------

    def _evaluate_rules(self, *, scheduled: bool = False) -> str:
        """One rule cycle. ``scheduled``: the rules job, recorded as ``skipped`` in job_runs
        when another process holds the rule cycle's lease (this replica's worker or sync,
        another replica, `saeko-sync run`) instead of as ``ok``."""
        with self._work:
            report = run_cycle(self.settings, self.db, now=self.settings.rules_frozen_now,
                               runtime=self.runtime)
            self._share_quota()
        if scheduled and report.skipped:
            raise Skipped(report.skipped)
        return "; ".join(report.lines())[:1000]

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            self.live.beat()
            self._wake.wait(WORKER_IDLE_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._work:
                    result = self.worker.process_batch()
                    if result.done:
                        self._evaluate_rules()
                    elif result.failed:
                        self._share_quota()
            except Exception as exc:  # noqa: BLE001 - keep the worker alive, log the cause
                log.error("worker.error", error=f"{exc.__class__.__name__}: {exc}")
        self._release_claims()

    def _release_claims(self) -> None:
        with self.db.session() as session:
            session.execute(update(WebhookInbox).where(
                WebhookInbox.claimed_by == self.holder, WebhookInbox.status == "pending")
                .values(claimed_until=None))

    def sync_job(self) -> None:
        period = _period(self.settings.sync_interval_seconds)
        try:
            run_once(self.db, "sync", period, self.holder, self._sync_and_evaluate)
        finally:  # ran here, or taken by another replica: this process is up (readyz)
            self.live.cycle_seen()

    def _sync_and_evaluate(self, now: datetime | None = None) -> str:
        with self._work:
            sources, skipped = plan_polling(self.settings, self.db,
                                            configured_sources(self.settings),
                                            now or utcnow(), polled_here=self._polled)
            summary = ""
            if sources:
                clients = long_lived_clients(self.runtime, sources)
                cycle = run_sync(self.settings, self.db, sources, clients=clients)
                self.live.note_cycle(cycle.errors)
                summary = _summary(cycle)
            if skipped:
                summary += (f"{'; ' if summary else ''}sin consultar (llegan webhooks; red de "
                            f"seguridad cada {self.settings.sync_safety_net_seconds / 60:g} "
                            f"min): {', '.join(skipped)}")
            return f"{summary} | reglas: {self._evaluate_rules()}"

    def sync_job_now(self, now: datetime | None = None) -> None:
        """Run the polling sync now, outside the schedule (tests, `serve` operators);
        ``now`` is the tick's time for the safety net (``jobs.safety_net``)."""
        self._sync_and_evaluate(now)

    def deletions_job(self) -> None:
        period = _period(self.settings.deletion_scan_minutes * 60)
        run_once(self.db, "deletions", period, self.holder, self.deletion_scan_now)

    def deletion_scan_now(self) -> str:
        """Every tool's deletion scan (``Connector.scan_deletions``) now: what it marked,
        per tool; a tool that fails is named, the others still scan, and the job is then
        recorded as failed."""
        parts: list[str] = []
        failed = False
        with self._work:
            for connector in registry.connectors():
                if connector.scan_deletions is None or not connector.enabled(self.settings):
                    continue
                try:
                    marked = connector.scan_deletions(self.settings, self.db,
                                                      self.runtime.client(connector.name))
                    parts.append(f"{connector.name}: {marked} borrados")
                except Exception as exc:  # noqa: BLE001 - one tool down stops only itself
                    log.error("deletions.failed", tool=connector.name, error=str(exc))
                    parts.append(f"{connector.name}: falló ({exc.__class__.__name__}: {exc})")
                    failed = True
        if failed:
            raise RuntimeError("; ".join(parts))
        return "; ".join(parts)

    def retention_job(self) -> None:
        period = _period(RETENTION_INTERVAL_SECONDS)
        run_once(self.db, "retention", period, self.holder, self.prune_now)

    def prune_now(self) -> str:
        """Delete the traces past their retention (store/retention.py), all that is due."""
        pruned = prune_traces(self.settings, self.db)
        return f"{pruned.matched} trazas con coincidencia y {pruned.missed} «no coincide» borradas"

    def rules_job(self) -> None:
        period = _period(self.settings.rules_interval_seconds)
        run_once(self.db, "rules", period, self.holder,
                 lambda: self._evaluate_rules(scheduled=True))

    # --- lifecycle ----------------------------------------------------------------------

    def _start_background(self) -> None:
        worker = threading.Thread(target=self._worker_loop, name="inbox-worker", daemon=True)
        worker.start()
        self.live.worker = worker
        self._threads.append(worker)
        self.scheduler.add_job(self.sync_job, "interval", seconds=self.settings.sync_interval_seconds,
                               id="sync", max_instances=1, coalesce=True,
                               next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self.rules_job, "interval",
                               seconds=self.settings.rules_interval_seconds, id="rules",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.deletions_job, "interval",
                               seconds=self.settings.deletion_scan_minutes * 60,
                               id="deletions", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.retention_job, "interval", seconds=RETENTION_INTERVAL_SECONDS,
                               id="retention", max_instances=1, coalesce=True,
                               next_run_time=datetime.now(UTC))
        self.scheduler.start()

    def listen(self) -> None:
        """Open the service's port now, before anything runs: a port in use (OSError) fails
        here, not after a first cycle. ``run`` then serves on it."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._socket = sock

    def run(self) -> None:
        """Serve in the foreground until SIGTERM/SIGINT, then shut down cleanly (exit 0).

        uvicorn captures the signals while serving and re-raises them once stopped; our own
        handlers (restored by uvicorn by then) only ask for shutdown, so the worker can
        finish its delivery and release its claims instead of the process dying mid-way.
        """
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_exit)
        self.db.upgrade()
        self._start_background()
        try:
            self.server.run(sockets=[self._socket] if self._socket is not None else None)
        finally:
            self.shutdown()

    def _request_exit(self, _sig: int, _frame: Any) -> None:
        self.server.should_exit = True

    def start(self) -> Service:
        """Serve in a background thread (tests); returns once the server listens."""
        self.db.upgrade()
        self._start_background()
        sockets = [self._socket] if self._socket is not None else None
        thread = threading.Thread(target=self.server.run, kwargs={"sockets": sockets},
                                  name="serve-http", daemon=True)
        thread.start()
        self._threads.append(thread)
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        return self

    def shutdown(self) -> None:
        self.server.should_exit = True
        self._stop.set()
        self._wake.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        self.runtime.close()


def _period(seconds: float) -> str:
    """The current period of a job that runs every ``seconds`` (UTC epoch buckets)."""
    now = datetime.now(UTC).timestamp()
    return str(int(now // max(1.0, seconds)))


def _summary(cycle: Any) -> str:
    errors = f"; errores: {'; '.join(cycle.errors)}" if cycle.errors else ""
    return ", ".join(f"{r.source}/{r.stream}: +{r.counts.created} ~{r.counts.updated}"
                     for r in cycle.reports) + errors
