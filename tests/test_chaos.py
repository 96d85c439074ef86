"""Same work, same result: the chaos suite's short version (``bench/chaos.py --quick``).

One planned day (new tickets, answers, an escalation, a Jira resolution, a hand-off, a
manual close, CSAT and NPS answers) is replayed on fresh sandboxes with real
`saeko-sync run` subprocesses: fault-free with a cycle after each step (the baseline),
with 10 % injected faults on every tool, with the cycle killed (-9) at six writes (lost
responses, between two actions of one rule, inside one action), with an empty store on the
workspace the baseline left, and with one cycle after all the changes. Each final state of
the tools and of the ledger must equal the baseline's: nothing lost, nothing twice, no
field different. The full run (more seeds, 30 %, 36 kill points, `serve` kills, two
replicas on PostgreSQL) is ``.venv/bin/python bench/chaos.py`` (bench/README.md).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from sandbox.server import Sandbox

ROOT = Path(__file__).resolve().parent.parent


def _load_chaos() -> ModuleType:
    if str(ROOT / "bench") not in sys.path:  # chaos.py imports its parts, bench/chaos_*.py
        sys.path.append(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


chaos = _load_chaos()

# The quick run is one fixture of ~3 min on a quiet machine and several times that on a busy
# one: the project-wide 300 s per test would cut it off half-way.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    chaos.quiet_sandbox_logs()
    rows, trials = chaos.run_all(chaos.parse_args(["--quick"]),
                                 tmp_path_factory.mktemp("chaos"))
    chaos.print_report(rows, trials, verbose=False, seconds=0)
    return {row.scenario: row for row in rows}, trials


def _explain(scenario: str, trials: list[Any]) -> str:
    lines = []
    for trial in trials:
        if trial.scenario == scenario:
            lines += [f"({trial.scenario}) {trial.name}:"] + [f"  · {n}" for n in trial.notes]
            lines += [f"  - {d}" for d in (trial.difference.details if trial.difference
                                           else [])]
    return "\n".join(lines)


@pytest.mark.parametrize("scenario", ["a", "b", "c", "e", "f"])
def test_the_final_state_is_the_baselines(scenario: str,
                                          quick: tuple[dict[str, Any], list[Any]]) -> None:
    rows, trials = quick
    row = rows[scenario]
    assert (row.lost, row.duplicated, row.differing) == (0, 0, 0), _explain(scenario, trials)
    assert row.ledger in ("—", "0/0"), _explain(scenario, trials)


def test_the_quick_run_kills_where_it_says(quick: tuple[dict[str, Any], list[Any]]) -> None:
    rows, trials = quick
    assert rows["b"].faults > 0
    assert rows["c"].kills >= 6, _explain("c", trials)
    notes = " ".join(n for t in trials if t.scenario == "c" for n in t.notes)
    assert "[lost response" in notes and "[between two actions" in notes


def test_a_kill_fault_kills_the_registered_process_before_or_after_the_work(
        sandbox: Sandbox) -> None:
    podio = sandbox.tools["podio"]
    item = podio.items("tickets")[0]
    env = podio.env()
    token = httpx.post(f"{sandbox.url('podio')}/oauth/token", data={
        "grant_type": "password", "username": env["PODIO_USERNAME"],
        "password": env["PODIO_PASSWORD"], "client_id": env["PODIO_CLIENT_ID"],
        "client_secret": env["PODIO_CLIENT_SECRET"]}, timeout=10).json()["access_token"]
    # A client commenting on an item, killed before the comment exists, then after.
    code = ("import httpx, sys; httpx.post(sys.argv[1], json={'value': sys.argv[2]}, "
            "headers={'Authorization': 'OAuth2 ' + sys.argv[3]}, timeout=10)")
    url = f"{sandbox.url('podio')}/comment/item/{item}/"
    for when, expected in (("before", 0), ("after", 1)):
        sandbox.faults.add(kind="kill", tool="podio", method="POST", path=r"^/comment/",
                           when=when)
        proc = subprocess.Popen([sys.executable, "-c", code, url, f"killed {when}", token])
        sandbox.faults.kill_pid = proc.pid
        assert proc.wait(timeout=30) == -9
        sandbox.faults.clear()
        kill = sandbox.faults.kills[-1]
        assert (kill.pid, kill.when, kill.path) == (proc.pid, when, f"/comment/item/{item}/")
        texts = [c["value"] for c in podio.comments(item)]
        assert texts.count(f"killed {when}") == expected
    # A fault limited to one process leaves the other processes' requests alone.
    sandbox.faults.add(kind="kill", tool="podio", path=r"^/comment/", pid=999_999,
                       from_pid=True)
    answer = httpx.get(url, headers={"Authorization": f"OAuth2 {token}"}, timeout=10)
    assert answer.status_code == 200 and len(sandbox.faults.kills) == 2
