"""The shipped automations' configuration and the primitives they rely on, table-driven:
module keywords, prefilled survey links, templates over missing relations, own-write
recognition, and that the rule files agree with the rest of config/."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import yaml

from core.settings import PROJECT_ROOT, load_settings
from rules import api
from rules.calendar import BusinessCalendar
from rules.catalog import ENTITIES
from rules.event_match import person_changes
from rules.expr import EvalError, ExprCompiler, run_env_ctx
from rules.functions import Env
from rules.spec import rule_scope
from rules.templates import Template
from sandbox.world import _TITLES, JIRA_WORKFLOWS
from store.models import ChangeEvent

CONFIG = PROJECT_ROOT / "config"
RULES = CONFIG / "rules"
CALENDAR = BusinessCalendar.load(CONFIG)
NOW = datetime(2026, 11, 18, 20, 0)
MODULES = ENTITIES["ticket"].fields["modulo"].options  # config/podio.yaml
TICKET_STATUSES = ENTITIES["ticket"].fields["estatus"].options
CSAT_FORM = "https://docs.google.com/forms/d/e/1FAIpQLSexample/viewform"


def rule_file(prefix: str) -> Any:
    (path,) = RULES.glob(f"{prefix}-*.yaml")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule(prefix: str, rule_id: str | None = None) -> dict[str, Any]:
    data = rule_file(prefix)
    rules = data if isinstance(data, list) else [data]
    return next(r for r in rules if rule_id is None or r["id"] == rule_id)


def run(source: str, datos: dict[str, Any], **ticket: Any) -> Any:
    """Evaluate an expression of a ticket rule with these ``datos`` and ticket fields."""
    env = Env(NOW, "America/Tijuana", CALENDAR)
    compiled = ExprCompiler(rule_scope("ticket", datos, "r")).compile(source)
    ctx = {"ahora": NOW, "hoy": env.today, "datos": datos, "disparador": {}, "acciones": {},
           "regla": {"id": "r", "nombre": "R"}, "ticket": {"_entity": "ticket", **ticket}}
    return compiled.run(run_env_ctx(env, ctx))


# --- T1's module keywords ----------------------------------------------------------------


def _world_titles() -> list[tuple[str, str]]:
    return [(title, module) for module, titles in _TITLES.items() for title in titles]


@pytest.mark.parametrize(("title", "module"), _world_titles())
def test_t1_keywords_classify_every_kind_of_ticket_of_the_demo(title: str, module: str
                                                               ) -> None:
    t1 = rule("t1")["datos"]
    got = run("clasificar(ticket.titulo, datos.modulos, datos.modulo_por_omision)", t1,
              titulo=title)
    assert got == module


@pytest.mark.parametrize(("text", "expected"), [
    ("REINSCRIPCIÓN duplicada", "Reinscripciones"),  # case and accents do not matter
    ("No se guarda la inscripcion", "Inscripciones"),
    ("la reinscripción y la inscripción", "Reinscripciones"),  # first module in the table
    ("Quiero un pagaré", "Cobranza"),  # a word that starts with a keyword
    ("Compagina mal", "Otro"),  # …but not one that merely contains it
    ("", "Otro"),
    (None, "Otro"),
])
def test_clasificar_matches_at_the_start_of_words(text: str | None, expected: str) -> None:
    table = {"Reinscripciones": ["reinscrip"], "Inscripciones": ["inscrip"],
             "Cobranza": ["pag"]}
    assert run("clasificar(ticket.titulo, datos.t, 'Otro')", {"t": table},
               titulo=text) == expected


def test_clasificar_refuses_a_table_that_is_not_one() -> None:
    with pytest.raises(EvalError, match="tabla"):
        run("clasificar('pago', datos.t)", {"t": ["pago"]})


# --- T6's prefilled survey link ----------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    ("'7b3c9e12', 4000017",
     f"{CSAT_FORM}?usp=pp_url&entry.2067570194=4000017"),
    ("'7b3c9e12', 'Año 2026 & más'",
     f"{CSAT_FORM}?usp=pp_url&entry.2067570194=A%C3%B1o%202026%20%26%20m%C3%A1s"),
    ("'7b3c9e12', 1, '29f4d6a0', 'ana@x.test'",
     f"{CSAT_FORM}?usp=pp_url&entry.2067570194=1&entry.703911584=ana%40x.test"),
])
def test_enlace_prellenado_follows_the_forms_convention(args: str, expected: str) -> None:
    assert run(f"enlace_prellenado(datos.url, {args})", {"url": CSAT_FORM}) == expected


@pytest.mark.parametrize(("args", "fragment"), [
    ("datos.url, '7b3c9e12', 1, '29f4d6a0'", "pares"),
    ("datos.url, 'ticket', 1", "no es un id de pregunta"),
    ("none, '7b3c9e12', 1", "falta la URL"),
])
def test_enlace_prellenado_mistakes_are_explained(args: str, fragment: str) -> None:
    with pytest.raises(EvalError, match=fragment):
        run(f"enlace_prellenado({args})", {"url": CSAT_FORM})


# --- templates over missing relations ----------------------------------------------------


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ ticket.am.nombre | default('—') }}", "—"),
    ("{{ ticket.am.nombre }}", ""),
    ("{{ ticket.jira }}", ""),  # an empty value never prints as "None"
    ("{{ (ticket.am or ticket.csm).nombre | default('nadie') }}", "nadie"),
    ("{{ 'sí' if ticket.am else 'no' }}", "no"),
])
def test_templates_read_a_missing_relation_as_empty(source: str, expected: str) -> None:
    env = Env(NOW, "America/Tijuana", CALENDAR)
    ticket = {"_entity": "ticket", "am": None, "csm": None, "jira": None}
    text = Template(source, rule_scope("ticket", {}, "r")).render(run_env_ctx(env, {
        "ticket": ticket}))
    assert text == expected


# --- own writes ----------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "ours"), [
    ({"module": [None, "Cobranza"]}, True),
    ({"module": [None, "Cobranza"], "school_source_id": [None, "2000001"],
      "school_id": [None, 4]}, True),  # the key resolved from the reference we wrote
    ({"module": [None, "Cobranza"], "contact_source_id": [None, "3000004"]}, False),
    ({"module": [None, "Cobranza"], "am_id": [None, 3]}, False),  # a person chose the AM
    ({"module": [None, "Otro"]}, False),  # a person changed what we wrote
])
def test_a_persons_edit_seen_with_our_write_is_not_ours(changes: dict[str, Any],
                                                        ours: bool) -> None:
    written = {"ticket:7": [{"module": "Cobranza", "school_source_id": "2000001"}]}
    event = ChangeEvent(entity="ticket", entity_id=7, kind="updated", changes=changes)
    assert (not person_changes(event, written)) is ours


def test_our_latest_revision_does_not_swallow_a_persons_edit_of_another_field() -> None:
    """The sync saw our credentials make the item's latest revision (own_write), but a
    person escalated the ticket just before: only the column we wrote is ours."""
    written = {"ticket:7": [{"module": "Cobranza"}]}
    event = ChangeEvent(entity="ticket", entity_id=7, kind="updated", own_write=True,
                        changes={"module": [None, "Cobranza"],
                                 "status": ["En atención", "Escalado"]})
    assert person_changes(event, written) == {"status": ["En atención", "Escalado"]}


# --- the shipped files agree with the rest of config/ -------------------------------------


def test_the_shipped_automations_are_valid_and_complete() -> None:
    problems = api.validate(load_settings(config_dir=CONFIG), RULES)
    assert problems == [], api.format_problems(problems)
    files = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in RULES.glob("t*.yaml")]
    ids = {r["id"] for data in files for r in (data if isinstance(data, list) else [data])}
    assert {i.split("-")[0] for i in ids} == {f"t{n}" for n in range(1, 9)}


def test_module_and_project_tables_use_real_options() -> None:
    assert set(rule("t1")["datos"]["modulos"]) <= set(MODULES)
    assert rule("t1")["datos"]["modulo_por_omision"] in MODULES
    t3 = rule("t3")["datos"]
    assert set(t3["proyecto_por_modulo"]) == set(MODULES)  # every module has a project
    projects = {*t3["proyecto_por_modulo"].values(), t3["proyecto_por_omision"],
                t3["proyecto_de_mejoras"]}
    assert projects <= set(JIRA_WORKFLOWS)
    assert set(t3["prioridad_jira"]) == {"Baja", "Media", "Alta", "Crítica"}
    for status in ("Escalado", "En atención"):
        assert f'"{status}"' in rule("t4")["condiciones"][1] and status in TICKET_STATUSES


def test_the_survey_link_prefills_the_question_the_forms_sync_reads_as_ticket() -> None:
    google = yaml.safe_load((CONFIG / "google.yaml").read_text(encoding="utf-8"))
    ticket_question = next(q for q, f in google["forms"]["csat"]["questions"].items()
                           if f == "ticket")
    assert rule("t6", "t6-cierre-por-respuesta")["datos"]["pregunta_ticket"] == ticket_question


def test_people_named_in_the_rules_are_staff() -> None:
    staff = yaml.safe_load((CONFIG / "staff.yaml").read_text(encoding="utf-8"))["staff"]
    emails = {p["email"] for p in staff}
    named = [rule("t8", "t8-csat-negativa")["datos"][k] for k in ("lider_mesa", "coo")]
    named.append(rule("t8", "t8-nps-detractor")["datos"]["coo"])
    assert set(named) <= emails


def test_every_email_template_has_a_text_and_an_html_part() -> None:
    folder = CONFIG / "plantillas"
    used = {line.split(":", 1)[1].strip() for p in RULES.glob("t*.yaml")
            for line in p.read_text(encoding="utf-8").splitlines()
            if line.strip().startswith("plantilla:")}
    assert used == {"encuesta-csat", "calificacion-positiva", "escalamiento-coo"}
    for name in used:
        assert (folder / f"{name}.txt").is_file() and (folder / f"{name}.html").is_file()
