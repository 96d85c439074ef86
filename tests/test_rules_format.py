"""Pure parts of the rule engine, table-driven: expressions, templates and their sandbox,
the business-hours calendar (Mexican holidays), schedules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from core.errors import ConfigError
from core.settings import PROJECT_ROOT
from rules.calendar import BusinessCalendar, CalendarFile
from rules.expr import EvalError, ExprCompiler, run_env_ctx
from rules.functions import Env
from rules.schedule import Schedule, ScheduleError, standard_crontab
from rules.spec import rule_scope
from rules.templates import Template, TemplateRenderError
from rules.types import StaticError

CALENDAR = BusinessCalendar.load(PROJECT_ROOT / "config")
NOW = datetime(2026, 11, 18, 20, 0)  # Wednesday 12:00 in Tijuana
TIJUANA = "America/Tijuana"
TICKET = {
    "_entity": "ticket", "_source": "podio", "id": 7, "id_origen": "4000007",
    "titulo": "Pago no reflejado", "estatus": "Escalado", "prioridad": "Alta", "jira": None,
    "calificacion": 2.0, "fecha_apertura": datetime(2026, 11, 18, 17, 0),
    "cliente": {"_entity": "cliente", "id": 3, "nombre": "Colegio Alameda", "segmento": "TOP",
                "cliente_burbuja": False, "am": {"_entity": "personal", "nombre": "Marco"}},
    "am": None, "escuela": None,
}


def ctx(**extra: Any) -> dict[str, Any]:
    env = Env(NOW, TIJUANA, CALENDAR)
    values = {"ticket": TICKET, "ahora": NOW, "hoy": env.today, "datos": {"umbral": 3},
              "disparador": {}, "acciones": {}, "regla": {"id": "r", "nombre": "R"}}
    values.update(extra)
    return run_env_ctx(env, values)


def compile_expr(source: str) -> Any:
    return ExprCompiler(rule_scope("ticket", {"umbral": 3}, "r")).compile(source)


@pytest.mark.parametrize(("source", "expected"), [
    ('ticket.estatus == "Escalado"', True),
    ("ticket.jira is none", True),
    ("ticket.jira is not none", False),
    ('ticket.prioridad in ["Alta", "Crítica"]', True),
    ('ticket.cliente.segmento == "TOP" or ticket.cliente.cliente_burbuja', True),
    ("ticket.calificacion <= datos.umbral", True),
    ("ticket.am.nombre is none", True),  # a missing relation reads as empty
    ("ticket.am.nombre < 3", False),  # ordering with an empty value is false
    ("horas_habiles(ticket.fecha_apertura) == 3", True),  # 09:00-12:00 local
    ('contiene(ticket.titulo, ["pago", "cobro"])', True),
    ("dias_hasta(hoy + dias(30)) == 30", True),
    ("ticket.titulo | lower == 'pago no reflejado'", True),
    ("(ticket.calificacion if ticket.calificacion is not none else 5) < 3", True),
    ('ticket.cliente.am.nombre ~ "!" == "Marco!"', True),
    ("not vacio(ticket.titulo)", True),
])
def test_expressions(source: str, expected: Any) -> None:
    assert compile_expr(source).run(ctx()) == expected


def test_explain_records_the_values_read() -> None:
    result, seen = compile_expr('ticket.prioridad == "Baja" and ticket.jira is none'
                                ).explain(ctx())
    assert result is False and seen == {"ticket.prioridad": "Alta"}


@pytest.mark.parametrize(("source", "fragment"), [
    ("ticket.escuelaa", 'el campo "escuelaa" no existe en tickets; ¿quisiste decir "escuela"?'),
    ('ticket.estatus == "Cerrada"', '¿quisiste decir "Cerrado"?'),
    ("ticket.__class__", "empiezan con _"),
    ("ticket.titulo.__class__.__mro__", "empiezan con _"),
    ("ticket.titulo.upper()", "solo se pueden llamar las funciones de la guía"),
    ("lipsum()", 'función desconocida "lipsum"'),
    ("range(10**9)", 'función desconocida "range"'),
    ("ticket.titulo[0:3]", "rebanadas"),
    ("cycler", 'variable desconocida "cycler"'),
    ("ticket.cliente == 'TOP'", "es un registro, no un valor"),
    ("ticket.fecha_apertura > '2026-01-01'", "es una fecha"),
    ("ticket.titulo | attr('x')", 'filtro desconocido "attr"'),
    ("horas_habiles", "es una función"),
    ("dias(1, 2)", 'la función "dias" recibe 1 argumentos, no 2'),
])
def test_expression_mistakes_are_caught_at_load(source: str, fragment: str) -> None:
    with pytest.raises(StaticError) as info:
        compile_expr(source)
    assert fragment in info.value.message


def test_runtime_errors_are_reported_not_raised_as_python_errors() -> None:
    with pytest.raises(EvalError, match="no se puede calcular"):
        compile_expr("ticket.titulo + 1").run(ctx())
    with pytest.raises(EvalError, match="no se pueden multiplicar textos"):
        compile_expr("ticket.titulo * 100000").run(ctx())


def test_templates_render_in_the_sandbox_and_are_checked_at_load() -> None:
    scope = rule_scope("ticket", {}, "r")
    text = Template("{{ ticket.titulo }} de {{ ticket.cliente.nombre }} abierto el "
                    "{{ ticket.fecha_apertura | fecha_hora }}", scope)
    assert text.render(ctx()) == "Pago no reflejado de Colegio Alameda abierto el 18/11/2026 09:00"
    html = Template("<b>{{ ticket.titulo }}</b>", scope, html=True)
    assert html.render(ctx(ticket={**TICKET, "titulo": "<script>"})) == \
        "<b>&lt;script&gt;</b>"
    for source, fragment in [("{{ ticket.titulo.__class__ }}", "no se puede leer"),
                             ("{{ tiket.titulo }}", '¿quisiste decir "ticket"?'),
                             ("{{ ticket.am.nombree }}", "no existe en personal"),
                             ("{% for x in ticket %}{{ x }}", "plantilla inválida")]:
        with pytest.raises(StaticError) as info:
            Template(source, scope)
        assert fragment in info.value.message


def test_the_sandbox_refuses_internals_and_mutation_at_run_time() -> None:
    scope = rule_scope("ticket", {"lista": [1]}, "r")
    for source in ("{{ datos.lista.append(2) }}", "{{ (datos.lista|first).__class__ }}"):
        with pytest.raises(StaticError):
            Template(source, scope)
    # Values unknown at load time (what changed in an event) are still sandboxed at run time.
    changes = {"lista": [1], "texto": "{0.__class__}"}
    for source in ("{{ disparador.cambios.lista.append(2) }}",
                   "{{ disparador.cambios.texto.format(1) }}"):
        with pytest.raises(TemplateRenderError):
            Template(source, scope).render(ctx(disparador={"cambios": changes}))
    assert changes == {"lista": [1], "texto": "{0.__class__}"}


# --- calendar ---------------------------------------------------------------------------


def test_mexican_holidays_follow_the_law() -> None:
    holidays = CALENDAR.holidays(2027)
    assert set(holidays) == {date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 15),
                             date(2027, 5, 1), date(2027, 9, 16), date(2027, 11, 15),
                             date(2027, 12, 25)}
    assert date(2030, 10, 1) in CALENDAR.holidays(2030)


@pytest.mark.parametrize(("day", "holiday"), [
    (date(2024, 10, 1), True),    # Transmisión del Poder Ejecutivo Federal
    (date(2030, 10, 1), True),    # the next one, six years later
    (date(2026, 10, 1), False),   # not an inauguration year
    (date(2026, 3, 16), True),    # third Monday of March (Benito Juárez)
    (date(2026, 3, 21), False),   # the date itself, a Saturday, is not the holiday
    (date(2026, 3, 9), False),    # second Monday of March
    (date(2026, 12, 25), True),   # Navidad
    (date(2026, 12, 24), False),
])
def test_official_holidays_come_from_the_holidays_package(day: date, holiday: bool) -> None:
    assert CALENDAR.is_holiday(day) is holiday
    assert CALENDAR.is_business_day(day) is (not holiday and day.weekday() < 5)


def test_the_calendar_file_adds_a_deployments_extra_days() -> None:
    spec = CalendarFile.model_validate({
        "horario": {"lunes": ["09:00-18:00"]},
        "festivos": {"fijos": [{"fecha": "12-12", "nombre": "Guadalupe"}],
                     "moviles": [{"mes": 8, "dia": "viernes", "n": 2, "nombre": "Aniversario"}],
                     "fechas": [{"fecha": "2027-03-25", "nombre": "Jueves Santo"}]}})
    days = BusinessCalendar(spec).holidays(2027)
    assert days[date(2027, 12, 12)] == "Guadalupe"
    assert days[date(2027, 8, 13)] == "Aniversario"
    assert days[date(2027, 3, 25)] == "Jueves Santo"
    assert days[date(2027, 12, 25)] == "Navidad"  # the official ones stay
    assert date(2028, 3, 25) not in BusinessCalendar(spec).holidays(2028)


def test_an_unknown_country_is_a_config_error() -> None:
    spec = CalendarFile.model_validate({"horario": {"lunes": ["09:00-18:00"]}, "pais": "XX"})
    with pytest.raises(ConfigError, match="país"):
        BusinessCalendar(spec)


@pytest.mark.parametrize(("start", "end", "zone", "hours"), [
    # Friday 17:30 -> Monday 09:30 in Tijuana: half an hour each side.
    (datetime(2026, 11, 21, 1, 30), datetime(2026, 11, 23, 17, 30), TIJUANA, 1.0),
    # Friday 13 Nov 17:00 -> Tuesday 17 Nov 10:00: Monday 16 Nov is Revolución (holiday).
    (datetime(2026, 11, 14, 1, 0), datetime(2026, 11, 17, 18, 0), TIJUANA, 2.0),
    # Same local hours in Mexico City (UTC-6 all year).
    (datetime(2026, 11, 18, 15, 0), datetime(2026, 11, 18, 18, 0), "America/Mexico_City", 3.0),
    # Summer (PDT, UTC-7) in Tijuana: 09:00-18:00 local is 16:00-01:00 UTC.
    (datetime(2026, 7, 1, 16, 0), datetime(2026, 7, 2, 1, 0), TIJUANA, 9.0),
    (datetime(2026, 11, 18, 20, 0), datetime(2026, 11, 18, 19, 0), TIJUANA, 0.0),
])
def test_business_hours_between(start: datetime, end: datetime, zone: str,
                                hours: float) -> None:
    assert CALENDAR.business_hours_between(start, end, zone) == hours


def test_adding_business_time_skips_nights_weekends_and_holidays() -> None:
    friday_5pm = datetime(2026, 11, 14, 1, 0)  # Friday 13 Nov 17:00 Tijuana
    assert CALENDAR.add_business_hours(friday_5pm, 2, TIJUANA) == datetime(2026, 11, 17, 18, 0)
    assert CALENDAR.add_business_days(date(2026, 11, 13), 1, TIJUANA) == date(2026, 11, 17)
    assert CALENDAR.add_business_days(NOW, 1, TIJUANA) == datetime(2026, 11, 19, 20, 0)


# --- schedules --------------------------------------------------------------------------


def test_crontab_weekdays_use_the_standard_numbering_and_spanish_names() -> None:
    assert standard_crontab("0 9 * * 1-5") == "0 9 * * mon-fri"
    assert standard_crontab("0 9 * * lun-vie") == "0 9 * * mon-fri"
    assert standard_crontab("0 12 * * 0,7") == "0 12 * * sun,sun"
    monday_noon = Schedule.cron_line("0 12 * * 1", TIJUANA, False, CALENDAR)
    assert monday_noon.next_after(NOW) == datetime(2026, 11, 23, 20, 0)


def test_schedules_fire_once_per_period_and_skip_non_business_slots() -> None:
    daily = Schedule.cron_line("0 9 * * *", TIJUANA, True, CALENDAR)
    # Saturday 21 Nov is not a business day: the slot after Friday's is Monday's.
    assert daily.next_after(datetime(2026, 11, 20, 17, 0)) == datetime(2026, 11, 23, 17, 0)
    assert daily.latest_due(None, datetime(2026, 11, 19, 17, 30)) == datetime(2026, 11, 19, 17)
    assert daily.latest_due(datetime(2026, 11, 19, 17), datetime(2026, 11, 19, 23)) is None
    # After three days down, only the latest missed slot fires.
    assert daily.latest_due(datetime(2026, 11, 17, 17), datetime(2026, 11, 20, 18)) == \
        datetime(2026, 11, 20, 17)
    every = Schedule.interval("15m", TIJUANA, False, CALENDAR)
    assert every.latest_due(None, datetime(2026, 11, 18, 20, 7)) == datetime(2026, 11, 18, 20)


@pytest.mark.parametrize(("line", "business", "fragment"), [
    ("0 0 30 2 *", False, "nunca se cumple"),
    ("0 3 * * *", True, "nunca cae en horario hábil"),
    ("0 9 * *", False, "usa 5 campos"),
])
def test_schedules_that_never_fire_are_refused(line: str, business: bool,
                                               fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        Schedule.cron_line(line, TIJUANA, business, CALENDAR)


# --- layering ----------------------------------------------------------------------------


def test_the_engine_consults_the_action_registry_not_action_names() -> None:
    """What an action does for the engine (own writes, records it creates) is an attribute
    of its type in the registry: no module of rules/ names an action type."""
    import ast

    from rules.actions import REGISTRY

    named = []
    for path in sorted((PROJECT_ROOT / "rules").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in REGISTRY:
                named.append(f"{path.name}:{node.lineno} {node.value}")
    assert named == []
    assert any(a.written is not None for a in REGISTRY.values())
    assert any(a.creates is not None for a in REGISTRY.values())
