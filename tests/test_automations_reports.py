"""M10 operational reports and M12 commissions over the sandbox, with the clock moved to
the schedules' slots: on Monday 23 November 2026 each AM gets their weekly report and the
COO the team's, on Tuesday 1 December (the first business day) the COO the monthly report
and everyone their commissions — HTML with the charts inline (cid), the PDF attached (its
pages rendered to PNG are not blank), Spanish with Mexico's formats and no raw Python value,
the tabs in the KPI sheet and the files in REPORTS_DIR; re-running the slot and a Gmail
answer lost mid-way still leave one email per person and period. The commissions match
amounts computed here by hand."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from sqlalchemy import select

from core.settings import PROJECT_ROOT
from rules.calendar import BusinessCalendar
from rules.functions import FUNCTIONS, Env
from sandbox.world import podio_item_id
from store.models import ActionLedger
from tests.desk_helpers import Desk, account_desk, stores

EDITOR = "coo@saeko.test"
COO = "coo@saeko.test"
MARCO = "am-tijuana-1@saeko.test"   # Escuela Brisas (client 6)
ELENA = "am-tijuana-2@saeko.test"   # Centro Educativo Mirador (client 1)
TOMAS = "am-tecate@saeko.test"      # Academia Aurora (2), Liceo Aurora (4)
ADRIANA = "am-bajio@saeko.test"     # Centro Educativo Santa Fe (5)
AMS = (MARCO, ELENA, TOMAS, ADRIANA)
WEEKLY_AM, WEEKLY_TEAM = "Informe semanal de tus cuentas", "Informe semanal del equipo"
MONTHLY, COMMISSIONS = "Informe mensual de postventa", "Comisiones de noviembre de 2026"
RAW = re.compile(r"\bNone\b|\bTrue\b|\bFalse\b|\bnan\b|\{'|'\}|Decimal\(|datetime\.")


@pytest.fixture(params=stores())
def office(request: pytest.FixtureRequest, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    """The sandbox and a store (SQLite, and PostgreSQL when reachable) switched on with the
    shipped M10 and M12 rules only; reports kept under the test's folder."""
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "informes"))
    with account_desk(tmp_path, "m10-*.yaml", "m12-*.yaml", kind=request.param) as desk:
        yield desk


@pytest.fixture
def sqlite_office(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path / "informes"))
    with account_desk(tmp_path, "m10-*.yaml", "m12-*.yaml") as desk:
        yield desk


def _contract(desk: Desk, client: int, kind: str, amount: str, starts: date,
              status: str = "Vigente") -> int:
    return int(desk.podio.create_item_as(EDITOR, "contratos", {
        "cliente": [podio_item_id("clientes", client)], "tipo": kind,
        "inicio": {"start_date": starts.isoformat()},
        "fin": {"start_date": starts.replace(year=starts.year + 1).isoformat()},
        "monto": {"value": amount, "currency": "MXN"}, "estatus": status}))


# The first cycle after the rules are switched on (Wednesday 18) catches up Monday 16's
# slot: week 46's reports. The tests look at week 47's (the world's tickets and answers end
# on Wednesday 18) and November's.
LATER = ("Semana 47", ": Noviembre de 2026", "Comisiones de noviembre de 2026")


def _mails(desk: Desk, to: str, subject: str) -> list[dict[str, Any]]:
    return [m for m in desk.messages_to(to) if m["subject"].startswith(subject)
            and any(p in m["subject"] for p in LATER)]


def _report_mails(desk: Desk) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(m["to"]), m["subject"]) for m in desk.google.sent_messages()
            if m["subject"].startswith(("Informe", "Comisiones"))
            and any(p in m["subject"] for p in LATER)]


