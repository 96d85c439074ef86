"""Write-back primitives: a table to a sheet tab, an email through Gmail, a Calendar event.

The creating ones carry a ``marker`` (the action ledger's idempotency key) that can be found
again after a lost response or a crash. Each primitive creates or finds, nothing more;
creating once is the ledger's job. An email carries a reference word derived from the marker
in its body, which Gmail's search finds (``find_email_by_marker``): Gmail may replace a
client-supplied Message-ID, so that header (also derived from the marker, with an
``X-Saeko-Marker`` header) is not what the look-up trusts. A Calendar event's id is derived
from the marker (a retried insert answers 409) and kept in a private extended property.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from connectors.google.client import GoogleClient
from core.errors import ConnectorError, RemoteDataError

log = structlog.get_logger(__name__)

MARKER_HEADER = "X-Saeko-Marker"
MARKER_PROPERTY = "saekoMarker"  # Calendar private extended property
PROPERTY_VALUE_MAX = 1024  # Calendar's limit on an extended property value
# Strings that USER_ENTERED would turn into numbers, dates, booleans or formulas.
_PARSEABLE = re.compile(r"^\s*([=+'@]|[-+]?[\d.,]+%?\s*$|\d{1,4}[-/]\d{1,2}[-/]\d{1,4}|"
                        r"(true|false)\s*$)", re.IGNORECASE)


# --- Sheets --------------------------------------------------------------------------------


def cell_value(value: Any, zone: ZoneInfo | None = None) -> Any:
    """A Python value -> what to send with USER_ENTERED so Looker Studio reads it typed:
    numbers as JSON numbers, dates as ISO text Sheets turns into dates, booleans as booleans,
    and text that Sheets would parse kept as text (leading apostrophe)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int | float):
        return value if value == value and abs(value) != float("inf") else ""
    if isinstance(value, datetime):
        if value.tzinfo is not None and zone is not None:
            value = value.astimezone(zone)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return "'" + value if _PARSEABLE.match(value) else value


