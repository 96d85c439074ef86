"""M11 cobranza follow-up over the sandbox, with invoices edited in Podio as staff would and
the clock moved: on Mondays at 12:00 each AM with overdue invoices gets ONE task and ONE
email listing them (client, folio, amount, due date, days overdue, total); the first
business day of the month brings the monthly billing reminder instead; an AM with nothing
overdue gets nothing; paid invoices drop out; re-running the cycles changes nothing; after
downtime a missed slot is caught up once; a holiday Monday sends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.settings import PROJECT_ROOT
from rules.actions import REGISTRY
from rules.actions.base import ActionSkipped, PrepareContext
from rules.calendar import BusinessCalendar
from rules.functions import FUNCTIONS, Env
from rules.ledger import marker_for
from sandbox.world import podio_item_id
from store.models import ActionLedger
from tests.desk_helpers import Desk, account_desk, stores

EDITOR = "coo@saeko.test"  # administration records invoices and payments in Podio
# The AMs of config/staff.yaml and their Podio users.
MARCO, MARCO_USER = "am-tijuana-1@saeko.test", 1002  # Escuela Brisas (client 6): 3 overdue
ELENA, ELENA_USER = "am-tijuana-2@saeko.test", 1003  # Centro Educativo Mirador (client 1)
TOMAS, TOMAS_USER = "am-tecate@saeko.test", 1004  # Academia Aurora (client 2)
ADRIANA, ADRIANA_USER = "am-bajio@saeko.test", 1005  # Centro Educativo Santa Fe (client 5)
# The world's overdue invoices of Escuela Brisas (folio, due date, amount).
BRISAS = [("F-202608-00006", date(2026, 8, 15)), ("F-202610-00006", date(2026, 10, 15)),
          ("F-202611-00006", date(2026, 11, 15))]
WEEKLY, MONTHLY = "Cobranza: ", "Recordatorio mensual de cobranza: "


@pytest.fixture(params=stores())
def office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a store switched on with the shipped M11 rules only."""
    with account_desk(tmp_path, "m11-*.yaml", kind=request.param) as desk:
        yield desk


@pytest.fixture
def sqlite_office(tmp_path: Path) -> Iterator[Desk]:
    with account_desk(tmp_path, "m11-*.yaml") as desk:
        yield desk


FIRST_BUSINESS_DAYS = {
    date(2026, 12, 15): date(2026, 12, 1),  # a Tuesday
    date(2027, 1, 20): date(2027, 1, 4),  # 1 January is a holiday, then a weekend
    date(2027, 2, 10): date(2027, 2, 2),  # Monday 1 February is a holiday
    date(2026, 11, 30): date(2026, 11, 2),
}


@pytest.mark.parametrize("day", list(FIRST_BUSINESS_DAYS), ids=str)
def test_the_first_business_day_of_the_month(day: date) -> None:
    env = Env(datetime(2026, 11, 18, 20, 0), "America/Tijuana",
              BusinessCalendar.load(PROJECT_ROOT / "config"))
    first = FUNCTIONS["primer_dia_habil"].fn(env, day)
    assert first == FIRST_BUSINESS_DAYS[day]
    assert FUNCTIONS["es_primer_dia_habil"].fn(env, first)
    assert not FUNCTIONS["es_primer_dia_habil"].fn(env, day)
    # A slot as the engine holds it (naive UTC: 12:00 in Tijuana is 20:00) is read as its
    # local day.
    assert FUNCTIONS["es_primer_dia_habil"].fn(env, datetime.combine(first, time(20, 0)))
    assert FUNCTIONS["periodo"].fn(env, date(2026, 11, 23), "semana") == "2026-S48"
    assert FUNCTIONS["periodo"].fn(env, date(2027, 1, 3), "semana") == "2026-S53"
    # Sunday 23:00 in Tijuana is Monday 07:00 UTC: still the week that ends that Sunday.
    assert FUNCTIONS["periodo"].fn(env, datetime(2026, 11, 30, 7, 0), "semana") == "2026-S48"


def _invoice(desk: Desk, client: int, folio: str, amount: int, due: date,
             **fields: Any) -> int:
    return int(desk.podio.create_item_as(EDITOR, "facturas", {
        "folio": folio, "cliente": [podio_item_id("clientes", client)],
        "monto": {"value": str(amount), "currency": "MXN"},
        "vencimiento": {"start_date": due.isoformat()}, **fields}))


