"""M7, escalations to the COO over the sandbox: one task and one email per cause, client
and period whichever rule asks (the shared «escalamiento» key): two critical tickets of a
burbuja client on one day are one escalation, a third the next day another; a CSAT and an
NPS answer of the same client in one week (two rules of T8) are one; a ticket of a TOP or
burbuja client without a first response after 8 business hours escalates once. Re-running
the cycles changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT
from rules import api
from rules.calendar import BusinessCalendar
from rules.functions import FUNCTIONS, Env
from sandbox.world import podio_item_id
from tests.conftest import WORLD_NOW
from tests.desk_helpers import COO_USER, Desk, account_desk, user_of

COO_EMAIL = "coo@saeko.test"
BURBUJA = 2  # Academia Aurora, a burbuja client
RULES = ("m7-escalamiento-coo.yaml", "t8-tarea-retro-negativa.yaml")
CALENDAR = BusinessCalendar.load(PROJECT_ROOT / "config")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    with account_desk(tmp_path, *RULES) as desk:
        yield desk


def _school_item(desk: Desk) -> int:
    school = next(s for s in desk.sandbox.world.schools if s.client_key == BURBUJA)
    return podio_item_id("escuelas", school.key)


def _coo(desk: Desk) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks = [t for t in desk.podio.tasks() if t["responsible"]["user_id"] == COO_USER]
    return tasks, desk.messages_to(COO_EMAIL)


def _state(desk: Desk) -> Any:
    return desk.podio.tasks(), desk.google.sent_messages()


def test_the_period_of_a_day() -> None:
    env = Env(WORLD_NOW, "America/Tijuana", CALENDAR)
    period = FUNCTIONS["periodo"].fn
    day = WORLD_NOW.date()
    assert period(env, day, "dia") == "2026-11-18"
    assert period(env, day, "semana") == "2026-S47"
    assert period(env, day, "mes") == "2026-11"
    assert period(env, day, "trimestre") == "2026-T4"  # M4's quarterly NPS
    assert period(env, WORLD_NOW.replace(month=1, day=2), "trimestre") == "2026-T1"
    with pytest.raises(ValueError, match="'dia', 'semana', 'mes' o 'trimestre'"):
        period(env, day, "año")


def test_critical_tickets_escalate_once_per_client_and_day(desk: Desk) -> None:
    desk.at("2026-11-19 10:00")
    first = desk.new_ticket("No abre el portal de pagos", escuela=[_school_item(desk)],
                            prioridad="Crítica", estatus="Nuevo")
    second = desk.new_ticket("Tampoco cargan las boletas", escuela=[_school_item(desk)],
                             prioridad="Alta", estatus="Nuevo")
    desk.cycle()
    tasks, mails = _coo(desk)
    assert len(tasks) == 1 and len(mails) == 1
    assert tasks[0]["ref"]["id"] == first
    assert "ticket crítico" in tasks[0]["text"] and "burbuja" in tasks[0]["text"]
    assert "No abre el portal de pagos" in mails[0]["text"]

    # The second ticket becomes critical the same day: already escalated.
    desk.at("2026-11-19 11:00")
    desk.edit(second, prioridad="Crítica")
    desk.cycle()
    assert _coo(desk) == (tasks, mails)
    runs = api.traces(desk.db, "m7-ticket-critico", desk.ticket(second).id, 5)
    notes = [a.get("nota", "") for run in runs for a in run["trace"]["acciones"]]
    assert any("ya escalado por la regla m7-ticket-critico" in n for n in notes), notes

    # The next day, a new critical ticket is a new escalation.
    desk.at("2026-11-20 10:00")
    desk.new_ticket("Se cayó la inscripción en línea", escuela=[_school_item(desk)],
                    prioridad="Crítica", estatus="Nuevo")
    desk.cycle()
    tasks, mails = _coo(desk)
    critical = [t for t in tasks if "ticket crítico" in t["text"]]
    assert len(critical) == 2 and len([m for m in mails if "crítico" in m["subject"]]) == 2
    # (the first two, still unanswered after 8 business hours, also breach the SLA: one
    # more escalation, of another cause, for the week)
    assert len([t for t in tasks if "sin respuesta" in t["text"]]) == 1
    state = _state(desk)
    desk.at("2026-11-20 10:30")
    desk.cycle()
    assert _state(desk) == state


def test_a_csat_and_an_nps_of_one_client_in_a_week_escalate_once(desk: Desk) -> None:
    world = desk.sandbox.world
    user = user_of(world, BURBUJA)
    desk.at("2026-11-19 10:00")
    ticket = desk.new_ticket("Duda de reinscripción", escuela=[_school_item(desk)],
                             estatus="Cerrado")  # answered and closed: no SLA escalation
    desk.cycle()
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 1, "comment": "Nadie me ayudó", "ticket": str(ticket), "email": user.email})
    desk.cycle()
    tasks, mails = _coo(desk)
    assert len(tasks) == 1 and len(mails) == 1
    assert "retroalimentación negativa de Academia Aurora" in mails[0]["subject"]
    assert "Primera respuesta negativa de la semana: CSAT 1/5" in mails[0]["text"]

    director = user_of(world, BURBUJA, "Directivo")
    desk.at("2026-11-20 10:00")
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": 2, "reason": "Mal soporte", "email": director.email,
        "client": next(c for c in world.clients if c.key == BURBUJA).name})
    desk.cycle()
    assert _coo(desk) == (tasks, mails)  # the same cause this week: the COO knows
    am_tasks = [t for t in desk.podio.tasks() if t["text"].startswith("NPS detractor")]
    assert len(am_tasks) == 1  # the AM's own follow-up is not an escalation: it is made

    # The next week the same cause escalates again.
    desk.at("2026-11-24 10:00")
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": 3, "reason": "Sigue igual", "email": director.email,
        "client": next(c for c in world.clients if c.key == BURBUJA).name})
    desk.cycle()
    tasks, mails = _coo(desk)
    assert len(tasks) == 2 and len(mails) == 2


def test_a_ticket_without_answer_after_eight_business_hours_escalates_once(
        desk: Desk) -> None:
    desk.at("2026-11-19 10:00")
    desk.new_ticket("No puedo subir calificaciones", escuela=[_school_item(desk)],
                    prioridad="Media", estatus="Nuevo")
    desk.cycle()
    desk.at("2026-11-19 17:30")  # 7.5 business hours: not yet
    desk.cycle()
    assert _coo(desk) == ([], [])
    desk.at("2026-11-20 10:00")  # 9 business hours
    desk.cycle()
    tasks, mails = _coo(desk)
    assert len(tasks) == 1 and len(mails) == 1
    assert "más de 8 horas hábiles sin respuesta" in tasks[0]["text"]
    state = _state(desk)
    desk.at("2026-11-20 12:00")
    desk.cycle()
    assert _state(desk) == state


def test_the_escalation_quotes_the_weeks_first_answer_whichever_rule_runs_first(
        desk: Desk) -> None:
    # Chaos (f) in small: an NPS answer at 10:00 and a CSAT answer at 10:30 seen by one
    # cycle; the CSAT rule runs first, and the escalation still quotes the NPS answer, as
    # a cycle after each answer would.
    world = desk.sandbox.world
    director = user_of(world, BURBUJA, "Directivo")
    desk.at("2026-11-19 09:30")
    ticket = desk.new_ticket("Duda de reinscripción", escuela=[_school_item(desk)],
                             estatus="Cerrado")
    desk.cycle()
    desk.at("2026-11-19 10:00")
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": 4, "reason": "Mal soporte", "email": director.email,
        "client": next(c for c in world.clients if c.key == BURBUJA).name})
    desk.at("2026-11-19 10:30")
    desk.google.submit_response(desk.google.ids["csat"], {
        "score": 1, "comment": "Nadie me ayudó", "ticket": str(ticket),
        "email": user_of(world, BURBUJA).email})
    desk.at("2026-11-19 11:00")
    desk.cycle()
    tasks, mails = _coo(desk)
    assert len(tasks) == 1 and len(mails) == 1
    assert "Primera respuesta negativa de la semana: NPS 4/10" in tasks[0]["description"]
    assert "«Mal soporte»" in mails[0]["text"]
