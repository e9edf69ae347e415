"""Business hours and holidays: which menu an auto attendant plays at a given instant.

Everything is evaluated on the location's wall clock: the caller passes an aware UTC instant,
it is converted with ``zoneinfo`` and compared with local dates and times. Wall-clock
semantics make daylight-saving changes come out right without special cases: "open 09:00 to
17:00" means 09:00 to 17:00 on the clock on the wall, whatever the UTC offset is that day; an
hour repeated when clocks go back counts each time it is on the clock; an hour skipped when
they go forward simply never occurs.

Pure and synchronous (no I/O except the ``holidays`` package's tables, computed once per
country, subdivision and year and cached).
"""

from __future__ import annotations

import calendar
import re
import threading
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol

import holidays as holidays_lib

__all__ = [
    "DateHoliday",
    "Holiday",
    "MenuKind",
    "PublicHolidays",
    "Schedule",
    "ScheduleError",
    "TimeRange",
    "WeeklyHours",
    "YearlyDateHoliday",
    "YearlyWeekdayHoliday",
    "schedule_from_documents",
]

DAY_SECONDS = 24 * 3600
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])(?::([0-5][0-9]))?$")


class ScheduleError(ValueError):
    """A schedule definition that cannot be evaluated (bad time, zone, country...)."""


class MenuKind(StrEnum):
    BUSINESS_HOURS = "BUSINESS_HOURS"
    AFTER_HOURS = "AFTER_HOURS"


def parse_clock(text: str) -> int:
    """'HH:MM' or 'HH:MM:SS' (up to '24:00' for the end of the day) -> seconds since midnight."""
    match = _CLOCK.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ScheduleError(f"time must be HH:MM (00:00 to 24:00), got {text!r}")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    total = hours * 3600 + minutes * 60 + seconds
    if total > DAY_SECONDS:
        raise ScheduleError(f"time must be HH:MM (00:00 to 24:00), got {text!r}")
    return total


