"""The simulated carrier's clock: move it on by business days and collect what fell due.

Present only while the simulator is configured (provisioning/api/app.py leaves out
/v1/carrierSimulator when there is no carrier; a real carrier adapter has no clock to move).
After an advance, pending number requests and port orders are brought up to date at once, so
a demo or a test sees FOC dates, rejections, completions and LOA reminders without waiting.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date

from pydantic import Field

from provisioning.api.framework import ApiContext, ApiError, ApiModel, ApiRequest, route
from provisioning.api.orders import sync_number_orders
from provisioning.api.ports import sync_port_orders
from provisioning.carrier import SimulatedCarrier

TAGS = ["carrierSimulator"]
log = logging.getLogger("callrouter.carrier")


class ClockIn(ApiModel):
    advance_business_days: int = Field(ge=0, le=260, description="Business days to move the carrier's clock on")


class ClockOut(ApiModel):
    today: date = Field(description="The carrier's date")
    advanced_business_days: int = Field(description="How far the clock has been moved on since the server started")
    number_orders_changed: list[str]
    port_orders_changed: list[str]


def _simulator(ctx: ApiContext) -> SimulatedCarrier:
    carrier = ctx.carrier
    if not isinstance(carrier, SimulatedCarrier):
        raise ApiError(404, "No carrier simulator", "the configured carrier is not the simulator, so it has no clock",
                       rule="carrier-simulator-not-configured")
    return carrier


def sync_with_carrier(ctx: ApiContext) -> tuple[list[str], list[str]]:
    """Bring number requests and port orders up to date with the carrier (any carrier)."""
    return sync_number_orders(ctx), sync_port_orders(ctx)


async def carrier_sync_loop(ctx: ApiContext, interval: float = 300.0) -> None:
    """Collect the carrier's answers every ``interval`` seconds, for as long as the server runs.

    The simulator's clock also moves with the real date, so without this a port would complete
    only when someone moves the clock; a real carrier answers only to polling.
    """
    while True:
        await asyncio.sleep(interval)
        if ctx.carrier is None:
            continue
        try:
            sync_with_carrier(ctx)
        except Exception:
            log.exception("collecting the carrier's answers failed; trying again in %.0f s", interval)


@route("GET", "/v1/carrierSimulator/clock", summary="Read the simulated carrier's clock", tags=TAGS,
       response=ClockOut, cache=False)
async def get_clock(req: ApiRequest) -> ClockOut:
    carrier = _simulator(req.ctx)
    return ClockOut(today=carrier.today(), advanced_business_days=carrier.advanced_business_days,
                    number_orders_changed=[], port_orders_changed=[])


@route("POST", "/v1/carrierSimulator/clock", summary="Move the simulated carrier's clock on", tags=TAGS,
       body=ClockIn, response=ClockOut)
async def advance_clock(req: ApiRequest) -> ClockOut:
    carrier = _simulator(req.ctx)
    carrier.advance(req.body.advance_business_days)
    numbers, ports = sync_with_carrier(req.ctx)
    return ClockOut(today=carrier.today(), advanced_business_days=carrier.advanced_business_days,
                    number_orders_changed=numbers, port_orders_changed=ports)
