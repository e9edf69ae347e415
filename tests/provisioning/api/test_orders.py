"""Number orders through the API on SQLite and PostgreSQL: every kind, every limit, terms by
every role, every status, the inventory search, and the events that make numbers routable."""

from __future__ import annotations

from sqlalchemy import select

from provisioning.store import Location, Number, PstnType, Subscription
from tests.provisioning.api.orders_fixtures import OrdersWorld, orders_world  # noqa: F401  (fixture)

AUSTIN_FIRST = 5125551000


def austin(i: int) -> str:
    return f"+1{AUSTIN_FIRST + i}"


def states(world: OrdersWorld, numbers: list[str]) -> dict[str, str]:
    with world.store.session() as s:
        return {n.e164: str(n.state) for n in s.scalars(select(Number).where(Number.e164.in_(numbers)))}


# --- inventory ---------------------------------------------------------------------------------


async def test_inventory_search_filters_and_refusals(orders_world: OrdersWorld):
    world = orders_world
    found = await world.call("GET", "/v1/inventory/numbers?country=US&state=TX&city=Austin&areaCode=512"
                                    "&prefix=512555&quantity=3", expect=200)
    assert [n["phoneNumber"] for n in found["items"]] == [austin(0), austin(1), austin(2)]
    assert found["items"][0] == {"phoneNumber": austin(0), "country": "US", "state": "TX", "city": "Austin",
                                 "areaCode": "512", "rateCenter": "AUSTIN"}
    ny = await world.call("GET", "/v1/inventory/numbers?country=us&state=NY&quantity=2&consecutive=true", expect=200)
    assert [n["phoneNumber"] for n in ny["items"]] == ["+12125554000", "+12125554001"]
    assert (await world.call("GET", "/v1/inventory/numbers?country=US&city=Nowhere", role="READ_ONLY",
                             expect=200))["items"] == []
    await world.problem("GET", "/v1/inventory/numbers?country=DE", 422, "inventory-not-searchable", "query.country")
    await world.problem("GET", "/v1/inventory/numbers?country=PH", 422, "calling-plan-not-sold", "query.country")
    await world.problem("GET", "/v1/inventory/numbers?country=US&quantity=101", 422, "less_than_equal",
                        "query.quantity")


# --- the kinds of order and their statuses -----------------------------------------------------


async def test_numbers_order_waits_for_terms_then_activates_for_routing(orders_world: OrdersWorld):
    world = orders_world
    austin_id = world.org.locations["Austin"]
    wanted = [austin(0), "(512) 555-1001", "512.555.1002"]
    order = await world.call("POST", "/v1/numberOrders", json={"locationId": austin_id, "kind": "NUMBERS",
                                                                "phoneNumbers": wanted}, expect=201)
    numbers = [austin(0), austin(1), austin(2)]
    assert order["status"] == "ACTION_REQUIRED" and order["phoneNumbers"] == numbers
    assert "accept the terms" in order["actionRequired"]
    assert states(world, numbers) == dict.fromkeys(numbers, "INACTIVE")
    assert [e.data["state"] for e in world.number_events(austin(0))] == ["INACTIVE"]
    # They are no longer on offer.
    found = await world.call("GET", "/v1/inventory/numbers?country=US&city=Austin&quantity=1", expect=200)
    assert found["items"][0]["phoneNumber"] == austin(3)

    path = f"/v1/numberOrders/{order['id']}/acceptTerms"
    await world.problem("POST", path, 403, "role-not-allowed", role="READ_ONLY")
    told = await world.problem("POST", path, 403, "terms-customer-admin-only", role="PARTNER_ADMIN")
    assert "customer" in told["detail"]
    assert states(world, numbers) == dict.fromkeys(numbers, "INACTIVE")
    done = await world.call("POST", path, role="FULL_ADMIN", expect=200)
    assert done["status"] == "COMPLETED" and done["actionRequired"] is None
    assert done["termsAcceptedBy"] == "full_admin@acme.example"
    assert states(world, numbers) == dict.fromkeys(numbers, "ACTIVE")
    last = world.number_events(austin(1))[-1]
    assert (last.action, last.data["state"], last.data["locationId"]) == ("updated", "ACTIVE", austin_id)
    await world.problem("POST", path, 409, "number-order-state", role="OWNER")
    assert (await world.call("GET", f"/v1/numberOrders/{order['id']}", expect=200))["status"] == "COMPLETED"


