"""How stored entities look on the wire (response models), and the lookups resources share.

The same views are the ``data`` of change events and the before/after of audit entries, so a
subscriber or an auditor sees exactly what a GET would have shown.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.api.framework import ApiModel, not_found
from provisioning.store import Device, Location, Number, NumberState, Person, PstnType
from provisioning.tables_access import Trunk


class AddressOut(ApiModel):
    model_config = ConfigDict(extra="ignore")

    address1: str
    address2: str | None = None
    city: str
    state: str | None = None
    postal_code: str
    country: str


class Contact(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone_number: str | None = Field(default=None, min_length=1, max_length=32)


class PstnConnection(ApiModel):
    type: PstnType
    trunk: str | None = Field(default=None, description="Name of the trunk (not for CALLING_PLAN)")


class Destination(ApiModel):
    type: Literal["PERSON", "AUTO_ATTENDANT"]
    id: str = Field(min_length=1, max_length=36)


class MainNumber(ApiModel):
    phone_number: str
    destination: Destination | None = None


class LocationOut(ApiModel):
    id: str
    name: str
    country: str
    time_zone: str
    address: AddressOut
    emergency_address: AddressOut
    pstn_connection: PstnConnection | None
    main_number: MainNumber | None
    routing_prefix: str | None
    outside_dial_digit: str | None
    contact: Contact | None

    @classmethod
    def of(cls, row: Location) -> LocationOut:
        main = None
        if row.main_number:
            dest = (Destination(type=row.main_destination_type, id=row.main_destination_id)  # type: ignore[arg-type]
                    if row.main_destination_type and row.main_destination_id else None)
            main = MainNumber(phone_number=row.main_number, destination=dest)
        return cls(id=row.id, name=row.name, country=row.country, time_zone=row.time_zone,
                   address=AddressOut.model_validate(row.address),
                   emergency_address=AddressOut.model_validate(row.emergency_address),
                   pstn_connection=PstnConnection(type=row.pstn_type, trunk=row.pstn_trunk) if row.pstn_type else None,
                   main_number=main, routing_prefix=row.routing_prefix, outside_dial_digit=row.outside_dial_digit,
                   contact=Contact.model_validate(row.contact) if row.contact else None)


class NumberOut(ApiModel):
    phone_number: str
    location_id: str
    state: NumberState
    owner_id: str | None = Field(description="The person the number is assigned to")
    main_number: bool
    available: bool = Field(description="Neither assigned to a person nor a location's main number")
    emergency_address: AddressOut = Field(description="The effective emergency service address")
    emergency_address_source: Literal["LOCATION", "NUMBER"]

    @classmethod
    def of(cls, row: Number, location_esa: dict[str, Any]) -> NumberOut:
        own = row.emergency_address
        return cls(phone_number=row.e164, location_id=row.location_id, state=row.state, owner_id=row.owner_id,
                   main_number=row.is_main, available=row.owner_id is None and not row.is_main,
                   emergency_address=AddressOut.model_validate(own or location_esa),
                   emergency_address_source="NUMBER" if own else "LOCATION")


class DeviceOut(ApiModel):
    id: str
    sip_username: str
    type: Literal["DESK_PHONE", "SOFT_CLIENT"]

    @classmethod
    def of(cls, row: Device) -> DeviceOut:
        return cls(id=row.id, sip_username=row.sip_username, type=row.device_type)  # type: ignore[arg-type]


class PersonOut(ApiModel):
    id: str
    email: str
    first_name: str
    last_name: str
    location_id: str
    extension: str | None
    phone_number: str | None
    phone_number_state: NumberState | None = Field(description="PORT_PENDING while the number is being ported in")
    devices: list[DeviceOut]

    @classmethod
    def of(cls, row: Person, devices: list[Device], number_state: NumberState | None) -> PersonOut:
        return cls(id=row.id, email=row.email, first_name=row.first_name, last_name=row.last_name,
                   location_id=row.location_id, extension=row.extension, phone_number=row.phone_number,
                   phone_number_state=number_state if row.phone_number else None,
                   devices=[DeviceOut.of(d) for d in sorted(devices, key=lambda d: d.sip_username)])


class TrunkOut(ApiModel):
    id: str
    name: str
    host: str
    port: int
    transport: Literal["UDP", "TCP", "TLS"]
    registers: bool = Field(alias="register", description="Registers with the peer")
    username: str | None
    realm: str | None
    has_password: bool = Field(description="Whether digest credentials are stored (the password never is)")

    @classmethod
    def of(cls, row: Trunk) -> TrunkOut:
        return cls(id=row.id, name=row.name, host=row.host, port=row.port, transport=row.transport,  # type: ignore[arg-type]
                   registers=row.register, username=row.username, realm=row.realm, has_password=bool(row.ha1))


def view(model: ApiModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


# -- lookups scoped to one organisation ----------------------------------------------------------
def get_location(s: Session, org_id: str, location_id: str, field: str = "locationId",
                 *, lock: bool = False) -> Location:
    query = select(Location).where(Location.id == location_id, Location.org_id == org_id)
    row = s.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise not_found("location", location_id, field=field)
    return row


def get_person(s: Session, org_id: str, person_id: str, field: str = "personId") -> Person:
    row = s.scalar(select(Person).where(Person.id == person_id, Person.org_id == org_id))
    if row is None:
        raise not_found("person", person_id, field=field)
    return row


def get_number(s: Session, org_id: str, e164: str, field: str = "phoneNumber") -> tuple[Number, Location]:
    found = s.execute(select(Number, Location).join(Location, Number.location_id == Location.id)
                      .where(Number.e164 == e164, Location.org_id == org_id)).first()
    if found is None:
        raise not_found("number", e164, field=field)
    return found[0], found[1]


def person_view(s: Session, person: Person) -> PersonOut:
    devices = list(s.scalars(select(Device).where(Device.person_id == person.id)))
    state = s.scalar(select(Number.state).where(Number.e164 == person.phone_number)) if person.phone_number else None
    return PersonOut.of(person, devices, state)


def number_view(number: Number, location: Location) -> dict[str, Any]:
    return view(NumberOut.of(number, location.emergency_address))
