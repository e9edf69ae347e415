"""What resolve() decides for a call: one of five routes, plain frozen values.

The B2BUA carries a route out; nothing here knows about SIP beyond the status of a rejection.

The four routes made afresh for every call are plain slotted dataclasses: a frozen one costs
four times as much to construct (each field goes through object.__setattr__), which at
200,000 calls a second is a core's fifth. Treat them as values all the same. CallerId and
Reject are frozen: the resolver shares them between calls.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Union

from .records import TrunkRecord


@dataclass(frozen=True, slots=True)
class CallerId:
    """What the far side is shown."""
    number: str | None
    name: str | None


@dataclass(slots=True)
class RingPerson:
    person_id: str
    display_name: str
    sip_usernames: tuple[str, ...]
    caller_id: CallerId
    dialled: str
    location_id: str | None = None


@dataclass(slots=True)
class RunAutoAttendant:
    auto_attendant_id: str
    location_id: str
    name: str
    caller_id: CallerId
    dialled: str


@dataclass(slots=True)
class ToTrunk:
    trunk: TrunkRecord
    number: str                 # E.164 for the Request-URI
    caller_id: CallerId         # the caller's number, else its location's main number
    international: bool
    dialled: str
    country: str | None = None  # ISO country of the destination, for rating international calls


@dataclass(slots=True)
class Emergency:
    trunk: TrunkRecord | None   # None: the location has no PSTN connection (the B2BUA answers 503)
    dialled: str
    service_number: str         # as sent to the trunk, e.g. "911"
    callback_number: str | None
    esa: Mapping
    location_id: str
    notify_email: str | None
    caller_name: str | None
    person_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str


Route = Union[RingPerson, RunAutoAttendant, ToTrunk, Emergency, Reject]