def _client_name(desk: Desk, key: int) -> str:
    return str(next(c.name for c in desk.sandbox.world.clients if c.key == key))


def _digests(desk: Desk, user: int, prefix: str) -> list[dict[str, Any]]:
    """The AM's digest tasks (tasks with no item) whose text starts with ``prefix``."""
    return [t for t in desk.podio.tasks() if t["ref_type"] is None
            and t["responsible"]["user_id"] == user and t["text"].startswith(prefix)]


def _m11_tasks(desk: Desk) -> list[tuple[int, str]]:
    return [(t["responsible"]["user_id"], t["text"]) for t in desk.podio.tasks()
            if t["text"].startswith((WEEKLY, MONTHLY))]


def _mails(desk: Desk, address: str, subject: str) -> list[dict[str, Any]]:
    return [m for m in desk.messages_to(address) if m["subject"].startswith(subject)]


def _m11_mails(desk: Desk) -> list[tuple[tuple[str, ...], str]]:
    return [(tuple(m["to"]), m["subject"]) for m in desk.google.sent_messages()
            if m["subject"].startswith(("Cobranza del lunes", "Recordatorio mensual"))]


def _line(name: str, folio: str, amount: str, due: date, today: date) -> str:
    return (f"{name} · folio {folio} · {amount} · venció el {due:%d/%m/%Y} "
            f"({(today - due).days} días de atraso)")


def _state(desk: Desk) -> dict[str, Any]:
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref) for r in
                  s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    return {"ledger": ledger, "tasks": desk.podio.tasks(), "mail": _m11_mails(desk)}


def test_monday_digest_and_monthly_reminder_per_am(office: Desk) -> None:
    desk = office
    brisas, mirador, aurora = (_client_name(desk, k) for k in (6, 1, 2))
    # Wednesday: administration records invoices. Mirador's is overdue since the 10th;
    # Aurora's falls due on Monday 30; Santa Fe's are paid (one with its payment date,
    # one only marked «Pagada»).
    desk.at("2026-11-18 12:30")
    mirador_invoice = _invoice(desk, 1, "F-EXTRA-001", 4500, date(2026, 11, 10),
                               estatus="Vencida")
    _invoice(desk, 2, "F-EXTRA-002", 3000, date(2026, 11, 30), estatus="Pendiente")
    _invoice(desk, 5, "F-EXTRA-003", 7000, date(2026, 11, 1), estatus="Pagada",
             pagada={"start_date": "2026-11-05"})
    _invoice(desk, 5, "F-EXTRA-004", 7000, date(2026, 11, 2), estatus="Pagada")
    desk.cycle()
    desk.at("2026-11-23 11:55")  # Monday, before noon
    desk.cycle()
    assert _m11_tasks(desk) == [] and _m11_mails(desk) == []

    # Monday 12:05: one digest per AM with overdue invoices.
    desk.at("2026-11-23 12:05")
    desk.cycle()
    today = date(2026, 11, 23)
    (marco,) = _digests(desk, MARCO_USER, WEEKLY)
    assert marco["text"] == "Cobranza: 3 facturas vencidas de tus clientes ($24,000.00)"
    for folio, due in BRISAS:
        assert _line(brisas, folio, "$8,000.00 MXN", due, today) in marco["description"]
    assert "Total vencido: $24,000.00" in marco["description"]
    assert marco["due_date"] == "2026-11-24"  # in one business day
    (elena,) = _digests(desk, ELENA_USER, WEEKLY)
    assert elena["text"] == "Cobranza: 1 factura vencida de tus clientes ($4,500.00)"
    assert _line(mirador, "F-EXTRA-001", "$4,500.00 MXN", date(2026, 11, 10), today) \
        in elena["description"]
    assert "Total vencido: $4,500.00" in elena["description"]
    assert brisas not in elena["description"]
    (mail,) = _mails(desk, MARCO, "Cobranza del lunes")
    assert mail["to"] == [MARCO]
    assert mail["subject"] == "Cobranza del lunes: 3 facturas vencidas de tus clientes"
    for folio, due in BRISAS:
        assert _line(brisas, folio, "$8,000.00 MXN", due, today) in mail["text"]
        assert folio in mail["html"]
    assert "Total vencido: $24,000.00" in mail["text"]
    (mail,) = _mails(desk, ELENA, "Cobranza del lunes")
    assert "F-EXTRA-001" in mail["text"] and brisas not in mail["text"]
    # Nothing overdue (not yet due; paid), nothing sent; nor to anyone who is not an AM.
    assert _m11_tasks(desk) == [(MARCO_USER, marco["text"]), (ELENA_USER, elena["text"])]
    assert [to for to, _subject in _m11_mails(desk)] == [(MARCO,), (ELENA,)]

    desk.cycle()  # the same Monday again
    desk.at("2026-11-24 12:05")  # Tuesday: no cobranza
    desk.cycle()
    assert len(_m11_tasks(desk)) == 2 and len(_m11_mails(desk)) == 2

    # Mirador pays; the next Monday only Marco's digest comes. Aurora's invoice is due today,
    # not overdue yet.
    desk.at("2026-11-25 10:00")
    desk.podio.update_item_as(EDITOR, mirador_invoice, {
        "pagada": {"start_date": "2026-11-25"}, "estatus": "Pagada"})
    desk.at("2026-11-30 12:05")
    desk.cycle()
    assert len(_digests(desk, MARCO_USER, WEEKLY)) == 2
    assert len(_digests(desk, ELENA_USER, WEEKLY)) == 1
    assert _digests(desk, TOMAS_USER, WEEKLY) == []

    # Tuesday 1 December, the first business day: the monthly billing reminder.
    desk.at("2026-12-01 12:05")
    desk.cycle()
    today = date(2026, 12, 1)
    (marco,) = _digests(desk, MARCO_USER, MONTHLY)
    assert marco["text"] == ("Recordatorio mensual de cobranza: 3 facturas vencidas "
                             "($24,000.00)")
    assert marco["description"].startswith("Recordatorio mensual de cobranza (01/12/2026).")
    for folio, due in BRISAS:
        assert _line(brisas, folio, "$8,000.00 MXN", due, today) in marco["description"]
    (tomas,) = _digests(desk, TOMAS_USER, MONTHLY)
    assert _line(aurora, "F-EXTRA-002", "$3,000.00 MXN", date(2026, 11, 30), today) \
        in tomas["description"]
    assert _digests(desk, ELENA_USER, MONTHLY) == []
    assert _digests(desk, ADRIANA_USER, MONTHLY) == []
    (mail,) = _mails(desk, TOMAS, "Recordatorio mensual de cobranza")
    assert "recordatorio mensual de cobranza" in mail["text"]
    assert "F-EXTRA-002" in mail["text"] and "F-EXTRA-002" in mail["html"]
    assert len(_mails(desk, MARCO, "Recordatorio mensual de cobranza")) == 1
    assert _mails(desk, ELENA, "Recordatorio mensual") == []

    # The rest of the month's first days and the cycles again: nothing changes.
    desk.at("2026-12-02 12:05")
    desk.cycle()
    before = _state(desk)
    desk.cycle()
    assert _state(desk) == before
    assert len(_m11_tasks(desk)) == 5 and len(_m11_mails(desk)) == 5


