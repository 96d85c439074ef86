"""M1's health score against the demo world's ground truth: how many of the world's
declining clients (usage falling over their last six weeks) the score flags — band «En
riesgo» or «Crítica» — (recall), and how many flagged clients are not declining
(precision). The target (issue 13): recall >= 90 % with precision >= 80 %.

Each seed builds a demo world, serves it on 127.0.0.1, syncs it in full into a fresh
SQLite store through the real connectors, and scores every client with the shipped
config/salud.yaml (``rules.health_store.scores``, what the rule function ``salud`` uses).

    .venv/bin/python bench/health_score.py [--clients 300] [--seeds 7,11,23]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sync_common import WORLD_NOW, machine, quiet_logs, table  # noqa: E402
from core.settings import PROJECT_ROOT, load_settings  # noqa: E402
from jobs.cycle import run_sync  # noqa: E402
from rules import health, health_store  # noqa: E402
from sandbox.server import Sandbox, SandboxServer  # noqa: E402
from sandbox.world import podio_item_id  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import Client  # noqa: E402

FLAGGED = ("En riesgo", "Crítica")


def one_seed(seed: int, clients: int, config: health.HealthConfig) -> dict[str, object]:
    box = Sandbox(clients=clients, seed=seed, now=WORLD_NOW)
    box.clock.freeze(WORLD_NOW)
    server = SandboxServer(box).start()
    try:
        with tempfile.TemporaryDirectory(prefix="saeko-health-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            env = {key.lower(): value for key, value in box.env().items()}
            settings = load_settings(**env, database_url=url, log_level="WARNING")
            db = Database(url)
            db.upgrade()
            try:
                assert run_sync(settings, db, full=True).ok
                started = time.perf_counter()
                with db.session() as s:
                    scores = health_store.scores(s, config, WORLD_NOW.date())
                    item_of = {row.id: row.source_id for row in s.query(Client.id,
                                                                         Client.source_id)}
                seconds = time.perf_counter() - started
            finally:
                db.dispose()
    finally:
        server.stop()
    truth = {str(podio_item_id("clientes", c.key)): c.declining for c in box.world.clients}
    tp = fp = fn = 0
    bands: Counter[str] = Counter()
    for cid, value in scores.items():
        bands[value.band] += 1
        declining, flagged = truth.get(item_of[cid], False), value.band in FLAGGED
        tp += declining and flagged
        fp += flagged and not declining
        fn += declining and not flagged
    return {"seed": seed, "scored": len(scores), "declining": tp + fn, "flagged": tp + fp,
            "tp": tp, "fp": fp, "fn": fn, "bands": bands, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=300)
    parser.add_argument("--seeds", default="7,11,23")
    args = parser.parse_args()
    quiet_logs()
    config = health.load(PROJECT_ROOT / "config")
    results = [one_seed(int(s), args.clients, config) for s in args.seeds.split(",")]
    rows = []
    for r in results:
        tp, fp, fn = int(r["tp"]), int(r["fp"]), int(r["fn"])  # type: ignore[call-overload]
        bands = r["bands"]
        assert isinstance(bands, Counter)
        rows.append([r["seed"], r["scored"], r["declining"], r["flagged"], tp, fp, fn,
                     f"{tp / (tp + fn):.0%}" if tp + fn else "—",
                     f"{tp / (tp + fp):.0%}" if tp + fp else "—",
                     " · ".join(f"{b} {bands[b]}" for b in config.bandas),
                     f"{float(r['seconds']) * 1000:.0f} ms"])  # type: ignore[arg-type]
    tp = sum(int(r["tp"]) for r in results)  # type: ignore[call-overload]
    fp = sum(int(r["fp"]) for r in results)  # type: ignore[call-overload]
    fn = sum(int(r["fn"]) for r in results)  # type: ignore[call-overload]
    print(machine())
    table(f"M1 health score vs the world's declining clients ({args.clients} clients a seed)",
          ["seed", "scored", "declining", "flagged", "TP", "FP", "FN", "recall", "precision",
           "bands", "scoring"], rows)
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    print(f"all seeds: recall {recall:.1%} (target >= 90 %), precision {precision:.1%} "
          f"(target >= 80 %)")
    return 0 if recall >= 0.9 and precision >= 0.8 else 1


if __name__ == "__main__":
    raise SystemExit(main())
