"""Pure Jira functions, table-driven: timestamps, changelog -> status history, resolution
time, the Podio ticket id, the JQL window in the API user's zone, markers, the paginator."""

from __future__ import annotations

from datetime import datetime

import pytest

from connectors.jira.actions import comment_tag, marker_label
from connectors.jira.mapping import (
    MappingError,
    issue_row,
    parse_time,
    podio_global_id,
    resolved_at,
    status_changes,
    ticket_from_field,
    ticket_from_links,
)
from connectors.jira.streams import IssueSearch, window_start

CATEGORIES = {"1": "new", "2": "indeterminate", "3": "done"}


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20T09:14:03.211+0000", datetime(2026, 11, 20, 9, 14, 3, 211000)),
    ("2026-11-20T01:14:03.211-0800", datetime(2026, 11, 20, 9, 14, 3, 211000)),
    ("2026-11-20T14:44:03.000+0530", datetime(2026, 11, 20, 9, 14, 3)),
    (None, None),
])
def test_parse_time_stores_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("bad", ["yesterday", "2026-11-20T09:14:03"])
def test_parse_time_refuses_what_it_cannot_place(bad: str) -> None:
    with pytest.raises(MappingError):
        parse_time(bad)


def history(hid: str, created: str, *items: tuple[str, str, str, str]) -> dict:
    return {"id": hid, "created": created, "author": {"accountId": "a1"},
            "items": [{"field": f, "fieldId": f, "from": None, "fromString": fs, "to": to,
                       "toString": ts} for f, fs, to, ts in items]}


def test_status_changes_are_oldest_first_with_categories() -> None:
    histories = [  # newest first, as expand=changelog returns them
        history("12", "2026-11-03T10:00:00.000+0000", ("status", "Doing", "3", "Done"),
                ("resolution", "", "", "Fixed")),
        history("11", "2026-11-02T10:00:00.000-0600", ("labels", "", "", "x")),
        history("10", "2026-11-01T10:00:00.000+0000", ("status", "To do", "2", "Doing")),
    ]
    rows = status_changes(histories, CATEGORIES)
    assert [(r["history_id"], r["to_status"], r["to_category"]) for r in rows] == [
        ("10", "Doing", "indeterminate"), ("12", "Done", "done")]
    assert rows[1]["changed_at"] == datetime(2026, 11, 3, 10)
    assert rows[0]["author"] == "a1"


def change(at: datetime, category: str) -> dict:
    return {"changed_at": at, "to_category": category}


@pytest.mark.parametrize(("category", "changes", "resolution_date", "expected"), [
    ("indeterminate", [change(datetime(2026, 1, 2), "done")], None, None),
    ("done", [change(datetime(2026, 1, 2), "done"), change(datetime(2026, 1, 3), "new"),
              change(datetime(2026, 1, 5), "done")], None, datetime(2026, 1, 5)),
    ("done", [], datetime(2026, 1, 4), datetime(2026, 1, 4)),
    ("done", [], None, datetime(2026, 1, 1)),
])
def test_resolved_at_is_the_last_entry_into_done(category: str, changes: list,
                                                 resolution_date: datetime | None,
                                                 expected: datetime | None) -> None:
    assert resolved_at(category, changes, resolution_date=resolution_date,
                       created=datetime(2026, 1, 1)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("4000017", "4000017"), (4000017.0, "4000017"), ({"value": "12"}, "12"), ("", None),
    (None, None), ("ticket 12", None)])
def test_ticket_from_field(value: object, expected: str | None) -> None:
    assert ticket_from_field(value) == expected


def test_ticket_from_links_reads_the_global_id() -> None:
    links = [{"globalId": "appId=1&issueId=2"}, {"globalId": podio_global_id(4000123)}]
    assert ticket_from_links(links) == "4000123"
    assert ticket_from_links([{"object": {"url": "https://podio.com/x/items/3"}}]) is None


def test_issue_row_maps_fields_and_prefers_the_name_alias() -> None:
    raw = {"id": "10001", "key": "SOP-1", "changelog": {"histories": []},
           "fields": {"summary": "S", "updated": "2026-11-18T12:00:00.000-0800",
                      "created": "2026-11-17T12:00:00.000-0800",
                      "status": {"id": "3", "name": "Resuelto",
                                 "statusCategory": {"key": "done"}},
                      "resolution": {"name": "Corregido"}, "priority": {"name": "High"},
                      "issuetype": {"name": "Error"}, "project": {"key": "SOP"},
                      "assignee": {"accountId": "acc"}, "Ticket Podio": "4000001",
                      "resolutiondate": "2026-11-18T11:00:00.000-0800"}}
    row = issue_row(raw, ticket_field="Ticket Podio", ticket_field_id=None,
                    categories=CATEGORIES, changes=[])
    assert row["source_id"] == "10001" and row["key"] == "SOP-1"
    assert row["source_updated_at"] == datetime(2026, 11, 18, 20)
    assert row["resolved_at"] == datetime(2026, 11, 18, 19)
    assert (row["status"], row["status_category"], row["resolution"], row["priority"],
            row["assignee"], row["ticket_source_id"]) == (
        "Resuelto", "done", "Corregido", "High", "acc", "4000001")
    assert "changelog" not in row["raw"]
    with pytest.raises(MappingError):
        issue_row({"id": "1", "key": "X-1", "fields": {}}, ticket_field="t",
                  ticket_field_id=None, categories={}, changes=[])


@pytest.mark.parametrize(("cursor", "overlap", "zone", "literal"), [
    (datetime(2026, 11, 18, 20, 7, 31, 500000), 5, "UTC", "2026/11/18 20:02"),
    (datetime(2026, 11, 18, 20, 7, 31), 5, "America/Tijuana", "2026/11/18 12:02"),
    (datetime(2026, 11, 18, 20, 7, 31), 2, "Asia/Kolkata", "2026/11/19 01:35"),
    (datetime(2026, 3, 8, 10, 30), 60, "America/Los_Angeles", "2026/03/08 01:30"),
])
def test_window_start_is_the_cursor_minute_minus_overlap_in_the_user_zone(
        cursor: datetime, overlap: int, zone: str, literal: str) -> None:
    assert window_start(cursor, overlap, zone) == literal


def test_stream_jql_is_bounded_and_ordered() -> None:
    stream = IssueSearch(("SOP", "DEV"), "Ticket Podio")
    assert stream.jql(None) == 'project in ("SOP", "DEV") ORDER BY updated ASC, key ASC'
    assert stream.jql("2026/11/18 12:02") == (
        'project in ("SOP", "DEV") AND updated >= "2026/11/18 12:02" '
        'ORDER BY updated ASC, key ASC')
    assert "Ticket Podio" in stream.fields


@pytest.mark.parametrize(("marker", "label"), [
    ("t3:ticket:4000017", "saeko-t3:ticket:4000017"),
    ("regla con espacios/1", "saeko-regla-con-espacios-1"),
])
def test_marker_label_is_a_valid_jira_label(marker: str, label: str) -> None:
    assert marker_label(marker) == label
    assert " " not in marker_label(marker) and len(marker_label("x" * 400)) == 255
    assert comment_tag(marker) == f"[saeko:{marker}]"
