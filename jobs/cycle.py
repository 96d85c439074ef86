"""One sync cycle over the configured sources, feeding every rule from one read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import or_, update

from connectors import registry
from connectors.base import SOURCES, ProgressFn, load_sync
from connectors.clients import ActionRuntime
from core.errors import ConfigError, ConnectorError
from core.settings import Settings
from store.db import Database, utcnow
from store.models import SyncState
from store.sync import SyncReport

log = structlog.get_logger(__name__)


def configured_sources(settings: Settings) -> list[str]:
    """Sources whose settings are present."""
    return [source for source in SOURCES
            if registry.for_source(source).configured(settings, source)]


@dataclass
class CycleReport:
    reports: list[SyncReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.error is None for r in self.reports)


def run_sync(settings: Settings, db: Database, sources: list[str] | None = None, *,
             full: bool = False, progress: ProgressFn | None = None,
             clients: Mapping[str, Any] | None = None) -> CycleReport:
    """Sync the given sources (default: every configured one). One failing source does not
    stop the others — whether its client cannot be built (Jira reads serverInfo then), its
    credentials are refused or its sync crashes: its error is reported and the cycle goes
    on. ``clients`` (source -> long-lived client, see ``long_lived_clients``) lets a service
    reuse its connections and tokens instead of logging in every cycle."""
    cycle = CycleReport()
    wanted = sources or configured_sources(settings)
    unknown = [source for source in wanted if source not in SOURCES]
    if unknown:
        raise ConfigError(f"fuente desconocida {unknown[0]!r}; usa una de {', '.join(SOURCES)}")
    for source in wanted:
        started = utcnow()
        try:
            sync = load_sync(source)
            extra = {"client": clients[source]} if clients and source in clients else {}
            cycle.reports.extend(sync(settings, db, full=full, progress=progress, **extra))
        except (ConnectorError, ConfigError) as exc:
            cycle.errors.append(f"{source}: {exc}")
            log.error("sync.source.failed", source=source, error=str(exc))
            _note_failure(db, source, started, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one connector stops only it
            cycle.errors.append(f"{source}: {exc.__class__.__name__}: {exc}")
            log.exception("sync.source.crashed", source=source)
            _note_failure(db, source, started, f"{exc.__class__.__name__}: {exc}")
    return cycle


def _note_failure(db: Database, source: str, started: datetime, error: str) -> None:
    """A source that failed outside its streams (client, credentials): the streams it did
    not get to say so as their last outcome (the status page reads it); cursors stay."""
    with db.session() as session:
        session.execute(update(SyncState).where(
            SyncState.source == source,
            or_(SyncState.last_finished_at.is_(None), SyncState.last_finished_at < started))
            .values(last_status="failed", last_error=error[:2000], last_finished_at=utcnow()))


class _LazyClients(Mapping[str, Any]):
    """source -> the runtime's client of its tool, built on first access (inside the
    source's own error handling in ``run_sync``) and kept by the runtime."""

    def __init__(self, runtime: ActionRuntime, sources: list[str]) -> None:
        self._runtime = runtime
        self._sources = [source for source in sources if source in SOURCES]

    def __getitem__(self, source: str) -> Any:
        if source not in self._sources:
            raise KeyError(source)
        return self._runtime.client(registry.for_source(source).name)

    def __contains__(self, source: object) -> bool:  # without building the client
        return source in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def long_lived_clients(runtime: ActionRuntime, sources: list[str]) -> Mapping[str, Any]:
    """source -> client from a ``connectors.clients.ActionRuntime`` (forms and sheets share
    the Google client), so that cycles reuse connections and tokens (an idle cycle then
    costs one call per collection). Clients are built when their source syncs: one tool
    that cannot be reached fails only its sources."""
    return _LazyClients(runtime, sources)
