"""The shared stream runner and the paginators, on their own: a stream over scripted pages
into a real store (SQLite and PostgreSQL), asserting the stored cursor and rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.paging import (
    NextPageTokenPaginator,
    OffsetPaginator,
    PageTokenPaginator,
    Paginator,
    SinglePage,
    iter_pages,
)
from connectors.podio.streams import EditTimePaginator
from connectors.runner import Record, Stream, StreamRun, classify, run_stream
from core.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    RemoteDataError,
    TransientError,
    UnreachableError,
)
from store.db import Database
from store.models import SyncState, UsageMetric

T1, T2, T3, T4 = (datetime(2026, 11, 20, 9, minute) for minute in (1, 2, 3, 4))


def podio_items(*stamps: str) -> dict[str, Any]:
    return {"items": [{"item_id": n, "last_edit_on": s} for n, s in enumerate(stamps)]}


def token(value: str | None) -> SimpleNamespace:
    return SimpleNamespace(nextPageToken=value)


# (paginator, the pages the API answers in order, the tokens it must be asked for,
#  the error that stops the listing or None)
PAGINATION_CASES: list[tuple[str, Callable[[], Paginator[Any]], list[Any], list[Any],
                             str | None]] = [
    ("offset: a short page is the last", lambda: OffsetPaginator(2, max_pages=10, tool="Podio"),
     [{"items": [1, 2]}, {"items": [3, 4]}, {"items": [5]}], [0, 2, 4], None),
    ("offset: an empty page ends it", lambda: OffsetPaginator(2, max_pages=10, tool="Podio"),
     [{"items": [1, 2]}, {"items": []}], [0, 2], None),
    ("offset: bounded", lambda: OffsetPaginator(1, max_pages=2, tool="Podio"),
     [{"items": [1]}, {"items": [2]}, {"items": [3]}], [0, 1], "más de 2 páginas"),
    ("podio keyset: moves by time, offset for items sharing the last second",
     lambda: EditTimePaginator(None, 2),
     [podio_items("2026-11-20 09:00:00", "2026-11-20 09:00:05"),
      podio_items("2026-11-20 09:00:05", "2026-11-20 09:00:06"),
      podio_items("2026-11-20 09:00:07")],
     [(None, 0), (datetime(2026, 11, 20, 9, 0, 5), 1), (datetime(2026, 11, 20, 9, 0, 6), 1)],
     None),
    ("podio keyset: a whole page inside one second is stepped over",
     lambda: EditTimePaginator(datetime(2026, 11, 20, 9), 2),
     [podio_items("2026-11-20 09:00:00", "2026-11-20 09:00:00"), podio_items()],
     [(datetime(2026, 11, 20, 9), 0), (datetime(2026, 11, 20, 9), 2)], None),
    ("podio keyset: a Podio that ignores the window repeats the token",
     lambda: EditTimePaginator(None, 2),
     [podio_items("2026-11-20 09:00:01", "2026-11-20 09:00:02")] * 3,
     [(None, 0), (datetime(2026, 11, 20, 9, 0, 2), 1)], "Podio repitió el token de página"),
    ("jira: follows nextPageToken", lambda: NextPageTokenPaginator(max_pages=10),
     [token("a"), token("b"), token(None)], [None, "a", "b"], None),
    ("jira: refuses a repeated token", lambda: NextPageTokenPaginator(max_pages=10),
     [token("a"), token("b"), token("a")], [None, "a", "b"], "Jira repitió el token de página"),
    ("jira: bounded", lambda: NextPageTokenPaginator(max_pages=2),
     [token("a"), token("b"), token("c")], [None, "a"], "más de 2 páginas"),
    ("google: follows nextPageToken", lambda: PageTokenPaginator(max_pages=10),
     [{"nextPageToken": "a"}, {"nextPageToken": "b"}, {}], [None, "a", "b"], None),
    ("google: refuses a repeated token", lambda: PageTokenPaginator(max_pages=10),
     [{"nextPageToken": "a"}, {"nextPageToken": "a"}], [None, "a"],
     "Google repitió el token de página"),
    ("google: bounded", lambda: PageTokenPaginator(max_pages=2),
     [{"nextPageToken": "a"}, {"nextPageToken": "b"}], [None, "a"], "más de 2 páginas"),
    ("single page: one request whatever it says", lambda: SinglePage(tool="Google"),
     [{"nextPageToken": "a"}], [None], None),
]


@pytest.mark.parametrize(("make", "answers", "asked", "error"),
                         [case[1:] for case in PAGINATION_CASES],
                         ids=[case[0] for case in PAGINATION_CASES])
def test_paginators(make: Callable[[], Paginator[Any]], answers: list[Any], asked: list[Any],
                    error: str | None) -> None:
    tokens: list[Any] = []
    handed: list[Any] = []

    def fetch(value: Any) -> Any:
        tokens.append(value)
        return answers[len(tokens) - 1]

    paginator = make()
    if error is None:
        handed.extend(iter_pages(paginator, fetch))
        assert paginator.done
    else:
        with pytest.raises(RemoteDataError, match=error):
            handed.extend(iter_pages(paginator, fetch))
    assert tokens == asked
    assert handed == answers[:len(asked)]  # every page fetched was handed over first


@pytest.mark.parametrize(("exc", "kind"), [
    (TransientError("429"), "transient"), (AuthError("401"), "auth"),
    (RemoteDataError("400"), "remote_data"), (ConfigError("x"), "config"),
    (ConnectorError("?"), "connector"),
])
def test_errors_are_classified_alike_for_every_tool(exc: Exception, kind: str) -> None:
    assert classify(exc) == kind


class Scripted(Stream):
    """Usage rows served from scripted pages; ``fail`` makes a page's fetch raise, and
    ``refuse`` makes the database refuse a page's commit (a duplicate row)."""

    source = "test"
    name = "scripted"
    model = UsageMetric
    entity = None
    primary_key = "id"
    cursor_field = "updated"

    def __init__(self, pages: list[list[tuple[str, datetime]]], *, fail: int | None = None,
                 refuse: int | None = None) -> None:
        self.pages = pages
        self.fail, self.refuse = fail, refuse
        self.calls = 0
        self.page = 0
        self.cursors: list[str | None] = []

    def api_calls(self) -> int:
        return self.calls

    def paginator(self, run: StreamRun) -> OffsetPaginator:
        self.cursors.append(run.cursor)
        return OffsetPaginator(2, max_pages=10, tool="test")

    def fetch(self, token: int | None) -> dict[str, Any]:
        self.page = number = (token or 0) // 2
        self.calls += 1
        if number == self.fail:
            raise TransientError("the test API is down; retry later")
        return {"items": self.pages[number]}

    def records(self, page: dict[str, Any]) -> list[Record]:
        return [Record(key=key, raw=None, row={"source": "test", "source_id": key,
                                               "source_updated_at": at, "client_key": key})
                for key, at in page["items"]]

    def after_write(self, session: Session, records: list[Record]) -> None:
        if self.page == self.refuse:  # the unique (source, source_id) refuses the page
            session.add(UsageMetric(source="test", source_id=records[0].key))


