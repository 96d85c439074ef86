"""What the parsers of a rule's parts share: its config, the problem sink, and the checks
every part makes (an expression, a time zone, the allowed keys of a block)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.config import RulesConfig
from rules.expr import Compiled, ExprCompiler, StaticError
from rules.problems import ProblemSink, one_of, suggest
from rules.templates import Template, is_single_expression
from rules.types import T
from rules.yamlsrc import LMap

# Yes/no as admins write them in YAML (YAML itself reads true/false, yes/no, on/off).
TRUE_WORDS = frozenset({"si", "sí", "verdadero", "yes", "true", "on"})
FALSE_WORDS = frozenset({"no", "falso", "false", "off"})


def yes_no(value: Any) -> bool | None:
    """``activa: si`` and the like as a boolean; None when it is not a yes or a no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    return None


class PartParser:
    """Base of the rule parsers: reports every problem as ``file:line`` in Spanish."""

    def __init__(self, config: RulesConfig, sink: ProblemSink) -> None:
        self.config = config
        self.sink = sink

    def flag(self, item: LMap, key: str, default: bool) -> bool:
        """A yes/no key (``activa: si``, ``horas_habiles: true``); a problem otherwise."""
        value = yes_no(item.get(key, default))
        if value is None:
            self.sink.add(item.line_of(key), f'"{key}" debe ser sí o no (true o false), no '
                                             f'"{item.get(key)}"')
            return default
        return value

    def zone(self, value: Any, line: int) -> str:
        """A time zone of the rule (the calendar's by default)."""
        if value is None:
            return self.config.zone
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.sink.add(line, f'zona horaria "{value}" desconocida; usa p. ej. '
                                '"America/Tijuana" o "America/Mexico_City"')
            return self.config.zone
        return str(value)

    def key_template(self, raw: Any, scope: dict[str, T], line: int, what: str
                     ) -> Compiled | Template | None:
        """A key the rule computes per run («una_vez_por», «escalamiento»): one expression,
        or a text with {{ }} parts."""
        if not isinstance(raw, str):
            self.sink.add(line, f'"{what}" es una expresión, p. ej. "ticket.id"')
            return None
        inner = is_single_expression(raw)
        if inner is None and "{{" in raw:
            try:
                return Template(raw, scope)
            except StaticError as exc:
                self.sink.add(line, f"{what}: {exc.message}")
                return None
        return self.compile(inner or raw, scope, line, what)

    def compile(self, source: Any, scope: dict[str, T], line: int, what: str
                ) -> Compiled | None:
        """One expression of the rule compiled against ``scope`` (None when it is wrong)."""
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

    def unknown_keys(self, item: LMap, allowed: tuple[str, ...], what: str) -> None:
        """Report each key of ``item`` that is not ``allowed``."""
        for key in item:
            if key not in allowed:
                self.sink.add(item.line_of(key), f'{what}: clave desconocida "{key}"'
                                                 f"{suggest(key, allowed)} (permitidas: "
                                                 f"{one_of(allowed)})")
