"""Phases 3 and 4 of a cycle: data conditions held for a while ("se cumple durante 72
horas hábiles", one timer per rule and record) and schedules (each slot fires once)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select

from rules.admission import once_per_value
from rules.catalog import ENTITIES
from rules.cycle import Phase
from rules.expr import EvalError
from rules.runs import Candidate, correlation_for
from rules.spec import Rule, StateTrigger, duration_of
from rules.templates import TemplateRenderError
from rules.traces import new_trace
from store.models import RuleState, RuleTimer


class States(Phase):
    """Data-condition rules and their held-for timers."""

    def run(self) -> None:
        """Check every data-condition rule; fire those whose condition held long enough."""
        for rule in self.cycle.active():
            trigger = rule.state_trigger
            if trigger is not None:
                self.cycle.guard(rule, "se_cumple", partial(self.state, rule, trigger))

    def state(self, rule: Rule, trigger: StateTrigger) -> None:
        """One rule: start, keep or drop each record's timer; evaluate the records due."""
        assert rule.entity is not None
        records = self.ex.load(rule, None)
        timers = {t.entity_id: t for t in self.s.scalars(
            select(RuleTimer).where(RuleTimer.rule_id == rule.id))}
        base = self.ex.base_ctx(rule)
        due: list[tuple[RuleTimer, Candidate]] = []
        for entity_id, record in records.items():
            ctx = dict(base)
            ctx[rule.entity] = record
            try:
                holds = bool(trigger.condition.run(ctx))
            except EvalError:
                holds = False
            timer = timers.pop(entity_id, None)
            if not holds:
                if timer is not None and not self.dry_run:
                    self.s.delete(timer)
                continue
            if timer is None:
                since = self._since(trigger, ctx)
                timer = RuleTimer(rule_id=rule.id, entity=rule.entity, entity_id=entity_id,
                                  since=since, due_at=self._due(rule, trigger, since))
                if not self.dry_run:
                    self.s.add(timer)
            key = self._fired_key(rule, ctx)
            refire = timer.fired_at is not None and key is not None and key != timer.fired_key
            if (timer.fired_at is None and timer.due_at <= self.now) or refire:
                timer.fired_key = key
                due.append((timer, Candidate(
                    entity_id, {"tipo": "se_cumple", "descripcion": trigger.describe(),
                                "desde": timer.since.isoformat(),
                                "vence": timer.due_at.isoformat()},
                    f"st:{timer.since.isoformat()}",
                    correlation_for(f"{rule.id}:{entity_id}:{timer.since.isoformat()}"
                                    + (f":{key}" if refire else "")),
                    {"tipo": "se_cumple", "momento": timer.due_at})))
        if not self.dry_run:
            for stale in timers.values():
                self.s.delete(stale)
            self.s.commit()
        if due:
            self.ex.evaluate(rule, [c for _t, c in due], records)
            if not self.dry_run:
                for timer, _cand in due:
                    timer.fired_at = self.now
                self.s.commit()

    @staticmethod
    def _fired_key(rule: Rule, ctx: dict[str, Any]) -> str | None:
        """The rule's «una_vez_por» for this record (None without one, or when it cannot be
        computed): a timer that fired for another value fires again while the state holds."""
        if rule.once_per is None:
            return None
        try:
            return str(once_per_value(rule, ctx))[:500]
        except (EvalError, TemplateRenderError):
            return None

    def _since(self, trigger: StateTrigger, ctx: dict[str, Any]) -> datetime:
        if trigger.since is not None:
            try:
                value = trigger.since.run(ctx)
            except EvalError:
                value = None
            if isinstance(value, datetime):
                return value
        return self.now

    def _due(self, rule: Rule, trigger: StateTrigger, since: datetime) -> datetime:
        if not trigger.hold_amount:
            return since
        calendar = self.config.calendar
        if trigger.business:
            if trigger.hold_unit == "d":
                moved = calendar.add_business_days(since, int(trigger.hold_amount), rule.zone)
                assert isinstance(moved, datetime)
                return moved
            hours = trigger.hold_amount / 60 if trigger.hold_unit == "m" else trigger.hold_amount
            return calendar.add_business_hours(since, hours, rule.zone)
        return since + duration_of(trigger)


class Schedules(Phase):
    """Schedule rules: one run per due slot."""

    def run(self) -> None:
        """Fire each schedule rule whose latest slot is due and not fired yet."""
        for rule in self.cycle.active():
            if rule.schedule_triggers:
                self.cycle.guard(rule, "programa", partial(self._schedule, rule))

    def _schedule(self, rule: Rule) -> None:
        state = self.s.get(RuleState, rule.id)
        slots = dict((state.state or {}).get("slots", {})) if state is not None else {}
        for trigger in rule.schedule_triggers:
            last_text = slots.get(str(trigger.index))
            last = datetime.fromisoformat(last_text) if last_text else None
            slot = trigger.schedule.latest_due(last, self.now)
            if slot is None:
                if last is None and state is not None and not self.dry_run:
                    # First look at this schedule: slots from now on count, so a cycle that
                    # comes late (a batched or delayed run) still catches the next one up.
                    slots[str(trigger.index)] = self.now.isoformat()
                    state.state = {**(state.state or {}), "slots": dict(slots)}
                    self.s.commit()
                continue
            instance = f"sch{trigger.index}:{slot.isoformat()}"
            info = {"tipo": "programa", "descripcion": trigger.describe(),
                    "momento": slot.isoformat()}
            disparador = {"tipo": "programa", "momento": slot}
            correlation = correlation_for(f"{rule.id}:{instance}")
            if rule.entity is None:
                self.ex.evaluate(rule, [Candidate(None, info, instance, correlation,
                                                  disparador)])
            else:
                records = self.ex.load(rule, None)
                cands = [Candidate(i, info, instance, correlation, disparador) for i in records]
                matched = self.ex.evaluate(rule, cands, records, trace_misses=False)
                note = (f"{matched} de {len(cands)} {ENTITIES[rule.entity].plural} "
                        "cumplieron las condiciones")
                summary = Candidate(None, info, instance, correlation)
                self.ex.save_run(rule, summary, new_trace(
                    rule, summary, "coincide" if matched else "no coincide", note=note,
                    dry_run=self.dry_run), matched=bool(matched), status="resumen")
            slots[str(trigger.index)] = slot.isoformat()
            if state is not None and not self.dry_run:
                state.state = {**(state.state or {}), "slots": dict(slots)}
                self.s.commit()