PAGES = [[("a", T1), ("b", T2)], [("c", T3), ("d", T4)], []]


def stored(db: Database) -> tuple[str | None, str | None, list[str]]:
    with db.session() as s:
        state = s.scalars(select(SyncState).where(SyncState.source == "test")).one()
        rows = s.scalars(select(UsageMetric.source_id).where(UsageMetric.source == "test")
                         .order_by(UsageMetric.source_id)).all()
        return state.cursor, state.last_status, list(rows)


def test_cursor_stays_at_the_last_committed_page_when_a_commit_fails(db: Database) -> None:
    with pytest.raises(IntegrityError):
        run_stream(db, Scripted(PAGES, refuse=1))
    cursor, _status, rows = stored(db)
    assert cursor == T2.isoformat() and rows == ["a", "b"]
    report = run_stream(db, stream := Scripted(PAGES))
    assert stream.cursors == [T2.isoformat()]  # resumed from the committed page
    assert report.error is None and report.counts.created == 2 and report.counts.unchanged == 2
    assert stored(db) == (T4.isoformat(), "ok", ["a", "b", "c", "d"])


class Unreachable(Scripted):
    """A tool whose host never answers: the first fetch cannot connect."""

    def fetch(self, token: int | None) -> dict[str, Any]:
        self.calls += 1
        raise UnreachableError("No se pudo conectar con Test en http://test.invalid",
                               url="http://test.invalid", setting="TEST_URL")


def test_an_unreachable_tool_fails_its_stream_and_stops_the_source(db: Database) -> None:
    """The outcome is recorded (the status page shows it) and the error goes up, so that
    the tool's other streams are not tried one by one this cycle."""
    with pytest.raises(UnreachableError, match="TEST_URL|test.invalid"):
        run_stream(db, stream := Unreachable(PAGES))
    assert stream.calls == 1
    cursor, status, rows = stored(db)
    assert (cursor, status, rows) == (None, "failed", [])


def test_a_failed_fetch_fails_the_stream_and_keeps_committed_pages(db: Database) -> None:
    report = run_stream(db, Scripted(PAGES, fail=1))
    assert report.error is not None and "retry later" in report.error
    assert report.api_calls == 2 and report.counts.created == 2
    assert stored(db) == (T2.isoformat(), "failed", ["a", "b"])
    full = run_stream(db, stream := Scripted(PAGES), full=True)
    assert stream.cursors == [None] and full.counts.created == 2
    assert stored(db) == (T4.isoformat(), "ok", ["a", "b", "c", "d"])


def test_a_run_cursor_moves_only_when_every_page_committed(db: Database) -> None:
    class AtTheEnd(Scripted):
        cursor_moves = "run"

    run_stream(db, AtTheEnd(PAGES, fail=1))
    assert stored(db) == (None, "failed", ["a", "b"])
    run_stream(db, AtTheEnd(PAGES))
    assert stored(db) == (T4.isoformat(), "ok", ["a", "b", "c", "d"])
