"""Which relation chains a rule reads (``("cliente", "am")``): what bulk loading fetches
for it, from its compiled expressions and (one level, plus named chains) its templates."""

from __future__ import annotations

import re
from typing import Any

from rules.expr import Compiled
from rules.spec import Rule
from rules.templates import Template
from rules.values import Arg


def relation_paths(rule: Rule) -> set[tuple[str, ...]]:
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
