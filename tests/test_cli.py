"""The CLI as a person or a script uses it: real subprocesses against a running sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.settings import PROJECT_ROOT
from sandbox.server import Sandbox
from store.entities import load_mapping

CLI = [sys.executable, "-m", "saeko_sync"]
APPS = len(load_mapping(PROJECT_ROOT / "config").apps)


def run_cli(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIO_", "JIRA_",
                                                                     "GOOGLE_", "DATABASE_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run(CLI + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def write_env(sandbox: Sandbox, folder: Path, **extra: str) -> None:
    values = {**sandbox.env(), "DATABASE_URL": f"sqlite:///{folder}/cli.db", **extra}
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_sync_json_reports_every_podio_app(sandbox: Sandbox, tmp_path: Path) -> None:
    write_env(sandbox, tmp_path)
    result = run_cli(["sync", "--source", "podio", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    reports = {r["stream"]: r for r in json.loads(result.stdout)["reports"]}
    podio = sandbox.tools["podio"]
    assert reports["tickets"]["created"] == len(podio.items("tickets"))
    assert reports["clientes"]["created"] == len(podio.items("clientes"))
    again = json.loads(run_cli(["sync", "--source", "podio", "--json"], tmp_path).stdout)
    assert sum(r["api_calls"] for r in again["reports"]) <= APPS + 1  # one per app (+ token)


def test_doctor_says_what_is_wrong(sandbox: Sandbox, tmp_path: Path) -> None:
    write_env(sandbox, tmp_path)
    run_cli(["db", "upgrade"], tmp_path)
    good = run_cli(["doctor"], tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"{APPS} apps" in good.stdout
    write_env(sandbox, tmp_path, PODIO_PASSWORD="equivocada")
    bad = run_cli(["doctor"], tmp_path)
    assert bad.returncode == 1
    assert "PODIO_USERNAME/PODIO_PASSWORD" in bad.stdout.replace("\n", "")


def test_invalid_settings_are_reported_all_at_once(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIMEZONE=Mars/Base\nPODIO_PAGE_SIZE=900\n")
    result = run_cli(["doctor"], tmp_path)
    assert result.returncode == 2
    assert "TIMEZONE" in result.stderr and "PODIO_PAGE_SIZE" in result.stderr


def test_rules_validate_exits_non_zero_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "reglas"
    rules.mkdir()
    (rules / "buena.yaml").write_text(
        'id: aviso-prueba\nnombre: "Prueba"\nentidad: ticket\ndisparadores:\n'
        '  - evento: creado\nacciones:\n  - podio.comentario:\n      texto: "Hola"\n',
        encoding="utf-8")
    (rules / "mala.yaml").write_text(
        'id: otra-prueba\nnombre: "Mala"\nentidad: ticket\ndisparadores:\n'
        '  - evento: creado\nacciones:\n  - podio.actualizar:\n      campos:\n'
        '        escuelaa: "x"\n', encoding="utf-8")
    bad = run_cli(["rules", "validate", str(rules)], tmp_path)
    assert bad.returncode == 1
    assert "mala.yaml:9:" in bad.stdout and "escuelaa" in bad.stdout
    assert "buena.yaml" not in bad.stdout
    good = run_cli(["rules", "validate", str(rules / "buena.yaml")], tmp_path)
    assert good.returncode == 0, good.stdout


def _new_ticket_for_t1(sandbox: Sandbox) -> tuple[int, int]:
    """A user's new ticket (title and reporter only); returns (item id, its AM's profile)."""
    from sandbox.world import podio_item_id

    world = sandbox.world
    client = next(c for c in world.clients if c.am)
    school = next(s for s in world.schools if s.client_key == client.key)
    user = next(u for u in world.users if u.school_key == school.key)
    item = sandbox.tools["podio"].create_item_as("agente-2@saeko.test", "tickets", {
        "titulo": "No carga la boleta", "estatus": "Nuevo",
        "usuario": [podio_item_id("usuarios", user.key)], "email-reportante": user.email})
    am = world.staff_by_key(client.am)
    assert am is not None
    return int(item), int(am.podio_profile_id)


def _synced(folder: Path) -> dict[str, str]:
    """source/stream -> last status, from the store the CLI wrote."""
    from sqlalchemy import select

    from store.db import Database
    from store.models import SyncState

    db = Database(f"sqlite:///{folder}/cli.db")
    try:
        with db.session() as s:
            return {f"{st.source}/{st.stream}": str(st.last_status)
                    for st in s.scalars(select(SyncState))}
    finally:
        db.dispose()


def test_run_survives_jira_down_at_connect(sandbox: Sandbox, tmp_path: Path) -> None:
    """Jira answers 503 to serverInfo (the library client's first call) more often than the
    retries absorb: Podio and Google still sync, the rules still run on that data (T1 fills
    a new ticket in Podio), and `run` ends with 1 and says, in Spanish, that Jira failed."""
    write_env(sandbox, tmp_path, JIRA_RETRY_BASE_SECONDS="0.01")
    first = run_cli(["run"], tmp_path)  # the first cycle only records what exists
    assert first.returncode == 0, first.stdout + first.stderr
    item, am = _new_ticket_for_t1(sandbox)
    fault = sandbox.faults.add(kind="status", status=503, tool="jira", path="serverInfo",
                               count=20)
    result = run_cli(["run"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    stderr = " ".join(result.stderr.split())
    assert "Sincronización incompleta: falló jira" in stderr and "503" in stderr
    assert fault.hits >= 4  # the first try and JIRA_MAX_RETRIES (3) more
    statuses = _synced(tmp_path)
    assert statuses["podio/tickets"] == statuses["sheets/usage"] == "ok"
    assert statuses["forms/csat"] == statuses["forms/nps"] == "ok"
    assert statuses["jira/issues"] == "failed"  # what the status page shows
    assert sandbox.tools["podio"].values(item).get("am") == [am], result.stdout  # T1 ran


def test_run_retries_a_single_jira_503_at_connect(sandbox: Sandbox, tmp_path: Path) -> None:
    write_env(sandbox, tmp_path, JIRA_RETRY_BASE_SECONDS="0.01")
    fault = sandbox.faults.add(kind="status", status=503, tool="jira", path="serverInfo",
                               count=1)
    result = run_cli(["run"], tmp_path)
    assert fault.hits == 1
    assert "falló" not in result.stderr, result.stderr
    assert _synced(tmp_path)["jira/issues"] == "ok"
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_demo_does_not_import_the_cli() -> None:
    """The helpers both print with live in jobs.console: no import circle with the CLI."""
    import ast

    root = Path(__file__).resolve().parents[1]
    for module in ("jobs/demo.py", "jobs/console.py"):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                     for a in n.names}
        assert "saeko_sync" not in imported, module
