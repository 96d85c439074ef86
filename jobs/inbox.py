"""The inbox worker: claims stored webhook deliveries and brings the model up to date.

Each delivery is a hint: the worker re-reads the record through the connector (payloads can
be partial, duplicated or out of order), upserts it — which records the change event rules
react to — and marks the delivery done. Claims expire, so a replica that dies mid-batch
leaves its rows to another. Failed deliveries are retried, then parked as ``dead``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select

from connectors.jira.sync import sync_issue
from connectors.podio.client import PodioClient
from connectors.podio.sync import sync_item
from core.errors import SaekoError
from core.settings import Settings
from jobs.leases import claimable
from rules.actions.runtime import ActionRuntime
from store.db import Database, utcnow
from store.models import WebhookInbox

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5  # then the delivery is parked as 'dead' with its error


@dataclass
class InboxResult:
    done: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)


class InboxWorker:
    """Processes inbox rows with the given connector clients."""

    def __init__(self, settings: Settings, db: Database, holder: str,
                 runtime: ActionRuntime) -> None:
        self.claim_seconds = settings.inbox_claim_seconds
        self.settings = settings
        self.db = db
        self.holder = holder
        self.runtime = runtime

    def claim(self, limit: int) -> list[int]:
        now = utcnow()
        with self.db.session() as session:
            query = (select(WebhookInbox)
                     .where(WebhookInbox.status == "pending",
                            or_(WebhookInbox.claimed_until.is_(None),
                                WebhookInbox.claimed_until < now))
                     .order_by(WebhookInbox.id).limit(limit))
            rows = session.scalars(claimable(session, query)).all()
            for row in rows:
                row.claimed_by = self.holder
                row.claimed_until = now + timedelta(seconds=self.claim_seconds)
            return [row.id for row in rows]

    def process_batch(self, limit: int = 50) -> InboxResult:
        """Process what is claimable now. A record changed several times is read once per
        batch: every delivery of the batch was stored before the claim, so one read after
        it sees all of them (Podio's hourly quota is the limit that matters)."""
        result = InboxResult()
        read: set[str] = set()
        for row_id in self.claim(limit):
            with self.db.session() as session:
                row = session.get(WebhookInbox, row_id)
                assert row is not None
                source, kind, payload = row.source, row.event_type or "", dict(row.payload)
            record = _record_key(source, kind, payload)
            try:
                if record is not None and record in read:
                    outcome = "merged: record already read in this batch"
                else:
                    outcome = self._handle(source, kind, payload)
                    if record is not None:
                        read.add(record)
                status, error = "done", None
                result.done += 1
                result.outcomes.append(f"{source}:{kind}:{outcome}")
            except (SaekoError, OSError) as exc:
                status, error = "pending", f"{exc.__class__.__name__}: {exc}"
                result.failed += 1
                log.warning("inbox.failed", id=row_id, error=error)
            with self.db.session() as session:
                row = session.get(WebhookInbox, row_id)
                assert row is not None
                row.attempts += 1
                row.error = error
                row.claimed_until = None
                if status == "done":
                    row.status, row.processed_at = "done", utcnow()
                elif row.attempts >= MAX_ATTEMPTS:
                    row.status = "dead"
        return result

    def _handle(self, source: str, kind: str, payload: dict[str, Any]) -> str:
        if source == "podio":
            return self._podio(kind, payload)
        if source == "jira":
            return sync_issue(self.settings, self.db, payload, client=self.runtime.client("jira"))
        return "ignored"

    def _podio(self, kind: str, payload: dict[str, Any]) -> str:
        podio: PodioClient = self.runtime.client("podio")
        if kind == "hook.verify":
            podio.request("POST", f"/hook/{int(payload['hook_id'])}/verify/validate",
                               json={"code": payload.get("code", "")}, idempotent=True)
            return "verified"
        item_id = int(payload["item_id"])
        correlation = f"podio:{item_id}:{payload.get('item_revision_id', '')}"
        if kind == "item.delete":
            return sync_item(self.settings, self.db, podio, item_id, deleted=True)
        return sync_item(self.settings, self.db, podio, item_id, correlation_id=correlation)


def _record_key(source: str, kind: str, payload: dict[str, Any]) -> str | None:
    """The record a delivery asks us to re-read (None for deliveries that must each run)."""
    if source == "podio" and kind in ("item.create", "item.update"):
        return f"podio:{payload.get('item_id')}"
    if source == "jira" and kind in ("jira:issue_created", "jira:issue_updated",
                                     "comment_created"):
        issue_id = (payload.get("issue") or {}).get("id")
        return f"jira:{issue_id}" if issue_id else None
    return None

