"""M13 low-usage review over the sandbox, with the usage sheet edited as the weekly export
(or a person) would and the clock moved: each week, every client (not «Baja») whose usage
dropped past the threshold gets ONE preventive-action task for its AM (its CSM when it has
no AM) with seed 001's intervention checklist, and each of those people ONE digest email
listing their dropping clients; nobody else gets anything; the cycles again change nothing;
a week missed while down is caught up once; a client that recovers stops."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from core.settings import PROJECT_ROOT
from rules import usage
from sandbox.world import podio_item_id
from store.models import ActionLedger
from tests.conftest import WORLD_NOW
from tests.desk_helpers import Desk, account_desk, stores

RULE = PROJECT_ROOT / "config" / "rules" / "m13-revision-uso.yaml"
THRESHOLD = yaml.safe_load(RULE.read_text(encoding="utf-8"))["datos"]["caida_minima"]
TAB = "Uso semanal"
# Client 4, Liceo Aurora (AM Tomás, am-tecate), is the world's declining client; client 3,
# Escuela Monte Claro, has no AM (CSM Irene, csm-1); client 1, Centro Educativo Mirador,
# is Elena's (am-tijuana-2); client 5, Centro Educativo Santa Fe, Adriana's (am-bajio).
TOMAS, TOMAS_USER = "am-tecate@saeko.test", 1004
IRENE, IRENE_USER = "csm-1@saeko.test", 1006
ELENA, ELENA_USER = "am-tijuana-2@saeko.test", 1003
ADRIANA = "am-bajio@saeko.test"
STEP = "Llamada de recuperación con el usuario clave"


@pytest.fixture(params=stores())
def office(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a store switched on with the shipped M13 rules only."""
    with account_desk(tmp_path, "m13-*.yaml", kind=request.param) as desk:
        yield desk


def _sheet(desk: Desk) -> str:
    return str(desk.settings.google_usage_spreadsheet_id)


def _last_weeks(desk: Desk, client: int, weeks: int = 4) -> list[tuple[int, date, int]]:
    """(sheet line, week, active users) of the client's latest ``weeks`` rows."""
    values = desk.google.sheet_values(_sheet(desk), TAB)
    rows = [(n, date.fromisoformat(str(v[2])), int(v[3])) for n, v in enumerate(values, 1)
            if n > 1 and v[0] == podio_item_id("clientes", client)]
    return sorted(rows, key=lambda r: r[1])[-weeks:]


def _scale_usage(desk: Desk, client: int, factor: float) -> None:
    """The client's last four weeks in the usage sheet times ``factor`` (a correction of
    the export, as a person would type it)."""
    for line, _week, active in _last_weeks(desk, client):
        desk.google.set_cells(_sheet(desk), f"'{TAB}'!D{line}", [[max(1, int(active * factor))]])


def _trend(desk: Desk, client: int) -> usage.Trend:
    rows = [(w.week_start, w.active_users) for w in desk.sandbox.world.usage
            if w.client_key == client]
    return usage.trend(rows, WORLD_NOW.date())


def _review_tasks(desk: Desk, client: int) -> list[dict[str, Any]]:
    return [t for t in desk.podio.tasks(podio_item_id("clientes", client))
            if t["text"].startswith("Bajo uso: ")]


def _all_review_tasks(desk: Desk) -> list[tuple[int | None, int]]:
    return sorted((t["ref_id"], t["responsible"]["user_id"]) for t in desk.podio.tasks()
                  if t["text"].startswith("Bajo uso: "))


def _digests(desk: Desk, address: str | None = None) -> list[dict[str, Any]]:
    return [m for m in desk.google.sent_messages() if m["subject"].startswith("Bajo uso, ")
            and (address is None or address in m["to"])]


def _name(desk: Desk, client: int) -> str:
    return str(next(c.name for c in desk.sandbox.world.clients if c.key == client))


def _state(desk: Desk) -> dict[str, Any]:
    with desk.db.session() as s:
        ledger = [(r.idempotency_key, r.status, r.external_ref) for r in
                  s.scalars(select(ActionLedger).order_by(ActionLedger.id))]
    return {"ledger": ledger, "tasks": desk.podio.tasks(),
            "mail": [(m["subject"], tuple(m["to"])) for m in desk.google.sent_messages()]}


def test_the_world_has_one_client_whose_usage_dropped(office: Desk) -> None:
    """The staging below relies on it: Liceo Aurora dropped past the threshold, the others
    did not."""
    changes = {k: _trend(office, k).change for k in range(1, 7)}
    dropped = [k for k, c in changes.items() if c is not None and c * 100 <= -THRESHOLD]
    assert dropped == [4]


