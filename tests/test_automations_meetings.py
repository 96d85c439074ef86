"""M8 meetings and check-ins over the sandbox: the weekly operations meeting, the weekly desk
review, the COO's 1:1s and each client's check-in are Google Calendar events with a Meet link
and the right attendees, created once; a client reassigned to another AM moves its check-in
(new attendees, a free slot of the new AM), a client lost («Baja») has it cancelled; the
meetings table follows (the KPI: check-ins planned and done per AM); a crash between the
Calendar call and the ledger leaves one event; a month and a half day by day creates the
expected events, and re-running any day changes nothing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from connectors.clients import ActionRuntime
from connectors.google import actions
from jobs.cycle import run_sync
from jobs.meetings_report import render
from rules import meetings
from rules.engine import run_cycle
from sandbox.activity import StaffSimulator
from store.models import ActionLedger, Client, Meeting, Staff
from tests.desk_helpers import TIJUANA, Desk, account_desk, local, stores

COO = "coo@saeko.test"
AMS = ["am-bajio@saeko.test", "am-tecate@saeko.test", "am-tijuana-1@saeko.test",
       "am-tijuana-2@saeko.test"]
AGENTS = [f"agente-{n}@saeko.test" for n in range(1, 6)]
ELENA_PROFILE = 5003  # am-tijuana-2 in config/staff.yaml
CHECK_IN, OPS, DESK, ONE = ("Check-in: ", "Reunión operativa semanal de cuentas",
                            "Revisión semanal de la mesa de atención", "1:1 ")


class SimulatedCrash(BaseException):
    """The process dies (not an error a rule's guard would catch)."""


@pytest.fixture(params=stores())
def office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The small world (6 clients) and a store switched on with the shipped M8 rules."""
    with account_desk(tmp_path, "m8-*.yaml", kind=request.param) as desk:
        yield desk


@pytest.fixture
def sqlite_office(tmp_path: Path) -> Iterator[Desk]:
    with account_desk(tmp_path, "m8-*.yaml") as desk:
        yield desk


def _when(event: dict[str, Any]) -> str:
    """An event's start in Tijuana, '2026-11-19 10:00'."""
    moment = datetime.fromisoformat(event["start"]["dateTime"]).astimezone(TIJUANA)
    return f"{moment:%Y-%m-%d %H:%M}"


def _emails(event: dict[str, Any]) -> list[str]:
    return sorted(a["email"] for a in event.get("attendees") or [])


def _events(desk: Desk, prefix: str, status: str = "confirmed") -> dict[str, dict[str, Any]]:
    """The calendar's events whose title starts with ``prefix``, by title (check-ins: by
    client name) or, for repeated titles, by start."""
    out = {}
    for event in desk.google.events():
        if event["summary"].startswith(prefix) and event["status"] == status:
            name = event["summary"].removeprefix(CHECK_IN) if prefix == CHECK_IN else \
                f"{event['summary']} {_when(event)}"
            out[name] = event
    return out


def _client(desk: Desk, name: str) -> Client:
    with desk.db.session() as s:
        return s.scalars(select(Client).where(Client.name == name)).one()


def _staff_id(desk: Desk, email: str) -> int:
    with desk.db.session() as s:
        return int(s.scalars(select(Staff.id).where(Staff.email == email)).one())


def _directivos(desk: Desk, client_name: str) -> list[str]:
    world = desk.sandbox.world
    key = next(c.key for c in world.clients if c.name == client_name)
    schools = {s.key for s in world.schools if s.client_key == key}
    return [u.email.lower() for u in world.users
            if u.school_key in schools and u.role == "Directivo"][:3]


def _rows(desk: Desk) -> list[tuple[Any, ...]]:
    with desk.db.session() as s:
        return [(r.source_id, r.kind, r.client_id, r.staff_id, r.starts_at, r.ends_at,
                 r.status) for r in s.scalars(select(Meeting).order_by(Meeting.id))]


def _state(desk: Desk) -> dict[str, Any]:
    """Everything a re-run could change: the calendar (with each event's etag), the ledger
    and the meetings table."""
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref) for r in
                  s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    events = sorted((e["id"], e["etag"], e["status"], _when(e), tuple(_emails(e)))
                    for e in desk.google.events())
    return {"events": events, "ledger": ledger, "rows": _rows(desk)}


