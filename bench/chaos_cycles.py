"""The chaos suite's sandboxes, stores and cycles (``bench/chaos.py``): the bounds of every
wait and the settings of the harness's subprocesses, a served sandbox of the test world,
the workspace (config copy, stores, process logs), `saeko-sync run` as a subprocess, SQLite
copies and PostgreSQL schemas, and the console everything prints to.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chaos_plan import ROOT, WORLD_CLIENTS, WORLD_NOW, WORLD_SEED
from rich.console import Console

from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world

# Rules and config copied from config/ for every run (the shipped T1-T8 only).
CONFIG_FILES = ("calendar.yaml", "podio.yaml", "staff.yaml", "google.yaml", "salud.yaml",
                "reuniones.yaml", "kpis.yaml", "informes.yaml", "comisiones.yaml")

# --- bounds --------------------------------------------------------------------------------

CYCLE_TIMEOUT_SECONDS = 180.0  # one `saeko-sync run`
SETTLE_CYCLES = 8  # fault-free cycles after a trial until quiescent
RECOVER_CYCLES = 5  # restarts after a kill until the ledger is clean
SERVE_START_SECONDS = 40.0
SERVE_SETTLE_SECONDS = 90.0
HELD_ELSEWHERE = 3  # `saeko-sync run` exit code: another process holds the rule lease
HELD_RETRIES = 10
# Client settings for every run: short backoffs (the sandbox answers at once) and timeouts
# shorter than the timeout fault's delay, so a "timeout" fault is a real client timeout.
CLIENT_TIMEOUT_SECONDS = 2.0
TIMEOUT_FAULT_SECONDS = 2.6
HARNESS_ENV = {
    "LOG_LEVEL": "WARNING", "LOG_FORMAT": "console",
    "RULES_RETRY_BASE_SECONDS": "0",  # failed effects are due again at the frozen "now"
    "PODIO_RETRY_BASE_SECONDS": "0.01", "PODIO_RATE_LIMIT_BACKOFF_SECONDS": "0.05",
    "PODIO_RATE_LIMIT_PER_HOUR": "1000000",
    "JIRA_RETRY_BASE_SECONDS": "0.01", "GOOGLE_RETRY_BASE_SECONDS": "0.01",
    "PODIO_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
    "JIRA_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
    "GOOGLE_TIMEOUT_SECONDS": str(CLIENT_TIMEOUT_SECONDS),
}
RAISED_QUOTA = 1_000_000
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

console = Console(width=150)


# --- sandboxes, stores and cycles --------------------------------------------------------


@contextmanager
def served_sandbox() -> Iterator[Sandbox]:
    """A fresh sandbox of the test world, clock frozen at WORLD_NOW, served on 127.0.0.1;
    the tools' own quotas raised so that only injected faults fail requests."""
    box = Sandbox(build_world(clients=WORLD_CLIENTS, seed=WORLD_SEED, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    podio: Any = box.tools["podio"]
    podio.set_quota(RAISED_QUOTA, RAISED_QUOTA)
    google: Any = box.tools["google"]
    for bucket in ("sheets_read", "sheets_write", "forms_read", "forms_expensive",
                   "gmail_units", "calendar"):
        google.set_quota(bucket, RAISED_QUOTA)
    server = SandboxServer(box).start()
    try:
        yield box
    finally:
        server.stop()


def copy_config(folder: Path) -> Path:
    """config/ with every shipped automation (T1-T8, M2, M5…: config/rules/[tm]N-*.yaml;
    not the examples)."""
    config = folder / "config"
    (config / "rules").mkdir(parents=True, exist_ok=True)
    for name in CONFIG_FILES:
        shutil.copy(ROOT / "config" / name, config / name)
    shutil.copytree(ROOT / "config" / "plantillas", config / "plantillas", dirs_exist_ok=True)
    for rule in sorted((ROOT / "config" / "rules").glob("[tm][0-9]*-*.yaml")):
        shutil.copy(rule, config / "rules" / rule.name)
    return config


@dataclass
class Workspace:
    """Where one harness run keeps its config copy, store files and process logs."""

    root: Path
    config: Path

    @classmethod
    def create(cls, root: Path) -> Workspace:
        return cls(root, copy_config(root))

    def folder(self, name: str) -> Path:
        path = self.root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        path.mkdir(parents=True, exist_ok=True)
        return path


def base_env(box: Sandbox, url: str, workspace: Workspace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PODIO_", "JIRA_", "GOOGLE_", "RULES_", "SERVE_", "SYNC_",
                                "INBOX_", "WEBHOOK_", "PUBLIC_", "DATABASE_", "CONFIG_"))}
    env |= box.env() | HARNESS_ENV
    env |= {"DATABASE_URL": url, "CONFIG_DIR": str(workspace.config), "PYTHONPATH": str(ROOT)}
    return env


@dataclass
class CycleResult:
    rc: int | None  # None: timed out (and killed by the harness)
    seconds: float
    killed: bool  # a kill fault killed it
    log: Path


class Cycles:
    """`saeko-sync run` as a subprocess against one sandbox and one store. The sandbox's
    kill faults target the running cycle (its pid is registered while it runs)."""

    def __init__(self, box: Sandbox, url: str, workspace: Workspace, folder: Path) -> None:
        self.box = box
        self.url = url
        self.workspace = workspace
        self.folder = folder
        self.count = 0
        self.held = 0

    def run(self, now: datetime) -> CycleResult:
        for _ in range(HELD_RETRIES):
            result = self._once(now)
            if result.rc != HELD_ELSEWHERE:
                return result
            self.held += 1  # a lease left by a killed cycle: the next try takes it
            time.sleep(0.2)
        return result

    def _once(self, now: datetime) -> CycleResult:
        self.count += 1
        env = base_env(self.box, self.url, self.workspace) | {
            "RULES_FROZEN_NOW": now.isoformat()}
        log = self.folder / f"cycle-{self.count:03d}.log"
        kills_before = len(self.box.faults.kills)
        started = time.monotonic()
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "saeko_sync", "run"],
                                    cwd=self.folder, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
            self.box.faults.kill_pid = proc.pid
            rc: int | None
            try:
                rc = proc.wait(timeout=CYCLE_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
                rc = None
            finally:
                self.box.faults.kill_pid = None
        killed = any(k.pid == proc.pid for k in self.box.faults.kills[kills_before:])
        return CycleResult(rc, time.monotonic() - started, killed, log)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder}/store.db"


@contextmanager
def postgres_schema(admin_url: str) -> Iterator[str]:
    """A fresh schema in the PostgreSQL database (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    schema = f"chaos_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_reason(admin_url: str) -> str | None:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres",
                             connect_timeout=2):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"
