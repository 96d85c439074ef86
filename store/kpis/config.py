"""``config/kpis.yaml``: every KPI's definition (Spanish name, definition, formula, unit,
target, sources, dimensions) and the few numbers the computations take (SLA targets, AM
load weights, CRM key fields, what M3 publishes). Validated with file:line errors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.yamlconf import load_yaml_model

KPIS_FILE = "kpis.yaml"
RULES_DIR = "rules"
Dimension = Literal["total", "equipo", "am", "segmento", "region", "cliente"]
DIMENSIONS: tuple[str, ...] = ("total", "equipo", "am", "segmento", "region", "cliente")
Grain = Literal["dia", "semana", "mes", "trimestre"]
GRAINS: tuple[str, ...] = ("dia", "semana", "mes", "trimestre")


class KpiDef(BaseModel):
    """One KPI as an admin reads it."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    nombre: str
    definicion: str
    formula: str
    unidad: str
    meta: float | None = None
    sentido: Literal[">=", "<="] | None = None
    foto: bool = False  # a snapshot of today's data, not events in a period
    fuentes: list[str]
    dimensiones: list[Dimension] = ["total"]
    semilla: str = ""

    @model_validator(mode="after")
    def _target(self) -> KpiDef:
        if (self.meta is None) != (self.sentido is None):
            raise ValueError("meta y sentido van juntos: meta: 90 con sentido: \">=\"")
        if "total" not in self.dimensiones:
            raise ValueError("dimensiones debe incluir total")
        return self

    def met(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the target (None without a target or a value)."""
        if self.meta is None or value is None:
            return None
        return value >= self.meta if self.sentido == ">=" else value <= self.meta


class Sla(BaseModel):
    model_config = ConfigDict(extra="forbid")
    primera_respuesta_horas: dict[str, float]
    resolucion_horas: dict[str, float]
    por_omision: dict[Literal["primera_respuesta_horas", "resolucion_horas"], float]

    def targets(self, priority: str | None) -> tuple[float, float]:
        """(first response, resolution) business-hour targets for a ticket's priority."""
        first = self.primera_respuesta_horas.get(priority or "",
                                                 self.por_omision["primera_respuesta_horas"])
        close = self.resolucion_horas.get(priority or "", self.por_omision["resolucion_horas"])
        return first, close


class Crm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campos: list[str]
    dias: int = Field(ge=1)


class GrainPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    periodos: int = Field(ge=1, le=400)
    dimensiones: list[Dimension]


class Publishing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dia: GrainPublish
    semana: GrainPublish
    mes: GrainPublish
    trimestre: GrainPublish
    cliente_meses: int = Field(ge=0, le=24)
    detalle_dias: int = Field(ge=1, le=730)
    renovaciones_dias: tuple[int, int]

    def grain(self, grain: str) -> GrainPublish:
        value: GrainPublish = getattr(self, grain)
        return value


class KpiConfig(BaseModel):
    """The whole file, plus the number of active rules (counted from config/rules)."""

    model_config = ConfigDict(extra="forbid")
    zona: str = "America/Tijuana"
    equipos: dict[str, str]
    sla: Sla
    pesos_carga: dict[str, float]
    crm: Crm
    reincidencia_dias: int = Field(ge=1)
    publicacion: Publishing
    estado: list[str] = []  # the status page's headline KPIs (ids)
    kpis: list[KpiDef]
    active_rules: int | None = None  # not in the file: from config/rules

    @field_validator("kpis")
    @classmethod
    def _unique(cls, value: list[KpiDef]) -> list[KpiDef]:
        seen: set[str] = set()
        for kpi in value:
            if kpi.id in seen:
                raise ValueError(f"el id {kpi.id!r} se repite")
            seen.add(kpi.id)
        return value

    @model_validator(mode="after")
    def _known_headline(self) -> KpiConfig:
        ids = {k.id for k in self.kpis}
        unknown = [k for k in self.estado if k not in ids]
        if unknown:
            raise ValueError(f"estado: KPI desconocido {', '.join(unknown)}")
        return self

    def by_id(self) -> dict[str, KpiDef]:
        return {k.id: k for k in self.kpis}


def load(config_dir: Path) -> KpiConfig:
    """Read ``config/kpis.yaml`` and count the active rules of ``config/rules``."""
    return _load(str(config_dir))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> KpiConfig:
    return load_yaml_model(Path(path), KpiConfig)


def _load(config_dir: str) -> KpiConfig:
    path = Path(config_dir) / KPIS_FILE
    config = _load_cached(str(path), path.stat().st_mtime if path.exists() else 0.0)
    return config.model_copy(update={"active_rules": count_active_rules(Path(config_dir))})


def count_active_rules(config_dir: Path) -> int:
    """Rules with ``activa: true`` (the default) in ``config/rules/*.yaml`` — a file may
    hold one rule or a list; the examples folder is not read. A file that does not parse is
    not counted (``saeko-sync rules validate`` reports it)."""
    count = 0
    for path in sorted((config_dir / RULES_DIR).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        rules = data if isinstance(data, list) else [data]
        count += sum(1 for r in rules if isinstance(r, dict) and "id" in r
                     and r.get("activa", True) is True)
    return count
