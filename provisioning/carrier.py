"""The carrier: where new numbers come from and where ports go.

``Carrier`` is what a carrier adapter implements; the types here are what goes in and out of it,
including the catalogue of port rejections (DESIGN.md) that every adapter maps its answers to.
``SimulatedCarrier`` (provisioning/simulated_carrier.py, re-exported here) is the default.

Calls are synchronous and quick: the API calls the carrier inside a request and decides what to
store. Slow work at the carrier (a port taking business days) shows up through ``poll_*``.
A carrier may forget what it was sent (the simulator does on restart): callers pass ``exclude``
(numbers they already hold) to the calls that hand out numbers, and treat ``UnknownReference``
as "submit again".
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Protocol


class RejectionCode(enum.StrEnum):
    ACCOUNT_NUMBER_MISMATCH = "ACCOUNT_NUMBER_MISMATCH"
    ACCOUNT_NUMBER_REQUIRED = "ACCOUNT_NUMBER_REQUIRED"
    ACCOUNT_NAME_MISMATCH = "ACCOUNT_NAME_MISMATCH"
    BTN_MISMATCH = "BTN_MISMATCH"
    COMPANY_NAME_MISMATCH = "COMPANY_NAME_MISMATCH"
    MULTIPLE_BTNS = "MULTIPLE_BTNS"
    FOC_REJECTED = "FOC_REJECTED"
    INVALID_PIN = "INVALID_PIN"
    PENDING_ORDER = "PENDING_ORDER"
    PENDING_MAIN_BTN = "PENDING_MAIN_BTN"
    SERVICE_ADDRESS_MISMATCH = "SERVICE_ADDRESS_MISMATCH"
    TN_SPECIAL_FEATURE = "TN_SPECIAL_FEATURE"
    TN_MISMATCH = "TN_MISMATCH"
    TN_NOT_PORTABLE = "TN_NOT_PORTABLE"
    UNSUPPORTED_RATE_CENTER = "UNSUPPORTED_RATE_CENTER"
    POSTAL_CODE_MISMATCH = "POSTAL_CODE_MISMATCH"
    PREVIOUS_BILL_INVALID = "PREVIOUS_BILL_INVALID"
    LOA_INVALID = "LOA_INVALID"
    UNKNOWN = "UNKNOWN"


# The catalogue of DESIGN.md: what the carrier found, and what the administrator does about it.
REJECTIONS: dict[RejectionCode, tuple[str, str]] = {
    RejectionCode.ACCOUNT_NUMBER_MISMATCH: (
        "The account number differs from the customer service record (CSR).",
        "Correct the account number (for some carriers it is the billing telephone number or the number itself) and resubmit."),
    RejectionCode.ACCOUNT_NUMBER_REQUIRED: (
        "No account number was given and the current carrier needs one.",
        "Add the account number and resubmit."),
    RejectionCode.ACCOUNT_NAME_MISMATCH: (
        "The authorising person differs from the customer service record.",
        "Correct the authorised name and resubmit."),
    RejectionCode.BTN_MISMATCH: (
        "The billing telephone number (BTN) differs from the customer service record.",
        "Correct the billing telephone number and resubmit."),
    RejectionCode.COMPANY_NAME_MISMATCH: (
        "The company name differs from the customer service record.",
        "Correct the company name and resubmit."),
    RejectionCode.MULTIPLE_BTNS: (
        "The numbers belong to several billing telephone numbers; the current carrier wants one order per BTN.",
        "Cancel this order and place one order per group of numbers sharing a BTN."),
    RejectionCode.FOC_REJECTED: (
        "The current carrier cannot meet the requested completion date.",
        "Change the requested completion date and resubmit."),
    RejectionCode.INVALID_PIN: (
        "A wireless port needs the account PIN or passcode, and the one given is missing or wrong.",
        "Correct the PIN and resubmit."),
    RejectionCode.PENDING_ORDER: (
        "The current carrier has another request pending on the account for some of the numbers.",
        "Remove those numbers and resubmit."),
    RejectionCode.PENDING_MAIN_BTN: (
        "The account's main billing telephone number is among the numbers being ported while others stay behind.",
        "Remove it and port it last, stating the remaining-numbers action and the new BTN."),
    RejectionCode.SERVICE_ADDRESS_MISMATCH: (
        "The service address differs from the customer service record.",
        "Correct the address, state and city and resubmit."),
    RejectionCode.TN_SPECIAL_FEATURE: (
        "A number has a special feature on it (for example remote call forwarding).",
        "Remove the feature at the current carrier, or remove the number, and resubmit."),
    RejectionCode.TN_MISMATCH: (
        "Some numbers do not belong to this end user.",
        "Remove them and resubmit."),
    RejectionCode.TN_NOT_PORTABLE: (
        "Some numbers are inactive or not on this account.",
        "Remove them and resubmit."),
    RejectionCode.UNSUPPORTED_RATE_CENTER: (
        "The rate center of some numbers is not portable.",
        "Remove those numbers and resubmit."),
    RejectionCode.POSTAL_CODE_MISMATCH: (
        "The postal code differs from the customer service record.",
        "Correct the postal code and resubmit."),
    RejectionCode.PREVIOUS_BILL_INVALID: (
        "The uploaded bill from the current carrier is not valid.",
        "Upload a valid bill (issued within the last 30 days) and resubmit."),
    RejectionCode.LOA_INVALID: (
        "The letter of authorisation is not valid.",
        "Sign a new letter of authorisation and resubmit."),
    RejectionCode.UNKNOWN: (
        "The current carrier rejected the order for a reason outside the catalogue.",
        "Contact PSTN support with the order id."),
}


@dataclass(frozen=True, slots=True)
class Rejection:
    code: RejectionCode
    detail: str  # what exactly disagreed (never a secret such as the PIN)

    @property
    def description(self) -> str:
        return REJECTIONS[self.code][0]

    @property
    def fix(self) -> str:
        return REJECTIONS[self.code][1]


class CarrierError(Exception):
    """The carrier refused a request outright; ``code`` is stable, ``numbers`` the ones at fault."""

    def __init__(self, code: str, detail: str, numbers: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.numbers = tuple(numbers)


class UnknownReference(CarrierError):
    def __init__(self, reference: str) -> None:
        super().__init__("unknownReference", f"the carrier has no order {reference!r}")


# --- what goes in and out ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InventoryQuery:
    country: str
    state: str | None = None
    area_code: str | None = None
    prefix: str | None = None  # leading digits of the national number, e.g. "512555"
    city: str | None = None
    quantity: int = 10
    consecutive: bool = False


@dataclass(frozen=True, slots=True)
class AvailableNumber:
    e164: str
    country: str
    state: str | None
    city: str | None
    area_code: str | None
    rate_center: str | None


class NumberKind(enum.StrEnum):
    LOCAL = "LOCAL"
    NATIONAL = "NATIONAL"


@dataclass(frozen=True, slots=True)
class NumberRequest:
    """N numbers where the carrier has no searchable inventory; fulfilled later."""

    country: str
    kind: NumberKind
    quantity: int


class RequestPhase(enum.StrEnum):
    PENDING = "PENDING"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class RequestProgress:
    phase: RequestPhase
    numbers: tuple[str, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Portability:
    e164: str
    portable: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    address1: str
    city: str
    state: str | None
    postal_code: str
    address2: str | None = None


@dataclass(frozen=True, slots=True)
class Bill:
    issue_date: date
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Loa:
    signed_name: str
    title: str
    signed_on: date
    numbers: tuple[str, ...]  # what the signer authorised; a later change of numbers voids it


@dataclass(frozen=True, slots=True)
class PortRequest:
    numbers: tuple[str, ...]
    btn: str | None
    company_name: str | None
    authorized_name: str | None
    service_address: ServiceAddress | None
    account_number: str | None = None
    pin: str | None = None
    requested_date: date | None = None  # None: as soon as the carrier can
    requested_time: time | None = None
    remaining_numbers_action: str | None = None  # when the main BTN goes: KEEP or DISCONNECT the rest
    new_btn: str | None = None
    bill: Bill | None = None
    loa: Loa | None = None


class PortPhase(enum.StrEnum):
    SUBMITTED = "SUBMITTED"
    FOC_RECEIVED = "FOC_RECEIVED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class PortProgress:
    phase: PortPhase
    foc_date: date | None = None
    rejection: Rejection | None = None


class Carrier(Protocol):
    """What a carrier adapter provides. Every call is synchronous and quick; slow work at the
    carrier shows up later through the ``poll_*`` calls."""

    name: str

    def today(self) -> date: ...

    def searchable(self, country: str) -> bool:
        """Whether ``country`` has inventory to search (otherwise numbers are requested)."""

    def search(self, query: InventoryQuery, exclude: Collection[str] = ()) -> list[AvailableNumber]:
        """Available numbers matching ``query``; ``exclude`` are numbers the caller already holds.
        Raises CarrierError("inventoryNotSearchable") for a country without inventory."""

    def provision(self, numbers: Sequence[str]) -> None:
        """Take these numbers from the inventory, all or none (CarrierError("numbersUnavailable"))."""

    def release(self, numbers: Sequence[str]) -> None: ...

    def request_numbers(self, request: NumberRequest, exclude: Collection[str] = ()) -> str:
        """Ask for N numbers; returns the carrier's reference for ``poll_request``."""

    def poll_request(self, reference: str) -> RequestProgress: ...

    def check_portability(self, numbers: Sequence[str]) -> list[Portability]:
        """The quick check made as numbers are entered (before any customer record is read)."""

    def submit_port(self, request: PortRequest) -> str:
        """Hand a port order over; returns the carrier's reference for ``poll_port``."""

    def poll_port(self, reference: str) -> PortProgress: ...

    def cancel_port(self, reference: str) -> None: ...


