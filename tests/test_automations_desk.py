"""The ticket-desk automations T1–T8, as shipped in config/rules/, end to end.

One scenario per store drives the sandbox as the desk would (through the tools' UI helpers,
so revisions, changelogs and webhooks happen as in the real tools), runs the real sync of
every source and a rule cycle after each step, and the tests assert what a person would
see in Podio, Jira and Gmail. The clock only moves forward (the syncs' cursors do too):
Wednesday 18 November 2026 12:00 in Tijuana, the following week, then Christmas.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from core.settings import PROJECT_ROOT, Settings, load_settings
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from rules.engine import CycleReport, run_cycle
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from store.db import Database
from store.models import ActionLedger, ChangeEvent, SurveyResponse, Ticket
from tests.conftest import _PG_SKIP, WORLD_NOW, _postgres_schema

TIJUANA = ZoneInfo("America/Tijuana")
AGENT = "agente-2@saeko.test"  # Karla Nava, a support agent
AGENT_PROFILE = 5010
DEV = "agente-3"  # the person who resolves issues in Jira
LEAD_USER = 1009  # agente-1, the desk lead named in t8's datos
COO_USER = 1001
# Copied with the shipped rules into each scenario's config folder.
CONFIG_FILES = ("calendar.yaml", "podio.yaml", "staff.yaml", "google.yaml")
TICKETS = "tickets"


def local(text: str) -> datetime:
    """'2026-11-20 17:30' in Tijuana -> naive UTC (what the sandbox clock holds)."""
    moment = datetime.fromisoformat(text).replace(tzinfo=TIJUANA)
    return moment.astimezone(UTC).replace(tzinfo=None)


def user_of(world: Any, client_key: int, role: str | None = None) -> Any:
    """The first user (of ``role``) of a world client."""
    school_client = {s.key: s.client_key for s in world.schools}
    return next(u for u in world.users if school_client[u.school_key] == client_key
                and (role is None or u.role == role))


@dataclass
class Desk:
    """The sandbox, the store and the rules of one scenario, plus what it observed."""

    sandbox: Sandbox
    db: Database
    settings: Settings
    runtime: ActionRuntime
    clients: dict[str, Any]
    seen: dict[str, Any] = field(default_factory=dict)
    reports: list[CycleReport] = field(default_factory=list)

    @property
    def podio(self) -> Any:
        return self.sandbox.tools["podio"]

    @property
    def jira(self) -> Any:
        return self.sandbox.tools["jira"]

    @property
    def google(self) -> Any:
        return self.sandbox.tools["google"]

    def at(self, when: str) -> None:
        moment = local(when)
        assert moment >= self.sandbox.clock.now(), "the scenario's clock only moves forward"
        self.sandbox.clock.freeze(moment)

    def cycle(self) -> CycleReport:
        """`saeko-sync run`: sync every source, then one rule cycle, at the sandbox's now."""
        synced = run_sync(self.settings, self.db, clients=self.clients)
        assert synced.ok, synced.errors + [r.error for r in synced.reports if r.error]
        report = run_cycle(self.settings, self.db, now=self.sandbox.clock.now(),
                           runtime=self.runtime)
        assert not report.problems, report.problems
        self.reports.append(report)
        return report

    def new_ticket(self, title: str, **fields: Any) -> int:
        return int(self.podio.create_item_as(AGENT, TICKETS, {"titulo": title, **fields}))

    def edit(self, item: int, **fields: Any) -> None:
        self.podio.update_item_as(AGENT, item, fields)

    def values(self, item: int) -> dict[str, Any]:
        return dict(self.podio.values(item))

    def ticket(self, item: int) -> Ticket:
        with self.db.session() as s:
            return s.scalars(select(Ticket).where(Ticket.source_id == str(item))).one()

    def issues_for(self, item: int) -> list[str]:
        """Jira issues whose Podio ticket field holds this item."""
        out = []
        for key in self.jira.issues():
            value = self.jira.issue(key)["fields"].get("customfield_10050")
            if value is not None and str(value).split(".")[0] == str(item):
                out.append(key)
        return out

    def messages_to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.google.sent_messages()
                if address in " ".join(m.get("to") or [])]


