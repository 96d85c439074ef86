"""Deletions reach the model while `serve` runs and after it was down: Jira's
``jira:issue_deleted`` webhook, and the deletion scan `serve` runs on its schedule for
Podio and Jira alike (DELETION_SCAN_MINUTES), each vanished record confirmed by a read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jira.exceptions import JIRAError
from sqlalchemy import select

from connectors.jira.client import JiraClient
from core.settings import Settings, load_settings
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database
from store.models import Incident, JobRun, Ticket
from tests.desk_helpers import AUTH_MODES, auth_env
from tests.test_serve_jira import _incident, _jira_synced
from tests.test_serve_podio import AGENT, wait_for
from tests.test_serve_webhooks import TOKEN, free_port

DEV = "agente-3"


def _settings(sandbox: Sandbox, db: Database, port: int, auth: str = "user",
              **extra: Any) -> Settings:
    env = {k.lower(): v for k, v in auth_env(sandbox.env(), auth).items()
           if k.startswith(("PODIO_", "JIRA_"))}
    return load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                         public_url=f"http://127.0.0.1:{port}", sync_interval_seconds=3600,
                         rules_interval_seconds=3600, **extra)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/deletions.db")
    database.upgrade()
    yield database
    database.dispose()


def _open_issue(sandbox: Sandbox, n: int = 0) -> str:
    jira = sandbox.tools["jira"]
    return [k for k in jira.issues() if k.startswith("SOP")][n]


def _ticket(db: Database, item_id: int) -> Ticket | None:
    with db.session() as s:
        return s.scalars(select(Ticket).where(Ticket.source_id == str(item_id))).one_or_none()


def test_a_jira_issue_deleted_while_serve_runs_is_marked_through_its_webhook(
        sandbox: Sandbox, db: Database) -> None:
    port = free_port()
    settings = _settings(sandbox, db, port)
    service = Service(settings, db, port=port).start()
    jira = sandbox.tools["jira"]
    try:
        wait_for(lambda: _jira_synced(db), timeout=60)
        service.scheduler.pause_job("sync")
        jira.register_webhook(f"http://127.0.0.1:{port}/hooks/jira/{TOKEN}",
                              events=["jira:issue_deleted"],
                              secret=settings.jira_webhook_secret.get_secret_value())
        key = _open_issue(sandbox)
        assert (_incident(db, key) or Incident()).deleted_at is None
        jira.delete_issue_as(DEV, key)
        wait_for(lambda: (_incident(db, key) or Incident()).deleted_at is not None, timeout=30)
        others = [k for k in jira.issues() if k.startswith("SOP")]
        assert all((_incident(db, k) or Incident()).deleted_at is None for k in others)
    finally:
        service.shutdown()


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_deletions_made_while_serve_was_down_are_marked_by_its_scheduled_scan(
        sandbox: Sandbox, db: Database, auth: str) -> None:
    """`serve` runs once (the model is full), stops; a Jira issue and a Podio ticket are
    deleted (no webhook reaches anyone); `serve` starts again and its deletion scan,
    every 3 s here, marks both — and nothing else."""
    port = free_port()
    settings = _settings(sandbox, db, port, auth)
    first = Service(settings, db, port=port).start()
    try:
        wait_for(lambda: _jira_synced(db), timeout=60)
    finally:
        first.shutdown()
    key = _open_issue(sandbox, 1)
    podio = sandbox.tools["podio"]
    ticket = podio.items("tickets")[1]
    assert _ticket(db, ticket) is not None
    sandbox.tools["jira"].delete_issue_as(DEV, key)
    podio.delete_item_as(AGENT, ticket, hook=False)
    port = free_port()
    again = Service(_settings(sandbox, db, port, auth, deletion_scan_minutes=0.05),
                    db, port=port).start()
    try:
        wait_for(lambda: (_incident(db, key) or Incident()).deleted_at is not None, timeout=40)
        wait_for(lambda: (_ticket(db, ticket) or Ticket()).deleted_at is not None, timeout=40)
        with db.session() as s:
            runs = s.scalars(select(JobRun).where(JobRun.job == "deletions")).all()
            assert runs and all(r.status != "failed" for r in runs), \
                [(r.status, r.detail) for r in runs]
            assert s.scalars(select(Ticket).where(Ticket.deleted_at.is_not(None))).all() \
                == [s.scalars(select(Ticket).where(Ticket.source_id == str(ticket))).one()]
            assert [i.key for i in s.scalars(select(Incident).where(
                Incident.deleted_at.is_not(None)))] == [key]
    finally:
        again.shutdown()


def test_the_sandbox_deletes_issues_as_jira_does(sandbox: Sandbox, db: Database) -> None:
    """DELETE /rest/api/3/issue/{key} through the jira library: 204; an issue with
    sub-tasks needs deleteSubtasks=true (else 400) and takes them along; then 404."""
    settings = _settings(sandbox, db, free_port())
    jira = sandbox.tools["jira"]
    parent, child, plain = (_open_issue(sandbox, n) for n in (2, 3, 4))
    jira.make_subtask(child, parent)
    client = JiraClient(settings)
    try:
        with pytest.raises(JIRAError) as refused:
            client.writer.issue(parent).delete()
        assert refused.value.status_code == 400 and "subtasks" in str(refused.value.text)
        client.writer.issue(parent).delete(deleteSubtasks=True)
        client.writer.issue(plain).delete()
        for gone in (parent, child, plain):
            with pytest.raises(JIRAError) as missing:
                client.writer.issue(gone)
            assert missing.value.status_code == 404
    finally:
        client.close()


def test_hooks_register_prints_every_jira_event_to_subscribe(sandbox: Sandbox,
                                                             db: Database) -> None:
    from jobs.hooks import instructions

    settings = _settings(sandbox, db, free_port())
    (jira,) = [text for text in instructions(settings) if "Jira" in text]
    for event in ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted",
                  "comment_created"):
        assert event in jira
    assert "Issue deleted" in jira and f"/hooks/jira/{TOKEN}" in jira
