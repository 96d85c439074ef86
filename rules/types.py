"""Static types of expression values, so mistakes are caught when a rule is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.catalog import BOOL, DATE, DATETIME, ENTITIES, INTEGER, NUMBER, TEXT
from rules.problems import suggest


class T:
    """Base of static types."""


@dataclass(frozen=True)
class AnyT(T):
    """Unknown at load time: checked when it runs."""


@dataclass(frozen=True)
class EntT(T):
    """A record of an entity (``ticket``, ``ticket.cliente``)."""

    entity: str
    label: str


@dataclass(frozen=True)
class ValT(T):
    """A plain value, with its kind (texto, número, fecha…) and options when it has them."""

    kind: str | None
    label: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class MapT(T):
    """A mapping with known keys (``datos``, ``disparador``, ``acciones``)."""

    label: str
    keys: dict[str, T] = field(default_factory=dict, hash=False, compare=False)
    open: bool = False  # keys unknown at load time


ANY = AnyT()


class StaticError(Exception):
    """A mistake found before running; ``lineno`` is relative to the expression."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.lineno = lineno


def member(base: T, name: str) -> T:
    """The type of ``base.name``, or StaticError naming the fix."""
    if isinstance(base, AnyT):
        return ANY
    if isinstance(base, EntT):
        entity = ENTITIES[base.entity]
        label = f"{base.label}.{name}"
        if name in entity.fields:
            f = entity.fields[name]
            return ValT(f.kind, label, f.options)
        if name in entity.relations:
            return EntT(entity.relations[name].target, label)
        raise StaticError(f'el campo "{name}" no existe en {entity.plural}'
                          f"{suggest(name, entity.member_names())}")
    if isinstance(base, MapT):
        if name in base.keys:
            return base.keys[name]
        if base.open:
            return ANY
        known = ", ".join(f'"{k}"' for k in base.keys) or "ninguna"
        raise StaticError(f'"{base.label}" no tiene "{name}"{suggest(name, base.keys)} '
                          f"(tiene: {known})")
    if isinstance(base, ValT):
        raise StaticError(f'"{base.label}" es un valor ({base.kind or "simple"}), no tiene '
                          f'campos: quita ".{name}"')
    return ANY


def of_literal(value: Any, label: str) -> T:
    """Static type of a constant from the rule file (``datos``)."""
    if isinstance(value, dict):
        return MapT(label, {str(k): of_literal(v, f"{label}.{k}") for k, v in value.items()})
    if isinstance(value, bool):
        return ValT(BOOL, label)
    if isinstance(value, int):
        return ValT(INTEGER, label)
    if isinstance(value, float):
        return ValT(NUMBER, label)
    if isinstance(value, str):
        return ValT(TEXT, label)
    if isinstance(value, list):
        return ValT("lista", label)
    return ValT(None, label)


def is_time_kind(t: T) -> bool:
    return isinstance(t, ValT) and t.kind in (DATE, DATETIME)


def is_number_kind(t: T) -> bool:
    return isinstance(t, ValT) and t.kind in (NUMBER, INTEGER)
