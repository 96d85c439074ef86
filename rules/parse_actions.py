"""The actions of a rule (``acciones``): a type from the registry, its arguments compiled
against its parameters, an optional ``id`` (its result for later actions) and ``si``."""

from __future__ import annotations

import re
from typing import Any

from rules.actions import REGISTRY
from rules.actions.base import CheckContext
from rules.parse_common import PartParser
from rules.problems import one_of, suggest
from rules.spec import ActionSpec
from rules.types import MapT, T, ValT
from rules.values import Arg, ArgCompiler
from rules.yamlsrc import LList, LMap

ACTION_META_KEYS = ("id", "si", "escalamiento")
ACTION_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ActionParser(PartParser):
    """Parses the ``acciones`` of one rule."""

    def actions(self, data: LMap, entity: str | None, scope: dict[str, T]
                ) -> list[ActionSpec]:
        """Every valid action, in order; each sees the results of the ones before it."""
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
        shared = None
        if "escalamiento" in item:
            shared = self.key_template(item["escalamiento"], scope,
                                       item.line_of("escalamiento"), f'acción "{name}": '
                                                                     "escalamiento")
        when = None
        if "si" in item:
            when = self.compile(item["si"], scope, item.line_of("si"), f'acción "{name}": si')
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
                          action_line, shared)