def _scenario_config(tmp: Path) -> Path:
    config = tmp / "config"
    (config / "rules").mkdir(parents=True)
    (tmp / "no-rules").mkdir()
    for name in CONFIG_FILES:
        shutil.copy(PROJECT_ROOT / "config" / name, config / name)
    shutil.copytree(PROJECT_ROOT / "config" / "plantillas", config / "plantillas")
    for rule in sorted((PROJECT_ROOT / "config" / "rules").glob("t[1-8]-*.yaml")):
        shutil.copy(rule, config / "rules" / rule.name)
    return config


def _stores() -> list[Any]:
    pg = pytest.param("postgresql", marks=pytest.mark.skipif(bool(_PG_SKIP),
                                                              reason=_PG_SKIP or ""))
    return ["sqlite", pg]


@contextmanager
def _store(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/store.db"
    else:
        yield from _postgres_schema()


@pytest.fixture(scope="module", params=_stores())
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp(f"desk-{request.param}")
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    with _store(request.param, tmp) as url, SandboxServer(box):
        db = Database(url)
        db.upgrade()
        config = _scenario_config(tmp)
        env = {k.lower(): v for k, v in box.env().items()
               if k.startswith(("PODIO_", "JIRA_", "GOOGLE_"))}
        base = {"database_url": url, "config_dir": config, "podio_retry_base_seconds": 0.01,
                "podio_rate_limit_backoff_seconds": 0.05, "rules_retry_base_seconds": 60,
                **env}
        settings = load_settings(**base)
        runtime = ActionRuntime(settings)
        try:
            clients = long_lived_clients(runtime, configured_sources(settings))
            # The world as it was before the automations existed: the first sync's events
            # go to an empty rule set, so the scenario below is all the rules see.
            quiet = load_settings(**base, rules_dir=tmp / "no-rules")
            first = run_sync(quiet, db, full=True, clients=clients)
            assert first.ok, first.errors
            run_cycle(quiet, db, now=WORLD_NOW, runtime=runtime)
            desk = Desk(box, db, settings, runtime, clients)
            play_scenario(desk)
            yield desk
        finally:
            runtime.close()
            db.dispose()


# --- the scenario ------------------------------------------------------------------------


def play_scenario(desk: Desk) -> None:
    """A week at the desk; ``desk.seen`` keeps what the tests look at later."""
    world, seen = desk.sandbox.world, desk.seen
    mirador = user_of(world, 1)  # client 1: Centro Educativo Mirador (AM, CSM)
    aurora = user_of(world, 2)  # client 2: Academia Aurora, a burbuja client
    seen["mirador_user"], seen["aurora_user"] = mirador, aurora

    # T1 — Wednesday 12:10: a ticket with only its title and the reporter's email…
    desk.at("2026-11-18 12:10")
    t1 = desk.new_ticket("No puedo generar la referencia de pago", **{
        "email-reportante": mirador.email.upper()})
    desk.sandbox.calls.reset()
    seen["t1_report"] = desk.cycle()
    seen["t1_puts"] = desk.sandbox.calls.total("podio", "PUT /item/")
    seen["t1"] = t1
    # …one where a person already chose the user and the module, and one with a title only
    # whose user is set later.
    desk.at("2026-11-18 12:20")
    kept = desk.new_ticket("Boleta con promedio incorrecto", **{
        "usuario": [podio_item_id("usuarios", mirador.key)], "modulo": "Otro",
        "prioridad": "Alta"})
    later = desk.new_ticket("Alta masiva de alumnos falla")
    desk.cycle()
    desk.at("2026-11-18 12:30")
    desk.edit(later, usuario=[podio_item_id("usuarios", aurora.key)])
    desk.cycle()
    seen.update(t1_kept=kept, t1_later=later)

    # T2 — opened Friday 17:30, answered Monday 09:30 (Tijuana).
    desk.at("2026-11-20 17:30")
    timing = desk.new_ticket("Duda sobre permisos de usuario", estatus="Nuevo", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-23 09:30")
    desk.edit(timing, estatus="En atención")
    desk.cycle()
    seen["t2"] = timing

    # T3 — a migration problem escalated Monday 10:05 (goes to DEV).
    desk.at("2026-11-23 10:00")
    escalated = desk.new_ticket("Faltan alumnos tras la migración", estatus="Nuevo",
                                prioridad="Alta", responsable=[AGENT_PROFILE], **{
                                    "usuario": [podio_item_id("usuarios", mirador.key)]})
    closed_by_hand = desk.new_ticket("Pago no reflejado en estado de cuenta", estatus="Nuevo",
                                     **{"usuario": [podio_item_id("usuarios", aurora.key)]})
    desk.cycle()
    desk.at("2026-11-23 10:05")
    desk.edit(escalated, estatus="Escalado")
    desk.edit(closed_by_hand, estatus="Escalado")
    seen["t3_report"] = desk.cycle()
    seen.update(t3=escalated, t5_closed=closed_by_hand)
    seen["t3_issues_first"] = desk.issues_for(escalated)
    # Escalated a second time, and the very same events evaluated again (as after a crash
    # before they were marked processed): still one issue.
    desk.at("2026-11-23 10:20")
    desk.edit(escalated, estatus="En atención")
    desk.cycle()
    desk.at("2026-11-23 10:25")
    desk.edit(escalated, estatus="Escalado")
    desk.cycle()
    with desk.db.session() as s:
        for event in s.scalars(select(ChangeEvent).where(ChangeEvent.entity == "ticket")):
            event.processed_at = None
    desk.cycle()

    # Development works on it; Support's issue for the other ticket stays open.
    key = desk.values(escalated)["jira"]
    seen["t3_key"] = key
    desk.at("2026-11-23 10:30")
    desk.jira.transition_as(DEV, key, "En desarrollo")
    desk.cycle()

    # T5 — the other escalated ticket is closed by hand while its Jira issue is open, and a
    # third one is sent to the AM.
    desk.at("2026-11-23 16:00")
    handoff = desk.new_ticket("Solicitud de capacitación", estatus="En atención", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-23 17:00")
    desk.edit(closed_by_hand, estatus="Cerrado")
    desk.edit(handoff, estatus="Enviado a AM")
    seen["t5_report"] = desk.cycle()
    seen["t5_handoff"] = handoff

    # T4 — Tuesday 11:00 Development approves the fix: the ticket goes to "Por validar";
    # Support also resolves the closed ticket's issue, which must stay closed.
    desk.at("2026-11-24 10:00")
    desk.jira.transition_as(DEV, key, "En pruebas")
    desk.cycle()
    desk.at("2026-11-24 11:00")
    desk.jira.transition_as(DEV, key, "Listo", resolution="Corregido")
    desk.jira.transition_as(DEV, desk.values(closed_by_hand)["jira"], "Resuelto",
                            resolution="Configuración ajustada")
    seen["t4_report"] = desk.cycle()

    # T6 — Tuesday 12:00 the agent records the answer: closed, one survey email.
    desk.at("2026-11-24 11:30")
    answered = desk.new_ticket("No recuerdo mi contraseña", estatus="Nuevo",
                               responsable=[AGENT_PROFILE], **{
                                   "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-11-24 12:00")
    desk.edit(answered, respuesta="Te enviamos un enlace para restablecer tu contraseña.")
    seen["t6_report"] = desk.cycle()
    desk.at("2026-11-24 12:10")
    desk.edit(answered, respuesta="Te enviamos un enlace para restablecer tu contraseña "
                                  "(revisa también tu carpeta de spam).")
    desk.cycle()
    seen["t6"] = answered
    # The answer written, synced, corrected and synced again before the next rule cycle
    # (two change events in one batch): still one close and one survey.
    desk.at("2026-11-24 12:20")
    twice = desk.new_ticket("Error al capturar datos de inscripción", estatus="En atención",
                            **{"usuario": [podio_item_id("usuarios", aurora.key)]})
    desk.cycle()
    desk.at("2026-11-24 12:40")
    desk.edit(twice, respuesta="Ya quedó corregida la captura.")
    assert run_sync(desk.settings, desk.db, clients=desk.clients).ok
    desk.edit(twice, respuesta="Ya quedó corregida la captura del alumno.")
    desk.cycle()
    seen["t6_twice"] = twice

    # T6/T7 — the user opens the survey link and rates 5.
    desk.at("2026-11-24 15:00")
    survey_mail = desk.messages_to(mirador.email)[-1]
    ticket_field = parse_qs(urlparse(_link(survey_mail["text"])).query)
    seen["t6_link_values"] = ticket_field
    prefilled = ticket_field[f"entry.{int('7b3c9e12', 16)}"][0]
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 5, "comment": "Muy rápida la atención, gracias", "ticket": prefilled,
        "email": mirador.email})
    seen["t7_report"] = desk.cycle()

    # T8 — Wednesday 09:15: a burbuja client's user rates 1, a standard client's user
    # rates 2, and a Directivo answers the NPS survey with a 3.
    desk.at("2026-11-25 09:15")
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 1, "comment": "Tardaron demasiado en responder",
        "ticket": str(later), "email": aurora.email})
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 2, "comment": "No me explicaron bien la solución",
        "ticket": str(timing), "email": mirador.email})
    director = user_of(world, 1, "Directivo")
    seen["t8_director"] = director
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": 3, "reason": "El soporte tarda demasiado", "email": director.email,
        "client": world.clients[0].name})
    seen["t8_report"] = desk.cycle()

    # T2 over a public holiday: opened Thursday 24 December 17:30, answered Monday 28 at
    # 09:30; Christmas (Friday) is not a business day.
    desk.at("2026-12-24 17:30")
    holiday = desk.new_ticket("Duda sobre permisos de usuario", estatus="Nuevo", **{
        "usuario": [podio_item_id("usuarios", mirador.key)]})
    desk.cycle()
    desk.at("2026-12-28 09:30")
    desk.edit(holiday, estatus="En atención")
    desk.cycle()
    seen["t2_holiday"] = holiday

    # Everything again: nothing may change.
    desk.at("2026-12-28 09:45")
    seen["before_rerun"] = state_of(desk)
    seen["rerun_report"] = desk.cycle()
    seen["after_rerun"] = state_of(desk)


