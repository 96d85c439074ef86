"""Where the KPI spreadsheet's tabs are (remembered by each M3 publication in
``store_meta``), and the Looker Studio Linking API link that opens a report wired to them.

The link: ``https://lookerstudio.google.com/reporting/create?`` with ``c.reportId`` (the
template report to copy; without it, a blank report), ``r.reportName``, and per data source
alias ``ds.<alias>.connector=googleSheets``, ``ds.<alias>.spreadsheetId``,
``ds.<alias>.worksheetId`` (the tab's sheet id, the ``gid`` of its URL) — Google's Linking
API reference, https://developers.google.com/looker-studio/integrate/linking-api (section
"Google Sheets"), and Google's own use of it in google/meridian
scenarioplanner/linkingapi/url_generator.py (``ds.*.connector=googleSheets``,
``ds.*.spreadsheetId``, ``ds.<alias>.worksheetId``, ``ds.*.refreshFields=false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from store.models import StoreMeta

META_KEY = "kpi_sheet"
LINKING_API = "https://lookerstudio.google.com/reporting/create"
SHEETS_CONNECTOR = "googleSheets"
REPORT_NAME = "Saeko · KPIs de postventa"
# Without a template, a blank report with one data source: the monthly KPI tab.
BLANK_REPORT_TABS = ("kpi_mensual",)


@dataclass(frozen=True)
class SheetPlace:
    spreadsheet_id: str
    tabs: dict[str, int]
    fingerprint: str | None
    published_at: str | None


def remember(session: Session, spreadsheet_id: str, tabs: dict[str, Any], fingerprint: str,
             now: datetime) -> None:
    """Keep where the published tabs are (their sheet ids)."""
    value = {"spreadsheet_id": spreadsheet_id,
             "tabs": {k: int(v) for k, v in tabs.items() if v is not None},
             "fingerprint": fingerprint, "published_at": now.isoformat()}
    row = session.get(StoreMeta, META_KEY)
    if row is None:
        session.add(StoreMeta(key=META_KEY, value=value, updated_at=now))
    else:
        row.value, row.updated_at = value, now


def place(session: Session) -> SheetPlace | None:
    """The spreadsheet and tabs of the latest publication, if any."""
    row = session.get(StoreMeta, META_KEY)
    if row is None or not isinstance(row.value, dict):
        return None
    value = row.value
    return SheetPlace(str(value.get("spreadsheet_id") or ""),
                      {str(k): int(v) for k, v in (value.get("tabs") or {}).items()},
                      value.get("fingerprint"), value.get("published_at"))


def link(where: SheetPlace, template_report_id: str = "",
         aliases: tuple[str, ...] = ()) -> str:
    """The Linking API URL. With a template, one data source per alias: each alias is the
    name of the tab it reads (the template's data sources carry those aliases, e.g.
    ``kpi_mensual``); without one, a blank report on ``kpi_mensual`` (alias ``ds0``)."""
    params: list[tuple[str, str]] = []
    if template_report_id:
        params.append(("c.reportId", template_report_id))
        sources = [(alias, alias) for alias in (aliases or tuple(where.tabs))]
    else:
        sources = [("ds0", tab) for tab in BLANK_REPORT_TABS]
    params.append(("r.reportName", REPORT_NAME))
    for alias, tab in sources:
        if tab not in where.tabs:
            continue
        params += [(f"ds.{alias}.connector", SHEETS_CONNECTOR),
                   (f"ds.{alias}.spreadsheetId", where.spreadsheet_id),
                   (f"ds.{alias}.worksheetId", str(where.tabs[tab]))]
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    return f"{LINKING_API}?{query}"
