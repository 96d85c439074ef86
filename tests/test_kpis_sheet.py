"""M3 end to end: after a cycle (`saeko-sync run`) on the sandbox, the KPI spreadsheet holds
the documented tabs with typed cells, and its NPS, CSAT and first-response figures match an
independent computation from the sandbox's own Forms answers and Podio tickets (computed
here from the tools' state, not by store/kpis). Publishing again changes no cell and costs
one write call per tab; a cycle with nothing new writes nothing."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.google import kpi_sheet
from connectors.google.client import GoogleClient
from core.settings import PROJECT_ROOT
from store import kpis
from tests.desk_helpers import Desk, account_desk, local, stores

TIJUANA = ZoneInfo("America/Tijuana")
KPI_TABS = ["kpi_diario", "kpi_semanal", "kpi_mensual", "kpi_trimestral",
            "kpi_cliente_mensual"]
DETAIL_TABS = ["tickets", "respuestas", "cuentas", "renovaciones", "diccionario", "columnas"]
# The sandbox forms' score questions and scales (sandbox/google/seed.py).
CSAT_SCORE, NPS_SCORE = "5d0a7c31", "6a1f3b88"
VALUES_WRITE = re.compile(r"/values/(.+)$")


def documented_columns() -> dict[str, list[str]]:
    """Every tab and its columns as docs/kpis.md lists them (### `tab` then a table whose
    first column is `column`)."""
    out: dict[str, list[str]] = {}
    tab = None
    for line in (PROJECT_ROOT / "docs" / "kpis.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### `([a-z_]+)`", line)
        if heading:
            tab = heading.group(1)
            out[tab] = []
            continue
        cell = re.match(r"^\| `([a-z_0-9]+)` \|", line)
        if tab is not None and cell:
            out[tab].append(cell.group(1))
    return out


def month_of(instant: datetime) -> str:
    return instant.replace(tzinfo=UTC).astimezone(TIJUANA).strftime("%Y-%m")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(
        tzinfo=None)


def forms_by_month(desk: Desk, form_id: str, question: str, low: int, high: int
                   ) -> dict[str, list[int]]:
    """Valid scores (inside the form's scale) of a sandbox form by local answer month."""
    out: dict[str, list[int]] = defaultdict(list)
    for response in desk.google.forms.forms[form_id].responses.values():
        answer = response["answers"].get(question)
        if answer is None:
            continue
        text = answer["textAnswers"]["answers"][0]["value"]
        if text.isdigit() and low <= int(text) <= high:
            out[month_of(utc(response["lastSubmittedTime"]))].append(int(text))
    return out


def first_responses_by_month(desk: Desk) -> dict[str, list[float]]:
    """Podio tickets' «tiempo-primera-respuesta» by the local month of their
    «fecha-primera-respuesta» (start_utc), from the sandbox's items."""
    out: dict[str, list[float]] = defaultdict(list)
    for item_id in desk.podio.items("tickets"):
        fields = {f["external_id"]: f["values"] for f in desk.podio.item(item_id)["fields"]}
        when, hours = fields.get("fecha-primera-respuesta"), fields.get("tiempo-primera-respuesta")
        if when and hours:
            out[month_of(utc(when[0]["start_utc"]))].append(float(hours[0]["value"]))
    return out


def kpi_rows(desk: Desk, tab: str) -> list[dict[str, Any]]:
    values = desk.google.sheet_values(desk.settings.google_kpi_spreadsheet_id, tab)
    header = values[0]
    return [dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))
            for row in values[1:]]


def total(rows: list[dict[str, Any]], kpi: str) -> dict[str, Any]:
    return {r["periodo"]: r for r in rows if r["kpi"] == kpi and r["dimension"] == "total"}


