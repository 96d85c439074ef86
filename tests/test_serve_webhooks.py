"""The webhook receiver of `serve`, over real HTTP: authentication, limits, dedupe; and the
inbox worker's handling of deliveries it cannot use."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from connectors.clients import ActionRuntime
from core.settings import load_settings
from jobs import inbox, status
from jobs.inbox import InboxWorker
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database, utcnow
from store.models import DeadLetter, Incident, Ticket, WebhookInbox

TOKEN = "tok-" + "x" * 28
SECRET = "jira-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def service(db: Database) -> Iterator[tuple[Service, str]]:
    settings = load_settings(database_url=db.url, webhook_token=TOKEN,
                             jira_webhook_secret=SECRET, sync_interval_seconds=3600,
                             rules_interval_seconds=3600)
    port = free_port()
    svc = Service(settings, db, port=port).start()
    try:
        yield svc, f"http://127.0.0.1:{port}"
    finally:
        svc.shutdown()


def inbox_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookInbox)) or 0)


def test_wrong_token_or_signature_leaves_no_trace(service, db: Database) -> None:  # type: ignore[no-untyped-def]
    _svc, url = service
    form = {"type": "item.update", "hook_id": "7", "item_id": "4000001",
            "item_revision_id": "99"}
    assert httpx.post(f"{url}/hooks/podio/wrong", data=form).status_code == 404
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}}).encode()
    bad = httpx.post(f"{url}/hooks/jira/{TOKEN}", content=body,
                     headers={"X-Hub-Signature": "sha256=" + "0" * 64})
    assert bad.status_code == 401
    assert httpx.post(f"{url}/hooks/jira/{TOKEN}", content=body).status_code == 401
    assert inbox_count(db) == 0


def test_malformed_and_oversized_bodies_are_refused(service, db: Database) -> None:  # type: ignore[no-untyped-def]
    _svc, url = service
    assert httpx.post(f"{url}/hooks/podio/{TOKEN}", content=b"\xff\xfe",
                      headers={"content-type": "application/x-www-form-urlencoded"}
                      ).status_code == 400
    assert httpx.post(f"{url}/hooks/podio/{TOKEN}", data={"type": "item.explode",
                                                         "hook_id": "1"}).status_code == 400
    for body in (b"{not json", b'{"webhookEvent": "jira:issue_updated", "issue": "garbage"}',
                 b'{"webhookEvent": "jira:issue_updated", "issue": {"id": ["1"]}}'):
        sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert httpx.post(f"{url}/hooks/jira/{TOKEN}", content=body,
                          headers={"X-Hub-Signature": sig}).status_code == 400, body
    assert httpx.post(f"{url}/hooks/podio/{TOKEN}", data={
        "type": "item.update", "hook_id": "1", "item_id": "²"}).status_code == 400
    huge = b"a=" + b"x" * (300 * 1024)
    assert httpx.post(f"{url}/hooks/podio/{TOKEN}", content=huge).status_code == 413
    assert inbox_count(db) == 0


def test_the_same_delivery_twice_is_stored_once(service, db: Database) -> None:  # type: ignore[no-untyped-def]
    svc, url = service
    svc._stop.set()  # keep the worker away: this test looks at the inbox itself
    form = {"type": "item.update", "hook_id": "7", "item_id": "4000001",
            "item_revision_id": "99", "external_id": ""}
    first = httpx.post(f"{url}/hooks/podio/{TOKEN}", data=form)
    second = httpx.post(f"{url}/hooks/podio/{TOKEN}", data=form)
    assert first.json() == {"ok": True, "duplicate": False}
    assert second.json() == {"ok": True, "duplicate": True}
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature": sig, "X-Atlassian-Webhook-Identifier": "abc-1"}
    for _ in range(2):
        assert httpx.post(f"{url}/hooks/jira/{TOKEN}", content=body,
                          headers=headers).status_code == 200
    assert inbox_count(db) == 2


def test_health_and_status_page(service) -> None:  # type: ignore[no-untyped-def]
    _svc, url = service
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "saeko-sync — estado" in page.text
    assert set(httpx.get(f"{url}/status.json").json()) >= {"syncs", "inbox", "rule_runs"}


def test_a_poison_delivery_goes_dead_and_never_blocks_the_batch(sandbox: Sandbox,
                                                                 db: Database) -> None:
    """Deliveries stored before the receiver checked shapes (or shapes it lets through) are
    parked one by one; the good ones of the same batch reach the model."""
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith(("PODIO_", "JIRA_"))}
    settings = load_settings(**env, database_url=db.url)
    jira, podio = sandbox.tools["jira"], sandbox.tools["podio"]
    key = next(k for k in jira.issues() if k.startswith("SOP")
               and jira.issue(k)["fields"]["status"]["statusCategory"]["key"] != "done")
    jira.transition_as("agente-3", key, "Resuelto", resolution="Corregido")
    ticket = podio.items("tickets")[2]
    revision = podio.update_item_as("agente-2@saeko.test", ticket, {"prioridad": "Crítica"})
    deliveries = [
        ("jira", "jira:issue_updated", {"webhookEvent": "jira:issue_updated", "issue": "garbage"}),
        ("podio", "item.update", {"type": "item.update", "hook_id": "1", "item_id": "x1"}),
        ("jira", "jira:issue_updated", {"webhookEvent": "jira:issue_updated", "timestamp": 1,
                                        "issue": {"id": jira.issue(key)["id"], "key": key}}),
        ("podio", "item.update", {"type": "item.update", "hook_id": "1", "item_id": str(ticket),
                                  "item_revision_id": str(revision)}),
    ]
    with db.session() as s:
        for n, (source, kind, payload) in enumerate(deliveries):
            s.add(WebhookInbox(source=source, delivery_key=f"test:{n}", event_type=kind,
                               payload=payload, status="pending", received_at=utcnow()))
    runtime = ActionRuntime(settings)
    try:
        result = InboxWorker(settings, db, "test", runtime).process_batch()
    finally:
        runtime.close()

    assert (result.done, result.failed) == (2, 2)
    with db.session() as s:
        rows = {r.delivery_key: r for r in s.scalars(select(WebhookInbox))}
        incident = s.scalars(select(Incident).where(Incident.key == key)).one()
        row = s.scalars(select(Ticket).where(Ticket.source_id == str(ticket))).one()
        assert incident.status_category == "done" and incident.resolution == "Corregido"
        assert row.priority == "Crítica"
        assert [rows[f"test:{n}"].status for n in range(4)] == ["dead", "dead", "done", "done"]
        poison = rows["test:0"]
        assert poison.attempts == 1 and "'issue' debe ser un objeto" in (poison.error or "")
        letters = {d.source_id: d for d in s.scalars(select(DeadLetter).where(
            DeadLetter.stream == "webhook"))}
        assert set(letters) == {str(rows["test:0"].id), str(rows["test:1"].id)}
        assert "'issue' debe ser un objeto" in letters[str(poison.id)].reason
        assert letters[str(poison.id)].payload["payload"]["issue"] == "garbage"
        assert "item_id" in letters[str(rows["test:1"].id)].reason
    assert status.snapshot(db)["inbox"] == {"dead": 2, "done": 2}


def test_a_failing_delivery_is_retried_then_dead_with_a_dead_letter(sandbox: Sandbox,
                                                                     db: Database) -> None:
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("PODIO_")}
    settings = load_settings(**env, database_url=db.url, podio_retry_base_seconds=0.01,
                             podio_max_retry_seconds=1)
    tickets = sandbox.tools["podio"].items("tickets")
    broken, fine = tickets[0], tickets[1]
    sandbox.faults.add(kind="status", tool="podio", method="GET", path=f"^/item/{broken}$",
                       status=500, count=10_000)
    with db.session() as s:
        for n, item in enumerate((broken, fine)):
            s.add(WebhookInbox(source="podio", delivery_key=f"test:{n}", event_type="item.update",
                               status="pending", received_at=utcnow(),
                               payload={"type": "item.update", "hook_id": "1",
                                        "item_id": str(item)}))
    runtime = ActionRuntime(settings)
    worker = InboxWorker(settings, db, "test", runtime)
    seen = []
    try:
        for _ in range(inbox.MAX_ATTEMPTS):
            worker.process_batch()
            assert worker.process_batch().failed == 0  # backing off: not tried again at once
            with db.session() as s:
                row = s.scalars(select(WebhookInbox).where(
                    WebhookInbox.delivery_key == "test:0")).one()
                seen.append((row.status, row.attempts))
                if row.claimed_until is not None:  # the back-off is over
                    row.claimed_until = utcnow() - timedelta(seconds=1)
    finally:
        runtime.close()
    assert seen == [("pending", n) for n in range(1, inbox.MAX_ATTEMPTS)] + [
        ("dead", inbox.MAX_ATTEMPTS)]
    with db.session() as s:
        assert s.scalars(select(WebhookInbox.status).where(
            WebhookInbox.delivery_key == "test:1")).one() == "done"
        assert s.scalars(select(Ticket).where(Ticket.source_id == str(fine))).one()
        (letter,) = s.scalars(select(DeadLetter).where(DeadLetter.stream == "webhook"))
        assert letter.source_id == str(row.id) and "500" in letter.reason
