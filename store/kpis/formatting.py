"""KPI figures as a person reads them, in Mexico's number format (``1,234.5``): the
terminal, the status page and the reports all print with these."""

from __future__ import annotations

from store.kpis.config import KpiDef

EMPTY = "—"
# Decimals per unit: a percentage or hours with one, a 1–5 mean with two, counts with none.
DECIMALS = {"%": 1, "h": 1, "puntos": 1, "de 5": 2, "tickets/cuenta": 2,
            "cuentas ponderadas": 1}


def number(value: float | None, decimals: int = 1) -> str:
    """``1234.5`` -> ``1,234.5``; None -> «—»."""
    if value is None:
        return EMPTY
    text = f"{value:,.{decimals}f}"
    return text.replace("-", "−") if text.startswith("-") else text


def figure(value: float | None, unit: str) -> str:
    """A KPI value with its unit: ``85.7 %``, ``1.8 h``, ``4.43 de 5``, ``+33.3`` (NPS)."""
    if value is None:
        return EMPTY
    decimals = DECIMALS.get(unit, 0 if float(value).is_integer() else 1)
    text = number(value, decimals)
    if unit == "%":
        return f"{text} %"
    if unit == "h":
        return f"{text} h"
    if unit == "puntos":
        return f"+{text}" if value > 0 else text
    if unit in ("de 5", "tickets/cuenta", "cuentas ponderadas"):
        return f"{text} {unit}" if unit == "de 5" else text
    return text


def target(definition: KpiDef) -> str:
    """``≥ 90 %``, ``≤ 2 h``; «—» without a target."""
    if definition.meta is None:
        return EMPTY
    sign = "≥" if definition.sentido == ">=" else "≤"
    return f"{sign} {figure(definition.meta, definition.unidad)}"


def met(value: bool | None) -> str:
    return EMPTY if value is None else ("sí" if value else "no")
