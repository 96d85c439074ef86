"""The Podio stream runner: keyset-paged incremental sync per app, deletions, references.

Cursor: the greatest ``last_edit_on`` committed (UTC, one-second precision). Each cycle
re-reads from ``cursor - overlap`` so edits that share the cursor's second, or land while a
page is read, are not lost; rows are merged on (source, source_id) and unchanged revisions
are skipped. Pages move by time (from = last timestamp seen) and use ``offset`` only to step
over items sharing that second (reference §10: plain offset paging skips items edited
mid-run).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from connectors.base import ProgressFn, noop_progress
from connectors.podio.client import PodioClient
from connectors.podio.mapping import (
    MappingError,
    format_podio_time,
    item_last_edit,
    item_to_row,
    own_write,
    parse_podio_time,
)
from connectors.podio.streams import TABLES, PodioStream, load_mapping
from core.errors import ConnectorError, RemoteDataError
from core.settings import Settings
from store.db import Database, utcnow
from store.models import Staff
from store.staff import sync_staff
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

SOURCE = "podio"
# Upper bound on pages per stream per cycle: 2,000 pages x 500 items = 1,000,000 items.
MAX_PAGES = 2000
# Page size of the id scan that finds deleted items (Podio's documented maximum, §5.3).
ID_SCAN_PAGE = 500
# Rows wrongly marked deleted that one id scan reads again (one GET each).
MAX_REVIVED_PER_SCAN = 50


def sync_podio(settings: Settings, db: Database, *, full: bool = False,
               progress: ProgressFn | None = None, client: PodioClient | None = None
               ) -> list[SyncReport]:
    """Sync every configured Podio app into the model (referenced apps first)."""
    mapping = load_mapping(settings.config_dir)
    own_client = client is None
    client = client or PodioClient.from_settings(settings)
    with db.session() as session:
        staff = sync_staff(session, settings.config_dir)
    reports: list[SyncReport] = []
    try:
        for name, app_map in mapping.apps.items():
            app_id = settings.podio_apps.get(name, (None, ""))[0]
            if not app_id:
                reports.append(SyncReport(SOURCE, name, error=f"PODIO_APP_{name.upper()}_ID "
                                          "is not set; app skipped"))
                continue
            stream = PodioStream(name, app_id, app_map)
            reports.append(_run_stream(client, db, stream, staff, settings, full,
                                       progress or noop_progress))
        with db.session() as session:
            resolve_references(session, mapping.apps.values())
    finally:
        if own_client:
            client.close()
    return reports


def _run_stream(client: PodioClient, db: Database, stream: PodioStream, staff: dict[int, int],
                settings: Settings, full: bool, progress: ProgressFn) -> SyncReport:
    report = SyncReport(SOURCE, stream.name)
    calls_before = client.calls
    bound = structlog.get_logger(__name__).bind(source=SOURCE, stream=stream.name)
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        state.last_started_at = utcnow()
        cursor = None if full else state.cursor
    try:
        # A full read into an empty table lists every live item itself: no id scan needed.
        first = full and _live_rows(db, stream) == 0
        total = _pull_changes(client, db, stream, staff, cursor, settings, report, progress)
        if first:
            _note_id_scan(db, stream)
        elif full or _deletion_scan_due(db, stream, total, settings):
            report.counts.deleted = _scan_deletions(client, db, stream, staff, report)
        status, error = "ok", None
    except ConnectorError as exc:
        status, error = "failed", str(exc)
        report.error = error
        bound.error("sync.stream.failed", error=error)
    report.api_calls = client.calls - calls_before
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        record_outcome(state, report, status, error)
    bound.info("sync.stream.done", **report.counts.__dict__, api_calls=report.api_calls)
    return report


def _pull_changes(client: PodioClient, db: Database, stream: PodioStream,
                  staff: dict[int, int], cursor: str | None, settings: Settings,
                  report: SyncReport, progress: ProgressFn) -> int | None:
    """Read every item edited since the cursor, page by page; returns the app's item total."""
    page_size = settings.podio_page_size
    start: datetime | None = None
    if cursor:
        start = parse_podio_time(cursor) - timedelta(seconds=settings.podio_sync_overlap_seconds)
    offset = 0
    total: int | None = None
    for _ in range(MAX_PAGES):
        body: dict[str, Any] = {"sort_by": "last_edit_on", "sort_desc": False,
                                "limit": page_size, "offset": offset}
        if start is not None:
            body["filters"] = {"last_edit_on": {"from": format_podio_time(start)}}
        page = client.filter_items(stream.app_id, body)
        items: list[dict[str, Any]] = page.get("items") or []
        total = page.get("total", total)
        _store_page(db, stream, items, staff, client.own_refs(), report)
        progress(stream.name, len(items), page.get("filtered"))
        if len(items) < page_size:
            break
        stamps = [item_last_edit(i) for i in items]
        if start is not None and stamps[0] == start and stamps[-1] == start:
            offset += len(items)  # a whole page inside one second: step over it
        else:
            start = stamps[-1]
            offset = sum(1 for s in stamps if s == start)
    return total