def test_meetings_are_created_once_with_meet_and_attendees(office: Desk) -> None:
    desk = office
    # Switched on on Wednesday 18 November 2026 at 12:00: every series has its next event.
    check_ins = _events(desk, CHECK_IN)
    # Monte Claro is still in onboarding with its CSM (no AM): no check-in.
    assert sorted(check_ins) == ["Academia Aurora", "Centro Educativo Mirador",
                                 "Centro Educativo Santa Fe", "Escuela Brisas",
                                 "Liceo Aurora"]
    # Each AM's first check-in goes to the first free slot from tomorrow; Tomás has two
    # clients (10:00 and 12:00: the 12:00 slot is free, his 1:1 ends at 12:00).
    assert {n: _when(e) for n, e in check_ins.items()} == {
        "Academia Aurora": "2026-11-19 10:00", "Centro Educativo Mirador": "2026-11-19 10:00",
        "Centro Educativo Santa Fe": "2026-11-19 10:00", "Escuela Brisas": "2026-11-19 10:00",
        "Liceo Aurora": "2026-11-19 12:00"}
    brisas = check_ins["Escuela Brisas"]
    assert _emails(brisas) == sorted(["am-tijuana-1@saeko.test",
                                      *_directivos(desk, "Escuela Brisas")])
    assert len(_emails(brisas)) >= 2  # the AM and the client's decision makers
    assert datetime.fromisoformat(brisas["end"]["dateTime"]) - datetime.fromisoformat(
        brisas["start"]["dateTime"]) == timedelta(minutes=45)
    [ops] = _events(desk, OPS).values()
    assert _when(ops) == "2026-11-23 09:30" and _emails(ops) == sorted([COO, *AMS])
    [review] = _events(desk, DESK).values()
    assert _when(review) == "2026-11-20 10:00" and _emails(review) == sorted([COO, *AGENTS])
    ones = _events(desk, ONE)
    assert sorted((_when(e), e["summary"], tuple(_emails(e))) for e in ones.values()) == [
        ("2026-11-19 11:00", "1:1 Adriana Pineda · COO", ("am-bajio@saeko.test", COO)),
        ("2026-11-19 11:30", "1:1 Tomás Villalobos · COO", ("am-tecate@saeko.test", COO)),
        ("2026-11-19 12:00", "1:1 Marco Ibarra · COO", ("am-tijuana-1@saeko.test", COO)),
        ("2026-11-19 12:30", "1:1 Elena Quiroz · COO", ("am-tijuana-2@saeko.test", COO))]
    every = desk.google.events()
    assert len(every) == 11
    for event in every:
        assert event["hangoutLink"].startswith("https://meet.google.com/")
        assert event["conferenceData"]["entryPoints"][0]["uri"] == event["hangoutLink"]
    # The meetings table: what the KPI reads.
    with desk.db.session() as s:
        rows = {r.source_id: r for r in s.scalars(select(Meeting))}
    assert len(rows) == 11
    row = rows[brisas["id"]]
    assert (row.kind, row.client_id, row.staff_id, row.status, row.source) == (
        "check-in", _client(desk, "Escuela Brisas").id, _staff_id(desk, AMS[2]),
        "confirmed", "calendar")
    assert row.starts_at == local("2026-11-19 10:00")
    assert row.ends_at == local("2026-11-19 10:45")
    assert sorted(r.kind or "" for r in rows.values()) == sorted(
        ["check-in"] * 5 + ["operaciones", "revision-mesa"] + ["uno-a-uno"] * 4)
    # The event id is the one the connector derives from the occurrence's marker.
    # The key names the client by its Podio item id (model ids differ between stores).
    key = f"check-in:{_client(desk, 'Escuela Brisas').source_id}:2026-11/2026-12"
    assert brisas["id"] == meetings.event_id(key) == actions.event_id_for(f"reunion:{key}")

    before = _state(desk)
    desk.cycle()
    desk.at("2026-11-18 16:00")
    desk.cycle()
    assert _state(desk) == before


