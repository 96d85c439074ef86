"""M3: the KPI spreadsheet that Looker Studio reads, written from the model.

``publish`` builds every tab (``store.kpis.tables``) and writes them with
``actions.write_tables``: 1 metadata read, at most 1 structural ``batchUpdate`` for all tabs
(missing tabs created, grids fitted to their tables), and exactly 1 ``values.update`` per
tab — 12 tabs are 13 write calls at most, within Sheets' 60 writes a minute per user
(/work reference google-apis §3.9). The same data rewrites the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from connectors.google import actions
from connectors.google.client import GoogleClient
from core.errors import ConfigError
from core.settings import Settings
from store import kpis
from store.db import Database
from store.kpis import looker, tables


@dataclass(frozen=True)
class Published:
    spreadsheet_id: str
    fingerprint: str
    tabs: list[dict[str, Any]]

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.tabs)


def spreadsheet_id(settings: Settings) -> str:
    if not settings.google_kpi_spreadsheet_id:
        raise ConfigError("GOOGLE_KPI_SPREADSHEET_ID está vacío: pon en .env el id de la hoja "
                          "de KPIs (la parte de su URL entre /d/ y /edit)")
    return settings.google_kpi_spreadsheet_id


def publish(client: GoogleClient, session: Session, config: kpis.KpiConfig,
            now: datetime, *, fingerprint: str = "") -> Published:
    """Write every tab of the KPI spreadsheet from the model as of ``now``; the tables
    M3's condition just built are reused when ``fingerprint`` is theirs (``tables.kept``)."""
    sheet = spreadsheet_id(client.settings)
    built = tables.kept(session, now, fingerprint) or tables.build(session, config, now)
    written = actions.write_tables(client, sheet, [(t.tab, t.header, t.rows) for t in built])
    return Published(sheet, tables.fingerprint(built), written)


def publish_from_store(client: GoogleClient, settings: Settings, now: datetime, *,
                       fingerprint: str = "") -> Published:
    """``publish`` with its own store session (the rule action runs outside the cycle's),
    then remember where each tab is (``store.kpis.looker.remember``: the Looker Studio link
    of ``saeko-sync kpis --looker`` needs the tabs' ids)."""
    db = Database(settings.database_url)
    try:
        config = kpis.load_config(settings.config_dir, settings.rules_dir)
        with db.session() as session:
            published = publish(client, session, config, now, fingerprint=fingerprint)
            looker.remember(session, published.spreadsheet_id,
                            {t["tab"]: t["sheet_id"] for t in published.tabs},
                            published.fingerprint, now)
        return published
    finally:
        db.dispose()
