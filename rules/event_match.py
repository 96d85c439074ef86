"""Which change events trigger which event rules: the candidates of a rule (one per event
of its entity that a trigger matches), with the changes a person made — our own writes,
recognised from the ledger, are not — and the correlation of the run that caused them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from rules import ledger as L
from rules.actions import REGISTRY
from rules.actions.base import Creates, from_json
from rules.catalog import ENTITIES, entity_for_event
from rules.coalesce import BEFORE
from rules.cycle import Phase
from rules.runs import Candidate, correlation_for
from rules.spec import EventTrigger, Rule
from store.models import ActionLedger, ChangeEvent

# Own writes are recognised from the ledger for this long after they were made.
OWN_WRITE_WINDOW = timedelta(days=7)


class EventCandidates(Phase):
    """Turns change events into the candidates of event rules."""

    def event_candidates(self, rule: Rule, events: list[ChangeEvent],
                         written: dict[str, list[dict[str, Any]]],
                         correlations: dict[int, str]) -> list[Candidate]:
        """One candidate per event of the rule's entity that one of its triggers matches
        (with a person's changes, or all of them for a trigger that includes our own);
        ``written`` is ``own_writes()``, ``correlations`` ``created_correlations()``."""
        assert rule.entity is not None
        definition = ENTITIES[rule.entity]
        out: list[Candidate] = []
        for event in events:
            entity = entity_for_event(event.entity)
            if entity is None or entity.name != rule.entity:
                continue
            everything = event.changes or {}
            persons = person_changes(event, written)
            own = event.kind == "updated" and bool(everything) and not persons
            trigger = next((t for t in rule.event_triggers if event_matches(
                t, event.kind, everything if t.include_own else persons)), None)
            if trigger is None:
                if own and any(event_matches(t, event.kind, everything)
                               for t in rule.event_triggers):
                    self.report.own_writes_ignored += 1
                continue
            changes = {definition.field_for_column(col) or col: value
                       for col, value in (everything if trigger.include_own
                                          else persons).items()}
            correlation = (event.correlation_id or correlations.get(event.id)
                           or correlation_for(f"event:{event.id}"))
            out.append(Candidate(
                event.entity_id,
                {"tipo": "evento", "descripcion": trigger.describe(), "evento": event.id,
                 "cambios": changes if event.kind == "updated" else {}, "propio": own},
                f"ev{event.id}", correlation, disparador_of(event, trigger, changes)))
        return out

    def own_writes(self) -> dict[str, list[dict[str, Any]]]:
        """Columns our own writes (actions with a write-through) wrote, or may have written
        (sent, outcome not recorded), per record ("ticket:42"), recently."""
        writers = [a.name for a in REGISTRY.values() if a.written is not None]
        rows = self.s.execute(select(ActionLedger.payload, ActionLedger.status).where(
            ActionLedger.action.in_(writers),
            ActionLedger.status.in_((L.DONE, L.PENDING, L.FAILED)),
            ActionLedger.updated_at >= self.now - OWN_WRITE_WINDOW)).all()
        out: dict[str, list[dict[str, Any]]] = {}
        for payload, status in rows:
            args = (payload or {}).get("args") or {}
            target = (payload or {}).get("action_target")
            if target and args.get("columns"):
                out.setdefault(target, []).append(from_json(args["columns"]))
            # A write deferred to its phase's one call per record was written through
            # before the tool confirmed it (rules.coalesce): while unconfirmed, a sync
            # reading back what the record held before is ours too, not a person's change.
            before = (payload or {}).get(BEFORE)
            if target and before and status != L.DONE:
                out.setdefault(target, []).append(from_json(before))
        return out

    def created_correlations(self, events: list[ChangeEvent]) -> dict[int, str]:
        """A record one of our actions created (``ActionType.creates``: an incident by
        ``jira.crear``) continues the correlation of that action."""
        out: dict[int, str] = {}
        for action in REGISTRY.values():
            if action.creates is not None:
                out.update(self._correlations_of(action.name, action.creates, events))
        return out

    def _correlations_of(self, action: str, creates: Creates, events: list[ChangeEvent]
                         ) -> dict[int, str]:
        keys = {}
        for event in events:
            key = ((event.changes or {}).get(creates.ref_column) or [None, None])[1]
            if entity_for_event(event.entity) is ENTITIES[creates.entity] and key:
                keys[event.id] = str(key)
        if not keys:
            return {}
        rows = self.s.execute(select(ActionLedger.external_ref, ActionLedger.correlation_id)
                              .where(ActionLedger.action == action,
                                     ActionLedger.external_ref.in_(set(keys.values())))).all()
        found = {ref: corr for ref, corr in rows}
        return {eid: str(found[key]) for eid, key in keys.items() if found.get(key)}


def disparador_of(event: ChangeEvent, trigger: EventTrigger, changes: dict[str, Any]
                  ) -> dict[str, Any]:
    """The ``disparador`` variable of an event: its kind, the trigger's field (from, to),
    the moment of the change and every change by field."""
    field_name = next((f for f in trigger.fields), None)
    change = changes.get(field_name) if field_name else None
    return {"tipo": {"created": "creado", "updated": "cambio",
                     "deleted": "eliminado"}.get(event.kind, event.kind),
            "campo": field_name, "de": change[0] if change else None,
            "a": change[1] if change else None, "momento": event.changed_at or event.seen_at,
            "cambios": {k: {"de": v[0], "a": v[1]} for k, v in changes.items()
                        if isinstance(v, list) and len(v) == 2}}


def loose_in(value: Any, options: list[Any]) -> bool:
    """``value`` is one of ``options``, comparing numbers and texts as texts too."""
    return any(value == o or (value is not None and o is not None and str(value) == str(o))
               for o in options)


def event_matches(trigger: EventTrigger, kind: str, changes: dict[str, Any]) -> bool:
    """Whether an event of ``kind`` with ``changes`` fires ``trigger``."""
    if trigger.kind == "creado":
        return kind == "created"
    if trigger.kind == "eliminado":
        return kind == "deleted"
    if kind not in ("updated", "created"):
        return False
    if not trigger.columns:
        return kind == "updated" and bool(changes)
    for column in trigger.columns:
        change = changes.get(column)
        if not isinstance(change, list) or len(change) != 2:
            continue
        old, new = change
        if trigger.from_values is not None and not loose_in(old, trigger.from_values):
            continue
        if trigger.to_values is not None and not loose_in(new, trigger.to_values):
            continue
        return True
    return False


def person_changes(event: ChangeEvent, written: dict[str, list[dict[str, Any]]]
                    ) -> dict[str, Any]:
    """The changes of an update that are not our own: a change is ours only for a column
    one of our recent writes (an action with a write-through) made to this record, with the
    value it wrote (or any value, when the sync saw our own credentials make the item's
    latest revision), plus the keys Podio resolved from a reference we wrote. Everything else in the same
    update is a person's change, and triggers rules."""
    changes = event.changes or {}
    entity = entity_for_event(event.entity)
    ours = written.get(f"{entity.name}:{event.entity_id}") if entity is not None else None
    if event.kind != "updated" or not ours:
        return dict(changes)

    def is_ours(column: str, change: Any) -> bool:
        return any(_derived(column, columns) or (column in columns and (
            event.own_write or loose_in(change[1] if isinstance(change, list) else change,
                                         [columns[column]]))) for columns in ours)

    return {c: v for c, v in changes.items() if not is_ours(c, v)}


def _derived(column: str, written: dict[str, Any]) -> bool:
    """Columns a Podio write changes indirectly: the foreign key resolved from a reference
    we wrote (school_id from school_source_id). Any other column — a person's edit of
    another field (``contact_source_id``, ``am_id``…) seen by the same sync — is not ours."""
    return (column.endswith("_id") and column.removesuffix("_id") + "_source_id" in written) \
        or column in ("source_revision",)
