"""People: users with an e-mail, a location, an extension, a number and SIP devices.

A person's number must be one of their location's numbers, neither the main number nor given
to anyone else; it may still be PORT_PENDING (it becomes routable when the port completes).
Device passwords are write-only: the store keeps HA1 digests in the organisation's realm.
Creating a person mails them an invitation.

``PeopleWriter`` holds the checks and the writes; the API adds one person with it, the CSV
import thousands (it fetches what the checks need for a whole batch in a few queries).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from sqlalchemy import func, select

from provisioning.api._views import (
    DeviceOut, PersonOut, get_location, get_person, number_view, person_view, view,
)
from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, not_found, route
from provisioning.api.organization import load_org
from provisioning.digest import ha1_all
from provisioning.models import Email, Extension, check_sip_username, parse_number
from provisioning.service import UnitOfWork
from provisioning.store import Device, Location, Number, Organization, Person, new_id

SipUsername = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"),
                        AfterValidator(check_sip_username)]


class DeviceIn(ApiModel):
    sip_username: SipUsername
    password: str = Field(min_length=8, max_length=200, description="Write-only; stored as HA1 digests",
                          json_schema_extra={"writeOnly": True})
    type: Literal["DESK_PHONE", "SOFT_CLIENT"] = "DESK_PHONE"


class DeviceUpdate(ApiModel):
    password: str | None = Field(default=None, min_length=8, max_length=200, json_schema_extra={"writeOnly": True})
    type: Literal["DESK_PHONE", "SOFT_CLIENT"] = "DESK_PHONE"


class PersonFields(ApiModel):
    email: Email
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    location_id: str = Field(min_length=1, max_length=36)
    extension: Extension | None = None
    phone_number: str | None = Field(default=None, min_length=1, max_length=32,
                                     description="One of the location's numbers (may be PORT_PENDING)")


class PersonIn(PersonFields):
    devices: list[DeviceIn] = Field(default_factory=list, max_length=10)


class PersonQuery(PageQuery):
    location_id: str | None = Field(default=None, max_length=36)
    email: str | None = Field(default=None, max_length=254)
    extension: str | None = Field(default=None, max_length=6)


def _chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


class PeopleWriter:
    """Adds and changes people of one organisation inside one unit of work."""

    def __init__(self, uow: UnitOfWork, org: Organization) -> None:
        self.uow = uow
        self.s = uow.session
        self.org = org
        self.locations = {row.id: row for row in self.s.scalars(select(Location).where(Location.org_id == org.id))}
        # What prefetch() learnt: holders of e-mails and SIP usernames among those it looked up
        # (an address looked up and absent is free, no need to ask again), extensions, numbers.
        self.emails: dict[str, str] = {}
        self.looked_up_emails: set[str] = set()
        self.usernames: set[str] = set()
        self.looked_up_usernames: set[str] = set()
        self.extensions: dict[tuple[str, str], str] = {}
        self.numbers: dict[str, Number] = {}

    def prefetch(self, specs: Sequence[PersonIn]) -> None:
        """Load what checking ``specs`` needs, in a few queries rather than a few per person."""
        emails = [p.email for p in specs]
        for chunk in _chunks(emails):
            self.emails.update(self.s.execute(select(Person.email, Person.id).where(Person.email.in_(chunk))).all())
        self.looked_up_emails.update(emails)
        extensions = sorted({p.extension for p in specs if p.extension})
        for chunk in _chunks(extensions):
            self.extensions.update({(loc, ext): pid for loc, ext, pid in self.s.execute(
                select(Person.location_id, Person.extension, Person.id)
                .where(Person.org_id == self.org.id, Person.extension.in_(chunk)))})
        names = [d.sip_username for p in specs for d in getattr(p, "devices", [])]
        for chunk in _chunks(names):
            self.usernames.update(self.s.scalars(select(Device.sip_username).where(Device.sip_username.in_(chunk))))
        self.looked_up_usernames.update(names)
        wanted = []
        for p in specs:
            location = self.locations.get(p.location_id)
            if p.phone_number and location is not None:
                try:
                    wanted.append(parse_number(p.phone_number, location.country))
                except ValueError:
                    pass
        for chunk in _chunks(wanted):
            self.numbers.update({n.e164: n for n in self.s.scalars(select(Number).where(Number.e164.in_(chunk)))})

    # -- checks ------------------------------------------------------------------------------
    def _location(self, location_id: str, prefix: str) -> Location:
        location = self.locations.get(location_id)
        if location is None:
            raise not_found("location", location_id, field=prefix + "locationId")
        return location

    def _number(self, text: str, location: Location, person_id: str | None, prefix: str) -> Number:
        field = prefix + "phoneNumber"
        try:
            e164 = parse_number(text, location.country)
        except ValueError as exc:
            raise ApiError(422, "Invalid phone number", str(exc), field=field, rule="phone-number") from None
        number = self.numbers.get(e164)
        if number is None:
            number = self.s.get(Number, e164)
            if number is not None:
                self.numbers[e164] = number
        if number is None or number.location_id != location.id:
            raise ApiError(422, "Not this location's number", f"{e164} is not a number of {location.name}; "
                           "order or port it in first", field=field, rule="person-number-location")
        if number.is_main:
            raise ApiError(409, "Main number", f"{e164} is {location.name}'s main number", field=field,
                           rule="person-number-is-main")
        if number.owner_id is not None and number.owner_id != person_id:
            raise ApiError(409, "Number taken", f"{e164} is already assigned to someone else", field=field,
                           rule="person-number-taken")
        return number

    def _check(self, spec: PersonFields, person_id: str | None, prefix: str) -> tuple[Location, Number | None]:
        holder = self.emails.get(spec.email)
        if holder is None and spec.email not in self.looked_up_emails:
            holder = self.s.scalar(select(Person.id).where(Person.email == spec.email))
        if holder is not None and holder != person_id:
            raise ApiError(409, "E-mail taken", f"{spec.email} is already a person's address", field=prefix + "email",
                           rule="person-email-unique")
        location = self._location(spec.location_id, prefix)
        if spec.extension is not None:
            holder = self.extensions.get((location.id, spec.extension))
            if holder is not None and holder != person_id:
                raise ApiError(409, "Extension taken", f"extension {spec.extension} is in use at {location.name}",
                               field=prefix + "extension", rule="person-extension-unique")
        number = self._number(spec.phone_number, location, person_id, prefix) if spec.phone_number else None
        return location, number

    def _devices(self, devices: Sequence[DeviceIn], prefix: str) -> None:
        seen: set[str] = set()
        for i, device in enumerate(devices):
            name = device.sip_username
            taken = name in self.usernames or name in seen or (name not in self.looked_up_usernames and (
                self.s.scalar(select(Device.id).where(Device.sip_username == name)) is not None))
            if taken:
                raise ApiError(409, "SIP username taken", f"SIP username {name!r} is in use",
                               field=f"{prefix}devices.{i}.sipUsername", rule="sip-username-unique")
            seen.add(name)

    # -- writes ------------------------------------------------------------------------------
    def new_device(self, person: Person, spec: DeviceIn) -> Device:
        device = Device(id=new_id(), person_id=person.id, sip_username=spec.sip_username, device_type=spec.type)
        device.set_ha1(ha1_all(spec.sip_username, self.org.sip_realm, spec.password))
        self.s.add(device)
        self.usernames.add(spec.sip_username)
        return device

    def add(self, spec: PersonIn, prefix: str = "") -> PersonOut:
        location, number = self._check(spec, None, prefix)
        self._devices(spec.devices, prefix)
        person = Person(id=new_id(), org_id=self.org.id, location_id=location.id, email=spec.email,
                        first_name=spec.first_name, last_name=spec.last_name, extension=spec.extension,
                        phone_number=number.e164 if number else None)
        self.s.add(person)
        devices = [self.new_device(person, d) for d in spec.devices]
        self.emails[spec.email] = person.id
        if spec.extension:
            self.extensions[(location.id, spec.extension)] = person.id
        if number is not None:
            number.owner_id = person.id
        out = PersonOut.of(person, devices, number.state if number else None)
        self.uow.change("person", person.id, "created", None, view(out))
        if number is not None:
            self.uow.change("number", number.e164, "updated", None, number_view(number, location))
        self.uow.mail(spec.email, f"You are invited to {self.org.name} calling", invitation(self.org, location, out))
        return out

    def update(self, person: Person, spec: PersonFields) -> PersonOut:
        before = person_view(self.s, person)
        location, number = self._check(spec, person.id, "")
        old_number = None
        if person.phone_number:
            old_number = self.numbers.get(person.phone_number) or self.s.get(Number, person.phone_number)
        person.email, person.first_name, person.last_name = spec.email, spec.first_name, spec.last_name
        person.location_id, person.extension = location.id, spec.extension
        person.phone_number = number.e164 if number else None
        changed: list[Number] = []
        if old_number is not None and old_number is not number:
            old_number.owner_id = None
            changed.append(old_number)
        if number is not None and number.owner_id != person.id:
            number.owner_id = person.id
            changed.append(number)
        after = person_view(self.s, person)
        if after != before:
            self.uow.change("person", person.id, "updated", view(before), view(after))
        for n in changed:
            self.uow.change("number", n.e164, "updated", None, number_view(n, self.locations[n.location_id]))
        return after


def invitation(org: Organization, location: Location, person: PersonOut) -> str:
    lines = [f"Hello {person.first_name},", "",
             f"{org.name} has set up calling for you at {location.name}."]
    if person.extension:
        lines.append(f"Your extension: {person.extension}")
    if person.phone_number:
        pending = " (being ported; it works once the port completes)" if person.phone_number_state == "PORT_PENDING" else ""
        lines.append(f"Your number: {person.phone_number}{pending}")
    for device in person.devices:
        lines.append(f"SIP device: username {device.sip_username}, domain {org.sip_realm}; your administrator "
                     "gives you its password")
    lines += ["", "Welcome aboard."]
    return "\n".join(lines) + "\n"


# -- operations ----------------------------------------------------------------------------------
@route("POST", "/v1/people", summary="Add a person (mails an invitation)", tags=["people"], body=PersonIn,
       response=PersonOut, status=201)
async def create_person(req: ApiRequest) -> PersonOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        writer = PeopleWriter(uow, load_org(uow.session, req.org_id))
        writer.prefetch([req.body])
        return writer.add(req.body)


@route("GET", "/v1/people", summary="List people", tags=["people"], query=PersonQuery, response=Page[PersonOut])
async def list_people(req: ApiRequest) -> Page[PersonOut]:
    q: PersonQuery = req.params
    where = [Person.org_id == req.org_id]
    if q.location_id is not None:
        where.append(Person.location_id == q.location_id)
    if q.email is not None:
        where.append(Person.email == q.email.lower())
    if q.extension is not None:
        where.append(Person.extension == q.extension)
    with req.ctx.read() as s:
        total = s.scalar(select(func.count()).select_from(Person).where(*where)) or 0
        rows = list(s.scalars(select(Person).where(*where).order_by(Person.last_name, Person.first_name, Person.id)
                              .offset(q.start).limit(q.max)))
        ids = [p.id for p in rows]
        devices: dict[str, list[Device]] = {i: [] for i in ids}
        for d in s.scalars(select(Device).where(Device.person_id.in_(ids))):
            devices[d.person_id].append(d)
        numbers = [p.phone_number for p in rows if p.phone_number]
        states = dict(s.execute(select(Number.e164, Number.state).where(Number.e164.in_(numbers))).all())
        items = [PersonOut.of(p, devices[p.id], states.get(p.phone_number)) for p in rows]
    return Page[PersonOut](items=items, start=q.start, max=q.max, total=total)


@route("GET", "/v1/people/{personId}", summary="One person", tags=["people"], response=PersonOut)
async def get_person_op(req: ApiRequest) -> PersonOut:
    with req.ctx.read() as s:
        return person_view(s, get_person(s, req.org_id, req.path["personId"]))


@route("PUT", "/v1/people/{personId}", summary="Change a person (devices have their own operations)",
       tags=["people"], body=PersonFields, response=PersonOut)
async def put_person(req: ApiRequest) -> PersonOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        person = get_person(uow.session, req.org_id, req.path["personId"])
        req.check_if_match(person_view(uow.session, person))
        writer = PeopleWriter(uow, load_org(uow.session, req.org_id))
        writer.prefetch([req.body])
        return writer.update(person, req.body)


@route("DELETE", "/v1/people/{personId}", summary="Remove a person (their number becomes available)",
       tags=["people"], status=204)
async def delete_person(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        person = get_person(s, req.org_id, req.path["personId"])
        before = person_view(s, person)
        req.check_if_match(before)
        main_of = s.scalar(select(Location.name).where(Location.main_destination_type == "PERSON",
                                                       Location.main_destination_id == person.id))
        if main_of is not None:
            raise ApiError(409, "Main number destination", f"{main_of}'s main number rings this person; point it "
                           "elsewhere first", field="personId", rule="person-is-main-destination")
        freed = list(s.scalars(select(Number).where(Number.owner_id == person.id)))
        for n in freed:
            n.owner_id = None
        s.delete(person)
        s.flush()
        uow.change("person", person.id, "deleted", view(before), None)
        for n in freed:
            uow.change("number", n.e164, "updated", None, number_view(n, get_location(s, req.org_id, n.location_id)))


def _device(s, person: Person, device_id: str) -> Device:
    row = s.scalar(select(Device).where(Device.id == device_id, Device.person_id == person.id))
    if row is None:
        raise not_found("device", device_id, field="deviceId")
    return row


@route("GET", "/v1/people/{personId}/devices", summary="A person's SIP devices", tags=["people"],
       response=list[DeviceOut])
async def list_devices(req: ApiRequest) -> list[DeviceOut]:
    with req.ctx.read() as s:
        return person_view(s, get_person(s, req.org_id, req.path["personId"])).devices


@route("POST", "/v1/people/{personId}/devices", summary="Give a person a SIP device", tags=["people"],
       body=DeviceIn, response=DeviceOut, status=201)
async def add_device(req: ApiRequest) -> DeviceOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        person = get_person(uow.session, req.org_id, req.path["personId"])
        writer = PeopleWriter(uow, load_org(uow.session, req.org_id))
        writer._devices([req.body], "")
        device = writer.new_device(person, req.body)
        uow.session.flush()
        out = DeviceOut.of(device)
        uow.change("device", device.id, "created", None, {**view(out), "personId": person.id})
    return out


@route("PUT", "/v1/people/{personId}/devices/{deviceId}", summary="Change a device's password or type",
       tags=["people"], body=DeviceUpdate, response=DeviceOut)
async def put_device(req: ApiRequest) -> DeviceOut:
    body: DeviceUpdate = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        person = get_person(s, req.org_id, req.path["personId"])
        device = _device(s, person, req.path["deviceId"])
        before = DeviceOut.of(device)
        req.check_if_match(before)
        device.device_type = body.type
        if body.password is not None:
            device.set_ha1(ha1_all(device.sip_username, load_org(s, req.org_id).sip_realm, body.password))
        out = DeviceOut.of(device)
        uow.change("device", device.id, "updated", {**view(before), "personId": person.id},
                   {**view(out), "personId": person.id, "passwordChanged": body.password is not None})
    return out


@route("DELETE", "/v1/people/{personId}/devices/{deviceId}", summary="Remove a device", tags=["people"], status=204)
async def delete_device(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        s = uow.session
        person = get_person(s, req.org_id, req.path["personId"])
        device = _device(s, person, req.path["deviceId"])
        before = DeviceOut.of(device)
        req.check_if_match(before)
        s.delete(device)
        uow.change("device", device.id, "deleted", {**view(before), "personId": person.id}, None)
