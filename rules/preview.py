"""`saeko-sync rules dry-run`: what the rules, as they are written now, would do with the
data in the store. Nothing is written: one session, rolled back, and no tool is called.

- On a record (``--entity``, by the ids people see: a Podio item id, a Jira key, or the
  model's id): the rule as if its trigger fired on it.
- Now (no ``--entity``): the pending change events, the data conditions due now and the
  schedules as if they fired now; an event rule with no pending event is tried on each of
  its records as if its trigger fired now, so that an admin sees which would match and why
  the others would not.
- A backtest (``--desde``): the change events seen since that date and every slot of the
  rule's schedules since then, evaluated with the rule as edited now, each at its own time.
  An event is evaluated on the record as that change left it (the later changes' old
  values and the empty fields our automations filled since are undone); a schedule slot
  on today's records (the store keeps no past versions of the other records).

Each action shows its rendered effect (fields, task text, due date, email subject and
body); an effect the ledger already has is shown as done, with what the rule as it is now
would write.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.settings import Settings
from rules import ledger as L
from rules.actions import REGISTRY
from rules.catalog import ENTITIES
from rules.config import RulesConfig
from rules.data import UnknownRecord, find_record
from rules.engine import CycleEngine, CycleReport
from rules.event_match import EventCandidates, loose_in
from rules.event_phase import Events
from rules.problems import suggest
from rules.ruleset import RuleSet, load_rules
from rules.runs import Candidate
from rules.spec import Rule
from rules.timed import States
from rules.traces import format_simulated
from store.db import Database, utcnow
from store.models import ActionLedger, ChangeEvent

SHOWN_MATCHES = 5  # records shown in full per rule (with each effect); the rest are counted
MAX_SLOTS = 500  # schedule slots a backtest replays per trigger (cada: 5m over a year is more)
SIMULATED = "simulada"  # the state a dry-run gives an effect it would make


class UnknownRule(LookupError):
    """No rule has that id (the message, in Spanish, lists the known ones)."""


def known_rules_text(ruleset: RuleSet, rule_id: str) -> str:
    """«la regla «T1» no existe» with a suggestion and the rules that do."""
    ids = sorted(ruleset.rules)
    close = [r for r in ids if r.lower().startswith(rule_id.lower().rstrip("-") + "-")]
    hint = (f"; ¿quisiste decir {' o '.join(close)}?" if close
            else suggest(rule_id, ids) if ids else "")
    return (f"la regla «{rule_id}» no existe{hint}\nReglas cargadas: "
            + (", ".join(ids) or "ninguna") + " (saeko-sync rules list)")


def pick_rules(ruleset: RuleSet, rule_id: str | None) -> list[Rule]:
    """The named rule (active or not), or every active rule."""
    if rule_id is None:
        return [r for r in ruleset.rules.values() if r.enabled]
    if rule_id not in ruleset.rules:
        raise UnknownRule(known_rules_text(ruleset, rule_id))
    return [ruleset.rules[rule_id]]


@dataclass
class RulePreview:
    """One rule's dry-run: what was tried, how many records, and the traces."""

    rule_id: str
    name: str
    enabled: bool
    entity: str | None
    how: str = ""
    evaluated: int = 0
    matched: int = 0
    traces: list[dict[str, Any]] = field(default_factory=list)
    untriggered: Counter[str] = field(default_factory=Counter)  # why -> records

    @property
    def matches(self) -> list[dict[str, Any]]:
        return [t for t in self.traces if t.get("resultado") not in ("no coincide", "error")]

    def effects(self) -> Counter[tuple[str, str]]:
        """(action, state) -> how many, over the matched records."""
        return Counter((a.get("accion", ""), a.get("estado", "")) for t in self.matches
                       for a in t.get("acciones") or [])

    def misses(self) -> Counter[str]:
        """The first condition that did not hold -> on how many records."""
        out: Counter[str] = Counter(self.untriggered)
        for trace in self.traces:
            if trace.get("resultado") in ("no coincide", "error"):
                failed = next((c for c in trace.get("condiciones") or []
                               if not c.get("resultado")), None)
                out[failed.get("expresion", "?") if failed else "?"] += 1
        return out


@dataclass
class DryRun:
    """A whole dry-run (or backtest): one preview per rule."""

    rules: list[RulePreview]
    since: datetime | None = None
    entity: str | None = None
    now: datetime | None = None
    named: str | None = None  # the rule asked for, if any

    @property
    def traces(self) -> list[dict[str, Any]]:
        return [t for r in self.rules for t in r.traces]


