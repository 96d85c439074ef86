"""One rule cycle: resume unfinished effects, evaluate event rules on pending change events,
data-condition / held-for rules on the current data, and due schedules.

``run_cycle(settings, db)`` is what the CLI (``saeko-sync run``), the demo and the service
call; it returns what fired per rule. One broken rule or failing action never stops the
others. A lease (``jobs.leases.hold``) makes one process run the cycle at a time; it is
released when its holder ends or dies, so another replica or a restart takes over at once.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from core.settings import Settings
from jobs.leases import hold
from rules import ledger as L
from rules.actions import REGISTRY
from rules.actions.base import Creates, from_json
from rules.actions.runtime import ActionRuntime
from rules.catalog import ENTITIES, entity_for_event
from rules.config import RulesConfig
from rules.executor import Candidate, Executor, RuleOutcome, correlation_for, stored_disparador
from rules.expr import EvalError
from rules.problems import Problem
from rules.ruleset import RuleSet, load_rules
from rules.spec import EventTrigger, Rule, StateTrigger, duration_of
from store.db import Database, utcnow
from store.models import (
    ActionLedger,
    ChangeEvent,
    RuleEventRetry,
    RuleRun,
    RuleState,
    RuleTimer,
    StoreMeta,
)

log = structlog.get_logger(__name__)
# The rule cycle's lease (jobs.leases.hold): released when its holder ends or dies.
LEASE_NAME = "rules-cycle"
SKIPPED_HELD_ELSEWHERE = "otro proceso (otra réplica o `saeko-sync run`) está ejecutando las reglas"
# Own Podio writes are recognised from the ledger for this long after they were made.
OWN_WRITE_WINDOW = timedelta(days=7)
# store_meta key: when this store's first rule cycle ran (what existed then is not fired).
RULES_SWITCHED_ON = "rules_switched_on"


@dataclass
class CycleReport:
    """What one cycle did: per rule, and the files that are broken."""

    started_at: datetime
    finished_at: datetime | None = None
    events: int = 0
    own_writes_ignored: int = 0
    remembered: int = 0
    rules: dict[str, RuleOutcome] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def fired(self) -> list[RuleOutcome]:
        return [o for o in self.rules.values() if o.fired]

    def lines(self) -> list[str]:
        """A short Spanish summary, one line per rule that did something."""
        if self.skipped:
            return [f"ciclo omitido: {self.skipped}"]
        if self.remembered:
            return [f"primer ciclo de reglas en esta base: {self.remembered} eventos de lo que "
                    "ya existía quedan registrados sin disparar nada"]
        out = [f"{self.events} eventos revisados; {self.own_writes_ignored} cambios propios "
               "ignorados"]
        for o in self.rules.values():
            if not (o.evaluated or o.fired or o.errors):
                continue
            parts = [f"{o.matched}/{o.evaluated} coinciden", f"{o.done} efectos"]
            parts += [f"{n} {w}" for n, w in ((o.reconciled, "reconciliados"),
                                              (o.waiting, "en espera"),
                                              (o.failed, "fallidos"), (o.dead, "muertos"),
                                              (o.held, "retenidos"), (o.skipped, "omitidos"))
                      if n]
            out.append(f"{o.rule_id} ({o.name}): " + ", ".join(parts))
        out += [f"regla en respaldo (archivo con errores): {r}" for r in self.fallbacks]
        out += [f"error: {p}" for p in self.problems]
        return out


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
            engine.resume()
            engine.events()
            engine.states()
            engine.schedules()
    finally:
        if own_runtime:
            runtime.close()
        lease.close()
    report.finished_at = utcnow()
    log.info("rules.cycle.done", events=report.events, fired=len(report.fired),
             problems=len(report.problems))
    return report


class CycleEngine:
    """The phases of one cycle, sharing one session and one executor."""

    def __init__(self, session: Session, config: RulesConfig, ruleset: RuleSet,
                 runtime: ActionRuntime | None, now: datetime, report: CycleReport, *,
                 dry_run: bool = False) -> None:
        self.s = session
        self.config = config
        self.ruleset = ruleset
        self.now = now
        self.report = report
        self.dry_run = dry_run
        self.ex = Executor(session, config, runtime, now, report.rules, dry_run=dry_run)

    def active(self) -> list[Rule]:
        return [r for r in self.ruleset.rules.values() if r.enabled]

    def _guard(self, rule: Rule, what: str, fn: Any) -> None:
        """Run one rule's phase; an unexpected error is reported and the others go on."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one rule must not stop the cycle
            self.s.rollback()
            message = f"{what}: {type(exc).__name__}: {exc}"
            self.ex.outcome(rule).errors.append(message)
            log.exception("rules.rule.failed", rule=rule.id, phase=what)

    # --- phase 1: resume unfinished effects -------------------------------------------

    def resume(self) -> None:
        rows = list(self.s.scalars(select(ActionLedger).where(or_(
            ActionLedger.status.in_((L.PLANNED, L.PENDING, L.APPROVED, L.QUEUED)),
            ActionLedger.status.in_((L.FAILED, L.WAITING))
            & (ActionLedger.next_attempt_at <= self.now),
        )).order_by(ActionLedger.id)))
        busy = {(r.rule_id, r.target) for r in rows if r.status not in (L.QUEUED, L.WAITING)}
        groups: dict[tuple[str, str], ActionLedger] = {}
        for row in rows:
            info = (row.payload or {}).get("match") or {}
            if row.status == L.QUEUED and (row.rule_id, row.target) in busy:
                continue
            groups.setdefault((row.rule_id or "", str(info.get("dedupe"))), row)
        by_rule: dict[str, list[ActionLedger]] = {}
        for (rule_id, _dedupe), row in groups.items():
            by_rule.setdefault(rule_id, []).append(row)
        for rule_id, rule_rows in by_rule.items():
            rule = self.ruleset.get(rule_id)
            if rule is None or not rule.enabled:
                continue
            self._guard(rule, "reanudar", lambda r=rule, rr=rule_rows: self._resume(r, rr))

    def _resume(self, rule: Rule, rows: list[ActionLedger]) -> None:
        ids = [int(i) for r in rows if (i := (r.payload or {})["match"].get("entity_id"))
               is not None]
        records = self.ex.load(rule, ids, include_deleted=True)
        outcome = self.ex.outcome(rule)
        for row in rows:
            info = (row.payload or {})["match"]
            cand = Candidate(info.get("entity_id"), info.get("trigger") or {},
                             info.get("instance", ""), info.get("correlation") or "",
                             stored_disparador(info))
            ctx = self.ex.base_ctx(rule)
            ctx["disparador"] = cand.disparador
            if rule.entity is not None:
                record = records.get(cand.entity_id) if cand.entity_id is not None else None
                if record is None:
                    continue
                ctx[rule.entity] = record
            if row.status == L.QUEUED:
                row.status = L.APPROVED
            trace: dict[str, Any] = {"regla": rule.id, "nombre": rule.name, "version": rule.hash,
                     "respaldo": rule.fallback, "disparador": cand.trigger,
                     "entidad": rule.entity, "registro": ctx.get(rule.entity or "") and
                     _label(ctx[rule.entity or ""]), "condiciones": [],
                     "correlacion": cand.correlation_id, "resultado": "reanudada",
                     "nota": f"estado en el registro de acciones: {row.status}",
                     "acciones": []}
            run = self.ex._save_run(rule, cand, trace, matched=True, status="reanudada")
            keys = [L.ledger_key(rule.id, info["dedupe"], a.key) for a in rule.actions]
            existing = L.rows_by_key(self.s, keys)
            outcome.evaluated += 1
            self.ex.run_actions(rule, cand, ctx, info["dedupe"], trace, run, existing)

    # --- phase 2: change events -------------------------------------------------------

    def pending_events(self) -> list[ChangeEvent]:
        return list(self.s.scalars(select(ChangeEvent).where(ChangeEvent.processed_at.is_(None))
                                   .order_by(ChangeEvent.id)
                                   .limit(self.config.settings.rules_event_batch)))

    def events(self) -> None:
        events = self.pending_events()
        self.report.events = len(events)
        if not self.dry_run and events and self._switching_on():
            self._remember(events)
            return
        retries = self._due_retries()
        if not events and not retries:
            return
        written = self._own_writes()
        retried = self._events_by_id({i for ids in retries.values() for i in ids})
        correlations = self._created_correlations([*events, *retried.values()])
        for rule in self.active():
            if not rule.event_triggers:
                continue
            again = [retried[i] for i in retries.get(rule.id, []) if i in retried]
            cands = self.event_candidates(rule, events + again, written, correlations)
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

    def event_candidates(self, rule: Rule, events: list[ChangeEvent],
                         written: dict[str, list[dict[str, Any]]],
                         correlations: dict[int, str]) -> list[Candidate]:
        assert rule.entity is not None
        definition = ENTITIES[rule.entity]
        out: list[Candidate] = []
        for event in events:
            entity = entity_for_event(event.entity)
            if entity is None or entity.name != rule.entity:
                continue
            everything = event.changes or {}
            persons = _person_changes(event, written)
            own = event.kind == "updated" and bool(everything) and not persons
            trigger = next((t for t in rule.event_triggers if _event_matches(
                t, event.kind, everything if t.include_own else persons)), None)
            if trigger is None:
                if own and any(_event_matches(t, event.kind, everything)
                               for t in rule.event_triggers):
                    self.report.own_writes_ignored += 1
                continue
            changes = {definition.field_for_column(col) or col: value
                       for col, value in (everything if trigger.include_own
                                          else persons).items()}
            field_name = next((f for f in trigger.fields), None)
            change = changes.get(field_name) if field_name else None
            disparador = {"tipo": {"created": "creado", "updated": "cambio",
                                   "deleted": "eliminado"}.get(event.kind, event.kind),
                          "campo": field_name, "de": change[0] if change else None,
                          "a": change[1] if change else None, "momento": event.changed_at or event.seen_at,
                          "cambios": {k: {"de": v[0], "a": v[1]} for k, v in changes.items()
                                      if isinstance(v, list) and len(v) == 2}}
            correlation = (event.correlation_id or correlations.get(event.id)
                           or correlation_for(f"event:{event.id}"))
            out.append(Candidate(
                event.entity_id,
                {"tipo": "evento", "descripcion": trigger.describe(), "evento": event.id,
                 "cambios": changes if event.kind == "updated" else {}, "propio": own},
                f"ev{event.id}", correlation, disparador))
        return out

    def _own_writes(self) -> dict[str, list[dict[str, Any]]]:
        """Columns our own Podio updates wrote (or may have written: sent, outcome not
        recorded), per record ("ticket:42"), recently."""
        writers = [a.name for a in REGISTRY.values() if a.written is not None]
        rows = self.s.execute(select(ActionLedger.payload).where(
            ActionLedger.action.in_(writers),
            ActionLedger.status.in_((L.DONE, L.PENDING, L.FAILED)),
            ActionLedger.updated_at >= self.now - OWN_WRITE_WINDOW)).scalars()
        out: dict[str, list[dict[str, Any]]] = {}
        for payload in rows:
            args = (payload or {}).get("args") or {}
            target = (payload or {}).get("action_target")
            if target and args.get("columns"):
                out.setdefault(target, []).append(from_json(args["columns"]))
        return out

    def _created_correlations(self, events: list[ChangeEvent]) -> dict[int, str]:
        """A record one of our actions created (``ActionType.creates``: an incident by
        ``jira.crear``) continues the correlation of that action."""
        out: dict[int, str] = {}
        for action in REGISTRY.values():
            if action.creates is not None:
                out.update(self._correlations_of(action.name, action.creates, events))
        return out

    def _correlations_of(self, action: str, creates: Creates, events: list[ChangeEvent]
                         ) -> dict[int, str]:
        keys = {}
        for event in events:
            key = ((event.changes or {}).get(creates.ref_column) or [None, None])[1]
            if entity_for_event(event.entity) is ENTITIES[creates.entity] and key:
                keys[event.id] = str(key)
        if not keys:
            return {}
        rows = self.s.execute(select(ActionLedger.external_ref, ActionLedger.correlation_id)
                              .where(ActionLedger.action == action,
                                     ActionLedger.external_ref.in_(set(keys.values())))).all()
        found = {ref: corr for ref, corr in rows}
        return {eid: str(found[key]) for eid, key in keys.items() if found.get(key)}

    # --- phase 3: data conditions and held-for timers ---------------------------------

    def states(self) -> None:
        for rule in self.active():
            trigger = rule.state_trigger
            if trigger is not None:
                self._guard(rule, "se_cumple", lambda r=rule, t=trigger: self._state(r, t))

    def _state(self, rule: Rule, trigger: StateTrigger) -> None:
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
            if timer.fired_at is None and timer.due_at <= self.now:
                due.append((timer, Candidate(
                    entity_id, {"tipo": "se_cumple", "descripcion": trigger.describe(),
                                "desde": timer.since.isoformat(),
                                "vence": timer.due_at.isoformat()},
                    f"st:{timer.since.isoformat()}",
                    correlation_for(f"{rule.id}:{entity_id}:{timer.since.isoformat()}"),
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

    # --- phase 4: schedules -----------------------------------------------------------

    def schedules(self) -> None:
        for rule in self.active():
            if rule.schedule_triggers:
                self._guard(rule, "programa", lambda r=rule: self._schedule(r))

    def _schedule(self, rule: Rule) -> None:
        state = self.s.get(RuleState, rule.id)
        slots = dict((state.state or {}).get("slots", {})) if state is not None else {}
        for trigger in rule.schedule_triggers:
            last_text = slots.get(str(trigger.index))
            last = datetime.fromisoformat(last_text) if last_text else None
            slot = trigger.schedule.latest_due(last, self.now)
            if slot is None:
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
                self.ex._save_run(rule, Candidate(None, info, instance, correlation), {
                    "regla": rule.id, "nombre": rule.name, "version": rule.hash,
                    "disparador": info, "entidad": rule.entity, "registro": None,
                    "condiciones": [], "acciones": [], "correlacion": correlation,
                    "resultado": "coincide" if matched else "no coincide",
                    "nota": f"{matched} de {len(cands)} {ENTITIES[rule.entity].plural} "
                            "cumplieron las condiciones"},
                    matched=bool(matched), status="resumen")
            slots[str(trigger.index)] = slot.isoformat()
            if state is not None and not self.dry_run:
                state.state = {**(state.state or {}), "slots": dict(slots)}
                self.s.commit()


def _label(record: Any) -> str:
    from rules.traces import label

    return label(record)


def _loose_in(value: Any, options: list[Any]) -> bool:
    return any(value == o or (value is not None and o is not None and str(value) == str(o))
               for o in options)


def _event_matches(trigger: EventTrigger, kind: str, changes: dict[str, Any]) -> bool:
    if trigger.kind == "creado":
        return kind == "created"
    if trigger.kind == "eliminado":
        return kind == "deleted"
    if kind not in ("updated", "created"):
        return False
    if not trigger.columns:
        return kind == "updated" and bool(changes)
    for column in trigger.columns:
        change = changes.get(column)
        if not isinstance(change, list) or len(change) != 2:
            continue
        old, new = change
        if trigger.from_values is not None and not _loose_in(old, trigger.from_values):
            continue
        if trigger.to_values is not None and not _loose_in(new, trigger.to_values):
            continue
        return True
    return False


def _person_changes(event: ChangeEvent, written: dict[str, list[dict[str, Any]]]
                    ) -> dict[str, Any]:
    """The changes of an update that are not our own: a change is ours only for a column
    one of our recent writes (an action with a write-through) made to this record, with the
    value it wrote (or any value, when the sync saw our own credentials make the item's
    latest revision), plus the keys Podio resolved from a reference we wrote. Everything else in the same
    update is a person's change, and triggers rules."""
    changes = event.changes or {}
    entity = entity_for_event(event.entity)
    ours = written.get(f"{entity.name}:{event.entity_id}") if entity is not None else None
    if event.kind != "updated" or not ours:
        return dict(changes)

    def is_ours(column: str, change: Any) -> bool:
        return any(_derived(column, columns) or (column in columns and (
            event.own_write or _loose_in(change[1] if isinstance(change, list) else change,
                                         [columns[column]]))) for columns in ours)

    return {c: v for c, v in changes.items() if not is_ours(c, v)}


def _derived(column: str, written: dict[str, Any]) -> bool:
    """Columns a Podio write changes indirectly: the foreign key resolved from a reference
    we wrote (school_id from school_source_id). Any other column — a person's edit of
    another field (``contact_source_id``, ``am_id``…) seen by the same sync — is not ours."""
    return (column.endswith("_id") and column.removesuffix("_id") + "_source_id" in written) \
        or column in ("source_revision",)


__all__ = ["CycleEngine", "CycleReport", "RuleRun", "run_cycle"]
