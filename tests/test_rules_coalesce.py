"""One Podio update per item per cycle: T2 (first response) and T6 (close on reply) both
write the ticket an agent answers; the cycle sends ONE PUT with every field, and each rule
keeps its own ledger row. The PUT succeeds and both rows are done, or it fails and none is
(the model keeps nothing Podio does not have); a cycle killed around it sends it again,
once, and the CSAT survey goes out once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from connectors.clients import ActionRuntime
from jobs.cycle import run_sync
from rules.engine import run_cycle
from store.models import ActionLedger
from tests import test_automations_order
from tests.desk_helpers import Desk, answered_ticket
from tests.rules_helpers import SimulatedCrash

desk = test_automations_order.desk  # the fixture: the test world's desk, T1–T8


def puts(desk: Desk, item: int, since: int) -> int:
    return sum(
        1
        for e in desk.sandbox.calls.journal(since, tool="podio")
        if e.method == "PUT" and e.path.rstrip("/") == f"/item/{item}"
    )


def updates(desk: Desk, item: int) -> dict[str, ActionLedger]:
    """T2's and T6's updates of the ticket (T1's, in its own cycle before, left out)."""
    with desk.db.session() as s:
        rows = s.scalars(
            select(ActionLedger).where(
                ActionLedger.action == "podio.actualizar",
                ActionLedger.rule_id.in_(("t2-tiempo-primera-respuesta", "t6-cierre-por-respuesta")),
                ActionLedger.target == f"ticket:{desk.ticket(item).id}",
            )
        ).all()
        return {str(r.rule_id): r for r in rows}


def assert_closed_once(desk: Desk, item: int, email: str) -> None:
    values = desk.values(item)
    assert values["estatus"] == "Cerrado"
    assert values["fecha-primera-respuesta"]["start"] == "2026-11-19 20:00:00"  # 12:00
    assert values["fecha-cierre"]["start"] == "2026-11-19 20:00:00"
    rows = updates(desk, item)
    assert {rows["t2-tiempo-primera-respuesta"].status, rows["t6-cierre-por-respuesta"].status} == {"done"}
    assert len(desk.messages_to(email)) == 1  # one CSAT survey


def test_an_answer_is_one_put_for_t2_and_t6(desk: Desk) -> None:
    item, email = answered_ticket(desk)
    mark = desk.sandbox.calls.mark()
    desk.cycle()
    assert puts(desk, item, mark) == 1
    assert_closed_once(desk, item, email)
    rows = updates(desk, item)
    assert (
        rows["t2-tiempo-primera-respuesta"].external_ref == rows["t6-cierre-por-respuesta"].external_ref
    )  # the same revision
    assert (
        rows["t2-tiempo-primera-respuesta"].idempotency_key != rows["t6-cierre-por-respuesta"].idempotency_key
    )


def test_a_failed_put_leaves_none_done_and_the_model_as_podio_has_it(desk: Desk) -> None:
    item, email = answered_ticket(desk)
    desk.sandbox.faults.add(
        kind="status", tool="podio", method="PUT", path=f"^/item/{item}", status=400, count=1
    )  # an error retrying cannot fix: dead
    desk.cycle()
    rows = updates(desk, item)
    assert {rows["t2-tiempo-primera-respuesta"].status, rows["t6-cierre-por-respuesta"].status} == {"dead"}
    assert desk.values(item)["estatus"] == "Nuevo" and desk.messages_to(email) == []
    ticket = desk.ticket(item)  # what T2/T6 wrote through is taken back
    assert ticket.status == "Nuevo" and ticket.first_response_at is None


def test_a_transient_failure_is_retried_as_one_put(desk: Desk) -> None:
    item, email = answered_ticket(desk)
    desk.sandbox.faults.add(
        kind="status", tool="podio", method="PUT", path=f"^/item/{item}", status=503, count=20
    )
    desk.cycle()
    assert {r.status for r in updates(desk, item).values()} == {"failed"}
    assert desk.values(item)["estatus"] == "Nuevo" and desk.messages_to(email) == []
    desk.sandbox.faults.clear()
    desk.at("2026-11-19 13:00")
    mark = desk.sandbox.calls.mark()
    desk.cycle()
    assert puts(desk, item, mark) == 1
    assert_closed_once(desk, item, email)


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_crash_around_the_put_sends_it_once_more_and_the_survey_once(desk: Desk, where: str) -> None:
    item, email = answered_ticket(desk)

    def crash(key: str) -> None:
        if key.startswith("t6-cierre-por-respuesta"):
            raise SimulatedCrash

    hooks = {"before_send": crash} if where == "before" else {"after_send": crash}
    assert run_sync(desk.settings, desk.db, clients=desk.clients).ok
    with pytest.raises(SimulatedCrash):
        run_cycle(
            desk.settings,
            desk.db,
            now=desk.sandbox.clock.now(),
            runtime=ActionRuntime(desk.settings, **hooks),
        )
    assert {r.status for r in updates(desk, item).values()} == {"pending"}
    assert desk.values(item)["estatus"] == ("Nuevo" if where == "before" else "Cerrado")
    desk.at("2026-11-19 12:30")
    desk.edit(item, prioridad="Alta")  # the next sync reads the ticket again
    report = desk.cycle()
    assert_closed_once(desk, item, email)
    assert "t5-cierre-envio-o-manual" not in {o.rule_id for o in report.fired}