def test_a_reassigned_client_moves_and_a_lost_client_is_cancelled(office: Desk) -> None:
    desk = office
    check_ins = _events(desk, CHECK_IN)
    brisas, aurora = check_ins["Escuela Brisas"], check_ins["Academia Aurora"]
    liceo = check_ins["Liceo Aurora"]
    desk.at("2026-11-18 13:00")
    # The COO gives Escuela Brisas to Elena, and Academia Aurora leaves (estatus «Baja»).
    brisas_item = int(_client(desk, "Escuela Brisas").source_id)
    aurora_item = int(_client(desk, "Academia Aurora").source_id)
    desk.podio.update_item_as(COO, brisas_item, {"am": [ELENA_PROFILE]})
    desk.podio.update_item_as(COO, aurora_item, {"estatus": "Baja"})
    desk.cycle()

    moved = {e["id"]: e for e in desk.google.events()}[brisas["id"]]
    assert moved["status"] == "confirmed"
    # Same event, now with Elena instead of Marco, at Elena's first free slot: 10:00 is
    # Mirador's check-in and her 1:1 starts at 12:30, so 16:00.
    assert _emails(moved) == sorted(["am-tijuana-2@saeko.test",
                                     *_directivos(desk, "Escuela Brisas")])
    assert "am-tijuana-1@saeko.test" not in _emails(moved)
    assert _when(moved) == "2026-11-19 16:00" and moved["sequence"] == 1
    assert moved["hangoutLink"] == brisas["hangoutLink"]  # the Meet link stays
    cancelled = {e["id"]: e for e in desk.google.events()}[aurora["id"]]
    assert cancelled["status"] == "cancelled"
    assert _events(desk, CHECK_IN)["Liceo Aurora"]["etag"] == liceo["etag"]  # untouched
    assert len(desk.google.events()) == 11  # nothing new: one event per occurrence

    with desk.db.session() as s:
        rows = {r.source_id: r for r in s.scalars(select(Meeting))}
    assert rows[brisas["id"]].staff_id == _staff_id(desk, "am-tijuana-2@saeko.test")
    assert rows[brisas["id"]].starts_at == local("2026-11-19 16:00")
    assert rows[aurora["id"]].status == "cancelled"

    before = _state(desk)
    desk.cycle()
    assert _state(desk) == before

    # Thursday: the check-ins happen; Elena writes Mirador's minuta, Adriana Santa Fe's as
    # «Reprogramado» (not done).
    desk.at("2026-11-19 17:30")
    sim = StaffSimulator(desk.sandbox)
    mirador_item = _client(desk, "Centro Educativo Mirador").source_id
    santa_fe_item = _client(desk, "Centro Educativo Santa Fe").source_id
    assert "check-in" in sim.act("check_in", mirador_item, day="2026-11-19")
    sim.act("check_in", santa_fe_item, day="2026-11-19", outcome="Reprogramado")
    desk.cycle()
    with desk.db.session() as s:
        counts = {c.name: (c.planned, c.done) for c in meetings.check_in_counts(
            s, date(2026, 11, 1), "America/Tijuana", desk.sandbox.clock.now())}
        out = io.StringIO()
        console = Console(file=out, width=140, color_system=None)
        for table in render(s, desk.settings, date(2026, 11, 1)):
            console.print(table)
    assert counts == {"Elena Quiroz": (2, 1), "Marco Ibarra": (0, 0),
                      "Adriana Pineda": (1, 0), "Tomás Villalobos": (1, 0)}
    text = out.getvalue()
    assert "Check-ins de noviembre de 2026 por AM" in text
    assert "Elena Quiroz" in text and "50.0 %" in text and "—" in text
    assert "Total" in text and "25.0 %" in text  # 1 of the 4 planned


