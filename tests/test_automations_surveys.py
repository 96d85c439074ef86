"""M4 automatic surveys over the sandbox, the clock moved day by day through six weeks: the
monthly micro-survey to a deterministic sample of the active clients' users and the
quarterly NPS to their decision makers, by email with prefilled Google Forms links; the
fatigue rule across channels (no address gets two surveys within 30 days, T6's CSAT
included, and a recent answer counts too); a contact who asked not to be surveyed never is;
answers come back through the Forms sync tied to the contact and client; a detractor gets
T8's task; re-running a day changes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from rules.surveys import draw
from sandbox.world import podio_item_id
from store.models import ActionLedger, Client, Contact, SurveyResponse
from tests.desk_helpers import AGENT_PROFILE, Desk, account_desk, local, stores

PATTERNS = ("t6-*.yaml", "t8-*.yaml", "m4-*.yaml")
FATIGUE = timedelta(days=30)  # dias_sin_encuestas in both m4 rules
ACTIVE = ("Activo", "En riesgo")  # estatus_clientes
SAMPLE = 0.3  # fraccion_muestra
CSAT, MICRO, NPS = "¿Cómo te atendimos?", "Una pregunta rápida sobre Saeko", "¿Recomendaría Saeko?"
# The questions the links prefill (config/google.yaml): micro email; NPS email and school.
MICRO_EMAIL, NPS_EMAIL, NPS_SCHOOL = "2f6a9c13", "4b9e1a07", "73e2c5d1"
# Business days 1-10 at 10:00 Tijuana; December 2026 starts on a Tuesday; 1 January 2027 is
# a holiday and Monday 4 January the first business day of the quarter.
DAYS = [date(2026, 11, 26) + timedelta(days=n) for n in range(44)]  # to Friday 8 January
ELENA_USER = 1003  # AM of Centro Educativo Mirador (client 1)


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a SQLite store switched on with T6, T8 and the M4 rules."""
    with _office(tmp_path, "sqlite") as desk:
        yield desk


@pytest.fixture(params=stores())
def any_office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The same on SQLite and on PostgreSQL (when reachable)."""
    with _office(tmp_path, request.param) as desk:
        yield desk


@contextmanager
def _office(tmp_path: Path, kind: str) -> Iterator[Desk]:
    with account_desk(tmp_path, *PATTERNS, kind=kind) as desk:
        # Six weeks of cycles play in about a minute of real time: the tools' per-minute and
        # per-hour quotas (real ones) are for cycles minutes apart, so they are lifted here.
        desk.google.set_quota("forms_expensive", 100_000)
        desk.podio.set_quota(100_000, rate_limited=100_000)
        yield desk


def _kind(subject: str) -> str | None:
    return next((k for k, p in (("csat", CSAT), ("micro", MICRO), ("nps", NPS))
                 if subject.startswith(p)), None)


def _surveys(desk: Desk) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    """Every survey email sent: (kind, address, sent at, message)."""
    out = []
    for m in desk.google.sent_messages():
        kind = _kind(m["subject"])
        if kind is not None:
            for address in m["to"]:
                out.append((kind, address.lower(), datetime.fromisoformat(m["sent_at"]), m))
    return out


def _link(message: dict[str, Any]) -> dict[str, str]:
    """The prefilled values of the message's form link: question id -> value."""
    (url,) = re.findall(r"https://docs\.google\.com/forms/\S+", message["text"])
    query = parse_qs(urlparse(url).query)
    assert query.pop("usp") == ["pp_url"]
    return {f"{int(k.removeprefix('entry.')):08x}": v for k, (v,) in query.items()}


def _state(desk: Desk) -> tuple[list[Any], int, int]:
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref) for r in
                  s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    return ledger, len(desk.google.sent_messages()), len(desk.podio.tasks())


