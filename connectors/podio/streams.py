"""Podio streams as declarations: one per app of config/podio.yaml (``store.entities``),
run by ``connectors.runner``; the keyset paginator they page with."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connectors.paging import Paginator
from connectors.podio import deletions
from connectors.runner import Record, Stream, StreamRun
from store.entities import AppMap

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from connectors.podio.client import PodioClient
    from core.settings import Settings
    from store.db import Database
    from store.models import SyncState

SOURCE = "podio"
# Upper bound on pages per stream per cycle: 2,000 pages x 500 items = 1,000,000 items.
MAX_PAGES = 2000


class EditTimePaginator(Paginator[tuple[datetime | None, int]]):
    """Podio's filter listing sorted by ``last_edit_on``: the token is (from, offset).

    Pages move by time (from = the last edit time seen) and use the offset only to step
    over items sharing that second (reference §10: plain offset paging skips items edited
    mid-run); a short page is the last.
    """

    def __init__(self, start: datetime | None, page_size: int) -> None:
        super().__init__((start, 0), max_pages=MAX_PAGES, tool="Podio")
        self.page_size = page_size

    def next_token(self, page: Any) -> tuple[datetime | None, int] | None:
        from connectors.podio.mapping import item_last_edit  # mapping imports this module

        items = page.get("items") or []
        if len(items) < self.page_size:
            return None
        start, offset = self.token or (None, 0)
        stamps = [item_last_edit(i) for i in items]
        if start is not None and stamps[0] == start and stamps[-1] == start:
            return start, offset + len(items)  # a whole page inside one second: step over it
        return stamps[-1], sum(1 for s in stamps if s == stamps[-1])


class PodioStream(Stream):
    """One Podio app synced into one table.

    Primary key ``item_id``; cursor ``last_edit_on`` (Podio timestamps have one-second
    precision, UTC): each run re-reads from ``cursor - PODIO_SYNC_OVERLAP_SECONDS`` so
    edits that share the cursor's second, or land while a page is read, are not lost;
    keyset pages (``EditTimePaginator``); merge on (source, source_id), unchanged revisions
    skipped. Deletions: an id scan (``connectors/podio/deletions.py``) when the app's total
    disagrees with the live rows, on schedule, and on a full sync.
    """

    source = SOURCE
    primary_key = "item_id"
    cursor_field = "last_edit_on"

    def __init__(self, client: PodioClient, name: str, app_id: int, mapping: AppMap, *,
                 staff: Mapping[int, int], settings: Settings) -> None:
        self.client = client
        self.name = name
        self.app_id = app_id
        self.mapping = mapping
        self.model = mapping.model
        self.entity = mapping.entity
        self.staff = staff
        self.settings = settings
        # This run's incremental window (cursor - overlap, cursor), and whether the zone
        # of filter bounds could not be found out (then every bound is the safe one).
        self._window: tuple[datetime, datetime] | None = None
        self._undecided = False

    def api_calls(self) -> int:
        return self.client.calls

    def paginator(self, run: StreamRun) -> EditTimePaginator:
        settings = self.settings
        start: datetime | None = None
        self._window = None
        if run.cursor:
            cursor = self.parse_cursor(run.cursor)
            start = cursor - timedelta(seconds=settings.podio_sync_overlap_seconds)
            self._window = (start, cursor)
        self._undecided = False
        return EditTimePaginator(start, settings.podio_page_size)

    def fetch(self, token: tuple[datetime | None, int] | None) -> dict[str, Any]:
        """One page; a bound is written in the frame Podio reads it in (``filter_zone``)."""
        from connectors.podio import filter_zone  # mapping (imported there) imports this

        start, offset = token or (None, 0)
        body: dict[str, Any] = {"sort_by": "last_edit_on", "sort_desc": False,
                                "limit": self.settings.podio_page_size, "offset": offset}
        if start is None:
            return self.client.filter_items(self.app_id, body)
        zone = ZoneInfo(self.settings.timezone)

        def page(frame: str | None) -> dict[str, Any]:
            bound = filter_zone.bound_text(start, frame, zone)
            return self.client.filter_items(
                self.app_id, {**body, "filters": {"last_edit_on": {"from": bound}}})

        frame = self.settings.podio_filter_timezone or self.client.filter_frame
        if frame is not None:
            return page(frame)
        if self._undecided:
            return page(None)
        if self._window is not None and self._window[0] == start and offset == 0:
            first = page(filter_zone.UTC_FRAME)
            if filter_zone.window_confirms_utc(first, *self._window):
                self.client.filter_frame = filter_zone.UTC_FRAME
                return first
        self.client.filter_frame = filter_zone.detect(self.client, self.app_id, zone)
        self._undecided = self.client.filter_frame is None
        return page(self.client.filter_frame)

    def records(self, page: dict[str, Any]) -> list[Record]:
        from connectors.podio.mapping import MappingError, item_to_row, own_write

        own_refs = self.client.own_refs()
        records = []
        for item in page.get("items") or []:
            record = Record(key=str(item.get("item_id", "?")), raw=item,
                            own_write=own_write(item, own_refs))
            try:
                record.row = item_to_row(item, self.mapping, self.staff,
                                         ZoneInfo(self.settings.timezone))
            except MappingError as exc:
                record.problem = str(exc)
            records.append(record)
        return records

    def progress_of(self, page: dict[str, Any], records: list[Record]) -> tuple[int, int | None]:
        return len(records), page.get("filtered")

    def parse_cursor(self, text: str) -> datetime:
        from connectors.podio.mapping import parse_podio_time

        return parse_podio_time(text)

    def format_cursor(self, value: datetime) -> str:
        from connectors.podio.mapping import format_podio_time

        return format_podio_time(value)

    def start(self, db: Database, run: StreamRun) -> None:
        if self.client.filter_frame is None:
            from store.sync import get_state

            with db.session() as session:
                known = (get_state(session, self.source, self.name).state or {}).get(
                    "filter_frame")
            self.client.filter_frame = str(known) if known else None
        # A full read into an empty table lists every live item itself: no id scan needed.
        run.notes["first"] = run.full and deletions.live_rows(db, self) == 0

    def finish(self, db: Database, run: StreamRun) -> None:
        deletions.after_changes(db, self, run)

    def end(self, session: Session, state: SyncState) -> None:
        # The zone of filter bounds, once found out, is kept for the next processes.
        if self.client.filter_frame and (state.state or {}).get(
                "filter_frame") != self.client.filter_frame:
            state.state = {**(state.state or {}), "filter_frame": self.client.filter_frame}
