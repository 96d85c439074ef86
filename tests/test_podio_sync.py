"""The Podio connector end to end: the real client code over HTTP against the sandbox,
into the model on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.podio import actions
from connectors.podio.client import PodioClient
from connectors.podio.mapping import convert, format_podio_time
from connectors.podio.sync import sync_podio
from core.errors import AuthError, TransientError
from core.settings import PROJECT_ROOT, Settings, load_settings
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.entities import FieldMap, load_mapping
from store.models import (
    ChangeEvent,
    Client,
    Contract,
    DeadLetter,
    School,
    Staff,
    SyncState,
    Ticket,
)

AGENT = "agente-1@saeko.test"
APPS = len(load_mapping(PROJECT_ROOT / "config").apps)


def podio_settings(sandbox: Sandbox, db: Database, **extra: Any) -> Settings:
    env: dict[str, Any] = {k.lower(): v for k, v in sandbox.env().items()
                           if k.startswith("PODIO_")}
    env |= {"database_url": db.url, "podio_retry_base_seconds": 0.01,
            "podio_rate_limit_backoff_seconds": 0.05, **extra}
    return load_settings(**env)


def filter_calls(sandbox: Sandbox) -> int:
    return sandbox.calls.total("podio", "/filter")


def by_stream(reports: list) -> dict[str, Any]:
    return {r.stream: r for r in reports}


def table_dump(db: Database, model: Any) -> list[tuple]:
    with db.session() as s:
        rows = s.scalars(select(model).order_by(model.source_id)).all()
        columns = [c.name for c in model.__table__.columns if c.name not in ("id", "synced_at")]
        return [tuple(getattr(r, c) for c in columns) for r in rows]


def test_full_sync_fills_the_model(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    reports = by_stream(sync_podio(podio_settings(sandbox, db), db))
    for app in ("clientes", "escuelas", "usuarios", "contratos", "facturas", "tickets"):
        assert reports[app].error is None
        assert reports[app].counts.created == len(podio.items(app)), app
    world = sandbox.world
    with_am = {c.key for c in world.clients if c.am}
    ticket = next(t for t in world.tickets
                  if t.complete and t.escalation and t.client_key in with_am)
    client = next(c for c in world.clients if c.key == ticket.client_key)
    with db.session() as s:
        row = s.scalars(select(Ticket).where(
            Ticket.source_id == str(podio_item_id("tickets", ticket.key)))).one()
        school = s.get(School, row.school_id)
        am = s.get(Staff, row.am_id)
        assert school is not None and school.source_id == str(podio_item_id("escuelas",
                                                                            ticket.school_key))
        assert row.client_id is not None and s.get(Client, row.client_id).name == client.name
        assert am is not None and am.key == client.am
        assert (row.title, row.module, row.status, row.jira_key) == (
            ticket.title, ticket.module, ticket.status, ticket.escalation.key)
        crow = s.scalars(select(Client).where(
            Client.source_id == str(podio_item_id("clientes", client.key)))).one()
        assert crow.mrr == Decimal(client.mrr) and crow.segment == client.segment
        assert crow.signed_on == client.signed_on and crow.burbuja == client.burbuja
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0


def test_incremental_sync_fetches_only_changes(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    settings = podio_settings(sandbox, db)
    sync_podio(settings, db)
    sandbox.calls.reset()
    idle = sync_podio(settings, db)
    assert filter_calls(sandbox) == APPS  # one call per app when nothing changed
    assert sum(r.counts.updated + r.counts.created for r in idle) == 0

    tickets = podio.items("tickets")[:3]
    for n, item_id in enumerate(tickets):
        podio.update_item_as(AGENT, item_id, {"prioridad": "Crítica", "respuesta": f"r{n}"})
    sandbox.calls.reset()
    reports = by_stream(sync_podio(settings, db))
    assert reports["tickets"].counts.updated == 3
    assert filter_calls(sandbox) == APPS  # 1 + ceil(3 / 500) for tickets, 1 for each other app
    with db.session() as s:
        rows = s.scalars(select(Ticket).where(Ticket.source_id.in_([str(t) for t in tickets])))
        assert {r.answer for r in rows} == {"r0", "r1", "r2"}
        events = s.scalars(select(ChangeEvent).where(ChangeEvent.kind == "updated")).all()
        assert all(e.changes["priority"][1] == "Crítica" for e in events)


def test_pages_by_time_across_many_pages(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    settings = podio_settings(sandbox, db, podio_page_size=25)
    reports = by_stream(sync_podio(settings, db))
    assert reports["tickets"].counts.created == len(podio.items("tickets"))
    assert reports["tickets"].api_calls >= len(podio.items("tickets")) // 25


def test_deleted_item_is_marked_not_forgotten(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    settings = podio_settings(sandbox, db)
    sync_podio(settings, db)
    gone = podio.items("contratos")[0]
    podio.delete_item_as(AGENT, gone)
    reports = by_stream(sync_podio(settings, db))
    assert reports["contratos"].counts.deleted == 1
    with db.session() as s:
        row = s.scalars(select(Contract).where(Contract.source_id == str(gone))).one()
        assert row.deleted_at is not None
        assert s.scalars(select(ChangeEvent).where(ChangeEvent.kind == "deleted")).one()


def test_malformed_item_is_dead_lettered_and_the_rest_syncs(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    bad = podio.items("tickets")[5]
    podio.inject_raw_values(bad, "fecha-cierre", [{"start": "31/02/2026"}])
    settings = podio_settings(sandbox, db)
    reports = by_stream(sync_podio(settings, db))
    assert reports["tickets"].counts.dead_lettered == 1
    assert reports["tickets"].counts.created == len(podio.items("tickets")) - 1
    with db.session() as s:
        letter = s.scalars(select(DeadLetter)).one()
        assert letter.source_id == str(bad) and "fecha-cierre" in letter.reason
    podio.update_item_as(AGENT, bad, {"fecha-cierre": {"start_date": "2026-11-10"}})
    sync_podio(settings, db)
    with db.session() as s:
        assert s.scalars(select(DeadLetter)).one().resolved_at is not None
        assert s.scalars(select(Ticket).where(Ticket.source_id == str(bad))).one()


def test_rate_limit_and_server_error_mid_sync_reach_the_same_state(
        sandbox: Sandbox, db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clean = Database(f"sqlite:///{tmp_path}/clean.db")
    clean.upgrade()
    sync_podio(podio_settings(sandbox, clean), clean)
    sandbox.faults.add(kind="status", tool="podio", path="/filter", status=420, count=2)
    sandbox.faults.add(kind="status", tool="podio", path="/item/app/\\d+/filter", status=500,
                       count=1)
    sandbox.faults.add(kind="drop", tool="podio", path="/filter", count=1)
    reports = sync_podio(podio_settings(sandbox, db), db)
    assert all(r.error is None for r in reports)
    assert sum(f["hits"] for f in sandbox.faults.describe()) == 4
    for model in (Client, School, Ticket, Contract):
        assert table_dump(db, model) == table_dump(clean, model)
    clean.dispose()


def test_expired_token_is_refreshed(sandbox: Sandbox, db: Database) -> None:
    settings = podio_settings(sandbox, db)
    client = PodioClient.from_settings(settings)
    sync_podio(settings, db, client=client)
    sandbox.tools["podio"].expire_tokens()
    before = sandbox.calls.total("podio", "/oauth/token")
    reports = sync_podio(settings, db, client=client)
    assert all(r.error is None for r in reports)
    assert sandbox.calls.total("podio", "/oauth/token") == before + 1  # one refresh, reused
    client.close()


def test_bad_credentials_name_the_setting(sandbox: Sandbox, db: Database) -> None:
    settings = podio_settings(sandbox, db, podio_password="wrong")
    client = PodioClient.from_settings(settings)
    with pytest.raises(AuthError, match="PODIO_USERNAME/PODIO_PASSWORD"):
        client.get_app(settings.podio_apps["tickets"][0])
    bad_key = PodioClient.from_settings(podio_settings(sandbox, db, podio_client_secret="x"))
    with pytest.raises(AuthError, match="PODIO_CLIENT_ID"):
        bad_key.get_app(settings.podio_apps["tickets"][0])


def test_update_fields_writes_every_type_in_one_call(sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    settings = podio_settings(sandbox, db)
    client = PodioClient.from_settings(settings)
    ticket = podio.items("tickets")[0]
    school = podio.items("escuelas")[1]
    closed = datetime(2026, 11, 17, 18, 30)
    sandbox.calls.reset()
    actions.update_fields(client, ticket, {
        "escuela": school, "am": 5003, "cliente-burbuja": True, "producto": "Saeko Cobranza",
        "modulo": "Cobranza", "fecha-cierre": closed, "tiempo-cierre": 3.5,
        "respuesta": "Listo"}, app_id=settings.podio_apps["tickets"][0])
    assert sandbox.calls.total("podio", "PUT /item/") == 1
    values = podio.values(ticket)
    assert values["escuela"] == [school] and values["am"] == [5003]
    assert values["cliente-burbuja"] == "Sí" and values["producto"] == "Saeko Cobranza"
    assert values["modulo"] == "Cobranza" and values["respuesta"] == "Listo"
    assert values["fecha-cierre"]["start"] == "2026-11-17 18:30:00"
    assert values["tiempo-cierre"] == 3.5
    # and back through our own reader, in the GET shapes of the reference
    item = podio.item(ticket)
    got = {f["external_id"]: f["values"] for f in item["fields"]}
    assert convert(FieldMap(field="f", type="datetime"), got["fecha-cierre"], {}) == closed
    assert convert(FieldMap(field="f", type="number"), got["tiempo-cierre"], {}) == 3.5
    assert convert(FieldMap(field="f", type="ref"), got["escuela"], {}) == str(school)
    contract = podio.item(podio.items("contratos")[0])
    calc = next(f for f in contract["fields"] if f["type"] == "calculation")
    assert isinstance(convert(FieldMap(field="f", type="number"), calc["values"], {}), float)
    money = next(f for f in contract["fields"] if f["type"] == "money")
    assert convert(FieldMap(field="f", type="money"), money["values"], {}) > 0
    inicio = next(f for f in contract["fields"] if f["external_id"] == "inicio")
    assert isinstance(convert(FieldMap(field="f", type="date"), inicio["values"], {}), date)
    client.close()


def test_tasks_and_comments_carry_their_marker_and_are_found_by_it(sandbox: Sandbox,
                                                                   db: Database) -> None:
    """The primitives create and find; a lost response is an error the ledger resolves
    by finding the marker (creating once is the ledger's job, tests/test_rules_exactly_once)."""
    podio = sandbox.tools["podio"]
    client = PodioClient.from_settings(podio_settings(sandbox, db))
    ticket = podio.items("tickets")[2]
    kwargs = dict(item_id=ticket, text="Revisar ticket", description="Calificación 1/5",
                  responsible_user_id=1002, due_on=date(2026, 11, 19), marker="rule:t8:1")
    first = actions.create_task(client, **kwargs)  # type: ignore[arg-type]
    assert actions.find_task(client, "rule:t8:1") == first
    assert actions.find_task(client, "rule:t8:2") is None
    sandbox.faults.add(kind="drop_after", tool="podio", path="^/task/", method="POST")
    with pytest.raises(TransientError):
        actions.create_task(client, **{**kwargs, "marker": "rule:t8:2"})  # type: ignore[arg-type]
    again = actions.find_task(client, "rule:t8:2")  # it was made: the answer was lost
    tasks = [t for t in podio.tasks(ticket) if t["external_id"].startswith("rule:t8")]
    assert again is not None and sorted(t["task_id"] for t in tasks) == sorted([first, again])
    comment = actions.add_comment(client, ticket, "Resuelto en Jira: Corregido", "rule:t4:1")
    assert actions.find_comment(client, ticket, "rule:t4:1") == comment
    assert actions.find_comment(client, ticket, "rule:t4:2") is None
    assert [c["value"] for c in podio.comments(ticket)
            if c.get("external_id") == "rule:t4:1"] == ["Resuelto en Jira: Corregido"]
    client.close()


def test_a_failed_page_keeps_the_committed_ones_and_the_next_sync_resumes(
        sandbox: Sandbox, db: Database) -> None:
    podio = sandbox.tools["podio"]
    settings = podio_settings(sandbox, db, podio_page_size=25)
    sandbox.faults.add(kind="status", tool="podio", status=500, skip=2, count=50,
                       path=f"/item/app/{settings.podio_apps['tickets'][0]}/filter")
    failed = by_stream(sync_podio(settings, db))["tickets"]
    assert failed.error is not None and failed.counts.created == 50
    with db.session() as s:
        state = s.scalars(select(SyncState).where(SyncState.source == "podio",
                                                  SyncState.stream == "tickets")).one()
        newest = s.scalar(select(func.max(Ticket.source_updated_at)))
        assert state.last_status == "failed"
        assert state.cursor == format_podio_time(newest)
        assert s.scalar(select(func.count()).select_from(Ticket)) == 50
    sandbox.faults.clear()
    resumed = by_stream(sync_podio(settings, db))["tickets"]
    assert resumed.error is None
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == len(podio.items("tickets"))