def test_a_crash_between_calendar_and_the_ledger_leaves_one_event(sqlite_office: Desk
                                                                   ) -> None:
    desk = sqlite_office
    brisas = _events(desk, CHECK_IN)["Escuela Brisas"]
    desk.at("2026-11-18 13:00")
    desk.podio.update_item_as(COO, int(_client(desk, "Escuela Brisas").source_id),
                              {"am": [ELENA_PROFILE]})

    def crash(key: str) -> None:
        if key.startswith("m8-check-in-clientes"):
            raise SimulatedCrash

    assert run_sync(desk.settings, desk.db, clients=desk.clients).ok
    with pytest.raises(SimulatedCrash):
        run_cycle(desk.settings, desk.db, now=desk.sandbox.clock.now(),
                  runtime=ActionRuntime(desk.settings, after_send=crash))
    # Calendar has the move; the ledger row is pending and the table still says Marco.
    moved = {e["id"]: e for e in desk.google.events()}[brisas["id"]]
    assert "am-tijuana-2@saeko.test" in _emails(moved)
    with desk.db.session() as s:
        row = s.scalars(select(Meeting).where(Meeting.source_id == brisas["id"])).one()
        assert row.staff_id == _staff_id(desk, "am-tijuana-1@saeko.test")
        assert s.scalars(select(ActionLedger.status).where(
            ActionLedger.rule_id == "m8-check-in-clientes", ActionLedger.status == "pending")
        ).all() == ["pending"]
    desk.sandbox.calls.reset()
    desk.at("2026-11-18 13:10")
    report = desk.cycle()
    # The look-up found the event as wanted: no second write, the table written through.
    assert desk.sandbox.calls.total("google", "PATCH") == 0
    assert desk.sandbox.calls.total("google", "POST /calendar") == 0
    assert sum(o.reconciled for o in report.rules.values()) == 1
    with desk.db.session() as s:
        row = s.scalars(select(Meeting).where(Meeting.source_id == brisas["id"])).one()
        assert row.staff_id == _staff_id(desk, "am-tijuana-2@saeko.test")
    assert len(desk.google.events()) == 11
    before = _state(desk)
    desk.cycle()
    assert _state(desk) == before


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def test_six_weeks_day_by_day_create_the_expected_events(sqlite_office: Desk) -> None:
    desk = sqlite_office
    for day in _days(date(2026, 11, 19), date(2026, 12, 31)):
        desk.at(f"{day.isoformat()} 08:00")
        desk.google.reset_quotas()  # a day went by: the per-minute quotas are long clear
        desk.cycle()
        before = _state(desk)
        desk.cycle()  # the same day again: nothing changes
        assert _state(desk) == before, day
    events = desk.google.events()
    assert [(e["summary"], _when(e)) for e in events if e["status"] != "confirmed"] == []
    assert sorted(_when(e) for e in events if e["summary"] == OPS) == [
        "2026-11-23 09:30", "2026-11-30 09:30", "2026-12-07 09:30", "2026-12-14 09:30",
        "2026-12-21 09:30", "2026-12-28 09:30", "2027-01-04 09:30"]
    # Friday 25 December is a holiday: that week's review moves to Monday 28; Friday
    # 1 January too, to Monday 4.
    assert sorted(_when(e) for e in events if e["summary"] == DESK) == [
        "2026-11-20 10:00", "2026-11-27 10:00", "2026-12-04 10:00", "2026-12-11 10:00",
        "2026-12-18 10:00", "2026-12-28 10:00", "2027-01-04 10:00"]
    # Every two weeks, the four AMs one after another.
    ones = sorted(_when(e) for e in events if e["summary"].startswith(ONE))
    assert ones == sorted(f"{d} {h}" for d in ("2026-11-19", "2026-12-03", "2026-12-17",
                                               "2026-12-31")
                          for h in ("11:00", "11:30", "12:00", "12:30"))
    # Estándar clients every two months: November–December on the 19th, then the first
    # business day of January (Friday 1 is a holiday; Monday 4 at 10:00 is the operations
    # meeting, so 12:00, and Tomás's second client at 16:00), created 21 days ahead.
    check_ins = sorted((e["summary"].removeprefix(CHECK_IN), _when(e)) for e in events
                       if e["summary"].startswith(CHECK_IN))
    assert check_ins == [
        ("Academia Aurora", "2026-11-19 10:00"), ("Academia Aurora", "2027-01-04 12:00"),
        ("Centro Educativo Mirador", "2026-11-19 10:00"),
        ("Centro Educativo Mirador", "2027-01-04 12:00"),
        ("Centro Educativo Santa Fe", "2026-11-19 10:00"),
        ("Centro Educativo Santa Fe", "2027-01-04 12:00"),
        ("Escuela Brisas", "2026-11-19 10:00"), ("Escuela Brisas", "2027-01-04 12:00"),
        ("Liceo Aurora", "2026-11-19 12:00"), ("Liceo Aurora", "2027-01-04 16:00")]
    assert len(events) == 7 + 7 + 16 + 10
    assert len(_rows(desk)) == len(events)
    now = desk.sandbox.clock.now().replace(tzinfo=UTC)
    assert all(datetime.fromisoformat(e["start"]["dateTime"]) <= now + timedelta(days=21)
               for e in events)  # nothing beyond the horizon


