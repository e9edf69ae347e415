"""Number orders: new numbers from the carrier for a location on the calling plan.

Kinds: NUMBERS (specific numbers from the inventory), BLOCK (consecutive numbers; paid
subscriptions only; deleted only whole), SEARCH (whatever an inventory search finds, up to a
quantity) and REQUEST (N local or national numbers where the carrier has no searchable
inventory; fulfilled later). Every limit is a rule of provisioning/lifecycle.py. Delivered
numbers enter the ``numbers`` table INACTIVE and the order waits (ACTION_REQUIRED) until a
customer administrator accepts the terms of service; then they are ACTIVE and routable.

The helpers at the top (carrier access, rule errors, number events) are shared with the other
order modules (ports, inventory, carrier_sim).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from pydantic import Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api._views import number_view, person_view, view
from provisioning.api.framework import (
    ApiContext,
    ApiError,
    ApiModel,
    ApiRequest,
    Page,
    PageQuery,
    UnitOfWork,
    route,
)
from provisioning.carrier import (
    Carrier,
    CarrierError,
    InventoryQuery,
    NumberKind,
    NumberRequest,
    RequestPhase,
    UnknownReference,
)
from provisioning.lifecycle import (
    LocationFacts,
    OrderEvent,
    OrderKind,
    OrderStatus,
    OrgFacts,
    RuleViolation,
    check_number_order,
    check_number_removal,
    check_terms_acceptance,
    order_transition,
    parse_numbers,
)
from provisioning.store import Location, Number, NumberState, Organization, Person
from provisioning.tables_orders import NumberOrder

TAGS = ["numberOrders"]


# --- shared by the order modules ---------------------------------------------------------------


def rule_error(violation: RuleViolation) -> ApiError:
    return ApiError(violation.status, violation.title, violation.detail, field=violation.field, rule=violation.rule)


def require_carrier(ctx: ApiContext) -> Carrier:
    if ctx.carrier is None:
        raise ApiError(503, "No carrier", "no carrier is configured, so numbers cannot be ordered or ported "
                       "(set carrier.simulator in the configuration, or plug in a carrier adapter)",
                       rule="carrier-not-configured")
    return ctx.carrier


def load_location(session: Session, org_id: str, location_id: str, field: str = "locationId") -> Location:
    location = session.get(Location, location_id)
    if location is None or location.org_id != org_id:
        raise ApiError(404, "location not found", f"no location with id {location_id!r} in this organisation",
                       field=field, rule="not-found")
    return location


def held_numbers(session: Session, country: str) -> set[str]:
    """Numbers of ``country`` already in the store (any organisation): never offered again."""
    code = phonenumbers.country_code_for_region(country)
    return set(session.scalars(select(Number.e164).where(Number.e164.like(f"+{code}%"))))


def add_numbers(uow: UnitOfWork, location: Location, numbers: list[str], state: NumberState) -> None:
    for e164 in numbers:
        row = Number(e164=e164, location_id=location.id, state=state, is_main=False)
        uow.session.add(row)
        uow.session.flush()
        uow.change("number", e164, "created", None, number_view(row, location))


def set_number_state(uow: UnitOfWork, numbers: list[str], frm: NumberState, to: NumberState) -> list[str]:
    """Move numbers from one state to another (e.g. INACTIVE to ACTIVE), publishing each change."""
    changed = []
    for row in uow.session.scalars(select(Number).where(Number.e164.in_(numbers), Number.state == frm)):
        before = number_view(row, row.location)
        row.state = to
        uow.session.flush()
        uow.change("number", row.e164, "updated", before, number_view(row, row.location))
        changed.append(row.e164)
    return changed


def remove_numbers(uow: UnitOfWork, numbers: list[str]) -> None:
    """Delete numbers; a person holding one loses it (their phoneNumber is cleared too)."""
    rows = list(uow.session.scalars(select(Number).where(Number.e164.in_(numbers))))
    for person in uow.session.scalars(select(Person).where(Person.phone_number.in_(numbers))):
        before = view(person_view(uow.session, person))
        person.phone_number = None
        uow.session.flush()
        uow.change("person", person.id, "updated", before, view(person_view(uow.session, person)))
    for row in rows:
        before = number_view(row, row.location)
        uow.session.delete(row)
        uow.session.flush()
        uow.change("number", row.e164, "deleted", before, None)


def numbers_in_use(session: Session, numbers: list[str]) -> list[str]:
    """Numbers given to a person or serving as a location's main number."""
    used = set(session.scalars(select(Number.e164).where(
        Number.e164.in_(numbers), (Number.owner_id.is_not(None)) | Number.is_main)))
    used |= set(session.scalars(select(Location.main_number).where(Location.main_number.in_(numbers))))
    used |= set(session.scalars(select(Person.phone_number).where(Person.phone_number.in_(numbers))))
    return [n for n in numbers if n in used]


