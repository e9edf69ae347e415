"""/v1/autoAttendants against a real store, and the documents it keeps run in the menu engine."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ivr.attendant import build_attendant
from ivr.menu import DirectorySnapshot, Play, PromptKind, PromptRef, StopPlayback, TargetKind, Transfer
from ivr.menu import MenuAction as EngineAction
from provisioning.attendants import MenuAction, attendant_holding
from tests.provisioning.api.ivr_world import (  # noqa: F401
    AUSTIN_ALICE,
    AUSTIN_FREE,
    AUSTIN_MAIN,
    BOSTON_MAIN,
    IvrWorld,
    business_hours,
    holiday_schedule,
    ivr_world,
)


def attendant(location_id: str, **change: Any) -> dict[str, Any]:
    body = {
        "name": "Main menu",
        "locationId": location_id,
        "phoneNumber": "(512) 555-0100",  # national format: stored as E.164
        "extension": "2000",
        "businessSchedule": "Office hours",
        "holidaySchedule": "Holidays",
        "extensionDialing": "LOCATION",
        "nameDialing": "ENTERPRISE",
        "businessHoursMenu": {
            "greeting": "TEXT",
            "greetingText": "Welcome to Acme.",
            "keyConfigurations": [
                {"key": "1", "action": "TRANSFER_WITHOUT_PROMPT", "value": "1001", "description": "sales"},
                {"key": "2", "action": "GO_TO_MENU", "value": "support"},
                {"key": "0", "action": "TRANSFER_TO_OPERATOR", "value": "+15125550199"},
                {"key": "#", "action": "NAME_DIALING"},
            ],
        },
        "afterHoursMenu": {"extensionEnabled": False, "keyConfigurations": [{"key": "9", "action": "EXIT"}]},
        "submenus": [{"id": "support", "keyConfigurations": [
            {"key": "1", "action": "TRANSFER_WITH_PROMPT", "value": "+15125550150", "description": "hardware"},
            {"key": "*", "action": "RETURN_TO_PREVIOUS_MENU"}]}],
        "noInput": {"timeoutSeconds": 5, "repeats": 1, "finalAction": {"action": "TRANSFER_TO_OPERATOR",
                                                                        "value": "+15125550199"}},
        "transferFallback": {"action": "EXIT"},
    }
    return body | change


async def schedules(w: IvrWorld, location: str = "Austin") -> dict[str, dict]:
    loc = w.org.locations[location]
    hours = await w.call("POST", "/v1/schedules", json=business_hours(location_id=loc), expect=201)
    holidays = await w.call("POST", "/v1/schedules", json=holiday_schedule(location_id=loc), expect=201)
    return {hours["id"]: hours, holidays["id"]: holidays}


def test_menu_actions_are_the_engines() -> None:
    assert {a.value for a in MenuAction} == {a.value for a in EngineAction}


async def test_create_get_list_replace_delete(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    await schedules(w)
    created = await w.call("POST", "/v1/autoAttendants", json=attendant(austin), expect=201)
    assert created["phoneNumber"] == AUSTIN_MAIN and created["extension"] == "2000"
    assert created["businessSchedule"] == "Office hours" and created["businessScheduleId"]
    assert created["noInput"]["timeoutSeconds"] == 5 and created["invalidInput"]["limit"] == 3  # default kept
    assert created["language"] == "en" and created["enabled"] is True
    assert created["businessHoursMenu"]["keyConfigurations"][0] == {
        "key": "1", "action": "TRANSFER_WITHOUT_PROMPT", "value": "1001", "description": "sales"}
    assert await w.call("GET", f"/v1/autoAttendants/{created['id']}", expect=200) == created
    listed = await w.call("GET", f"/v1/autoAttendants?locationId={austin}", expect=200)
    assert [a["id"] for a in listed["items"]] == [created["id"]]
    assert (await w.call("GET", "/v1/autoAttendants?name=Nope", expect=200))["total"] == 0
    assert (await w.call("GET", "/v1/autoAttendants", org=w.other, expect=200))["total"] == 0

    replaced = attendant(austin, phoneNumber=None, extension="2001", holidaySchedule=None, enabled=False)
    after = await w.call("PUT", f"/v1/autoAttendants/{created['id']}", json=replaced, expect=200)
    assert after["phoneNumber"] is None and after["extension"] == "2001" and after["holidaySchedule"] is None
    assert after["enabled"] is False
    # The number it let go of can be taken by another attendant now.
    await w.call("POST", "/v1/autoAttendants", json=attendant(austin, name="Second", extension="2002"), expect=201)

    await w.call("DELETE", f"/v1/autoAttendants/{created['id']}", expect=204)
    await w.problem("GET", f"/v1/autoAttendants/{created['id']}", 404, "not-found")
    events = w.entity_events("autoAttendant")
    assert [e.action for e in events] == ["created", "updated", "created", "deleted"]
    assert events[0].data == created  # subscribers get the attendant as the API shows it


async def test_the_stored_attendant_runs_in_the_menu_engine(ivr_world: IvrWorld) -> None:
    w = ivr_world
    docs = await schedules(w)
    created = await w.call("POST", "/v1/autoAttendants", json=attendant(w.org.locations["Austin"]), expect=201)
    aa = build_attendant(created, "America/Chicago", docs)
    directory = DirectorySnapshot(["1001"], ["1001", "2001"], [], [])
    # Tuesday 4 March 2025, 10:00 in Austin: business hours, so the TEXT greeting plays.
    session = aa.session(directory, datetime(2025, 3, 4, 16, 0, tzinfo=UTC))
    # A TEXT greeting is the whole greeting: nothing is added to what the administrator wrote.
    assert session.start(0.0) == [Play((PromptRef(PromptKind.TEXT, "Welcome to Acme."),), True)]
    support = session.digit("2", 1.0)  # no extension starts with 2: the submenu at once
    assert session.menu_id == "support"
    assert support == [StopPlayback(), Play((PromptRef.prompt("for"), PromptRef(PromptKind.TEXT, "hardware"),
                                             PromptRef.prompt("press"), PromptRef.prompt("digit_1"),
                                             PromptRef.prompt("extension_any_time")), True)]
    session.prompt_finished(5.0)
    assert session.timer(10.0) == support[1:]  # the document's 5 s no-input timeout, one repeat
    session.prompt_finished(12.0)
    assert session.timer(17.0) == [Transfer(TargetKind.OPERATOR, "+15125550199", False)]
    # Independence Day: the after-hours menu, where 9 is EXIT.
    night = aa.session(directory, datetime(2025, 7, 4, 16, 0, tzinfo=UTC))
    assert night.start(0.0)[0].prompts[0].value == "greeting_after_hours"


BAD_ATTENDANTS = [
    ({"phoneNumber": BOSTON_MAIN}, 422, "number-not-in-location", "phoneNumber"),
    ({"phoneNumber": "+15125559999"}, 422, "number-not-in-location", "phoneNumber"),
    ({"phoneNumber": AUSTIN_ALICE}, 409, "number-in-use", "phoneNumber"),
    ({"phoneNumber": "not a number"}, 422, "phone-number-invalid", "phoneNumber"),
    ({"extension": "1001"}, 409, "extension-in-use", "extension"),
    ({"extension": "12a"}, 422, "string_pattern_mismatch", "extension"),
    ({"phoneNumber": None, "extension": None}, 422, "attendant-unreachable", "phoneNumber"),
    ({"businessSchedule": "Nope"}, 422, "schedule-not-found", "businessSchedule"),
    ({"businessSchedule": "Holidays"}, 422, "schedule-wrong-type", "businessSchedule"),
    ({"holidaySchedule": "Office hours"}, 422, "schedule-wrong-type", "holidaySchedule"),
    ({"submenus": []}, 422, "submenu-not-found", "businessHoursMenu.keyConfigurations[1].value"),
    ({"submenus": [{"id": "support"}, {"id": "support"}]}, 422, "submenu-id-unique", "submenus[1].id"),
    ({"transferFallback": {"action": "NAME_DIALING"}}, 422, "action-not-allowed", "transferFallback.action"),
    ({"noInput": {"finalAction": {"action": "REPEAT_MENU"}}}, 422, "action-not-allowed", "noInput.finalAction.action"),
    ({"noInput": {"timeoutSeconds": 61}}, 422, "less_than_equal", "noInput.timeoutSeconds"),
    ({"noInput": {"repeats": 4}}, 422, "less_than_equal", "noInput.repeats"),
    ({"noInput": {"timeoutSeconds": 0}}, 422, "greater_than_equal", "noInput.timeoutSeconds"),
    ({"extensionDialing": "GLOBAL"}, 422, "enum", "extensionDialing"),
    ({"afterHoursMenu": {"keyConfigurations": [{"key": "A", "action": "EXIT"}]}}, 422, "string_pattern_mismatch",
     "afterHoursMenu.keyConfigurations.0.key"),
    ({"afterHoursMenu": {"keyConfigurations": [{"key": "1", "action": "TRANSFER_WITH_PROMPT"}]}}, 422, "value_error",
     "afterHoursMenu.keyConfigurations.0.value"),
    ({"afterHoursMenu": {"keyConfigurations": [{"key": "1", "action": "TRANSFER_WITH_PROMPT", "value": "sales"}]}},
     422, "value_error", "afterHoursMenu.keyConfigurations.0.value"),
    ({"afterHoursMenu": {"keyConfigurations": [{"key": "1", "action": "EXIT"}, {"key": "1", "action": "EXIT"}]}},
     422, "value_error", "afterHoursMenu.keyConfigurations"),
    ({"afterHoursMenu": {"greeting": "CUSTOM"}}, 422, "greeting-incomplete", "afterHoursMenu.announcementId"),
    ({"afterHoursMenu": {"greeting": "TEXT"}}, 422, "greeting-incomplete", "afterHoursMenu.greetingText"),
    ({"afterHoursMenu": {"greetingText": "Hi"}}, 422, "greeting-incomplete", "afterHoursMenu.greetingText"),
    ({"afterHoursMenu": {"greeting": "CUSTOM", "announcementId": "nope"}}, 422, "announcement-not-found",
     "afterHoursMenu.announcementId"),
    ({"locationId": "nope"}, 404, "location-not-found", "locationId"),
    ({"surprise": True}, 422, "extra_forbidden", "surprise"),
]


async def test_bad_attendants_are_refused_naming_field_and_rule(ivr_world: IvrWorld) -> None:
    w = ivr_world
    await schedules(w)
    for change, status, rule, field in BAD_ATTENDANTS:
        await w.problem("POST", "/v1/autoAttendants", status, rule, field,
                        json=attendant(w.org.locations["Austin"], **change))
    assert w.entity_events("autoAttendant") == []  # nothing half-stored, nothing announced
    assert (await w.call("GET", "/v1/autoAttendants", expect=200))["total"] == 0


async def test_uniqueness_roles_and_organisations(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    await schedules(w)
    first = await w.call("POST", "/v1/autoAttendants", json=attendant(austin), expect=201)
    with w.store.session() as s:  # what the people side asks before giving out an extension or number
        assert attendant_holding(s, austin, extension="2000") == "Main menu"
        assert attendant_holding(s, austin, phone_number=AUSTIN_MAIN) == "Main menu"
        assert attendant_holding(s, w.org.locations["Boston"], extension="2000") is None
        assert attendant_holding(s, austin, phone_number=AUSTIN_FREE) is None
    await w.problem("POST", "/v1/autoAttendants", 409, "attendant-name-taken", "name",
                    json=attendant(austin, phoneNumber=AUSTIN_FREE, extension="2009"))
    await w.problem("POST", "/v1/autoAttendants", 409, "number-in-use", "phoneNumber",
                    json=attendant(austin, name="Other", extension="2009"))
    await w.problem("POST", "/v1/autoAttendants", 409, "extension-in-use", "extension",
                    json=attendant(austin, name="Other", phoneNumber=AUSTIN_FREE))
    await w.problem("POST", "/v1/autoAttendants", 403, "role-not-allowed", json=attendant(austin, name="X"),
                    role="READ_ONLY")
    await w.problem("GET", f"/v1/autoAttendants/{first['id']}", 404, "not-found", org=w.other)
    await w.problem("PUT", f"/v1/autoAttendants/{first['id']}", 422, "location-immutable", "locationId",
                    json=attendant(w.org.locations["Boston"]))
    # Replacing an attendant with its own number and extension is not a conflict with itself.
    await w.call("PUT", f"/v1/autoAttendants/{first['id']}", json=attendant(austin, language="es"), expect=200)
    # The same extension in another location is another extension.
    await w.call("POST", "/v1/autoAttendants", expect=201, json=attendant(
        w.org.locations["Boston"], phoneNumber=None, businessSchedule=None, holidaySchedule=None))


async def test_the_main_number_destination_cannot_be_deleted(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    await schedules(w)
    created = await w.call("POST", "/v1/autoAttendants", json=attendant(austin), expect=201)
    await w.call("PUT", f"/v1/locations/{austin}/mainNumber", expect=200, json={
        "phoneNumber": AUSTIN_MAIN, "destination": {"type": "AUTO_ATTENDANT", "id": created["id"]}})
    await w.problem("DELETE", f"/v1/autoAttendants/{created['id']}", 409, "attendant-is-main-destination")
    assert (await w.call("GET", f"/v1/autoAttendants/{created['id']}", expect=200))["id"] == created["id"]
