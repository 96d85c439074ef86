"""Forms where the API documentation is silent: which submission time ``timestamp >``
compares (first or last). An edited answer reaches the model either way: through the
filter when it compares the last submission, else through the periodic unfiltered read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.google.sync import sync_forms
from sandbox.server import Sandbox
from store.db import Database
from store.models import SurveyResponse, SyncState, Ticket
from tests.test_google_sync import by_stream, google_settings


def _score(db: Database, rid: str) -> float | None:
    with db.session() as s:
        return s.scalars(select(SurveyResponse.score).where(
            SurveyResponse.source_id == rid)).one()


def _age_last_full_read(db: Database, hours: float) -> None:
    from store.db import utcnow

    with db.session() as s:
        for state in s.scalars(select(SyncState).where(SyncState.source == "forms")):
            state.state = {**(state.state or {}),
                           "last_full_read": (utcnow() - timedelta(hours=hours)).isoformat()}


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("compared", ["lastSubmittedTime", "createTime"])
def test_an_answer_edited_days_later_reaches_the_model_either_way(
        sandbox: Sandbox, db: Database, compared: str) -> None:
    google = sandbox.tools["google"]
    google.forms.filter_field = compared
    settings = google_settings(sandbox, db)
    form = settings.google_csat_form_id
    rid = google.submit_response(form, {"score": 5, "ticket": 4000001})
    sync_forms(settings, db)
    assert _score(db, rid) == 5.0
    sandbox.clock.advance(timedelta(days=1))
    google.submit_response(form, {"score": 4, "ticket": 4000002})  # moves the cursor on
    sync_forms(settings, db)
    sandbox.clock.advance(timedelta(days=1))
    google.edit_response(form, rid, {"score": 2, "ticket": 4000001})
    by_stream(sync_forms(settings, db))
    # through the filter only when it compares the last submission
    assert _score(db, rid) == (2.0 if compared == "lastSubmittedTime" else 5.0)
    _age_last_full_read(db, settings.google_forms_full_read_hours + 1)
    report = by_stream(sync_forms(settings, db))["csat"]
    assert report.error is None
    assert _score(db, rid) == 2.0  # the periodic unfiltered read, at the latest
    again = by_stream(sync_forms(settings, db))["csat"]  # and then filtered again
    assert again.counts.unchanged + again.counts.updated < report.counts.unchanged + 1


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("prefill", ["question_id", "opaque"])
def test_a_csat_answer_finds_its_ticket_whether_the_prefilled_link_works_or_not(
        sandbox: Sandbox, db: Database, prefill: str) -> None:
    """The survey link prefills the ticket number as entry.<int(questionId, 16)> (an
    unverified format). If the form ignores it, the answer is still tied to the ticket:
    the one the respondent's email reported and that closed last before the answer."""
    from connectors.google.mapping import prefilled_url
    from connectors.google.streams import load_config
    from connectors.podio.sync import sync_podio
    from store.models import Contact
    from tests.test_podio_sync import podio_settings

    google = sandbox.tools["google"]
    google.prefill_entries = prefill
    sync_podio(podio_settings(sandbox, db), db, full=True)
    with db.session() as s:
        ticket = s.scalars(select(Ticket).where(
            Ticket.closed_at.is_not(None), Ticket.contact_id.is_not(None))
            .order_by(Ticket.closed_at.desc())).first()
        assert ticket is not None
        email = s.get(Contact, ticket.contact_id).email
        ticket_id, item = ticket.id, ticket.source_id
    settings = google_settings(sandbox, db)
    csat = load_config(settings.config_dir).forms["csat"]
    form = google.forms.forms[settings.google_csat_form_id].resource()
    link = prefilled_url(form["responderUri"], {csat.question_of("ticket"): item,
                                                csat.question_of("email"): email})
    rid = google.respond_via_link(link, {"score": 5}, respondent_email=email)
    assert by_stream(sync_forms(settings, db))["csat"].error is None
    with db.session() as s:
        row = s.scalars(select(SurveyResponse).where(SurveyResponse.source_id == rid)).one()
        assert row.ticket_id == ticket_id
        assert row.ticket_source_id == (item if prefill == "question_id" else None)
