"""`serve` receives Jira's signed webhooks and brings the incident up to date."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from core.settings import load_settings
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database
from store.models import ChangeEvent, Incident, IncidentStatusChange, SyncState, WebhookInbox
from tests.test_serve_podio import wait_for
from tests.test_serve_webhooks import TOKEN, free_port


def test_a_resolved_issue_reaches_the_model_through_the_webhook(sandbox: Sandbox,
                                                                tmp_path: Path) -> None:
    """Only the webhook can bring the change: the polling sync ran once at start-up and is
    then paused (its interval is an hour anyway)."""
    db = Database(f"sqlite:///{tmp_path}/jira.db")
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith(("PODIO_", "JIRA_"))}
    port = free_port()
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    service = Service(settings, db, port=port).start()
    jira = sandbox.tools["jira"]
    try:
        wait_for(lambda: _jira_synced(db), timeout=60)  # the start-up sync read Jira
        service.scheduler.pause_job("sync")
        jira.register_webhook(f"http://127.0.0.1:{port}/hooks/jira/{TOKEN}",
                              secret=settings.jira_webhook_secret.get_secret_value())
        key = next(k for k in jira.issues() if k.startswith("SOP")
                   and jira.issue(k)["fields"]["status"]["statusCategory"]["key"] != "done")
        issue_id = jira.issue(key)["id"]
        before = _incident(db, key)
        assert before is not None and before.status_category != "done"
        jira.transition_as("agente-3", key, "Resuelto", resolution="Corregido")
        delivery = wait_for(lambda: _delivery_done(db, issue_id), timeout=30)
        row = _incident(db, key)
        assert row is not None and row.status_category == "done"
        assert row.resolution == "Corregido" and row.resolved_at is not None
        with db.session() as s:
            assert s.scalars(select(IncidentStatusChange).where(
                IncidentStatusChange.incident_id == row.id,
                IncidentStatusChange.to_status == "Resuelto")).first() is not None
            # The change was written by the delivery (a polling sync records no correlation).
            (event,) = [e for e in s.scalars(select(ChangeEvent).where(
                ChangeEvent.entity == "incident", ChangeEvent.entity_id == row.id,
                ChangeEvent.kind == "updated")) if "status_category" in (e.changes or {})]
            assert event.changes["status_category"][1] == "done"
            assert event.correlation_id == f"jira:{issue_id}:{delivery.payload['timestamp']}"
    finally:
        service.shutdown()


def _jira_synced(db: Database) -> bool:
    with db.session() as s:
        state = s.scalars(select(SyncState).where(SyncState.source == "jira")).first()
        return state is not None and state.last_finished_at is not None


def _delivery_done(db: Database, issue_id: str) -> WebhookInbox | None:
    with db.session() as s:
        for row in s.scalars(select(WebhookInbox).where(WebhookInbox.source == "jira",
                                                        WebhookInbox.status == "done")):
            if str((row.payload.get("issue") or {}).get("id")) == issue_id and \
                    row.payload.get("changelog"):
                return row
    return None


def _incident(db: Database, key: str) -> Incident | None:
    with db.session() as s:
        return s.scalars(select(Incident).where(Incident.key == key)).one_or_none()
