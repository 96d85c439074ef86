"""Settings set in `.env` and the environment change what saeko-sync does (the environment
wins over `.env`), seen in the sandbox and the store — not in pydantic's defaults."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.podio.sync import sync_podio
from core.settings import Settings, load_settings
from rules import api
from rules.engine import run_cycle
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.models import Ticket
from tests.rules_helpers import AGENT, make_config_dir, write_rule

LOCAL_NOON = datetime(2026, 11, 18, 20, 0)  # Wednesday 12:00 in Tijuana (UTC-8)

CLIENT_CLOSED = """
id: aviso-cerrados
nombre: Aviso a los tickets cerrados de un cliente
entidad: ticket
disparadores:
  - se_cumple: ticket.estatus == "Cerrado" and ticket.cliente.id_podio == "1000001"
acciones:
  - podio.comentario:
      texto: "Aviso masivo"
"""

ESCALATED = """
id: aviso-escalado
nombre: Aviso al escalar
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
    a: Escalado
acciones:
  - podio.comentario:
      texto: "Escalado"
"""


def settings_from_files(sandbox: Sandbox, folder: Path, monkeypatch: pytest.MonkeyPatch,
                        dotenv: dict[str, str], environ: dict[str, str]) -> Settings:
    """Settings the way the CLI builds them: `.env` in the working folder plus the
    process environment, no arguments."""
    config = make_config_dir(folder)
    values = {**sandbox.env(), "DATABASE_URL": f"sqlite:///{folder}/store.db",
              "CONFIG_DIR": str(config), "PODIO_RETRY_BASE_SECONDS": "0.01", **dotenv}
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    for key in (*values, *environ):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(folder)
    return load_settings()


def synced(settings: Settings) -> Database:
    db = Database(settings.database_url)
    db.upgrade()
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)  # the first cycle only records what exists
    return db


def test_the_storm_limit_from_the_environment_holds_effects(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_files(sandbox, tmp_path, monkeypatch,
                                   dotenv={"RULES_STORM_LIMIT": "100"},
                                   environ={"RULES_STORM_LIMIT": "3"})
    db = synced(settings)
    assert Path(settings.database_url.removeprefix("sqlite:///")).exists()  # DATABASE_URL
    write_rule(settings.config_dir, "cerrados.yaml", CLIENT_CLOSED)
    report = run_cycle(settings, db, now=LOCAL_NOON)
    with db.session() as s:
        closed = [int(i) for i in s.scalars(select(Ticket.source_id).where(
            Ticket.status == "Cerrado"))]
    outcome = report.rules["aviso-cerrados"]
    # More effects than the environment's limit (3), fewer than the .env's (100): held.
    assert 3 < outcome.held < 100 and outcome.done == 0, outcome
    assert len(api.held(db, "aviso-cerrados")) == outcome.held
    podio = sandbox.tools["podio"]
    assert all(podio.comments(item) == [] for item in closed)


def test_max_attempts_from_dotenv_parks_a_failing_effect(
        sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from_files(sandbox, tmp_path, monkeypatch,
                                   dotenv={"RULES_MAX_ATTEMPTS": "1"}, environ={})
    db = synced(settings)
    write_rule(settings.config_dir, "escalado.yaml", ESCALATED)
    podio = sandbox.tools["podio"]
    item = podio.create_item_as(AGENT, "tickets", {
        "titulo": "No abre el portal", "estatus": "Nuevo", "prioridad": "Alta",
        "escuela": podio_item_id("escuelas", 1)})
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)
    podio.update_item_as(AGENT, item, {"estatus": "Escalado"})
    sync_podio(settings, db)
    # Refused (403: not a busy or broken Podio, which would use up no attempts).
    sandbox.faults.add(kind="status", tool="podio", method="POST", path="^/comment/",
                       status=403, count=100)
    run_cycle(settings, db, now=LOCAL_NOON)
    # One attempt allowed (the default is 5): dead after the first failure, not retried.
    assert [(f["status"], f["attempts"]) for f in api.failures(db, "aviso-escalado")] == [
        ("dead", 1)]
    assert podio.comments(item) == []
