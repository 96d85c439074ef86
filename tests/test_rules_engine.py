"""The rule engine end to end: the Podio sandbox over HTTP, the Podio sync, the model on
SQLite (and PostgreSQL when reachable), and outcomes asserted in the sandbox's state and
in the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.clients import ActionRuntime
from connectors.podio.sync import sync_podio
from rules import api
from rules.engine import run_cycle
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.models import ActionLedger, ChangeEvent, RuleRun, RuleTimer, Ticket
from tests.rules_helpers import AGENT, make_config_dir, rule_settings, write_rule

AGENT_PROFILE = 5009  # agente-1 in config/staff.yaml
LOCAL_NOON = datetime(2026, 11, 18, 20, 0)  # Wednesday 12:00 in Tijuana (UTC-8)

ESCALATED_COMMENT = """
id: aviso-escalado
nombre: Aviso al escalar
entidad: ticket
disparadores:
  - evento: cambio
    campo: estatus
    a: Escalado
condiciones:
  - ticket.prioridad in ["Alta", "Crítica"]
acciones:
  - podio.comentario:
      texto: "Escalado ({{ ticket.prioridad }}) por {{ ticket.responsable.nombre }}"
  - podio.tarea:
      texto: "Dar seguimiento a {{ ticket.titulo }}"
      responsable: "{{ ticket.responsable }}"
      vence: "{{ sumar_dias_habiles(hoy, 1) }}"
