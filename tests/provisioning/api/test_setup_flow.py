"""The whole set-up flow through the API, on SQLite and PostgreSQL, with mail received by aiosmtpd:
activation code, tokens, a trunk, a location with its PSTN connection and emergency address,
numbers, the main number, people with numbers and extensions (one still being ported) and their
invitations; the emergency address default, override, revert and propagation; roles."""

from __future__ import annotations

import re

from sqlalchemy import select

from provisioning.service import system_actor
from provisioning.events import ChangeEvent
from provisioning.store import Device, Number, NumberState, Person
from provisioning.digest import ha1
from tests.provisioning.api.conftest import ADDRESS, OWNER_EMAIL, ApiHarness

REMOTE = {"address1": "12 Elm St", "city": "Round Rock", "state": "TX", "postalCode": "78664", "country": "US"}
NEW_SITE = {"address1": "500 W 2nd St", "address2": "Floor 3", "city": "Austin", "state": "TX",
            "postalCode": "78701", "country": "US"}


async def _location(api: ApiHarness) -> dict:
    await api.call("POST", "/v1/trunks", json={"name": "austin-gw", "host": "gw.austin.example", "port": 5060,
                                                 "transport": "TCP"}, expect=201)
    location = await api.call("POST", "/v1/locations", expect=201, json={
        "name": "Austin", "timeZone": "America/Chicago", "address": ADDRESS, "routingPrefix": "8",
        "outsideDialDigit": "9", "contact": {"name": "Front desk", "email": "desk@acme.example"}})
    return await api.call("PUT", f"/v1/locations/{location['id']}/pstnConnection",
                          json={"type": "LOCAL_GATEWAY", "trunk": "austin-gw"})


def _port_pending(api: ApiHarness, location_id: str, e164: str) -> None:
    """A number being ported in, as the port-order lifecycle leaves it (through the service layer)."""
    with api.ctx.unit_of_work(system_actor("test-port", location_id)) as uow:
        uow.session.add(Number(e164=e164, location_id=location_id, state=NumberState.PORT_PENDING, is_main=False))
        uow.change("number", e164, "created", None, {"phoneNumber": e164, "state": "PORT_PENDING"})