def _link(text: str) -> str:
    match = re.search(r"https://docs\.google\.com/\S+", text)
    assert match, text
    return match.group(0)


def state_of(desk: Desk) -> dict[str, Any]:
    """Everything an automation could have changed: the ledger and the tools' state."""
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref, r.attempts)
                  for r in s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    podio = desk.podio
    items = {i: podio.values(i) for i in podio.items(TICKETS) + podio.items("clientes")}
    return {"ledger": ledger, "items": items, "tasks": podio.tasks(),
            "comments": {i: podio.comments(i) for i in podio.items(TICKETS)},
            "jira": {k: (desk.jira.issue(k)["fields"]["status"]["name"],
                         len(desk.jira.comments(k)), len(desk.jira.remote_links(k)))
                     for k in desk.jira.issues()},
            "mail": [(m["subject"], tuple(m["to"])) for m in desk.google.sent_messages()]}


# --- T1 ----------------------------------------------------------------------------------


def test_t1_fills_the_seven_key_fields_in_one_update(desk: Desk) -> None:
    item, user = desk.seen["t1"], desk.seen["mirador_user"]
    values = desk.values(item)
    school = podio_item_id("escuelas", user.school_key)
    assert values["usuario"] == [podio_item_id("usuarios", user.key)]  # by the email
    assert values["escuela"] == [school]
    assert values["cliente-burbuja"] == "No"
    assert values["am"] == [5003] and values["csm"] == [5008]  # Elena Quiroz, Natalia Robles
    assert values["producto"] == "Saeko Completo"
    assert values["modulo"] == "Cobranza"  # "referencia de pago"
    assert desk.seen["t1_puts"] == 1
    own = [r for r in desk.podio.revisions(item) if r["created_by"]["id"] == 1000]
    assert len(own) == 1
    outcome = desk.seen["t1_report"].rules["t1-autocompletar-ticket"]
    assert outcome.done == 1


