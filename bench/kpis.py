"""Benchmark: computing and publishing every KPI (M3) for a large demo world (issue 14).

Seeds the demo world in an in-process sandbox, runs the full first sync into a fresh store
(no added latency: that part is bench/sync_large.py's), then measures what M3 does:
computing every KPI of every published period and dimension and the detail tabs from the
store (``store.kpis.tables.build``), the fingerprint, and publishing every tab to the
sandbox's KPI spreadsheet — twice, counting the Sheets calls the sandbox served (writes
must be one per tab, plus one structural call the first time) and the size of each tab's
values request (Google recommends at most 2 MB per request).

    .venv/bin/python bench/kpis.py                  # 300 clients
    .venv/bin/python bench/kpis.py --clients 2000   # the size of SPEC §9
"""

from __future__ import annotations

import argparse
import json
import time

from sync_common import WORLD_NOW, console, machine, quiet_logs, running_bench, table

from connectors.google import kpi_sheet
from connectors.google.actions import cell_value
from connectors.google.client import GoogleClient
from jobs.cycle import run_sync
from store import kpis
from store.kpis import tables

DEFAULT_CLIENTS = 300
SHEETS_WRITE_QUOTA_PER_MINUTE = 60  # per user (reference google-apis §3.9)
RECOMMENDED_PAYLOAD_MB = 2.0  # Sheets: "≤ 2 MB payload recommended" (google-apis §3.9)


def _sheets_calls(box: object, since: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for call in box.calls.journal(since, "google"):  # type: ignore[attr-defined]
        if "spreadsheets" in call.route:
            key = f"{call.method} {call.route}"
            out[key] = out.get(key, 0) + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    quiet_logs()
    console.print(f"[bold]kpis[/bold] · {machine()}")
    with running_bench(args.clients, args.database_url, _env_file=None) as bench:
        started = time.perf_counter()
        synced = run_sync(bench.settings, bench.db, full=True)
        sync_seconds = time.perf_counter() - started
        config = kpis.load_config(bench.settings.config_dir)
        console.print(f"world: {bench.box.world.summary()}; full sync {sync_seconds:.1f} s "
                      f"({'ok' if synced.ok else synced.errors}); store "
                      f"{bench.db.engine.dialect.name}")

        started = time.perf_counter()
        with bench.db.session() as session:
            month = kpis.current(session, "mes", by=("total", "am", "segmento", "region"),
                                 config=config, now=WORLD_NOW)
        month_seconds = time.perf_counter() - started
        started = time.perf_counter()
        with bench.db.session() as session:
            built = tables.build(session, config, WORLD_NOW)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        fingerprint = tables.fingerprint(built)
        fingerprint_seconds = time.perf_counter() - started

        runs = []
        with GoogleClient(bench.settings) as client:
            for attempt in ("first publication", "the same data again"):
                mark = bench.box.calls.mark()
                started = time.perf_counter()
                with bench.db.session() as session:
                    published = kpi_sheet.publish(client, session, config, WORLD_NOW)
                seconds = time.perf_counter() - started
                runs.append((attempt, seconds, _sheets_calls(bench.box, mark), published))

    table("Computing the KPIs from the store", ["what", "rows", "seconds"], [
        ["the current month, total + AM + segment + region (kpis.current)", len(month),
         month_seconds],
        ["every tab of the KPI sheet (tables.build: 4 grains, client tab, details)",
         sum(len(t.rows) for t in built), build_seconds],
        [f"fingerprint {fingerprint[:12]}…", "", fingerprint_seconds],
    ])
    table("Tabs", ["tab", "rows", "columns", "cells", "values request (MB)"], [
        [t.tab, len(t.rows), len(t.header), (len(t.rows) + 1) * len(t.header),
         len(json.dumps({"values": [t.header] + [[cell_value(v) for v in r] for r in t.rows]},
                        default=str)) / 1e6] for t in built])
    rows = []
    for attempt, seconds, calls, published in runs:
        writes = sum(n for k, n in calls.items() if not k.startswith("GET"))
        rows.append([attempt, seconds, sum(calls.values()), writes,
                     calls.get("PUT /v4/spreadsheets/{spreadsheetId}/values/{range}", 0),
                     calls.get("POST /v4/spreadsheets/{spreadsheetId}:batchUpdate", 0),
                     f"{100 * writes / SHEETS_WRITE_QUOTA_PER_MINUTE:.0f} %", published.rows])
    table("Publishing to the sandbox's KPI spreadsheet (M3's action)",
          ["run", "seconds", "Sheets calls", "writes", "values.update", "batchUpdate",
           "of 60 writes/min", "rows"], rows)
    biggest = max((len(json.dumps([[cell_value(v) for v in r] for r in t.rows], default=str))
                   / 1e6, t.tab) for t in built)
    note = "within" if biggest[0] <= RECOMMENDED_PAYLOAD_MB else "ABOVE"
    console.print(f"largest values request: {biggest[1]} {biggest[0]:.2f} MB ({note} the "
                  f"{RECOMMENDED_PAYLOAD_MB:g} MB Google recommends)")


if __name__ == "__main__":
    main()
