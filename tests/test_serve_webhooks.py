"""The webhook receiver of `serve`, over real HTTP: authentication, limits, dedupe."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from core.settings import load_settings
from jobs.service import Service
from store.db import Database
from store.models import WebhookInbox

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
    body = b"{not json"
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert httpx.post(f"{url}/hooks/jira/{TOKEN}", content=body,
                      headers={"X-Hub-Signature": sig}).status_code == 400
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
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "saeko-sync — estado" in page.text
    assert set(httpx.get(f"{url}/status.json").json()) >= {"syncs", "inbox", "rule_runs"}
