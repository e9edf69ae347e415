"""Reads the store into routing's plain records (DirectoryData), for Directory.build.

Plain Core selects over the columns routing needs, not ORM objects: a store of a million
numbers loads in seconds, and one read transaction sees one consistent state. Strings that
repeat on every row (location and owner ids) are shared, not copied per row, which keeps a
million NumberRecords to about half the memory.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from provisioning import tables_access, tables_ivr
from provisioning.store import Device, Location, Number, Organization, Person, Store
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

# Auto attendants arrived with the IVR tables; a checkout without them routes no attendants
# rather than failing to start.
_AutoAttendant = getattr(tables_ivr, "AutoAttendant", None)
_Trunk = getattr(tables_access, "Trunk", None)


def load_directory_data(store: Store) -> DirectoryData:
    with store.engine.connect() as conn:
        # One transaction for every select: a change committed half-way through the read
        # must not leave a person pointing at a location this snapshot has not seen.
        with conn.begin():
            return _read(conn)


def _read(conn: Any) -> DirectoryData:
    organizations = [
        OrganizationRecord(id, name, country.upper(), realm)
        for id, name, country, realm in conn.execute(
            select(Organization.id, Organization.name, Organization.country, Organization.sip_realm))
    ]

    location_ids: dict[str, str] = {}
    locations = []
    for row in conn.execute(select(
            Location.id, Location.org_id, Location.name, Location.country, Location.time_zone,
            Location.routing_prefix, Location.outside_dial_digit, Location.main_number,
            Location.main_destination_type, Location.main_destination_id, Location.emergency_address,
            Location.contact, Location.pstn_type, Location.pstn_trunk)):
        (id, org_id, name, country, tz, prefix, outside, main, dest_type, dest_id, esa, contact,
         pstn_type, trunk) = row
        location_ids[id] = id
        locations.append(LocationRecord(
            id=id, org_id=org_id, name=name, country=country.upper(), time_zone=tz,
            routing_prefix=prefix or None, outside_dial_digit=outside or None, main_number=main or None,
            main_destination=(dest_type, dest_id) if dest_type and dest_id else None,
            emergency_address=_json(esa) or {}, contact_email=(_json(contact) or {}).get("email") or None,
            pstn_type=str(pstn_type.value if hasattr(pstn_type, "value") else pstn_type) if pstn_type else None,
            trunk_name=trunk or None))

    person_ids: dict[str, str] = {}
    people = []
    for id, org_id, loc_id, email, first, last, ext, number in conn.execute(select(
            Person.id, Person.org_id, Person.location_id, Person.email, Person.first_name,
            Person.last_name, Person.extension, Person.phone_number)):
        person_ids[id] = id
        people.append(PersonRecord(id, org_id, location_ids.get(loc_id, loc_id), email, first, last,
                                   ext or None, number or None))

    devices = [DeviceRecord(username, person_ids.get(pid, pid)) for username, pid in conn.execute(
        select(Device.sip_username, Device.person_id))]

    numbers = _numbers(conn, location_ids, person_ids)

    auto_attendants = []
    if _AutoAttendant is not None:
        aa = _AutoAttendant
        for id, loc_id, name, ext, number, enabled in conn.execute(select(
                aa.id, aa.location_id, aa.name, aa.extension, aa.phone_number, aa.enabled)):
            auto_attendants.append(AutoAttendantRecord(id, location_ids.get(loc_id, loc_id), name, ext or None,
                                                       number or None, bool(enabled)))

    trunks = []
    if _Trunk is not None:
        t = _Trunk
        for id, org_id, name, host, port, transport, register, username, realm, ha1 in conn.execute(select(
                t.id, t.org_id, t.name, t.host, t.port, t.transport, t.register, t.username, t.realm, t.ha1)):
            trunks.append(TrunkRecord(id, org_id, name, host, int(port or 5060), (transport or "UDP").upper(),
                                      bool(register), username, realm, _json(ha1)))

    return DirectoryData(organizations, locations, people, devices, numbers, auto_attendants, trunks)


def _numbers(conn: Any, location_ids: dict[str, str], person_ids: dict[str, str]) -> list[NumberRecord]:
    # The one big table. Its select is compiled by SQLAlchemy but run without result
    # processing (enum and JSON types would cost 5 us a row, a million rows 6 s): the state's
    # stored text is what routing compares anyway, and JSON is decoded here only where present.
    table = Number.__table__
    query = select(table.c.e164, table.c.location_id, table.c.state, table.c.owner_id,
                   table.c.is_main, table.c.emergency_address)
    sql = str(query.compile(dialect=conn.dialect))
    make = NumberRecord
    loc_get, person_get = location_ids.get, person_ids.get
    states = {"ACTIVE": "ACTIVE", "INACTIVE": "INACTIVE", "PORT_PENDING": "PORT_PENDING"}
    out = []
    append = out.append
    # Streamed (a server-side cursor on PostgreSQL): the rows become records as they come,
    # instead of a million row tuples held alongside them.
    rows = conn.exec_driver_sql(sql, execution_options={"stream_results": True, "max_row_buffer": 20000})
    for e164, loc_id, state, owner, is_main, esa in rows:
        if esa is not None:
            # SQLite hands JSON back as text, and a JSON column stores Python None as 'null'.
            esa = json.loads(esa) if isinstance(esa, str) else esa
        append(make(e164, loc_get(loc_id, loc_id), states.get(state, state),
                    person_get(owner, owner) if owner is not None else None,
                    "PERSON" if owner is not None else None, bool(is_main), esa or None))
    return out


def _json(value: Any) -> Any:
    """JSON columns come back decoded; a value stored as text by hand is decoded here."""
    if isinstance(value, str):
        return json.loads(value)
    return value
