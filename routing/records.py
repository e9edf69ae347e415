"""Plain input records for the routing directory, built by the feed from the store.

Frozen and slotted: a directory holds a million numbers, and nothing on the call path may
change a record under a call that is being routed. Mapping fields (addresses, digests) are
left out of the hash so that records stay usable as dict keys and set members.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

NumberState = Literal["ACTIVE", "INACTIVE", "PORT_PENDING"]
OwnerType = Literal["PERSON", "AUTO_ATTENDANT"]
Transport = Literal["UDP", "TCP", "TLS"]


@dataclass(frozen=True, slots=True)
class OrganizationRecord:
    id: str
    name: str
    country: str
    sip_realm: str


@dataclass(frozen=True, slots=True)
class LocationRecord:
    id: str
    org_id: str
    name: str
    country: str                    # ISO 3166 alpha-2, upper case: the dialling habits' country
    time_zone: str
    routing_prefix: str | None = None      # dialled before an extension of this location from others
    outside_dial_digit: str | None = None  # e.g. "9": may precede any external number
    main_number: str | None = None         # E.164
    main_destination: tuple[str, str] | None = None  # ("PERSON"|"AUTO_ATTENDANT", id)
    emergency_address: Mapping = field(default_factory=dict, hash=False)  # the location's default ESA
    contact_email: str | None = None       # told about emergency calls
    pstn_type: str | None = None           # CALLING_PLAN | CLOUD_CONNECTED | LOCAL_GATEWAY
    trunk_name: str | None = None          # the location's PSTN connection (TrunkRecord.name)


@dataclass(frozen=True, slots=True)
class PersonRecord:
    id: str
    org_id: str
    location_id: str
    email: str
    first_name: str
    last_name: str
    extension: str | None = None
    phone_number: str | None = None        # E.164 direct number

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    sip_username: str
    person_id: str | None


@dataclass(frozen=True, slots=True)
class NumberRecord:
    e164: str
    location_id: str
    state: NumberState = "ACTIVE"
    owner_id: str | None = None
    owner_type: OwnerType | None = None
    is_main: bool = False
    emergency_address: Mapping | None = field(default=None, hash=False)  # its own ESA (a remote worker's)


@dataclass(frozen=True, slots=True)
class AutoAttendantRecord:
    id: str
    location_id: str
    name: str
    extension: str | None = None
    phone_number: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class TrunkRecord:
    id: str
    org_id: str
    name: str
    host: str
    port: int = 5060
    transport: Transport = "UDP"
    register: bool = False
    username: str | None = None
    realm: str | None = None
    ha1: Mapping[str, str] | None = field(default=None, hash=False)  # digest HA1 per algorithm, not the password
    location_id: str | None = None         # the location this trunk serves, when known


@dataclass(frozen=True, slots=True)
class DirectoryData:
    organizations: Sequence[OrganizationRecord] = ()
    locations: Sequence[LocationRecord] = ()
    people: Sequence[PersonRecord] = ()
    devices: Sequence[DeviceRecord] = ()
    numbers: Sequence[NumberRecord] = ()
    auto_attendants: Sequence[AutoAttendantRecord] = ()
    trunks: Sequence[TrunkRecord] = ()
