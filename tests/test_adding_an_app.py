"""A Podio app is declared once (config/podio.yaml): the app the account-management
automations need for check-ins (Seguimientos) syncs and feeds rules end to end over the
sandbox; settings, the rule catalog and the rules guide follow the declaration."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.podio.sync import sync_podio
from core.errors import ConfigError
from core.settings import PROJECT_ROOT, load_settings
from rules import api
from rules.catalog import ENTITIES, use_mapping
from rules.engine import run_cycle
from sandbox.server import Sandbox
from sandbox.world import podio_item_id
from store.db import Database
from store.entities import load_mapping
from store.models import CheckIn, Client, Staff
from tests.rules_helpers import make_config_dir, rule_settings, write_rule

LOCAL_NOON = datetime(2026, 11, 18, 20, 0)  # Wednesday 12:00 in Tijuana (UTC-8)
AM = "am-tijuana-1@saeko.test"  # Marco Ibarra in config/staff.yaml
AM_PROFILE = 5002

CHECK_IN_NOTE = """
id: aviso-seguimiento
nombre: Nota del seguimiento en el cliente
entidad: seguimiento
disparadores:
  - evento: creado
condiciones:
  - seguimiento.resultado == "Realizado"
acciones:
  - podio.comentario:
      item: seguimiento.cliente
      texto: >-
        {{ seguimiento.tipo }} con {{ seguimiento.cliente.nombre }}
        por {{ seguimiento.am.nombre }}: {{ seguimiento.notas }}