async def test_block_search_and_request_orders(orders_world: OrdersWorld):
    world = orders_world
    loc = world.org.locations
    block = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Austin"], "kind": "BLOCK", "quantity": 5, "search": {"prefix": "51255513"}}, expect=201)
    assert block["phoneNumbers"] == [austin(300 + i) for i in range(5)]
    explicit = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Austin"], "kind": "BLOCK", "phoneNumbers": [austin(11), austin(10), austin(12)]}, expect=201)
    assert sorted(explicit["phoneNumbers"]) == [austin(10), austin(11), austin(12)]
    search = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Austin"], "kind": "SEARCH", "quantity": 2, "search": {"city": "austin"}}, expect=201)
    assert search["phoneNumbers"] == [austin(0), austin(1)] and search["status"] == "ACTION_REQUIRED"
    owner_accepts = await world.call("POST", f"/v1/numberOrders/{search['id']}/acceptTerms", expect=200)
    assert owner_accepts["status"] == "COMPLETED"

    # Where there is no searchable inventory the order is a request, filled by the carrier later.
    request = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Berlin"], "kind": "REQUEST", "quantity": 2, "numberType": "LOCAL"}, expect=201)
    assert (request["status"], request["phoneNumbers"]) == ("PENDING", [])
    too_many = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Paris"], "kind": "REQUEST", "quantity": 21, "numberType": "NATIONAL"}, expect=201)
    pending = await world.call("GET", "/v1/numberOrders?status=PENDING", expect=200)
    assert {o["id"] for o in pending["items"]} == {request["id"], too_many["id"]}
    clock = await world.advance(1)
    assert set(clock["numberOrdersChanged"]) == {request["id"], too_many["id"]}
    filled = await world.call("GET", f"/v1/numberOrders/{request['id']}", expect=200)
    assert filled["status"] == "ACTION_REQUIRED"
    assert filled["phoneNumbers"] == ["+493012345600", "+493012345601"]
    assert states(world, filled["phoneNumbers"]) == dict.fromkeys(filled["phoneNumbers"], "INACTIVE")
    failed = await world.call("GET", f"/v1/numberOrders/{too_many['id']}", expect=200)
    assert failed["status"] == "ERROR" and "only 20 national numbers left in FR" in failed["error"]
    assert failed["phoneNumbers"] == []
    listed = await world.call("GET", "/v1/numberOrders?kind=REQUEST&max=1", role="READ_ONLY", expect=200)
    assert listed["total"] == 2 and len(listed["items"]) == 1
    statuses = {o["status"] for o in (await world.call("GET", "/v1/numberOrders", expect=200))["items"]}
    assert statuses == {"ACTION_REQUIRED", "COMPLETED", "ERROR"}


async def test_a_block_is_deleted_only_whole(orders_world: OrdersWorld):
    world = orders_world
    loc = world.org.locations["Austin"]
    block = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc, "kind": "BLOCK", "quantity": 4}, expect=201)
    numbers = block["phoneNumbers"]
    path = f"/v1/numberOrders/{block['id']}/numbers"
    await world.problem("DELETE", f"{path}?phoneNumbers={numbers[0]},{numbers[1]}", 422, "block-delete-whole",
                        "phoneNumbers")
    await world.problem("DELETE", f"{path}?phoneNumbers=%2B15125559999", 422, "number-not-in-order", "phoneNumbers")
    with world.store.session() as s:
        s.get(Location, loc).main_number = numbers[2]
    await world.problem("DELETE", path + "?" + "&".join(f"phoneNumbers={n.replace('+', '%2B')}" for n in numbers),
                        409, "number-in-use", "phoneNumbers")
    with world.store.session() as s:
        s.get(Location, loc).main_number = None
    done = await world.call("DELETE", path + "?phoneNumbers=" + ",".join(n.replace("+", "%2B") for n in numbers),
                            expect=200)
    assert done["phoneNumbers"] == [] and done["releasedNumbers"] == numbers
    assert states(world, numbers) == {}
    assert [e.action for e in world.number_events(numbers[0])] == ["created", "deleted"]
    # Back in the inventory.
    found = await world.call("GET", "/v1/inventory/numbers?country=US&city=Austin&quantity=1", expect=200)
    assert found["items"][0]["phoneNumber"] == numbers[0]

    single = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc, "kind": "NUMBERS", "phoneNumbers": [austin(50), austin(51)]}, expect=201)
    part = await world.call("DELETE", f"/v1/numberOrders/{single['id']}/numbers?phoneNumbers=" + austin(51).replace("+", "%2B"),
                            expect=200)
    assert part["phoneNumbers"] == [austin(50)] and part["releasedNumbers"] == [austin(51)]


# --- every limit, each naming its rule and field ---------------------------------------------------


