"""Port orders: bringing an organisation's existing numbers over from its current carrier.

An order starts as a draft (PENDING) and is filled in piece by piece: numbers (each checked for
portability as it is entered; non-portable ones are flagged and left out, the rest go on), the
current carrier's account details, the requested completion date and time, an extra address
for notifications, the current carrier's bill (PDF or PNG, judged by its content, issued within
30 days) and the letter of authorisation (LOA), signed by name and title. The LOA may come last:
an order submitted without it waits (PENDING) and reminder e-mails go out every business day
until it is signed, when it goes to the carrier by itself.

Ported numbers are in the ``numbers`` table as PORT_PENDING from the moment they are entered, so
people can be given them early; they become ACTIVE (and routable) when the port completes, and
disappear again if they leave the order or the order is cancelled. What the carrier does
(SUBMITTED, FOC_RECEIVED with a date, REJECTED with a catalogued code, COMPLETED) is collected by
``sync_port_orders``, which the carrier simulator's clock runs after every advance.
The models and the view of an order are in provisioning/api/port_views.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date
from typing import Any

from aiohttp import BodyPartReader
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api.framework import Actor, ApiContext, ApiError, ApiRequest, Page, UnitOfWork, route
from provisioning.api.port_views import (
    FlaggedNumber,
    LoaIn,
    PortDetails,
    PortNumbersIn,
    PortNumbersOut,
    PortOrderIn,
    PortOrderOut,
    PortOrderQuery,
    current_bill,
    port_order_out,
    port_order_snapshot,
    present_fields,
)
from provisioning.api.orders import (
    add_numbers,
    camel,
    held_numbers,
    load_location,
    remove_numbers,
    require_carrier,
    rule_error,
    set_number_state,
)
from provisioning.carrier import (
    Bill,
    Carrier,
    CarrierError,
    Loa,
    PortPhase,
    PortRequest,
    ServiceAddress,
    UnknownReference,
)
from provisioning.lifecycle import (
    BILL_MAX_BYTES,
    OPEN_PORTS,
    LocationFacts,
    PortEvent,
    PortStatus,
    RuleViolation,
    check_bill,
    check_calling_plan,
    check_loa,
    check_port_number,
    check_porting_allowed,
    check_ready_to_submit,
    check_requested_completion,
    parse_number,
    parse_numbers,
    port_transition,
)
from provisioning.store import Location, NumberState, Organization
from provisioning.tables_orders import PortOrder, PortOrderBill

TAGS = ["portOrders"]


# --- helpers -------------------------------------------------------------------------------------


def _rules(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except RuleViolation as violation:
        raise rule_error(violation) from None


def _load(session: Session, org_id: str, order_id: str) -> PortOrder:
    order = session.get(PortOrder, order_id)
    if order is None or order.org_id != org_id:
        raise ApiError(404, "port order not found", f"no port order with id {order_id!r} in this organisation",
                       rule="not-found")
    return order


def _recipients(session: Session, order: PortOrder) -> list[str]:
    """Who hears about a port order: its extra address, the location's contact, and its author."""
    location = session.get(Location, order.location_id)
    candidates = [order.notification_email, (location.contact or {}).get("email") if location else None, order.created_by]
    out: list[str] = []
    for address in candidates:
        if address and "@" in address and address.lower() not in (a.lower() for a in out):
            out.append(address)
    return out


def _notify(uow: UnitOfWork, order: PortOrder, subject: str, body: str) -> None:
    for to in _recipients(uow.session, order):
        uow.mail(to, f"Port order {order.id[:8]}: {subject}", f"{body}\n\nPort order: {order.id}\nNumbers: "
                 f"{', '.join(order.numbers) or '(none)'}\n")


