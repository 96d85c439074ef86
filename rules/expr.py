"""Condition expressions: Jinja syntax, parsed by Jinja's own parser, interpreted here.

An admin writes ``ticket.estatus == "Escalado" and ticket.jira is none``. The text is
parsed with ``jinja2.parser.Parser`` (the same grammar as ``{{ }}`` in templates) and then
compiled into small Python closures over a **whitelist** of node kinds: constants, lists,
names, field access, comparisons, and/or/not, arithmetic, ``x if c else y``, a few filters,
``is none``-style tests and the named primitives of ``rules.functions``. Anything else is a
load-time error. Nothing is ever handed to ``eval``/``exec``; records are plain dicts, so
there is no attribute of a Python object to reach. Compiled once, an expression runs in
well under a microsecond per node, which is what lets bulk evaluation reach the SPEC's
100,000 rule-entity evaluations per second.

Missing values are forgiving: a field of a missing relation is ``None``; ordering
comparisons with ``None`` are false; arithmetic with ``None`` gives ``None``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.parser import Parser

from rules.catalog import BOOL, DATETIME, OPTION, TEXT
from rules.functions import FUNCTIONS, Env
from rules.problems import one_of, suggest
from rules.templates import FILTERS, TESTS, environment, jinja_message
from rules.types import (
    ANY,
    AnyT,
    EntT,
    MapT,
    StaticError,
    T,
    ValT,
    is_number_kind,
    is_time_kind,
    member,
)

Fn = Callable[[dict[str, Any]], Any]
ENV_KEY = "__env"
SEEN_KEY = "__seen"


class EvalError(Exception):
    """An expression failed on real data (e.g. adding a text to a number)."""


@dataclass
class Compiled:
    """A compiled expression: ``run`` is the fast path, ``explain`` records values read."""

    source: str
    run: Fn
    explain_fn: Fn
    type: T
    paths: tuple[tuple[str, ...], ...]

    def explain(self, ctx: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(result, {"ticket.estatus": value, ...}) for traces."""
        seen: dict[str, Any] = {}
        ctx[SEEN_KEY] = seen
        try:
            return self.explain_fn(ctx), seen
        finally:
            ctx.pop(SEEN_KEY, None)


def parse(source: str) -> nodes.Expr:
    """Parse one expression with Jinja's parser; StaticError in Spanish when it is wrong."""
    try:
        parser = Parser(environment(), source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise StaticError(f'sobra texto después de la expresión: "{token.value}"'
                              f"{_eq_hint(source)}", token.lineno)
        return expr
    except TemplateSyntaxError as exc:
        raise StaticError(f"expresión inválida: {jinja_message(exc.message)}"
                          f"{_eq_hint(source)}", exc.lineno or 1) from exc


def _eq_hint(source: str) -> str:
    stripped = source.replace("==", "").replace("!=", "").replace("<=", "").replace(">=", "")
    return " (para comparar usa ==)" if "=" in stripped else ""


class ExprCompiler:
    """Compiles expressions against a scope of known names (``ticket``, ``datos``, ...)."""

    def __init__(self, scope: dict[str, T]) -> None:
        self.scope = scope

    def compile(self, source: str) -> Compiled:
        """Compile ``source`` (StaticError with a Spanish message and a relative line)."""
        if not isinstance(source, str) or not source.strip():
            raise StaticError("la expresión está vacía")
        tree = parse(source.strip())
        paths: list[tuple[str, ...]] = []
        fast, static = _Builder(self.scope, tracing=False, paths=paths).build(tree)
        traced, _ = _Builder(self.scope, tracing=True, paths=[]).build(tree)
        return Compiled(source.strip(), fast, traced, static, tuple(paths))

    def compile_node(self, tree: nodes.Expr) -> Compiled:
        """Compile an already parsed node (used for ``{{ expr }}`` values)."""
        paths: list[tuple[str, ...]] = []
        fast, static = _Builder(self.scope, tracing=False, paths=paths).build(tree)
        traced, _ = _Builder(self.scope, tracing=True, paths=[]).build(tree)
        return Compiled("", fast, traced, static, tuple(paths))


def _err(node: nodes.Node, message: str) -> StaticError:
    return StaticError(message, getattr(node, "lineno", 1) or 1)


# --- runtime helpers -------------------------------------------------------------------


def _coerce_pair(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, datetime) and not isinstance(b, datetime) and isinstance(b, date):
        return a, datetime(b.year, b.month, b.day)
    if isinstance(b, datetime) and not isinstance(a, datetime) and isinstance(a, date):
        return datetime(a.year, a.month, a.day), b
    return a, b


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return False
        a, b = _coerce_pair(a, b)
        try:
            return bool(op(a, b))
        except TypeError as exc:
            raise EvalError(f"no se puede comparar {_show(a)} con {_show(b)}") from exc

    return compare


def _contains(a: Any, b: Any) -> bool:
    if b is None:
        return False
    if isinstance(b, str):
        return isinstance(a, str) and a in b
    try:
        return a in b
    except TypeError:
        return False


COMPARE_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "lt": _ordered(operator.lt), "lteq": _ordered(operator.le),
    "gt": _ordered(operator.gt), "gteq": _ordered(operator.ge),
    "in": _contains, "notin": lambda a, b: not _contains(a, b),
}
OP_TEXT = {"eq": "==", "ne": "!=", "lt": "<", "lteq": "<=", "gt": ">", "gteq": ">=",
           "in": "in", "notin": "not in"}


