"""The simulated carrier: the default ``Carrier``, and the only one a test talks to.

It behaves like a carrier: searchable inventory per country, requests for N numbers where there
is none (fulfilled after business days), a quick portability check, and the customer service
records (CSR) of the accounts numbers are ported from. A port order is compared with those
records when the losing carrier answers and gets the first catalogued rejection that applies,
or a FOC date; it completes on that date. Its clock is the real date moved on by ``advance``
(business days), so tests and demos never sleep.

Configuration: config/carrier-sim.yaml (camelCase keys; errors say file, line and key).
"""

from __future__ import annotations

import itertools
import re
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import holidays as holiday_calendars
import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from provisioning.carrier import (
    AvailableNumber,
    CarrierError,
    InventoryQuery,
    NumberRequest,
    Portability,
    PortPhase,
    PortProgress,
    PortRequest,
    Rejection,
    RejectionCode,
    RequestPhase,
    RequestProgress,
    UnknownReference,
    add_business_days,
    is_business_day,
)
from provisioning.yamlsource import SourceError, load_yaml, source_errors

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "carrier-sim.yaml"


class CarrierConfigError(SourceError):
    """The simulated carrier's configuration file is invalid."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              str_strip_whitespace=True, frozen=True)


def _e164(value: str) -> str:
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"must be an E.164 number such as +15125550100, got {value!r}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class NumberRange(_Spec):
    first: str
    count: int = Field(ge=1, le=100_000)
    state: str | None = None
    city: str | None = None
    area_code: str | None = None
    rate_center: str | None = None

    _first = field_validator("first")(_e164)

    def numbers(self) -> list[str]:
        digits = int(self.first[1:])
        return [f"+{digits + i}" for i in range(self.count)]


class InventoryBlock(NumberRange):
    country: str


class RequestPool(_Spec):
    local: NumberRange | None = None
    national: NumberRange | None = None


class CsrNumber(_Spec):
    e164: str
    active: bool = True
    features: list[str] = Field(default_factory=list)
    rate_center: str | None = None
    pending_order: bool = False

    _e164 = field_validator("e164")(_e164)


class BtnGroup(_Spec):
    btn: str
    numbers: list[str | CsrNumber]

    _btn = field_validator("btn")(_e164)

    def entries(self) -> list[CsrNumber]:
        return [CsrNumber(e164=n) if isinstance(n, str) else n for n in self.numbers]


class AddressSpec(_Spec):
    address1: str
    address2: str | None = None
    city: str
    state: str | None = None
    postal_code: str


class CustomerRecord(_Spec):
    account_number: str
    company: str
    authorized_name: str
    service_address: AddressSpec
    rate_center: str | None = None
    wireless: bool = False
    pin: str | None = None
    account_number_required: bool = True
    btn_accepted_as_account_number: bool = False
    btns: list[BtnGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _pin(self) -> CustomerRecord:
        if self.wireless and not self.pin:
            raise ValueError("a wireless account needs its pin")
        return self


class PortingSpec(_Spec):
    countries: list[str] = Field(default_factory=lambda: ["US", "CA"])
    response_business_days: int = Field(default=1, ge=0, le=30)
    min_lead_business_days: int = Field(default=7, ge=0, le=60)
    max_lead_days: int = Field(default=90, ge=1, le=365)
    cutover_window: str = "08:00-18:00"
    bill_max_age_days: int = Field(default=30, ge=1)
    unsupported_rate_centers: list[str] = Field(default_factory=list)

    @field_validator("cutover_window")
    @classmethod
    def _window(cls, value: str) -> str:
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", value)
        if not match or value[:5] >= value[6:]:
            raise ValueError(f"must be HH:MM-HH:MM with the start first, got {value!r}")
        return value

    def window(self) -> tuple[time, time]:
        return time.fromisoformat(self.cutover_window[:5]), time.fromisoformat(self.cutover_window[6:])


class CarrierConfig(_Spec):
    name: str = "Simulated carrier"
    holidays: str | None = "US"  # the business-day calendar (a python-holidays country code)
    request_fulfilment_business_days: int = Field(default=1, ge=0, le=30)
    inventory: list[InventoryBlock] = Field(default_factory=list)
    request_only: dict[str, RequestPool] = Field(default_factory=dict)
    porting: PortingSpec = Field(default_factory=PortingSpec)
    customer_records: list[CustomerRecord] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> CarrierConfig:
        seen: set[str] = set()
        stock = [n for b in self.inventory for n in b.numbers()]
        stock += [n for pool in self.request_only.values() for r in (pool.local, pool.national) if r for n in r.numbers()]
        stock += [e.e164 for rec in self.customer_records for g in rec.btns for e in g.entries()]
        for number in stock:
            if number in seen:
                raise ValueError(f"{number} is listed twice (inventory, request pools and records must not overlap)")
            seen.add(number)
        return self


def load_carrier_config(path: str | Path = DEFAULT_CONFIG) -> CarrierConfig:
    """Read the simulator's YAML; errors say file, line and key."""
    doc = load_yaml(path, CarrierConfigError, scalars_as_text=True)
    if not isinstance(doc.data, dict):
        raise CarrierConfigError(doc.source, doc.line_for(()), "", "the carrier file must be a mapping")
    try:
        config = CarrierConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise source_errors(exc, doc, CarrierConfigError)[0] from None
    for i, block in enumerate(config.inventory):
        for number in (block.numbers()[0], block.numbers()[-1]):
            region = phonenumbers.region_code_for_number(phonenumbers.parse(number))
            if region != block.country or not phonenumbers.is_valid_number(phonenumbers.parse(number)):
                raise CarrierConfigError(doc.source, doc.line_for(("inventory", i, "count")), f"inventory[{i}]",
                                         f"{number} is not a valid {block.country} number")
    return config


