"""M1, the health score: its grading as a table (levels, bands, reasons), config errors
at file:line, and end to end over the sandbox — signals staff create (an overdue invoice
in Podio, NPS detractors in Forms, a new decision maker) move the score, band and reasons
written to the Podio client; entering «En riesgo» creates one task for the AM, not one a
day; recovering comments; entering «Crítica» from a scored band escalates to the COO;
a weight changed in config/salud.yaml changes the score and its reasons; re-running the
cycles changes nothing; Podio down while the score changes ends with the latest score."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from core.errors import ConfigError
from core.settings import PROJECT_ROOT, load_settings
from rules import api, health
from rules.health import Level, Reading, SignalConfig
from sandbox.world import podio_item_id
from store.models import Client
from tests.desk_helpers import COO_USER, Desk, account_desk, scenario_config, user_of

CONFIG = health.load(PROJECT_ROOT / "config")
RULE = PROJECT_ROOT / "config" / "rules" / "m1-salud-cliente.yaml"
DECISOR_RULE = PROJECT_ROOT / "config" / "rules" / "m1-decisor-desde.yaml"
COO_EMAIL = "coo@saeko.test"
COBRANZA = "csm-1@saeko.test"  # whoever edits invoices in Podio; any staff member


# --- the grading, as a table ----------------------------------------------------------------

def _signal(*levels: dict[str, float]) -> SignalConfig:
    return SignalConfig(nombre="Prueba", niveles=[Level.model_validate(lv) for lv in levels])


@pytest.mark.parametrize(("levels", "value", "points"), [
    ([{"hasta": -40, "puntos": 45}, {"hasta": -15, "puntos": 15}], -50.0, 45),
    ([{"hasta": -40, "puntos": 45}, {"hasta": -15, "puntos": 15}], -40.0, 45),
    ([{"hasta": -40, "puntos": 45}, {"hasta": -15, "puntos": 15}], -20.0, 15),
    ([{"hasta": -40, "puntos": 45}, {"hasta": -15, "puntos": 15}], -14.9, 0),
    ([{"desde": 60, "puntos": 15}, {"desde": 1, "puntos": 5}], 61.0, 15),
    ([{"desde": 60, "puntos": 15}, {"desde": 1, "puntos": 5}], 1.0, 5),
    ([{"desde": 60, "puntos": 15}, {"desde": 1, "puntos": 5}], 0.0, 0),
    ([{"desde": 60, "puntos": 15}], None, 0),  # no data: nothing off
])
def test_a_signal_takes_the_points_of_its_first_level_that_holds(
        levels: list[dict[str, float]], value: float | None, points: float) -> None:
    assert health.grade(_signal(*levels), Reading(value, "x"))[0] == points


def test_the_score_its_band_and_reasons() -> None:
    readings = {"uso": Reading(-45.0, "100 contra 200 (-45 %)"),
                "cobranza": Reading(35.0, "1 sin pagar por $8,000"),
                "sla": Reading(0.0, "0 tickets")}
    value = health.score(CONFIG, readings)
    assert value.score == 100 - 45 - 10 and value.band == "En riesgo"
    assert value.text.splitlines() == [
        "-45 Uso a la baja: 100 contra 200 (-45 %) (caída grave)",
        "-10 Facturas vencidas: 1 sin pagar por $8,000 (más de 30 días)"]
    assert health.score(CONFIG, {}).score == 100 and health.score(CONFIG, {}).band == "Sana"
    assert health.band_of(CONFIG, 0) == "Crítica" and health.band_of(CONFIG, 75) == "Sana"
    explained = "\n".join(health.explain(CONFIG, value))
    assert "✘ Uso a la baja: -45 (valor -45, nivel ≤ -40)" in explained
    assert "✔ Incumplimientos de tiempo de respuesta: 0 (valor 0)" in explained


def test_a_broken_salud_yaml_points_to_its_line(tmp_path: Path) -> None:
    config = scenario_config(tmp_path)
    text = (config / "salud.yaml").read_text(encoding="utf-8")
    broken = text.replace("      - {hasta: -25, puntos: 30", "      - {puntos: 30", 1)
    (config / "salud.yaml").write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("      - {puntos: 30, etiqueta: \"caída fuerte\"}") + 1
    with pytest.raises(ConfigError) as caught:
        health.load(config)
    assert f"salud.yaml:{line}:" in str(caught.value)
    assert "«hasta»" in str(caught.value)
    # `saeko-sync rules validate` says it too, with the rules.
    (problem,) = api.validate(load_settings(config_dir=config))
    assert problem.path.endswith("salud.yaml") and problem.line == line
    assert "«hasta»" in problem.message


# --- end to end over the sandbox -----------------------------------------------------------

@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """The sandbox and a store switched on with the shipped M1 rule only (the switch-on
    cycle already scores every client)."""
    with account_desk(tmp_path, RULE.name, DECISOR_RULE.name) as desk:
        yield desk


CLIENT = 1  # Centro Educativo Mirador: with AM and CSM, not burbuja


def _client(desk: Desk) -> dict[str, Any]:
    return desk.values(podio_item_id("clientes", CLIENT))


def _am(desk: Desk) -> Any:
    world = desk.sandbox.world
    am = world.staff_by_key(next(c for c in world.clients if c.key == CLIENT).am)
    assert am is not None
    return am


def _am_user(desk: Desk) -> int:
    return int(_am(desk).podio_user_id)


def _invoice_item(desk: Desk) -> int:
    world = desk.sandbox.world
    invoice = max((i for i in world.invoices if i.client_key == CLIENT), key=lambda i: i.key)
    return podio_item_id("facturas", invoice.key)


def _detractor(desk: Desk, score: int, reason: str) -> None:
    world = desk.sandbox.world
    user = user_of(world, CLIENT, "Directivo")
    desk.google.submit_response(desk.google.ids["nps"], {
        "score": score, "reason": reason, "email": user.email,
        "client": next(c for c in world.clients if c.key == CLIENT).name})


def _state(desk: Desk) -> dict[str, Any]:
    item = podio_item_id("clientes", CLIENT)
    return {"values": _client(desk), "tasks": desk.podio.tasks(),
            "comments": desk.podio.comments(item), "mail": desk.google.sent_messages()}


def _set_points(config_dir: Path, signal: str, points: list[float]) -> None:
    path = config_dir / "salud.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for level, value in zip(data["senales"][signal]["niveles"], points, strict=True):
        level["puntos"] = value
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_signals_move_the_score_the_band_one_task_and_the_recovery(desk: Desk) -> None:
    item = podio_item_id("clientes", CLIENT)
    assert "Sin seguimiento reciente" in _client(desk)["motivos-salud"]
    # Wednesday: the AM logs yesterday's check-in in Seguimientos.
    desk.podio.create_item_as(_am(desk).email, "seguimientos", {
        "titulo": "Check-in de noviembre", "cliente": [item], "tipo": "Check-in",
        "fecha": {"start_date": "2026-11-17"}, "resultado": "Realizado"})
    desk.cycle()
    start = _client(desk)
    assert "Sin seguimiento reciente" not in (start["motivos-salud"] or "")
    assert start["banda-salud"] == "Sana" and start["salud"] >= 90, start  # the setting
    assert desk.podio.tasks(item) == []
    base = float(start["salud"])

    # Thursday: cobranza marks an invoice as overdue since September; two NPS detractors.
    desk.at("2026-11-19 10:00")
    desk.podio.update_item_as(COBRANZA, _invoice_item(desk), {
        "vencimiento": {"start_date": "2026-09-01"}, "pagada": None, "estatus": "Vencida"})
    _detractor(desk, 3, "El soporte tarda demasiado")
    _detractor(desk, 5, "Fallas en reinscripciones")
    desk.cycle()
    after = _client(desk)
    assert after["salud"] == base - 15 - 15, after
    assert after["banda-salud"] == "Atención"
    reasons = after["motivos-salud"]
    assert "-15 Facturas vencidas: 1 sin pagar por $" in reasons
    assert "la más antigua venció el 01/09/2026 (más de 60 días)" in reasons
    assert "-15 Retroalimentación negativa: 2 en los últimos 60 días (NPS 3" in reasons
    assert desk.podio.tasks(item) == []  # «Atención» is not a risk band

    # The AM records a new decision maker: the client enters «En riesgo».
    desk.at("2026-11-19 12:00")
    desk.podio.update_item_as(COBRANZA, item, {"decisor": "Lic. Nuevo Director"})
    desk.cycle()
    risky = _client(desk)
    assert risky["salud"] == base - 40 and risky["banda-salud"] == "En riesgo"
    assert "-10 Cambio de decisor: Lic. Nuevo Director desde el 19/11/2026" \
        in risky["motivos-salud"]
    assert risky["decisor-desde"] == {"start": "2026-11-19"}  # a date, no time
    with desk.db.session() as s:
        since = s.scalar(select(Client.decision_maker_since).where(
            Client.source_id == str(item)))
    assert since == date(2026, 11, 19)  # the model holds the day, as the sync reads it
    (task,) = desk.podio.tasks(item)
    assert task["responsible"]["user_id"] == _am_user(desk)
    assert task["text"] == "Cliente en riesgo: Centro Educativo Mirador"
    assert "«Motivos de salud»" in task["description"]  # the reasons, live, on the client
    assert "Identificar la causa raíz" in task["description"]

    # Nothing new: the same state, however often the cycles run.
    before = _state(desk)
    desk.at("2026-11-19 12:30")
    desk.cycle()
    desk.at("2026-11-20 09:00")  # the next day: no task again for the same risk
    desk.cycle()
    assert _state(desk) == before

    # A third detractor: the reasons change (3 answers), the score's tier does not.
    desk.at("2026-11-20 10:00")
    _detractor(desk, 2, "Sin respuesta a nuestro correo")
    desk.cycle()
    assert "3 en los últimos 60 días" in _client(desk)["motivos-salud"]
    assert len(desk.podio.tasks(item)) == 1

    # The invoice is paid: back to «Atención», and a comment closes the loop.
    desk.at("2026-11-20 12:00")
    desk.podio.update_item_as(COBRANZA, _invoice_item(desk), {
        "pagada": {"start_date": "2026-11-20"}, "estatus": "Pagada"})
    desk.cycle()
    recovered = _client(desk)
    assert recovered["banda-salud"] == "Atención" and recovered["salud"] == base - 25
    (comment,) = desk.podio.comments(item)
    assert comment["value"].startswith("Salud recuperada (M1): ")
    assert "salió de la zona de riesgo" in comment["value"]
    assert desk.messages_to(COO_EMAIL) == []

    # The AM asks why, in the terminal.
    shown = _cli(desk, "salud", "Mirador")
    assert "Centro Educativo Mirador (#" in shown and f"{base - 25:g} puntos, Atención" in shown
    assert "✔ Facturas vencidas: 0" not in shown and "Facturas vencidas: sin datos" in shown
    assert "✘ Retroalimentación negativa: -15 (valor 3, nivel ≥ 2)" in shown
    assert "✘ Cambio de decisor: -10" in shown
    history = shown.split("Historial (lo que M1 escribió en Podio):")[1]
    assert f"{base - 25:g} (Atención)" in history and f"{base - 40:g} (En riesgo)" in history
    listing = _cli(desk, "salud")
    assert "Centro Educativo Mirador" in listing and "los 20 más bajos" in listing


def _cli(desk: Desk, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIO_", "JIRA_",
                                                                     "GOOGLE_", "DATABASE_"))}
    env.update(PYTHONPATH=str(PROJECT_ROOT), DATABASE_URL=desk.settings.database_url,
               CONFIG_DIR=str(desk.settings.config_dir), COLUMNS="200",
               RULES_FROZEN_NOW=desk.sandbox.clock.now().isoformat())
    done = subprocess.run([sys.executable, "-m", "saeko_sync", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_weight_changed_in_config_changes_the_score_and_escalates_critical(
        desk: Desk) -> None:
    item = podio_item_id("clientes", CLIENT)
    desk.at("2026-11-19 10:00")
    _detractor(desk, 1, "Muy mal servicio")
    desk.cycle()
    before = _client(desk)
    assert "-10 Retroalimentación negativa: 1 en los últimos 60 días" in before["motivos-salud"]
    assert before["banda-salud"] in ("Sana", "Atención")

    # The COO decides negative feedback weighs much more.
    _set_points(desk.settings.config_dir, "retro_negativa", [70, 60])
    desk.at("2026-11-19 11:00")
    desk.cycle()
    after = _client(desk)
    assert after["salud"] == before["salud"] - 50
    assert "-60 Retroalimentación negativa: 1 en los últimos 60 días" in after["motivos-salud"]
    assert after["banda-salud"] == "Crítica"
    tasks = desk.podio.tasks(item)
    assert sorted(t["responsible"]["user_id"] for t in tasks) == sorted(
        [_am_user(desk), COO_USER])
    coo_task = next(t for t in tasks if t["responsible"]["user_id"] == COO_USER)
    assert coo_task["text"].startswith("Escalamiento: ") and "salud crítica" in coo_task["text"]
    (mail,) = desk.messages_to(COO_EMAIL)
    assert "salud crítica" in mail["subject"]
    assert "«Motivos de salud»" in mail["text"] and "Centro Educativo Mirador" in mail["text"]

    # Re-running changes nothing.
    state = _state(desk)
    desk.at("2026-11-19 11:30")
    desk.cycle()
    assert _state(desk) == state


def test_podio_down_while_the_score_changes_ends_with_the_latest_score(desk: Desk) -> None:
    desk.at("2026-11-19 10:00")
    _detractor(desk, 3, "Lento")
    faults = desk.sandbox.faults
    down = faults.add(kind="status", status=503, tool="podio", method="PUT", path=r"^/item/",
                      count=1000)
    desk.cycle()  # the write fails (503) and waits for a retry
    _detractor(desk, 2, "Sigue lento")
    desk.at("2026-11-19 10:40")
    desk.cycle()  # still down; the new score waits behind the first write
    faults.remove(down)
    for when in ("2026-11-19 11:20", "2026-11-19 12:00", "2026-11-19 12:40"):
        desk.at(when)
        desk.cycle()
    shown = _client(desk)
    assert "2 en los últimos 60 días" in shown["motivos-salud"], shown
    state = _state(desk)
    desk.at("2026-11-19 13:20")
    desk.cycle()
    assert _state(desk) == state


def test_an_escalation_left_unsent_is_sent_once_when_gmail_is_back(desk: Desk) -> None:
    # The COO's email fails while the client enters «Crítica»; the next cycles no longer
    # see the client entering (Podio shows «Crítica» by then), and still send it, once.
    desk.at("2026-11-19 10:00")
    _detractor(desk, 1, "Muy mal servicio")
    desk.cycle()
    _set_points(desk.settings.config_dir, "retro_negativa", [70, 60])
    down = desk.sandbox.faults.add(kind="status", status=503, tool="google",
                                   method="POST", path=r"/messages/send", count=1000)
    desk.at("2026-11-19 11:00")
    desk.cycle()
    assert _client(desk)["banda-salud"] == "Crítica" and desk.messages_to(COO_EMAIL) == []
    desk.sandbox.faults.remove(down)
    for when in ("2026-11-19 11:40", "2026-11-19 12:20", "2026-11-19 13:00"):
        desk.at(when)
        desk.cycle()
    (mail,) = desk.messages_to(COO_EMAIL)
    assert "salud crítica" in mail["subject"]
