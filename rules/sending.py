"""Sending a run's planned actions, in order, through the ledger: a row is marked pending
and committed before the tool is called, done with the tool's ref after; an attempt whose
outcome is unknown is first looked up by its marker; a failure is retried with backoff and
goes dead after N tries (or at once when retrying cannot fix it). A tool that is down or busy
(a TransientError: 429/420, 5xx, timeouts, dropped connections) uses up no tries: the effect
waits for it, with backoff capped at L.TRANSIENT_MAX_BACKOFF, for up to L.TRANSIENT_LIMIT."""

from __future__ import annotations

from typing import Any

import structlog

from core.errors import TransientError
from rules import ledger as L
from rules.coalesce import SEND_ERRORS, WriteBatch
from rules.planning import PERMANENT_ERRORS, Planner, Step
from rules.runs import RuleOutcome, RunContext, RunPart
from rules.spec import ActionSpec, Rule
from store.models import ActionLedger

log = structlog.get_logger(__name__)


class Sender(RunPart):
    """Sends the steps of one run and records each outcome in its ledger row."""

    def __init__(self, run: RunContext, planner: Planner,
                 batch: WriteBatch | None = None) -> None:
        super().__init__(run)
        self.planner = planner
        self.batch = batch

    def send(self, rule: Rule, ctx: dict[str, Any], steps: list[Step]) -> bool:
        """Send the planned actions in order. An action not sent yet (failed, waiting for
        its back-off, or on hold) stops the ones after it; a dead one cancels them. True
        when the run stopped at an action deferred to its phase's one write per record
        (``rules.coalesce``): it goes on after the flush."""
        outcome = self.run.outcome(rule)
        refs = {s.spec.id: s.row.external_ref for s in steps
                if s.spec.id and s.row is not None and s.row.status == L.DONE}
        for number, step in enumerate(steps):
            row, entry = step.row, step.entry
            assert row is not None
            if row.status == L.WAITING:
                self.planner.retry_waiting(rule, ctx, step, outcome)
            if row.status in (L.DONE, L.OMITTED, L.WAITING):
                if row.status == L.DONE:
                    entry.update(estado=L.DONE, ref=row.external_ref)
                continue
            if row.status in L.FINAL_FAILURES:
                entry.update(estado=row.status, error=row.error)
                self._cancel(steps[number + 1:], step)
                return False
            if not self._ready(row, entry):
                return False
            missing = L.unresolved_refs((row.payload or {}).get("args"), refs)
            if missing:
                entry.update(nota="espera el resultado de: " + ", ".join(sorted(missing)))
                return False
            if self.batch is not None and step.spec.type.coalesce is not None:
                if self.batch.sent_already(step):
                    return False
                self.batch.defer(rule, step, refs, outcome)
                return True
            if not self._deliver(rule, step, refs, outcome):
                if row.status in L.FINAL_FAILURES:
                    self._cancel(steps[number + 1:], step)
                return False
            if step.spec.id:
                refs[step.spec.id] = row.external_ref
                ctx["acciones"][step.spec.id] = {"ref": row.external_ref, "estado": L.DONE}
        return False

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
        runtime = self.run.runtime
        assert row is not None and runtime is not None
        if row.status in (L.PENDING, L.FAILED) and spec.type.find is not None:
            try:
                ref = spec.type.find(runtime, (row.payload or {}).get("args") or {},
                                     L.marker_for(row.idempotency_key))
            except SEND_ERRORS as exc:
                return self.failed(rule, row, entry, outcome, exc, looking=True)
            if ref is not None:
                self.done(rule, spec, row, ref, outcome)
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
        if runtime.before_send is not None:
            runtime.before_send(row.idempotency_key)
        try:
            ref = spec.type.send(runtime, payload["args"], L.marker_for(row.idempotency_key))
        except SEND_ERRORS as exc:
            return self.failed(rule, row, entry, outcome, exc)
        if runtime.after_send is not None:
            runtime.after_send(row.idempotency_key)
        self.done(rule, spec, row, ref, outcome)
        entry.update(estado=L.DONE, ref=ref)
        summary = payload.get("summary") or spec.type.name
        outcome.effects.append(f"{summary} → {ref}")
        log.info("rules.action.done", rule=rule.id, action=spec.type.name, ref=ref,
                 key=row.idempotency_key, correlation=row.correlation_id)
        return True

    def done(self, rule: Rule, spec: ActionSpec, row: ActionLedger, ref: str,
             outcome: RuleOutcome, *, written: bool = True) -> None:
        """Record the tool's acceptance (and write the effect through to the model, unless
        ``written=False``: a deferred row was written through when deferred)."""
        row.status, row.external_ref, row.error = L.DONE, ref, None
        row.next_attempt_at, row.updated_at = None, self.now
        if written and spec.type.written is not None:
            try:
                spec.type.written(self.s, self.config, (row.payload or {}).get("args") or {})
            except Exception:  # noqa: BLE001 - the next sync reads it back anyway
                log.exception("rules.action.write_through_failed", rule=rule.id,
                              key=row.idempotency_key)
        self.s.commit()
        outcome.done += 1

    def failed(self, rule: Rule, row: ActionLedger, entry: dict[str, Any],
               outcome: RuleOutcome, exc: BaseException, *, looking: bool = False) -> bool:
        """Record a failed send (or look-up): retried with back-off, or dead."""
        message = f"{type(exc).__name__}: {exc}"
        if looking:
            message = f"no se pudo comprobar si ya existía (no se reenvía a ciegas): {message}"
        permanent = isinstance(exc, PERMANENT_ERRORS) and not looking
        transient = isinstance(exc, TransientError)
        row.error, row.updated_at = message[:2000], self.now
        if looking:
            row.attempts = (row.attempts or 0) + 1
        why = ("error que reintentar no arregla" if permanent
               else f"la herramienta no respondió en {L.TRANSIENT_LIMIT.days} días" if transient
               else f"{row.attempts} intentos")
        if transient:
            give_up = row.created_at is not None and row.created_at + L.TRANSIENT_LIMIT <= self.now
        else:
            give_up = permanent or row.attempts >= self.config.max_attempts
        if give_up:
            row.status, row.next_attempt_at = L.DEAD, None
            row.error = f"{message} ({why})"[:2000]
            outcome.dead += 1
            entry.update(estado=L.DEAD, error=row.error)
        else:
            row.status = L.FAILED
            row.next_attempt_at = L.next_attempt(
                self.now, row.attempts, self.config.retry_base_seconds,
                cap=L.TRANSIENT_MAX_BACKOFF if transient else L.MAX_BACKOFF)
            outcome.failed += 1
            entry.update(estado=L.FAILED, error=message,
                         nota=f"intento {row.attempts}; siguiente "
                              f"{row.next_attempt_at:%Y-%m-%d %H:%M} UTC")
        self.s.commit()
        outcome.errors.append(f"{rule.id}: {row.action}: {message}")
        log.warning("rules.action.failed", rule=rule.id, action=row.action, error=message,
                    attempts=row.attempts, status=row.status, key=row.idempotency_key)
        return False
