"""Auto attendants, schedules and announcements: what a valid one is, for the API and the org file.

The pydantic specs check everything that needs no database (times, dates, keys, actions, ranges);
``resolve_attendant`` checks what does (the number is the location's and free, the extension
is free, the schedules and announcements exist) and raises ``RuleError`` naming the field and
the rule, which the API turns into problem+json and the org file into "file:line: key: reason".

The menu vocabulary repeats ivr.menu's on purpose: provisioning may not import ivr (see
DESIGN.md), and a test keeps the two lists equal.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import holidays as holidays_lib
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from provisioning.store import Location, Number, Person
from provisioning.tables_ivr import (
    Announcement,
    AutoAttendant,
    AutoAttendantAnnouncement,
    DialingScope,
    Schedule,
    ScheduleType,
)

__all__ = [
    "ActionSpec", "AttendantSettings", "DialingScope", "GreetingKind", "HolidaySpec", "KeySpec", "MenuAction",
    "MenuSpec", "RuleError", "ScheduleSpec", "ScheduleType", "SubmenuSpec", "TimeSpan", "WeeklyHoursSpec",
    "announcement_users", "attendant_document", "attendant_holding", "check_attendant", "resolve_attendant", "schedule_document",
    "schedule_users", "store_attendant",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = r"^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_TARGET = re.compile(r"^\+?[0-9]{2,15}$")


class MenuAction(enum.StrEnum):
    TRANSFER_WITHOUT_PROMPT = "TRANSFER_WITHOUT_PROMPT"
    TRANSFER_WITH_PROMPT = "TRANSFER_WITH_PROMPT"
    TRANSFER_TO_OPERATOR = "TRANSFER_TO_OPERATOR"
    NAME_DIALING = "NAME_DIALING"
    EXTENSION_DIALING = "EXTENSION_DIALING"
    REPEAT_MENU = "REPEAT_MENU"
    EXIT = "EXIT"
    GO_TO_MENU = "GO_TO_MENU"
    RETURN_TO_PREVIOUS_MENU = "RETURN_TO_PREVIOUS_MENU"
    PLAY_ANNOUNCEMENT = "PLAY_ANNOUNCEMENT"


class GreetingKind(enum.StrEnum):
    DEFAULT = "DEFAULT"
    CUSTOM = "CUSTOM"
    TEXT = "TEXT"


TRANSFERS = {MenuAction.TRANSFER_WITHOUT_PROMPT, MenuAction.TRANSFER_WITH_PROMPT, MenuAction.TRANSFER_TO_OPERATOR}
FINAL_ACTIONS = TRANSFERS | {MenuAction.EXIT}
FALLBACK_ACTIONS = FINAL_ACTIONS | {MenuAction.REPEAT_MENU}
_WITH_VALUE = TRANSFERS | {MenuAction.GO_TO_MENU, MenuAction.PLAY_ANNOUNCEMENT}


class RuleError(Exception):
    """A business rule the request breaks: HTTP-ish status, the field (camelCase path) and rule id."""

    def __init__(self, status: int, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.rule, self.message = status, field, rule, message


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              str_strip_whitespace=True, coerce_numbers_to_str=True)


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


# --- schedules ------------------------------------------------------------------------------

class TimeSpan(Spec):
    start_time: str = Field(pattern=_CLOCK, description="HH:MM, local time")
    end_time: str = Field(pattern=_CLOCK, description="HH:MM, local time; 24:00 is midnight at the end")

    @model_validator(mode="after")
    def _ordered(self) -> TimeSpan:
        if _minutes(self.start_time) >= _minutes(self.end_time):
            raise ValueError(f"startTime {self.start_time} must be before endTime {self.end_time}")
        return self


class WeeklyHoursSpec(Spec):
    """Opening hours per weekday; a day left out (or empty) is closed."""

    monday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    tuesday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    wednesday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    thursday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    friday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    saturday: list[TimeSpan] = Field(default_factory=list, max_length=8)
    sunday: list[TimeSpan] = Field(default_factory=list, max_length=8)

    @field_validator(*WEEKDAYS)
    @classmethod
    def _no_overlap(cls, spans: list[TimeSpan]) -> list[TimeSpan]:
        ordered = sorted(spans, key=lambda s: _minutes(s.start_time))
        for before, after in zip(ordered, ordered[1:]):
            if _minutes(after.start_time) < _minutes(before.end_time):
                raise ValueError(f"{before.start_time}-{before.end_time} and {after.start_time}-{after.end_time} overlap")
        return ordered


class HolidaySpec(Spec):
    """One of: a date or run of dates (``date``, ``endDate``); a date every year (``month``,
    ``day``); a weekday of a month every year (``month``, ``weekday``, ``week`` 1-4 or -1 for the
    last); or a country's public holidays (``country``, ``subdivision``). Dated kinds may be
    part-day with ``startTime`` and ``endTime``."""

    name: str | None = Field(default=None, min_length=1, max_length=80)
    date: dt.date | None = None
    end_date: dt.date | None = None
    month: int | None = Field(default=None, ge=1, le=12)
    day: int | None = Field(default=None, ge=1, le=31)
    weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None = None
    week: Literal[1, 2, 3, 4, -1] | None = None
    country: str | None = Field(default=None, description="ISO 3166 country code for public holidays")
    subdivision: str | None = Field(default=None, description="state, province... as the holidays package names it")
    start_time: str | None = Field(default=None, pattern=_CLOCK)
    end_time: str | None = Field(default=None, pattern=_CLOCK)

    @field_validator("weekday", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("country", "subdivision", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> HolidaySpec:
        kinds = [k for k, present in (
            ("date", self.date is not None),
            ("month and day", self.month is not None and self.day is not None),
            ("month, weekday and week", self.month is not None and self.weekday is not None),
            ("country", self.country is not None),
        ) if present]
        if len(kinds) != 1:
            raise ValueError("give exactly one of: date [endDate]; month and day; month, weekday and week; "
                             f"or country [subdivision] (got {', '.join(kinds) or 'none'})")
        kind = kinds[0]
        if kind != "country" and not self.name:
            raise ValueError("a holiday needs a name")
        if self.end_date is not None and kind != "date":
            raise ValueError("endDate goes with date")
        if self.end_date is not None and self.date is not None:
            if self.end_date < self.date:
                raise ValueError(f"endDate {self.end_date} is before date {self.date}")
            if (self.end_date - self.date).days > 366:
                raise ValueError("a dated holiday may span at most a year")
        if kind == "month and day":
            if self.weekday is not None or self.week is not None:
                raise ValueError("day and weekday/week exclude each other")
            if self.day > (29 if self.month == 2 else 30 if self.month in (4, 6, 9, 11) else 31):
                raise ValueError(f"month {self.month} has no day {self.day}")
        if kind == "month, weekday and week" and self.week is None:
            raise ValueError("a weekday holiday needs week (1-4, or -1 for the last)")
        if (self.start_time is None) != (self.end_time is None):
            raise ValueError("give both startTime and endTime for part of a day, or neither for the whole day")
        if self.start_time is not None and self.end_time is not None:
            if kind == "country":
                raise ValueError("public holidays are whole days; startTime/endTime do not apply")
            if _minutes(self.start_time) >= _minutes(self.end_time):
                raise ValueError(f"startTime {self.start_time} must be before endTime {self.end_time}")
        if kind == "country":
            supported = holidays_lib.list_supported_countries()
            if self.country not in supported:
                raise ValueError(f"no public holiday calendar for country {self.country!r}")
            if self.subdivision is not None and self.subdivision not in supported[self.country]:
                shown = ", ".join(supported[self.country][:12])
                raise ValueError(f"{self.country} has no subdivision {self.subdivision!r} (e.g. {shown})")
        elif self.subdivision is not None:
            raise ValueError("subdivision goes with country")
        return self


class ScheduleSpec(Spec):
    name: str = Field(min_length=1, max_length=80)
    type: ScheduleType
    hours: WeeklyHoursSpec | None = Field(default=None, description="BUSINESS_HOURS only")
    holidays: list[HolidaySpec] = Field(default_factory=list, max_length=200, description="HOLIDAYS only")

    @model_validator(mode="after")
    def _contents_match_type(self) -> ScheduleSpec:
        if self.type is ScheduleType.BUSINESS_HOURS and (self.hours is None or self.holidays):
            raise ValueError("a BUSINESS_HOURS schedule has hours and no holidays")
        if self.type is ScheduleType.HOLIDAYS and self.hours is not None:
            raise ValueError("a HOLIDAYS schedule has holidays and no hours")
        return self

    def documents(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(hours, holidays) as stored, which is what ivr.schedule.schedule_from_documents reads."""
        hours = self.hours.model_dump(by_alias=True, mode="json") if self.hours is not None else None
        if hours is not None:
            hours = {day: spans for day, spans in hours.items() if spans}
        return hours, [h.model_dump(by_alias=True, mode="json", exclude_none=True) for h in self.holidays]


