"""What the CLI calls (``saeko-sync rules …``): each function returns data, and a
``format_*`` companion turns it into the Spanish text the CLI prints.

    rules validate [PATH]          validate(settings, path) -> list[Problem]; exit 1 if any
    rules list                     list_rules(settings, db) -> list[RuleSummary]
    rules dry-run [RULE] [--entity ID]   dry_run(settings, db, rule_id, entity_id)
    rules trace RULE [--entity ID] traces(db, rule_id, entity_id) / traces_by_correlation
    rules approve [RULE]           approve(db, rule_id) / discard(db, rule_id)
    run                            rules.engine.run_cycle(settings, db) -> CycleReport
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.errors import ConfigError
from core.settings import Settings
from rules import ledger as L
from rules.config import RulesConfig
from rules.engine import CycleEngine, CycleReport
from rules.event_match import EventCandidates
from rules.event_phase import Events
from rules.functions import FUNCTIONS
from rules.problems import Problem
from rules.ruleset import load_rules, validate_path
from rules.runs import Candidate
from rules.timed import States
from rules.traces import format_simulated, format_trace, jsonable, label
from store.db import Database, utcnow
from store.models import ActionLedger, RuleRun, RuleState

# How many runs ``rules trace`` shows by default.
DEFAULT_TRACE_LIMIT = 10


def validate(settings: Settings, path: Path | None = None) -> list[Problem]:
    """Every mistake in the rule files under ``path`` (default: the rules folder)."""
    config = RulesConfig.from_settings(settings)
    problems = (validate_path(path or config.rules_dir, config) + _health_problems(settings)
                + _meetings_problems(settings))
    if path is None:  # M9: the templates no rule uses, for their syntax
        from rules import plantillas

        problems += plantillas.unused_problems(config, load_rules(config))
    return problems


def _health_problems(settings: Settings) -> list[Problem]:
    """M1's config/salud.yaml, checked with the rules that read it (``salud(...)``)."""
    from rules import health

    return _config_problems(settings, health.CONFIG_FILE, health.load)


def _meetings_problems(settings: Settings) -> list[Problem]:
    """M8's config/reuniones.yaml, checked with the rules that read it (``reunion(...)``)."""
    from rules import meetings

    return _config_problems(settings, meetings.CONFIG_FILE, meetings.load)


def _config_problems(settings: Settings, name: str, load: Callable[[Path], object]
                     ) -> list[Problem]:
    """The problems of one admin YAML file beside the rules (none when it is missing)."""
    if not (Path(settings.config_dir) / name).is_file():
        return []
    try:
        load(settings.config_dir)
    except ConfigError as exc:
        problems = []
        for line in str(exc).splitlines():
            where, _sep, message = line.partition(": ")
            file, _colon, number = where.rpartition(":")
            problems.append(Problem(file or where, int(number) if number.isdigit() else 1,
                                    message or line))
        return problems
    return []


def exit_code(problems: list[Problem]) -> int:
    """The exit code of ``rules validate``: 1 when anything is wrong."""
    return 1 if problems else 0


def format_problems(problems: list[Problem]) -> str:
    if not problems:
        return "Todas las reglas son válidas."
    return "\n".join(str(p) for p in problems) + \
        f"\n{len(problems)} problema(s): corrige y vuelve a validar."