def write_table(client: GoogleClient, spreadsheet_id: str, tab: str, header: Sequence[str],
                rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Replace a tab's content with a table: header + rows, in one values call.

    Creates the tab if missing, resizes its grid to the table (so nothing stale remains and
    the header row stays frozen), then writes every cell with one ``values.update``: 1 read
    + at most 1 structural write + 1 values write, whatever the size. The tab is never
    deleted and recreated (Looker Studio data sources are bound to it).
    """
    (result,) = write_tables(client, spreadsheet_id, [(tab, header, rows)])
    return result


def write_tables(client: GoogleClient, spreadsheet_id: str,
                 tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]
                 ) -> list[dict[str, Any]]:
    """Replace several tabs' content, each with its table (tab, header, rows).

    One metadata read for all; at most ONE ``batchUpdate`` for all the structure (tabs
    created when missing, grids resized to their tables with the header row frozen — none
    when every grid already fits); then exactly one ``values.update`` per tab. Writing the
    same tables again costs 1 read + 1 write per tab and changes no cell.
    """
    for tab, header, _rows in tables:
        if not header:
            raise ValueError(f"write_table needs a header row (tab {tab!r})")
    zone = ZoneInfo(client.settings.timezone)
    http = client.sheets(write=True).http_client
    meta = http.fetch_sheet_metadata(spreadsheet_id)
    existing = {s["properties"]["title"]: s["properties"] for s in meta.get("sheets", [])}
    requests: list[dict[str, Any]] = []
    outcome: list[dict[str, Any]] = []
    for tab, header, rows in tables:
        width, height = len(header), len(rows) + 1
        grid = {"rowCount": height, "columnCount": width,
                "frozenRowCount": 1 if height > 1 else 0}
        props = existing.get(tab)
        created = resized = False
        if props is None:
            requests.append({"addSheet": {"properties": {"title": tab, "gridProperties": grid}}})
            created = True
        elif (props["gridProperties"].get("rowCount"), props["gridProperties"].get("columnCount"),
              props["gridProperties"].get("frozenRowCount", 0)) != tuple(grid.values()):
            requests.append({"updateSheetProperties": {
                "properties": {"sheetId": props["sheetId"], "gridProperties": grid},
                "fields": "gridProperties.rowCount,gridProperties.columnCount,"
                          "gridProperties.frozenRowCount"}})
            resized = True
        outcome.append({"spreadsheet_id": spreadsheet_id, "tab": tab, "rows": len(rows),
                        "columns": width, "created": created, "resized": resized,
                        "sheet_id": None if props is None else props.get("sheetId")})
    if requests:
        answer = http.batch_update(spreadsheet_id, {"requests": requests})
        added = {r["addSheet"]["properties"]["title"]: r["addSheet"]["properties"]["sheetId"]
                 for r in answer.get("replies") or [] if "addSheet" in (r or {})}
        for result in outcome:
            if result["sheet_id"] is None:
                result["sheet_id"] = added.get(result["tab"])
    for (tab, header, rows), result in zip(tables, outcome, strict=True):
        width = len(header)
        values = [[cell_value(h) for h in header]]
        for row in rows:
            if len(row) > width:
                raise ValueError(f"a row has {len(row)} values but the header has {width}")
            values.append([cell_value(v, zone) for v in row] + [""] * (width - len(row)))
        quoted = "'" + tab.replace("'", "''") + "'"
        answer = http.values_update(spreadsheet_id, f"{quoted}!A1",
                                    params={"valueInputOption": "USER_ENTERED"},
                                    body={"values": values, "majorDimension": "ROWS"})
        result["updated_range"] = answer.get("updatedRange")
        log.info("google.sheets.table_written", tab=tab, rows=len(rows), columns=width,
                 created=result["created"], resized=result["resized"])
    return outcome


# --- Gmail ---------------------------------------------------------------------------------


def marker_message_id(marker: str, sender: str) -> str:
    """The Message-ID an email with this marker carries (searchable with rfc822msgid:)."""
    domain = sender.rsplit("@", 1)[-1] if "@" in sender else "saeko-sync.invalid"
    return f"<saeko.{hashlib.sha256(marker.encode()).hexdigest()[:40]}@{domain}>"


def marker_word(marker: str) -> str:
    """The reference word an email with this marker carries in its body: letters and digits
    only, so that Gmail's search indexes it as one word."""
    return "saekoref" + hashlib.sha256(marker.encode()).hexdigest()[:24]


def _addresses(value: str | Iterable[str] | None) -> list[str]:
    if not value:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [a.strip() for item in items for a in str(item).split(",") if a.strip()]


def send_email(client: GoogleClient, *, to: str | Sequence[str], subject: str,
               html: str | None, text: str, marker: str, cc: str | Sequence[str] | None = None,
               images: Sequence[tuple[str, bytes]] = (),
               attachments: Sequence[tuple[str, str, bytes]] = ()) -> str:
    """Send one email as GOOGLE_DELEGATED_USER; returns the Gmail message id. Its body ends
    with the marker's reference word (``find_email_by_marker`` finds it).

    ``images`` are (Content-ID, PNG) pairs shown inside the HTML (``<img src="cid:ID">``):
    the HTML part becomes multipart/related with them. ``attachments`` are (file name, MIME
    type, bytes); with any, the message is multipart/mixed (RFC 2046, 2387)."""
    sender = client.settings.google_delegated_user
    recipients = _addresses(to)
    if not recipients:
        raise ValueError("send_email needs at least one recipient")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    if _addresses(cc):
        message["Cc"] = ", ".join(_addresses(cc))
    message["Subject"] = subject
    message["Message-ID"] = marker_message_id(marker, sender)
    message[MARKER_HEADER] = " ".join(marker.split())
    word = marker_word(marker)
    message.set_content(f"{text or ''}\n\n--\nRef. {word}\n")
    if html:
        message.add_alternative(f'{html}\n<p style="color:#999;font-size:11px">Ref. {word}</p>',
                                subtype="html")
        if images:
            html_part = message.get_payload()[-1]  # type: ignore[index]
            assert isinstance(html_part, EmailMessage)
            for cid, png in images:
                html_part.add_related(png, "image", "png", cid=f"<{cid}>", disposition="inline",
                                      filename=f"{cid.split('@')[0]}.png")
    for filename, mime, data in attachments:
        maintype, _, subtype = mime.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    raw = base64.urlsafe_b64encode(message.as_bytes()).decode()
    messages = client.service("gmail").users().messages()
    sent = client.execute(messages.send(userId="me", body={"raw": raw}), use="gmail",
                          what=f"Gmail send {subject[:60]!r}", idempotent=False)
    log.info("google.gmail.sent", message_id=sent["id"], to=recipients)
    return str(sent["id"])


def find_email_by_marker(client: GoogleClient, marker: str) -> str | None:
    """The id of the email sent with this marker (its reference word), or None."""
    messages = client.service("gmail").users().messages()
    found = client.execute(
        messages.list(userId="me", q=f"in:sent {marker_word(marker)}", includeSpamTrash=True,
                      maxResults=1), use="gmail", what="Gmail search by marker")
    items = found.get("messages") or []
    return str(items[0]["id"]) if items else None


find_email = find_email_by_marker  # the rule engine's name


# --- Calendar ------------------------------------------------------------------------------


def event_id_for(marker: str) -> str:
    """A Calendar event id from a marker: lowercase hex is valid base32hex (5-1024 chars)."""
    return hashlib.sha256(marker.encode()).hexdigest()[:40]


def _when(value: datetime | date | str, zone: str) -> dict[str, str]:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the model's times are naive UTC
    local = value.astimezone(ZoneInfo(zone))
    return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": zone}


def _same_event(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def instant(when: dict[str, Any]) -> Any:
        raw = when.get("dateTime")
        return datetime.fromisoformat(raw) if raw else when.get("date")

    def emails(event: dict[str, Any]) -> set[str]:
        return {str(a.get("email", "")).lower() for a in event.get("attendees") or []}

    return (current.get("summary") == wanted.get("summary")
            and (current.get("description") or "") == (wanted.get("description") or "")
            and instant(current.get("start") or {}) == instant(wanted["start"])
            and instant(current.get("end") or {}) == instant(wanted["end"])
            and emails(current) == emails(wanted)
            and (current.get("recurrence") or []) == (wanted.get("recurrence") or []))


def upsert_event(client: GoogleClient, *, marker: str, start: datetime | date | str,
                 end: datetime | date | str, summary: str | None = None,
                 title: str | None = None, calendar_id: str | None = None,
                 attendees: Iterable[str] = (), description: str = "",
                 recurrence: Sequence[str] | None = None, meet: bool = False) -> str:
    """Create the event of ``marker`` once, or bring it up to date; returns its id.

    The id is derived from the marker, so a retried insert (lost response) answers 409 and
    the existing event is read and, only if something differs, patched. ``title`` is an
    alias of ``summary``; ``calendar_id`` defaults to GOOGLE_CALENDAR_ID.
    """
    settings = client.settings
    calendar = calendar_id or settings.google_calendar_id
    event_id = event_id_for(marker)
    value = marker if len(marker) <= PROPERTY_VALUE_MAX else event_id
    body: dict[str, Any] = {
        "id": event_id, "summary": summary or title or "", "description": description,
        "start": _when(start, settings.timezone), "end": _when(end, settings.timezone),
        "attendees": [{"email": a} for a in _addresses(list(attendees))],
        "extendedProperties": {"private": {MARKER_PROPERTY: value}},
    }
    if recurrence:
        body["recurrence"] = list(recurrence)
    if meet:
        body["conferenceData"] = {"createRequest": {
            "requestId": event_id, "conferenceSolutionKey": {"type": "hangoutsMeet"}}}
    events = client.service("calendar").events()
    what = f"Calendar event {body['summary'][:60]!r}"
    try:
        created = client.execute(events.insert(calendarId=calendar, body=body,
                                               conferenceDataVersion=1, sendUpdates="all"),
                                 use="calendar", what=what)
        log.info("google.calendar.created", event_id=created["id"])
        return str(created["id"])
    except ConnectorError as exc:
        if exc.status != 409:
            raise
    current = client.execute(events.get(calendarId=calendar, eventId=event_id),
                             use="calendar", what=what)
    changes = {k: v for k, v in body.items() if k not in ("id", "conferenceData")}
    if meet and not current.get("hangoutLink"):
        changes["conferenceData"] = body["conferenceData"]
    if _same_event(current, body) and "conferenceData" not in changes \
            and current.get("status") != "cancelled":
        return event_id
    changes["status"] = "confirmed"
    client.execute(events.patch(calendarId=calendar, eventId=event_id, body=changes,
                                conferenceDataVersion=1, sendUpdates="all"),
                   use="calendar", what=what)
    log.info("google.calendar.updated", event_id=event_id)
    return event_id


def find_event(client: GoogleClient, marker: str, calendar_id: str | None = None) -> str | None:
    """The id of the event created for this marker, or None."""
    calendar = calendar_id or client.settings.google_calendar_id
    events = client.service("calendar").events()
    try:
        found = client.execute(events.get(calendarId=calendar, eventId=event_id_for(marker)),
                               use="calendar", what="Calendar find by marker")
    except RemoteDataError as exc:
        if exc.status == 404:
            return None
        raise
    return str(found["id"])


def read_event(client: GoogleClient, event_id: str, calendar_id: str | None = None
               ) -> dict[str, Any] | None:
    """The event with this id as Calendar shows it (a deleted one has status «cancelled»),
    or None when the calendar never had it."""
    calendar = calendar_id or client.settings.google_calendar_id
    events = client.service("calendar").events()
    try:
        found = client.execute(events.get(calendarId=calendar, eventId=event_id),
                               use="calendar", what="Calendar read event")
    except RemoteDataError as exc:
        if exc.status == 404:
            return None
        raise
    return dict(found)


def cancel_event(client: GoogleClient, event_id: str, calendar_id: str | None = None) -> bool:
    """Cancel an event with ``events.delete`` (``sendUpdates=all``: the attendees get the
    cancellation); True when cancelled now, False when it was already cancelled (Calendar
    answers 410) or never existed (404). Safe to repeat."""
    calendar = calendar_id or client.settings.google_calendar_id
    events = client.service("calendar").events()
    try:
        client.execute(events.delete(calendarId=calendar, eventId=event_id, sendUpdates="all"),
                       use="calendar", what=f"Calendar cancel event {event_id}")
    except RemoteDataError as exc:
        if exc.status in (404, 410):
            return False
        raise
    log.info("google.calendar.cancelled", event_id=event_id)
    return True
