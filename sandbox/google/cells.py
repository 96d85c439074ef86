"""Cell values: how Sheets stores what it is sent (valueInputOption) and renders it back
(valueRenderOption / dateTimeRenderOption), reference §3.3–3.4.

Simplifications (documented in docs/sandbox.md): formulas are stored and echoed, not
calculated; USER_ENTERED understands numbers (with thousands separators, percents),
TRUE/FALSE, ISO dates and date-times and d/m/yyyy dates (the es_MX locale of the seeded
spreadsheets); number formats are General, Date, Date-time, Percent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sandbox.google.errors import bad_request

SERIAL_EPOCH = datetime(1899, 12, 30)  # Sheets day 0 (2025-01-06 = 45663), §3.3
KEEP = object()  # JSON null in values: leave the cell unchanged (§3.4)
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+-]?\d+)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_ISO_DATETIME = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DMY_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


@dataclass(slots=True)
class Cell:
    """One stored cell: its effective value, the formula if any, and a number format."""

    value: str | int | float | bool
    formula: str | None = None
    fmt: str | None = None  # None (General) | DATE | DATE_TIME | PERCENT | TEXT


def to_serial(moment: date | datetime) -> int | float:
    """A date or date-time as a Sheets serial number."""
    if not isinstance(moment, datetime):
        return (moment - SERIAL_EPOCH.date()).days
    delta = moment - SERIAL_EPOCH
    return round(delta.days + delta.seconds / 86400, 10)


def from_serial(serial: float) -> datetime:
    return SERIAL_EPOCH + timedelta(days=serial)


def _number(value: int | float) -> int | float:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _parse_user_entered(text: str) -> Cell:
    if text.startswith("'"):
        return Cell(text[1:], fmt="TEXT")
    if text.startswith("=") and len(text) > 1:
        return Cell(text, formula=text)
    stripped = text.strip()
    if stripped.upper() in ("TRUE", "FALSE"):
        return Cell(stripped.upper() == "TRUE")
    plain = stripped.replace("$", "", 1) if stripped.startswith(("$", "-$")) else stripped
    percent = plain.endswith("%")
    plain = plain[:-1].strip() if percent else plain
    if plain and _NUMBER.match(plain) and any(ch.isdigit() for ch in plain):
        number = float(plain.replace(",", ""))
        return Cell(_number(number / 100 if percent else number),
                    fmt="PERCENT" if percent else None)
    try:
        if match := _ISO_DATETIME.match(stripped):
            y, m, d, hh, mm, ss = (int(g or 0) for g in match.groups())
            return Cell(to_serial(datetime(y, m, d, hh, mm, ss)), fmt="DATE_TIME")
        if match := _ISO_DATE.match(stripped):
            y, m, d = (int(g) for g in match.groups())
            return Cell(to_serial(date(y, m, d)), fmt="DATE")
        if match := _DMY_DATE.match(stripped):
            d, m, y = (int(g) for g in match.groups())
            return Cell(to_serial(date(y, m, d)), fmt="DATE")
    except ValueError:
        pass  # not a real date (e.g. 2025-02-30): Sheets keeps it as text
    return Cell(text)


def parse_input(value: Any, option: str, where: str) -> Cell | None | object:
    """A JSON value from a request -> Cell, None (clear the cell) or KEEP (leave it)."""
    if value is None:
        return KEEP
    if isinstance(value, bool):
        return Cell(value)
    if isinstance(value, int | float):
        return Cell(_number(value))
    if isinstance(value, str):
        if value == "":
            return None
        return Cell(value) if option == "RAW" else _parse_user_entered(value)
    kind = "list_value" if isinstance(value, list) else "struct_value"
    raise bad_request(f"Invalid values[{where}]: {kind} {{...}}")


def _general(number: int | float) -> str:
    if isinstance(number, int) or float(number).is_integer():
        return str(int(number))
    return f"{number:.10f}".rstrip("0").rstrip(".")


def formatted(cell: Cell) -> str:
    """What the cell shows (FORMATTED_VALUE)."""
    value = cell.value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    if cell.fmt == "DATE":
        return from_serial(value).strftime("%Y-%m-%d")
    if cell.fmt == "DATE_TIME":
        return from_serial(value).strftime("%Y-%m-%d %H:%M:%S")
    if cell.fmt == "PERCENT":
        return _general(round(value * 100, 10)) + "%"
    return _general(value)


def render(cell: Cell, value_option: str, datetime_option: str) -> Any:
    """A stored cell as values.get returns it."""
    if value_option == "FORMATTED_VALUE":
        return formatted(cell)
    if value_option == "FORMULA" and cell.formula:
        return cell.formula
    if cell.fmt in ("DATE", "DATE_TIME") and datetime_option == "FORMATTED_STRING":
        return formatted(cell)
    return cell.value


def extended_value(cell: Cell) -> dict[str, Any]:
    """ExtendedValue JSON (GridData of spreadsheets.get with includeGridData)."""
    value = cell.value
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"numberValue": value}


VALUE_INPUT_OPTIONS = ("RAW", "USER_ENTERED")
VALUE_RENDER_OPTIONS = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")
DATETIME_RENDER_OPTIONS = ("SERIAL_NUMBER", "FORMATTED_STRING")
