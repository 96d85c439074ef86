"""M2 renewal reminders over the sandbox, with the clock moved day by day: one reminder per
window (90/60/30/15 days) to the client's AM — a Podio task on the contract with the
renewal checklist, and an email —; none at 95 days; after downtime only the window due now;
renewed or cancelled contracts stop; a renewal still «Vigente» at 30 days escalates to the
COO once per window. Re-running the cycles changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT
from rules.calendar import BusinessCalendar
from rules.functions import FUNCTIONS
from sandbox.world import podio_item_id
from tests.conftest import WORLD_NOW
from tests.desk_helpers import COO_USER, Desk, account_desk

CONTRACT = 2  # the world's contract of client 2 (Academia…, AM am-tecate, a burbuja client)
AM_EMAIL = "am-tecate@saeko.test"
AM_USER = 1004
COO_EMAIL = "coo@saeko.test"
CALENDAR = BusinessCalendar.load(PROJECT_ROOT / "config")
CHECKLIST_STEP = "Preparar propuesta y validaciones internas."


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a store switched on with the shipped M2 rules only."""
    with account_desk(tmp_path, "m2-*.yaml") as desk:
        yield desk


def _ends_on(offsets: list[int]) -> date:
    """The first end date whose days ``offsets`` before are all business days (the
    reminders run on business days only), after the world's now."""
    end = WORLD_NOW.date() + timedelta(days=max(offsets) + 1)
    while not all(CALENDAR.is_business_day(end - timedelta(days=n)) for n in offsets):
        end += timedelta(days=1)
    return end


def _first_business_day(end: date, days: int) -> date:
    """The first business day from ``days`` before ``end`` on: when that window's reminder
    comes."""
    day = end - timedelta(days=days)
    while not CALENDAR.is_business_day(day):
        day += timedelta(days=1)
    return day


def _contract_item() -> int:
    return podio_item_id("contratos", CONTRACT)


def _client_name(desk: Desk) -> str:
    world = desk.sandbox.world
    contract = next(c for c in world.contracts if c.key == CONTRACT)
    return str(next(c for c in world.clients if c.key == contract.client_key).name)


def _set_contract(desk: Desk, **fields: Any) -> None:
    """The AM edits the contract in Podio (end date, status)."""
    desk.podio.update_item_as(AM_EMAIL, _contract_item(), fields)


def _tasks_for(desk: Desk, user_id: int) -> list[dict[str, Any]]:
    return [t for t in desk.podio.tasks(_contract_item())
            if t["responsible"]["user_id"] == user_id]


def _windows(desk: Desk) -> list[int]:
    """The windows of the AM's reminder tasks on the contract, in the order they came."""
    out = []
    for task in _tasks_for(desk, AM_USER):
        match = re.match(r"Renovación a (\d+) días: ", task["text"])
        assert match, task["text"]
        out.append(int(match.group(1)))
    return out


def _days_left(task: dict[str, Any]) -> int:
    match = re.search(r"faltan (\d+) días", task["description"])
    assert match, task["description"]
    return int(match.group(1))


def _mails(desk: Desk, address: str, subject: str) -> list[dict[str, Any]]:
    name = _client_name(desk)
    return [m for m in desk.messages_to(address)
            if m["subject"].startswith(subject) and name in m["subject"]]


def _run(desk: Desk, end: date, days: int) -> None:
    """`saeko-sync run` ``days`` before the contract's end, just after the daily 9:00."""
    desk.at(f"{(end - timedelta(days=days)).isoformat()} 09:05")
    desk.cycle()


def test_window_is_the_smallest_one_still_ahead() -> None:
    window = FUNCTIONS["ventana"].fn
    windows = [90, 60, 30, 15]
    cases = {95: None, 91: None, 90: 90, 62: 90, 61: 90, 60: 60, 31: 60, 30: 30, 28: 30,
             16: 30, 15: 15, 1: 15, 0: 15, -1: None, None: None}
    assert {d: window(None, d, windows) for d in cases} == cases


