"""Named primitives rules can call in expressions and templates (``horas_habiles(...)``).

Each function receives the evaluation's ``Env`` (clock, zone, calendar) first, then the
admin's arguments. Add one with ``@function("nombre", min_args, max_args, doc)``; it is
then valid in conditions, in ``{{ }}`` values and in text templates, and listed in
``saeko-sync rules list --funciones``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from connectors import registry
from rules import assignment_store, health, health_store
from rules.calendar import BusinessCalendar


@dataclass
class Env:
    """What every evaluation may use besides the records: now, today, zone, calendar; in
    a rule cycle also the cycle's store session (read-only, for functions that look at
    other records, like asignar_am) and ``memo``, where such functions keep what they
    decided in this cycle."""

    now: datetime
    zone: str
    calendar: BusinessCalendar
    today: date = field(init=False)
    session: Session | None = None
    memo: dict[str, Any] = field(default_factory=dict)
    config_dir: Path | None = None

    def __post_init__(self) -> None:
        self.today = self.calendar.local_date(self.now, self.zone)


@dataclass(frozen=True)
class Function:
    name: str
    fn: Callable[..., Any]
    min_args: int
    max_args: int
    doc: str


FUNCTIONS: dict[str, Function] = {}


def function(name: str, min_args: int, max_args: int, doc: str
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a primitive under its Spanish name."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        FUNCTIONS[name] = Function(name, fn, min_args, max_args, doc)
        return fn

    return register


def _instant(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    raise ValueError(f"se esperaba una fecha y hora, no {value!r}")


def _day(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise ValueError(f"se esperaba una fecha, no {value!r}")


@function("dias", 1, 1, "un lapso de N días, para sumar a fechas: hoy + dias(30)")
def _days(_env: Env, n: float) -> timedelta:
    return timedelta(days=float(n))


@function("horas", 1, 1, "un lapso de N horas: ahora - horas(2)")
def _hours(_env: Env, n: float) -> timedelta:
    return timedelta(hours=float(n))


@function("dias_hasta", 1, 1, "días que faltan hasta una fecha (negativo si ya pasó)")
def _days_until(env: Env, value: Any) -> int | None:
    day = _day(value)
    return None if day is None else (day - env.today).days


@function("dias_desde", 1, 1, "días transcurridos desde una fecha")
def _days_since(env: Env, value: Any) -> int | None:
    day = _day(value)
    return None if day is None else (env.today - day).days


@function("ventana", 2, 2,
          "la ventana de aviso de una lista que corresponde a N días: la menor que sea mayor "
          "o igual a N; ninguna si N pasa de todas o es negativo: "
          "ventana(dias_hasta(contrato.fin), datos.ventanas)")
def _window(_env: Env, days: Any, windows: Any) -> int | None:
    # The smallest window still ahead: after downtime only the latest due window fires.
    if not isinstance(windows, list) or not windows:
        raise ValueError("las ventanas van en una lista de días, p. ej. en datos:  "
                         "ventanas: [90, 60, 30, 15]")
    if days is None or days < 0:
        return None
    ahead = [int(w) for w in windows if int(w) >= days]
    return min(ahead) if ahead else None


def local_day(env: Env, value: Any) -> date:
    """A rule value as a day: an instant (naive UTC) is its day in the rule's zone; None is
    today; an ISO text its date."""
    if value is None:
        return env.today
    if isinstance(value, datetime):
        return env.calendar.local_date(value, env.zone)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise ValueError(f"se esperaba una fecha, no {value!r}")


@function("periodo", 2, 2,
          "el periodo de una fecha (un instante: su día en la zona de la regla), como texto "
          "para «una_vez_por» o «escalamiento»: periodo(hoy, 'dia') da 2026-12-04, "
          "'semana' 2026-S49 (ISO, de lunes a domingo), 'mes' 2026-12, 'trimestre' 2026-T4")
def _period(env: Env, value: Any, unit: Any) -> str | None:
    if not isinstance(value, date):
        return None
    day = local_day(env, value)
    if unit == "dia":
        return day.isoformat()
    if unit == "semana":
        year, week, _weekday = day.isocalendar()
        return f"{year}-S{week:02d}"
    if unit == "mes":
        return f"{day:%Y-%m}"
    if unit == "trimestre":  # M4's quarterly NPS
        return f"{day.year}-T{(day.month - 1) // 3 + 1}"
    raise ValueError(f"periodo {unit!r} desconocido: usa 'dia', 'semana', 'mes' o 'trimestre'")


@function("periodo_anterior", 2, 2,
          "el periodo entero anterior al de una fecha, como texto: lo que cubre un informe "
          "programado (M10, M12); periodo_anterior(disparador.momento, 'semana') el lunes "
          "30/11/2026 da 2026-S48, 'mes' el 01/12/2026 da 2026-11")
def _previous_period(env: Env, value: Any, unit: Any) -> str | None:
    if not isinstance(value, date):
        return None
    day = local_day(env, value)
    if unit == "semana":
        return _period(env, day - timedelta(days=day.weekday() + 1), unit)
    if unit == "mes":
        return _period(env, day.replace(day=1) - timedelta(days=1), unit)
    raise ValueError(f"periodo {unit!r} desconocido: usa 'semana' o 'mes'")


@function("horas_desde", 1, 1, "horas de reloj transcurridas desde un instante")
def _hours_since(env: Env, value: Any) -> float | None:
    instant = _instant(value)
    return None if instant is None else round((env.now - instant).total_seconds() / 3600, 4)


@function("horas_habiles", 1, 3,
          "horas hábiles entre dos instantes (el segundo, ahora si falta), según "
          "config/calendar.yaml; zona opcional: horas_habiles(a, b, 'America/Mexico_City')")
def _business_hours(env: Env, start: Any, end: Any = None, zone: str | None = None
                    ) -> float | None:
    a, b = _instant(start), _instant(end) if end is not None else env.now
    if a is None or b is None:
        return None
    return env.calendar.business_hours_between(a, b, zone or env.zone)


@function("sumar_horas_habiles", 2, 3, "el instante N horas hábiles después de otro")
def _plus_business_hours(env: Env, start: Any, hours: float, zone: str | None = None
                         ) -> datetime | None:
    a = _instant(start)
    return None if a is None else env.calendar.add_business_hours(a, float(hours),
                                                                   zone or env.zone)


@function("sumar_dias_habiles", 2, 3,
          "la fecha (o instante) N días hábiles después; salta fines de semana y festivos")
def _plus_business_days(env: Env, start: Any, days: int, zone: str | None = None
                        ) -> date | datetime | None:
    if start is None:
        return None
    base = start if isinstance(start, date) else _instant(start)
    assert base is not None
    return env.calendar.add_business_days(base, int(days), zone or env.zone)


@function("es_horario_habil", 0, 2, "verdadero si el instante (ahora si falta) es hábil")
def _is_business_time(env: Env, value: Any = None, zone: str | None = None) -> bool:
    instant = _instant(value) if value is not None else env.now
    assert instant is not None
    return env.calendar.is_business_time(instant, zone or env.zone)


@function("vacio", 1, 1, "verdadero si el valor falta o es texto/lista vacía")
def _empty(_env: Env, value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@function("contiene", 2, 2,
          "verdadero si el texto contiene alguna de las palabras (sin distinguir mayúsculas "
          "ni acentos): contiene(ticket.titulo, ['cobro', 'pago'])")
def _contains(_env: Env, text: Any, words: Any) -> bool:
    if text is None:
        return False
    haystack = fold(str(text))
    options = [words] if isinstance(words, str) else list(words or [])
    return any(fold(str(w)) in haystack for w in options)


def fold(text: str) -> str:
    """Lowercase without accents, for forgiving text matches."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()


