"""A1 notation (reference §3.8): parse ranges into zero-based grid bounds and format them.

Accepted: ``Tab!A1:B2``, ``Tab!A:A``, ``Tab!1:2``, ``Tab!A5:A``, ``Tab`` (whole tab), ``A1:B2``
without a tab (first visible tab), quoted names ``'Client notes'!A:C`` with ``''`` for a quote.
Named ranges and R1C1 are not emulated (they answer "Unable to parse range").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.google.errors import bad_request

MAX_COLUMNS = 18_278  # column ZZZ (reference §3.9)
_CELL = re.compile(r"^([A-Za-z]{1,3})?(\d+)?$")
_PLAIN_TITLE = re.compile(r"^[\w.]+$", re.UNICODE)


@dataclass(frozen=True)
class A1Range:
    """A parsed range: tab title (None = first visible tab) and bounds (end exclusive; None =
    open-ended, i.e. to the edge of the grid)."""

    title: str | None
    row0: int = 0
    row1: int | None = None
    col0: int = 0
    col1: int | None = None
    single_cell: bool = False


def column_index(letters: str) -> int:
    """'A' -> 0, 'Z' -> 25, 'AA' -> 26."""
    index = 0
    for char in letters.upper():
        index = index * 26 + (ord(char) - 64)
    return index - 1


def column_letters(index: int) -> str:
    """0 -> 'A', 26 -> 'AA'."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def quote_title(title: str) -> str:
    """Quote a tab title only when needed, the way Google echoes ranges."""
    if _PLAIN_TITLE.match(title) and not _CELL.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def format_range(title: str, row0: int, row1: int, col0: int, col1: int) -> str:
    """Bounds (end exclusive) -> ``Tab!A1:B2``."""
    start = f"{column_letters(col0)}{row0 + 1}"
    end = f"{column_letters(col1 - 1)}{row1}"
    ref = start if (row1 - row0, col1 - col0) == (1, 1) else f"{start}:{end}"
    return f"{quote_title(title)}!{ref}"


def _split_title(text: str) -> tuple[str | None, str | None]:
    """'Tab!A1' -> ('Tab', 'A1'); "'A b'" -> ('A b', None); 'A1:B2' -> (None, 'A1:B2')."""
    if text.startswith("'"):
        end, i = None, 1
        while i < len(text):
            if text[i] == "'":
                if i + 1 < len(text) and text[i + 1] == "'":
                    i += 2
                    continue
                end = i
                break
            i += 1
        if end is None:
            raise bad_request(f"Unable to parse range: {text}")
        title = text[1:end].replace("''", "'")
        rest = text[end + 1:]
        if rest == "":
            return title, None
        if not rest.startswith("!"):
            raise bad_request(f"Unable to parse range: {text}")
        return title, rest[1:]
    if "!" in text:
        title, ref = text.rsplit("!", 1)
        if not _PLAIN_TITLE.match(title):
            raise bad_request(f"Unable to parse range: {text}")
        return title, ref
    return None, text


def _parse_ref(ref: str, original: str) -> tuple[int, int | None, int, int | None, bool]:
    parts = ref.split(":")
    if len(parts) > 2 or not all(parts):
        raise bad_request(f"Unable to parse range: {original}")
    cells = []
    for part in parts:
        match = _CELL.match(part)
        if not match or not (match.group(1) or match.group(2)):
            raise bad_request(f"Unable to parse range: {original}")
        col = column_index(match.group(1)) if match.group(1) else None
        row = int(match.group(2)) - 1 if match.group(2) else None
        if row is not None and row < 0 or col is not None and col >= MAX_COLUMNS:
            raise bad_request(f"Unable to parse range: {original}")
        cells.append((row, col))
    if len(cells) == 1:
        row, col = cells[0]
        if row is None or col is None:
            raise bad_request(f"Unable to parse range: {original}")
        return row, row + 1, col, col + 1, True
    (r0, c0), (r1, c1) = cells
    shape = (r0 is not None, c0 is not None, r1 is not None, c1 is not None)
    allowed = {(True, True, True, True), (False, True, False, True),
               (True, False, True, False), (True, True, False, True)}
    if shape not in allowed:
        raise bad_request(f"Unable to parse range: {original}")
    row0, row_end = 0, None
    if r0 is not None:
        row0 = min(r0, r1) if r1 is not None else r0
        row_end = max(r0, r1) + 1 if r1 is not None else None
    col0, col_end = 0, None
    if c0 is not None and c1 is not None:
        col0, col_end = min(c0, c1), max(c0, c1) + 1
    return row0, row_end, col0, col_end, False


def parse_a1(text: str) -> A1Range:
    """Parse one A1 range; a Google-shaped 400 when it cannot be parsed."""
    text = text.strip()
    if not text:
        raise bad_request("Unable to parse range: ")
    title, ref = _split_title(text)
    if ref is None:
        return A1Range(title=title)
    if title is None:
        try:
            row0, row1, col0, col1, single = _parse_ref(ref, text)
        except Exception:  # not a reference: a bare tab title
            if not _PLAIN_TITLE.match(ref):
                raise
            return A1Range(title=ref)
        return A1Range(None, row0, row1, col0, col1, single)
    row0, row1, col0, col1, single = _parse_ref(ref, text)
    return A1Range(title, row0, row1, col0, col1, single)
