"""Deleted Podio items: the filter listing cannot show them, so an id scan finds them.

After a stream's changes are read (its ``finish`` hook), the app's item ids are listed when
its total disagrees with the live rows, when PODIO_DELETION_SCAN_HOURS have passed since the
last scan, and on every full sync. A full read into an empty table needs no scan.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select

from connectors.paging import OffsetPaginator, iter_pages
from connectors.runner import StreamRun, write_page
from core.errors import RemoteDataError
from store.db import Database, utcnow
from store.sync import SyncReport, get_state, mark_deleted

if TYPE_CHECKING:
    from connectors.podio.streams import PodioStream

log = structlog.get_logger(__name__)

# Page size of the id scan (Podio's documented maximum, §5.3).
ID_SCAN_PAGE = 500
# Upper bound on id-scan pages: 2,000 pages x 500 ids = 1,000,000 items.
MAX_SCAN_PAGES = 2000
# Rows wrongly marked deleted that one id scan reads again (one GET each).
MAX_REVIVED_PER_SCAN = 50


def after_changes(db: Database, stream: PodioStream, run: StreamRun) -> None:
    """Scan for deletions if due (see the module docstring); counts them on the report."""
    total = (run.last_page or {}).get("total")
    if run.notes.get("first"):
        note_id_scan(db, stream)
    elif run.full or scan_due(db, stream, total):
        run.report.counts.deleted = scan_deletions(db, stream, run.report)


def scan_due(db: Database, stream: PodioStream, total: int | None) -> bool:
    """Scan when the app's total disagrees with our live rows, or on schedule."""
    live = live_rows(db, stream)
    with db.session() as session:
        last_scan = (get_state(session, stream.source, stream.name).state or {}).get(
            "last_id_scan")
    if total is not None and live != total:
        return True
    if last_scan is None:
        return False
    due = datetime.fromisoformat(last_scan) + timedelta(
        hours=stream.settings.podio_deletion_scan_hours)
    return utcnow() >= due


def live_rows(db: Database, stream: PodioStream) -> int:
    """How many rows of the stream's table are not marked deleted."""
    model: Any = stream.model
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(
            model.source == stream.source, model.deleted_at.is_(None))) or 0)


def note_id_scan(db: Database, stream: PodioStream) -> None:
    """Remember that the app's ids were just listed (the schedule counts from here)."""
    with db.session() as session:
        state = get_state(session, stream.source, stream.name)
        state.state = {**(state.state or {}), "last_id_scan": utcnow().isoformat()}


def scan_deletions(db: Database, stream: PodioStream, report: SyncReport) -> int:
    """List every live item id (ID_SCAN_PAGE per call), mark missing rows deleted and
    revive rows marked deleted whose items are live. Returns how many were marked.

    Asks for the micro view (ids and titles only, reference §10.4: "cheap with
    fields=items.view(micro)", a third-party claim): a Podio that ignored it would send
    whole items, which read the same.
    """
    live = _live_ids(stream)
    model: Any = stream.model
    with db.session() as session:
        rows = session.execute(select(model.source_id, model.deleted_at).where(
            model.source == stream.source)).all()
        known = {source_id for source_id, gone in rows if gone is None}
        deleted = mark_deleted(session, model, stream.source, known - live,
                               entity=stream.entity)
    # Rows marked deleted whose items are alive (a wrong delete notice, an item restored):
    # read them again, a few per scan (a GET each); the next scans take the rest.
    revive = sorted(source_id for source_id, gone in rows if gone is not None and source_id in live)
    if revive:
        log.warning("sync.podio.reviving", stream=stream.name, items=len(revive))
        items = []
        for source_id in revive[:MAX_REVIVED_PER_SCAN]:
            try:
                items.append(stream.client.get_item(int(source_id), app_id=stream.app_id))
            except RemoteDataError as exc:  # deleted since the scan listed it
                if not item_gone(exc):
                    raise
        write_page(db, stream, stream.records({"items": items}), report, move_cursor=False)
    note_id_scan(db, stream)
    return deleted


def _live_ids(stream: PodioStream) -> set[str]:
    def fetch(offset: int | None) -> dict[str, Any]:
        page: dict[str, Any] = stream.client.request(
            "POST", f"/item/app/{stream.app_id}/filter/",
            params={"fields": "items.view(micro)"},
            json={"sort_by": "item_id", "sort_desc": False, "limit": ID_SCAN_PAGE,
                  "offset": offset or 0},
            app_id=stream.app_id, idempotent=True)
        return page

    paginator = OffsetPaginator(ID_SCAN_PAGE, max_pages=MAX_SCAN_PAGES, tool="Podio")
    return {str(item["item_id"]) for page in iter_pages(paginator, fetch)
            for item in page.get("items") or []}


def item_gone(exc: RemoteDataError) -> bool:
    """Whether Podio's answer says the item does not exist (any more): 404 ``not_found`` or
    410 ``gone`` (which of the two a deleted item gets is unverified, reference §2.2)."""
    code = exc.body.get("error") if isinstance(exc.body, dict) else None
    return exc.status in (404, 410) or code in ("not_found", "gone")
