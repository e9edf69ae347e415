"""/v1/autoAttendants: phone menus answering a location's number or extension (after Webex Calling)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api.framework import ApiError, ApiRequest, Page, PageQuery, WRITE_ROLES, route
from provisioning.api.schedules import api_error, location_of
from provisioning.attendants import AttendantSettings, RuleError, attendant_document, resolve_attendant, store_attendant
from provisioning.store import Location
from provisioning.tables_ivr import AutoAttendant

TAGS = ["autoAttendants"]


class AutoAttendantIn(AttendantSettings):
    location_id: str = Field(min_length=1, max_length=36)


class AutoAttendantOut(AutoAttendantIn):
    id: str
    business_schedule_id: str | None = None
    holiday_schedule_id: str | None = None


class AutoAttendantQuery(PageQuery):
    location_id: str | None = Field(default=None, max_length=36)
    name: str | None = Field(default=None, max_length=100, description="exact name")


def _view(session: Session, row: AutoAttendant) -> AutoAttendantOut:
    return AutoAttendantOut.model_validate(attendant_document(session, row))


def _snapshot(view: AutoAttendantOut) -> dict[str, Any]:
    return view.model_dump(by_alias=True, mode="json")


def _owned(session: Session, org_id: str, attendant_id: str) -> AutoAttendant:
    row = session.get(AutoAttendant, attendant_id)
    if row is None or row.org_id != org_id:
        raise ApiError(404, "Auto attendant not found",
                       f"no auto attendant with id {attendant_id!r} in this organisation", rule="not-found")
    return row


@route("POST", "/v1/autoAttendants", summary="Create an auto attendant", tags=TAGS, body=AutoAttendantIn,
       response=AutoAttendantOut, status=201, roles=WRITE_ROLES)
async def create_auto_attendant(req: ApiRequest) -> AutoAttendantOut:
    body: AutoAttendantIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        location = location_of(uow.session, req.org_id, body.location_id)
        try:
            resolved = resolve_attendant(uow.session, location, body)
        except RuleError as error:
            raise api_error(error) from None
        row = AutoAttendant(org_id=req.org_id, location_id=location.id)
        store_attendant(uow.session, row, body, resolved)
        view = _view(uow.session, row)
        uow.change("autoAttendant", row.id, "created", None, _snapshot(view))
    return view


@route("GET", "/v1/autoAttendants", summary="List auto attendants", tags=TAGS, query=AutoAttendantQuery,
       response=Page[AutoAttendantOut])
async def list_auto_attendants(req: ApiRequest) -> Page[AutoAttendantOut]:
    params: AutoAttendantQuery = req.params
    query = select(AutoAttendant).where(AutoAttendant.org_id == req.org_id)
    if params.location_id:
        query = query.where(AutoAttendant.location_id == params.location_id)
    if params.name:
        query = query.where(AutoAttendant.name == params.name)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(AutoAttendant.name, AutoAttendant.id)
                               .offset(params.start).limit(params.max))
        items = [_view(session, row) for row in rows]
    return Page[AutoAttendantOut](items=items, start=params.start, max=params.max, total=total)


@route("GET", "/v1/autoAttendants/{autoAttendantId}", summary="Get an auto attendant", tags=TAGS,
       response=AutoAttendantOut)
async def get_auto_attendant(req: ApiRequest) -> AutoAttendantOut:
    with req.ctx.read() as session:
        return _view(session, _owned(session, req.org_id, req.path["autoAttendantId"]))


@route("PUT", "/v1/autoAttendants/{autoAttendantId}", summary="Replace an auto attendant", tags=TAGS,
       body=AutoAttendantIn, response=AutoAttendantOut, roles=WRITE_ROLES)
async def replace_auto_attendant(req: ApiRequest) -> AutoAttendantOut:
    body: AutoAttendantIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        row = _owned(uow.session, req.org_id, req.path["autoAttendantId"])
        before = _view(uow.session, row)
        req.check_if_match(before)
        if body.location_id != row.location_id:
            raise ApiError(422, "Invalid request", "an auto attendant stays in its location; create one in the other "
                           "location", field="locationId", rule="location-immutable")
        location = location_of(uow.session, req.org_id, row.location_id)
        try:
            resolved = resolve_attendant(uow.session, location, body, current_id=row.id)
        except RuleError as error:
            raise api_error(error) from None
        changed = store_attendant(uow.session, row, body, resolved)
        view = _view(uow.session, row)
        if changed:
            uow.change("autoAttendant", row.id, "updated", _snapshot(before), _snapshot(view))
    return view


@route("DELETE", "/v1/autoAttendants/{autoAttendantId}", summary="Delete an auto attendant", tags=TAGS,
       status=204, roles=WRITE_ROLES, responses={409: "The auto attendant is a location's main number destination"})
async def delete_auto_attendant(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        row = _owned(uow.session, req.org_id, req.path["autoAttendantId"])
        before = _view(uow.session, row)
        req.check_if_match(before)
        main_of = uow.session.scalar(select(Location.name).where(
            Location.main_destination_type == "AUTO_ATTENDANT", Location.main_destination_id == row.id))
        if main_of is not None:
            raise ApiError(409, "Main number destination", f"{main_of}'s main number goes to this auto attendant; "
                           "point it elsewhere first", rule="attendant-is-main-destination")
        uow.session.delete(row)
        uow.change("autoAttendant", row.id, "deleted", _snapshot(before), None)