def _pdf_pages_not_blank(data: bytes) -> int:
    """Render every page to PNG-like bitmaps; each must have ink on it."""
    document = pdfium.PdfDocument(data)
    try:
        for page in document:
            image = page.render(scale=1).to_pil().convert("L")
            dark = sum(1 for v in image.get_flattened_data() if v < 200)
            assert dark > 2000, f"a page of the PDF is (almost) blank: {dark} dark pixels"
        return len(document)
    finally:
        document.close()


def _check_mail(desk: Desk, mail: dict[str, Any], pdf_name: str, images: int) -> None:
    """Inline charts referenced from the HTML, the PDF attached and not blank, Spanish
    text with Mexico's formats and no raw Python values."""
    parts = mail["parts"]
    assert parts[0]["mimeType"] == "multipart/mixed"
    assert ("multipart/related" in [p["mimeType"] for p in parts]) == (images > 0)
    inline = [p for p in parts if p["mimeType"] == "image/png"]
    assert len(inline) == images
    for image in inline:
        assert image["contentId"] and f'cid:{image["contentId"]}' in mail["html"]
        assert image["size"] > 5000
    (attached,) = [p for p in parts if p["disposition"] == "attachment"]
    assert attached["mimeType"] == "application/pdf" and attached["filename"] == pdf_name
    assert _pdf_pages_not_blank(desk.google.message_part(mail["id"], pdf_name)) >= 1
    for body in (mail["text"], mail["html"]):
        assert not RAW.search(body), RAW.search(body)