def _add_numbers(uow: UnitOfWork, carrier: Carrier, order: PortOrder, location: Location,
                 texts: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """Enter numbers with the portability check: portable ones join the order, others are flagged."""
    numbers = _rules(parse_numbers, texts, location.country, "phoneNumbers")
    for i, number in enumerate(numbers):
        _rules(check_port_number, number, i)
    already = set(order.numbers)
    held = held_numbers(uow.session, location.country)
    flagged: list[dict[str, str]] = []
    candidates: list[str] = []
    for number in numbers:
        if number in already:
            continue
        if number in held:
            flagged.append({"phoneNumber": number, "reason": "the number is already on this service"})
        else:
            candidates.append(number)
    added = []
    for result in carrier.check_portability(candidates):
        if result.portable:
            added.append(result.e164)
        else:
            flagged.append({"phoneNumber": result.e164, "reason": result.reason or "not portable"})
    add_numbers(uow, location, added, NumberState.PORT_PENDING)
    order.numbers = list(order.numbers) + added
    fresh = {f["phoneNumber"] for f in flagged}
    order.flagged = [f for f in order.flagged if f["phoneNumber"] not in fresh and f["phoneNumber"] not in added] + flagged
    return added, flagged


def _apply_details(order: PortOrder, details: PortDetails, fields: set[str], country: str) -> None:
    for name in fields:
        value = getattr(details, name)
        if name in ("btn", "new_btn") and value is not None:
            value = _rules(parse_number, value, country, camel(name))
        if name == "service_address":
            order.service_address = value.model_dump(by_alias=True, exclude_none=True) if value else None
        elif name == "requested_completion":
            order.requested_date = value.date if value else None
            order.requested_time = value.time if value else None
        else:
            setattr(order, name, value)


def _carrier_request(session: Session, order: PortOrder) -> PortRequest:
    bill = current_bill(session, order)
    address = order.service_address
    return PortRequest(
        numbers=tuple(order.numbers), btn=order.btn, company_name=order.company_name,
        authorized_name=order.authorized_name,
        service_address=ServiceAddress(address1=address["address1"], city=address["city"], state=address.get("state"),
                                       postal_code=address["postalCode"], address2=address.get("address2"))
        if address else None,
        account_number=order.account_number, pin=order.pin, requested_date=order.requested_date,
        requested_time=order.requested_time, remaining_numbers_action=order.remaining_numbers_action,
        new_btn=order.new_btn,
        bill=Bill(bill.issue_date, bill.content_type, bill.size) if bill else None,
        loa=Loa(order.loa_signed_name, order.loa_title, order.loa_signed_at.date(), tuple(order.loa_numbers or ()))
        if order.loa_signed_at else None)


@contextmanager
def _sending(ctx: ApiContext, actor: Actor | None, carrier: Carrier) -> Iterator[tuple[UnitOfWork, list[str]]]:
    """A unit of work that may hand orders to the carrier: if it does not commit, they are withdrawn."""
    sent: list[str] = []
    try:
        with ctx.unit_of_work(actor) as uow:
            yield uow, sent
    except BaseException:
        for reference in sent:
            with suppress(CarrierError):
                carrier.cancel_port(reference)
        raise


def _send(uow: UnitOfWork, carrier: Carrier, order: PortOrder, sent: list[str]) -> None:
    """Hand the order to the carrier (a first submission or a resubmission after a rejection)."""
    order.status = _rules(port_transition, order.status, PortEvent.SEND)
    try:
        order.carrier_reference = carrier.submit_port(_carrier_request(uow.session, order))
    except CarrierError as exc:
        raise ApiError(422, "Carrier refused the order", exc.detail, rule=f"carrier-{exc.code}") from None
    sent.append(order.carrier_reference)
    order.submitted_on = carrier.today()
    order.submit_requested = False
    order.foc_date = order.rejection_code = order.rejection_detail = None
    _notify(uow, order, "submitted", f"The port order was submitted to the carrier on {order.submitted_on}.")


def _changed(uow: UnitOfWork, order: PortOrder, before: dict[str, Any] | None, action: str = "updated") -> PortOrderOut:
    uow.session.flush()
    out = port_order_out(uow.session, order)
    uow.change("portOrder", order.id, action, before, out.model_dump(mode="json", by_alias=True))  # type: ignore[arg-type]
    return out


# --- operations ----------------------------------------------------------------------------------


@route("POST", "/v1/portOrders", summary="Start a port order (a draft)", tags=TAGS, body=PortOrderIn,
       response=PortNumbersOut, status=201,
       description="Numbers given here are checked for portability: non-portable ones are flagged and left out.")
async def create_port_order(req: ApiRequest) -> PortNumbersOut:
    body: PortOrderIn = req.body
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        location = load_location(uow.session, req.org_id, body.location_id)
        org = uow.session.get(Organization, req.org_id)
        _rules(check_porting_allowed, str(org.subscription))
        _rules(check_calling_plan, LocationFacts(location.country, location.pstn_type and str(location.pstn_type)))
        if body.requested_completion is not None:
            _rules(check_requested_completion, body.requested_completion.date, body.requested_completion.time,
                   carrier.today())
        order = PortOrder(org_id=org.id, location_id=location.id, status=PortStatus.PENDING, numbers=[], flagged=[],
                          submit_requested=False, reminders_sent=0, created_by=req.actor.name)
        _apply_details(order, body, body.model_fields_set - {"location_id", "phone_numbers"}, location.country)
        uow.session.add(order)
        added, flagged = _add_numbers(uow, carrier, order, location, body.phone_numbers)
        out = _changed(uow, order, None, "created")
    return PortNumbersOut(added=added, flagged=[FlaggedNumber.model_validate(f) for f in flagged], order=out)


@route("GET", "/v1/portOrders", summary="List port orders", tags=TAGS, query=PortOrderQuery,
       response=Page[PortOrderOut])
async def list_port_orders(req: ApiRequest) -> Page[PortOrderOut]:
    params: PortOrderQuery = req.params
    query = select(PortOrder).where(PortOrder.org_id == req.org_id)
    if params.status is not None:
        query = query.where(PortOrder.status == params.status)
    if params.location_id is not None:
        query = query.where(PortOrder.location_id == params.location_id)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(query.order_by(PortOrder.created_at, PortOrder.id).offset(params.start).limit(params.max))
        items = [port_order_out(session, o) for o in rows]
    return Page[PortOrderOut](items=items, start=params.start, max=params.max, total=total or 0)


@route("GET", "/v1/portOrders/{orderId}", summary="Get a port order", tags=TAGS, response=PortOrderOut)
async def get_port_order(req: ApiRequest) -> PortOrderOut:
    with req.ctx.read() as session:
        return port_order_out(session, _load(session, req.org_id, req.path["orderId"]))


@route("PATCH", "/v1/portOrders/{orderId}", summary="Change a port order's details", tags=TAGS, body=PortDetails,
       response=PortOrderOut, description="Only while PENDING or REJECTED. A field set to null is cleared.")
async def update_port_order(req: ApiRequest) -> PortOrderOut:
    body: PortDetails = req.body
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load(uow.session, req.org_id, req.path["orderId"])
        req.check_if_match(port_order_out(uow.session, order))
        before = port_order_snapshot(uow.session, order)
        order.status = _rules(port_transition, order.status, PortEvent.EDIT)
        if body.requested_completion is not None:
            _rules(check_requested_completion, body.requested_completion.date, body.requested_completion.time,
                   carrier.today())
        location = uow.session.get(Location, order.location_id)
        _apply_details(order, body, set(body.model_fields_set), location.country)
        return _changed(uow, order, before)


@route("POST", "/v1/portOrders/{orderId}/numbers", summary="Add numbers to a port order", tags=TAGS,
       body=PortNumbersIn, response=PortNumbersOut,
       description="Each number is checked for portability as it is entered; non-portable ones are flagged (with "
                   "the reason) and left out, the rest join the order as PORT_PENDING numbers.")
async def add_port_numbers(req: ApiRequest) -> PortNumbersOut:
    body: PortNumbersIn = req.body
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load(uow.session, req.org_id, req.path["orderId"])
        before = port_order_snapshot(uow.session, order)
        order.status = _rules(port_transition, order.status, PortEvent.EDIT)
        location = uow.session.get(Location, order.location_id)
        added, flagged = _add_numbers(uow, carrier, order, location, body.phone_numbers)
        out = _changed(uow, order, before)
    return PortNumbersOut(added=added, flagged=[FlaggedNumber.model_validate(f) for f in flagged], order=out)


@route("DELETE", "/v1/portOrders/{orderId}/numbers/{phoneNumber}", summary="Take a number off a port order",
       tags=TAGS, response=PortOrderOut,
       description="Only while PENDING or REJECTED. The PORT_PENDING number goes, and so does any person's use of it.")
async def remove_port_number(req: ApiRequest) -> PortOrderOut:
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load(uow.session, req.org_id, req.path["orderId"])
        req.check_if_match(port_order_out(uow.session, order))
        before = port_order_snapshot(uow.session, order)
        order.status = _rules(port_transition, order.status, PortEvent.EDIT)
        location = uow.session.get(Location, order.location_id)
        number = _rules(parse_number, req.path["phoneNumber"], location.country, "phoneNumber")
        if number not in order.numbers:
            raise ApiError(404, "number not on this order", f"{number} is not a number of this port order",
                           field="phoneNumber", rule="not-found")
        remove_numbers(uow, [number])
        order.numbers = [n for n in order.numbers if n != number]
        return _changed(uow, order, before)


async def _read_bill(req: ApiRequest) -> tuple[bytes, str | None, str | None]:
    """The multipart parts ``file`` and ``issueDate``; the file is read only up to the size limit."""
    if not req.raw.content_type.startswith("multipart/"):
        raise ApiError(415, "Unsupported media type", "upload the bill as multipart/form-data with parts 'file' "
                       "and 'issueDate'", rule="unsupported-media-type")
    try:
        reader = await req.raw.multipart()
        content, filename, issue = b"", None, None
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                filename = part.filename
                chunks, size = [], 0
                while chunk := await part.read_chunk(64 * 1024):
                    size += len(chunk)
                    if size > BILL_MAX_BYTES:
                        raise ApiError(413, "Too large", f"the bill may be at most {BILL_MAX_BYTES} bytes",
                                       field="file", rule="bill-too-large")
                    chunks.append(chunk)
                content = b"".join(chunks)
            elif part.name == "issueDate":
                issue = (await part.read(decode=True))[:64].decode("utf-8", "replace").strip()
            else:
                await part.release()
    except (ValueError, AssertionError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Malformed upload", f"the multipart body could not be read: {exc}",
                       rule="malformed-multipart") from None
    return content, filename, issue


_BILL_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file", "issueDate"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "PDF or PNG, at most 5 MiB"},
                       "issueDate": {"type": "string", "format": "date", "description": "The bill's date (YYYY-MM-DD)"}},
    }}},
}


