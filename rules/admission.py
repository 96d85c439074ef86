"""Which matches of a rule run now. A trigger instance (or «una_vez_por» value) runs once:
the ledger remembers it. A record with an unfinished earlier run follows the rule's mode
(``unico`` ignores the new trigger, ``cola`` queues it, ``reiniciar`` cancels the earlier
one, ``paralelo`` runs both). A batch with more effects than the rule's limit is held until
an admin approves it (the storm guard)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rules import ledger as L
from rules.expr import Compiled, EvalError
from rules.runs import Match, RunPart, match_info, target_of
from rules.spec import Rule
from rules.templates import TemplateRenderError
from store.models import ActionLedger, RuleRun


@dataclass
class Admitted:
    """A match that runs now: its stored run and the ledger rows its actions already have."""

    match: Match
    run: RuleRun | None
    existing: dict[str, ActionLedger]


class Admission(RunPart):
    """De-duplication, run modes and the storm guard of one rule's matches."""

    def admit(self, rule: Rule, matches: list[Match]) -> Iterator[Admitted]:
        """The matches that run now, one at a time: each is yielded right after its run is
        stored, so the caller runs its actions before the next is stored (a crash between
        two leaves no stored run whose actions were never planned). The others are traced
        as ignored, queued or held."""
        if not matches:
            return
        outcome = self.run.outcome(rule)
        keyed = self._first_per_dedupe(rule, self._keyed(rule, matches))
        all_keys = [L.ledger_key(rule.id, m.dedupe, a.key) for m in keyed for a in rule.actions]
        existing = L.rows_by_key(self.s, all_keys)
        fresh = [m for m in keyed if not any(
            L.ledger_key(rule.id, m.dedupe, a.key) in existing for a in rule.actions)]
        unfinished = self._unfinished(rule, [target_of(rule, m.cand) for m in fresh])
        held = rule.over_storm_limit(len(fresh))
        fresh_ids = {id(m) for m in fresh}
        for match in keyed:
            is_new = id(match) in fresh_ids
            target = target_of(rule, match.cand)
            if is_new and target in unfinished and rule.mode != "paralelo":
                if self._apply_mode(rule, match, unfinished[target]):
                    continue
            if is_new and held and self.dry_run:  # a preview still shows each effect
                match.trace["nota"] = (f"en un ciclo real, {len(fresh)} registros × "
                                       f"{len(rule.actions)} acciones superan el límite de "
                                       f"{rule.storm_limit} efectos: se retendrían para "
                                       f"aprobación (saeko-sync rules approve {rule.id})")
            elif is_new and held:
                self._hold(rule, match, len(fresh))
                outcome.held += 1
                continue
            run = self.run.save_run(rule, match.cand, match.trace, matched=True,
                                    status="coincide")
            yield Admitted(match, run, existing)

    def _keyed(self, rule: Rule, matches: list[Match]) -> list[Match]:
        """The matches with their de-duplication key; one whose «una_vez_por» cannot be
        computed is traced as an error."""
        keyed = []
        for match in matches:
            try:
                match.dedupe = dedupe_key(rule, match)
            except (EvalError, TemplateRenderError) as exc:
                match.trace["resultado"] = "error"
                match.trace["nota"] = f"una_vez_por falló: {exc}"
                self.run.outcome(rule).errors.append(str(exc))
                self.run.save_run(rule, match.cand, match.trace, matched=True, status="error")
                continue
            keyed.append(match)
        return keyed

    def _first_per_dedupe(self, rule: Rule, keyed: list[Match]) -> list[Match]:
        """Several triggers of one batch with the same ``una_vez_por`` value (a record
        changed twice between cycles) run once: the first; the others are traced."""
        seen: set[str] = set()
        unique = []
        for match in keyed:
            if match.dedupe in seen:
                match.trace["resultado"] = "ignorada"
                match.trace["nota"] = ("otro disparo del mismo ciclo con el mismo "
                                       "«una_vez_por» ya se ejecuta")
                self.run.save_run(rule, match.cand, match.trace, matched=True,
                                  status="ignorada")
                continue
            seen.add(match.dedupe)
            unique.append(match)
        return unique

    def _unfinished(self, rule: Rule, targets: list[str]) -> dict[str, list[ActionLedger]]:
        """Per record: the rule's ledger rows that have not finished (not for ``paralelo``)."""
        if rule.mode == "paralelo" or not targets:
            return {}
        out: dict[str, list[ActionLedger]] = {}
        for row in L.rows_of_targets(self.s, [rule.id], targets,
                                     (L.FAILED, L.HELD, L.QUEUED, L.APPROVED)):
            out.setdefault(row.target or "", []).append(row)
        return out

    def _apply_mode(self, rule: Rule, match: Match, rows: list[ActionLedger]) -> bool:
        """Handle a new trigger while an earlier run is unfinished; True = do not run now."""
        trace = match.trace
        if rule.mode == "unico":
            trace["resultado"] = "ignorada"
            trace["nota"] = ("ya hay una ejecución sin terminar para este registro "
                             "(modo unico)")
            self.run.save_run(rule, match.cand, trace, matched=True, status="ignorada")
            return True
        if rule.mode == "cola":
            trace["resultado"], trace["nota"] = "ignorada", "en cola tras la ejecución anterior"
            run = self.run.save_run(rule, match.cand, trace, matched=True, status="en cola")
            self._park(rule, match, L.QUEUED, run)
            return True
        if not self.dry_run:  # reiniciar
            for row in rows:
                row.status, row.error, row.updated_at = (
                    L.CANCELLED, "reemplazada por una ejecución nueva (modo reiniciar)", self.now)
        return False

    def _hold(self, rule: Rule, match: Match, fresh: int) -> None:
        """The storm guard: trace and park a new match of a batch over the limit."""
        match.trace["resultado"] = "retenida"
        match.trace["nota"] = (f"{fresh} registros × {len(rule.actions)} acciones superan el "
                               f"límite de {rule.storm_limit} efectos por ejecución; aprueba "
                               f"con: saeko-sync rules approve {rule.id}")
        run = self.run.save_run(rule, match.cand, match.trace, matched=True, status="retenida")
        self._park(rule, match, L.HELD, run)

    def _park(self, rule: Rule, match: Match, status: str, run: RuleRun | None) -> None:
        """One ledger row (of the first action) for a run that waits: held or queued."""
        if self.dry_run:
            return
        first = rule.actions[0]
        self.s.add(ActionLedger(
            idempotency_key=L.ledger_key(rule.id, match.dedupe, first.key), rule_id=rule.id,
            action=first.type.name, target=target_of(rule, match.cand),
            payload={"match": match_info(rule, match.cand, match.dedupe)}, status=status,
            correlation_id=match.cand.correlation_id, run_id=run.id if run else None,
            created_at=self.now, updated_at=self.now))
        self.s.commit()


def dedupe_key(rule: Rule, match: Match) -> str:
    """What makes two triggers "the same run": the trigger instance on the record, or the
    rule's «una_vez_por» value."""
    if rule.once_per is None:
        return f"{match.cand.instance}:{match.cand.entity_id}"
    return f"una:{once_per_value(rule, match.ctx)}"


def once_per_value(rule: Rule, ctx: dict[str, Any]) -> Any:
    """The rule's «una_vez_por» for one evaluation context (the rule must have one)."""
    assert rule.once_per is not None
    return (rule.once_per.run(ctx) if isinstance(rule.once_per, Compiled)
            else rule.once_per.render(ctx))
