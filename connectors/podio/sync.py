"""The Podio sync: every configured app's stream (``streams.py``) through the shared runner,
then the references between apps; ``sync_item`` is the webhook path for one item."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select, true, update
from sqlalchemy.orm import Session

from connectors.base import ProgressFn
from connectors.podio import tasks
from connectors.podio.client import PodioClient
from connectors.podio.deletions import item_gone, scan_deletions
from connectors.podio.streams import SOURCE, PodioStream
from connectors.runner import run_stream, single_outcome, write_page
from core.errors import RemoteDataError
from core.settings import Settings
from store.db import Database
from store.entities import TABLES, load_mapping
from store.models import Staff
from store.staff import sync_staff
from store.sync import SyncReport, mark_deleted

log = structlog.get_logger(__name__)


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
                                          "no está definido: app omitida (defínelo en .env)"))
                continue
            stream = PodioStream(client, name, app_id, app_map, staff=staff, settings=settings)
            reports.append(run_stream(db, stream, full=full, progress=progress))
        with db.session() as session:
            resolve_references(session, mapping.apps.values())
        app_ids = [app_id for app_id, _t in settings.podio_apps.values() if app_id]
        if app_ids and tasks.due(db, settings, full=full):
            reports.append(run_stream(db, tasks.PodioTaskStream(
                client, app_ids, staff=_user_ids(db), settings=settings), full=full,
                progress=progress))
    finally:
        if own_client:
            client.close()
    return reports


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


def scan_all_deletions(settings: Settings, db: Database, client: PodioClient) -> int:
    """The id scan of every configured app (``deletions.scan_deletions``), whatever its
    counts say: what `serve` runs on its schedule. Returns how many rows were marked."""
    mapping = load_mapping(settings.config_dir)
    with db.session() as session:
        staff = _staff_ids(session)
    marked = 0
    for name, app_map in mapping.apps.items():
        app_id = settings.podio_apps.get(name, (None, ""))[0]
        if not app_id:
            continue
        stream = PodioStream(client, name, app_id, app_map, staff=staff, settings=settings)
        marked += scan_deletions(db, stream, SyncReport(SOURCE, name))
    return marked


def sync_app(settings: Settings, db: Database, client: PodioClient, app_id: int) -> str:
    """One app's incremental read (its stream from the stored cursor, as the polling sync
    does it): what gathered update notices of that app become. Returns what it did."""
    mapping = load_mapping(settings.config_dir)
    name = next((n for n, (a, _t) in settings.podio_apps.items() if a == app_id), None)
    if name is None or name not in mapping.apps:
        return "ignored"
    with db.session() as session:
        staff = _staff_ids(session)
    stream = PodioStream(client, name, app_id, mapping.apps[name], staff=staff,
                         settings=settings)
    report = run_stream(db, stream, full=False)
    if report.error:
        raise RemoteDataError(f"Podio app {name}: {report.error}")
    with db.session() as session:
        resolve_references(session, [mapping.apps[name]])
    counts = report.counts
    return f"{name}: +{counts.created} ~{counts.updated} ({report.api_calls} llamadas)"


def sync_item(settings: Settings, db: Database, client: PodioClient, item_id: int, *,
              deleted: bool = False, correlation_id: str | None = None,
              hint: int | None = None) -> str:
    """Bring one item up to date (the webhook path): GET it, map it, upsert it.

    A delivery is only a hint, ``deleted`` (an ``item.delete`` notice) too: the item is
    marked deleted only when Podio says it is gone (404 ``not_found`` / 410 ``gone``); a
    live item is upserted as it is, whatever the notice said. Returns 'created' /
    'updated' / 'unchanged' / 'deleted' / 'dead_lettered' / 'ignored' (an item of an app
    that is not synced, or gone and never synced). With app tokens only the item is read
    with its app's token (``hint``: the app of the hook that announced it).
    """
    mapping = load_mapping(settings.config_dir)
    apps_by_id = {app_id: name for name, (app_id, _t) in settings.podio_apps.items() if app_id}
    try:
        item = client.get_item(item_id, hint=hint)
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
    with db.session() as session:
        staff = _staff_ids(session)
    stream = PodioStream(client, name, int(item["app"]["app_id"]), mapping.apps[name],
                         staff=staff, settings=settings)
    report = SyncReport(SOURCE, name)
    write_page(db, stream, stream.records({"items": [item]}), report,
               correlation_id=correlation_id, move_cursor=False)
    with db.session() as session:
        resolve_references(session, [mapping.apps[name]], [str(item_id)])
    return single_outcome(report)


def _user_ids(db: Database) -> dict[int, int]:
    """Podio user id -> staff id (a task's responsible is a user)."""
    with db.session() as session:
        return {s.podio_user_id: s.id for s in session.scalars(select(Staff))
                if s.podio_user_id is not None}


def _staff_ids(session: Session) -> dict[int, int]:
    return {s.podio_profile_id: s.id for s in session.scalars(select(Staff))
            if s.podio_profile_id is not None}
