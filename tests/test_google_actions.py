"""Write-back primitives against the sandbox: a 5,000-row table in one values call, an email
readable in the sandbox, a calendar event created once even when the create is retried."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.google import actions
from connectors.google.client import GoogleClient
from core.errors import TransientError
from core.settings import Settings, load_settings
from sandbox.server import Sandbox

KPI_TAB = "tickets_detalle"


def google_settings(sandbox: Sandbox, **extra: Any) -> Settings:
    env = {k.lower(): v for k, v in sandbox.tools["google"].env().items()}
    return load_settings(**env, google_retry_base_seconds=0.01, google_max_retry_seconds=5.0,
                         **extra)


def values_calls(sandbox: Sandbox) -> int:
    return sandbox.calls.total("google", "/values")


def test_a_5000_row_table_is_written_in_one_values_call(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    header = ["ticket", "cliente", "abierto", "cerrado_el", "horas", "en_sla", "monto"]
    rows = [[4_000_000 + i, f"Cliente {i % 37}", datetime(2026, 1, 1, 9) + timedelta(hours=i),
             date(2026, 1, 2) + timedelta(days=i % 300), round(i / 7, 2), i % 3 != 0,
             Decimal("1500.50")] for i in range(5000)]
    rows[7][1] = "00123"  # text that Sheets would read as a number stays text
    rows[8][1] = "=HACK()"  # ...and never becomes a formula
    with GoogleClient(settings) as client:
        result = actions.write_table(client, settings.google_kpi_spreadsheet_id, KPI_TAB,
                                     header, rows)
    assert result["created"] and result["rows"] == 5000
    assert values_calls(sandbox) == 1  # every cell in ONE values.update
    calls = sandbox.calls.snapshot("google")["google"]
    assert calls["PUT /v4/spreadsheets/{spreadsheetId}/values/{range}"] == 1
    assert calls["POST /v4/spreadsheets/{spreadsheetId}:batchUpdate"] == 1  # addSheet
    assert calls["GET /v4/spreadsheets/{spreadsheetId}"] == 1
    props = google.sheet_properties(settings.google_kpi_spreadsheet_id, KPI_TAB)
    assert props["gridProperties"] == {"rowCount": 5001, "columnCount": 7, "frozenRowCount": 1}
    values = google.sheet_values(settings.google_kpi_spreadsheet_id, KPI_TAB)
    assert values[0] == header and len(values) == 5001
    # Typed for Looker Studio: numbers, booleans, real dates (ISO when formatted).
    assert values[1] == [4_000_000, "Cliente 0", "2026-01-01 09:00:00", "2026-01-02", 0, False,
                         1500.5]
    assert values[8][1] == "00123" and values[9][1] == "=HACK()"
    kpi = settings.google_kpi_spreadsheet_id
    assert google.cell_format(kpi, KPI_TAB, 1, 2) == "DATE_TIME"
    assert google.cell_format(kpi, KPI_TAB, 1, 3) == "DATE"
    assert google.cell_format(kpi, KPI_TAB, 8, 1) == "TEXT"


def test_rewriting_a_smaller_table_leaves_nothing_stale(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    kpi = settings.google_kpi_spreadsheet_id
    with GoogleClient(settings) as client:
        actions.write_table(client, kpi, KPI_TAB, ["a", "b", "c"], [[1, 2, 3]] * 10)
        sandbox.calls.reset()
        result = actions.write_table(client, kpi, KPI_TAB, ["a", "b"], [[9, None]] * 2)
    assert result["resized"] and not result["created"]
    assert google.sheet_values(kpi, KPI_TAB) == [["a", "b"], [9], [9]]
    assert google.sheet_properties(kpi, KPI_TAB)["gridProperties"]["rowCount"] == 3
    assert values_calls(sandbox) == 1
    # An existing tab keeps its id (Looker Studio data sources are bound to it).
    with GoogleClient(settings) as client:
        actions.write_table(client, kpi, KPI_TAB, ["a"], [])
    assert google.sheet_values(kpi, KPI_TAB) == [["a"]]


def test_an_email_is_sent_and_readable_in_the_sandbox(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    marker = "rule:T7:ticket:4000012:notice"
    with GoogleClient(settings) as client:
        message_id = actions.send_email(
            client, to=["agente-1@saeko.test", "am-tijuana-1@saeko.test"],
            cc="coo@saeko.test", subject="Calificación positiva del ticket 4000012",
            html="<p>El usuario calificó con <b>5</b>.</p>",
            text="El usuario calificó con 5.", marker=marker)
        found = actions.find_email_by_marker(client, marker)
        assert actions.find_email_by_marker(client, "another marker") is None
    assert found == message_id
    [sent] = google.sent_messages()
    assert sent["id"] == message_id
    assert sent["subject"] == "Calificación positiva del ticket 4000012"
    assert sent["from"] == "postventa@saeko.test"
    assert sent["to"] == ["agente-1@saeko.test", "am-tijuana-1@saeko.test"]
    assert sent["cc"] == ["coo@saeko.test"]
    word = actions.marker_word(marker)
    assert sent["html"].startswith("<p>El usuario calificó con <b>5</b>.</p>")
    assert sent["text"].startswith("El usuario calificó con 5.")
    assert f"Ref. {word}" in sent["text"] and f"Ref. {word}" in sent["html"]
    assert sent["headers"]["X-Saeko-Marker"] == marker
    assert sent["message_id"] == actions.marker_message_id(marker, "postventa@saeko.test")


def test_an_email_whose_response_is_lost_is_found_by_its_body(sandbox: Sandbox) -> None:
    """A lost response is an error (the ledger then looks before sending again); the
    look-up finds the email by the reference word in its body, even where Gmail replaced
    the Message-ID the client supplied."""
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    google.gmail.replace_message_id = True
    lost = sandbox.faults.add(kind="drop_after", tool="google", method="POST",
                              path="/messages/send", count=1)
    with GoogleClient(settings) as client:
        with pytest.raises(TransientError):
            actions.send_email(client, to="coo@saeko.test", subject="Escalamiento",
                               html=None, text="Ticket crítico", marker="M7:1")
        found = actions.find_email_by_marker(client, "M7:1")
        assert actions.find_email_by_marker(client, "M7:2") is None
    assert lost.hits == 1
    [sent] = google.sent_messages()
    assert sent["id"] == found
    assert sent["message_id"] != actions.marker_message_id("M7:1", "postventa@saeko.test")


def test_a_calendar_event_is_created_once_when_the_create_is_retried(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    lost = sandbox.faults.add(kind="drop_after", tool="google", method="POST",
                              path="/calendar/v3/calendars/.*/events$", count=1)
    start = datetime(2026, 11, 24, 17, 0)  # naive UTC = 09:00 in Tijuana
    with GoogleClient(settings) as client:
        event_id = actions.upsert_event(
            client, marker="M8:checkin:cliente:1000001:2026-11", summary="Check-in mensual",
            start=start, end=start + timedelta(hours=1),
            attendees=["am-tijuana-1@saeko.test", "dir@colegio.edu.test"],
            description="Revisión de uso y pendientes", recurrence=None, meet=True)
        assert actions.find_event(client, "M8:checkin:cliente:1000001:2026-11") == event_id
        assert actions.find_event(client, "never created") is None
    assert lost.hits == 1
    assert sandbox.calls.total("google", "POST /calendar") == 2  # the create, retried once
    [event] = google.events("primary")
    assert event["id"] == event_id and event["summary"] == "Check-in mensual"
    assert event["start"] == {"dateTime": "2026-11-24T09:00:00-08:00",
                              "timeZone": "America/Tijuana"}
    assert [a["email"] for a in event["attendees"]] == ["am-tijuana-1@saeko.test",
                                                        "dir@colegio.edu.test"]
    assert event["hangoutLink"].startswith("https://meet.google.com/")
    assert event["extendedProperties"]["private"]["saekoMarker"] == (
        "M8:checkin:cliente:1000001:2026-11")


def test_upsert_event_updates_only_when_something_changed(sandbox: Sandbox) -> None:
    settings = google_settings(sandbox)
    google = sandbox.tools["google"]
    start = datetime(2026, 11, 30, 18, 0)
    args: dict[str, Any] = {"marker": "M8:weekly", "title": "Junta semanal de operaciones",
                            "start": start, "end": start + timedelta(minutes=45),
                            "attendees": ["coo@saeko.test"],
                            "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO"]}
    with GoogleClient(settings) as client:
        first = actions.upsert_event(client, **args)
        sandbox.calls.reset()
        assert actions.upsert_event(client, **args) == first
        assert sandbox.calls.total("google", "PATCH") == 0  # same content: no update sent
        args["attendees"] = ["coo@saeko.test", "am-bajio@saeko.test"]
        assert actions.upsert_event(client, **args) == first
    assert sandbox.calls.total("google", "PATCH") == 1
    [event] = google.events("primary")
    assert len(event["attendees"]) == 2 and event["recurrence"] == args["recurrence"]
    assert event["sequence"] == 0  # times unchanged


@pytest.mark.parametrize(("value", "sent"), [
    (None, ""), (True, True), (3, 3), (2.5, 2.5), (Decimal("10.00"), 10),
    (date(2026, 1, 2), "2026-01-02"), (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02 03:04:05"),
    ("hola", "hola"), ("0012", "'0012"), ("=SUM(A1)", "'=SUM(A1)"), ("TRUE", "'TRUE"),
    ("2026-01-02", "'2026-01-02"), ("45%", "'45%"), (float("nan"), ""),
])
def test_cell_values_are_typed_for_looker_studio(value: Any, sent: Any) -> None:
    assert actions.cell_value(value) == sent


def test_event_ids_are_valid_calendar_ids() -> None:
    event_id = actions.event_id_for("any marker: with spaces / and symbols")
    assert 5 <= len(event_id) <= 1024 and set(event_id) <= set("0123456789abcdefghijklmnopqrstuv")


def test_a_cancelled_event_is_deleted_once_and_restored_by_upsert(sandbox: Sandbox) -> None:
    """events.delete answers 204; the event stays, «cancelled» (get shows it, list only with
    showDeleted or a sync token); deleting it again answers 410, which cancel_event takes
    as done; upserting the same marker restores it (its id stays taken: insert gives 409)."""
    settings = google_settings(sandbox)
    start = datetime(2026, 11, 24, 18, 0)
    args: dict[str, Any] = {"marker": "reunion:check-in:1:2026-11", "summary": "Check-in",
                            "start": start, "end": start + timedelta(minutes=45),
                            "attendees": ["am-tijuana-1@saeko.test"], "meet": True}
    with GoogleClient(settings) as client:
        event_id = actions.upsert_event(client, **args)
        events = client.service("calendar").events()
        first = client.execute(events.list(calendarId="primary"), use="calendar", what="list")
        sandbox.calls.reset()
        assert actions.cancel_event(client, event_id) is True
        assert sandbox.calls.total("google", "DELETE /calendar") == 1
        found = actions.read_event(client, event_id)
        assert found is not None and found["status"] == "cancelled"
        assert actions.cancel_event(client, event_id) is False  # 410 deleted
        assert actions.cancel_event(client, "abc123def4567") is False  # 404
        assert actions.read_event(client, "abc123def4567") is None
        listed = client.execute(events.list(calendarId="primary"), use="calendar", what="l")
        assert listed["items"] == []
        shown = client.execute(events.list(calendarId="primary", showDeleted=True),
                               use="calendar", what="l")
        assert [e["status"] for e in shown["items"]] == ["cancelled"]
        changes = client.execute(events.list(calendarId="primary",
                                              syncToken=first["nextSyncToken"]),
                                 use="calendar", what="l")
        assert [(e["id"], e["status"]) for e in changes["items"]] == [(event_id, "cancelled")]
        assert actions.upsert_event(client, **args) == event_id
        restored = actions.read_event(client, event_id)
    assert restored is not None and restored["status"] == "confirmed"
    assert restored["hangoutLink"].startswith("https://meet.google.com/")
    assert len(sandbox.tools["google"].events()) == 1