def test_t1_never_overwrites_what_a_person_filled(desk: Desk) -> None:
    values = desk.values(desk.seen["t1_kept"])
    assert values["modulo"] == "Otro"  # chosen by the agent; the keywords say Calificaciones
    assert values["usuario"] == [podio_item_id("usuarios", desk.seen["mirador_user"].key)]
    assert values["prioridad"] == "Alta"
    assert values["am"] == [5003] and values["producto"] == "Saeko Completo"


def test_t1_fills_again_when_the_user_is_set_later(desk: Desk) -> None:
    values = desk.values(desk.seen["t1_later"])
    user = desk.seen["aurora_user"]
    assert values["modulo"] == "Inicio de ciclo"  # filled at creation from the title
    assert values["escuela"] == [podio_item_id("escuelas", user.school_key)]
    assert values["cliente-burbuja"] == "Sí" and values["am"] == [5004]  # Tomás Villalobos


# --- T2 ----------------------------------------------------------------------------------


def test_t2_first_response_in_business_hours(desk: Desk) -> None:
    values = desk.values(desk.seen["t2"])
    # Friday 17:30-18:00 and Monday 09:00-09:30: one business hour, not 64 clock hours.
    assert values["tiempo-primera-respuesta"] == 1.0
    assert values["fecha-primera-respuesta"]["start"] == "2026-11-23 17:30:00"  # UTC


