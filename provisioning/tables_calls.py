"""Tables for call records: one row per call the B2BUA finished, written behind in batches.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.store import Base, JSONDocument, UTCDateTime, new_id


class CallRecordRow(Base):
    __tablename__ = "call_records"
    __table_args__ = (
        Index("ix_call_records_org_id_start_time", "org_id", "start_time"),
        Index("ix_call_records_caller_person_id", "caller_person_id"),
        Index("ix_call_records_callee_person_id", "callee_person_id"),
        Index("ix_call_records_location_id", "location_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(String(36))
    call_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16))        # INTERNAL, INBOUND, OUTBOUND
    caller: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    callee: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    dialled: Mapped[str] = mapped_column(String(64))
    caller_person_id: Mapped[str | None] = mapped_column(String(36))
    callee_person_id: Mapped[str | None] = mapped_column(String(36))
    location_id: Mapped[str | None] = mapped_column(String(36))   # the caller's, else the callee's
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    answer_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    disposition: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)
    international: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    hangup_by: Mapped[str | None] = mapped_column(String(16))
