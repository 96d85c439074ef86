"""Action ledger helpers: idempotency keys, markers, backoff, and the statuses.

When a rule run decides to act, every action of the run gets its row in ONE transaction
before the first is sent ("plan, then send"); resuming sends what is planned and not done,
and never decides again.

planned   decided and rendered (``payload.args``), never sent: sending needs no look-up
pending   being sent: committed just before the call; still pending after a crash means
          "outcome unknown": the next run asks the tool (find by marker) before resending
done      the tool accepted it; ``external_ref`` says what it created
failed    the call (or the look-up before a resend) failed; retried at ``next_attempt_at``
          (exponential backoff), always after a look-up by marker
dead      gave up (too many attempts, or an error retrying cannot fix); ``error`` says why
waiting   could not be prepared for a reason that may change (no responsible person yet,
          no recipient…): prepared again at ``next_attempt_at`` until ``WAIT_LIMIT``
omitted   decided not to act (its «si» did not hold, nothing to write, or waited too long)
held      storm guard: waiting for ``saeko-sync rules approve``
approved  approved by an admin; the next run sends it
queued    run mode "cola": waits until the earlier run for the same record finishes
cancelled run mode "reiniciar" replaced it, an admin discarded it, or an earlier action of
          the same run died
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.models import ActionLedger

PENDING, DONE, FAILED, DEAD, HELD, APPROVED, QUEUED, CANCELLED = (
    "pending", "done", "failed", "dead", "held", "approved", "queued", "cancelled")
PLANNED, WAITING, OMITTED = "planned", "waiting", "omitted"
UNFINISHED = (PLANNED, PENDING, FAILED, HELD, APPROVED, QUEUED)
# Statuses that end a run's chain: the actions after it are not sent.
FINAL_FAILURES = (DEAD, CANCELLED)
# How long an action waits for its reason to change (e.g. the ticket gets an AM) before it
# is given up as omitted; and how often it is tried again meanwhile.
WAIT_LIMIT = timedelta(days=3)
WAIT_RETRY = timedelta(minutes=10)
# ActionLedger.idempotency_key is String(300).
MAX_KEY_LENGTH = 300
# Longest wait between two attempts of a failed action.
MAX_BACKOFF = timedelta(hours=6)
# A tool that is down or busy (TransientError) uses up no attempts: the effect is tried
# again at most every TRANSIENT_MAX_BACKOFF, so it goes out soon after the tool is back,
# and is given up (dead, on the status page) only after TRANSIENT_LIMIT without an answer.
TRANSIENT_MAX_BACKOFF = timedelta(minutes=30)
TRANSIENT_LIMIT = timedelta(days=3)

STATUS_ES = {PLANNED: "planificada", WAITING: "en espera (se reintentará)",
             OMITTED: "omitida", PENDING: "enviada, sin confirmar", DONE: "hecha",
             FAILED: "falló, se reintentará",
             DEAD: "muerta (no se reintentará)", HELD: "retenida, espera aprobación",
             APPROVED: "aprobada", QUEUED: "en cola", CANCELLED: "cancelada"}


def escalation_key(escalation: str, action_type: str) -> str:
    """M7: the key of one effect of an escalation («escalamiento: causa:cliente:periodo»),
    the same whichever rule or trigger escalates: one task and one email per escalation."""
    return ledger_key("m7", f"esc:{escalation}", action_type)


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


# A planned action's result that a later action of the same run uses ({{ acciones.X.ref }})
# is rendered as this token at planning time and replaced when the later one is sent.
_REF_TOKEN = re.compile(r"⟦acciones\.([A-Za-z0-9_]+)\.ref⟧")


def planned_ref(action_id: str) -> str:
    """The stand-in for ``acciones.<id>.ref`` while the action is planned, not done."""
    return f"⟦acciones.{action_id}.ref⟧"


def unresolved_refs(value: Any, refs: dict[str, str | None]) -> set[str]:
    """The action ids whose result ``value`` still waits for."""
    text = json.dumps(value, ensure_ascii=False) if value is not None else ""
    return {m for m in _REF_TOKEN.findall(text) if not refs.get(m)}


def resolve_refs(value: Any, refs: dict[str, str | None]) -> Any:
    """``value`` with every planned-result token replaced by the action's ref."""
    if isinstance(value, str):
        return _REF_TOKEN.sub(lambda m: str(refs.get(m.group(1)) or m.group(0)), value)
    if isinstance(value, dict):
        return {k: resolve_refs(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, refs) for v in value]
    return value


def next_attempt(now: datetime, attempts: int, base_seconds: float,
                 cap: timedelta = MAX_BACKOFF) -> datetime:
    """Exponential backoff: base, 2×base, 4×base… capped at ``cap``."""
    delay = timedelta(seconds=base_seconds * (2 ** max(0, min(attempts, 40) - 1)))
    return now + min(delay, cap)


def rows_by_key(session: Session, keys: list[str]) -> dict[str, ActionLedger]:
    """Existing ledger rows for these keys (one query per 900 keys)."""
    found: dict[str, ActionLedger] = {}
    for start in range(0, len(keys), 900):
        chunk = keys[start:start + 900]
        for row in session.scalars(select(ActionLedger).where(
                ActionLedger.idempotency_key.in_(chunk))):
            found[row.idempotency_key] = row
    return found


def rows_of_targets(session: Session, rule_ids: list[str], targets: list[str],
                    statuses: tuple[str, ...]) -> list[ActionLedger]:
    """The rows of these rules on these records in these statuses (one query per 900
    records): a run mode's "is an earlier run unfinished?"."""
    found: list[ActionLedger] = []
    for start in range(0, len(targets), 900):
        found.extend(session.scalars(select(ActionLedger).where(
            ActionLedger.rule_id.in_(rule_ids), ActionLedger.status.in_(statuses),
            ActionLedger.target.in_(targets[start:start + 900]))))
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