async def test_activation_to_people_with_invitations(api: ApiHarness):
    # Activation: the code arrives by mail, the owner token comes back.
    token = await api.activate()
    assert token.startswith("cr_")
    code_mail = api.mail.messages[0]
    assert code_mail["To"] == OWNER_EMAIL and "activation code" in code_mail["Subject"]
    me = await api.call("GET", "/v1/tokens/me")
    assert me["role"] == "OWNER" and me["name"] == OWNER_EMAIL
    await api.make_tokens()

    org = await api.call("GET", "/v1/organization")
    assert (org["name"], org["subscription"], org["sipRealm"]) == ("Acme", "TRIAL", "acme")
    org = await api.call("PUT", "/v1/organization", json={"name": "Acme", "country": "US", "subscription": "PAID",
                                                           "businessAccount": True})
    assert org["subscription"] == "PAID" and org["callRecordingAvailable"] is True

    location = await _location(api)
    loc_id = location["id"]
    assert location["pstnConnection"] == {"type": "LOCAL_GATEWAY", "trunk": "austin-gw"}
    assert location["emergencyAddress"]["address1"] == ADDRESS["address1"]  # defaults to the address
    assert (location["routingPrefix"], location["outsideDialDigit"]) == ("8", "9")

    location = await api.call("PUT", f"/v1/locations/{loc_id}/emergencyAddress", json=NEW_SITE)
    assert location["emergencyAddress"]["address2"] == "Floor 3"

    numbers = await api.call("POST", f"/v1/locations/{loc_id}/numbers", expect=201,
                             json={"phoneNumbers": ["+1 512 555 0100", "(512) 555-0101", "512.555.0102"]})
    assert [n["phoneNumber"] for n in numbers] == ["+15125550100", "+15125550101", "+15125550102"]
    _port_pending(api, loc_id, "+15125550199")

    alice = await api.call("POST", "/v1/people", expect=201, json={
        "email": "Alice@Acme.example", "firstName": "Alice", "lastName": "Able", "locationId": loc_id,
        "extension": "1001", "phoneNumber": "+15125550101",
        "devices": [{"sipUsername": "alice", "password": "alice-secret-1001"},
                    {"sipUsername": "alice-soft", "password": "alice-soft-pw", "type": "SOFT_CLIENT"}]})
    assert alice["email"] == "alice@acme.example" and alice["phoneNumberState"] == "ACTIVE"
    assert [d["type"] for d in alice["devices"]] == ["DESK_PHONE", "SOFT_CLIENT"]
    assert all("password" not in d for d in alice["devices"])
    bob = await api.call("POST", "/v1/people", expect=201, role="FULL_ADMIN", json={
        "email": "bob@acme.example", "firstName": "Bob", "lastName": "Baker", "locationId": loc_id,
        "extension": "1002", "phoneNumber": "+15125550199"})
    assert bob["phoneNumberState"] == "PORT_PENDING"
    carol = await api.call("POST", "/v1/people", expect=201, role="PARTNER_ADMIN", json={
        "email": "carol@acme.example", "firstName": "Carol", "lastName": "Cole", "locationId": loc_id,
        "extension": "1003"})
    assert carol["phoneNumber"] is None

    location = await api.call("PUT", f"/v1/locations/{loc_id}/mainNumber", json={
        "phoneNumber": "(512) 555-0100", "destination": {"type": "PERSON", "id": carol["id"]}})
    assert location["mainNumber"] == {"phoneNumber": "+15125550100",
                                      "destination": {"type": "PERSON", "id": carol["id"]}}

    # Invitations reached each person, naming their extension and number (and the pending port).
    for person, extension in ((alice, "1001"), (bob, "1002"), (carol, "1003")):
        (mail,) = await api.wait_for_mail(person["email"])
        assert f"Your extension: {extension}" in mail.get_payload()
    assert "being ported" in (await api.wait_for_mail("bob@acme.example"))[0].get_payload()

    # Numbers: state, owner, main flag and availability as set up.
    listed = await api.call("GET", f"/v1/numbers?locationId={loc_id}", role="READ_ONLY")
    by_number = {n["phoneNumber"]: n for n in listed["items"]}
    assert listed["total"] == 4
    assert by_number["+15125550100"]["mainNumber"] and not by_number["+15125550100"]["available"]
    assert by_number["+15125550101"]["ownerId"] == alice["id"]
    assert by_number["+15125550199"]["state"] == "PORT_PENDING"
    assert [n["phoneNumber"] for n in (await api.call("GET", "/v1/numbers?available=true"))["items"]] == \
        ["+15125550102"]
    assert [n["phoneNumber"] for n in (await api.call("GET", "/v1/numbers?state=PORT_PENDING"))["items"]] == \
        ["+15125550199"]
    assert [n["phoneNumber"] for n in (await api.call("GET", f"/v1/numbers?ownerId={alice['id']}"))["items"]] == \
        ["+15125550101"]

    # What the store holds: HA1 digests in the organisation's realm, never the password.
    with api.store.session() as s:
        device = s.scalar(select(Device).where(Device.sip_username == "alice"))
        assert device.ha1()["SHA-256"] == ha1("SHA-256", "alice", "acme", "alice-secret-1001")
        assert s.scalar(select(Person.phone_number).where(Person.email == "bob@acme.example")) == "+15125550199"

    # The audit trail names who did what.
    trail = await api.call("GET", f"/v1/auditEvents?targetType=person&targetId={bob['id']}")
    assert [(e["action"], e["actor"]) for e in trail["items"]] == [("person.created", "full_admin@acme.example")]
    assert trail["items"][0]["before"] is None and trail["items"][0]["after"]["extension"] == "1002"


