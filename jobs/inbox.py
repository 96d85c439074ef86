"""The inbox worker: claims stored webhook deliveries and brings the model up to date.

Each delivery is a hint: the worker hands it to its tool's connector
(``connectors.registry.Webhooks``: ``problem``, ``record_key``, ``handle``), which re-reads
the record (payloads can be partial, duplicated or out of order) and upserts it — which
records the change event rules react to; then the worker marks the delivery done. Claims
expire, so a replica that dies mid-batch leaves its rows to another. Each delivery is handled
on its own: a failed one is retried (``attempts``), then parked as ``dead``; a malformed one
is parked at once. Either way it gets a dead letter (stream ``webhook``) with the reason, and
the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select

from connectors import registry
from connectors.clients import ActionRuntime
from connectors.registry import Webhooks
from core.errors import SaekoError
from core.settings import Settings
from jobs.leases import claimable
from store.db import Database, utcnow
from store.models import WebhookInbox
from store.sync import dead_letter

log = structlog.get_logger(__name__)

# Back-off between two attempts of a failing delivery: 10 s, 20 s, 40 s… (at most 5 min);
# polling would also bring the record in meanwhile.
RETRY_BASE = timedelta(seconds=10)
RETRY_MAX = timedelta(minutes=5)
MAX_ATTEMPTS = 5  # then the delivery is parked as 'dead' with its error
# Dead letters of deliveries: (source, DEAD_LETTER_STREAM, str(webhook_inbox.id)).
DEAD_LETTER_STREAM = "webhook"


class MalformedDelivery(ValueError):
    """A stored delivery whose payload no worker can use: parked as dead at once."""


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
        """Process what is claimable now, each delivery on its own: one that fails or cannot
        be read is counted and retried or parked, and never holds up the others. A record
        changed several times is read once per batch: every delivery of the batch was stored
        before the claim, so one read after it sees all of them (Podio's hourly quota is the
        limit that matters)."""
        result = InboxResult()
        read: set[str] = set()
        for row_id in self.claim(limit):
            with self.db.session() as session:
                row = session.get(WebhookInbox, row_id)
                assert row is not None
                source, kind, payload = row.source, row.event_type or "", row.payload
            status, error = "pending", None
            try:
                hooks = _webhooks(source)
                problem = hooks.problem(payload)
                if problem:
                    raise MalformedDelivery(problem)
                outcome = self._process(source, hooks, kind, dict(payload), read)
                status = "done"
                result.done += 1
                result.outcomes.append(f"{source}:{kind}:{outcome}")
            except MalformedDelivery as exc:
                status, error = "dead", f"entrega mal formada: {exc}"
                log.warning("inbox.malformed", id=row_id, source=source, error=str(exc))
            except SaekoError as exc:
                error = str(exc)  # says what failed and what to do
                log.warning("inbox.failed", id=row_id, error=error)
            except OSError as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                log.warning("inbox.failed", id=row_id, error=error)
            except Exception as exc:  # noqa: BLE001 - a bug or a shape we did not foresee
                error = f"{exc.__class__.__name__}: {exc}"
                log.exception("inbox.crashed", id=row_id, source=source, event_type=kind)
            if status != "done":
                result.failed += 1
            self._finish(row_id, status, error)
        return result

    def _process(self, source: str, hooks: Webhooks, kind: str, payload: dict[str, Any],
                 read: set[str]) -> str:
        record = hooks.record_key(kind, payload)
        if record is not None and record in read:
            return "merged: record already read in this batch"
        outcome = hooks.handle(self.settings, self.db, self.runtime.client(source), kind,
                               payload)
        if record is not None:
            read.add(record)
        return outcome

    def _finish(self, row_id: int, status: str, error: str | None) -> None:
        """Count the attempt; park the delivery as dead (with a dead letter naming why) when
        it cannot be processed or has failed MAX_ATTEMPTS times."""
        with self.db.session() as session:
            row = session.get(WebhookInbox, row_id)
            assert row is not None
            row.attempts += 1
            row.error = error
            # A failed delivery waits before its next attempt, so that a short outage of a
            # tool does not spend all its attempts in a few seconds.
            row.claimed_until = None if status == "done" else utcnow() + min(
                RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
            if status == "done":
                row.status, row.processed_at = "done", utcnow()
                return
            if status == "dead" or row.attempts >= MAX_ATTEMPTS:
                row.status = "dead"
                reason = f"webhook {row.event_type or '?'} (intento {row.attempts}): {error}"
                dead_letter(session, row.source, DEAD_LETTER_STREAM, str(row.id), reason,
                            {"delivery_key": row.delivery_key, "payload": row.payload})
                log.error("inbox.dead", id=row_id, source=row.source, error=error)


def _webhooks(source: str) -> Webhooks:
    """How the tool named ``source`` handles its deliveries (malformed: no such tool)."""
    hooks = registry.connector(source).webhooks if source in registry.TOOLS else None
    if hooks is None:
        raise MalformedDelivery(f"fuente desconocida {source!r}")
    return hooks