@route("PUT", "/v1/portOrders/{orderId}/bill", summary="Upload the current carrier's bill", tags=TAGS,
       response=PortOrderOut, request_body=_BILL_BODY,
       description="multipart/form-data: 'file' (a PDF or PNG, judged by its content, at most 5 MiB) and "
                   "'issueDate' (within the last 30 days).")
async def upload_bill(req: ApiRequest) -> PortOrderOut:
    content, filename, issue_text = await _read_bill(req)
    if not content:
        raise ApiError(422, "Missing file", "the upload has no 'file' part (or it is empty)", field="file",
                       rule="bill-missing")
    try:
        issue_date = date.fromisoformat(issue_text or "")
    except ValueError:
        raise ApiError(422, "Invalid issueDate", "'issueDate' must be a date like 2025-03-01", field="issueDate",
                       rule="bill-issue-date-invalid") from None
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load(uow.session, req.org_id, req.path["orderId"])
        before = port_order_snapshot(uow.session, order)
        order.status = _rules(port_transition, order.status, PortEvent.EDIT)
        # The carrier's date, like every date of a port (the simulator's clock runs ahead).
        kind = _rules(check_bill, content, issue_date, carrier.today())
        uow.session.add(PortOrderBill(port_order_id=order.id, content=content, content_type=kind, size=len(content),
                                      sha256=hashlib.sha256(content).hexdigest(), issue_date=issue_date,
                                      filename=(filename or "")[:255] or None, uploaded_by=req.actor.name))
        order.updated_at = uow.now  # the bill is part of the order as GET shows it
        return _changed(uow, order, before)