def test_t2_a_public_holiday_is_not_business_time(desk: Desk) -> None:
    values = desk.values(desk.seen["t2_holiday"])
    assert values["tiempo-primera-respuesta"] == 1.0  # 10.0 if Christmas counted


def test_t2_incident_time_from_the_jira_history(desk: Desk) -> None:
    # Created Monday 10:05, resolved Tuesday 11:00: 7 h 55 min + 2 h of business time.
    values = desk.values(desk.seen["t3"])
    assert values["tiempo-incidencia"] == 9.92


# --- T3 ----------------------------------------------------------------------------------


def test_t3_creates_one_jira_issue_with_the_key_in_the_ticket(desk: Desk) -> None:
    item, key = desk.seen["t3"], desk.seen["t3_key"]
    assert desk.seen["t3_issues_first"] == [key]
    assert desk.issues_for(item) == [key]  # escalated twice, events re-evaluated: still one
    assert key.startswith("DEV-")  # module Migraciones -> Desarrollo (t3's table)
    issue = desk.jira.issue(key)["fields"]
    assert issue["summary"] == "Faltan alumnos tras la migración"
    assert issue["issuetype"]["name"] == "Error" and issue["priority"]["name"] == "High"
    links = desk.jira.remote_links(key)
    assert [link["object"]["url"] for link in links] == [f"https://podio.com/item/{item}"]
    assert desk.values(item)["jira"] == key
    comments = [c["value"] for c in desk.podio.comments(item)]
    assert any(f"Escalado a Jira: {key}" in c for c in comments)
    other = desk.values(desk.seen["t5_closed"])["jira"]
    assert other.startswith("SOP-")  # Cobranza -> Soporte N2
    assert len(desk.issues_for(desk.seen["t5_closed"])) == 1


# --- T4 ----------------------------------------------------------------------------------


