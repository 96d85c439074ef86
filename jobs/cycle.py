"""One sync cycle over the configured sources, feeding every rule from one read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors.base import SOURCES, ProgressFn, load_sync
from core.errors import ConfigError, ConnectorError
from core.settings import Settings
from store.db import Database
from store.sync import SyncReport

log = structlog.get_logger(__name__)


def configured_sources(settings: Settings) -> list[str]:
    """Sources whose settings are present."""
    wanted = {
        "podio": settings.podio_configured,
        "jira": settings.jira_configured,
        "forms": bool(settings.google_service_account_file)
        and bool(settings.google_csat_form_id or settings.google_nps_form_id),
        "sheets": bool(settings.google_service_account_file)
        and bool(settings.google_usage_spreadsheet_id),
    }
    return [name for name in SOURCES if wanted.get(name)]


@dataclass
class CycleReport:
    reports: list[SyncReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.error is None for r in self.reports)


def run_sync(settings: Settings, db: Database, sources: list[str] | None = None, *,
             full: bool = False, progress: ProgressFn | None = None,
             clients: dict[str, Any] | None = None) -> CycleReport:
    """Sync the given sources (default: every configured one). One failing source does not
    stop the others; its error is reported. ``clients`` (source -> long-lived client) lets a
    service reuse its connections and tokens instead of logging in every cycle."""
    cycle = CycleReport()
    for source in sources or configured_sources(settings):
        if source not in SOURCES:
            raise ConfigError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        sync = load_sync(source)
        try:
            extra = {"client": clients[source]} if clients and source in clients else {}
            cycle.reports.extend(sync(settings, db, full=full, progress=progress, **extra))
        except (ConnectorError, ConfigError) as exc:
            cycle.errors.append(f"{source}: {exc}")
            log.error("sync.source.failed", source=source, error=str(exc))
    return cycle


# The client each source's sync takes (forms and sheets share the Google client).
SOURCE_TOOL = {"podio": "podio", "jira": "jira", "forms": "google", "sheets": "google"}


def long_lived_clients(runtime: Any, sources: list[str]) -> dict[str, Any]:
    """source -> client from a ``rules.actions.runtime.ActionRuntime``, so that cycles reuse
    connections and tokens (an idle cycle then costs one call per collection)."""
    return {source: runtime.client(SOURCE_TOOL[source]) for source in sources}
