"""The audit trail: every change with its actor, action, target, before, after and time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from provisioning.api.framework import ApiModel, ApiRequest, Page, PageQuery, route
from provisioning.tables_access import AuditEvent


class AuditQuery(PageQuery):
    target_type: str | None = Field(default=None, max_length=64, description="location, person, number, ...")
    target_id: str | None = Field(default=None, max_length=64)
    actor: str | None = Field(default=None, max_length=254, description="The actor's name (e-mail or label)")
    action: str | None = Field(default=None, max_length=64, description="e.g. location.updated")
    from_: datetime | None = Field(default=None, alias="from", description="Events at or after this time")
    to: datetime | None = Field(default=None, description="Events before this time")


class AuditEventOut(ApiModel):
    id: str
    time: datetime
    actor: str
    actor_token_id: str | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, row: AuditEvent) -> "AuditEventOut":
        return cls(id=row.id, time=row.time, actor=row.actor_name, actor_token_id=row.actor_id, action=row.action,
                   target_type=row.target_type, target_id=row.target_id, before=row.before, after=row.after)


@route("GET", "/v1/auditEvents", summary="The audit trail, newest first", tags=["auditEvents"], query=AuditQuery,
       response=Page[AuditEventOut])
async def list_audit_events(req: ApiRequest) -> Page[AuditEventOut]:
    q: AuditQuery = req.params
    where: list[Any] = [AuditEvent.org_id == req.org_id]
    for column, value in ((AuditEvent.target_type, q.target_type), (AuditEvent.target_id, q.target_id),
                          (AuditEvent.actor_name, q.actor), (AuditEvent.action, q.action)):
        if value is not None:
            where.append(column == value)
    if q.from_ is not None:
        where.append(AuditEvent.time >= _aware(q.from_))
    if q.to is not None:
        where.append(AuditEvent.time < _aware(q.to))
    with req.ctx.read() as s:
        total = s.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
        rows = s.scalars(select(AuditEvent).where(*where)
                         .order_by(AuditEvent.time.desc(), AuditEvent.seq.desc(), AuditEvent.id)
                         .offset(q.start).limit(q.max))
        return Page[AuditEventOut](items=[AuditEventOut.of(r) for r in rows], start=q.start, max=q.max, total=total)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
