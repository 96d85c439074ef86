"""What the CLI calls (``saeko-sync rules …``): each function returns data, and a
``format_*`` companion turns it into the Spanish text the CLI prints.

    rules validate [PATH]          validate(settings, path) -> list[Problem]; exit 1 if any
    rules list                     list_rules(settings, db) -> list[RuleSummary]
    rules dry-run [RULE] [--entity ID] [--desde FECHA]   dry_run(settings, db, rule_id, ...)
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
from rules import preview
from rules.config import RulesConfig
from rules.data import UnknownRecord, find_record
from rules.functions import FUNCTIONS
from rules.preview import DryRun
from rules.problems import Problem
from rules.ruleset import load_rules, validate_path
from rules.traces import format_trace, jsonable, label
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
            entity: str | int | None = None, *, now: datetime | None = None,
            since: datetime | None = None) -> DryRun:
    """What the rules as written now would do, writing nothing (rules.preview): every
    active rule, or the one named; on one record (``entity``: the ids people see); or since
    a date (``since``: a backtest)."""
    return preview.dry_run(settings, db, rule_id, entity, now=now, since=since)


def format_dry_run(result: DryRun) -> str:
    return preview.format_dry_run(result)


def check_rule(settings: Settings, db: Database, rule_id: str) -> None:
    """UnknownRule (listing the known rules) unless ``rule_id`` is loaded or has stored
    runs (a rule since removed keeps its traces)."""
    ruleset = load_rules(RulesConfig.from_settings(settings), db, record=False)
    if rule_id in ruleset.rules:
        return
    with db.session() as s:
        if s.scalar(select(RuleRun.id).where(RuleRun.rule_id == rule_id).limit(1)) is None:
            raise preview.UnknownRule(preview.known_rules_text(ruleset, rule_id))


def entity_of(settings: Settings, db: Database, rule_id: str, given: str) -> int:
    """The model id of the record ``given`` (Podio item id, Jira key or model id) in the
    rule's entity; UnknownRecord in Spanish when there is none."""
    ruleset = load_rules(RulesConfig.from_settings(settings), db, record=False)
    rule = ruleset.rules.get(rule_id)
    with db.session() as s:
        entity = rule.entity if rule is not None else s.scalar(
            select(RuleRun.entity).where(RuleRun.rule_id == rule_id).limit(1))
        if not entity:
            raise UnknownRecord(f"la regla «{rule_id}» no es sobre registros: quita --entity")
        return find_record(s, str(entity), given)


def recent_runs(db: Database) -> list[tuple[str, int, datetime | None]]:
    """(rule, stored runs, latest) of every rule with stored runs, latest first."""
    with db.session() as s:
        rows = s.execute(select(RuleRun.rule_id, func.count(), func.max(RuleRun.started_at))
                         .group_by(RuleRun.rule_id)).all()
    return sorted(((str(r), int(n), last) for r, n, last in rows),
                  key=lambda row: row[2] or datetime.min, reverse=True)


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
        return ("No hay ejecuciones guardadas de esa regla (o de ese registro): aún no se "
                "dispara. `saeko-sync rules dry-run REGLA` muestra qué haría ahora.")
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


__all__ = ["approve", "check_rule", "discard", "dry_run", "entity_of", "exit_code", "failures",
           "format_dry_run", "format_problems", "format_rule_list", "format_traces", "functions_help", "held",
           "jsonable", "label", "list_rules", "recent_runs", "traces", "traces_by_correlation", "validate"]