def _store_page(db: Database, stream: PodioStream, items: list[dict[str, Any]],
                staff: dict[int, int], own_refs: list[dict[str, Any]], report: SyncReport, *,
                correlation_id: str | None = None, move_cursor: bool = True) -> None:
    """Upsert one page and advance the cursor in the same transaction."""
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        newest = parse_podio_time(state.cursor) if state.cursor else None
        prefetch(session, stream.model, SOURCE, (str(i.get("item_id")) for i in items))
        for item in items:
            item_id = str(item.get("item_id", "?"))
            try:
                row = item_to_row(item, stream.mapping, staff)
            except MappingError as exc:
                dead_letter(session, SOURCE, stream.name, item_id, str(exc), item)
                report.counts.dead_lettered += 1
                log.warning("sync.dead_letter", stream=stream.name, item_id=item_id,
                            reason=str(exc))
                continue
            outcome = upsert(session, stream.model, row, entity=stream.mapping.entity,
                             own_write=own_write(item, own_refs), correlation_id=correlation_id)
            setattr(report.counts, outcome, getattr(report.counts, outcome) + 1)
            resolve_dead_letter(session, SOURCE, stream.name, item_id)
            edited = row["source_updated_at"]
            newest = edited if newest is None or edited > newest else newest
        if newest is not None and move_cursor:
            state.cursor = format_podio_time(newest)


def _deletion_scan_due(db: Database, stream: PodioStream, total: int | None,
                       settings: Settings) -> bool:
    """Scan for deletions when the app's total disagrees with our live rows, or on schedule."""
    live = _live_rows(db, stream)
    with db.session() as session:
        last_scan = (get_state(session, SOURCE, stream.name).state or {}).get("last_id_scan")
    if total is not None and live != total:
        return True
    if last_scan is None:
        return False
    due = datetime.fromisoformat(last_scan) + timedelta(hours=settings.podio_deletion_scan_hours)
    return utcnow() >= due


def _live_rows(db: Database, stream: PodioStream) -> int:
    model: Any = stream.model
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(
            model.source == SOURCE, model.deleted_at.is_(None))) or 0)


def _note_id_scan(db: Database, stream: PodioStream) -> None:
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        state.state = {**(state.state or {}), "last_id_scan": utcnow().isoformat()}


def _scan_deletions(client: PodioClient, db: Database, stream: PodioStream,
                    staff: dict[int, int], report: SyncReport) -> int:
    """List every live item id (ID_SCAN_PAGE per call), mark missing rows deleted and
    revive rows marked deleted whose items are live.

    Asks for the micro view (ids and titles only, reference §10.4: "cheap with
    fields=items.view(micro)", a third-party claim): a Podio that ignored it would send
    whole items, which read the same.
    """
    live: set[str] = set()
    for page_no in range(MAX_PAGES):
        page = client.request("POST", f"/item/app/{stream.app_id}/filter/",
                              params={"fields": "items.view(micro)"},
                              json={"sort_by": "item_id", "sort_desc": False,
                                    "limit": ID_SCAN_PAGE, "offset": page_no * ID_SCAN_PAGE},
                              app_id=stream.app_id, idempotent=True)
        items = page.get("items") or []
        live.update(str(i["item_id"]) for i in items)
        if len(items) < ID_SCAN_PAGE:
            break
    model: Any = stream.model
    with db.session() as session:
        rows = session.execute(select(model.source_id, model.deleted_at).where(
            model.source == SOURCE)).all()
        known = {source_id for source_id, gone in rows if gone is None}
        deleted = mark_deleted(session, model, SOURCE, known - live, entity=stream.mapping.entity)
    # Rows marked deleted whose items are alive (a wrong delete notice, an item restored):
    # read them again, a few per scan (a GET each); the next scans take the rest.
    revive = sorted(source_id for source_id, gone in rows if gone is not None and source_id in live)
    if revive:
        log.warning("sync.podio.reviving", stream=stream.name, items=len(revive))
        items = []
        for source_id in revive[:MAX_REVIVED_PER_SCAN]:
            try:
                items.append(client.get_item(int(source_id)))
            except RemoteDataError as exc:  # deleted since the scan listed it
                if not item_gone(exc):
                    raise
        _store_page(db, stream, items, staff, client.own_refs(), report, move_cursor=False)
    _note_id_scan(db, stream)
    return deleted


