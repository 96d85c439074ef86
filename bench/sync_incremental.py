"""Benchmark: API calls of incremental cycles (SPEC section 9), counted by the sandbox.

After a full first sync of the demo world (in-process sandbox over HTTP, fresh store):

(a) idle cycles — nothing changed — with the service's long-lived clients
    (``jobs.cycle.long_lived_clients`` over one ``ActionRuntime`` shared with the rule
    engine), with the shipped rules and with 50 enabled rules; and, for comparison, a cycle
    whose clients are built for it (``saeko-sync run`` once). Target: <= 1 call per
    collection (6 Podio apps, 1 Jira query, 2 forms, 1 sheet).
(b) k tickets changed in Podio (k = 1, 10, 100, 1,000; a person edits their description in
    Podio's UI, ``update_item_as``): calls of the tickets collection vs 1 + ceil(k / 500).
(c) a cycle (sync + rules) as enabled rules grow from 1 to 50 (copies of one simple rule
    with different ids, in a temporary rules folder), 10 tickets changed before each:
    calls must stay flat, since the engine reads the model, never the APIs. The changed
    tickets are not critical, so no rule fires: what is counted is the cost of *reading*
    (polling), not the effects an automation legitimately sends.

The sandbox clock is frozen at the world's "now" and moved 10 minutes before each step, so
one step's edits are outside the next step's overlap window (PODIO_SYNC_OVERLAP_SECONDS).

    .venv/bin/python bench/sync_incremental.py [--clients 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sync_common import TOOLS, Bench, console, machine, quiet_logs, running_bench, table

from connectors.clients import ActionRuntime
from jobs.cycle import CycleReport, configured_sources, long_lived_clients, run_sync
from rules.engine import run_cycle

DEFAULT_CLIENTS = 100
KS = (1, 10, 100, 1000)
RULE_COUNTS = (1, 5, 10, 25, 50)
CHANGED_PER_CYCLE = 10  # tickets changed before each cycle of part (c)
STEP = timedelta(minutes=10)  # > the default 120 s Podio overlap and 5 min Jira overlap
MAX_DRAIN_CYCLES = 200  # rule cycles to work through the full sync's change events
PODIO_PAGE = 500  # Podio's maximum filter page (reference podio-api.md §5.3)
AGENT = "agente-2@saeko.test"
STATUSES = ("Nuevo", "En atención")

RULE = """\
id: bench-regla-{n}
nombre: "Bench {n} · ticket crítico de un cliente TOP cambia de estatus"
activa: true
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
condiciones:
  - ticket.prioridad == "Crítica"
  - ticket.cliente.segmento == "TOP"
acciones:
  - podio.comentario:
      texto: "Ticket crítico de {{{{ ticket.cliente.nombre }}}} pasó a {{{{ ticket.estatus }}}}."
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS,
                        help="demo world size (k up to 1,000 needs >= 35 clients)")
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL URL (temporary schema); default: SQLite in a temp dir")
    args = parser.parse_args()
    quiet_logs()
    console.print(f"[bold]sync_incremental[/bold] · {machine()}")
    with running_bench(args.clients, args.database_url, _env_file=None) as bench, \
            tempfile.TemporaryDirectory(prefix="saeko-bench-rules-") as folder:
        rules_dir = Path(folder)
        console.print(f"world: {bench.box.world.summary()}; store "
                      f"{bench.db.engine.dialect.name}")
        runtime = ActionRuntime(bench.settings)
        try:
            sources = configured_sources(bench.settings)
            clients = long_lived_clients(runtime, sources)
            started = time.perf_counter()
            run_sync(bench.settings, bench.db, full=True, clients=clients)
            drained = _drain(bench, runtime)
            console.print(f"full first sync and {drained} rule cycles over its change events: "
                          f"{time.perf_counter() - started:.0f} s")
            _idle(bench, runtime, clients, rules_dir)
            _changed(bench, runtime, clients)
            _rules_growth(bench, runtime, clients, _changeable_tickets(bench), rules_dir)
        finally:
            runtime.close()


# --- the three parts ---------------------------------------------------------------------


def _idle(bench: Bench, runtime: ActionRuntime, clients: dict[str, Any], rules_dir: Path
          ) -> None:
    rows = []
    for label, settings in (("shipped rules (config/rules)", bench.settings),
                            ("50 enabled rules", _with_rules(bench, rules_dir, 50))):
        calls, sync, rules = _cycle(bench, settings, runtime, clients)
        most = max(sync.reports, key=lambda r: r.api_calls)
        rows.append([label, len(sync.reports), sum(r.api_calls for r in sync.reports),
                     calls["podio"], calls["jira"], calls["google"], _evaluated(rules),
                     f"{most.api_calls} ({most.stream})"])
    calls, sync, _rules = _cycle(bench, bench.settings, runtime, None)
    rows.append(["clients built for the cycle (`saeko-sync run`)", len(sync.reports),
                 sum(r.api_calls for r in sync.reports), calls["podio"], calls["jira"],
                 calls["google"], "", "+ logins, tokens, Jira start-up"])
    table("(a) idle cycle (sync + rules, nothing changed) — target <= 1 call per collection",
          ["cycle", "collections", "sync calls (clients)", "podio", "jira", "google",
           "rule evals", "most per collection"], rows)


