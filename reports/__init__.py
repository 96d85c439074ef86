"""M10 operational reports and M12 commissions (docs/informes.md).

API::

    from reports import make, make_commissions, keep
    rendered = make(settings, "semanal-am", "2026-S48", am_key="am-tijuana-1", now=now)
    rendered = make_commissions(settings, "2026-11", now=now)    # every AM (the COO's)
    html_path, pdf_path = keep(settings, rendered)                # REPORTS_DIR/<periodo>/

``reports.build`` computes what a report says from the model (the KPIs through
``store.kpis``), ``reports.commissions`` the commissions, ``reports.render`` the email (text,
HTML with inline charts), the PDF and the sheet rows; the rule actions ``gmail.informe`` and
``sheets.informe`` (connectors/google/report_actions.py) send and write them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.settings import Settings
from reports import build as build_mod
from reports import commissions
from reports.build import KINDS, MONTHLY, parse_period, previous_period
from reports.config import load_commissions, load_reports
from store import kpis
from store.db import Database

if TYPE_CHECKING:  # reports.render imports matplotlib: only when a report is made
    from reports.render import Rendered

COMMISSIONS = "comisiones"
# What ``saeko-sync report --enviar`` finds the rule actions by (``ActionType.role``).
MAIL_ROLE, TAB_ROLE = "informe_correo", "informe_pestana"

__all__ = ["COMMISSIONS", "KINDS", "MAIL_ROLE", "MONTHLY", "TAB_ROLE", "Rendered", "keep",
           "make", "make_commissions", "make_in", "parse_period", "previous_period"]


def keep(settings: Settings, rendered: Rendered) -> tuple[Path, Path]:
    """Write the report's HTML and PDF under ``REPORTS_DIR/<periodo>/``."""
    from reports import render

    return render.keep(settings, rendered)


def make_in(session: Session, settings: Settings, kind: str, period: str, *,
            am_key: str | None = None, now: datetime) -> Rendered:
    """Report ``kind`` (``semanal-equipo``, ``semanal-am``, ``mensual`` or ``comisiones``)
    for ``period`` (``2026-S48``, ``2026-11``) rendered from ``session``."""
    from reports import render

    if kind == COMMISSIONS:
        config = load_commissions(settings.config_dir)
        month = parse_period(period, "mes")
        return render.commissions_report(settings, config, month,
                                          commissions.compute(session, config, month),
                                          now=now, am_key=am_key)
    rep = build_mod.build(session, settings, kind, period, am_key=am_key, now=now)
    kconfig = kpis.load_config(settings.config_dir)
    rconfig = load_reports(settings.config_dir, set(kconfig.by_id()))
    targets = {k.id: k.meta for k in kconfig.kpis}
    return render.report(settings, rep, targets, rconfig.atencion.maximo)


def make(settings: Settings, kind: str, period: str, *, am_key: str | None = None,
         now: datetime) -> Rendered:
    """``make_in`` with its own store session (the rule actions and the CLI)."""
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            return make_in(session, settings, kind, period, am_key=am_key, now=now)
    finally:
        db.dispose()


def make_commissions(settings: Settings, period: str, *, am_key: str | None = None,
                     now: datetime) -> Rendered:
    return make(settings, COMMISSIONS, period, am_key=am_key, now=now)
