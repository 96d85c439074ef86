"""Jira write-back primitives, each idempotent: a retry after a lost response or a crash
finds what the first attempt made instead of making it twice.

* an issue carries the label ``saeko-<marker>``, searched before creating;
* a comment ends with the line ``[saeko:<marker>]``, looked for before commenting;
* a remote link is keyed by its ``globalId`` (Jira updates a link with the same globalId);
* a transition is skipped when the issue already has the target status.

Writes go through the client's ``writer`` (no blind retries by the library); on a transient
failure each primitive waits (Retry-After when Jira sends one), re-checks its marker and tries
again, at most JIRA_WRITE_RETRIES times. Jira's search is eventually consistent (reference
§2.3): the wait before the re-check also gives a just-created issue time to become visible.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from connectors.jira.client import JiraClient
from connectors.jira.mapping import podio_global_id
from core.errors import RemoteDataError, TransientError

log = structlog.get_logger(__name__)
T = TypeVar("T")

MARKER_LABEL_PREFIX = "saeko-"
LABEL_MAX_CHARS = 255  # Jira's label length limit
PODIO_APPLICATION = {"type": "com.podio", "name": "Podio"}
COMMENT_PAGE = 100  # GET .../comment page size (reference §2.9)
MAX_COMMENT_PAGES = 50


def marker_label(marker: str) -> str:
    """The label that marks what saeko-sync created (labels cannot contain spaces)."""
    clean = re.sub(r"[^A-Za-z0-9_.:-]+", "-", marker).strip("-")
    return f"{MARKER_LABEL_PREFIX}{clean}"[:LABEL_MAX_CHARS]


def comment_tag(marker: str) -> str:
    return f"[saeko:{marker}]"


def _with_retries(client: JiraClient, what: str, attempt: Callable[[], T],
                  already_done: Callable[[], T | None]) -> T:
    """Run ``attempt``; after a transient failure wait, return ``already_done()`` if the
    effect happened after all, else try again (bounded)."""
    settings = client.settings
    for number in range(settings.jira_write_retries + 1):
        try:
            return attempt()
        except TransientError as exc:
            if number == settings.jira_write_retries:
                raise
            wait = exc.retry_after if exc.retry_after is not None else (
                settings.jira_retry_base_seconds * 2 ** number)
            wait = min(wait, settings.jira_max_retry_seconds)
            log.warning("jira.write.retry", action=what, attempt=number + 1, wait=wait,
                        error=str(exc))
            time.sleep(wait)
            done = already_done()
            if done is not None:
                log.info("jira.write.found_after_lost_response", action=what)
                return done
    raise AssertionError("unreachable")  # pragma: no cover


def find_issue_by_marker(client: JiraClient, marker: str) -> str | None:
    """The key of the issue saeko-sync created under ``marker``, if any (oldest first)."""
    found = client.search(f'labels = "{marker_label(marker)}" ORDER BY created ASC',
                          maxResults=1, fields=["labels"])
    return str(found[0].key) if found else None


def create_issue_for_ticket(client: JiraClient, *, project: str, issue_type: str, summary: str,
                            description: str, priority: str | None, ticket_item_id: int | str,
                            ticket_url: str, marker: str) -> str:
    """Create the issue escalating a Podio ticket (custom field + link back), once."""
    existing = find_issue_by_marker(client, marker)
    if existing is None:
        fields: dict[str, Any] = {
            "project": {"key": project}, "issuetype": {"name": issue_type},
            "summary": " ".join(summary.split())[:255], "description": description,
            "labels": [marker_label(marker)],
            client.ticket_field_id(): str(ticket_item_id),
        }
        if priority:
            fields["priority"] = {"name": priority}

        def create() -> str:
            issue = client.call(f"create an issue in {project}", client.writer.create_issue,
                                fields=fields, prefetch=False)
            return str(issue.key)

        existing = _with_retries(client, "create_issue", create,
                                 lambda: find_issue_by_marker(client, marker))
        log.info("jira.issue.created", key=existing, marker=marker)
    add_remote_link(client, existing, ticket_url, f"Ticket de Podio {ticket_item_id}",
                    podio_global_id(ticket_item_id), application=dict(PODIO_APPLICATION),
                    relationship="ticket de Podio")
    return existing


def _find_comment(client: JiraClient, key: str, tag: str) -> str | None:
    for page_no in range(MAX_COMMENT_PAGES):
        comments = client.call(f"read comments of {key}", client.reader.comments, key,
                               start_at=page_no * COMMENT_PAGE, max_results=COMMENT_PAGE)
        for comment in comments:
            if tag in str(getattr(comment, "body", "")):
                return str(comment.id)
        if len(comments) < COMMENT_PAGE:
            return None
    return None


def comment(client: JiraClient, key: str, body: str, marker: str) -> str:
    """Comment on an issue once (the marker is the comment's last line); returns its id."""
    tag = comment_tag(marker)
    existing = _find_comment(client, key, tag)
    if existing is not None:
        return existing

    def add() -> str:
        created = client.call(f"comment on {key}", client.writer.add_comment, key,
                              f"{body}\n\n{tag}")
        return str(created.id)

    return _with_retries(client, "comment", add, lambda: _find_comment(client, key, tag))


def _status(client: JiraClient, key: str) -> str:
    issue = client.call(f"read {key}", client.reader.issue, key, fields="status")
    return str(issue.fields.status.name)


def transition_to(client: JiraClient, key: str, status_name: str,
                  resolution: str | None = None) -> bool:
    """Move an issue to the status named ``status_name`` through one available transition.
    Returns False when it already had that status (nothing done)."""
    wanted = status_name.lower()
    if _status(client, key).lower() == wanted:
        return False
    available = client.call(f"list transitions of {key}", client.reader.transitions, key)
    chosen = next((t for t in available if str(t["to"]["name"]).lower() == wanted), None)
    if chosen is None:
        options = ", ".join(f"{t['name']} → {t['to']['name']}" for t in available)
        raise RemoteDataError(f"Jira {key}: no transition to {status_name!r} from its current "
                              f"status (available: {options or 'none'}); check the workflow "
                              "or the status name in the rule")
    fields = {"resolution": {"name": resolution}} if resolution else None

    def move() -> bool:
        client.call(f"transition {key}", client.writer.transition_issue, key, chosen["id"],
                    fields=fields)
        return True

    return _with_retries(client, "transition", move,
                         lambda: True if _status(client, key).lower() == wanted else None)


def add_remote_link(client: JiraClient, key: str, url: str, title: str, marker: str, *,
                    application: dict[str, str] | None = None,
                    relationship: str | None = None) -> int:
    """Link an issue to a web page once: ``marker`` is the link's globalId, so a repeat
    updates the same link. Returns the link id."""

    def link() -> int:
        created = client.call(f"link {key}", client.writer.add_remote_link, key,
                              {"url": url, "title": title}, globalId=marker,
                              application=application, relationship=relationship)
        return int(created.id)

    return _with_retries(client, "remote_link", link, lambda: None)
