"""What one rule run is made of, shared by the executor's parts: the candidate (one trigger
instance for one record), a match on its way through admission, planning and sending, the
per-rule outcome of a cycle, and the run context with the one place a run is stored."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from connectors.clients import ActionRuntime
from rules.actions.base import from_json
from rules.config import RulesConfig
from rules.spec import Rule
from rules.traces import jsonable
from store.models import RuleRun

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
class Match:
    """A candidate whose conditions held: its evaluation context, its trace, and (once
    admission computed it) its de-duplication key."""

    cand: Candidate
    ctx: dict[str, Any]
    trace: dict[str, Any]
    dedupe: str = ""


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
        """Whether the rule made (or tried to make) an effect."""
        return bool(self.done or self.failed or self.dead or self.held)


def correlation_for(key: str) -> str:
    """A stable correlation id for a trigger instance without one."""
    return uuid.uuid5(CORRELATION_NAMESPACE, key).hex


def target_of(rule: Rule, cand: Candidate) -> str:
    """The ledger's target of a run: the rule's record ("ticket:42"), or the rule."""
    return f"{rule.entity or 'regla'}:{cand.entity_id if cand.entity_id is not None else '-'}"


def match_info(rule: Rule, cand: Candidate, dedupe: str) -> dict[str, Any]:
    """What the ledger keeps of a match so that a later cycle can resume it."""
    return {"rule": rule.id, "entity": rule.entity, "entity_id": cand.entity_id,
            "instance": cand.instance, "dedupe": dedupe, "trigger": cand.trigger,
            "correlation": cand.correlation_id, "disparador": jsonable(cand.disparador)}


def stored_disparador(info: dict[str, Any]) -> dict[str, Any]:
    """The ``disparador`` variable of a resumed match, from the ledger."""
    return from_json(info.get("disparador") or {})


@dataclass
class RunContext:
    """What every part of one cycle's (or one dry-run's) execution shares."""

    session: Session
    config: RulesConfig
    runtime: ActionRuntime | None
    now: datetime
    outcomes: dict[str, RuleOutcome]
    dry_run: bool = False
    # A dry-run stores nothing: its traces are collected here instead.
    dry_results: list[dict[str, Any]] = field(default_factory=list)

    def outcome(self, rule: Rule) -> RuleOutcome:
        """This cycle's outcome of ``rule`` (created on first use)."""
        if rule.id not in self.outcomes:
            self.outcomes[rule.id] = RuleOutcome(rule.id, rule.name)
        return self.outcomes[rule.id]

    def save_run(self, rule: Rule, cand: Candidate, trace: dict[str, Any], *, matched: bool,
                 status: str) -> RuleRun | None:
        """Store one rule run with its trace (flushed, committed with the next commit)."""
        if self.dry_run:
            self.dry_results.append(trace)
            return None
        run = RuleRun(rule_id=rule.id, rule_hash=rule.hash,
                      trigger=str(cand.trigger.get("descripcion", ""))[:200],
                      entity=rule.entity, entity_id=cand.entity_id,
                      correlation_id=cand.correlation_id, matched=matched, status=status,
                      trace=trace, started_at=self.now, finished_at=self.now)
        self.session.add(run)
        self.session.flush()
        return run


class RunPart:
    """Base of the executor's parts: the shared run context and shortcuts to it."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.s = run.session
        self.config = run.config
        self.now = run.now
        self.dry_run = run.dry_run
