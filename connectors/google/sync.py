"""Google syncs: form responses -> survey_responses, the usage sheet -> usage_metrics.

Forms cursor: the greatest ``lastSubmittedTime`` stored (microsecond precision, UTC). Each
cycle asks ``timestamp > cursor - GOOGLE_FORMS_OVERLAP_SECONDS`` (which timestamp Google
compares is undocumented, reference §4.2, hence the overlap); responses are merged on their
responseId, so re-read ones count as unchanged. Rows commit page by page; the cursor moves
once every page is committed (the API does not promise an order within the listing).

Usage sheet: one values.get of the whole tab per cycle; upsert reports unchanged rows, so
only what changed is written; rows no longer in the sheet are marked deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.base import ProgressFn, noop_progress
from connectors.google.client import GoogleClient
from connectors.google.mapping import (
    MappingError,
    format_timestamp,
    header_index,
    parse_response,
    parse_timestamp,
    survey_row,
    usage_row,
)
from connectors.google.streams import (
    FORMS_SOURCE,
    SHEETS_SOURCE,
    USAGE_STREAM,
    FormStream,
    PageTokenPaginator,
    UsageMap,
    load_config,
)
from core.errors import ConfigError, ConnectorError
from core.settings import Settings
from store.db import Database, utcnow
from store.models import Client, Contact, School, SurveyResponse, Ticket, UsageMetric
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

SURVEY_ENTITY, USAGE_ENTITY = "survey_response", "usage_metric"
PODIO = "podio"  # tickets and clients are Podio items: their source ids are Podio item ids
# Usage-sheet rows mapped and prefetched together: one query per chunk instead of one per row,
# with a chunk's stored rows in memory at a time (the sheet itself arrives in one call).
USAGE_CHUNK = 500


def sync_forms(settings: Settings, db: Database, *, full: bool = False,
               progress: ProgressFn | None = None, client: GoogleClient | None = None
               ) -> list[SyncReport]:
    """Sync every form of config/google.yaml into survey_responses (one report per form)."""
    config = load_config(settings.config_dir)
    own = client is None
    google = client or GoogleClient(settings)
    reports = []
    try:
        for name, mapping in config.forms.items():
            form_id = str(getattr(settings, mapping.form_id_setting) or "")
            if not form_id:
                reports.append(SyncReport(FORMS_SOURCE, name, error=(
                    f"{mapping.form_id_setting.upper()} is not set; form skipped")))
                continue
            reports.append(_run_form(google, db, FormStream(name, form_id, mapping), settings,
                                     full, progress or noop_progress))
    finally:
        if own:
            google.close()
    return reports


def sync_sheets(settings: Settings, db: Database, *, full: bool = False,
                progress: ProgressFn | None = None, client: GoogleClient | None = None
                ) -> list[SyncReport]:
    """Sync the usage sheet into usage_metrics (one report)."""
    config = load_config(settings.config_dir)
    mapping = config.usage_sheet
    spreadsheet_id = str(getattr(settings, mapping.spreadsheet_id_setting) or "")
    if not spreadsheet_id:
        return [SyncReport(SHEETS_SOURCE, USAGE_STREAM, error=(
            f"{mapping.spreadsheet_id_setting.upper()} is not set; usage sheet skipped"))]
    own = client is None
    google = client or GoogleClient(settings)
    report = SyncReport(SHEETS_SOURCE, USAGE_STREAM)
    bound = log.bind(source=SHEETS_SOURCE, stream=USAGE_STREAM)
    _started(db, SHEETS_SOURCE, USAGE_STREAM)
    calls = google.calls
    try:
        quoted = "'" + mapping.tab.replace("'", "''") + "'"
        body = google.sheets().http_client.values_get(
            spreadsheet_id, quoted, params={"valueRenderOption": "UNFORMATTED_VALUE",
                                            "dateTimeRenderOption": "SERIAL_NUMBER"})
        rows: list[list[Any]] = body.get("values") or []
        (progress or noop_progress)(USAGE_STREAM, max(0, len(rows) - 1), max(0, len(rows) - 1))
        _store_usage(db, rows, mapping, report)
        status, error = "ok", None
    except (ConnectorError, ConfigError) as exc:
        status, error = "failed", str(exc)
        report.error = error
        bound.error("sync.stream.failed", error=error)
    finally:
        report.api_calls = google.calls - calls
        if own:
            google.close()
    _finished(db, SHEETS_SOURCE, USAGE_STREAM, report, status, error)
    bound.info("sync.stream.done", **report.counts.__dict__, api_calls=report.api_calls)
    return [report]


# --- forms ---------------------------------------------------------------------------------


def _run_form(google: GoogleClient, db: Database, stream: FormStream, settings: Settings,
              full: bool, progress: ProgressFn) -> SyncReport:
    report = SyncReport(FORMS_SOURCE, stream.name)
    bound = log.bind(source=FORMS_SOURCE, stream=stream.name)
    cursor = _started(db, FORMS_SOURCE, stream.name)
    query = ""
    if cursor and not full:
        overlap = timedelta(seconds=settings.google_forms_overlap_seconds)
        query = f"timestamp > {format_timestamp(parse_timestamp(cursor) - overlap)}"
    calls = google.calls
    newest = parse_timestamp(cursor) if cursor else None

    def fetch(token: str | None) -> dict[str, Any]:
        forms = google.service("forms").forms().responses()
        args: dict[str, Any] = {"formId": stream.form_id,
                                "pageSize": settings.google_forms_page_size}
        if query:
            args["filter"] = query
        if token:
            args["pageToken"] = token
        page: dict[str, Any] = google.execute(
            forms.list(**args), use="forms", bucket="forms_expensive",
            what=f"Forms responses.list {stream.name}")
        return page

    try:
        for page in PageTokenPaginator().pages(fetch):
            responses = page.get("responses") or []
            with db.session() as session:
                page_newest = _store_responses(session, stream, responses, report)
            if page_newest and (newest is None or page_newest > newest):
                newest = page_newest
            progress(stream.name, len(responses), None)
        status, error = "ok", None
    except (ConnectorError, ConfigError) as exc:
        status, error = "failed", str(exc)
        report.error = error
        bound.error("sync.stream.failed", error=error)
    report.api_calls = google.calls - calls
    _finished(db, FORMS_SOURCE, stream.name, report, status, error,
              cursor=format_timestamp(newest) if newest and status == "ok" else None)
    bound.info("sync.stream.done", **report.counts.__dict__, api_calls=report.api_calls)
    return report


def _store_responses(session: Session, stream: FormStream, responses: list[dict[str, Any]],
                     report: SyncReport) -> datetime | None:
    """Upsert one page of responses; returns the newest submission time among them."""
    parsed, newest = [], None
    for response in responses:
        rid = str(response.get("responseId", "?"))
        try:
            item = parse_response(response, stream.mapping)
        except MappingError as exc:
            dead_letter(session, FORMS_SOURCE, stream.name, rid, str(exc), response)
            report.counts.dead_lettered += 1
            log.warning("sync.dead_letter", stream=stream.name, response_id=rid, reason=str(exc))
            continue
        parsed.append((item, response))
        newest = item.submitted_at if newest is None or item.submitted_at > newest else newest
    tickets = _tickets(session, {p.ticket_source_id for p, _ in parsed if p.ticket_source_id})
    contacts = _contacts(session, {p.email for p, _ in parsed if p.email})
    clients = _clients_by_name(session) if any(p.client_name for p, _ in parsed) else {}
    prefetch(session, SurveyResponse, FORMS_SOURCE, (p.response_id for p, _ in parsed))
    for item, response in parsed:
        ticket_id, ticket_client = tickets.get(item.ticket_source_id or "", (None, None))
        contact_id, contact_client = contacts.get(item.email or "", (None, None))
        client_id = ticket_client or contact_client or clients.get(
            (item.client_name or "").strip().casefold())
        row = survey_row(item, response, kind=stream.mapping.kind, form_id=stream.form_id,
                         ticket_id=ticket_id, contact_id=contact_id, client_id=client_id)
        outcome = upsert(session, SurveyResponse, row, entity=SURVEY_ENTITY)
        setattr(report.counts, outcome, getattr(report.counts, outcome) + 1)
        resolve_dead_letter(session, FORMS_SOURCE, stream.name, item.response_id)
    return newest


def _tickets(session: Session, ids: set[str]) -> dict[str, tuple[int, int | None]]:
    if not ids:
        return {}
    rows = session.execute(select(Ticket.source_id, Ticket.id, Ticket.client_id).where(
        Ticket.source == PODIO, Ticket.source_id.in_(ids)))
    return {source_id: (tid, client_id) for source_id, tid, client_id in rows}


def _contacts(session: Session, emails: set[str]) -> dict[str, tuple[int, int | None]]:
    if not emails:
        return {}
    rows = session.execute(
        select(func.lower(Contact.email), Contact.id, School.client_id)
        .outerjoin(School, School.id == Contact.school_id)
        .where(func.lower(Contact.email).in_(emails), Contact.deleted_at.is_(None))
        .order_by(Contact.id))
    return {email: (cid, client_id) for email, cid, client_id in rows}


def _clients_by_name(session: Session) -> dict[str, int]:
    rows = session.execute(select(Client.name, Client.id).where(Client.deleted_at.is_(None)))
    return {name.strip().casefold(): cid for name, cid in rows if name}


# --- usage sheet ---------------------------------------------------------------------------


def _store_usage(db: Database, rows: list[list[Any]], mapping: UsageMap,
                 report: SyncReport) -> None:
    if not rows:
        raise ConfigError(f"the usage tab {mapping.tab!r} is empty (no header row)")
    try:
        index = header_index(rows[0], mapping)
    except MappingError as exc:
        raise ConfigError(str(exc)) from exc
    with db.session() as session:
        clients = dict(session.execute(select(Client.source_id, Client.id).where(
            Client.source == PODIO)).all())
        seen: set[str] = set()
        numbered = list(enumerate(rows[1:], start=2))
        for start in range(0, len(numbered), USAGE_CHUNK):
            chunk = _usage_rows(session, numbered[start:start + USAGE_CHUNK], index, seen,
                                report)
            prefetch(session, UsageMetric, SHEETS_SOURCE, (row["source_id"] for _n, row in chunk))
            for number, row in chunk:
                row["client_id"] = clients.get(row["client_key"])
                outcome = upsert(session, UsageMetric, row, entity=USAGE_ENTITY)
                setattr(report.counts, outcome, getattr(report.counts, outcome) + 1)
                resolve_dead_letter(session, SHEETS_SOURCE, USAGE_STREAM, f"row-{number}")
        known = set(session.scalars(select(UsageMetric.source_id).where(
            UsageMetric.source == SHEETS_SOURCE, UsageMetric.deleted_at.is_(None))))
        report.counts.deleted = mark_deleted(session, UsageMetric, SHEETS_SOURCE, known - seen,
                                             entity=USAGE_ENTITY)


def _usage_rows(session: Session, numbered: list[tuple[int, list[Any]]],
                index: dict[str, int], seen: set[str], report: SyncReport
                ) -> list[tuple[int, dict[str, Any]]]:
    """Map sheet rows (with their row numbers); dead-letter the unreadable ones, skip blank
    lines and repeats of a client and week already seen (the first one counts)."""
    out = []
    for number, values in numbered:
        if not any(v not in ("", None) for v in values):
            continue  # blank line
        try:
            row = usage_row(values, index)
        except MappingError as exc:
            dead_letter(session, SHEETS_SOURCE, USAGE_STREAM, f"row-{number}", str(exc),
                        {"row": values})
            report.counts.dead_lettered += 1
            continue
        if row["source_id"] not in seen:
            seen.add(row["source_id"])
            out.append((number, row))
    return out


# --- sync state ----------------------------------------------------------------------------


def _started(db: Database, source: str, stream: str) -> str | None:
    with db.session() as session:
        state = get_state(session, source, stream)
        state.last_started_at = utcnow()
        return state.cursor


def _finished(db: Database, source: str, stream: str, report: SyncReport, status: str,
              error: str | None, cursor: str | None = None) -> None:
    with db.session() as session:
        state = get_state(session, source, stream)
        if cursor is not None:
            state.cursor = cursor
        record_outcome(state, report, status, error)
