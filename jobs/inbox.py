"""The inbox worker: claims stored webhook deliveries and brings the model up to date.

Each delivery is a hint: the worker hands it to its tool's connector
(``connectors.registry.Webhooks``: ``problem``, ``record_key``, ``handle``), which re-reads
the record (payloads can be partial, duplicated or out of order) and upserts it — which
records the change event rules react to; then the worker marks the delivery done. Claims
expire, so a replica that dies mid-batch leaves its rows to another. Each delivery is handled
on its own: a failed one is retried (``attempts``), then parked as ``dead``; a malformed one
is parked at once. Either way it gets a dead letter (stream ``webhook``) with the reason, and
the rest of the batch goes on.

Gathered deliveries: when a tool says one read can stand for several deliveries
(``Webhooks.batch_key``: Podio's update notices of one app, once this service's Podio calls
in the last hour pass ``WEBHOOK_BATCH_ABOVE`` of the documented quota), the worker leaves
them pending until the oldest is ``WEBHOOK_BATCH_SECONDS`` old, then handles them together
(``Webhooks.handle_many``: one incremental filter of the app instead of one GET per item).
A delivery of a kind in ``Webhooks.batch_now`` (Podio: a creation) makes its group due at
once: it is read without waiting, and the notices gathered so far go with it.
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
        claimed = self.claim(limit)
        alone = self._gathered(claimed, result)
        for row_id in alone:
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

    def _gathered(self, claimed: list[int], result: InboxResult) -> list[int]:
        """Handle the groups whose oldest delivery waited long enough, leave the younger
        groups pending (claims released); returns the deliveries to handle one by one."""
        window = timedelta(seconds=self.settings.webhook_batch_seconds)
        if window.total_seconds() <= 0:
            return claimed
        groups: dict[tuple[str, str], list[tuple[int, dict[str, Any], Any]]] = {}
        due_now: set[tuple[str, str]] = set()
        alone: list[int] = []
        for row_id in claimed:
            found = self._batch_key(row_id)
            if found is None:
                alone.append(row_id)
                continue
            source, key, payload, received, urgent = found
            groups.setdefault((source, key), []).append((row_id, payload, received))
            if urgent:
                due_now.add((source, key))
        now = utcnow()
        for (source, key), rows in groups.items():
            if (source, key) not in due_now \
                    and now - min(received for _i, _p, received in rows) < window:
                self._release([row_id for row_id, _p, _r in rows])
                continue
            self._handle_group(source, key, rows, result)
        return alone

    def _batch_key(self, row_id: int) -> tuple[str, str, dict[str, Any], Any, bool] | None:
        """(source, group, payload, received_at, makes the group due now) of a delivery one
        read can stand for."""
        with self.db.session() as session:
            row = session.get(WebhookInbox, row_id)
            assert row is not None
            source, kind, payload, received = (row.source, row.event_type or "",
                                               dict(row.payload or {}), row.received_at)
        hooks = registry.connector(source).webhooks if source in registry.TOOLS else None
        if hooks is None or hooks.batch_key is None or hooks.handle_many is None \
                or hooks.problem(payload):
            return None
        try:
            key = hooks.batch_key(self.settings, self.runtime.client(source), kind, payload)
        except (SaekoError, OSError) as exc:  # handled on its own, as before
            log.warning("inbox.batch_key_failed", id=row_id, error=str(exc))
            return None
        return None if key is None else (source, key, payload, received,
                                         kind in hooks.batch_now)

    def _handle_group(self, source: str, key: str,
                      rows: list[tuple[int, dict[str, Any], Any]], result: InboxResult) -> None:
        hooks = _webhooks(source)
        assert hooks.handle_many is not None
        status, error = "pending", None
        try:
            outcome = hooks.handle_many(self.settings, self.db, self.runtime.client(source), key,
                                        [payload for _i, payload, _r in rows])
            status = "done"
            result.outcomes.append(f"{source}:{key}:{len(rows)} avisos:{outcome}")
        except (SaekoError, OSError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
            log.warning("inbox.group_failed", key=key, error=error)
        except Exception as exc:  # noqa: BLE001 - a bug or a shape we did not foresee
            error = f"{exc.__class__.__name__}: {exc}"
            log.exception("inbox.group_crashed", key=key)
        for row_id, _payload, _received in rows:
            if status == "done":
                result.done += 1
            else:
                result.failed += 1
            self._finish(row_id, status, error)

    def _release(self, row_ids: list[int]) -> None:
        """Give back the claims of deliveries left to gather more (they stay pending)."""
        with self.db.session() as session:
            for row_id in row_ids:
                row = session.get(WebhookInbox, row_id)
                if row is not None and row.status == "pending":
                    row.claimed_by, row.claimed_until = None, None

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
