"""Number orders and port orders: their states and every rule that limits them, as pure functions.

Each rule has a stable id (``RuleViolation.rule``) that the API puts in its problem+json answer
along with the field at fault, so clients can react to the rule rather than to the wording. The
API modules (provisioning/api/orders.py and ports.py) gather the facts (subscription, counts,
statuses) and call these; nothing here touches the store, the carrier or the clock.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta

import phonenumbers

from provisioning.models import NO_CALLING_PLAN  # one list for the API, the org file and orders

# Business rules of DESIGN.md.
MAX_NUMBERS_PER_ORDER = 100
TRIAL_MAX_NUMBERS = 10
CUSTOMER_ADMIN_ROLES = frozenset({"OWNER", "FULL_ADMIN"})
BILL_MAX_AGE_DAYS = 30
BILL_MAX_BYTES = 5 * 1024 * 1024


class RuleViolation(Exception):
    """A request breaks a rule. ``status`` is the HTTP status the API answers with."""

    def __init__(self, rule: str, field: str | None, detail: str, *, status: int = 422, title: str | None = None) -> None:
        super().__init__(detail)
        self.rule = rule
        self.field = field
        self.detail = detail
        self.status = status
        self.title = title or _TITLES.get(status, "Rule violated")


_TITLES = {403: "Not allowed for this role", 409: "Conflicts with the current state", 413: "Too large",
           422: "Breaks a business rule"}


# --- numbers -------------------------------------------------------------------------------


def parse_number(text: str, country: str, field: str) -> str:
    """E.164 for a number typed in international form or in ``country``'s national form."""
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        raise RuleViolation("number-invalid", field, f"{text!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise RuleViolation("number-invalid", field, f"{text!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_toll_free(e164: str) -> bool:
    return phonenumbers.number_type(phonenumbers.parse(e164)) == phonenumbers.PhoneNumberType.TOLL_FREE


def region_of(e164: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164))


def is_consecutive(numbers: Sequence[str]) -> bool:
    values = sorted(int(n.lstrip("+")) for n in numbers)
    return all(b == a + 1 for a, b in zip(values, values[1:]))


def parse_numbers(texts: Sequence[str], country: str, field: str) -> list[str]:
    """Parse a list of numbers, refusing duplicates; errors name the item (``numbers[3]``)."""
    seen: dict[str, int] = {}
    out = []
    for i, text in enumerate(texts):
        e164 = parse_number(text, country, f"{field}[{i}]")
        if e164 in seen:
            raise RuleViolation("number-duplicate", f"{field}[{i}]", f"{e164} is already listed as {field}[{seen[e164]}]")
        seen[e164] = i
        out.append(e164)
    return out


# --- number orders --------------------------------------------------------------------------


class OrderKind(enum.StrEnum):
    NUMBERS = "NUMBERS"  # specific numbers picked from the inventory
    BLOCK = "BLOCK"      # consecutive numbers, deleted only as a whole
    SEARCH = "SEARCH"    # whatever the inventory search finds, up to a quantity
    REQUEST = "REQUEST"  # N numbers where the carrier has no searchable inventory


class OrderStatus(enum.StrEnum):
    PENDING = "PENDING"                  # created; the carrier has not delivered yet
    ACTION_REQUIRED = "ACTION_REQUIRED"  # delivered; a customer administrator must accept the terms
    COMPLETED = "COMPLETED"              # numbers provisioned and active
    ERROR = "ERROR"                      # the carrier could not fill it; raise a support case


class OrderEvent(enum.StrEnum):
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    TERMS_ACCEPTED = "TERMS_ACCEPTED"


_ORDER_MOVES = {
    (OrderStatus.PENDING, OrderEvent.DELIVERED): OrderStatus.ACTION_REQUIRED,
    (OrderStatus.PENDING, OrderEvent.FAILED): OrderStatus.ERROR,
    (OrderStatus.ACTION_REQUIRED, OrderEvent.TERMS_ACCEPTED): OrderStatus.COMPLETED,
}


def order_transition(status: OrderStatus, event: OrderEvent) -> OrderStatus:
    try:
        return _ORDER_MOVES[(status, event)]
    except KeyError:
        raise RuleViolation("number-order-state", "status",
                            f"a number order that is {status.value} cannot take {event.value}", status=409) from None


@dataclass(frozen=True, slots=True)
class OrgFacts:
    subscription: str        # "TRIAL" or "PAID"
    numbers_held: int        # numbers the organisation has, plus those on unfilled requests


@dataclass(frozen=True, slots=True)
class LocationFacts:
    country: str
    pstn_type: str | None    # the location's PSTN connection, None when it has none yet


def check_calling_plan(location: LocationFacts, field: str = "locationId") -> None:
    """New numbers and ports come from the provider, so the location must be on its calling plan."""
    if location.country in NO_CALLING_PLAN:
        raise RuleViolation("calling-plan-not-sold", field,
                            f"the calling plan is not sold in {NO_CALLING_PLAN[location.country]}")
    if location.pstn_type != "CALLING_PLAN":
        current = location.pstn_type or "no PSTN connection"
        raise RuleViolation("location-not-calling-plan", field,
                            f"the location has {current}; numbers from the provider need the calling plan "
                            "(a location with another PSTN connection cannot switch to it)")


def check_number_order(kind: OrderKind, org: OrgFacts, location: LocationFacts,
                       numbers: Sequence[str], quantity: int) -> None:
    """Every limit on a new-number order; ``numbers`` are E.164 (empty for SEARCH and REQUEST)."""
    check_calling_plan(location)
    count_field = "phoneNumbers" if numbers else "quantity"
    if kind == OrderKind.BLOCK and org.subscription != "PAID":
        raise RuleViolation("block-paid-only", "kind", "blocks of consecutive numbers are only for paid subscriptions")
    if quantity < 1:
        raise RuleViolation("order-empty", count_field, "an order needs at least one number")
    if quantity > MAX_NUMBERS_PER_ORDER:
        raise RuleViolation("order-max-numbers", count_field,
                            f"{quantity} numbers asked; an order holds at most {MAX_NUMBERS_PER_ORDER}")
    if org.subscription == "TRIAL" and org.numbers_held + quantity > TRIAL_MAX_NUMBERS:
        raise RuleViolation("trial-max-numbers", count_field,
                            f"a trial organisation has at most {TRIAL_MAX_NUMBERS} numbers; it has {org.numbers_held} "
                            f"and this order adds {quantity}")
    for i, number in enumerate(numbers):
        if is_toll_free(number):
            raise RuleViolation("toll-free-not-orderable", f"phoneNumbers[{i}]", f"{number} is toll-free; toll-free numbers cannot be ordered")
        if region_of(number) != location.country:
            raise RuleViolation("number-wrong-country", f"phoneNumbers[{i}]", f"{number} is not a number of {location.country}")
    if kind == OrderKind.BLOCK and numbers and not is_consecutive(numbers):
        raise RuleViolation("block-not-consecutive", "phoneNumbers", "the numbers of a block must be consecutive")


def check_terms_acceptance(role: str, status: OrderStatus) -> None:
    """Only the customer's own administrators accept the terms of service."""
    if role not in CUSTOMER_ADMIN_ROLES:
        raise RuleViolation(
            "terms-customer-admin-only", None,
            "the terms of service must be accepted by a customer administrator (the owner or a full administrator "
            "of the organisation); a partner administrator cannot accept them for the customer, so ask the customer to",
            status=403)
    order_transition(status, OrderEvent.TERMS_ACCEPTED)


def check_number_removal(kind: OrderKind, order_numbers: Sequence[str], requested: Sequence[str]) -> None:
    """Numbers leave an order freely, except that a block goes whole or not at all."""
    stray = [n for n in requested if n not in order_numbers]
    if stray:
        raise RuleViolation("number-not-in-order", "phoneNumbers", f"not numbers of this order: {', '.join(stray)}")
    if kind == OrderKind.BLOCK and set(requested) != set(order_numbers):
        raise RuleViolation("block-delete-whole", "phoneNumbers",
                            f"a block's numbers are deleted only as a whole block ({len(order_numbers)} numbers)")


# --- port orders ----------------------------------------------------------------------------


class PortStatus(enum.StrEnum):
    PENDING = "PENDING"            # being filled in, or submitted and waiting (e.g. for the LOA)
    SUBMITTED = "SUBMITTED"        # accepted by the carrier
    FOC_RECEIVED = "FOC_RECEIVED"  # the losing carrier committed to a date
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"          # with one catalogued rejection; correct and resubmit
    CANCELLED = "CANCELLED"


class PortEvent(enum.StrEnum):
    EDIT = "EDIT"
    WAIT_FOR_LOA = "WAIT_FOR_LOA"  # submitted without a signed LOA: held until it is signed
    SEND = "SEND"                  # handed to the carrier
    FOC = "FOC"
    REJECT = "REJECT"
    COMPLETE = "COMPLETE"
    CANCEL = "CANCEL"


EDITABLE_PORTS = frozenset({PortStatus.PENDING, PortStatus.REJECTED})
OPEN_PORTS = frozenset({PortStatus.SUBMITTED, PortStatus.FOC_RECEIVED})  # the carrier has them

_PORT_MOVES = {
    **{(s, PortEvent.EDIT): s for s in EDITABLE_PORTS},
    **{(s, PortEvent.WAIT_FOR_LOA): PortStatus.PENDING for s in EDITABLE_PORTS},
    **{(s, PortEvent.SEND): PortStatus.SUBMITTED for s in EDITABLE_PORTS},
    **{(s, PortEvent.FOC): PortStatus.FOC_RECEIVED for s in OPEN_PORTS},
    **{(s, PortEvent.REJECT): PortStatus.REJECTED for s in OPEN_PORTS},
    **{(s, PortEvent.COMPLETE): PortStatus.COMPLETED for s in OPEN_PORTS},
    **{(s, PortEvent.CANCEL): PortStatus.CANCELLED for s in EDITABLE_PORTS | OPEN_PORTS},
}

_PORT_EVENT_WORDS = {PortEvent.EDIT: "be changed", PortEvent.WAIT_FOR_LOA: "be submitted", PortEvent.SEND: "be submitted",
                     PortEvent.CANCEL: "be cancelled"}


def port_transition(status: PortStatus, event: PortEvent) -> PortStatus:
    try:
        return _PORT_MOVES[(status, event)]
    except KeyError:
        what = _PORT_EVENT_WORDS.get(event, f"take {event.value}")
        raise RuleViolation("port-order-state", "status", f"a port order that is {status.value} cannot {what}",
                            status=409) from None


def check_porting_allowed(subscription: str) -> None:
    if subscription != "PAID":
        raise RuleViolation("trial-cannot-port", None, "a trial organisation cannot port numbers in; upgrade to a paid subscription")


def check_port_number(number: str, index: int, field: str = "phoneNumbers") -> None:
    if is_toll_free(number):
        raise RuleViolation("toll-free-not-portable", f"{field}[{index}]", f"{number} is toll-free; toll-free numbers cannot be ported in")


# What the carrier needs before an order can be submitted (the LOA may follow later).
PORT_SUBMISSION_FIELDS = ("phoneNumbers", "btn", "companyName", "authorizedName", "serviceAddress", "bill")


def check_ready_to_submit(present: Iterable[str]) -> None:
    missing = [name for name in PORT_SUBMISSION_FIELDS if name not in set(present)]
    if missing:
        raise RuleViolation("port-order-incomplete", missing[0],
                            f"the order cannot be submitted without: {', '.join(missing)}")


def check_requested_completion(requested: date | None, at: time | None, today: date) -> None:
    if requested is not None and requested <= today:
        raise RuleViolation("requested-date-not-future", "requestedCompletion.date",
                            f"{requested.isoformat()} is not in the future (today is {today.isoformat()})")
    if at is not None and requested is None:
        raise RuleViolation("requested-time-without-date", "requestedCompletion.time", "a completion time needs a date")


_PDF_END = re.compile(rb"%%EOF\s*$")


def bill_content_type(content: bytes) -> str:
    """``application/pdf`` or ``image/png``, judged by the bytes: a file's name says nothing."""
    if content.startswith(b"%PDF-") and _PDF_END.search(content[-1024:]):
        return "application/pdf"
    # PNG: the signature, then the IHDR chunk that must come first.
    if content.startswith(b"\x89PNG\r\n\x1a\n") and content[12:16] == b"IHDR":
        return "image/png"
    if content.startswith(b"%PDF-"):
        raise RuleViolation("bill-type", "bill", "the PDF is truncated (no %%EOF at its end)")
    raise RuleViolation("bill-type", "bill", "the bill must be a PDF or PNG file (judged by its content, not its name)")


def check_bill(content: bytes, issue_date: date, today: date) -> str:
    """Validate an uploaded bill; returns its content type."""
    if len(content) > BILL_MAX_BYTES:
        raise RuleViolation("bill-too-large", "bill", f"the bill is {len(content)} bytes; at most {BILL_MAX_BYTES}", status=413)
    if not content:
        raise RuleViolation("bill-type", "bill", "the bill is empty")
    kind = bill_content_type(content)
    if issue_date > today:
        raise RuleViolation("bill-issue-date-future", "issueDate", f"{issue_date.isoformat()} is in the future")
    if issue_date < today - timedelta(days=BILL_MAX_AGE_DAYS):
        raise RuleViolation("bill-too-old", "issueDate",
                            f"the bill was issued {(today - issue_date).days} days ago; it must be from the last {BILL_MAX_AGE_DAYS} days")
    return kind


def check_loa(signed_name: str, title: str) -> None:
    if not signed_name.strip():
        raise RuleViolation("loa-name-required", "name", "the letter of authorisation needs the signer's name")
    if not title.strip():
        raise RuleViolation("loa-title-required", "title", "the letter of authorisation needs the signer's title")
