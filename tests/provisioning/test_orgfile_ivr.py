"""The organisation file's schedules and autoAttendants (provisioning/orgfile_ivr.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr.attendant import build_attendant
from ivr.menu import DirectorySnapshot, Transfer
from provisioning.attendants import attendant_document, schedule_document
from provisioning.events import EventBus
from provisioning.orgfile import ApplySummary, OrgFileError, apply_org
from provisioning.service import Services
from provisioning.store import Location, Store
from provisioning.tables_ivr import AutoAttendant, Schedule

ORG = textwrap.dedent("""\
    organization:
      name: Initech
      country: US
      subscription: PAID
    locations:
      - name: Austin
        country: US
        timeZone: America/Chicago
        address: {address1: 1 Main St, city: Austin, state: TX, postalCode: "78701", country: US}
        pstn: {type: CALLING_PLAN}
        mainNumber: +1 512 555 0100
        numbers: [+1 512 555 0100, +1 512 555 0101, +1 512 555 0102]
    people:
      - email: peter@initech.example
        firstName: Peter
        lastName: Gibbons
        location: Austin
        extension: 1001
        phoneNumber: +1 512 555 0101
    schedules:
      - name: Office hours
        location: Austin
        type: BUSINESS_HOURS
        hours:
          monday: [{startTime: 09:00, endTime: 17:00}]
          tuesday: [{startTime: 09:00, endTime: 17:00}]
      - name: Holidays
        location: Austin
        type: HOLIDAYS
        holidays:
          - {country: US}
          - {name: Founders day, month: 6, day: 14}
    autoAttendants:
      - name: Main menu
        location: Austin
        phoneNumber: +1 512 555 0100
        extension: 2000
        businessSchedule: Office hours
        holidaySchedule: Holidays
        businessHoursMenu:
          keyConfigurations:
            - {key: 1, action: TRANSFER_WITHOUT_PROMPT, value: 1001, description: sales}
            - {key: "#", action: NAME_DIALING}
        afterHoursMenu:
          greeting: TEXT
          greetingText: We are closed.
          keyConfigurations:
            - {key: 9, action: EXIT}