def dry_run(settings: Settings, db: Database, rule_id: str | None = None,
            entity: str | int | None = None, *, now: datetime | None = None,
            since: datetime | None = None) -> DryRun:
    """Preview the rules (see the module's docstring). Raises UnknownRule, UnknownRecord
    (Spanish messages) and ValueError for a backtest without a rule."""
    now = now or settings.rules_frozen_now or utcnow()
    if since is not None and rule_id is None:
        raise ValueError("--desde necesita una regla: saeko-sync rules dry-run REGLA "
                         "--desde AAAA-MM-DD")
    if since is not None and since >= now:
        raise ValueError(f"--desde {since:%Y-%m-%d} no es anterior a hoy")
    config = RulesConfig.from_settings(settings)
    ruleset = load_rules(config, db, record=False)
    rules = pick_rules(ruleset, rule_id)
    result = DryRun([], since, None if entity is None else str(entity), now, rule_id)
    with db.sessions() as session:
        sim = _Simulation(session, config, ruleset)
        missing: list[str] = []
        for rule in rules:
            preview = RulePreview(rule.id, rule.name, rule.enabled, rule.entity)
            try:
                if entity is not None:
                    sim.on_record(rule, str(entity), now, preview)
                elif since is not None:
                    sim.backtest(rule, since, now, preview)
                else:
                    sim.present(rule, now, preview)
            except UnknownRecord as exc:
                missing.append(str(exc))
                continue
            result.rules.append(preview)
        session.rollback()
    if missing and not result.rules:
        raise UnknownRecord(missing[0])
    return result


