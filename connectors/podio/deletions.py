"""Deleted Podio items: the filter listing cannot show them, so an id scan finds them.

After a stream's changes are read (its ``finish`` hook), the app's item ids are listed when
its total disagrees with the live rows, when PODIO_DELETION_SCAN_HOURS have passed since the
last scan, and on every full sync; `serve` also runs the scan of every app on its own
schedule (DELETION_SCAN_MINUTES, ``scan_all``). A full read into an empty table needs no
scan. An id the listing misses is marked deleted only after GET answers 404/410.

Why offsets and not a keyset: Podio's filter has no documented item_id bound (reference
§5.3 lists created_on/last_edit_on and field keys), and a created_on bound carries the open
question of the zone Podio reads it in (docs/fidelidad.md); the confirming GET makes the
listing's drift harmless, and the page overlap keeps it rare.
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
# Ids one scan checks with a GET before marking them deleted (Podio's filter cannot list
# deleted items, reference §10.4; a GET's 404/410 is the only proof). 100 GETs are 10 % of
# the documented hourly 1,000 (§3); a bulk delete larger than that takes several scans.
MAX_CONFIRMED_PER_SCAN = 100
# Each id page starts this many ids before the previous one ended: up to that many
# deletions during the scan, before a page boundary, shift no live id out of the listing
# (more only cost confirming GETs, never a wrong mark). 10 % more pages.
ID_SCAN_OVERLAP = 50


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
    """List every live item id, then settle each disagreement with the item itself: a row
    whose id was not listed is marked deleted only when GET answers 404/410 (the listing
    is offset-paged, and deletions while it runs shift items past a page boundary: a live
    item missing from it is read, never marked); a row marked deleted whose id was listed
    is read again and comes back. Returns how many were marked.

    At most MAX_CONFIRMED_PER_SCAN ids are checked per scan (a GET each); the rest wait
    for the next scan, which the disagreeing count makes due at once. Asks for the micro
    view (ids and titles only, reference §10.4: "cheap with fields=items.view(micro)", a
    third-party claim): a Podio that ignored it would send whole items, which read the same.
    """
    live = _live_ids(stream)
    model: Any = stream.model
    with db.session() as session:
        rows = session.execute(select(model.source_id, model.deleted_at).where(
            model.source == stream.source)).all()
    missing = sorted(source_id for source_id, gone in rows
                     if gone is None and source_id not in live)
    revive = sorted(source_id for source_id, gone in rows if gone is not None and source_id in live)
    checked = missing[:MAX_CONFIRMED_PER_SCAN]
    room = max(0, MAX_CONFIRMED_PER_SCAN - len(checked))
    gone, items = _confirm(stream, checked + revive[:min(room, MAX_REVIVED_PER_SCAN)])
    if len(missing) > len(checked):
        log.warning("sync.podio.deletions_left_for_next_scan", stream=stream.name,
                    left=len(missing) - len(checked))
    missed = [str(i["item_id"]) for i in items if str(i["item_id"]) in set(checked)]
    if missed:  # the listing skipped live items (deletions while it paged): harmless
        log.info("sync.podio.listing_missed_live_items", stream=stream.name,
                 items=len(missed))
    with db.session() as session:
        deleted = mark_deleted(session, model, stream.source, gone, entity=stream.entity)
    if items:
        write_page(db, stream, stream.records({"items": items}), report, move_cursor=False)
    note_id_scan(db, stream)
    return deleted


def _confirm(stream: PodioStream, source_ids: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """(ids Podio says are gone, the live items) of ``source_ids``, one GET each."""
    gone: list[str] = []
    items: list[dict[str, Any]] = []
    for source_id in source_ids:
        try:
            items.append(stream.client.get_item(int(source_id), app_id=stream.app_id))
        except RemoteDataError as exc:
            if not item_gone(exc):
                raise
            gone.append(source_id)
    return gone, items


def _live_ids(stream: PodioStream) -> set[str]:
    def fetch(offset: int | None) -> dict[str, Any]:
        return stream.client.filter_items(
            stream.app_id, {"sort_by": "item_id", "sort_desc": False, "limit": ID_SCAN_PAGE,
                            "offset": offset or 0},
            params={"fields": "items.view(micro)"})

    paginator = OffsetPaginator(ID_SCAN_PAGE, max_pages=MAX_SCAN_PAGES, tool="Podio",
                                overlap=ID_SCAN_OVERLAP)
    return {str(item["item_id"]) for page in iter_pages(paginator, fetch)
            for item in page.get("items") or []}


def item_gone(exc: RemoteDataError) -> bool:
    """Whether Podio's answer says the item does not exist (any more): 404 ``not_found`` or
    410 ``gone`` (which of the two a deleted item gets is unverified, reference §2.2)."""
    code = exc.body.get("error") if isinstance(exc.body, dict) else None
    return exc.status in (404, 410) or code in ("not_found", "gone")
