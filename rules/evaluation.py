"""Evaluating a rule's conditions on its candidates in bulk: the records and their
relations are loaded once, every evaluation gets its trace, misses are stored at once and
matches are handed on (to ``rules.admission``)."""

from __future__ import annotations

from typing import Any

from rules.data import Loader, relation_tree
from rules.expr import ENV_KEY, EvalError
from rules.functions import Env
from rules.runs import Candidate, Match, RunContext, RunPart
from rules.spec import Rule
from rules.traces import condition_result, explain, label, new_trace


class Evaluator(RunPart):
    """Loads a rule's records and checks its conditions on each candidate."""

    def __init__(self, run: RunContext) -> None:
        super().__init__(run)
        self.loader = Loader(self.s)
        self._envs: dict[str, Env] = {}

    def env(self, zone: str) -> Env:
        """The clock and calendar of one zone (one per zone and run), with the run's
        session for functions that read the store."""
        if zone not in self._envs:
            self._envs[zone] = Env(self.now, zone, self.config.calendar, session=self.s,
                                   config_dir=self.config.settings.config_dir)
        return self._envs[zone]

    def base_ctx(self, rule: Rule) -> dict[str, Any]:
        """The variables every evaluation of ``rule`` starts from."""
        env = self.env(rule.zone)
        return {"ahora": self.now, "hoy": env.today, "datos": rule.data,
                "regla": {"id": rule.id, "nombre": rule.name}, "acciones": {},
                "disparador": {}, ENV_KEY: env}

    def load(self, rule: Rule, ids: list[int] | None, *, include_deleted: bool = False
             ) -> dict[int, dict[str, Any]]:
        """The rule's records (all, or ``ids``) with the relations its expressions use."""
        if rule.entity is None:
            return {}
        tree = relation_tree(rule.entity, rule.relation_paths)
        return self.loader.load(rule.entity, ids, tree, include_deleted=include_deleted)

    def evaluate(self, rule: Rule, candidates: list[Candidate],
                 records: dict[int, dict[str, Any]] | None = None, *,
                 trace_misses: bool = True) -> list[Match]:
        """Check the conditions for every candidate; store the misses (all of them, or
        with ``trace_misses=False`` only those that failed with an error) and return the
        matches."""
        if rule.entity is not None and records is None:
            ids = [c.entity_id for c in candidates if c.entity_id is not None]
            records = self.load(rule, ids, include_deleted=True)
        outcome = self.run.outcome(rule)
        base = self.base_ctx(rule)
        matches: list[Match] = []
        for cand in candidates:
            record = (records or {}).get(cand.entity_id) if cand.entity_id is not None else None
            if rule.entity is not None and record is None:
                continue
            ctx = dict(base)
            if rule.entity is not None:
                ctx[rule.entity] = record
            ctx["disparador"] = cand.disparador
            outcome.evaluated += 1
            ok, error = _holds(rule, ctx)
            if not ok and not trace_misses and error is None:
                continue
            trace = new_trace(rule, cand, condition_result(ok, error), record=record,
                              conditions=[explain(c, ctx) for c in rule.conditions],
                              dry_run=self.dry_run)
            if error is not None:
                outcome.errors.append(f"{label(record)}: {error}")
            if ok:
                outcome.matched += 1
                matches.append(Match(cand, ctx, trace))
            else:
                self.run.save_run(rule, cand, trace, matched=False, status=trace["resultado"])
        return matches


def _holds(rule: Rule, ctx: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether every condition holds, and the error of the one that could not be
    evaluated (then it does not hold)."""
    try:
        return all(c.run(ctx) for c in rule.conditions), None
    except EvalError as exc:
        return False, str(exc)
