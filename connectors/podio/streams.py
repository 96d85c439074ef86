"""Podio streams as declarations: one per app, read from config/podio.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.yamlconf import load_yaml_model
from store.models import Base, Client, Contact, Contract, Invoice, School, Ticket

FieldType = Literal["text", "html", "category", "yes_no", "staff", "ref", "date", "datetime",
                    "number", "decimal", "money", "email", "phone"]
TABLES: dict[str, type[Base]] = {
    "clients": Client, "schools": School, "contacts": Contact, "contracts": Contract,
    "invoices": Invoice, "tickets": Ticket,
}


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    type: FieldType
    required: bool = False
    table: str | None = None  # ref: the table the referenced item lives in
    fk: str | None = None  # ref: the foreign-key column resolved from it
    default: Literal["created_on"] | None = None


class Derived(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    table: str
    column: str


class AppMap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: Literal["clients", "schools", "contacts", "contracts", "invoices", "tickets"]
    entity: str
    fields: dict[str, FieldMap]
    derived: dict[str, Derived] = {}


class PodioMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    apps: dict[str, AppMap]


@dataclass(frozen=True)
class PodioStream:
    """One Podio app synced into one table.

    Primary key ``item_id``; cursor ``last_edit_on`` (Podio timestamps have one-second
    precision, UTC); keyset pages sorted by last_edit_on ascending; merge on (source, source_id).
    """

    name: str
    app_id: int
    mapping: AppMap

    @property
    def model(self) -> type[Base]:
        return TABLES[self.mapping.table]

    primary_key = "item_id"
    cursor_field = "last_edit_on"


# Parsed mappings by (file, mtime, size): the sync, every webhook and every rule cycle read
# the mapping, and validating the YAML costs ~15 ms; an edit changes the key.
_MAPPINGS: dict[tuple[str, int, int], PodioMapping] = {}


def load_mapping(config_dir: Path) -> PodioMapping:
    """config/podio.yaml, validated (errors as file:line); re-read when the file changes."""
    path = config_dir / "podio.yaml"
    try:
        stat = path.stat()
    except OSError:
        return load_yaml_model(path, PodioMapping)  # reports the missing file as usual
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _MAPPINGS:
        _MAPPINGS.clear()
        _MAPPINGS[key] = load_yaml_model(path, PodioMapping)
    return _MAPPINGS[key]
