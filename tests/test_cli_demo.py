"""A new operator's and admin's first hour (issue 16, items 4, 5 and the demo's part of 6):
`saeko-sync demo` twice with the same seed, then the commands its hints print, pasted as
they are, and `rules dry-run` / `rules trace` / `rules validate` as an admin uses them. Real
subprocesses, as in tests/test_cli.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from core.settings import PROJECT_ROOT
from rules.calendar import BusinessCalendar
from sandbox.server import Sandbox
from tests.test_cli import CLI, run_cli

CLIENTS = "12"  # a small world: the demo takes ~30 s
HINT = re.compile(r"^\s*(DATABASE_URL=\S+ (?:RULES_FROZEN_NOW=\S+ )?)saeko-sync (.*)$", re.M)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One `saeko-sync demo` run: its output, its folder and the settings prefix its hints
    print (DATABASE_URL=… RULES_FROZEN_NOW=…)."""
    folder = tmp_path_factory.mktemp("demo")
    result = run_cli(["demo", "--clients", CLIENTS, "--folder", str(folder / "a")], folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hints = HINT.findall(result.stdout)
    assert hints, result.stdout[-3000:]
    return {"out": result.stdout, "folder": folder, "prefix": hints[0][0],
            "hints": [command for _prefix, command in hints],
            "db": folder / "a" / "saeko-demo.db"}


def paste(demo: dict[str, object], command: str, cwd: Path | None = None,
          **env: str) -> subprocess.CompletedProcess[str]:
    """A `saeko-sync …` line run in a shell as a person pastes it, with the demo's prefix."""
    shell = f"{demo['prefix']}{' '.join(f'{k}={v}' for k, v in env.items())} " \
            f"{' '.join(CLI)} {command}"
    return subprocess.run(["bash", "-c", shell], cwd=cwd or demo["folder"], text=True,
                          capture_output=True, timeout=240, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT)})


