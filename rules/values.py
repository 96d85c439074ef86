"""Action arguments: literals, ``{{ expresión }}`` values that keep their type, and text
templates — compiled and checked once, when the rule loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rules.actions.base import (
    BOOLEAN,
    DATE,
    FIELDS,
    INTEGER,
    PEOPLE,
    PERSON,
    RECORD,
    TEMPLATE_FILE,
    TEXT,
    TEXTS,
    Param,
)
from rules.catalog import ENTITIES
from rules.expr import Compiled, ExprCompiler, StaticError
from rules.problems import ProblemSink, one_of, suggest
from rules.templates import Template, is_single_expression
from rules.types import ANY, EntT, T, ValT, is_time_kind
from rules.yamlsrc import LList, LMap


@dataclass
class Arg:
    """One compiled argument: ``value(ctx)`` gives what the action receives."""

    kind: str
    line: int
    static: T = ANY
    literal: Any = None
    expr: Compiled | None = None
    template: Template | None = None
    fields: dict[str, Arg] = field(default_factory=dict)
    parts: dict[str, Template] = field(default_factory=dict)
    items: list[Arg] = field(default_factory=list)
    field_lines: dict[str, int] = field(default_factory=dict)

    def value(self, ctx: dict[str, Any]) -> Any:
        if self.kind == FIELDS:
            return {name: arg.value(ctx) for name, arg in self.fields.items()}
        if self.kind == TEMPLATE_FILE:
            return {part: template.render(ctx) for part, template in self.parts.items()}
        if self.items:
            out: list[Any] = []
            for item in self.items:
                v = item.value(ctx)
                out.extend(v if isinstance(v, list) else [v])
            return out
        if self.expr is not None:
            result = self.expr.run(ctx)
            return "" if result is None and self.kind == TEXT else (
                str(result) if self.kind == TEXT and not isinstance(result, str) else result)
        if self.template is not None:
            return self.template.render(ctx)
        return self.literal


class ArgCompiler:
    """Compiles the arguments of one action against the rule's scope."""

    def __init__(self, scope: dict[str, T], sink: ProblemSink, label: str,
                 template_dir: Path | None = None) -> None:
        self.scope = scope
        self.template_dir = template_dir
        self.sink = sink
        self.label = label
        self.exprs = ExprCompiler(scope)

    def _problem(self, line: int, message: str) -> None:
        self.sink.add(line, f'acción "{self.label}": {message}')

    def compile(self, name: str, raw: Any, param: Param, line: int) -> Arg | None:
        if param.kind == FIELDS:
            return self._fields(name, raw, line)
        if param.kind in (TEXTS, PEOPLE) and isinstance(raw, list):
            single = Param(PERSON if param.kind == PEOPLE else TEXT)
            items = []
            for i, item in enumerate(raw):
                item_line = raw.line_of(i) if isinstance(raw, LList) else line
                compiled = self.compile(f"{name}[{i + 1}]", item, single, item_line)
                if compiled is not None:
                    items.append(compiled)
            return Arg(param.kind, line, items=items)
        if param.kind == RECORD:
            return self._record(name, raw, param, line)
        if param.kind == TEMPLATE_FILE:
            return self._template_file(name, raw, line)
        if isinstance(raw, str):
            return self._text(name, raw, param, line)
        return self._literal(name, raw, param, line)

    def _fields(self, name: str, raw: Any, line: int) -> Arg | None:
        if not isinstance(raw, dict) or not raw:
            self._problem(line, f'"{name}" debe ser una lista de campos con su valor, p. ej. '
                                '"estatus: Cerrado"')
            return None
        arg = Arg(FIELDS, line)
        for key, value in raw.items():
            key_line = raw.line_of(key) if isinstance(raw, LMap) else line
            compiled = self.compile(f"{name}.{key}", value, Param("valor"), key_line)
            if compiled is not None:
                arg.fields[str(key)] = compiled
                arg.field_lines[str(key)] = key_line
        return arg

    def _template_file(self, name: str, raw: Any, line: int) -> Arg | None:
        folder = self.template_dir
        if not isinstance(raw, str) or not raw.strip() or "/" in raw or raw.startswith("."):
            self._problem(line, f'"{name}" debe ser el nombre de una plantilla de '
                                "config/plantillas/, sin extensión ni carpetas")
            return None
        files = {part: folder / f"{raw}.{part}" for part in ("txt", "html")} if folder else {}
        present = {part: path for part, path in files.items() if path.is_file()}
        if not present:
            self._problem(line, f'"{name}": no existe la plantilla "{raw}" (se buscó '
                                f"config/plantillas/{raw}.txt y .html)"
                                f"{suggest(raw, _template_names(folder))}")
            return None
        arg = Arg(TEMPLATE_FILE, line, literal=raw)
        for part, path in present.items():
            try:
                arg.parts["texto" if part == "txt" else "html"] = Template(
                    path.read_text(encoding="utf-8"), self.scope, html=part == "html")
            except StaticError as exc:
                self._problem(line, f'"{name}": config/plantillas/{path.name}:{exc.lineno}: '
                                    f"{exc.message}")
                return None
        return arg

    def _expression(self, name: str, source: str, line: int) -> Compiled | None:
        try:
            return self.exprs.compile(source)
        except StaticError as exc:
            self._problem(line + exc.lineno - 1, f'"{name}": {exc.message}')
            return None

    def _record(self, name: str, raw: Any, param: Param, line: int) -> Arg | None:
        if not isinstance(raw, str):
            self._problem(line, f'"{name}" debe nombrar un registro, p. ej. "ticket" o '
                                '"encuesta.ticket"')
            return None
        source = is_single_expression(raw) or raw
        compiled = self._expression(name, source, line)
        if compiled is None:
            return None
        if not isinstance(compiled.type, EntT | type(ANY)):
            self._problem(line, f'"{name}" debe ser un registro (p. ej. "ticket"), no un valor')
            return None
        if isinstance(compiled.type, EntT) and param.entities and \
                compiled.type.entity not in param.entities:
            self._problem(line, f'"{name}" es {compiled.type.entity}, pero aquí se espera '
                                f"{one_of(param.entities)}")
            return None
        return Arg(RECORD, line, static=compiled.type, expr=compiled)

    def _text(self, name: str, raw: str, param: Param, line: int) -> Arg | None:
        inner = is_single_expression(raw)
        if inner is not None:
            compiled = self._expression(name, inner, line)
            if compiled is None:
                return None
            self._check_static(name, compiled.type, param, line)
            return Arg(param.kind, line, static=compiled.type, expr=compiled)
        if "{{" in raw or "{%" in raw:
            try:
                template = Template(raw, self.scope)
            except StaticError as exc:
                self._problem(line + exc.lineno - 1, f'"{name}": {exc.message}')
                return None
            return Arg(param.kind, line, static=ValT("texto", name), template=template)
        return self._literal(name, raw, param, line)

    def _literal(self, name: str, raw: Any, param: Param, line: int) -> Arg | None:
        checks: dict[str, Callable[[Any], bool]] = {
            INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
            BOOLEAN: lambda v: isinstance(v, bool),
            DATE: lambda v: isinstance(v, date | datetime) or _iso_date(v),
            TEXT: lambda v: isinstance(v, str | int | float) and not isinstance(v, bool),
        }
        check = checks.get(param.kind)
        if check is not None and not check(raw):
            expected = {INTEGER: "un número entero", BOOLEAN: "true o false",
                        DATE: 'una fecha "AAAA-MM-DD" o una expresión como {{ hoy + dias(1) }}',
                        TEXT: "un texto"}[param.kind]
            self._problem(line, f'"{name}" debe ser {expected}, no {raw!r}')
            return None
        if param.kind == TEXT and not isinstance(raw, str):
            raw = str(raw)
        if param.kind == DATE and isinstance(raw, str):
            raw = date.fromisoformat(raw)
        return Arg(param.kind, line, literal=raw)

    def _check_static(self, name: str, t: T, param: Param, line: int) -> None:
        if param.kind in (PERSON, PEOPLE) and isinstance(t, EntT) and t.entity != "personal":
            self._problem(line, f'"{name}" debe ser una persona (p. ej. ticket.am o '
                                f'ticket.responsable), no {t.entity}')
        elif param.kind == DATE and isinstance(t, ValT) and t.kind not in (None, "lapso") \
                and not is_time_kind(t):
            self._problem(line, f'"{name}" debe ser una fecha; "{t.label}" es {t.kind}')
        elif param.kind == TEXT and isinstance(t, EntT):
            self._problem(line, f'"{name}" es un registro ({t.entity}); usa uno de sus campos, '
                                f'p. ej. {t.label}.{_a_text_field(t.entity)}')


def _iso_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _a_text_field(entity: str) -> str:
    fields = ENTITIES[entity].fields
    return "nombre" if "nombre" in fields else "titulo" if "titulo" in fields else "id"


def _template_names(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    return sorted({p.stem for p in folder.iterdir() if p.suffix in (".txt", ".html")})
