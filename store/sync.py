"""What every connector's sync uses to write the model: idempotent upserts on
(source, source_id) that record what changed, dead letters, and stored cursors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import utcnow
from store.models import ChangeEvent, DeadLetter, SyncState

# session.info keys: rows read by prefetch() and open dead letters, per session.
_PREFETCHED = "saeko.sync.prefetched"
_OPEN_DEAD_LETTERS = "saeko.sync.open_dead_letters"
# Ids per IN (...) query of prefetch(): well under SQLite's 999 bound parameters of old builds.
PREFETCH_CHUNK = 500
# Columns that describe the sync itself, not the record: never reported as changes.
_BOOKKEEPING = {"id", "source", "source_id", "source_revision", "source_updated_at", "raw",
                "synced_at", "deleted_at"}


@dataclass
class UpsertCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    dead_lettered: int = 0

    def add(self, other: UpsertCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SyncReport:
    """Outcome of syncing one stream; the CLI prints these as a table."""

    source: str
    stream: str
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    api_calls: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "stream": self.stream, **self.counts.__dict__,
                "api_calls": self.api_calls, "error": self.error}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        try:
            return Decimal(str(old)) == Decimal(str(new))
        except Exception:  # noqa: BLE001 - not numbers: compare as they are
            return old == new
    if isinstance(old, float) and isinstance(new, float):
        return abs(old - new) < 1e-9
    return bool(old == new)


def prefetch(session: Session, model: Any, source: str, source_ids: Iterable[str]) -> None:
    """Read the stored rows of one page in one query (per PREFETCH_CHUNK ids), so that
    ``upsert`` needs no query per row for them. What it read is kept in this session until
    the next ``prefetch`` of the same model and source (memory stays one page's worth)."""
    page: dict[str, Any] = {}
    session.info.setdefault(_PREFETCHED, {})[(model, source)] = page
    wanted = sorted({str(i) for i in source_ids})
    for start in range(0, len(wanted), PREFETCH_CHUNK):
        chunk = wanted[start:start + PREFETCH_CHUNK]
        page.update({chunk_id: None for chunk_id in chunk})
        page.update({obj.source_id: obj for obj in session.scalars(
            select(model).where(model.source == source, model.source_id.in_(chunk)))})


def upsert(session: Session, model: Any, row: Mapping[str, Any], *,
           entity: str | None = None, own_write: bool = False,
           correlation_id: str | None = None) -> str:
    """Insert or update one row keyed by (source, source_id); record a ChangeEvent.

    Returns 'created', 'updated' or 'unchanged'. ``entity`` names the model for rules
    (e.g. 'ticket'); without it no change event is written.
    """
    page = session.info.get(_PREFETCHED, {}).get((model, row["source"]))
    if page is not None and row["source_id"] in page:
        existing = page[row["source_id"]]
    else:
        existing = session.scalars(
            select(model).where(model.source == row["source"],
                                model.source_id == row["source_id"])).one_or_none()
    now = utcnow()
    changed_at = row.get("source_updated_at")
    if existing is None:
        obj = model(**row, synced_at=now)
        if hasattr(model, "status_since"):
            obj.status_since = changed_at or now
        session.add(obj)
        session.flush()
        if page is not None:
            page[row["source_id"]] = obj
        if entity:
            session.add(ChangeEvent(entity=entity, entity_id=obj.id, kind="created",
                                    changes={k: [None, _jsonable(v)] for k, v in row.items()
                                             if k not in _BOOKKEEPING and v is not None},
                                    own_write=own_write, correlation_id=correlation_id,
                                    changed_at=changed_at, seen_at=now))
        return "created"
    changes = {
        key: [_jsonable(getattr(existing, key)), _jsonable(value)]
        for key, value in row.items()
        if key not in _BOOKKEEPING and not _same(getattr(existing, key), value)
    }
    revived = existing.deleted_at is not None
    for key, value in row.items():
        setattr(existing, key, value)
    existing.deleted_at = None
    existing.synced_at = now
    if "status" in changes and hasattr(model, "status_since"):
        existing.status_since = changed_at or now
    if not changes and not revived:
        return "unchanged"
    if entity:
        session.add(ChangeEvent(entity=entity, entity_id=existing.id, kind="updated",
                                changes=changes, own_write=own_write,
                                correlation_id=correlation_id, changed_at=changed_at,
                                seen_at=now))
    return "updated"


def mark_deleted(session: Session, model: Any, source: str, source_ids: Iterable[str],
                 *, entity: str | None = None) -> int:
    """Mark rows deleted in the tool (kept, with deleted_at set). Returns how many."""
    ids = list(source_ids)
    if not ids:
        return 0
    count = 0
    now = utcnow()
    rows = session.scalars(select(model).where(
        model.source == source, model.source_id.in_(ids),  # type: ignore[attr-defined]
        model.deleted_at.is_(None)))  # type: ignore[attr-defined]
    for obj in rows:
        obj.deleted_at = now
        count += 1
        if entity:
            session.add(ChangeEvent(entity=entity, entity_id=obj.id, kind="deleted",
                                    changes={}, seen_at=now))
    return count


def dead_letter(session: Session, source: str, stream: str, source_id: str, reason: str,
                payload: Any) -> None:
    """Record a record that could not be mapped (one row per record; the reason is updated)."""
    existing = session.scalars(select(DeadLetter).where(
        DeadLetter.source == source, DeadLetter.stream == stream,
        DeadLetter.source_id == source_id)).one_or_none()
    if existing is None:
        session.add(DeadLetter(source=source, stream=stream, source_id=source_id,
                               reason=reason, payload=payload, created_at=utcnow()))
    else:
        existing.reason, existing.payload, existing.resolved_at = reason, payload, None
    _open_dead_letters(session, source, stream).add(source_id)


def _open_dead_letters(session: Session, source: str, stream: str) -> set[str]:
    """Source ids of a stream's open dead letters, read once per session (they are rare,
    and only the stream's own sync writes them)."""
    known = session.info.setdefault(_OPEN_DEAD_LETTERS, {})
    if (source, stream) not in known:
        known[(source, stream)] = set(session.scalars(select(DeadLetter.source_id).where(
            DeadLetter.source == source, DeadLetter.stream == stream,
            DeadLetter.resolved_at.is_(None))))
    return known[(source, stream)]  # type: ignore[no-any-return]


def resolve_dead_letter(session: Session, source: str, stream: str, source_id: str) -> None:
    """A record that maps now: close its open dead letter, if any."""
    open_ids = _open_dead_letters(session, source, stream)
    if source_id not in open_ids:
        return
    open_ids.discard(source_id)
    existing = session.scalars(select(DeadLetter).where(
        DeadLetter.source == source, DeadLetter.stream == stream,
        DeadLetter.source_id == source_id, DeadLetter.resolved_at.is_(None))).one_or_none()
    if existing is not None:
        existing.resolved_at = utcnow()


def get_state(session: Session, source: str, stream: str) -> SyncState:
    """The stream's sync state row (created on first use)."""
    state = session.scalars(select(SyncState).where(
        SyncState.source == source, SyncState.stream == stream)).one_or_none()
    if state is None:
        state = SyncState(source=source, stream=stream, state={})
        session.add(state)
        session.flush()
    return state


def record_outcome(state: SyncState, report: SyncReport, status: str, error: str | None) -> None:
    """Note how a stream's run ended (the status page and `sync --json` read it)."""
    state.last_finished_at = utcnow()
    if status == "ok":
        state.last_ok_at = state.last_finished_at
    state.last_status, state.last_error = status, error
    state.last_counts = report.as_dict()
