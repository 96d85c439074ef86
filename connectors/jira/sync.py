"""The Jira stream runner: issues of the configured projects -> ``incidents`` with their
status history, incrementally by JQL on ``updated`` (see streams.py for the cursor math).

Per page, in one transaction: upsert the incidents, add their new status changes, link the
Podio tickets, move the cursor. A failure mid-sync keeps every committed page; the next
sync resumes from the cursor. A full sync also marks issues that vanished (deleted or no
longer visible: JQL cannot see deletions, reference §4) as deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import ProgressFn, noop_progress
from connectors.jira.client import JiraClient
from connectors.jira.mapping import (
    SOURCE,
    MappingError,
    format_cursor,
    issue_row,
    status_categories,
    status_changes,
    ticket_from_links,
)
from connectors.jira.streams import IssuesStream, iter_pages, window_start
from core.errors import ConnectorError
from core.settings import Settings
from store.db import Database, utcnow
from store.models import ChangeEvent, Incident, IncidentStatusChange, Ticket
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

ENTITY = "incident"
TICKET_SOURCE = "podio"  # tickets are Podio items: Ticket.source_id is the Podio item id
CHANGELOG_PAGE = 100  # GET /issue/{key}/changelog page size (reference §2.5)
MAX_CHANGELOG_PAGES = 100  # 10,000 histories per issue at most


def sync_jira(settings: Settings, db: Database, *, full: bool = False,
              progress: ProgressFn | None = None, client: JiraClient | None = None
              ) -> list[SyncReport]:
    """Sync the issues of JIRA_PROJECTS into the model. Raises ConfigError / AuthError when
    Jira cannot be used at all; other failures are reported on the stream's SyncReport."""
    own_client = client is None
    client = client or JiraClient(settings)
    # A client built here counts its start-up call; a long-lived one (the service) does not.
    calls_before = 0 if own_client else client.calls
    try:
        stream = IssuesStream(tuple(settings.jira_project_keys), settings.jira_ticket_field)
        return [_run(client, db, stream, settings, full, progress or noop_progress,
                     calls_before)]
    finally:
        if own_client:
            client.close()


class _Context:
    """What one sync run keeps between pages: the JQL zone and status categories."""

    def __init__(self, client: JiraClient, meta: dict[str, Any]) -> None:
        self.client = client
        self.meta = meta
        self.categories: dict[str, str] = dict(meta.get("status_categories") or {})

    def call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.client.call(action, fn, *args, **kwargs)

    def zone(self, settings: Settings, refresh: bool) -> str:
        if settings.jira_timezone:
            return settings.jira_timezone
        if refresh or not self.meta.get("time_zone"):
            me = self.call("read the API user's time zone", self.client.reader.myself)
            self.meta["time_zone"] = me.get("timeZone") or "UTC"
        return str(self.meta["time_zone"])

    def know_statuses(self, raws: list[dict[str, Any]]) -> None:
        """Learn categories from the page; ask GET /status once if a changelog names a
        status we have never seen (e.g. one added to a workflow since)."""
        for raw in raws:
            status = (raw.get("fields") or {}).get("status")
            if isinstance(status, dict):
                self.categories.update(status_categories([status]))
        wanted = {str(item.get("to")) for raw in raws for history in _histories(raw)
                  for item in history.get("items") or []
                  if item.get("fieldId", item.get("field")) == "status" and item.get("to")}
        if wanted - set(self.categories):
            statuses = self.call("list statuses", self.client.reader.statuses)
            self.categories.update(status_categories([s.raw for s in statuses]))
        self.meta["status_categories"] = self.categories


def _histories(raw: dict[str, Any]) -> list[dict[str, Any]]:
    return list((raw.get("changelog") or {}).get("histories") or [])


def _run(client: JiraClient, db: Database, stream: IssuesStream, settings: Settings,
         full: bool, progress: ProgressFn, calls_before: int) -> SyncReport:
    report = SyncReport(SOURCE, stream.name)
    bound = log.bind(source=SOURCE, stream=stream.name)
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        state.last_started_at = utcnow()
        cursor = None if full else state.cursor
        context = _Context(client, dict(state.state or {}))
    seen: set[str] = set()
    status, error = "ok", None
    try:
        since = None
        if cursor:
            since = window_start(datetime.fromisoformat(cursor),
                                 settings.jira_sync_overlap_minutes,
                                 context.zone(settings, refresh=False))
        jql = stream.jql(since)
        bound.info("sync.jira.search", jql=jql)

        for page in iter_pages(client.search, jql, fields=stream.fields,
                               page_size=settings.jira_page_size):
            raws = [issue.raw for issue in page]
            context.know_statuses(raws)
            _store_page(db, context, stream, raws, report)
            seen.update(str(raw.get("id")) for raw in raws)
            progress(f"{SOURCE}.{stream.name}", len(raws), None)
        if full:
            report.counts.deleted = _mark_vanished(db, stream, seen)
        if (full or not cursor) and not settings.jira_timezone:
            context.zone(settings, refresh=True)  # for the next, incremental, syncs
    except ConnectorError as exc:
        status, error = "failed", str(exc)
        report.error = error
        bound.error("sync.stream.failed", error=error)
    report.api_calls = client.calls - calls_before
    with db.session() as session:
        link_tickets(session)
        state = get_state(session, SOURCE, stream.name)
        state.state = {**(state.state or {}), **context.meta}
        record_outcome(state, report, status, error)
    bound.info("sync.stream.done", **report.counts.__dict__, api_calls=report.api_calls)
    return report


