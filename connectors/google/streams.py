"""Google streams as declarations (read from config/google.yaml) run by ``connectors.runner``.

- One stream per configured form: primary key ``responseId``; cursor ``lastSubmittedTime``
  (RFC 3339, microseconds): each run asks ``timestamp > cursor - GOOGLE_FORMS_OVERLAP_SECONDS``
  (which timestamp Google compares is undocumented, reference §4.2, hence the overlap);
  pages with ``pageToken``; merge on (source 'forms', responseId), so re-read responses
  count as unchanged. The cursor moves once every page is committed (the API does not
  promise an order within the listing).
- The usage sheet: one full read of the tab per cycle (one API call); primary key
  client + week; only changed rows are written; rows gone from the sheet are marked deleted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.paging import PageTokenPaginator, SinglePage
from connectors.runner import Record, Stream, StreamRun
from core.errors import ConfigError
from core.settings import Settings
from core.yamlconf import load_yaml_model
from store.db import utcnow
from store.models import Client, Contact, School, SurveyResponse, SyncState, Ticket, UsageMetric

if TYPE_CHECKING:
    from connectors.google.client import GoogleClient
    from store.db import Database

FormField = Literal["score", "comment", "ticket", "email", "client"]
UsageField = Literal["client", "week_start", "active_users", "logins", "key_features"]
REQUIRED_USAGE_FIELDS = ("client", "week_start")
FORMS_SOURCE, SHEETS_SOURCE = "forms", "sheets"
USAGE_STREAM = "usage"
MAX_PAGES = 1000  # 1,000 pages x 5,000 responses: far beyond any form saeko-sync reads
PODIO = "podio"  # tickets and clients are Podio items: their source ids are Podio item ids


def _setting_name(value: str) -> str:
    name = value.strip().lower()
    if name not in Settings.model_fields:
        raise ValueError(f"{value!r} is not a setting; use e.g. GOOGLE_CSAT_FORM_ID")
    return name


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min: int
    max: int


class FormMap(BaseModel):
    """How one form's answers map to survey responses."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["csat", "nps", "micro"]
    form_id_setting: str
    scale: Scale
    questions: dict[str, FormField]

    _setting = field_validator("form_id_setting")(_setting_name)

    @model_validator(mode="after")
    def _one_score(self) -> FormMap:
        fields = list(self.questions.values())
        for name in set(fields):
            if fields.count(name) > 1:
                raise ValueError(f"two questions map to {name!r}")
        if "score" not in fields:
            raise ValueError("no question maps to 'score'")
        return self

    def question_of(self, field: str) -> str | None:
        return next((qid for qid, name in self.questions.items() if name == field), None)


class UsageMap(BaseModel):
    """How the usage sheet's columns map to usage metrics."""

    model_config = ConfigDict(extra="forbid")
    spreadsheet_id_setting: str
    tab: str
    columns: dict[str, UsageField]

    _setting = field_validator("spreadsheet_id_setting")(_setting_name)

    @model_validator(mode="after")
    def _required(self) -> UsageMap:
        missing = [f for f in REQUIRED_USAGE_FIELDS if f not in self.columns.values()]
        if missing:
            raise ValueError(f"no column maps to {', '.join(missing)}")
        return self


class GoogleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    forms: dict[str, FormMap]
    usage_sheet: UsageMap


def load_config(config_dir: Path) -> GoogleConfig:
    """config/google.yaml, validated (ConfigError with file:line otherwise)."""
    return load_yaml_model(config_dir / "google.yaml", GoogleConfig)


