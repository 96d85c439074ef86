"""Planning a run's actions, the ledger side: each action's decision becomes its ledger row
(planned, omitted, waiting or dead), all in one transaction before the first is sent
("plan, then send"); a resumed run finds its rows and decides nothing again. A waiting
action is prepared again here when its back-off is over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.errors import RemoteDataError
from rules import ledger as L
from rules.actions.base import ActionSkipped, PrepareContext, Prepared, to_json
from rules.expr import Compiled, EvalError
from rules.runs import Match, RuleOutcome, RunPart, match_info, target_of
from rules.spec import ActionSpec, Rule
from rules.templates import TemplateRenderError
from store.models import ActionLedger, RuleRun

# Errors that retrying cannot fix: the action goes dead at once, with the error visible.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (RemoteDataError, ValueError, KeyError,
                                                 TypeError)
PREPARE_ERRORS: tuple[type[Exception], ...] = (EvalError, TemplateRenderError,
                                               *PERMANENT_ERRORS)


@dataclass
class Step:
    """One action of a run: its spec, its ledger row (None in a dry-run), its trace entry."""

    spec: ActionSpec
    row: ActionLedger | None
    entry: dict[str, Any]


@dataclass
class Planning:
    """One run being planned: the rule, its match, its stored run and the rule's outcome."""

    rule: Rule
    match: Match
    run: RuleRun | None
    outcome: RuleOutcome


