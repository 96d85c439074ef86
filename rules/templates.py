"""Text templates (``"Hola {{ ticket.usuario.nombre }}"``) in Jinja2's immutable sandbox.

Templates are checked when a rule loads: syntax, unknown variables, unknown fields of
records (with a did-you-mean), unknown filters. They render with ``StrictUndefined`` so a
mistake that slips through fails loudly instead of sending an email with a blank. The
sandbox refuses attributes that start with ``_`` and any mutation; records are plain dicts.
The same filters and functions work in condition expressions (``rules.expr``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rules.functions import FUNCTIONS, Env
from rules.problems import suggest
from rules.types import MapT, StaticError, T, member

ENV_KEY = "__env"


@dataclass(frozen=True)
class FilterSpec:
    fn: Callable[..., Any]
    min_args: int
    max_args: int
    kind: str | None
    doc: str


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _local(env: Env, value: datetime) -> datetime:
    return value.replace(tzinfo=UTC).astimezone(ZoneInfo(env.zone))


def _fmt_date(env: Env, value: Any, fmt: str = "%d/%m/%Y") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _local(env, value)
    return value.strftime(fmt) if isinstance(value, date) else str(value)


def _fmt_datetime(env: Env, value: Any, fmt: str = "%d/%m/%Y %H:%M") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _local(env, value).strftime(fmt)
    return _fmt_date(env, value)


def _fmt_number(_env: Env, value: Any, decimals: int = 1) -> str:
    if value is None:
        return ""
    return f"{float(value):,.{int(decimals)}f}"


def _fmt_money(_env: Env, value: Any) -> str:
    return "" if value is None else f"${float(value):,.2f}"


def _default(_env: Env, value: Any, fallback: Any = "") -> Any:
    return fallback if value is None or value == "" else value


def _round(_env: Env, value: Any, precision: int = 0) -> Any:
    return None if value is None else round(float(value), int(precision))


def _join(_env: Env, value: Any, sep: str = ", ") -> str:
    return sep.join(_text(v) for v in (value or []))


def _first(_env: Env, value: Any) -> Any:
    return value[0] if value else None


def _last(_env: Env, value: Any) -> Any:
    return value[-1] if value else None


FILTERS: dict[str, FilterSpec] = {
    "lower": FilterSpec(lambda _e, v: _text(v).lower(), 0, 0, "texto", "minúsculas"),
    "upper": FilterSpec(lambda _e, v: _text(v).upper(), 0, 0, "texto", "mayúsculas"),
    "trim": FilterSpec(lambda _e, v: _text(v).strip(), 0, 0, "texto", "quita espacios"),
    "capitalize": FilterSpec(lambda _e, v: _text(v).capitalize(), 0, 0, "texto", ""),
    "length": FilterSpec(lambda _e, v: 0 if v is None else len(v), 0, 0, "número",
                         "cuántos elementos o letras"),
    "default": FilterSpec(_default, 0, 1, None, "valor si falta: x | default('—')"),
    "int": FilterSpec(lambda _e, v, d=0: d if v in (None, "") else int(float(v)), 0, 1,
                      "número", "número entero"),
    "float": FilterSpec(lambda _e, v, d=0.0: d if v in (None, "") else float(v), 0, 1,
                        "número", "número con decimales"),
    "round": FilterSpec(_round, 0, 1, "número", "redondea: x | round(1)"),
    "abs": FilterSpec(lambda _e, v: None if v is None else abs(v), 0, 0, "número", ""),
    "string": FilterSpec(lambda _e, v: _text(v), 0, 0, "texto", "como texto"),
    "first": FilterSpec(_first, 0, 0, None, "primer elemento"),
    "last": FilterSpec(_last, 0, 0, None, "último elemento"),
    "join": FilterSpec(_join, 0, 1, "texto", "une una lista: x | join(', ')"),
    "fecha": FilterSpec(_fmt_date, 0, 1, "texto", "fecha local dd/mm/aaaa"),
    "fecha_hora": FilterSpec(_fmt_datetime, 0, 1, "texto", "fecha y hora local"),
    "numero": FilterSpec(_fmt_number, 0, 1, "texto", "número con separadores: x | numero(1)"),
    "moneda": FilterSpec(_fmt_money, 0, 0, "texto", "importe: $12,000.00"),
}

TESTS: dict[str, Callable[..., bool]] = {
    "none": lambda v: v is None,
    "defined": lambda v: v is not None,
    "number": lambda v: isinstance(v, int | float | Decimal) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "true": lambda v: v is True,
    "false": lambda v: v is False,
    "vacio": lambda v: v is None or v == "" or v == [] or v == {},
}

_JINJA_MESSAGES = [
    (re.compile(r"unexpected end of template.*", re.S),
     "el texto termina antes de tiempo (¿falta cerrar }}, un paréntesis o una comilla?)"),
    (re.compile(r"unexpected char (.+?) at \d+"), r"carácter inesperado \1"),
    (re.compile(r"unexpected '(.+?)'"), r"símbolo inesperado '\1'"),
    (re.compile(r"expected token '(.+?)', got '(.+?)'"), r"se esperaba '\1' y se encontró '\2'"),
    (re.compile(r"No filter named '(.+?)'.*"), r'filtro desconocido "\1"'),
    (re.compile(r"No test named '(.+?)'.*"), r'prueba desconocida "\1"'),
    (re.compile(r"Encountered unknown tag '(.+?)'.*", re.S), r'etiqueta desconocida "{% \1 %}"'),
    (re.compile(r"unexpected end of string.*"), "falta cerrar una comilla"),
]


_UNCLOSED = re.compile(r"Unexpected end of template\. Jinja was looking for the following "
                       r"tags: (.+?)\. The innermost block that needs to be closed is "
                       r"'(\w+)'\.")
_TAG = re.compile(r"\{%-?\s*(\w+)")


def unclosed_block(source: str, message: str | None) -> tuple[str, int] | None:
    """M9: a block left open (``{% if %}`` without ``{% endif %}``): the Spanish message and
    the line where the block opens (Jinja reports the end of the text)."""
    found = _UNCLOSED.search(message or "")
    if found is None:
        return None
    block = found.group(2)
    opened: list[int] = []
    for tag in _TAG.finditer(source):
        if tag.group(1) == block:
            opened.append(source.count("\n", 0, tag.start()) + 1)
        elif tag.group(1) == "end" + block and opened:
            opened.pop()
    wanted = " o ".join(f"{{% {w} %}}" for w in re.findall(r"'(\w+)'", found.group(1)))
    return (f"el bloque {{% {block} %}} no se cierra (falta {wanted} antes del final)",
            opened[-1] if opened else source.count("\n") + 1)


def jinja_message(message: str | None) -> str:
    """Jinja's English syntax messages, in Spanish for admins."""
    text = (message or "error de sintaxis").strip()
    if unclosed := unclosed_block("", text):
        return unclosed[0]
    for pattern, spanish in _JINJA_MESSAGES:
        if pattern.search(text):
            return pattern.sub(spanish, text, count=1)
    return text


