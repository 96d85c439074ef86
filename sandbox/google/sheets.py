"""Sheets API v4: spreadsheets.get / batchUpdate and spreadsheets.values.* (reference §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.google.a1 import A1Range, column_letters, format_range
from sandbox.google.cells import (
    DATETIME_RENDER_OPTIONS,
    VALUE_INPUT_OPTIONS,
    VALUE_RENDER_OPTIONS,
    parse_input,
)
from sandbox.google.dispatch import Call, Router, discovery_schema_names
from sandbox.google.errors import GoogleApiError, bad_request, not_found
from sandbox.google.sheets_model import (
    DEFAULT_COLUMNS,
    DEFAULT_ROWS,
    MAX_CELLS,
    MAX_TABS,
    Sheet,
    Spreadsheet,
    value_range,
)

API = "sheets"
READ, WRITE = ("sheets_read", 1), ("sheets_write", 1)  # a batch counts once (§3.9)
# batchUpdate request kinds the sandbox applies; the others are valid but not emulated.
EMULATED_REQUESTS = ("addSheet", "deleteSheet", "updateSheetProperties",
                     "updateSpreadsheetProperties", "appendDimension")


class SheetsApi:
    """The spreadsheets the sandbox holds and the handlers that serve them."""

    def __init__(self) -> None:
        self.spreadsheets: dict[str, Spreadsheet] = {}

    def register(self, router: Router) -> None:
        base = "sheets.spreadsheets."
        router.add(API, base + "get", self.get, READ)
        router.add(API, base + "batchUpdate", self.batch_update, WRITE)
        router.add(API, base + "values.get", self.values_get, READ)
        router.add(API, base + "values.batchGet", self.values_batch_get, READ)
        router.add(API, base + "values.update", self.values_update, WRITE)
        router.add(API, base + "values.append", self.values_append, WRITE)
        router.add(API, base + "values.clear", self.values_clear, WRITE)
        router.add(API, base + "values.batchUpdate", self.values_batch_update, WRITE)
        router.add(API, base + "values.batchClear", self.values_batch_clear, WRITE)

    # --- helpers -------------------------------------------------------------------

    def open(self, call: Call) -> Spreadsheet:
        book = self.spreadsheets.get(call.params["spreadsheetId"])
        if book is None:
            raise not_found()
        if not ({call.principal.user, call.principal.client_email} & book.editors):
            raise GoogleApiError(403, "The caller does not have permission")
        return book

    @staticmethod
    def _option(value: str | None, allowed: tuple[str, ...], name: str, default: str) -> str:
        if value is None or value == "":
            return default
        if value not in allowed:
            raise bad_request(f"Invalid value at '{name}' (type.googleapis.com/google.apps."
                              f"sheets.v4.{name}), \"{value}\"")
        return value

    def _render_options(self, call: Call) -> tuple[str, str, str]:
        major = self._option(call.arg("majorDimension"), ("ROWS", "COLUMNS"), "majorDimension",
                             "ROWS")
        value = self._option(call.arg("valueRenderOption"), VALUE_RENDER_OPTIONS,
                             "valueRenderOption", "FORMATTED_VALUE")
        dt = self._option(call.arg("dateTimeRenderOption"), DATETIME_RENDER_OPTIONS,
                          "dateTimeRenderOption", "SERIAL_NUMBER")
        return major, value, dt

    def _read(self, book: Spreadsheet, text: str, call: Call) -> dict[str, Any]:
        sheet, rng = book.locate(text)
        major, value, dt = self._render_options(call)
        return value_range(sheet, sheet.bounded(rng, text), major, value, dt)

    def plan_write(self, book: Spreadsheet, text: str, values: Any, major: str | None,
              option: str, body_range: str | None = None) -> _Write:
        """Validate one write completely before anything changes."""
        sheet, rng = book.locate(text)
        if body_range is not None and body_range != text:
            other_sheet, other = book.locate(body_range)
            if other_sheet is not sheet or other != rng:
                raise bad_request(f"Invalid values[0] range: the range in the body "
                                  f"({body_range}) does not match the requested range "
                                  f"({text}).")
        matrix = self._matrix(values, major)
        height = len(matrix)
        width = max((len(r) for r in matrix), default=0)
        self._check_extent(sheet, rng, text, height, width)
        return _Write(sheet, rng.row0, rng.col0, height, width, matrix_cells(matrix, option),
                      sum(len(r) for r in matrix))

    @staticmethod
    def _matrix(values: Any, major: str | None) -> list[list[Any]]:
        if values is None:
            return []
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            raise bad_request("Invalid JSON payload received. 'values' must be a list of "
                              "lists.")
        major = major or "ROWS"
        if major not in ("ROWS", "COLUMNS"):
            raise bad_request(f"Invalid value at 'data.major_dimension', \"{major}\"")
        if major == "COLUMNS" and values:
            width = max(len(c) for c in values)
            values = [[col[i] if i < len(col) else None for col in values] for i in range(width)]
        return values

    @staticmethod
    def _check_extent(sheet: Sheet, rng: A1Range, text: str, height: int, width: int) -> None:
        if not rng.single_cell:
            if rng.row1 is not None and rng.row0 + height > rng.row1:
                raise bad_request(f"Requested writing within range [{text}], but tried writing "
                                  f"to row [{rng.row0 + height}]")
            if rng.col1 is not None and rng.col0 + width > rng.col1:
                raise bad_request(f"Requested writing within range [{text}], but tried writing "
                                  f"to column [{column_letters(rng.col0 + width - 1)}]")
        if rng.row0 + height > sheet.rows or rng.col0 + width > sheet.cols \
                or rng.row0 >= sheet.rows or rng.col0 >= sheet.cols:
            raise bad_request(f"Range ({text}) exceeds grid limits. Max rows: {sheet.rows}, "
                              f"max columns: {sheet.cols}")

    @staticmethod
    def _input_option(value: str | None) -> str:
        if not value:
            raise bad_request("'valueInputOption' is required but not specified")
        if value not in VALUE_INPUT_OPTIONS:
            raise bad_request(f"Invalid value at 'value_input_option', \"{value}\"")
        return value

    # --- spreadsheets --------------------------------------------------------------

    def get(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        only = None
        if call.args("ranges"):
            only = {book.locate(text)[0].sheet_id for text in call.args("ranges")}
        return book.metadata(include_grid=call.flag("includeGridData"), only=only)

    def batch_update(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        body = call.json_body()
        requests = body.get("requests") or []
        known = discovery_schema_names(API, "Request")
        draft = book.copy()  # requests apply in order, atomically (§3.7)
        replies = []
        for i, request in enumerate(requests):
            if not isinstance(request, dict) or len(request) != 1:
                raise bad_request(f"Invalid requests[{i}]: exactly one kind of request must be "
                                  "set.")
            kind, spec = next(iter(request.items()))
            if kind not in known:
                raise bad_request(f"Invalid JSON payload received. Unknown name \"{kind}\" at "
                                  f"'requests[{i}]': Cannot find field.")
            if kind not in EMULATED_REQUESTS:
                raise GoogleApiError(501, f"The sandbox does not emulate batchUpdate request "
                                          f"'{kind}' (emulated: {', '.join(EMULATED_REQUESTS)}).")
            replies.append(getattr(self, f"_req_{kind}")(draft, spec or {}, i))
        draft.check_cells()
        self.spreadsheets[book.spreadsheet_id] = draft
        response: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id, "replies": replies}
        if body.get("includeSpreadsheetInResponse"):
            response["updatedSpreadsheet"] = draft.metadata()
        return response

    def _req_addSheet(self, book: Spreadsheet, spec: dict[str, Any], i: int) -> dict[str, Any]:
        props = spec.get("properties") or {}
        title = props.get("title") or f"Hoja {len(book.sheets) + 1}"
        if any(s.title.casefold() == title.casefold() for s in book.sheets):
            raise bad_request(f"Invalid requests[{i}].addSheet: A sheet with the name "
                              f"\"{title}\" already exists. Please enter another name.")
        if len(book.sheets) >= MAX_TABS:
            raise bad_request(f"Invalid requests[{i}].addSheet: too many sheets.")
        sheet_id = props.get("sheetId")
        if sheet_id is None:
            sheet_id = book.new_sheet_id()
        elif any(s.sheet_id == sheet_id for s in book.sheets):
            raise bad_request(f"Invalid requests[{i}].addSheet: A sheet with the id {sheet_id} "
                              "already exists.")
        grid = props.get("gridProperties") or {}
        index = props.get("index")
        index = len(book.sheets) if index is None else max(0, min(int(index), len(book.sheets)))
        for sheet in book.sheets:
            if sheet.index >= index:
                sheet.index += 1
        sheet = Sheet(sheet_id=int(sheet_id), title=title, index=index,
                      rows=int(grid.get("rowCount", DEFAULT_ROWS)),
                      cols=int(grid.get("columnCount", DEFAULT_COLUMNS)),
                      frozen_rows=int(grid.get("frozenRowCount", 0)),
                      hidden=bool(props.get("hidden", False)))
        book.sheets.append(sheet)
        return {"addSheet": {"properties": sheet.properties()}}

    def _req_deleteSheet(self, book: Spreadsheet, spec: dict[str, Any], i: int
                         ) -> dict[str, Any]:
        sheet = self._by_id(book, spec.get("sheetId"), f"requests[{i}].deleteSheet")
        if len(book.sheets) == 1:
            raise bad_request(f"Invalid requests[{i}].deleteSheet: You can't remove all the "
                              "visible sheets in a document.")
        book.sheets.remove(sheet)
        for other in book.sheets:
            if other.index > sheet.index:
                other.index -= 1
        return {}

    def _req_updateSheetProperties(self, book: Spreadsheet, spec: dict[str, Any], i: int
                                   ) -> dict[str, Any]:
        where = f"requests[{i}].updateSheetProperties"
        props = spec.get("properties") or {}
        sheet = self._by_id(book, props.get("sheetId", 0), where)
        fields = [f.strip().replace("/", ".") for f in str(spec.get("fields") or "").split(",")
                  if f.strip()]
        if not fields:
            raise bad_request(f"Invalid {where}: You must specify which fields to update.")
        grid = props.get("gridProperties") or {}
        rows, cols = sheet.rows, sheet.cols
        for name in fields:
            if name in ("*", "gridProperties"):
                rows = int(grid.get("rowCount", rows))
                cols = int(grid.get("columnCount", cols))
                sheet.frozen_rows = int(grid.get("frozenRowCount", 0))
                if name == "*":
                    sheet.title = props.get("title", sheet.title)
            elif name == "gridProperties.rowCount":
                rows = int(grid.get("rowCount", 0))
            elif name == "gridProperties.columnCount":
                cols = int(grid.get("columnCount", 0))
            elif name == "gridProperties.frozenRowCount":
                sheet.frozen_rows = int(grid.get("frozenRowCount", 0))
            elif name == "title":
                title = str(props.get("title") or "")
                if not title or any(s is not sheet and s.title.casefold() == title.casefold()
                                    for s in book.sheets):
                    raise bad_request(f"Invalid {where}: A sheet with the name \"{title}\" "
                                      "already exists. Please enter another name.")
                sheet.title = title
            elif name == "hidden":
                sheet.hidden = bool(props.get("hidden", False))
            elif name == "index":
                sheet.index = int(props.get("index", sheet.index))
            else:
                raise GoogleApiError(501, f"The sandbox does not emulate updating sheet "
                                          f"property '{name}'.")
        if rows < 1 or cols < 1:
            raise bad_request(f"Invalid {where}: the grid must keep at least one row and one "
                              "column.")
        if sheet.frozen_rows >= rows:
            raise bad_request(f"Invalid {where}: You can't freeze all visible rows on the "
                              "sheet.")
        sheet.resize(rows, cols)
        return {}

    def _req_updateSpreadsheetProperties(self, book: Spreadsheet, spec: dict[str, Any], i: int
                                         ) -> dict[str, Any]:
        props = spec.get("properties") or {}
        fields = str(spec.get("fields") or "")
        if "title" in fields or fields == "*":
            book.title = props.get("title", book.title)
        return {}

    def _req_appendDimension(self, book: Spreadsheet, spec: dict[str, Any], i: int
                             ) -> dict[str, Any]:
        sheet = self._by_id(book, spec.get("sheetId", 0), f"requests[{i}].appendDimension")
        length = int(spec.get("length", 0))
        if spec.get("dimension") == "COLUMNS":
            sheet.cols += length
        else:
            sheet.rows += length
        return {}

    @staticmethod
    def _by_id(book: Spreadsheet, sheet_id: Any, where: str) -> Sheet:
        for sheet in book.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise bad_request(f"Invalid {where}: No grid with id: {sheet_id}")

    # --- values --------------------------------------------------------------------

    def values_get(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        return self._read(book, call.params["range"], call)

    def values_batch_get(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        ranges = [self._read(book, text, call) for text in call.args("ranges")]
        return {"spreadsheetId": book.spreadsheet_id, "valueRanges": ranges}

    def values_update(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        option = self._input_option(call.arg("valueInputOption"))
        body = call.json_body()
        write = self.plan_write(book, call.params["range"], body.get("values"),
                           body.get("majorDimension"), option, body.get("range"))
        result = write.apply()
        if call.flag("includeValuesInResponse"):
            result["updatedData"] = self._read(book, result["updatedRange"], call)
        return {"spreadsheetId": book.spreadsheet_id, **result}

    def values_batch_update(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        body = call.json_body()
        option = self._input_option(body.get("valueInputOption"))
        writes = [self.plan_write(book, str(item.get("range", "")), item.get("values"),
                             item.get("majorDimension"), option)
                  for item in body.get("data") or []]
        responses = [{"spreadsheetId": book.spreadsheet_id, **w.apply()} for w in writes]
        return {
            "spreadsheetId": book.spreadsheet_id,
            "totalUpdatedRows": sum(r.get("updatedRows", 0) for r in responses),
            "totalUpdatedColumns": sum(r.get("updatedColumns", 0) for r in responses),
            "totalUpdatedCells": sum(r.get("updatedCells", 0) for r in responses),
            "totalUpdatedSheets": len({r["updatedRange"].rsplit("!", 1)[0] for r in responses}),
            "responses": responses,
        }

    def values_append(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        option = self._input_option(call.arg("valueInputOption"))
        insert = call.arg("insertDataOption") or "OVERWRITE"
        if insert not in ("OVERWRITE", "INSERT_ROWS"):
            raise bad_request(f"Invalid value at 'insert_data_option', \"{insert}\"")
        body = call.json_body()
        text = call.params["range"]
        sheet, rng = book.locate(text)
        matrix = self._matrix(body.get("values"), body.get("majorDimension"))
        cells = matrix_cells(matrix, option)
        col1 = sheet.cols if rng.col1 is None else rng.col1
        # Emulator model of the "table" (§3.5): the last non-empty row within the range's
        # columns; Google's handling of blank rows inside data is undocumented [C].
        last = sheet.last_row(rng.col0, col1)
        start = max(last, rng.row0)
        response: dict[str, Any] = {"spreadsheetId": book.spreadsheet_id}
        if last > rng.row0:
            first = min(r for r in sheet.cells if any(rng.col0 <= c < col1 for c in
                                                      sheet.cells[r]) and r >= rng.row0)
            response["tableRange"] = format_range(sheet.title, first, last, rng.col0, col1)
        height = len(matrix)
        width = max((len(r) for r in matrix), default=0)
        # Append grows the grid (update never does).
        rows = sheet.rows + height if insert == "INSERT_ROWS" else max(sheet.rows, start + height)
        cols = max(sheet.cols, rng.col0 + width)
        if book.cell_count() - sheet.rows * sheet.cols + rows * cols > MAX_CELLS:
            book.check_cells_limit()
        if insert == "INSERT_ROWS":
            sheet.insert_rows(start, height)
        sheet.rows, sheet.cols = rows, cols
        sheet.write(start, rng.col0, cells)
        updates: dict[str, Any] = {
            "spreadsheetId": book.spreadsheet_id,
            "updatedRange": format_range(sheet.title, start, start + max(height, 1), rng.col0,
                                         rng.col0 + max(width, 1)),
            "updatedRows": height, "updatedColumns": width,
            "updatedCells": sum(len(r) for r in matrix)}
        if call.flag("includeValuesInResponse"):
            updates["updatedData"] = self._read(book, updates["updatedRange"], call)
        response["updates"] = updates
        return response

    def values_clear(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        return {"spreadsheetId": book.spreadsheet_id,
                "clearedRange": self._clear(book, call.params["range"])}

    def values_batch_clear(self, call: Call) -> dict[str, Any]:
        book = self.open(call)
        ranges = call.json_body().get("ranges") or []
        return {"spreadsheetId": book.spreadsheet_id,
                "clearedRanges": [self._clear(book, str(text)) for text in ranges]}

    @staticmethod
    def _clear(book: Spreadsheet, text: str) -> str:
        sheet, rng = book.locate(text)
        bounds = sheet.bounded(rng, text)
        sheet.clear(*bounds)
        return format_range(sheet.title, *bounds)


@dataclass
class _Write:
    """A validated write, applied only once every write of the request validated."""

    sheet: Sheet
    row0: int
    col0: int
    height: int
    width: int
    cells: list[list[Any]]
    count: int

    def apply(self) -> dict[str, Any]:
        self.sheet.write(self.row0, self.col0, self.cells)
        result: dict[str, Any] = {"updatedRange": format_range(
            self.sheet.title, self.row0, self.row0 + max(self.height, 1), self.col0,
            self.col0 + max(self.width, 1))}
        if self.height and self.width:
            result.update(updatedRows=self.height, updatedColumns=self.width,
                          updatedCells=self.count)
        return result


def matrix_cells(matrix: list[list[Any]], option: str) -> list[list[Any]]:
    """Request values -> cells to write (KEEP for nulls, None to clear)."""
    return [[parse_input(v, option, f"{i}][{j}") for j, v in enumerate(row)]
            for i, row in enumerate(matrix)]
