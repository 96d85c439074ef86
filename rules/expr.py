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

from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.parser import Parser

from rules.expr_builder import Builder
from rules.expr_runtime import ENV_KEY, SEEN_KEY, EvalError, Fn
from rules.functions import Env
from rules.templates import environment, jinja_message
from rules.types import StaticError, T


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
        fast, static = Builder(self.scope, tracing=False, paths=paths).build(tree)
        traced, _ = Builder(self.scope, tracing=True, paths=[]).build(tree)
        return Compiled(source.strip(), fast, traced, static, tuple(paths))

    def compile_node(self, tree: nodes.Expr) -> Compiled:
        """Compile an already parsed node (used for ``{{ expr }}`` values)."""
        paths: list[tuple[str, ...]] = []
        fast, static = Builder(self.scope, tracing=False, paths=paths).build(tree)
        traced, _ = Builder(self.scope, tracing=True, paths=[]).build(tree)
        return Compiled("", fast, traced, static, tuple(paths))


def run_env_ctx(env: Env, values: dict[str, Any]) -> dict[str, Any]:
    """A fresh evaluation context: the variables plus the environment."""
    ctx = dict(values)
    ctx[ENV_KEY] = env
    return ctx


__all__ = ["ENV_KEY", "Compiled", "EvalError", "ExprCompiler", "StaticError", "parse",
           "run_env_ctx"]
