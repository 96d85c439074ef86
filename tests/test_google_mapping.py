"""Pure Google mapping functions, table-driven: form responses, usage rows, timestamps,
config validation, prefilled links and the pageToken paginator."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.google.mapping import (
    MappingError,
    format_timestamp,
    header_index,
    parse_response,
    parse_timestamp,
    prefilled_url,
    usage_row,
)
from connectors.google.streams import FormMap, load_config
from core.errors import ConfigError
from core.settings import PROJECT_ROOT

CONFIG = load_config(PROJECT_ROOT / "config")
CSAT: FormMap = CONFIG.forms["csat"]


def response(**answers: str) -> dict[str, Any]:
    ids = {field: qid for qid, field in CSAT.questions.items()}
    return {"responseId": "ACYDBNx1", "createTime": "2026-11-02T10:00:00.5Z",
            "lastSubmittedTime": "2026-11-02T10:00:01.123456789Z",
            "answers": {ids[k]: {"questionId": ids[k],
                                 "textAnswers": {"answers": [{"value": v}]}}
                        for k, v in answers.items()}}


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-02T10:00:01Z", datetime(2026, 11, 2, 10, 0, 1)),
    ("2026-11-02T10:00:01.5Z", datetime(2026, 11, 2, 10, 0, 1, 500000)),
    ("2026-11-02T10:00:01.123456789Z", datetime(2026, 11, 2, 10, 0, 1, 123456)),
])
def test_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    assert parse_timestamp(format_timestamp(expected)) == expected


def test_bad_timestamp() -> None:
    with pytest.raises(MappingError):
        parse_timestamp("2026-11-02 10:00:01")


def test_a_full_csat_response() -> None:
    parsed = parse_response(response(score="5", comment="  Muy bien ", ticket="#4000012",
                                     email=" Ana@Colegio.EDU.test "), CSAT)
    assert (parsed.score, parsed.comment, parsed.ticket_source_id, parsed.email) == (
        5.0, "Muy bien", "4000012", "ana@colegio.edu.test")
    assert parsed.submitted_at == datetime(2026, 11, 2, 10, 0, 1, 123456)
    assert parsed.revision == "2026-11-02T10:00:01.123456789Z"


def test_unanswered_questions_are_none_and_a_bad_email_is_dropped() -> None:
    parsed = parse_response(response(score="3", email="no es un correo"), CSAT)
    assert (parsed.comment, parsed.ticket_source_id, parsed.email) == (None, None, None)


@pytest.mark.parametrize(("answers", "reason"), [
    ({}, "sin respuesta a la pregunta de calificación"),
    ({"score": "muy bien"}, "no es un número"),
    ({"score": "6"}, "fuera de la escala del formulario 1-5"),
    ({"score": "4.5"}, "fuera de la escala del formulario"),
    ({"score": "4", "ticket": "ABC-1"}, "no es un id de item de Podio"),
])
def test_unmappable_responses(answers: dict[str, str], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        parse_response(response(**answers), CSAT)


def test_prefilled_link_uses_decimal_entry_ids() -> None:
    url = prefilled_url("https://docs.google.com/forms/d/e/X/viewform",
                        {"7b3c9e12": "4000012", "29f4d6a0": "a b@c.test"})
    assert url == ("https://docs.google.com/forms/d/e/X/viewform?usp=pp_url"
                   "&entry.2067570194=4000012&entry.703911584=a%20b%40c.test")


HEADER = ["Cliente_ID", "cliente", "semana", "usuarios_activos", "inicios_sesion",
          "funciones_clave", "otra"]


@pytest.mark.parametrize(("row", "expected"), [
    ([1000001, "X", 46160, 10, 20, 3], (date(2026, 5, 18), 10, 20, 3)),
    (["1000001", "X", "2026-05-18", "10", "1,020", "3.0"], (date(2026, 5, 18), 10, 1020, 3)),
    ([1000001, "X", "18/05/2026", 10, "", None], (date(2026, 5, 18), 10, None, None)),
])
def test_usage_rows(row: list[Any], expected: tuple[Any, ...]) -> None:
    index = header_index(HEADER, CONFIG.usage_sheet)
    mapped = usage_row(row, index)
    assert mapped["source_id"] == f"1000001:{expected[0].isoformat()}"
    assert (mapped["week_start"], mapped["active_users"], mapped["logins"],
            mapped["key_features"]) == expected


@pytest.mark.parametrize(("row", "reason"), [
    (["", "X", 46160, 1, 1, 1], "no tiene id de cliente"),
    ([1000001, "X", "la semana pasada", 1, 1, 1], "no es una fecha"),
    ([1000001, "X", 46160, -4, 1, 1], "no es un número entero no negativo"),
    ([1000001, "X", 46160, "muchos", 1, 1], "no es un número"),
])
def test_unmappable_usage_rows(row: list[Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        usage_row(row, header_index(HEADER, CONFIG.usage_sheet))


def test_missing_usage_column_names_the_fix() -> None:
    with pytest.raises(MappingError, match="no tiene la columna semana.*config/google.yaml"):
        header_index(["cliente_id", "fecha"], CONFIG.usage_sheet)


def test_config_errors_point_at_the_line(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "config" / "google.yaml").read_text(encoding="utf-8")
    (tmp_path / "google.yaml").write_text(text.replace('"29f4d6a0": email', '"29f4d6a0": score'),
                                          encoding="utf-8")
    with pytest.raises(ConfigError, match=r"google.yaml:\d+: .*two questions map to 'score'"):
        load_config(tmp_path)
    (tmp_path / "google.yaml").write_text(text.replace("GOOGLE_CSAT_FORM_ID", "NOPE"),
                                          encoding="utf-8")
    with pytest.raises(ConfigError, match="'NOPE' is not a setting"):
        load_config(tmp_path)
