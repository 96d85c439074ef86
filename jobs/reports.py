"""``saeko-sync report``: one M10 report (or M12's commissions) built on demand from the
store — written to REPORTS_DIR and, with ``--enviar``, emailed now (to the AM, or to the COO)
and its tab written, as the scheduled rules would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from core.errors import ConfigError
from core.settings import Settings
from store.db import Database
from store.models import Staff

WORDS = {"semanal": "semana", "mensual": "mes", "comisiones": "mes"}


@dataclass
class OnDemand:
    kind: str
    period: str
    files: tuple[Path, Path]
    sent_to: list[str]
    tab: str | None


def run(settings: Settings, word: str, *, am_email: str | None, period: str | None,
        send: bool, now: datetime, today_local: datetime) -> OnDemand:
    """Build (and with ``send`` send) the report ``word``: semanal, mensual or comisiones."""
    import reports
    from reports.build import AM_WEEKLY, MONTHLY, TEAM_WEEKLY

    if word not in WORDS:
        raise ConfigError(f"informe desconocido «{word}»: usa semanal, mensual o comisiones")
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            am = None
            if am_email:
                am = session.scalars(select(Staff).where(Staff.email == am_email.strip().lower(),
                                                         Staff.role == "am")).first()
                if am is None:
                    raise ConfigError(f"{am_email} no es un AM de config/staff.yaml")
            coos = [s.email for s in session.scalars(
                select(Staff).where(Staff.role == "coo", Staff.active.is_(True)))]
        kind = {"semanal": AM_WEEKLY if am else TEAM_WEEKLY, "mensual": MONTHLY,
                "comisiones": reports.COMMISSIONS}[word]
        if word == "mensual" and am:
            raise ConfigError("el informe mensual es de todo el equipo: quita --am")
        label = period or reports.previous_period(WORDS[word], today_local.date()).label
        rendered = reports.make(settings, kind, label, am_key=am.key if am else None, now=now)
        files = reports.keep(settings, rendered)
        sent: list[str] = []
        tab = None
        if send:
            sent = [am.email] if am else coos
            tab = _send(settings, rendered, sent, now, write_tab=am is None)
        return OnDemand(kind, label, files, sent, tab)
    finally:
        db.dispose()


def _send(settings: Settings, rendered: object, to: list[str], now: datetime,
          write_tab: bool) -> str | None:
    from connectors.clients import ActionRuntime
    from connectors.google import actions
    from connectors.google.kpi_sheet import spreadsheet_id
    from reports.render import Rendered

    assert isinstance(rendered, Rendered)
    if not to:
        raise ConfigError("no hay a quién enviarlo: config/staff.yaml no tiene una COO activa")
    runtime = ActionRuntime(settings)
    try:
        client = runtime.client("google")
        # A request from a person: each run is one email (the marker names this run).
        actions.send_email(client, to=to, subject=rendered.subject, text=rendered.text,
                           html=rendered.html, marker=f"cli-informe:{rendered.slug}:"
                           f"{now.isoformat()}", images=rendered.images,
                           attachments=[(rendered.pdf_name, "application/pdf", rendered.pdf)])
        if not write_tab:
            return None
        actions.write_table(client, spreadsheet_id(settings), rendered.tab, rendered.header,
                            rendered.rows)
        return rendered.tab
    finally:
        runtime.close()


def demo_report(console: object, settings: Settings, moment: datetime) -> None:
    """`make demo`: the reports the Monday cycle sent are in REPORTS_DIR; add the monthly
    report and the commissions of the last whole month (their slot is the first business
    day) and name every file, so a newcomer can open them."""
    from zoneinfo import ZoneInfo

    from rich.console import Console

    import reports

    assert isinstance(console, Console)
    local = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(settings.timezone))
    month = reports.previous_period("mes", local.date()).label
    for kind in (reports.MONTHLY, reports.COMMISSIONS):
        reports.keep(settings, reports.make(settings, kind, month, now=moment))
    folder = Path(settings.reports_dir)
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".html", ".pdf"))
    console.rule("Informes (M10) y comisiones (M12)")
    console.print(f"{len(files)} archivos en {folder} (ábrelos en el navegador o un visor "
                  "de PDF):")
    for path in files:
        console.print(f"  {path}", soft_wrap=True, markup=False, highlight=False)
