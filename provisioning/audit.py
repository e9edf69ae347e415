"""The audit trail: who changed what, when, and what it looked like before and after.

Entries are written inside the unit of work that makes the change (so a change and its
audit entry land together or not at all). ``snapshot`` gives each stored entity the same
public shape the API shows, without secrets, so before/after diffs read like the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from provisioning.store import Device, Location, Number, Organization, Person
from provisioning.tables_access import AuditEvent, Trunk

SYSTEM_ACTOR = "system"


def record(session: Session, *, org_id: str | None, actor_id: str | None, actor_name: str, action: str,
           target_type: str, target_id: str, before: dict | None, after: dict | None, time: datetime,
           seq: int) -> AuditEvent:
    entry = AuditEvent(org_id=org_id, time=time, actor_id=actor_id, actor_name=actor_name, action=action,
                       target_type=target_type, target_id=target_id, before=before, after=after, seq=seq)
    session.add(entry)
    return entry


def snapshot(row: Any) -> dict[str, Any]:
    """The public, secret-free view of a stored entity (camelCase, JSON-ready)."""
    if isinstance(row, Organization):
        return {"id": row.id, "name": row.name, "country": row.country, "subscription": str(row.subscription),
                "businessAccount": row.business_account, "sipRealm": row.sip_realm}
    if isinstance(row, Location):
        dest = ({"type": row.main_destination_type, "id": row.main_destination_id}
                if row.main_destination_type else None)
        return {"id": row.id, "name": row.name, "country": row.country, "timeZone": row.time_zone,
                "address": row.address, "emergencyAddress": row.emergency_address,
                "pstnConnection": ({"type": str(row.pstn_type), "trunk": row.pstn_trunk} if row.pstn_type else None),
                "mainNumber": row.main_number, "mainNumberDestination": dest,
                "routingPrefix": row.routing_prefix, "outsideDialDigit": row.outside_dial_digit,
                "contact": row.contact}
    if isinstance(row, Person):
        return {"id": row.id, "email": row.email, "firstName": row.first_name, "lastName": row.last_name,
                "locationId": row.location_id, "extension": row.extension, "phoneNumber": row.phone_number}
    if isinstance(row, Device):
        return {"id": row.id, "personId": row.person_id, "sipUsername": row.sip_username,
                "type": row.device_type}
    if isinstance(row, Number):
        return {"phoneNumber": row.e164, "locationId": row.location_id, "state": str(row.state),
                "ownerId": row.owner_id, "mainNumber": row.is_main, "emergencyAddress": row.emergency_address}
    if isinstance(row, Trunk):
        return {"id": row.id, "name": row.name, "host": row.host, "port": row.port, "transport": row.transport,
                "register": row.register, "username": row.username, "realm": row.realm}
    raise TypeError(f"no audit snapshot for {type(row).__name__}")
