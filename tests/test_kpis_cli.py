"""`saeko-sync run` then `saeko-sync kpis` as a person uses them (subprocesses against the
sandbox): the cycle publishes the KPI sheet, the terminal shows the month's figures in
Spanish with Mexico's number format, `--looker` prints the Linking API link wired to the
published tab, and `--publicar` rewrites the same cells."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from sandbox.server import Sandbox
from tests.conftest import WORLD_NOW
from tests.test_cli import run_cli, write_env


def test_run_then_kpis_in_the_terminal_and_the_looker_link(sandbox: Sandbox,
                                                          tmp_path: Path) -> None:
    write_env(sandbox, tmp_path, RULES_FROZEN_NOW=WORLD_NOW.isoformat())
    ran = run_cli(["run"], tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    google = sandbox.tools["google"]
    sheet = sandbox.env()["GOOGLE_KPI_SPREADSHEET_ID"]
    monthly = google.sheet_values(sheet, "kpi_mensual")
    assert monthly[0][:4] == ["periodo", "inicio", "fin", "kpi"]

    shown = run_cli(["kpis"], tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    text = shown.stdout
    assert "KPIs de postventa · 2026-11 (mes)" in text and "01/11/2026 a 30/11/2026" in text
    csat = next(r for r in monthly[1:] if r[0] == "2026-11" and r[3] == "csat" and r[5] == "total")
    assert f"{csat[8]:,.1f} %" in text  # the sheet's CSAT, as the terminal prints it
    assert "≥ 90.0 %" in text and "≤ 2.0 h" in text
    assert "None" not in text and "nan" not in text

    by_am = run_cli(["kpis", "--por", "am", "--kpi", "nps", "--kpi", "csat"], tmp_path)
    assert by_am.returncode == 0 and "Marco Ibarra" in by_am.stdout
    assert "Tiempo de primera" not in by_am.stdout
    wrong = run_cli(["kpis", "--por", "escuela"], tmp_path)
    assert wrong.returncode == 2 and "dimensión desconocida" in wrong.stderr

    link = run_cli(["kpis", "--looker"], tmp_path)
    assert link.returncode == 0, link.stderr
    url = urlparse(link.stdout.strip())
    query = parse_qs(url.query)
    gid = google.sheet_properties(sheet, "kpi_mensual")["sheetId"]
    assert (url.netloc, url.path) == ("lookerstudio.google.com", "/reporting/create")
    assert query["ds.ds0.connector"] == ["googleSheets"]
    assert query["ds.ds0.spreadsheetId"] == [sheet]
    assert query["ds.ds0.worksheetId"] == [str(gid)]

    before = {t: google.sheet_values(sheet, t) for t in ("kpi_mensual", "tickets")}
    published = run_cli(["kpis", "--publicar"], tmp_path)
    assert published.returncode == 0, published.stdout + published.stderr
    assert re.search(r"Hoja de KPIs publicada: 11 pestañas", published.stdout)
    assert {t: google.sheet_values(sheet, t) for t in before} == before
