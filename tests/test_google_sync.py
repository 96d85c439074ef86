"""Forms and usage-sheet syncs end to end: the real libraries over HTTP against the sandbox,
into the model on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from connectors.google.sync import sync_forms, sync_sheets
from core.settings import Settings, load_settings
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.models import (
    ChangeEvent,
    Client,
    Contact,
    DeadLetter,
    School,
    SurveyResponse,
    SyncState,
    Ticket,
    UsageMetric,
)


def google_settings(sandbox: Sandbox, db: Database, **extra: Any) -> Settings:
    env = {k.lower(): v for k, v in sandbox.tools["google"].env().items()}
    return load_settings(**env, database_url=db.url, google_retry_base_seconds=0.01,
                         google_max_retry_seconds=5.0, **extra)


def by_stream(reports: list[Any]) -> dict[str, Any]:
    return {r.stream: r for r in reports}


def seen(report: Any) -> int:
    """Responses the sync received (whatever it did with them)."""
    c = report.counts
    return int(c.created + c.updated + c.unchanged + c.dead_lettered)


def test_first_form_sync_loads_every_answer(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    world = sandbox.world
    reports = by_stream(sync_forms(settings, db))
    csat_answers = [a for a in world.surveys if a.kind == "csat"]
    nps_answers = [a for a in world.surveys if a.kind == "nps"]
    assert reports["csat"].error is None and reports["nps"].error is None
    assert reports["csat"].counts.created == len(csat_answers)
    assert reports["nps"].counts.created == len(nps_answers)
    assert reports["csat"].api_calls == 1  # one page of up to 5,000 responses
    answer = csat_answers[-1]
    with db.session() as s:
        row = s.scalars(select(SurveyResponse).where(
            SurveyResponse.kind == "csat",
            SurveyResponse.ticket_source_id == str(podio_item_id("tickets", answer.ticket_key)))
        ).one()
        assert row.score == answer.score and row.email == answer.email
        assert row.comment == (answer.comment or None)
        assert row.form_id == settings.google_csat_form_id
        assert abs(row.submitted_at - answer.submitted_at) < timedelta(seconds=1)
        events = s.scalar(select(func.count()).select_from(ChangeEvent).where(
            ChangeEvent.entity == "survey_response", ChangeEvent.kind == "created"))
        assert events == len(world.surveys)
        cursor = s.scalars(select(SyncState.cursor).where(SyncState.stream == "csat")).one()
        assert cursor is not None and cursor.endswith("Z")


def test_incremental_form_sync_fetches_only_new_answers(sandbox: Sandbox, db: Database) -> None:
    # Without the safety overlap the filter returns exactly what is new (the default overlap
    # re-reads the last minute before the cursor; those come back as unchanged).
    settings = google_settings(sandbox, db, google_forms_overlap_seconds=0)
    google = sandbox.tools["google"]
    sync_forms(settings, db)
    sandbox.clock.advance(timedelta(hours=2))
    rid = google.submit_response(settings.google_csat_form_id, {
        "score": 2, "comment": "Nadie me respondió", "ticket": podio_item_id("tickets", 1),
        "email": "Alguien@Escuela.edu.test"})
    google.forms.listed.clear()
    reports = by_stream(sync_forms(settings, db))
    # The sandbox returned exactly the new answer: the filter `timestamp >` did the work.
    assert google.forms.listed == [1, 0, 0]  # csat, nps, micro (M4)
    assert seen(reports["csat"]) == 1 and reports["csat"].counts.created == 1
    assert seen(reports["nps"]) == 0 and seen(reports["micro"]) == 0
    assert reports["csat"].api_calls == 1 and reports["nps"].api_calls == 1
    with db.session() as s:
        row = s.scalars(select(SurveyResponse).where(SurveyResponse.source_id == rid)).one()
        assert (row.score, row.email) == (2.0, "alguien@escuela.edu.test")
    # Nothing new: one call per form, nothing written.
    again = by_stream(sync_forms(settings, db))
    assert sum(seen(r) for r in again.values()) == 0
    assert sum(r.api_calls for r in again.values()) == 3


def test_the_overlap_rereads_recent_answers_as_unchanged(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)  # default: 60 s overlap
    google = sandbox.tools["google"]
    sync_forms(settings, db)
    newest = google.submit_response(settings.google_nps_form_id, {"score": 10})
    sync_forms(settings, db)
    sandbox.clock.advance(timedelta(seconds=30))
    google.submit_response(settings.google_nps_form_id, {"score": 6})
    report = by_stream(sync_forms(settings, db))["nps"]
    assert (report.counts.created, report.counts.unchanged) == (1, 1)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(SurveyResponse).where(
            SurveyResponse.source_id == newest)) == 1


def test_an_edited_answer_updates_its_row(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    google = sandbox.tools["google"]
    rid = google.submit_response(settings.google_csat_form_id, {"score": 5, "ticket": 4000001})
    sync_forms(settings, db)
    sandbox.clock.advance(timedelta(minutes=30))
    google.edit_response(settings.google_csat_form_id, rid, {"score": 3, "ticket": 4000001})
    report = by_stream(sync_forms(settings, db))["csat"]
    assert report.counts.updated == 1
    with db.session() as s:
        row = s.scalars(select(SurveyResponse).where(SurveyResponse.source_id == rid)).one()
        assert row.score == 3.0
        change = s.scalars(select(ChangeEvent).where(
            ChangeEvent.entity_id == row.id, ChangeEvent.kind == "updated")).one()
        assert change.changes["score"] == [5.0, 3.0]


def test_answers_resolve_tickets_contacts_and_clients(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    google = sandbox.tools["google"]
    with db.session() as s:
        client = Client(source="podio", source_id=str(podio_item_id("clientes", 1)),
                        name="Colegio Prueba")
        s.add(client)
        s.flush()
        school = School(source="podio", source_id="2000001", client_id=client.id)
        s.add(school)
        s.flush()
        contact = Contact(source="podio", source_id="3000001", email="Dir@Prueba.edu.test",
                          school_id=school.id)
        ticket = Ticket(source="podio", source_id="4999999", client_id=client.id)
        s.add_all([contact, ticket])
        s.flush()
        ids = (client.id, contact.id, ticket.id)
    sandbox.clock.advance(timedelta(days=1))
    csat = google.submit_response(settings.google_csat_form_id, {
        "score": 5, "ticket": 4999999, "email": "dir@prueba.edu.test"})
    nps_by_email = google.submit_response(settings.google_nps_form_id, {
        "score": 9, "email": "dir@prueba.edu.test", "client": "otro"})
    nps_by_name = google.submit_response(settings.google_nps_form_id, {
        "score": 3, "email": "nadie@x.test", "client": " colegio prueba "})
    sync_forms(settings, db)
    with db.session() as s:
        rows = {r.source_id: r for r in s.scalars(select(SurveyResponse).where(
            SurveyResponse.source_id.in_([csat, nps_by_email, nps_by_name])))}
    client_id, contact_id, ticket_id = ids
    assert (rows[csat].ticket_id, rows[csat].contact_id, rows[csat].client_id) == (
        ticket_id, contact_id, client_id)
    assert (rows[nps_by_email].contact_id, rows[nps_by_email].client_id) == (contact_id,
                                                                             client_id)
    assert (rows[nps_by_name].contact_id, rows[nps_by_name].client_id) == (None, client_id)


def test_unparseable_answers_become_dead_letters(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    google = sandbox.tools["google"]
    bad_score = google.submit_response(settings.google_nps_form_id, {"score": 11})
    bad_ticket = google.submit_response(settings.google_csat_form_id,
                                        {"score": 4, "ticket": "el de ayer"})
    no_score = google.submit_response(settings.google_csat_form_id, {"comment": "hola"})
    reports = by_stream(sync_forms(settings, db))
    assert reports["csat"].counts.dead_lettered == 2
    assert reports["nps"].counts.dead_lettered == 1
    with db.session() as s:
        letters = {d.source_id: d.reason for d in s.scalars(select(DeadLetter))}
    assert "fuera de la escala del formulario 0-10" in letters[bad_score]
    assert "no es un id de item de Podio" in letters[bad_ticket]
    assert "sin respuesta a la pregunta de calificación 5d0a7c31" in letters[no_score]


def test_usage_sheet_sync_and_a_change_picked_up(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    google = sandbox.tools["google"]
    world = sandbox.world
    with db.session() as s:
        s.add(Client(source="podio", source_id=str(podio_item_id("clientes", 1)), name="C1"))
    first = sync_sheets(settings, db)[0]
    assert first.error is None and first.api_calls == 1
    assert first.counts.created == len(world.usage)
    row = next(r for r in world.usage if r.client_key == 1)
    with db.session() as s:
        metric = s.scalars(select(UsageMetric).where(
            UsageMetric.source_id == f"{podio_item_id('clientes', 1)}:{row.week_start}")).one()
        assert (metric.week_start, metric.active_users, metric.logins) == (
            row.week_start, row.active_users, row.logins)
        assert metric.client_id is not None
    # Someone corrects one cell and adds a row for a new week; one row disappears.
    values = google.sheet_values(settings.google_usage_spreadsheet_id, "Uso semanal")
    line = next(i for i, v in enumerate(values) if v[0] == podio_item_id("clientes", 1)
                and v[2] == row.week_start.isoformat()) + 1
    google.set_cells(settings.google_usage_spreadsheet_id, f"'Uso semanal'!D{line}", [[999]])
    last = len(values)
    google.set_cells(settings.google_usage_spreadsheet_id, f"'Uso semanal'!A{last}:F{last}",
                     [[podio_item_id("clientes", 2), "C2", "2026-11-16", 10, 20, 3]])
    second = sync_sheets(settings, db)[0]
    assert second.api_calls == 1
    assert (second.counts.updated, second.counts.created, second.counts.deleted) == (1, 1, 1)
    assert second.counts.unchanged == len(world.usage) - 2
    with db.session() as s:
        metric = s.scalars(select(UsageMetric).where(
            UsageMetric.source_id == f"{podio_item_id('clientes', 1)}:{row.week_start}")).one()
        assert metric.active_users == 999
        new = s.scalars(select(UsageMetric).where(UsageMetric.source_id == (
            f"{podio_item_id('clientes', 2)}:2026-11-16"))).one()
        assert new.week_start == date(2026, 11, 16)
        updates = s.scalars(select(ChangeEvent).where(ChangeEvent.entity == "usage_metric",
                                                      ChangeEvent.kind == "updated")).all()
        assert [u.changes for u in updates] == [{"active_users": [row.active_users, 999]}]


def test_usage_sheet_bad_rows_and_missing_columns(sandbox: Sandbox, db: Database) -> None:
    settings = google_settings(sandbox, db)
    google = sandbox.tools["google"]
    google.set_cells(settings.google_usage_spreadsheet_id, "'Uso semanal'!C3", [["pronto"]])
    report = sync_sheets(settings, db)[0]
    assert report.counts.dead_lettered == 1
    with db.session() as s:
        letter = s.scalars(select(DeadLetter).where(DeadLetter.stream == "usage")).one()
        assert letter.source_id == "row-3" and "no es una fecha" in letter.reason
    google.set_cells(settings.google_usage_spreadsheet_id, "'Uso semanal'!C1", [["fecha"]])
    broken = sync_sheets(settings, db)[0]
    assert broken.error is not None and "no tiene la columna semana" in broken.error
    with db.session() as s:
        state = s.scalars(select(SyncState).where(SyncState.stream == "usage")).one()
        assert state.last_status == "failed"
