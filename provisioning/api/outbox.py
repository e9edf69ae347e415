"""The mail outbox: every mail the service sent, is sending, or (with no SMTP server) logged."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import func, select

from provisioning.api.framework import ApiModel, ApiRequest, Page, PageQuery, route
from provisioning.service import WRITE_ROLES
from provisioning.tables_access import OutboxMessage

Status = Literal["QUEUED", "SENDING", "SENT", "FAILED", "LOGGED"]


class OutboxQuery(PageQuery):
    status: Status | None = None
    to: str | None = Field(default=None, max_length=254)


class OutboxMessageOut(ApiModel):
    id: str
    to: str
    subject: str
    body: str
    status: Status
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None

    @classmethod
    def of(cls, row: OutboxMessage) -> "OutboxMessageOut":
        return cls(id=row.id, to=row.to, subject=row.subject, body=row.body, status=row.status,  # type: ignore[arg-type]
                   attempts=row.attempts, last_error=row.last_error, created_at=row.created_at, sent_at=row.sent_at)


@route("GET", "/v1/outbox", summary="Mail sent or kept by the service, newest first", tags=["outbox"],
       query=OutboxQuery, response=Page[OutboxMessageOut], roles=WRITE_ROLES, cache=False)
async def list_outbox(req: ApiRequest) -> Page[OutboxMessageOut]:
    q: OutboxQuery = req.params
    where = [OutboxMessage.org_id == req.org_id]
    if q.status is not None:
        where.append(OutboxMessage.status == q.status)
    if q.to is not None:
        where.append(OutboxMessage.to == q.to)
    with req.ctx.read() as s:
        total = s.scalar(select(func.count()).select_from(OutboxMessage).where(*where)) or 0
        rows = s.scalars(select(OutboxMessage).where(*where)
                         .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id).offset(q.start).limit(q.max))
        return Page[OutboxMessageOut](items=[OutboxMessageOut.of(r) for r in rows], start=q.start, max=q.max,
                                      total=total)
