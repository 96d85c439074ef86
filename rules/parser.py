"""Parsing one rule (located YAML) into a compiled ``Rule`` (``rules.spec``), reporting
every mistake as ``file:line`` in Spanish: its top-level keys here, its triggers in
``rules.parse_triggers``, its actions in ``rules.parse_actions``. A rule with any problem
is not returned at all — it is never half-loaded."""

from __future__ import annotations

import re
from typing import Any

from rules.catalog import ENTITIES
from rules.config import RulesConfig
from rules.expr import Compiled
from rules.parse_actions import ActionParser
from rules.parse_common import PartParser
from rules.parse_triggers import TriggerParser
from rules.problems import ProblemSink, one_of, suggest
from rules.spec import Rule, rule_scope
from rules.spec_paths import relation_paths
from rules.templates import Template
from rules.types import T
from rules.yamlsrc import LList, LMap

RULE_KEYS = ("id", "nombre", "descripcion", "activa", "entidad", "disparadores",
             "condiciones", "acciones", "una_vez_por", "modo", "limite_efectos", "datos",
             "zona")
# What happens when a rule fires for an entity while an earlier run for it is unfinished
# (an action waiting to be retried or approved): the run modes of Home Assistant.
MODES = ("unico", "reiniciar", "cola", "paralelo")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,79}$")
EMAIL = re.compile(r"^[^@\s]+@([^@\s]+)$")


class RuleParser(PartParser):
    """Parses the rules of one file."""

    def __init__(self, config: RulesConfig, sink: ProblemSink, path: str, file_hash: str
                 ) -> None:
        super().__init__(config, sink)
        self.path = path
        self.hash = file_hash
        self.trigger_parser = TriggerParser(config, sink)
        self.action_parser = ActionParser(config, sink)

    def parse(self, data: Any, line: int) -> Rule | None:
        """The rule of one YAML block, or None when it has any problem (all reported)."""
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
        enabled = self.flag(data, "activa", True)
        entity = self._entity(data)
        zone = self.zone(data.get("zona"), data.line_of("zona"))
        raw_data = data.get("datos") or {}
        if not isinstance(raw_data, dict):
            add(data.line_of("datos"), '"datos" debe ser un bloque de claves con valores')
            raw_data = {}
        if isinstance(raw_data, LMap):
            self._data_people(raw_data)
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
        triggers = self.trigger_parser.triggers(data, entity, scope, zone)
        conditions = self._conditions(data, scope)
        actions = self.action_parser.actions(data, entity, scope)
        once_per = self._once_per(data, scope)
        if rule_id is None or not isinstance(name, str):
            return None
        rule = Rule(rule_id, name.strip(), str(data.get("descripcion") or ""),
                    bool(enabled), entity, triggers, conditions, actions, once_per,
                    str(mode), int(limit), dict(raw_data), zone, self.path, self.hash,
                    data.line)
        rule.relation_paths = relation_paths(rule)
        return rule

    def _data_people(self, data: LMap) -> None:
        """A «datos» value naming a person of the department by email (``lider_mesa:
        agente-1@saeko.test``: the staff's domain) must be in config/staff.yaml."""
        staff = self.config.staff_emails()
        domains = {email.rsplit("@", 1)[1] for email in staff}
        for key in data:
            for value in _strings(data[key]):
                match = EMAIL.match(value.strip())
                if match and match.group(1).lower() in domains and \
                        value.strip().lower() not in staff:
                    self.sink.add(data.line_of(key), f'datos.{key}: «{value}» no está en '
                                  f"config/staff.yaml{suggest(value.strip().lower(), staff)} "
                                  "(cada persona del personal debe estar ahí)")

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
            compiled = self.compile(source, scope, line, f"condición {i + 1}")
            if compiled is not None:
                out.append(compiled)
        return out

    def _once_per(self, data: LMap, scope: dict[str, T]) -> Compiled | Template | None:
        raw = data.get("una_vez_por")
        if raw is None:
            return None
        return self.key_template(raw, scope, data.line_of("una_vez_por"), "una_vez_por")


def _strings(value: Any) -> list[str]:
    """Every text inside a «datos» value (lists and blocks included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return []
