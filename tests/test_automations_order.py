"""Same work, same result: a ticket whose creation and escalation (or hand-off) are first
seen in ONE cycle ends as it does when a cycle runs after each change — T3 files the issue
in the project of the module T1 writes in that same cycle, and T5 finds the AM T1 wrote."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import load_settings
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from rules.actions.runtime import ActionRuntime
from rules.engine import run_cycle
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from store.db import Database
from tests.conftest import WORLD_NOW
from tests.test_automations_desk import AGENT, AGENT_PROFILE, Desk, _scenario_config, user_of


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    with SandboxServer(box):
        url = f"sqlite:///{tmp_path}/store.db"
        db = Database(url)
        db.upgrade()
        env = {k.lower(): v for k, v in box.env().items()
               if k.startswith(("PODIO_", "JIRA_", "GOOGLE_"))}
        settings = load_settings(database_url=url, config_dir=_scenario_config(tmp_path),
                                 podio_retry_base_seconds=0.01, **env)
        runtime = ActionRuntime(settings)
        try:
            clients = long_lived_clients(runtime, configured_sources(settings))
            assert run_sync(settings, db, full=True, clients=clients).ok
            run_cycle(settings, db, now=WORLD_NOW, runtime=runtime)  # switched on
            yield Desk(box, db, settings, runtime, clients)
        finally:
            runtime.close()
            db.dispose()


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
