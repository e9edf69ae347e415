"""The business rules of the core resources, each refused with the field and the rule named:
PSTN connections, a location's own numbers, main numbers, people and devices, trunks."""

from __future__ import annotations

from sqlalchemy import select

from provisioning.digest import ha1_all
from provisioning.store import Device
from provisioning.tables_access import Trunk
from tests.provisioning.api.conftest import ADDRESS, ApiHarness

MANILA = {"address1": "1 Ayala Ave", "city": "Makati", "postalCode": "1226", "country": "PH"}


async def _location(api: ApiHarness, name: str = "Austin", address: dict = ADDRESS, trunk: str | None = "gw",
                    tz: str = "America/Chicago") -> str:
    loc = await api.call("POST", "/v1/locations", json={"name": name, "timeZone": tz, "address": address}, expect=201)
    if trunk:
        if (await api.call("GET", f"/v1/trunks?name={trunk}"))["total"] == 0:
            await api.call("POST", "/v1/trunks", json={"name": trunk, "host": "192.0.2.10"}, expect=201)
        await api.call("PUT", f"/v1/locations/{loc['id']}/pstnConnection", json={"type": "LOCAL_GATEWAY", "trunk": trunk})
    return loc["id"]


async def test_pstn_connection_rules(owner_api: ApiHarness):
    api = owner_api
    austin = await _location(api, trunk=None)
    await api.problem("PUT", f"/v1/locations/{austin}/pstnConnection", 422, "pstn-trunk-required", "trunk",
                      json={"type": "LOCAL_GATEWAY"})
    await api.problem("PUT", f"/v1/locations/{austin}/pstnConnection", 422, "pstn-trunk-unknown", "trunk",
                      json={"type": "CLOUD_CONNECTED_PSTN", "trunk": "nope"})
    await api.problem("PUT", f"/v1/locations/{austin}/pstnConnection", 422, "calling-plan-no-trunk", "trunk",
                      json={"type": "CALLING_PLAN", "trunk": "x"})
    loc = await api.call("PUT", f"/v1/locations/{austin}/pstnConnection", json={"type": "CALLING_PLAN"})
    assert loc["pstnConnection"] == {"type": "CALLING_PLAN", "trunk": None}

    manila = await _location(api, "Manila", MANILA, trunk=None, tz="Asia/Manila")
    body = await api.problem("PUT", f"/v1/locations/{manila}/pstnConnection", 422, "calling-plan-not-sold", "type",
                             json={"type": "CALLING_PLAN"})
    assert "the Philippines" in body["detail"]

    dallas = await _location(api, "Dallas", {**ADDRESS, "city": "Dallas", "postalCode": "75201"})
    body = await api.problem("PUT", f"/v1/locations/{dallas}/pstnConnection", 409, "calling-plan-switch", "type",
                             json={"type": "CALLING_PLAN"})
    assert "LOCAL_GATEWAY" in body["detail"]
    # The other direction, and staying on the same kind, are fine.
    await api.call("PUT", f"/v1/locations/{dallas}/pstnConnection", json={"type": "CLOUD_CONNECTED_PSTN", "trunk": "gw"})


async def test_own_numbers_rules(owner_api: ApiHarness):
    api = owner_api
    on_plan = await _location(api, trunk=None)
    await api.call("PUT", f"/v1/locations/{on_plan}/pstnConnection", json={"type": "CALLING_PLAN"})
    await api.problem("POST", f"/v1/locations/{on_plan}/numbers", 409, "numbers-need-own-pstn", "locationId",
                      json={"phoneNumbers": ["+15125550100"]})
    loc = await _location(api, "Dallas", {**ADDRESS, "city": "Dallas", "postalCode": "75201"})
    await api.problem("POST", f"/v1/locations/{loc}/numbers", 422, "phone-number-toll-free", "phoneNumbers.1",
                      json={"phoneNumbers": ["+12145550100", "+1 800 555 0100"]})
    await api.problem("POST", f"/v1/locations/{loc}/numbers", 422, "phone-number", "phoneNumbers.0",
                      json={"phoneNumbers": ["+44 20 7946 0000"]})
    await api.problem("POST", f"/v1/locations/{loc}/numbers", 422, "phone-number-duplicate", "phoneNumbers.1",
                      json={"phoneNumbers": ["+12145550100", "(214) 555-0100"]})
    await api.call("POST", f"/v1/locations/{loc}/numbers", json={"phoneNumbers": ["+12145550100"]}, expect=201)
    await api.problem("POST", f"/v1/locations/{loc}/numbers", 409, "phone-number-taken", "phoneNumbers.0",
                      json={"phoneNumbers": ["+12145550100"]})


