"""The status page as an operator fetches it over HTTP: behind STATUS_TOKEN, in Spanish, in
the department's time zone, with how fresh each stream is, what each automation wrote back
today, why a delivery died, links into Podio, each tool's quota as the tool reports it, the
scheduled jobs' periods and its own refresh."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from core.settings import load_settings
from jobs import inbox
from jobs.service import Service
from sandbox.server import Sandbox
from store.db import Database, utcnow
from store.models import JobRun, SyncState, Ticket, WebhookInbox
from tests.desk_helpers import AGENT, TICKETS
from tests.test_serve_webhooks import TOKEN, free_port

STATUS_TOKEN = "estado-" + "s" * 28
ZONE = ZoneInfo("America/Tijuana")
ENGLISH = ("failed", "created", "exists", "inactive", ">ok<", "running", "skipped", "None")


def wait_for(check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def local(value: datetime) -> str:
    return f"{value.replace(tzinfo=UTC).astimezone(ZONE):%d/%m/%Y %H:%M}"


@pytest.fixture
def served(sandbox: Sandbox, db: Database) -> Iterator[tuple[Service, str, dict[str, Any]]]:
    """`serve` on the sandbox after a first sync, with a new ticket for T1 to fill in and a
    Podio delivery that keeps failing (its item answers 500)."""
    env = {k.lower(): v for k, v in sandbox.env().items() if k.startswith(("PODIO_", "JIRA_"))}
    settings = load_settings(**env, database_url=db.url, webhook_token=TOKEN,
                             status_token=STATUS_TOKEN, status_refresh_seconds=45,
                             sync_interval_seconds=300, rules_interval_seconds=3600,
                             sync_safety_net_seconds=0,  # the stored delivery must not skip
                             podio_retry_base_seconds=0.01, podio_max_retry_seconds=1)
    podio = sandbox.tools["podio"]
    port = free_port()
    service = Service(settings, db, port=port).start()
    try:
        wait_for(lambda: _job_done(db, "sync"))  # the first sync switches the rules on
        item = podio.create_item_as(AGENT, TICKETS, {
            "titulo": "No carga la boleta del alumno", "estatus": "Nuevo",
            "prioridad": "Media", "canal": "WhatsApp"})
        broken = podio.items(TICKETS)[0]
        sandbox.faults.add(kind="status", tool="podio", method="GET", path=f"^/item/{broken}$",
                           status=500, count=10_000)
        with db.session() as s:
            s.add(WebhookInbox(source="podio", delivery_key="test:dying", status="pending",
                               event_type="item.update", received_at=utcnow(),
                               attempts=inbox.MAX_ATTEMPTS - 1,
                               payload={"type": "item.update", "hook_id": "1",
                                        "item_id": str(broken)}))
        service.sync_job_now()  # sees the new ticket; T1 writes it back
        wait_for(lambda: _dead(db))
        yield service, f"http://127.0.0.1:{port}", {"item": item, "broken": broken}
    finally:
        service.shutdown()


def _job_done(db: Database, job: str) -> bool:
    with db.session() as s:
        return s.scalars(select(JobRun).where(JobRun.job == job,
                                              JobRun.status == "ok")).first() is not None


def _dead(db: Database) -> bool:
    with db.session() as s:
        return s.scalars(select(WebhookInbox.status).where(
            WebhookInbox.delivery_key == "test:dying")).one() == "dead"


def test_the_page_asks_for_the_token(served: tuple[Service, str, dict[str, Any]]) -> None:
    _service, url, _ids = served
    for path in ("/", "/status.json", "/runs/1"):
        refused = httpx.get(url + path)
        assert refused.status_code == 401, path
        assert "STATUS_TOKEN" in refused.text
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(url + path, headers={"Authorization": "Bearer wrong"}
                         ).status_code == 401
    assert httpx.get(f"{url}/?token=wrong").status_code == 401
    assert httpx.get(f"{url}/", headers={"Authorization": f"Bearer {STATUS_TOKEN}"}
                     ).status_code == 200
    assert httpx.get(f"{url}/", auth=("cualquiera", STATUS_TOKEN)).status_code == 200
    page = httpx.get(f"{url}/?token={STATUS_TOKEN}")
    assert page.status_code == 200
    trace = re.search(r"href='(/runs/\d+\?token=[^']+)'", page.text)
    assert trace, "the trace links carry the token"
    shown = httpx.get(url + trace.group(1).replace("&amp;", "&"))
    body = shown.text.split("</style>", 1)[1]
    assert shown.status_code == 200 and "Traza de" in body and "{" not in body
    assert httpx.get(f"{url}/healthz").status_code == 200  # health stays open


def test_the_page_shows_what_an_operator_needs(served: tuple[Service, str, dict[str, Any]],
                                               sandbox: Sandbox, db: Database) -> None:
    service, url, ids = served
    page = httpx.get(f"{url}/", headers={"Authorization": f"Bearer {STATUS_TOKEN}"}).text
    text = re.sub(r"<[^>]+>", " ", page)

    # Local time, and the page reloads itself.
    assert "Hora local (America/Tijuana)" in page and "se actualiza cada 45 s" in page
    assert '<meta http-equiv=refresh content=45>' in page
    # The last successful sync of every stream, in local time, with its age.
    with db.session() as s:
        states = list(s.scalars(select(SyncState)))
    assert states and all(st.last_ok_at for st in states)
    for st in states:
        assert re.search(rf"<td>{st.stream}</td><td><span class=ok>correcto</span></td>"
                         rf"<td>{re.escape(local(st.last_ok_at))} \((ahora|hace \d+ min)\)",
                         page), st.stream
    # Today's write-backs per automation, with links to the Podio items (their own link).
    with db.session() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.source_id == str(ids["item"]))).one()
    link = ticket.raw["link"]
    assert link.startswith("https://podio.com/") and "/items/" in link
    row = re.search(r"<tr><td>T1</td>.*?</tr>", page)
    assert row and "1 items: modulo" in row.group(0)  # T1 filled the module in
    assert f"href='{link}'" in row.group(0) and "No carga la boleta del alumno" in row.group(0)
    # Why the delivery died, with its record as a Podio link.
    dead = re.search(r"Entregas muertas: por qué</h2>(.*?)</table>", page, re.S)
    assert dead and "500" in dead.group(1) and "/items/" in dead.group(1)
    # Quota: Podio's own figure (X-Rate-Limit-Remaining), as the sandbox counted the calls.
    podio = sandbox.tools["podio"]
    usage = podio.service.limiter.usage(podio.service.now())["usage"]
    used = sum(u["used"] for u in usage if u["class"] == "general")
    assert f"Podio informa usuario de integración: quedan {1000 - used} de 1000 " \
           f"({used} usadas en la hora)" in text
    assert "Jira no envió X-RateLimit-*" in text
    # Scheduled jobs: readable periods.
    assert re.search(r"<td>sincronización</td><td>cada 5 min</td><td>(lunes|martes|miércoles|"
                     r"jueves|viernes|sábado|domingo) \d\d:\d\d</td>", page)
    assert "<td>reglas</td>" in page or "<td>limpieza de trazas</td><td>cada 1 h</td>" in page
    # Spanish only; no internal ids as records, no raw dicts.
    for word in ENGLISH:
        assert word not in text, word
    assert "{'" not in page and '{"' not in page
    data = httpx.get(f"{url}/status.json", params={"token": STATUS_TOKEN}).json()
    assert data["timezone"] == "America/Tijuana" and data["refresh_seconds"] == 45
    assert service.quota()["podio"]["reported"]


def test_without_a_token_the_page_is_only_for_this_machine(db: Database) -> None:
    settings = load_settings(database_url=db.url, webhook_token=TOKEN,
                             sync_interval_seconds=3600, rules_interval_seconds=3600)
    port = free_port()
    service = Service(settings, db, host="0.0.0.0", port=port).start()  # noqa: S104
    try:
        refused = httpx.get(f"http://127.0.0.1:{port}/")
        assert refused.status_code == 403 and "STATUS_TOKEN" in refused.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        service.shutdown()


def test_a_broken_rule_file_reads_line_by_line(db: Database) -> None:
    """The broken-rules cell lists each problem as a sentence, not the stored dicts."""
    from jobs.status import render, snapshot
    from store.models import RuleState

    with db.session() as s:
        s.add(RuleState(rule_id="t9-nueva", path="config/rules/t9.yaml", good_hash="abc",
                        problems=[{"path": "config/rules/t9.yaml", "line": 7, "rule_id": "t9",
                                   "message": "campo desconocido «prioridd»"}]))
    page = render(snapshot(db))
    assert "línea 7: campo desconocido «prioridd»" in page
    assert "{'" not in page and "'line'" not in page