class Oracle:
    """Who should get which survey, from the world as the test set it up: the sample is
    the draw of each user's Podio item id and month; the fatigue the last survey email or
    answer per address."""

    def __init__(self, desk: Desk, opted_out: set[int]) -> None:
        world = desk.sandbox.world
        client_of = {s.key: s.client_key for s in world.schools}
        status = {c.key: c.status for c in world.clients}
        self.users = [u for u in world.users if status[client_of[u.school_key]] in ACTIVE
                      and not u.no_survey and u.key not in opted_out and u.email]
        self.last: dict[str, datetime] = {}
        for answer in world.surveys:
            self.touch(answer.email, answer.submitted_at)
        self.opted_out = {u.email for u in world.users if u.no_survey or u.key in opted_out}

    def touch(self, email: str, when: datetime) -> None:
        address = email.lower()
        self.last[address] = max(self.last.get(address, when), when)

    def due(self, day: date, sent: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (kind, address) surveys due at 10:00 of ``day`` (a business day 1-10)."""
        now = local(f"{day.isoformat()} 10:05")
        month, quarter = f"{day:%Y-%m}", f"{day.year}-T{(day.month - 1) // 3 + 1}"
        out: set[tuple[str, str]] = set()
        for user in self.users:
            address = user.email.lower()
            if address in self.last and self.last[address] > now - FATIGUE:
                continue
            if user.role == "Operativo" and draw(month, str(podio_item_id("usuarios", user.key))) \
                    < SAMPLE and ("micro:" + month, address) not in sent:
                out.add(("micro:" + month, address))
            if user.role == "Directivo" and day.month in (1, 4, 7, 10) \
                    and ("nps:" + quarter, address) not in sent:
                out.add(("nps:" + quarter, address))
        return out


# 44 days of cycles (three on each survey day) take a few minutes on a shared machine.
@pytest.mark.timeout(900)
def test_a_month_and_a_half_of_surveys(office: Desk) -> None:
    desk = office
    world = desk.sandbox.world
    client_of = {s.key: s.client_key for s in world.schools}
    active = {c.key for c in world.clients if c.status in ACTIVE}
    recent = {a.email for a in world.surveys if a.submitted_at > datetime(2026, 10, 25)}
    # Two users December's micro-survey would reach (sampled, no answer since October).
    sampled_in_december = [
        u for u in world.users if u.role == "Operativo" and not u.no_survey
        and client_of[u.school_key] in active and u.email not in recent
        and draw("2026-12", str(podio_item_id("usuarios", u.key))) < SAMPLE]
    ticket_user, opting_out, same_cycle = sampled_in_december[:3]
    assert [u for u in world.users if u.no_survey], "the world has users who opted out"

    # Friday 20 November: a user asks not to be surveyed any more (staff tick «no-encuestar»).
    desk.at("2026-11-20 11:00")
    desk.podio.update_item_as("am-tijuana-2@saeko.test",
                              podio_item_id("usuarios", opting_out.key),
                              {"no-encuestar": "Sí"})
    desk.cycle()
    # Wednesday 25 November: the desk answers a ticket of a user in December's sample: T6
    # closes it and sends the CSAT, which counts for M4's fatigue.
    desk.at("2026-11-25 09:30")
    ticket = desk.new_ticket("No aparece el recibo de colegiatura", estatus="En atención",
                             responsable=[AGENT_PROFILE],
                             usuario=[podio_item_id("usuarios", ticket_user.key)])
    desk.cycle()
    desk.at("2026-11-25 09:40")
    desk.edit(ticket, respuesta="Ya quedó: el recibo se genera desde Cobranza > Recibos.")
    desk.cycle()
    [(kind, address, sent_at, _m)] = _surveys(desk)
    assert (kind, address) == ("csat", ticket_user.email.lower())

    oracle = Oracle(desk, {opting_out.key})
    oracle.touch(ticket_user.email, sent_at)
    expected: set[tuple[str, str]] = set()
    answered: list[str] = []
    later: dict[str, int] = {}  # the ticket answered in the micro-survey's cycle
    for day in DAYS:
        if day == date(2026, 12, 1):
            desk.at("2026-12-01 10:04")
            desk.edit(later["ticket"], respuesta="Listo: ya puedes descargarlas desde Boletas.")
            oracle.touch(same_cycle.email, local("2026-12-01 10:05"))
        desk.at(f"{day.isoformat()} 10:05")
        business = day.weekday() < 5 and day != date(2027, 1, 1)  # a holiday
        due = oracle.due(day, expected) if business and day.day <= 10 else set()
        expected |= due
        desk.cycle()
        if business and day.day <= 10:
            # Later the same day (an effect that failed on a dropped connection is sent
            # then, after its look-up by marker), and once more: that re-run changes nothing.
            desk.at(f"{day.isoformat()} 15:00")
            desk.cycle()
            after = _state(desk)
            desk.cycle()
            assert _state(desk) == after, day
        new = [s for s in _surveys(desk) if s[2].date() == local(f"{day.isoformat()} 10:05")
               .date() and s[2] >= local(f"{day.isoformat()} 10:05")]
        for _kind, address, _when, _message in new:
            oracle.touch(address, local(f"{day.isoformat()} 10:05"))
        got = {(f"{k}:{day:%Y-%m}" if k == "micro" else
                f"{k}:{day.year}-T{(day.month - 1) // 3 + 1}", a) for k, a, _w, _m in new
               if k != "csat"}
        assert got == due, day
        # The first micro-survey of each day is answered at once, through its prefilled
        # link (the answer counts as a recent survey for that address too).
        micro = [m for k, _a, _w, m in new if k == "micro"]
        if micro:
            email = _link(micro[0])[MICRO_EMAIL]
            desk.google.submit_response(desk.settings.google_micro_form_id,
                                        {"score": 4, "comment": "Todo bien", "email": email})
            oracle.touch(email, desk.sandbox.clock.now())
            answered.append(email)
        if day == date(2026, 11, 30):
            # A ticket of another sampled user, answered on 1 December at 10:04, just before
            # the micro-survey's cycle: T6's CSAT (events) and M4 (schedules) in the same
            # cycle: the CSAT goes, the micro-survey does not.
            desk.at("2026-11-30 16:00")
            later["ticket"] = desk.new_ticket(
                "No puedo descargar las boletas", estatus="En atención",
                responsable=[AGENT_PROFILE],
                usuario=[podio_item_id("usuarios", same_cycle.key)])
            desk.cycle()

    sent = _surveys(desk)
    kinds = [k for k, *_ in sent]
    micro_dec = [a for k, a, w, _m in sent if k == "micro" and w.month == 12]
    micro_jan = [a for k, a, w, _m in sent if k == "micro" and w.month == 1]
    nps = [a for k, a, w, _m in sent if k == "nps"]
    # The expected numbers: the oracle's, and not trivially small.
    assert len(micro_dec) == len({e for e in expected if e[0] == "micro:2026-12"}) >= 3
    assert len(micro_jan) == len({e for e in expected if e[0] == "micro:2027-01"}) >= 3
    assert len(nps) == len({e for e in expected if e[0] == "nps:2027-T1"}) >= 3
    assert kinds.count("csat") == 2
    print(f"surveys: {len(micro_dec)} micro in December, {len(micro_jan)} in January, "
          f"{len(nps)} NPS, {len(answered)} micro answers")
    # Nobody got two surveys within 30 days, T6's CSAT included.
    by_address: dict[str, list[datetime]] = {}
    for _k, address, when, _m in sent:
        by_address.setdefault(address, []).append(when)
    for address, times in by_address.items():
        times.sort()
        assert all(b - a >= FATIGUE for a, b in zip(times, times[1:], strict=False)), address
    # The ticket's user was in December's sample, but had the CSAT on 25 November.
    assert ticket_user.email.lower() not in micro_dec
    assert same_cycle.email.lower() not in micro_dec
    assert [(k, w) for k, a, w, _m in sent if a == same_cycle.email.lower() and w.month == 12
            ] == [("csat", local("2026-12-01 10:05"))]
    # Opted out (in the world, or ticked in Podio on the 20th): never surveyed.
    assert oracle.opted_out and not oracle.opted_out & set(by_address)
    assert opting_out.email.lower() not in by_address

    # Prefilled links: the micro-survey carries the address, the NPS the address and school.
    for kind, address, _w, message in sent:
        if kind == "micro":
            assert _link(message) == {MICRO_EMAIL: address}
            assert "Responder la encuesta" in message["html"]
        elif kind == "nps":
            user = next(u for u in world.users if u.email.lower() == address)
            client = next(c for c in world.clients if c.key == client_of[user.school_key])
            assert _link(message) == {NPS_EMAIL: address, NPS_SCHOOL: client.name}
            assert message["text"].startswith(f"Hola {user.name}:")

    # The micro answers came back through the Forms sync, tied to the contact and client.
    with desk.db.session() as s:
        rows = s.scalars(select(SurveyResponse).where(SurveyResponse.kind == "micro")).all()
        assert sorted(str(r.email) for r in rows) == sorted(answered)
        assert all(r.contact_id is not None and r.client_id is not None for r in rows)


def test_a_detractor_gets_t8s_task(any_office: Desk) -> None:
    """A Directivo answers the quarterly NPS with a 3 through its prefilled link: the answer
    is tied to the client and its AM gets T8's follow-up task."""
    desk = any_office
    for day in ("2026-12-31 10:05", "2027-01-04 10:05"):
        desk.at(day)
        desk.cycle()
    world = desk.sandbox.world
    client_of = {s.key: s.client_key for s in world.schools}
    director = next(u for u in world.users if u.role == "Directivo"
                    and client_of[u.school_key] == 1)
    (message,) = [m for k, a, _w, m in _surveys(desk)
                  if k == "nps" and a == director.email.lower()]
    values = _link(message)
    desk.at("2027-01-05 09:00")
    desk.google.submit_response(desk.settings.google_nps_form_id, {
        "score": 3, "reason": "Los reportes tardan mucho", "email": values[NPS_EMAIL],
        "client": values[NPS_SCHOOL]})
    desk.cycle()
    mirador = podio_item_id("clientes", 1)
    tasks = [t for t in desk.podio.tasks(mirador) if t["text"].startswith("NPS detractor")]
    assert [(t["text"], t["responsible"]["user_id"]) for t in tasks] == [
        (f"NPS detractor (3/10) de {director.name}: dar seguimiento", ELENA_USER)]
    assert "Los reportes tardan mucho" in tasks[0]["description"]
    with desk.db.session() as s:
        (row,) = s.scalars(select(SurveyResponse).where(
            SurveyResponse.kind == "nps", SurveyResponse.email == director.email.lower(),
            SurveyResponse.comment == "Los reportes tardan mucho")).all()
        contact = s.scalars(select(Contact).where(
            Contact.source_id == str(podio_item_id("usuarios", director.key)))).one()
        client = s.scalars(select(Client).where(Client.id == row.client_id)).one()
        assert row.contact_id == contact.id and client.source_id == str(mirador)
    before = _state(desk)
    desk.cycle()
    assert _state(desk) == before


def test_the_sample_is_fixed_per_month_and_of_the_configured_size() -> None:
    """en_muestra: the same people every time it is computed, others the next month, and
    about the configured fraction of them (a hash, not a random draw)."""
    from core.settings import PROJECT_ROOT
    from rules.calendar import BusinessCalendar
    from rules.functions import FUNCTIONS, Env

    env = Env(datetime(2026, 12, 1, 18, 5), "America/Tijuana",
              BusinessCalendar.load(PROJECT_ROOT / "config"))
    in_sample = FUNCTIONS["en_muestra"].fn
    ids = [str(40_000_000 + n) for n in range(5000)]
    december = {i for i in ids if in_sample(env, i, "2026-12", 0.3)}
    assert december == {i for i in ids if in_sample(env, i, "2026-12", "0.3")}
    january = {i for i in ids if in_sample(env, i, "2027-01", 0.3)}
    assert abs(len(december) / len(ids) - 0.3) < 0.02
    assert abs(len(january) / len(ids) - 0.3) < 0.02
    assert 0.05 < len(december & january) / len(ids) < 0.13  # independent draws: ~9 %
    assert not any(in_sample(env, i, "2026-12", 0) for i in ids[:100])
    assert all(in_sample(env, i, "2026-12", 1) for i in ids[:100])
    with pytest.raises(ValueError, match="la fracción de la muestra va de 0 a 1"):
        in_sample(env, ids[0], "2026-12", 30)
