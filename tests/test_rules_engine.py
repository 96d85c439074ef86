"""The rule engine end to end: the Podio sandbox over HTTP, the Podio sync, the model on
SQLite (and PostgreSQL when reachable), and outcomes asserted in the sandbox's state and
in the ledger — events firing, conditions, our own writes, schedules, timers, dry runs.
Effects made exactly once through crashes, failures and run modes:
tests/test_rules_exactly_once.py."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from rules import api
from rules.engine import run_cycle
from sandbox.server import Sandbox
from store.db import Database
from store.models import ActionLedger, ChangeEvent, RuleRun, RuleTimer, Ticket
from tests.rules_helpers import (
    AGENT,
    ESCALATED_COMMENT,
    LOCAL_NOON,
    ledger,
    new_ticket,
    resync,
    sqlite_only,
    switched_on,
    write_rule,
)


@pytest.fixture
def env(sandbox: Sandbox, db: Database, tmp_path: Path) -> dict[str, Any]:
    """A synced store whose initial change events were consumed by an empty rule set."""
    return switched_on(sandbox, db, tmp_path)


def test_event_rule_fires_once_and_never_again(env: dict[str, Any], db: Database) -> None:
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, "No abre el portal")
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert report.rules["aviso-escalado"].done == 2
    podio = env["podio"]
    assert [c["value"] for c in podio.comments(item)] == ["Escalado (Alta) por Diego Fuentes"]
    tasks = podio.tasks(item)
    assert len(tasks) == 1 and tasks[0]["text"] == "Dar seguimiento a No abre el portal"
    assert tasks[0]["responsible"]["user_id"] == 1009
    # A re-run, and a re-evaluation of the very same event (as after a crash before the
    # event was marked processed), change nothing.
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=5))
    with db.session() as s:
        ticket_id = s.scalars(select(Ticket.id).where(Ticket.source_id == str(item))).one()
        for event in s.scalars(select(ChangeEvent).where(ChangeEvent.entity_id == ticket_id,
                                                         ChangeEvent.entity == "ticket")):
            event.processed_at = None
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=10))
    assert report.rules["aviso-escalado"].done == 0
    assert len(podio.comments(item)) == 1 and len(podio.tasks(item)) == 1
    assert [row.status for row in ledger(db, "aviso-escalado")] == ["done", "done"]


@sqlite_only
def test_trace_explains_a_non_match_with_the_values_seen(env: dict[str, Any],
                                                         db: Database) -> None:
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, "Duda de permisos", prioridad="Media")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert env["podio"].comments(item) == []
    with db.session() as s:
        ticket_id = s.scalars(select(Ticket.id).where(Ticket.source_id == str(item))).one()
    runs = api.traces(db, "aviso-escalado", ticket_id)
    assert runs and runs[0]["matched"] is False
    text = api.format_traces(runs)
    assert '✘ ticket.prioridad in ["Alta", "Crítica"]' in text
    assert 'ticket.prioridad = "Media"' in text
    assert 'estatus: "Nuevo" → "Escalado"' in text
    assert "no se cumplieron las condiciones" in text


@sqlite_only
def test_own_writes_do_not_trigger_rules_again(env: dict[str, Any], db: Database) -> None:
    write_rule(env["config"], "eco.yaml", """
        id: subir-prioridad
        nombre: Toda prioridad cambiada pasa a Crítica
        entidad: ticket
        disparadores:
          - evento: cambio
            campo: prioridad
        acciones:
          - podio.actualizar:
              campos: {prioridad: Crítica}
          - podio.comentario:
              texto: "Prioridad ajustada"
        """)
    item = new_ticket(env, "Pago no reflejado", prioridad="Baja")
    podio = env["podio"]
    # Creation sets prioridad (a change from nothing): the rule fires once and writes Crítica.
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert podio.values(item)["prioridad"] == "Crítica" and len(podio.comments(item)) == 1
    with db.session() as s:  # written through: the model holds it before the next read
        assert s.scalars(select(Ticket.priority).where(Ticket.source_id == str(item))
                         ).one() == "Crítica"
    for minute in (1, 2):  # the sync reads our own write back: nothing fires
        resync(env, db)
        report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=minute))
        assert "subir-prioridad" not in report.rules
    assert len(podio.comments(item)) == 1
    # A person's change fires it again, and our answer to it does not loop.
    podio.update_item_as(AGENT, item, {"prioridad": "Media"})
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=3))
    assert report.rules["subir-prioridad"].done == 2
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=4))
    assert "subir-prioridad" not in report.rules
    assert podio.values(item)["prioridad"] == "Crítica" and len(podio.comments(item)) == 2


@sqlite_only
def test_a_persons_edit_is_not_swallowed_by_our_write_of_another_field(
        env: dict[str, Any], db: Database) -> None:
    """A person escalates; before the next read saeko-sync writes another field of the
    same ticket, so the latest revision is ours: the escalation still fires its rule."""
    write_rule(env["config"], "modulo.yaml", """
        id: modulo-al-crear
        nombre: Módulo al crear
        entidad: ticket
        disparadores:
          - evento: creado
        acciones:
          - podio.actualizar:
              campos: {modulo: Cobranza}
        """)
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, "Referencia de pago")  # read: created, not escalated
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})  # not read yet
    run_cycle(env["settings"], db, now=LOCAL_NOON)  # writes modulo: our revision is last
    assert env["podio"].values(item)["modulo"] == "Cobranza"
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    assert report.rules["aviso-escalado"].done == 2
    assert [c["value"] for c in env["podio"].comments(item)] == [
        "Escalado (Alta) por Diego Fuentes"]


@sqlite_only
def test_scheduled_rule_fires_once_per_period(env: dict[str, Any], db: Database) -> None:
    write_rule(env["config"], "diario.yaml", """
        id: recordatorio-diario
        nombre: Recordatorio diario de tickets abiertos
        entidad: ticket
        disparadores:
          - programa: "0 9 * * lun-vie"
            solo_horario_habil: true
        condiciones:
          - ticket.titulo == "Ticket programado"
        acciones:
          - podio.comentario:
              texto: "Recordatorio del {{ hoy | fecha }}"
        """)
    item = new_ticket(env, "Ticket programado")
    nine_local = datetime(2026, 11, 19, 17, 5)  # Thursday 09:05 in Tijuana
    run_cycle(env["settings"], db, now=nine_local)
    run_cycle(env["settings"], db, now=nine_local + timedelta(hours=2))
    assert [c["value"] for c in env["podio"].comments(item)] == ["Recordatorio del 19/11/2026"]
    run_cycle(env["settings"], db, now=nine_local + timedelta(days=1, minutes=10))
    run_cycle(env["settings"], db, now=nine_local + timedelta(days=1, hours=3))
    assert [c["value"] for c in env["podio"].comments(item)] == [
        "Recordatorio del 19/11/2026", "Recordatorio del 20/11/2026"]


DAILY_NINE = """
    id: recordatorio-diario
    nombre: Recordatorio diario de tickets abiertos
    entidad: ticket
    disparadores:
      - programa: "0 9 * * lun-vie"
    condiciones:
      - ticket.titulo == "Ticket tardío"
    acciones:
      - podio.comentario:
          texto: "Recordatorio del {{ hoy | fecha }}"
    """


@sqlite_only
def test_a_late_cycle_still_fires_the_first_slot_after_the_rule_was_switched_on(
        env: dict[str, Any], db: Database) -> None:
    """Switched on Wednesday at noon; the next cycle comes Thursday at 12:30 (a batched or
    delayed run): Thursday's 09:00 slot fires once, late — not lost for being > 1 h old."""
    write_rule(env["config"], "diario.yaml", DAILY_NINE)
    item = new_ticket(env, "Ticket tardío")
    run_cycle(env["settings"], db, now=LOCAL_NOON)  # Wednesday 12:00: its 09:00 is gone
    assert env["podio"].comments(item) == []
    thursday_late = datetime(2026, 11, 19, 20, 30)  # Thursday 12:30 in Tijuana
    run_cycle(env["settings"], db, now=thursday_late)
    run_cycle(env["settings"], db, now=thursday_late + timedelta(minutes=5))
    assert [c["value"] for c in env["podio"].comments(item)] == ["Recordatorio del 19/11/2026"]


