"""The Podio-fed entities, declared once in ``config/podio.yaml``.

Per Podio app: the table it syncs into, the entity rules call it by, and its fields (Podio
external_id, conversion type, required, the options of category fields, references to other
apps' tables and to staff). The Podio connector syncs by it, the rule catalog
(``rules/catalog.py``) derives those entities' fields, kinds, options and relations from it,
and the demo lists its apps. Tables are the model's (``store/models.py``), by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.yamlconf import load_yaml_model
from store.models import Base

FieldType = Literal["text", "html", "category", "yes_no", "staff", "ref", "date", "datetime",
                    "number", "decimal", "money", "email", "phone"]

# Every mapped model class by its table name (the model registry, not a hand-kept list).
# The short form of a Podio item link: only the fallback when the item's own ``link``
# (GET /item/{id}) is not at hand (unverified, docs/fidelidad.md).
PODIO_ITEM_URL = "https://podio.com/item/{item_id}"


def item_url(item_id: int | str, raw: Any = None) -> str:
    """A Podio item's link from its stored payload (``raw``), else the short form."""
    link = raw.get("link") if isinstance(raw, dict) else None
    return str(link) if link else PODIO_ITEM_URL.format(item_id=item_id)

TABLES: dict[str, type[Base]] = {
    mapper.class_.__tablename__: mapper.class_ for mapper in Base.registry.mappers}


def _known_table(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"tabla {name!r} desconocida: no está en store/models.py "
                         f"(tablas: {', '.join(sorted(TABLES))})")
    return name


class FieldMap(BaseModel):
    """One Podio field of an app, written into one column of the app's table."""

    model_config = ConfigDict(extra="forbid")
    field: str
    type: FieldType
    required: bool = False
    table: str | None = None  # ref: the table the referenced item lives in
    fk: str | None = None  # ref: the foreign-key column resolved from it
    default: Literal["created_on"] | None = None
    options: list[str] | None = None  # category: the options rules may compare with
    doc: str = ""  # what the field means, for admins (rules fields list)

    @field_validator("table")
    @classmethod
    def _table_exists(cls, value: str | None) -> str | None:
        return _known_table(value) if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> FieldMap:
        if self.options is not None and self.type != "category":
            raise ValueError(f"options solo vale para campos category, no para {self.type}")
        return self

    @property
    def rule_name(self) -> str:
        """The name rules read it by: the external_id with ``_`` for ``-``."""
        return self.field.replace("-", "_")


class Derived(BaseModel):
    """A column copied after the sync from a referenced row (the school gives the client)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from")
    table: str
    column: str

    @field_validator("table")
    @classmethod
    def _table_exists(cls, value: str) -> str:
        return _known_table(value)


class AppMap(BaseModel):
    """One Podio app: its table, the entity rules know it as, its fields by column."""

    model_config = ConfigDict(extra="forbid")
    table: str
    entity: str
    fields: dict[str, FieldMap]
    derived: dict[str, Derived] = {}

    @field_validator("table")
    @classmethod
    def _table_exists(cls, value: str) -> str:
        return _known_table(value)

    @model_validator(mode="after")
    def _columns_exist(self) -> AppMap:
        model = TABLES[self.table]
        columns = set(model.__table__.columns.keys())
        wanted = [*self.fields, *(f.fk for f in self.fields.values() if f.fk), *self.derived]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ValueError(f"la tabla {self.table} no tiene las columnas "
                             f"{', '.join(missing)} (store/models.py)")
        return self

    @property
    def model(self) -> type[Base]:
        return TABLES[self.table]


class PodioMapping(BaseModel):
    """config/podio.yaml: the apps in sync order (referenced apps first)."""

    model_config = ConfigDict(extra="forbid")
    apps: dict[str, AppMap]

    @model_validator(mode="after")
    def _one_app_per_entity_and_table(self) -> PodioMapping:
        for key in ("entity", "table"):
            seen: dict[str, str] = {}
            for name, app in self.apps.items():
                value = getattr(app, key)
                if value in seen:
                    raise ValueError(f"las apps {seen[value]} y {name} tienen el mismo "
                                     f"{key} {value!r}: cada app alimenta su propia tabla y entidad")
                seen[value] = name
        return self

    def app_of_table(self, table: str) -> tuple[str, AppMap] | None:
        """The app (name, map) that feeds ``table``, if any."""
        return next(((n, a) for n, a in self.apps.items() if a.table == table), None)


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
