"""Jira write-back primitives: each creates or finds, nothing more. Creating once is the
action ledger's job (rules/executor.py): after an attempt that may have reached Jira it
looks the marker up before sending again, and never sends when the look-up fails.

* an issue carries the label ``saeko-<marker>`` (``find_issue_by_marker``);
* a comment ends with the line ``[saeko:<marker>]`` (``find_comment``);
* a remote link is keyed by its ``globalId`` (Jira updates a link with the same globalId);
* a transition is skipped when the issue already has the target status.

Writes go through the client's ``writer`` (no blind retries by the library). Only a refusal
that did nothing — Jira's 429, honouring Retry-After — is tried again here, at most
JIRA_WRITE_RETRIES times; any other failure goes back to the ledger, whose back-off also
gives Jira's eventually consistent search (reference §2.3) time to see a new issue.
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
RATE_LIMITED = 429  # Jira Cloud refuses the request before doing anything (reference §2.4)
MAX_COMMENT_PAGES = 50


def marker_label(marker: str) -> str:
    """The label that marks what saeko-sync created (labels cannot contain spaces)."""
    clean = re.sub(r"[^A-Za-z0-9_.:-]+", "-", marker).strip("-")
    return f"{MARKER_LABEL_PREFIX}{clean}"[:LABEL_MAX_CHARS]


def comment_tag(marker: str) -> str:
    return f"[saeko:{marker}]"


def _write(client: JiraClient, what: str, attempt: Callable[[], T]) -> T:
    """Run ``attempt``; after a 429 (refused: nothing was done) wait and try again."""
    settings = client.settings
    for number in range(settings.jira_write_retries + 1):
        try:
            return attempt()
        except TransientError as exc:
            if exc.status != RATE_LIMITED or number == settings.jira_write_retries:
                raise
            wait = exc.retry_after if exc.retry_after is not None else (
                settings.jira_retry_base_seconds * 2 ** number)
            wait = min(wait, settings.jira_max_retry_seconds)
            log.warning("jira.write.retry", action=what, attempt=number + 1, wait=wait,
                        error=str(exc))
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def find_issue_by_marker(client: JiraClient, marker: str) -> str | None:
    """The key of the issue saeko-sync created under ``marker``, if any (oldest first)."""
    found = client.search(f'labels = "{marker_label(marker)}" ORDER BY created ASC',
                          maxResults=1, fields=["labels"])
    return str(found[0].key) if found else None


def create_issue_for_ticket(client: JiraClient, *, project: str, issue_type: str, summary: str,
                            description: str, priority: str | None, ticket_item_id: int | str,
                            ticket_url: str, marker: str) -> str:
    """Create the issue escalating a Podio ticket (custom field, marker label, link back)."""
    fields: dict[str, Any] = {
        "project": {"key": project}, "issuetype": {"name": issue_type},
        "summary": " ".join(summary.split())[:255], "description": description,
        "labels": [marker_label(marker)],
        client.ticket_field_id(): str(ticket_item_id),
    }
    if priority:
        fields["priority"] = {"name": priority}

    def create() -> str:
        issue = client.call(f"crear una incidencia en {project}", client.writer.create_issue,
                            fields=fields, prefetch=False)
        return str(issue.key)

    key = _write(client, "create_issue", create)
    log.info("jira.issue.created", key=key, marker=marker)
    link_ticket(client, key, ticket_item_id, ticket_url)
    return key


def link_ticket(client: JiraClient, key: str, ticket_item_id: int | str, ticket_url: str
                ) -> None:
    """The remote link from an issue back to its Podio ticket (one per ticket: globalId)."""
    add_remote_link(client, key, ticket_url, f"Ticket de Podio {ticket_item_id}",
                    podio_global_id(ticket_item_id), application=dict(PODIO_APPLICATION),
                    relationship="ticket de Podio")


def find_comment(client: JiraClient, key: str, marker: str) -> str | None:
    """The id of the comment on ``key`` that carries ``marker``, if any."""
    tag = comment_tag(marker)
    for page_no in range(MAX_COMMENT_PAGES):
        comments = client.call(f"leer los comentarios de {key}", client.reader.comments, key,
                               start_at=page_no * COMMENT_PAGE, max_results=COMMENT_PAGE)
        for comment in comments:
            if tag in str(getattr(comment, "body", "")):
                return str(comment.id)
        if len(comments) < COMMENT_PAGE:
            return None
    return None


def comment(client: JiraClient, key: str, body: str, marker: str) -> str:
    """Comment on an issue (the marker is the comment's last line); returns its id."""

    def add() -> str:
        created = client.call(f"comentar en {key}", client.writer.add_comment, key,
                              f"{body}\n\n{comment_tag(marker)}")
        return str(created.id)

    return _write(client, "comment", add)


def _status(client: JiraClient, key: str) -> str:
    issue = client.call(f"leer {key}", client.reader.issue, key, fields="status")
    return str(issue.fields.status.name)


def transition_to(client: JiraClient, key: str, status_name: str,
                  resolution: str | None = None) -> bool:
    """Move an issue to the status named ``status_name`` through one available transition.
    Returns False when it already had that status (nothing done)."""
    wanted = status_name.lower()
    if _status(client, key).lower() == wanted:
        return False
    available = client.call(f"listar las transiciones de {key}", client.reader.transitions, key)
    chosen = next((t for t in available if str(t["to"]["name"]).lower() == wanted), None)
    if chosen is None:
        options = ", ".join(f"{t['name']} → {t['to']['name']}" for t in available)
        raise RemoteDataError(f"Jira {key}: no hay transición a {status_name!r} desde su "
                              f"estado actual (disponibles: {options or 'ninguna'}); revisa el "
                              "flujo de trabajo o el nombre del estado en la regla")
    fields = {"resolution": {"name": resolution}} if resolution else None

    def move() -> bool:
        client.call(f"cambiar el estado de {key}", client.writer.transition_issue, key, chosen["id"],
                    fields=fields)
        return True

    return _write(client, "transition", move)


def add_remote_link(client: JiraClient, key: str, url: str, title: str, marker: str, *,
                    application: dict[str, str] | None = None,
                    relationship: str | None = None) -> int:
    """Link an issue to a web page once: ``marker`` is the link's globalId, so a repeat
    updates the same link. Returns the link id."""

    def link() -> int:
        created = client.call(f"enlazar {key}", client.writer.add_remote_link, key,
                              {"url": url, "title": title}, globalId=marker,
                              application=application, relationship=relationship)
        return int(created.id)

    return _write(client, "remote_link", link)