def _context_filter(spec: FilterSpec) -> Callable[..., Any]:
    @pass_context
    def apply(context: Context, value: Any, *args: Any) -> Any:
        return spec.fn(context.get(ENV_KEY), value, *args)

    return apply


def _context_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def call(context: Context, *args: Any) -> Any:
        return fn(context.get(ENV_KEY), *args)

    return call


class _RecordEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox where, as in condition expressions, a field of a missing
    relation reads as empty: ``{{ ticket.am.nombre | default('—') }}`` on a ticket without
    AM gives "—" instead of failing (StrictUndefined still catches everything else)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if obj is None and not attribute.startswith("_"):
            return None
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if obj is None and not (isinstance(argument, str) and argument.startswith("_")):
            return None
        return super().getitem(obj, argument)


def _blank_none(value: Any) -> Any:
    """An empty value prints as nothing, never as the word "None"."""
    return "" if value is None else value


@lru_cache(maxsize=2)
def environment(autoescape: bool = False) -> ImmutableSandboxedEnvironment:
    """The sandboxed Jinja environment (HTML emails escape values; text does not)."""
    env = _RecordEnvironment(undefined=StrictUndefined, autoescape=autoescape,
                             keep_trailing_newline=True, finalize=_blank_none)
    for name, spec in FILTERS.items():
        env.filters[name] = _context_filter(spec)
    env.tests.update(TESTS)
    env.globals.clear()
    for name, func in FUNCTIONS.items():
        env.globals[name] = _context_function(func.fn)
    return env