async def test_emergency_address_default_override_revert_and_propagation(owner_api: ApiHarness):
    api = owner_api
    location = await _location(api)
    loc_id = location["id"]
    await api.call("POST", f"/v1/locations/{loc_id}/numbers", expect=201,
                   json={"phoneNumbers": ["+15125550100", "+15125550101"]})

    number = await api.call("GET", "/v1/numbers/+15125550101")
    assert number["emergencyAddressSource"] == "LOCATION"
    assert number["emergencyAddress"]["address1"] == ADDRESS["address1"]

    # Override: the remote worker's number gets its own address.
    api.events.clear()
    number = await api.call("PUT", "/v1/numbers/+15125550101/emergencyAddress", json=REMOTE)
    assert number["emergencyAddressSource"] == "NUMBER" and number["emergencyAddress"]["city"] == "Round Rock"
    (event,) = api.events
    assert (event.entity, event.entity_id, event.action) == ("number", "+15125550101", "updated")
    assert event.data["emergencyAddress"]["city"] == "Round Rock"

    # The location's new address reaches its other number, not the overridden one.
    api.events.clear()
    await api.call("PUT", f"/v1/locations/{loc_id}/emergencyAddress", json=NEW_SITE)
    updated = {e.entity_id: e for e in api.events if e.entity == "number"}
    assert set(updated) == {"+15125550100"}
    assert updated["+15125550100"].data["emergencyAddress"]["address1"] == NEW_SITE["address1"]
    assert updated["+15125550100"].data["emergencyAddressSource"] == "LOCATION"
    assert (await api.call("GET", "/v1/numbers/+15125550100"))["emergencyAddress"]["address2"] == "Floor 3"
    assert (await api.call("GET", "/v1/numbers/+15125550101"))["emergencyAddress"]["city"] == "Round Rock"

    # {} reverts to the location's (now the new site).
    api.events.clear()
    number = await api.call("PUT", "/v1/numbers/+15125550101/emergencyAddress", json={})
    assert number["emergencyAddressSource"] == "LOCATION"
    assert number["emergencyAddress"]["address2"] == "Floor 3"
    assert api.events == [ChangeEvent("number", "+15125550101", "updated", api.events[0].data)]
    assert api.events[0].data["emergencyAddressSource"] == "LOCATION"

    # Addresses are checked for their country: a bad postal code, a missing state, a half address.
    await api.problem("PUT", "/v1/numbers/+15125550101/emergencyAddress", 422, "address-postal-code", "postalCode",
                      json={**REMOTE, "postalCode": "7866"})
    no_state = {k: v for k, v in REMOTE.items() if k != "state"}
    await api.problem("PUT", f"/v1/locations/{loc_id}/emergencyAddress", 422, "address-state", "state", json=no_state)
    await api.problem("PUT", "/v1/numbers/+15125550101/emergencyAddress", 422, "missing", "country",
                      json={"city": "Austin"})
    uk = {"address1": "1 Poultry", "city": "London", "postalCode": "EC2R 8EJ", "country": "GB"}
    assert (await api.call("PUT", "/v1/numbers/+15125550101/emergencyAddress", json=uk))["emergencyAddress"][
        "country"] == "GB"


async def test_roles_and_authentication(owner_api: ApiHarness):
    api = owner_api
    location = await _location(api)
    # READ_ONLY reads but cannot write; PARTNER_ADMIN cannot manage tokens; no token is 401.
    assert (await api.call("GET", "/v1/locations", role="READ_ONLY"))["total"] == 1
    body = await api.problem("POST", "/v1/locations", 403, "role-not-allowed", role="READ_ONLY",
                             json={"name": "X", "timeZone": "UTC", "address": ADDRESS})
    assert "READ_ONLY" in body["detail"]
    await api.problem("PUT", f"/v1/locations/{location['id']}/emergencyAddress", 403, "role-not-allowed",
                      role="READ_ONLY", json=REMOTE)
    await api.problem("POST", "/v1/tokens", 403, "role-not-allowed", role="PARTNER_ADMIN",
                      json={"name": "x", "role": "READ_ONLY"})
    await api.problem("GET", "/v1/outbox", 403, "role-not-allowed", role="READ_ONLY")
    response, body = await api.request("GET", "/v1/locations", role=None)
    assert response.status == 401 and body["rule"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    await api.problem("GET", "/v1/locations", 401, "invalid-token", token="cr_not-a-token")

    # A revoked token stops working at once; the owner's own token cannot be revoked.
    tokens = (await api.call("GET", "/v1/tokens"))["items"]
    read_only = next(t for t in tokens if t["role"] == "READ_ONLY")
    owner = next(t for t in tokens if t["role"] == "OWNER")
    await api.call("DELETE", f"/v1/tokens/{read_only['id']}", expect=204)
    await api.problem("GET", "/v1/locations", 401, "invalid-token", role="READ_ONLY")
    await api.problem("DELETE", f"/v1/tokens/{owner['id']}", 409, "owner-token-irrevocable", "tokenId")
    assert re.fullmatch(r"[0-9a-f-]{36}", read_only["id"])
    # Secrets are never listed.
    assert all("token" not in t for t in tokens)