class Planner(RunPart):
    """Decides each action of a run once and records the decision in the ledger."""

    def plan(self, rule: Rule, match: Match, run: RuleRun | None,
             existing: dict[str, ActionLedger]) -> list[Step]:
        """One step per action of the rule: its existing row, or its decision now (the
        new rows committed together, before anything is sent)."""
        plan = Planning(rule, match, run, self.run.outcome(rule))
        results: dict[str, Any] = {}
        match.ctx["acciones"] = results
        steps: list[Step] = []
        added = False
        mine = {r.id for r in existing.values()}  # this run's rows (a resumed run's)
        for spec in rule.actions:
            key = L.ledger_key(rule.id, match.dedupe, spec.key)
            row = existing.get(key)
            if row is None and spec.shared is not None:
                key, row = self._escalation(spec, match.ctx, key)
            entry: dict[str, Any] = {"accion": spec.type.name, "clave": key}
            match.trace["acciones"].append(entry)
            if row is not None and spec.shared is not None and row.id not in mine:
                entry["nota"] = (f"ya escalado por la regla {row.rule_id} (M7: una vez por "
                                 "causa, cliente y periodo)")
            if row is None or (row.status == L.APPROVED and "args" not in (row.payload or {})):
                # not decided yet (an approved storm-guard hold records no arguments)
                row = self._decide(plan, spec, key, entry, row)
                added = added or row is not None
            else:
                entry.update(estado=row.status, resumen=(row.payload or {}).get("summary"))
                if self.dry_run:  # what the rule as edited now would write instead
                    entry["ahora"] = self._preview(plan, spec)
            if spec.id:
                done = row is not None and row.status == L.DONE
                results[spec.id] = {"ref": row.external_ref if done and row else
                                    L.planned_ref(spec.id),
                                    "estado": row.status if row else entry.get("estado")}
            steps.append(Step(spec, row, entry))
        if added:
            self.s.commit()  # the whole plan before the first effect is sent
        return steps

    def _escalation(self, spec: ActionSpec, ctx: dict[str, Any], key: str
                    ) -> tuple[str, ActionLedger | None]:
        """An escalation's key and its row if any rule made it already (or this run, planned
        before a crash: its «si» may not hold any more once the first effects are done). A
        new one only when its «si» holds: an escalation a rule omitted must not keep another
        rule from making it."""
        assert spec.shared is not None
        try:
            shared = (spec.shared.run(ctx) if isinstance(spec.shared, Compiled)
                      else spec.shared.render(ctx))
            escalation = L.escalation_key(str(shared), spec.type.name)
            row = L.rows_by_key(self.s, [escalation]).get(escalation)
            if row is not None:  # made (or on its way): resumed, or someone else's
                return escalation, row
            if spec.when is not None and not spec.when.run(ctx):
                return key, None  # omitted under this run's own key
        except (EvalError, TemplateRenderError):
            return key, None  # decided (and traced) as any other action
        return escalation, None

    def _decide(self, plan: Planning, spec: ActionSpec, key: str, entry: dict[str, Any],
                parked: ActionLedger | None = None) -> ActionLedger | None:
        """One action's decision as a ledger row (none in a dry-run); ``parked`` is the
        approved row of a storm-guard hold, decided now."""
        row = self._decision(plan, spec, key, entry)
        if row is None or parked is None:
            return row
        self.s.expunge(row)
        for name in ("status", "payload", "error", "next_attempt_at", "updated_at"):
            setattr(parked, name, getattr(row, name))
        return parked

    def _decision(self, plan: Planning, spec: ActionSpec, key: str, entry: dict[str, Any]
                  ) -> ActionLedger | None:
        rule, ctx, outcome = plan.rule, plan.match.ctx, plan.outcome
        if spec.when is not None:
            try:
                holds, why = bool(spec.when.run(ctx)), "la condición «si» no se cumplió"
            except EvalError as exc:
                holds, why = False, f"la condición «si» falló: {exc}"
            if not holds:
                entry.update(estado=L.OMITTED, nota=why)
                return self._row(plan, spec, key, L.OMITTED, note=why)
        try:
            prepared = self.prepare(rule, spec, ctx)
        except ActionSkipped as exc:
            entry.update(estado=L.WAITING, nota=f"{exc}; se reintentará")
            outcome.waiting += 1
            return self._row(plan, spec, key, L.WAITING, note=str(exc),
                             retry_at=self.now + L.WAIT_RETRY)
        except PREPARE_ERRORS as exc:
            message = f"no se pudieron calcular los argumentos: {exc}"
            entry.update(estado=L.DEAD, error=message)
            outcome.dead += 1
            outcome.errors.append(f"{rule.id}: {spec.type.name}: {message}")
            return self._row(plan, spec, key, L.DEAD, note=message)
        entry.update(resumen=prepared.summary, argumentos=prepared.payload)
        if prepared.skip_reason:
            entry.update(estado=L.OMITTED, nota=prepared.skip_reason)
            outcome.skipped += 1
            return self._row(plan, spec, key, L.OMITTED, note=prepared.skip_reason)
        if self.dry_run:
            entry.update(estado="simulada", ref=f"(simulado {spec.type.name})")
            return None
        entry.update(estado=L.PLANNED)
        return self._row(plan, spec, key, L.PLANNED, prepared=prepared)

    def _preview(self, plan: Planning, spec: ActionSpec) -> dict[str, Any]:
        """A dry-run's rendering of an action whose effect the ledger already has: what the
        rule, as it is written now, would write (its «si», then its arguments)."""
        ctx = plan.match.ctx
        try:
            if spec.when is not None and not spec.when.run(ctx):
                return {"nota": "la condición «si» ya no se cumpliría: se omitiría"}
            prepared = self.prepare(plan.rule, spec, ctx)
        except ActionSkipped as exc:
            return {"nota": f"esperaría: {exc}"}
        except PREPARE_ERRORS as exc:
            return {"error": f"no se podrían calcular los argumentos: {exc}"}
        if prepared.skip_reason:
            return {"nota": f"se omitiría: {prepared.skip_reason}"}
        return {"resumen": prepared.summary, "argumentos": prepared.payload}

    def _row(self, plan: Planning, spec: ActionSpec, key: str, status: str, *,
             prepared: Prepared | None = None, note: str | None = None,
             retry_at: datetime | None = None) -> ActionLedger | None:
        if self.dry_run:
            return None
        cand = plan.match.cand
        payload: dict[str, Any] = {"match": match_info(plan.rule, cand, plan.match.dedupe)}
        if prepared is not None:
            payload.update(args=prepared.payload, action_target=prepared.target,
                           summary=prepared.summary)
        row = ActionLedger(idempotency_key=key, rule_id=plan.rule.id, action=spec.type.name,
                           target=target_of(plan.rule, cand), payload=payload, status=status,
                           attempts=0, error=note[:2000] if note else None,
                           next_attempt_at=retry_at, correlation_id=cand.correlation_id,
                           run_id=plan.run.id if plan.run else None, created_at=self.now,
                           updated_at=self.now)
        self.s.add(row)
        return row

    def prepare(self, rule: Rule, spec: ActionSpec, ctx: dict[str, Any]) -> Prepared:
        """The action's arguments evaluated and turned into its JSON payload."""
        values: dict[str, Any] = {}
        for name, param in spec.type.params.items():
            arg = spec.args.get(name)
            values[name] = arg.value(ctx) if arg is not None else param.default
        record = ctx.get(rule.entity) if rule.entity else None
        prepared = spec.type.prepare(values, PrepareContext(self.config, record, rule.entity))
        prepared.payload = to_json(prepared.payload)
        return prepared

    def retry_waiting(self, rule: Rule, ctx: dict[str, Any], step: Step,
                      outcome: RuleOutcome) -> None:
        """Prepare a waiting action again: its reason (e.g. no AM yet) may have changed."""
        row, entry = step.row, step.entry
        assert row is not None
        if row.next_attempt_at and row.next_attempt_at > self.now:
            entry.update(estado=L.WAITING, nota=row.error)
            return
        if rule.entity is not None and ctx.get(rule.entity) is None:
            return
        try:
            prepared = self.prepare(rule, step.spec, ctx)
        except ActionSkipped as exc:
            self._still_waiting(row, entry, exc)
            return
        except PREPARE_ERRORS as exc:
            row.status, row.error = L.DEAD, f"no se pudieron calcular los argumentos: {exc}"
            outcome.dead += 1
        else:
            row.payload = {**(row.payload or {}), "args": prepared.payload,
                           "action_target": prepared.target, "summary": prepared.summary}
            row.status, row.error = (L.OMITTED, prepared.skip_reason) if prepared.skip_reason \
                else (L.PLANNED, None)
            entry.update(resumen=prepared.summary, argumentos=prepared.payload)
        row.next_attempt_at, row.updated_at = None, self.now
        entry.update(estado=row.status, nota=row.error)
        self.s.commit()

    def _still_waiting(self, row: ActionLedger, entry: dict[str, Any],
                       exc: ActionSkipped) -> None:
        """Its reason has not changed: wait again, or give up (omitted) after WAIT_LIMIT."""
        expired = row.created_at + L.WAIT_LIMIT <= self.now
        row.status = L.OMITTED if expired else L.WAITING
        row.error = (f"{exc} (se esperó {L.WAIT_LIMIT.days} días)" if expired
                     else str(exc))[:2000]
        row.next_attempt_at = None if expired else self.now + L.WAIT_RETRY
        row.updated_at = self.now
        entry.update(estado=row.status, nota=row.error)
        self.s.commit()
