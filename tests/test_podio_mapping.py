"""Pure mapping functions, table-driven: Podio GET shapes -> model values, and back."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.podio.mapping import MappingError, convert, item_to_row, to_podio_value
from core.settings import PROJECT_ROOT
from store.entities import FieldMap, load_mapping

STAFF = {5002: 2}

GET_CASES = [
    ("text", [{"value": "Colegio Alameda"}], "Colegio Alameda"),
    ("html", [{"value": "<p>No guarda &amp; falla</p>"}], "No guarda & falla"),
    ("category", [{"value": {"id": 2, "text": "TOP", "status": "active", "color": "F00"}}], "TOP"),
    ("yes_no", [{"value": {"id": 1, "text": "Sí"}}], True),
    ("yes_no", [{"value": {"id": 2, "text": "No"}}], False),
    ("staff", [{"value": {"profile_id": 5002, "user_id": 1002, "name": "Marco"}}], 2),
    ("staff", [{"value": {"profile_id": 999, "user_id": 1, "name": "Ex"}}], None),
    ("ref", [{"value": {"item_id": 2000003, "title": "Escuela"}}], "2000003"),
    ("number", [{"value": "7.2500"}], 7.25),
    ("money", [{"value": "12000.5000", "currency": "MXN"}], Decimal("12000.5")),
    ("email", [{"type": "work", "value": "ana@x.edu.test"}], "ana@x.edu.test"),
    ("phone", [{"type": "mobile", "value": "+52 664 111 2222"}], "+52 664 111 2222"),
    ("date", [{"start": "2026-08-09 00:00:00", "start_date": "2026-08-09", "start_time": None,
               "start_utc": "2026-08-09", "start_date_utc": "2026-08-09",
               "start_time_utc": None}], date(2026, 8, 9)),
    ("datetime", [{"start": "2026-08-09 10:00:00", "start_date": "2026-08-09",
                   "start_time": "10:00:00", "start_utc": "2026-08-09 17:00:00",
                   "start_date_utc": "2026-08-09", "start_time_utc": "17:00:00",
                   "end_utc": "2026-08-09 18:00:00"}], datetime(2026, 8, 9, 17, 0)),
    ("text", [], None),
]


@pytest.mark.parametrize(("kind", "values", "expected"), GET_CASES)
def test_get_values_convert(kind: str, values: list, expected: object) -> None:
    assert convert(FieldMap(field="x", type=kind), values, STAFF) == expected  # type: ignore[arg-type]


CATEGORY = {"external_id": "prioridad", "type": "category", "config": {"settings": {"options": [
    {"id": 1, "text": "Baja", "status": "active"}, {"id": 4, "text": "Crítica", "status": "active"},
    {"id": 9, "text": "Vieja", "status": "deleted"}]}}}
SET_CASES = [
    (CATEGORY, "Crítica", 4),
    (CATEGORY, "crítica", 4),
    ({"external_id": "b", "type": "category", "config": {"settings": {"options": [
        {"id": 1, "text": "Sí"}, {"id": 2, "text": "No"}]}}}, True, 1),
    ({"external_id": "am", "type": "contact"}, 5002, 5002),
    ({"external_id": "escuela", "type": "app"}, "2000003", 2000003),
    ({"external_id": "f", "type": "date"}, date(2026, 8, 9), {"start_date": "2026-08-09"}),
    ({"external_id": "f", "type": "date"}, datetime(2026, 8, 9, 17, 0),
     {"start_utc": "2026-08-09 17:00:00"}),
    ({"external_id": "n", "type": "number"}, 3.25, "3.25"),
    ({"external_id": "m", "type": "money"}, Decimal("10.50"), {"value": "10.50", "currency": "MXN"}),
    ({"external_id": "t", "type": "text"}, "hola", "hola"),
    ({"external_id": "t", "type": "text"}, None, []),
]


@pytest.mark.parametrize(("definition", "value", "expected"), SET_CASES)
def test_friendly_values_serialise(definition: dict, value: object, expected: object) -> None:
    assert to_podio_value(definition, value) == expected


@pytest.mark.parametrize("definition,value", [
    (CATEGORY, "Urgentísima"), (CATEGORY, "Vieja"),
    ({"external_id": "dias", "type": "calculation"}, 3),
])
def test_unwritable_values_are_refused_with_the_field_named(definition: dict, value: object) -> None:
    with pytest.raises(MappingError, match=definition["external_id"]):
        to_podio_value(definition, value)


def _ticket(**fields: list) -> dict:
    return {"item_id": 4000001, "created_on": "2026-11-02 16:00:00",
            "current_revision": {"revision": 2, "created_on": "2026-11-03 10:00:00",
                                 "created_by": {"type": "user", "id": 1000}},
            "fields": [{"external_id": k, "values": v} for k, v in fields.items()]}


def test_item_to_row_maps_configured_fields_and_defaults() -> None:
    tickets = load_mapping(PROJECT_ROOT / "config").apps["tickets"]
    row = item_to_row(_ticket(titulo=[{"value": "No guarda"}],
                              escuela=[{"value": {"item_id": 2000001}}]), tickets, STAFF)
    assert row["title"] == "No guarda"
    assert row["school_source_id"] == "2000001"
    assert row["source_revision"] == "2"
    assert row["source_updated_at"] == datetime(2026, 11, 3, 10, 0)
    assert row["opened_at"] == datetime(2026, 11, 2, 16, 0)  # default: the item's created_on
    assert row["am_id"] is None


@pytest.mark.parametrize("fields,reason", [
    ({}, "titulo"),
    ({"titulo": [{"value": "x"}], "fecha-cierre": [{"start": "31/02/2026"}]}, "fecha-cierre"),
    ({"titulo": [{"value": "x"}], "tiempo-cierre": [{"value": "mucho"}]}, "tiempo-cierre"),
])
def test_malformed_items_raise_a_reason_naming_the_field(fields: dict, reason: str) -> None:
    tickets = load_mapping(PROJECT_ROOT / "config").apps["tickets"]
    with pytest.raises(MappingError, match=reason):
        item_to_row(_ticket(**fields), tickets, STAFF)


def test_mapping_errors_point_to_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "podio.yaml").write_text(
        "apps:\n  tickets:\n    table: tickets\n    entity: ticket\n    fields:\n"
        "      title: {field: titulo, type: texto}\n", encoding="utf-8")
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"podio.yaml:6: apps.tickets.fields.title.type"):
        load_mapping(tmp_path)
