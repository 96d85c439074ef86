"""The Jira connector end to end: the real `jira` library over HTTP against the sandbox,
into the model on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from math import ceil
from typing import Any

import pytest
from jira import JIRA
from sqlalchemy import select

from connectors.jira.client import JiraClient
from connectors.jira.connector import health as check_jira
from connectors.jira.sync import sync_issue, sync_jira
from connectors.jira.timing import incident_hours
from core.errors import AuthError, ConfigError
from core.settings import Settings, load_settings
from jobs.cycle import run_sync
from jobs.doctor import run_checks
from sandbox.jira.site import DEMO_API_TOKEN, DEMO_EMAIL
from sandbox.server import Sandbox
from sandbox.world import Escalation, podio_item_id
from store.db import Database
from store.models import ChangeEvent, Incident, IncidentStatusChange, SyncState, Ticket
from tests.conftest import WORLD_NOW

AGENT = "agente-2"


def jira_settings(sandbox: Sandbox, db: Database, **extra: Any) -> Settings:
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("JIRA_")}
    env.update(extra)
    return load_settings(**env, database_url=db.url)


def searches(sandbox: Sandbox) -> int:
    return sandbox.calls.total("jira", "search/jql")


def incident(db: Database, key: str) -> Incident:
    with db.session() as s:
        return s.scalars(select(Incident).where(Incident.key == key)).one()


def escalations(sandbox: Sandbox) -> list[tuple[int, Escalation]]:
    return [(t.key, t.escalation) for t in sandbox.world.tickets if t.escalation]


def ms(moment: Any) -> Any:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def open_issue(sandbox: Sandbox, project: str = "SOP") -> str:
    jira = sandbox.tools["jira"]
    return next(key for _t, e in escalations(sandbox)
                if e.project == project and jira.issue(key := e.key)["fields"]["status"][
                    "statusCategory"]["key"] != "done")


def test_full_sync_brings_every_issue_with_its_history(sandbox: Sandbox, db: Database) -> None:
    jira = sandbox.tools["jira"]
    [report] = sync_jira(jira_settings(sandbox, db), db)
    assert report.error is None
    assert report.counts.created == len(jira.issues()) > 20
    assert searches(sandbox) == 1  # fewer issues than a page
    assert sandbox.calls.total("jira", "serverInfo") == 1
    # the resolved escalations carry their resolution time from the changelog
    _ticket, done = next((t, e) for t, e in escalations(sandbox) if e.resolved_at and
                         len(e.history) >= 2)
    row = incident(db, done.key)
    assert (row.status, row.status_category, row.resolution) == (
        done.status, "done", done.resolution)
    assert row.created_at == ms(done.created_at)
    assert row.resolved_at == ms(done.resolved_at)
    with db.session() as s:
        history = s.scalars(select(IncidentStatusChange).where(
            IncidentStatusChange.incident_id == row.id).order_by(
            IncidentStatusChange.changed_at)).all()
        assert [(h.from_status, h.to_status) for h in history] == [
            (f, t) for _at, f, t in done.history]
        assert history[-1].to_category == "done"
        hours = incident_hours(s, row.id)
    assert hours == pytest.approx((ms(done.resolved_at) - ms(done.created_at)).total_seconds()
                                  / 3600)
    still_open = incident(db, open_issue(sandbox))
    assert still_open.resolved_at is None
    with db.session() as s:
        assert incident_hours(s, still_open.id) is None


def test_incremental_sync_fetches_only_what_changed(sandbox: Sandbox, db: Database) -> None:
    jira = sandbox.tools["jira"]
    settings = jira_settings(sandbox, db)
    sync_jira(settings, db)
    sandbox.calls.reset()
    [idle] = sync_jira(settings, db)
    assert (idle.counts.created, idle.counts.updated) == (0, 0)
    assert searches(sandbox) == 1
    assert sandbox.calls.total("jira", "myself") == 0  # the JQL zone is remembered
    assert idle.counts.unchanged <= 2  # only the overlap window is re-read

    sandbox.clock.advance(timedelta(hours=1))
    moved = open_issue(sandbox)
    jira.transition_as(AGENT, moved, "Resuelto", resolution="Corregido")
    renamed = open_issue(sandbox, "DEV")
    library = JIRA(server=jira.base, basic_auth=(DEMO_EMAIL, DEMO_API_TOKEN))
    library.issue(renamed).update(summary="Cobranza no refleja pagos (renombrado)")
    sandbox.calls.reset()
    [report] = sync_jira(settings, db)
    assert report.error is None
    assert (report.counts.created, report.counts.updated) == (0, 2)
    assert searches(sandbox) == 1
    resolved = incident(db, moved)
    assert (resolved.status, resolved.resolution) == ("Resuelto", "Corregido")
    assert resolved.resolved_at == WORLD_NOW + timedelta(hours=1)
    assert incident(db, renamed).summary.endswith("(renombrado)")
    with db.session() as s:
        events = s.scalars(select(ChangeEvent).where(ChangeEvent.entity == "incident",
                                                     ChangeEvent.entity_id == resolved.id,
                                                     ChangeEvent.kind == "updated")).all()
        assert events and events[-1].changes["status_category"][1] == "done"
        cursor = s.scalars(select(SyncState.cursor).where(SyncState.source == "jira")).one()
    assert cursor.startswith((WORLD_NOW + timedelta(hours=1)).isoformat()[:16])


def test_pagination_follows_next_page_tokens(sandbox: Sandbox, db: Database) -> None:
    total = len(sandbox.tools["jira"].issues())
    [report] = sync_jira(jira_settings(sandbox, db, jira_page_size=5), db)
    assert report.error is None and report.counts.created == total
    assert searches(sandbox) == ceil(total / 5) >= 6
    with db.session() as s:
        assert len(s.scalars(select(Incident.source_id)).all()) == total


def test_podio_link_resolved_now_and_later(sandbox: Sandbox, db: Database) -> None:
    jira = sandbox.tools["jira"]
    (first_ticket, first), (later_ticket, later) = escalations(sandbox)[:2]
    with db.session() as s:
        s.add(Ticket(source="podio", source_id=str(podio_item_id("tickets", first_ticket)),
                     title="t1"))
    settings = jira_settings(sandbox, db)
    sync_jira(settings, db)
    # an issue linked to its ticket only by a remote link (no custom field)
    library = JIRA(server=jira.base, basic_auth=(DEMO_EMAIL, DEMO_API_TOKEN))
    sandbox.clock.advance(timedelta(minutes=30))
    by_hand = library.create_issue(fields={"project": {"key": "PROD"},
                                           "issuetype": {"name": "Mejora"},
                                           "summary": "Reporte de cierre por grupo"})
    library.add_remote_link(by_hand.key, {"url": "https://podio.com/x", "title": "Ticket"},
                            globalId="system=podio&item_id=4000999")
    with db.session() as s:
        for source_id in (str(podio_item_id("tickets", later_ticket)), "4000999"):
            s.add(Ticket(source="podio", source_id=source_id, title=source_id))
    [report] = sync_jira(settings, db)
    assert report.counts.created == 1
    with db.session() as s:
        tickets = {t.source_id: t.id for t in s.scalars(select(Ticket))}
    assert incident(db, first.key).ticket_id == tickets[str(podio_item_id("tickets",
                                                                          first_ticket))]
    linked_later = incident(db, later.key)
    assert linked_later.ticket_id == tickets[str(podio_item_id("tickets", later_ticket))]
    assert incident(db, by_hand.key).ticket_source_id == "4000999"
    assert incident(db, by_hand.key).ticket_id == tickets["4000999"]
    with db.session() as s:
        event = s.scalars(select(ChangeEvent).where(ChangeEvent.entity_id == linked_later.id,
                                                    ChangeEvent.entity == "incident")
                          .order_by(ChangeEvent.id.desc())).first()
        assert event is not None and event.changes["ticket_id"][0] is None


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_rate_limit_then_success(sandbox: Sandbox, db: Database) -> None:
    sandbox.faults.add(kind="status", tool="jira", path="/search/jql", status=429,
                       retry_after=1, count=1)
    [report] = sync_jira(jira_settings(sandbox, db), db)
    assert report.error is None
    assert report.counts.created == len(sandbox.tools["jira"].issues())
    assert searches(sandbox) == 2  # the 429, then the retry the library made after Retry-After


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_rate_limit_beyond_retries_is_reported_and_resumable(sandbox: Sandbox,
                                                             db: Database) -> None:
    settings = jira_settings(sandbox, db, jira_max_retries=0, jira_page_size=10)
    sandbox.faults.add(kind="status", tool="jira", path="/search/jql", status=429,
                       retry_after=30, count=1)
    [report] = sync_jira(settings, db)
    assert report.error is not None and "429" in report.error and "se reintenta" in report.error
    assert report.counts.created == 0
    [again] = sync_jira(settings, db)
    assert again.error is None and again.counts.created == len(sandbox.tools["jira"].issues())


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bad_credentials_are_a_clear_error_in_sync_and_doctor(sandbox: Sandbox,
                                                              db: Database) -> None:
    settings = jira_settings(sandbox, db, jira_api_token="not-the-token")
    with pytest.raises(AuthError, match="JIRA_EMAIL y JIRA_API_TOKEN"):
        sync_jira(settings, db)
    cycle = run_sync(settings, db, ["jira"])
    assert cycle.errors and "401" in cycle.errors[0] and "JIRA_API_TOKEN" in cycle.errors[0]
    checks = {name: (ok, detail) for name, ok, detail in run_checks(settings)}
    assert checks["jira"][0] is False and "JIRA_API_TOKEN" in checks["jira"][1]
    with pytest.raises(ConfigError, match="JIRA_URL"):
        sync_jira(jira_settings(sandbox, db, jira_url=""), db)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_check_jira_describes_the_connection(sandbox: Sandbox, db: Database) -> None:
    line = check_jira(jira_settings(sandbox, db))
    assert "SOP, DEV, PROD" in line and "customfield_10050" in line
    assert "America/Mexico_City" in line
    with pytest.raises(ConfigError, match="NOPE"):
        check_jira(jira_settings(sandbox, db, jira_projects="SOP,NOPE"))
    with pytest.raises(ConfigError, match="JIRA_TICKET_FIELD"):
        check_jira(jira_settings(sandbox, db, jira_ticket_field="Campo inexistente"))


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_jql_window_is_written_in_the_api_users_zone(sandbox: Sandbox, db: Database) -> None:
    """The sandbox reads JQL dates in the user's profile zone, as Jira Cloud does: the
    connector asks for it; a wrong JIRA_TIMEZONE would miss changes."""
    jira = sandbox.tools["jira"]
    jira.user_time_zone = "Pacific/Pago_Pago"  # UTC-11
    settings = jira_settings(sandbox, db)
    sync_jira(settings, db)
    sandbox.clock.advance(timedelta(minutes=10))
    jira.transition_as(AGENT, open_issue(sandbox), "Resuelto")
    [first] = sync_jira(settings, db)  # the cursor is now WORLD_NOW + 10 min
    assert first.counts.updated == 1
    sandbox.clock.advance(timedelta(minutes=10))
    moved = open_issue(sandbox)
    jira.transition_as(AGENT, moved, "Resuelto")
    [wrong] = sync_jira(jira_settings(sandbox, db, jira_timezone="UTC"), db)
    assert wrong.counts.updated == 0  # "20:05" read as Pago Pago time is 11 h in the future
    [right] = sync_jira(settings, db)
    assert right.counts.updated == 1 and incident(db, moved).status == "Resuelto"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_truncated_changelog_is_read_in_full(sandbox: Sandbox, db: Database) -> None:
    jira = sandbox.tools["jira"]
    jira.search_changelog_cap = 1
    longer = [e for _t, e in escalations(sandbox) if len(e.history) > 1]
    sync_jira(jira_settings(sandbox, db), db)
    assert sandbox.calls.total("jira", "/changelog") == len(longer) > 0
    with db.session() as s:
        for escalation in longer:
            row = s.scalars(select(Incident).where(Incident.key == escalation.key)).one()
            count = len(s.scalars(select(IncidentStatusChange).where(
                IncidentStatusChange.incident_id == row.id)).all())
            assert count == len(escalation.history)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_webhook_path_rereads_one_issue(sandbox: Sandbox, db: Database) -> None:
    jira = sandbox.tools["jira"]
    settings = jira_settings(sandbox, db)
    sync_jira(settings, db)
    with db.session() as s:
        cursor = s.scalars(select(SyncState.cursor).where(SyncState.source == "jira")).one()
    sandbox.clock.advance(timedelta(minutes=3))
    key = open_issue(sandbox)
    jira.transition_as(AGENT, key, "Resuelto")
    issue_id = jira.issue(key)["id"]
    client = JiraClient(settings)
    try:
        outcome = sync_issue(settings, db, {"webhookEvent": "jira:issue_updated",
                                            "timestamp": 1, "issue": {"id": issue_id}},
                             client=client)
        again = sync_issue(settings, db, {"webhookEvent": "jira:issue_updated",
                                          "issue": {"id": issue_id}}, client=client)
    finally:
        client.close()
    assert (outcome, again) == ("updated", "unchanged")
    assert incident(db, key).status_category == "done"
    # a delete notice for a live issue is only a hint: the issue is read and kept
    assert sync_issue(settings, db, {"webhookEvent": "jira:issue_deleted",
                                     "issue": {"id": issue_id}}) == "unchanged"
    assert incident(db, key).deleted_at is None
    sandbox.tools["jira"].delete_issue_as("agente-3", key)
    assert sync_issue(settings, db, {"webhookEvent": "jira:issue_deleted",
                                     "issue": {"id": issue_id}}) == "deleted"
    assert incident(db, key).deleted_at is not None
    with db.session() as s:
        assert s.scalars(select(SyncState.cursor).where(
            SyncState.source == "jira")).one() == cursor


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_reported_api_calls_match_the_sandbox_counters(sandbox: Sandbox, db: Database) -> None:
    settings = jira_settings(sandbox, db, jira_page_size=10)
    [first] = sync_jira(settings, db)
    assert first.api_calls == sum(sandbox.calls.snapshot("jira")["jira"].values())
    client = JiraClient(settings)  # a long-lived client, as the service keeps one
    try:
        sync_jira(settings, db, client=client)
        sandbox.calls.reset()
        [idle] = sync_jira(settings, db, client=client)
    finally:
        client.close()
    assert idle.api_calls == searches(sandbox) == 1  # nothing changed: one call