# --- business days ---------------------------------------------------------------------------


def is_business_day(day: date, calendar: Collection[date]) -> bool:
    return day.weekday() < 5 and day not in calendar


def add_business_days(start: date, days: int, calendar: Collection[date]) -> date:
    """The business day ``days`` business days after ``start`` (``start`` itself when 0)."""
    if days < 0:
        raise ValueError("days must not be negative")
    day = start
    for _ in range(days):
        day += timedelta(days=1)
        while not is_business_day(day, calendar):
            day += timedelta(days=1)
    return day


from provisioning.simulated_carrier import (  # noqa: E402  (it builds on the types above)
    DEFAULT_CONFIG,
    CarrierConfig,
    CarrierConfigError,
    SimulatedCarrier,
    carrier_from_settings,
    load_carrier_config,
)

__all__ = [
    "DEFAULT_CONFIG", "AvailableNumber", "Bill", "Carrier", "CarrierConfig", "CarrierConfigError", "CarrierError",
    "InventoryQuery", "Loa", "NumberKind", "NumberRequest", "PortPhase", "PortProgress", "PortRequest", "Portability",
    "REJECTIONS", "Rejection", "RejectionCode", "RequestPhase", "RequestProgress", "ServiceAddress",
    "SimulatedCarrier", "UnknownReference", "add_business_days", "carrier_from_settings", "is_business_day",
    "load_carrier_config",
]
