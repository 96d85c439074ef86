"""M4 (automatic surveys): the deterministic monthly sample and the survey-fatigue rule,
exposed to rules as functions.

- ``en_muestra(valor, periodo, fraccion)``: whether a contact is in the sample of a period.
  The draw is a hash of the period and the contact (its Podio item id in the shipped
  rules), so a re-run, another replica or a new store pick the same people, and each month
  draws a different sample.
- ``encuesta_reciente(email, dias, reglas)``: the latest survey sent to that address in the
  last ``dias`` days by any of the survey rules (T6's CSAT, M4's micro-survey and NPS), or
  the latest answer it gave to any form in that time; empty if none. An invitation is an
  email of one of those rules in the action ledger (an effect with recipients,
  ``args.to``: rules/ never names action types, the registry does) that was sent or is on
  its way (planned, being sent, done or retrying — an omitted, dead or cancelled one never
  reached anyone). The ledger is read once per cycle and then only its
  new rows, so the rules evaluated later in the same cycle (M4's NPS after T6's CSAT) see
  the invitations planned before them.

Where the fatigue rule lives (docs/automatizaciones.md, M4): M4's rules ask it before
inviting; T6's CSAT is transactional (it closes a ticket the user just asked about) and is
always sent, but it counts for M4.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from rules import ledger as L
from rules.functions import Env, function, store_session
from store.models import ActionLedger, SurveyResponse

# The ledger statuses of an invitation that was sent or is on its way (rules/ledger.py);
# omitted, dead, cancelled and waiting ones never reached anyone.
SENT_OR_ON_ITS_WAY = (L.PLANNED, L.PENDING, L.DONE, L.FAILED, L.HELD, L.APPROVED, L.QUEUED)
# A sha256 prefix of this many hex digits is the draw, read as a fraction of 16**DIGITS.
_DRAW_DIGITS = 12
_MEMO = "encuestas"


@dataclass
class _Invitations:
    """The survey invitations of the ledger read so far in this cycle, per address."""

    last_id: int = 0
    by_email: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)


@function("en_muestra", 3, 3,
          "M4: verdadero si el contacto está en la muestra del periodo; la misma muestra "
          "cada vez que se calcula, otra cada periodo; fracción de 0 a 1: "
          "en_muestra(usuario.id_podio, periodo(disparador.momento, 'mes'), "
          "datos.fraccion_muestra)")
def _in_sample(_env: Env, value: Any, period: Any, fraction: Any) -> bool:
    share = _fraction(fraction)
    if value is None or period is None:
        return False
    return draw(str(period), str(value)) < share


def draw(period: str, value: str) -> float:
    """The contact's draw for the period, in [0, 1): a hash, the same on every run."""
    digest = hashlib.sha256(f"m4-muestra:{period}:{value}".encode()).hexdigest()
    return int(digest[:_DRAW_DIGITS], 16) / 16 ** _DRAW_DIGITS


def _fraction(value: Any) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ValueError("la fracción de la muestra es un número de 0 a 1, p. ej. en datos:  "
                         "fraccion_muestra: 0.3") from None
    if not 0 <= share <= 1:
        raise ValueError(f"la fracción de la muestra va de 0 a 1 (0.3 = 30 %), no {share}")
    return share


@function("encuesta_reciente", 3, 3,
          "M4 (fatiga): la encuesta más reciente enviada a ese correo en los últimos N días "
          "por alguna de las reglas de la lista (o su respuesta más reciente a un "
          "formulario en ese tiempo): .fecha, .regla; vacía si no hay: "
          "encuesta_reciente(usuario.email, datos.dias_sin_encuestas, datos.reglas_de_encuesta)")
def _recent_survey(env: Env, email: Any, days: Any, rules: Any) -> dict[str, Any] | None:
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise ValueError("las reglas de encuesta van en una lista de ids, p. ej. en datos:  "
                         "reglas_de_encuesta: [t6-cierre-por-respuesta, "
                         "m4-micro-encuesta-mensual]")
    try:
        period = timedelta(days=float(days))
    except (TypeError, ValueError):
        raise ValueError("los días sin encuestas son un número, p. ej. en datos:  "
                         "dias_sin_encuestas: 30") from None
    if not email:
        return None
    address = str(email).strip().lower()
    since = env.now - period
    found = [(when, rule) for when, rule in _invitations(env, tuple(sorted(rules)))
             .by_email.get(address, []) if when >= since]
    answered = _answers(env).get(address)
    if answered is not None and answered >= since:
        found.append((answered, "respuesta"))
    if not found:
        return None
    when, rule = max(found)
    return {"fecha": when, "regla": rule}


def _invitations(env: Env, rules: tuple[str, ...]) -> _Invitations:
    """The invitations of ``rules`` in the ledger, refreshed with the rows added since the
    last look (one small query per call)."""
    memo: dict[Any, Any] = env.memo.setdefault(_MEMO, {})
    state: _Invitations = memo.setdefault(("invitaciones", rules), _Invitations())
    session = store_session(env, "encuesta_reciente")
    rows = session.execute(
        select(ActionLedger.id, ActionLedger.rule_id, ActionLedger.payload,
               ActionLedger.created_at)
        .where(ActionLedger.id > state.last_id, ActionLedger.rule_id.in_(rules),
               ActionLedger.status.in_(SENT_OR_ON_ITS_WAY))
        .order_by(ActionLedger.id)).all()
    for row in rows:
        state.last_id = max(state.last_id, int(row.id))
        args = (row.payload or {}).get("args") or {}
        # Only an email has recipients (T6's other effect, closing the ticket, has none).
        for address in args.get("to") or [] if isinstance(args, dict) else []:
            state.by_email.setdefault(str(address).strip().lower(), []).append(
                (row.created_at, str(row.rule_id)))
    return state


def _answers(env: Env) -> dict[str, datetime]:
    """Address -> its latest answer to any form (read once per cycle: answers arrive with
    the sync, not during the rules)."""
    memo: dict[Any, Any] = env.memo.setdefault(_MEMO, {})
    if "respuestas" not in memo:
        session = store_session(env, "encuesta_reciente")
        memo["respuestas"] = {
            str(email).lower(): latest for email, latest in session.execute(
                select(SurveyResponse.email, func.max(SurveyResponse.submitted_at))
                .where(SurveyResponse.email.is_not(None), SurveyResponse.deleted_at.is_(None))
                .group_by(SurveyResponse.email)) if latest is not None}
    answers: dict[str, datetime] = memo["respuestas"]
    return answers
