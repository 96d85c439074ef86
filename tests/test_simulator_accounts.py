"""The simulated staff's account actions leave in the tools what a person's edit leaves:
Podio field values, a new Seguimientos item, the usage sheet's cells."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sandbox.activity import ACTIONS, StaffSimulator
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from tests.conftest import WORLD_NOW

TODAY = WORLD_NOW.date()
AM_EMAILS = {"am-tijuana-1@saeko.test", "am-tijuana-2@saeko.test", "am-tecate@saeko.test",
             "am-bajio@saeko.test"}


def _client_with_am(box: Sandbox) -> int:
    client = next(c for c in box.world.clients if c.am)
    return podio_item_id("clientes", client.key)


def _last_editor(box: Sandbox, item: int) -> int:
    podio: Any = box.tools["podio"]
    return int(podio.item(item)["current_revision"]["created_by"]["id"])


def test_overdue_invoice_and_payment(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    simulator = StaffSimulator(sandbox, seed=2)
    client = _client_with_am(sandbox)
    outcome = simulator.act("overdue_invoice", client=client, days=40)
    assert outcome.startswith("overdue_invoice: invoice "), outcome
    invoice = int(outcome.split()[2])
    values = podio.values(invoice)
    assert values["cliente"] == [client]
    assert values["vencimiento"]["start"] == (TODAY - timedelta(days=40)).isoformat()
    assert values["estatus"] == "Vencida"
    assert "pagada" not in values
    assert _last_editor(sandbox, invoice) == 1001  # cobranza (the COO's user) in the UI

    paid = simulator.act("pay_invoice", invoice)
    assert paid == f"pay_invoice: invoice {invoice} paid on {TODAY.isoformat()}"
    values = podio.values(invoice)
    assert values["estatus"] == "Pagada"
    assert values["pagada"]["start"] == TODAY.isoformat()


def test_overdue_invoice_of_a_paid_up_client_is_its_latest(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    simulator = StaffSimulator(sandbox, seed=2)
    client = _client_with_am(sandbox)
    invoices = [i for i in podio.items("facturas") if podio.values(i)["cliente"] == [client]]
    for invoice in invoices:  # every invoice paid: the latest payment did not go through
        if not podio.values(invoice).get("pagada"):
            simulator.act("pay_invoice", invoice)
    outcome = simulator.act("overdue_invoice", client=client, days=5)
    assert outcome.split()[2] == str(invoices[-1])
    assert "pagada" not in podio.values(invoices[-1])


def test_decision_maker_is_recorded_by_the_am(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    client = _client_with_am(sandbox)
    before = podio.values(client)["decisor"]
    outcome = StaffSimulator(sandbox, seed=4).act("decision_maker", client,
                                                  name="Laura Ceballos Núñez")
    assert outcome == (f"decision_maker: client {client}: decisor {before} -> "
                       "Laura Ceballos Núñez")
    assert podio.values(client)["decisor"] == "Laura Ceballos Núñez"
    am = next(s for s in sandbox.world.staff
              if s.podio_profile_id in podio.values(client)["am"])
    assert _last_editor(sandbox, client) == am.podio_user_id
    drawn = StaffSimulator(sandbox, seed=4).act("decision_maker", client)
    assert podio.values(client)["decisor"] not in ("Laura Ceballos Núñez", before)
    assert drawn.endswith(podio.values(client)["decisor"])


def test_usage_drop_edits_the_latest_weeks_of_the_sheet(sandbox: Sandbox) -> None:
    google: Any = sandbox.tools["google"]
    client = _client_with_am(sandbox)
    sheet, tab = google.ids["usage"], google.usage_tab

    def rows() -> list[list[object]]:
        return [r for r in google.sheet_values(sheet, tab)[1:] if r[0] == client]

    before = rows()
    outcome = StaffSimulator(sandbox, seed=5).act("usage_drop", client, factor=0.4, weeks=3)
    assert outcome.startswith(f"usage_drop: client {client}: usage x0.4 in 3 weeks"), outcome
    after = rows()
    assert len(after) == len(before)
    assert after[:-3] == before[:-3]  # older weeks untouched
    for old, new in zip(before[-3:], after[-3:], strict=True):
        assert new[:3] == old[:3]  # same client and week
        assert new[3:6] == [max(1, int(float(v) * 0.4)) for v in old[3:6]]  # type: ignore[arg-type]


def test_contract_due_sets_its_end_ahead(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    client = _client_with_am(sandbox)
    outcome = StaffSimulator(sandbox, seed=6).act("contract_due", client=client, days=20)
    contract = int(outcome.split()[2])
    values = podio.values(contract)
    assert values["cliente"] == [client]
    assert values["fin"]["start"] == (TODAY + timedelta(days=20)).isoformat()
    assert values["estatus"] == "Vigente"
    assert outcome == (f"contract_due: contract {contract} ends "
                       f"{(TODAY + timedelta(days=20)).isoformat()} (Vigente)")


def test_check_in_is_a_seguimiento_item(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    client = _client_with_am(sandbox)
    assert podio.items("seguimientos") == []
    outcome = StaffSimulator(sandbox, seed=7).act("check_in", client)
    [item] = podio.items("seguimientos")
    assert outcome.startswith(f"check_in: check-in {item} on client {client} by am-")
    values = podio.values(item)
    name = podio.values(client)["nombre"]
    assert values["titulo"] == f"Check-in con {name}"
    assert values["cliente"] == [client]
    assert values["fecha"]["start"] == TODAY.isoformat()
    assert values["tipo"] == "Check-in"
    assert values["resultado"] == "Realizado"
    assert values["am"] == podio.values(client)["am"]


@pytest.mark.parametrize("action", ["overdue_invoice", "pay_invoice", "decision_maker",
                                    "usage_drop", "contract_due", "check_in"])
def test_account_actions_without_target_pick_one(sandbox: Sandbox, action: str) -> None:
    assert action in ACTIONS
    simulator = StaffSimulator(sandbox, seed=8)
    if action == "pay_invoice":  # something overdue to pay
        simulator.act("overdue_invoice", client=_client_with_am(sandbox), days=3)
    outcome = simulator.act(action)
    assert outcome.startswith(f"{action}: ") and "skipped" not in outcome, outcome
    assert simulator.done[action] == 1


def test_step_draws_only_the_desk_actions(sandbox: Sandbox) -> None:
    """The new actions are for planned days: ``step()`` (chaos, quota benchmark) is as it was."""
    simulator = StaffSimulator(sandbox, seed=3)
    for _ in range(30):
        simulator.step()
    assert set(simulator.done) <= {"new_ticket", "answer", "escalate", "resolve_jira", "csat",
                                   "skipped"}


def test_critical_ticket_raises_an_open_ticket_of_the_client(sandbox: Sandbox) -> None:
    podio: Any = sandbox.tools["podio"]
    burbuja = next(c for c in sandbox.world.clients if c.burbuja)
    client = podio_item_id("clientes", burbuja.key)
    outcome = StaffSimulator(sandbox).act("critical_ticket", client=client)
    item = int(outcome.split()[2].rstrip(":"))
    values = podio.values(item)
    assert values["prioridad"] == "Crítica" and values["estatus"] != "Cerrado"
    school = podio.values(int(values["escuela"][0]))
    assert school["cliente"] == [client]
    agents = {s.podio_user_id for s in sandbox.world.staff if s.role == "agent"}
    assert _last_editor(sandbox, item) in agents  # an agent of the desk did it


def test_survey_actions_answer_the_micro_survey_and_opt_out(sandbox: Sandbox) -> None:
    """M4: a user answers the micro-survey (its form, with the email the link prefills); an
    AM ticks «no-encuestar» on a user who asked not to be surveyed."""
    podio: Any = sandbox.tools["podio"]
    google: Any = sandbox.tools["google"]
    simulator = StaffSimulator(sandbox, seed=3)
    user = next(u for u in sandbox.world.users if u.role == "Operativo")
    form = google.forms.forms[google.ids["micro"]]
    before = len(form.responses)
    outcome = simulator.act("micro", user.key, score=2, comment="Lento en cierre de ciclo")
    assert outcome.startswith("micro: micro "), outcome
    assert len(form.responses) == before + 1
    answers = {a["questionId"]: a["textAnswers"]["answers"][0]["value"]
               for a in form.responses[outcome.split()[-1]]["answers"].values()}
    assert answers == {"3c8e1f52": "2", "58b2d4e7": "Lento en cierre de ciclo",
                       "2f6a9c13": user.email}
    item = podio_item_id("usuarios", user.key)
    assert "no-encuestar" not in podio.values(item)
    assert simulator.act("opt_out", user.key) == f"opt_out: user {item} «no-encuestar»"
    assert podio.values(item)["no-encuestar"] == "Sí"