def plain_number(value: Any) -> Any:
    """Decimals become floats so they compare and add like other numbers."""
    return float(value) if isinstance(value, Decimal) else value


@function("clasificar", 2, 3,
          "la primera opción de una tabla {opción: [palabras]} con alguna palabra en el texto "
          "(al inicio de una palabra, sin distinguir mayúsculas ni acentos: 'inscrip' "
          "encuentra «inscripción» pero no «reinscripción»); si ninguna, el tercer "
          "argumento: clasificar(ticket.titulo, datos.modulos, 'Otro')")
def _classify(_env: Env, text: Any, table: Any, fallback: Any = None) -> Any:
    if not isinstance(table, dict):
        raise ValueError("la tabla debe ser un bloque de opciones con su lista de palabras, "
                         "p. ej. en datos:  modulos: {Cobranza: [pago, cobro]}")
    if text is None:
        return fallback
    haystack = fold(str(text))
    for option, words in table.items():
        options = [words] if isinstance(words, str) else list(words or [])
        if any(_starts_a_word(fold(str(w)).strip(), haystack) for w in options):
            return option
    return fallback


def _starts_a_word(word: str, haystack: str) -> bool:
    return bool(word) and re.search(r"(?<!\w)" + re.escape(word), haystack) is not None


@function("enlace_prellenado", 3, 9,
          "enlace a un formulario de Google con respuestas ya llenas: la URL para responder "
          "y pares (id de la pregunta, valor): enlace_prellenado(datos.formulario_csat, "
          "'7b3c9e12', ticket.id_podio)")
