"""Running rules for one cycle (or one dry-run): evaluation (``rules.evaluation``), then
admission of the matches (``rules.admission``: de-duplication, run modes, storm guard),
then each admitted run's actions, planned in the ledger (``rules.planning``) and sent
(``rules.sending``). A dry-run runs the same code and stops before writing anything."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from connectors.clients import ActionRuntime
from rules.admission import Admission
from rules.coalesce import Waiting, WriteBatch
from rules.config import RulesConfig
from rules.evaluation import Evaluator
from rules.planning import Planner
from rules.runs import Candidate, Match, RuleOutcome, RunContext
from rules.sending import Sender
from rules.spec import Rule
from store.models import ActionLedger, RuleRun

log = structlog.get_logger(__name__)


class Executor:
    """The executor's parts for one cycle, sharing one session and one clock."""

    def __init__(self, session: Session, config: RulesConfig, runtime: ActionRuntime | None,
                 now: datetime, outcomes: dict[str, RuleOutcome], *, dry_run: bool = False
                 ) -> None:
        self.run = RunContext(session, config, runtime, now, outcomes, dry_run)
        self.evaluator = Evaluator(self.run)
        self.admission = Admission(self.run)
        self.planner = Planner(self.run)
        # One write per record per phase (rules.coalesce); a dry-run sends nothing.
        self.batch = None if dry_run or runtime is None else WriteBatch(self.run)
        self.sender = Sender(self.run, self.planner, self.batch)

    @property
    def dry_results(self) -> list[dict[str, Any]]:
        """The traces a dry-run collected (it stores none)."""
        return self.run.dry_results

    def base_ctx(self, rule: Rule) -> dict[str, Any]:
        """The variables every evaluation of ``rule`` starts from."""
        return self.evaluator.base_ctx(rule)

    def load(self, rule: Rule, ids: list[int] | None, *, include_deleted: bool = False
             ) -> dict[int, dict[str, Any]]:
        """The rule's records (all, or ``ids``) with the relations it uses."""
        return self.evaluator.load(rule, ids, include_deleted=include_deleted)

    def outcome(self, rule: Rule) -> RuleOutcome:
        """This cycle's outcome of ``rule``."""
        return self.run.outcome(rule)

    def save_run(self, rule: Rule, cand: Candidate, trace: dict[str, Any], *, matched: bool,
                 status: str) -> RuleRun | None:
        """Store one rule run with its trace (a dry-run collects the trace instead)."""
        return self.run.save_run(rule, cand, trace, matched=matched, status=status)

    def evaluate(self, rule: Rule, candidates: list[Candidate],
                 records: dict[int, dict[str, Any]] | None = None, *,
                 trace_misses: bool = True) -> int:
        """Check conditions for every candidate, then run the matches. Returns matches."""
        matches = self.evaluator.evaluate(rule, candidates, records, trace_misses=trace_misses)
        for admitted in self.admission.admit(rule, matches):
            self.run_actions(rule, admitted.match, admitted.run, admitted.existing)
        return len(matches)

    def run_actions(self, rule: Rule, match: Match, run: RuleRun | None,
                    existing: dict[str, ActionLedger]) -> None:
        """Plan every action of this run (one ledger row each, one transaction), then send
        what is planned, in order. A resumed run finds its rows and decides nothing again."""
        steps = self.planner.plan(rule, match, run, existing)
        deferred = not self.run.dry_run and self.sender.send(rule, match.ctx, steps)
        self._save_trace(run, match)
        if deferred and self.batch is not None:
            self.batch.waiting.append(Waiting(rule, match, run, steps))

    def flush(self) -> None:
        """Send what the phase deferred (one call per record), then the actions of the
        runs that waited for it — which may defer more, sent in the next round."""
        batch = self.batch
        while batch is not None and batch.by_key:
            for waiting in batch.flush(self.sender):
                try:
                    deferred = self.sender.send(waiting.rule, waiting.match.ctx, waiting.steps)
                    self._save_trace(waiting.run, waiting.match)
                except Exception as exc:  # noqa: BLE001 - one rule must not stop the others
                    self.run.session.rollback()
                    self.outcome(waiting.rule).errors.append(
                        f"acciones: {type(exc).__name__}: {exc}")
                    log.exception("rules.rule.failed", rule=waiting.rule.id, phase="acciones")
                    continue
                if deferred:
                    batch.waiting.append(waiting)

    def _save_trace(self, run: RuleRun | None, match: Match) -> None:
        if run is not None:
            run.trace = dict(match.trace)
            flag_modified(run, "trace")  # mutated in place: tell SQLAlchemy it changed
            self.run.session.commit()