"""


def test_a_check_in_made_in_podio_fires_a_rule_on_its_client(
        sandbox: Sandbox, db: Database, tmp_path: Path) -> None:
    config = make_config_dir(tmp_path)
    settings = rule_settings(config, db, sandbox)
    sync_podio(settings, db)
    run_cycle(settings, db, now=LOCAL_NOON)  # the first cycle only records what exists
    write_rule(config, "seguimiento.yaml", CHECK_IN_NOTE)
    assert api.validate(settings) == []

    podio = sandbox.tools["podio"]
    client_item = podio_item_id("clientes", 1)
    podio.create_item_as(AM, "seguimientos", {
        "titulo": "Check-in de noviembre", "cliente": client_item,
        "fecha": {"start_utc": "2026-11-18 18:00:00"}, "tipo": "Check-in", "am": AM_PROFILE,
        "notas": "Todo en orden", "resultado": "Realizado"})
    reports = {r.stream: r for r in sync_podio(settings, db)}
    assert reports["seguimientos"].counts.created == 1 and reports["seguimientos"].error is None
    report = run_cycle(settings, db, now=LOCAL_NOON)

    assert report.rules["aviso-seguimiento"].done == 1, report.rules
    with db.session() as s:
        check_in = s.scalars(select(CheckIn)).one()
        client = s.scalars(select(Client).where(Client.source_id == str(client_item))).one()
        am = s.scalars(select(Staff).where(Staff.email == AM)).one()
        assert (check_in.client_id, check_in.am_id) == (client.id, am.id)
        assert (check_in.kind, check_in.outcome) == ("Check-in", "Realizado")
        assert check_in.happened_at == datetime(2026, 11, 18, 18, 0)
        expected = f"Check-in con {client.name} por {am.name}: Todo en orden"
    assert [c["value"] for c in podio.comments(client_item)] == [expected]


def test_the_catalog_reads_the_new_entity_from_the_mapping() -> None:
    entity = ENTITIES["seguimiento"]
    assert entity.model is CheckIn and entity.podio_app == "seguimientos"
    assert entity.fields["tipo"].options == (
        "Check-in", "Revisión trimestral", "Llamada de recuperación", "Capacitación")
    assert entity.fields["resultado"].options == ("Realizado", "Reprogramado", "Cancelado")
    assert {name: (r.target, r.local) for name, r in entity.relations.items()} == {
        "cliente": ("cliente", "client_id"), "am": ("personal", "am_id")}


def test_a_misspelt_option_of_the_new_app_is_caught_by_validation(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path)
    path = write_rule(config, "seguimiento.yaml",
                      CHECK_IN_NOTE.replace('"Realizado"', '"Realisado"'))
    problems = api.validate(load_settings(config_dir=config), path.parent)
    assert any("Realizado" in p.message for p in problems), api.format_problems(problems)


def test_settings_read_the_ids_of_whatever_apps_the_mapping_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config_dir(tmp_path)
    text = (config / "podio.yaml").read_text(encoding="utf-8")
    (config / "podio.yaml").write_text(text.replace("  seguimientos:", "  visitas:"),
                                       encoding="utf-8")
    monkeypatch.setenv("PODIO_APP_VISITAS_ID", "30099")
    monkeypatch.setenv("PODIO_APP_VISITAS_TOKEN", "token-de-visitas")
    settings = load_settings(config_dir=config, podio_app_tickets_id=30004)
    assert list(settings.podio_apps) == list(load_mapping(config).apps)
    assert settings.podio_apps["visitas"] == (30099, "token-de-visitas")
    assert settings.podio_apps["tickets"][0] == 30004 and "seguimientos" not in settings.podio_apps
    assert "token-de-visitas" in settings.secret_values()
    monkeypatch.setenv("PODIO_APP_VISITAS_ID", "treinta")
    with pytest.raises(ConfigError, match="PODIO_APP_VISITAS_ID"):
        load_settings(config_dir=config)


def test_an_unknown_table_is_reported_with_its_line(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path)
    text = (config / "podio.yaml").read_text(encoding="utf-8")
    (config / "podio.yaml").write_text(text.replace("table: check_ins", "table: checkins"),
                                       encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "table: check_ins" in row)
    with pytest.raises(ConfigError, match=rf"podio\.yaml:{line}: .*tabla 'checkins' desconocida"):
        load_mapping(config)


def _guide_table() -> dict[str, tuple[list[str], list[str]]]:
    guide = (PROJECT_ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in guide.splitlines():
        found = re.match(r"^\| `(\w+)` \| (.*) \| (.*) \|$", line)
        if found and found[1] in ENTITIES and "`" in found[2]:
            relations = [] if found[3] == "—" else [
                f"{name} → {target}" for name, target in re.findall(r"`(\w+)` → (\w+)", found[3])]
            rows[found[1]] = (re.findall(r"`(\w+)`", found[2]), relations)
    return rows


def test_the_rules_guide_lists_every_entity_as_the_catalog_has_it() -> None:
    """docs/rules.md's table of readable entities (ultima_edicion and id_origen are
    explained below it, not listed)."""
    unlisted = {"ultima_edicion", "id_origen"}
    expected = {name: ([f for f in e.fields if f not in unlisted],
                       [f"{r.name} → {r.target}" for r in e.relations.values()])
                for name, e in ENTITIES.items()}
    assert _guide_table() == expected


@pytest.fixture
def catalog_restored() -> Iterator[None]:
    """The catalog follows the CONFIG_DIR a test loads; give the next test the project's."""
    yield
    use_mapping(load_mapping(PROJECT_ROOT / "config"))


def test_rules_read_the_apps_of_the_deployments_config_dir(
        tmp_path: Path, catalog_restored: None) -> None:
    """Another workspace is a config change: a deployment whose config/podio.yaml has
    another option validates rules against it, not against the shipped file."""
    shipped = make_config_dir(tmp_path / "shipped")
    own = make_config_dir(tmp_path / "own")
    text = (own / "podio.yaml").read_text(encoding="utf-8")
    (own / "podio.yaml").write_text(text.replace("Capacitación]", "Capacitación, Visita en sitio]"),
                                    encoding="utf-8")
    rule = CHECK_IN_NOTE.replace('"Realizado"', '"Realizado" and seguimiento.tipo == "Visita en sitio"')
    for config in (shipped, own):
        write_rule(config, "seguimiento.yaml", rule)
    problems = api.validate(load_settings(config_dir=own), own / "rules")
    assert problems == [], api.format_problems(problems)
    assert "Visita en sitio" in ENTITIES["seguimiento"].fields["tipo"].options
    problems = api.validate(load_settings(config_dir=shipped), shipped / "rules")
    assert any("Visita en sitio" in p.message for p in problems), api.format_problems(problems)
    assert "Visita en sitio" not in ENTITIES["seguimiento"].fields["tipo"].options
