"""Port orders as the API shows them: the request and response models, and the view of a stored order.

The operations are in provisioning/api/ports.py; this is what goes over the wire, kept apart so
that module stays about what can be done with an order.
"""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.api.framework import ApiModel, PageQuery
from provisioning.carrier import REJECTIONS, RejectionCode
from provisioning.lifecycle import PortStatus, RuleViolation, check_ready_to_submit
from provisioning.tables_orders import PortOrder, PortOrderBill

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PhoneText = Annotated[str, Field(min_length=1, max_length=32)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class ServiceAddressIn(ApiModel):
    address1: str = Field(min_length=1, max_length=200)
    address2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)


class RequestedCompletion(ApiModel):
    date: dt.date
    time: dt.time | None = Field(default=None, description="Local time of the cut-over, HH:MM")


class PortDetails(ApiModel):
    """Everything about the current carrier's account; any field may be given now or later."""

    account_number: str | None = Field(default=None, min_length=1, max_length=64)
    pin: str | None = Field(default=None, min_length=1, max_length=32, description="Write-only (wireless accounts)")
    btn: PhoneText | None = Field(default=None, description="Billing telephone number")
    company_name: Name | None = None
    authorized_name: Name | None = None
    service_address: ServiceAddressIn | None = None
    requested_completion: RequestedCompletion | None = None
    notification_email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)
    remaining_numbers_action: Literal["KEEP", "DISCONNECT"] | None = Field(
        default=None, description="When the main BTN is ported: what happens to numbers left behind")
    new_btn: PhoneText | None = Field(default=None, description="The account's BTN after the main BTN leaves")


class PortOrderIn(PortDetails):
    location_id: str = Field(min_length=1, max_length=36)
    phone_numbers: list[PhoneText] = Field(default_factory=list, max_length=1000)


class PortNumbersIn(ApiModel):
    phone_numbers: list[PhoneText] = Field(min_length=1, max_length=1000)


class LoaIn(ApiModel):
    name: Name
    title: Name


class FlaggedNumber(ApiModel):
    phone_number: str
    reason: str


class BillOut(ApiModel):
    content_type: str
    size: int
    sha256: str
    issue_date: date
    filename: str | None
    uploaded: datetime


class LoaOut(ApiModel):
    signed_name: str
    title: str
    signed_at: datetime
    covers_current_numbers: bool


class RejectionOut(ApiModel):
    code: RejectionCode
    description: str
    fix: str
    detail: str | None


class PortOrderOut(ApiModel):
    id: str
    location_id: str
    status: PortStatus
    phone_numbers: list[str]
    flagged_numbers: list[FlaggedNumber]
    account_number: str | None
    pin_set: bool
    btn: str | None
    company_name: str | None
    authorized_name: str | None
    service_address: ServiceAddressIn | None
    requested_completion: RequestedCompletion | None
    notification_email: str | None
    remaining_numbers_action: str | None
    new_btn: str | None
    bill: BillOut | None
    loa: LoaOut | None
    submit_requested: bool = Field(description="Submitted and waiting for the LOA to be signed")
    missing_for_submission: list[str]
    carrier_reference: str | None
    submitted_on: date | None
    foc_date: date | None
    rejection: RejectionOut | None
    completed_on: date | None
    reminders_sent: int
    created_by: str
    created: datetime
    updated: datetime


class PortNumbersOut(ApiModel):
    added: list[str]
    flagged: list[FlaggedNumber]
    order: PortOrderOut


class PortOrderQuery(PageQuery):
    status: PortStatus | None = None
    location_id: str | None = Field(default=None, max_length=36)


def current_bill(session: Session, order: PortOrder) -> PortOrderBill | None:
    return session.scalar(select(PortOrderBill).where(PortOrderBill.port_order_id == order.id)
                          .order_by(PortOrderBill.created_at.desc(), PortOrderBill.id).limit(1))


def present_fields(order: PortOrder, bill: PortOrderBill | None) -> list[str]:
    values = {"phoneNumbers": order.numbers, "btn": order.btn, "companyName": order.company_name,
              "authorizedName": order.authorized_name, "serviceAddress": order.service_address, "bill": bill}
    return [name for name, value in values.items() if value]


def port_order_out(session: Session, order: PortOrder) -> PortOrderOut:
    bill = current_bill(session, order)
    rejection = None
    if order.status == PortStatus.REJECTED and order.rejection_code is not None:
        description, fix = REJECTIONS[order.rejection_code]
        rejection = RejectionOut(code=order.rejection_code, description=description, fix=fix, detail=order.rejection_detail)
    try:
        check_ready_to_submit(present_fields(order, bill))
        missing: list[str] = []
    except RuleViolation as violation:
        missing = violation.detail.split(": ", 1)[1].split(", ")
    return PortOrderOut(
        id=order.id, location_id=order.location_id, status=order.status, phone_numbers=list(order.numbers),
        flagged_numbers=[FlaggedNumber.model_validate(f) for f in order.flagged],
        account_number=order.account_number, pin_set=order.pin is not None, btn=order.btn,
        company_name=order.company_name, authorized_name=order.authorized_name,
        service_address=ServiceAddressIn.model_validate(order.service_address) if order.service_address else None,
        requested_completion=(RequestedCompletion(date=order.requested_date, time=order.requested_time)
                              if order.requested_date else None),
        notification_email=order.notification_email, remaining_numbers_action=order.remaining_numbers_action,
        new_btn=order.new_btn,
        bill=BillOut(content_type=bill.content_type, size=bill.size, sha256=bill.sha256, issue_date=bill.issue_date,
                     filename=bill.filename, uploaded=bill.created_at) if bill else None,
        loa=LoaOut(signed_name=order.loa_signed_name, title=order.loa_title, signed_at=order.loa_signed_at,
                   covers_current_numbers=sorted(order.loa_numbers or []) == sorted(order.numbers))
        if order.loa_signed_at else None,
        submit_requested=order.submit_requested, missing_for_submission=missing,
        carrier_reference=order.carrier_reference, submitted_on=order.submitted_on, foc_date=order.foc_date,
        rejection=rejection, completed_on=order.completed_on, reminders_sent=order.reminders_sent,
        created_by=order.created_by, created=order.created_at, updated=order.updated_at)


def port_order_snapshot(session: Session, order: PortOrder) -> dict[str, Any]:
    return port_order_out(session, order).model_dump(mode="json", by_alias=True)
