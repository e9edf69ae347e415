"""/v1/schedules: business hours and holiday schedules of a location, for its auto attendants.

Also home of the two helpers the IVR resource modules share: finding a location of the
caller's organisation, and turning a ``RuleError`` into the API's problem answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api.framework import ApiError, ApiRequest, Page, PageQuery, WRITE_ROLES, route
from provisioning.attendants import RuleError, ScheduleSpec, schedule_document, schedule_users
from provisioning.store import Location
from provisioning.tables_ivr import Schedule, ScheduleType

TAGS = ["schedules"]


def location_of(session: Session, org_id: str, location_id: str, field: str = "locationId") -> Location:
    row = session.get(Location, location_id)
    if row is None or row.org_id != org_id:
        raise ApiError(404, "Location not found", f"no location with id {location_id!r} in this organisation",
                       field=field, rule="location-not-found")
    return row


def api_error(error: RuleError) -> ApiError:
    titles = {409: "Conflict", 422: "Invalid request", 404: "Not found"}
    return ApiError(error.status, titles.get(error.status, "Invalid request"), error.message,
                    field=error.field, rule=error.rule)


class ScheduleIn(ScheduleSpec):
    location_id: str = Field(min_length=1, max_length=36)


class ScheduleOut(ScheduleIn):
    id: str
    used_by: list[str] = Field(default_factory=list, description="auto attendants using this schedule")


class ScheduleQuery(PageQuery):
    location_id: str | None = Field(default=None, max_length=36)
    type: ScheduleType | None = None


def _view(session: Session, row: Schedule) -> ScheduleOut:
    return ScheduleOut.model_validate({**schedule_document(row), "usedBy": schedule_users(session, row.id)})


def _snapshot(view: ScheduleOut) -> dict[str, Any]:
    return view.model_dump(by_alias=True, mode="json", exclude={"used_by"})


def _owned(session: Session, org_id: str, schedule_id: str) -> Schedule:
    row = session.get(Schedule, schedule_id)
    if row is None or row.org_id != org_id:
        raise ApiError(404, "Schedule not found", f"no schedule with id {schedule_id!r} in this organisation",
                       rule="not-found")
    return row


def _check_name(session: Session, location: Location, name: str, current_id: str | None = None) -> None:
    query = select(Schedule.id).where(Schedule.location_id == location.id, Schedule.name == name)
    if current_id:
        query = query.where(Schedule.id != current_id)
    if session.scalar(query) is not None:
        raise ApiError(409, "Conflict", f"{location.name} already has a schedule named {name!r}",
                       field="name", rule="schedule-name-taken")


@route("POST", "/v1/schedules", summary="Create a schedule", tags=TAGS, body=ScheduleIn, response=ScheduleOut,
       status=201, roles=WRITE_ROLES)
async def create_schedule(req: ApiRequest) -> ScheduleOut:
    body: ScheduleIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        location = location_of(uow.session, req.org_id, body.location_id)
        _check_name(uow.session, location, body.name)
        hours, holidays = body.documents()
        row = Schedule(org_id=req.org_id, location_id=location.id, name=body.name, type=body.type,
                       hours=hours, holidays=holidays)
        uow.session.add(row)
        uow.session.flush()
        view = _view(uow.session, row)
        uow.change("schedule", row.id, "created", None, _snapshot(view))
    return view


@route("GET", "/v1/schedules", summary="List schedules", tags=TAGS, query=ScheduleQuery, response=Page[ScheduleOut])
async def list_schedules(req: ApiRequest) -> Page[ScheduleOut]:
    params: ScheduleQuery = req.params
    query = select(Schedule).where(Schedule.org_id == req.org_id)
    if params.location_id:
        query = query.where(Schedule.location_id == params.location_id)
    if params.type:
        query = query.where(Schedule.type == params.type)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Schedule.name, Schedule.id).offset(params.start).limit(params.max))
        items = [_view(session, row) for row in rows]
    return Page[ScheduleOut](items=items, start=params.start, max=params.max, total=total)


@route("GET", "/v1/schedules/{scheduleId}", summary="Get a schedule", tags=TAGS, response=ScheduleOut)
async def get_schedule(req: ApiRequest) -> ScheduleOut:
    with req.ctx.read() as session:
        return _view(session, _owned(session, req.org_id, req.path["scheduleId"]))


@route("PUT", "/v1/schedules/{scheduleId}", summary="Replace a schedule", tags=TAGS, body=ScheduleIn,
       response=ScheduleOut, roles=WRITE_ROLES)
async def replace_schedule(req: ApiRequest) -> ScheduleOut:
    body: ScheduleIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        row = _owned(uow.session, req.org_id, req.path["scheduleId"])
        before = _view(uow.session, row)
        req.check_if_match(before)
        if body.location_id != row.location_id:
            raise ApiError(422, "Invalid request", "a schedule stays in its location; create one in the other location",
                           field="locationId", rule="location-immutable")
        if body.type is not row.type and before.used_by:
            raise ApiError(409, "Schedule in use", f"the type cannot change while auto attendants use it: "
                           f"{', '.join(before.used_by)}", field="type", rule="schedule-in-use")
        location = location_of(uow.session, req.org_id, row.location_id)
        _check_name(uow.session, location, body.name, row.id)
        row.name, row.type = body.name, body.type
        row.hours, row.holidays = body.documents()
        uow.session.flush()
        view = _view(uow.session, row)
        uow.change("schedule", row.id, "updated", _snapshot(before), _snapshot(view))
    return view


@route("DELETE", "/v1/schedules/{scheduleId}", summary="Delete a schedule", tags=TAGS, status=204,
       roles=WRITE_ROLES, responses={409: "An auto attendant uses the schedule"})
async def delete_schedule(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        row = _owned(uow.session, req.org_id, req.path["scheduleId"])
        before = _view(uow.session, row)
        req.check_if_match(before)
        if before.used_by:
            raise ApiError(409, "Schedule in use", f"auto attendants use this schedule: {', '.join(before.used_by)}; "
                           "change them first", rule="schedule-in-use", extra={"usedBy": before.used_by})
        uow.session.delete(row)
        uow.change("schedule", row.id, "deleted", _snapshot(before), None)