@sqlite_only
def test_dry_run_writes_nothing(env: dict[str, Any], db: Database, sandbox: Sandbox) -> None:
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, "Simulación")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)

    def counts() -> tuple[int, ...]:
        with db.session() as s:
            return tuple(s.scalar(select(func.count()).select_from(model)) or 0 for model in
                         (ActionLedger, RuleRun, RuleTimer)) + (
                s.scalar(select(func.count()).select_from(ChangeEvent)
                         .where(ChangeEvent.processed_at.is_(None))) or 0,)

    before, calls_before = counts(), sandbox.calls.snapshot()
    results = api.dry_run(env["settings"], db, "aviso-escalado", now=LOCAL_NOON).traces
    assert counts() == before and sandbox.calls.snapshot() == calls_before
    matched = [t for t in results if t["resultado"] == "coincide"]
    assert len(matched) == 1
    assert [a["estado"] for a in matched[0]["acciones"]] == ["simulada", "simulada"]
    text = api.format_dry_run(api.dry_run(env["settings"], db, "aviso-escalado",
                                          now=LOCAL_NOON))
    assert "comentario en Podio item" in text and "no se escribió nada" in text
    with db.session() as s:
        ticket_id = s.scalars(select(Ticket.id).where(Ticket.source_id == str(item))).one()
    one = api.dry_run(env["settings"], db, "aviso-escalado", ticket_id, now=LOCAL_NOON).traces
    assert len(one) == 1 and one[0]["resultado"] == "coincide"
    assert counts() == before and env["podio"].comments(item) == []