def format_clock(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def _seconds_of_day(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open span of one day's wall clock, [start, end), in seconds since midnight."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < self.end <= DAY_SECONDS):
            raise ScheduleError(
                f"time range {format_clock(self.start)}-{format_clock(self.end)} must start before it ends, "
                "within one day (use 24:00 for midnight at the end)"
            )

    @classmethod
    def parse(cls, start: str, end: str) -> TimeRange:
        return cls(parse_clock(start), parse_clock(end))

    def contains(self, seconds: int) -> bool:
        return self.start <= seconds < self.end

    def __str__(self) -> str:
        return f"{format_clock(self.start)}-{format_clock(self.end)}"


ALL_DAY = TimeRange(0, DAY_SECONDS)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """Opening hours per weekday (0 = Monday), several non-overlapping intervals per day."""

    days: tuple[tuple[TimeRange, ...], ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ScheduleError("weekly hours need exactly seven days, Monday first")
        for name, ranges in zip(WEEKDAYS, self.days):
            ordered = sorted(ranges, key=lambda r: r.start)
            for before, after in zip(ordered, ordered[1:]):
                if after.start < before.end:
                    raise ScheduleError(f"{name}: intervals {before} and {after} overlap")

    @classmethod
    def from_mapping(cls, hours: Mapping[str | int, Iterable[TimeRange | tuple[str, str]]]) -> WeeklyHours:
        """{"monday": [("09:00", "12:00"), ("13:00", "17:00")], ...}; days left out are closed."""
        days: list[list[TimeRange]] = [[] for _ in WEEKDAYS]
        for key, ranges in hours.items():
            index = key if isinstance(key, int) else _weekday_index(key)
            if not 0 <= index < 7:
                raise ScheduleError(f"weekday index must be 0 (Monday) to 6 (Sunday), got {key!r}")
            for item in ranges:
                days[index].append(item if isinstance(item, TimeRange) else TimeRange.parse(*item))
        return cls(tuple(tuple(sorted(day, key=lambda r: r.start)) for day in days))

    def contains(self, local: datetime) -> bool:
        seconds = _seconds_of_day(local)
        return any(r.contains(seconds) for r in self.days[local.weekday()])


def _weekday_index(name: str) -> int:
    try:
        return WEEKDAYS.index(name.strip().lower())
    except ValueError:
        raise ScheduleError(f"weekday must be one of {', '.join(WEEKDAYS)}, got {name!r}") from None


class Holiday(Protocol):
    name: str

    def covers(self, local: datetime) -> bool:
        """True when this wall-clock moment lies inside the holiday."""
        ...


@dataclass(frozen=True, slots=True)
class DateHoliday:
    """One date or a run of dates, whole days or the same part of each day."""

    name: str
    start: date
    end: date | None = None  # inclusive; None: just ``start``
    hours: TimeRange = ALL_DAY

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ScheduleError(f"holiday {self.name!r}: end date {self.end} is before start date {self.start}")

    def covers(self, local: datetime) -> bool:
        day = local.date()
        last = self.end or self.start
        return self.start <= day <= last and self.hours.contains(_seconds_of_day(local))


@dataclass(frozen=True, slots=True)
class YearlyDateHoliday:
    """The same date every year (e.g. 24 December), optionally only part of the day.

    29 February is kept on 28 February in common years, so a leap-day holiday is not silently
    skipped three years out of four.
    """

    name: str
    month: int
    day: int
    hours: TimeRange = ALL_DAY

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.day <= calendar.monthrange(2000, self.month)[1]:
            raise ScheduleError(f"holiday {self.name!r}: {self.month}-{self.day} is not a date")

    def covers(self, local: datetime) -> bool:
        day = min(self.day, calendar.monthrange(local.year, self.month)[1])
        return (local.month, local.day) == (self.month, day) and self.hours.contains(_seconds_of_day(local))


@dataclass(frozen=True, slots=True)
class YearlyWeekdayHoliday:
    """The n-th (1-4, or -1 for last) given weekday of a month every year, e.g. US Thanksgiving."""

    name: str
    month: int
    weekday: int  # 0 = Monday
    week: int  # 1..4, or -1 for the last one
    hours: TimeRange = ALL_DAY

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 0 <= self.weekday <= 6 or self.week not in (1, 2, 3, 4, -1):
            raise ScheduleError(
                f"holiday {self.name!r}: month 1-12, weekday 0-6 and week 1-4 or -1 (last), "
                f"got {self.month}, {self.weekday}, {self.week}"
            )

    def date_in(self, year: int) -> date:
        days = [d for d in calendar.Calendar().itermonthdates(year, self.month)
                if d.month == self.month and d.weekday() == self.weekday]
        return days[self.week - 1] if self.week > 0 else days[-1]

    def covers(self, local: datetime) -> bool:
        return (
            local.month == self.month
            and local.date() == self.date_in(local.year)
            and self.hours.contains(_seconds_of_day(local))
        )


_PUBLIC_CACHE: dict[tuple[str, str | None, int], frozenset[date]] = {}
_PUBLIC_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class PublicHolidays:
    """A country's (and optionally a subdivision's) public holidays, from the ``holidays`` package."""

    country: str
    subdivision: str | None = None
    name: str = field(default="")

    def __post_init__(self) -> None:
        # Fail at definition time, not during a call: compute the current year once.
        self.dates(datetime.now().year)
        if not self.name:
            label = self.country + (f"-{self.subdivision}" if self.subdivision else "")
            object.__setattr__(self, "name", f"public holidays {label}")

    def dates(self, year: int) -> frozenset[date]:
        key = (self.country, self.subdivision, year)
        cached = _PUBLIC_CACHE.get(key)
        if cached is not None:
            return cached
        with _PUBLIC_LOCK:
            try:
                table = holidays_lib.country_holidays(self.country, subdiv=self.subdivision, years=year)
            except NotImplementedError as exc:
                raise ScheduleError(
                    f"no public holiday calendar for country {self.country!r}"
                    + (f" subdivision {self.subdivision!r}" if self.subdivision else "")
                    + f": {exc}"
                ) from None
            found = frozenset(table.keys())
            _PUBLIC_CACHE[key] = found
            return found

    def covers(self, local: datetime) -> bool:
        return local.date() in self.dates(local.year)


@dataclass(frozen=True, slots=True)
class Schedule:
    """An auto attendant's view of time: business hours and holidays in one time zone.

    ``business_hours`` None means no business-hours schedule is assigned, so the attendant is
    open whenever it is not a holiday (as in Webex Calling, where the schedules are optional).
    """

    time_zone: zoneinfo.ZoneInfo
    business_hours: WeeklyHours | None = None
    holidays: tuple[Holiday, ...] = ()

    @classmethod
    def build(cls, time_zone: str, business_hours: WeeklyHours | None = None,
              holidays: Sequence[Holiday] = ()) -> Schedule:
        try:
            zone = zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ScheduleError(f"unknown time zone {time_zone!r} (use an IANA name such as Europe/Berlin)") from None
        return cls(zone, business_hours, tuple(holidays))

    def local(self, now: datetime) -> datetime:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ScheduleError("schedules are evaluated at an aware instant (datetime.now(UTC)), got a naive datetime")
        return now.astimezone(self.time_zone)

    def holiday_at(self, now: datetime) -> Holiday | None:
        local = self.local(now)
        return next((h for h in self.holidays if h.covers(local)), None)

    def in_holiday(self, now: datetime) -> bool:
        return self.holiday_at(now) is not None

    def in_business_hours(self, now: datetime) -> bool:
        """Inside the weekly hours, holidays not considered."""
        return self.business_hours is None or self.business_hours.contains(self.local(now))

    def is_open(self, now: datetime) -> bool:
        """Inside the weekly hours and not on a holiday."""
        return self.in_business_hours(now) and not self.in_holiday(now)

    def which_menu(self, now: datetime) -> MenuKind:
        return MenuKind.BUSINESS_HOURS if self.is_open(now) else MenuKind.AFTER_HOURS

    def next_change(self, now: datetime, horizon: timedelta = timedelta(days=8)) -> datetime | None:
        """The first instant after ``now`` (to the minute) when ``which_menu`` changes, or None.

        A scan by minutes is plenty for telling an operator "closes at 17:00" and avoids
        reasoning about every kind of holiday's edges; minutes are where schedules change.
        """
        current = self.which_menu(now)
        step = timedelta(minutes=1)
        probe = now.replace(second=0, microsecond=0) + step
        end = now + horizon
        while probe <= end:
            if self.which_menu(probe) is not current:
                return probe
            probe += step
        return None


# --- documents (the JSON the provisioning API stores) -> schedule objects -----------------

def _date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ScheduleError(f"{where}: date must be YYYY-MM-DD, got {value!r}") from None


def _hours(item: Mapping[str, Any], where: str) -> TimeRange:
    start, end = item.get("startTime"), item.get("endTime")
    if start is None and end is None:
        return ALL_DAY
    if start is None or end is None:
        raise ScheduleError(f"{where}: give both startTime and endTime, or neither for the whole day")
    try:
        return TimeRange.parse(start, end)
    except ScheduleError as exc:
        raise ScheduleError(f"{where}: {exc}") from None


def weekly_hours_from_document(document: Mapping[str, Any]) -> WeeklyHours:
    """{"monday": [{"startTime": "09:00", "endTime": "17:00"}], ...} -> WeeklyHours."""
    days: dict[str, list[TimeRange]] = {}
    for day, ranges in document.items():
        _weekday_index(day)
        days[day] = [_hours(r, f"{day}[{i}]") for i, r in enumerate(ranges)]
    return WeeklyHours.from_mapping(days)


def holiday_from_document(item: Mapping[str, Any], where: str = "holiday") -> Holiday:
    """One holiday entry: {"name", "date" [, "endDate"] [, startTime, endTime]}, or
    {"name", "month", "day"} (every year), or {"name", "month", "weekday", "week"} (every year),
    or {"country" [, "subdivision"]} (public holidays)."""
    item = {key: value for key, value in item.items() if value is not None}  # the API shows absent as null
    name = str(item.get("name") or "")
    if "country" in item:
        return PublicHolidays(str(item["country"]).upper(), item.get("subdivision"), name)
    hours = _hours(item, where)
    if "date" in item:
        end = item.get("endDate")
        return DateHoliday(name, _date(item["date"], where), _date(end, where) if end else None, hours)
    if "month" in item and "weekday" in item:
        return YearlyWeekdayHoliday(name, int(item["month"]), _weekday_index(str(item["weekday"])),
                                    int(item["week"]), hours)
    if "month" in item and "day" in item:
        return YearlyDateHoliday(name, int(item["month"]), int(item["day"]), hours)
    raise ScheduleError(f"{where}: needs a date, a month and day, a month/weekday/week, or a country")


def schedule_from_documents(
    time_zone: str,
    business_hours: Mapping[str, Any] | None = None,
    holidays: Sequence[Mapping[str, Any]] = (),
) -> Schedule:
    """Build a Schedule from the stored documents of a business and a holiday schedule."""
    weekly = weekly_hours_from_document(business_hours) if business_hours is not None else None
    return Schedule.build(
        time_zone, weekly, [holiday_from_document(h, f"holidays[{i}]") for i, h in enumerate(holidays)]
    )
