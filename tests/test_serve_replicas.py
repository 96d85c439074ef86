"""Two `serve` processes on one PostgreSQL: each scheduled sync runs once per period, each
webhook delivery is processed once, and killing a replica mid-work loses nothing; SIGTERM
during work loses nothing either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from connectors.podio.sync import sync_podio
from core.settings import load_settings
from sandbox.server import Sandbox
from store.db import Database
from store.models import JobRun, Ticket, WebhookInbox
from tests.test_serve_podio import wait_for
from tests.test_serve_webhooks import TOKEN, free_port

ROOT = Path(__file__).resolve().parent.parent
GET_ITEM = "GET /item/{item_id:int}"


def start_replica(sandbox: Sandbox, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIO_", "JIRA_",
                                                                     "GOOGLE_"))}
    env |= {k: v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    env |= {"DATABASE_URL": url, "WEBHOOK_TOKEN": TOKEN, "SYNC_INTERVAL_SECONDS": "2",
            "RULES_INTERVAL_SECONDS": "3600", "INBOX_CLAIM_SECONDS": "3",
            "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "saeko_sync", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("replica did not start")


@pytest.fixture
def synced(sandbox: Sandbox, postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    db.upgrade()
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    sync_podio(load_settings(**env, database_url=postgres_url), db)
    yield db
    db.dispose()


def deliver(port: int, item_id: int, revision: int) -> None:
    form = {"type": "item.update", "hook_id": "1", "item_id": str(item_id),
            "item_revision_id": str(revision)}
    assert httpx.post(f"http://127.0.0.1:{port}/hooks/podio/{TOKEN}", data=form).status_code == 200


def inbox_states(db: Database) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(WebhookInbox.status, func.count())
                              .group_by(WebhookInbox.status)).all())


def test_two_replicas_share_the_work_once(sandbox: Sandbox, synced: Database,
                                          postgres_url: str) -> None:
    db = synced
    ports = [free_port(), free_port()]
    sandbox.calls.reset()
    replicas = [start_replica(sandbox, postgres_url, port) for port in ports]
    try:
        tickets = sandbox.tools["podio"].items("tickets")[:20]
        for n, item_id in enumerate(tickets):
            deliver(ports[n % 2], item_id, 10_000 + n)
            deliver(ports[(n + 1) % 2], item_id, 10_000 + n)  # the same delivery, other replica
        wait_for(lambda: inbox_states(db) == {"done": 20}, timeout=60)
        time.sleep(5)  # let a few sync periods pass on both replicas
    finally:
        for proc in replicas:
            proc.terminate()
        for proc in replicas:
            proc.wait(timeout=30)
    calls = sandbox.calls.snapshot("podio")["podio"]
    assert calls.get(GET_ITEM, 0) == 20  # each delivery fetched its item exactly once
    with db.session() as s:
        runs = s.scalars(select(JobRun).where(JobRun.job == "sync")).all()
    periods = [r.period for r in runs]
    assert len(runs) >= 2 and len(set(periods)) == len(periods)
    filters = sum(n for endpoint, n in calls.items() if "/filter" in endpoint)
    assert filters == 6 * sum(1 for r in runs if r.status == "ok")  # no period synced twice


def test_killing_a_replica_mid_work_loses_nothing(sandbox: Sandbox, synced: Database,
                                                  postgres_url: str) -> None:
    db = synced
    port_a, port_b = free_port(), free_port()
    sandbox.faults.add(kind="latency", tool="podio", path=r"^/item/\d+$", method="GET",
                       delay=1.0, count=None, rate=1.0)
    victim = start_replica(sandbox, postgres_url, port_a)
    tickets = sandbox.tools["podio"].items("tickets")[20:26]
    try:
        for n, item_id in enumerate(tickets):
            deliver(port_a, item_id, 20_000 + n)
        wait_for(lambda: inbox_states(db).get("done", 0) >= 1, timeout=30)
        victim.send_signal(signal.SIGKILL)  # dies holding claims on the rest
        victim.wait(timeout=10)
        assert inbox_states(db).get("pending", 0) >= 1
        sandbox.faults.clear()
        survivor = start_replica(sandbox, postgres_url, port_b)
        try:
            wait_for(lambda: inbox_states(db) == {"done": len(tickets)}, timeout=60)
        finally:
            survivor.terminate()
            survivor.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()


def test_sigterm_during_work_leaves_the_rest_claimable(sandbox: Sandbox, synced: Database,
                                                       postgres_url: str) -> None:
    db = synced
    port = free_port()
    sandbox.faults.add(kind="latency", tool="podio", path=r"^/item/\d+$", method="GET",
                       delay=0.7, count=None, rate=1.0)
    replica = start_replica(sandbox, postgres_url, port)
    tickets = sandbox.tools["podio"].items("tickets")[30:36]
    for n, item_id in enumerate(tickets):
        deliver(port, item_id, 30_000 + n)
    wait_for(lambda: inbox_states(db).get("done", 0) >= 1, timeout=30)
    replica.send_signal(signal.SIGTERM)
    assert replica.wait(timeout=30) == 0
    states = inbox_states(db)
    assert sum(states.values()) == len(tickets) and set(states) <= {"done", "pending"}
    with db.session() as s:  # nothing left claimed by the stopped replica
        assert s.scalar(select(func.count()).select_from(WebhookInbox).where(
            WebhookInbox.status == "pending", WebhookInbox.claimed_until.is_not(None))) == 0
    sandbox.faults.clear()
    restarted = start_replica(sandbox, postgres_url, port)
    try:
        wait_for(lambda: inbox_states(db) == {"done": len(tickets)}, timeout=60)
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) > 0
