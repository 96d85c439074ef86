"""M1's health score as pure functions (table-tested in tests/test_health.py): each
signal's value is graded by the levels of config/salud.yaml into points taken off 100;
the score's band is the first whose minimum it reaches. Explainable before clever: every
signal that took points off is a reason, in Spanish, with its value.

The signals' values come from the store (``rules.health_store``); this module only knows
how to grade them. A value of None (no data to tell) takes nothing off."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.yamlconf import load_yaml_model_cached

CONFIG_FILE = "salud.yaml"
SIGNALS = ("uso", "volumen_tickets", "tickets_repetidos", "sla", "retro_negativa",
           "cobranza", "decisor", "seguimiento")


class Level(BaseModel):
    """One grade of a signal: ``hasta`` (value at or below) or ``desde`` (at or above)."""

    model_config = ConfigDict(extra="forbid")
    hasta: float | None = None
    desde: float | None = None
    puntos: float = Field(ge=0, le=100)
    etiqueta: str | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Level:
        if (self.hasta is None) == (self.desde is None):
            raise ValueError("cada nivel lleva «hasta» (el valor o menos) o «desde» (el "
                             "valor o más), uno de los dos")
        return self

    def holds(self, value: float) -> bool:
        return value <= self.hasta if self.hasta is not None else value >= (self.desde or 0)


class SignalConfig(BaseModel):
    """A signal: its name for staff, its parameters and its levels, worst first."""

    model_config = ConfigDict(extra="forbid")
    nombre: str
    activa: bool = True
    niveles: list[Level]
    ventana_dias: int | None = Field(default=None, ge=1)
    norma_dias: int | None = Field(default=None, ge=1)
    minimo: int = Field(default=0, ge=0)
    horas_primera_respuesta: float | None = Field(default=None, gt=0)
    csat_maximo: float | None = None
    nps_maximo: float | None = None
    semanas_recientes: int | None = Field(default=None, ge=1)
    semanas_anteriores: int | None = Field(default=None, ge=1)
    plazo_dias: dict[str, int] = Field(default_factory=dict)
    excluir_modulos: list[str] = Field(default_factory=list)


class HealthConfig(BaseModel):
    """config/salud.yaml: the bands (minimum score of each, best first) and the signals."""

    model_config = ConfigDict(extra="forbid")
    bandas: dict[str, float]
    senales: dict[str, SignalConfig]

    @model_validator(mode="after")
    def _check(self) -> HealthConfig:
        unknown = sorted(set(self.senales) - set(SIGNALS))
        if unknown:
            raise ValueError(f"señal desconocida: {', '.join(unknown)} (las señales son: "
                             f"{', '.join(SIGNALS)})")
        minimums = list(self.bandas.values())
        if not minimums or minimums != sorted(minimums, reverse=True) or minimums[-1] > 0:
            raise ValueError("las bandas van de la mejor a la peor, con su puntaje mínimo "
                             "de mayor a menor, y la última desde 0")
        return self

    def signal(self, name: str) -> SignalConfig | None:
        found = self.senales.get(name)
        return found if found is not None and found.activa else None


def load(config_dir: Path) -> HealthConfig:
    """config/salud.yaml, read again only when it changes (ConfigError with file:line)."""
    return load_yaml_model_cached(Path(config_dir) / CONFIG_FILE, HealthConfig)


@dataclass(frozen=True)
class Reading:
    """What the store says of one signal for one client: the value graded, and the
    Spanish text of the facts behind it (dates, counts, amounts — no «hace N días», so
    the text changes only when the facts do)."""

    value: float | None
    text: str


@dataclass(frozen=True)
class Reason:
    signal: str
    name: str
    points: float
    text: str

    def line(self) -> str:
        return f"-{_num(self.points)} {self.name}: {self.text}"


@dataclass(frozen=True)
class Health:
    """A client's score, its band and why (the signals that took points off)."""

    score: float
    band: str
    reasons: tuple[Reason, ...]
    readings: Mapping[str, Reading] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The reasons, one per line (what Podio's «motivos-salud» shows)."""
        if not self.reasons:
            return "Sin señales de riesgo."
        return "\n".join(r.line() for r in self.reasons)

    @property
    def fingerprint(self) -> str:
        """A short id of score, band and reasons (what «una_vez_por» needs)."""
        digest = hashlib.sha1(f"{self.score}|{self.band}|{self.text}".encode()).hexdigest()
        return digest[:10]


def grade(signal: SignalConfig, reading: Reading) -> tuple[float, Level | None]:
    """The points a reading takes off, and the level that matched (worst first)."""
    if reading.value is None:
        return 0.0, None
    for level in signal.niveles:
        if level.holds(reading.value):
            return level.puntos, level
    return 0.0, None


def score(config: HealthConfig, readings: Mapping[str, Reading]) -> Health:
    """The score of one client from its readings (signals missing or inactive: 0 off)."""
    reasons = []
    for name in SIGNALS:
        signal, reading = config.signal(name), readings.get(name)
        if signal is None or reading is None:
            continue
        points, level = grade(signal, reading)
        if points > 0:
            label = f" ({level.etiqueta})" if level is not None and level.etiqueta else ""
            reasons.append(Reason(name, signal.nombre, points, reading.text + label))
    total = max(0.0, 100.0 - sum(r.points for r in reasons))
    return Health(total, band_of(config, total), tuple(reasons), dict(readings))


def band_of(config: HealthConfig, value: float) -> str:
    """The first band (best first) whose minimum ``value`` reaches."""
    for band, minimum in config.bandas.items():
        if value >= minimum:
            return band
    return list(config.bandas)[-1]


def _num(value: float) -> str:
    return f"{value:g}"


def explain(config: HealthConfig, value: Health) -> list[str]:
    """Every signal of a score, one Spanish line each: its value, the points it took off
    and at which level, or why it took nothing (``saeko-sync salud``)."""
    lines = []
    for name in SIGNALS:
        signal = config.senales.get(name)
        if signal is None:
            continue
        if not signal.activa:
            lines.append(f"  · {signal.nombre}: apagada en config/salud.yaml")
            continue
        reading = value.readings.get(name)
        if reading is None:
            lines.append(f"  · {signal.nombre}: sin datos")
            continue
        points, level = grade(signal, reading)
        shown = "sin datos" if reading.value is None else f"valor {_num(reading.value)}"
        if points:
            bound = (f"≤ {_num(level.hasta)}" if level is not None and level.hasta is not None
                     else f"≥ {_num(level.desde or 0)}" if level is not None else "")
            lines.append(f"  ✘ {signal.nombre}: -{_num(points)} ({shown}, nivel {bound}) — "
                         f"{reading.text}")
        else:
            lines.append(f"  ✔ {signal.nombre}: 0 ({shown}) — {reading.text}")
    return lines