@route("POST", "/v1/portOrders/{orderId}/loa", summary="Sign the letter of authorisation", tags=TAGS, body=LoaIn,
       response=PortOrderOut,
       description="Signs for the numbers on the order now. An order already submitted without an LOA goes to the "
                   "carrier at once.")
async def sign_loa(req: ApiRequest) -> PortOrderOut:
    body: LoaIn = req.body
    carrier = require_carrier(req.ctx)
    with _sending(req.ctx, req.actor, carrier) as (uow, sent):
        order = _load(uow.session, req.org_id, req.path["orderId"])
        before = port_order_snapshot(uow.session, order)
        order.status = _rules(port_transition, order.status, PortEvent.EDIT)
        _rules(check_loa, body.name, body.title)
        order.loa_signed_name, order.loa_title = body.name.strip(), body.title.strip()
        order.loa_signed_at = uow.now
        order.loa_numbers = list(order.numbers)
        if order.submit_requested:
            _send(uow, carrier, order, sent)
        return _changed(uow, order, before)


@route("POST", "/v1/portOrders/{orderId}/submit", summary="Submit (or resubmit) a port order", tags=TAGS,
       response=PortOrderOut,
       description="Needs the numbers, BTN, company, authorised name, service address and bill. Without a signed "
                   "LOA the order waits (PENDING, submitRequested) and reminders go out until it is signed.")
