"""Deleted Jira issues: JQL cannot show them (reference §4 pitfall 4), so two ways in.

- The ``jira:issue_deleted`` webhook (``sync.sync_issue``): the issue is read again by id
  and marked deleted only when Jira answers 404.
- The id scan (``scan_deletions``), which `serve` runs on its schedule
  (DELETION_SCAN_MINUTES) for deletions made while it was down or whose delivery was lost:
  every issue id of JIRA_PROJECTS is listed (``fields=id``, large pages, nextPageToken); a
  live incident whose id was not listed is read by id, and marked deleted only on 404.
  Losing permission on an issue looks the same as a deletion (reference §4), which is also
  what the model should say: the incident is gone for saeko-sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select

from connectors.jira.links import ENTITY
from connectors.jira.mapping import SOURCE
from connectors.paging import NextPageTokenPaginator, iter_pages
from core.errors import RemoteDataError
from store.models import Incident
from store.sync import mark_deleted

if TYPE_CHECKING:
    from connectors.jira.client import JiraClient
    from core.settings import Settings
    from store.db import Database

log = structlog.get_logger(__name__)

# Ids per listing page: enhanced search returns up to 5,000 issues when only ``id`` is
# asked for (Atlassian, "Search for issues using JQL enhanced search": maxResults "up to
# 5000 issues when fields=id"); 1,000 keeps pages small on busy sites.
ID_PAGE = 1000
MAX_ID_PAGES = 1000  # 1,000,000 issues
# Vanished ids checked by GET per scan (the rest wait for the next scan).
MAX_CONFIRMED_PER_SCAN = 200


def issue_gone(client: JiraClient, issue_id: str) -> bool:
    """Whether Jira says the issue does not exist (any more) for our user: 404."""
    try:
        client.call("leer una incidencia", client.reader.issue, issue_id, fields="id")
    except RemoteDataError as exc:
        if exc.status == 404:
            return True
        raise
    return False


def listed_ids(settings: Settings, client: JiraClient) -> set[str]:
    """Every issue id of JIRA_PROJECTS, now."""
    projects = ", ".join(f'"{key}"' for key in settings.jira_project_keys)
    jql = f"project in ({projects}) ORDER BY id ASC"

    def fetch(token: str | None) -> Any:
        return client.search(jql, nextPageToken=token, maxResults=ID_PAGE, fields=["id"])

    paginator = NextPageTokenPaginator(max_pages=MAX_ID_PAGES)
    return {str(issue.raw["id"]) for page in iter_pages(paginator, fetch) for issue in page}


def scan_deletions(settings: Settings, db: Database, client: JiraClient) -> int:
    """Mark deleted the live incidents whose issues are gone (listed no more, and 404 on
    GET). Returns how many were marked."""
    if not settings.jira_project_keys:
        return 0
    listed = listed_ids(settings, client)
    with db.session() as session:
        known = set(session.scalars(select(Incident.source_id).where(
            Incident.source == SOURCE, Incident.deleted_at.is_(None),
            Incident.project.in_(settings.jira_project_keys))))
    vanished = sorted(known - listed)
    checked = vanished[:MAX_CONFIRMED_PER_SCAN]
    gone = [issue_id for issue_id in checked if issue_gone(client, issue_id)]
    if len(gone) < len(checked):
        log.info("sync.jira.listing_missed_live_issues", issues=len(checked) - len(gone))
    with db.session() as session:
        return mark_deleted(session, Incident, SOURCE, gone, entity=ENTITY)
