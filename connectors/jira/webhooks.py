"""Jira's admin webhooks: the receiver's checks, the inbox's handling, and what an admin
registers (API tokens cannot create admin webhooks).

Deliveries are JSON, signed ``X-Hub-Signature: sha256=<HMAC of the raw body with
JIRA_WEBHOOK_SECRET>``; the dedupe key is ``X-Atlassian-Webhook-Identifier`` (the same on
Jira's retries), else the body's hash. A delivery is a hint: the issue is re-read by id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.registry import Delivery, Rejected, is_id

if TYPE_CHECKING:
    from connectors.jira.client import JiraClient
    from core.settings import Settings
    from store.db import Database

ISSUE_EVENTS = ("jira:issue_created", "jira:issue_updated", "comment_created")
# Every event an admin subscribes the webhook to (reference §5.2), as Jira's WebHooks
# page names them: issue deleted marks the incident deleted (after a 404, sync_issue).
SUBSCRIBED_EVENTS = {"jira:issue_created": "Issue created",
                     "jira:issue_updated": "Issue updated",
                     "jira:issue_deleted": "Issue deleted",
                     "comment_created": "Comment created"}


def problem(payload: Any) -> str | None:
    """Why a Jira delivery cannot be processed (None when its shape is usable): an issue
    event names its issue by a numeric id."""
    if not isinstance(payload, dict) or not isinstance(payload.get("webhookEvent"), str):
        return "no es un webhook de Jira (falta webhookEvent)"
    event = payload["webhookEvent"]
    issue = payload.get("issue")
    if issue is not None or event.startswith(("jira:issue_", "comment_")):
        if not isinstance(issue, dict):
            return f"{event}: 'issue' debe ser un objeto, no {type(issue).__name__}"
        if not is_id(issue.get("id", "")):
            return f"{event}: falta issue.id o no es un número"
    return None


def receive(settings: Settings, headers: Mapping[str, str], body: bytes) -> Delivery:
    """A signed JSON Jira delivery, checked."""
    secret = settings.jira_webhook_secret.get_secret_value().encode()
    if secret:
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-hub-signature", ""), expected):
            raise Rejected(401, "bad signature")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Rejected(400, "expected a JSON Jira delivery") from None
    reason = problem(payload)
    if reason:
        raise Rejected(400, reason)
    key = headers.get("x-atlassian-webhook-identifier") or hashlib.sha256(body).hexdigest()
    event = str(payload["webhookEvent"])
    return Delivery(f"jira:{key}", event, payload, {"webhook_event": event})


def record_key(kind: str, payload: dict[str, Any]) -> str | None:
    """The issue an issue or comment event asks to re-read (other events each run)."""
    if kind not in ISSUE_EVENTS:
        return None
    issue_id = (payload.get("issue") or {}).get("id")
    return f"jira:{issue_id}" if issue_id else None


def handle(settings: Settings, db: Database, client: JiraClient, _kind: str,
           payload: dict[str, Any]) -> str:
    """Bring the delivery's issue up to date."""
    from connectors.jira.sync import sync_issue

    return sync_issue(settings, db, payload, client=client)


def instructions(settings: Settings, url: str) -> str:
    """What an admin registers in Jira (admin webhooks cannot be created by API tokens)."""
    projects = ", ".join(settings.jira_project_keys)
    return (f"Jira → Configuración → Sistema → WebHooks → Crear:\n"
            f"  URL: {url}\n  Secreto: el valor de JIRA_WEBHOOK_SECRET\n"
            f"  Eventos: {', '.join(f'{name} ({event})' for event, name in SUBSCRIBED_EVENTS.items())}\n"
            f"  JQL: project in ({projects})")