async def submit_port_order(req: ApiRequest) -> PortOrderOut:
    carrier = require_carrier(req.ctx)
    with _sending(req.ctx, req.actor, carrier) as (uow, sent):
        order = _load(uow.session, req.org_id, req.path["orderId"])
        before = port_order_snapshot(uow.session, order)
        org = uow.session.get(Organization, req.org_id)
        _rules(check_porting_allowed, str(org.subscription))
        _rules(port_transition, order.status, PortEvent.SEND)
        _rules(check_ready_to_submit, present_fields(order, current_bill(uow.session, order)))
        _rules(check_requested_completion, order.requested_date, order.requested_time, carrier.today())
        if order.loa_signed_at is None:
            order.status = _rules(port_transition, order.status, PortEvent.WAIT_FOR_LOA)
            order.submit_requested = True
            order.last_reminder_on = carrier.today()
            _notify(uow, order, "sign the letter of authorisation",
                    "The port order is ready but waits for its letter of authorisation. Sign it (name and title): "
                    f"POST /v1/portOrders/{order.id}/loa. It goes to the carrier as soon as it is signed.")
        else:
            _send(uow, carrier, order, sent)
        return _changed(uow, order, before)


@route("POST", "/v1/portOrders/{orderId}/cancel", summary="Cancel a port order", tags=TAGS, response=PortOrderOut,
       description="Its PORT_PENDING numbers are removed (and taken from anyone who was given them).")