def test_weekly_and_monthly_reports_and_commissions(office: Desk, tmp_path: Path) -> None:
    desk = office
    # Administration records November's contracts in Podio (the world has none starting
    # in November 2026).
    desk.at("2026-11-20 10:00")
    _contract(desk, 6, "Nuevo", "120000", date(2026, 11, 5))           # Marco
    _contract(desk, 6, "Renovación", "96500.50", date(2026, 11, 20))   # Marco
    _contract(desk, 1, "Renovación", "54321", date(2026, 11, 30))      # Elena
    _contract(desk, 2, "Nuevo", "80000", date(2026, 11, 10), "Cancelado")  # Tomás: no
    _contract(desk, 2, "Nuevo", "70000", date(2026, 12, 1))            # December: not yet
    _contract(desk, 3, "Nuevo", "10000", date(2026, 11, 12))           # no AM: nobody's
    desk.cycle()
    desk.at("2026-11-23 07:55")  # Monday, before the slot
    desk.cycle()
    assert _report_mails(desk) == []

    # Monday 23 November 08:05: the weekly reports of week 47 (16–22 November).
    desk.at("2026-11-23 08:05")
    desk.cycle()
    period = "Semana 47, del 16 al 22 de noviembre de 2026"
    for am in AMS:
        (mail,) = _mails(desk, am, WEEKLY_AM)
        assert mail["to"] == [am]
        assert mail["subject"].startswith(f"{WEEKLY_AM}: {period} · ")
    (marco,) = _mails(desk, MARCO, WEEKLY_AM)
    # Only the trend: none of Marco's clients had a closed ticket or a CSAT answer that week,
    # so there is nothing to draw against the team (test_reports_cli draws it).
    _check_mail(desk, marco, "semanal-am-am-tijuana-1-2026-S47.pdf", images=1)
    for name in ("Primera respuesta", "SLA", "CSAT", "NPS", "Renovaciones", "Check-ins"):
        assert name.lower() in marco["text"].lower(), name
    assert "Tickets recibidos en el periodo:" in marco["text"]
    assert re.search(r"meta ≤ 2\.0 h", marco["text"]) and "meta ≥ 90.0 %" in marco["text"]
    assert "Escuela Brisas" in marco["text"] or "Ninguna esta vez." in marco["text"]
    assert "Centro Educativo Mirador" not in marco["text"]  # Elena's client
    (team,) = _mails(desk, COO, WEEKLY_TEAM)
    assert team["subject"] == f"{WEEKLY_TEAM} de postventa: {period}"
    _check_mail(desk, team, "semanal-equipo-2026-S47.pdf", images=2)  # trend + by AM
    assert "Todo el equipo" in team["text"] or "todo el equipo" in team["text"]
    # Accounts needing attention link into Podio.
    links = re.findall(r'href="([^"]+)"', team["html"])
    assert all("/items/" in link for link in links)
    # The tab, and the files kept.
    sheet = desk.settings.google_kpi_spreadsheet_id
    rows = desk.google.sheet_values(sheet, "informe_semanal")
    assert rows[0][:4] == ["periodo", "inicio", "fin", "dimension"]
    assert {r[0] for r in rows[1:]} == {"2026-S47"}
    assert {r[3] for r in rows[1:]} == {"total", "am"}
    kept = tmp_path / "informes" / "2026-S47"
    for name in ("semanal-equipo-2026-S47", "semanal-am-am-tijuana-1-2026-S47"):
        assert (kept / f"{name}.pdf").stat().st_size > 10_000
        html = (kept / f"{name}.html").read_text(encoding="utf-8")
        assert "data:image/png;base64," in html and "cid:" not in html
    before = _report_mails(desk)
    assert len(before) == 5
    desk.cycle()  # the same slot again
    desk.at("2026-11-23 15:00")
    desk.cycle()
    assert _report_mails(desk) == before

    # Tuesday 1 December, the first business day: the monthly report and the commissions.
    desk.at("2026-12-01 09:35")
    desk.cycle()
    (monthly,) = _mails(desk, COO, MONTHLY)
    assert monthly["subject"] == ("Informe mensual de postventa para la dirección: "
                                  "Noviembre de 2026")
    _check_mail(desk, monthly, "mensual-2026-11.pdf", images=2)  # trend + bars by AM
    assert "Retención" in monthly["text"] or "retención" in monthly["text"].lower()
    assert desk.google.sheet_values(sheet, "informe_mensual")[1][0] == "2026-11"

    # Commissions, by hand: 5 % of new business, 3 % of renewals, per contract to the cent.
    # Marco: 120,000.00 × 5 % = 6,000.00; 96,500.50 × 3 % = 2,895.015 -> 2,895.02.
    # Elena: 54,321.00 × 3 % = 1,629.63. Tomás: the cancelled one and December's: nothing.
    (mail,) = _mails(desk, MARCO, COMMISSIONS)
    assert mail["subject"] == f"{COMMISSIONS}: Marco Ibarra ($ 8,895.02 MXN)"
    brisas = "Escuela Brisas"
    assert (f"• {brisas} · Nuevo · inicio 05/11/2026 · $ 120,000.00 MXN × 5 % = "
            "$ 6,000.00 MXN") in mail["text"]
    assert (f"• {brisas} · Renovación · inicio 20/11/2026 · $ 96,500.50 MXN × 3 % = "
            "$ 2,895.02 MXN") in mail["text"]
    assert "(negocio nuevo $ 6,000.00 MXN; renovaciones $ 2,895.02 MXN)" in mail["text"]
    _check_mail(desk, mail, "comisiones-am-tijuana-1-2026-11.pdf", images=0)
    (mail,) = _mails(desk, ELENA, COMMISSIONS)
    assert mail["subject"].endswith("($ 1,629.63 MXN)")
    assert "$ 54,321.00 MXN × 3 % = $ 1,629.63 MXN" in mail["text"]
    (mail,) = _mails(desk, TOMAS, COMMISSIONS)
    assert mail["subject"].endswith("($ 0.00 MXN)")
    assert "Sin contratos que comisionen este mes." in mail["text"]
    (coo,) = _mails(desk, COO, COMMISSIONS)
    assert coo["subject"].endswith("Todos los AM ($ 10,524.65 MXN)")  # 8,895.02 + 1,629.63
    assert "Escuela Monte Claro" not in coo["text"]  # a client without AM
    rows = desk.google.sheet_values(sheet, "comisiones")
    assert rows[0] == ["periodo", "am", "email_am", "cliente", "id_contrato", "tipo", "inicio",
                       "monto", "moneda", "tasa", "comision"]
    assert sorted((r[2], r[5], r[7], r[10]) for r in rows[1:]) == [
        (MARCO, "Nuevo", 120000, 6000), (MARCO, "Renovación", 96500.5, 2895.02),
        (ELENA, "Renovación", 54321, 1629.63)]
    count = len(_report_mails(desk))
    assert count == 5 + 1 + 5
    desk.at("2026-12-02 09:35")  # the next business day of the window: nothing new
    desk.cycle()
    assert len(_report_mails(desk)) == count