"""


# Store-independent behaviour runs on SQLite only, to keep the suite fast; the ledger,
# timers, leases and bulk loading are exercised on PostgreSQL by the other tests.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


class SimulatedCrash(BaseException):
    """The process dies right after the tool accepted an effect."""


@pytest.fixture
def env(sandbox: Sandbox, db: Database, tmp_path: Path) -> dict[str, Any]:
    """A synced store whose initial change events were consumed by an empty rule set."""
    config = make_config_dir(tmp_path)
    settings = rule_settings(config, db, sandbox)
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)
    return {"settings": settings, "config": config, "podio": sandbox.tools["podio"]}


def new_ticket(env: dict[str, Any], title: str, **fields: Any) -> int:
    values = {"titulo": title, "estatus": "Nuevo", "prioridad": "Alta",
              "escuela": podio_item_id("escuelas", 1), "responsable": AGENT_PROFILE, **fields}
    item = env["podio"].create_item_as(AGENT, "tickets", values)
    sync_podio(env["settings"], Database(env["settings"].database_url))
    return int(item)


def resync(env: dict[str, Any], db: Database) -> None:
    sync_podio(env["settings"], db)


def ledger(db: Database, rule_id: str) -> list[ActionLedger]:
    with db.session() as s:
        return list(s.scalars(select(ActionLedger).where(ActionLedger.rule_id == rule_id)
                              .order_by(ActionLedger.id)))


def escalate_and_crash_after_send(env: dict[str, Any], db: Database, title: str) -> int:
    """A ticket escalated under ESCALATED_COMMENT, and a cycle that dies right after Podio
    accepted the first effect (before the ledger records it). Returns the item id."""
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, title)
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)

    def crash(_key: str) -> None:
        raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        run_cycle(env["settings"], db, now=LOCAL_NOON,
                  runtime=ActionRuntime(env["settings"], after_send=crash))
    return item


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


def test_crash_between_send_and_record_is_reconciled(env: dict[str, Any],
                                                     db: Database) -> None:
    item = escalate_and_crash_after_send(env, db, "Crash justo después de enviar")
    assert len(env["podio"].comments(item)) == 1  # sent, but the ledger does not know
    # Both effects were planned before the first was sent.
    assert [r.status for r in ledger(db, "aviso-escalado")] == ["pending", "planned"]
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    assert report.rules["aviso-escalado"].reconciled == 1
    rows = ledger(db, "aviso-escalado")
    assert [r.status for r in rows] == ["done", "done"]
    assert rows[0].external_ref == f"comentario {env['podio'].comments(item)[0]['comment_id']}"
    assert len(env["podio"].comments(item)) == 1 and len(env["podio"].tasks(item)) == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_crash_between_two_actions_of_one_rule_loses_neither(
        env: dict[str, Any], db: Database, where: str) -> None:
    """Killed after the first action (which changes what the condition reads) is recorded
    done and before the second is sent — or right after the second was sent: on restart the
    second is sent from its plan, once, although the condition no longer holds."""
    write_rule(env["config"], "validar.yaml", """
        id: por-validar-y-avisar
        nombre: Por validar y avisar
        entidad: ticket
        disparadores:
          - evento: cambio
            campo: estatus
            a: Escalado
        condiciones:
          - ticket.estatus == "Escalado"
        acciones:
          - podio.actualizar:
              campos: {estatus: Por validar}
          - podio.comentario:
              texto: "Pasó a Por validar"
        """)
    item = new_ticket(env, "Se cae entre dos acciones")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)

    def crash(key: str) -> None:
        if key.endswith("|2"):
            raise SimulatedCrash

    hooks = {"before_send": crash} if where == "before" else {"after_send": crash}
    with pytest.raises(SimulatedCrash):
        run_cycle(env["settings"], db, now=LOCAL_NOON,
                  runtime=ActionRuntime(env["settings"], **hooks))
    assert env["podio"].values(item)["estatus"] == "Por validar"
    resync(env, db)
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=2))
    assert [c["value"] for c in env["podio"].comments(item)] == ["Pasó a Por validar"]
    assert [r.status for r in ledger(db, "por-validar-y-avisar")] == ["done", "done"]


def test_a_failed_look_up_is_not_taken_for_not_there(env: dict[str, Any], db: Database,
                                                      sandbox: Sandbox) -> None:
    """After a crash between send and done, the look-up by marker meets a 503: the effect
    stays failed with back-off (never sent blind); once Podio answers it is reconciled."""
    item = escalate_and_crash_after_send(env, db, "Podio no deja mirar")
    sandbox.faults.add(kind="status", tool="podio", method="GET", path="^/comment/item/",
                       status=503, count=100)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    first = ledger(db, "aviso-escalado")[0]
    assert first.status == "failed" and "no se reenvía a ciegas" in (first.error or "")
    assert report.rules["aviso-escalado"].done == 0
    assert len(env["podio"].comments(item)) == 1 and env["podio"].tasks(item) == []
    sandbox.faults.clear()
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=10))
    assert [r.status for r in ledger(db, "aviso-escalado")] == ["done", "done"]
    assert len(env["podio"].comments(item)) == 1 and len(env["podio"].tasks(item)) == 1


@sqlite_only
def test_a_new_empty_store_remembers_what_exists_and_resends_nothing(
        env: dict[str, Any], db: Database, sandbox: Sandbox, tmp_path: Path) -> None:
    """Moving to another database (e.g. SQLite -> PostgreSQL) against a workspace where the
    effects were already made: its first cycle fires nothing; what comes after, fires."""
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    item = new_ticket(env, "Ya avisado en la base vieja")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert len(env["podio"].comments(item)) == 1 and len(env["podio"].tasks(item)) == 1

    fresh = Database(f"sqlite:///{tmp_path}/otra.db")
    fresh.upgrade()
    settings = rule_settings(env["config"], fresh, sandbox)
    sync_podio(settings, fresh)
    report = run_cycle(settings, fresh, now=LOCAL_NOON + timedelta(minutes=1))
    assert report.remembered > 0 and not report.fired
    assert len(env["podio"].comments(item)) == 1 and len(env["podio"].tasks(item)) == 1
    # Switched on: a new escalation fires on the new store.
    later = env["podio"].create_item_as(AGENT, "tickets", {
        "titulo": "Nuevo tras el cambio", "estatus": "Escalado", "prioridad": "Alta",
        "escuela": podio_item_id("escuelas", 1), "responsable": AGENT_PROFILE})
    sync_podio(settings, fresh)
    report = run_cycle(settings, fresh, now=LOCAL_NOON + timedelta(minutes=2))
    assert report.rules["aviso-escalado"].done == 2
    assert len(env["podio"].comments(int(later))) == 1
    assert len(env["podio"].comments(item)) == 1
    fresh.dispose()


@sqlite_only
def test_a_rule_that_raises_keeps_its_events_for_a_retry(
        env: dict[str, Any], db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule crashing on a batch (a bug, a lost database connection…) does not lose the
    batch's events for it: the other rules go on, and it evaluates them again later."""
    from jobs.status import render, snapshot
    from rules.executor import Executor
    from store.models import RuleEventRetry

    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
    write_rule(env["config"], "otro.yaml", ESCALATED_COMMENT.replace(
        "id: aviso-escalado", "id: otro-aviso").replace("Escalado (", "También ("))
    item = new_ticket(env, "Regla que truena")
    env["podio"].update_item_as(AGENT, item, {"estatus": "Escalado"})
    resync(env, db)
    real = Executor.evaluate

    def broken(self: Executor, rule: Any, *args: Any, **kwargs: Any) -> int:
        if rule.id == "aviso-escalado":
            raise RuntimeError("se perdió la conexión")
        return real(self, rule, *args, **kwargs)

    monkeypatch.setattr(Executor, "evaluate", broken)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    assert "se perdió la conexión" in report.rules["aviso-escalado"].errors[0]
    assert report.rules["otro-aviso"].done == 2  # the other rule went on
    with db.session() as s:
        (retry,) = s.scalars(select(RuleEventRetry)).all()
        assert (retry.rule_id, retry.attempts) == ("aviso-escalado", 1)
    page = render(snapshot(db))  # what the operator sees on the status page
    assert "eventos guardados para reintentar" in page and "se perdió la conexión" in page
    monkeypatch.setattr(Executor, "evaluate", real)
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(seconds=30))  # backing off
    assert len(env["podio"].comments(item)) == 1
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=5))
    assert report.rules["aviso-escalado"].done == 2
    assert sorted(c["value"] for c in env["podio"].comments(item)) == [
        "Escalado (Alta) por Diego Fuentes", "También (Alta) por Diego Fuentes"]
    with db.session() as s:
        assert s.scalars(select(RuleEventRetry)).all() == []


