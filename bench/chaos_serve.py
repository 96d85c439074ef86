"""The chaos suite's `serve` trials (``bench/chaos.py``): `saeko-sync serve` replicas as
subprocesses with Podio hooks pointing at them, waiting until the service caught up, kill
faults bound to one replica, and the trials (c) kill -9 of `serve` and (d) two replicas on
PostgreSQL, one killed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from chaos_cycles import (
    SERVE_SETTLE_SECONDS,
    SERVE_START_SECONDS,
    Cycles,
    Workspace,
    base_env,
    console,
    postgres_schema,
    served_sandbox,
    sqlite_url,
)
from chaos_plan import Player
from chaos_state import count, unfinished
from chaos_trials import Context, Trial, finish, switch_on

from sandbox.server import Sandbox
from store.db import Database
from store.models import ChangeEvent, JobRun, WebhookInbox

# --- serve -------------------------------------------------------------------------------------

WEBHOOK_TOKEN = "chaos-" + "w" * 26
PRIMARY_WRITES = r"^/(item/\d+/?|task/.*|comment/.*|rest/api/\w+/issue(/[^/]+/comment)?/?|" \
                 r"gmail/v1/users/[^/]+/messages/send)$"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One `saeko-sync serve` subprocess on 127.0.0.1:port."""

    def __init__(self, box: Sandbox, url: str, workspace: Workspace, folder: Path,
                 port: int, name: str, frozen_now: datetime) -> None:
        self.box, self.url, self.port, self.name = box, url, port, name
        self.env = base_env(box, url, workspace) | {
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN, "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "SYNC_INTERVAL_SECONDS": "2", "RULES_INTERVAL_SECONDS": "3600",
            "INBOX_CLAIM_SECONDS": "3", "RULES_FROZEN_NOW": frozen_now.isoformat()}
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Replica:
        self.starts += 1
        log = (self.folder / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "saeko_sync", "serve", "--port", str(self.port)],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + SERVE_START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start (see {self.folder})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz",
                             timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not start within {SERVE_START_SECONDS:.0f} s")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def register_hooks(box: Sandbox, replica: Replica, timeout: float = 30.0) -> None:
    """Podio hooks pointing at ``replica`` (as `saeko-sync hooks register` does), verified by
    its worker."""
    from connectors.clients import ActionRuntime
    from core.settings import load_settings
    from jobs import hooks

    env = {k.lower(): v for k, v in replica.env.items()
           if k.startswith(("PODIO_", "WEBHOOK_", "PUBLIC_"))}
    settings = load_settings(_env_file=None, **env)
    runtime = ActionRuntime(settings)
    try:
        hooks.register_hooks(settings, runtime)
    finally:
        runtime.close()
    podio: Any = box.tools["podio"]
    wait_until(lambda: all(h["status"] == "active" for h in podio.hooks()), timeout,
               "Podio hooks verified")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    console.print(f"[yellow]gave up waiting for {what} after {timeout:.0f} s[/yellow]")
    return False


def serve_idle(db: Database, box: Sandbox, since: datetime) -> bool:
    """The service caught up: deliveries handled, a sync started after ``since`` finished,
    every change event evaluated, nothing unfinished in the ledger."""
    if not box.webhooks.wait_idle(0.5):
        return False
    synced = count(db, JobRun, JobRun.job == "sync", JobRun.started_at >= since,
                   JobRun.finished_at.is_not(None)) > 0
    return (synced and count(db, WebhookInbox, WebhookInbox.status == "pending") == 0
            and count(db, ChangeEvent, ChangeEvent.processed_at.is_(None)) == 0
            and not unfinished(db))


def settle_serve(db: Database, box: Sandbox, trial: Trial, what: str,
                 replicas: list[Replica]) -> None:
    """Wait until the service caught up (twice in a row), or until the only replica died."""
    since = datetime.now(UTC).replace(tzinfo=None)  # a sync must start after the changes
    stable = [0]

    def twice() -> bool:
        if not any(r.alive for r in replicas):
            return True
        stable[0] = stable[0] + 1 if serve_idle(db, box, since) else 0
        return stable[0] >= 2

    if not wait_until(twice, SERVE_SETTLE_SECONDS, what):
        trial.notes.append(f"did not settle: {what}; unfinished {unfinished(db)[:3]}")


