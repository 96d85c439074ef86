"""One rule cycle: resume unfinished effects, evaluate event rules on pending change events,
data-condition / held-for rules on the current data, and due schedules.

``run_cycle(settings, db)`` is what the CLI (``saeko-sync run``), the demo and the service
call; it returns what fired per rule. One broken rule or failing action never stops the
others. A lease (``jobs.leases.hold``) makes one process run the cycle at a time; it is
released when its holder ends or dies, so another replica or a restart takes over at once.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from connectors.clients import ActionRuntime
from core.settings import Settings
from jobs.leases import hold
from rules.config import RulesConfig
from rules.cycle import Cycle, CycleReport
from rules.event_phase import Events
from rules.executor import Executor
from rules.resume import Resume
from rules.ruleset import RuleSet, load_rules
from rules.timed import Schedules, States
from store.db import Database, utcnow

log = structlog.get_logger(__name__)
# The rule cycle's lease (jobs.leases.hold): released when its holder ends or dies.
LEASE_NAME = "rules-cycle"
SKIPPED_HELD_ELSEWHERE = "otro proceso (otra réplica o `saeko-sync run`) está ejecutando las reglas"


def run_cycle(settings: Settings, db: Database, *, now: datetime | None = None,
              runtime: ActionRuntime | None = None) -> CycleReport:
    """Evaluate every rule once and execute what fired, exactly once."""
    now = now or utcnow()
    config = RulesConfig.from_settings(settings)
    ruleset = load_rules(config, db)
    report = CycleReport(started_at=now, problems=ruleset.problems,
                         fallbacks=[r.id for r in ruleset.fallbacks])
    lease = ExitStack()
    if not lease.enter_context(hold(db, LEASE_NAME)):
        lease.close()
        report.skipped = SKIPPED_HELD_ELSEWHERE
        log.warning("rules.cycle.skipped", reason=report.skipped)
        return report
    own_runtime = runtime is None
    runtime = runtime or ActionRuntime(settings)
    try:
        with db.session() as session:
            engine = CycleEngine(session, config, ruleset, runtime, now, report)
            engine.run()
    finally:
        if own_runtime:
            runtime.close()
        lease.close()
    report.finished_at = utcnow()
    log.info("rules.cycle.done", events=report.events, fired=len(report.fired),
             problems=len(report.problems))
    return report


class CycleEngine(Cycle):
    """One cycle with its own executor; ``run()`` runs the phases in order."""

    def __init__(self, session: Session, config: RulesConfig, ruleset: RuleSet,
                 runtime: ActionRuntime | None, now: datetime, report: CycleReport, *,
                 dry_run: bool = False) -> None:
        super().__init__(session, config, ruleset,
                         Executor(session, config, runtime, now, report.rules, dry_run=dry_run),
                         report, dry_run=dry_run)

    def run(self) -> None:
        """Resume unfinished effects, then event rules, data conditions and schedules; after
        each phase, the writes it deferred go out, one call per record (rules.coalesce)."""
        for phase in (Resume, Events, States, Schedules):
            phase(self).run()
            self.ex.flush()


__all__ = ["CycleEngine", "CycleReport", "run_cycle"]
