"""Everything the engine reads from settings and ``config/`` besides the rule files."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from connectors import registry
from core.errors import ConfigError
from core.settings import Settings
from rules.calendar import BusinessCalendar
from rules.catalog import ENTITIES, use_mapping
from store.entities import load_mapping

log = structlog.get_logger(__name__)

RULES_SUBDIR = "rules"
TEMPLATES_SUBDIR = "plantillas"


@dataclass
class RulesConfig:
    """Settings and config files the rules need, loaded once per cycle."""

    settings: Settings
    rules_dir: Path
    template_dir: Path
    calendar: BusinessCalendar
    zone: str
    storm_limit: int
    max_attempts: int
    retry_base_seconds: float
    _podio: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _staff: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, rules_dir: Path | None = None) -> RulesConfig:
        config_dir = Path(settings.config_dir)
        use_mapping(load_mapping(config_dir))  # the rules read the apps the sync syncs
        config = cls(
            settings=settings,
            rules_dir=rules_dir or Path(settings.rules_dir or config_dir / RULES_SUBDIR),
            template_dir=config_dir / TEMPLATES_SUBDIR,
            calendar=BusinessCalendar.load(config_dir),
            zone=settings.timezone,
            storm_limit=settings.rules_storm_limit,
            max_attempts=settings.rules_max_attempts,
            retry_base_seconds=settings.rules_retry_base_seconds,
        )
        config._podio = _podio_fields(config_dir)
        config._staff = _staff(config_dir)
        return config

    # --- Podio ------------------------------------------------------------------------

    def podio_fields(self, entity: str) -> dict[str, dict[str, Any]]:
        """external_id -> {column, attr, type} of the entity's Podio app (config/podio.yaml)."""
        app = ENTITIES[entity].podio_app
        return self._podio.get(app or "", {})

    def podio_app_id(self, entity: str) -> int | None:
        app = ENTITIES[entity].podio_app
        if app is None:
            return None
        return self.settings.podio_apps.get(app, (None, ""))[0]

    # --- staff ------------------------------------------------------------------------

    @cached_property
    def _staff_by_email(self) -> dict[str, dict[str, Any]]:
        return {str(p["email"]).lower(): p for p in self._staff if p.get("email")}

    def staff_by_email(self, email: str) -> dict[str, Any] | None:
        return self._staff_by_email.get(email.strip().lower())

    def staff_emails(self) -> list[str]:
        """Every staff member's email (config/staff.yaml), lower case."""
        return sorted(self._staff_by_email)

    def staff_by_key(self, key: str) -> dict[str, Any] | None:
        return next((p for p in self._staff if p.get("clave") == key), None)


def _podio_fields(config_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    if not (config_dir / "podio.yaml").is_file():
        return {}
    try:
        mapped = registry.connector("podio").mapped_fields
        apps = mapped(config_dir) if mapped is not None else {}
    except (ConfigError, ImportError) as exc:
        log.warning("rules.podio_mapping.unavailable", error=str(exc))
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for app_name, fields_of_app in apps.items():
        entity = next((e for e in ENTITIES.values() if e.podio_app == app_name), None)
        fields: dict[str, dict[str, Any]] = {}
        for spec in fields_of_app:
            attr = entity.field_for_column(spec.fk or spec.column) if entity else None
            fields[spec.field] = {"column": spec.column, "attr": attr, "type": spec.type}
        out[app_name] = fields
    return out


def _staff(config_dir: Path) -> list[dict[str, Any]]:
    if not (config_dir / "staff.yaml").is_file():
        return []
    from core.yamlconf import load_yaml_model
    from store.staff import StaffFile

    # The `personal` entity's fields, read from the file's entries (same columns as the
    # staff table), so staff look the same whether a rule reads them from here or the model.
    fields = [(f.name, f.column) for f in ENTITIES["personal"].fields.values() if f.name != "id"]
    entries = load_yaml_model(config_dir / "staff.yaml", StaffFile).staff
    return [{"_entity": "personal", **{name: getattr(e, column) for name, column in fields}}
            for e in entries]
