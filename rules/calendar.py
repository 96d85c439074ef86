"""Business hours from ``config/calendar.yaml``; the country's public holidays from the
``holidays`` package (Mexico: Ley Federal del Trabajo art. 74, including the six-yearly
inauguration day), plus the deployment's own extra days from the same file.

All instants are naive UTC (as the model stores them); local days and working ranges are
computed in the zone asked for, so DST changes are handled by ``zoneinfo``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as official
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import ConfigError
from core.yamlconf import load_yaml_model

WEEKDAYS = ("lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo")
# No calendar has a ten-year gap between working hours; past this, the calendar is broken.
MAX_SCAN_DAYS = 3660
CALENDAR_FILE = "calendar.yaml"


def _parse_range(text: str) -> tuple[time, time]:
    try:
        start_s, end_s = (part.strip() for part in text.split("-"))
        start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    except ValueError as exc:
        raise ValueError(f'rango "{text}" inválido; usa "HH:MM-HH:MM", p. ej. "09:00-18:00"'
                         ) from exc
    if end <= start:
        raise ValueError(f'rango "{text}": la hora final debe ser posterior a la inicial')
    return start, end


class WeekHours(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lunes: list[str] = []
    martes: list[str] = []
    miercoles: list[str] = []
    jueves: list[str] = []
    viernes: list[str] = []
    sabado: list[str] = []
    domingo: list[str] = []

    @field_validator("*")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            _parse_range(item)
        return value

    def ranges(self) -> list[list[tuple[time, time]]]:
        return [sorted(_parse_range(r) for r in getattr(self, day)) for day in WEEKDAYS]


class FixedHoliday(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fecha: str = Field(pattern=r"^\d{2}-\d{2}$")
    nombre: str = ""


class MovingHoliday(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mes: int = Field(ge=1, le=12)
    dia: str
    n: int = Field(ge=1, le=5)
    nombre: str = ""

    @field_validator("dia")
    @classmethod
    def _weekday(cls, value: str) -> str:
        if value not in WEEKDAYS:
            raise ValueError(f"día de la semana desconocido; usa uno de {', '.join(WEEKDAYS)}")
        return value


class DatedHoliday(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fecha: date
    nombre: str = ""


class Holidays(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fijos: list[FixedHoliday] = []
    moviles: list[MovingHoliday] = []
    fechas: list[DatedHoliday] = []


class CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zona: str = "America/Tijuana"
    pais: str = "MX"  # whose public holidays (ISO 3166 code the holidays package knows)
    horario: WeekHours
    zonas: dict[str, WeekHours] = {}
    festivos: Holidays = Holidays()


class BusinessCalendar:
    """Working ranges per weekday and zone, and the holidays of any year."""

    def __init__(self, spec: CalendarFile) -> None:
        self.default_zone = spec.zona
        self._week = spec.horario.ranges()
        self._zones = {name: hours.ranges() for name, hours in spec.zonas.items()}
        self._extra = spec.festivos
        self._country = spec.pais
        if spec.pais not in official.list_supported_countries():
            raise ConfigError(f"config/calendar.yaml: país «{spec.pais}» desconocido; usa un "
                              "código ISO de dos letras, p. ej. MX")
        self._by_year: dict[int, dict[date, str]] = {}
        for name in [spec.zona, *spec.zonas]:
            ZoneInfo(name)
        if not any(self._week) or any(not any(w) for w in self._zones.values()):
            raise ConfigError("config/calendar.yaml: el horario no tiene ninguna hora hábil")

    @classmethod
    def load(cls, config_dir: Path) -> BusinessCalendar:
        """Read ``config/calendar.yaml`` (ConfigError with file:line when it is wrong)."""
        return _load_cached(str(config_dir / CALENDAR_FILE))

    # --- days -------------------------------------------------------------------------

    def holidays(self, year: int) -> dict[date, str]:
        """The days off of ``year`` with their names: the country's public holidays and the
        extra days of ``config/calendar.yaml``."""
        if year not in self._by_year:
            days = dict(official.country_holidays(self._country, years=year, language="es"))
            self._by_year[year] = {**days, **_extra_days(self._extra, year)}
        return self._by_year[year]

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays(day.year)

    def day_ranges(self, day: date, zone: str | None = None) -> list[tuple[datetime, datetime]]:
        """Working ranges of one local day, as naive-UTC instants (empty on holidays)."""
        if self.is_holiday(day):
            return []
        name = zone or self.default_zone
        tz = ZoneInfo(name)
        week = self._zones.get(name, self._week)
        return [(_to_utc(datetime.combine(day, start, tzinfo=tz)),
                 _to_utc(datetime.combine(day, end, tzinfo=tz)))
                for start, end in week[day.weekday()]]

    def is_business_day(self, day: date, zone: str | None = None) -> bool:
        return bool(self.day_ranges(day, zone))

    # --- instants ---------------------------------------------------------------------

    def local_date(self, instant: datetime, zone: str | None = None) -> date:
        return instant.replace(tzinfo=UTC).astimezone(ZoneInfo(zone or self.default_zone)).date()

    def is_business_time(self, instant: datetime, zone: str | None = None) -> bool:
        day = self.local_date(instant, zone)
        return any(start <= instant < end for start, end in self.day_ranges(day, zone))

    def business_hours_between(self, start: datetime, end: datetime,
                               zone: str | None = None) -> float:
        """Working hours between two instants (0 when end is not after start)."""
        if end <= start:
            return 0.0
        total = timedelta()
        day = self.local_date(start, zone)
        last = self.local_date(end, zone)
        for _ in range(MAX_SCAN_DAYS):
            for lo, hi in self.day_ranges(day, zone):
                overlap = min(hi, end) - max(lo, start)
                if overlap > timedelta():
                    total += overlap
            if day >= last:
                break
            day += timedelta(days=1)
        return round(total.total_seconds() / 3600.0, 4)

    def add_business_hours(self, start: datetime, hours: float,
                           zone: str | None = None) -> datetime:
        """The instant ``hours`` working hours after ``start``."""
        remaining = timedelta(hours=max(0.0, hours))
        day = self.local_date(start, zone)
        for _ in range(MAX_SCAN_DAYS):
            for lo, hi in self.day_ranges(day, zone):
                begin = max(lo, start)
                if begin >= hi:
                    continue
                if begin + remaining <= hi:
                    return begin + remaining
                remaining -= hi - begin
            day += timedelta(days=1)
        raise ConfigError("config/calendar.yaml: no hay horas hábiles suficientes en diez años")

    def add_business_days(self, start: date | datetime, days: int,
                          zone: str | None = None) -> date | datetime:
        """``days`` working days after ``start`` (same local time for an instant)."""
        if isinstance(start, datetime):
            tz = ZoneInfo(zone or self.default_zone)
            local = start.replace(tzinfo=UTC).astimezone(tz)
            target = self._next_business_day(local.date(), days, zone)
            moved = datetime.combine(target, local.time().replace(tzinfo=None), tzinfo=tz)
            return _to_utc(moved)
        return self._next_business_day(start, days, zone)

    def _next_business_day(self, day: date, days: int, zone: str | None) -> date:
        count = 0
        for _ in range(MAX_SCAN_DAYS):
            if count >= days:
                return day
            day += timedelta(days=1)
            if self.is_business_day(day, zone):
                count += 1
        raise ConfigError("config/calendar.yaml: no hay días hábiles suficientes en diez años")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _extra_days(spec: Holidays, year: int) -> dict[date, str]:
    out: dict[date, str] = {}
    for fixed in spec.fijos:
        month, day = (int(p) for p in fixed.fecha.split("-"))
        out[date(year, month, day)] = fixed.nombre
    for moving in spec.moviles:
        first = date(year, moving.mes, 1)
        offset = (WEEKDAYS.index(moving.dia) - first.weekday()) % 7
        out[first + timedelta(days=offset + 7 * (moving.n - 1))] = moving.nombre
    for dated in spec.fechas:
        if dated.fecha.year == year:
            out[dated.fecha] = dated.nombre
    return out


def _load_cached(path: str) -> BusinessCalendar:
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"{path}: no se puede leer el calendario ({exc.strerror}); "
                          "crea config/calendar.yaml") from exc
    return _load_versioned(path, mtime)


@lru_cache(maxsize=8)
def _load_versioned(path: str, _mtime: int) -> BusinessCalendar:
    return BusinessCalendar(load_yaml_model(Path(path), CalendarFile))
