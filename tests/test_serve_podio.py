"""`serve` against the sandbox: Podio hooks registered and verified, deliveries turned
into model rows by the inbox worker, duplicates processed once, polling as the safety net."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy import func, select, update

from connectors.podio.sync import sync_podio
from core.settings import PROJECT_ROOT, load_settings
from jobs.hooks import register_hooks
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database, utcnow
from store.entities import load_mapping
from store.models import ChangeEvent, Ticket, WebhookInbox
from tests.desk_helpers import AUTH_MODES, auth_env
from tests.test_serve_webhooks import TOKEN, free_port

AGENT = "agente-2@saeko.test"
APPS = len(load_mapping(PROJECT_ROOT / "config").apps)


def wait_for(check: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture(params=AUTH_MODES)
def served(sandbox: Sandbox, db: Database, request: pytest.FixtureRequest
           ) -> Iterator[Service]:
    """`serve` on the sandbox, with the integration user or with app tokens only."""
    port = free_port()
    env = {k.lower(): v for k, v in auth_env(sandbox.env(), request.param).items()
           if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             public_url=f"http://127.0.0.1:{port}",
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    service = Service(settings, db, port=port).start()
    try:
        wait_for(lambda: _count(db, Ticket) > 0, timeout=60)  # the first scheduled sync ran
        yield service
    finally:
        service.shutdown()


def _count(db: Database, model: object, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_hooks_verified_and_deliveries_update_the_model(sandbox: Sandbox, db: Database,
                                                        served: Service) -> None:
    podio = sandbox.tools["podio"]
    plans = register_hooks(served.settings, served.runtime)
    # three hooks (create, update, delete) per app
    assert {p.status for p in plans} == {"created"} and len(plans) == 3 * APPS
    wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()))
    again = register_hooks(served.settings, served.runtime)
    assert all(p.status.startswith("exists") for p in again)  # idempotent

    user = podio.items("usuarios")[0]
    item_id = podio.create_item_as(AGENT, "tickets", {
        "titulo": "No puedo entrar a calificaciones", "usuario": [user],
        "estatus": "Nuevo", "prioridad": "Media", "canal": "WhatsApp"})
    row = wait_for(lambda: _ticket(db, item_id))
    assert row.title == "No puedo entrar a calificaciones" and row.status == "Nuevo"

    podio.update_item_as(AGENT, item_id, {"estatus": "En atención"})
    wait_for(lambda: (_ticket(db, item_id) or Ticket()).status == "En atención")
    podio.delete_item_as(AGENT, item_id)
    wait_for(lambda: (_ticket(db, item_id) or Ticket()).deleted_at is not None)
    # the worker marks a delivery done right after the model write: wait for that too
    wait_for(lambda: _count(db, WebhookInbox, WebhookInbox.status != "done") == 0)
    assert _count(db, WebhookInbox, WebhookInbox.status == "done") >= 3


def test_a_duplicated_delivery_is_processed_once(sandbox: Sandbox, db: Database,
                                                 served: Service) -> None:
    podio = sandbox.tools["podio"]
    register_hooks(served.settings, served.runtime)
    wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()))
    sandbox.webhooks.duplicate_next = 1
    ticket = podio.items("tickets")[3]
    podio.update_item_as(AGENT, ticket, {"prioridad": "Alta"})
    wait_for(lambda: (_ticket(db, ticket) or Ticket()).priority == "Alta")
    sandbox.webhooks.wait_idle()
    deliveries = [d for d in sandbox.webhooks.log if d["result"] == 200]
    assert len(deliveries) >= 2  # the sandbox really sent it twice
    assert _count(db, WebhookInbox, WebhookInbox.event_type == "item.update") == 1


def test_polling_catches_a_lost_delivery(sandbox: Sandbox, db: Database,
                                         served: Service) -> None:
    podio = sandbox.tools["podio"]
    register_hooks(served.settings, served.runtime)
    wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()))
    sandbox.webhooks.drop_next = 1
    ticket = podio.items("tickets")[4]
    podio.update_item_as(AGENT, ticket, {"prioridad": "Baja", "respuesta": "perdido"})
    sandbox.webhooks.wait_idle()
    assert (_ticket(db, ticket) or Ticket()).answer != "perdido"
    served.sync_job_now()
    assert (_ticket(db, ticket) or Ticket()).answer == "perdido"


def _ticket(db: Database, item_id: int) -> Ticket | None:
    with db.session() as s:
        return s.scalars(select(Ticket).where(Ticket.source_id == str(item_id))).one_or_none()


def test_t1_fields_are_written_back_through_the_webhook_path(sandbox: Sandbox, db: Database,
                                                             served: Service) -> None:
    """A user's new ticket (title + user only) gets T1's fields from `serve`, in real time."""
    podio = sandbox.tools["podio"]
    register_hooks(served.settings, served.runtime)
    wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()))
    world = sandbox.world
    client = next(c for c in world.clients if c.am)
    school = next(s for s in world.schools if s.client_key == client.key)
    user = next(u for u in world.users if u.school_key == school.key)
    from sandbox.world import podio_item_id

    item = podio.create_item_as(AGENT, "tickets", {
        "titulo": "Error al generar referencia de pago", "estatus": "Nuevo",
        "usuario": [podio_item_id("usuarios", user.key)], "email-reportante": user.email})
    values = wait_for(lambda: (v := podio.values(item)).get("am") and v, timeout=20)
    assert values["escuela"] == [podio_item_id("escuelas", school.key)]
    am = world.staff_by_key(client.am)
    assert am is not None and values["am"] == [am.podio_profile_id]
    assert values["modulo"] == "Cobranza" and values["producto"] == client.product
    assert values["titulo"] == "Error al generar referencia de pago"  # untouched


def test_a_record_changed_several_times_is_read_once_per_batch(sandbox: Sandbox,
                                                               db: Database) -> None:
    from connectors.clients import ActionRuntime
    from jobs.inbox import InboxWorker
    from store.db import utcnow

    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url)
    podio = sandbox.tools["podio"]
    ticket = podio.items("tickets")[7]
    revisions = [podio.update_item_as(AGENT, ticket, {"prioridad": p})
                 for p in ("Alta", "Baja", "Crítica")]
    with db.session() as s:
        for n, revision in enumerate(revisions):
            s.add(WebhookInbox(source="podio", delivery_key=f"podio:item.update:{ticket}:{n}",
                               event_type="item.update", status="pending", received_at=utcnow(),
                               payload={"type": "item.update", "hook_id": "1",
                                        "item_id": str(ticket),
                                        "item_revision_id": str(revision)}))
    runtime = ActionRuntime(settings)
    sandbox.calls.reset()
    try:
        result = InboxWorker(settings, db, "test", runtime).process_batch()
    finally:
        runtime.close()
    assert result.done == 3
    assert sandbox.calls.snapshot("podio")["podio"].get("GET /item/{item_id:int}") == 1
    assert (_ticket(db, ticket) or Ticket()).priority == "Crítica"


def test_a_delete_notice_is_checked_against_podio(sandbox: Sandbox, db: Database,
                                                  served: Service) -> None:
    """A forged (but authenticated) item.delete for a live ticket deletes nothing; a real
    deletion, answered 404 not_found (or 410 gone) by Podio, is marked."""
    podio = sandbox.tools["podio"]
    url = f"{served.settings.public_url}/hooks/podio/{TOKEN}"
    live = podio.items("tickets")[5]
    forged = httpx.post(url, data={"type": "item.delete", "hook_id": "1",
                                   "item_id": str(live)})
    assert forged.status_code == 200
    wait_for(lambda: _count(db, WebhookInbox, WebhookInbox.status == "done") == 1)
    assert (_ticket(db, live) or Ticket()).deleted_at is None
    with db.session() as s:
        assert s.scalars(select(ChangeEvent).where(ChangeEvent.kind == "deleted")).first() is None

    register_hooks(served.settings, served.runtime)
    wait_for(lambda: all(h["status"] == "active" for h in podio.hooks()))
    podio.delete_item_as(AGENT, live)
    wait_for(lambda: (_ticket(db, live) or Ticket()).deleted_at is not None)
    podio.set_deleted_status(410)
    other = podio.items("tickets")[6]
    podio.delete_item_as(AGENT, other)
    wait_for(lambda: (_ticket(db, other) or Ticket()).deleted_at is not None)


def test_the_next_sync_revives_a_live_item_marked_deleted(sandbox: Sandbox,
                                                          db: Database) -> None:
    """Rows wrongly marked deleted (by an unchecked delete notice of an older version) come
    back on the next cycle: a changed item through the incremental read, an unchanged one
    through the id scan its missing row triggers."""
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url)
    sync_podio(settings, db)
    podio = sandbox.tools["podio"]
    changed, unchanged = podio.items("tickets")[8], podio.items("tickets")[9]
    with db.session() as s:
        s.execute(update(Ticket).where(Ticket.source_id.in_([str(changed), str(unchanged)]))
                  .values(deleted_at=utcnow()))
    podio.update_item_as(AGENT, changed, {"respuesta": "sigue vivo"})
    reports = {r.stream: r for r in sync_podio(settings, db)}
    assert reports["tickets"].error is None and reports["tickets"].counts.updated == 2
    for item in (changed, unchanged):
        assert (_ticket(db, item) or Ticket()).deleted_at is None
    assert (_ticket(db, changed) or Ticket()).answer == "sigue vivo"
