"""Podio tasks into the model (``tasks``): the automations' and people's tasks on the items
of the configured apps, for the task KPIs (``store/kpis``: tasks closed on time, at-risk
alerts handled in time).

Podio lists tasks (``GET /task/``, reference §7) but not by change time, so one run reads,
app by app (each with its own token in app-token mode):

- every open task (``completed=false``), and
- the tasks completed since the stored cursor (``completed=true``, newest completion first,
  until a page reaches the cursor minus the overlap);

then a task the table holds as open that neither listing returned was completed before
the cursor or deleted: one ``GET /task/{id}`` says which (404: deleted). The cursor is the
newest creation or completion time read. Tasks on no item (the digests per AM) are not
listed by app; they are not in the model. ``PODIO_TASKS_SYNC_MINUTES`` spaces the runs
(the KPIs are published every 15 minutes; an hour keeps the cost at two calls per app).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from connectors.paging import Paginator
from connectors.podio.deletions import item_gone
from connectors.podio.streams import MAX_PAGES, SOURCE
from connectors.runner import Record, Stream, StreamRun
from core.errors import RemoteDataError
from store.db import utcnow
from store.entities import TABLES
from store.models import Client, Task
from store.sync import get_state, mark_deleted, upsert

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

    from connectors.podio.client import PodioClient
    from core.settings import Settings
    from store.db import Database

STREAM = "tareas"
PAGE = 100  # GET /task/'s page size cap (reference §7)
Token = tuple[int, str, int]  # (index of the app, "open" | "done", offset)


class TaskPaginator(Paginator[Token]):
    """App after app: the open tasks' pages, then the completed ones' until ``since``."""

    def __init__(self, apps: int, since: datetime | None) -> None:
        super().__init__((0, "open", 0), max_pages=MAX_PAGES, tool="Podio")
        self.apps = apps
        self.since = since

    def next_token(self, page: Any) -> Token | None:
        app, phase, offset = self.token or (0, "open", 0)
        tasks = page or []
        more = len(tasks) >= PAGE
        if phase == "done" and more and self.since is not None:
            oldest = min((_time(t.get("completed_on")) or datetime.max) for t in tasks)
            more = oldest >= self.since
        if more:
            return app, phase, offset + PAGE
        if phase == "open":
            return app, "done", 0
        return (app + 1, "open", 0) if app + 1 < self.apps else None


class PodioTaskStream(Stream):
    """The tasks of the configured apps (see the module docstring)."""

    source = SOURCE
    name = STREAM
    model = Task
    entity = None
    primary_key = "task_id"
    cursor_field = "completed_on"
    cursor_moves = "run"

    def __init__(self, client: PodioClient, app_ids: list[int], *, staff: Mapping[int, int],
                 settings: Settings) -> None:
        self.client = client
        self.app_ids = app_ids
        self.staff = staff  # Podio user id -> staff.id
        self.settings = settings
        self._token: Token = (0, "open", 0)

    def api_calls(self) -> int:
        return self.client.calls

    def paginator(self, run: StreamRun) -> TaskPaginator:
        since = None
        if run.cursor:
            since = self.parse_cursor(run.cursor) - timedelta(
                seconds=self.settings.podio_sync_overlap_seconds)
        return TaskPaginator(len(self.app_ids), since)

    def fetch(self, token: Token | None) -> Any:
        app, phase, offset = token or (0, "open", 0)
        params: dict[str, Any] = {"app": self.app_ids[app], "limit": PAGE, "offset": offset,
                                  "completed": "false" if phase == "open" else "true"}
        if phase == "done":
            params |= {"sort_by": "completed_on", "sort_desc": "true"}
        return self.client.request("GET", "/task/", params=params,
                                   app_id=self.app_ids[app]) or []

    def records(self, page: Any) -> list[Record]:
        records = []
        for task in page or []:
            record = Record(key=str(task.get("task_id", "?")), raw=task)
            try:
                record.row = task_row(task, self.staff)
            except (KeyError, TypeError, ValueError) as exc:
                record.problem = f"tarea de Podio ilegible: {exc!r}"
            records.append(record)
        return records

    def link(self, session: Session, records: list[Record]) -> None:
        link_clients(session, [r.row for r in records if r.row is not None])

    def finish(self, db: Database, run: StreamRun) -> None:
        """Open tasks that no listing returned: completed before the cursor, or deleted."""
        with db.session() as session:
            missing = [(t.source_id, _app_of(t.raw)) for t in session.scalars(select(Task).where(
                Task.source == SOURCE, Task.deleted_at.is_(None), Task.status == "active"))
                if t.source_id not in run.seen]
        for task_id, app_id in missing:
            try:
                task = self.client.request("GET", f"/task/{task_id}", app_id=app_id)
            except RemoteDataError as exc:
                if not item_gone(exc):  # the same answers as a gone item
                    raise
                with db.session() as session:
                    run.report.counts.deleted += mark_deleted(session, Task, SOURCE, [task_id])
                continue
            with db.session() as session:
                row = task_row(task, self.staff)
                link_clients(session, [row])
                outcome = upsert(session, Task, row)
                setattr(run.report.counts, outcome, getattr(run.report.counts, outcome) + 1)


def task_row(task: Mapping[str, Any], staff: Mapping[int, int]) -> dict[str, Any]:
    """A Podio task object (reference §7) as a ``tasks`` row (``client_id`` by ``link``)."""
    created, completed = _time(task.get("created_on")), _time(task.get("completed_on"))
    responsible = task.get("responsible") or {}
    user = responsible.get("user_id") if isinstance(responsible, dict) else None
    due = task.get("due_date")
    return {
        "source": SOURCE, "source_id": str(task["task_id"]),
        "source_updated_at": max(t for t in (created, completed, datetime.min) if t),
        "raw": dict(task), "text": str(task.get("text") or "")[:500],
        "status": task.get("status"),
        "due_on": date.fromisoformat(str(due)[:10]) if due else None,
        "responsible_id": staff.get(int(user)) if user is not None else None,
        "ref_type": task.get("ref_type"),
        "ref_id": str(task["ref_id"]) if task.get("ref_id") is not None else None,
        "external_id": task.get("external_id"), "created_at": created,
        "completed_at": completed,
    }


def link_clients(session: Session, rows: list[dict[str, Any]]) -> None:
    """The client of each task's item: the client itself, or the client of the ticket,
    contract, invoice… the task is on (any model table with a ``client_id``)."""
    refs = {r["ref_id"] for r in rows if r.get("ref_type") == "item" and r.get("ref_id")}
    found: dict[str, int | None] = {}
    table: Any
    for table in dict.fromkeys(TABLES.values()):
        if not refs - found.keys():
            break
        column = table.id if table is Client else getattr(table, "client_id", None)
        if column is None:
            continue
        found |= {ref: client for ref, client in session.execute(
            select(table.source_id, column).where(table.source == SOURCE,
                                                  table.source_id.in_(refs - found.keys())))}
    for row in rows:
        row["client_id"] = found.get(row.get("ref_id") or "")


def due(db: Database, settings: Settings, *, full: bool) -> bool:
    """Whether the task stream should run now (a full sync always runs it)."""
    if full:
        return True
    with db.session() as session:
        state = get_state(session, SOURCE, STREAM)
        last = state.last_finished_at if state.last_status == "ok" else None
    return last is None or utcnow() - last >= timedelta(
        minutes=settings.podio_tasks_sync_minutes)


def _app_of(raw: Any) -> int | None:
    """The app of a task's item, as the listing gave it (``ref.data.app``): whose token
    reads the task again in app-token mode, with no call to find it out."""
    app = (((raw or {}).get("ref") or {}).get("data") or {}).get("app") or {}
    return int(app["app_id"]) if app.get("app_id") else None


def _time(value: Any) -> datetime | None:
    from connectors.podio.mapping import parse_podio_time

    return parse_podio_time(str(value)) if value else None
