"""M5's choice of an account manager for a client, as a pure function (table-tested in
tests/test_automations_assignment.py): the AMs of the client's region with room for it
(weighted load + the client's weight <= capacity), the lowest weighted load first, ties to
the one assigned least recently, then by key. The reasons are Spanish lines an admin reads
in the trace, the Podio comment and the COO's escalation."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# A segment missing from the rule's weights (or a client without segment) weighs this.
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class AmState:
    """One AM as the choice sees it: where, how much room, how loaded, when last chosen.

    ``last_assigned`` orders the AMs' latest automatic assignments (bigger = more recent;
    None = never). The reasons name no time: the same choice reads the same whether it
    was made in one cycle with other assignments or in a cycle of its own."""

    key: str
    name: str
    region: str | None
    capacity: float | None
    load: float
    last_assigned: int | None = None


@dataclass(frozen=True)
class Choice:
    """The chosen AM's key (None: nobody has room) and why, line by line."""

    am: str | None
    weight: float
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reasons as one Spanish text."""
        return "\n".join(self.reasons)


def weight_of(segment: str | None, weights: Mapping[str, float] | None) -> float:
    """How much a client of ``segment`` loads its AM (TOP more than Estándar)."""
    table = {str(k): float(v) for k, v in (weights or {}).items()}
    return table.get(segment or "", DEFAULT_WEIGHT)


def weighted_loads(accounts: Iterable[tuple[str, str | None]],
                   weights: Mapping[str, float] | None) -> dict[str, float]:
    """AM key -> the sum of the weights of its accounts ((am key, segment) pairs)."""
    loads: dict[str, float] = {}
    for am, segment in accounts:
        loads[am] = loads.get(am, 0.0) + weight_of(segment, weights)
    return loads


def choose_am(segment: str | None, region: str | None, ams: Iterable[AmState],
              weights: Mapping[str, float] | None) -> Choice:
    """The AM for a client of ``segment`` in ``region``, with the reasons."""
    weight = weight_of(segment, weights)
    reasons = [f"Cliente {segment or 'sin segmento'} (pesa {number(weight)}), "
               f"región {region or '(sin región)'}."]
    local = sorted((a for a in ams if region and same_region(a.region, region)),
                   key=lambda a: a.key)
    if not local:
        reasons.append(f"No hay AM activo en la región {region or '(sin región)'}.")
        return Choice(None, weight, tuple(reasons))
    reasons += [_describe(a, weight) for a in local]
    room = [a for a in local if has_room(a, weight)]
    if not room:
        reasons.append("Ningún AM de la región tiene capacidad para esta cuenta: se escala "
                       "a la COO en lugar de sobrecargar a alguien.")
        return Choice(None, weight, tuple(reasons))
    chosen = min(room, key=_order)
    reasons.append(f"Elegido: {chosen.name}. {_why(chosen, room)}")
    return Choice(chosen.key, weight, tuple(reasons))


def has_room(am: AmState, weight: float) -> bool:
    """Whether the AM can take an account of ``weight`` without passing its capacity."""
    return am.capacity is not None and am.load + weight <= am.capacity


def same_region(a: str | None, b: str | None) -> bool:
    """Regions compare without case or accents («Bajio» is «Bajío»)."""
    return a is not None and b is not None and _fold(a) == _fold(b)


def number(value: float) -> str:
    """12.0 -> '12', 1.5 -> '1.5'."""
    return f"{value:g}"


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.strip())
    return "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()


def _order(am: AmState) -> tuple[float, int, str]:
    # Lowest load; on a tie, whoever got an account least recently (never = first).
    return am.load, -1 if am.last_assigned is None else am.last_assigned, am.key


def _describe(am: AmState, weight: float) -> str:
    if am.capacity is None:
        room = "sin capacidad definida en config/staff.yaml: no recibe cuentas"
    elif has_room(am, weight):
        room = f"con esta cuenta quedaría en {number(am.load + weight)}"
    else:
        room = "no le cabe esta cuenta"
    capacity = "—" if am.capacity is None else number(am.capacity)
    given = "no" if am.last_assigned is None else "sí"
    return (f"- {am.name}: carga {number(am.load)} de {capacity} ({room}); ha recibido "
            f"cuentas de saeko-sync: {given}.")


def _why(chosen: AmState, room: list[AmState]) -> str:
    others = [a for a in room if a is not chosen]
    if not others:
        return "Es el único AM de la región con capacidad."
    tied = [a for a in others if a.load == chosen.load]
    if not tied:
        return f"Tiene la menor carga ({number(chosen.load)})."
    if all(a.last_assigned == chosen.last_assigned for a in tied):
        return (f"Empate en carga ({number(chosen.load)}) con "
                f"{', '.join(a.name for a in tied)}; se decide por orden de clave.")
    return (f"Empate en carga ({number(chosen.load)}) con "
            f"{', '.join(a.name for a in tied)}: es quien recibió una cuenta hace más "
            "tiempo.")
