"""Numbers: list and filter, and each number's own emergency service address.

Every number shows its effective ESA and where it comes from: the location's (the default)
or its own (``PUT /v1/numbers/{e164}/emergencyAddress``, e.g. for a remote worker; ``{}``
reverts to the location's).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy import func, select

from provisioning.api._views import NumberOut, get_number, number_view, view
from provisioning.api.framework import (
    ApiError, ApiModel, ApiRequest, Page, PageQuery, not_found, route, validation_error,
)
from provisioning.models import AddressIn, Country, normalize_e164
from provisioning.store import Location, Number, NumberState


class NumberQuery(PageQuery):
    location_id: str | None = Field(default=None, max_length=36)
    state: NumberState | None = None
    owner_id: str | None = Field(default=None, max_length=36, description="Numbers assigned to this person")
    available: bool | None = Field(default=None, description="true: neither assigned nor a main number")


class EsaOverride(ApiModel):
    """An emergency address of the number's own; all fields empty (``{}``) reverts to the location's."""

    country: Country | None = None
    address1: str | None = Field(default=None, min_length=1, max_length=200)
    address2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, min_length=1, max_length=20)

    def address(self) -> dict[str, str] | None:
        """The override as stored, checked as a complete address (country rules too); None for {}."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        if not data:
            return None
        try:
            return AddressIn.model_validate(data).as_json()
        except ValidationError as exc:
            raise validation_error(exc) from None


_JOINED = Number.__table__.join(Location.__table__, Number.location_id == Location.id)
_ROWS = select(*Number.__table__.c, Location.emergency_address.label("location_esa")).select_from(_JOINED)


def _e164(req: ApiRequest) -> str:
    text = req.path["e164"]
    e164 = normalize_e164(text)
    if e164 is None:
        raise ApiError(404, "number not found", f"{text!r} is not an E.164 number", field="e164", rule="not-found")
    return e164


@route("GET", "/v1/numbers", summary="List numbers, with their effective emergency address", tags=["numbers"],
       query=NumberQuery, response=Page[NumberOut])
async def list_numbers(req: ApiRequest) -> Page[NumberOut]:
    q: NumberQuery = req.params
    where: list[Any] = [Location.org_id == req.org_id]
    if q.location_id is not None:
        where.append(Number.location_id == q.location_id)
    if q.state is not None:
        where.append(Number.state == q.state)
    if q.owner_id is not None:
        where.append(Number.owner_id == q.owner_id)
    if q.available is not None:
        free = Number.owner_id.is_(None) & Number.is_main.is_(False)
        where.append(free if q.available else ~free)
    # Core on the context's read connection: this is the API's hottest read.
    with req.ctx.read_connection() as conn:
        total = conn.execute(select(func.count()).select_from(_JOINED).where(*where)).scalar_one()
        rows = conn.execute(_ROWS.where(*where).order_by(Number.e164).offset(q.start).limit(q.max)).all()
    items = [NumberOut.of(row, row.location_esa) for row in rows]  # type: ignore[arg-type]
    return Page[NumberOut](items=items, start=q.start, max=q.max, total=total)


@route("GET", "/v1/numbers/{e164}", summary="One number", tags=["numbers"], response=NumberOut)
async def get_number_op(req: ApiRequest) -> NumberOut:
    e164 = _e164(req)
    with req.ctx.read_connection() as conn:
        row = conn.execute(_ROWS.where(Number.e164 == e164, Location.org_id == req.org_id)).first()
    if row is None:
        raise not_found("number", e164, field="e164")
    return NumberOut.of(row, row.location_esa)  # type: ignore[arg-type]


@route("PUT", "/v1/numbers/{e164}/emergencyAddress",
       summary="Give the number its own emergency address ({} reverts to the location's)", tags=["numbers"],
       body=EsaOverride, response=NumberOut)
async def put_number_esa(req: ApiRequest) -> NumberOut:
    body: EsaOverride = req.body
    with req.ctx.unit_of_work(req.actor) as uow:
        number, location = get_number(uow.session, req.org_id, _e164(req), field="e164")
        before = NumberOut.of(number, location.emergency_address)
        req.check_if_match(before)
        number.emergency_address = body.address()
        after = NumberOut.of(number, location.emergency_address)
        if after != before:
            uow.change("number", number.e164, "updated", view(before), number_view(number, location))
    return after
