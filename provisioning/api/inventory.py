"""Searching the carrier's inventory of available numbers (what a NUMBERS or BLOCK order can pick)."""

from __future__ import annotations

from pydantic import Field

from provisioning.api.framework import ApiError, ApiModel, ApiRequest, route
from provisioning.api.orders import held_numbers, require_carrier
from provisioning.carrier import CarrierError, InventoryQuery
from provisioning.lifecycle import NO_CALLING_PLAN, is_toll_free


class InventorySearch(ApiModel):
    country: str = Field(pattern=r"^[A-Za-z]{2}$", description="ISO 3166 alpha-2 country code")
    state: str | None = Field(default=None, min_length=1, max_length=50)
    area_code: str | None = Field(default=None, pattern=r"^[0-9]{1,5}$")
    prefix: str | None = Field(default=None, pattern=r"^[0-9][0-9 -]{0,14}$",
                               description="Leading digits of the national number, e.g. 512555")
    city: str | None = Field(default=None, min_length=1, max_length=100)
    quantity: int = Field(default=10, ge=1, le=100)
    consecutive: bool = Field(default=False, description="Only a run of consecutive numbers (for a BLOCK order)")


class AvailableNumberOut(ApiModel):
    phone_number: str
    country: str
    state: str | None
    city: str | None
    area_code: str | None
    rate_center: str | None


class InventoryOut(ApiModel):
    items: list[AvailableNumberOut]


@route("GET", "/v1/inventory/numbers", summary="Search available numbers", tags=["inventory"],
       query=InventorySearch, response=InventoryOut, cache=False,
       description="Countries without searchable inventory answer 422 (rule inventory-not-searchable): "
                   "order numbers there with a REQUEST order.")
async def search_inventory(req: ApiRequest) -> InventoryOut:
    params: InventorySearch = req.params
    country = params.country.upper()
    if country in NO_CALLING_PLAN:
        raise ApiError(422, "Breaks a business rule", f"the calling plan is not sold in {NO_CALLING_PLAN[country]}",
                       field="query.country", rule="calling-plan-not-sold")
    carrier = require_carrier(req.ctx)
    query = InventoryQuery(country=country, state=params.state, area_code=params.area_code, prefix=params.prefix,
                           city=params.city, quantity=params.quantity, consecutive=params.consecutive)
    with req.ctx.read() as session:
        held = held_numbers(session, country)
    try:
        found = carrier.search(query, exclude=held)
    except CarrierError as exc:
        raise ApiError(422, "No searchable inventory", exc.detail, field="query.country", rule="inventory-not-searchable") from None
    return InventoryOut(items=[
        AvailableNumberOut(phone_number=n.e164, country=n.country, state=n.state, city=n.city, area_code=n.area_code,
                           rate_center=n.rate_center)
        for n in found if not is_toll_free(n.e164)])
