"""Same work, same result: a ticket whose creation and escalation (or hand-off) are first
seen in ONE cycle ends as it does when a cycle runs after each change — T3 files the issue
in the project of the module T1 writes in that same cycle, and T5 finds the AM T1 wrote; a
Jira resolution and a close by hand seen together give T4's comment only when the close came
after the resolution; closing times are the moment of the change, not of the last edit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.clients import ActionRuntime
from jobs.cycle import run_sync
from rules.engine import run_cycle
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from tests.conftest import WORLD_NOW
from tests.desk_helpers import (
    AGENT,
    AGENT_PROFILE,
    DEV,
    Desk,
    answered_ticket,
    open_desk,
    scenario_config,
    user_of,
)
from tests.rules_helpers import SimulatedCrash


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    with SandboxServer(box), open_desk(box, f"sqlite:///{tmp_path}/store.db",
                                       scenario_config(tmp_path)) as desk:
        yield desk


def test_created_and_escalated_in_one_cycle_goes_to_the_modules_project(desk: Desk) -> None:
    user = user_of(desk.sandbox.world, 1)
    item = int(desk.podio.create_item_as(AGENT, "tickets", {
        "titulo": "Faltan alumnos tras la migración", "estatus": "Escalado",
        "prioridad": "Alta", "responsable": [AGENT_PROFILE],
        "usuario": [podio_item_id("usuarios", user.key)]}))
    desk.cycle()
    assert desk.values(item)["modulo"] == "Migraciones"  # T1, in the same cycle
    (key,) = desk.issues_for(item)
    assert key.startswith("DEV-")  # t3's table: Migraciones -> Desarrollo, not SOP
    assert desk.values(item)["jira"] == key


def test_created_and_handed_off_in_one_cycle_gets_the_am_task(desk: Desk) -> None:
    user = user_of(desk.sandbox.world, 1)
    item = int(desk.podio.create_item_as(AGENT, "tickets", {
        "titulo": "Duda sobre la renovación", "estatus": "Enviado a AM",
        "prioridad": "Media", "responsable": [AGENT_PROFILE],
        "usuario": [podio_item_id("usuarios", user.key)]}))
    desk.cycle()
    am = desk.values(item).get("am")
    assert am, "T1 fills the AM from the client"
    tasks = desk.podio.tasks(item)
    assert len(tasks) == 1, tasks
    desk.cycle()
    assert len(desk.podio.tasks(item)) == 1


def _escalated(desk: Desk, title: str) -> tuple[int, str]:
    """A ticket escalated Thursday 09:00 and its Jira issue (T3), in progress at DEV."""
    user = user_of(desk.sandbox.world, 1)
    desk.at("2026-11-19 09:00")
    item = desk.new_ticket(title, estatus="Escalado", prioridad="Alta",
                           responsable=[AGENT_PROFILE],
                           usuario=[podio_item_id("usuarios", user.key)])
    desk.cycle()
    (key,) = desk.issues_for(item)
    desk.jira.transition_as(DEV, key, "En desarrollo")
    desk.jira.transition_as(DEV, key, "En pruebas")
    desk.cycle()
    return item, key


def _resolution_comments(desk: Desk, item: int, key: str) -> list[str]:
    return [c["value"] for c in desk.podio.comments(item)
            if key in c["value"] and "resolvió" in c["value"]]


@pytest.mark.parametrize("cycles", ["after each change", "once after both"])
def test_resolved_then_closed_by_hand_gets_t4s_comment_however_often_cycles_run(
        desk: Desk, cycles: str) -> None:
    item, key = _escalated(desk, "Faltan alumnos tras la migración")
    desk.at("2026-11-19 11:00")
    desk.jira.transition_as(DEV, key, "Listo", resolution="Corregido")
    if cycles == "after each change":
        desk.cycle()
        assert desk.values(item)["estatus"] == "Por validar"
    desk.at("2026-11-19 11:30")
    desk.edit(item, estatus="Cerrado")  # the desk confirmed with the user and closed it
    desk.cycle()
    values = desk.values(item)
    assert values["estatus"] == "Cerrado"  # T4 never reopens what a person closed
    assert len(_resolution_comments(desk, item, key)) == 1
    assert values["fecha-cierre"]["start"] == "2026-11-19 19:30:00"  # T5: 11:30 in Tijuana
    desk.cycle()
    assert len(_resolution_comments(desk, item, key)) == 1


def test_closed_by_hand_then_resolved_in_one_cycle_gets_no_t4_comment(desk: Desk) -> None:
    item, key = _escalated(desk, "Error en la migración de alumnos")
    desk.at("2026-11-19 11:00")
    desk.edit(item, estatus="Cerrado")
    desk.at("2026-11-19 11:30")
    desk.jira.transition_as(DEV, key, "Listo", resolution="Corregido")
    desk.cycle()
    assert desk.values(item)["estatus"] == "Cerrado"
    assert _resolution_comments(desk, item, key) == []


def test_closing_time_is_the_answers_moment_even_after_a_crash_between_rules(
        desk: Desk) -> None:
    """T2 and T6 both react to the answer. The cycle dies right after T2's write (the one
    PUT that carries T6's fields too: rules.coalesce), before the ledger records it; the next
    sync reads that write back (the ticket's last edit moves to 12:30), and T6 still closes
    the ticket at the moment the agent answered, 12:00."""
    item, email = answered_ticket(desk)
    desk.at("2026-11-19 12:30")

    def crash(key: str) -> None:
        if key.startswith("t2-tiempo-primera-respuesta"):
            raise SimulatedCrash

    assert run_sync(desk.settings, desk.db, clients=desk.clients).ok
    with pytest.raises(SimulatedCrash):
        run_cycle(desk.settings, desk.db, now=desk.sandbox.clock.now(),
                  runtime=ActionRuntime(desk.settings, after_send=crash))
    desk.at("2026-11-19 13:00")
    desk.cycle()
    values = desk.values(item)
    assert values["fecha-primera-respuesta"]["start"] == "2026-11-19 20:00:00"  # 12:00
    assert values["estatus"] == "Cerrado"
    assert values["fecha-cierre"]["start"] == "2026-11-19 20:00:00"  # not 20:30
    assert values["tiempo-cierre"] == 1.0
    assert len(desk.messages_to(email)) == 1  # one CSAT survey
