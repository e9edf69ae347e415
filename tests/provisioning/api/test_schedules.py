"""/v1/schedules against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from ivr.schedule import MenuKind, schedule_from_documents
from tests.provisioning.api.ivr_world import IvrWorld, business_hours, holiday_schedule, ivr_world  # noqa: F401


async def test_create_get_list_replace_delete(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    created = await w.call("POST", "/v1/schedules", json=business_hours(location_id=austin), expect=201)
    assert created["type"] == "BUSINESS_HOURS" and created["locationId"] == austin
    assert created["hours"]["monday"] == [{"startTime": "09:00", "endTime": "12:00"},
                                          {"startTime": "13:00", "endTime": "17:00"}]
    assert created["hours"]["sunday"] == [] and created["usedBy"] == []
    holidays = await w.call("POST", "/v1/schedules", json=holiday_schedule(location_id=austin), expect=201)
    assert {k: v for k, v in holidays["holidays"][0].items() if v is not None} == {"country": "US", "subdivision": "CA"}

    got = await w.call("GET", f"/v1/schedules/{created['id']}", expect=200)
    assert got == created
    listed = await w.call("GET", f"/v1/schedules?locationId={austin}&type=HOLIDAYS", expect=200)
    assert [s["name"] for s in listed["items"]] == ["Holidays"] and listed["total"] == 1
    assert (await w.call("GET", "/v1/schedules", expect=200))["total"] == 2
    assert (await w.call("GET", "/v1/schedules", org=w.other, expect=200))["total"] == 0

    replaced = business_hours(location_id=austin, saturday=[("10:00", "14:00")])
    response = await w.client.get(f"/v1/schedules/{created['id']}",
                                  headers={"Authorization": f"Bearer {w.org.tokens['OWNER']}"})
    etag = response.headers["ETag"]
    after = await w.call("PUT", f"/v1/schedules/{created['id']}", json=replaced, headers={"If-Match": etag}, expect=200)
    assert after["hours"]["saturday"] == [{"startTime": "10:00", "endTime": "14:00"}] and after["hours"]["monday"] == []
    await w.problem("PUT", f"/v1/schedules/{created['id']}", 412, "etag-mismatch", json=replaced,
                    headers={"If-Match": etag})

    await w.call("DELETE", f"/v1/schedules/{created['id']}", expect=204)
    await w.problem("GET", f"/v1/schedules/{created['id']}", 404, "not-found")
    assert [(e.action, e.entity_id) for e in w.entity_events("schedule")] == [
        ("created", created["id"]), ("created", holidays["id"]), ("updated", created["id"]),
        ("deleted", created["id"])]


async def test_stored_documents_run_in_the_ivr_schedule(ivr_world: IvrWorld) -> None:
    """What the API stores is exactly what ivr.schedule evaluates at call time."""
    w = ivr_world
    austin = w.org.locations["Austin"]
    hours = await w.call("POST", "/v1/schedules", json=business_hours(location_id=austin), expect=201)
    holidays = await w.call("POST", "/v1/schedules", json=holiday_schedule(location_id=austin), expect=201)
    schedule = schedule_from_documents("America/Chicago", hours["hours"], holidays["holidays"])
    assert schedule.which_menu(datetime(2025, 3, 4, 15, 0, tzinfo=UTC)) is MenuKind.BUSINESS_HOURS  # Tue 09:00
    assert schedule.which_menu(datetime(2025, 3, 4, 18, 30, tzinfo=UTC)) is MenuKind.AFTER_HOURS  # lunch
    assert schedule.which_menu(datetime(2025, 7, 4, 15, 0, tzinfo=UTC)) is MenuKind.AFTER_HOURS  # US holiday
    assert schedule.which_menu(datetime(2025, 3, 31, 15, 0, tzinfo=UTC)) is MenuKind.AFTER_HOURS  # California's
    assert schedule.which_menu(datetime(2025, 12, 24, 16, 0, tzinfo=UTC)) is MenuKind.BUSINESS_HOURS  # 10:00
    assert schedule.which_menu(datetime(2025, 12, 24, 19, 0, tzinfo=UTC)) is MenuKind.AFTER_HOURS  # 13:00


BAD_HOURS = [
    ({"hours": {"monday": [{"startTime": "09:00", "endTime": "12:00"}, {"startTime": "11:00", "endTime": "13:00"}]}},
     "hours.monday", "value_error"),
    ({"hours": {"monday": [{"startTime": "25:00", "endTime": "26:00"}]}}, "hours.monday.0.startTime",
     "string_pattern_mismatch"),
    ({"hours": {"monday": [{"startTime": "17:00", "endTime": "09:00"}]}}, "hours.monday.0", "value_error"),
    ({"hours": {"funday": []}}, "hours.funday", "extra_forbidden"),
    ({"holidays": [{"name": "x", "date": "2025-01-01"}]}, "", "value_error"),
    ({"name": ""}, "name", "string_too_short"),
    ({"type": "WEEKLY"}, "type", "enum"),
]


async def test_bad_business_hours_name_the_field(ivr_world: IvrWorld) -> None:
    for change, field, rule in BAD_HOURS:
        body = business_hours(location_id=ivr_world.org.locations["Austin"]) | change
        problem = await ivr_world.problem("POST", "/v1/schedules", 422, rule, json=body)
        assert problem["errors"][0]["field"] == field


BAD_HOLIDAYS = [
    ({"name": "x", "date": "2025-01-01", "country": "US"}, "give exactly one of"),
    ({"name": "x", "date": "2025-13-01"}, "date"),
    ({"name": "x", "date": "2025-01-05", "endDate": "2025-01-01"}, "is before date"),
    ({"country": "ZZ"}, "no public holiday calendar for country 'ZZ'"),
    ({"country": "US", "subdivision": "XX"}, "US has no subdivision 'XX'"),
    ({"country": "US", "startTime": "10:00", "endTime": "12:00"}, "public holidays are whole days"),
    ({"name": "x", "month": 2, "day": 30}, "month 2 has no day 30"),
    ({"name": "x", "month": 11, "weekday": "thursday"}, "needs week"),
    ({"name": "x", "month": 11, "weekday": "thursday", "week": 5}, "should be 1, 2, 3, 4 or -1"),
    ({"name": "x", "date": "2025-01-01", "startTime": "10:00"}, "give both startTime and endTime"),
    ({"date": "2025-01-01"}, "needs a name"),
]


async def test_bad_holidays_are_refused_with_the_reason(ivr_world: IvrWorld) -> None:
    for holiday, message in BAD_HOLIDAYS:
        body = holiday_schedule(location_id=ivr_world.org.locations["Austin"], holidays=[holiday])
        response = await ivr_world.client.post("/v1/schedules", json=body,
                                               headers={"Authorization": f"Bearer {ivr_world.org.tokens['OWNER']}"})
        problem = await response.json()
        assert response.status == 422 and response.content_type == "application/problem+json"
        assert problem["field"].startswith("holidays.0")
        assert message.lower() in problem["detail"].lower(), problem
    assert (await ivr_world.call("GET", "/v1/schedules", expect=200))["total"] == 0


async def test_rules_between_schedules_locations_and_roles(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    await w.call("POST", "/v1/schedules", json=business_hours(location_id=austin), expect=201)
    await w.problem("POST", "/v1/schedules", 409, "schedule-name-taken", "name", json=business_hours(location_id=austin))
    # The same name in another location is fine.
    await w.call("POST", "/v1/schedules", json=business_hours(location_id=w.org.locations["Boston"]), expect=201)
    await w.problem("POST", "/v1/schedules", 404, "location-not-found", "locationId",
                    json=business_hours(location_id=w.other.locations["Elsewhere"]))
    await w.problem("POST", "/v1/schedules", 403, "role-not-allowed", json=business_hours("x", austin), role="READ_ONLY")
    await w.problem("POST", "/v1/schedules", 422, "value_error",
                    json={**holiday_schedule(location_id=austin), "hours": {}})
    other = await w.call("POST", "/v1/schedules", json=holiday_schedule(location_id=w.other.locations["Elsewhere"]),
                         org=w.other, expect=201)
    await w.problem("GET", f"/v1/schedules/{other['id']}", 404, "not-found")
    await w.problem("DELETE", f"/v1/schedules/{other['id']}", 404, "not-found")


async def test_a_schedule_in_use_cannot_be_deleted_or_change_type(ivr_world: IvrWorld) -> None:
    w = ivr_world
    austin = w.org.locations["Austin"]
    hours = await w.call("POST", "/v1/schedules", json=business_hours(location_id=austin), expect=201)
    await w.call("POST", "/v1/autoAttendants", expect=201, json={
        "name": "Main menu", "locationId": austin, "extension": "2000", "businessSchedule": "Office hours",
        "businessHoursMenu": {}, "afterHoursMenu": {}})
    assert (await w.call("GET", f"/v1/schedules/{hours['id']}", expect=200))["usedBy"] == ["Main menu"]
    problem = await w.problem("DELETE", f"/v1/schedules/{hours['id']}", 409, "schedule-in-use")
    assert problem["usedBy"] == ["Main menu"]
    await w.problem("PUT", f"/v1/schedules/{hours['id']}", 409, "schedule-in-use", "type",
                    json=holiday_schedule("Office hours", austin))
    await w.problem("PUT", f"/v1/schedules/{hours['id']}", 422, "location-immutable", "locationId",
                    json=business_hours(location_id=w.org.locations["Boston"]))
    # Renaming is fine: the attendant follows the schedule, not its old name.
    await w.call("PUT", f"/v1/schedules/{hours['id']}", json=business_hours("Opening hours", austin), expect=200)
    attendant = (await w.call("GET", "/v1/autoAttendants", expect=200))["items"][0]
    assert attendant["businessSchedule"] == "Opening hours" and attendant["businessScheduleId"] == hours["id"]
