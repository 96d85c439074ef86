"""The chaos suite's trials (``bench/chaos.py``): what every trial shares, the switched-on
store, settling until quiescent, and the trials of scenarios (a) baseline, (b) injected
faults, (c) kill -9 of `run`, (e) an empty store and (f) one cycle after all changes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaos_cycles import (
    RECOVER_CYCLES,
    SETTLE_CYCLES,
    TIMEOUT_FAULT_SECONDS,
    Cycles,
    Workspace,
    console,
    served_sandbox,
    sqlite_url,
)
from chaos_kills import KillPoint, WriteSeen, action_of, align_writes, is_write
from chaos_plan import WORLD_NOW, Player, Step
from chaos_state import (
    Difference,
    ToolState,
    ledger_done,
    ledger_rows,
    ledger_statuses,
    logical_duplicates,
    tool_state,
    unfinished,
)

from sandbox.server import Sandbox
from store.db import Database

# --- trials ------------------------------------------------------------------------------------


@dataclass
class Trial:
    scenario: str
    name: str
    state: ToolState | None = None
    ledger: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    kills: int = 0
    cycles: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    compare_ledger: bool = True
    difference: Difference | None = None
    # Only the baseline keeps these (for kill points and the empty-store scenario).
    writes: list[WriteSeen] = field(default_factory=list)


@dataclass
class Context:
    """What every trial shares: the plan and the workspace (each trial switches its own
    store on, in its own sandbox: ``switch_on``)."""

    plan: list[Step]
    workspace: Workspace
    verbose: bool = False
    log: Callable[[str], None] = console.print

    @property
    def end(self) -> datetime:
        return self.plan[-1].at


def switch_on(cycles: Cycles) -> None:
    """The world as it was when the automations were switched on: one `saeko-sync run` on
    the trial's own empty store and sandbox (the first rule cycle of a store remembers what
    exists and fires no event rule; schedules count their slots from then on; M1 scores
    every client, in this sandbox, so that store and tools agree)."""
    result = cycles.run(WORLD_NOW)
    if result.rc != 0:
        raise SystemExit(f"the switch-on cycle failed (exit {result.rc}); see {result.log}")


def settle(cycles: Cycles, db: Database, now: datetime, trial: Trial,
           limit: int = SETTLE_CYCLES) -> bool:
    """Fault-free cycles until one ends well, changes nothing in the ledger and leaves
    nothing unfinished (quiescent). False if ``limit`` cycles did not get there."""
    for _ in range(limit):
        before = ledger_rows(db)
        result = cycles.run(now)
        trial.cycles += 1
        if result.rc == 0 and not unfinished(db) and ledger_rows(db) == before:
            return True
    left = unfinished(db)
    trial.notes.append(f"not quiescent after {limit} settling cycles: {len(left)} unfinished "
                       f"ledger rows {left[:3]}")
    return False


def finish(trial: Trial, box: Sandbox, db: Database, started: float) -> Trial:
    trial.state = tool_state(box)
    trial.ledger = ledger_done(db)
    trial.statuses = ledger_statuses(db)
    trial.seconds = time.monotonic() - started
    dead = trial.statuses.get("dead", 0)
    if dead:
        trial.notes.append(f"{dead} dead ledger rows")
    return trial


def run_baseline(ctx: Context, name: str = "baseline") -> tuple[Trial, Any]:
    """(a) a cycle after each step; returns the trial and a keeper for the sandbox, which
    the empty-store scenario reuses."""
    started = time.monotonic()
    trial = Trial("a", name)
    folder = ctx.workspace.folder(name)
    url = sqlite_url(folder)
    keeper = served_sandbox()
    box = keeper.__enter__()
    db = Database(url)
    try:
        cycles = Cycles(box, url, ctx.workspace, folder)
        switch_on(cycles)
        player = Player(box)
        for number, step in enumerate(ctx.plan):
            player.play(step)
            mark, rows_before = box.calls.mark(), len(ledger_rows(db))
            result = cycles.run(step.at)
            trial.cycles += 1
            if result.rc != 0:
                trial.notes.append(f"step {number}: exit {result.rc} ({result.log})")
            writes = [e for e in box.calls.journal(mark) if is_write(e)]
            trial.writes += align_writes(number, writes, ledger_rows(db)[rows_before:])
        settle(cycles, db, ctx.end, trial)
        finish(trial, box, db, started)
        duplicates = logical_duplicates(trial.state or ToolState())
        trial.difference = Difference(duplicated=len(duplicates),
                                      details=[f"two copies of one effect: {d}"
                                               for d in duplicates])
        return trial, (keeper, box, db)
    except BaseException:
        db.dispose()
        keeper.__exit__(None, None, None)
        raise


def run_repeat(ctx: Context) -> Trial:
    trial, (keeper, _box, db) = run_baseline(ctx, "baseline-repeat")
    db.dispose()
    keeper.__exit__(None, None, None)
    trial.difference = None
    return trial


def add_rate_faults(box: Sandbox, rate: float, seed: int) -> None:
    """``rate`` of all requests fail, split evenly over the fault kinds, on every tool and
    endpoint (OAuth and token endpoints included)."""
    box.faults.reseed(seed)
    share = rate / 8
    for tool, status in (("podio", 420), ("jira", 429), ("google", 429)):
        box.faults.add(kind="status", tool=tool, status=status, retry_after=1, rate=share)
    box.faults.add(kind="status", status=503, rate=share)
    box.faults.add(kind="status", status=500, rate=share)
    # Timeouts: the client gives up; the tool either never does it, or does it late.
    box.faults.add(kind="latency", delay=TIMEOUT_FAULT_SECONDS, rate=share)
    box.faults.add(kind="latency", delay=TIMEOUT_FAULT_SECONDS, late=True, rate=share)
    box.faults.add(kind="latency", delay=0.3, rate=share)  # slow
    box.faults.add(kind="drop", rate=share)
    box.faults.add(kind="drop_after", rate=share)


def run_faults(ctx: Context, rate: float, seed: int) -> Trial:
    """(b) faults at ``rate`` during the plan's cycles, then fault-free until quiescent."""
    started = time.monotonic()
    trial = Trial("b", f"faults {rate:.0%} seed {seed}")
    folder = ctx.workspace.folder(f"faults-{int(rate * 100)}-{seed}")
    url = sqlite_url(folder)
    with served_sandbox() as box:
        db = Database(url)
        try:
            cycles = Cycles(box, url, ctx.workspace, folder)
            switch_on(cycles)
            player = Player(box)
            add_rate_faults(box, rate, seed)
            failed = 0
            for step in ctx.plan:
                player.play(step)
                failed += cycles.run(step.at).rc != 0
                trial.cycles += 1
            box.faults.clear()
            trial.faults = sum(box.faults.fired.values())
            trial.notes.append(f"{failed} of {len(ctx.plan)} faulty cycles exited non-zero; "
                               f"faults by kind {dict(box.faults.fired)}")
            settle(cycles, db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def kill_fault(box: Sandbox, point: KillPoint) -> Any:
    w = point.write
    return box.faults.add(kind="kill", tool=w.tool, method=w.method,
                          path="^" + re.escape(w.path) + "$", skip=w.occurrence, count=1,
                          when=point.when)


def recover(cycles: Cycles, db: Database, now: datetime, trial: Trial) -> None:
    for _ in range(RECOVER_CYCLES):
        result = cycles.run(now)
        trial.cycles += 1
        if result.rc == 0 and not unfinished(db):
            return
    trial.notes.append(f"still unfinished after {RECOVER_CYCLES} restarts: {unfinished(db)}")


def run_kills(ctx: Context, points: list[KillPoint], number: int) -> Trial:
    """(c) `run` killed at each point (at most one per cycle); restarted at once or left to
    the next planned cycle; fault-free cycles until quiescent at the end."""
    started = time.monotonic()
    trial = Trial("c", f"kill -9 run #{number}")
    folder = ctx.workspace.folder(f"kills-{number}")
    url = sqlite_url(folder)
    by_cycle = {p.cycle: p for p in points}
    with served_sandbox() as box:
        db = Database(url)
        try:
            cycles = Cycles(box, url, ctx.workspace, folder)
            switch_on(cycles)
            player = Player(box)
            for index, step in enumerate(ctx.plan):
                player.play(step)
                point = by_cycle.get(index)
                fault = kill_fault(box, point) if point else None
                result = cycles.run(step.at)
                trial.cycles += 1
                if fault is not None:
                    box.faults.remove(fault)
                if point is None:
                    continue
                if not result.killed:
                    trial.notes.append(f"not reached: {point.label()} (exit {result.rc})")
                    continue
                trial.kills += 1
                pending = [f"{key.split('|')[0]} {action} {status}"
                           for key, action, status in unfinished(db)]
                trial.notes.append(f"killed {point.label()}; left {pending or 'nothing'}")
                if point.recover == "now":
                    recover(cycles, db, step.at, trial)
            settle(cycles, db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def run_once(ctx: Context) -> Trial:
    """(f) every step played, then cycles until quiescent (the first sees everything)."""
    started = time.monotonic()
    trial = Trial("f", "one cycle after all changes", compare_ledger=False)
    folder = ctx.workspace.folder("once")
    url = sqlite_url(folder)
    with served_sandbox() as box:
        db = Database(url)
        try:
            cycles = Cycles(box, url, ctx.workspace, folder)
            switch_on(cycles)
            player = Player(box)
            for step in ctx.plan:
                player.play(step)
            settle(cycles, db, ctx.end, trial)
            return finish(trial, box, db, started)
        finally:
            db.dispose()


def run_fresh_store(ctx: Context, base: Trial, box: Sandbox) -> Trial:
    """(e) an empty store on the workspace the baseline left: cycles until quiescent must
    add no effect. Compared with the baseline's final state."""
    started = time.monotonic()
    trial = Trial("e", "empty store on the same workspace", compare_ledger=False)
    folder = ctx.workspace.folder("fresh-store")
    url = sqlite_url(folder)
    Database(url).upgrade()
    db = Database(url)
    try:
        mark = box.calls.mark()
        settle(Cycles(box, url, ctx.workspace, folder), db, ctx.end, trial)
        writes = [e for e in box.calls.journal(mark) if is_write(e)]
        finish(trial, box, db, started)
        done = sum(trial.ledger.values())
        trial.notes.append(f"{len(writes)} writes to the tools; {done} effects done by the "
                           f"new store's ledger ({dict(Counter(action_of(w) for w in writes))})")
        return trial
    finally:
        db.dispose()
