"""Chaos suite (issue 10): the same day of work gives the same result, whatever happens.

A fixed, seeded activity plan (new tickets with only a title and a user or an email, answers,
escalations, Jira resolutions, CSAT and NPS answers, hand-offs to the AM, manual closes) is
replayed through the sandbox's UI helpers (``sandbox.activity.StaffSimulator.act``) on a
fresh sandbox of the test world, with the sandbox clock frozen and moved by the harness.
Cycles are real `saeko-sync run` subprocesses (or `serve` replicas), so ``kill -9`` is real.
Every scenario's final sandbox state — Podio fields, tasks, comments, Gmail messages, Jira
issues and comments, Calendar events — and its action ledger are compared with the
fault-free baseline:

  a  baseline: a cycle after each step of the plan (the full run replays it twice: the
     repeat must match, or the harness itself is not deterministic)
  b  10 % and 30 % injected faults on every tool and endpoint (429/420 with Retry-After,
     5xx, timeouts, slow answers, dropped connections, lost responses), then fault-free
     cycles until quiescent
  c  kill -9 of `run` at chosen writes (before the tool does the work, or after it and
     before the ledger records it — a lost response), between two actions of one rule, and
     a few of `serve`; restarted until quiescent
  d  two `serve` replicas on PostgreSQL, one killed mid-work; the survivor finishes
  e  after the baseline, an EMPTY store on the same workspace: it must add no effect
  f  one cycle after all the changes instead of one after each

    .venv/bin/python bench/chaos.py                 # everything (see bench/README.md)
    .venv/bin/python bench/chaos.py --quick         # what tests/test_chaos.py runs
    .venv/bin/python bench/chaos.py --only a,c --kills 12 --seeds 1,2

Prints one row per scenario (trials, faults injected, kills, lost, duplicated, differing
fields) and what differed; exits 1 if any row is not 0/0/0. Only 127.0.0.1 traffic; every
wait and loop is bounded.

This file parses the options, runs the trials and prints the table; the parts are beside
it: ``chaos_plan.py`` (the world and the planned day), ``chaos_cycles.py`` (bounds,
sandboxes, stores, `run` cycles), ``chaos_state.py`` (what the store and the tools hold,
compared), ``chaos_kills.py`` (writes and kill points), ``chaos_trials.py`` (the trials of
a, b, c, e, f) and ``chaos_serve.py`` (`serve` replicas: c's serve kills, d).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
from chaos_cycles import PG_URL, Workspace, console, postgres_reason
from chaos_kills import choose_kill_points
from chaos_plan import WORLD_CLIENTS, WORLD_NOW, WORLD_SEED, make_plan, plan_lines
from chaos_serve import run_replicas, run_serve_kills
from chaos_state import Difference, compare, compare_ledger
from chaos_trials import (
    Context,
    Trial,
    run_baseline,
    run_faults,
    run_fresh_store,
    run_kills,
    run_once,
    run_repeat,
)
from rich.table import Table
from starlette.requests import ClientDisconnect

from sandbox.core import DroppedConnection
from sandbox.world import build_world

# --- the run -----------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    only: set[str]
    seeds: list[int]
    rates: list[float]
    kills: int
    kill_trials: int
    serve_kills: int
    jobs: int
    database_url: str
    verbose: bool
    keep: Path | None


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="the short version tests/test_chaos.py runs (a, b 10 %% one seed, "
                             "c 6 kill points, e, f)")
    parser.add_argument("--only", default="", help="scenarios to run, e.g. a,c,e")
    parser.add_argument("--seeds", default="", help="fault seeds (default 1,2,3; quick: 1)")
    parser.add_argument("--rates", default="", help="fault rates (default 0.1,0.3; quick: 0.1)")
    parser.add_argument("--kills", type=int, default=None,
                        help="kill points of `run` (default 36; quick: 6)")
    parser.add_argument("--serve-kills", type=int, default=None,
                        help="kill points of `serve` (default 3; quick: 0)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trials run side by side after the baseline (default 1; "
                             "quick: 2)")
    parser.add_argument("--database-url", default=PG_URL,
                        help="PostgreSQL database for (d) (a temporary schema in it)")
    parser.add_argument("--verbose", action="store_true", help="every difference, the plan")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep stores and process logs in this folder")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    only = set(filter(None, args.only.split(","))) or (
        {"a", "b", "c", "e", "f"} if quick else set("abcdef"))
    seeds = [int(s) for s in args.seeds.split(",") if s] or ([1] if quick else [1, 2, 3])
    rates = [float(r) for r in args.rates.split(",") if r] or ([0.1] if quick else [0.1, 0.3])
    kills = args.kills if args.kills is not None else (6 if quick else 36)
    serve_kills = args.serve_kills if args.serve_kills is not None else (0 if quick else 3)
    jobs = args.jobs if args.jobs is not None else (2 if quick else 1)
    return Options(quick, only, seeds, rates, kills, 1 if quick else 3, serve_kills,
                   max(1, jobs), args.database_url, bool(args.verbose), args.keep)


@dataclass
class Row:
    scenario: str
    what: str
    trials: int = 0
    faults: int = 0
    kills: int = 0
    lost: int = 0
    duplicated: int = 0
    differing: int = 0
    ledger: str = "—"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.differing) and \
            self.ledger in ("—", "0/0")


SCENARIOS = {"a": "fault-free baseline (a cycle after each step)",
             "b": "injected faults, then fault-free until quiescent",
             "c": "kill -9, restarted until quiescent",
             "d": "two serve replicas on PostgreSQL, one killed",
             "e": "empty store on the same workspace: adds nothing",
             "f": "one cycle after all changes vs one after each"}


def evaluate(trial: Trial, base: Trial) -> Difference:
    if trial.difference is not None:  # the baseline's own check
        return trial.difference
    assert trial.state is not None and base.state is not None
    difference = compare(base.state, trial.state)
    if trial.compare_ledger:
        compare_ledger(base.ledger, trial.ledger, difference)
    else:
        shadow = Difference()
        compare_ledger(base.ledger, trial.ledger, shadow)
        why = "another store" if trial.scenario == "e" else "events coalesce"
        trial.notes.append(f"ledger (not compared: {why}): {shadow.ledger_lost} not done, "
                           f"{shadow.ledger_extra} extra")
    return difference


def rows_of(trials: list[Trial], base: Trial) -> list[Row]:
    rows: dict[str, Row] = {}
    for trial in trials:
        difference = evaluate(trial, base)
        trial.difference = difference
        row = rows.setdefault(trial.scenario, Row(trial.scenario, SCENARIOS[trial.scenario]))
        row.trials += 1
        row.faults += trial.faults
        row.kills += trial.kills
        row.lost += difference.lost
        row.duplicated += difference.duplicated
        row.differing += difference.differing
        row.seconds += trial.seconds
        if trial.compare_ledger and trial.scenario != "a" or trial.name == "baseline-repeat":
            lost, extra = (int(x) for x in (row.ledger if row.ledger != "—" else "0/0")
                           .split("/"))
            row.ledger = f"{lost + difference.ledger_lost}/{extra + difference.ledger_extra}"
    return [rows[s] for s in sorted(rows)]


def print_report(rows: list[Row], trials: list[Trial], verbose: bool, seconds: float) -> None:
    table = Table(title="Chaos suite: the final state against the fault-free baseline")
    for column in ("scenario", "trials", "faults injected", "kills", "lost", "duplicated",
                   "differing fields", "ledger not done/extra", "seconds"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for row in rows:
        style = "" if row.ok else "red"
        table.add_row(f"({row.scenario}) {row.what}", str(row.trials), str(row.faults),
                      str(row.kills), str(row.lost), str(row.duplicated), str(row.differing),
                      row.ledger, f"{row.seconds:.0f}", style=style)
    console.print(table)
    for trial in trials:
        difference = trial.difference or Difference()
        mark = "ok" if difference.clean else "DIFFERS"
        console.print(f"\n[bold]({trial.scenario}) {trial.name}[/bold]: {mark} · "
                      f"{trial.cycles} cycles, {trial.seconds:.0f} s · ledger "
                      f"{dict(trial.statuses)}")
        for note in trial.notes:
            console.print(f"  · {note}", markup=False, highlight=False)
        shown = difference.details if verbose else difference.details[:12]
        for line in shown:
            console.print(f"  - {line}", markup=False, highlight=False)
        if len(difference.details) > len(shown):
            console.print(f"  … {len(difference.details) - len(shown)} more (--verbose)")
    console.print(f"\ntotal {seconds:.0f} s")


def run_all(options: Options, root: Path) -> tuple[list[Row], list[Trial]]:
    workspace = Workspace.create(root)
    world = build_world(clients=WORLD_CLIENTS, seed=WORLD_SEED, now=WORLD_NOW)
    plan = make_plan(world, quick=options.quick)
    ctx = Context(plan, workspace, options.verbose)
    console.print(f"plan: {len(plan)} steps, {sum(len(s.actions) for s in plan)} actions "
                  f"({'quick' if options.quick else 'full'}); workspace {root}")
    if options.verbose:
        for line in plan_lines(plan):
            console.print(line, markup=False, highlight=False)
    base, (keeper, base_box, base_db) = run_baseline(ctx)
    console.print(f"baseline: {base.cycles} cycles in {base.seconds:.0f} s, "
                  f"{len(base.writes)} writes, ledger {dict(base.statuses)}")
    trials = [base]
    try:
        if "e" in options.only:
            trials.append(run_fresh_store(ctx, base, base_box))
    finally:
        base_db.dispose()
        keeper.__exit__(None, None, None)
    jobs: list[Callable[[], Trial]] = []
    if "a" in options.only and not options.quick:
        jobs.append(lambda: run_repeat(ctx))
    if "b" in options.only:
        jobs += [lambda r=rate, s=seed: run_faults(ctx, r, s)
                 for rate in options.rates for seed in options.seeds]
    if "c" in options.only and options.kills:
        plans = choose_kill_points(base.writes, options.kills, options.kill_trials)
        jobs += [lambda p=points, n=number: run_kills(ctx, p, n)
                 for number, points in enumerate(plans, 1)]
    if "c" in options.only and options.serve_kills:
        jobs.append(lambda: run_serve_kills(ctx, options.serve_kills))
    if "d" in options.only:
        reason = postgres_reason(options.database_url)
        if reason:
            console.print(f"[yellow](d) skipped: {reason}[/yellow]")
        else:
            jobs.append(lambda: run_replicas(ctx, options.database_url))
    if "f" in options.only:
        jobs.append(lambda: run_once(ctx))
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        for trial in pool.map(lambda job: job(), jobs):
            console.print(f"done: ({trial.scenario}) {trial.name} in {trial.seconds:.0f} s")
            trials.append(trial)
    if "a" not in options.only:
        trials = [t for t in trials if t is not base]
    return rows_of(trials, base), trials


class _NoDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        # A dropped connection is a fault; a client that gave up during a timeout fault
        # leaves its request body unread (ClientDisconnect): both on purpose.
        return not isinstance(error, DroppedConnection | ClientDisconnect)


def quiet_sandbox_logs() -> None:
    """The sandbox's dropped connections are faults on purpose: no tracebacks for them (a
    filter on uvicorn's logger survives each sandbox server's logging set-up); the
    sandbox's own log lines only from warnings up."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoDroppedConnections) for f in logger.filters):
        logger.addFilter(_NoDroppedConnections())


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    quiet_sandbox_logs()
    started = time.monotonic()
    if options.keep is not None:
        options.keep.mkdir(parents=True, exist_ok=True)
        rows, trials = run_all(options, options.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="saeko-chaos-") as folder:
            rows, trials = run_all(options, Path(folder))
    print_report(rows, trials, options.verbose, time.monotonic() - started)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
