"""Google syncs: form responses -> survey_responses, the usage sheet -> usage_metrics; the
streams (``streams.py``) run through the shared runner."""

from __future__ import annotations

from connectors.base import ProgressFn
from connectors.google.client import GoogleClient
from connectors.google.streams import (
    FORMS_SOURCE,
    SHEETS_SOURCE,
    USAGE_STREAM,
    FormStream,
    UsageStream,
    load_config,
)
from connectors.runner import run_stream
from core.settings import Settings
from store.db import Database
from store.sync import SyncReport


def sync_forms(settings: Settings, db: Database, *, full: bool = False,
               progress: ProgressFn | None = None, client: GoogleClient | None = None
               ) -> list[SyncReport]:
    """Sync every form of config/google.yaml into survey_responses (one report per form)."""
    config = load_config(settings.config_dir)
    own = client is None
    google = client or GoogleClient(settings)
    reports = []
    try:
        for name, mapping in config.forms.items():
            form_id = str(getattr(settings, mapping.form_id_setting) or "")
            if not form_id:
                reports.append(SyncReport(FORMS_SOURCE, name, error=(
                    f"{mapping.form_id_setting.upper()} is not set; form skipped")))
                continue
            stream = FormStream(google, name, form_id, mapping, settings)
            reports.append(run_stream(db, stream, full=full, progress=progress))
    finally:
        if own:
            google.close()
    return reports


def sync_sheets(settings: Settings, db: Database, *, full: bool = False,
                progress: ProgressFn | None = None, client: GoogleClient | None = None
                ) -> list[SyncReport]:
    """Sync the usage sheet into usage_metrics (one report)."""
    mapping = load_config(settings.config_dir).usage_sheet
    spreadsheet_id = str(getattr(settings, mapping.spreadsheet_id_setting) or "")
    if not spreadsheet_id:
        return [SyncReport(SHEETS_SOURCE, USAGE_STREAM, error=(
            f"{mapping.spreadsheet_id_setting.upper()} is not set; usage sheet skipped"))]
    own = client is None
    google = client or GoogleClient(settings)
    try:
        return [run_stream(db, UsageStream(google, spreadsheet_id, mapping), full=full,
                           progress=progress)]
    finally:
        if own:
            google.close()
