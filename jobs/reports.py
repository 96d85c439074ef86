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
from store.models import ActionLedger, Staff

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
    """The rules' own actions (found by role in the registry), at once: the email and, for a
    team report, its tab; each recorded as a done row of the ledger (key ``report
    --enviar:<informe>:<now>``), so every report sent is in one place. A request from a
    person: each run is one email."""
    from connectors.clients import ActionRuntime
    from reports import MAIL_ROLE, TAB_ROLE
    from reports.render import Rendered
    from rules.actions import REGISTRY
    from rules.actions.base import to_json

    assert isinstance(rendered, Rendered)
    if not to:
        raise ConfigError("no hay a quién enviarlo: config/staff.yaml no tiene una COO activa")
    payload = {"kind": rendered.kind, "period": rendered.period, "am": rendered.am_key,
               "now": to_json(now),
               "to": to, "cc": []}
    roles = [MAIL_ROLE] + ([TAB_ROLE] if write_tab else [])
    runtime = ActionRuntime(settings)
    db = Database(settings.database_url)
    try:
        for role in roles:
            action = next(a for a in REGISTRY.values() if a.role == role)
            key = f"report --enviar:{rendered.slug}:{role}:{now.isoformat()}"
            ref = action.send(runtime, payload, key)
            with db.session() as session:
                session.add(ActionLedger(
                    idempotency_key=key, rule_id=None, action=action.name,
                    target=",".join(to), payload={"args": payload}, status="done",
                    attempts=1, external_ref=ref[:200], created_at=now, updated_at=now))
        return rendered.tab if write_tab else None
    finally:
        runtime.close()
        db.dispose()


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