class FormStream(Stream):
    """One form synced into survey_responses (see the module docstring)."""

    source = FORMS_SOURCE
    model = SurveyResponse
    entity = "survey_response"
    primary_key = "responseId"
    cursor_field = "lastSubmittedTime"
    cursor_moves = "run"

    def __init__(self, client: GoogleClient, name: str, form_id: str, mapping: FormMap,
                 settings: Settings) -> None:
        self.client = client
        self.name = name
        self.form_id = form_id
        self.mapping = mapping
        self.settings = settings
        self._filter = ""  # this run's responses.list filter, set with its paginator
        self._reread = False  # this run reads every response (FULL_READ, see ``start``)
        self._reread_done = False

    def api_calls(self) -> int:
        return self.client.calls

    def parse_cursor(self, text: str) -> datetime:
        from connectors.google.mapping import parse_timestamp  # mapping imports this module

        return parse_timestamp(text)

    def format_cursor(self, value: datetime) -> str:
        from connectors.google.mapping import format_timestamp

        return format_timestamp(value)

    def start(self, db: Database, run: StreamRun) -> None:
        """Every GOOGLE_FORMS_FULL_READ_HOURS the run reads every response, unfiltered.

        Which time ``timestamp >`` compares is undocumented (reference §4.2): if it is the
        first submission (``createTime``), an answer edited later than the overlap never
        passes the filter again; a periodic unfiltered read brings such edits in within
        that period whichever way Google compares (docs/fidelidad.md).
        """
        from store.sync import get_state

        with db.session() as session:
            last = (get_state(session, self.source, self.name).state or {}).get(
                "last_full_read")
        hours = self.settings.google_forms_full_read_hours
        self._reread = bool(run.cursor) and (
            last is None or datetime.fromisoformat(last) + timedelta(hours=hours) <= utcnow())
        self._reread_done = False

    def finish(self, db: Database, run: StreamRun) -> None:
        self._reread_done = self._reread or not run.cursor

    def end(self, session: Session, state: SyncState) -> None:
        if self._reread_done:
            state.state = {**(state.state or {}), "last_full_read": utcnow().isoformat()}

    def paginator(self, run: StreamRun) -> PageTokenPaginator:
        self._filter = ""
        if run.cursor and not self._reread:
            overlap = timedelta(seconds=self.settings.google_forms_overlap_seconds)
            since = self.parse_cursor(run.cursor) - overlap
            self._filter = f"timestamp > {self.format_cursor(since)}"
        return PageTokenPaginator(max_pages=MAX_PAGES)

    def fetch(self, token: str | None) -> dict[str, Any]:
        responses = self.client.service("forms").forms().responses()
        args: dict[str, Any] = {"formId": self.form_id,
                                "pageSize": self.settings.google_forms_page_size}
        if self._filter:
            args["filter"] = self._filter
        if token:
            args["pageToken"] = token
        page: dict[str, Any] = self.client.execute(
            responses.list(**args), use="forms", bucket="forms_expensive",
            what=f"Forms responses.list {self.name}")
        return page

    def records(self, page: dict[str, Any]) -> list[Record]:
        """The page's responses, parsed; their rows are built in ``link``."""
        from connectors.google.mapping import MappingError, parse_response

        records = []
        for response in page.get("responses") or []:
            record = Record(key=str(response.get("responseId", "?")), raw=response)
            try:
                record.detail = parse_response(response, self.mapping)
            except MappingError as exc:
                record.problem = str(exc)
            records.append(record)
        return records

    def link(self, session: Session, records: list[Record]) -> None:
        """Resolve each response's ticket, contact and client, and build its row."""
        from connectors.google.mapping import survey_row

        parsed = [r for r in records if r.detail is not None]
        items = [r.detail for r in parsed]
        tickets = _tickets(session, {p.ticket_source_id for p in items if p.ticket_source_id})
        contacts = _contacts(session, {p.email for p in items if p.email})
        clients = _clients_by_name(session) if any(p.client_name for p in items) else {}
        for record in parsed:
            item = record.detail
            ticket_id, ticket_client = tickets.get(item.ticket_source_id or "", (None, None))
            contact_id, contact_client = contacts.get(item.email or "", (None, None))
            if ticket_id is None and self.mapping.kind == "csat" and item.email:
                ticket_id, ticket_client = _last_closed_ticket(session, item.email,
                                                               item.submitted_at)
            client_id = ticket_client or contact_client or clients.get(
                (item.client_name or "").strip().casefold())
            record.row = survey_row(item, record.raw, kind=self.mapping.kind,
                                    form_id=self.form_id, ticket_id=ticket_id,
                                    contact_id=contact_id, client_id=client_id)