def resolve_references(session: Session, apps: Any, source_ids: list[str] | None = None
                       ) -> None:
    """Set foreign keys from the stored Podio references, then derived columns; only on the
    rows of ``source_ids`` when given (one webhook item must not rescan whole tables)."""
    for app in apps:
        table: Any = TABLES[app.table]
        rows = table.source_id.in_(source_ids) if source_ids is not None else true()
        for column, spec in app.fields.items():
            if spec.type != "ref" or not spec.fk or not spec.table:
                continue
            target: Any = TABLES[spec.table]
            wanted = (select(target.id).where(target.source == SOURCE,
                                              target.source_id == getattr(table, column))
                      .scalar_subquery())
            fk = getattr(table, spec.fk)
            session.execute(update(table).where(rows, fk.is_distinct_from(wanted)).values(
                {spec.fk: wanted}))
        for column, derived in app.derived.items():
            target = TABLES[derived.table]
            wanted = (select(getattr(target, derived.column))
                      .where(target.id == getattr(table, derived.from_)).scalar_subquery())
            session.execute(update(table)
                            .where(rows, getattr(table, column).is_distinct_from(wanted))
                            .values({column: wanted}))


def sync_item(settings: Settings, db: Database, client: PodioClient, item_id: int, *,
              deleted: bool = False, correlation_id: str | None = None) -> str:
    """Bring one item up to date (the webhook path): GET it, map it, upsert it.

    A delivery is only a hint, ``deleted`` (an ``item.delete`` notice) too: the item is
    marked deleted only when Podio says it is gone (404 ``not_found`` / 410 ``gone``); a
    live item is upserted as it is, whatever the notice said. Returns 'created' /
    'updated' / 'unchanged' / 'deleted' / 'dead_lettered' / 'ignored' (an item of an app
    that is not synced, or gone and never synced).
    """
    mapping = load_mapping(settings.config_dir)
    apps_by_id = {app_id: name for name, (app_id, _t) in settings.podio_apps.items() if app_id}
    try:
        item = client.get_item(item_id)
    except RemoteDataError as exc:
        if not item_gone(exc):
            raise
        with db.session() as session:
            for app in mapping.apps.values():
                if mark_deleted(session, TABLES[app.table], SOURCE, [str(item_id)],
                                entity=app.entity):
                    return "deleted"
        return "ignored"
    if deleted:
        log.warning("podio.delete_notice_for_live_item", item_id=item_id)
    name = apps_by_id.get(int((item.get("app") or {}).get("app_id", 0)))
    if name is None or name not in mapping.apps:
        return "ignored"
    stream = PodioStream(name, int(item["app"]["app_id"]), mapping.apps[name])
    with db.session() as session:
        staff = _staff_ids(session)
    report = SyncReport(SOURCE, name)
    _store_page(db, stream, [item], staff, client.own_refs(), report,
                correlation_id=correlation_id, move_cursor=False)
    with db.session() as session:
        resolve_references(session, [mapping.apps[name]], [str(item_id)])
    counts = report.counts
    return next((k for k in ("created", "updated", "unchanged", "dead_lettered")
                 if getattr(counts, k)), "unchanged")


def item_gone(exc: RemoteDataError) -> bool:
    """Whether Podio's answer says the item does not exist (any more): 404 ``not_found`` or
    410 ``gone`` (which of the two a deleted item gets is unverified, reference §2.2)."""
    code = exc.body.get("error") if isinstance(exc.body, dict) else None
    return exc.status in (404, 410) or code in ("not_found", "gone")


def _staff_ids(session: Session) -> dict[int, int]:
    return {s.podio_profile_id: s.id for s in session.scalars(select(Staff))
            if s.podio_profile_id is not None}
