"""Spreadsheets and their tabs: grid bookkeeping (reference §3.2–3.9)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from sandbox.google.a1 import A1Range, format_range, parse_a1, quote_title
from sandbox.google.cells import KEEP, Cell, extended_value, formatted, render
from sandbox.google.errors import GoogleApiError, bad_request

DEFAULT_ROWS, DEFAULT_COLUMNS = 1000, 26  # a new tab's grid (§3.2)
MAX_CELLS = 10_000_000  # per spreadsheet, every tab's rowCount x columnCount (§3.9)
MAX_TABS = 200  # [C] community consensus (§3.9)


@dataclass
class Sheet:
    """One tab: grid properties and the sparse cells (row -> column -> Cell)."""

    sheet_id: int
    title: str
    index: int
    rows: int = DEFAULT_ROWS
    cols: int = DEFAULT_COLUMNS
    frozen_rows: int = 0
    hidden: bool = False
    cells: dict[int, dict[int, Cell]] = field(default_factory=dict)

    def properties(self) -> dict[str, Any]:
        grid: dict[str, Any] = {"rowCount": self.rows, "columnCount": self.cols}
        if self.frozen_rows:
            grid["frozenRowCount"] = self.frozen_rows
        props: dict[str, Any] = {"sheetId": self.sheet_id, "title": self.title,
                                 "index": self.index, "sheetType": "GRID",
                                 "gridProperties": grid}
        if self.hidden:
            props["hidden"] = True
        return props

    def bounded(self, rng: A1Range, original: str) -> tuple[int, int, int, int]:
        """Bounds of a range on this grid (open ends stop at the grid's edge)."""
        row1 = self.rows if rng.row1 is None else rng.row1
        col1 = self.cols if rng.col1 is None else rng.col1
        if row1 > self.rows or col1 > self.cols or rng.row0 >= self.rows \
                or rng.col0 >= self.cols:
            raise bad_request(f"Range ({quote_title(self.title)}!{original.split('!')[-1]}) "
                              f"exceeds grid limits. Max rows: {self.rows}, max columns: "
                              f"{self.cols}")
        return rng.row0, row1, rng.col0, col1

    def read(self, row0: int, row1: int, col0: int, col1: int) -> list[list[Cell | None]]:
        """Cells of a block, trailing empty rows and cells dropped."""
        out: list[list[Cell | None]] = []
        for r in range(row0, min(row1, self.last_row())):
            row = self.cells.get(r, {})
            values = [row.get(c) for c in range(col0, col1)]
            while values and values[-1] is None:
                values.pop()
            out.append(values)
        while out and not out[-1]:
            out.pop()
        return out

    def last_row(self, col0: int = 0, col1: int | None = None) -> int:
        """1 + the last row index holding a value within the columns (0 when empty)."""
        rows = [r for r, row in self.cells.items()
                if any(col0 <= c < (col1 if col1 is not None else self.cols) for c in row)]
        return max(rows) + 1 if rows else 0

    def write(self, row0: int, col0: int, matrix: list[list[Cell | None | object]]) -> None:
        for i, values in enumerate(matrix):
            for j, cell in enumerate(values):
                if cell is KEEP:
                    continue
                row = self.cells.setdefault(row0 + i, {})
                if cell is None:
                    row.pop(col0 + j, None)
                else:
                    row[col0 + j] = cell  # type: ignore[assignment]
                if not row:
                    self.cells.pop(row0 + i, None)

    def clear(self, row0: int, row1: int, col0: int, col1: int) -> None:
        for r in [r for r in self.cells if row0 <= r < row1]:
            row = self.cells[r]
            for c in [c for c in row if col0 <= c < col1]:
                del row[c]
            if not row:
                del self.cells[r]

    def insert_rows(self, at: int, count: int) -> None:
        self.cells = {(r + count if r >= at else r): row for r, row in self.cells.items()}
        self.rows += count

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.cells = {r: {c: v for c, v in row.items() if c < cols}
                      for r, row in self.cells.items() if r < rows}
        self.cells = {r: row for r, row in self.cells.items() if row}

    def grid_data(self) -> dict[str, Any]:
        rows = []
        for values in self.read(0, self.rows, 0, self.cols):
            rows.append({"values": [
                {} if cell is None else {"userEnteredValue": {"formulaValue": cell.formula}
                                         if cell.formula else extended_value(cell),
                                         "effectiveValue": extended_value(cell),
                                         "formattedValue": formatted(cell)}
                for cell in values]})
        return {"startRow": 0, "startColumn": 0, "rowData": rows}


@dataclass
class Spreadsheet:
    """A spreadsheet: properties, tabs and who may open it."""

    spreadsheet_id: str
    title: str
    sheets: list[Sheet]
    editors: set[str]
    locale: str = "es_MX"
    time_zone: str = "America/Tijuana"
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def metadata(self, include_grid: bool = False,
                 only: set[int] | None = None) -> dict[str, Any]:
        sheets = []
        for sheet in sorted(self.sheets, key=lambda s: s.index):
            if only is not None and sheet.sheet_id not in only:
                continue
            entry: dict[str, Any] = {"properties": sheet.properties()}
            if include_grid:
                entry["data"] = [sheet.grid_data()]
            sheets.append(entry)
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {"title": self.title, "locale": self.locale,
                           "autoRecalc": "ON_CHANGE", "timeZone": self.time_zone,
                           "defaultFormat": {"verticalAlignment": "BOTTOM",
                                             "wrapStrategy": "OVERFLOW_CELL"}},
            "sheets": sheets,
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
        }

    def sheet_by_title(self, title: str | None, original: str) -> Sheet:
        if title is None:
            visible = [s for s in sorted(self.sheets, key=lambda s: s.index) if not s.hidden]
            if visible:
                return visible[0]
        for sheet in self.sheets:
            if title is not None and sheet.title.casefold() == title.casefold():
                return sheet
        raise bad_request(f"Unable to parse range: {original}")

    def locate(self, text: str) -> tuple[Sheet, A1Range]:
        rng = parse_a1(text)
        return self.sheet_by_title(rng.title, text), rng

    def cell_count(self) -> int:
        return sum(s.rows * s.cols for s in self.sheets)

    def check_cells(self) -> None:
        if self.cell_count() > MAX_CELLS:
            self.check_cells_limit()

    @staticmethod
    def check_cells_limit() -> None:
        """Raise the 10 M-cell error."""
        raise bad_request("This action would increase the number of cells in the workbook "
                              f"above the limit of {MAX_CELLS} cells.")

    def copy(self) -> Spreadsheet:
        """A draft for an atomic batch: tabs copied, cell maps shared (``resize`` and
        ``insert_rows`` rebind them instead of mutating)."""
        return dataclasses.replace(self, sheets=[dataclasses.replace(s) for s in self.sheets],
                                   editors=set(self.editors))

    def new_sheet_id(self) -> int:
        used = {s.sheet_id for s in self.sheets}
        for _ in range(1000):
            candidate = self.rng.randrange(1, 2**31 - 1)
            if candidate not in used:
                return candidate
        raise GoogleApiError(500)


def value_range(sheet: Sheet, bounds: tuple[int, int, int, int], major: str,
                value_option: str, datetime_option: str) -> dict[str, Any]:
    """A ValueRange for a block; ``values`` absent when the block is empty (§3.3)."""
    row0, row1, col0, col1 = bounds
    cells = sheet.read(row0, row1, col0, col1)
    values: list[list[Any]] = [
        ["" if c is None else render(c, value_option, datetime_option) for c in row]
        for row in cells]
    if major == "COLUMNS" and values:
        width = max(len(r) for r in values)
        padded = [r + [""] * (width - len(r)) for r in values]
        values = [list(col) for col in zip(*padded, strict=True)]
        for col in values:
            while col and col[-1] == "":
                col.pop()
    body: dict[str, Any] = {"range": format_range(sheet.title, row0, row1, col0, col1),
                            "majorDimension": major}
    if values:
        body["values"] = values
    return body