def test_held_for_timer_survives_a_restart(env: dict[str, Any], db: Database) -> None:
    write_rule(env["config"], "por_validar.yaml", """
        id: por-validar-estancado
        nombre: Ticket en Por validar 2 horas hábiles
        entidad: ticket
        disparadores:
          - se_cumple: ticket.estatus == "Por validar" and ticket.titulo == "Esperando"
            durante: 2h
            horas_habiles: true
        acciones:
          - podio.comentario:
              texto: "Lleva 2 horas hábiles por validar"
        """)
    item = new_ticket(env, "Esperando", estatus="Por validar")
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    with db.session() as s:
        timer = s.scalars(select(RuleTimer)).one()
        assert timer.due_at == LOCAL_NOON + timedelta(hours=2)
    db.dispose()
    restarted = Database(db.url)  # a new process: only the store remembers the timer
    run_cycle(env["settings"], restarted, now=LOCAL_NOON + timedelta(hours=1))
    assert env["podio"].comments(item) == []
    run_cycle(env["settings"], restarted, now=LOCAL_NOON + timedelta(hours=2, minutes=1))
    run_cycle(env["settings"], restarted, now=LOCAL_NOON + timedelta(hours=4))
    assert [c["value"] for c in env["podio"].comments(item)] == [
        "Lleva 2 horas hábiles por validar"]
    restarted.dispose()


def _mass_comment_held(env: dict[str, Any], db: Database, extra: str = "") -> tuple[int, list[int]]:
    """A rule commenting every closed ticket of one client, over its limit of 5 effects: the
    first cycle holds it. Returns (runs held, the tickets' Podio item ids)."""
    write_rule(env["config"], "masivo.yaml", """
        id: comentar-cerrados
        nombre: Comentar todos los tickets cerrados de un cliente
        entidad: ticket
        limite_efectos: 5
        disparadores:
          - se_cumple: ticket.estatus == "Cerrado" and ticket.cliente.id_podio == "1000001"
        acciones:
          - podio.comentario:
              texto: "Aviso masivo"
        """ + textwrap.dedent(extra).replace("\n", "\n        "))
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    held = report.rules["comentar-cerrados"].held
    assert held > 5 and report.rules["comentar-cerrados"].done == 0
    with db.session() as s:
        items = [int(i) for i in s.scalars(select(Ticket.source_id).where(
            Ticket.status == "Cerrado", Ticket.client_id.is_not(None)))]
    return held, items


def test_storm_guard_holds_a_mass_effect_until_approved(env: dict[str, Any],
                                                        db: Database) -> None:
    held, items = _mass_comment_held(env, db)
    podio = env["podio"]
    assert all(podio.comments(i) == [] for i in items)
    assert len(api.held(db, "comentar-cerrados")) == held
    assert api.approve(db, "comentar-cerrados") == held
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    assert report.rules["comentar-cerrados"].done == held
    commented = [i for i in items if [c["value"] for c in podio.comments(i)] == ["Aviso masivo"]]
    assert len(commented) == held
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=2))
    assert sum(len(podio.comments(i)) for i in items) == held



def test_the_next_days_queued_runs_wait_for_the_held_ones(env: dict[str, Any],
                                                          db: Database) -> None:
    """M1's shape (modo: cola, una_vez_por with the day): the storm guard holds the first
    day's mass effect; the next day's runs of the same records queue behind the held ones and
    must not run before an admin approves (they did: queued rows behind a held one were
    resumed as if nothing were unfinished); released together, they are a mass effect too."""
    held, items = _mass_comment_held(env, db, """
        modo: cola
        una_vez_por: "{{ ticket.id }}:{{ hoy }}"
        """)
    podio = env["podio"]
    for hours in (24, 24.1, 24.2):  # the next day: new keys, queued behind the held runs
        run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(hours=hours))
    assert sum(len(podio.comments(i)) for i in items) == 0
    assert api.approve(db, "comentar-cerrados") == held
    for minutes in (1, 2):  # the approved runs; the queued ones, as many, are held in turn
        run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(hours=24, minutes=minutes))
    assert sum(len(podio.comments(i)) for i in items) == held
    assert api.approve(db, "comentar-cerrados") == held
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(hours=24, minutes=3))
    assert sum(len(podio.comments(i)) for i in items) == 2 * held