class _Simulation:
    """Dry-run engines on one session, one per moment simulated."""

    def __init__(self, session: Session, config: RulesConfig, ruleset: RuleSet) -> None:
        self.s = session
        self.config = config
        self.ruleset = ruleset

    def engine(self, now: datetime) -> CycleEngine:
        return CycleEngine(self.s, self.config, self.ruleset, None, now,
                           CycleReport(started_at=now), dry_run=True)

    def _collect(self, engine: CycleEngine, rule: Rule, preview: RulePreview) -> None:
        outcome = engine.ex.outcome(rule)
        preview.evaluated += outcome.evaluated
        preview.matched += outcome.matched
        preview.traces += engine.ex.dry_results

    def on_record(self, rule: Rule, given: str, now: datetime, preview: RulePreview) -> None:
        """The rule as if its trigger fired now on the record people call ``given``."""
        entity_id = None if rule.entity is None else find_record(self.s, rule.entity, given)
        engine = self.engine(now)
        preview.how = "como si su disparador se cumpliera ahora en este registro"
        engine.ex.evaluate(rule, [_simulated(entity_id, now)])
        self._collect(engine, rule, preview)

    def present(self, rule: Rule, now: datetime, preview: RulePreview) -> None:
        """What the next cycle would do with this rule, or (nothing pending) what it would
        do if its trigger fired now on each of its records."""
        engine = self.engine(now)
        hows: list[str] = []
        if rule.event_triggers:
            events = Events(engine).pending_events()
            cands = EventCandidates(engine).event_candidates(rule, events, {}, {})
            if cands:
                hows.append(f"{len(cands)} cambio(s) pendiente(s) que activan su disparador")
                engine.ex.evaluate(rule, cands)
        if rule.state_trigger is not None:
            hows.append("su condición de datos, revisada ahora")
            States(engine).state(rule, rule.state_trigger)
        if rule.schedule_triggers or (rule.event_triggers and not hows):
            if rule.schedule_triggers:
                hows.append("como si su programa se cumpliera ahora")
            else:
                hows.append("sin cambios pendientes: como si su disparador se cumpliera "
                            "ahora en cada registro")
            if rule.entity is None:
                engine.ex.evaluate(rule, [_simulated(None, now, "programa")])
            else:
                records = engine.ex.load(rule, None)
                ids = list(records)
                if not rule.schedule_triggers:  # only the records its trigger could fit
                    ids = [i for i in ids if self._fits(rule, records[i], preview)]
                engine.ex.evaluate(rule, [_simulated(i, now) for i in ids], records)
        preview.how = "; ".join(hows)
        self._collect(engine, rule, preview)
        preview.evaluated += sum(preview.untriggered.values())

    @staticmethod
    def _fits(rule: Rule, record: dict[str, Any], preview: RulePreview) -> bool:
        """Whether a record is as one of the rule's event triggers leaves it (``cambio …
        a: Escalado``: its field is «Escalado» now); the others are counted as misses."""
        why = ""
        for trigger in rule.event_triggers:
            if trigger.kind == "eliminado" and not record.get("_deleted"):
                why = why or "disparador: el registro no está eliminado"
                continue
            if trigger.kind != "cambio" or trigger.to_values is None or not trigger.fields:
                return True
            if any(loose_in(record.get(name), trigger.to_values) for name in trigger.fields):
                return True
            why = why or (f"disparador: {' o '.join(trigger.fields)} no es "
                          f"{' ni '.join(f'«{v}»' for v in trigger.to_values)} ahora")
        preview.untriggered[why] += 1
        return False

    def backtest(self, rule: Rule, since: datetime, now: datetime, preview: RulePreview
                 ) -> None:
        """The change events seen since ``since`` and the schedule slots since then, each
        evaluated at its own moment by the rule as it is written now."""
        parts: list[str] = []
        if rule.event_triggers and rule.entity is not None:
            events = list(self.s.scalars(select(ChangeEvent).where(
                func.coalesce(ChangeEvent.changed_at, ChangeEvent.seen_at) >= since,
                ChangeEvent.entity.in_((*ENTITIES[rule.entity].events, rule.entity)))
                .order_by(ChangeEvent.id)))
            past = _History(self.s, rule.entity, events, since)
            fired = 0
            for moment, batch in groupby(events, key=_minute):
                engine = self.engine(max(moment + timedelta(minutes=1), since))
                cands = EventCandidates(engine).event_candidates(rule, list(batch), {}, {})
                fired += len(cands)
                records = engine.ex.load(rule, [c.entity_id for c in cands
                                                if c.entity_id is not None],
                                         include_deleted=True)
                for cand in cands:  # each on the record as that change left it
                    record = records.get(cand.entity_id or 0)
                    if record is not None:
                        event_id = int(cand.trigger["evento"])
                        engine.ex.evaluate(rule, [cand], {record["id"]: past.as_of(
                            record, event_id, moment)})
                if cands:
                    self._collect(engine, rule, preview)
            parts.append(f"{len(events)} cambios de {ENTITIES[rule.entity].plural} desde "
                         f"entonces, {fired} activan su disparador; cada uno se evalúa con el "
                         "registro como lo dejó ese cambio (se deshacen los cambios "
                         "posteriores y los campos vacíos que llenaron las automatizaciones)")
        for trigger in rule.schedule_triggers:
            slots = _slots(trigger.schedule, since, now)
            for slot in slots:
                engine = self.engine(slot)
                info = {"tipo": "programa", "descripcion": trigger.describe(),
                        "momento": slot.isoformat()}
                instance = f"sch{trigger.index}:{slot.isoformat()}"
                disparador = {"tipo": "programa", "momento": slot}
                if rule.entity is None:
                    cands = [Candidate(None, info, instance, "simulacion", disparador)]
                    engine.ex.evaluate(rule, cands)
                else:
                    records = engine.ex.load(rule, None)
                    engine.ex.evaluate(rule, [Candidate(i, info, instance, "simulacion",
                                                        disparador) for i in records],
                                       records, trace_misses=False)
                self._collect(engine, rule, preview)
            parts.append(f"{len(slots)} vez/veces de su programa ({trigger.describe()})")
        if rule.state_trigger is not None:
            parts.append("su condición de datos no se reconstruye hacia atrás (el modelo "
                         "guarda el estado de hoy): se revisa como está ahora")
            engine = self.engine(now)
            States(engine).state(rule, rule.state_trigger)
            self._collect(engine, rule, preview)
        preview.how = "; ".join(parts)


class _History:
    """Records as they were right after a change: the later change events' old values, and
    the empty fields saeko-sync filled since (``solo_vacios``: they were empty), undone.
    What cannot be known (a relation that pointed elsewhere) stays as it is today."""

    def __init__(self, session: Session, entity: str, events: list[ChangeEvent],
                 since: datetime) -> None:
        self.definition = ENTITIES[entity]
        self.later: dict[int, list[ChangeEvent]] = {}
        for event in events:
            self.later.setdefault(event.entity_id, []).append(event)
        self.fills: dict[int, list[tuple[datetime, list[str]]]] = {}
        writers = [a.name for a in REGISTRY.values() if a.written is not None]
        for row in session.scalars(select(ActionLedger).where(
                ActionLedger.action.in_(writers), ActionLedger.status == L.DONE,
                ActionLedger.target.like(f"{entity}:%"), ActionLedger.created_at >= since)):
            args = (row.payload or {}).get("args") or {}
            if args.get("only_empty"):
                entity_id = int(str(row.target).split(":", 1)[1])
                self.fills.setdefault(entity_id, []).append(
                    (row.created_at, list(args.get("columns") or {})))

    def as_of(self, record: dict[str, Any], event_id: int, moment: datetime
              ) -> dict[str, Any]:
        out = dict(record)
        undone: set[str] = set()
        for later in self.later.get(record["id"], []):
            if later.id <= event_id:
                continue
            for column, change in (later.changes or {}).items():
                self._undo(out, undone, column, change[0] if isinstance(change, list) else None)
        for at, columns in self.fills.get(record["id"], []):
            if at >= moment:
                for column in columns:
                    self._undo(out, undone, column, None)
        return out

    def _undo(self, record: dict[str, Any], undone: set[str], column: str, old: Any) -> None:
        name = self.definition.field_for_column(column)
        if name is None or name in undone:
            return
        undone.add(name)
        if name in self.definition.fields:
            record[name] = old
        elif old is None:  # a relation that was empty
            record[name] = None


