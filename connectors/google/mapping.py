"""Pure functions: Forms responses and usage-sheet rows -> model rows.

Nothing here touches the network or the database: the sync resolves ids (tickets, contacts,
clients) and passes them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.google.streams import FORMS_SOURCE, SHEETS_SOURCE, FormMap, UsageMap

SERIAL_EPOCH = date(1899, 12, 30)  # Sheets serial day 0 (reference §3.3)
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


class MappingError(ValueError):
    """A record that cannot be mapped; the message is the dead letter's reason."""


# --- Forms -------------------------------------------------------------------------------


def parse_timestamp(text: str) -> datetime:
    """'2025-01-15T09:31:02.114552Z' (up to nanoseconds) -> naive UTC, microseconds kept."""
    match = _STAMP.match(text or "")
    if not match:
        raise MappingError(f"la fecha {text!r} no es RFC 3339 en UTC")
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    micros = int((match.group(2) or "0")[:6].ljust(6, "0"))
    return base + timedelta(microseconds=micros)


def format_timestamp(moment: datetime) -> str:
    """Naive UTC -> the Forms filter's RFC 3339 'Z' form."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def answer_text(response: dict[str, Any], question_id: str | None) -> str | None:
    """The (first) text answer to a question, or None when unanswered."""
    if question_id is None:
        return None
    answer = (response.get("answers") or {}).get(question_id) or {}
    values = [a.get("value") for a in (answer.get("textAnswers") or {}).get("answers") or []]
    values = [v for v in values if isinstance(v, str) and v.strip()]
    return ", ".join(v.strip() for v in values) if values else None


@dataclass
class ParsedResponse:
    """A form response's answers, validated."""

    response_id: str
    submitted_at: datetime
    revision: str
    score: float
    comment: str | None
    ticket_source_id: str | None
    email: str | None
    client_name: str | None


def parse_response(response: dict[str, Any], mapping: FormMap) -> ParsedResponse:
    """Validate one FormResponse against the form's question mapping (MappingError if not)."""
    response_id = str(response.get("responseId") or "")
    if not response_id:
        raise MappingError("respuesta sin responseId")
    stamp = str(response.get("lastSubmittedTime") or response.get("createTime") or "")
    submitted = parse_timestamp(stamp)
    score_qid = mapping.question_of("score")
    raw_score = answer_text(response, score_qid)
    if raw_score is None:
        raise MappingError(f"sin respuesta a la pregunta de calificación {score_qid} (¿es "
                           "correcto su id en config/google.yaml?)")
    try:
        score = float(raw_score)
    except ValueError:
        raise MappingError(f"la calificación {raw_score!r} no es un número") from None
    if not score.is_integer() or not mapping.scale.min <= score <= mapping.scale.max:
        raise MappingError(f"la calificación {raw_score!r} está fuera de la escala del formulario "
                           f"{mapping.scale.min}-{mapping.scale.max}")
    ticket = answer_text(response, mapping.question_of("ticket"))
    if ticket is not None:
        ticket = ticket.strip().lstrip("#")
        if not ticket.isdigit():
            raise MappingError(f"el ticket {ticket!r} no es un id de item de Podio (solo dígitos)")
        ticket = str(int(ticket))
    # The email question, else the address Google collected itself (``respondentEmail``,
    # forms.v1 FormResponse, when the form collects emails): it does not depend on the
    # prefilled link reaching the respondent's form (docs/fidelidad.md).
    email = answer_text(response, mapping.question_of("email")) or response.get(
        "respondentEmail")
    email = str(email).strip().lower() if email else None
    if email and not _EMAIL.match(email):
        email = None  # keep the score; the raw payload still has what was typed
    return ParsedResponse(
        response_id=response_id, submitted_at=submitted, revision=stamp, score=score,
        comment=answer_text(response, mapping.question_of("comment")),
        ticket_source_id=ticket, email=email,
        client_name=answer_text(response, mapping.question_of("client")))


def survey_row(parsed: ParsedResponse, raw: dict[str, Any], *, kind: str, form_id: str,
               ticket_id: int | None, contact_id: int | None, client_id: int | None
               ) -> dict[str, Any]:
    """The SurveyResponse row of a parsed response and its resolved ids."""
    return {
        "source": FORMS_SOURCE, "source_id": parsed.response_id,
        "source_revision": parsed.revision, "source_updated_at": parsed.submitted_at,
        "raw": raw, "kind": kind, "form_id": form_id, "submitted_at": parsed.submitted_at,
        "score": parsed.score, "comment": parsed.comment,
        "ticket_source_id": parsed.ticket_source_id, "ticket_id": ticket_id,
        "email": parsed.email, "contact_id": contact_id, "client_id": client_id,
    }


def prefilled_url(responder_uri: str, values: dict[str, str]) -> str:
    """A prefilled form link: ``entry.<int(questionId, 16)>=value`` per question [C]
    (reference §4.3: an observed convention, not part of the API)."""
    query = "&".join(f"entry.{int(qid, 16)}={quote(str(v), safe='')}" for qid, v in
                     values.items())
    return f"{responder_uri}?usp=pp_url&{query}"


# --- usage sheet -------------------------------------------------------------------------


def header_index(header: list[Any], mapping: UsageMap) -> dict[str, int]:
    """Field -> column index from the header row (case and spaces ignored)."""
    positions = {str(h).strip().lower(): i for i, h in enumerate(header)}
    index: dict[str, int] = {}
    missing = []
    for column, field in mapping.columns.items():
        position = positions.get(column.strip().lower())
        if position is None:
            missing.append(column)
        else:
            index[field] = position
    if missing:
        raise MappingError(f"la pestaña {mapping.tab!r} no tiene la columna "
                           f"{', '.join(missing)} (sus encabezados: "
                           f"{', '.join(str(h) for h in header)}); corrige usage_sheet.columns "
                           "en config/google.yaml")
    return index


def _cell(row: list[Any], index: dict[str, int], field: str) -> Any:
    position = index.get(field)
    if position is None or position >= len(row) or row[position] in ("", None):
        return None
    return row[position]


def _date(value: Any) -> date:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return SERIAL_EPOCH + timedelta(days=int(value))
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        pass
    if match := _DMY.match(text):
        day, month, year = (int(g) for g in match.groups())
        return date(year, month, day)
    raise MappingError(f"el inicio de semana {value!r} no es una fecha")


def _int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    try:
        number = float(str(value).replace(",", "")) if not isinstance(value, int | float) \
            else float(value)
    except ValueError:
        raise MappingError(f"{field} {value!r} no es un número") from None
    if not number.is_integer() or number < 0:
        raise MappingError(f"{field} {value!r} no es un número entero no negativo")
    return int(number)


def usage_row(row: list[Any], index: dict[str, int]) -> dict[str, Any]:
    """One sheet row -> a UsageMetric row (without client_id, resolved by the sync)."""
    client = _cell(row, index, "client")
    week = _cell(row, index, "week_start")
    if client is None or week is None:
        raise MappingError("la fila no tiene id de cliente o inicio de semana")
    client_key = _int(client, "client id")
    week_start = _date(week)
    return {
        "source": SHEETS_SOURCE, "source_id": f"{client_key}:{week_start.isoformat()}",
        "client_key": str(client_key), "week_start": week_start,
        "active_users": _int(_cell(row, index, "active_users"), "active users"),
        "logins": _int(_cell(row, index, "logins"), "logins"),
        "key_features": _int(_cell(row, index, "key_features"), "key features"),
        "raw": {"row": row},
    }