async def test_trial_organisation_holds_at_most_ten_numbers(owner_api: ApiHarness):
    api = owner_api
    assert (await api.call("GET", "/v1/organization"))["subscription"] == "TRIAL"
    loc = await _location(api)
    await api.call("POST", f"/v1/locations/{loc}/numbers", expect=201,
                   json={"phoneNumbers": [f"+1512555{n:04d}" for n in range(100, 110)]})
    body = await api.problem("POST", f"/v1/locations/{loc}/numbers", 409, "trial-number-limit", "phoneNumbers",
                             json={"phoneNumbers": ["+15125550110"]})
    assert "at most 10" in body["detail"]
    await api.call("PUT", "/v1/organization", json={"name": "Acme", "country": "US", "subscription": "PAID"})
    await api.call("POST", f"/v1/locations/{loc}/numbers", json={"phoneNumbers": ["+15125550110"]}, expect=201)
    await api.problem("PUT", "/v1/organization", 409, "trial-number-limit", "subscription",
                      json={"name": "Acme", "country": "US", "subscription": "TRIAL"})


async def test_people_rules(owner_api: ApiHarness):
    api = owner_api
    austin = await _location(api)
    dallas = await _location(api, "Dallas", {**ADDRESS, "city": "Dallas", "postalCode": "75201"})
    await api.call("POST", f"/v1/locations/{austin}/numbers", json={"phoneNumbers": ["+15125550100", "+15125550101",
                                                                                     "+15125550102"]}, expect=201)
    await api.call("POST", f"/v1/locations/{dallas}/numbers", json={"phoneNumbers": ["+12145550100"]}, expect=201)
    ann = await api.call("POST", "/v1/people", expect=201, json={
        "email": "ann@acme.example", "firstName": "Ann", "lastName": "A", "locationId": austin, "extension": "1001",
        "phoneNumber": "+15125550101", "devices": [{"sipUsername": "ann", "password": "ann-password"}]})
    await api.call("PUT", f"/v1/locations/{austin}/mainNumber", json={
        "phoneNumber": "+15125550100", "destination": {"type": "PERSON", "id": ann["id"]}})

    def person(**overrides):
        return {"email": "ben@acme.example", "firstName": "Ben", "lastName": "B", "locationId": austin, **overrides}

    await api.problem("POST", "/v1/people", 409, "person-email-unique", "email", json=person(email="ANN@acme.example"))
    await api.problem("POST", "/v1/people", 409, "person-extension-unique", "extension", json=person(extension="1001"))
    await api.problem("POST", "/v1/people", 409, "person-number-taken", "phoneNumber",
                      json=person(phoneNumber="+15125550101"))
    await api.problem("POST", "/v1/people", 409, "person-number-is-main", "phoneNumber",
                      json=person(phoneNumber="+15125550100"))
    await api.problem("POST", "/v1/people", 422, "person-number-location", "phoneNumber",
                      json=person(phoneNumber="+12145550100"))
    await api.problem("POST", "/v1/people", 422, "person-number-location", "phoneNumber",
                      json=person(phoneNumber="+15125550199"))
    await api.problem("POST", "/v1/people", 404, "not-found", "locationId", json=person(locationId="nowhere"))
    await api.problem("POST", "/v1/people", 409, "sip-username-unique", "devices.0.sipUsername",
                      json=person(devices=[{"sipUsername": "ann", "password": "long-enough"}]))
    await api.problem("POST", "/v1/people", 422, "string_too_short", "devices.0.password",
                      json=person(devices=[{"sipUsername": "ben", "password": "short"}]))
    await api.problem("POST", "/v1/people", 422, "string_pattern_mismatch", "extension", json=person(extension="12a"))
    # The same extension at another location is fine.
    ben = await api.call("POST", "/v1/people", expect=201, json=person(locationId=dallas, extension="1001",
                                                                       phoneNumber="214-555-0100"))
    assert ben["phoneNumber"] == "+12145550100"

    # Moving Ann's number to Ben's old one is refused (another location), to a free one works and frees the old.
    fields = {k: ann[k] for k in ("email", "firstName", "lastName", "locationId", "extension")}
    await api.problem("PUT", f"/v1/people/{ann['id']}", 422, "person-number-location", "phoneNumber",
                      json={**fields, "phoneNumber": "+12145550100"})
    api.events.clear()
    moved = await api.call("PUT", f"/v1/people/{ann['id']}", json={**fields, "phoneNumber": "+15125550102"})
    assert moved["phoneNumber"] == "+15125550102"
    numbers = {e.entity_id: e.data["ownerId"] for e in api.events if e.entity == "number"}
    assert numbers == {"+15125550101": None, "+15125550102": ann["id"]}

    # Ann is where the main number goes: she cannot be removed until it points elsewhere.
    await api.problem("DELETE", f"/v1/people/{ann['id']}", 409, "person-is-main-destination", "personId")
    await api.call("PUT", f"/v1/locations/{austin}/mainNumber", json={
        "phoneNumber": "+15125550100", "destination": {"type": "PERSON", "id": ben["id"]}})
    await api.call("DELETE", f"/v1/people/{ann['id']}", expect=204)
    assert (await api.call("GET", "/v1/numbers/+15125550102"))["available"] is True
    with api.store.session() as s:
        assert s.scalar(select(Device).where(Device.sip_username == "ann")) is None


