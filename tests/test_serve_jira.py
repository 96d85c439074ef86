"""`serve` receives Jira's signed webhooks and brings the incident up to date."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from core.settings import load_settings
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database
from store.models import Incident, IncidentStatusChange, WebhookInbox
from tests.test_serve_podio import wait_for
from tests.test_serve_webhooks import TOKEN, free_port


def test_a_resolved_issue_reaches_the_model_through_the_webhook(sandbox: Sandbox,
                                                                tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/jira.db")
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith(("PODIO_", "JIRA_"))}
    port = free_port()
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    service = Service(settings, db, port=port).start()
    jira = sandbox.tools["jira"]
    try:
        wait_for(lambda: _incident(db, "SOP-1") is not None, timeout=60)  # first sync
        jira.register_webhook(f"http://127.0.0.1:{port}/hooks/jira/{TOKEN}",
                              secret=settings.jira_webhook_secret.get_secret_value())
        key = next(k for k in jira.issues() if k.startswith("SOP")
                   and jira.issue(k)["fields"]["status"]["statusCategory"]["key"] != "done")
        jira.transition_as("agente-3", key, "Resuelto", resolution="Corregido")
        row = wait_for(lambda: (i := _incident(db, key)) is not None
                       and i.status_category == "done" and i)
        assert row.resolution == "Corregido" and row.resolved_at is not None
        with db.session() as s:
            assert s.scalars(select(IncidentStatusChange).where(
                IncidentStatusChange.incident_id == row.id,
                IncidentStatusChange.to_status == "Resuelto")).first() is not None
            assert s.scalars(select(WebhookInbox).where(WebhookInbox.source == "jira")
                             ).first().status == "done"
    finally:
        service.shutdown()


def _incident(db: Database, key: str) -> Incident | None:
    with db.session() as s:
        return s.scalars(select(Incident).where(Incident.key == key)).one_or_none()
