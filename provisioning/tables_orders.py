"""Tables for number orders and port orders.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them. The
numbers themselves live in the ``numbers`` table (provisioning.store.Number) from the moment the
carrier hands them over (INACTIVE until the terms are accepted) or the port order lists them
(PORT_PENDING until the port completes); the orders keep which numbers they brought, so a block
can be told apart and deleted only whole.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, LargeBinary, String, Time
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.carrier import NumberKind, RejectionCode
from provisioning.lifecycle import OrderKind, OrderStatus, PortStatus
from provisioning.store import Base, JSONDocument, UTCDateTime, _enum, _Timestamps, new_id


class NumberOrder(_Timestamps, Base):
    __tablename__ = "number_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    kind: Mapped[OrderKind] = mapped_column(_enum(OrderKind, "order_kind"))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    numbers: Mapped[list[str]] = mapped_column(JSONDocument, default=list)  # what the carrier delivered
    released: Mapped[list[str]] = mapped_column(JSONDocument, default=list)  # deleted since
    search: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)  # SEARCH/BLOCK criteria as given
    number_kind: Mapped[NumberKind | None] = mapped_column(_enum(NumberKind, "number_kind"))  # REQUEST only
    carrier_reference: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(254))
    terms_accepted_by: Mapped[str | None] = mapped_column(String(254))
    terms_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PortOrder(_Timestamps, Base):
    __tablename__ = "port_orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    status: Mapped[PortStatus] = mapped_column(_enum(PortStatus, "port_status"), index=True)
    numbers: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    # Entered but not portable: [{"phoneNumber": ..., "reason": ...}], kept to show the administrator.
    flagged: Mapped[list[dict[str, str]]] = mapped_column(JSONDocument, default=list)
    account_number: Mapped[str | None] = mapped_column(String(64))
    pin: Mapped[str | None] = mapped_column(String(32))  # never shown back, only whether it is set
    btn: Mapped[str | None] = mapped_column(String(16))
    company_name: Mapped[str | None] = mapped_column(String(200))
    authorized_name: Mapped[str | None] = mapped_column(String(200))
    service_address: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    remaining_numbers_action: Mapped[str | None] = mapped_column(String(16))
    new_btn: Mapped[str | None] = mapped_column(String(16))
    requested_date: Mapped[date | None] = mapped_column(Date)
    requested_time: Mapped[time | None] = mapped_column(Time)
    notification_email: Mapped[str | None] = mapped_column(String(254))
    loa_signed_name: Mapped[str | None] = mapped_column(String(200))
    loa_title: Mapped[str | None] = mapped_column(String(200))
    loa_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    loa_numbers: Mapped[list[str] | None] = mapped_column(JSONDocument)  # what the signer authorised
    submit_requested: Mapped[bool] = mapped_column(Boolean, default=False)  # held until the LOA is signed
    carrier_reference: Mapped[str | None] = mapped_column(String(64))
    submitted_on: Mapped[date | None] = mapped_column(Date)  # the carrier's date
    foc_date: Mapped[date | None] = mapped_column(Date)
    rejection_code: Mapped[RejectionCode | None] = mapped_column(_enum(RejectionCode, "rejection_code"))
    rejection_detail: Mapped[str | None] = mapped_column(String(500))
    completed_on: Mapped[date | None] = mapped_column(Date)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_reminder_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(254))


class PortOrderBill(_Timestamps, Base):
    """The losing carrier's bill uploaded for a port order; the newest one is the one sent."""

    __tablename__ = "port_order_bills"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    port_order_id: Mapped[str] = mapped_column(ForeignKey("port_orders.id", ondelete="CASCADE"), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date)
    filename: Mapped[str | None] = mapped_column(String(255))
    uploaded_by: Mapped[str] = mapped_column(String(254))