class UsageStream(Stream):
    """The usage sheet's tab synced into usage_metrics (see the module docstring)."""

    source = SHEETS_SOURCE
    name = USAGE_STREAM
    model = UsageMetric
    entity = "usage_metric"
    primary_key = "client + week_start"
    cursor_field = None
    write_mode = "replace"

    def __init__(self, client: GoogleClient, spreadsheet_id: str, mapping: UsageMap) -> None:
        self.client = client
        self.spreadsheet_id = spreadsheet_id
        self.mapping = mapping

    def api_calls(self) -> int:
        return self.client.calls

    def paginator(self, run: StreamRun) -> SinglePage:
        return SinglePage(tool="Google")

    def fetch(self, token: str | None) -> dict[str, Any]:
        quoted = "'" + self.mapping.tab.replace("'", "''") + "'"
        body: dict[str, Any] = self.client.sheets().http_client.values_get(
            self.spreadsheet_id, quoted, params={"valueRenderOption": "UNFORMATTED_VALUE",
                                                 "dateTimeRenderOption": "SERIAL_NUMBER"})
        return body

    def records(self, page: dict[str, Any]) -> list[Record]:
        """The sheet's rows (keyed by row number); blank lines and repeats of a client and
        week already seen (the first one counts) are skipped."""
        from connectors.google.mapping import MappingError, header_index, usage_row

        rows: list[list[Any]] = page.get("values") or []
        if not rows:
            raise ConfigError(f"la pestaña de uso {self.mapping.tab!r} está vacía (sin fila de encabezados)")
        try:
            index = header_index(rows[0], self.mapping)
        except MappingError as exc:
            raise ConfigError(str(exc)) from exc
        records, seen = [], set()
        for number, values in enumerate(rows[1:], start=2):
            if not any(v not in ("", None) for v in values):
                continue
            record = Record(key=f"row-{number}", raw={"row": values})
            try:
                record.row = usage_row(values, index)
            except MappingError as exc:
                record.problem = str(exc)
            if record.row is None or record.row["source_id"] not in seen:
                seen.add(record.row["source_id"] if record.row else record.key)
                records.append(record)
        return records

    def progress_of(self, page: dict[str, Any], records: list[Record]) -> tuple[int, int | None]:
        rows = max(0, len(page.get("values") or []) - 1)
        return rows, rows

    def link(self, session: Session, records: list[Record]) -> None:
        clients = dict(session.execute(select(Client.source_id, Client.id).where(
            Client.source == PODIO)).all())
        for record in records:
            if record.row is not None:
                record.row["client_id"] = clients.get(record.row["client_key"])


def _tickets(session: Session, ids: set[str]) -> dict[str, tuple[int, int | None]]:
    if not ids:
        return {}
    rows = session.execute(select(Ticket.source_id, Ticket.id, Ticket.client_id).where(
        Ticket.source == PODIO, Ticket.source_id.in_(ids)))
    return {source_id: (tid, client_id) for source_id, tid, client_id in rows}


def _last_closed_ticket(session: Session, email: str, before: datetime
                        ) -> tuple[int | None, int | None]:
    """A CSAT answer without its ticket number (a prefilled link whose ``entry.N`` the
    form did not take: the format is unverified, docs/fidelidad.md): the ticket reported
    with that email closed last before the answer, if any."""
    row = session.execute(
        select(Ticket.id, Ticket.client_id)
        .outerjoin(Contact, Contact.id == Ticket.contact_id)
        .where(Ticket.deleted_at.is_(None), Ticket.closed_at.is_not(None),
               Ticket.closed_at <= before,
               (func.lower(Ticket.reporter_email) == email) | (func.lower(Contact.email) == email))
        .order_by(Ticket.closed_at.desc(), Ticket.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else (None, None)


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
