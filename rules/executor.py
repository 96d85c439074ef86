"""Evaluating a rule on candidates in bulk, and running the actions of its matches through
the ledger: written (pending) and committed before the call, done with the tool's ref after,
reconciled by marker when the outcome is unknown, retried with backoff, dead after N tries.
The same code runs a dry-run, which stops before writing anything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from core.errors import ConfigError, ConnectorError, RemoteDataError
from rules import ledger as L
from rules.actions.base import ActionSkipped, PrepareContext, Prepared, from_json, to_json
from rules.actions.runtime import ActionRuntime
from rules.config import RulesConfig
from rules.data import Loader, relation_tree
from rules.expr import ENV_KEY, Compiled, EvalError
from rules.functions import Env
from rules.spec import ActionSpec, Rule
from rules.templates import TemplateRenderError
from rules.traces import jsonable, label
from store.models import ActionLedger, RuleRun

log = structlog.get_logger(__name__)
# Errors that retrying cannot fix: the action goes dead at once, with the error visible.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (RemoteDataError, ValueError, KeyError,
                                                 TypeError)
PREPARE_ERRORS: tuple[type[Exception], ...] = (EvalError, TemplateRenderError,
                                               *PERMANENT_ERRORS)
SEND_ERRORS: tuple[type[Exception], ...] = (ConnectorError, ConfigError, *PERMANENT_ERRORS)
CORRELATION_NAMESPACE = uuid.UUID("6f1d8f52-7a4e-4a8e-9a51-5e1c0c2f7b11")


@dataclass
class Candidate:
    """One trigger instance for one record (or none, for schedules without entity)."""

    entity_id: int | None
    trigger: dict[str, Any]
    instance: str
    correlation_id: str
    disparador: dict[str, Any] = field(default_factory=dict)


@dataclass
class RuleOutcome:
    """What one rule did in one cycle (the demo prints these)."""

    rule_id: str
    name: str
    evaluated: int = 0
    matched: int = 0
    done: int = 0
    skipped: int = 0
    waiting: int = 0
    failed: int = 0
    dead: int = 0
    held: int = 0
    reconciled: int = 0
    errors: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(self.done or self.failed or self.dead or self.held)


def correlation_for(key: str) -> str:
    """A stable correlation id for a trigger instance without one."""
    return uuid.uuid5(CORRELATION_NAMESPACE, key).hex


class Executor:
    """Runs rules for one cycle (or one dry-run) with one session."""

    def __init__(self, session: Session, config: RulesConfig, runtime: ActionRuntime | None,
                 now: datetime, outcomes: dict[str, RuleOutcome], *, dry_run: bool = False
                 ) -> None:
        self.s = session
        self.config = config
        self.runtime = runtime
        self.now = now
        self.outcomes = outcomes
        self.dry_run = dry_run
        self.loader = Loader(session)
        self.dry_results: list[dict[str, Any]] = []
        self._envs: dict[str, Env] = {}

    # --- contexts ---------------------------------------------------------------------

    def env(self, zone: str) -> Env:
        if zone not in self._envs:
            self._envs[zone] = Env(self.now, zone, self.config.calendar)
        return self._envs[zone]

    def base_ctx(self, rule: Rule) -> dict[str, Any]:
        env = self.env(rule.zone)
        return {"ahora": self.now, "hoy": env.today, "datos": rule.data,
                "regla": {"id": rule.id, "nombre": rule.name}, "acciones": {},
                "disparador": {}, ENV_KEY: env}

    def outcome(self, rule: Rule) -> RuleOutcome:
        if rule.id not in self.outcomes:
            self.outcomes[rule.id] = RuleOutcome(rule.id, rule.name)
        return self.outcomes[rule.id]

    def load(self, rule: Rule, ids: list[int] | None, *, include_deleted: bool = False
             ) -> dict[int, dict[str, Any]]:
        if rule.entity is None:
            return {}
        tree = relation_tree(rule.entity, rule.relation_paths)
        return self.loader.load(rule.entity, ids, tree, include_deleted=include_deleted)

    # --- evaluation -------------------------------------------------------------------

    def evaluate(self, rule: Rule, candidates: list[Candidate],
                 records: dict[int, dict[str, Any]] | None = None, *,
                 trace_misses: bool = True) -> int:
        """Check conditions for every candidate, then run the matches. Returns matches."""
        if rule.entity is not None and records is None:
            ids = [c.entity_id for c in candidates if c.entity_id is not None]
            records = self.load(rule, ids, include_deleted=True)
        outcome = self.outcome(rule)
        base = self.base_ctx(rule)
        matches: list[tuple[Candidate, dict[str, Any], dict[str, Any]]] = []
        for cand in candidates:
            record = (records or {}).get(cand.entity_id) if cand.entity_id is not None else None
            if rule.entity is not None and record is None:
                continue
            ctx = dict(base)
            if rule.entity is not None:
                ctx[rule.entity] = record
            ctx["disparador"] = cand.disparador
            outcome.evaluated += 1
            error = None
            try:
                ok = all(c.run(ctx) for c in rule.conditions)
            except EvalError as exc:
                ok, error = False, str(exc)
            if not ok and not trace_misses and error is None:
                continue
            trace = self._trace(rule, cand, record, ctx, ok, error)
            if error is not None:
                outcome.errors.append(f"{label(record)}: {error}")
            if ok:
                outcome.matched += 1
                matches.append((cand, ctx, trace))
            else:
                self._save_run(rule, cand, trace, matched=False, status=trace["resultado"])
        if matches:
            self._run_matches(rule, matches)
        return len(matches)

    def _trace(self, rule: Rule, cand: Candidate, record: Any, ctx: dict[str, Any],
               ok: bool, error: str | None) -> dict[str, Any]:
        conditions = [self._explain(c, ctx) for c in rule.conditions]
        return {"regla": rule.id, "nombre": rule.name, "version": rule.hash,
                "respaldo": rule.fallback, "disparador": cand.trigger,
                "entidad": rule.entity, "registro": label(record) if record else None,
                "condiciones": conditions, "correlacion": cand.correlation_id,
                "resultado": "coincide" if ok else "error" if error else "no coincide",
                "acciones": [], "simulacion": self.dry_run}

    @staticmethod
    def _explain(compiled: Compiled, ctx: dict[str, Any]) -> dict[str, Any]:
        try:
            result, seen = compiled.explain(ctx)
            return {"expresion": compiled.source, "resultado": bool(result),
                    "valores": jsonable(seen)}
        except EvalError as exc:
            return {"expresion": compiled.source, "resultado": False, "valores": {},
                    "error": str(exc)}

    def _save_run(self, rule: Rule, cand: Candidate, trace: dict[str, Any], *, matched: bool,
                  status: str) -> RuleRun | None:
        if self.dry_run:
            self.dry_results.append(trace)
            return None
        run = RuleRun(rule_id=rule.id, rule_hash=rule.hash,
                      trigger=str(cand.trigger.get("descripcion", ""))[:200],
                      entity=rule.entity, entity_id=cand.entity_id,
                      correlation_id=cand.correlation_id, matched=matched, status=status,
                      trace=trace, started_at=self.now, finished_at=self.now)
        self.s.add(run)
        self.s.flush()
        return run

    # --- matches ----------------------------------------------------------------------

    def dedupe(self, rule: Rule, cand: Candidate, ctx: dict[str, Any]) -> str:
        if rule.once_per is None:
            return f"{cand.instance}:{cand.entity_id}"
        value = (rule.once_per.run(ctx) if isinstance(rule.once_per, Compiled)
                 else rule.once_per.render(ctx))
        return f"una:{value}"

    def _target(self, rule: Rule, cand: Candidate) -> str:
        return f"{rule.entity or 'regla'}:{cand.entity_id if cand.entity_id is not None else '-'}"

    def _run_matches(self, rule: Rule,
                     matches: list[tuple[Candidate, dict[str, Any], dict[str, Any]]]) -> None:
        outcome = self.outcome(rule)
        keyed = []
        for cand, ctx, trace in matches:
            try:
                keyed.append((cand, ctx, trace, self.dedupe(rule, cand, ctx)))
            except (EvalError, TemplateRenderError) as exc:
                trace["resultado"], trace["nota"] = "error", f"una_vez_por falló: {exc}"
                outcome.errors.append(str(exc))
                self._save_run(rule, cand, trace, matched=True, status="error")
        keyed = self._first_per_dedupe(rule, keyed)
        all_keys = [L.ledger_key(rule.id, d, a.key) for *_x, d in keyed for a in rule.actions]
        existing = L.rows_by_key(self.s, all_keys)
        fresh = [k for k in keyed
                 if not any(L.ledger_key(rule.id, k[3], a.key) in existing for a in rule.actions)]
        unfinished = self._unfinished(rule, [self._target(rule, c) for c, *_ in fresh])
        held = len(fresh) * len(rule.actions) > rule.storm_limit
        fresh_ids = {id(k[0]) for k in fresh}
        for cand, ctx, trace, dedupe in keyed:
            is_new = id(cand) in fresh_ids
            target = self._target(rule, cand)
            if is_new and target in unfinished and rule.mode != "paralelo":
                if self._apply_mode(rule, cand, ctx, trace, dedupe, unfinished[target]):
                    continue
            if is_new and held:
                trace["resultado"] = "retenida"
                trace["nota"] = (f"{len(fresh)} registros × {len(rule.actions)} acciones "
                                 f"superan el límite de {rule.storm_limit} efectos por "
                                 "ejecución; aprueba con: saeko-sync rules approve "
                                 f"{rule.id}")
                run = self._save_run(rule, cand, trace, matched=True, status="retenida")
                self._park(rule, cand, dedupe, L.HELD, run)
                outcome.held += 1
                continue
            run = self._save_run(rule, cand, trace, matched=True, status="coincide")
            self.run_actions(rule, cand, ctx, dedupe, trace, run, existing)

    def _first_per_dedupe(self, rule: Rule, keyed: list[Any]) -> list[Any]:
        """Several triggers of one batch with the same ``una_vez_por`` value (a record
        changed twice between cycles) run once: the first; the others are traced."""
        seen: set[str] = set()
        unique = []
        for cand, ctx, trace, dedupe in keyed:
            if dedupe in seen:
                trace["resultado"] = "ignorada"
                trace["nota"] = ("otro disparo del mismo ciclo con el mismo «una_vez_por» ya "
                                 "se ejecuta")
                self._save_run(rule, cand, trace, matched=True, status="ignorada")
                continue
            seen.add(dedupe)
            unique.append((cand, ctx, trace, dedupe))
        return unique

    def _unfinished(self, rule: Rule, targets: list[str]) -> dict[str, list[ActionLedger]]:
        if rule.mode == "paralelo" or not targets:
            return {}
        out: dict[str, list[ActionLedger]] = {}
        for start in range(0, len(targets), 900):
            for row in self.s.scalars(select(ActionLedger).where(
                    ActionLedger.rule_id == rule.id,
                    ActionLedger.status.in_((L.FAILED, L.HELD, L.QUEUED, L.APPROVED)),
                    ActionLedger.target.in_(targets[start:start + 900]))):
                out.setdefault(row.target or "", []).append(row)
        return out

    def _apply_mode(self, rule: Rule, cand: Candidate, ctx: dict[str, Any],
                    trace: dict[str, Any], dedupe: str, rows: list[ActionLedger]) -> bool:
        """Handle a new trigger while an earlier run is unfinished; True = do not run now."""
        if rule.mode == "unico":
            trace["resultado"] = "ignorada"
            trace["nota"] = ("ya hay una ejecución sin terminar para este registro "
                             "(modo unico)")
            self._save_run(rule, cand, trace, matched=True, status="ignorada")
            return True
        if rule.mode == "cola":
            trace["resultado"], trace["nota"] = "ignorada", "en cola tras la ejecución anterior"
            run = self._save_run(rule, cand, trace, matched=True, status="en cola")
            self._park(rule, cand, dedupe, L.QUEUED, run)
            return True
        if not self.dry_run:  # reiniciar
            for row in rows:
                row.status, row.error, row.updated_at = (
                    L.CANCELLED, "reemplazada por una ejecución nueva (modo reiniciar)", self.now)
        del ctx
        return False

    def _park(self, rule: Rule, cand: Candidate, dedupe: str, status: str,
              run: RuleRun | None) -> None:
        if self.dry_run:
            return
        first = rule.actions[0]
        self.s.add(ActionLedger(
            idempotency_key=L.ledger_key(rule.id, dedupe, first.key), rule_id=rule.id,
            action=first.type.name, target=self._target(rule, cand),
            payload={"match": self.match_info(rule, cand, dedupe)}, status=status,
            correlation_id=cand.correlation_id, run_id=run.id if run else None,
            created_at=self.now, updated_at=self.now))
        self.s.commit()

    @staticmethod
    def match_info(rule: Rule, cand: Candidate, dedupe: str) -> dict[str, Any]:
        return {"rule": rule.id, "entity": rule.entity, "entity_id": cand.entity_id,
                "instance": cand.instance, "dedupe": dedupe, "trigger": cand.trigger,
                "correlation": cand.correlation_id, "disparador": jsonable(cand.disparador)}

    # --- actions: plan, then send -----------------------------------------------------

    def run_actions(self, rule: Rule, cand: Candidate, ctx: dict[str, Any], dedupe: str,
                    trace: dict[str, Any], run: RuleRun | None,
                    existing: dict[str, ActionLedger]) -> None:
        """Plan every action of this run (one ledger row each, one transaction), then send
        what is planned, in order. A resumed run finds its rows and decides nothing again."""
        outcome = self.outcome(rule)
        steps = self._plan(rule, cand, ctx, dedupe, trace, run, existing, outcome)
        if not self.dry_run:
            self._send_steps(rule, ctx, steps, outcome)
        if run is not None:
            run.trace = dict(trace)
            flag_modified(run, "trace")  # mutated in place: tell SQLAlchemy it changed
            self.s.commit()

    def _plan(self, rule: Rule, cand: Candidate, ctx: dict[str, Any], dedupe: str,
              trace: dict[str, Any], run: RuleRun | None, existing: dict[str, ActionLedger],
              outcome: RuleOutcome) -> list[Step]:
        results: dict[str, Any] = {}
        ctx["acciones"] = results
        steps: list[Step] = []
        added = False
        for spec in rule.actions:
            key = L.ledger_key(rule.id, dedupe, spec.key)
            entry: dict[str, Any] = {"accion": spec.type.name, "clave": key}
            trace["acciones"].append(entry)
            row = existing.get(key)
            if row is None or (row.status == L.APPROVED and "args" not in (row.payload or {})):
                # not decided yet (an approved storm-guard hold records no arguments)
                row = self._decide(rule, cand, ctx, spec, key, entry, run, outcome, row)
                added = added or row is not None
            else:
                entry.update(estado=row.status, resumen=(row.payload or {}).get("summary"))
            if spec.id:
                done = row is not None and row.status == L.DONE
                results[spec.id] = {"ref": row.external_ref if done and row else
                                    L.planned_ref(spec.id),
                                    "estado": row.status if row else entry.get("estado")}
            steps.append(Step(spec, row, entry))
        if added:
            self.s.commit()  # the whole plan before the first effect is sent
        return steps

    def _decide(self, rule: Rule, cand: Candidate, ctx: dict[str, Any], spec: ActionSpec,
                key: str, entry: dict[str, Any], run: RuleRun | None, outcome: RuleOutcome,
                parked: ActionLedger | None = None) -> ActionLedger | None:
        """One action's decision as a ledger row (none in a dry-run); ``parked`` is the
        approved row of a storm-guard hold, decided now."""
        row = self._decision(rule, cand, ctx, spec, key, entry, run, outcome)
        if row is None or parked is None:
            return row
        self.s.expunge(row)
        for name in ("status", "payload", "error", "next_attempt_at", "updated_at"):
            setattr(parked, name, getattr(row, name))
        return parked

    def _decision(self, rule: Rule, cand: Candidate, ctx: dict[str, Any], spec: ActionSpec,
                  key: str, entry: dict[str, Any], run: RuleRun | None, outcome: RuleOutcome
                  ) -> ActionLedger | None:
        if spec.when is not None:
            try:
                holds, why = bool(spec.when.run(ctx)), "la condición «si» no se cumplió"
            except EvalError as exc:
                holds, why = False, f"la condición «si» falló: {exc}"
            if not holds:
                entry.update(estado=L.OMITTED, nota=why)
                return self._row(rule, cand, spec, key, run, L.OMITTED, note=why)
        try:
            prepared = self._prepare(rule, spec, ctx)
        except ActionSkipped as exc:
            entry.update(estado=L.WAITING, nota=f"{exc}; se reintentará")
            outcome.waiting += 1
            return self._row(rule, cand, spec, key, run, L.WAITING, note=str(exc),
                             retry_at=self.now + L.WAIT_RETRY)
        except PREPARE_ERRORS as exc:
            message = f"no se pudieron calcular los argumentos: {exc}"
            entry.update(estado=L.DEAD, error=message)
            outcome.dead += 1
            outcome.errors.append(f"{rule.id}: {spec.type.name}: {message}")
            return self._row(rule, cand, spec, key, run, L.DEAD, note=message)
        entry.update(resumen=prepared.summary, argumentos=prepared.payload)
        if prepared.skip_reason:
            entry.update(estado=L.OMITTED, nota=prepared.skip_reason)
            outcome.skipped += 1
            return self._row(rule, cand, spec, key, run, L.OMITTED, note=prepared.skip_reason)
        if self.dry_run:
            entry.update(estado="simulada", ref=f"(simulado {spec.type.name})")
            return None
        entry.update(estado=L.PLANNED)
        return self._row(rule, cand, spec, key, run, L.PLANNED, prepared=prepared)

    def _row(self, rule: Rule, cand: Candidate, spec: ActionSpec, key: str,
             run: RuleRun | None, status: str, *, prepared: Prepared | None = None,
             note: str | None = None, retry_at: datetime | None = None
             ) -> ActionLedger | None:
        if self.dry_run:
            return None
        payload: dict[str, Any] = {"match": self.match_info(rule, cand, key.split("|")[1])}
        if prepared is not None:
            payload.update(args=prepared.payload, action_target=prepared.target,
                           summary=prepared.summary)
        row = ActionLedger(idempotency_key=key, rule_id=rule.id, action=spec.type.name,
                           target=self._target(rule, cand), payload=payload, status=status,
                           attempts=0, error=note[:2000] if note else None,
                           next_attempt_at=retry_at, correlation_id=cand.correlation_id,
                           run_id=run.id if run else None, created_at=self.now,
                           updated_at=self.now)
        self.s.add(row)
        return row

    def _prepare(self, rule: Rule, spec: ActionSpec, ctx: dict[str, Any]) -> Prepared:
        values: dict[str, Any] = {}
        for name, param in spec.type.params.items():
            arg = spec.args.get(name)
            values[name] = arg.value(ctx) if arg is not None else param.default
        record = ctx.get(rule.entity) if rule.entity else None
        prepared = spec.type.prepare(values, PrepareContext(self.config, record, rule.entity))
        prepared.payload = to_json(prepared.payload)
        return prepared

    def _send_steps(self, rule: Rule, ctx: dict[str, Any], steps: list[Step],
                    outcome: RuleOutcome) -> None:
        """Send the planned actions in order. An action not sent yet (failed, waiting for
        its back-off, or on hold) stops the ones after it; a dead one cancels them."""
        refs = {s.spec.id: s.row.external_ref for s in steps
                if s.spec.id and s.row is not None and s.row.status == L.DONE}
        for number, step in enumerate(steps):
            row, entry = step.row, step.entry
            assert row is not None
            if row.status == L.WAITING:
                self._retry_waiting(rule, ctx, step, outcome)
            if row.status in (L.DONE, L.OMITTED, L.WAITING):
                if row.status == L.DONE:
                    entry.update(estado=L.DONE, ref=row.external_ref)
                continue
            if row.status in L.FINAL_FAILURES:
                entry.update(estado=row.status, error=row.error)
                self._cancel(steps[number + 1:], step)
                return
            if not self._ready(row, entry):
                return
            missing = L.unresolved_refs((row.payload or {}).get("args"), refs)
            if missing:
                entry.update(nota="espera el resultado de: " + ", ".join(sorted(missing)))
                return
            if not self._deliver(rule, step, refs, outcome):
                if row.status in L.FINAL_FAILURES:
                    self._cancel(steps[number + 1:], step)
                return
            if step.spec.id:
                refs[step.spec.id] = row.external_ref
                ctx["acciones"][step.spec.id] = {"ref": row.external_ref, "estado": L.DONE}

    def _ready(self, row: ActionLedger, entry: dict[str, Any]) -> bool:
        """Whether a row may be sent now (its back-off is over; it is not on hold)."""
        if row.status in (L.HELD, L.QUEUED):
            entry.update(estado=row.status)
            return False
        if row.status == L.FAILED and row.next_attempt_at and row.next_attempt_at > self.now:
            entry.update(estado=L.FAILED, error=row.error,
                         nota=f"próximo intento {row.next_attempt_at:%Y-%m-%d %H:%M} UTC")
            return False
        return row.status in (L.PLANNED, L.PENDING, L.FAILED, L.APPROVED)

    def _retry_waiting(self, rule: Rule, ctx: dict[str, Any], step: Step,
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
            prepared = self._prepare(rule, step.spec, ctx)
        except ActionSkipped as exc:
            expired = row.created_at + L.WAIT_LIMIT <= self.now
            row.status = L.OMITTED if expired else L.WAITING
            row.error = (f"{exc} (se esperó {L.WAIT_LIMIT.days} días)" if expired
                         else str(exc))[:2000]
            row.next_attempt_at = None if expired else self.now + L.WAIT_RETRY
            row.updated_at = self.now
            entry.update(estado=row.status, nota=row.error)
            self.s.commit()
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

    def _cancel(self, later: list[Step], failed: Step) -> None:
        why = f"no se envía: la acción anterior «{failed.spec.type.name}» no se pudo hacer"
        for step in later:
            if step.row is not None and step.row.status in (L.PLANNED, L.WAITING):
                step.row.status, step.row.error, step.row.updated_at = (
                    L.CANCELLED, why, self.now)
                step.entry.update(estado=L.CANCELLED, nota=why)
        self.s.commit()

    def _deliver(self, rule: Rule, step: Step, refs: dict[str, str | None],
                 outcome: RuleOutcome) -> bool:
        """Send one row. An earlier attempt that may have reached the tool is looked up by
        its marker first; a look-up that fails leaves the row failed, never sent blind."""
        spec, row, entry = step.spec, step.row, step.entry
        assert row is not None and self.runtime is not None
        if row.status in (L.PENDING, L.FAILED) and spec.type.find is not None:
            try:
                ref = spec.type.find(self.runtime, (row.payload or {}).get("args") or {},
                                     L.marker_for(row.idempotency_key))
            except SEND_ERRORS as exc:
                return self._failed(rule, row, entry, outcome, exc, looking=True)
            if ref is not None:
                self._done(rule, spec, row, ref, outcome)
                entry.update(estado=L.DONE, ref=ref,
                             nota="reconciliada: ya existía en la herramienta")
                outcome.reconciled += 1
                return True
        payload = dict(row.payload or {})
        payload["args"] = L.resolve_refs(payload.get("args") or {}, refs)
        row.payload = payload
        row.attempts = (row.attempts or 0) + 1
        row.status, row.updated_at = L.PENDING, self.now
        self.s.commit()  # the ledger knows about the effect before the tool does
        if self.runtime.before_send is not None:
            self.runtime.before_send(row.idempotency_key)
        try:
            ref = spec.type.send(self.runtime, payload["args"],
                                 L.marker_for(row.idempotency_key))
        except SEND_ERRORS as exc:
            return self._failed(rule, row, entry, outcome, exc)
        if self.runtime.after_send is not None:
            self.runtime.after_send(row.idempotency_key)
        self._done(rule, spec, row, ref, outcome)
        entry.update(estado=L.DONE, ref=ref)
        summary = payload.get("summary") or spec.type.name
        outcome.effects.append(f"{summary} → {ref}")
        log.info("rules.action.done", rule=rule.id, action=spec.type.name, ref=ref,
                 key=row.idempotency_key, correlation=row.correlation_id)
        return True

    def _done(self, rule: Rule, spec: ActionSpec, row: ActionLedger, ref: str,
              outcome: RuleOutcome) -> None:
        row.status, row.external_ref, row.error = L.DONE, ref, None
        row.next_attempt_at, row.updated_at = None, self.now
        if spec.type.written is not None:
            try:
                spec.type.written(self.s, self.config, (row.payload or {}).get("args") or {})
            except Exception:  # noqa: BLE001 - the next sync reads it back anyway
                log.exception("rules.action.write_through_failed", rule=rule.id,
                              key=row.idempotency_key)
        self.s.commit()
        outcome.done += 1

    def _failed(self, rule: Rule, row: ActionLedger, entry: dict[str, Any],
                outcome: RuleOutcome, exc: BaseException, *, looking: bool = False) -> bool:
        message = f"{type(exc).__name__}: {exc}"
        if looking:
            message = f"no se pudo comprobar si ya existía (no se reenvía a ciegas): {message}"
        permanent = isinstance(exc, PERMANENT_ERRORS) and not looking
        row.error, row.updated_at = message[:2000], self.now
        if looking:
            row.attempts = (row.attempts or 0) + 1
        if permanent or row.attempts >= self.config.max_attempts:
            row.status, row.next_attempt_at = L.DEAD, None
            outcome.dead += 1
            why = "error que reintentar no arregla" if permanent else \
                f"{row.attempts} intentos"
            entry.update(estado=L.DEAD, error=f"{message} ({why})")
        else:
            row.status = L.FAILED
            row.next_attempt_at = L.next_attempt(self.now, row.attempts,
                                                 self.config.retry_base_seconds)
            outcome.failed += 1
            entry.update(estado=L.FAILED, error=message,
                         nota=f"intento {row.attempts}; siguiente "
                              f"{row.next_attempt_at:%Y-%m-%d %H:%M} UTC")
        self.s.commit()
        outcome.errors.append(f"{rule.id}: {row.action}: {message}")
        log.warning("rules.action.failed", rule=rule.id, action=row.action, error=message,
                    attempts=row.attempts, status=row.status, key=row.idempotency_key)
        return False


@dataclass
class Step:
    """One action of a run: its spec, its ledger row (None in a dry-run), its trace entry."""

    spec: ActionSpec
    row: ActionLedger | None
    entry: dict[str, Any]

def stored_disparador(info: dict[str, Any]) -> dict[str, Any]:
    """The ``disparador`` variable of a resumed match, from the ledger."""
    return from_json(info.get("disparador") or {})
