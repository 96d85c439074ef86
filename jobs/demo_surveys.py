"""`saeko-sync demo`: what M4 (automatic surveys) does, in one labelled cycle with the rules'
clock at the first business day of the next quarter, 10:05 in Tijuana, when both the
monthly micro-survey and the quarterly NPS are due; then a few invited users answer through
their prefilled links and the Forms sync ties the answers to the user and client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from rich.console import Console
from sqlalchemy import select

from connectors.clients import ActionRuntime
from core.settings import Settings
from jobs.cycle import run_sync
from rules.calendar import BusinessCalendar
from rules.config import RulesConfig
from rules.engine import run_cycle
from rules.functions import FUNCTIONS, Env
from rules.spec import Rule
from sandbox.activity import StaffSimulator
from store.db import Database
from store.models import ActionLedger, Client, Contact, School, SurveyResponse

ZONE = "America/Tijuana"  # config/calendar.yaml's zone: the schedules' hour
MICRO, NPS = "m4-micro-encuesta-mensual", "m4-nps-trimestral"
SURVEY_HOUR = time(10, 5)  # just after the rules' 10:00
ANSWERS = 3  # invited users who answer the micro-survey in the demo
QUARTER_MONTHS = (1, 4, 7, 10)
LAST_CHECKED_DAY = 10  # the rules check business days 1-10


@dataclass
class Tally:
    """Who M4 would reach before the cycle, and why the others are left out."""

    candidates: int = 0  # active clients' users with an email, of the rules' roles
    opted_out: int = 0
    fatigued: int = 0
    not_sampled: int = 0


def survey_moment(after: datetime, calendar: BusinessCalendar) -> datetime:
    """The first business day of the first quarter month after ``after``, 10:05 in
    Tijuana, as naive UTC."""
    year, month = after.year, after.month + 1
    while True:
        if month > 12:
            year, month = year + 1, 1
        if month in QUARTER_MONTHS:
            for day in range(1, LAST_CHECKED_DAY + 1):
                local = datetime.combine(date(year, month, day), SURVEY_HOUR,
                                         tzinfo=ZoneInfo(ZONE))
                moment = local.astimezone(UTC).replace(tzinfo=None)
                if calendar.is_business_time(moment, ZONE):
                    return moment
        month += 1


def _tally(db: Database, rules: dict[str, Rule], moment: datetime,
           calendar: BusinessCalendar) -> Tally:
    micro, nps = rules[MICRO].data, rules[NPS].data
    tally = Tally()
    with db.session() as s:
        env = Env(moment, ZONE, calendar, session=s)
        period = FUNCTIONS["periodo"].fn(env, moment, "mes")
        rows = s.execute(select(Contact.source_id, Contact.email, Contact.role,
                                Contact.no_survey, Client.status)
                         .join(School, School.id == Contact.school_id)
                         .join(Client, Client.id == School.client_id)
                         .where(Contact.deleted_at.is_(None))).all()
        for source_id, email, role, no_survey, status in rows:
            data = nps if role == "Directivo" else micro
            if not email or status not in data["estatus_clientes"] or (
                    role != "Directivo" and role not in micro["roles"]):
                continue
            tally.candidates += 1
            if no_survey:
                tally.opted_out += 1
            elif FUNCTIONS["encuesta_reciente"].fn(env, email, data["dias_sin_encuestas"],
                                                   data["reglas_de_encuesta"]) is not None:
                tally.fatigued += 1
            elif role != "Directivo" and not FUNCTIONS["en_muestra"].fn(
                    env, source_id, period, micro["fraccion_muestra"]):
                tally.not_sampled += 1
    return tally


def run_surveys(console: Console, settings: Settings, db: Database, runtime: ActionRuntime,
                simulator: StaffSimulator, after: datetime) -> None:
    """The M4 cycle of the demo, and what it did."""
    config = RulesConfig.from_settings(settings)
    from rules.ruleset import load_rules

    rules = {r.id: r for r in load_rules(config).rules.values() if r.id in (MICRO, NPS)}
    if len(rules) < 2 or not all(r.enabled for r in rules.values()):
        return
    moment = survey_moment(after, config.calendar)
    local = moment.replace(tzinfo=UTC).astimezone(ZoneInfo(ZONE))
    console.rule(f"M4 · Encuestas: el {local:%d/%m/%Y} a las {local:%H:%M} (Tijuana)")
    console.print("La micro-encuesta mensual y la NPS trimestral salen el primer día hábil "
                  "del mes (y del trimestre) a las 10:00; este ciclo corre con el reloj de las "
                  "reglas en ese día.")
    tally = _tally(db, rules, moment, config.calendar)
    report = run_cycle(settings, db, now=moment, runtime=runtime)
    with db.session() as s:
        sent = {rule: list(s.scalars(select(ActionLedger).where(
            ActionLedger.rule_id == rule, ActionLedger.created_at >= report.started_at,
            ActionLedger.status == "done"))) for rule in (MICRO, NPS)}
    share = rules[MICRO].data["fraccion_muestra"]
    console.print(
        f"M4: {len(sent[MICRO])} micro-encuestas (muestra del {float(share) * 100:g} % de "
        f"los usuarios operativos) y {len(sent[NPS])} NPS a directivos, de {tally.candidates} usuarios "
        f"de clientes activos; sin encuesta: {tally.fatigued} por fatiga (otra encuesta o una "
        f"respuesta en los últimos {rules[MICRO].data['dias_sin_encuestas']} días, la CSAT "
        f"de T6 incluida), {tally.opted_out} porque pidieron no recibirlas («no-encuestar») y "
        f"{tally.not_sampled} fuera de la muestra de este mes.")
    invited = [(row.payload or {})["args"]["to"][0] for row in sent[MICRO][:ANSWERS]]
    users = {u.email.lower(): u.key for u in simulator.sandbox.world.users}
    for address in invited:
        if address.lower() in users:
            simulator.act("micro", users[address.lower()], score=4)
    run_sync(settings, db)
    with db.session() as s:
        tied = s.scalars(select(SurveyResponse).where(
            SurveyResponse.kind == "micro", SurveyResponse.contact_id.is_not(None),
            SurveyResponse.client_id.is_not(None))).all()
    console.print(f"{len(invited)} usuarios respondieron por su enlace prellenado: "
                  f"{len(tied)} respuestas de micro-encuesta en el modelo, ligadas a su usuario "
                  "y a su cliente.")