def test_t4_resolved_issue_moves_the_ticket_to_por_validar(desk: Desk) -> None:
    item, key = desk.seen["t3"], desk.seen["t3_key"]
    assert desk.values(item)["estatus"] == "Por validar"
    texts = [c["value"] for c in desk.podio.comments(item)]
    resolved = [t for t in texts if key in t and "resolvió" in t]
    assert len(resolved) == 1
    assert "Desarrollo" in resolved[0] and "«Corregido»" in resolved[0]


def test_t4_leaves_a_closed_ticket_closed(desk: Desk) -> None:
    item = desk.seen["t5_closed"]
    assert desk.values(item)["estatus"] == "Cerrado"
    assert not any("resolvió" in c["value"] for c in desk.podio.comments(item))
    assert desk.seen["t4_report"].rules["t4-por-validar"].done == 2  # update + comment


# --- T5 ----------------------------------------------------------------------------------


def test_t5_handoff_closes_and_creates_the_am_task(desk: Desk) -> None:
    item = desk.seen["t5_handoff"]
    values = desk.values(item)
    assert values["estatus"] == "Enviado a AM"
    assert values["fecha-cierre"]["start"] == "2026-11-24 01:00:00"  # Monday 17:00 local
    assert values["tiempo-cierre"] == 1.0  # opened 16:00
    tasks = desk.podio.tasks(item)
    assert len(tasks) == 1
    assert tasks[0]["responsible"]["user_id"] == 1003  # Elena Quiroz, the client's AM
    assert tasks[0]["text"].startswith("Ticket enviado a tu espacio: «Solicitud de capacitación»")
    assert tasks[0]["due_date"] == "2026-11-24"  # one business day after Monday


def test_t5_manual_close_fills_closing_data_and_comments_the_open_issue(desk: Desk) -> None:
    item = desk.seen["t5_closed"]
    values = desk.values(item)
    assert values["fecha-cierre"]["start"] == "2026-11-24 01:00:00"
    assert values["tiempo-cierre"] == 7.0  # opened Monday 10:00, closed 17:00
    assert desk.podio.tasks(item) == []  # no handoff, no task
    comments = [c for c in desk.jira.comments(values["jira"])
                if "se cerró" in str(c.get("body"))]
    assert len(comments) == 1
    assert "sigue en «Abierto»" in str(comments[0]["body"])


# --- T6 ----------------------------------------------------------------------------------


def test_t6_answer_closes_the_ticket_and_sends_one_survey(desk: Desk) -> None:
    item, user = desk.seen["t6"], desk.seen["mirador_user"]
    values = desk.values(item)
    assert values["estatus"] == "Cerrado"
    assert values["fecha-cierre"]["start"] == "2026-11-24 20:00:00"  # Tuesday 12:00 local
    assert values["tiempo-cierre"] == 0.5
    mails = desk.messages_to(user.email)
    surveys = [m for m in mails if m["subject"].startswith(f"¿Cómo te atendimos? Ticket {item}")]
    assert len(surveys) == 1  # the answer was edited afterwards: still one survey
    assert desk.seen["t6_link_values"][f"entry.{int('7b3c9e12', 16)}"] == [str(item)]
    assert f"entry.{int('7b3c9e12', 16)}={item}" in surveys[0]["html"]
    assert "restablecer tu contraseña" in surveys[0]["text"]


def test_t6_two_answers_between_cycles_send_one_survey(desk: Desk) -> None:
    item = desk.seen["t6_twice"]
    assert desk.values(item)["estatus"] == "Cerrado"
    surveys = [m for m in desk.messages_to(desk.seen["aurora_user"].email)
               if m["subject"].startswith(f"¿Cómo te atendimos? Ticket {item}")]
    assert len(surveys) == 1


def test_t6_the_survey_answer_is_tied_back_to_the_ticket(desk: Desk) -> None:
    item = desk.seen["t6"]
    with desk.db.session() as s:
        answer = s.scalars(select(SurveyResponse).where(SurveyResponse.ticket_source_id ==
                                                        str(item))).one()
        assert answer.ticket_id == desk.ticket(item).id and answer.score == 5
    assert desk.values(item)["calificacion"] == 5.0


