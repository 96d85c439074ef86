"""The ticket-desk automations T1–T8, as shipped in config/rules/, end to end.

One scenario per store drives the sandbox as the desk would (through the tools' UI helpers,
so revisions, changelogs and webhooks happen as in the real tools), runs the real sync of
every source and a rule cycle after each step, and the tests assert what a person would
see in Podio, Jira and Gmail. The clock only moves forward (the syncs' cursors do too):
Wednesday 18 November 2026 12:00 in Tijuana, the following week, then Christmas. The desk
and the scenario live in tests/desk_helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from core.settings import load_settings
from jobs.cycle import configured_sources, long_lived_clients, run_sync
from rules.engine import run_cycle
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from store.db import Database
from store.models import SurveyResponse
from tests.conftest import WORLD_NOW
from tests.desk_helpers import (
    AGENT,
    COO_USER,
    LEAD_USER,
    Desk,
    auth_env,
    play_scenario,
    scenario_config,
    store,
    stores,
)


def _desks() -> list[Any]:
    """Every store with the integration user, and SQLite with app tokens only."""
    return [pytest.param((kind.values[0] if hasattr(kind, "values") else kind, "user"),
                         marks=getattr(kind, "marks", ()),
                         id=f"{kind.values[0] if hasattr(kind, 'values') else kind}-user")
            for kind in stores()] + [pytest.param(("sqlite", "app_tokens"),
                                                  id="sqlite-app_tokens")]


@pytest.fixture(scope="module", params=_desks())
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Desk]:
    kind, auth = request.param
    tmp = tmp_path_factory.mktemp(f"desk-{kind}-{auth}")
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    with store(kind, tmp) as url, SandboxServer(box):
        db = Database(url)
        db.upgrade()
        config = scenario_config(tmp)
        env = {k.lower(): v for k, v in auth_env(box.env(), auth).items()
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
    # ours: the integration user (1000), or the tickets app itself with app tokens only
    ours = {("user", 1000), ("app", desk.podio.app_id("tickets"))}
    own = [r for r in desk.podio.revisions(item)
           if (r["created_by"]["type"], r["created_by"]["id"]) in ours]
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
    # the link back is the item's own link, as Podio gave it to the sync (stored, not re-read)
    assert [link["object"]["url"] for link in links] == [desk.podio.item(item)["link"]]
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
    assert [t["responsible"]["user_id"] for t in tasks] == [LEAD_USER]
    assert _due(tasks[0]) == "2026-11-26"
    # M7: the escalation is the client's (one per client and week), on the client
    coo = [t for t in desk.podio.tasks(podio_item_id("clientes", 2))
           if t["responsible"]["user_id"] == COO_USER]
    assert [t["text"] for t in coo] == [
        "Escalamiento: retroalimentación negativa de Academia Aurora (cliente burbuja)"]
    assert "Primera respuesta negativa de la semana: CSAT 1/5" in coo[0]["description"]
    assert _due(coo[0]) == "2026-11-26"
    mails = desk.messages_to("coo@saeko.test")
    assert [m["subject"] for m in mails] == [
        "Escalamiento: retroalimentación negativa de Academia Aurora (burbuja)"]
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