def test_a_top_client_has_a_check_in_every_month(sqlite_office: Desk) -> None:
    desk = sqlite_office
    brisas = _events(desk, CHECK_IN)["Escuela Brisas"]
    desk.at("2026-11-18 13:00")
    desk.podio.update_item_as(COO, int(_client(desk, "Escuela Brisas").source_id),
                              {"segmento": "TOP"})
    desk.cycle()
    # Its November–December check-in becomes the November one of a monthly cadence: the
    # old event is cancelled and the new one takes the next free slot (10:00 was the old
    # one's until it went).
    events = {e["id"]: e for e in desk.google.events()}
    assert events[brisas["id"]]["status"] == "cancelled"
    [now] = [e for e in events.values() if e["summary"] == "Check-in: Escuela Brisas"
             and e["status"] == "confirmed"]
    assert _when(now) == "2026-11-19 16:00"
    for day in _days(date(2026, 11, 19), date(2026, 12, 2)):
        desk.at(f"{day.isoformat()} 08:00")
        desk.cycle()
    confirmed = sorted(_when(e) for e in desk.google.events()
                       if e["summary"] == "Check-in: Escuela Brisas"
                       and e["status"] == "confirmed")
    # December's, on its first business day (Tuesday 1), created once November's passed.
    assert confirmed == ["2026-11-19 16:00", "2026-12-01 10:00"]


def test_a_broken_reuniones_yaml_points_to_its_line(tmp_path: Path) -> None:
    import shutil

    from core.errors import ConfigError
    from core.settings import PROJECT_ROOT, load_settings
    from rules import api

    config = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config)
    text = (config / "reuniones.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    line = next(n for n, t in enumerate(lines, 1) if t.strip().startswith("dia: lunes"))
    lines[line - 1] = lines[line - 1].replace("lunes", "lunez")
    (config / "reuniones.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        meetings.load(config)
    assert f"reuniones.yaml:{line}:" in str(caught.value) and "lunez" in str(caught.value)
    settings = load_settings(config_dir=config, rules_dir=config / "rules")
    problems = [p for p in api.validate(settings) if p.path.endswith("reuniones.yaml")]
    assert [p.line for p in problems] == [line]


def test_a_new_store_on_the_same_calendar_adopts_its_events(sqlite_office: Desk,
                                                            tmp_path: Path) -> None:
    """Pointing an empty store at a calendar M8 already keeps changes nothing in Calendar:
    the events of the occurrences it plans exist (same ids) and are taken as they are, past
    ones included; its meetings table then shows them."""
    from tests.desk_helpers import open_desk

    desk = sqlite_office
    desk.at("2026-11-18 13:00")
    desk.podio.update_item_as(COO, int(_client(desk, "Escuela Brisas").source_id),
                              {"am": [ELENA_PROFILE]})
    desk.cycle()
    desk.at("2026-11-19 13:30")  # the morning's check-ins took place
    desk.cycle()
    before = sorted((e["id"], e["etag"]) for e in desk.google.events())
    config = desk.settings.config_dir
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with open_desk(desk.sandbox, f"sqlite:///{fresh}/store.db", config) as other:
        other.cycle()
        other.cycle()
        after = sorted((e["id"], e["etag"]) for e in other.google.events())
        changed = [(e["summary"], _when(e), e["status"]) for e in other.google.events()
                   if (e["id"], e["etag"]) not in before]
        assert after == before, changed
        rows = {r[0]: r for r in _rows(other)}
    mine = {r[0]: r for r in _rows(desk)}
    assert set(rows) <= set(mine) and len(rows) >= 10
    for event_id, row in rows.items():  # same event, times, status as the first store saw
        assert row[4:] == mine[event_id][4:], event_id
