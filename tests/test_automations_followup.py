"""M6 open-case follow-up over the sandbox, with tickets made and answered in Podio as the
desk would and the clock moved: a ticket without first response gets ONE reminder per
threshold of its target (2 business hours × 1, 2, 4) as a comment on the ticket, the desk
lead an email from the 2nd threshold, the COO an escalation (M7's key) at the last; a
ticket open past its priority's resolution target likewise; nothing once it is answered or
closed, nothing outside business hours; the same slot again, a fault or a crash mid-way
still gives each effect once; a daily digest per agent at 09:00 with only their open
cases, by urgency, with Podio links; and a month of work day by day."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from connectors.podio.client import QuotaGuard
from core.settings import PROJECT_ROOT
from rules.calendar import BusinessCalendar
from rules.engine import run_cycle
from rules.functions import FUNCTIONS, Env
from sandbox.server import Sandbox, SandboxServer
from sandbox.world import build_world, podio_item_id
from store.models import ActionLedger
from tests.conftest import WORLD_NOW
from tests.desk_helpers import (
    AGENT,
    AGENT_PROFILE,
    COO_USER,
    TICKETS,
    Desk,
    open_desk,
    rules_config,
    store,
    stores,
    user_of,
)

LEAD = "agente-1@saeko.test"  # the desk lead of the rules' datos (as in T8)
COO = "coo@saeko.test"
OTHER = "agente-3@saeko.test"  # Rubén Olmos, another agent
OTHER_PROFILE = 5011
CLOSED = ("Cerrado", "Enviado a AM")
FIRST = "sin primera respuesta"
OPEN = "horas hábiles abierto"


class SimulatedCrash(BaseException):
    """The process dies (not an error a rule's guard would catch)."""


@contextmanager
def followup_desk(tmp: Path, *patterns: str, kind: str = "sqlite") -> Iterator[Desk]:
    """The account-management world served with its ticket backlog closed in Podio (so
    only a scenario's own tickets are open), and a store switched on with ``patterns``."""
    box = Sandbox(build_world(clients=6, seed=11, now=WORLD_NOW))
    box.clock.freeze(WORLD_NOW)
    podio = box.tools["podio"]
    for item in podio.items(TICKETS):
        if podio.values(item).get("estatus") not in CLOSED:
            podio.update_item_as(AGENT, item, {"estatus": "Cerrado"}, hook=False)
    with store(kind, tmp) as url, SandboxServer(box), \
            open_desk(box, url, rules_config(tmp, *patterns)) as desk:
        yield desk


@pytest.fixture(params=stores())
def office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a store switched on with the shipped M6 rules only."""
    with followup_desk(tmp_path, "m6-*.yaml", kind=request.param) as desk:
        yield desk


@pytest.fixture
def sqlite_office(tmp_path: Path) -> Iterator[Desk]:
    with followup_desk(tmp_path, "m6-*.yaml") as desk:
        yield desk


def _ticket(desk: Desk, title: str, client: int = 1, profile: int | None = AGENT_PROFILE,
            **fields: Any) -> int:
    user = user_of(desk.sandbox.world, client)
    values: dict[str, Any] = {"estatus": "Nuevo", "prioridad": "Media",
                              "usuario": [podio_item_id("usuarios", user.key)], **fields}
    if profile is not None:
        values["responsable"] = [profile]
    return desk.new_ticket(title, **values)


def _reminders(desk: Desk, item: int, kind: str = FIRST) -> list[str]:
    return [c["value"] for c in desk.podio.comments(item)
            if c["value"].startswith("Recordatorio") and kind in c["value"]]


def _mails(desk: Desk, address: str, title: str = "") -> list[dict[str, Any]]:
    return [m for m in desk.messages_to(address) if title in m["subject"]]


def _coo_tasks(desk: Desk, item: int) -> list[dict[str, Any]]:
    return [t for t in desk.podio.tasks(item) if t["responsible"]["user_id"] == COO_USER]


def _state(desk: Desk) -> dict[str, Any]:
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref) for r in
                  s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    podio = desk.podio
    return {"ledger": ledger, "tasks": podio.tasks(),
            "comments": {i: podio.comments(i) for i in podio.items(TICKETS)},
            "mail": [(m["subject"], tuple(m["to"])) for m in desk.google.sent_messages()]}


def test_thresholds_of_the_first_response_target(office: Desk) -> None:
    desk = office
    # Wednesday 12:05 (Tijuana): three new tickets for Karla; one is answered at 13:00 and
    # one closed; the other waits.
    desk.at("2026-11-18 12:05")
    late = _ticket(desk, "No puedo descargar las boletas")
    answered = _ticket(desk, "Duda con la reinscripción")
    closed = _ticket(desk, "Cambio de contraseña")
    desk.cycle()
    desk.at("2026-11-18 13:00")
    desk.edit(answered, estatus="En atención")
    desk.edit(closed, estatus="Cerrado")
    desk.cycle()
    desk.at("2026-11-18 14:00")  # 1 h 55 min: not yet
    desk.cycle()
    assert _reminders(desk, late) == []

    # 14:10: past 2 business hours, one comment for Karla; the same slot and the next
    # cycles again change nothing.
    desk.at("2026-11-18 14:10")
    desk.cycle()
    before = _state(desk)
    desk.cycle()
    assert _state(desk) == before
    desk.at("2026-11-18 14:20")
    desk.cycle()
    (first,) = _reminders(desk, late)
    assert first.startswith("Recordatorio para Karla Nava: este ticket lleva más de 2 horas "
                            "hábiles sin primera respuesta (objetivo: 2 h; umbral 1 de 3)")
    assert _mails(desk, LEAD) == [] and _coo_tasks(desk, late) == []
    # The answered and the closed ticket get nothing, now or later.
    assert _reminders(desk, answered) == [] == _reminders(desk, closed)

    # 16:10: 4 business hours, the 2nd reminder and the desk lead's email.
    desk.at("2026-11-18 16:10")
    desk.cycle()
    desk.cycle()
    assert len(_reminders(desk, late)) == 2
    (lead,) = _mails(desk, LEAD)
    assert lead["subject"] == ("Mesa: «No puedo descargar las boletas» lleva más de 4 horas "
                               "hábiles sin primera respuesta (Karla Nava)")
    assert "pasó 2 veces el objetivo de primera respuesta (2 h)" in lead["text"]
    assert desk.podio.item(late)["link"] in lead["text"]

    # The evening and the night do not count, and nothing goes out after hours: at 18:00
    # the ticket has 5 h 55 min; Thursday 9:00 the clock goes on, 8 h at 11:05.
    for when in ("2026-11-18 19:30", "2026-11-19 08:30", "2026-11-19 11:00"):
        desk.at(when)
        desk.cycle()
    assert len(_reminders(desk, late)) == 2 and _coo_tasks(desk, late) == []
    desk.at("2026-11-19 11:10")
    desk.cycle()
    desk.cycle()
    third = _reminders(desk, late)[-1]
    assert "umbral 3 de 3" in third
    assert len(_mails(desk, LEAD)) == 2
    (task,) = _coo_tasks(desk, late)
    assert task["text"].startswith("Escalamiento: ")
    assert "más de 8 horas hábiles sin respuesta: «No puedo descargar las boletas»" \
        in task["text"]
    (coo,) = _mails(desk, COO)
    assert "sin respuesta en más de 8 horas hábiles" in coo["subject"]
    assert "El responsable y el líder de la mesa ya recibieron sus avisos" in coo["text"]

    # Past the last threshold nothing more; answered now, still nothing.
    for when in ("2026-11-19 15:00", "2026-11-20 10:00"):
        desk.at(when)
        desk.cycle()
    desk.edit(late, estatus="En atención")
    desk.cycle()
    assert len(_reminders(desk, late)) == 3
    assert len(_mails(desk, LEAD)) == 2 and len(_mails(desk, COO)) == 1


def test_resolution_thresholds_by_priority_and_a_closed_ticket(office: Desk) -> None:
    desk = office
    # Thursday 09:30: a «Crítica» ticket answered at once (resolution target 8 business
    # hours) and a «Media» one (24 h).
    desk.at("2026-11-19 09:30")
    critical = _ticket(desk, "No abre el módulo de cobranza", prioridad="Crítica",
                       estatus="En atención")
    media = _ticket(desk, "Error al imprimir credenciales", estatus="En atención")
    desk.cycle()
    desk.at("2026-11-19 17:35")  # 8 h 05 min: 1× for the «Crítica» one, nothing for «Media»
    desk.cycle()
    (first,) = _reminders(desk, critical, OPEN)
    assert "objetivo de resolución para prioridad Crítica: 8 h; umbral 1 de 3" in first
    assert _reminders(desk, critical) == []  # it had its first response
    assert _reminders(desk, media, OPEN) == []
    desk.at("2026-11-20 17:40")  # 17 h 10 min: 2×, the lead is told
    desk.cycle()
    assert len(_reminders(desk, critical, OPEN)) == 2
    (lead,) = _mails(desk, LEAD, "abierto")
    assert "«No abre el módulo de cobranza» lleva más de 16 horas hábiles abierto" \
        in lead["subject"]
    # Closed before 4×: no escalation, no more reminders.
    desk.at("2026-11-23 10:00")
    desk.edit(critical, estatus="Cerrado")
    desk.cycle()
    # The «Media» one reaches 24 h on Monday 15:30 and 48 h on Thursday 26 at 12:30.
    for when in ("2026-11-23 16:00", "2026-11-26 13:00", "2026-11-26 17:00"):
        desk.at(when)
        desk.cycle()
    assert len(_reminders(desk, critical, OPEN)) == 2 and _coo_tasks(desk, critical) == []
    assert [("umbral 1 de 3" in r, "umbral 2 de 3" in r)
            for r in _reminders(desk, media, OPEN)] == [(True, False), (False, True)]


def test_one_coo_escalation_with_m7_and_no_reminder_at_the_weekend(tmp_path: Path) -> None:
    """M7's m7-sla-incumplido and M6's last threshold name the same breach of a burbuja
    client: one task and one email to the COO, whichever rule runs first."""
    with followup_desk(tmp_path, "m6-*.yaml", "m7-*.yaml") as desk:
        desk.at("2026-11-19 09:10")  # Thursday; Academia Aurora (client 2) is burbuja
        item = _ticket(desk, "Falla el cobro en línea", client=2)
        desk.cycle()
        # 2 h at 11:10, 4 h at 13:10, 8 h at 17:10 (M7 asks for more than 8: 17:15).
        for when in ("2026-11-19 11:20", "2026-11-19 13:20", "2026-11-19 17:20"):
            desk.at(when)
            desk.cycle()
        assert len(_coo_tasks(desk, item)) == 1
        assert len(_mails(desk, COO)) == 1
        assert len(_reminders(desk, item)) == 3
        with desk.db.session() as s:
            traced = s.scalars(select(ActionLedger.rule_id).where(
                ActionLedger.idempotency_key.like("m7|esc:sla:%"))).all()
        assert len(traced) == 2  # the task and the email, under the shared key
        # Friday nothing more, and the weekend nothing at all.
        desk.at("2026-11-20 12:00")
        desk.cycle()
        sent = _state(desk)
        for when in ("2026-11-21 11:00", "2026-11-22 16:00"):
            desk.at(when)
            desk.cycle()
        assert _state(desk) == sent


def test_a_fault_and_a_crash_mid_way_still_send_each_once(sqlite_office: Desk) -> None:
    desk = sqlite_office
    desk.at("2026-11-18 12:05")
    item = _ticket(desk, "No llegan los correos de inscripción")
    desk.cycle()
    desk.at("2026-11-18 14:10")
    desk.cycle()
    # 2nd threshold: Gmail is down; the comment goes, the lead's email waits.
    desk.at("2026-11-18 16:10")
    fault = desk.sandbox.faults.add(kind="status", tool="google", path="messages/send",
                                    status=503, count=50)
    desk.cycle()
    desk.sandbox.faults.remove(fault)
    assert len(_reminders(desk, item)) == 2 and _mails(desk, LEAD) == []
    desk.at("2026-11-18 16:50")
    desk.cycle()
    desk.cycle()
    assert len(_reminders(desk, item)) == 2 and len(_mails(desk, LEAD)) == 1

    # 3rd threshold: the process dies right after Podio took the comment.
    desk.at("2026-11-19 11:10")
    assert run_sync_ok(desk)

    def crash(key: str) -> None:
        if key.startswith("m6-sin-primera-respuesta|") and key.endswith("|1"):
            raise SimulatedCrash

    with pytest.raises(SimulatedCrash):
        run_cycle(desk.settings, desk.db, now=desk.sandbox.clock.now(),
                  runtime=ActionRuntime(desk.settings, after_send=crash))
    assert len(_reminders(desk, item)) == 3
    desk.at("2026-11-19 11:20")
    desk.cycle()
    desk.cycle()
    assert len(_reminders(desk, item)) == 3
    assert len(_mails(desk, LEAD)) == 2
    assert len(_coo_tasks(desk, item)) == 1 and len(_mails(desk, COO)) == 1


def test_a_new_store_on_the_same_workspace_repeats_no_reminder(sqlite_office: Desk,
                                                                tmp_path: Path) -> None:
    """Reminders already made stay made: a store switched on later (another database)
    remembers the late tickets, it does not remind them again; what is crossed after it
    was switched on is reminded once."""
    desk = sqlite_office
    desk.at("2026-11-18 12:05")
    item = _ticket(desk, "No aparece el alumno en la lista")
    desk.cycle()
    desk.at("2026-11-18 14:10")
    desk.cycle()
    assert len(_reminders(desk, item)) == 1
    desk.at("2026-11-18 15:00")
    other = tmp_path / "other"
    other.mkdir()
    with open_desk(desk.sandbox, f"sqlite:///{other}/store.db", desk.settings.config_dir) \
            as fresh:
        fresh.cycle()
        assert len(_reminders(desk, item)) == 1  # nothing repeated
        fresh.at("2026-11-18 16:10")  # 4 h, crossed with the new store on: once
        fresh.cycle()
        fresh.cycle()
        assert len(_reminders(desk, item)) == 2


def run_sync_ok(desk: Desk) -> bool:
    from jobs.cycle import run_sync

    return run_sync(desk.settings, desk.db, clients=desk.clients).ok


def _cases(text: str) -> list[str]:
    return re.findall(r"«(.+?)» · ", text)


def test_the_daily_digest_of_each_agent(office: Desk) -> None:
    desk = office
    # Wednesday: Karla gets three tickets (one answered, so it waits on its resolution),
    # Rubén one, and one goes to Karla and is closed.
    desk.at("2026-11-18 12:00")
    media = _ticket(desk, "Media sin respuesta")
    critical = _ticket(desk, "Crítica en atención", prioridad="Crítica", estatus="En atención")
    desk.at("2026-11-18 15:00")
    fresh = _ticket(desk, "Alta reciente", prioridad="Alta")
    _ticket(desk, "De otro agente", profile=OTHER_PROFILE)
    done = _ticket(desk, "Ya cerrado")
    desk.edit(done, estatus="Cerrado")
    desk.cycle()
    desk.at("2026-11-19 08:55")  # before the shift: nothing yet
    desk.cycle()
    assert _mails(desk, AGENT, "casos abiertos") == []

    desk.at("2026-11-19 09:05")
    desk.cycle()
    desk.cycle()
    (digest,) = _mails(desk, AGENT, "casos abiertos")
    assert digest["subject"] == "Tus casos abiertos del 19/11/2026: 3 casos"
    # The most urgent first: «Media» unanswered 6 h of 2 (3×), «Alta» 3 h of 2 (1.5×),
    # «Crítica» answered 6 h of its 8 h resolution target (0.8×).
    assert _cases(digest["text"]) == ["Media sin respuesta", "Alta reciente",
                                      "Crítica en atención"]
    assert "Pendiente: primera respuesta · 6.1 de 2 horas hábiles (3.0 veces el objetivo)" \
        in digest["text"]
    assert "Pendiente: resolución · 6.1 de 8 horas hábiles (0.8 veces el objetivo)" \
        in digest["text"]
    assert "[FUERA DE OBJETIVO] «Media sin respuesta»" in digest["text"]
    assert "[FUERA DE OBJETIVO] «Crítica en atención»" not in digest["text"]
    assert "De otro agente" not in digest["text"] and "Ya cerrado" not in digest["text"]
    for item in (media, critical, fresh):
        link = desk.podio.item(item)["link"]
        assert link in digest["text"] and f'href="{link}"' in digest["html"]
    (theirs,) = _mails(desk, OTHER, "casos abiertos")
    assert _cases(theirs["text"]) == ["De otro agente"]
    # Nobody else has open cases: no other digest.
    assert {m["to"][0] for m in desk.google.sent_messages()
            if "casos abiertos" in m["subject"]} == {AGENT, OTHER}

    # Later that day nothing more; Friday one more each; the weekend none.
    for when in ("2026-11-19 15:00", "2026-11-20 09:05", "2026-11-21 09:05",
                 "2026-11-22 09:05"):
        desk.at(when)
        desk.cycle()
    assert len(_mails(desk, AGENT, "casos abiertos")) == 2
    assert len(_mails(desk, OTHER, "casos abiertos")) == 2


def test_a_digest_missed_at_nine_goes_out_that_day_not_the_next(sqlite_office: Desk) -> None:
    desk = sqlite_office
    desk.at("2026-11-18 12:10")
    _ticket(desk, "Un caso abierto", estatus="En atención")
    desk.cycle()
    desk.at("2026-11-19 13:00")  # down at 9:00: that day's digest at 13:00
    desk.cycle()
    assert len(_mails(desk, AGENT, "del 19/11/2026")) == 1
    desk.at("2026-11-23 08:00")  # down all Friday: Friday's digest never comes
    desk.cycle()
    desk.at("2026-11-23 09:10")
    desk.cycle()
    assert len(_mails(desk, AGENT, "del 20/11/2026")) == 0
    assert len(_mails(desk, AGENT, "del 23/11/2026")) == 1


def test_the_thresholds_of_umbral_sla() -> None:
    env = Env(datetime(2026, 11, 19, 19, 10), "America/Tijuana",  # Thursday 11:10
              BusinessCalendar.load(PROJECT_ROOT / "config"), config_dir=PROJECT_ROOT / "config")
    fn = FUNCTIONS["umbral_sla"].fn
    opened = datetime(2026, 11, 18, 20, 5)  # Wednesday 12:05: 8 h 05 min of business time
    assert fn(env, opened, "Media", "primera_respuesta", [1, 2, 4]) == {
        "tipo": "primera_respuesta", "multiplo": 4, "nivel": 3, "ultimo": True,
        "objetivo": 2, "limite": 8, "horas": 8.1,
        "desde": datetime(2026, 11, 19, 19, 5)}  # Thursday 11:05, when 8 h were reached
    assert fn(env, opened, "Crítica", "resolucion", [1, 2, 4])["multiplo"] == 1
    assert fn(env, opened, "Media", "resolucion", [1, 2, 4]) is None
    assert fn(env, opened, None, "resolucion", [0.25, 1])["objetivo"] == 24  # por_omision
    assert fn(env, None, "Media", "resolucion", [1]) is None
    with pytest.raises(ValueError, match="primera_respuesta"):
        fn(env, opened, "Media", "respuesta", [1])
    with pytest.raises(ValueError, match="umbrales"):
        fn(env, opened, "Media", "resolucion", [])


def _business_days(first: date, last: date) -> list[date]:
    calendar = BusinessCalendar.load(PROJECT_ROOT / "config")
    days, day = [], first
    while day <= last:
        if calendar.is_business_day(day, "America/Tijuana"):
            days.append(day)
        day += timedelta(days=1)
    return days


def _a_day_went_by(desk: Desk) -> None:
    """The tools' per-minute quotas and saeko-sync's rolling Podio hour are long clear
    when the scenario's clock jumps a day (the client counts real seconds)."""
    desk.google.reset_quotas()
    podio = desk.runtime.client("podio")
    podio.quota = QuotaGuard(podio.rate_limit_per_hour, podio.retry.max_total_seconds)


def test_a_month_of_work_day_by_day(sqlite_office: Desk) -> None:
    """December 2026, every business day: at 09:02 the day before's tickets are closed and
    Karla and Rubén each get a new one (of that day's client); Karla answers hers at 16:00,
    Rubén never does. Each day: Karla 2 reminders (2 h, 4 h) and the lead 1 email (4 h);
    Rubén 3 reminders (2 h, 4 h, 8 h), the lead 2 emails (4 h, 8 h), the COO 1 task and 1
    email (a different client each day of a week); a digest to each at 09:05 with their one open case. The
    day's last cycle run again changes nothing; weekends and Christmas, nothing at all."""
    desk = sqlite_office
    days = _business_days(date(2026, 12, 1), date(2026, 12, 31))
    assert len(days) == 22  # Friday 25 December is a holiday
    karla_items: list[int] = []
    ruben_items: list[int] = []
    day = date(2026, 11, 30)
    while day < date(2026, 12, 31):
        day += timedelta(days=1)
        _a_day_went_by(desk)
        if day not in days:
            desk.at(f"{day} 12:00")  # a weekend or a holiday: nothing happens
            before = _state(desk)
            desk.cycle()
            assert _state(desk) == before, day
            continue
        desk.at(f"{day} 09:02")
        for item in karla_items[-1:] + ruben_items[-1:]:
            desk.edit(item, estatus="Cerrado")
        client = 1 + days.index(day) % 5
        karla = _ticket(desk, f"Caso de Karla {day}", client=client)
        ruben = _ticket(desk, f"Caso de Rubén {day}", client=client, profile=OTHER_PROFILE)
        karla_items.append(karla)
        ruben_items.append(ruben)
        for when in ("09:05", "11:10", "13:10", "16:00", "17:10"):
            desk.at(f"{day} {when}")
            if when == "16:00":
                desk.edit(karla, estatus="En atención")
                continue
            desk.cycle()
        before = _state(desk)
        desk.cycle()  # the day again: nothing changes
        assert _state(desk) == before, day
    n = len(days)
    assert [len(_reminders(desk, i)) for i in karla_items] == [2] * n
    assert [len(_reminders(desk, i)) for i in ruben_items] == [3] * n
    assert [len(_coo_tasks(desk, i)) for i in ruben_items] == [1] * n
    assert len(_mails(desk, LEAD, "Mesa: ")) == 3 * n
    assert len(_mails(desk, COO, "Escalamiento")) == n
    for agent in (AGENT, OTHER):
        digests = _mails(desk, agent, "casos abiertos")
        assert [m["subject"] for m in digests] == [
            f"Tus casos abiertos del {d:%d/%m/%Y}: 1 caso" for d in days]
    assert sum(len(_reminders(desk, i, OPEN)) for i in karla_items + ruben_items) == 0