def test_discarding_a_held_mass_effect_does_not_send_the_runs_queued_behind_it(
        env: dict[str, Any], db: Database) -> None:
    held, items = _mass_comment_held(env, db, """
        modo: cola
        una_vez_por: "{{ ticket.id }}:{{ hoy }}"
        """)
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(hours=24))  # queued
    assert api.discard(db, "comentar-cerrados") == held
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(hours=24, minutes=1))
    assert report.rules["comentar-cerrados"].held == held  # the queued ones, held in turn
    assert sum(len(env["podio"].comments(i)) for i in items) == 0
    assert len(api.held(db, "comentar-cerrados")) == held


@sqlite_only
def test_a_broken_edit_leaves_the_last_good_version_running(env: dict[str, Any],
                                                            db: Database) -> None:
    path = write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    path.write_text(ESCALATED_COMMENT.replace("ticket.prioridad in", "ticket.prioridadd in"),
                    encoding="utf-8")
    item = new_ticket(env, "Editado a medias")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert report.fallbacks == ["aviso-escalado"]
    assert any("prioridadd" in p.message and p.line == 10 for p in report.problems)
    assert report.rules["aviso-escalado"].done == 2
    assert len(env["podio"].comments(item)) == 1
    (summary,) = [r for r in api.list_rules(env["settings"], db) if r.id == "aviso-escalado"]
    assert "última versión buena" in summary.state and summary.problems
    assert "prioridadd" in api.format_rule_list([summary])


ESCALATE_TO_JIRA = """
id: escalar-a-jira
nombre: Escalar a Jira y avisar al AM
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
    a: Escalado
condiciones:
  - ticket.jira is none
datos:
  proyecto_por_modulo: {Cobranza: DEV, Migraciones: DEV}
acciones:
  - jira.crear:
      proyecto: "{{ datos.proyecto_por_modulo[ticket.modulo] | default('SOP') }}"
      tipo: Error
      resumen: "{{ ticket.titulo }}"
      descripcion: "Escalado desde Podio por {{ ticket.responsable.nombre }}"
    id: incidencia
  - podio.actualizar:
      campos:
        jira: "{{ acciones.incidencia.ref }}"
  - gmail.enviar:
      para: "{{ ticket.am }}"
      asunto: "Ticket escalado: {{ ticket.titulo }}"
      plantilla: aviso_escalado
"""


@sqlite_only
def test_a_trace_links_a_podio_event_to_its_jira_and_gmail_effects(
        env: dict[str, Any], db: Database, sandbox: Sandbox) -> None:
    templates = env["config"] / "plantillas"
    (templates / "aviso_escalado.txt").write_text(
        "Hola {{ ticket.am.nombre }}: el ticket «{{ ticket.titulo }}» se escaló a "
        "{{ acciones.incidencia.ref }}.\n", encoding="utf-8")
    (templates / "aviso_escalado.html").write_text(
        "<p>Hola {{ ticket.am.nombre }}: <b>{{ ticket.titulo }}</b> → "
        "{{ acciones.incidencia.ref }}</p>\n", encoding="utf-8")
    write_rule(env["config"], "escalar.yaml", ESCALATE_TO_JIRA)
    item = new_ticket(env, "Error en <cobranza>", modulo="Cobranza", am=5002)
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert report.rules["escalar-a-jira"].done == 3, report.rules["escalar-a-jira"].errors
    rows = ledger(db, "escalar-a-jira")
    key = rows[0].external_ref
    assert key and key.startswith("DEV-")
    assert env["podio"].values(item)["jira"] == key
    issue = sandbox.tools["jira"].issue(key)
    assert issue["fields"]["summary"] == "Error en <cobranza>"
    (mail,) = [m for m in sandbox.tools["google"].sent_messages()
               if "Error en <cobranza>" in str(m)]
    assert "am-tijuana-1@saeko.test" in str(mail) or "@saeko.test" in str(mail)
    correlation = rows[0].correlation_id
    assert correlation and {r.correlation_id for r in rows} == {correlation}
    runs = api.traces_by_correlation(db, correlation)
    assert len(runs) == 1
    text = api.format_traces(runs)
    assert f"jira.crear: incidencia en Jira DEV: Error en <cobranza> [hecha → {key}]" in text
    assert "gmail.enviar: correo a" in text and "podio.actualizar" in text
    # Re-running changes nothing: one issue, one email.
    resync(env, db)
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=5))
    assert [r.status for r in ledger(db, "escalar-a-jira")] == ["done"] * 3
    assert len([m for m in sandbox.tools["google"].sent_messages()
                if "Error en <cobranza>" in str(m)]) == 1
