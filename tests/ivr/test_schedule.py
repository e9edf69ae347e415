"""Business hours and holidays, evaluated on the location's wall clock (ivr.schedule)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr.schedule import (
    DateHoliday,
    MenuKind,
    PublicHolidays,
    Schedule,
    ScheduleError,
    TimeRange,
    WeeklyHours,
    YearlyDateHoliday,
    YearlyWeekdayHoliday,
    parse_clock,
    schedule_from_documents,
)

OFFICE = WeeklyHours.from_mapping({
    day: [("09:00", "12:00"), ("13:00", "17:30")] for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
} | {"saturday": [("10:00", "14:00")]})


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_hours_with_several_intervals_per_day() -> None:
    berlin = Schedule.build("Europe/Berlin", OFFICE)
    # Wednesday 2025-01-15, Berlin is UTC+1 in winter.
    assert not berlin.is_open(utc(2025, 1, 15, 7, 59))  # 08:59 local
    assert berlin.is_open(utc(2025, 1, 15, 8, 0))  # 09:00 local: the start is inside
    assert berlin.is_open(utc(2025, 1, 15, 10, 59, 59))
    assert not berlin.is_open(utc(2025, 1, 15, 11, 0))  # 12:00 local: the end is outside (lunch)
    assert berlin.is_open(utc(2025, 1, 15, 12, 0))  # 13:00 local
    assert berlin.is_open(utc(2025, 1, 15, 16, 29))  # 17:29 local
    assert not berlin.is_open(utc(2025, 1, 15, 16, 30))  # 17:30 local
    # Saturday has its own hours, Sunday none.
    assert berlin.is_open(utc(2025, 1, 18, 9, 0))  # Saturday 10:00 local
    assert not berlin.is_open(utc(2025, 1, 18, 13, 0))  # Saturday 14:00 local
    assert not berlin.is_open(utc(2025, 1, 19, 10, 0))  # Sunday 11:00 local


def test_weekday_is_the_local_one_not_utcs() -> None:
    # 23:30 UTC on Friday is already Saturday 08:30 in Tokyo, and Friday 17:30 in Chicago.
    hours = WeeklyHours.from_mapping({"saturday": [("08:00", "09:00")], "friday": [("17:00", "18:00")]})
    friday_night = utc(2025, 1, 17, 23, 30)
    assert Schedule.build("Asia/Tokyo", hours).is_open(friday_night)
    assert Schedule.build("America/Chicago", hours).is_open(friday_night)
    assert not Schedule.build("Europe/London", hours).is_open(friday_night)


def test_dst_spring_forward_keeps_wall_clock_hours() -> None:
    ny = Schedule.build("America/New_York", OFFICE)
    # Friday 2025-03-07 (EST, UTC-5) and Monday 2025-03-10 (EDT, UTC-4): 13:30 UTC is 08:30
    # before the change and 09:30 after it.
    assert not ny.is_open(utc(2025, 3, 7, 13, 30))
    assert ny.is_open(utc(2025, 3, 10, 13, 30))
    assert ny.is_open(utc(2025, 3, 7, 14, 0))  # 09:00 EST
    assert ny.is_open(utc(2025, 3, 10, 13, 0))  # 09:00 EDT
    assert not ny.is_open(utc(2025, 3, 10, 12, 59))


def test_dst_fall_back_repeated_hour_counts_both_times() -> None:
    # Sunday 2025-11-02 in New York: 01:00-02:00 happens twice (EDT then EST).
    night = Schedule.build("America/New_York", WeeklyHours.from_mapping({"sunday": [("01:00", "02:00")]}))
    assert night.is_open(utc(2025, 11, 2, 5, 30))  # 01:30 EDT
    assert night.is_open(utc(2025, 11, 2, 6, 30))  # 01:30 EST, an hour later
    assert not night.is_open(utc(2025, 11, 2, 7, 0))  # 02:00 EST
    assert not night.is_open(utc(2025, 11, 2, 4, 59))  # 00:59 EDT


def test_dst_spring_forward_gap_hour_never_opens() -> None:
    # 2025-03-30 in Berlin: 02:00-03:00 does not exist; an interval inside it is never open.
    gap = Schedule.build("Europe/Berlin", WeeklyHours.from_mapping({"sunday": [("02:00", "03:00")]}))
    moments = [utc(2025, 3, 29, 23, 0) + timedelta(minutes=m) for m in range(0, 4 * 60)]
    assert not any(gap.is_open(m) for m in moments)
    # ...while the same interval a week earlier is open for one full hour.
    week_before = [m - timedelta(days=7) for m in moments]
    assert sum(gap.is_open(m) for m in week_before) == 60


def test_whole_day_part_day_and_multi_day_holidays() -> None:
    schedule = Schedule.build("Europe/Berlin", OFFICE, [
        DateHoliday("Staff party", date(2025, 1, 15), hours=TimeRange.parse("15:00", "24:00")),
        DateHoliday("Inventory", date(2025, 2, 3), date(2025, 2, 5)),
    ])
    # Part-day: open in the morning, holiday (after hours) from 15:00 local.
    assert schedule.which_menu(utc(2025, 1, 15, 9, 0)) is MenuKind.BUSINESS_HOURS
    assert not schedule.in_holiday(utc(2025, 1, 15, 13, 59))
    assert schedule.in_holiday(utc(2025, 1, 15, 14, 0))
    assert schedule.which_menu(utc(2025, 1, 15, 14, 0)) is MenuKind.AFTER_HOURS
    assert schedule.in_business_hours(utc(2025, 1, 15, 14, 0))  # weekly hours alone say open
    # Multi-day: every day of 3-5 February, inclusive, nothing the day after.
    for day in (3, 4, 5):
        assert schedule.which_menu(utc(2025, 2, day, 10, 0)) is MenuKind.AFTER_HOURS
    assert schedule.which_menu(utc(2025, 2, 6, 10, 0)) is MenuKind.BUSINESS_HOURS
    assert schedule.holiday_at(utc(2025, 2, 4, 10, 0)).name == "Inventory"


def test_holiday_date_is_the_local_date() -> None:
    # 1 January 00:30 in Sydney is still 31 December in UTC.
    sydney = Schedule.build("Australia/Sydney", None, [DateHoliday("New year", date(2026, 1, 1))])
    assert sydney.in_holiday(utc(2025, 12, 31, 13, 30))
    assert not sydney.in_holiday(utc(2025, 12, 31, 12, 59))  # 23:59 on 31 December in Sydney


def test_yearly_holidays_by_date_and_by_weekday() -> None:
    schedule = Schedule.build("America/Los_Angeles", OFFICE, [
        YearlyDateHoliday("Christmas Eve afternoon", 12, 24, TimeRange.parse("12:00", "24:00")),
        YearlyWeekdayHoliday("Thanksgiving", 11, weekday=3, week=4),
        YearlyWeekdayHoliday("Last Monday of May", 5, weekday=0, week=-1),
        YearlyDateHoliday("Leap day", 2, 29),
    ])
    for year in (2025, 2026, 2030):
        # 24 December 11:00 vs 13:00 Pacific (UTC-8 in winter).
        assert not schedule.in_holiday(utc(year, 12, 24, 19, 0))
        assert schedule.in_holiday(utc(year, 12, 24, 21, 0))
    assert schedule.in_holiday(utc(2025, 11, 27, 18, 0))  # 4th Thursday of November 2025
    assert not schedule.in_holiday(utc(2025, 11, 20, 18, 0))
    assert schedule.in_holiday(utc(2026, 11, 26, 18, 0))
    assert schedule.in_holiday(utc(2025, 5, 26, 18, 0))  # last Monday of May 2025
    assert not schedule.in_holiday(utc(2025, 5, 19, 18, 0))
    assert schedule.in_holiday(utc(2024, 2, 29, 18, 0))
    assert schedule.in_holiday(utc(2025, 2, 28, 18, 0))  # kept in common years
    assert not schedule.in_holiday(utc(2024, 2, 28, 18, 0))


def test_public_holidays_by_country_and_subdivision() -> None:
    california = Schedule.build("America/Los_Angeles", OFFICE, [PublicHolidays("US", "CA")])
    new_york = Schedule.build("America/New_York", OFFICE, [PublicHolidays("US", "NY")])
    # Monday 2025-03-31, César Chávez Day: a California holiday, not a New York one.
    assert california.which_menu(utc(2025, 3, 31, 18, 0)) is MenuKind.AFTER_HOURS
    assert new_york.which_menu(utc(2025, 3, 31, 18, 0)) is MenuKind.BUSINESS_HOURS
    # Independence Day in both, and in later years too (tables computed per year on demand).
    for year, day in ((2025, 4), (2031, 4)):
        assert california.in_holiday(utc(year, 7, day, 18, 0))
        assert new_york.in_holiday(utc(year, 7, day, 18, 0))
    bavaria = Schedule.build("Europe/Berlin", OFFICE, [PublicHolidays("DE", "BY")])
    assert bavaria.in_holiday(utc(2025, 1, 6, 10, 0))  # Epiphany in Bavaria
    assert not Schedule.build("Europe/Berlin", OFFICE, [PublicHolidays("DE", "BE")]).in_holiday(utc(2025, 1, 6, 10, 0))


def test_no_business_schedule_means_open_except_on_holidays() -> None:
    always = Schedule.build("UTC", None, [DateHoliday("Closed", date(2025, 5, 1))])
    assert always.which_menu(utc(2025, 4, 30, 3, 0)) is MenuKind.BUSINESS_HOURS
    assert always.which_menu(utc(2025, 5, 1, 3, 0)) is MenuKind.AFTER_HOURS


def test_next_change_finds_closing_time() -> None:
    berlin = Schedule.build("Europe/Berlin", OFFICE)
    assert berlin.next_change(utc(2025, 1, 15, 10, 20, 13)) == utc(2025, 1, 15, 11, 0)  # lunch at 12:00 local
    assert Schedule.build("UTC").next_change(utc(2025, 1, 1), timedelta(hours=2)) is None


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Schedule.build("Mars/Olympus_Mons"), "unknown time zone"),
    (lambda: Schedule.build("UTC").is_open(datetime(2025, 1, 1)), "naive"),
    (lambda: TimeRange.parse("17:00", "09:00"), "must start before it ends"),
    (lambda: TimeRange.parse("9am", "17:00"), "HH:MM"),
    (lambda: parse_clock("24:30"), "HH:MM"),
    (lambda: WeeklyHours.from_mapping({"monday": [("09:00", "12:00"), ("11:00", "13:00")]}), "overlap"),
    (lambda: WeeklyHours.from_mapping({"funday": [("09:00", "12:00")]}), "weekday must be one of"),
    (lambda: DateHoliday("x", date(2025, 2, 5), date(2025, 2, 3)), "before start"),
    (lambda: YearlyDateHoliday("x", 2, 30), "is not a date"),
    (lambda: YearlyWeekdayHoliday("x", 11, 3, 5), "week 1-4"),
    (lambda: PublicHolidays("ZZ"), "no public holiday calendar for country 'ZZ'"),
    (lambda: PublicHolidays("US", "XX"), "subdivision 'XX'"),
])
def test_bad_definitions_fail_with_a_clear_reason(build, message) -> None:
    with pytest.raises(ScheduleError, match=message):
        build()


def test_schedule_from_stored_documents() -> None:
    schedule = schedule_from_documents(
        "Europe/Paris",
        {"monday": [{"startTime": "08:00", "endTime": "18:00"}], "tuesday": [{"startTime": "08:00", "endTime": "18:00"}]},
        [
            {"name": "Bastille Day", "month": 7, "day": 14},
            {"name": "Afternoon off", "date": "2025-06-03", "startTime": "14:00", "endTime": "24:00"},
            {"name": "Week off", "date": "2025-08-11", "endDate": "2025-08-15"},
            {"name": "Last Monday of May", "month": 5, "weekday": "monday", "week": -1},
            {"country": "FR"},
        ],
    )
    assert schedule.is_open(utc(2025, 6, 2, 10, 0))  # Monday
    assert not schedule.is_open(utc(2025, 6, 4, 10, 0))  # Wednesday: no hours
    assert schedule.is_open(utc(2025, 6, 3, 11, 59))  # Tuesday 13:59 Paris
    assert not schedule.is_open(utc(2025, 6, 3, 12, 0))  # 14:00 Paris: afternoon off
    assert not schedule.is_open(utc(2025, 8, 12, 10, 0))
    assert not schedule.is_open(utc(2025, 5, 26, 10, 0))
    assert not schedule.is_open(utc(2025, 4, 21, 10, 0))  # Easter Monday, a French public holiday
    with pytest.raises(ScheduleError, match=r"holidays\[0\]: date must be YYYY-MM-DD"):
        schedule_from_documents("UTC", None, [{"name": "x", "date": "1 May"}])
    with pytest.raises(ScheduleError, match="give both startTime and endTime"):
        schedule_from_documents("UTC", None, [{"name": "x", "date": "2025-05-01", "startTime": "10:00"}])
    with pytest.raises(ScheduleError, match=r"monday\[0\]"):
        schedule_from_documents("UTC", {"monday": [{"startTime": "10:00", "endTime": "09:00"}]})
