"""The organisation file's ``schedules`` and ``autoAttendants`` sections.

Same fields as the API (provisioning.attendants), with ``location`` naming a location of the
file instead of ``locationId``. Checked with the rest of the file before anything is written
(``check_ivr``), then applied in the file's unit of work after locations, people and numbers
(``apply_ivr``), matched by their natural key (location, name), created or updated, never
deleted. An attendant whose phoneNumber is its location's mainNumber becomes where the main
number goes, which is how a file says "the main number answers with the menu".

``orgfile`` hands its plan in; this module only reads ``plan.spec``, ``plan.locations``,
``plan.people`` and ``plan.error`` so it needs nothing else from orgfile (which imports it).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field
from sqlalchemy import select

from provisioning.attendants import (
    AttendantSettings,
    RuleError,
    ScheduleSpec,
    parse_e164,
    attendant_document,
    check_attendant,
    resolve_attendant,
    schedule_document,
    store_attendant,
)
from provisioning.audit import snapshot
from provisioning.service import UnitOfWork
from provisioning.store import Location, Organization
from provisioning.tables_ivr import AutoAttendant, Schedule

__all__ = ["AttendantEntry", "ScheduleEntry", "apply_ivr", "check_ivr"]

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class ScheduleEntry(ScheduleSpec):
    location: str = Field(min_length=1, max_length=200)


class AttendantEntry(AttendantSettings):
    location: str = Field(min_length=1, max_length=200)


def _loc(base: tuple, field: str) -> tuple:
    """'businessHoursMenu.keyConfigurations[1].value' -> base + ('businessHoursMenu', 'keyConfigurations', 1, 'value')."""
    return base + tuple(name if name else int(index) for name, index in _PATH_PART.findall(field))


def check_ivr(plan: Any) -> None:
    """What can be checked from the file alone; raises plan.error (file, line, key, reason)."""
    locations = {p.spec.name: p for p in plan.locations}
    schedules: dict[tuple[str, str], ScheduleEntry] = {}
    for i, entry in enumerate(plan.spec.schedules):
        loc = ("schedules", i)
        if entry.location not in locations:
            raise plan.error(loc + ("location",), f"no location named {entry.location!r} in this file")
        if (entry.location, entry.name) in schedules:
            raise plan.error(loc + ("name",), f"{entry.location} already has a schedule {entry.name!r} in this file")
        schedules[(entry.location, entry.name)] = entry

    person_extensions = {(p.spec.location, p.spec.extension) for p in plan.people if p.spec.extension}
    person_numbers = {p.phone_number for p in plan.people if p.phone_number}
    names: set[tuple[str, str]] = set()
    extensions: set[tuple[str, str]] = set()
    numbers: set[str] = set()
    for i, entry in enumerate(plan.spec.auto_attendants):
        loc = ("autoAttendants", i)
        home = locations.get(entry.location)
        if home is None:
            raise plan.error(loc + ("location",), f"no location named {entry.location!r} in this file")
        if (entry.location, entry.name) in names:
            raise plan.error(loc + ("name",), f"{entry.location} already has an auto attendant {entry.name!r} in this file")
        names.add((entry.location, entry.name))
        try:
            check_attendant(entry)
            number = parse_e164(entry.phone_number, home.spec.country) if entry.phone_number else None
        except RuleError as error:
            raise plan.error(_loc(loc, error.field), error.message) from None
        if number is not None:
            if number not in home.numbers:
                raise plan.error(loc + ("phoneNumber",), f"{number} is not one of {entry.location}'s numbers")
            if number in person_numbers or number in numbers:
                raise plan.error(loc + ("phoneNumber",), f"{number} is already given to someone else in this file")
            numbers.add(number)
        if entry.extension is not None:
            key = (entry.location, entry.extension)
            if key in person_extensions or key in extensions:
                raise plan.error(loc + ("extension",), f"extension {entry.extension} at {entry.location} is already "
                                 "used in this file")
            extensions.add(key)
        for field, name, kind in (("businessSchedule", entry.business_schedule, "BUSINESS_HOURS"),
                                  ("holidaySchedule", entry.holiday_schedule, "HOLIDAYS")):
            listed = schedules.get((entry.location, name)) if name else None
            if listed is not None and listed.type != kind:
                raise plan.error(loc + (field,), f"schedule {name!r} is {listed.type}, not {kind}")


def apply_ivr(uow: UnitOfWork, plan: Any, org: Organization, locations: dict[str, Location]) -> tuple[int, int, int]:
    """Create or update the file's schedules, then its attendants; (created, updated, unchanged)."""
    session = uow.session
    counts = [0, 0, 0]

    def count(created: bool, changed: bool) -> None:
        counts[0 if created else 1 if changed else 2] += 1

    for i, entry in enumerate(plan.spec.schedules):
        location = locations[entry.location]
        row = session.scalar(select(Schedule).where(Schedule.location_id == location.id, Schedule.name == entry.name))
        before = schedule_document(row) if row is not None else None
        if row is not None and row.type != entry.type:
            raise plan.error(("schedules", i, "type"), f"schedule {entry.name!r} at {entry.location} is {row.type}; "
                             "a file cannot change a schedule's type (delete it through the API first)")
        hours, holidays = entry.documents()
        if row is None:
            row = Schedule(org_id=org.id, location_id=location.id, name=entry.name, type=entry.type)
            session.add(row)
        row.hours, row.holidays = hours, holidays
        session.flush()
        after = schedule_document(row)
        count(before is None, before != after)
        if before != after:
            uow.change("schedule", row.id, "created" if before is None else "updated", before, after)

    for i, entry in enumerate(plan.spec.auto_attendants):
        loc = ("autoAttendants", i)
        location = locations[entry.location]
        row = session.scalar(select(AutoAttendant).where(AutoAttendant.location_id == location.id,
                                                         AutoAttendant.name == entry.name))
        before = attendant_document(session, row) if row is not None else None
        try:
            resolved = resolve_attendant(session, location, entry, current_id=row.id if row else None)
        except RuleError as error:
            raise plan.error(_loc(loc, error.field), error.message) from None
        if row is None:
            row = AutoAttendant(org_id=org.id, location_id=location.id)
        changed = store_attendant(session, row, entry, resolved)
        count(before is None, changed)
        if changed:
            uow.change("autoAttendant", row.id, "created" if before is None else "updated", before,
                       attendant_document(session, row))
        if resolved.phone_number is not None and resolved.phone_number == location.main_number and (
                location.main_destination_type, location.main_destination_id) != ("AUTO_ATTENDANT", row.id):
            located = snapshot(location)
            location.main_destination_type, location.main_destination_id = "AUTO_ATTENDANT", row.id
            counts[1] += 1
            uow.change("location", location.id, "updated", located, snapshot(location))
    return counts[0], counts[1], counts[2]