def query(demo: dict[str, object], sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(str(demo["db"])) as conn:
        return list(conn.execute(sql))


def _normal(text: str, folder: Path) -> str:
    """An output without what may differ between two runs: ports, timings, the folder."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PUERTO", text)
    text = re.sub(r"\(\d+\.\d s\)", "(X s)", text)
    return re.sub(r"/[ab]/", "/X/", text.replace(str(folder), "CARPETA"))


DURING_THE_RUN = re.compile(r"^2026-11-18 18:\d\d:\d\d(\.\d+)?$")


def _world(db: Path) -> list[tuple[object, ...]]:
    """The tickets and the ledger; what the demo made while it ran is stamped with the
    seconds it ran at (its clock starts at 18:00 and goes on): those count to the hour."""
    with sqlite3.connect(str(db)) as conn:
        rows = list(conn.execute(
            "select source_id, title, status, priority, opened_at, jira_key from tickets "
            "order by source_id"))
        rows += list(conn.execute("select rule_id, action, target, status, created_at from "
                                  "action_ledger order by id"))
    return [tuple("2026-11-18 18:xx" if isinstance(v, str) and DURING_THE_RUN.match(v) else v
                  for v in row) for row in rows]


def test_the_demo_twice_with_the_same_seed_gives_the_same_world(
        demo: dict[str, object]) -> None:
    folder = demo["folder"]
    assert isinstance(folder, Path)
    again = run_cli(["demo", "--clients", CLIENTS, "--folder", str(folder / "b")], folder)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Reloj del demo: empieza el 18/11/2026 18:00 UTC" in again.stdout
    assert _normal(again.stdout, folder) == _normal(str(demo["out"]), folder)
    assert _world(folder / "b" / "saeko-demo.db") == _world(folder / "a" / "saeko-demo.db")


def test_the_demo_summary_is_readable_spanish(demo: dict[str, object]) -> None:
    out = " ".join(str(demo["out"]).split())  # the lines as one text (80 columns wrap)
    assert "{'" not in out and "Counter(" not in out, "a raw Python value in the demo"
    assert re.search(r"mundo demo \(semilla 7\): 12 clientes, \d+ escuelas", out)
    assert re.search(r"Una mañana de trabajo simulada en las herramientas: 10 tickets "
                     r"nuevos, 3 tickets escalados a Jira", out)


def test_the_demo_hints_work_or_say_the_sandbox_is_gone(demo: dict[str, object]) -> None:
    out = str(demo["out"]).replace("\n", " ")
    gone = re.search(r"El sandbox se detuvo al terminar el demo: sus direcciones "
                     r"\((http://127\.0\.0\.1:\d+)/…\) ya no responden", out)
    assert gone and "`saeko-sync demo --keep`" in out, out[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gone.group(1)}/_sandbox/", timeout=2)
    for command in demo["hints"]:  # type: ignore[attr-defined]
        result = paste(demo, command)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
    trace = paste(demo, demo["hints"][0])  # type: ignore[index]
    rule = str(demo["hints"][0]).split()[2]  # type: ignore[index]
    assert f"Regla {rule} (versión" in trace.stdout and "[hecha" in trace.stdout


def test_rules_trace_names_unknown_rules_and_shows_its_usage(demo: dict[str, object]) -> None:
    unknown = paste(demo, "rules trace T1")
    assert unknown.returncode == 1
    assert "la regla «T1» no existe; ¿quisiste decir t1-autocompletar-ticket?" in \
        unknown.stderr.replace("\n", " ")
    assert "t8-csat-negativa" in unknown.stderr
    bare = paste(demo, "rules trace")
    assert bare.returncode == 2
    assert "Uso: saeko-sync rules trace REGLA" in bare.stderr
    assert re.search(r"t1-autocompletar-ticket: \d+ ejecuciones", bare.stderr)


def test_entity_is_the_podio_item_id_or_the_jira_key(demo: dict[str, object]) -> None:
    (item, key, internal), = query(demo, "select source_id, jira_key, id from tickets where "
                                         "jira_key is not null order by id limit 1")
    by_key = paste(demo, f"rules dry-run t3-escalar-a-jira --entity {key}")
    assert by_key.returncode == 0, by_key.stderr
    assert f"ticket #{internal} " in by_key.stdout
    assert f'ticket.jira = "{key}"' in by_key.stdout  # why T3 would not escalate it again
    by_item = paste(demo, f"rules trace t1-autocompletar-ticket --entity {item}")
    assert by_item.returncode == 0
    assert f"ticket #{internal} " in by_item.stdout or "No hay ejecuciones" in by_item.stdout
    hinted = paste(demo, demo["hints"][0])  # type: ignore[index]
    assert "Podio item" in hinted.stdout
    for command in ("rules trace t1-autocompletar-ticket --entity 123456789",
                    "rules dry-run t3-escalar-a-jira --entity SOP-99999"):
        missing = paste(demo, command)
        assert missing.returncode == 1, command
        assert "no existe ningún(a) ticket" in missing.stderr, missing.stderr


def test_dry_run_says_what_it_simulates_and_why_nothing_would_happen(
        demo: dict[str, object]) -> None:
    every = paste(demo, "rules dry-run")
    assert every.returncode == 0, every.stderr
    assert "Simulación de las reglas activas" in every.stdout
    assert "▶ t1-autocompletar-ticket" in every.stdout and "▶ m1-salud-cliente" in every.stdout
    assert "▶ ejemplo-" not in every.stdout  # the disabled examples only when named
    t3 = paste(demo, "rules dry-run t3-escalar-a-jira")
    assert t3.returncode == 0
    counted = re.search(r"(\d+) tickets evaluado\(s\), (\d+) cumple\(n\) las condiciones",
                        t3.stdout)
    assert counted and int(counted.group(1)) > 0, t3.stdout
    assert "Por qué no coinciden los demás" in t3.stdout
    assert "disparador: estatus no es «Escalado» ahora" in t3.stdout
    if int(counted.group(2)) == 0:
        assert "no haría nada" in t3.stdout


def test_dry_run_after_editing_t8_due_date_shows_the_new_date(
        demo: dict[str, object], tmp_path: Path) -> None:
    (survey,), = query(demo, "select s.source_id from action_ledger l join survey_responses s "
                             "on l.target = 'encuesta:' || s.id where l.rule_id = "
                             "'t8-nps-detractor' and l.status = 'done' limit 1")
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "config" / "rules", rules)
    t8 = rules / "t8-tarea-retro-negativa.yaml"
    t8.write_text(t8.read_text(encoding="utf-8").replace(
        'vence: "{{ sumar_dias_habiles(hoy, 1) }}"',
        'vence: "{{ sumar_dias_habiles(hoy, 3) }}"'), encoding="utf-8")
    result = paste(demo, f"rules dry-run t8-nps-detractor --entity {survey}",
                   RULES_DIR=str(rules))
    assert result.returncode == 0, result.stderr
    frozen = re.search(r"RULES_FROZEN_NOW=(\S+)", str(demo["prefix"]))
    assert frozen
    today = BusinessCalendar.load(PROJECT_ROOT / "config").local_date(
        datetime.fromisoformat(frozen.group(1)), "America/Tijuana")
    before = BusinessCalendar.load(PROJECT_ROOT / "config").add_business_days(
        today, 1, "America/Tijuana")
    after = BusinessCalendar.load(PROJECT_ROOT / "config").add_business_days(
        today, 3, "America/Tijuana")
    assert isinstance(after, date)
    task = result.stdout.split("• podio.tarea:", 1)[1].split("• ", 1)[0]
    assert "[ya hecha" in task and "con la regla como está ahora escribiría:" in task
    assert f"vence: {after:%d/%m/%Y}" in task, task
    assert f"(vence {before:%d/%m/%Y})" in task.splitlines()[0], task  # what was done


def test_backtest_gives_counts_and_a_sample_and_writes_nothing(
        demo: dict[str, object], sandbox: Sandbox) -> None:
    def store() -> list[object]:
        return [query(demo, f"select count(*) from {table}") for table in
                ("action_ledger", "rule_runs", "rule_timers", "rule_state")] + [
            query(demo, "select count(*) from change_events where processed_at is null"),
            query(demo, "select status, count(*) from action_ledger group by status")]

    tools = {k: v for k, v in sandbox.env().items() if k.startswith(("PODIO_", "JIRA_"))}
    before, calls = store(), sandbox.calls.snapshot()
    state = [sandbox.tools[t].snapshot() for t in ("podio", "jira")]
    result = paste(demo, "rules dry-run t1-autocompletar-ticket --desde 2026-11-18", **tools)
    assert result.returncode == 0, result.stderr
    assert "Backtest desde el 18/11/2026" in result.stdout
    counted = re.search(r"(\d+) cambios de tickets desde entonces, (\d+) activan su "
                        r"disparador", result.stdout)
    assert counted and int(counted.group(2)) > 0, result.stdout[:3000]
    matched = re.search(r"(\d+) tickets evaluado\(s\), (\d+) cumple\(n\)", result.stdout)
    assert matched and int(matched.group(2)) > 0
    assert re.search(r"Efectos: \d+ podio\.actualizar \(hecha\)", result.stdout)
    assert "Regla t1-autocompletar-ticket (versión" in result.stdout  # the sample
    assert "no se escribió nada" in result.stdout
    schedule = paste(demo, "rules dry-run m13-revision-uso --desde 2026-11-01", **tools)
    assert schedule.returncode == 0, schedule.stderr
    assert re.search(r"\d+ vez/veces de su programa", schedule.stdout)
    assert store() == before
    assert sandbox.calls.snapshot() == calls
    assert [sandbox.tools[t].snapshot() for t in ("podio", "jira")] == state
    no_rule = paste(demo, "rules dry-run --desde 2026-11-01")
    assert no_rule.returncode == 1 and "--desde necesita una regla" in no_rule.stderr
    bad = paste(demo, "rules dry-run t1-autocompletar-ticket --desde ayer")
    assert bad.returncode == 2 and "no es una fecha" in bad.stderr


def test_validate_checks_people_numbers_and_yes_no(tmp_path: Path) -> None:
    rules = tmp_path / "reglas"
    rules.mkdir()
    (rules / "tarea.yaml").write_text(
        'id: prueba-datos\nnombre: "Prueba"\nactiva: si\nentidad: ticket\ndisparadores:\n'
        '  - evento: creado\ndatos:\n  lider: agente-9@saeko.test\n'
        '  cliente: alguien@colegio.test\nacciones:\n  - podio.tarea:\n      texto: "Hola"\n'
        '      responsable: "{{ datos.lider }}"\n'
        "      vence: \"{{ sumar_dias_habiles(hoy, 'tres') }}\"\n", encoding="utf-8")
    (rules / "apagada.yaml").write_text(
        'id: prueba-apagada\nnombre: "Apagada"\nactiva: no\nentidad: ticket\n'
        'disparadores:\n  - evento: creado\nacciones:\n  - podio.comentario:\n'
        '      texto: "Hola"\n', encoding="utf-8")
    (rules / "quizas.yaml").write_text(
        'id: prueba-quizas\nnombre: "Quizás"\nactiva: quizas\nentidad: ticket\n'
        'disparadores:\n  - evento: creado\nacciones:\n  - podio.comentario:\n'
        '      texto: "Hola"\n', encoding="utf-8")
    result = run_cli(["rules", "validate", str(rules)], tmp_path)
    assert result.returncode == 1
    out = result.stdout.replace("\n", " ")
    assert "tarea.yaml:8: datos.lider: «agente-9@saeko.test» no está en config/staff.yaml" in out
    assert "alguien@colegio.test" not in out  # not the staff's domain: not a staff member
    assert ('tarea.yaml:14: acción "podio.tarea": "vence": el argumento 2 de '
            '"sumar_dias_habiles" debe ser un número, no «tres»') in out
    assert 'quizas.yaml:3: "activa" debe ser sí o no' in out
    assert "apagada.yaml" not in out
    assert "3 problema(s)" in out
    good = run_cli(["rules", "validate", str(rules / "apagada.yaml")], tmp_path)
    assert good.returncode == 0, good.stdout


def test_reloj_real_runs_the_demo_at_the_current_hour(tmp_path: Path) -> None:
    result = run_cli(["demo", "--clients", "6", "--reloj-real", "--folder",
                      str(tmp_path / "real")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reloj: el real (--reloj-real)" in result.stdout
    hints = HINT.findall(result.stdout)
    assert hints and "RULES_FROZEN_NOW" not in hints[0][0]
    with sqlite3.connect(str(tmp_path / "real" / "saeko-demo.db")) as conn:
        (latest,), = conn.execute("select max(opened_at) from tickets")
    assert str(latest) >= f"{datetime.now().year}-{datetime.now().month:02d}", latest