@pytest.mark.parametrize("kind", stores())
def test_the_kpi_sheet_after_a_run_matches_the_tools(tmp_path: Path, kind: str) -> None:
    with account_desk(tmp_path, "t[1-8]-*.yaml", "m3-*.yaml", kind=kind) as desk:
        # A new CSAT answer and a new NPS detractor after the store was switched on.
        google, settings = desk.google, desk.settings
        desk.at("2026-11-18 12:20")
        google.submit_response(settings.google_csat_form_id, {CSAT_SCORE: "2"})
        google.submit_response(settings.google_nps_form_id, {NPS_SCORE: "3"})
        desk.cycle()
        sheet = settings.google_kpi_spreadsheet_id
        props = {t: google.sheet_properties(sheet, t) for t in KPI_TABS + DETAIL_TABS}
        documented = documented_columns()
        assert set(documented) == set(KPI_TABS + DETAIL_TABS)
        for tab in KPI_TABS + DETAIL_TABS:
            header = google.sheet_values(sheet, tab)[0]
            assert header == documented[tab], tab
            assert props[tab]["gridProperties"]["frozenRowCount"] == 1

        monthly = kpi_rows(desk, "kpi_mensual")
        # Typed cells: numbers as numbers, dates as dates, yes/no as booleans.
        for row in monthly:
            assert isinstance(row["valor"], int | float) or row["valor"] == ""
            assert isinstance(row["n"], int) and row["cumple"] in (True, False, "")
        assert google.cell_format(sheet, "kpi_mensual", 1, 1) == "DATE"
        assert google.cell_format(sheet, "tickets", 1, 13) == "DATE_TIME"

        # Independent figures from the tools, month by month.
        csat = forms_by_month(desk, settings.google_csat_form_id, CSAT_SCORE, 1, 5)
        nps = forms_by_month(desk, settings.google_nps_form_id, NPS_SCORE, 0, 10)
        first = first_responses_by_month(desk)
        sheet_csat, sheet_nps = total(monthly, "csat"), total(monthly, "nps")
        sheet_first = total(monthly, "primera_respuesta_promedio")
        assert len(sheet_csat) == 13 and "2026-11" in sheet_csat
        checked = 0
        for month in sheet_csat:
            scores = csat.get(month, [])
            expected = 100 * sum(1 for s in scores if s >= 4) / len(scores) if scores else ""
            assert sheet_csat[month]["n"] == len(scores), month
            assert sheet_csat[month]["valor"] == pytest.approx(expected, abs=1e-3), month
            answers = nps.get(month, [])
            expected = (100 * (sum(1 for s in answers if s >= 9)
                               - sum(1 for s in answers if s <= 6)) / len(answers)
                        if answers else "")
            assert sheet_nps[month]["valor"] == pytest.approx(expected, abs=1e-3), month
            hours = first.get(month, [])
            expected = statistics.fmean(hours) if hours else ""
            assert sheet_first[month]["valor"] == pytest.approx(expected, abs=1e-3), month
            assert sheet_first[month]["n"] == len(hours)
            checked += bool(scores) + bool(answers) + bool(hours)
        assert checked >= 20, "the world has answers and tickets in most months"
        assert 2 in csat["2026-11"] and 3 in nps["2026-11"]  # today's answers are in

        # Publishing again: the same cells, one values write per tab, no structural call.
        cells = {t: google.sheet_values(sheet, t) for t in KPI_TABS + DETAIL_TABS}
        mark = desk.sandbox.calls.mark()
        config = kpis.load_config(settings.config_dir)
        with GoogleClient(settings) as client, desk.db.session() as session:
            kpi_sheet.publish(client, session, config, desk.sandbox.clock.now())
        calls = [c for c in desk.sandbox.calls.journal(mark, "google")
                 if "spreadsheets" in c.route]
        writes = [c for c in calls if c.method in ("PUT", "POST")]
        tabs = [VALUES_WRITE.search(c.path).group(1) for c in writes  # type: ignore[union-attr]
                if VALUES_WRITE.search(c.path)]
        assert len(writes) == len(KPI_TABS + DETAIL_TABS) == len(tabs)
        assert sorted(t.split("!")[0].strip("'") for t in tabs) == sorted(KPI_TABS + DETAIL_TABS)
        assert {t: google.sheet_values(sheet, t) for t in KPI_TABS + DETAIL_TABS} == cells
        assert {t: google.sheet_properties(sheet, t)["sheetId"] for t in props} == \
            {t: p["sheetId"] for t, p in props.items()}

        # M3's next slot with nothing new: not a single call to Sheets.
        mark = desk.sandbox.calls.mark()
        desk.at("2026-11-18 12:50")
        desk.cycle()
        assert [c for c in desk.sandbox.calls.journal(mark, "google")
                if "spreadsheets" in c.route and c.method != "GET"] == []


def test_a_smaller_table_leaves_no_stale_rows(tmp_path: Path) -> None:
    """Rows that fall out of a window are gone from the tab, in the same one write."""
    with account_desk(tmp_path, "m3-*.yaml") as desk:
        sheet = desk.settings.google_kpi_spreadsheet_id
        before = len(desk.google.sheet_values(sheet, "tickets"))
        # 200 days later, the 90-day ticket window holds none of the world's tickets.
        later = local("2026-11-18 12:00") + timedelta(days=200)
        config = kpis.load_config(desk.settings.config_dir)
        with GoogleClient(desk.settings) as client, desk.db.session() as session:
            kpi_sheet.publish(client, session, config, later)
        after = desk.google.sheet_values(sheet, "tickets")
        assert before > 1 and len(after) == 1
        assert desk.google.sheet_properties(sheet, "tickets")["gridProperties"]["rowCount"] == 1
        assert date(2026, 11, 18) < later.date()