def escalated_with_three_attempts(sandbox: Sandbox, db: Database,
                                  tmp_path: Path) -> dict[str, Any]:
    """A store switched on with RULES_MAX_ATTEMPTS=3, the ESCALATED_COMMENT rule, and a ticket
    just escalated (synced, not evaluated yet); ``env["item"]`` is its id."""
    config = make_config_dir(tmp_path)
    settings = rule_settings(config, db, sandbox, rules_max_attempts=3)
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)
    env = {"settings": settings, "config": config, "podio": sandbox.tools["podio"]}
    write_rule(config, "aviso.yaml", ESCALATED_COMMENT)
    env["item"] = new_ticket(env, "Podio falla al comentar")
    env["podio"].update_item_as(AGENT, env["item"], {"estatus": "Escalado"})
    resync(env, db)
    return env


@sqlite_only
def test_failed_action_is_retried_then_dead_with_its_error(sandbox: Sandbox, db: Database,
                                                           tmp_path: Path) -> None:
    env = escalated_with_three_attempts(sandbox, db, tmp_path)
    settings, item = env["settings"], env["item"]
    # Podio refuses the comment for a reason we do not know (not busy, not a bad request).
    sandbox.faults.add(kind="status", tool="podio", method="POST", path="^/comment/",
                       status=403, count=100)
    run_cycle(settings, db, now=LOCAL_NOON)
    row, task = ledger(db, "aviso-escalado")
    assert (row.status, row.attempts, task.status) == ("failed", 1, "planned")
    assert row.next_attempt_at == LOCAL_NOON + timedelta(seconds=60)
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(seconds=30))  # not due yet
    assert ledger(db, "aviso-escalado")[0].attempts == 1
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(seconds=61))
    assert ledger(db, "aviso-escalado")[0].attempts == 2
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(minutes=10))
    failures = api.failures(db, "aviso-escalado")
    assert [(f["status"], f["attempts"]) for f in failures] == [("dead", 3)]
    assert "403" in failures[0]["error"]
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(hours=5))
    assert ledger(db, "aviso-escalado")[0].attempts == 3
    assert ledger(db, "aviso-escalado")[1].status == "cancelled"  # came after a dead one
    assert env["podio"].comments(item) == [] and env["podio"].tasks(item) == []


