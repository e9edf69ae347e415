"""A port order through its whole life on SQLite and PostgreSQL: draft, numbers with the
portability check, details, bill upload, a late LOA with reminder e-mails (to a real SMTP server),
submission, FOC date, completion turning a person's PORT_PENDING number ACTIVE; and a cancel."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

import aiohttp
from sqlalchemy import select

from provisioning.api.carrier_sim import carrier_sync_loop
from provisioning.lifecycle import BILL_MAX_BYTES
from provisioning.store import Number, PstnType, Subscription
from tests.provisioning.api.orders_fixtures import OrdersWorld, orders_world  # noqa: F401  (fixture)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17)
GIF = b"GIF89a" + bytes(40)
ACME: dict[str, Any] = {
    "accountNumber": "8812-4471", "btn": "+15124440100", "companyName": "Acme Widgets Inc",
    "authorizedName": "Jane Doe",
    "serviceAddress": {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701"},
}


async def upload_bill(world: OrdersWorld, order_id: str, content: bytes = PDF, issued: date | None = None,
                      filename: str = "bill.pdf") -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=filename, content_type="application/octet-stream")
    form.add_field("issueDate", (issued or world.carrier.today() - timedelta(days=3)).isoformat())
    return await world.client.put(f"/v1/portOrders/{order_id}/bill", data=form,
                                  headers={"Authorization": f"Bearer {world.org.tokens['OWNER']}"})


def number_states(world: OrdersWorld, numbers: list[str]) -> dict[str, str]:
    with world.store.session() as s:
        return {n.e164: str(n.state) for n in s.scalars(select(Number).where(Number.e164.in_(numbers)))}


async def test_trial_cannot_port(orders_world: OrdersWorld):
    world = orders_world
    trial = world.add_org("Trialco", Subscription.TRIAL, {"Austin": ("US", PstnType.CALLING_PLAN)})
    await world.problem("POST", "/v1/portOrders", 422, "trial-cannot-port", org=trial,
                        json={"locationId": trial.locations["Austin"], "phoneNumbers": ["+15124440101"]})
    await world.problem("POST", "/v1/portOrders", 422, "calling-plan-not-sold", "locationId",
                        json={"locationId": world.org.locations["Jakarta"]})


async def test_port_order_whole_life_with_a_late_loa(orders_world: OrdersWorld):
    world = orders_world
    austin = world.org.locations["Austin"]
    carrier = world.carrier
    wanted = carrier.add_business_days(carrier.today(), 12)
    created = await world.call("POST", "/v1/portOrders", expect=201, json={
        "locationId": austin, "notificationEmail": "it@acme.example",
        "phoneNumbers": ["+15124440101", "512-444-0102", "+442071234567", "+15125551000"],
        "requestedCompletion": {"date": wanted.isoformat(), "time": "10:00"}, **ACME})
    order = created["order"]
    path = f"/v1/portOrders/{order['id']}"
    # Portability checked as entered: the non-portable are flagged, the rest go on.
    assert created["added"] == ["+15124440101", "+15124440102"]
    flagged = {f["phoneNumber"]: f["reason"] for f in created["flagged"]}
    assert "does not port numbers in GB" in flagged["+442071234567"]
    assert "already belongs to" in flagged["+15125551000"]
    assert order["status"] == "PENDING" and order["flaggedNumbers"] == created["flagged"]
    assert number_states(world, ["+15124440101", "+15124440102"]) == dict.fromkeys(
        ["+15124440101", "+15124440102"], "PORT_PENDING")
    assert world.number_events("+15124440101")[0].data["state"] == "PORT_PENDING"
    await world.problem("POST", f"{path}/numbers", 422, "toll-free-not-portable", "phoneNumbers[0]",
                        json={"phoneNumbers": ["+1 888 555 0123"]})
    more = await world.call("POST", f"{path}/numbers", json={"phoneNumbers": ["+15124440103", "+15124440101"]},
                            expect=200)
    assert more["added"] == ["+15124440103"] and more["flagged"] == []
    taken_off = await world.call("DELETE", f"{path}/numbers/%2B15124440103", expect=200)
    assert taken_off["phoneNumbers"] == ["+15124440101", "+15124440102"]
    assert number_states(world, ["+15124440103"]) == {}

    # A person gets one of the numbers before the port completes.
    person = await world.call("POST", "/v1/people", expect=201, json={
        "email": "ann@acme.example", "firstName": "Ann", "lastName": "Lee", "locationId": austin,
        "extension": "2001", "phoneNumber": "+15124440101"})
    assert person["phoneNumberState"] == "PORT_PENDING"

    assert (await world.call("GET", path, expect=200))["missingForSubmission"] == ["bill"]
    await world.problem("POST", f"{path}/submit", 422, "port-order-incomplete", "bill")
    for content, name, issued, status, rule in [
            (GIF, "bill.pdf", None, 422, "bill-type"),
            (PDF, "bill.pdf", carrier.today() - timedelta(days=31), 422, "bill-too-old"),
            (PDF + bytes(BILL_MAX_BYTES), "bill.pdf", None, 413, "bill-too-large")]:
        response = await upload_bill(world, order["id"], content, issued, name)
        problem = await response.json()
        assert (response.status, problem["rule"]) == (status, rule), problem
    response = await upload_bill(world, order["id"], PNG, filename="scan.pdf")  # a PNG whatever its name says
    uploaded = await response.json()
    assert response.status == 200, uploaded
    assert uploaded["bill"]["contentType"] == "image/png" and uploaded["bill"]["filename"] == "scan.pdf"
    assert uploaded["missingForSubmission"] == [] and uploaded["loa"] is None

    # Submitted without the LOA: it waits, and reminders go out every business day until it is signed.
    waiting = await world.call("POST", f"{path}/submit", expect=200)
    assert (waiting["status"], waiting["submitRequested"]) == ("PENDING", True)
    assert await world.mail_to("it@acme.example", "sign the letter of authorisation")
    for n in (1, 2):
        clock = await world.advance(1)
        assert order["id"] in clock["portOrdersChanged"]
        assert await world.mail_to("it@acme.example", f"reminder {n}:")
    assert await world.mail_to("contact@acme.example", "reminder 2:")  # the location's contact hears too
    still = await world.call("GET", path, expect=200)
    assert (still["status"], still["remindersSent"]) == ("PENDING", 2)

    signed = await world.call("POST", f"{path}/loa", json={"name": "Jane Doe", "title": "Office Manager"}, expect=200)
    assert signed["status"] == "SUBMITTED" and signed["carrierReference"]
    assert signed["loa"]["signedName"] == "Jane Doe" and signed["loa"]["coversCurrentNumbers"] is True
    assert signed["submittedOn"] == carrier.today().isoformat()
    await world.problem("PATCH", path, 409, "port-order-state", "status", json={"companyName": "X"})
    await world.advance(1)
    foc = await world.call("GET", path, expect=200)
    assert (foc["status"], foc["focDate"]) == ("FOC_RECEIVED", wanted.isoformat())
    assert await world.mail_to("it@acme.example", f"FOC date {wanted.isoformat()}")
    assert number_states(world, ["+15124440101"]) == {"+15124440101": "PORT_PENDING"}

    days_left = 0
    while carrier.add_business_days(carrier.today(), days_left) < wanted:
        days_left += 1
    await world.advance(days_left - 1)
    assert (await world.call("GET", path, expect=200))["status"] == "FOC_RECEIVED"
    await world.advance(1)
    done = await world.call("GET", path, expect=200)
    assert (done["status"], done["completedOn"]) == ("COMPLETED", wanted.isoformat())
    assert number_states(world, ["+15124440101", "+15124440102"]) == dict.fromkeys(
        ["+15124440101", "+15124440102"], "ACTIVE")
    ann = await world.call("GET", f"/v1/people/{person['id']}", expect=200)
    assert (ann["phoneNumber"], ann["phoneNumberState"]) == ("+15124440101", "ACTIVE")
    event = world.number_events("+15124440101")[-1]
    assert (event.action, event.data["state"], event.data["ownerId"]) == ("updated", "ACTIVE", person["id"])
    assert await world.mail_to("it@acme.example", "completed")
    await world.problem("POST", f"{path}/cancel", 409, "port-order-state", "status")
    listed = await world.call("GET", "/v1/portOrders?status=COMPLETED", role="READ_ONLY", expect=200)
    assert [o["id"] for o in listed["items"]] == [order["id"]]


async def test_cancel_withdraws_the_order_and_its_numbers(orders_world: OrdersWorld):
    world = orders_world
    austin = world.org.locations["Austin"]
    created = await world.call("POST", "/v1/portOrders", expect=201, json={
        "locationId": austin, "phoneNumbers": ["+15124450101", "+15124450102"], "accountNumber": "GX-5550001",
        "btn": "+15124450100", "companyName": "Globex Corporation", "authorizedName": "Hank Scorpio",
        "serviceAddress": {"address1": "200 Cypress Creek Road", "city": "Austin", "state": "TX", "postalCode": "78759"}})
    order = created["order"]
    path = f"/v1/portOrders/{order['id']}"
    person = await world.call("POST", "/v1/people", expect=201, json={
        "email": "hank@acme.example", "firstName": "Hank", "lastName": "S", "locationId": austin,
        "phoneNumber": "+15124450102"})
    assert (await upload_bill(world, order["id"])).status == 200
    await world.call("POST", f"{path}/loa", json={"name": "Hank Scorpio", "title": "CEO"}, expect=200)
    await world.problem("POST", f"{path}/submit", 403, "role-not-allowed", role="READ_ONLY")
    assert (await world.call("POST", f"{path}/submit", role="PARTNER_ADMIN", expect=200))["status"] == "SUBMITTED"
    await world.advance(1)
    assert (await world.call("GET", path, expect=200))["status"] == "FOC_RECEIVED"

    cancelled = await world.call("POST", f"{path}/cancel", expect=200)
    assert cancelled["status"] == "CANCELLED"
    assert number_states(world, ["+15124450101", "+15124450102"]) == {}
    hank = await world.call("GET", f"/v1/people/{person['id']}", expect=200)
    assert hank["phoneNumber"] is None
    # Created PORT_PENDING, given to Hank, deleted with the order: routing never saw it active.
    events = world.number_events("+15124450102")
    assert [e.action for e in events] == ["created", "updated", "deleted"]
    assert {e.data["state"] for e in events} == {"PORT_PENDING"}
    assert any(e.entity == "person" and e.entity_id == person["id"] and e.data["phoneNumber"] is None
               for e in world.events)
    await world.problem("POST", f"{path}/cancel", 409, "port-order-state", "status")
    await world.problem("POST", f"{path}/submit", 409, "port-order-state", "status")
    # The carrier forgot it too: the clock moves on and nothing completes.
    await world.advance(15)
    assert (await world.call("GET", path, expect=200))["status"] == "CANCELLED"
    # The numbers may be ported again in a new order.
    again = await world.call("POST", "/v1/portOrders", expect=201,
                             json={"locationId": austin, "phoneNumbers": ["+15124450101"]})
    assert again["added"] == ["+15124450101"]


async def test_port_order_input_errors_are_problems(orders_world: OrdersWorld):
    world = orders_world
    created = await world.call("POST", "/v1/portOrders", expect=201,
                               json={"locationId": world.org.locations["Austin"], "phoneNumbers": ["+15124440101"]})
    order_id = created["order"]["id"]
    path = f"/v1/portOrders/{order_id}"
    await world.problem("PATCH", path, 422, "number-invalid", "btn", json={"btn": "not a number"})
    await world.problem("PATCH", path, 422, "requested-date-not-future", "requestedCompletion.date",
                        json={"requestedCompletion": {"date": world.carrier.today().isoformat()}})
    await world.problem("DELETE", f"{path}/numbers/12", 422, "number-invalid", "phoneNumber")
    await world.problem("DELETE", f"{path}/numbers/%2B15124440102", 404, "not-found", "phoneNumber")
    await world.problem("POST", f"{path}/loa", 422, "loa-name-required", "name", json={"name": " ", "title": "CFO"})
    await world.problem("PUT", f"{path}/bill", 415, "unsupported-media-type", json={"file": "x"})
    response = await upload_bill(world, order_id, b"")
    assert (response.status, (await response.json())["rule"]) == (422, "bill-missing")
    response = await upload_bill(world, order_id, PDF[:-7])  # cut short: no %%EOF
    assert (response.status, (await response.json())["rule"]) == (422, "bill-type")
    await world.problem("GET", "/v1/portOrders/nope", 404, "not-found")
    # A detail set to null is cleared; unknown fields are refused.
    await world.call("PATCH", path, json={"companyName": "Acme"}, expect=200)
    cleared = await world.call("PATCH", path, json={"companyName": None}, expect=200)
    assert cleared["companyName"] is None
    await world.problem("PATCH", path, 422, "extra_forbidden", "sneaky", json={"sneaky": 1})
    # Another organisation cannot see or touch the order.
    other = world.add_org("Other", Subscription.PAID, {"Austin": ("US", PstnType.CALLING_PLAN)})
    await world.problem("GET", path, 404, "not-found", org=other)
    await world.problem("POST", f"{path}/cancel", 404, "not-found", org=other)


async def test_background_sync_collects_answers_without_the_clock_endpoint(orders_world: OrdersWorld):
    world = orders_world
    created = await world.call("POST", "/v1/portOrders", expect=201, json={
        "locationId": world.org.locations["Austin"], "phoneNumbers": ["+15124440101"], **ACME})
    path = f"/v1/portOrders/{created['order']['id']}"
    assert (await upload_bill(world, created["order"]["id"])).status == 200
    await world.call("POST", f"{path}/loa", json={"name": "Jane Doe", "title": "CFO"}, expect=200)
    await world.call("POST", f"{path}/submit", expect=200)
    world.carrier.advance(1)  # the carrier's day passes (as a real day would) with nobody calling the API
    task = asyncio.create_task(carrier_sync_loop(world.ctx, interval=0.05))
    try:
        for _ in range(100):
            if (await world.call("GET", path, expect=200))["status"] != "SUBMITTED":
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert (await world.call("GET", path, expect=200))["status"] == "FOC_RECEIVED"