def test_weekly_preventive_tasks_and_digest_per_am(office: Desk) -> None:
    desk = office
    liceo, monte_claro, mirador = _name(desk, 4), _name(desk, 3), _name(desk, 1)
    # Wednesday: Monte Claro's (no AM yet) last four weeks are corrected down to a tenth;
    # Santa Fe leaves (estatus «Baja») and its usage collapses too.
    desk.at("2026-11-18 12:30")
    _scale_usage(desk, 3, 0.1)
    _scale_usage(desk, 5, 0.1)
    desk.podio.update_item_as("coo@saeko.test", podio_item_id("clientes", 5),
                              {"estatus": "Baja"})
    desk.cycle()
    assert _all_review_tasks(desk) == [] and _digests(desk) == []

    # Thursday 9:05, the first review: Liceo Aurora (Tomás) and Monte Claro (its CSM).
    desk.at("2026-11-19 09:05")
    desk.cycle()
    (task,) = _review_tasks(desk, 4)
    change = _trend(desk, 4).change
    assert change is not None
    assert task["text"] == f"Bajo uso: {liceo} ({change * 100:.0f} % de usuarios activos)"
    assert task["responsible"]["user_id"] == TOMAS_USER
    assert _trend(desk, 4).describe() in task["description"]
    assert f"☐ {STEP}" in task["description"]
    assert "☐ Diagnóstico de situación" in task["description"]
    assert "☐ Coordinar capacitación adicional" in task["description"]
    assert task["due_date"] == "2026-11-24"  # in three business days
    (task,) = _review_tasks(desk, 3)
    assert task["responsible"]["user_id"] == IRENE_USER
    assert _review_tasks(desk, 5) == []  # «Baja»: not reviewed
    assert _all_review_tasks(desk) == sorted([(podio_item_id("clientes", 4), TOMAS_USER),
                                              (podio_item_id("clientes", 3), IRENE_USER)])
    (mail,) = _digests(desk, TOMAS)
    assert mail["to"] == [TOMAS]
    assert mail["subject"] == "Bajo uso, semana 2026-S47: 1 cliente con caída de uso"
    assert liceo in mail["text"] and _trend(desk, 4).describe() in mail["text"]
    assert liceo in mail["html"]
    (mail,) = _digests(desk, IRENE)
    assert monte_claro in mail["text"] and liceo not in mail["text"]
    assert sorted(m["to"] for m in _digests(desk)) == sorted([[IRENE], [TOMAS]])
    assert _digests(desk, ADRIANA) == []

    desk.cycle()  # the same morning again, and the rest of the week: nothing new
    desk.at("2026-11-20 09:05")
    desk.cycle()
    assert len(_all_review_tasks(desk)) == 2 and len(_digests(desk)) == 2

    # Monday: Mirador (Elena) drops too; the new week reviews all three once.
    desk.at("2026-11-23 08:30")
    _scale_usage(desk, 1, 0.5)
    desk.at("2026-11-23 09:05")
    desk.cycle()
    assert [len(_review_tasks(desk, k)) for k in (1, 3, 4, 5)] == [1, 2, 2, 0]
    (task,) = _review_tasks(desk, 1)
    assert task["responsible"]["user_id"] == ELENA_USER
    (mail,) = _digests(desk, ELENA)
    assert mirador in mail["text"] and "semana 2026-S48" in mail["subject"]
    assert len(_digests(desk, TOMAS)) == 2 and len(_digests(desk, IRENE)) == 2

    # Monte Claro recovers; then saeko-sync is down two weeks (S49 and S50 missed): back on
    # Wednesday 9 December, one review for this week, not one per missed week.
    desk.at("2026-11-24 10:00")
    _scale_usage(desk, 3, 10)
    desk.at("2026-12-09 10:00")
    desk.cycle()
    assert [len(_review_tasks(desk, k)) for k in (1, 3, 4, 5)] == [2, 2, 3, 0]
    assert len(_digests(desk, TOMAS)) == 3 and len(_digests(desk, ELENA)) == 2
    assert len(_digests(desk, IRENE)) == 2
    (latest,) = [m for m in _digests(desk, TOMAS) if "2026-S50" in m["subject"]]
    assert liceo in latest["text"]

    before = _state(desk)
    desk.cycle()
    desk.at("2026-12-10 09:05")
    desk.cycle()
    assert _state(desk) == before


def test_the_sheet_rows_scale_as_staged(office: Desk) -> None:
    """_scale_usage edits only the client's last four weeks."""
    desk = office
    before = _last_weeks(desk, 3, 6)
    _scale_usage(desk, 3, 0.1)
    after = _last_weeks(desk, 3, 6)
    assert [a for _l, _w, a in after[:2]] == [a for _l, _w, a in before[:2]]
    assert [a for _l, _w, a in after[2:]] == [max(1, int(a * 0.1)) for _l, _w, a in before[2:]]
    assert [w for _l, w, _a in after][-1] == WORLD_NOW.date() - timedelta(
        days=WORLD_NOW.weekday()) - timedelta(weeks=1)
