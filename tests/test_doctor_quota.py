"""`doctor` shows each tool's quota over the last hour as the tool reported it, to any
process (here a `saeko-sync run` before it): one line per tool."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox.server import Sandbox
from tests.test_cli import run_cli, write_env


def test_doctor_shows_what_each_tool_reported(sandbox: Sandbox, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    write_env(sandbox, tmp_path)
    before = run_cli(["doctor"], tmp_path)
    assert "sin informe de Podio en la última hora" in before.stdout
    ran = run_cli(["run"], tmp_path)
    assert ran.returncode in (0, 1), ran.stdout + ran.stderr
    podio = sandbox.tools["podio"]
    usage = podio.service.limiter.usage(podio.service.now())["usage"]
    used = sum(u["used"] for u in usage if u["class"] == "general")

    doctor = run_cli(["doctor"], tmp_path)
    lines = {m.group(1): m.group(2).strip() for m in re.finditer(
        r"│ (cuota \w+)\s*│\s*✓\s*│ (.*?)│", doctor.stdout)}
    assert set(lines) == {"cuota podio", "cuota jira", "cuota google"}, doctor.stdout
    assert lines["cuota podio"].startswith(
        f"Podio informa usuario de integración: quedan {1000 - used} de 1000 "
        f"({used} usadas en la hora), ")
    assert lines["cuota jira"].startswith("Jira no envió X-RateLimit-*")
    assert lines["cuota google"].startswith("Google no informa su cuota")
