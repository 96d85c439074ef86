"""The Jira sandbox is faithful where saeko-sync and the `jira` library depend on it: auth,
the removed and the enhanced search, JQL rules, validation and error bodies, workflows,
v2/v3 bodies, remote links, rate limits, and signed webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from jira import JIRA, JIRAError

from sandbox.jira.site import DEMO_API_TOKEN, DEMO_EMAIL, DEMO_WEBHOOK_SECRET
from sandbox.server import Sandbox

AUTH = (DEMO_EMAIL, DEMO_API_TOKEN)


def api(sandbox: Sandbox, version: str = "2") -> str:
    return f"{sandbox.url('jira')}/rest/api/{version}"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(auth=AUTH, timeout=10) as client:
        yield client


@pytest.fixture
def library(sandbox: Sandbox) -> Iterator[JIRA]:
    client = JIRA(server=sandbox.url("jira"), basic_auth=AUTH, max_retries=0)
    try:
        yield client
    finally:
        client.close()


def test_auth_server_info_and_cloud_mode(sandbox: Sandbox, library: JIRA) -> None:
    anonymous = httpx.get(f"{api(sandbox)}/serverInfo", timeout=10)
    assert anonymous.status_code == 200 and anonymous.json()["deploymentType"] == "Cloud"
    assert httpx.get(f"{api(sandbox)}/myself", timeout=10).status_code == 401
    wrong = httpx.get(f"{api(sandbox)}/serverInfo", auth=(DEMO_EMAIL, "nope"), timeout=10)
    assert wrong.status_code == 401 and "authenticated" in wrong.text
    with pytest.raises(JIRAError) as info:
        JIRA(server=sandbox.url("jira"), basic_auth=(DEMO_EMAIL, "nope"), max_retries=0)
    assert info.value.status_code == 401
    assert library._is_cloud
    assert library.myself()["emailAddress"] == DEMO_EMAIL


def test_old_search_is_gone_and_unbounded_jql_refused(sandbox: Sandbox,
                                                      http: httpx.Client) -> None:
    gone = http.get(f"{api(sandbox)}/search", params={"jql": "project = SOP"})
    assert gone.status_code == 410 and "/rest/api/3/search/jql" in gone.json()["errorMessages"][0]
    old_client = JIRA(server=sandbox.url("jira"), basic_auth=AUTH, get_server_info=False,
                      max_retries=0)
    with pytest.raises(JIRAError) as info:
        old_client.search_issues("project = SOP")
    assert info.value.status_code == 410
    for jql, message in [("ORDER BY key DESC", "Unbounded JQL"),
                         ("foo = 1", "Field 'foo' does not exist"),
                         ("project = NOPE", "The value 'NOPE' does not exist"),
                         ('updated >= "ayer"', "Date value 'ayer'"),
                         ("updated >= now()", "JQL function")]:
        answer = http.get(f"{api(sandbox)}/search/jql", params={"jql": jql})
        assert answer.status_code == 400, jql
        assert message in answer.json()["errorMessages"][0], jql


def test_search_pages_do_not_skip_issues_updated_while_paging(sandbox: Sandbox,
                                                              library: JIRA) -> None:
    jira = sandbox.tools["jira"]
    jql = "project in (SOP, DEV, PROD) ORDER BY updated ASC, key ASC"
    first = library.enhanced_search_issues(jql, maxResults=10, fields=["updated"])
    assert len(first) == 10 and first.nextPageToken
    sandbox.clock.advance(timedelta(minutes=1))
    moved = jira.store.require(first[0].key)
    jira.transition_as("agente-1", moved.key, moved.project.available(moved.status)[0].to.name)
    seen = [i.key for i in first]
    token = first.nextPageToken
    for _ in range(20):
        page = library.enhanced_search_issues(jql, maxResults=10, nextPageToken=token,
                                              fields=["updated"])
        seen.extend(i.key for i in page)
        token = page.nextPageToken
        if not token:
            break
    assert set(seen) == set(jira.issues())
    assert seen.count(first[0].key) == 2  # it moved to the end: served again, nothing skipped
    other = http_search(sandbox, "project = SOP", nextPageToken=first.nextPageToken)
    assert other.status_code == 400  # a token belongs to its query


def http_search(sandbox: Sandbox, jql: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{api(sandbox)}/search/jql", params={"jql": jql, **params}, auth=AUTH,
                     timeout=10)


def test_jql_dates_are_read_in_the_users_zone(sandbox: Sandbox) -> None:
    jira = sandbox.tools["jira"]
    latest = max(jira.store.issues.values(), key=lambda i: i.updated)
    jira.user_time_zone = "America/Tijuana"
    utc_minute = latest.updated.strftime("%Y/%m/%d %H:%M")
    as_utc = http_search(sandbox, f'project in (SOP, DEV, PROD) AND updated >= "{utc_minute}"',
                         fields="updated")
    assert as_utc.json()["issues"] == []  # read as Tijuana time: hours after the last update
    jira.user_time_zone = "UTC"
    found = http_search(sandbox, f'project in (SOP, DEV, PROD) AND updated >= "{utc_minute}"',
                        fields="updated").json()["issues"]
    assert [i["key"] for i in found] == [latest.key]
    assert found[0]["fields"]["updated"].endswith("+0000")


def test_create_validates_like_jira(sandbox: Sandbox, http: httpx.Client) -> None:
    cases = [
        ({"project": {"key": "SOP"}, "issuetype": {"name": "Error"}}, "summary"),
        ({"project": {"key": "XX"}, "issuetype": {"name": "Error"}, "summary": "s"}, "project"),
        ({"project": {"key": "SOP"}, "issuetype": {"name": "Epic"}, "summary": "s"},
         "issuetype"),
        ({"project": {"key": "SOP"}, "issuetype": {"name": "Error"}, "summary": "s",
          "customfield_99999": "x"}, "customfield_99999"),
        ({"project": {"key": "SOP"}, "issuetype": {"name": "Error"}, "summary": "s",
          "labels": ["con espacio"]}, "labels"),
        ({"project": {"key": "SOP"}, "issuetype": {"name": "Error"}, "summary": "s",
          "assignee": {"name": "diego"}}, "assignee"),
    ]
    for fields, bad in cases:
        answer = http.post(f"{api(sandbox)}/issue", json={"fields": fields})
        assert answer.status_code == 400, bad
        assert bad in answer.json()["errors"], answer.json()
    v3 = http.post(f"{api(sandbox, '3')}/issue", json={"fields": {
        "project": {"key": "SOP"}, "issuetype": {"name": "Error"}, "summary": "s",
        "description": "texto plano"}})
    assert v3.status_code == 400 and "Atlassian Document" in v3.json()["errors"]["description"]
    created = http.post(f"{api(sandbox)}/issue", json={"fields": {
        "project": {"key": "DEV"}, "issuetype": {"name": "Error"}, "summary": "s"}})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("DEV-") and body["self"].endswith(f"/issue/{body['id']}")


def test_comments_v2_text_and_v3_documents(sandbox: Sandbox, http: httpx.Client) -> None:
    key = sandbox.tools["jira"].issues()[0]
    doc = {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Desde la API v3"}]}]}
    assert http.post(f"{api(sandbox, '3')}/issue/{key}/comment",
                     json={"body": "texto"}).status_code == 400
    assert http.post(f"{api(sandbox, '3')}/issue/{key}/comment",
                     json={"body": doc}).status_code == 201
    assert http.post(f"{api(sandbox)}/issue/{key}/comment", json={"body": ""}).status_code == 400
    v2 = http.get(f"{api(sandbox)}/issue/{key}/comment").json()
    assert v2["comments"][-1]["body"] == "Desde la API v3" and v2["total"] == 1
    v3 = http.get(f"{api(sandbox, '3')}/issue/{key}/comment").json()
    assert v3["comments"][-1]["body"]["type"] == "doc"


def test_workflow_transitions_and_resolution(sandbox: Sandbox, library: JIRA) -> None:
    issue = library.create_issue(fields={"project": {"key": "DEV"},
                                         "issuetype": {"name": "Error"}, "summary": "s"})
    names = [t["name"] for t in library.transitions(issue.key)]
    assert names == ["Iniciar desarrollo", "Descartar"]
    with pytest.raises(JIRAError) as info:
        library.transition_issue(issue.key, "31")  # "Aprobar" is not available from Por hacer
    assert info.value.status_code == 400 and "not valid" in info.value.text
    library.transition_issue(issue.key, "Iniciar desarrollo")
    library.transition_issue(issue.key, "Enviar a pruebas")
    library.transition_issue(issue.key, "Aprobar", fields={"resolution": {"name": "Corregido"}})
    done = library.issue(issue.key, expand="changelog")
    assert done.fields.status.statusCategory.key == "done"
    assert done.fields.resolution.name == "Corregido" and done.fields.resolutiondate
    library.transition_issue(issue.key, "Reabrir")
    reopened = library.issue(issue.key, expand="changelog")
    assert reopened.fields.resolution is None and reopened.fields.resolutiondate is None
    histories = reopened.changelog.histories
    assert histories[0].items[0].toString == "Por hacer"  # expand=changelog: newest first
    paged = library._get_json(f"issue/{issue.key}/changelog", params={"maxResults": 2})
    assert [v["items"][0]["toString"] for v in paged["values"]] == ["En desarrollo",
                                                                   "En pruebas"]
    assert paged["total"] == 4 and paged["isLast"] is False


def test_remote_links_update_by_global_id_and_self_urls_route_back(sandbox: Sandbox,
                                                                   library: JIRA,
                                                                   http: httpx.Client) -> None:
    key = sandbox.tools["jira"].issues()[2]
    url = f"{api(sandbox)}/issue/{key}/remotelink"
    link = {"globalId": "system=x&id=1", "object": {"url": "https://x.test/1", "title": "A"}}
    assert http.post(url, json=link).status_code == 201
    assert http.post(url, json={**link, "object": {"url": "https://x.test/1",
                                                   "title": "B"}}).status_code == 200
    assert http.post(url, json={"object": {"title": "sin url"}}).status_code == 400
    titles = [item["object"]["title"] for item in http.get(url).json()]
    assert titles.count("B") == 1 and "A" not in titles
    issue = library.issue(key)
    issue.update(summary="Resumen cambiado por la API")  # PUT to issue.self, then GET it
    assert library.issue(key).fields.summary == "Resumen cambiado por la API"


def test_rate_limit_answer(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.faults.add(kind="status", tool="jira", path="/myself", status=429,
                       retry_after=2.5, count=1)
    limited = http.get(f"{api(sandbox)}/myself")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"  # whole seconds: the library int()s it
    assert limited.json()["errorMessages"]
    assert http.get(f"{api(sandbox)}/myself").status_code == 200


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/jira", received
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks_are_signed_and_filtered(sandbox: Sandbox, http: httpx.Client,
                                          receiver: tuple[str, list]) -> None:
    url, received = receiver
    jira = sandbox.tools["jira"]
    registered = http.post(f"{sandbox.url('jira')}/rest/webhooks/1.0/webhook", json={
        "name": "saeko", "url": url, "events": ["jira:issue_updated", "comment_created"],
        "filters": {"issue-related-events-section": "project = SOP"},
        "secret": DEMO_WEBHOOK_SECRET})
    assert registered.status_code == 201 and "secret" not in registered.json()
    sop = next(k for k in jira.issues() if k.startswith("SOP-")
               and jira.issue(k)["fields"]["status"]["name"] == "Abierto")
    dev = next(k for k in jira.issues() if k.startswith("DEV-"))
    jira.transition_as("agente-3", sop, "En progreso")
    jira.comment_as("agente-3", dev, "no llega: otro proyecto")
    jira.comment_as("agente-3", sop, "Revisando con desarrollo")
    assert sandbox.webhooks.wait_idle()
    events = []
    for headers, body in received:
        expected = "sha256=" + hmac.new(DEMO_WEBHOOK_SECRET.encode(), body,
                                        hashlib.sha256).hexdigest()
        assert headers["x-hub-signature"] == expected
        assert headers["x-atlassian-webhook-identifier"]
        payload = json.loads(body)
        assert payload["issue"]["key"] == sop
        events.append((payload["webhookEvent"], payload.get("issue_event_type_name")))
        if payload.get("issue_event_type_name") == "issue_generic":
            assert payload["changelog"]["items"][0]["toString"] == "En progreso"
            assert payload["user"]["accountId"] == jira.account("agente-3")
    assert events == [("jira:issue_updated", "issue_generic"), ("comment_created", None),
                      ("jira:issue_updated", "issue_commented")]
    assert len({h["x-atlassian-webhook-identifier"] for h, _b in received}) == 3
