"""Locations: address, time zone, PSTN connection, emergency address, main number, own numbers.

Rules (DESIGN.md, "Business rules"): a location has one PSTN connection; one that already has
another connection cannot switch to the calling plan, which is not sold in Indonesia, Macau,
the Philippines or Saudi Arabia. The location's emergency service address (ESA) applies to
every number of the location that has none of its own, so changing it publishes an update for
each of those numbers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from sqlalchemy import func, select

from provisioning.api._views import (
    Contact, Destination, LocationOut, NumberOut, get_location, number_view, view,
)
from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, not_found, route
from provisioning.api.organization import TRIAL_NUMBER_LIMIT, count_numbers, load_org
from provisioning.models import NO_CALLING_PLAN, AddressIn, Country, TimeZone, parse_number
from provisioning.store import Location, Number, NumberState, Person, PstnType, Subscription, new_id
from provisioning.tables_access import Trunk

MAX_NUMBERS_PER_REQUEST = 100


class LocationFields(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    time_zone: TimeZone
    address: AddressIn
    country: Country | None = Field(default=None, description="Defaults to the address's country")
    contact: Contact | None = None
    routing_prefix: str | None = Field(default=None, pattern=r"^[0-9]{1,8}$")
    outside_dial_digit: str | None = Field(default=None, pattern=r"^[0-9]$")

    @model_validator(mode="after")
    def _country_matches(self):
        if self.country is None:
            self.country = self.address.country
        elif self.country != self.address.country:
            raise ValueError(f"country {self.country} differs from the address's country {self.address.country}")
        return self


class LocationIn(LocationFields):
    emergency_address: AddressIn | None = Field(default=None, description="Defaults to the address")


class LocationQuery(PageQuery):
    name: str | None = Field(default=None, max_length=200, description="Exact name")


class PstnIn(ApiModel):
    type: PstnType
    trunk: str | None = Field(default=None, min_length=1, max_length=200, description="Trunk name or id")


class MainNumberIn(ApiModel):
    phone_number: str = Field(min_length=1, max_length=32)
    destination: Destination


class NumbersIn(ApiModel):
    phone_numbers: list[str] = Field(min_length=1, max_length=MAX_NUMBERS_PER_REQUEST)
    state: Literal["ACTIVE", "INACTIVE"] = "ACTIVE"


def _check_unique(s, org_id: str, body: LocationFields, current: Location | None) -> None:
    taken = s.scalar(select(Location.id).where(Location.org_id == org_id, Location.name == body.name))
    if taken and (current is None or taken != current.id):
        raise ApiError(409, "Name taken", f"a location named {body.name!r} exists", field="name",
                       rule="location-name-unique")
    if body.routing_prefix:
        taken = s.scalar(select(Location.id).where(Location.org_id == org_id,
                                                   Location.routing_prefix == body.routing_prefix))
        if taken and (current is None or taken != current.id):
            raise ApiError(409, "Routing prefix taken", f"routing prefix {body.routing_prefix} is used by another "
                           "location", field="routingPrefix", rule="routing-prefix-unique")


def _apply_fields(row: Location, body: LocationFields) -> None:
    row.name, row.time_zone, row.country = body.name, body.time_zone, body.country or body.address.country
    row.address = body.address.as_json()
    row.contact = body.contact.model_dump(by_alias=True, exclude_none=True) if body.contact else None
    row.routing_prefix, row.outside_dial_digit = body.routing_prefix, body.outside_dial_digit


@route("POST", "/v1/locations", summary="Create a location", tags=["locations"], body=LocationIn,
       response=LocationOut, status=201)
async def create_location(req: ApiRequest) -> LocationOut:
    body: LocationIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        _check_unique(uow.session, req.org_id, body, None)
        row = Location(id=new_id(), org_id=req.org_id)
        _apply_fields(row, body)
        row.emergency_address = (body.emergency_address or body.address).as_json()
        uow.session.add(row)
        uow.session.flush()
        out = LocationOut.of(row)
        uow.change("location", row.id, "created", None, view(out))
    return out


@route("GET", "/v1/locations", summary="List locations", tags=["locations"], query=LocationQuery,
       response=Page[LocationOut])
async def list_locations(req: ApiRequest) -> Page[LocationOut]:
    q: LocationQuery = req.params
    where = [Location.org_id == req.org_id]
    if q.name is not None:
        where.append(Location.name == q.name)
    with req.ctx.read() as s:
        total = s.scalar(select(func.count()).select_from(Location).where(*where)) or 0
        rows = s.scalars(select(Location).where(*where).order_by(Location.name).offset(q.start).limit(q.max))
        return Page[LocationOut](items=[LocationOut.of(r) for r in rows], start=q.start, max=q.max, total=total)


@route("GET", "/v1/locations/{locationId}", summary="One location", tags=["locations"], response=LocationOut)
async def get_location_op(req: ApiRequest) -> LocationOut:
    with req.ctx.read() as s:
        return LocationOut.of(get_location(s, req.org_id, req.path["locationId"]))


@route("PUT", "/v1/locations/{locationId}", summary="Change a location", tags=["locations"], body=LocationFields,
       response=LocationOut)
async def put_location(req: ApiRequest) -> LocationOut:
    body: LocationFields = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        before = LocationOut.of(row)
        req.check_if_match(before)
        _check_unique(s, req.org_id, body, row)
        if body.country != row.country and s.scalar(select(Number.e164).where(Number.location_id == row.id).limit(1)):
            raise ApiError(409, "Country is fixed", "the location has numbers of its country; it cannot move to "
                           "another country", field="country", rule="location-country-fixed")
        _apply_fields(row, body)
        after = LocationOut.of(row)
        if after != before:
            uow.change("location", row.id, "updated", view(before), view(after))
    return after


@route("DELETE", "/v1/locations/{locationId}", summary="Delete an empty location", tags=["locations"], status=204)
async def delete_location(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        req.check_if_match(LocationOut.of(row))
        if s.scalar(select(Person.id).where(Person.location_id == row.id).limit(1)):
            raise ApiError(409, "Location in use", "move or delete the location's people first",
                           field="locationId", rule="location-has-people")
        if s.scalar(select(Number.e164).where(Number.location_id == row.id).limit(1)):
            raise ApiError(409, "Location in use", "the location still has numbers", field="locationId",
                           rule="location-has-numbers")
        before = view(LocationOut.of(row))
        s.delete(row)
        uow.change("location", row.id, "deleted", before, None)


def find_trunk(s, org_id: str, name_or_id: str) -> Trunk | None:
    return s.scalar(select(Trunk).where(Trunk.org_id == org_id, (Trunk.name == name_or_id) | (Trunk.id == name_or_id)))


@route("PUT", "/v1/locations/{locationId}/pstnConnection", summary="Set the location's PSTN connection",
       tags=["locations"], body=PstnIn, response=LocationOut)
async def put_pstn(req: ApiRequest) -> LocationOut:
    body: PstnIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        before = LocationOut.of(row)
        req.check_if_match(before)
        trunk_name = None
        if body.type == PstnType.CALLING_PLAN:
            if body.trunk is not None:
                raise ApiError(422, "No trunk for a calling plan", "a calling plan location has no trunk of its own",
                               field="trunk", rule="calling-plan-no-trunk")
            if row.country in NO_CALLING_PLAN:
                raise ApiError(422, "Calling plan not sold here",
                               f"the calling plan is not sold in {NO_CALLING_PLAN[row.country]}", field="type",
                               rule="calling-plan-not-sold")
            if row.pstn_type not in (None, PstnType.CALLING_PLAN):
                raise ApiError(409, "Cannot switch to the calling plan",
                               f"{row.name} already has a {row.pstn_type.value} connection and cannot switch to the "
                               "calling plan", field="type", rule="calling-plan-switch")
        else:
            if body.trunk is None:
                raise ApiError(422, "Trunk required", f"a {body.type.value} connection needs a trunk",
                               field="trunk", rule="pstn-trunk-required")
            trunk = find_trunk(s, req.org_id, body.trunk)
            if trunk is None:
                raise ApiError(422, "Unknown trunk", f"no trunk named {body.trunk!r}; create it under /v1/trunks",
                               field="trunk", rule="pstn-trunk-unknown")
            trunk_name = trunk.name
        row.pstn_type, row.pstn_trunk = body.type, trunk_name
        after = LocationOut.of(row)
        if after != before:
            uow.change("location", row.id, "updated", view(before), view(after))
    return after


def _numbers_on_location_esa(s, location: Location) -> list[Number]:
    return list(s.scalars(select(Number).where(Number.location_id == location.id,
                                               Number.emergency_address.is_(None))))


@route("PUT", "/v1/locations/{locationId}/emergencyAddress",
       summary="Set the location's emergency service address (the default of its numbers)", tags=["locations"],
       body=AddressIn, response=LocationOut)
async def put_location_esa(req: ApiRequest) -> LocationOut:
    body: AddressIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        before = LocationOut.of(row)
        req.check_if_match(before)
        row.emergency_address = body.as_json()
        after = LocationOut.of(row)
        if after != before:
            uow.change("location", row.id, "updated", view(before), view(after))
            # Numbers without an ESA of their own follow the location's: each one changed.
            for number in _numbers_on_location_esa(s, row):
                before_n = view(NumberOut.of(number, before.emergency_address.model_dump(by_alias=True,
                                                                                          exclude_none=True)))
                uow.change("number", number.e164, "updated", before_n, number_view(number, row))
    return after


@route("PUT", "/v1/locations/{locationId}/mainNumber",
       summary="Choose the location's main number and where its calls go", tags=["locations"],
       body=MainNumberIn, response=LocationOut)
async def put_main_number(req: ApiRequest) -> LocationOut:
    body: MainNumberIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        before = LocationOut.of(row)
        req.check_if_match(before)
        try:
            e164 = parse_number(body.phone_number, row.country)
        except ValueError as exc:
            raise ApiError(422, "Invalid phone number", str(exc), field="phoneNumber", rule="phone-number") from None
        number = s.get(Number, e164)
        if number is None or number.location_id != row.id:
            raise ApiError(422, "Not this location's number", f"{e164} is not a number of {row.name}",
                           field="phoneNumber", rule="main-number-location")
        if number.owner_id is not None:
            raise ApiError(409, "Number assigned", f"{e164} is a person's number; pick an unassigned one",
                           field="phoneNumber", rule="main-number-assigned")
        _check_destination(s, req.org_id, body.destination)
        changed: list[Number] = []
        for old in s.scalars(select(Number).where(Number.location_id == row.id, Number.is_main.is_(True))):
            if old.e164 != e164:
                old.is_main = False
                changed.append(old)
        if not number.is_main:
            number.is_main = True
            changed.append(number)
        row.main_number = e164
        row.main_destination_type, row.main_destination_id = body.destination.type, body.destination.id
        after = LocationOut.of(row)
        if after != before:
            uow.change("location", row.id, "updated", view(before), view(after))
        for n in changed:
            uow.change("number", n.e164, "updated", None, number_view(n, row))
    return after


def _check_destination(s, org_id: str, destination: Destination) -> None:
    if destination.type == "PERSON":
        if s.scalar(select(Person.id).where(Person.id == destination.id, Person.org_id == org_id)) is None:
            raise not_found("person", destination.id, field="destination.id")
        return
    from provisioning.store import Base  # auto attendants live in another concern's table

    table = Base.metadata.tables.get("auto_attendants")
    if table is None:
        raise ApiError(422, "Auto attendants unavailable", "this installation has no auto attendants",
                       field="destination.type", rule="auto-attendants-unavailable")
    query = select(table.c.id).where(table.c.id == destination.id)
    if "org_id" in table.c:
        query = query.where(table.c.org_id == org_id)
    if s.execute(query).first() is None:
        raise not_found("auto attendant", destination.id, field="destination.id")


@route("POST", "/v1/locations/{locationId}/numbers",
       summary="Add numbers the organisation brings over the location's own trunk", tags=["locations"],
       body=NumbersIn, response=list[NumberOut], status=201,
       description="Only for locations connected through a local gateway or cloud-connected PSTN; calling-plan "
                   "numbers come from number orders.")
async def add_numbers(req: ApiRequest) -> list[NumberOut]:
    body: NumbersIn = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        row = get_location(s, req.org_id, req.path["locationId"], lock=True)
        if row.pstn_type in (None, PstnType.CALLING_PLAN):
            raise ApiError(409, "Numbers come from orders", "a location without its own PSTN connection (or on the "
                           "calling plan) gets numbers through number orders", field="locationId",
                           rule="numbers-need-own-pstn")
        wanted: list[str] = []
        for i, text in enumerate(body.phone_numbers):
            try:
                e164 = parse_number(text, row.country)
            except ValueError as exc:
                raise ApiError(422, "Invalid phone number", str(exc), field=f"phoneNumbers.{i}",
                               rule="phone-number-toll-free" if "toll-free" in str(exc) else "phone-number") from None
            if e164 in wanted:
                raise ApiError(422, "Listed twice", f"{e164} is listed twice", field=f"phoneNumbers.{i}",
                               rule="phone-number-duplicate")
            wanted.append(e164)
        taken = s.scalars(select(Number.e164).where(Number.e164.in_(wanted))).all()
        if taken:
            raise ApiError(409, "Number exists", f"{sorted(taken)[0]} is already in service",
                           field=f"phoneNumbers.{wanted.index(sorted(taken)[0])}", rule="phone-number-taken")
        org = load_org(s, req.org_id)
        if org.subscription == Subscription.TRIAL:
            held = count_numbers(s, org.id)
            if held + len(wanted) > TRIAL_NUMBER_LIMIT:
                raise ApiError(409, "Trial number limit", f"a trial organisation has at most {TRIAL_NUMBER_LIMIT} "
                               f"numbers; it has {held}", field="phoneNumbers", rule="trial-number-limit")
        rows = [Number(e164=e, location_id=row.id, state=NumberState(body.state), is_main=False) for e in wanted]
        s.add_all(rows)
        s.flush()
        out = [NumberOut.of(n, row.emergency_address) for n in rows]
        for n in out:
            uow.change("number", n.phone_number, "created", None, view(n))
    return out

