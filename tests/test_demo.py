"""`saeko-sync demo` stages the account situations and shows what M1, M2, M5, M7 (and M6,
M11, M13 when their rules ship) did: in its output and in the store the demo leaves behind."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from core.settings import PROJECT_ROOT
from jobs.demo import run_demo
from store.db import Database
from store.models import ActionLedger

COO_USER = 1001  # config/staff.yaml
ROW = re.compile(r"│ ([MT]\d+) · [^│]*│ (\d+) registros")
ESCALATIONS = re.compile(r"M7 · escalamientos a la COO en este ciclo \(de todas las reglas\): "
                         r"(\d+) tareas y (\d+) correos; efectos por regla: ([^\n]*)")


def _shipped(prefix: str) -> bool:
    return any((PROJECT_ROOT / "config" / "rules").glob(f"{prefix}-*.yaml"))


def _rows(text: str) -> dict[str, int]:
    """Automation -> the records it matched, from one table (first row of each)."""
    rows: dict[str, int] = {}
    for automation, count in ROW.findall(text):
        rows.setdefault(automation, int(count))
    return rows


def test_demo_shows_the_account_automations(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(file=out, width=400, record=False, color_system=None)
    run_demo(console, Console(file=io.StringIO()), clients=40, seed=7, folder=tmp_path,
             keep=False)
    text = out.getvalue()
    morning, monday = text.split("Los programas: el lunes", 1)
    # M3: the KPI sheet published in the sandbox, where to look, and the month's figures.
    assert re.search(r"M3 · hoja de KPIs publicada en el sandbox \(11 pestañas", morning)
    assert "KPIs de postventa · " in morning and "Tiempo de primera respuesta" in morning
    assert "simula la hora de los programas" in monday

    scored = re.search(r"M1 · primera calificación al activar las reglas: (\d+) clientes "
                       r"calificados", morning)
    assert scored and int(scored.group(1)) >= 40, morning

    shown = _rows(morning)
    assert shown["M1"] > 0 and shown["M5"] >= 2, shown
    first = ESCALATIONS.search(morning)
    assert first and int(first.group(1)) > 0 and "m1-salud-cliente" in first.group(3), morning

    scheduled = _rows(monday)
    assert scheduled["M2"] > 0, monday
    # M10/M12: the Monday's weekly reports, the monthly report and the commissions as files.
    assert "Informes (M10) y comisiones (M12)" in monday
    kept = sorted(p.name for p in (tmp_path / "informes").rglob("*.pdf"))
    assert any(n.startswith("semanal-equipo-") for n in kept), kept
    assert any(n.startswith("mensual-") for n in kept) and any(
        n.startswith("comisiones-") for n in kept), kept
    for name in kept:
        assert name in monday
    for prefix in ("M11", "M13"):
        if _shipped(prefix.lower()):
            assert scheduled[prefix] > 0, monday
    second = ESCALATIONS.search(monday)
    assert second and "m2-renovacion-estancada" in second.group(3), monday
    # M6: the reminders of the desk's late tickets and each agent's digest at 9:00.
    if _shipped("m6"):
        followup = re.search(r"M6 · seguimiento de casos abiertos en este ciclo: (\d+) "
                             r"recordatorios? al responsable .*, (\d+) (?:resumen diario|"
                             r"resúmenes diarios) por agente", monday)
        assert followup and int(followup.group(2)) > 0, monday
    # M8: the meetings in Calendar with Meet, and the plan changes of the demo (a client to
    # another AM, one lost) moving and cancelling check-ins.
    if _shipped("m8"):
        made = re.search(r"M8 · reuniones en Google Calendar al activar las reglas: (\d+) "
                         r"creadas? con Meet \(.*check-ins", morning)
        assert made and int(made.group(1)) > 0, morning
        changed = re.search(r"M8 · reuniones en Google Calendar en este ciclo: .*?(\d+) "
                            r"movidas? .* y (\d+) canceladas?", text)
        assert changed and int(changed.group(1)) + int(changed.group(2)) > 0, text
    # M4: the first business day of the next quarter, surveys by email; some answered.
    surveys = re.search(r"M4: (\d+) micro-encuestas \(muestra del 30 % de los usuarios "
                        r"operativos\) y (\d+) NPS a directivos, de (\d+) usuarios", text)
    assert surveys and int(surveys.group(1)) > 0 and int(surveys.group(2)) > 0, text
    answered = re.search(r"(\d+) respuestas de micro-encuesta en el modelo, ligadas", text)
    assert answered and int(answered.group(1)) > 0, text

    # What the output says is what the store holds: the effects were made in the tools.
    db = Database(f"sqlite:///{tmp_path}/saeko-demo.db")
    with db.session() as s:
        done = list(s.scalars(select(ActionLedger).where(ActionLedger.status == "done")))

    def effects(rule: str, action: str) -> list[ActionLedger]:
        return [r for r in done if r.rule_id == rule and r.action == action]

    assert any(((r.payload or {}).get("args") or {}).get("responsible_user_id") == COO_USER
               for r in effects("m1-salud-cliente", "podio.tarea"))
    assert len(effects("m5-asignacion-am", "podio.actualizar")) >= 2
    assert effects("m2-recordatorio-renovacion", "podio.tarea")
    assert effects("m2-renovacion-estancada", "gmail.enviar")
    assert effects("m4-micro-encuesta-mensual", "gmail.enviar")
    assert effects("m4-nps-trimestral", "gmail.enviar")
    if _shipped("m8"):
        events = [(r.payload or {}).get("args") or {}
                  for r in done if r.action == "calendario.reunion"]
        assert any(e.get("kind") == "check-in" and e.get("event") for e in events)
    if _shipped("m11"):
        assert effects("m11-cobranza-lunes", "podio.tarea") or effects(
            "m11-cobranza-mensual", "podio.tarea")
    if _shipped("m13"):
        assert effects("m13-revision-uso", "podio.tarea")


def test_the_demo_runs_without_the_rules_that_are_not_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin who removed (or has not yet got) M7, M11 and M13 still gets the whole demo."""
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "config" / "rules", rules,
                    ignore=shutil.ignore_patterns("m7-*", "m11-*", "m13-*"))
    monkeypatch.setenv("RULES_DIR", str(rules))
    out = io.StringIO()
    run_demo(Console(file=out, width=400, color_system=None), Console(file=io.StringIO()),
             clients=20, seed=7, folder=tmp_path / "demo", keep=False)
    text = out.getvalue()
    morning, monday = text.split("Los programas: el lunes", 1)
    assert _rows(morning)["M5"] >= 2
    assert "M11" not in _rows(monday) and "M13" not in _rows(monday)
    assert _rows(monday)["M2"] > 0
    assert "Modelo normalizado" in monday  # the demo went on to its end
