"""Effects made exactly once, end to end (sandbox over HTTP, Podio sync, the store): a crash
between sending an effect and recording it, or between two actions of one rule; a look-up
that fails; a new empty store; a rule that raises; retries, dead effects, a tool that is
down, and a rule firing again while its last run is unfinished (run modes)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from connectors.podio.sync import sync_podio
from rules import api
from rules.engine import run_cycle
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from tests.rules_helpers import (
    AGENT,
    AGENT_PROFILE,
    ESCALATED_COMMENT,
    LOCAL_NOON,
    SimulatedCrash,
    ledger,
    make_config_dir,
    new_ticket,
    resync,
    rule_settings,
    sqlite_only,
    switched_on,
    write_rule,
)


@pytest.fixture
def env(sandbox: Sandbox, db: Database, tmp_path: Path) -> dict[str, Any]:
    """A synced store whose initial change events were consumed by an empty rule set."""
    return switched_on(sandbox, db, tmp_path)


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
    env = switched_on(sandbox, db, tmp_path, rules_max_attempts=3)
    write_rule(env["config"], "aviso.yaml", ESCALATED_COMMENT)
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
