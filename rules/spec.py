"""The rule format's model: a compiled ``Rule`` with its triggers and actions, the names
its expressions may use, and the durations of its timers. ``rules.parser`` builds it from
one rule in YAML, such as:

    id: t3-escalar-a-jira
    nombre: "T3 · Escalar a Jira"
    entidad: ticket
    disparadores:
      - evento: cambio
        campo: estatus
        a: Escalado
    condiciones:
      - ticket.jira is none
    acciones:
      - jira.crear: {proyecto: SOP, resumen: "{{ ticket.titulo }}"}
        id: incidencia
      - podio.actualizar:
          campos: {jira: "{{ acciones.incidencia.ref }}"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rules.actions.base import ActionType
from rules.catalog import DATETIME, ENTITIES, Entity
from rules.expr import Compiled
from rules.schedule import Schedule
from rules.templates import Template
from rules.types import EntT, MapT, T, ValT, of_literal
from rules.values import Arg


@dataclass
class EventTrigger:
    """``evento: creado | cambio | eliminado``, optionally on fields and from/to values."""

    kind: str
    fields: list[str]
    columns: set[str]
    from_values: list[Any] | None
    to_values: list[Any] | None
    include_own: bool
    line: int

    def describe(self) -> str:
        what = {"creado": "se crea", "cambio": "cambia", "eliminado": "se elimina"}[self.kind]
        text = f"evento: {what}"
        if self.fields:
            text += " " + ", ".join(self.fields)
        if self.from_values is not None:
            text += f" de {', '.join(map(str, self.from_values))}"
        if self.to_values is not None:
            text += f" a {', '.join(map(str, self.to_values))}"
        return text


@dataclass
class ScheduleTrigger:
    """``programa:`` (a cron line) or ``cada:`` (an interval)."""

    schedule: Schedule
    index: int
    line: int

    def describe(self) -> str:
        kind = "cada" if self.schedule.every is not None else "programa"
        extra = " (solo horario hábil)" if self.schedule.business_only else ""
        return f"{kind}: {self.schedule.text} {self.schedule.zone}{extra}"


@dataclass
class StateTrigger:
    """``se_cumple:`` a condition, optionally held ``durante`` a time (business or not)."""

    condition: Compiled
    hold_amount: float
    hold_unit: str
    business: bool
    since: Compiled | None
    line: int

    def describe(self) -> str:
        text = f"se cumple: {self.condition.source}"
        if self.hold_amount:
            text += f" durante {self.hold_amount:g}{self.hold_unit}"
            text += " hábiles" if self.business else ""
        return text


Trigger = EventTrigger | ScheduleTrigger | StateTrigger


@dataclass
class ActionSpec:
    """One action of a rule: its registered type, key in the ledger, arguments and «si»."""

    type: ActionType
    key: str
    id: str | None
    args: dict[str, Arg]
    when: Compiled | None
    line: int
    # M7's «escalamiento»: the cause, client and period an escalation is for; its effects
    # are keyed by it alone, so another rule (or trigger) escalating the same finds them.
    shared: Compiled | Template | None = None


@dataclass
class Rule:
    """A compiled, valid rule."""

    id: str
    name: str
    description: str
    enabled: bool
    entity: str | None
    triggers: list[Trigger]
    conditions: list[Compiled]
    actions: list[ActionSpec]
    once_per: Compiled | Template | None
    mode: str
    storm_limit: int
    data: dict[str, Any]
    zone: str
    path: str
    hash: str
    line: int
    fallback: bool = False  # the last good version, running because the file is broken
    relation_paths: set[tuple[str, ...]] = field(default_factory=set)

    @property
    def event_triggers(self) -> list[EventTrigger]:
        return [t for t in self.triggers if isinstance(t, EventTrigger)]

    @property
    def schedule_triggers(self) -> list[ScheduleTrigger]:
        return [t for t in self.triggers if isinstance(t, ScheduleTrigger)]

    @property
    def state_trigger(self) -> StateTrigger | None:
        return next((t for t in self.triggers if isinstance(t, StateTrigger)), None)

    def over_storm_limit(self, runs: int) -> bool:
        """Whether ``runs`` runs released at once make more effects than the storm guard
        lets through without an admin's approval."""
        return runs * len(self.actions) > self.storm_limit

    @property
    def entity_def(self) -> Entity | None:
        return ENTITIES[self.entity] if self.entity else None


def rule_scope(entity: str | None, data: dict[str, Any], rule_id: str) -> dict[str, T]:
    """The names a rule's expressions and templates may use."""
    scope: dict[str, T] = {
        "ahora": ValT(DATETIME, "ahora"), "hoy": ValT("fecha", "hoy"),
        "datos": of_literal(data, "datos") if data else MapT("datos"),
        "regla": MapT("regla", {"id": ValT("texto", "regla.id"),
                                "nombre": ValT("texto", "regla.nombre")}),
        "disparador": MapT("disparador", {
            "tipo": ValT("texto", "disparador.tipo"), "campo": ValT(None, "disparador.campo"),
            "de": ValT(None, "disparador.de"), "a": ValT(None, "disparador.a"),
            "momento": ValT(DATETIME, "disparador.momento"),
            "cambios": MapT("disparador.cambios", open=True)}),
        "acciones": MapT("acciones"),
    }
    if entity:
        scope[entity] = EntT(entity, entity)
    del rule_id
    return scope


def duration_of(trigger: StateTrigger) -> timedelta:
    """The clock duration of a ``durante`` that is not in business time."""
    unit = {"m": 60, "h": 3600, "d": 86400}[trigger.hold_unit]
    return timedelta(seconds=trigger.hold_amount * unit)