def _changed(bench: Bench, runtime: ActionRuntime, clients: dict[str, Any]) -> None:
    rows = []
    tickets = bench.tool("podio").items("tickets")
    for step, k in enumerate(KS):
        if k > len(tickets):
            console.print(f"[yellow]k = {k} skipped: only {len(tickets)} tickets in the "
                          "world (use more --clients)[/yellow]")
            continue
        _describe(bench, tickets[:k], step)
        calls, sync, _rules = _cycle(bench, bench.settings, runtime, clients)
        report = next(r for r in sync.reports if r.stream == "tickets")
        target = 1 + math.ceil(k / PODIO_PAGE)
        rows.append([k, report.counts.updated, report.api_calls, target,
                     "yes" if report.api_calls <= target else "NO",
                     sum(r.api_calls for r in sync.reports), calls["podio"]])
    table("(b) k tickets changed in Podio — tickets collection vs 1 + ceil(k/500)",
          ["k", "tickets updated", "tickets calls", "target", "meets", "cycle sync calls",
           "cycle podio calls"], rows)


def _rules_growth(bench: Bench, runtime: ActionRuntime, clients: dict[str, Any],
                  tickets: list[int], rules_dir: Path) -> None:
    rows = []
    # Warm-up: the cycle after (b)'s 1,000-ticket burst re-reads it once more (its edits sit
    # inside the cursor's overlap window until a newer edit moves the cursor).
    _toggle_status(bench, tickets[:CHANGED_PER_CYCLE])
    _cycle(bench, _with_rules(bench, rules_dir, 1), runtime, clients)
    for n in RULE_COUNTS:
        settings = _with_rules(bench, rules_dir, n)
        _toggle_status(bench, tickets[:CHANGED_PER_CYCLE])
        calls, _sync, rules = _cycle(bench, settings, runtime, clients)
        fired = sum(o.done for o in rules.rules.values())
        rows.append([n, sum(calls.values()), calls["podio"], calls["jira"], calls["google"],
                     _evaluated(rules), fired])
    table(f"(c) one cycle (sync + rules) with {CHANGED_PER_CYCLE} tickets changed, as enabled "
          "rules grow — calls must stay flat",
          ["enabled rules", "API calls", "podio", "jira", "google", "rule evals",
           "effects"], rows)


# --- helpers -----------------------------------------------------------------------------


def _cycle(bench: Bench, settings: Any, runtime: ActionRuntime,
           clients: dict[str, Any] | None) -> tuple[dict[str, int], CycleReport, Any]:
    """One service cycle: the polling sync, then the rules; the sandbox's calls per tool."""
    bench.box.clock.advance(STEP)
    before = bench.calls()
    sync = run_sync(settings, bench.db, clients=clients)
    for error in sync.errors:
        console.print(f"[red]{error}[/red]")
    rules = run_cycle(settings, bench.db, runtime=runtime)
    after = bench.calls()
    return {tool: after[tool] - before[tool] for tool in TOOLS}, sync, rules


def _drain(bench: Bench, runtime: ActionRuntime) -> int:
    """Rule cycles until the full sync's change events are all processed (bounded)."""
    for number in range(1, MAX_DRAIN_CYCLES + 1):
        if run_cycle(bench.settings, bench.db, runtime=runtime).events == 0:
            return number
    return MAX_DRAIN_CYCLES


def _evaluated(report: Any) -> int:
    return sum(o.evaluated for o in report.rules.values())


def _changeable_tickets(bench: Bench) -> list[int]:
    """Ticket items a person may move between Nuevo and En atención, none critical (so the
    benchmark rule's conditions do not hold and no effect is sent)."""
    podio = bench.tool("podio")
    out = []
    for item in podio.items("tickets"):
        values = podio.values(item)
        if values.get("prioridad") != "Crítica" and values.get("estatus") in STATUSES:
            out.append(item)
    return out


def _describe(bench: Bench, items: list[int], step: int) -> None:
    """A person adds a line to each ticket's description (a field no rule watches)."""
    podio = bench.tool("podio")
    bench.box.clock.advance(STEP)
    for item in items:
        podio.update_item_as(AGENT, item, {
            "descripcion": f"<p>Seguimiento {step}: el usuario envió más detalles.</p>"})


def _toggle_status(bench: Bench, items: list[int]) -> None:
    """An agent moves each ticket between Nuevo and En atención."""
    podio = bench.tool("podio")
    bench.box.clock.advance(STEP)
    for item in items:
        current = podio.values(item).get("estatus")
        podio.update_item_as(AGENT, item, {"estatus": STATUSES[current == STATUSES[0]]})


def _with_rules(bench: Bench, rules_dir: Path, count: int) -> Any:
    """Settings whose rules folder holds ``count`` copies of the benchmark rule."""
    for old in rules_dir.glob("*.yaml"):
        old.unlink()
    for n in range(1, count + 1):
        (rules_dir / f"bench-{n:02d}.yaml").write_text(RULE.format(n=n), encoding="utf-8")
    return bench.settings.model_copy(update={"rules_dir": rules_dir})


if __name__ == "__main__":
    main()
