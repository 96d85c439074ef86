"""The triggers of a rule (``disparadores``): change events of its entity, schedules
(cron line or interval) and data conditions held for a while, validated against the
catalog."""

from __future__ import annotations

import re
from typing import Any

from rules.catalog import BOOL, ENTITIES, OPTION, Entity
from rules.parse_common import PartParser
from rules.problems import one_of, suggest
from rules.schedule import Schedule, ScheduleError
from rules.spec import EventTrigger, ScheduleTrigger, StateTrigger, Trigger
from rules.types import T
from rules.yamlsrc import LList, LMap

EVENT_KINDS = ("creado", "cambio", "eliminado")
EVENT_KEYS = ("evento", "campo", "campos", "de", "a", "incluir_propios")
SCHEDULE_KEYS = ("programa", "cada", "zona", "solo_horario_habil")
STATE_KEYS = ("se_cumple", "durante", "horas_habiles", "desde")
TRIGGER_KINDS = ("evento", "programa", "cada", "se_cumple")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)\s*$")


class TriggerParser(PartParser):
    """Parses the ``disparadores`` of one rule."""

    def triggers(self, data: LMap, entity: str | None, scope: dict[str, T], zone: str
                 ) -> list[Trigger]:
        """Every valid trigger of the rule (at least one, at most one ``se_cumple``)."""
        raw = data.get("disparadores")
        line = data.line_of("disparadores")
        if isinstance(raw, LMap):
            items: list[Any] = [raw]
            lines = [raw.line]
        elif isinstance(raw, LList) and raw:
            items, lines = list(raw), [raw.line_of(i) for i in range(len(raw))]
        else:
            self.sink.add(line, 'faltan "disparadores": al menos uno (evento, programa, cada '
                                "o se_cumple)")
            return []
        triggers: list[Trigger] = []
        for index, (item, item_line) in enumerate(zip(items, lines, strict=True)):
            trigger = self._trigger(item, item_line, index, entity, scope, zone)
            if trigger is not None:
                triggers.append(trigger)
        if sum(isinstance(t, StateTrigger) for t in triggers) > 1:
            self.sink.add(line, 'solo puede haber un disparador "se_cumple" por regla; '
                                "combina las condiciones con and/or")
        return triggers

    def _trigger(self, item: Any, line: int, index: int, entity: str | None,
                 scope: dict[str, T], zone: str) -> Trigger | None:
        if not isinstance(item, LMap):
            self.sink.add(line, "cada disparador es un bloque, p. ej. \"- evento: creado\"")
            return None
        kinds = [k for k in TRIGGER_KINDS if k in item]
        if len(kinds) != 1:
            unknown = [k for k in item if k not in (*EVENT_KEYS, *SCHEDULE_KEYS, *STATE_KEYS)]
            hint = suggest(unknown[0], TRIGGER_KINDS) if unknown else ""
            self.sink.add(line, "cada disparador necesita exactamente uno de "
                                f"{one_of(TRIGGER_KINDS)}{hint}")
            return None
        kind = kinds[0]
        if kind == "evento":
            return self._event(item, line, entity)
        if kind == "se_cumple":
            return self._state(item, line, entity, scope)
        return self._schedule(item, line, index, zone)

    def _event(self, item: LMap, line: int, entity: str | None) -> EventTrigger | None:
        self.unknown_keys(item, EVENT_KEYS, "disparador evento")
        kind = item.get("evento")
        if kind not in EVENT_KINDS:
            self.sink.add(item.line_of("evento"), f'evento "{kind}" desconocido'
                                                  f"{suggest(str(kind), EVENT_KINDS)} (usa "
                                                  f"{one_of(EVENT_KINDS)})")
            return None
        if entity is None:
            self.sink.add(line, 'un disparador "evento" necesita "entidad:" en la regla '
                                "(p. ej. entidad: ticket)")
            return None
        definition = ENTITIES[entity]
        names = item.get("campos", item.get("campo"))
        names_line = item.line_of("campos" if "campos" in item else "campo")
        fields: list[str] = []
        if names is not None:
            fields = [names] if isinstance(names, str) else list(names) \
                if isinstance(names, list) else []
            if not fields or not all(isinstance(n, str) for n in fields):
                self.sink.add(names_line, '"campo" debe ser un nombre o una lista de nombres')
                fields = []
        columns: set[str] = set()
        option_field = None
        for name in fields:
            found = _columns_of(definition, name)
            if found is None:
                self.sink.add(names_line, f'el campo "{name}" no existe en {definition.plural}'
                                          f"{suggest(name, definition.member_names())}")
                continue
            columns |= found
            option_field = definition.fields.get(name)
        from_values = self._values(item, "de", option_field, fields, definition)
        to_values = self._values(item, "a", option_field, fields, definition)
        if kind != "cambio" and (fields or from_values is not None or to_values is not None):
            self.sink.add(line, f'"campo", "de" y "a" solo se usan con "evento: cambio" (aquí: '
                                f'"{kind}")')
        if kind == "cambio" and not fields and (from_values is not None or
                                                to_values is not None):
            self.sink.add(line, 'con "de"/"a" indica también "campo:" (p. ej. campo: estatus)')
        include_own = self.flag(item, "incluir_propios", False)
        return EventTrigger(str(kind), fields, columns, from_values, to_values, include_own,
                            line)

    def _values(self, item: LMap, key: str, option_field: Any, fields: list[str],
                definition: Entity) -> list[Any] | None:
        if key not in item:
            return None
        raw = item[key]
        values = list(raw) if isinstance(raw, list) else [raw]
        if len(fields) == 1 and fields[0] in definition.relations:
            self.sink.add(item.line_of(key), f'"{key}" no se puede usar con "{fields[0]}" '
                                             "(es una relación); usa una condición")
            return values
        if option_field is not None and option_field.kind == OPTION:
            for value in values:
                if value is not None and value not in option_field.options:
                    self.sink.add(item.line_of(key), f'el valor "{value}" no es una opción de '
                                                     f"{definition.name}.{option_field.name}"
                                                     f"{suggest(str(value), option_field.options)}")
        if option_field is not None and option_field.kind == BOOL:
            for value in values:
                if not isinstance(value, bool) and value is not None:
                    self.sink.add(item.line_of(key), f'"{key}": {option_field.name} es sí/no; '
                                                     "usa true o false")
        return values

    def _schedule(self, item: LMap, line: int, index: int, zone: str
                  ) -> ScheduleTrigger | None:
        self.unknown_keys(item, SCHEDULE_KEYS, "disparador programa")
        trigger_zone = self.zone(item.get("zona"), item.line_of("zona")) if "zona" in item \
            else zone
        business = self.flag(item, "solo_horario_habil", False)
        key = "programa" if "programa" in item else "cada"
        try:
            if key == "programa":
                if not isinstance(item["programa"], str):
                    raise ScheduleError('"programa" es una línea cron entre comillas, p. ej. '
                                        '"0 9 * * lun-vie"')
                schedule = Schedule.cron_line(item["programa"], trigger_zone, business,
                                              self.config.calendar)
            else:
                schedule = Schedule.interval(item["cada"], trigger_zone, business,
                                             self.config.calendar)
        except ScheduleError as exc:
            self.sink.add(item.line_of(key), str(exc))
            return None
        return ScheduleTrigger(schedule, index, line)

    def _state(self, item: LMap, line: int, entity: str | None, scope: dict[str, T]
               ) -> StateTrigger | None:
        self.unknown_keys(item, STATE_KEYS, "disparador se_cumple")
        if entity is None:
            self.sink.add(line, 'un disparador "se_cumple" necesita "entidad:" en la regla')
            return None
        condition = self.compile(item["se_cumple"], scope, item.value_line("se_cumple"),
                                  "se_cumple")
        amount, unit = 0.0, "h"
        if "durante" in item:
            match = _DURATION.match(str(item["durante"]))
            if not match or float(match.group(1)) <= 0:
                self.sink.add(item.line_of("durante"), f'"durante: {item["durante"]}" inválido;'
                                                       ' usa p. ej. "72h", "30m" o "3d"')
            else:
                amount, unit = float(match.group(1)), match.group(2).replace("min", "m")
        business = self.flag(item, "horas_habiles", False)
        since = None
        if "desde" in item:
            since = self.compile(item["desde"], scope, item.line_of("desde"), "desde")
        if condition is None:
            return None
        return StateTrigger(condition, amount, unit, business, since, line)


def _columns_of(entity: Entity, name: str) -> set[str] | None:
    if name in entity.fields:
        return {entity.fields[name].column}
    if name in entity.relations:
        local = entity.relations[name].local
        source_col = local.removesuffix("_id") + "_source_id"
        table_columns = set(entity.model.__table__.columns.keys())  # type: ignore[attr-defined]
        return {local} | ({source_col} if source_col in table_columns else set())
    return None
