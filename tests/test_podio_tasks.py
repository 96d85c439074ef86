"""Podio tasks into the model (connectors/podio/tasks.py): open and completed tasks of the
configured apps, their client, completions and deletions on later runs, and the spacing of
runs — through the real client against the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import closing
from datetime import date

from sqlalchemy import select

from connectors.podio import actions
from connectors.podio.client import PodioClient
from connectors.podio.sync import sync_podio
from sandbox.server import Sandbox
from store.db import Database
from store.models import Client, Staff, Task, Ticket
from tests.test_podio_sync import by_stream, podio_settings

AM_USER = 1002  # am-tijuana-1 in config/staff.yaml


def _tasks(db: Database) -> dict[str, Task]:
    with db.session() as s:
        rows = s.scalars(select(Task)).all()
        s.expunge_all()
        return {t.text: t for t in rows}


def _task_calls(sandbox: Sandbox) -> int:
    return sandbox.calls.total("podio", "/task")


def test_tasks_are_synced_with_their_client_and_completion(sandbox: Sandbox, db: Database
                                                           ) -> None:
    settings = podio_settings(sandbox, db, podio_tasks_sync_minutes=0)
    sync_podio(settings, db, full=True)  # the items first: a task's client is found by them
    podio = sandbox.tools["podio"]
    ticket_item = podio.items("tickets")[0]
    client_item = podio.items("clientes")[0]
    with closing(PodioClient.from_settings(settings)) as api:
        on_ticket = actions.create_task(api, item_id=ticket_item, text="Revisar ticket",
                                        responsible_user_id=AM_USER, due_on=date(2026, 12, 4),
                                        marker="prueba:1")
        actions.create_task(api, item_id=client_item, text="Llamar al director",
                            responsible_user_id=AM_USER, due_on=date(2026, 12, 10),
                            marker="prueba:2")
        api.request("POST", f"/task/{on_ticket}/complete")

    report = by_stream(sync_podio(settings, db))["tareas"]
    assert report.error is None and report.counts.created == 2

    tasks = _tasks(db)
    with db.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.source_id == str(ticket_item))).one()
        client = s.scalars(select(Client).where(Client.source_id == str(client_item))).one()
        am = s.scalars(select(Staff).where(Staff.podio_user_id == AM_USER)).one()
    done, open_ = tasks["Revisar ticket"], tasks["Llamar al director"]
    assert (done.status, done.due_on, done.client_id) == ("completed", date(2026, 12, 4),
                                                         ticket.client_id)
    assert done.completed_at is not None and done.external_id == "prueba:1"
    assert (open_.status, open_.client_id, open_.responsible_id) == ("active", client.id,
                                                                     am.id)
    assert open_.completed_at is None and open_.ref_id == str(client_item)

    # Completed in Podio after the first run: the next run finds it among the completed.
    with closing(PodioClient.from_settings(settings)) as api:
        api.request("POST", f"/task/{open_.source_id}/complete")
    sync_podio(settings, db)
    assert _tasks(db)["Llamar al director"].status == "completed"

    # Deleted in Podio: no listing returns it, the read of the task says 404.
    with closing(PodioClient.from_settings(settings)) as api:
        again = actions.create_task(api, item_id=client_item, text="Se borrará",
                                    responsible_user_id=AM_USER, due_on=None, marker="prueba:3")
    sync_podio(settings, db)
    assert _tasks(db)["Se borrará"].deleted_at is None
    with closing(PodioClient.from_settings(settings)) as api:
        api.request("DELETE", f"/task/{again}")
    report = by_stream(sync_podio(settings, db))["tareas"]
    assert report.counts.deleted == 1 and _tasks(db)["Se borrará"].deleted_at is not None


def test_task_runs_are_spaced_by_the_setting(sandbox: Sandbox, db: Database) -> None:
    settings = podio_settings(sandbox, db)  # PODIO_TASKS_SYNC_MINUTES: 60 by default
    first = by_stream(sync_podio(settings, db))
    apps = len([a for a, _t in settings.podio_apps.values() if a])
    assert first["tareas"].error is None
    assert first["tareas"].api_calls == 2 * apps  # open + completed, one page each
    before = _task_calls(sandbox)
    assert "tareas" not in by_stream(sync_podio(settings, db))
    assert _task_calls(sandbox) == before  # within the hour: no task call at all
    assert "tareas" in by_stream(sync_podio(settings, db, full=True))
