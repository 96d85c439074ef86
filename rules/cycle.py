"""What the phases of one rule cycle share: the session, the rules, the clock, the
executor, and the report of what the cycle did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy.orm import Session

from rules.config import RulesConfig
from rules.executor import Executor
from rules.problems import Problem
from rules.ruleset import RuleSet
from rules.runs import RuleOutcome
from rules.spec import Rule

log = structlog.get_logger(__name__)


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
        """The rules that made (or tried to make) an effect."""
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


class Cycle:
    """One cycle's (or one dry-run's) shared state; each phase works on it."""

    def __init__(self, session: Session, config: RulesConfig, ruleset: RuleSet,
                 ex: Executor, report: CycleReport, *, dry_run: bool = False) -> None:
        self.s = session
        self.config = config
        self.ruleset = ruleset
        self.ex = ex
        self.now = ex.run.now
        self.report = report
        self.dry_run = dry_run

    def active(self) -> list[Rule]:
        """The enabled rules."""
        return [r for r in self.ruleset.rules.values() if r.enabled]

    def guard(self, rule: Rule, what: str, fn: Callable[[], object]) -> None:
        """Run one rule's phase; an unexpected error is reported and the others go on."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one rule must not stop the cycle
            self.s.rollback()
            message = f"{what}: {type(exc).__name__}: {exc}"
            self.ex.outcome(rule).errors.append(message)
            log.exception("rules.rule.failed", rule=rule.id, phase=what)


class Phase:
    """Base of a cycle's phases: the cycle and shortcuts to what they use most."""

    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.s = cycle.s
        self.config = cycle.config
        self.ex = cycle.ex
        self.now = cycle.now
        self.report = cycle.report
        self.dry_run = cycle.dry_run
