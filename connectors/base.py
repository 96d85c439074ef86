"""The small interface every connector shares.

A tool's ``sync.py`` exposes ``sync_<source>(settings, db, *, full=False, progress=None)``
returning a list of ``store.sync.SyncReport`` (one per stream), registered in
``SOURCES`` below so the CLI, the demo and the scheduler find it. Its streams are
declared in its ``streams.py`` (``connectors.runner.Stream``) and run by
``connectors.runner.run_stream``, which keeps the cursors and outcomes.

Write-back primitives (``actions.py``) that create something take a ``marker``: a string
left on what they create (Podio external_id, a Jira entity property / label, an email
header, a calendar extended property) so that, after a lost response or a crash, a
``find_*`` function can tell whether the effect already happened instead of sending it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.settings import Settings
    from store.db import Database
    from store.sync import SyncReport

# progress(stream, advanced_by, total_or_None): called as pages arrive.
ProgressFn = Callable[[str, int, int | None], None]


class SyncFn(Protocol):
    def __call__(self, settings: Settings, db: Database, *, full: bool = False,
                 progress: ProgressFn | None = None) -> list[SyncReport]: ...


# source name -> "module:function". Order = the order of a full cycle.
SOURCES: dict[str, str] = {
    "podio": "connectors.podio.sync:sync_podio",
    "jira": "connectors.jira.sync:sync_jira",
    "forms": "connectors.google.sync:sync_forms",
    "sheets": "connectors.google.sync:sync_sheets",
}


def load_sync(source: str) -> SyncFn:
    """The sync function of a source, imported on first use (Google's client libraries are
    slow to import, and a Podio-only run needs none of them)."""
    import importlib

    module_name, func = SOURCES[source].split(":")
    return getattr(importlib.import_module(module_name), func)  # type: ignore[no-any-return]


def noop_progress(_stream: str, _advance: int, _total: int | None) -> None:
    """Progress callback that shows nothing."""