async def test_devices_passwords_are_write_only(owner_api: ApiHarness):
    api = owner_api
    loc = await _location(api)
    cal = await api.call("POST", "/v1/people", expect=201, json={
        "email": "cal@acme.example", "firstName": "Cal", "lastName": "C", "locationId": loc})
    device = await api.call("POST", f"/v1/people/{cal['id']}/devices", expect=201,
                            json={"sipUsername": "cal-desk", "password": "first-password"})
    assert device == {"id": device["id"], "sipUsername": "cal-desk", "type": "DESK_PHONE"}
    path = f"/v1/people/{cal['id']}/devices/{device['id']}"
    await api.call("PUT", path, json={"password": "second-password", "type": "SOFT_CLIENT"})
    with api.store.session() as s:
        row = s.get(Device, device["id"])
        assert row.ha1() == ha1_all("cal-desk", "acme", "second-password")
        assert row.device_type == "SOFT_CLIENT"
    assert [d["type"] for d in await api.call("GET", f"/v1/people/{cal['id']}/devices")] == ["SOFT_CLIENT"]
    await api.call("DELETE", path, expect=204)
    await api.problem("DELETE", path, 404, "not-found", "deviceId")


async def test_main_number_rules(owner_api: ApiHarness):
    api = owner_api
    austin = await _location(api)
    dallas = await _location(api, "Dallas", {**ADDRESS, "city": "Dallas", "postalCode": "75201"})
    await api.call("POST", f"/v1/locations/{dallas}/numbers", json={"phoneNumbers": ["+12145550100"]}, expect=201)
    await api.call("POST", f"/v1/locations/{austin}/numbers", json={"phoneNumbers": ["+15125550100"]}, expect=201)
    await api.problem("PUT", f"/v1/locations/{austin}/mainNumber", 422, "main-number-location", "phoneNumber",
                      json={"phoneNumber": "+12145550100", "destination": {"type": "PERSON", "id": "x"}})
    await api.problem("PUT", f"/v1/locations/{austin}/mainNumber", 404, "not-found", "destination.id",
                      json={"phoneNumber": "+15125550100", "destination": {"type": "PERSON", "id": "nobody"}})
    await api.problem("PUT", f"/v1/locations/{austin}/mainNumber", 404, "not-found", "destination.id",
                      json={"phoneNumber": "+15125550100", "destination": {"type": "AUTO_ATTENDANT", "id": "none"}})