def _counts(desk: Desk) -> tuple[int, int, int, int]:
    """Marco's weekly and monthly digests: (tasks, emails) of each."""
    return (len(_digests(desk, MARCO_USER, WEEKLY)),
            len(_mails(desk, MARCO, "Cobranza del lunes")),
            len(_digests(desk, MARCO_USER, MONTHLY)),
            len(_mails(desk, MARCO, "Recordatorio mensual")))


def test_downtime_catches_up_once_and_holidays_move_the_monthly_reminder(
        sqlite_office: Desk) -> None:
    desk = sqlite_office
    desk.at("2026-11-23 12:05")
    desk.cycle()
    assert _counts(desk) == (1, 1, 0, 0)
    # Down from Monday 23 to Wednesday 16 December: three Mondays (30, 7, 14) and the first
    # business day (1) missed. One Monday digest and one monthly reminder, not four.
    desk.at("2026-12-16 10:00")
    desk.cycle()
    assert _counts(desk) == (2, 2, 1, 1)
    (monthly,) = _digests(desk, MARCO_USER, MONTHLY)
    assert "(01/12/2026)" in monthly["description"]
    # Days overdue are counted to the slot's day: 1 December, and Monday 14 December.
    days = (date(2026, 12, 1) - date(2026, 8, 15)).days
    assert f"venció el 15/08/2026 ({days} días de atraso)" in monthly["description"]
    weekly = _digests(desk, MARCO_USER, WEEKLY)[-1]
    assert weekly["description"].startswith("Seguimiento de cobranza de los lunes del "
                                            "14/12/2026.")
    days = (date(2026, 12, 14) - date(2026, 8, 15)).days
    assert f"venció el 15/08/2026 ({days} días de atraso)" in weekly["description"]
    desk.cycle()
    assert _counts(desk) == (2, 2, 1, 1)
    desk.at("2026-12-21 12:05")
    desk.cycle()
    assert _counts(desk) == (3, 3, 1, 1)
    # Monday 4 January 2027 is the first business day (1 January is a holiday): the
    # monthly reminder, not also the Monday digest with the same list.
    desk.at("2027-01-04 12:05")
    desk.cycle()
    assert _counts(desk) == (3, 3, 2, 2)
    desk.at("2027-01-25 12:05")  # two Mondays missed: one digest
    desk.cycle()
    assert _counts(desk) == (4, 4, 2, 2)
    # Monday 1 February 2027 is a holiday (Día de la Constitución): nothing; the monthly
    # reminder comes on Tuesday 2, the first business day.
    desk.at("2027-02-01 12:05")
    desk.cycle()
    assert _counts(desk) == (4, 4, 2, 2)
    desk.at("2027-02-02 12:05")
    desk.cycle()
    assert _counts(desk) == (4, 4, 3, 3)
    (february,) = [t for t in _digests(desk, MARCO_USER, MONTHLY)
                   if "(02/02/2027)" in t["description"]]
    days = (date(2027, 2, 2) - date(2026, 8, 15)).days
    assert f"venció el 15/08/2026 ({days} días de atraso)" in february["description"]
    desk.at("2027-02-08 12:05")
    desk.cycle()
    assert _counts(desk) == (5, 5, 3, 3)


