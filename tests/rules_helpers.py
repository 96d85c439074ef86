"""Shared helpers of the rule-engine tests: settings pointing at the sandbox and a temporary
rules folder, and a synced store."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT, Settings, load_settings
from sandbox.server import Sandbox
from store.db import Database

AGENT = "agente-1@saeko.test"


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
