"""Jira admin webhooks: registrations (``/rest/webhooks/1.0/webhook``) and deliveries with
the payloads and headers of reference §5 (``X-Hub-Signature: sha256=<hmac>`` when the
webhook has a secret; ``X-Atlassian-Webhook-Identifier`` unique per delivery)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Events the sandbox emits (reference §5.2).
ISSUE_CREATED = "jira:issue_created"
ISSUE_UPDATED = "jira:issue_updated"
ISSUE_DELETED = "jira:issue_deleted"
COMMENT_CREATED = "comment_created"
SUPPORTED_EVENTS = (ISSUE_CREATED, ISSUE_UPDATED, ISSUE_DELETED, COMMENT_CREATED,
                    "comment_updated", "comment_deleted")
JQL_FILTER_KEY = "issue-related-events-section"
FIRST_WEBHOOK_ID = 1


@dataclass
class Webhook:
    id: int
    name: str
    url: str
    events: list[str]
    jql: str | None = None
    secret: str | None = None
    enabled: bool = True
    exclude_body: bool = False
    created: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))

    def public(self, base: str) -> dict[str, Any]:
        """The registration as GET /rest/webhooks/1.0/webhook shows it (never the secret)."""
        return {"self": f"{base}/rest/webhooks/1.0/webhook/{self.id}", "name": self.name,
                "url": self.url, "events": self.events,
                "filters": {JQL_FILTER_KEY: self.jql or ""}, "excludeBody": self.exclude_body,
                "enabled": self.enabled,
                "lastUpdated": int(self.created.replace(tzinfo=UTC).timestamp() * 1000)}


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature value Jira sends for a webhook with a secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def epoch_ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
