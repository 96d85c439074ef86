"""One write per record per phase: the effects of one cycle's phase that write the same
record of a tool (``ActionType.coalesce``: Podio's ``podio.actualizar``, one ``PUT /item``
for all its fields — SPEC §9 "one Podio update per item for all its fields") are sent
together at the end of the phase, each keeping its own ledger row and idempotency key.

When a run reaches such an action it is *deferred*: the row is marked pending (committed
before the tool hears of it, as every send), its write-through is applied at once so that
the rules evaluated after it in the same phase see it (order independence, as before), and
what the record held before is kept in the row (``payload.before``). The run's later
actions wait for it, as they wait for any action not sent yet. ``flush`` then sends one
call per record with every deferred row's fields (a later rule's value for the same field
wins, as a later PUT would); it either succeeds and every covered row is done with the same
ref, or fails and none is: each row is failed (or dead) as if it had been sent alone, and
the model is put back as it was where it still holds the value we wrote. Then the waiting
runs go on from where they stopped (their next actions may be deferred again, to the next
round of the same flush).

A crash between the deferral and the call leaves the rows pending: the next cycle sends
them again (an update's repeat is harmless: the same values), coalesced again. Until then a
sync reading the record back finds the value it had before our unconfirmed write: the
engine takes that change for ours (``rules.event_match.own_writes``), not a person's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from core.errors import ConfigError, ConnectorError
from rules import ledger as L
from rules.planning import PERMANENT_ERRORS, Step
from rules.runs import Match, RuleOutcome, RunContext, RunPart
from rules.spec import Rule
from store.models import RuleRun

if TYPE_CHECKING:
    from rules.sending import Sender

log = structlog.get_logger(__name__)


# Where a deferred row keeps what the record held before our write (``payload``).
BEFORE = "before"
SEND_ERRORS: tuple[type[Exception], ...] = (ConnectorError, ConfigError, *PERMANENT_ERRORS)


@dataclass
class Deferred:
    """One deferred row: whose it is and the step it belongs to."""

    rule: Rule
    step: Step
    outcome: RuleOutcome


@dataclass
class Waiting:
    """A run stopped at a deferred action: sent on from there after the flush."""

    rule: Rule
    match: Match
    run: RuleRun | None
    steps: list[Step]


class WriteBatch(RunPart):
    """The deferred rows of one phase, per record (the action's coalescing key), and the
    runs waiting for them."""

    def __init__(self, run: RunContext) -> None:
        super().__init__(run)
        self.by_key: dict[str, list[Deferred]] = {}
        self.waiting: list[Waiting] = []
        self.sent: set[int] = set()  # rows flushed in this cycle: never deferred twice

    def sent_already(self, step: Step) -> bool:
        """Whether this row went out in one of this cycle's flushes (and is still not done:
        it failed, or its outcome is unknown): the next cycle sends it again."""
        return step.row is not None and step.row.id in self.sent

    def defer(self, rule: Rule, step: Step, refs: dict[str, str | None], outcome: RuleOutcome) -> None:
        """Mark the row pending with its resolved arguments and what the record held, and
        write it through now (the rules after it see it); the call waits for ``flush``."""
        row, coalesce = step.row, step.spec.type.coalesce
        assert row is not None and coalesce is not None
        payload = dict(row.payload or {})
        payload["args"] = L.resolve_refs(payload.get("args") or {}, refs)
        if BEFORE not in payload:  # a resumed row keeps the first one it recorded
            payload[BEFORE] = coalesce.before(self.s, payload["args"])
        row.payload = payload
        row.attempts = (row.attempts or 0) + 1
        row.status, row.updated_at = L.PENDING, self.now
        written = step.spec.type.written
        if written is not None:
            try:
                written(self.s, self.config, payload["args"])
            except Exception:  # noqa: BLE001 - the next sync reads it back anyway
                log.exception("rules.action.write_through_failed", rule=rule.id, key=row.idempotency_key)
        self.s.commit()  # the ledger knows about the effect before the tool does
        step.entry.update(estado=L.PENDING, nota="se envía junto con las demás escrituras del mismo registro")
        self.by_key.setdefault(coalesce.key(payload["args"]), []).append(Deferred(rule, step, outcome))

    def flush(self, sender: Sender) -> list[Waiting]:
        """One call per record for every deferred row; returns the runs to send on."""
        groups, waiting = self.by_key, self.waiting
        self.by_key, self.waiting = {}, []
        for key, rows in groups.items():
            try:
                self._send(sender, key, rows)
            except Exception:  # noqa: BLE001 - outcome unknown: the rows stay pending
                self.s.rollback()
                log.exception("rules.coalesced.crashed", key=key)
        return waiting

    def _send(self, sender: Sender, key: str, group: list[Deferred]) -> None:
        runtime = self.run.runtime
        assert runtime is not None
        spec = group[0].step.spec
        coalesce = spec.type.coalesce
        assert coalesce is not None
        rows = [d.step.row for d in group if d.step.row is not None]
        self.sent.update(r.id for r in rows)
        args = coalesce.merge([dict((r.payload or {}).get("args") or {}) for r in rows])
        keys = [r.idempotency_key for r in rows]
        if runtime.before_send is not None:
            for idem in keys:
                runtime.before_send(idem)
        try:
            ref = spec.type.send(runtime, args, L.marker_for(keys[0]))
        except SEND_ERRORS as exc:
            for deferred in reversed(group):
                self._undo(deferred)
            for deferred in group:
                assert deferred.step.row is not None
                sender.failed(deferred.rule, deferred.step.row, deferred.step.entry, deferred.outcome, exc)
            return
        if runtime.after_send is not None:
            for idem in keys:
                runtime.after_send(idem)
        for deferred in group:
            row = deferred.step.row
            assert row is not None
            sender.done(deferred.rule, deferred.step.spec, row, ref, deferred.outcome, written=False)
            summary = (row.payload or {}).get("summary") or spec.type.name
            deferred.step.entry.update(estado=L.DONE, ref=ref)
            if len(group) > 1:
                deferred.step.entry["nota"] = (
                    f"una sola escritura en la herramienta para {len(group)} acciones del ciclo"
                )
            else:
                deferred.step.entry.pop("nota", None)
            deferred.outcome.effects.append(f"{summary} → {ref}")
        log.info(
            "rules.action.done", action=spec.type.name, ref=ref, keys=keys, coalesced=len(group), record=key
        )

    def _undo(self, deferred: Deferred) -> None:
        """Put back what the record held where it still holds what we wrote."""
        row, coalesce = deferred.step.row, deferred.step.spec.type.coalesce
        assert row is not None and coalesce is not None
        payload = row.payload or {}
        try:
            coalesce.undo(self.s, self.config, payload.get("args") or {}, payload.get(BEFORE) or {})
        except Exception:  # noqa: BLE001 - the next sync of the record corrects it
            log.exception("rules.coalesced.undo_failed", key=row.idempotency_key)
