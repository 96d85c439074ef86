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
        busy = self._busy([r for r in rows if r.status == L.QUEUED])
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
            rule_rows = self._storm_guard(rule, rule_rows)
            self.cycle.guard(rule, "reanudar", partial(self._resume, rule, rule_rows))

    def _storm_guard(self, rule: Rule, rows: list[ActionLedger]) -> list[ActionLedger]:
        """Queued runs released together are held like new ones when they are more than the
        rule's limit of effects (e.g. a mass effect discarded by an admin frees the next
        day's runs queued behind it): they wait for ``saeko-sync rules approve``."""
        queued = [r for r in rows if r.status == L.QUEUED]
        if not rule.over_storm_limit(len(queued)):
            return rows
        for row in queued:
            row.status, row.updated_at = L.HELD, self.now
            row.error = (f"{len(queued)} ejecuciones en cola × {len(rule.actions)} acciones "
                         f"superan el límite de {rule.storm_limit} efectos; aprueba con: "
                         f"saeko-sync rules approve {rule.id}")
        self.ex.outcome(rule).held += len(queued)
        self.s.commit()
        return [r for r in rows if r.status != L.HELD]

    def _busy(self, queued: list[ActionLedger]) -> set[tuple[str | None, str | None]]:
        """(rule, record) of the queued rows whose earlier run is still unfinished — also a
        held one (storm guard: waiting for approval) or one whose back-off is not over, which
        this cycle does not resume: a queued run never overtakes it."""
        targets = sorted({r.target for r in queued if r.target is not None})
        rules = sorted({r.rule_id for r in queued if r.rule_id is not None})
        earlier = tuple(s for s in L.UNFINISHED if s != L.QUEUED)
        return {(r.rule_id, r.target)
                for r in L.rows_of_targets(self.s, rules, targets, earlier)}

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
