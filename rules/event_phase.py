"""Phase 2 of a cycle: event rules on the pending change events. The first cycle a store
runs remembers what already existed without firing; a rule that raises keeps its events for
a retry with back-off while the others go on."""

from __future__ import annotations

import structlog
from sqlalchemy import delete, select

from rules import ledger as L
from rules.cycle import Cycle, Phase
from rules.event_match import EventCandidates
from rules.runs import Candidate
from rules.spec import Rule
from store.models import ChangeEvent, RuleEventRetry, StoreMeta

log = structlog.get_logger(__name__)
# store_meta key: when this store's first rule cycle ran (what existed then is not fired).
RULES_SWITCHED_ON = "rules_switched_on"


class Events(Phase):
    """Evaluates the event rules on one batch of change events."""

    def __init__(self, cycle: Cycle) -> None:
        super().__init__(cycle)
        self.matcher = EventCandidates(cycle)

    def pending_events(self) -> list[ChangeEvent]:
        """The change events no cycle processed yet (one batch), oldest first."""
        return list(self.s.scalars(select(ChangeEvent).where(ChangeEvent.processed_at.is_(None))
                                   .order_by(ChangeEvent.id)
                                   .limit(self.config.settings.rules_event_batch)))

    def run(self) -> None:
        """Evaluate the event rules on the pending change events (and on the events kept
        for a rule that raised, once their back-off is over), then mark them processed."""
        events = self.pending_events()
        self.report.events = len(events)
        if not self.dry_run and events and self._switching_on():
            self._remember(events)
            return
        retries = self._due_retries()
        if not events and not retries:
            return
        written = self.matcher.own_writes()
        retried = self._events_by_id({i for ids in retries.values() for i in ids})
        correlations = self.matcher.created_correlations([*events, *retried.values()])
        for rule in self.cycle.active():
            if not rule.event_triggers:
                continue
            again = [retried[i] for i in retries.get(rule.id, []) if i in retried]
            cands = self.matcher.event_candidates(rule, events + again, written, correlations)
            if cands or again:
                self._evaluate_events(rule, cands, [e.id for e in events + again])
        if not self.dry_run:
            for event in events:
                event.processed_at = self.now
            self.s.commit()

    def _switching_on(self) -> bool:
        """True on the first rule cycle this store ever runs (a new store, or one moved to
        another database): what the tools hold then is remembered, not fired again."""
        if self.s.get(StoreMeta, RULES_SWITCHED_ON) is not None:
            return False
        self.s.add(StoreMeta(key=RULES_SWITCHED_ON, value={"at": self.now.isoformat()},
                             updated_at=self.now))
        return True

    def _remember(self, events: list[ChangeEvent]) -> None:
        """Mark everything the first syncs saw as processed without firing (as Zapier does
        with the items that exist when a zap is switched on)."""
        while events:
            for event in events:
                event.processed_at = self.now
            self.s.commit()
            self.report.remembered += len(events)
            events = self.pending_events()
        log.info("rules.switched_on", remembered=self.report.remembered)

    def _evaluate_events(self, rule: Rule, cands: list[Candidate], event_ids: list[int]
                         ) -> None:
        """Evaluate one rule's candidates; if the rule raises, keep its events for a
        retry with back-off (the others go on, the events stay processed for them)."""
        mine = {c.trigger.get("evento") for c in cands} | set(event_ids)
        try:
            if cands:
                self.ex.evaluate(rule, cands)
        except Exception as exc:  # noqa: BLE001 - one rule must not stop the cycle
            self.s.rollback()
            message = f"eventos: {type(exc).__name__}: {exc}"
            self.ex.outcome(rule).errors.append(message)
            log.exception("rules.rule.failed", rule=rule.id, phase="eventos")
            if not self.dry_run:
                self._keep_for_retry(rule, {c.trigger["evento"] for c in cands}, message)
            return
        if not self.dry_run:
            self.s.execute(delete(RuleEventRetry).where(
                RuleEventRetry.rule_id == rule.id,
                RuleEventRetry.event_id.in_([i for i in mine if i is not None])))
            self.s.commit()

    def _keep_for_retry(self, rule: Rule, event_ids: set[int], message: str) -> None:
        known = {r.event_id: r for r in self.s.scalars(select(RuleEventRetry).where(
            RuleEventRetry.rule_id == rule.id, RuleEventRetry.event_id.in_(event_ids)))}
        for event_id in event_ids:
            row = known.get(event_id) or RuleEventRetry(rule_id=rule.id, event_id=event_id,
                                                        attempts=0, created_at=self.now)
            row.attempts = (row.attempts or 0) + 1
            row.error = message[:2000]
            row.next_attempt_at = (None if row.attempts >= self.config.max_attempts else
                                   L.next_attempt(self.now, row.attempts,
                                                  self.config.retry_base_seconds))
            self.s.add(row)
        self.s.commit()

    def _due_retries(self) -> dict[str, list[int]]:
        """rule id -> events to evaluate again for it (their back-off is over)."""
        out: dict[str, list[int]] = {}
        for rule_id, event_id in self.s.execute(select(
                RuleEventRetry.rule_id, RuleEventRetry.event_id).where(
                RuleEventRetry.next_attempt_at <= self.now)):
            out.setdefault(rule_id, []).append(event_id)
        return out

    def _events_by_id(self, ids: set[int]) -> dict[int, ChangeEvent]:
        if not ids:
            return {}
        return {e.id: e for e in self.s.scalars(select(ChangeEvent).where(
            ChangeEvent.id.in_(ids)))}
