"""`serve` spares Podio calls: it polls Podio less often while its hooks deliver
(SYNC_SAFETY_NET_SECONDS): a tick
after fresh deliveries skips Podio until the safety-net period has passed; a tick that
finds no delivery since the previous one (hooks quiet or broken), and a restarted process,
poll at once; and under quota pressure update notices of one app are read with one
filter call (WEBHOOK_BATCH_*). Counted as Podio calls in the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core.settings import load_settings
from jobs.hooks import register_hooks
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database, utcnow
from store.models import Ticket, WebhookInbox
from tests.test_serve_podio import AGENT, APPS, _count, _ticket, wait_for
from tests.test_serve_webhooks import TOKEN, free_port


@contextmanager
def hooked_service(sandbox: Sandbox, db: Database, **extra: Any) -> Iterator[Service]:
    """`serve` on the sandbox's Podio after its first sync, with its hooks active."""
    port = free_port()
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             public_url=f"http://127.0.0.1:{port}", sync_interval_seconds=3600,
                             rules_interval_seconds=3600, **extra)
    service = Service(settings, db, port=port).start()
    try:
        wait_for(lambda: _count(db, Ticket) > 0, timeout=60)  # the first scheduled sync ran
        register_hooks(settings, service.runtime)
        wait_for(lambda: all(h["status"] == "active" for h in sandbox.tools["podio"].hooks()), timeout=60)
        yield service
    finally:
        service.shutdown()


@pytest.fixture
def served(sandbox: Sandbox, db: Database) -> Iterator[Service]:
    with hooked_service(sandbox, db, sync_safety_net_seconds=900) as service:
        yield service


def tick(sandbox: Sandbox, service: Service, now: datetime) -> int:
    """One polling tick at ``now``: the Podio filter calls it made."""
    before = sandbox.calls.total("podio", "/filter/")
    service.sync_job_now(now=now)
    return sandbox.calls.total("podio", "/filter/") - before


def delivered_edit(sandbox: Sandbox, db: Database, item: int, priority: str) -> None:
    """An agent edits the ticket; its hook reaches the model (no polling needed)."""
    sandbox.tools["podio"].update_item_as(AGENT, item, {"prioridad": priority})
    wait_for(lambda: (_ticket(db, item) or None) is not None and _ticket(db, item).priority == priority)


def test_podio_is_polled_every_15_minutes_while_hooks_deliver(
    sandbox: Sandbox, db: Database, served: Service
) -> None:
    podio = sandbox.tools["podio"]
    item = int(
        podio.create_item_as(
            AGENT, "tickets", {"titulo": "Sin acceso", "estatus": "Nuevo", "prioridad": "Baja"}
        )
    )
    wait_for(lambda: _ticket(db, item))
    start = utcnow()  # polled at start-up, and the new ticket's hook arrived since
    assert tick(sandbox, served, start) == 0
    assert tick(sandbox, served, start + timedelta(minutes=5)) >= APPS  # none since: poll
    delivered_edit(sandbox, db, item, "Media")
    assert tick(sandbox, served, start + timedelta(minutes=10)) == 0  # hooks deliver
    delivered_edit(sandbox, db, item, "Alta")
    assert tick(sandbox, served, start + timedelta(minutes=15)) == 0
    delivered_edit(sandbox, db, item, "Media")
    assert tick(sandbox, served, start + timedelta(minutes=20)) >= APPS  # 15 min since
    delivered_edit(sandbox, db, item, "Alta")
    # A new process may have missed deliveries while it was not there: it polls at once.
    restarted = Service(served.settings, db, port=free_port())
    try:
        assert tick(sandbox, restarted, start + timedelta(minutes=21)) >= APPS
    finally:
        restarted.runtime.close()


def test_zero_polls_at_every_tick(sandbox: Sandbox, db: Database, served: Service) -> None:
    served.settings = served.settings.model_copy(update={"sync_safety_net_seconds": 0})
    podio = sandbox.tools["podio"]
    item = int(
        podio.create_item_as(
            AGENT, "tickets", {"titulo": "Sin acceso", "estatus": "Nuevo", "prioridad": "Baja"}
        )
    )
    wait_for(lambda: _ticket(db, item))
    start = utcnow()
    for minutes in (0, 5, 10):
        delivered_edit(sandbox, db, item, "Alta" if minutes % 10 else "Media")
        assert tick(sandbox, served, start + timedelta(minutes=minutes)) >= APPS


def test_update_notices_of_one_app_are_read_with_one_filter_under_quota_pressure(
    sandbox: Sandbox, db: Database
) -> None:
    """WEBHOOK_BATCH_ABOVE=0 (always under pressure): three tickets edited within the
    window become one incremental filter of the tickets app, no GET per item; a new ticket
    is still read at once (by a filter too: the next test)."""
    with hooked_service(sandbox, db, webhook_batch_seconds=1.5, webhook_batch_above=0):
        podio = sandbox.tools["podio"]
        wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()), timeout=60)
        items = [
            int(podio.create_item_as(AGENT, "tickets", {"titulo": f"Caso {n}", "estatus": "Nuevo"}))
            for n in range(3)
        ]
        wait_for(lambda: all(_ticket(db, i) for i in items))  # creations: read at once
        gets = sandbox.calls.total("podio", "GET /item/{item_id")
        filters = sandbox.calls.total("podio", "/filter/")
        for item in items:
            podio.update_item_as(AGENT, item, {"prioridad": "Alta"})
        wait_for(lambda: all(_ticket(db, i).priority == "Alta" for i in items), timeout=60)
        assert sandbox.calls.total("podio", "GET /item/{item_id") == gets
        assert sandbox.calls.total("podio", "/filter/") == filters + 1


def test_a_new_ticket_is_read_at_once_with_the_notices_waiting_for_its_app(
    sandbox: Sandbox, db: Database
) -> None:
    """Under pressure, with a window far longer than the test: two edited tickets wait to be
    gathered; a new ticket in the same app does not wait — one filter of the app reads it and
    brings the two edits with it (no GET, no second filter later)."""
    with hooked_service(sandbox, db, webhook_batch_seconds=600, webhook_batch_above=0):
        podio = sandbox.tools["podio"]
        edited = [i for i in podio.items("tickets") if _ticket(db, i).priority != "Crítica"][:2]
        gets = sandbox.calls.total("podio", "GET /item/{item_id")
        filters = sandbox.calls.total("podio", "/filter/")
        for item in edited:
            podio.update_item_as(AGENT, item, {"prioridad": "Crítica"})
        wait_for(lambda: _pending(db) == 2)  # stored, waiting for the window
        assert all(_ticket(db, i).priority != "Crítica" for i in edited)
        new = int(podio.create_item_as(AGENT, "tickets", {"titulo": "Caso nuevo",
                                                          "estatus": "Nuevo"}))
        wait_for(lambda: _ticket(db, new) is not None, timeout=20)  # not 600 s
        assert all(_ticket(db, i).priority == "Crítica" for i in edited)
        wait_for(lambda: _pending(db) == 0)
        assert sandbox.calls.total("podio", "GET /item/{item_id") == gets
        assert sandbox.calls.total("podio", "/filter/") == filters + 1


def _pending(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookInbox).where(
            WebhookInbox.status == "pending")) or 0)