_LOCAL_NODES = (nodes.For, nodes.Assign, nodes.Macro, nodes.CallBlock, nodes.With,
                nodes.AssignBlock)


class Template:
    """A validated text template."""

    def __init__(self, source: str, scope: dict[str, T], *, html: bool = False) -> None:
        self.source = source
        env = environment(html)
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            unclosed = unclosed_block(source, exc.message)
            raise StaticError(f"plantilla inválida: {jinja_message(exc.message)}",
                              unclosed[1] if unclosed else exc.lineno or 1) from exc
        _check_tree(tree, scope)
        _check_calls(tree)
        try:
            self._template = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise StaticError(f"plantilla inválida: {jinja_message(exc.message)}",
                              exc.lineno or 1) from exc
        self.static = "{" not in source and "%" not in source

    def render(self, ctx: dict[str, Any]) -> str:
        """Render with the evaluation context; EvalError-like RuntimeError in Spanish."""
        if self.static:
            return self.source
        try:
            return self._template.render(ctx)
        except UndefinedError as exc:
            raise TemplateRenderError(f"la plantilla usa un valor que no existe: {exc}") from exc
        except SecurityError as exc:
            raise TemplateRenderError(f"la plantilla intentó algo no permitido: {exc}") from exc
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise TemplateRenderError(f"la plantilla falló: {exc}") from exc


class TemplateRenderError(Exception):
    """A template failed on real data."""


def _check_tree(tree: nodes.Template, scope: dict[str, T]) -> None:
    local: set[str] = set()
    for node in tree.find_all(_LOCAL_NODES):
        for target in node.find_all(nodes.Name):
            if target.ctx in ("store", "param"):
                local.add(target.name)
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx != "load" or name_node.name in local:
            continue
        name = name_node.name
        if name.startswith("_"):
            raise StaticError("no se pueden leer nombres que empiezan con _", name_node.lineno)
        if name not in scope and name not in FUNCTIONS:
            raise StaticError(f'variable desconocida "{name}"{suggest(name, scope)}',
                              name_node.lineno)
    for attr in tree.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            raise StaticError(f'no se puede leer "{attr.attr}"', attr.lineno)
        chain = _chain(attr)
        if chain is None or chain[0] in local or chain[0] not in scope:
            continue
        t: T = scope[chain[0]]
        for key in chain[1]:
            try:
                t = member(t, key)
            except StaticError as exc:
                raise StaticError(exc.message, attr.lineno) from exc


def _check_calls(tree: nodes.Template) -> None:
    """M9: a function or filter called with the wrong number of arguments is a mistake at
    load time (file:line; the first by line), as in condition expressions, not an email
    that fails later."""
    found: list[tuple[int, str]] = []
    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name in FUNCTIONS:
            spec = FUNCTIONS[call.node.name]
            found += _count_problem(f'la función "{spec.name}"', call, spec.min_args,
                                    spec.max_args)
    for node in tree.find_all(nodes.Filter):
        spec_f = FILTERS.get(node.name) if node.name else None
        if spec_f is not None:
            found += _count_problem(f'el filtro "{node.name}"', node, spec_f.min_args,
                                    spec_f.max_args)
    if found:
        line, message = min(found)
        raise StaticError(message, line)


def _count_problem(what: str, node: nodes.Call | nodes.Filter, least: int, most: int
                   ) -> list[tuple[int, str]]:
    if node.kwargs or node.dyn_args or node.dyn_kwargs:
        return [(node.lineno, f"{what} solo acepta argumentos por posición")]
    if least <= len(node.args) <= most:
        return []
    expected = str(least) if least == most else f"entre {least} y {most}"
    return [(node.lineno, f"{what} recibe {expected} argumento(s), no {len(node.args)}")]


def _chain(node: nodes.Node) -> tuple[str, list[str]] | None:
    keys: list[str] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
        else:
            return None
        node = node.node
    if isinstance(node, nodes.Name):
        return node.name, list(reversed(keys))
    return None


def is_single_expression(source: str) -> str | None:
    """The inner expression of ``"{{ expr }}"`` (a whole value in braces), else None."""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return None


__all__ = ["FILTERS", "TESTS", "MapT", "Template", "TemplateRenderError", "environment",
           "is_single_expression", "jinja_message"]
