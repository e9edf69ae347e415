"""Read the store into routing's plain records (DirectoryData), for Directory.build.

Plain Core selects of the columns routing needs, not ORM objects: a directory of a million
numbers loads in seconds this way, where materialising a million mapped objects would not.
Auto attendants are read when their table exists (the IVR adds it).
"""
from __future__ import annotations

from sqlalchemy import select

from provisioning.store import Device, Location, Number, Organization, Person, Store
from provisioning.tables_access import Trunk
from routing.records import (
    AutoAttendantRecord,
    DeviceRecord,
    DirectoryData,
    LocationRecord,
    NumberRecord,
    OrganizationRecord,
    PersonRecord,
    TrunkRecord,
)


def load_directory_data(store: Store) -> DirectoryData:
    with store.session() as session:
        orgs = [OrganizationRecord(*row) for row in session.execute(
            select(Organization.id, Organization.name, Organization.country, Organization.sip_realm))]
        owner_type: dict[str, str] = {}
        people = []
        for row in session.execute(select(
                Person.id, Person.org_id, Person.location_id, Person.email, Person.first_name,
                Person.last_name, Person.extension, Person.phone_number)):
            people.append(PersonRecord(*row))
            owner_type[row[0]] = "PERSON"
        auto_attendants = _auto_attendants(session)
        for aa in auto_attendants:
            owner_type[aa.id] = "AUTO_ATTENDANT"
        main_destinations = _main_destinations(session)
        locations = []
        for (lid, org_id, name, country, tz, prefix, outside, main, esa, contact, pstn,
             trunk) in session.execute(select(
                Location.id, Location.org_id, Location.name, Location.country, Location.time_zone,
                Location.routing_prefix, Location.outside_dial_digit, Location.main_number,
                Location.emergency_address, Location.contact, Location.pstn_type, Location.pstn_trunk)):
            email = (contact or {}).get("email") if isinstance(contact, dict) else None
            locations.append(LocationRecord(
                id=lid, org_id=org_id, name=name, country=country.upper(), time_zone=tz,
                routing_prefix=prefix, outside_dial_digit=outside, main_number=main,
                main_destination=main_destinations.get(lid), emergency_address=esa or {},
                contact_email=email, pstn_type=pstn.value if pstn is not None else None,
                trunk_name=trunk))
        devices = [DeviceRecord(*row) for row in session.execute(select(Device.sip_username, Device.person_id))]
        numbers = [
            NumberRecord(e164=e164, location_id=loc, state=state.value, owner_id=owner,
                         owner_type=owner_type.get(owner) if owner else None, is_main=is_main,
                         emergency_address=esa)
            for e164, loc, state, owner, is_main, esa in session.execute(select(
                Number.e164, Number.location_id, Number.state, Number.owner_id, Number.is_main,
                Number.emergency_address))
        ]
        trunks = [
            TrunkRecord(id=tid, org_id=org_id, name=name, host=host, port=port, transport=transport,
                        register=register, username=username, realm=realm, ha1=ha1)
            for tid, org_id, name, host, port, transport, register, username, realm, ha1 in session.execute(select(
                Trunk.id, Trunk.org_id, Trunk.name, Trunk.host, Trunk.port, Trunk.transport,
                Trunk.register, Trunk.username, Trunk.realm, Trunk.ha1))
        ]
    return DirectoryData(organizations=orgs, locations=locations, people=people, devices=devices,
                         numbers=numbers, auto_attendants=auto_attendants, trunks=trunks)


def _auto_attendants(session) -> list[AutoAttendantRecord]:
    from provisioning import tables_ivr

    table = getattr(tables_ivr, "AutoAttendant", None)
    if table is None:  # the IVR's tables are not there (yet): no auto attendants to route to
        return []
    return [AutoAttendantRecord(id=r.id, location_id=r.location_id, name=r.name,
                                extension=getattr(r, "extension", None),
                                phone_number=getattr(r, "phone_number", None))
            for r in session.scalars(select(table))]


def _main_destinations(session) -> dict[str, tuple[str, str]]:
    """Where each location's main number goes (PUT /v1/locations/{id}/mainNumber)."""
    rows = session.execute(select(Location.id, Location.main_destination_type, Location.main_destination_id)
                           .where(Location.main_destination_id.is_not(None)))
    return {lid: (kind, ident) for lid, kind, ident in rows if kind}
