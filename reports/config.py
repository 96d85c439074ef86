"""``config/informes.yaml`` (M10: which KPIs each report shows, the charts, the accounts
needing attention) and ``config/comisiones.yaml`` (M12: rates and which contracts count),
validated with every mistake named in Spanish."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportKind(_Strict):
    kpis: list[str]
    tendencia: int = Field(ge=2, le=24)


class Charts(_Strict):
    tendencia: list[str]
    barras_por_am: list[str]


class Attention(_Strict):
    bandas: list[str]
    vencen_en_dias: int = Field(ge=0)
    maximo: int = Field(ge=1)


class ReportsConfig(_Strict):
    semanal: ReportKind
    mensual: ReportKind
    graficas: Charts
    atencion: Attention


class CommissionsConfig(_Strict):
    tasas: dict[str, Decimal]
    estatus_excluidos: list[str] = []
    moneda: str = "MXN"


def _read(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"falta {path}: cópialo de config/ del proyecto") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML inválido: {exc}") from exc


def _validate(model: type[M], path: Path) -> M:
    try:
        return model.model_validate(_read(path))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from exc


def load_reports(config_dir: Path, known_kpis: set[str]) -> ReportsConfig:
    config = _validate(ReportsConfig, config_dir / "informes.yaml")
    named = (config.semanal.kpis + config.mensual.kpis + config.graficas.tendencia
             + config.graficas.barras_por_am)
    unknown = sorted(set(named) - known_kpis)
    if unknown:
        raise ConfigError(f"{config_dir / 'informes.yaml'}: KPI desconocido "
                          f"{', '.join(unknown)} (los de config/kpis.yaml: "
                          f"{', '.join(sorted(known_kpis))})")
    return config


def load_commissions(config_dir: Path) -> CommissionsConfig:
    config = _validate(CommissionsConfig, config_dir / "comisiones.yaml")
    for kind, value in config.tasas.items():
        if not Decimal(0) <= value <= Decimal(1):
            raise ConfigError(f"{config_dir / 'comisiones.yaml'}: la tasa de «{kind}» debe ser "
                              f"una fracción entre 0 y 1 (0.05 = 5 %), no {value}")
    return config
