"""Phase 1 of a cycle: resume unfinished effects — planned or pending rows, failed or
waiting ones whose back-off is over, approved storm-guard holds and queued runs whose
earlier run for the record has finished. One resumed run per rule and «una_vez_por»."""

from __future__ import annotations

from functools import partial

from sqlalchemy import or_, select

from rules import ledger as L
from rules.cycle import Phase
from rules.runs import Candidate, Match, stored_disparador
from rules.spec import Rule
from rules.traces import new_trace
from store.models import ActionLedger


class Resume(Phase):
    """Sends again what earlier cycles planned and did not finish."""

    def run(self) -> None:
        """Resume every unfinished run of an enabled rule."""
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
            rule = self.cycle.ruleset.get(rule_id)
            if rule is None or not rule.enabled:
                continue
            self.cycle.guard(rule, "reanudar", partial(self._resume, rule, rule_rows))

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
            trace = new_trace(rule, cand, "reanudada",
                              record=ctx.get(rule.entity) if rule.entity else None,
                              note=f"estado en el registro de acciones: {row.status}")
            run = self.ex.save_run(rule, cand, trace, matched=True, status="reanudada")
            keys = [L.ledger_key(rule.id, info["dedupe"], a.key) for a in rule.actions]
            existing = L.rows_by_key(self.s, keys)
            outcome.evaluated += 1
            self.ex.run_actions(rule, Match(cand, ctx, trace, info["dedupe"]), run, existing)
