"""Leases die with their holder (kill -9 included) on SQLite and PostgreSQL; scheduled jobs run
once per period across replicas, and a killed runner's period is taken over at once."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.settings import load_settings
from jobs.leases import Skipped, hold, lock_path, run_once
from jobs.service import Service
from rules.engine import LEASE_NAME, SKIPPED_HELD_ELSEWHERE, run_cycle
from sandbox.server import Sandbox
from store.db import Database, utcnow
from store.models import JobRun

ROOT = Path(__file__).resolve().parent.parent
# A freed lease must be takeable again this soon after its holder is killed.
TAKEOVER_DEADLINE_SECONDS = 5.0

HOLDER = """
import sys, time
from jobs.leases import hold
from store.db import Database
with hold(Database(sys.argv[1]), sys.argv[2]) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(120)
"""

RUNNER = """
import sys, time
from jobs.leases import run_once
from store.db import Database
def work():
    print("running", flush=True)
    time.sleep(120)
run_once(Database(sys.argv[1]), sys.argv[2], sys.argv[3], "dying", work)
"""


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -c script args…`` from the repository; killed at the end of the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(script: str, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def read_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output from the subprocess within {timeout} s")
    return proc.stdout.readline().strip()


def kill_9(proc: subprocess.Popen[str]) -> float:
    """SIGKILL ``proc``, wait for it; returns the monotonic time of the kill."""
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    return killed_at


def take_within(db: Database, name: str, deadline: float) -> float:
    """Poll ``hold`` until it succeeds; returns when it did (monotonic), or fails the test."""
    while time.monotonic() < deadline:
        with hold(db, name) as held:
            if held:
                return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"lease {name!r} still held {TAKEOVER_DEADLINE_SECONDS} s after kill -9")


def test_a_lease_held_by_a_killed_process_is_free_at_once(db: Database, spawn) -> None:  # type: ignore[no-untyped-def]
    holder = spawn(HOLDER, db.url, "demo")
    assert read_line(holder) == "held"
    with hold(db, "demo") as held:
        assert held is False  # another process holds it
    with hold(db, "otra") as held:
        assert held is True  # leases are independent by name
    killed_at = kill_9(holder)
    took_at = take_within(db, "demo", killed_at + TAKEOVER_DEADLINE_SECONDS)
    print(f"{db.engine.dialect.name}: lease taken {took_at - killed_at:.3f} s after kill -9")
    again = spawn(HOLDER, db.url, "demo")  # and a new process gets it too
    assert read_line(again) == "held"


def test_a_second_holder_is_refused_while_held_then_gets_it(db: Database, spawn) -> None:  # type: ignore[no-untyped-def]
    seen: list[bool] = []
    with hold(db, "ciclo") as first:
        with hold(db, "ciclo") as second:  # same process and thread: not re-entrant
            seen += [first, second]
        other = threading.Thread(target=lambda: seen.append(_try(db, "ciclo")))
        other.start()
        other.join()
        refused = spawn(HOLDER, db.url, "ciclo")  # another process
        assert read_line(refused) == "refused"
    assert seen == [True, False, False]
    assert _try(db, "ciclo") is True  # released on exit


def _try(db: Database, name: str) -> bool:
    with hold(db, name) as held:
        return held


def test_a_lease_is_released_when_the_block_raises(db: Database) -> None:
    with pytest.raises(RuntimeError), hold(db, "x") as held:
        assert held
        raise RuntimeError("boom")
    assert _try(db, "x") is True


def test_sqlite_lock_files_sit_next_to_the_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/data/x.db")
    assert lock_path(db, "job:rules") == tmp_path / "data" / "x.db.job_rules.lock"
    memory = Database("sqlite://")
    assert str(os.getpid()) in lock_path(memory, "rules-cycle").name
    assert _try(memory, "rules-cycle") is True
    db.dispose()
    memory.dispose()


def test_one_replica_runs_each_period(db: Database) -> None:
    ran: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def replica(name: str) -> None:
        for period in ("p1", "p2", "p3"):
            def work(n: str = name, p: str = period) -> None:
                with lock:
                    ran.append(f"{p}:{n}")
            barrier.wait()  # all four replicas tick the same period at once
            run_once(db, "sync", period, name, work)

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.split(":")[0] for r in ran) == ["p1", "p2", "p3"]
    with db.session() as s:
        assert [r.status for r in s.scalars(select(JobRun).order_by(JobRun.period))] == [
            "ok", "ok", "ok"]
    assert run_once(db, "sync", "p2", "late", lambda: None) is False  # a finished period


def test_a_killed_runners_period_is_taken_over_at_once(db: Database, spawn) -> None:  # type: ignore[no-untyped-def]
    runner = spawn(RUNNER, db.url, "rules", "p9")
    assert read_line(runner) == "running"
    assert run_once(db, "rules", "p9", "other", lambda: "no") is False  # its runner is alive
    assert run_once(db, "rules", "p10", "other", lambda: "no") is False  # one run at a time
    killed_at = kill_9(runner)
    while not run_once(db, "rules", "p9", "other", lambda: "hecho"):
        assert time.monotonic() < killed_at + TAKEOVER_DEADLINE_SECONDS, "not taken over"
        time.sleep(0.05)
    print(f"{db.engine.dialect.name}: period taken over {time.monotonic() - killed_at:.3f} s "
          "after kill -9")
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
        assert (run.period, run.holder, run.status, run.detail) == ("p9", "other", "ok", "hecho")


def test_an_older_period_left_running_by_a_dead_holder_is_recorded_as_failed(db: Database) -> None:
    with db.session() as s:  # a replica started p8 and died before finishing
        s.add(JobRun(job="rules", period="p8", holder="muerto", started_at=utcnow(),
                     status="running"))
    assert run_once(db, "rules", "p9", "vivo", lambda: None) is True
    with db.session() as s:
        runs = {r.period: r for r in s.scalars(select(JobRun))}
    assert runs["p8"].status == "failed" and "muerto" in (runs["p8"].detail or "")
    assert runs["p8"].finished_at is not None and runs["p9"].status == "ok"


def test_a_failing_job_is_recorded_with_its_error(db: Database) -> None:
    def boom() -> None:
        raise RuntimeError("Podio no responde")

    assert run_once(db, "sync", "p1", "r1", boom) is True
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
        assert run.status == "failed" and "Podio no responde" in (run.detail or "")
    assert _try(db, "job:sync") is True  # the lease was released


def test_a_skipped_job_is_recorded_as_skipped(db: Database) -> None:
    def busy() -> None:
        raise Skipped("otro proceso está ejecutando las reglas")

    assert run_once(db, "rules", "p1", "r1", busy) is True
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
        assert (run.status, run.detail) == ("skipped", "otro proceso está ejecutando las reglas")


def test_the_rule_cycle_is_skipped_while_another_process_holds_its_lease(
        db: Database, spawn) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(database_url=db.url)
    holder = spawn(HOLDER, db.url, LEASE_NAME)
    assert read_line(holder) == "held"
    report = run_cycle(settings, db)
    assert report.skipped == SKIPPED_HELD_ELSEWHERE and report.finished_at is None
    kill_9(holder)
    deadline = time.monotonic() + TAKEOVER_DEADLINE_SECONDS
    while (report := run_cycle(settings, db)).skipped:
        assert time.monotonic() < deadline, "the rule cycle stayed skipped after kill -9"
        time.sleep(0.05)
    assert report.finished_at is not None


def test_the_scheduled_rules_job_records_a_skipped_cycle(db: Database) -> None:
    service = Service(load_settings(database_url=db.url), db)
    try:
        with hold(db, LEASE_NAME) as held:  # e.g. another replica's inbox worker is in a cycle
            assert held
            service.rules_job()
    finally:
        service.runtime.close()
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
    assert (run.job, run.status, run.detail) == ("rules", "skipped", SKIPPED_HELD_ELSEWHERE)


def test_run_exits_3_when_another_process_holds_the_rules(sandbox: Sandbox,
                                                         tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    values = {**sandbox.env(), "DATABASE_URL": url}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIO_", "JIRA_",
                                                                     "GOOGLE_", "DATABASE_"))}
    env["PYTHONPATH"] = str(ROOT)
    db = Database(url)
    db.upgrade()
    with hold(db, LEASE_NAME) as held:
        assert held
        result = subprocess.run([sys.executable, "-m", "saeko_sync", "run"], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=240,
                                check=False)
    db.dispose()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "otro proceso" in result.stdout and "no se evaluaron" in result.stdout