async def test_trunks_keep_only_digests(owner_api: ApiHarness):
    api = owner_api
    trunk = await api.call("POST", "/v1/trunks", expect=201, json={
        "name": "carrier", "host": "sip.carrier.example", "port": 5061, "transport": "TLS", "register": True,
        "username": "acme", "password": "trunk-secret", "realm": "carrier.example"})
    assert trunk["hasPassword"] and trunk["register"] and "password" not in trunk
    with api.store.session() as s:
        row = s.get(Trunk, trunk["id"])
        assert row.ha1 == ha1_all("acme", "carrier.example", "trunk-secret")
    body = {k: trunk[k] for k in ("name", "host", "port", "transport", "register", "username", "realm")}
    await api.problem("PUT", f"/v1/trunks/{trunk['id']}", 422, "trunk-password-required", "password",
                      json={**body, "username": "acme2"})
    await api.problem("POST", "/v1/trunks", 422, "trunk-register-credentials", "password",
                      json={"name": "bare", "host": "192.0.2.1", "register": True})
    await api.problem("POST", "/v1/trunks", 409, "trunk-name-unique", "name", json={"name": "carrier", "host": "h.example"})
    await api.problem("POST", "/v1/trunks", 422, "value_error", "host", json={"name": "x", "host": "not a host"})

    loc = await _location(api, trunk=None)
    await api.call("PUT", f"/v1/locations/{loc}/pstnConnection", json={"type": "CLOUD_CONNECTED_PSTN",
                                                                       "trunk": trunk["id"]})
    renamed = await api.call("PUT", f"/v1/trunks/{trunk['id']}", json={**body, "name": "carrier-east"})
    assert renamed["name"] == "carrier-east" and renamed["hasPassword"]  # digests kept without the password
    assert (await api.call("GET", f"/v1/locations/{loc}"))["pstnConnection"]["trunk"] == "carrier-east"
    await api.problem("DELETE", f"/v1/trunks/{trunk['id']}", 409, "trunk-in-use", "trunkId")


async def test_location_rules(owner_api: ApiHarness):
    api = owner_api
    austin = await api.call("POST", "/v1/locations", expect=201, json={
        "name": "Austin", "timeZone": "America/Chicago", "address": ADDRESS, "routingPrefix": "8"})
    await api.problem("POST", "/v1/locations", 409, "routing-prefix-unique", "routingPrefix", json={
        "name": "Dallas", "timeZone": "America/Chicago", "address": ADDRESS, "routingPrefix": "8"})
    await api.problem("POST", "/v1/locations", 422, "value_error", None, json={
        "name": "Dallas", "timeZone": "America/Chicago", "address": ADDRESS, "country": "GB"})
    await api.problem("POST", "/v1/locations", 422, "string_pattern_mismatch", "outsideDialDigit", json={
        "name": "Dallas", "timeZone": "America/Chicago", "address": ADDRESS, "outsideDialDigit": "99"})
    await api.call("POST", "/v1/trunks", json={"name": "gw", "host": "192.0.2.1"}, expect=201)
    await api.call("PUT", f"/v1/locations/{austin['id']}/pstnConnection", json={"type": "LOCAL_GATEWAY", "trunk": "gw"})
    await api.call("POST", f"/v1/locations/{austin['id']}/numbers", json={"phoneNumbers": ["+15125550100"]}, expect=201)
    london = {"address1": "1 Poultry", "city": "London", "postalCode": "EC2R 8EJ", "country": "GB"}
    await api.problem("PUT", f"/v1/locations/{austin['id']}", 409, "location-country-fixed", "country", json={
        "name": "Austin", "timeZone": "Europe/London", "address": london})
    await api.problem("DELETE", f"/v1/locations/{austin['id']}", 409, "location-has-numbers", "locationId")