async def cancel_port_order(req: ApiRequest) -> PortOrderOut:
    carrier = require_carrier(req.ctx)
    with req.ctx.unit_of_work(req.actor) as uow:
        order = _load(uow.session, req.org_id, req.path["orderId"])
        before = port_order_snapshot(uow.session, order)
        was = order.status
        order.status = _rules(port_transition, order.status, PortEvent.CANCEL)
        if was in OPEN_PORTS and order.carrier_reference:
            try:
                carrier.cancel_port(order.carrier_reference)
            except UnknownReference:
                pass  # the carrier has forgotten it already: nothing to withdraw
        order.submit_requested = False
        remove_numbers(uow, list(order.numbers))
        _notify(uow, order, "cancelled", "The port order was cancelled; its numbers stay with the current carrier.")
        return _changed(uow, order, before)


# --- the carrier's side -------------------------------------------------------------------------


def sync_port_orders(ctx: ApiContext) -> list[str]:
    """Collect the carrier's answers and send LOA reminders; returns the ids of orders that changed.

    Each order is its own unit of work. Reminders go out at most once per business day of the
    carrier's clock for orders waiting for their LOA.
    """
    carrier = require_carrier(ctx)
    today = carrier.today()
    with ctx.read() as session:
        due = session.execute(select(PortOrder.id, PortOrder.org_id).where(
            PortOrder.status.in_(OPEN_PORTS)
            | ((PortOrder.status == PortStatus.PENDING) & PortOrder.submit_requested))).all()
    changed = []
    for order_id, org_id in due:
        with ctx.unit_of_work(None, org_id=org_id) as uow:
            order = uow.session.get(PortOrder, order_id)
            before = port_order_snapshot(uow.session, order)
            if _advance(uow, carrier, order, today):
                _changed(uow, order, before)
                changed.append(order.id)
    return changed


def _advance(uow: UnitOfWork, carrier: Carrier, order: PortOrder, today: date) -> bool:
    if order.status == PortStatus.PENDING:
        if not order.submit_requested or (order.last_reminder_on and order.last_reminder_on >= today):
            return False
        order.reminders_sent += 1
        order.last_reminder_on = today
        _notify(uow, order, f"reminder {order.reminders_sent}: the letter of authorisation is not signed",
                "The port order is waiting for its letter of authorisation and will not go to the carrier until it "
                f"is signed (name and title): POST /v1/portOrders/{order.id}/loa.")
        return True
    if order.status not in OPEN_PORTS:
        return False
    try:
        progress = carrier.poll_port(order.carrier_reference or "")
    except UnknownReference:  # the carrier lost it (the simulator restarted): hand it over again
        order.carrier_reference = carrier.submit_port(_carrier_request(uow.session, order))
        order.submitted_on = today
        return True
    if progress.phase == PortPhase.REJECTED and progress.rejection is not None:
        order.status = port_transition(order.status, PortEvent.REJECT)
        order.rejection_code, order.rejection_detail = progress.rejection.code, progress.rejection.detail[:500]
        _notify(uow, order, f"rejected ({progress.rejection.code})",
                f"The carrier rejected the port order: {progress.rejection.description}\nDetail: "
                f"{progress.rejection.detail}\nWhat to do: {progress.rejection.fix}")
        return True
    changed = False
    if progress.phase in (PortPhase.FOC_RECEIVED, PortPhase.COMPLETED) and (
            order.status != PortStatus.FOC_RECEIVED or order.foc_date != progress.foc_date):
        order.status = port_transition(order.status, PortEvent.FOC)
        order.foc_date = progress.foc_date
        _notify(uow, order, f"FOC date {progress.foc_date}",
                f"The current carrier committed to complete the port on {progress.foc_date}.")
        changed = True
    if progress.phase == PortPhase.COMPLETED:
        order.status = port_transition(order.status, PortEvent.COMPLETE)
        order.completed_on = today
        set_number_state(uow, list(order.numbers), NumberState.PORT_PENDING, NumberState.ACTIVE)
        _notify(uow, order, "completed", "The numbers are now with us and active.")
        changed = True
    return changed
