"""`saeko-sync doctor` tells the truth about what the active rules need, as an operator sees
it: a Podio app id removed, a broken rule file, Jira unset while rules that use Jira are
active — each a ✗ naming the setting (or the file:line) and exit 1; all set: exit 0."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from sandbox.server import Sandbox
from tests.test_cli import run_cli, write_env

BROKEN = ('id: otra-prueba\nnombre: "Mala"\nentidad: ticket\ndisparadores:\n'
          '  - evento: creado\nacciones:\n  - podio.actualizar:\n      campos:\n'
          '        escuelaa: "x"\n')
# The shipped rules that use Jira: T3 creates issues (jira.crear); T2's incident timer, T4
# and T5 are about Jira issues (entidad: incidencia, or a ticket's incidencia).
JIRA_RULES = ["t2-tiempo-incidencia", "t3-escalar-a-jira", "t4-por-validar",
              "t5-cierre-envio-o-manual"]


def _doctor(folder: Path) -> tuple[int, dict[str, tuple[str, str]], str]:
    done = run_cli(["doctor"], folder)
    assert "Traceback" not in done.stdout + done.stderr
    rows = {m.group(1).strip(): (m.group(2), m.group(3).strip()) for m in re.finditer(
        r"│ ([^│]+?)\s*│ ([✓✗])\s*│ (.*?)│", done.stdout)}
    return done.returncode, rows, done.stdout


def _failing(sandbox: Sandbox, folder: Path, row: str, **env: str) -> str:
    """doctor with ``env`` over the good settings: exit 1 and ``row`` ✗; its detail."""
    write_env(sandbox, folder, RULES_DIR=str(folder / "reglas"), **env)
    code, rows, shown = _doctor(folder)
    assert code == 1, shown
    status, detail = rows[row]
    assert status == "✗", shown
    return detail


@pytest.fixture
def folder(sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deployment on the sandbox with every tool set up and the shipped rules (a copy)."""
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line
    shutil.copytree(PROJECT_ROOT / "config" / "rules", tmp_path / "reglas")
    write_env(sandbox, tmp_path, RULES_DIR=str(tmp_path / "reglas"))
    assert run_cli(["db", "upgrade"], tmp_path).returncode == 0
    return tmp_path


def test_all_set_is_all_green(folder: Path) -> None:
    code, rows, shown = _doctor(folder)
    assert code == 0, shown
    assert {status for status, _ in rows.values()} == {"✓"}
    assert re.match(r"\d+ reglas válidas, \d+ activas", rows["reglas"][1])


def test_a_missing_podio_app_id_names_the_setting_and_the_rules(sandbox: Sandbox,
                                                                folder: Path) -> None:
    detail = _failing(sandbox, folder, "podio · tickets", PODIO_APP_TICKETS_ID="")
    assert detail.startswith("PODIO_APP_TICKETS_ID sin definir: «tickets» no se sincroniza; "
                             "la usan las reglas activas ")
    assert "t1-autocompletar-ticket" in detail and "Define PODIO_APP_TICKETS_ID en .env" in detail


def test_a_broken_rule_file_fails_with_its_line(folder: Path) -> None:
    (folder / "reglas" / "mala.yaml").write_text(BROKEN, encoding="utf-8")
    code, rows, shown = _doctor(folder)
    assert code == 1, shown
    status, detail = rows["reglas"]
    assert status == "✗"
    # What `rules validate` says, file:line and all.
    validate = run_cli(["rules", "validate"], folder)
    assert validate.returncode == 1
    first = validate.stdout.splitlines()[0]
    assert "mala.yaml:9:" in first and "escuelaa" in first
    assert detail.startswith(first), (detail, first)
    assert "saeko-sync rules validate" in detail


def test_jira_unset_while_jira_rules_are_active(sandbox: Sandbox, folder: Path) -> None:
    detail = _failing(sandbox, folder, "jira", JIRA_URL="")
    assert detail.startswith("sin configurar (JIRA_URL vacío): lo necesitan las reglas activas "
                             + ", ".join(JIRA_RULES))
    assert "define JIRA_URL en .env o desactiva esas reglas" in detail

    # With those rules switched off (activa: false), Jira is optional again.
    for path in (folder / "reglas").glob("t[2345]-*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("activa: true", "activa: false"), encoding="utf-8")
    code, rows, shown = _doctor(folder)
    assert code == 0, shown
    assert rows["jira"] == ("✓", "sin configurar (opcional: ninguna regla activa lo usa); "
                                 "ver .env.example")


def test_a_setting_an_active_rules_action_needs(sandbox: Sandbox, folder: Path) -> None:
    """Not a fixed list: M3's sheets.kpis (and M10/M12's sheets.informe) declare the KPI
    sheet they write; with it unset doctor names it and those rules."""
    detail = _failing(sandbox, folder, "GOOGLE_KPI_SPREADSHEET_ID",
                      GOOGLE_KPI_SPREADSHEET_ID="")
    assert detail.startswith("GOOGLE_KPI_SPREADSHEET_ID vacío: lo necesitan ")
    assert "sheets.kpis (reglas activas m3-tablero-kpis)" in detail
    assert "define GOOGLE_KPI_SPREADSHEET_ID en .env o desactiva esas reglas" in detail