# --- models ------------------------------------------------------------------------------------

PhoneText = Annotated[str, Field(min_length=1, max_length=32)]


class SearchCriteria(ApiModel):
    state: str | None = Field(default=None, min_length=1, max_length=50)
    area_code: str | None = Field(default=None, pattern=r"^[0-9]{1,5}$")
    prefix: str | None = Field(default=None, pattern=r"^[0-9][0-9 -]{0,14}$",
                               description="Leading digits of the national number, e.g. 512555")
    city: str | None = Field(default=None, min_length=1, max_length=100)


class NumberOrderIn(ApiModel):
    location_id: str = Field(min_length=1, max_length=36)
    kind: OrderKind
    phone_numbers: list[PhoneText] | None = Field(
        default=None, max_length=1000, description="NUMBERS and BLOCK: the numbers (a block's must be consecutive)")
    quantity: int | None = Field(default=None, ge=0, le=10_000,
                                 description="SEARCH, REQUEST and BLOCK without phoneNumbers: how many")
    search: SearchCriteria | None = Field(default=None, description="SEARCH and BLOCK: where to look")
    number_type: NumberKind | None = Field(default=None, description="REQUEST: LOCAL or NATIONAL numbers")


class NumberOrderOut(ApiModel):
    id: str
    location_id: str
    kind: OrderKind
    status: OrderStatus
    quantity: int
    phone_numbers: list[str]
    released_numbers: list[str]
    search: SearchCriteria | None
    number_type: NumberKind | None
    error: str | None = Field(description="Why the carrier could not fill the order (status ERROR)")
    action_required: str | None = Field(description="What the customer must do (status ACTION_REQUIRED)")
    created_by: str
    terms_accepted_by: str | None
    terms_accepted_at: datetime | None
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, order: NumberOrder) -> NumberOrderOut:
        return cls(
            id=order.id, location_id=order.location_id, kind=order.kind, status=order.status,
            quantity=order.quantity, phone_numbers=list(order.numbers), released_numbers=list(order.released),
            search=SearchCriteria.model_validate(order.search) if order.search else None,
            number_type=order.number_kind, error=order.error,
            action_required=(
                "A customer administrator (the owner or a full administrator) must accept the terms of service: "
                f"POST /v1/numberOrders/{order.id}/acceptTerms" if order.status == OrderStatus.ACTION_REQUIRED else None),
            created_by=order.created_by, terms_accepted_by=order.terms_accepted_by,
            terms_accepted_at=order.terms_accepted_at, created=order.created_at, updated=order.updated_at)


def snapshot(order: NumberOrder) -> dict[str, Any]:
    return NumberOrderOut.of(order).model_dump(mode="json", by_alias=True)


class NumberOrderQuery(PageQuery):
    status: OrderStatus | None = None
    kind: OrderKind | None = None
    location_id: str | None = Field(default=None, max_length=36)


