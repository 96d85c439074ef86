"""Schedules: a cron line or an interval in a time zone, optionally only in business hours.

Cron lines are parsed and stepped by APScheduler 3.11's ``CronTrigger``. Missed slots are
coalesced: a cycle fires the latest slot that passed since the last one it fired (like
APScheduler's ``coalesce=True``), so a rule fires once per period even after downtime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from rules.calendar import BusinessCalendar

# "Never fires" = no slot (in business hours, when asked) within this horizon.
NEVER_FIRES_HORIZON = timedelta(days=800)
# Slots examined when looking for one in business hours, and when catching up.
MAX_SLOTS_SCANNED = 20_000
# After downtime, slots older than this are not looked at one by one (the latest fires).
MAX_CATCH_UP = timedelta(days=14)
# Standard crontab weekday numbers (0 and 7 = Sunday) and Spanish abbreviations, turned into
# the names APScheduler 3.x understands (it numbers Monday as 0: APScheduler issue 286).
_DOW_NUMBERS = {"0": "sun", "1": "mon", "2": "tue", "3": "wed", "4": "thu", "5": "fri",
                "6": "sat", "7": "sun"}
_DOW_SPANISH = {"lun": "mon", "mar": "tue", "mie": "wed", "mié": "wed", "jue": "thu",
                "vie": "fri", "sab": "sat", "sáb": "sat", "dom": "sun"}
# Only the first minute of a slot counts: the first run after FIRST_RUN_GRACE passes unnoticed.
FIRST_RUN_GRACE = timedelta(hours=1)
_INTERVAL = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")
_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400}
# Interval slots are aligned to this local instant so every replica computes the same slots.
_INTERVAL_ANCHOR = datetime(2000, 1, 3)  # a Monday


class ScheduleError(ValueError):
    """A schedule that cannot be used, with a Spanish message."""


@dataclass
class Schedule:
    """When a scheduled rule fires."""

    text: str
    zone: str
    business_only: bool
    calendar: BusinessCalendar
    cron: CronTrigger | None = None
    every: timedelta | None = None

    @classmethod
    def cron_line(cls, line: str, zone: str, business_only: bool,
                  calendar: BusinessCalendar) -> Schedule:
        try:
            trigger = CronTrigger.from_crontab(standard_crontab(line), timezone=ZoneInfo(zone))
        except (ValueError, TypeError) as exc:
            raise ScheduleError(
                f'programa "{line}" inválido ({exc}); usa 5 campos: minuto hora día-del-mes '
                'mes día-de-la-semana, p. ej. "0 9 * * mon-fri" (días 0-6 = lunes a domingo '
                "en APScheduler; usa mon,tue,... para evitar confusiones)") from exc
        schedule = cls(line, zone, business_only, calendar, cron=trigger)
        schedule.check_fires()
        return schedule

    @classmethod
    def interval(cls, text: str, zone: str, business_only: bool,
                 calendar: BusinessCalendar) -> Schedule:
        match = _INTERVAL.match(str(text))
        if not match:
            raise ScheduleError(f'intervalo "{text}" inválido; usa p. ej. "15m", "2h" o "1d"')
        amount = int(match.group(1))
        if amount <= 0:
            raise ScheduleError(f'intervalo "{text}": debe ser mayor que cero')
        schedule = cls(str(text), zone, business_only, calendar,
                       every=timedelta(seconds=amount * _UNIT_SECONDS[match.group(2)]))
        schedule.check_fires()
        return schedule

    # --- slots --------------------------------------------------------------------------

    def _next_raw(self, after: datetime) -> datetime | None:
        """First raw slot strictly after ``after`` (naive UTC)."""
        if self.every is not None:
            tz = ZoneInfo(self.zone)
            anchor = _INTERVAL_ANCHOR.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
            steps = int((after - anchor) // self.every) + 1
            return anchor + steps * self.every
        assert self.cron is not None
        aware = after.replace(tzinfo=UTC)
        nxt = self.cron.get_next_fire_time(None, aware + timedelta(seconds=1))
        if nxt is None:
            return None
        result: datetime = nxt.astimezone(UTC).replace(tzinfo=None)
        return result

    def _accepts(self, slot: datetime) -> bool:
        return not self.business_only or self.calendar.is_business_time(slot, self.zone)

    def next_after(self, after: datetime) -> datetime | None:
        """The next slot after ``after`` that counts (in business hours if asked)."""
        current = after
        for _ in range(MAX_SLOTS_SCANNED):
            slot = self._next_raw(current)
            if slot is None or slot - after > NEVER_FIRES_HORIZON:
                return None
            if self._accepts(slot):
                return slot
            current = slot
        return None

    def check_fires(self, start: datetime | None = None) -> None:
        """ScheduleError when the schedule never fires (e.g. 30 de febrero, or only at 3am
        with ``solo_horario_habil``)."""
        origin = start or datetime(2026, 1, 1)
        if self._next_raw(origin) is None:
            raise ScheduleError(f'el programa "{self.text}" nunca se cumple (¿una fecha que '
                                "no existe, como el 30 de febrero?)")
        if self.next_after(origin) is None:
            raise ScheduleError(f'el programa "{self.text}" nunca cae en horario hábil '
                                "(config/calendar.yaml): ajusta la hora o quita "
                                "solo_horario_habil")

    def latest_due(self, last: datetime | None, now: datetime) -> datetime | None:
        """The latest slot in (last, now], or None. Without ``last``, only a slot within the
        last ``FIRST_RUN_GRACE`` counts (a new rule does not fire for a period long gone)."""
        start = max(last, now - MAX_CATCH_UP) if last is not None else now - FIRST_RUN_GRACE
        latest = None
        current = start
        for _ in range(MAX_SLOTS_SCANNED):
            slot = self.next_after(current)
            if slot is None or slot > now:
                break
            latest = slot
            current = slot
        return latest


def standard_crontab(line: str) -> str:
    """A crontab line with its weekday field in names (standard numbering, Spanish names)."""
    parts = line.split()
    if len(parts) == 5:
        dow = parts[4].lower()
        dow = re.sub(r"[a-zñáé]+", lambda m: _DOW_SPANISH.get(m.group(0), m.group(0)), dow)
        parts[4] = re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: _DOW_NUMBERS[m.group(1)], dow)
    return " ".join(parts)