# --- the simulator -------------------------------------------------------------------------


def _canon(text: str | None) -> str:
    """Text as records compare it: case, punctuation and common abbreviations do not matter."""
    words = re.sub(r"[^\w]+", " ", (text or "").casefold()).split()
    return " ".join(_ABBREVIATIONS.get(w, w) for w in words)


_ABBREVIATIONS = {
    "street": "st", "avenue": "ave", "road": "rd", "boulevard": "blvd", "drive": "dr", "suite": "ste",
    "north": "n", "south": "s", "east": "e", "west": "w", "incorporated": "inc", "corporation": "corp",
    "lane": "ln", "court": "ct", "place": "pl", "parkway": "pkwy", "highway": "hwy", "company": "co",
    "limited": "ltd",
}


def _alnum(text: str | None) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", text or "").upper()


def _same_number(text: str | None, e164: str) -> bool:
    """Whether ``text`` (typed in any common format) is the number ``e164``."""
    try:
        parsed = phonenumbers.parse(text or "", phonenumbers.region_code_for_number(phonenumbers.parse(e164)))
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == e164


@dataclass(slots=True)
class _Account:
    record: CustomerRecord
    numbers: dict[str, tuple[CsrNumber, str]] = field(default_factory=dict)  # e164 -> (entry, its BTN)


@dataclass(slots=True)
class _Port:
    request: PortRequest
    submitted_on: date
    cancelled: bool = False
    outcome: Rejection | date | None = None  # decided once, when the losing carrier answers


@dataclass(slots=True)
class _Request:
    request: NumberRequest
    requested_on: date
    exclude: frozenset[str]
    result: RequestProgress | None = None


