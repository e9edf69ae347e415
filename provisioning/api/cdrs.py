"""GET /v1/cdrs: the records of finished calls, newest first.

Records are written by the call side in batches (not through a unit of work), so answers
are never served from the generation-keyed GET cache.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import func, or_, select

from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, route
from provisioning.tables_calls import CallRecordRow


class CdrQuery(PageQuery):
    start_time: datetime | None = Field(default=None, description="Calls that started at or after this time (ISO 8601)")
    end_time: datetime | None = Field(default=None, description="Calls that started before this time (ISO 8601)")
    person_id: str | None = Field(default=None, max_length=36, description="Calls made or received by this person")
    location_id: str | None = Field(default=None, max_length=36)
    direction: Literal["INTERNAL", "INBOUND", "OUTBOUND"] | None = None
    emergency: bool | None = None


class CdrOut(ApiModel):
    id: str
    call_id: str
    direction: str
    caller: dict[str, Any]
    callee: dict[str, Any]
    dialled: str
    caller_person_id: str | None
    callee_person_id: str | None
    location_id: str | None
    start_time: datetime
    answer_time: datetime | None
    end_time: datetime
    duration_seconds: float = Field(description="Talk time: from answer to end (0 when not answered)")
    disposition: str
    status: int | None
    international: bool
    emergency: bool
    hangup_by: str | None

    @classmethod
    def of(cls, row: CallRecordRow) -> "CdrOut":
        talk = (row.end_time - row.answer_time).total_seconds() if row.answer_time else 0.0
        return cls(id=row.id, call_id=row.call_id, direction=row.direction, caller=row.caller,
                   callee=row.callee, dialled=row.dialled, caller_person_id=row.caller_person_id,
                   callee_person_id=row.callee_person_id, location_id=row.location_id,
                   start_time=row.start_time, answer_time=row.answer_time, end_time=row.end_time,
                   duration_seconds=round(max(talk, 0.0), 3), disposition=row.disposition,
                   status=row.status, international=row.international, emergency=row.emergency,
                   hangup_by=row.hangup_by)


@route("GET", "/v1/cdrs", summary="List call records", tags=["cdrs"], query=CdrQuery,
       response=Page[CdrOut], cache=False)
async def list_cdrs(req: ApiRequest) -> Page[CdrOut]:
    q: CdrQuery = req.params
    if q.start_time and q.end_time and q.end_time <= q.start_time:
        raise ApiError(422, "Empty time range", "endTime must be after startTime", field="endTime",
                       rule="time-range")
    conditions = [CallRecordRow.org_id == req.org_id]
    if q.start_time:
        conditions.append(CallRecordRow.start_time >= q.start_time)
    if q.end_time:
        conditions.append(CallRecordRow.start_time < q.end_time)
    if q.person_id:
        conditions.append(or_(CallRecordRow.caller_person_id == q.person_id,
                              CallRecordRow.callee_person_id == q.person_id))
    if q.location_id:
        conditions.append(CallRecordRow.location_id == q.location_id)
    if q.direction:
        conditions.append(CallRecordRow.direction == q.direction)
    if q.emergency is not None:
        conditions.append(CallRecordRow.emergency == q.emergency)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(CallRecordRow).where(*conditions)) or 0
        rows = session.scalars(select(CallRecordRow).where(*conditions)
                               .order_by(CallRecordRow.start_time.desc(), CallRecordRow.id)
                               .offset(q.start).limit(q.max)).all()
    return Page[CdrOut](items=[CdrOut.of(r) for r in rows], start=q.start, max=q.max, total=total)
