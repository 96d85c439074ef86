"""Scheduled jobs run once per period across replicas; a dead replica's run is taken over."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from jobs.leases import run_once
from store.db import Database, utcnow
from store.models import JobRun


def test_one_replica_runs_each_period(db: Database) -> None:
    ran: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def replica(name: str) -> None:
        barrier.wait()
        for period in ("p1", "p2", "p3"):
            def work(n: str = name, p: str = period) -> None:
                with lock:
                    ran.append(f"{p}:{n}")
            run_once(db, "sync", period, name, work)

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.split(":")[0] for r in ran) == ["p1", "p2", "p3"]
    with db.session() as s:
        assert [r.status for r in s.scalars(select(JobRun))] == ["ok", "ok", "ok"]


def test_a_dead_replicas_run_is_taken_over_after_its_claim(db: Database) -> None:
    with db.session() as s:  # a replica claimed p9 and died before finishing
        s.add(JobRun(job="rules", period="p9", holder="dying", started_at=utcnow(),
                     claimed_until=utcnow() + timedelta(minutes=5), status="running"))
    assert run_once(db, "rules", "p9", "other", lambda: None) is False  # claim still valid
    with db.session() as s:
        s.execute(update(JobRun).values(claimed_until=utcnow() - timedelta(seconds=1)))
    assert run_once(db, "rules", "p9", "other", lambda: "hecho") is True
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
        assert (run.holder, run.status, run.detail) == ("other", "ok", "hecho")


def test_a_failing_job_is_recorded_with_its_error(db: Database) -> None:
    def boom() -> None:
        raise RuntimeError("Podio no responde")

    assert run_once(db, "sync", "p1", "r1", boom) is True
    with db.session() as s:
        run = s.scalars(select(JobRun)).one()
        assert run.status == "failed" and "Podio no responde" in (run.detail or "")