def _prefilled_link(_env: Env, url: Any, *pairs: Any) -> str:
    form_link = registry.connector("google").form_link
    assert form_link is not None  # the Google connector builds its forms' links
    if not url:
        raise ValueError("falta la URL del formulario (la de «Enviar» > enlace)")
    if len(pairs) % 2:
        raise ValueError("después de la URL van pares: id de la pregunta, valor")
    values = {str(q): "" if v is None else str(v) for q, v in zip(pairs[::2], pairs[1::2],
                                                                   strict=True)}
    for question in values:
        try:
            int(question, 16)
        except ValueError:
            raise ValueError(f"{question!r} no es un id de pregunta de Google Forms (p. ej. "
                             "'7b3c9e12'; ver config/google.yaml)") from None
    return form_link(str(url), values)


@function("asignar_am", 1, 2,
          "el AM para un cliente sin AM (M5): de su región, con capacidad y la menor carga "
          "ponderada (pesos por segmento); en empate, el que recibió una cuenta hace más "
          "tiempo; vacío si nadie tiene capacidad: asignar_am(cliente.id, datos.pesos)")
def _assign_am(env: Env, client_id: Any, weights: Any = None) -> dict[str, Any] | None:
    return assignment_store.decide(store_session(env, "asignar_am"), env.memo, client_id,
                                   _weights(weights)).am


@function("motivo_asignacion", 1, 2,
          "por qué asignar_am eligió a ese AM (o a nadie): región, carga y capacidad de cada "
          "AM; un texto para la traza, el comentario o el correo: "
          "motivo_asignacion(cliente.id, datos.pesos)")
def _assignment_reason(env: Env, client_id: Any, weights: Any = None) -> str:
    return assignment_store.decide(store_session(env, "motivo_asignacion"), env.memo, client_id,
                                   _weights(weights)).text


@function("salud", 1, 1,
          "el puntaje de salud de un cliente (M1, config/salud.yaml), hoy: .puntaje "
          "(0-100), .banda, .motivos (las señales que restaron, con sus valores) y .huella "
          "(cambia si cambia cualquiera de los tres): salud(cliente.id).banda")
def _health(env: Env, client_id: Any) -> dict[str, Any] | None:
    if client_id is None:
        return None
    if env.config_dir is None:
        raise ValueError("salud lee config/salud.yaml: solo funciona en un ciclo de reglas")
    key = f"salud:{env.today.isoformat()}"
    if key not in env.memo:
        config = health.load(env.config_dir)
        env.memo[key] = health_store.scores(store_session(env, "salud"), config, env.today)
    found = env.memo[key].get(int(client_id))
    return None if found is None else health_record(found)


@function("primera_retro_negativa", 3, 3,
          "M7: la primera respuesta negativa de la semana de un cliente (CSAT de umbral_csat "
          "o menos, NPS de umbral_nps o menos), por hora de respuesta: .tipo, .calificacion, "
          ".escala, .comentario, .email, .fecha, .ticket (título), .texto (todo eso en una frase); "
          "vacío si no hay: "
          "primera_retro_negativa(cliente.id, 2, 6)")
def _first_negative(env: Env, client_id: Any, csat_max: Any, nps_max: Any
                    ) -> dict[str, Any] | None:
    if client_id is None:
        return None
    return health_store.first_negative_answer(store_session(env, "primera_retro_negativa"),
                                              int(client_id), env.today, float(csat_max),
                                              float(nps_max))


def health_record(value: health.Health) -> dict[str, Any]:
    """A score as rules read it."""
    return {"puntaje": value.score, "banda": value.band, "motivos": value.text,
            "huella": value.fingerprint}


def store_session(env: Env, name: str) -> Session:
    """The cycle's store session for a function that reads other records (``name`` for the
    message when there is none, e.g. in a template preview)."""
    if env.session is None:
        raise ValueError(f"{name} lee las cargas de la base: solo funciona en un ciclo de "
                         "reglas")
    return env.session


def _weights(weights: Any) -> dict[str, float] | None:
    if weights is not None and not isinstance(weights, dict):
        raise ValueError("los pesos van en un bloque segmento: peso, p. ej. en datos:  "
                         "pesos: {TOP: 2, Estándar: 1}")
    return weights
# Imported for what they register: M3's tablero_kpis, M6's follow-up, M8's reunion(),
# M11/M13's and M4's functions.
from rules import dashboard, followup, meetings, portfolio, surveys  # noqa: E402,F401
