"""Shared helpers of the rule-engine tests: settings pointing at the sandbox and a temporary
rules folder, a synced store switched on, tickets made in the sandbox, and the ledger."""

from __future__ import annotations

import shutil
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.podio.sync import sync_podio
from core.settings import PROJECT_ROOT, Settings, load_settings
from rules.engine import run_cycle
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.models import ActionLedger

AGENT = "agente-1@saeko.test"
AGENT_PROFILE = 5009  # agente-1 in config/staff.yaml
LOCAL_NOON = datetime(2026, 11, 18, 20, 0)  # Wednesday 12:00 in Tijuana (UTC-8)

ESCALATED_COMMENT = """
id: aviso-escalado
nombre: Aviso al escalar
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
    a: Escalado
condiciones:
  - ticket.prioridad in ["Alta", "Crítica"]
acciones:
  - podio.comentario:
      texto: "Escalado ({{ ticket.prioridad }}) por {{ ticket.responsable.nombre }}"
  - podio.tarea:
      texto: "Dar seguimiento a {{ ticket.titulo }}"
      responsable: "{{ ticket.responsable }}"
      vence: "{{ sumar_dias_habiles(hoy, 1) }}"
"""

# Store-independent behaviour runs on SQLite only, to keep the suite fast; the ledger,
# timers, leases and bulk loading are exercised on PostgreSQL by the other tests.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class SimulatedCrash(BaseException):
    """The process dies right after the tool accepted an effect."""


def make_config_dir(tmp_path: Path, rules: dict[str, str] | None = None) -> Path:
    """A config folder like the project's (calendar, podio.yaml, staff, templates) with the
    given rule files in config/rules."""
    config = tmp_path / "config"
    (config / "rules").mkdir(parents=True, exist_ok=True)
    (config / "plantillas").mkdir(exist_ok=True)
    for name in ("calendar.yaml", "podio.yaml", "staff.yaml"):
        shutil.copy(PROJECT_ROOT / "config" / name, config / name)
    for name, text in (rules or {}).items():
        write_rule(config, name, text)
    return config


def write_rule(config: Path, name: str, text: str) -> Path:
    path = config / "rules" / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def rule_settings(config: Path, db: Database, sandbox: Sandbox | None = None,
                  **extra: Any) -> Settings:
    env: dict[str, Any] = {}
    if sandbox is not None:
        env = {k.lower(): v for k, v in sandbox.env().items()
               if k.startswith(("PODIO_", "JIRA_", "GOOGLE_"))}
    values = {"database_url": db.url, "config_dir": config, "podio_retry_base_seconds": 0.01,
              "podio_rate_limit_backoff_seconds": 0.05, "rules_retry_base_seconds": 60,
              **env}
    values.update(extra)
    return load_settings(**values)


def switched_on(sandbox: Sandbox, db: Database, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A synced store whose initial change events were consumed by an empty rule set:
    ``settings`` (with ``extra``), the ``config`` folder and the sandbox's ``podio``."""
    config = make_config_dir(tmp_path)
    settings = rule_settings(config, db, sandbox, **extra)
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)
    return {"settings": settings, "config": config, "podio": sandbox.tools["podio"]}


def new_ticket(env: dict[str, Any], title: str, **fields: Any) -> int:
    """A ticket created in Podio by AGENT (high priority, school 1) and synced; its item id."""
    values = {"titulo": title, "estatus": "Nuevo", "prioridad": "Alta",
              "escuela": podio_item_id("escuelas", 1), "responsable": AGENT_PROFILE, **fields}
    item = env["podio"].create_item_as(AGENT, "tickets", values)
    sync_podio(env["settings"], Database(env["settings"].database_url))
    return int(item)


def resync(env: dict[str, Any], db: Database) -> None:
    """Read Podio again into the store."""
    sync_podio(env["settings"], db)


def ledger(db: Database, rule_id: str) -> list[ActionLedger]:
    """The rule's ledger rows, in the order they were planned."""
    with db.session() as s:
        return list(s.scalars(select(ActionLedger).where(ActionLedger.rule_id == rule_id)
                              .order_by(ActionLedger.id)))