# --- T7 ----------------------------------------------------------------------------------


def test_t7_positive_rating_notifies_the_agent_and_the_am(desk: Desk) -> None:
    item = desk.seen["t6"]
    comments = [c["value"] for c in desk.podio.comments(item) if c["value"].startswith("⭐")]
    assert len(comments) == 1 and "5 de 5" in comments[0] and "Karla Nava" in comments[0]
    mails = [m for m in desk.google.sent_messages() if m["subject"].startswith("⭐ 5/5")]
    assert len(mails) == 1
    assert set(mails[0]["to"]) == {AGENT, "am-tijuana-2@saeko.test"}
    assert "Muy rápida la atención" in mails[0]["text"]


# --- T8 ----------------------------------------------------------------------------------


def _due(task: dict[str, Any]) -> str:
    return str(task.get("due_date"))


def test_t8_negative_csat_gives_the_desk_lead_a_task_due_next_business_day(desk: Desk
                                                                          ) -> None:
    tasks = desk.podio.tasks(desk.seen["t2"])  # rated 2, a standard client
    assert len(tasks) == 1
    assert tasks[0]["responsible"]["user_id"] == LEAD_USER
    assert tasks[0]["text"].startswith("Retroalimentación negativa (2/5)")
    assert "No me explicaron bien la solución" in tasks[0]["description"]
    assert _due(tasks[0]) == "2026-11-26"  # answered Wednesday -> Thursday


def test_t8_burbuja_client_is_escalated_to_the_coo(desk: Desk) -> None:
    tasks = desk.podio.tasks(desk.seen["t1_later"])  # rated 1, Academia Aurora (burbuja)
    by_user = {t["responsible"]["user_id"]: t for t in tasks}
    assert set(by_user) == {LEAD_USER, COO_USER}
    assert by_user[COO_USER]["text"].startswith("Escalamiento: cliente burbuja con CSAT 1/5")
    assert all(_due(t) == "2026-11-26" for t in tasks)
    mails = desk.messages_to("coo@saeko.test")
    assert [m["subject"] for m in mails] == [
        "Escalamiento: CSAT 1/5 de Academia Aurora (burbuja)"]
    assert "Tardaron demasiado en responder" in mails[0]["text"]


def test_t8_nps_detractor_gives_the_am_a_task_on_the_client(desk: Desk) -> None:
    client_item = podio_item_id("clientes", 1)
    tasks = desk.podio.tasks(client_item)
    assert len(tasks) == 1
    assert tasks[0]["responsible"]["user_id"] == 1003  # the client's AM
    assert tasks[0]["text"].startswith("NPS detractor (3/10)")
    assert "El soporte tarda demasiado" in tasks[0]["description"]
    assert _due(tasks[0]) == "2026-11-26"


# --- all of it again ---------------------------------------------------------------------


def test_rerunning_the_whole_cycle_changes_nothing(desk: Desk) -> None:
    before, after = desk.seen["before_rerun"], desk.seen["after_rerun"]
    assert after == before
    assert not desk.seen["rerun_report"].fired


def test_nothing_failed_along_the_way(desk: Desk) -> None:
    for report in desk.reports:
        for outcome in report.rules.values():
            assert not (outcome.failed or outcome.dead or outcome.held or outcome.errors), (
                outcome.rule_id, outcome.errors)



def test_the_demo_summary_shows_what_each_automation_wrote(desk: Desk) -> None:
    from rich.console import Console

    from jobs.demo import _print_automations

    console = Console(record=True, width=400)
    _print_automations(console, desk.settings, desk.db, desk.seen["t8_report"], "http://x")
    lines = console.export_text().splitlines()
    t8 = next(line for line in lines if "T8 · Tarea por calificación CSAT negativa" in line)
    assert "3 registros" in t8 and "4 tareas; 1 correos" in t8
    assert f"item {desk.seen['t2']}" in t8
    t3 = next(line for line in lines if "T3 · Escalar el ticket a Jira" in line)
    assert "0 registros" in t3
