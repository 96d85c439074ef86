"""The rule format: parse one rule (located YAML) into a compiled ``Rule``, reporting every
mistake as ``file:line`` in Spanish. A rule with any problem is not returned at all — it is
never half-loaded.

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

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.actions import REGISTRY
from rules.actions.base import ActionType, CheckContext
from rules.catalog import BOOL, DATETIME, ENTITIES, OPTION, Entity
from rules.config import RulesConfig
from rules.expr import Compiled, ExprCompiler, StaticError
from rules.problems import ProblemSink, one_of, suggest
from rules.schedule import Schedule, ScheduleError
from rules.templates import Template, is_single_expression
from rules.types import EntT, MapT, T, ValT, of_literal
from rules.values import Arg, ArgCompiler
from rules.yamlsrc import LList, LMap

RULE_KEYS = ("id", "nombre", "descripcion", "activa", "entidad", "disparadores",
             "condiciones", "acciones", "una_vez_por", "modo", "limite_efectos", "datos",
             "zona")
EVENT_KINDS = ("creado", "cambio", "eliminado")
EVENT_KEYS = ("evento", "campo", "campos", "de", "a", "incluir_propios")
SCHEDULE_KEYS = ("programa", "cada", "zona", "solo_horario_habil")
STATE_KEYS = ("se_cumple", "durante", "horas_habiles", "desde")
TRIGGER_KINDS = ("evento", "programa", "cada", "se_cumple")
ACTION_META_KEYS = ("id", "si")
# What happens when a rule fires for an entity while an earlier run for it is unfinished
# (an action waiting to be retried or approved): the run modes of Home Assistant.
MODES = ("unico", "reiniciar", "cola", "paralelo")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,79}$")
ACTION_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d)\s*$")


@dataclass
class EventTrigger:
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
    schedule: Schedule
    index: int
    line: int

    def describe(self) -> str:
        kind = "cada" if self.schedule.every is not None else "programa"
        extra = " (solo horario hábil)" if self.schedule.business_only else ""
        return f"{kind}: {self.schedule.text} {self.schedule.zone}{extra}"


@dataclass
class StateTrigger:
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
    type: ActionType
    key: str
    id: str | None
    args: dict[str, Arg]
    when: Compiled | None
    line: int


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


class RuleParser:
    """Parses the rules of one file."""

    def __init__(self, config: RulesConfig, sink: ProblemSink, path: str, file_hash: str
                 ) -> None:
        self.config = config
        self.sink = sink
        self.path = path
        self.hash = file_hash

    def parse(self, data: Any, line: int) -> Rule | None:
        before = len(self.sink.problems)
        rule = self._parse(data, line)
        return rule if rule is not None and len(self.sink.problems) == before else None

    # --- top level ----------------------------------------------------------------------

    def _parse(self, data: Any, line: int) -> Rule | None:
        add = self.sink.add
        if not isinstance(data, LMap):
            add(line, "una regla debe ser un bloque de claves (id:, nombre:, disparadores:, "
                      "acciones:…)")
            return None
        for key in data:
            if key not in RULE_KEYS:
                add(data.line_of(key), f'clave desconocida "{key}"{suggest(key, RULE_KEYS)} '
                                       f"(permitidas: {one_of(RULE_KEYS)})")
        rule_id = data.get("id")
        if not isinstance(rule_id, str) or not ID_PATTERN.match(rule_id):
            add(data.line_of("id"), 'falta "id" o no es válido: usa minúsculas, números y '
                                    'guiones, p. ej. "t3-escalar-a-jira"')
            rule_id = None
        self.sink.rule_id = rule_id
        name = data.get("nombre")
        if not isinstance(name, str) or not name.strip():
            add(data.line_of("nombre"), 'falta "nombre": un título legible, p. ej. '
                                        '"T3 · Escalar a Jira"')
        enabled = data.get("activa", True)
        if not isinstance(enabled, bool):
            add(data.line_of("activa"), '"activa" debe ser true o false')
        entity = self._entity(data)
        zone = self._zone(data.get("zona"), data.line_of("zona"))
        raw_data = data.get("datos") or {}
        if not isinstance(raw_data, dict):
            add(data.line_of("datos"), '"datos" debe ser un bloque de claves con valores')
            raw_data = {}
        mode = data.get("modo", "unico")
        if mode not in MODES:
            add(data.line_of("modo"), f'modo "{mode}" desconocido{suggest(str(mode), MODES)} '
                                      f"(usa {one_of(MODES)})")
        limit = data.get("limite_efectos", self.config.storm_limit)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            add(data.line_of("limite_efectos"), '"limite_efectos" debe ser un número entero '
                                                "mayor que cero")
            limit = self.config.storm_limit
        scope = rule_scope(entity, dict(raw_data), rule_id or "")
        triggers = self._triggers(data, entity, scope, zone)
        conditions = self._conditions(data, scope)
        actions = self._actions(data, entity, scope)
        once_per = self._once_per(data, scope)
        if rule_id is None or not isinstance(name, str):
            return None
        rule = Rule(rule_id, name.strip(), str(data.get("descripcion") or ""),
                    bool(enabled), entity, triggers, conditions, actions, once_per,
                    str(mode), int(limit), dict(raw_data), zone, self.path, self.hash,
                    data.line)
        rule.relation_paths = _relation_paths(rule)
        return rule

    def _entity(self, data: LMap) -> str | None:
        entity = data.get("entidad")
        if entity is None:
            return None
        if entity not in ENTITIES:
            self.sink.add(data.line_of("entidad"),
                          f'entidad "{entity}" desconocida{suggest(str(entity), ENTITIES)} '
                          f"(usa {one_of(ENTITIES)})")
            return None
        return str(entity)

    def _zone(self, value: Any, line: int) -> str:
        if value is None:
            return self.config.zone
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.sink.add(line, f'zona horaria "{value}" desconocida; usa p. ej. '
                                '"America/Tijuana" o "America/Mexico_City"')
            return self.config.zone
        return str(value)

    def _compile(self, source: Any, scope: dict[str, T], line: int, what: str
                 ) -> Compiled | None:
        if isinstance(source, bool) or not isinstance(source, str):
            self.sink.add(line, f"{what}: se esperaba una expresión entre comillas, p. ej. "
                                '"ticket.estatus == \'Cerrado\'"')
            return None
        inner = is_single_expression(source) or source
        try:
            return ExprCompiler(scope).compile(inner)
        except StaticError as exc:
            self.sink.add(line + exc.lineno - 1, f"{what}: {exc.message}")
            return None

    # --- triggers -----------------------------------------------------------------------

    def _triggers(self, data: LMap, entity: str | None, scope: dict[str, T], zone: str
                  ) -> list[Trigger]:
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

    def _unknown_keys(self, item: LMap, allowed: tuple[str, ...], what: str) -> None:
        for key in item:
            if key not in allowed:
                self.sink.add(item.line_of(key), f'{what}: clave desconocida "{key}"'
                                                 f"{suggest(key, allowed)} (permitidas: "
                                                 f"{one_of(allowed)})")

    def _event(self, item: LMap, line: int, entity: str | None) -> EventTrigger | None:
        self._unknown_keys(item, EVENT_KEYS, "disparador evento")
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
        include_own = item.get("incluir_propios", False)
        if not isinstance(include_own, bool):
            self.sink.add(item.line_of("incluir_propios"), '"incluir_propios" debe ser true o '
                                                           "false")
            include_own = False
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
        self._unknown_keys(item, SCHEDULE_KEYS, "disparador programa")
        trigger_zone = self._zone(item.get("zona"), item.line_of("zona")) if "zona" in item \
            else zone
        business = item.get("solo_horario_habil", False)
        if not isinstance(business, bool):
            self.sink.add(item.line_of("solo_horario_habil"), '"solo_horario_habil" debe ser '
                                                              "true o false")
            business = False
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
        self._unknown_keys(item, STATE_KEYS, "disparador se_cumple")
        if entity is None:
            self.sink.add(line, 'un disparador "se_cumple" necesita "entidad:" en la regla')
            return None
        condition = self._compile(item["se_cumple"], scope, item.value_line("se_cumple"),
                                  "se_cumple")
        amount, unit = 0.0, "h"
        if "durante" in item:
            match = _DURATION.match(str(item["durante"]))
            if not match or float(match.group(1)) <= 0:
                self.sink.add(item.line_of("durante"), f'"durante: {item["durante"]}" inválido;'
                                                       ' usa p. ej. "72h", "30m" o "3d"')
            else:
                amount, unit = float(match.group(1)), match.group(2).replace("min", "m")
        business = item.get("horas_habiles", False)
        if not isinstance(business, bool):
            self.sink.add(item.line_of("horas_habiles"), '"horas_habiles" debe ser true o false')
            business = False
        since = None
        if "desde" in item:
            since = self._compile(item["desde"], scope, item.line_of("desde"), "desde")
        if condition is None:
            return None
        return StateTrigger(condition, amount, unit, business, since, line)

    # --- conditions, actions ------------------------------------------------------------

    def _conditions(self, data: LMap, scope: dict[str, T]) -> list[Compiled]:
        raw = data.get("condiciones")
        if raw is None:
            return []
        if isinstance(raw, str):
            raw_list: list[Any] = [raw]
            lines = [data.value_line("condiciones")]
        elif isinstance(raw, LList):
            raw_list, lines = list(raw), [raw.line_of(i) for i in range(len(raw))]
        else:
            self.sink.add(data.line_of("condiciones"), '"condiciones" es una lista de '
                                                       "expresiones (todas deben cumplirse)")
            return []
        out = []
        for i, (source, line) in enumerate(zip(raw_list, lines, strict=True)):
            compiled = self._compile(source, scope, line, f"condición {i + 1}")
            if compiled is not None:
                out.append(compiled)
        return out

    def _actions(self, data: LMap, entity: str | None, scope: dict[str, T]
                 ) -> list[ActionSpec]:
        raw = data.get("acciones")
        if not isinstance(raw, LList) or not raw:
            self.sink.add(data.line_of("acciones"), 'faltan "acciones": al menos una, p. ej. '
                                                    '"- podio.comentario: {texto: …}"')
            return []
        results = MapT("acciones")
        specs: list[ActionSpec] = []
        for index, item in enumerate(raw):
            line = raw.line_of(index)
            action_scope = dict(scope)
            action_scope["acciones"] = MapT("acciones", dict(results.keys))
            spec = self._action(item, line, index, entity, action_scope)
            if spec is None:
                continue
            if spec.id is not None:
                if spec.id in results.keys:
                    self.sink.add(line, f'id de acción repetido "{spec.id}"')
                results.keys[spec.id] = MapT(f"acciones.{spec.id}", {
                    "ref": ValT("texto", f"acciones.{spec.id}.ref"),
                    "estado": ValT("texto", f"acciones.{spec.id}.estado")})
            specs.append(spec)
        return specs

    def _action(self, item: Any, line: int, index: int, entity: str | None,
                scope: dict[str, T]) -> ActionSpec | None:
        if not isinstance(item, LMap):
            self.sink.add(line, 'cada acción es un bloque, p. ej. "- podio.comentario: '
                                '{texto: Hola}"')
            return None
        names = [k for k in item if k not in ACTION_META_KEYS]
        if len(names) != 1:
            self.sink.add(line, "cada acción necesita exactamente un tipo (p. ej. "
                                f"podio.actualizar); aquí hay {len(names)}: {one_of(names)}")
            return None
        name = names[0]
        action_line = item.line_of(name)
        if name not in REGISTRY:
            self.sink.add(action_line, f'acción desconocida "{name}"{suggest(name, REGISTRY)} '
                                       f"(disponibles: {one_of(REGISTRY)})")
            return None
        action = REGISTRY[name]
        action_id = item.get("id")
        if action_id is not None and (not isinstance(action_id, str)
                                      or not ACTION_ID_PATTERN.match(action_id)):
            self.sink.add(item.line_of("id"), f'acción "{name}": "id" debe ser una palabra en '
                                              'minúsculas, p. ej. "incidencia"')
            action_id = None
        when = None
        if "si" in item:
            when = self._compile(item["si"], scope, item.line_of("si"), f'acción "{name}": si')
        raw_args = item[name]
        if raw_args is None:
            raw_args = LMap()
            raw_args.line, raw_args.key_lines, raw_args.value_styles = action_line, {}, {}
        if not isinstance(raw_args, LMap):
            self.sink.add(action_line, f'acción "{name}": sus argumentos van en un bloque '
                                       f"debajo ({one_of(action.params)})")
            return None
        compiler = ArgCompiler(scope, self.sink, name, self.config.template_dir)
        args: dict[str, Arg] = {}
        for key, value in raw_args.items():
            if key not in action.params:
                self.sink.add(raw_args.line_of(key), f'acción "{name}": argumento desconocido '
                                                     f'"{key}"{suggest(key, action.params)} '
                                                     f"(acepta {one_of(action.params)})")
                continue
            compiled = compiler.compile(key, value, action.params[key],
                                        raw_args.value_line(key))
            if compiled is not None:
                args[key] = compiled
        for key, param in action.params.items():
            if param.required and key not in raw_args:
                self.sink.add(action_line, f'acción "{name}": falta el argumento "{key}"'
                                           + (f" ({param.doc})" if param.doc else ""))
        if action.check is not None:
            action.check(args, CheckContext(self.sink, action_line, entity, self.config))
        return ActionSpec(action, action_id or str(index + 1), action_id, args, when,
                          action_line)

    def _once_per(self, data: LMap, scope: dict[str, T]) -> Compiled | Template | None:
        raw = data.get("una_vez_por")
        if raw is None:
            return None
        line = data.line_of("una_vez_por")
        if not isinstance(raw, str):
            self.sink.add(line, '"una_vez_por" es una expresión, p. ej. "ticket.id"')
            return None
        inner = is_single_expression(raw)
        if inner is None and "{{" in raw:
            try:
                return Template(raw, scope)
            except StaticError as exc:
                self.sink.add(line, f"una_vez_por: {exc.message}")
                return None
        return self._compile(inner or raw, scope, line, "una_vez_por")


def _columns_of(entity: Entity, name: str) -> set[str] | None:
    if name in entity.fields:
        return {entity.fields[name].column}
    if name in entity.relations:
        local = entity.relations[name].local
        source_col = local.removesuffix("_id") + "_source_id"
        table_columns = set(entity.model.__table__.columns.keys())  # type: ignore[attr-defined]
        return {local} | ({source_col} if source_col in table_columns else set())
    return None


def _relation_paths(rule: Rule) -> set[tuple[str, ...]]:
    """Relation chains the rule reads (``("cliente", "am")``): what bulk loading fetches."""
    exprs: list[Compiled] = list(rule.conditions)
    state = rule.state_trigger
    if state is not None:
        exprs.append(state.condition)
        if state.since is not None:
            exprs.append(state.since)
    if isinstance(rule.once_per, Compiled):
        exprs.append(rule.once_per)
    for action in rule.actions:
        if action.when is not None:
            exprs.append(action.when)
        for arg in _all_args(action.args.values()):
            if arg.expr is not None:
                exprs.append(arg.expr)
    paths: set[tuple[str, ...]] = set()
    if rule.entity is None:
        return paths
    for compiled in exprs:
        for path in compiled.paths:
            if path and path[0] == rule.entity:
                paths.add(path[1:])
    # Templates: every relation of the entity might be read; load them (one level) when the
    # rule has text templates, plus any chain mentioned in them.
    if any(arg.template is not None or arg.parts for action in rule.actions
           for arg in _all_args(action.args.values())) or isinstance(rule.once_per, Template):
        for template in _templates(rule):
            paths |= _template_paths(template.source, rule.entity)
    return paths


def _all_args(args: Any) -> list[Arg]:
    out: list[Arg] = []
    for arg in args:
        out.append(arg)
        out.extend(_all_args(arg.fields.values()))
        out.extend(_all_args(arg.items))
    return out


def _templates(rule: Rule) -> list[Template]:
    out: list[Template] = []
    for action in rule.actions:
        for arg in _all_args(action.args.values()):
            if arg.template is not None:
                out.append(arg.template)
            out.extend(arg.parts.values())
    if isinstance(rule.once_per, Template):
        out.append(rule.once_per)
    return out


_PATH_IN_TEMPLATE = re.compile(r"\b([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)+)")


def _template_paths(source: str, entity: str) -> set[tuple[str, ...]]:
    paths = set()
    for match in _PATH_IN_TEMPLATE.finditer(source):
        parts = tuple(match.group(1).split("."))
        if parts[0] == entity:
            paths.add(parts[1:])
    return paths


def duration_of(trigger: StateTrigger) -> timedelta:
    """The clock duration of a ``durante`` that is not in business time."""
    unit = {"m": 60, "h": 3600, "d": 86400}[trigger.hold_unit]
    return timedelta(seconds=trigger.hold_amount * unit)
