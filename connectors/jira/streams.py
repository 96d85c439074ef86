"""The Jira stream as a declaration, its JQL window and the nextPageToken paginator.

Cursor precision: JQL compares ``updated`` to the **minute**, and absolute date literals are
read in the API user's profile time zone (reference §4). The cursor is therefore kept in UTC
to the millisecond (the greatest ``updated`` committed) and each window starts at
``floor_minute(cursor) - overlap``, written in the user's zone; re-read rows are merged on
the issue id, so the overlap costs nothing but a few unchanged rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import RemoteDataError

# Upper bound on pages per sync: 10,000 pages x 100 issues = 1,000,000 issues, far above
# the large demo world's 20,000 (SPEC section 9).
MAX_PAGES = 10_000
JQL_DATE_FORMAT = "%Y/%m/%d %H:%M"  # one of JQL's absolute literals (reference §4)


@dataclass(frozen=True)
class IssuesStream:
    """Jira issues of the configured projects -> ``incidents`` (+ status history).

    Primary key: the issue ``id`` (keys change when issues move); cursor field ``updated``;
    page style: enhanced search with ``nextPageToken``; write mode: merge.
    """

    projects: tuple[str, ...]
    ticket_field: str  # JIRA_TICKET_FIELD: a field name (the library maps it) or an id
    name: str = "issues"
    primary_key: str = "id"
    cursor_field: str = "updated"

    @property
    def fields(self) -> list[str]:
        """The fields each search asks for (never ``*all``: smaller pages)."""
        return ["summary", "status", "issuetype", "project", "priority", "assignee",
                "created", "updated", "resolution", "resolutiondate", "labels",
                self.ticket_field]

    def jql(self, since_local: str | None) -> str:
        """Bounded by project; ordered so the cursor can move page by page."""
        projects = ", ".join(f'"{key}"' for key in self.projects)
        window = f' AND updated >= "{since_local}"' if since_local else ""
        return f"project in ({projects}){window} ORDER BY updated ASC, key ASC"


def window_start(cursor_utc: datetime, overlap_minutes: int, zone: str) -> str:
    """The JQL literal for an incremental window: the cursor's minute minus the overlap,
    in the API user's time zone."""
    start = cursor_utc.replace(second=0, microsecond=0) - timedelta(minutes=overlap_minutes)
    local = start.replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
    return local.strftime(JQL_DATE_FORMAT)


class NextPageTokenPaginator:
    """Walks Jira's nextPageToken pages; refuses a token it has already followed."""

    def __init__(self, max_pages: int = MAX_PAGES) -> None:
        self.token: str | None = None
        self.done = False
        self.pages = 0
        self.max_pages = max_pages
        self._seen: set[str] = set()

    def advance(self, next_token: str | None) -> None:
        """Record a page's answer: its token for the next page, or the end."""
        self.pages += 1
        if not next_token:
            self.done = True
            return
        if next_token in self._seen:
            raise RemoteDataError(f"Jira repeated the page token {next_token[:20]}…; stopping "
                                  "to avoid an endless loop (the sync resumes from its cursor)")
        if self.pages >= self.max_pages:
            raise RemoteDataError(f"more than {self.max_pages} pages in one sync; stopping "
                                  "(the next sync continues from the cursor)")
        self._seen.add(next_token)
        self.token = next_token


def iter_pages(search: Any, jql: str, *, fields: list[str], page_size: int,
               expand: str = "changelog") -> Iterator[Any]:
    """Yield each page (a ``ResultList``) of an enhanced search; ``search`` is
    ``JiraClient.search`` (the library's ``enhanced_search_issues``, errors mapped)."""
    paginator = NextPageTokenPaginator()
    while not paginator.done:
        page = search(jql, nextPageToken=paginator.token, maxResults=page_size,
                      fields=list(fields), expand=expand)
        yield page
        paginator.advance(getattr(page, "nextPageToken", None))