def _simulated(entity_id: int | None, now: datetime, kind: str = "simulacion") -> Candidate:
    return Candidate(entity_id, {"tipo": kind, "descripcion": "simulación"}, "simulacion",
                     "simulacion", {"tipo": kind, "momento": now})


def _minute(event: ChangeEvent) -> datetime:
    at = event.changed_at or event.seen_at
    return at.replace(second=0, microsecond=0)


def _slots(schedule: Any, since: datetime, now: datetime) -> list[datetime]:
    out: list[datetime] = []
    slot = schedule.next_after(since - timedelta(seconds=1))
    while slot is not None and slot <= now and len(out) < MAX_SLOTS:
        out.append(slot)
        slot = schedule.next_after(slot)
    return out



def format_dry_run(result: DryRun) -> str:
    """A dry-run as an admin reads it: per rule, what was tried on how many records, the
    matched ones with each rendered effect (a sample), and why the others did not match."""
    if not result.rules:
        return "No hay reglas activas (simulación; no se escribió nada)."
    head = (f"Backtest desde el {result.since:%d/%m/%Y}: lo que la regla, como está escrita "
            "ahora, habría hecho con cada cambio y cada vez de su programa desde entonces"
            if result.since else
            f"Simulación sobre el registro «{result.entity}»" if result.entity else
            f"Simulación de {result.named} con los datos actuales" if result.named else
            "Simulación de las reglas activas (una regla desactivada se simula si la "
            "nombras: saeko-sync rules dry-run REGLA)")
    blocks = [head]
    for rule in result.rules:
        blocks.append(_format_rule(rule, result))
    return "\n\n".join(blocks) + "\n\n(simulación: no se escribió nada en la base ni en " \
        "las herramientas)"


def _format_rule(rule: RulePreview, result: DryRun) -> str:
    plural = ENTITIES[rule.entity].plural if rule.entity else "ejecuciones"
    one = rule.entity or "ejecución"
    state = "" if rule.enabled else " [desactivada: así actuaría si la activas]"
    lines = [f"▶ {rule.rule_id} — {rule.name}{state}",
             f"  Qué se simuló: {rule.how or 'nada que simular (sin disparador aplicable)'}"]
    lines.append(f"  {rule.evaluated} {one if rule.evaluated == 1 else plural} evaluado(s), "
                 f"{rule.matched} cumple(n) las condiciones" + ("" if rule.matched or not rule.evaluated else
                                  ": no haría nada"))
    if not rule.evaluated:
        lines.append("  No haría nada: " + ("no hay ningún registro que evaluar" if rule.entity
                                              else "ninguna ejecución en ese periodo"))
    effects = rule.effects()
    if effects:
        parts = [f"{n} {action} ({'nuevos' if status == SIMULATED else L.STATUS_ES.get(status, status)})"
                 for (action, status), n in sorted(effects.items())]
        lines.append("  Efectos: " + ", ".join(parts))
    misses = rule.misses()
    if misses and (result.entity is None or not rule.matched):
        lines.append("  Por qué no coincide" + ("" if result.entity else "n los demás")
                     + " (la primera condición que falla):")
        lines += [f"    ✘ {expr}: {n} {one if n == 1 else plural}"
                  for expr, n in misses.most_common(5)]
    shown = rule.matches[:SHOWN_MATCHES] if result.entity is None else rule.traces
    if shown:
        lines.append("")
        lines.append("\n\n".join(format_simulated(t, details=True) for t in shown))
    if len(rule.matches) > len(shown):
        lines.append(f"  … y {len(rule.matches) - len(shown)} registros más que coinciden "
                     "(muestra de los primeros; --entity ID para ver uno)")
    return "\n".join(lines)
