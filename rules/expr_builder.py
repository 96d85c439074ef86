"""The expression compiler's core: one parsed Jinja node tree turned into a closure over a
whitelist of node kinds, with its static type checked against the scope (``rules.expr``
is the entry point)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from jinja2 import nodes

from rules.catalog import BOOL, DATETIME, OPTION, TEXT
from rules.expr_runtime import (
    ARITH,
    COMPARE_OPS,
    ENV_KEY,
    MAX_TEXT,
    SEEN_KEY,
    EvalError,
    Fn,
    arith,
    getter,
)
from rules.functions import FUNCTIONS
from rules.problems import one_of, suggest
from rules.templates import FILTERS, TESTS
from rules.types import (
    ANY,
    EntT,
    MapT,
    StaticError,
    T,
    ValT,
    is_number_kind,
    is_time_kind,
    member,
)

# How the functions (rules/functions.py) annotate a parameter that takes a number.
NUMBER_ANNOTATIONS = frozenset({"int", "float", "int | float", "float | int", "Decimal"})


def _param_types(fn: Callable[..., Any]) -> list[str]:
    """The annotations (as text) of a function's admin parameters (after ``env``)."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [p.annotation if isinstance(p.annotation, str) else getattr(
        p.annotation, "__name__", str(p.annotation)) for p in params]


def _err(node: nodes.Node, message: str) -> StaticError:
    return StaticError(message, getattr(node, "lineno", 1) or 1)


class Builder:
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
        fn = getter(root, keys)
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
        apply = arith(symbol, op)
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
        wanted_types = _param_types(spec.fn)[:len(node.args)]
        for position, (arg, wanted) in enumerate(zip(node.args, wanted_types, strict=False), 1):
            if (wanted in NUMBER_ANNOTATIONS and isinstance(arg, nodes.Const)
                    and (isinstance(arg.value, bool)
                         or not isinstance(arg.value, int | float))):
                shown = f"«{arg.value}»" if isinstance(arg.value, str) else repr(arg.value)
                raise _err(node, f'el argumento {position} de "{name}" debe ser un número, no '
                                 f"{shown}")
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
