"""The one stream runner: every connector's streams run here, so state is handled once.

A stream (``Stream``, declared in each tool's ``streams.py``) says what it reads — name,
model, primary key, cursor field, paginator, write mode — and supplies small hooks: fetch a
page, map its records, link foreign keys, write what goes beside the rows, scan deletions.
The runner owns everything else:

- reads the stored cursor (``sync_state``), notes the start, and hands the stream the cursor;
- commits each page's rows in one transaction together with the cursor, which only moves
  forward (to the greatest ``source_updated_at`` committed): a page that fails to commit
  leaves the cursor where the previous page put it; streams whose API promises no order
  move it once, after the last page (``cursor_moves = "run"``);
- dead-letters records that cannot be mapped and resolves them when they map again;
- classifies errors the same way for every tool (``classify``): a connector or
  configuration error fails the stream — its committed pages are kept, the next sync
  resumes from the cursor —, a tool that cannot be reached at all (``UnreachableError``)
  also stops its source's remaining streams for this cycle, and any other exception is a
  bug that propagates;
- records the outcome (counts, API calls, error) and logs ``sync.stream.done`` (the
  benchmarks read that event's ``source`` and ``stream``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import ProgressFn, noop_progress
from connectors.paging import Paginator, iter_pages
from core.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    RemoteDataError,
    TransientError,
    UnreachableError,
)
from store.db import Database, utcnow
from store.models import SyncState
from store.sync import (
    SyncReport,
    dead_letter,
    get_state,
    mark_deleted,
    prefetch,
    record_outcome,
    resolve_dead_letter,
    upsert,
)

log = structlog.get_logger(__name__)

# Every model row carries the tool's time of the record's last change here; a stream's
# cursor is the greatest value committed.
CURSOR_COLUMN = "source_updated_at"
ErrorKind = Literal["transient", "auth", "remote_data", "config", "connector"]


@dataclass
class Record:
    """One record of a page, mapped (``row``) or not (``problem``, the dead letter's reason)."""

    key: str  # the record's id in the tool: dead letters are keyed by it
    raw: Any  # kept on the dead letter
    row: dict[str, Any] | None = None  # filled by ``records`` or by the ``link`` hook
    problem: str | None = None
    own_write: bool = False  # the change is saeko-sync's own write-back
    detail: Any = None  # what the stream's ``records`` keeps for its later hooks


@dataclass
class StreamRun:
    """One run of a stream: the cursor it reads from and what it has read so far."""

    cursor: str | None  # the stored cursor; None on a full sync or the first one
    full: bool
    report: SyncReport
    seen: set[str] = field(default_factory=set)  # source ids read (deleted-row scans)
    last_page: Any = None
    newest: datetime | None = None  # greatest cursor value read
    notes: dict[str, Any] = field(default_factory=dict)  # the stream's own bookkeeping


class Stream(ABC):
    """A stream declaration. Subclasses set the attributes and implement the hooks.

    ``write_mode``: ``merge`` upserts on (source, source_id); ``replace`` also marks the
    rows a complete read did not return as deleted (a full sync, or every run of a stream
    without a cursor).
    """

    source: ClassVar[str]
    name: str
    model: Any
    entity: str | None  # the model's name for rules; change events are written for it
    primary_key: ClassVar[str]  # the record's id in the tool's payload
    cursor_field: ClassVar[str | None]  # the payload's change time the cursor follows
    write_mode: ClassVar[Literal["merge", "replace"]] = "merge"
    cursor_moves: ClassVar[Literal["page", "run"]] = "page"

    @property
    def progress_label(self) -> str:
        """The name progress bars show."""
        return self.name

    @abstractmethod
    def api_calls(self) -> int:
        """The client's call counter."""

    @abstractmethod
    def paginator(self, run: StreamRun) -> Paginator[Any]:
        """The paginator of this run (its first token follows from ``run.cursor``)."""

    @abstractmethod
    def fetch(self, token: Any) -> Any:
        """One page from the API."""

    @abstractmethod
    def records(self, page: Any) -> list[Record]:
        """The page's records, mapped; runs outside the transaction (it may call the API)."""

    def parse_cursor(self, text: str) -> datetime:
        """A stored cursor as a naive UTC datetime."""
        return datetime.fromisoformat(text)

    def format_cursor(self, value: datetime) -> str:
        """How the cursor is stored."""
        return value.isoformat()

    def progress_of(self, page: Any, records: list[Record]) -> tuple[int, int | None]:
        """What a page advances the progress bar by, and the listing's total if known."""
        return len(records), None

    def start(self, db: Database, run: StreamRun) -> None:
        """Before the first page."""
        return None

    def link(self, session: Session, records: list[Record]) -> None:
        """In the page's transaction, before the upserts: fill foreign keys of the rows."""
        return None

    def after_write(self, session: Session, records: list[Record]) -> None:
        """In the page's transaction, after the upserts: rows that go beside them."""
        return None

    def finish(self, db: Database, run: StreamRun) -> None:
        """After the last page, when every page committed: deletion scans."""
        return None

    def end(self, session: Session, state: SyncState) -> None:
        """In the outcome's transaction, however the run ended."""
        return None

    def live_ids(self, session: Session) -> set[str]:
        """Source ids of the rows a complete read of the stream should return."""
        model = self.model
        return set(session.scalars(select(model.source_id).where(
            model.source == self.source, model.deleted_at.is_(None))))


def classify(exc: BaseException) -> ErrorKind:
    """The kind of a failure, the same for every tool: what to do next depends on it
    (transient: the next sync retries; auth / config: fix the named setting; remote_data:
    the tool refused or answered something unusable)."""
    kinds: list[tuple[type[BaseException], ErrorKind]] = [
        (TransientError, "transient"), (AuthError, "auth"), (RemoteDataError, "remote_data"),
        (ConfigError, "config")]
    return next((kind for cls, kind in kinds if isinstance(exc, cls)), "connector")


def run_stream(db: Database, stream: Stream, *, full: bool = False,
               progress: ProgressFn | None = None, calls_from: int | None = None) -> SyncReport:
    """Run one stream: every page from the stored cursor on, then the stream's deletion
    scan; record the outcome. ``calls_from``: count API calls from this value of the
    client's counter (a client built for the run counts its start-up calls) instead of
    from now."""
    report = SyncReport(stream.source, stream.name)
    bound = log.bind(source=stream.source, stream=stream.name)
    calls_before = stream.api_calls() if calls_from is None else calls_from
    stored = _begin(db, stream)
    run = StreamRun(cursor=None if full else stored, full=full, report=report)
    error: str | None = None
    unreachable: UnreachableError | None = None
    try:
        _read(db, stream, run, progress or noop_progress)
    except (ConnectorError, ConfigError) as exc:
        error = report.error = str(exc)
        unreachable = exc if isinstance(exc, UnreachableError) else None
        bound.error("sync.stream.failed", error=error, error_kind=classify(exc))
    report.api_calls = stream.api_calls() - calls_before
    with db.session() as session:
        state = get_state(session, stream.source, stream.name)
        if error is None and stream.cursor_moves == "run":
            _advance_cursor(stream, state, run.newest)
        stream.end(session, state)
        record_outcome(state, report, "ok" if error is None else "failed", error)
    bound.info("sync.stream.done", **report.counts.__dict__, api_calls=report.api_calls)
    if unreachable is not None:
        raise unreachable  # the tool's other streams would fail alike: skipped this cycle
    return report


def _begin(db: Database, stream: Stream) -> str | None:
    with db.session() as session:
        state = get_state(session, stream.source, stream.name)
        state.last_started_at = utcnow()
        return state.cursor


def _read(db: Database, stream: Stream, run: StreamRun, progress: ProgressFn) -> None:
    stream.start(db, run)
    for page in iter_pages(stream.paginator(run), stream.fetch):
        records = stream.records(page)
        newest = write_page(db, stream, records, run.report)
        run.last_page = page
        run.seen.update(r.row["source_id"] if r.row else r.key for r in records)
        if newest is not None and (run.newest is None or newest > run.newest):
            run.newest = newest
        progress(stream.progress_label, *stream.progress_of(page, records))
    if stream.write_mode == "replace" and (run.full or stream.cursor_field is None):
        with db.session() as session:
            run.report.counts.deleted = mark_deleted(
                session, stream.model, stream.source, stream.live_ids(session) - run.seen,
                entity=stream.entity)
    stream.finish(db, run)


def write_page(db: Database, stream: Stream, records: list[Record], report: SyncReport, *,
               correlation_id: str | None = None, move_cursor: bool = True
               ) -> datetime | None:
    """Write one page in one transaction: upsert the mapped records (merged on source
    and source id), dead-letter the others, the stream's rows beside them and — for
    streams whose cursor moves per page, unless ``move_cursor`` is off (a webhook's
    single record) — the cursor. Returns the page's greatest cursor value."""
    newest: datetime | None = None
    with db.session() as session:
        stream.link(session, records)
        prefetch(session, stream.model, stream.source,
                 (r.row["source_id"] for r in records if r.row is not None))
        for record in records:
            if record.row is None:
                _dead_letter(session, stream, record, report)
                continue
            outcome = upsert(session, stream.model, record.row, entity=stream.entity,
                             own_write=record.own_write, correlation_id=correlation_id)
            setattr(report.counts, outcome, getattr(report.counts, outcome) + 1)
            resolve_dead_letter(session, stream.source, stream.name, record.key)
            edited = record.row.get(CURSOR_COLUMN) if stream.cursor_field else None
            if edited is not None and (newest is None or edited > newest):
                newest = edited
        stream.after_write(session, records)
        if move_cursor and stream.cursor_moves == "page":
            _advance_cursor(stream, get_state(session, stream.source, stream.name), newest)
    return newest


def _dead_letter(session: Session, stream: Stream, record: Record, report: SyncReport) -> None:
    reason = record.problem or "unmappable"
    dead_letter(session, stream.source, stream.name, record.key, reason, record.raw)
    report.counts.dead_lettered += 1
    log.warning("sync.dead_letter", source=stream.source, stream=stream.name,
                source_id=record.key, reason=reason)


def _advance_cursor(stream: Stream, state: SyncState, newest: datetime | None) -> None:
    """Move the stored cursor to ``newest`` if that is later (never backwards)."""
    if newest is None:
        return
    if state.cursor is None or newest > stream.parse_cursor(state.cursor):
        state.cursor = stream.format_cursor(newest)


def single_outcome(report: SyncReport) -> str:
    """What writing one record did (the webhook paths): 'created' / 'updated' /
    'unchanged' / 'dead_lettered'."""
    counts = report.counts
    return next((k for k in ("created", "updated", "unchanged", "dead_lettered")
                 if getattr(counts, k)), "unchanged")

