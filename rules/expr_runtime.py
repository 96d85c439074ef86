"""What compiled expressions run with: the evaluation context's reserved keys, the error
of an expression on real data, and the forgiving operators (a missing value is ``None``;
ordering comparisons with ``None`` are false; arithmetic with ``None`` gives ``None``)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from jinja2 import nodes

Fn = Callable[[dict[str, Any]], Any]
ENV_KEY = "__env"
SEEN_KEY = "__seen"


class EvalError(Exception):
    """An expression failed on real data (e.g. adding a text to a number)."""


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
            raise EvalError(f"no se puede comparar {show(a)} con {show(b)}") from exc

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


def arith(symbol: str, op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """An arithmetic operator that gives None for a missing side and EvalError in Spanish."""
    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        try:
            return op(a, b)
        except ZeroDivisionError as exc:
            raise EvalError("división entre cero") from exc
        except TypeError as exc:
            raise EvalError(f"no se puede calcular {show(a)} {symbol} {show(b)}") from exc

    return apply


ARITH = {nodes.Add: ("+", operator.add), nodes.Sub: ("-", operator.sub),
         nodes.Mul: ("*", operator.mul), nodes.Div: ("/", operator.truediv),
         nodes.FloorDiv: ("//", operator.floordiv), nodes.Mod: ("%", operator.mod)}
# Longest text an expression may build (``"x" * 10**9`` must not eat the memory).
MAX_TEXT = 100_000


def show(value: Any) -> str:
    """A value as an error message shows it."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict) and "_entity" in value:
        return f"{value['_entity']} #{value.get('id')}"
    return repr(value)


def getter(root: str, keys: tuple[str, ...]) -> Fn:
    """A fast reader of ``root.k1.k2…`` that gives None past a missing level."""
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