@dataclass
class RuleSummary:
    """One line of ``rules list``."""

    id: str
    name: str
    path: str
    enabled: bool
    state: str
    triggers: list[str]
    last_run: datetime | None = None
    runs: int = 0
    matched: int = 0
    ledger: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def list_rules(settings: Settings, db: Database) -> list[RuleSummary]:
    """Each rule with its trigger, state, last run and counts (broken files included)."""
    config = RulesConfig.from_settings(settings)
    ruleset = load_rules(config, db, record=False)
    out: list[RuleSummary] = []
    with db.session() as s:
        runs = {r: (n, m, last) for r, n, m, last in s.execute(
            select(RuleRun.rule_id, func.count(), func.sum(RuleRun.matched.cast(Integer_())),
                   func.max(RuleRun.started_at)).group_by(RuleRun.rule_id))}
        ledger: dict[str, dict[str, int]] = {}
        for rule_id, status, count in s.execute(select(
                ActionLedger.rule_id, ActionLedger.status, func.count())
                .group_by(ActionLedger.rule_id, ActionLedger.status)):
            ledger.setdefault(rule_id or "", {})[status] = int(count)
        states = {st.rule_id: st for st in s.scalars(select(RuleState))}
    for rule in ruleset.rules.values():
        n, m, last = runs.get(rule.id, (0, 0, None))
        state = states.get(rule.id)
        summary = RuleSummary(
            rule.id, rule.name, rule.path, rule.enabled,
            "usando la última versión buena (el archivo tiene errores)" if rule.fallback
            else "activa" if rule.enabled else "desactivada",
            [t.describe() for t in rule.triggers], last, int(n or 0), int(m or 0),
            ledger.get(rule.id, {}),
            [p["message"] for p in (state.problems or [])] if state and rule.fallback else [])
        out.append(summary)
    broken = {p.path for p in ruleset.problems}
    for path in sorted(broken):
        if not any(r.path == path for r in ruleset.rules.values()):
            out.append(RuleSummary(
                "—", "(no se carga)", path, False, "con errores: no se carga", [],
                problems=[str(p) for p in ruleset.problems if p.path == path]))
    return out


def Integer_() -> Any:  # noqa: N802 - a type for SQL casts, named like one
    from sqlalchemy import Integer

    return Integer()


def format_rule_list(rules: list[RuleSummary]) -> str:
    lines = []
    for r in rules:
        counts = ", ".join(f"{L.STATUS_ES.get(k, k)}: {v}" for k, v in sorted(r.ledger.items()))
        lines.append(f"{r.id} — {r.name} [{r.state}] ({r.path})")
        for trigger in r.triggers:
            lines.append(f"    disparador: {trigger}")
        lines.append(f"    última ejecución: {r.last_run or 'nunca'}; evaluaciones: {r.runs}; "
                     f"coincidencias: {r.matched}" + (f"; efectos: {counts}" if counts else ""))
        lines += [f"    error: {p}" for p in r.problems]
    return "\n".join(lines) or "No hay reglas."


def dry_run(settings: Settings, db: Database, rule_id: str | None = None,
            entity_id: int | None = None, *, now: datetime | None = None
            ) -> list[dict[str, Any]]:
    """What each rule would do against the current data; writes nothing anywhere.

    With ``entity_id`` the rule is tried on that record as if its trigger fired; without,
    on the pending change events, the data conditions due now, and (schedules) as if the
    schedule fired now. Returns one trace per evaluated record (matches and misses).
    """
    now = now or utcnow()
    config = RulesConfig.from_settings(settings)
    ruleset = load_rules(config, db, record=False)
    rules = [r for r in ruleset.rules.values() if rule_id in (None, r.id)]
    if rule_id and not rules:
        raise KeyError(f'no hay ninguna regla "{rule_id}" cargada; mira saeko-sync rules list')
    report = CycleReport(started_at=now)
    with db.sessions() as session:
        engine = CycleEngine(session, config, ruleset, None, now, report, dry_run=True)
        events = Events(engine).pending_events() if entity_id is None else []
        matcher, states = EventCandidates(engine), States(engine)
        for rule in rules:
            if entity_id is not None or (rule.entity is None and rule.schedule_triggers):
                cand = Candidate(entity_id, {"tipo": "simulacion",
                                             "descripcion": "simulación sobre un registro"},
                                 "simulacion", "simulacion", {"tipo": "simulacion",
                                                              "momento": now})
                engine.ex.evaluate(rule, [cand])
                continue
            if rule.event_triggers and events:
                cands = matcher.event_candidates(rule, events, {}, {})
                if cands:
                    engine.ex.evaluate(rule, cands)
            if rule.state_trigger is not None:
                states.state(rule, rule.state_trigger)
            if rule.schedule_triggers and rule.entity is not None:
                records = engine.ex.load(rule, None)
                info = {"tipo": "programa", "descripcion": "simulación: como si el programa "
                        "se cumpliera ahora"}
                engine.ex.evaluate(rule, [Candidate(i, info, "simulacion", "simulacion",
                                                    {"tipo": "programa", "momento": now})
                                          for i in records], records, trace_misses=False)
        session.rollback()
    return engine.ex.dry_results