# --- auto attendants ------------------------------------------------------------------------

class ActionSpec(Spec):
    action: MenuAction
    value: str | None = Field(default=None, max_length=100, validate_default=True,
                              description="transfer target (extension or +E.164), submenu id, or announcement id")

    @field_validator("value")
    @classmethod
    def _value_fits_action(cls, value: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")
        if action is None:
            return value
        if action in _WITH_VALUE and not value:
            raise ValueError(f"{action} needs a value")
        if action not in _WITH_VALUE and value:
            raise ValueError(f"{action} takes no value")
        if action in TRANSFERS and not _TARGET.match(value or ""):
            raise ValueError(f"a transfer target is an extension or a +E.164 number, got {value!r}")
        return value


class KeySpec(ActionSpec):
    key: str = Field(pattern=r"^[0-9*#]$")
    description: str | None = Field(default=None, max_length=100,
                                    description="spoken by the DEFAULT greeting: 'for <description>, press <key>'")


class MenuSpec(Spec):
    greeting: GreetingKind = GreetingKind.DEFAULT
    announcement_id: str | None = Field(default=None, max_length=36, description="the CUSTOM greeting")
    greeting_text: str | None = Field(default=None, max_length=1000,
                                      description="the TEXT greeting, spoken by text-to-speech")
    extension_enabled: bool = Field(default=True, description="callers may dial an extension directly")
    key_configurations: list[KeySpec] = Field(default_factory=list, max_length=12)

    @field_validator("key_configurations")
    @classmethod
    def _unique_keys(cls, keys: list[KeySpec]) -> list[KeySpec]:
        seen: set[str] = set()
        for key in keys:
            if key.key in seen:
                raise ValueError(f"key {key.key!r} is configured twice")
            seen.add(key.key)
        return keys


class SubmenuSpec(MenuSpec):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", description="what GO_TO_MENU names")


class NoInputSpec(Spec):
    timeout_seconds: int = Field(default=10, ge=1, le=60)
    repeats: int = Field(default=2, ge=0, le=3, description="times the menu is repeated before the final action")
    final_action: ActionSpec = Field(default_factory=lambda: ActionSpec(action=MenuAction.EXIT))


class InvalidInputSpec(Spec):
    limit: int = Field(default=3, ge=1, le=10, description="invalid entries before the final action")
    final_action: ActionSpec = Field(default_factory=lambda: ActionSpec(action=MenuAction.EXIT))


class AttendantSettings(Spec):
    """An auto attendant's fields, after Webex Calling's, without its location."""

    name: str = Field(min_length=1, max_length=100)
    enabled: bool = True
    phone_number: str | None = Field(default=None, max_length=20)
    extension: str | None = Field(default=None, pattern=r"^[0-9]{2,6}$")
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
    business_schedule: str | None = Field(default=None, max_length=80, description="schedule name in the location")
    holiday_schedule: str | None = Field(default=None, max_length=80, description="schedule name in the location")
    extension_dialing: DialingScope = DialingScope.LOCATION
    name_dialing: DialingScope = DialingScope.LOCATION
    business_hours_menu: MenuSpec
    after_hours_menu: MenuSpec
    submenus: list[SubmenuSpec] = Field(default_factory=list, max_length=20)
    no_input: NoInputSpec = Field(default_factory=NoInputSpec)
    invalid_input: InvalidInputSpec = Field(default_factory=InvalidInputSpec)
    transfer_fallback: ActionSpec = Field(default_factory=lambda: ActionSpec(action=MenuAction.REPEAT_MENU),
                                          description="what a caller whose transfer is not answered gets")
    inter_digit_timeout_seconds: int = Field(default=3, ge=1, le=10)

    def menus(self) -> Iterator[tuple[str, MenuSpec]]:
        yield "businessHoursMenu", self.business_hours_menu
        yield "afterHoursMenu", self.after_hours_menu
        for i, menu in enumerate(self.submenus):
            yield f"submenus[{i}]", menu


CONFIG_FIELDS = {"business_hours_menu", "after_hours_menu", "submenus", "no_input", "invalid_input",
                 "transfer_fallback", "inter_digit_timeout_seconds"}


def check_attendant(spec: AttendantSettings) -> None:
    """The rules between fields (the specs check each field alone)."""
    if spec.phone_number is None and spec.extension is None:
        raise RuleError(422, "phoneNumber", "attendant-unreachable",
                        "an auto attendant needs a phoneNumber, an extension, or both")
    ids = [m.id for m in spec.submenus]
    for i, menu_id in enumerate(ids):
        if menu_id in ids[:i]:
            raise RuleError(422, f"submenus[{i}].id", "submenu-id-unique", f"submenu id {menu_id!r} is used twice")
    for where, menu in spec.menus():
        for kind, name, value in ((GreetingKind.CUSTOM, "announcementId", menu.announcement_id),
                                  (GreetingKind.TEXT, "greetingText", menu.greeting_text)):
            if menu.greeting is kind and not value:
                raise RuleError(422, f"{where}.{name}", "greeting-incomplete", f"a {kind} greeting needs {name}")
            if menu.greeting is not kind and value:
                raise RuleError(422, f"{where}.{name}", "greeting-incomplete",
                                f"{name} goes with greeting {kind}, not {menu.greeting}")
        for j, key in enumerate(menu.key_configurations):
            if key.action is MenuAction.GO_TO_MENU and key.value not in ids:
                raise RuleError(422, f"{where}.keyConfigurations[{j}].value", "submenu-not-found",
                                f"GO_TO_MENU names submenu {key.value!r}; defined: {', '.join(ids) or 'none'}")
    for where, action, allowed in (("noInput.finalAction", spec.no_input.final_action, FINAL_ACTIONS),
                                   ("invalidInput.finalAction", spec.invalid_input.final_action, FINAL_ACTIONS),
                                   ("transferFallback", spec.transfer_fallback, FALLBACK_ACTIONS)):
        if action.action not in allowed:
            raise RuleError(422, f"{where}.action", "action-not-allowed",
                            f"{action.action} cannot be used here; use one of {', '.join(sorted(allowed))}")


@dataclass
class ResolvedAttendant:
    phone_number: str | None
    business_schedule_id: str | None
    holiday_schedule_id: str | None
    announcement_ids: set[str]


def parse_e164(text: str, country: str) -> str:
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise RuleError(422, "phoneNumber", "phone-number-invalid", f"not a phone number: {text!r}") from None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _schedule(session: Session, location: Location, name: str | None, kind: ScheduleType, field: str) -> str | None:
    if name is None:
        return None
    row = session.scalar(select(Schedule).where(Schedule.location_id == location.id, Schedule.name == name))
    if row is None:
        raise RuleError(422, field, "schedule-not-found", f"no schedule named {name!r} at {location.name}")
    if row.type is not kind:
        raise RuleError(422, field, "schedule-wrong-type", f"schedule {name!r} is {row.type}, not {kind}")
    return row.id


def resolve_attendant(session: Session, location: Location, spec: AttendantSettings,
                      current_id: str | None = None) -> ResolvedAttendant:
    """Check ``spec`` against the store for ``location``; ``current_id`` when replacing that attendant."""
    check_attendant(spec)
    others = select(AutoAttendant).where(AutoAttendant.id != current_id) if current_id else select(AutoAttendant)
    same_name = session.scalar(others.where(AutoAttendant.location_id == location.id, AutoAttendant.name == spec.name))
    if same_name is not None:
        raise RuleError(409, "name", "attendant-name-taken", f"{location.name} already has an auto attendant named {spec.name!r}")

    phone = None
    if spec.phone_number is not None:
        phone = parse_e164(spec.phone_number, location.country)
        number = session.get(Number, phone)
        if number is None or number.location_id != location.id:
            raise RuleError(422, "phoneNumber", "number-not-in-location", f"{phone} is not one of {location.name}'s numbers")
        if number.owner_id is not None:
            raise RuleError(409, "phoneNumber", "number-in-use", f"{phone} is assigned to a person")
        holder = session.scalar(others.where(AutoAttendant.phone_number == phone))
        if holder is not None:
            raise RuleError(409, "phoneNumber", "number-in-use", f"{phone} already answers auto attendant {holder.name!r}")

    if spec.extension is not None:
        person = session.scalar(select(Person).where(Person.location_id == location.id, Person.extension == spec.extension))
        if person is not None:
            raise RuleError(409, "extension", "extension-in-use",
                            f"extension {spec.extension} at {location.name} belongs to {person.email}")
        holder = session.scalar(others.where(AutoAttendant.location_id == location.id,
                                             AutoAttendant.extension == spec.extension))
        if holder is not None:
            raise RuleError(409, "extension", "extension-in-use",
                            f"extension {spec.extension} at {location.name} belongs to auto attendant {holder.name!r}")

    wanted: dict[str, str] = {}
    for where, menu in spec.menus():
        if menu.greeting is GreetingKind.CUSTOM and menu.announcement_id:
            wanted.setdefault(menu.announcement_id, f"{where}.announcementId")
        for j, key in enumerate(menu.key_configurations):
            if key.action is MenuAction.PLAY_ANNOUNCEMENT and key.value:
                wanted.setdefault(key.value, f"{where}.keyConfigurations[{j}].value")
    found = {a.id: a for a in session.scalars(select(Announcement).where(
        Announcement.id.in_(list(wanted)), Announcement.org_id == location.org_id))} if wanted else {}
    for ident, where in wanted.items():
        row = found.get(ident)
        if row is None:
            raise RuleError(422, where, "announcement-not-found", f"no announcement with id {ident!r} in this organisation")
        if row.location_id not in (None, location.id):
            raise RuleError(422, where, "announcement-other-location",
                            f"announcement {row.name!r} belongs to another location")

    return ResolvedAttendant(
        phone,
        _schedule(session, location, spec.business_schedule, ScheduleType.BUSINESS_HOURS, "businessSchedule"),
        _schedule(session, location, spec.holiday_schedule, ScheduleType.HOLIDAYS, "holidaySchedule"),
        set(wanted),
    )


def store_attendant(session: Session, row: AutoAttendant, spec: AttendantSettings, resolved: ResolvedAttendant) -> bool:
    """Write a checked spec into ``row`` (new or existing) and its announcement links.

    Returns whether anything changed; an unchanged attendant is not written at all, so that
    re-applying an organisation file leaves the store (and its generation) alone.
    """
    values = {
        "name": spec.name, "enabled": spec.enabled, "language": spec.language,
        "phone_number": resolved.phone_number, "extension": spec.extension,
        "business_schedule_id": resolved.business_schedule_id, "holiday_schedule_id": resolved.holiday_schedule_id,
        "extension_dialing": spec.extension_dialing, "name_dialing": spec.name_dialing,
        "config": spec.model_dump(by_alias=True, mode="json", include=CONFIG_FIELDS, exclude_none=True),
    }
    links = AutoAttendantAnnouncement
    current = set(session.scalars(select(links.announcement_id).where(links.attendant_id == row.id))) if row.id else set()
    if row.id is not None and current == resolved.announcement_ids and all(
            getattr(row, name) == value for name, value in values.items()):
        return False
    for name, value in values.items():
        setattr(row, name, value)
    if row.id is None:
        session.add(row)
    session.flush()
    gone = current - resolved.announcement_ids
    if gone:
        session.execute(delete(links).where(links.attendant_id == row.id, links.announcement_id.in_(gone)))
    session.add_all(links(attendant_id=row.id, announcement_id=a) for a in sorted(resolved.announcement_ids - current))
    session.flush()
    return True


def schedule_document(row: Schedule) -> dict[str, Any]:
    """The schedule as the API shows it (and as change events carry it)."""
    spec = ScheduleSpec.model_validate({"name": row.name, "type": row.type, "hours": row.hours,
                                        "holidays": row.holidays})
    return {"id": row.id, "locationId": row.location_id, **spec.model_dump(by_alias=True, mode="json")}


def attendant_document(session: Session, row: AutoAttendant) -> dict[str, Any]:
    """The attendant as the API shows it (and as change events carry it)."""
    names = dict(session.execute(select(Schedule.id, Schedule.name).where(
        Schedule.id.in_([i for i in (row.business_schedule_id, row.holiday_schedule_id) if i])
    )).all()) if (row.business_schedule_id or row.holiday_schedule_id) else {}
    settings = AttendantSettings.model_validate({
        "name": row.name, "enabled": row.enabled, "phoneNumber": row.phone_number, "extension": row.extension,
        "language": row.language, "businessSchedule": names.get(row.business_schedule_id),
        "holidaySchedule": names.get(row.holiday_schedule_id), "extensionDialing": row.extension_dialing,
        "nameDialing": row.name_dialing, **row.config,
    })
    return {"id": row.id, "locationId": row.location_id,
            **settings.model_dump(by_alias=True, mode="json", exclude_none=True),
            "businessScheduleId": row.business_schedule_id, "holidayScheduleId": row.holiday_schedule_id}


def attendant_holding(session: Session, location_id: str, *, extension: str | None = None,
                      phone_number: str | None = None) -> str | None:
    """The name of the auto attendant that has this extension (in the location) or number, if any.

    For the people API and the org file's people: an extension or number an attendant answers
    is not free for a person.
    """
    query = select(AutoAttendant.name)
    if extension is not None:
        return session.scalar(query.where(AutoAttendant.location_id == location_id, AutoAttendant.extension == extension))
    if phone_number is not None:
        return session.scalar(query.where(AutoAttendant.phone_number == phone_number))
    return None


def schedule_users(session: Session, schedule_id: str) -> list[str]:
    """Names of the auto attendants that use a schedule."""
    return list(session.scalars(select(AutoAttendant.name).where(
        (AutoAttendant.business_schedule_id == schedule_id) | (AutoAttendant.holiday_schedule_id == schedule_id)
    ).order_by(AutoAttendant.name)))


def announcement_users(session: Session, announcement_id: str) -> list[str]:
    """Names of the auto attendants whose menus play an announcement."""
    return list(session.scalars(
        select(AutoAttendant.name).join(AutoAttendantAnnouncement, AutoAttendantAnnouncement.attendant_id == AutoAttendant.id)
        .where(AutoAttendantAnnouncement.announcement_id == announcement_id).order_by(AutoAttendant.name)
    ))
