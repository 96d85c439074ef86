"""One paginator protocol for every tool: where the next page starts, read from the page.

A paginator holds the token of the next request (``token``; None asks for the first page),
learns the following one from each page's answer (``advance``) and stops when a page says it
is the last (``done``). It refuses a token it has already followed (an API that repeats
itself would page forever) and more than ``max_pages`` pages; both raise RemoteDataError, so
the stream fails with its committed pages kept and the next sync resumes from its cursor.

- ``OffsetPaginator``: offset/limit (Podio's id scan; Podio's keyset paging in
  ``connectors/podio/streams.py`` builds on it).
- ``NextPageTokenPaginator``: Jira's enhanced search (``ResultList.nextPageToken``).
- ``PageTokenPaginator``: Google's ``nextPageToken`` in a JSON page.
- ``SinglePage``: one request is the whole collection (the usage sheet).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

from core.errors import RemoteDataError

T = TypeVar("T", bound=Hashable)
P = TypeVar("P")


class Paginator(ABC, Generic[T]):
    """Walks the pages of one listing; see the module docstring."""

    def __init__(self, start: T | None = None, *, max_pages: int, tool: str) -> None:
        self.token: T | None = start
        self.done = False
        self.pages = 0
        self.max_pages = max_pages
        self.tool = tool
        self._seen: set[T] = set() if start is None else {start}

    @abstractmethod
    def next_token(self, page: Any) -> T | None:
        """The token of the page after ``page``, or None when ``page`` is the last."""

    def advance(self, page: Any) -> None:
        """Record a page's answer: the token for the next request, or the end."""
        self.pages += 1
        token = self.next_token(page)
        if token is None:
            self.done = True
            return
        if token in self._seen:
            raise RemoteDataError(f"{self.tool} repitió el token de página {str(token)[:40]}…; "
                                  "se dejó de paginar para no dar vueltas sin fin (la próxima "
                                  "sincronización sigue desde su cursor)")
        if self.pages >= self.max_pages:
            raise RemoteDataError(f"más de {self.max_pages} páginas en una sincronización; se "
                                  "dejó de paginar (la próxima sigue desde su cursor)")
        self._seen.add(token)
        self.token = token


def iter_pages(paginator: Paginator[T], fetch: Callable[[T | None], P]) -> Iterator[P]:
    """Fetch page after page; each page is handed over before the next token is checked,
    so a caller commits it before a repeated token stops the listing."""
    while not paginator.done:
        page = fetch(paginator.token)
        yield page
        paginator.advance(page)


class OffsetPaginator(Paginator[int]):
    """offset/limit paging over ``page[items_key]``: a short page is the last. With
    ``overlap``, each page starts that many rows before the previous one ended (rows
    removed meanwhile before the boundary then shift no row past it)."""

    def __init__(self, limit: int, *, max_pages: int, tool: str, items_key: str = "items",
                 overlap: int = 0) -> None:
        super().__init__(0, max_pages=max_pages, tool=tool)
        self.limit = limit
        self.items_key = items_key
        self.overlap = min(max(overlap, 0), limit - 1)

    def next_token(self, page: Any) -> int | None:
        items = page.get(self.items_key) or []
        if len(items) < self.limit:
            return None
        return (self.token or 0) + len(items) - self.overlap


class NextPageTokenPaginator(Paginator[str]):
    """Jira's enhanced search: the page (a ``ResultList``) carries ``nextPageToken``."""

    def __init__(self, *, max_pages: int, tool: str = "Jira") -> None:
        super().__init__(None, max_pages=max_pages, tool=tool)

    def next_token(self, page: Any) -> str | None:
        return getattr(page, "nextPageToken", None) or None


class PageTokenPaginator(Paginator[str]):
    """Google's listings: the JSON page carries ``nextPageToken``."""

    def __init__(self, *, max_pages: int, tool: str = "Google") -> None:
        super().__init__(None, max_pages=max_pages, tool=tool)

    def next_token(self, page: Any) -> str | None:
        return page.get("nextPageToken") or None


class SinglePage(Paginator[str]):
    """A listing read in one request."""

    def __init__(self, *, tool: str) -> None:
        super().__init__(None, max_pages=1, tool=tool)

    def next_token(self, page: Any) -> str | None:
        return None