def test_a_digest_task_whose_answer_was_lost_is_found_not_made_twice(
        sqlite_office: Desk) -> None:
    """The digest task has no item (POST /task/): after Podio made it and its answer was
    lost, a later cycle finds it by its marker (external_id) instead of making another."""
    desk = sqlite_office
    desk.at("2026-11-23 12:05")
    fault = desk.sandbox.faults.add(kind="drop_after", tool="podio", path="^/task/$",
                                    method="POST")
    desk.cycle()
    assert desk.sandbox.faults.fired.get("drop_after") == 1
    desk.sandbox.faults.remove(fault)
    assert len(_digests(desk, MARCO_USER, WEEKLY)) == 1  # made, though the answer was lost
    for when in ("2026-11-23 12:30", "2026-11-23 13:30", "2026-11-24 12:05"):
        desk.at(when)
        desk.cycle()
    (task,) = _digests(desk, MARCO_USER, WEEKLY)
    with desk.db.session() as s:
        rows = s.scalars(select(ActionLedger).where(
            ActionLedger.rule_id == "m11-cobranza-lunes",
            ActionLedger.action == "podio.tarea")).all()
        done = [(r.status, r.external_ref, r.idempotency_key) for r in rows
                if r.external_ref == f"tarea {task['task_id']}"]
    assert [status for status, _ref, _key in done] == ["done"]
    assert task["external_id"] == marker_for(done[0][2])
    assert len(_mails(desk, MARCO, "Cobranza del lunes")) == 1


def test_where_a_podio_task_goes() -> None:
    """podio.tarea without "item:" in a rule over «personal» makes a task with no item; an
    explicit "item:" that comes out empty is still skipped (T8's survey without ticket), and
    a rule over a Podio item still puts it on that item."""
    task = REGISTRY["podio.tarea"]
    person = {"_entity": "personal", "id": 2, "usuario_podio": MARCO_USER}
    values = {name: p.default for name, p in task.params.items()}
    values.update(texto="Cobranza", responsable=person)
    digest = task.prepare(values, PrepareContext(None, person, "personal"))
    assert digest.payload["item_id"] is None and digest.target == "personal:2"
    survey = {"_entity": "encuesta", "id": 7, "_source": "forms", "id_origen": "r-1"}
    with pytest.raises(ActionSkipped):
        task.prepare({**values, "item": None}, PrepareContext(None, survey, "encuesta"))
    ticket = {"_entity": "ticket", "id": 5, "_source": "podio", "id_origen": "123"}
    on_item = task.prepare(values, PrepareContext(None, ticket, "ticket"))
    assert on_item.payload["item_id"] == 123 and on_item.target == "ticket:5"
    empty = task.prepare({**values, "item": None}, PrepareContext(None, ticket, "ticket"))
    assert empty.payload["item_id"] == 123  # an empty "item:" falls back to the rule's item