class SimulatedCarrier:
    """A carrier that behaves like one, on a clock that moves in business days on demand."""

    def __init__(self, config: CarrierConfig, clock: Callable[[], datetime]) -> None:
        self.config = config
        self.name = config.name
        self._clock = clock
        self._calendar: Collection[date] = (
            holiday_calendars.country_holidays(config.holidays) if config.holidays else frozenset())
        self.advanced_business_days = 0
        self._lock = threading.Lock()
        self._stock: dict[str, AvailableNumber] = {}
        self._national: dict[str, str] = {}  # e164 -> national significant number, for prefix search
        for block in config.inventory:
            for number in block.numbers():
                self._stock[number] = AvailableNumber(number, block.country, block.state, block.city,
                                                      block.area_code, block.rate_center)
                self._national[number] = phonenumbers.national_significant_number(phonenumbers.parse(number))
        self._taken: set[str] = set()
        self._own = set(self._stock) | {
            n for pool in config.request_only.values() for r in (pool.local, pool.national) if r for n in r.numbers()}
        self._accounts: dict[str, _Account] = {}
        for record in config.customer_records:
            account = _Account(record)
            for group in record.btns:
                for entry in group.entries():
                    account.numbers[entry.e164] = (entry, group.btn)
                    self._accounts[entry.e164] = account
        self._ports: dict[str, _Port] = {}
        self._requests: dict[str, _Request] = {}
        self._references = itertools.count(1)

    @classmethod
    def from_file(cls, path: str | Path, clock: Callable[[], datetime]) -> SimulatedCarrier:
        return cls(load_carrier_config(path), clock)

    # The clock ------------------------------------------------------------------------------

    def today(self) -> date:
        return add_business_days(self._clock().date(), self.advanced_business_days, self._calendar)

    def advance(self, business_days: int) -> date:
        """Move the carrier's clock on; what falls due shows up at the next poll."""
        if business_days < 0:
            raise ValueError("the carrier's clock only moves forward")
        with self._lock:
            self.advanced_business_days += business_days
        return self.today()

    def add_business_days(self, start: date, days: int) -> date:
        return add_business_days(start, days, self._calendar)

    def is_business_day(self, day: date) -> bool:
        return is_business_day(day, self._calendar)

    def _reference(self, kind: str) -> str:
        return f"SIM-{kind}-{next(self._references):05d}-{uuid.uuid4().hex[:8]}"

    # New numbers ----------------------------------------------------------------------------

    def searchable(self, country: str) -> bool:
        return any(block.country == country for block in self.config.inventory)

    def search(self, query: InventoryQuery, exclude: Collection[str] = ()) -> list[AvailableNumber]:
        if not self.searchable(query.country):
            raise CarrierError("inventoryNotSearchable",
                               f"{self.name} has no searchable inventory in {query.country}; request numbers instead")
        prefix = _alnum(query.prefix)
        city, state, area = _canon(query.city), _alnum(query.state), _alnum(query.area_code)
        with self._lock:
            found = [
                n for e164, n in self._stock.items()
                if n.country == query.country and e164 not in self._taken and e164 not in exclude
                and (not state or _alnum(n.state) == state)
                and (not city or _canon(n.city) == city)
                and (not area or _alnum(n.area_code) == area)
                and (not prefix or self._national[e164].startswith(prefix))
            ]
        if not query.consecutive:
            return found[: query.quantity]
        run: list[AvailableNumber] = []
        for number in found:
            if run and int(number.e164[1:]) != int(run[-1].e164[1:]) + 1:
                run = []
            run.append(number)
            if len(run) == query.quantity:
                return run
        return []

    def provision(self, numbers: Sequence[str]) -> None:
        with self._lock:
            missing = [n for n in numbers if n not in self._stock or n in self._taken]
            if missing:
                raise CarrierError("numbersUnavailable",
                                   f"not available from {self.name}: {', '.join(missing)}", missing)
            self._taken.update(numbers)

    def release(self, numbers: Sequence[str]) -> None:
        with self._lock:
            self._taken.difference_update(numbers)

    def request_numbers(self, request: NumberRequest, exclude: Collection[str] = ()) -> str:
        pool = self.config.request_only.get(request.country)
        if pool is None or getattr(pool, request.kind.value.lower()) is None:
            raise CarrierError("requestNotOffered",
                               f"{self.name} does not take requests for {request.kind.value.lower()} numbers in {request.country}")
        reference = self._reference("REQ")
        with self._lock:
            self._requests[reference] = _Request(request, self.today(), frozenset(exclude))
        return reference

    def poll_request(self, reference: str) -> RequestProgress:
        with self._lock:
            pending = self._requests.get(reference)
            if pending is None:
                raise UnknownReference(reference)
            if pending.result is not None:
                return pending.result
            due = add_business_days(pending.requested_on, self.config.request_fulfilment_business_days, self._calendar)
            if self.today() < due:
                return RequestProgress(RequestPhase.PENDING)
            request = pending.request
            pool = getattr(self.config.request_only[request.country], request.kind.value.lower())
            free = [n for n in pool.numbers() if n not in self._taken and n not in pending.exclude]
            if len(free) < request.quantity:
                pending.result = RequestProgress(
                    RequestPhase.FAILED, reason=f"only {len(free)} {request.kind.value.lower()} numbers left in "
                                                f"{request.country}, {request.quantity} requested")
            else:
                chosen = tuple(free[: request.quantity])
                self._taken.update(chosen)
                pending.result = RequestProgress(RequestPhase.FULFILLED, chosen)
            return pending.result

    # Porting --------------------------------------------------------------------------------

    def check_portability(self, numbers: Sequence[str]) -> list[Portability]:
        results = []
        for number in numbers:
            parsed = phonenumbers.parse(number)
            region = phonenumbers.region_code_for_number(parsed)
            if not phonenumbers.is_valid_number(parsed):
                results.append(Portability(number, False, "not a valid phone number"))
            elif region not in self.config.porting.countries:
                results.append(Portability(number, False, f"{self.name} does not port numbers in {region}"))
            elif number in self._own:
                results.append(Portability(number, False, f"the number already belongs to {self.name}"))
            else:
                results.append(Portability(number, True))
        return results

    def submit_port(self, request: PortRequest) -> str:
        if not request.numbers:
            raise CarrierError("noNumbers", "a port order needs at least one number")
        reference = self._reference("PORT")
        with self._lock:
            self._ports[reference] = _Port(request, self.today())
        return reference

    def cancel_port(self, reference: str) -> None:
        with self._lock:
            port = self._ports.get(reference)
            if port is None:
                raise UnknownReference(reference)
            port.cancelled = True

    def poll_port(self, reference: str) -> PortProgress:
        with self._lock:
            port = self._ports.get(reference)
            if port is None:
                raise UnknownReference(reference)
            if port.cancelled:
                return PortProgress(PortPhase.CANCELLED)
            today = self.today()
            answers_on = add_business_days(port.submitted_on, self.config.porting.response_business_days, self._calendar)
            if port.outcome is None:
                if today < answers_on:
                    return PortProgress(PortPhase.SUBMITTED)
                port.outcome = self._answer(port.request, answers_on)
            if isinstance(port.outcome, Rejection):
                return PortProgress(PortPhase.REJECTED, rejection=port.outcome)
            if today >= port.outcome:
                return PortProgress(PortPhase.COMPLETED, foc_date=port.outcome)
            return PortProgress(PortPhase.FOC_RECEIVED, foc_date=port.outcome)

    def earliest_completion(self, submitted_on: date) -> date:
        return add_business_days(submitted_on, self.config.porting.min_lead_business_days, self._calendar)

    def _answer(self, request: PortRequest, on: date) -> Rejection | date:
        """The losing carrier's answer: the first thing that disagrees with its records, or the FOC date."""
        rejection = check_port_against_records(request, self._accounts, self.config.porting, on, self._calendar)
        if rejection is not None:
            return rejection
        return request.requested_date or self.earliest_completion(on)