def serve_kill_fault(box: Sandbox, replica: Replica, when: str, skip: int = 0,
                     method: str = "POST,PUT") -> Any:
    """Kill ``replica`` at its write number ``skip`` + 1 from now (writes of other processes
    do not count)."""
    return box.faults.add(kind="kill", method=method, path=PRIMARY_WRITES, count=1,
                          skip=skip, when=when, pid=replica.pid, from_pid=True)


@dataclass(frozen=True)
class ServeKill:
    when: str  # before | after
    skip: int = 0  # writes of the replica to let through first
    method: str = "POST,PUT"


def run_serve(ctx: Context, trial: Trial, url: str, folder: Path,
              kill_at: dict[int, ServeKill], replicas: int) -> Trial:
    """The plan with `serve` replicas doing the work (Podio hooks to the first one, polling
    every 2 s on all); from each step of ``kill_at`` on, the first replica is killed at one
    of its writes. With one replica it is restarted at once; with two, the survivor
    finishes the day."""
    started = time.monotonic()
    with served_sandbox() as box:
        db = Database(url)
        group: list[Replica] = []
        try:
            switch_on(Cycles(box, url, ctx.workspace, folder))
            player = Player(box)
            # The replicas' rules run at the day's end from their first cycle, so their
            # schedules fire at once: the accounts' overnight data (plan step 0, before the
            # 9:00 slots in the run trials) comes in before the service starts.
            player.play(ctx.plan[0])
            group = [Replica(box, url, ctx.workspace, folder, free_port(), f"replica-{n}",
                             ctx.end).start() for n in range(replicas)]
            register_hooks(box, group[0])
            fault = None
            for index, step in enumerate(ctx.plan):
                if index == 0:
                    continue  # played before the replicas started
                if index in kill_at and group[0].alive and fault is None:
                    kill = kill_at[index]
                    fault = serve_kill_fault(box, group[0], kill.when, kill.skip, kill.method)
                player.play(step)
                settle_serve(db, box, trial, f"step {index}", group)
                if fault is not None and fault.hits:
                    box.faults.remove(fault)
                    fault = None
                    trial.kills += 1
                    kill = box.faults.kills[-1]
                    trial.notes.append(f"killed {group[0].name} at step {index} {kill.when} "
                                       f"{kill.method} {kill.tool}{kill.path}")
                    if replicas == 1:
                        group[0].start()
                        settle_serve(db, box, trial, f"restart after step {index}", group)
            if fault is not None:
                box.faults.remove(fault)
                trial.notes.append("a kill point was never reached")
            settle_serve(db, box, trial, "the end of the day", group)
            return finish(trial, box, db, started)
        finally:
            for replica in group:
                replica.stop()
            db.dispose()


def run_serve_kills(ctx: Context, points: int) -> Trial:
    """(c) a few kill points of one `serve` replica on SQLite, restarted after each."""
    trial = Trial("c", "kill -9 serve")
    folder = ctx.workspace.folder("serve-kills")
    steps = _busy_steps(ctx, points)
    kill_at = {step: ServeKill("after" if n % 2 == 0 else "before", skip=n % 3)
               for n, step in enumerate(steps)}
    return run_serve(ctx, trial, sqlite_url(folder), folder, kill_at, replicas=1)


def run_replicas(ctx: Context, admin_url: str) -> Trial:
    """(d) two `serve` replicas on PostgreSQL; the first is killed mid-work (after a tool
    accepted a create, before its ledger knows) and the survivor finishes."""
    trial = Trial("d", "two serve replicas on PostgreSQL, one killed")
    folder = ctx.workspace.folder("replicas")
    kill = {_busy_steps(ctx, 1)[0]: ServeKill("after", method="POST")}
    with postgres_schema(admin_url) as url:
        return run_serve(ctx, trial, url, folder, kill, replicas=2)


def _busy_steps(ctx: Context, points: int) -> list[int]:
    """Steps spread over the day whose actions make the rules write (not surveys only)."""
    busy = [n for n, step in enumerate(ctx.plan)
            if any(a.kind in ("escalate", "answer", "handoff", "close", "resolve_jira")
                   for a in step.actions)]
    stride = max(1, len(busy) // max(1, points))
    return busy[stride // 2::stride][:points]
