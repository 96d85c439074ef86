"""Action ledger helpers: idempotency keys, markers, backoff, and the statuses.

pending   written (and committed) before the call; still pending after a crash means
          "outcome unknown": the next run asks the tool (find by marker) before resending
done      the tool accepted it; ``external_ref`` says what it created
failed    the call failed; retried at ``next_attempt_at`` (exponential backoff)
dead      gave up (too many attempts, or an error retrying cannot fix); ``error`` says why
held      storm guard: waiting for ``saeko-sync rules approve``
approved  approved by an admin; the next run sends it
queued    run mode "cola": waits until the earlier run for the same record finishes
cancelled run mode "reiniciar" replaced it, or an admin discarded it
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import ActionLedger

PENDING, DONE, FAILED, DEAD, HELD, APPROVED, QUEUED, CANCELLED = (
    "pending", "done", "failed", "dead", "held", "approved", "queued", "cancelled")
UNFINISHED = (PENDING, FAILED, HELD, APPROVED, QUEUED)
# ActionLedger.idempotency_key is String(300).
MAX_KEY_LENGTH = 300
# Longest wait between two attempts of a failed action.
MAX_BACKOFF = timedelta(hours=6)

STATUS_ES = {PENDING: "enviada, sin confirmar", DONE: "hecha", FAILED: "falló, se reintentará",
             DEAD: "muerta (no se reintentará)", HELD: "retenida, espera aprobación",
             APPROVED: "aprobada", QUEUED: "en cola", CANCELLED: "cancelada"}


def ledger_key(rule_id: str, dedupe: str, action_key: str) -> str:
    """The idempotency key of one action of one trigger instance of one rule."""
    key = f"{rule_id}|{dedupe}|{action_key}"
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{rule_id[:100]}|h:{digest}|{action_key[:40]}"


def marker_for(key: str) -> str:
    """The marker left on what an action creates (Podio external_id, Jira property, email
    header…): short, stable, derived from the idempotency key."""
    return "saeko-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def next_attempt(now: datetime, attempts: int, base_seconds: float) -> datetime:
    """Exponential backoff: base, 2×base, 4×base… capped at MAX_BACKOFF."""
    delay = timedelta(seconds=base_seconds * (2 ** max(0, attempts - 1)))
    return now + min(delay, MAX_BACKOFF)


def rows_by_key(session: Session, keys: list[str]) -> dict[str, ActionLedger]:
    """Existing ledger rows for these keys (one query per 900 keys)."""
    found: dict[str, ActionLedger] = {}
    for start in range(0, len(keys), 900):
        chunk = keys[start:start + 900]
        for row in session.scalars(select(ActionLedger).where(
                ActionLedger.idempotency_key.in_(chunk))):
            found[row.idempotency_key] = row
    return found


def approve(session: Session, rule_id: str | None, now: datetime) -> int:
    """Held effects -> approved (sent by the next run). Returns how many."""
    query = update(ActionLedger).where(ActionLedger.status == HELD)
    if rule_id:
        query = query.where(ActionLedger.rule_id == rule_id)
    result = session.execute(query.values(status=APPROVED, updated_at=now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def discard(session: Session, rule_id: str | None, now: datetime) -> int:
    """Held effects -> cancelled (never sent). Returns how many."""
    query = update(ActionLedger).where(ActionLedger.status == HELD)
    if rule_id:
        query = query.where(ActionLedger.rule_id == rule_id)
    result = session.execute(query.values(status=CANCELLED, updated_at=now,
                                          error="descartada por un administrador"))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