class ReleaseQuery(ApiModel):
    phone_numbers: list[PhoneText] = Field(min_length=1, max_length=1000,
                                           description="Numbers to delete (repeat the parameter or separate with commas)")

    @field_validator("phone_numbers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


# --- rules that need the store -----------------------------------------------------------------


def org_facts(session: Session, org: Organization) -> OrgFacts:
    held = session.scalar(select(func.count()).select_from(Number).join(Location).where(Location.org_id == org.id))
    waiting = session.scalar(select(func.coalesce(func.sum(NumberOrder.quantity), 0)).where(
        NumberOrder.org_id == org.id, NumberOrder.kind == OrderKind.REQUEST, NumberOrder.status == OrderStatus.PENDING))
    return OrgFacts(str(org.subscription), int(held or 0) + int(waiting or 0))


_FIELDS_BY_KIND = {
    OrderKind.NUMBERS: ({"phone_numbers"}, {"quantity", "search", "number_type"}),
    OrderKind.BLOCK: (set(), {"number_type"}),
    OrderKind.SEARCH: ({"quantity"}, {"phone_numbers", "number_type"}),
    OrderKind.REQUEST: ({"quantity", "number_type"}, {"phone_numbers", "search"}),
}


def _check_fields(body: NumberOrderIn) -> None:
    needed, refused = _FIELDS_BY_KIND[body.kind]
    for name in sorted(needed):
        if getattr(body, name) is None:
            raise ApiError(422, "Missing field", f"an order of kind {body.kind} needs {camel(name)}",
                           field=camel(name), rule="number-order-field-required")
    for name in sorted(refused):
        if getattr(body, name) is not None:
            raise ApiError(422, "Field not used by this kind", f"an order of kind {body.kind} takes no {camel(name)}",
                           field=camel(name), rule="number-order-field-not-allowed")
    if body.kind == OrderKind.BLOCK and (body.phone_numbers is None) == (body.quantity is None):
        raise ApiError(422, "Missing field", "a BLOCK order gives either phoneNumbers or a quantity (with a search)",
                       field="quantity" if body.phone_numbers is None else "phoneNumbers", rule="number-order-field-required")
    if body.kind == OrderKind.BLOCK and body.phone_numbers is not None and body.search is not None:
        raise ApiError(422, "Field not used by this kind", "a BLOCK order with phoneNumbers takes no search",
                       field="search", rule="number-order-field-not-allowed")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _pick(carrier: Carrier, session: Session, country: str, body: NumberOrderIn, quantity: int) -> list[str]:
    criteria = body.search or SearchCriteria()
    query = InventoryQuery(country=country, state=criteria.state, area_code=criteria.area_code, prefix=criteria.prefix,
                           city=criteria.city, quantity=quantity, consecutive=body.kind == OrderKind.BLOCK)
    found = [n.e164 for n in carrier.search(query, exclude=held_numbers(session, country))]
    if len(found) < quantity:
        what = "consecutive numbers" if query.consecutive else "numbers"
        raise ApiError(422, "Not enough numbers", f"the inventory has {len(found)} matching {what}, "
                       f"{quantity} asked; widen the search or ask for fewer", field="quantity",
                       rule="inventory-insufficient")
    return found


def _deliver(uow: UnitOfWork, order: NumberOrder, location: Location, numbers: list[str]) -> None:
    order.numbers = list(numbers)
    order.status = order_transition(order.status, OrderEvent.DELIVERED)
    add_numbers(uow, location, numbers, NumberState.INACTIVE)


# --- operations --------------------------------------------------------------------------------


@route("POST", "/v1/numberOrders", summary="Order new numbers", tags=TAGS, body=NumberOrderIn,
       response=NumberOrderOut, status=201,
       description="NUMBERS, BLOCK and SEARCH orders are delivered at once (status ACTION_REQUIRED until a customer "
                   "administrator accepts the terms); REQUEST orders stay PENDING until the carrier fills them.")
async def create_number_order(req: ApiRequest) -> NumberOrderOut:
    body: NumberOrderIn = req.body
    carrier = require_carrier(req.ctx)
    provisioned: list[str] = []
    try:
        with req.ctx.unit_of_work(req.actor) as uow:
            session = uow.session
            location = load_location(session, req.org_id, body.location_id)
            org = session.get(Organization, req.org_id)
            _check_fields(body)
            try:
                numbers = parse_numbers(body.phone_numbers or [], location.country, "phoneNumbers")
                quantity = len(numbers) if body.phone_numbers is not None else int(body.quantity or 0)
                check_number_order(body.kind, org_facts(session, org),
                                   LocationFacts(location.country, location.pstn_type and str(location.pstn_type)),
                                   numbers, quantity)
            except RuleViolation as violation:
                raise rule_error(violation) from None
            order = NumberOrder(org_id=org.id, location_id=location.id, kind=body.kind, status=OrderStatus.PENDING,
                                quantity=quantity, numbers=[], released=[], number_kind=body.number_type,
                                search=body.search.model_dump(by_alias=True, exclude_none=True) if body.search else None,
                                created_by=req.actor.name)
            searchable = carrier.searchable(location.country)
            if body.kind == OrderKind.REQUEST:
                if searchable:
                    raise ApiError(422, "Inventory is searchable", f"the carrier has searchable inventory in "
                                   f"{location.country}; order NUMBERS, BLOCK or SEARCH instead of a REQUEST",
                                   field="kind", rule="request-where-inventory-searchable")
                try:
                    order.carrier_reference = carrier.request_numbers(
                        NumberRequest(location.country, body.number_type, quantity),
                        exclude=held_numbers(session, location.country))
                except CarrierError as exc:
                    raise ApiError(422, "Request not offered", exc.detail, field="numberType", rule=exc.code) from None
            else:
                if not searchable:
                    raise ApiError(422, "No searchable inventory", f"the carrier has no searchable inventory in "
                                   f"{location.country}; order kind REQUEST (N local or national numbers)",
                                   field="kind", rule="inventory-not-searchable")
                if not numbers:
                    numbers = _pick(carrier, session, location.country, body, quantity)
                held = held_numbers(session, location.country)
                for i, number in enumerate(numbers):
                    if number in held:
                        raise ApiError(409, "Number exists", f"{number} is already a number on this service",
                                       field=f"phoneNumbers[{i}]", rule="number-exists")
                try:
                    carrier.provision(numbers)
                except CarrierError as exc:
                    first = numbers.index(exc.numbers[0]) if exc.numbers and exc.numbers[0] in numbers else None
                    raise ApiError(422, "Number not available", exc.detail, rule="number-not-available",
                                   field=f"phoneNumbers[{first}]" if first is not None else "phoneNumbers") from None
                provisioned = numbers
                _deliver(uow, order, location, numbers)
            session.add(order)
            session.flush()
            uow.change("numberOrder", order.id, "created", None, snapshot(order))
            out = NumberOrderOut.of(order)
    except BaseException:
        if provisioned:  # nothing was stored, so the carrier takes them back
            carrier.release(provisioned)
        raise
    return out


@route("GET", "/v1/numberOrders", summary="List number orders", tags=TAGS, query=NumberOrderQuery,
       response=Page[NumberOrderOut])
async def list_number_orders(req: ApiRequest) -> Page[NumberOrderOut]:
    params: NumberOrderQuery = req.params
    query = select(NumberOrder).where(NumberOrder.org_id == req.org_id)
    if params.status is not None:
        query = query.where(NumberOrder.status == params.status)
    if params.kind is not None:
        query = query.where(NumberOrder.kind == params.kind)
    if params.location_id is not None:
        query = query.where(NumberOrder.location_id == params.location_id)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(query.order_by(NumberOrder.created_at, NumberOrder.id)
                               .offset(params.start).limit(params.max))
        items = [NumberOrderOut.of(o) for o in rows]
    return Page[NumberOrderOut](items=items, start=params.start, max=params.max, total=total or 0)


def _load_order(session: Session, org_id: str, order_id: str) -> NumberOrder:
    order = session.get(NumberOrder, order_id)
    if order is None or order.org_id != org_id:
        raise ApiError(404, "number order not found", f"no number order with id {order_id!r} in this organisation",
                       rule="not-found")
    return order


@route("GET", "/v1/numberOrders/{orderId}", summary="Get a number order", tags=TAGS, response=NumberOrderOut)
async def get_number_order(req: ApiRequest) -> NumberOrderOut:
    with req.ctx.read() as session:
        return NumberOrderOut.of(_load_order(session, req.org_id, req.path["orderId"]))


@route("POST", "/v1/numberOrders/{orderId}/acceptTerms", summary="Accept the terms of service", tags=TAGS,
       response=NumberOrderOut,
       description="Only a customer administrator (OWNER or FULL_ADMIN) may accept; the order's numbers become ACTIVE.")
async def accept_terms(req: ApiRequest) -> NumberOrderOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load_order(uow.session, req.org_id, req.path["orderId"])
        before = snapshot(order)
        try:
            check_terms_acceptance(str(req.actor.role), order.status)
        except RuleViolation as violation:
            raise rule_error(violation) from None
        order.status = OrderStatus.COMPLETED
        order.terms_accepted_by = req.actor.name
        order.terms_accepted_at = uow.now
        set_number_state(uow, list(order.numbers), NumberState.INACTIVE, NumberState.ACTIVE)
        uow.session.flush()
        uow.change("numberOrder", order.id, "updated", before, snapshot(order))
        return NumberOrderOut.of(order)


@route("DELETE", "/v1/numberOrders/{orderId}/numbers", summary="Delete numbers an order brought", tags=TAGS,
       query=ReleaseQuery, response=NumberOrderOut,
       description="The numbers go back to the carrier. A block's numbers are deleted only as a whole block; "
                   "numbers given to a person or used as a main number must be freed first.")
async def release_numbers(req: ApiRequest) -> NumberOrderOut:
    params: ReleaseQuery = req.params
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load_order(uow.session, req.org_id, req.path["orderId"])
        req.check_if_match(NumberOrderOut.of(order))
        before = snapshot(order)
        location = uow.session.get(Location, order.location_id)
        try:
            wanted = parse_numbers(params.phone_numbers, location.country, "phoneNumbers")
            check_number_removal(order.kind, list(order.numbers), wanted)
        except RuleViolation as violation:
            raise rule_error(violation) from None
        used = numbers_in_use(uow.session, wanted)
        if used:
            raise ApiError(409, "Number in use", f"free these numbers first (a person or a main number uses them): "
                           f"{', '.join(used)}", field="phoneNumbers", rule="number-in-use")
        remove_numbers(uow, wanted)
        order.numbers = [n for n in order.numbers if n not in wanted]
        order.released = list(order.released) + wanted
        uow.session.flush()
        uow.change("numberOrder", order.id, "updated", before, snapshot(order))
        out = NumberOrderOut.of(order)
    carrier.release(wanted)  # only once the deletion is committed
    return out


# --- the carrier's side: requests filled later ---------------------------------------------------


def sync_number_orders(ctx: ApiContext) -> list[str]:
    """Collect what the carrier did with pending REQUEST orders; returns the ids that changed.

    Each order is its own unit of work, so one order's trouble does not hold up the others.
    """
    carrier = require_carrier(ctx)
    with ctx.read() as session:
        pending = session.execute(select(NumberOrder.id, NumberOrder.org_id).where(
            NumberOrder.kind == OrderKind.REQUEST, NumberOrder.status == OrderStatus.PENDING)).all()
    changed = []
    for order_id, org_id in pending:
        with ctx.unit_of_work(None, org_id=org_id) as uow:
            order = uow.session.get(NumberOrder, order_id)
            if order is None or order.status != OrderStatus.PENDING:
                continue
            location = uow.session.get(Location, order.location_id)
            before = snapshot(order)
            try:
                progress = carrier.poll_request(order.carrier_reference or "")
            except UnknownReference:  # the carrier forgot it (the simulator restarted): ask again
                order.carrier_reference = carrier.request_numbers(
                    NumberRequest(location.country, order.number_kind, order.quantity),
                    exclude=held_numbers(uow.session, location.country))
                continue
            if progress.phase == RequestPhase.PENDING:
                continue
            if progress.phase == RequestPhase.FULFILLED:
                clash = held_numbers(uow.session, location.country) & set(progress.numbers)
                if clash:
                    order.status = order_transition(order.status, OrderEvent.FAILED)
                    order.error = f"the carrier delivered numbers already on this service: {', '.join(sorted(clash))}"
                else:
                    _deliver(uow, order, location, list(progress.numbers))
            else:
                order.status = order_transition(order.status, OrderEvent.FAILED)
                order.error = f"the carrier could not fill the request: {progress.reason}; raise a support case"
            uow.session.flush()
            uow.change("numberOrder", order.id, "updated", before, snapshot(order))
            changed.append(order.id)
    return changed