def check_port_against_records(request: PortRequest, accounts: dict[str, _Account], porting: PortingSpec,
                               on: date, calendar: Collection[date]) -> Rejection | None:
    """Compare a port order with the customer service records as the losing carrier would, on ``on``.

    One code per answer, in the order a carrier works through an order: which numbers, whose
    account, then the account details, the documents and finally the date.
    """
    code = RejectionCode
    unknown = [n for n in request.numbers if n not in accounts or not accounts[n].numbers[n][0].active]
    if unknown:
        return Rejection(code.TN_NOT_PORTABLE, f"inactive or not on any account: {', '.join(unknown)}")
    by_account: dict[int, list[str]] = {}
    for number in request.numbers:
        by_account.setdefault(id(accounts[number]), []).append(number)
    given = _alnum(request.account_number)
    candidates = [accounts[numbers[0]] for numbers in by_account.values()]
    # The end user is the account named by the order, else the one holding most of its numbers.
    account = next((a for a in candidates if given and _alnum(a.record.account_number) == given),
                   max(candidates, key=lambda a: len(by_account[id(a)])))
    foreign = [n for n in request.numbers if accounts[n] is not account]
    if foreign:
        return Rejection(code.TN_MISMATCH, f"not on account of {account.record.company}: {', '.join(foreign)}")
    entries = [account.numbers[n] for n in request.numbers]
    btns = sorted({btn for _, btn in entries})
    if len(btns) > 1:
        return Rejection(code.MULTIPLE_BTNS, f"the numbers are billed under {len(btns)} BTNs: {', '.join(btns)}")
    btn = btns[0]
    pending = [e.e164 for e, _ in entries if e.pending_order]
    if pending:
        return Rejection(code.PENDING_ORDER, f"another request is pending for: {', '.join(pending)}")
    featured = [f"{e.e164} ({', '.join(e.features)})" for e, _ in entries if e.features]
    if featured:
        return Rejection(code.TN_SPECIAL_FEATURE, f"special features on: {'; '.join(featured)}")
    unsupported = {_canon(c) for c in porting.unsupported_rate_centers}
    stuck = [e.e164 for e, _ in entries if _canon(e.rate_center or account.record.rate_center) in unsupported]
    if stuck:
        return Rejection(code.UNSUPPORTED_RATE_CENTER, f"rate center not portable for: {', '.join(stuck)}")
    staying = [n for n, (e, b) in account.numbers.items() if b == btn and e.active and n not in request.numbers]
    if btn in request.numbers and staying and not (request.new_btn and request.remaining_numbers_action):
        return Rejection(code.PENDING_MAIN_BTN,
                         f"{btn} is the BTN of {len(staying)} numbers that stay; state the new BTN and what happens to them")
    record = account.record
    if not given:
        if record.account_number_required:
            return Rejection(code.ACCOUNT_NUMBER_REQUIRED, "the order has no account number")
    elif given != _alnum(record.account_number) and not (
            record.btn_accepted_as_account_number and _same_number(request.account_number, btn)):
        return Rejection(code.ACCOUNT_NUMBER_MISMATCH, "the account number is not the one on the record")
    if not _same_number(request.btn, btn):
        return Rejection(code.BTN_MISMATCH, f"the order gives BTN {request.btn or '(none)'}; the record's differs")
    if record.wireless and (request.pin or "") != record.pin:
        return Rejection(code.INVALID_PIN, "the account PIN is missing or wrong")
    if _canon(request.company_name) != _canon(record.company):
        return Rejection(code.COMPANY_NAME_MISMATCH, f"company {request.company_name!r} is not the one on the record")
    if _canon(request.authorized_name) != _canon(record.authorized_name):
        return Rejection(code.ACCOUNT_NAME_MISMATCH, f"{request.authorized_name!r} is not the authorised person on the record")
    address, on_record = request.service_address, record.service_address
    if address is None or any(_canon(getattr(address, key)) != _canon(getattr(on_record, key))
                              for key in ("address1", "city", "state")):
        return Rejection(code.SERVICE_ADDRESS_MISMATCH, "the service address (street, city, state) differs from the record")
    if _alnum(address.postal_code) != _alnum(on_record.postal_code):
        return Rejection(code.POSTAL_CODE_MISMATCH, f"postal code {address.postal_code!r} differs from the record")
    bill = request.bill
    if bill is None:
        return Rejection(code.PREVIOUS_BILL_INVALID, "no bill was sent")
    age = (on - bill.issue_date).days
    if age > porting.bill_max_age_days or age < 0:
        return Rejection(code.PREVIOUS_BILL_INVALID,
                         f"the bill is dated {bill.issue_date.isoformat()}, {age} days before {on.isoformat()}; "
                         f"it must be at most {porting.bill_max_age_days} days old")
    loa = request.loa
    if loa is None:
        return Rejection(code.LOA_INVALID, "no letter of authorisation was signed")
    if _canon(loa.signed_name) != _canon(request.authorized_name):
        return Rejection(code.LOA_INVALID, f"signed by {loa.signed_name!r}, not the authorised person")
    if sorted(loa.numbers) != sorted(request.numbers):
        return Rejection(code.LOA_INVALID, "the numbers changed after the letter was signed")
    wanted = request.requested_date
    if wanted is not None:
        earliest = add_business_days(on, porting.min_lead_business_days, calendar)
        if wanted < earliest:
            return Rejection(code.FOC_REJECTED, f"{wanted.isoformat()} is too soon; the earliest date is {earliest.isoformat()}")
        if wanted > on + timedelta(days=porting.max_lead_days):
            return Rejection(code.FOC_REJECTED, f"{wanted.isoformat()} is more than {porting.max_lead_days} days ahead")
        if not is_business_day(wanted, calendar):
            return Rejection(code.FOC_REJECTED, f"{wanted.isoformat()} is not a business day")
    start, end = porting.window()
    if request.requested_time is not None and not start <= request.requested_time <= end:
        return Rejection(code.UNKNOWN, f"the losing carrier answered 'cut-over time {request.requested_time:%H:%M} "
                                       f"not available' (its window is {porting.cutover_window})")
    return None


def carrier_from_settings(value: Any, clock: Callable[[], datetime]) -> SimulatedCarrier | None:
    """The wiring's helper: a path (or True for the shipped file) gives a simulator, None none."""
    if value in (None, False, ""):
        return None
    return SimulatedCarrier.from_file(DEFAULT_CONFIG if value is True else value, clock)