def test_a_lost_gmail_answer_still_sends_each_report_once(sqlite_office: Desk) -> None:
    """Gmail sends the report but the answer is lost (and then it fails for a while): the
    next cycles find it by its reference instead of sending it again."""
    desk = sqlite_office
    desk.at("2026-11-23 08:05")
    lost = desk.sandbox.faults.add(kind="drop_after", tool="google",
                                   path="/gmail/v1/users/[^/]+/messages/send", method="POST",
                                   count=2)
    desk.cycle()
    desk.sandbox.faults.remove(lost)
    down = desk.sandbox.faults.add(kind="status", status=503, tool="google",
                                   path="/gmail/v1/users/[^/]+/messages", count=3)
    desk.at("2026-11-23 08:45")
    desk.cycle()
    desk.sandbox.faults.remove(down)
    for when in ("2026-11-23 09:30", "2026-11-23 11:00", "2026-11-23 13:00"):
        desk.at(when)
        desk.cycle()
    for am in AMS:
        assert len(_mails(desk, am, WEEKLY_AM)) == 1, am
    assert len(_mails(desk, COO, WEEKLY_TEAM)) == 1
    with desk.db.session() as s:
        statuses = {r.status for r in s.scalars(select(ActionLedger).where(
            ActionLedger.action == "gmail.informe"))}
    assert statuses == {"done"}


def test_the_period_a_scheduled_report_covers() -> None:
    env = Env(datetime(2026, 11, 30, 16, 0), "America/Tijuana",
              BusinessCalendar.load(PROJECT_ROOT / "config"))
    previous = FUNCTIONS["periodo_anterior"].fn
    assert previous(env, datetime(2026, 11, 30, 16, 5), "semana") == "2026-S48"
    assert previous(env, date(2027, 1, 4), "semana") == "2026-S53"
    assert previous(env, datetime(2026, 12, 1, 17, 0), "mes") == "2026-11"
    assert previous(env, date(2027, 1, 4), "mes") == "2026-12"


def test_a_broken_report_template_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    import shutil

    from tests.test_cli import run_cli

    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    (tmp_path / ".env").write_text(f"CONFIG_DIR={config}\n")
    template = config / "plantillas" / "m10-informe.html"
    rows = template.read_text().splitlines()
    rows[1] = "<h2>{{ informe.titlo }}</h2>"
    template.write_text("\n".join(rows) + "\n")
    result = run_cli(["rules", "validate"], tmp_path)
    assert result.returncode == 1
    problems = [r for r in result.stdout.splitlines() if r.startswith("config/")]
    assert problems and all(
        'config/plantillas/m10-informe.html:2: "informe" no tiene "titlo"' in p
        for p in problems), problems
    assert {p.split(":")[0] for p in problems} == {
        "config/rules/m10-reporte-semanal-am.yaml", "config/rules/m10-reporte-semanal-equipo.yaml",
        "config/rules/m10-reporte-mensual.yaml"}
    listed = run_cli(["plantillas", "lista"], PROJECT_ROOT)
    assert "m12-comisiones (m12-comisiones.html, m12-comisiones.txt) — usada por: " \
           "m12-comisiones" in listed.stdout