""")


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(content)
    return path


def line_of(content: str, needle: str) -> int:
    return next(i for i, line in enumerate(content.splitlines(), 1) if needle in line)


def test_schedules_and_attendants_apply_idempotently(store, tmp_path):
    bus = EventBus()
    events = []
    bus.subscribe(events.extend)
    services = Services(store, bus)
    first = apply_org(store, write(tmp_path, ORG), services)
    # organisation, location, 3 numbers, person: 6; then 2 schedules and 1 attendant; plus
    # the location updated to send its main number to the attendant.
    assert first == ApplySummary(created=9, updated=1, unchanged=0)
    with store.session() as s:
        austin = s.scalars(select(Location)).one()
        aa = s.scalars(select(AutoAttendant)).one()
        assert (austin.main_destination_type, austin.main_destination_id) == ("AUTO_ATTENDANT", aa.id)
        assert (aa.phone_number, aa.extension) == ("+15125550100", "2000")
        document = attendant_document(s, aa)
        schedules = {row.id: schedule_document(row) for row in s.scalars(select(Schedule))}
    assert document["businessHoursMenu"]["keyConfigurations"][0]["value"] == "1001"  # YAML 1001 stays text
    assert [e.entity for e in events][-4:] == ["schedule", "schedule", "autoAttendant", "location"]
    assert events[-2].data == document

    events.clear()
    assert apply_org(store, write(tmp_path, ORG), services) == ApplySummary(created=0, updated=0, unchanged=9)
    assert events == []

    changed = ORG.replace("greetingText: We are closed.", "greetingText: We are closed today.")
    assert apply_org(store, write(tmp_path, changed), services) == ApplySummary(created=0, updated=1, unchanged=8)
    assert [e.entity for e in events] == ["autoAttendant"]

    # What the file stored runs in the menu engine: Monday 10:00 in Austin, key 1 goes to sales.
    from datetime import UTC, datetime

    attendant = build_attendant(document, "America/Chicago", schedules)
    session = attendant.session(DirectorySnapshot(["1001"], [], [], []), datetime(2025, 3, 3, 16, 0, tzinfo=UTC))
    session.start(0.0)
    session.digit("1", 1.0)  # 1 is the sales key and the start of extension 1001: wait
    assert session.timer(4.0) == [Transfer("EXTENSION", "1001", False)]


@pytest.mark.parametrize(("change", "needle", "key", "reason"), [
    (("location: Austin\n    type: BUSINESS", "location: Boston\n    type: BUSINESS"), "location: Boston",
     "schedules[0].location", "no location named 'Boston'"),
    (("name: Holidays", "name: Office hours"), "name: Office hours\n    location: Austin\n    type: HOLIDAYS",
     "schedules[1].name", "already has a schedule"),
    (("{startTime: 09:00, endTime: 17:00}]\n      tuesday", "{startTime: 17:00, endTime: 09:00}]\n      tuesday"),
     "monday:", "schedules[0].hours.monday[0]", "must be before endTime"),
    (("{country: US}", "{country: ZZ}"), "{country: ZZ}", "schedules[1].holidays[0]", "no public holiday calendar"),
    (("phoneNumber: +1 512 555 0100\n    extension: 2000", "phoneNumber: +1 512 555 0101\n    extension: 2000"),
     "phoneNumber: +1 512 555 0101\n    extension: 2000", "autoAttendants[0].phoneNumber", "already given"),
    (("phoneNumber: +1 512 555 0100\n    extension: 2000", "phoneNumber: +1 617 555 0100\n    extension: 2000"),
     "phoneNumber: +1 617", "autoAttendants[0].phoneNumber", "is not one of Austin's numbers"),
    (("extension: 2000", "extension: 1001"), "extension: 1001\n    businessSchedule",
     "autoAttendants[0].extension", "already used"),
    (("businessSchedule: Office hours", "businessSchedule: Holidays"), "businessSchedule: Holidays",
     "autoAttendants[0].businessSchedule", "is HOLIDAYS, not BUSINESS_HOURS"),
    (("action: NAME_DIALING}", "action: GO_TO_MENU, value: nowhere}"), "GO_TO_MENU",
     "autoAttendants[0].businessHoursMenu.keyConfigurations[1].value", "names submenu 'nowhere'"),
    (("      greetingText: We are closed.\n", ""), "afterHoursMenu:", "autoAttendants[0].afterHoursMenu.greetingText",
     "a TEXT greeting needs greetingText"),
    (("- {key: 9, action: EXIT}", "- {key: 9, action: EXIT, value: 5}"), "key: 9",
     "autoAttendants[0].afterHoursMenu.keyConfigurations[0].value", "EXIT takes no value"),
])
def test_file_errors_name_the_line_and_key(store, tmp_path, change, needle, key, reason):
    content = ORG.replace(*change)
    assert content != ORG
    with pytest.raises(OrgFileError) as caught:
        apply_org(store, write(tmp_path, content))
    error = caught.value
    assert error.key == key and reason in error.reason, str(error)
    assert error.line == content[:content.index(needle)].count("\n") + 1, str(error)
    with store.session() as s:
        assert s.scalars(select(AutoAttendant)).all() == [] and s.scalars(select(Schedule)).all() == []


def test_store_conflicts_found_while_applying(store, tmp_path):
    apply_org(store, write(tmp_path, ORG))
    # A schedule the store does not have, named by the attendant, is found at apply time.
    content = ORG.replace("holidaySchedule: Holidays", "holidaySchedule: Vacations")
    with pytest.raises(OrgFileError) as caught:
        apply_org(store, write(tmp_path, content))
    assert caught.value.key == "autoAttendants[0].holidaySchedule" and "no schedule named 'Vacations'" in caught.value.reason
    assert caught.value.line == line_of(content, "holidaySchedule: Vacations")
    # An announcement that does not exist.
    content = ORG.replace("greeting: TEXT\n      greetingText: We are closed.",
                          "greeting: CUSTOM\n      announcementId: 8d3c9a52-0000-0000-0000-000000000000")
    with pytest.raises(OrgFileError, match="no announcement with id"):
        apply_org(store, write(tmp_path, content))
    # A schedule's type cannot be flipped by the file.
    content = ORG.replace("name: Holidays\n    location: Austin\n    type: HOLIDAYS\n    holidays:\n      - {country: US}\n"
                          "      - {name: Founders day, month: 6, day: 14}",
                          "name: Holidays\n    location: Austin\n    type: BUSINESS_HOURS\n    hours: {}")
    content = content.replace("    holidaySchedule: Holidays\n", "")
    with pytest.raises(OrgFileError, match="a file cannot change a schedule's type"):
        apply_org(store, write(tmp_path, content))
    with store.session() as s:  # nothing of the failed applies was kept
        assert s.scalars(select(AutoAttendant)).one().holiday_schedule_id is not None