@sqlite_only
def test_a_tool_that_is_down_uses_up_no_attempts(sandbox: Sandbox, db: Database,
                                                 tmp_path: Path) -> None:
    """Podio answers 503 for hours: the comment is tried again (at most every 30 min) far past
    RULES_MAX_ATTEMPTS, and goes out once Podio is back; only 3 days without an answer
    would make it dead."""
    env = escalated_with_three_attempts(sandbox, db, tmp_path)
    settings, item = env["settings"], env["item"]
    outage = sandbox.faults.add(kind="status", tool="podio", method="POST", path="^/comment/",
                                status=503, count=10_000)
    now = LOCAL_NOON
    for _ in range(8):
        run_cycle(settings, db, now=now)
        row = ledger(db, "aviso-escalado")[0]
        assert row.status == "failed", row.error
        assert row.next_attempt_at is not None
        assert row.next_attempt_at - now <= timedelta(minutes=30)
        now = row.next_attempt_at
    assert row.attempts == 8 > settings.rules_max_attempts
    sandbox.faults.remove(outage)
    run_cycle(settings, db, now=now)
    assert [c["value"] for c in env["podio"].comments(item)] == [
        "Escalado (Alta) por Diego Fuentes"]
    assert {r.status for r in ledger(db, "aviso-escalado")} == {"done"}

    other = new_ticket(env, "Podio caído tres días")
    env["podio"].update_item_as(AGENT, other, {"estatus": "Escalado"})
    resync(env, db)
    sandbox.faults.add(kind="status", tool="podio", method="POST", path="^/comment/",
                       status=503, count=10_000)
    run_cycle(settings, db, now=now)
    row = ledger(db, "aviso-escalado")[2]
    assert row.status == "failed" and row.created_at is not None
    run_cycle(settings, db, now=row.created_at + timedelta(days=3, minutes=1))
    failures = api.failures(db, "aviso-escalado")
    assert [f["status"] for f in failures] == ["dead"]
    assert "no respondió en 3 días" in failures[0]["error"]
    assert env["podio"].comments(other) == []


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
    results = api.dry_run(env["settings"], db, "aviso-escalado", now=LOCAL_NOON)
    assert counts() == before and sandbox.calls.snapshot() == calls_before
    matched = [t for t in results if t["resultado"] == "coincide"]
    assert len(matched) == 1
    assert [a["estado"] for a in matched[0]["acciones"]] == ["simulada", "simulada"]
    text = api.format_dry_run(results)
    assert "comentario en Podio item" in text and "no se escribió nada" in text
    with db.session() as s:
        ticket_id = s.scalars(select(Ticket.id).where(Ticket.source_id == str(item))).one()
    one = api.dry_run(env["settings"], db, "aviso-escalado", ticket_id, now=LOCAL_NOON)
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


def test_storm_guard_holds_a_mass_effect_until_approved(env: dict[str, Any],
                                                        db: Database) -> None:
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
        """)
    report = run_cycle(env["settings"], db, now=LOCAL_NOON)
    held = report.rules["comentar-cerrados"].held
    assert held > 5 and report.rules["comentar-cerrados"].done == 0
    podio = env["podio"]
    with db.session() as s:
        items = [int(i) for i in s.scalars(select(Ticket.source_id).where(
            Ticket.status == "Cerrado", Ticket.client_id.is_not(None)))]
    assert all(podio.comments(i) == [] for i in items)
    assert len(api.held(db, "comentar-cerrados")) == held
    assert api.approve(db, "comentar-cerrados") == held
    report = run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=1))
    assert report.rules["comentar-cerrados"].done == held
    commented = [i for i in items if [c["value"] for c in podio.comments(i)] == ["Aviso masivo"]]
    assert len(commented) == held
    run_cycle(env["settings"], db, now=LOCAL_NOON + timedelta(minutes=2))
    assert sum(len(podio.comments(i)) for i in items) == held


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


@pytest.mark.parametrize("mode", ["unico", "cola"])
@sqlite_only
def test_run_modes_when_a_rule_fires_again_while_unfinished(sandbox: Sandbox, db: Database,
                                                            tmp_path: Path, mode: str) -> None:
    config = make_config_dir(tmp_path)
    settings = rule_settings(config, db, sandbox, rules_retry_base_seconds=60)
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)
    env = {"settings": settings, "config": config, "podio": sandbox.tools["podio"]}
    write_rule(config, "modo.yaml", f"""
        id: comentar-prioridad
        nombre: Comentar cada cambio de prioridad
        modo: {mode}
        entidad: ticket
        disparadores:
          - evento: cambio
            campo: prioridad
        acciones:
          - podio.comentario:
              texto: "Prioridad {{{{ disparador.a }}}}"
        """)
    item = new_ticket(env, "Modo de ejecución", prioridad="Baja")
    run_cycle(settings, db, now=LOCAL_NOON)  # creation: comments "Prioridad Baja"
    fault = sandbox.faults.add(kind="status", tool="podio", method="POST",
                               path="^/comment/", status=503, count=100)
    env["podio"].update_item_as(AGENT, item, {"prioridad": "Media"})
    resync(env, db)
    run_cycle(settings, db, now=LOCAL_NOON)  # "Media" fails: waits for a retry
    env["podio"].update_item_as(AGENT, item, {"prioridad": "Alta"})
    resync(env, db)
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(seconds=10))  # "Alta" while unfinished
    fault.count = 0
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(minutes=2))  # retry of "Media" succeeds
    run_cycle(settings, db, now=LOCAL_NOON + timedelta(minutes=3))  # the queue moves on
    comments = [c["value"] for c in env["podio"].comments(item)]
    if mode == "unico":
        assert comments == ["Prioridad Baja", "Prioridad Media"]
        statuses = [r["status"] for r in api.traces(db, "comentar-prioridad")]
        assert "ignorada" in statuses
    else:
        assert comments == ["Prioridad Baja", "Prioridad Media", "Prioridad Alta"]