async def test_order_limits(orders_world: OrdersWorld):
    world = orders_world
    loc = world.org.locations

    async def refused(body: dict, status: int, rule: str, field: str | None, **kw) -> dict:
        return await world.problem("POST", "/v1/numberOrders", status, rule, field, json=body, **kw)

    hundred_one = [austin(i) for i in range(101)]
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": hundred_one}, 422,
                  "order-max-numbers", "phoneNumbers")
    await refused({"locationId": loc["Austin"], "kind": "SEARCH", "quantity": 101}, 422, "order-max-numbers", "quantity")
    hundred = await world.call("POST", "/v1/numberOrders", json={
        "locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": hundred_one[:100]}, expect=201)
    assert len(hundred["phoneNumbers"]) == 100
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": [austin(200), "+1 800 555 0100"]},
                  422, "toll-free-not-orderable", "phoneNumbers[1]")
    await refused({"locationId": loc["Jakarta"], "kind": "SEARCH", "quantity": 1}, 422, "calling-plan-not-sold",
                  "locationId")
    await refused({"locationId": loc["Dallas"], "kind": "SEARCH", "quantity": 1}, 422, "location-not-calling-plan",
                  "locationId")
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": ["+442079460000"]}, 422,
                  "number-wrong-country", "phoneNumbers[0]")
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": ["+15125550000"]}, 422,
                  "number-not-available", "phoneNumbers[0]")
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": [austin(5)]}, 409,
                  "number-exists", "phoneNumbers[0]")
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": [austin(200), austin(200)]}, 422,
                  "number-duplicate", "phoneNumbers[1]")
    await refused({"locationId": loc["Austin"], "kind": "BLOCK", "phoneNumbers": [austin(200), austin(202)]}, 422,
                  "block-not-consecutive", "phoneNumbers")
    await refused({"locationId": loc["Austin"], "kind": "REQUEST", "quantity": 1, "numberType": "LOCAL"}, 422,
                  "request-where-inventory-searchable", "kind")
    await refused({"locationId": loc["Berlin"], "kind": "SEARCH", "quantity": 1}, 422, "inventory-not-searchable", "kind")
    await refused({"locationId": loc["Austin"], "kind": "SEARCH", "quantity": 2, "search": {"city": "Nowhere"}}, 422,
                  "inventory-insufficient", "quantity")
    await refused({"locationId": loc["Austin"], "kind": "SEARCH"}, 422, "number-order-field-required", "quantity")
    await refused({"locationId": loc["Austin"], "kind": "NUMBERS", "phoneNumbers": [austin(200)], "quantity": 1}, 422,
                  "number-order-field-not-allowed", "quantity")
    await refused({"locationId": "no-such-location", "kind": "SEARCH", "quantity": 1}, 404, "not-found", "locationId")
    await refused({"locationId": loc["Austin"], "kind": "SEARCH", "quantity": 1}, 403, "role-not-allowed", None,
                  role="READ_ONLY")
    # None of the refusals stored anything or kept a number from the inventory.
    with world.store.session() as s:
        assert len(s.scalars(select(Number)).all()) == 100
    found = await world.call("GET", "/v1/inventory/numbers?country=US&city=Austin&quantity=1", expect=200)
    assert found["items"][0]["phoneNumber"] == austin(100)


async def test_an_existing_location_cannot_switch_to_the_calling_plan(orders_world: OrdersWorld):
    """Dallas has a local gateway: it cannot order numbers, nor switch to the calling plan to get them."""
    world = orders_world
    dallas = world.org.locations["Dallas"]
    await world.problem("POST", "/v1/numberOrders", 422, "location-not-calling-plan", "locationId",
                        json={"locationId": dallas, "kind": "SEARCH", "quantity": 1})
    problem = await world.problem("PUT", f"/v1/locations/{dallas}/pstnConnection", 409, "calling-plan-switch", "type",
                                  json={"type": "CALLING_PLAN"})
    assert "cannot switch to the calling plan" in problem["detail"]
    with world.store.session() as s:
        assert s.get(Location, dallas).pstn_type is PstnType.LOCAL_GATEWAY


async def test_trial_organisation_limits(orders_world: OrdersWorld):
    world = orders_world
    trial = world.add_org("Trialco", Subscription.TRIAL, {"Austin": ("US", PstnType.CALLING_PLAN)})
    loc = trial.locations["Austin"]
    await world.problem("POST", "/v1/numberOrders", 422, "block-paid-only", "kind", org=trial,
                        json={"locationId": loc, "kind": "BLOCK", "quantity": 2})
    first = await world.call("POST", "/v1/numberOrders", org=trial, expect=201,
                             json={"locationId": loc, "kind": "SEARCH", "quantity": 9})
    await world.call("POST", f"/v1/numberOrders/{first['id']}/acceptTerms", org=trial, expect=200)
    tenth = await world.call("POST", "/v1/numberOrders", org=trial, expect=201,
                             json={"locationId": loc, "kind": "NUMBERS", "phoneNumbers": [austin(300)]})
    assert tenth["status"] == "ACTION_REQUIRED"
    eleventh = await world.problem("POST", "/v1/numberOrders", 422, "trial-max-numbers", "phoneNumbers", org=trial,
                                   json={"locationId": loc, "kind": "NUMBERS", "phoneNumbers": [austin(301)]})
    assert "at most 10 numbers; it has 10" in eleventh["detail"]