def test_one_reminder_per_window_to_the_am_with_the_checklist(desk: Desk) -> None:
    """A cycle every day around each window (weekends and holidays too): exactly one
    reminder per window, on its first business day (25 December is a holiday)."""
    end = _ends_on([95, 90, 15])
    _set_contract(desk, fin={"start_date": end.isoformat()})
    name = _client_name(desk)

    _run(desk, end, 95)
    assert _windows(desk) == []
    assert _mails(desk, AM_EMAIL, "Renovación") == []

    _run(desk, end, 90)
    (task,) = _tasks_for(desk, AM_USER)
    assert task["text"] == f"Renovación a 90 días: {name} (vence el {end:%d/%m/%Y})"
    assert task["ref_type"] == "item" and task["ref_id"] == _contract_item()
    assert "faltan 90 días" in task["description"]
    assert f"☐ {CHECKLIST_STEP}" in task["description"]
    due = CALENDAR.add_business_days(end - timedelta(days=90), 3)
    assert task["due_date"] == due.isoformat()  # in three business days
    (mail,) = _mails(desk, AM_EMAIL, "Renovación a 90 días")
    assert mail["to"] == [AM_EMAIL]
    assert mail["subject"] == f"Renovación a 90 días: {name} vence el {end:%d/%m/%Y}"
    assert CHECKLIST_STEP in mail["text"] and CHECKLIST_STEP in mail["html"]
    desk.cycle()  # again, the same morning
    assert len(_tasks_for(desk, AM_USER)) == 1

    for days in [*range(89, 84, -1), *range(62, 54, -1)]:
        _run(desk, end, days)
    # The AM starts the renewal: the reminders go on, but nothing escalates.
    desk.at(f"{(end - timedelta(days=55)).isoformat()} 10:00")
    _set_contract(desk, estatus="En renovación")
    for days in [*range(32, 24, -1), *range(17, 9, -1)]:
        _run(desk, end, days)

    assert _windows(desk) == [90, 60, 30, 15]
    left = [_days_left(t) for t in _tasks_for(desk, AM_USER)]
    assert left == [(end - _first_business_day(end, n)).days for n in (90, 60, 30, 15)]
    assert [m["subject"].split(":")[0] for m in _mails(desk, AM_EMAIL, "Renovación")] == [
        f"Renovación a {n} días" for n in (90, 60, 30, 15)]
    assert _tasks_for(desk, COO_USER) == []
    assert _mails(desk, COO_EMAIL, "Escalamiento") == []

    before = (desk.podio.tasks(_contract_item()), _mails(desk, AM_EMAIL, ""))
    desk.cycle()
    _run(desk, end, 9)
    assert (desk.podio.tasks(_contract_item()), _mails(desk, AM_EMAIL, "")) == before


def test_downtime_catches_up_only_the_window_due_now(desk: Desk) -> None:
    end = _ends_on([95, 90, 62, 28, 27])
    _set_contract(desk, fin={"start_date": end.isoformat()})
    for days in (95, 90, 62):
        _run(desk, end, days)
    assert _windows(desk) == [90]
    # saeko-sync is down from 62 days before the end to 28 days before: the 60-day
    # window passed unseen. Back up, one reminder: the 30-day one, not 60 and 30.
    _run(desk, end, 28)
    assert _windows(desk) == [90, 30]
    assert len(_mails(desk, AM_EMAIL, "Renovación")) == 2
    _run(desk, end, 27)
    assert _windows(desk) == [90, 30]
    assert len(_tasks_for(desk, COO_USER)) == 1  # still «Vigente» at 28 days: escalated once


@pytest.mark.parametrize("status", ["Renovado", "Cancelado"])
def test_renewed_or_cancelled_contracts_stop_reminding(desk: Desk, status: str) -> None:
    end = _ends_on([90])
    _set_contract(desk, fin={"start_date": end.isoformat()})
    _run(desk, end, 90)
    assert _windows(desk) == [90]
    desk.at(f"{(end - timedelta(days=90)).isoformat()} 11:00")
    _set_contract(desk, estatus=status)
    for days in (60, 30, 15):
        desk.at(f"{_first_business_day(end, days).isoformat()} 09:05")
        desk.cycle()
    assert _windows(desk) == [90]
    assert len(_mails(desk, AM_EMAIL, "Renovación")) == 1
    assert _tasks_for(desk, COO_USER) == []


def test_a_renewal_stalled_at_30_days_escalates_to_the_coo_once_per_window(
        desk: Desk) -> None:
    end = _ends_on([31, 30, 29, 15])
    _set_contract(desk, fin={"start_date": end.isoformat()})
    name = _client_name(desk)
    _run(desk, end, 31)
    assert _tasks_for(desk, COO_USER) == []  # 31 days left: not yet

    _run(desk, end, 30)
    (task,) = _tasks_for(desk, COO_USER)
    assert task["text"] == (f"Escalamiento: renovación sin avance de {name} (vence en 30 "
                            f"días, el {end:%d/%m/%Y})")
    assert "sigue «Vigente»" in task["description"]
    assert "Tomás Villalobos" in task["description"]  # the AM
    assert task["due_date"] == CALENDAR.add_business_days(end - timedelta(days=30),
                                                          1).isoformat()
    (mail,) = _mails(desk, COO_EMAIL, "Escalamiento")
    assert mail["to"] == [COO_EMAIL]
    assert mail["subject"] == f"Escalamiento: renovación sin avance de {name} (30 días)"
    assert _windows(desk) == [60, 30]  # the AM got the 30-day reminder as well

    desk.cycle()
    _run(desk, end, 29)
    assert len(_tasks_for(desk, COO_USER)) == 1
    assert len(_mails(desk, COO_EMAIL, "Escalamiento")) == 1

    _run(desk, end, 15)  # still «Vigente» at the next window: escalated again, once
    assert len(_tasks_for(desk, COO_USER)) == 2
    assert len(_mails(desk, COO_EMAIL, "Escalamiento")) == 2