def _full_histories(context: _Context, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The whole changelog: the embedded one unless Jira truncated it (reference §2.3)."""
    embedded = raw.get("changelog") or {}
    histories = _histories(raw)
    if int(embedded.get("total") or 0) <= len(histories):
        return histories
    values: list[dict[str, Any]] = []
    reader = context.client.reader
    for page_no in range(MAX_CHANGELOG_PAGES):
        # The library has no changelog wrapper (reference §1.3); _get_json is its own
        # authenticated, retrying GET.
        body = context.call("read the changelog", reader._get_json,
                            f"issue/{raw['id']}/changelog",
                            params={"startAt": page_no * CHANGELOG_PAGE,
                                    "maxResults": CHANGELOG_PAGE})
        values.extend(body.get("values") or [])
        if body.get("isLast", True) or not body.get("values"):
            break
    return values


def _store_page(db: Database, context: _Context, stream: IssuesStream,
                raws: list[dict[str, Any]], report: SyncReport, *,
                move_cursor: bool = True, correlation_id: str | None = None) -> None:
    """Upsert one page, its status histories and ticket links; move the cursor with them."""
    prepared: list[tuple[str, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]],
                         str | None]] = []
    field_id = stream.ticket_field if stream.ticket_field.startswith("customfield_") else None
    for raw in raws:
        issue_id = str(raw.get("id", "?"))
        try:
            changes = status_changes(_full_histories(context, raw), context.categories)
            row = issue_row(raw, ticket_field=stream.ticket_field, ticket_field_id=field_id,
                            categories=context.categories, changes=changes)
            if row["ticket_source_id"] is None:
                links = context.call("read remote links", context.client.reader.remote_links,
                                     raw["id"])
                row["ticket_source_id"] = ticket_from_links([link.raw for link in links])
            prepared.append((issue_id, raw, row, changes, None))
        except MappingError as exc:
            prepared.append((issue_id, raw, None, [], str(exc)))
    with db.session() as session:
        state = get_state(session, SOURCE, stream.name)
        newest = datetime.fromisoformat(state.cursor) if state.cursor else None
        prefetch(session, Incident, SOURCE, (m["source_id"] for _i, _r, m, _c, _p in prepared
                                             if m))
        for issue_id, raw, mapped, _changes, problem in prepared:
            if mapped is None:
                dead_letter(session, SOURCE, stream.name, issue_id, problem or "unmappable", raw)
                report.counts.dead_lettered += 1
                log.warning("sync.dead_letter", source=SOURCE, issue_id=issue_id, reason=problem)
                continue
            outcome = upsert(session, Incident, mapped, entity=ENTITY,
                             correlation_id=correlation_id)
            setattr(report.counts, outcome, getattr(report.counts, outcome) + 1)
            resolve_dead_letter(session, SOURCE, stream.name, issue_id)
            edited = mapped["source_updated_at"]
            newest = edited if newest is None or edited > newest else newest
        _add_status_changes(session, {m["source_id"]: c for _i, _r, m, c, _p in prepared if m})
        link_tickets(session, [m["source_id"] for _i, _r, m, _c, _p in prepared if m])
        if newest is not None and move_cursor:
            state.cursor = format_cursor(newest)


def _add_status_changes(session: Session, by_issue: dict[str, list[dict[str, Any]]]) -> None:
    """Insert the status changes not stored yet (two queries per page)."""
    if not by_issue:
        return
    ids = {row.source_id: row.id for row in session.execute(
        select(Incident.source_id, Incident.id).where(
            Incident.source == SOURCE, Incident.source_id.in_(list(by_issue))))}
    known = {(row.incident_id, row.history_id) for row in session.execute(
        select(IncidentStatusChange.incident_id, IncidentStatusChange.history_id).where(
            IncidentStatusChange.incident_id.in_(list(ids.values()))))}
    for source_id, changes in by_issue.items():
        incident_id = ids.get(source_id)
        if incident_id is None:
            continue
        for change in changes:
            if (incident_id, change["history_id"]) in known or change["changed_at"] is None:
                continue
            known.add((incident_id, change["history_id"]))
            session.add(IncidentStatusChange(incident_id=incident_id, **change))


def link_tickets(session: Session, source_ids: list[str] | None = None) -> int:
    """Point incidents at their Podio tickets once those rows exist: by the Podio item id
    (custom field / remote link), else by the ticket's ``jira`` key. Returns links made."""
    query = select(Incident).where(Incident.source == SOURCE, Incident.deleted_at.is_(None))
    if source_ids is not None:
        query = query.where(Incident.source_id.in_(source_ids))
    else:
        query = query.where(Incident.ticket_id.is_(None))
    incidents = list(session.scalars(query))
    by_item = {row.source_id: row.id for row in session.execute(
        select(Ticket.source_id, Ticket.id).where(
            Ticket.source == TICKET_SOURCE,
            Ticket.source_id.in_([i.ticket_source_id for i in incidents if i.ticket_source_id])))}
    by_key = {row.jira_key.upper(): (row.id, row.source_id) for row in session.execute(
        select(Ticket.jira_key, Ticket.id, Ticket.source_id).where(
            Ticket.jira_key.in_([i.key for i in incidents if not i.ticket_source_id])))}
    linked = 0
    for incident in incidents:
        wanted = by_item.get(incident.ticket_source_id or "")
        changes: dict[str, list[Any]] = {}
        if wanted is None and not incident.ticket_source_id and incident.key.upper() in by_key:
            wanted, item_id = by_key[incident.key.upper()]
            changes["ticket_source_id"] = [None, item_id]
            incident.ticket_source_id = item_id
        if wanted is None or wanted == incident.ticket_id:
            continue
        changes["ticket_id"] = [incident.ticket_id, wanted]
        incident.ticket_id = wanted
        session.add(ChangeEvent(entity=ENTITY, entity_id=incident.id, kind="updated",
                                changes=changes, seen_at=utcnow()))
        linked += 1
    return linked


def _mark_vanished(db: Database, stream: IssuesStream, seen: set[str]) -> int:
    with db.session() as session:
        known = set(session.scalars(select(Incident.source_id).where(
            Incident.source == SOURCE, Incident.deleted_at.is_(None),
            Incident.project.in_(stream.projects))))
        return mark_deleted(session, Incident, SOURCE, known - seen, entity=ENTITY)


def sync_issue(settings: Settings, db: Database, payload: dict[str, Any], *,
               client: JiraClient | None = None) -> str:
    """Bring one issue up to date from a webhook delivery (the payload is only a hint:
    the issue is re-read by id). Returns 'created' / 'updated' / 'unchanged' / 'deleted' /
    'dead_lettered' / 'ignored'."""
    issue = payload.get("issue")
    issue_id = str(issue.get("id") or "") if isinstance(issue, dict) else ""
    if not (issue_id.isascii() and issue_id.isdigit()):
        return "ignored"
    if payload.get("webhookEvent") == "jira:issue_deleted":
        with db.session() as session:
            gone = mark_deleted(session, Incident, SOURCE, [issue_id], entity=ENTITY)
        return "deleted" if gone else "ignored"
    own_client = client is None
    client = client or JiraClient(settings)
    try:
        stream = IssuesStream(tuple(settings.jira_project_keys), settings.jira_ticket_field)
        with db.session() as session:
            context = _Context(client, dict(get_state(session, SOURCE, stream.name).state or {}))
        found = client.search(f"id = {issue_id}", maxResults=1, fields=stream.fields,
                              expand="changelog", reconcileIssues=[int(issue_id)])
        raws = [i.raw for i in found]
        if not raws or (raws[0].get("fields") or {}).get("project", {}).get(
                "key") not in stream.projects:
            return "ignored"
        context.know_statuses(raws)
        report = SyncReport(SOURCE, stream.name)
        delivery = payload.get("timestamp")
        _store_page(db, context, stream, raws, report, move_cursor=False,
                    correlation_id=f"jira:{issue_id}:{delivery}"[:64] if delivery else None)
        with db.session() as session:
            state = get_state(session, SOURCE, stream.name)
            state.state = {**(state.state or {}), **context.meta}
    finally:
        if own_client:
            client.close()
    counts = report.counts
    return next((k for k in ("created", "updated", "unchanged", "dead_lettered")
                 if getattr(counts, k)), "unchanged")
