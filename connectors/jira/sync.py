"""The Jira sync: the issues stream (``streams.py``) through the shared runner; ``sync_issue``
is the webhook path for one issue.

Per page, in one transaction: the incidents, their new status changes, the Podio ticket
links and the cursor. A failure mid-sync keeps every committed page; the next sync resumes
from the cursor. A full sync also marks issues that vanished as deleted.
"""

from __future__ import annotations

from typing import Any

from connectors.base import ProgressFn
from connectors.jira.client import JiraClient
from connectors.jira.links import ENTITY
from connectors.jira.mapping import SOURCE
from connectors.jira.streams import IssuesStream
from connectors.runner import run_stream, single_outcome, write_page
from core.settings import Settings
from store.db import Database
from store.models import Incident
from store.sync import SyncReport, get_state, mark_deleted


def sync_jira(settings: Settings, db: Database, *, full: bool = False,
              progress: ProgressFn | None = None, client: JiraClient | None = None
              ) -> list[SyncReport]:
    """Sync the issues of JIRA_PROJECTS into the model. Raises ConfigError / AuthError when
    Jira cannot be used at all; other failures are reported on the stream's SyncReport."""
    own_client = client is None
    client = client or JiraClient(settings)
    # A client built here counts its start-up call; a long-lived one (the service) does not.
    calls_from = 0 if own_client else None
    try:
        stream = IssuesStream(client, settings, _stored_meta(db))
        return [run_stream(db, stream, full=full, progress=progress, calls_from=calls_from)]
    finally:
        if own_client:
            client.close()


def sync_issue(settings: Settings, db: Database, payload: dict[str, Any], *,
               client: JiraClient | None = None) -> str:
    """Bring one issue up to date from a webhook delivery (the payload is only a hint:
    the issue is re-read by id). Returns 'created' / 'updated' / 'unchanged' / 'deleted' /
    'dead_lettered' / 'ignored'."""
    issue = payload.get("issue")
    issue_id = str(issue.get("id") or "") if isinstance(issue, dict) else ""
    if not (issue_id.isascii() and issue_id.isdigit()):
        return "ignored"
    own_client = client is None
    client = client or JiraClient(settings)
    try:
        if payload.get("webhookEvent") == "jira:issue_deleted":
            # A hint like any other: marked only when Jira answers 404 for the issue.
            from connectors.jira.deletions import issue_gone

            if issue_gone(client, issue_id):
                with db.session() as session:
                    gone = mark_deleted(session, Incident, SOURCE, [issue_id], entity=ENTITY)
                return "deleted" if gone else "ignored"
        stream = IssuesStream(client, settings, _stored_meta(db))
        found = client.search(f"id = {issue_id}", maxResults=1, fields=stream.search.fields,
                              expand="changelog", reconcileIssues=[int(issue_id)])
        raws = [i.raw for i in found]
        if not raws or (raws[0].get("fields") or {}).get("project", {}).get(
                "key") not in stream.search.projects:
            return "ignored"
        report = SyncReport(SOURCE, stream.name)
        delivery = payload.get("timestamp")
        write_page(db, stream, stream.records(found), report, move_cursor=False,
                   correlation_id=f"jira:{issue_id}:{delivery}"[:64] if delivery else None)
        with db.session() as session:
            stream.save_meta(get_state(session, SOURCE, stream.name))
    finally:
        if own_client:
            client.close()
    return single_outcome(report)


def _stored_meta(db: Database) -> dict[str, Any]:
    """The issues stream's stored state: time zone and status categories."""
    with db.session() as session:
        return dict(get_state(session, SOURCE, IssuesStream.name).state or {})
