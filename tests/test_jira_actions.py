"""Jira write-back primitives against the sandbox: each effect visible in Jira's state, each
idempotent, and a create whose response is lost makes one issue, not two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.jira import actions
from connectors.jira.client import JiraClient
from core.errors import RemoteDataError, TransientError
from core.settings import Settings, load_settings
from sandbox.server import Sandbox
from sandbox.world import podio_item_id

ITEM_ID = podio_item_id("tickets", 9)
TICKET_URL = "https://podio.com/saeko/postventa/apps/tickets/items/9"
CREATE_PATH = r"/rest/api/\d+/issue$"


def settings_for(sandbox: Sandbox) -> Settings:
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith("JIRA_")}
    return load_settings(**env, jira_retry_base_seconds=0.01)


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[JiraClient]:
    jira_client = JiraClient(settings_for(sandbox))
    try:
        yield jira_client
    finally:
        jira_client.close()


def create(client: JiraClient, marker: str = "t3:ticket:9") -> str:
    return actions.create_issue_for_ticket(
        client, project="SOP", issue_type="Error", summary="No se guarda la inscripción",
        description="Reportado por la escuela.\nMódulo: Inscripciones", priority="High",
        ticket_item_id=ITEM_ID, ticket_url=TICKET_URL, marker=marker)


def with_label(sandbox: Sandbox, label: str) -> list[dict]:
    return [i for i in sandbox.tools["jira"].snapshot()["issues"] if label in i["labels"]]


def test_create_issue_for_ticket_fills_the_issue_and_links_back(sandbox: Sandbox,
                                                                client: JiraClient) -> None:
    jira = sandbox.tools["jira"]
    before = len(jira.issues())
    key = create(client)
    issue = jira.issue(key)
    fields = issue["fields"]
    assert key.startswith("SOP-") and len(jira.issues()) == before + 1
    assert (fields["summary"], fields["issuetype"]["name"], fields["priority"]["name"]) == (
        "No se guarda la inscripción", "Error", "High")
    assert fields["customfield_10050"] == str(ITEM_ID)
    assert fields["status"]["name"] == "Abierto"
    assert actions.marker_label("t3:ticket:9") in fields["labels"]
    [link] = issue["remotelinks"]
    assert link["object"]["url"] == TICKET_URL
    assert link["globalId"] == f"system=podio&item_id={ITEM_ID}"
    assert actions.find_issue_by_marker(client, "t3:ticket:9") == key
    assert actions.find_issue_by_marker(client, "t3:ticket:other") is None


def test_a_create_whose_response_is_lost_is_found_by_its_marker(sandbox: Sandbox,
                                                                client: JiraClient) -> None:
    """A lost response is an error (the ledger looks before sending again, never blind):
    the issue it made is found by its marker label."""
    jira = sandbox.tools["jira"]
    before = len(jira.issues())
    sandbox.faults.add(kind="drop_after", tool="jira", method="POST", path=CREATE_PATH,
                       count=1)
    with pytest.raises(TransientError):
        create(client, marker="t3:ticket:lost")
    assert sandbox.faults.describe()[0]["hits"] == 1  # the response was really lost
    assert len(jira.issues()) == before + 1
    [made] = with_label(sandbox, actions.marker_label("t3:ticket:lost"))
    assert actions.find_issue_by_marker(client, "t3:ticket:lost") == made["key"]


def test_comments_carry_their_marker_and_are_found_by_it(sandbox: Sandbox,
                                                         client: JiraClient) -> None:
    jira = sandbox.tools["jira"]
    key = jira.issues()[0]
    before = len(jira.comments(key))
    first = actions.comment(client, key, "El ticket pasó a Por validar.", "t4:ticket:1")
    assert actions.find_comment(client, key, "t4:ticket:1") == first
    assert actions.find_comment(client, key, "t5:ticket:1") is None
    sandbox.faults.add(kind="drop_after", tool="jira", method="POST", path=r"/comment$",
                       count=1)
    with pytest.raises(TransientError):
        actions.comment(client, key, "Cerrado por el AM.", "t5:ticket:1")
    bodies = [c["body"] for c in jira.comments(key)]
    assert len(bodies) == before + 2
    assert sum("[saeko:t5:ticket:1]" in b for b in bodies) == 1
    assert actions.find_comment(client, key, "t5:ticket:1") is not None


def test_transition_by_status_name(sandbox: Sandbox, client: JiraClient) -> None:
    jira = sandbox.tools["jira"]
    key = create(client, marker="t3:ticket:transition")
    assert actions.transition_to(client, key, "En progreso") is True
    assert actions.transition_to(client, key, "resuelto", resolution="Corregido") is True
    fields = jira.issue(key)["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Resuelto", "Corregido")
    histories = len(jira.issue(key)["changelog"]["histories"])
    assert actions.transition_to(client, key, "Resuelto") is False  # already there
    assert len(jira.issue(key)["changelog"]["histories"]) == histories
    with pytest.raises(RemoteDataError, match="no hay transición a 'En pruebas'"):
        actions.transition_to(client, key, "En pruebas")


def test_add_remote_link_is_keyed_by_global_id(sandbox: Sandbox, client: JiraClient) -> None:
    jira = sandbox.tools["jira"]
    key = jira.issues()[1]
    before = len(jira.remote_links(key))
    first = actions.add_remote_link(client, key, "https://example.test/reporte", "Reporte",
                                    "saeko:report:1")
    second = actions.add_remote_link(client, key, "https://example.test/reporte",
                                     "Reporte (actualizado)", "saeko:report:1")
    links = jira.remote_links(key)
    assert first == second and len(links) == before + 1
    assert links[-1]["object"]["title"] == "Reporte (actualizado)"


def test_write_honours_retry_after_then_succeeds(sandbox: Sandbox, client: JiraClient) -> None:
    jira = sandbox.tools["jira"]
    key = jira.issues()[3]
    before = len(jira.comments(key))
    sandbox.faults.add(kind="status", tool="jira", method="POST", path=r"/comment$",
                       status=429, retry_after=1, count=1)
    actions.comment(client, key, "Reintento tras 429", "t5:ticket:429")
    assert sandbox.faults.describe()[0]["hits"] == 1
    assert len(jira.comments(key)) == before + 1