def _arith(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return op(a, b)
        except ZeroDivisionError as exc:
            raise EvalError("división entre cero") from exc
        except TypeError as exc:
            raise EvalError(f"no se puede calcular {_show(a)} {symbol} {_show(b)}") from exc

    return apply


ARITH = {nodes.Add: ("+", operator.add), nodes.Sub: ("-", operator.sub),
         nodes.Mul: ("*", operator.mul), nodes.Div: ("/", operator.truediv),
         nodes.FloorDiv: ("//", operator.floordiv), nodes.Mod: ("%", operator.mod)}
# Longest text an expression may build (``"x" * 10**9`` must not eat the memory).
MAX_TEXT = 100_000


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and "_entity" in value:
        return f"{value['_entity']} #{value.get('id')}"
    return repr(value)


def _getter(root: str, keys: tuple[str, ...]) -> Fn:
    if not keys:
        return lambda ctx: ctx.get(root)
    if len(keys) == 1:
        (k1,) = keys

        def get1(ctx: dict[str, Any]) -> Any:
            v = ctx.get(root)
            return v.get(k1) if isinstance(v, dict) else None

        return get1
    if len(keys) == 2:
        k1, k2 = keys

        def get2(ctx: dict[str, Any]) -> Any:
            v = ctx.get(root)
            v = v.get(k1) if isinstance(v, dict) else None
            return v.get(k2) if isinstance(v, dict) else None

        return get2

    def get_n(ctx: dict[str, Any]) -> Any:
        v = ctx.get(root)
        for k in keys:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v

    return get_n


class _Builder:
    """Turns one parsed node tree into a closure and its static type."""

    def __init__(self, scope: dict[str, T], *, tracing: bool,
                 paths: list[tuple[str, ...]]) -> None:
        self.scope = scope
        self.tracing = tracing
        self.paths = paths

    def build(self, node: nodes.Node) -> tuple[Fn, T]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise _err(node, f"esta construcción no se permite en una expresión "
                             f"({type(node).__name__}); usa comparaciones, and/or/not, "
                             "campos, filtros y funciones de la guía")
        return method(node)  # type: ignore[no-any-return]

    # --- leaves ---------------------------------------------------------------------

    def _Const(self, node: nodes.Const) -> tuple[Fn, T]:
        value = node.value
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise _err(node, "el texto es demasiado largo")
        kind = (BOOL if isinstance(value, bool) else "número" if isinstance(value, int | float)
                else TEXT if isinstance(value, str) else None)
        return (lambda _ctx: value), ValT(kind, repr(value))

    def _List(self, node: nodes.List) -> tuple[Fn, T]:
        items = [self.build(item)[0] for item in node.items]
        return (lambda ctx: [f(ctx) for f in items]), ValT("lista", "lista")

    _Tuple = _List  # type: ignore[assignment]

    def _Name(self, node: nodes.Name) -> tuple[Fn, T]:
        return self._path(node, node.name, ())

    def _chain(self, node: nodes.Node) -> tuple[str, tuple[str, ...]] | None:
        keys: list[str] = []
        while True:
            if isinstance(node, nodes.Getattr):
                keys.append(node.attr)
                node = node.node
            elif (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const)
                  and isinstance(node.arg.value, str)):
                keys.append(node.arg.value)
                node = node.node
            elif isinstance(node, nodes.Name):
                return node.name, tuple(reversed(keys))
            else:
                return None

    def _Getattr(self, node: nodes.Getattr) -> tuple[Fn, T]:
        chain = self._chain(node)
        if chain is not None:
            return self._path(node, *chain)
        base, base_t = self.build(node.node)
        attr = node.attr
        if attr.startswith("_"):
            raise _err(node, f'no se puede leer "{attr}"')
        try:
            t = member(base_t, attr)
        except StaticError as exc:
            raise _err(node, exc.message) from exc
        return (lambda ctx: (lambda v: v.get(attr) if isinstance(v, dict) else None)(base(ctx))), t

    def _Getitem(self, node: nodes.Getitem) -> tuple[Fn, T]:
        chain = self._chain(node)
        if chain is not None:
            return self._path(node, *chain)
        if isinstance(node.arg, nodes.Slice):
            raise _err(node, "no se permiten rebanadas [a:b] en una expresión")
        base, base_t = self.build(node.node)
        key, _ = self.build(node.arg)
        if isinstance(base_t, ValT) and base_t.kind not in (None, "lista", TEXT):
            raise _err(node, f'"{base_t.label}" es un valor, no se puede indexar')

        def getitem(ctx: dict[str, Any]) -> Any:
            container, k = base(ctx), key(ctx)
            if isinstance(container, dict):
                return container.get(k)
            if isinstance(container, list | str) and isinstance(k, int):
                return container[k] if -len(container) <= k < len(container) else None
            return None

        return getitem, ANY if not isinstance(base_t, MapT) or base_t.open else ANY

    def _path(self, node: nodes.Node, root: str, keys: tuple[str, ...]) -> tuple[Fn, T]:
        if root.startswith("_") or any(k.startswith("_") for k in keys):
            raise _err(node, "no se pueden leer nombres que empiezan con _")
        if root not in self.scope:
            hint = suggest(root, self.scope)
            if root in FUNCTIONS:
                raise _err(node, f'"{root}" es una función: escríbela con paréntesis, '
                                 f"{root}(...)")
            raise _err(node, f'variable desconocida "{root}"{hint} (disponibles: '
                             f"{one_of(sorted(self.scope))})")
        t = self.scope[root]
        for key in keys:
            try:
                t = member(t, key)
            except StaticError as exc:
                raise _err(node, exc.message) from exc
        self.paths.append((root, *keys))
        fn = _getter(root, keys)
        if not self.tracing:
            return fn, t
        label = ".".join((root, *keys))

        def traced(ctx: dict[str, Any]) -> Any:
            value = fn(ctx)
            seen = ctx.get(SEEN_KEY)
            if seen is not None and label not in seen:
                seen[label] = value
            return value

        return traced, t

    # --- operators ------------------------------------------------------------------

    def _Compare(self, node: nodes.Compare) -> tuple[Fn, T]:
        left, left_t = self.build(node.expr)
        steps: list[tuple[Callable[[Any, Any], bool], Fn]] = []
        prev_node, prev_t = node.expr, left_t
        for operand in node.ops:
            if operand.op not in COMPARE_OPS:
                raise _err(node, f"operador no permitido: {operand.op}")
            right, right_t = self.build(operand.expr)
            self._check_compare(node, operand.op, prev_node, prev_t, operand.expr, right_t)
            steps.append((COMPARE_OPS[operand.op], right))
            prev_node, prev_t = operand.expr, right_t
        if len(steps) == 1:
            (op, right), = steps
            return (lambda ctx: op(left(ctx), right(ctx))), ValT(BOOL, "comparación")

        def chained(ctx: dict[str, Any]) -> bool:
            a = left(ctx)
            for op, right in steps:
                b = right(ctx)
                if not op(a, b):
                    return False
                a = b
            return True

        return chained, ValT(BOOL, "comparación")

    def _check_compare(self, node: nodes.Node, op: str, a_node: nodes.Node, a: T,
                       b_node: nodes.Node, b: T) -> None:
        for value_t, other_node in ((a, b_node), (b, a_node)):
            consts = _consts(other_node)
            if isinstance(value_t, EntT) and consts is not None and any(
                    c is not None for c in consts):
                raise _err(node, f'"{value_t.label}" es un registro, no un valor: compara uno '
                                 f'de sus campos, p. ej. "{value_t.label}.nombre" o '
                                 f'"{value_t.label}.id"')
            if not isinstance(value_t, ValT) or consts is None:
                continue
            for const in consts:
                if const is None:
                    continue
                if value_t.options and value_t.kind == OPTION and isinstance(const, str) \
                        and const not in value_t.options:
                    raise _err(node, f'el valor "{const}" no es una opción de '
                                     f'{value_t.label}{suggest(const, value_t.options)} '
                                     f"(opciones: {one_of(value_t.options)})")
                if is_number_kind(value_t) and isinstance(const, str):
                    raise _err(node, f'{value_t.label} es un número: compáralo con un número, '
                                     f'sin comillas (no "{const}")')
                if value_t.kind == BOOL and not isinstance(const, bool):
                    raise _err(node, f"{value_t.label} es sí/no: compáralo con true o false")
                if is_time_kind(value_t) and isinstance(const, str | int | float) \
                        and not isinstance(const, bool):
                    raise _err(node, f"{value_t.label} es una fecha: compárala con hoy, ahora "
                                     "o con operaciones como hoy + dias(30)")
        del op

    def _And(self, node: nodes.And) -> tuple[Fn, T]:
        left, _ = self.build(node.left)
        right, _ = self.build(node.right)
        return (lambda ctx: left(ctx) and right(ctx)), ValT(BOOL, "y")

    def _Or(self, node: nodes.Or) -> tuple[Fn, T]:
        left, lt = self.build(node.left)
        right, rt = self.build(node.right)
        return (lambda ctx: left(ctx) or right(ctx)), (lt if lt == rt else ANY)

    def _Not(self, node: nodes.Not) -> tuple[Fn, T]:
        inner, _ = self.build(node.node)
        return (lambda ctx: not inner(ctx)), ValT(BOOL, "no")

    def _Neg(self, node: nodes.Neg) -> tuple[Fn, T]:
        inner, t = self.build(node.node)
        return (lambda ctx: (lambda v: None if v is None else -v)(inner(ctx))), t

    def _Pos(self, node: nodes.Pos) -> tuple[Fn, T]:
        return self.build(node.node)

    def _binary(self, node: nodes.BinExpr) -> tuple[Fn, T]:
        symbol, op = ARITH[type(node)]
        left, lt = self.build(node.left)
        right, rt = self.build(node.right)
        apply = _arith(symbol, op)
        if symbol == "*":
            def mul(ctx: dict[str, Any]) -> Any:
                a, b = left(ctx), right(ctx)
                if isinstance(a, str | list) or isinstance(b, str | list):
                    raise EvalError("no se pueden multiplicar textos o listas")
                return apply(a, b)

            return mul, ANY
        result_t: T = lt if (is_time_kind(lt) and symbol in "+-" and not is_time_kind(rt)) \
            else ANY
        return (lambda ctx: apply(left(ctx), right(ctx))), result_t

    _Add = _Sub = _Mul = _Div = _FloorDiv = _Mod = _binary

    def _Concat(self, node: nodes.Concat) -> tuple[Fn, T]:
        parts = [self.build(n)[0] for n in node.nodes]

        def concat(ctx: dict[str, Any]) -> str:
            text = "".join("" if (v := p(ctx)) is None else str(v) for p in parts)
            if len(text) > MAX_TEXT:
                raise EvalError("el texto resultante es demasiado largo")
            return text

        return concat, ValT(TEXT, "texto")

    def _CondExpr(self, node: nodes.CondExpr) -> tuple[Fn, T]:
        test, _ = self.build(node.test)
        yes, yt = self.build(node.expr1)
        no, nt = self.build(node.expr2) if node.expr2 is not None else ((lambda _c: None), yt)
        return (lambda ctx: yes(ctx) if test(ctx) else no(ctx)), (yt if yt == nt else ANY)

    # --- filters, tests and calls ---------------------------------------------------

    def _Filter(self, node: nodes.Filter) -> tuple[Fn, T]:
        if node.name not in FILTERS:
            raise _err(node, f'filtro desconocido "{node.name}"{suggest(node.name, FILTERS)}')
        spec = FILTERS[node.name]
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _err(node, f'el filtro "{node.name}" solo acepta argumentos por posición')
        if not spec.min_args <= len(node.args) <= spec.max_args:
            raise _err(node, f'el filtro "{node.name}" recibe entre {spec.min_args} y '
                             f"{spec.max_args} argumentos")
        if node.node is None:
            raise _err(node, f'el filtro "{node.name}" necesita un valor a su izquierda')
        value, value_t = self.build(node.node)
        args = [self.build(a)[0] for a in node.args]
        fn = spec.fn

        def apply(ctx: dict[str, Any]) -> Any:
            try:
                return fn(ctx[ENV_KEY], value(ctx), *[a(ctx) for a in args])
            except (TypeError, ValueError) as exc:
                raise EvalError(f'el filtro "{node.name}" falló: {exc}') from exc

        result_t = value_t if node.name == "default" else ValT(spec.kind, node.name)
        return apply, result_t

    def _Test(self, node: nodes.Test) -> tuple[Fn, T]:
        if node.name not in TESTS:
            raise _err(node, f'prueba desconocida "is {node.name}"{suggest(node.name, TESTS)}')
        value, _ = self.build(node.node)
        test = TESTS[node.name]
        args = [self.build(a)[0] for a in node.args]
        return (lambda ctx: test(value(ctx), *[a(ctx) for a in args])), ValT(BOOL, "prueba")

    def _Call(self, node: nodes.Call) -> tuple[Fn, T]:
        if not isinstance(node.node, nodes.Name):
            raise _err(node, "solo se pueden llamar las funciones de la guía, por su nombre")
        name = node.node.name
        if name not in FUNCTIONS:
            raise _err(node, f'función desconocida "{name}"{suggest(name, FUNCTIONS)}')
        spec = FUNCTIONS[name]
        if node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise _err(node, f'la función "{name}" solo acepta argumentos por posición')
        if not spec.min_args <= len(node.args) <= spec.max_args:
            expected = (str(spec.min_args) if spec.min_args == spec.max_args
                        else f"entre {spec.min_args} y {spec.max_args}")
            raise _err(node, f'la función "{name}" recibe {expected} argumentos, no '
                             f"{len(node.args)}")
        args = [self.build(a) for a in node.args]
        for _fn, arg_t in args:
            if isinstance(arg_t, EntT):
                raise _err(node, f'"{arg_t.label}" es un registro; pasa a "{name}" uno de sus '
                                 "campos")
        fns = [a[0] for a in args]
        impl = spec.fn

        def call(ctx: dict[str, Any]) -> Any:
            try:
                return impl(ctx[ENV_KEY], *[f(ctx) for f in fns])
            except EvalError:
                raise
            except (TypeError, ValueError, ArithmeticError) as exc:
                raise EvalError(f'la función "{name}" falló: {exc}') from exc

        return call, _function_type(name)


def _function_type(name: str) -> T:
    if name in ("dias", "horas"):
        return ValT("lapso", name)
    if name in ("sumar_horas_habiles",):
        return ValT(DATETIME, name)
    if name in ("sumar_dias_habiles",):
        return ANY
    if name in ("dias_hasta", "dias_desde", "horas_desde", "horas_habiles"):
        return ValT("número", name)
    if name in ("vacio", "contiene", "es_horario_habil"):
        return ValT(BOOL, name)
    return ANY


def _consts(node: nodes.Node) -> list[Any] | None:
    if isinstance(node, nodes.Const):
        return [node.value]
    if isinstance(node, nodes.List | nodes.Tuple) and all(
            isinstance(i, nodes.Const) for i in node.items):
        return [i.value for i in node.items if isinstance(i, nodes.Const)]
    return None


def run_env_ctx(env: Env, values: dict[str, Any]) -> dict[str, Any]:
    """A fresh evaluation context: the variables plus the environment."""
    ctx = dict(values)
    ctx[ENV_KEY] = env
    return ctx


__all__ = ["ANY", "AnyT", "Compiled", "EvalError", "ExprCompiler", "StaticError",
           "run_env_ctx", "timedelta"]
