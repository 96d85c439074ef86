"""Numbers, money, percentages and dates as a reader in Mexico expects them (``1,234.5``,
``$ 12,345.00 MXN``, ``95.3 %``, «7 de diciembre de 2026»): the reports' HTML, PDF and
email text print only through these, so no raw Python value (None, True, a dict) reaches a
reader. KPI figures use ``store.kpis.formatting`` (the same as the terminal and M3)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from store.kpis import formatting

EMPTY = formatting.EMPTY
MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre")


def number(value: float | Decimal | None, decimals: int = 1) -> str:
    """``1234.5`` -> ``1,234.5``; empty -> «—»."""
    return formatting.number(None if value is None else float(value), decimals)


def money(value: float | Decimal | None, currency: str | None = "MXN") -> str:
    """``12345`` -> ``$ 12,345.00 MXN``."""
    if value is None:
        return EMPTY
    text = f"$ {formatting.number(float(value), 2)}"
    return f"{text} {currency}" if currency else text


def percent(value: float | None, decimals: int = 1) -> str:
    """``95.25`` (already a percentage) -> ``95.3 %``."""
    return EMPTY if value is None else f"{formatting.number(value, decimals)} %"


def rate(value: float | Decimal) -> str:
    """A rate as a fraction (``0.05``) -> ``5 %`` (``2.5 %`` when it has decimals)."""
    pct = float(value) * 100
    return f"{formatting.number(pct, 0 if pct.is_integer() else 1)} %"


def day(value: date | datetime | None) -> str:
    """«7 de diciembre de 2026»."""
    if value is None:
        return EMPTY
    return f"{value.day} de {MONTHS[value.month - 1]} de {value.year}"


def short_day(value: date | None) -> str:
    """``07/12/2026`` (tables)."""
    return EMPTY if value is None else value.strftime("%d/%m/%Y")


def month(value: date) -> str:
    """«noviembre de 2026»."""
    return f"{MONTHS[value.month - 1]} de {value.year}"


def span(start: date, end: date) -> str:
    """«del 23 al 29 de noviembre de 2026», «del 30 de noviembre al 6 de diciembre de 2026»."""
    if start.year != end.year:
        return f"del {day(start)} al {day(end)}"
    if start.month != end.month:
        return f"del {start.day} de {MONTHS[start.month - 1]} al {day(end)}"
    return f"del {start.day} al {day(end)}"


def text(value: Any) -> str:
    """Any cell as text: empty -> «—», booleans as sí/no, numbers in Mexico's format."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "sí" if value else "no"
    if isinstance(value, int):
        return formatting.number(value, 0)
    if isinstance(value, float | Decimal):
        return number(value, 2)
    if isinstance(value, datetime | date):
        return short_day(value if isinstance(value, date) else value.date())
    return str(value)
