"""`saeko-sync report` as a person uses it (subprocesses against the sandbox): without
--enviar it writes the HTML and PDF to REPORTS_DIR and prints their paths; with --enviar the
COO gets the email (charts inline, PDF attached) and the tab is written; mistakes are
explained in Spanish with exit code 2."""

from __future__ import annotations

from pathlib import Path

from sandbox.server import Sandbox
from tests.conftest import WORLD_NOW
from tests.test_cli import run_cli, write_env


def test_report_on_demand(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "informes"
    write_env(sandbox, tmp_path, RULES_FROZEN_NOW=WORLD_NOW.isoformat(),
              REPORTS_DIR=str(folder))
    synced = run_cli(["sync"], tmp_path)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    google = sandbox.tools["google"]

    weekly = run_cli(["report", "semanal", "--am", "am-tijuana-1@saeko.test"], tmp_path)
    assert weekly.returncode == 0, weekly.stdout + weekly.stderr
    # Wednesday 18 November: the last whole week is 46 (9–15 November).
    html = folder / "2026-S46" / "semanal-am-am-tijuana-1-2026-S46.html"
    pdf = folder / "2026-S46" / "semanal-am-am-tijuana-1-2026-S46.pdf"
    assert str(html) in weekly.stdout.replace("\n", "") or html.name in weekly.stdout
    assert "No se envió" in weekly.stdout
    assert pdf.read_bytes().startswith(b"%PDF") and "Marco Ibarra" in html.read_text("utf-8")
    # The AM against the whole team, beside the trend.
    assert ('alt="Barras de Marco Ibarra y de todo el equipo: Cumplimiento de SLA, CSAT"'
            in html.read_text("utf-8"))
    assert google.sent_messages() == []

    monthly = run_cli(["report", "mensual", "--periodo", "2026-10", "--enviar"], tmp_path)
    assert monthly.returncode == 0, monthly.stdout + monthly.stderr
    assert "Enviado a coo@saeko.test; pestaña «informe_mensual» escrita." in monthly.stdout
    (mail,) = google.sent_messages()
    assert mail["subject"] == ("Informe mensual de postventa para la dirección: "
                               "Octubre de 2026")
    assert [p["filename"] for p in mail["parts"] if p["disposition"] == "attachment"] == [
        "mensual-2026-10.pdf"]
    assert any(p["mimeType"] == "image/png" for p in mail["parts"])
    assert (folder / "2026-10" / "mensual-2026-10.pdf").is_file()

    commissions = run_cli(["report", "comisiones", "--periodo", "2026-09"], tmp_path)
    assert commissions.returncode == 0, commissions.stdout + commissions.stderr
    assert (folder / "2026-09" / "comisiones-2026-09.pdf").is_file()

    wrong = run_cli(["report", "diario"], tmp_path)
    assert wrong.returncode == 2 and "informe desconocido «diario»" in wrong.stderr
    nobody = run_cli(["report", "semanal", "--am", "nadie@saeko.test"], tmp_path)
    assert nobody.returncode == 2 and "no es un AM" in nobody.stderr
    bad = run_cli(["report", "mensual", "--periodo", "2026-13"], tmp_path)
    assert bad.returncode == 2 and "periodo" in bad.stderr
