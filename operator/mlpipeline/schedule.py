"""Cron schedules in a time zone: parsing with a clear error, the latest time due and the next one.
Times are compared as aware datetimes, so daylight-saving changes neither skip nor repeat a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}


@dataclass(frozen=True)
class Schedule:
    expression: str  # five cron fields
    zone: ZoneInfo

    @classmethod
    def parse(cls, schedule: str, time_zone: str) -> Schedule:
        """Raises ValueError naming what is wrong (pydantic reports it at the field)."""
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {time_zone!r} (an IANA name such as Europe/Berlin)"
            ) from None
        expression = ALIASES.get(schedule.strip(), schedule.strip())
        try:
            next(CronSim(expression, datetime.now(zone)))
        except (CronSimError, StopIteration) as exc:
            raise ValueError(f"invalid cron schedule {schedule!r}: {exc}") from None
        return cls(expression, zone)

    def __str__(self) -> str:
        return f"{self.expression} ({self.zone.key})"

    def next_after(self, moment: datetime) -> datetime:
        return next(CronSim(self.expression, moment.astimezone(self.zone)))

    def latest_due(self, since: datetime, now: datetime) -> datetime | None:
        """The latest scheduled time in (since, now], or None: the ones before it are not caught up."""
        local = now.astimezone(self.zone)
        # cronsim's iterators are strict and work in whole seconds: step back from just after now.
        latest = next(CronSim(self.expression, local + timedelta(seconds=1), reverse=True))
        if latest > local:
            latest = next(CronSim(self.expression, latest, reverse=True))
        return latest if latest > since else None