def format_dry_run(results: list[dict[str, Any]]) -> str:
    if not results:
        return "Ninguna regla tiene nada que hacer ahora (simulación; no se escribió nada)."
    blocks = [format_simulated(t) for t in results]
    return "\n\n".join(blocks) + "\n\n(simulación: no se escribió nada)"


def traces(db: Database, rule_id: str, entity_id: int | None = None,
           limit: int = DEFAULT_TRACE_LIMIT) -> list[dict[str, Any]]:
    """The latest stored runs of a rule (optionally for one record), newest first."""
    with db.session() as s:
        query = select(RuleRun).where(RuleRun.rule_id == rule_id)
        if entity_id is not None:
            query = query.where(RuleRun.entity_id == entity_id)
        rows = s.scalars(query.order_by(RuleRun.id.desc()).limit(limit)).all()
        return [_run_dict(r) for r in rows]


def traces_by_correlation(db: Database, correlation_id: str) -> list[dict[str, Any]]:
    """Every run and effect of one business event, across rules and tools, oldest first."""
    with db.session() as s:
        rows = s.scalars(select(RuleRun).where(RuleRun.correlation_id == correlation_id)
                         .order_by(RuleRun.id)).all()
        return [_run_dict(r) for r in rows]


def _run_dict(run: RuleRun) -> dict[str, Any]:
    return {"id": run.id, "rule_id": run.rule_id, "rule_hash": run.rule_hash,
            "entity": run.entity, "entity_id": run.entity_id, "matched": run.matched,
            "status": run.status, "correlation_id": run.correlation_id,
            "started_at": run.started_at, "trace": run.trace}


def format_traces(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "No hay ejecuciones guardadas para esa regla (¿aún no se dispara?)."
    return "\n\n".join(format_trace(r) for r in runs)


def approve(db: Database, rule_id: str | None = None) -> int:
    """Approve the effects the storm guard held (of one rule or all); the next run sends
    them. Returns how many."""
    with db.session() as s:
        return L.approve(s, rule_id, utcnow())


def discard(db: Database, rule_id: str | None = None) -> int:
    """Discard held effects instead of sending them. Returns how many."""
    with db.session() as s:
        return L.discard(s, rule_id, utcnow())


def held(db: Database, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Effects waiting for approval, for ``rules approve`` to show before approving."""
    with db.session() as s:
        query = select(ActionLedger).where(ActionLedger.status == L.HELD)
        if rule_id:
            query = query.where(ActionLedger.rule_id == rule_id)
        return [{"rule_id": r.rule_id, "target": r.target, "action": r.action,
                 "created_at": r.created_at} for r in s.scalars(query.order_by(ActionLedger.id))]


def failures(db: Database, rule_id: str | None = None) -> list[dict[str, Any]]:
    """Failed and dead effects with their error (``rules list`` / status page)."""
    with db.session() as s:
        query = select(ActionLedger).where(ActionLedger.status.in_((L.FAILED, L.DEAD)))
        if rule_id:
            query = query.where(ActionLedger.rule_id == rule_id)
        return [{"rule_id": r.rule_id, "action": r.action, "target": r.target,
                 "status": r.status, "attempts": r.attempts, "error": r.error,
                 "next_attempt_at": r.next_attempt_at}
                for r in s.scalars(query.order_by(ActionLedger.id))]


def functions_help() -> list[tuple[str, str]]:
    """(name, doc) of every primitive usable in expressions, for admins."""
    return [(f.name, f.doc) for f in FUNCTIONS.values()]


__all__ = ["approve", "discard", "dry_run", "exit_code", "failures", "format_dry_run",
           "format_problems", "format_rule_list", "format_traces", "functions_help", "held",
           "jsonable", "label", "list_rules", "traces", "traces_by_correlation", "validate"]
