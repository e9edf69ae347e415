"""The store read into routing records: every column routing needs, from SQLite and PostgreSQL,
and a directory built from it routes calls as the store says."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provisioning.directory_feed import load_directory_data
from provisioning.store import Device, Location, Number, NumberState, Organization, Person, PstnType, Store, Subscription
from provisioning.tables_access import Trunk
from provisioning.tables_ivr import AutoAttendant, DialingScope
from routing.callers import DeviceCaller, TrunkCaller
from routing.directory import Directory
from routing.records import AutoAttendantRecord, DeviceRecord, NumberRecord, OrganizationRecord, TrunkRecord
from routing.resolve import resolve
from routing.route import Emergency, Reject, RingPerson, RunAutoAttendant, ToTrunk

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ESA = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}
HOME = {"address1": "7 Elm St", "city": "Round Rock", "state": "TX", "postalCode": "78664", "country": "US"}
HA1 = {"MD5": "a" * 32, "SHA-256": "b" * 64, "SHA-512-256": "c" * 64}


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


def populate(store: Store) -> dict[str, str]:
    with store.session() as s:
        org = Organization(name="Acme", country="us", subscription=Subscription.PAID, sip_realm="acme.example")
        s.add(org)
        s.flush()
        aus = Location(org_id=org.id, name="Austin", country="US", time_zone="America/Chicago", address=ESA,
                       emergency_address=ESA, pstn_type=PstnType.LOCAL_GATEWAY, pstn_trunk="gw",
                       main_number="+15125550100", routing_prefix="8", outside_dial_digit="9",
                       contact={"name": "Ops", "email": "ops@acme.example"})
        dal = Location(org_id=org.id, name="Dallas", country="US", time_zone="America/Chicago", address=ESA,
                       emergency_address=ESA, routing_prefix="7")
        s.add_all([aus, dal])
        s.flush()
        alice = Person(org_id=org.id, location_id=aus.id, email="alice@acme.example", first_name="Alice",
                       last_name="Anderson", extension="1001", phone_number="+15125550101")
        bob = Person(org_id=org.id, location_id=dal.id, email="bob@acme.example", first_name="Bob",
                     last_name="Brown", extension="2001")
        s.add_all([alice, bob])
        s.flush()
        for username, person in (("alice-desk", alice), ("alice-soft", alice), ("bob", bob)):
            device = Device(person_id=person.id, sip_username=username)
            device.set_ha1(HA1)
            s.add(device)
        menu = AutoAttendant(org_id=org.id, location_id=aus.id, name="Main menu", extension="1000",
                             phone_number="+15125550100", extension_dialing=DialingScope.LOCATION,
                             name_dialing=DialingScope.LOCATION, config={})
        closed = AutoAttendant(org_id=org.id, location_id=aus.id, name="Closed menu", extension="1099",
                               enabled=False, extension_dialing=DialingScope.LOCATION,
                               name_dialing=DialingScope.LOCATION, config={})
        s.add_all([menu, closed])
        s.flush()
        aus.main_destination_type, aus.main_destination_id = "AUTO_ATTENDANT", menu.id
        s.add_all([
            Number(e164="+15125550100", location_id=aus.id, is_main=True),
            Number(e164="+15125550101", location_id=aus.id, owner_id=alice.id, emergency_address=HOME),
            Number(e164="+15125550102", location_id=aus.id, state=NumberState.PORT_PENDING),
            Number(e164="+15125550103", location_id=aus.id, state=NumberState.INACTIVE),
        ])
        s.add(Trunk(org_id=org.id, name="gw", host="192.0.2.10", port=5080, transport="TCP", register=True,
                    username="acme", realm="carrier.example", ha1=HA1))
        s.flush()
        return {"org": org.id, "aus": aus.id, "dal": dal.id, "alice": alice.id, "bob": bob.id,
                "menu": menu.id, "closed": closed.id}


def test_every_record_is_read(store):
    ids = populate(store)
    data = load_directory_data(store)
    assert data.organizations == [OrganizationRecord(ids["org"], "Acme", "US", "acme.example")]
    aus = next(loc for loc in data.locations if loc.id == ids["aus"])
    assert (aus.country, aus.routing_prefix, aus.outside_dial_digit, aus.main_number) == ("US", "8", "9", "+15125550100")
    assert aus.main_destination == ("AUTO_ATTENDANT", ids["menu"])
    assert (aus.emergency_address, aus.contact_email, aus.pstn_type, aus.trunk_name) == (
        ESA, "ops@acme.example", "LOCAL_GATEWAY", "gw")
    dal = next(loc for loc in data.locations if loc.id == ids["dal"])
    assert (dal.main_destination, dal.contact_email, dal.pstn_type, dal.trunk_name, dal.outside_dial_digit) == (
        None, None, None, None, None)
    alice = next(p for p in data.people if p.id == ids["alice"])
    assert (alice.location_id, alice.extension, alice.phone_number, alice.first_name) == (
        ids["aus"], "1001", "+15125550101", "Alice")
    assert sorted(data.devices, key=lambda d: d.sip_username) == [
        DeviceRecord("alice-desk", ids["alice"]), DeviceRecord("alice-soft", ids["alice"]), DeviceRecord("bob", ids["bob"])]
    assert sorted(data.numbers, key=lambda n: n.e164) == [
        NumberRecord("+15125550100", ids["aus"], "ACTIVE", None, None, True),
        NumberRecord("+15125550101", ids["aus"], "ACTIVE", ids["alice"], "PERSON", False, HOME),
        NumberRecord("+15125550102", ids["aus"], "PORT_PENDING", None, None, False),
        NumberRecord("+15125550103", ids["aus"], "INACTIVE", None, None, False),
    ]
    assert next(n for n in data.numbers if n.e164 == "+15125550101").emergency_address == HOME
    assert sorted(data.auto_attendants, key=lambda a: a.name) == [
        AutoAttendantRecord(ids["closed"], ids["aus"], "Closed menu", "1099", None, False),
        AutoAttendantRecord(ids["menu"], ids["aus"], "Main menu", "1000", "+15125550100", True),
    ]
    [trunk] = data.trunks
    assert trunk == TrunkRecord(trunk.id, ids["org"], "gw", "192.0.2.10", 5080, "TCP", True, "acme",
                                "carrier.example", HA1)
    assert trunk.ha1 == HA1


def test_repeated_ids_are_shared_not_copied(store):
    ids = populate(store)
    data = load_directory_data(store)
    loc = next(loc for loc in data.locations if loc.id == ids["aus"])
    assert all(n.location_id is loc.id for n in data.numbers)
    alice = next(p for p in data.people if p.id == ids["alice"])
    assert next(n for n in data.numbers if n.owner_id).owner_id is alice.id


def test_a_directory_from_the_store_routes_calls(store):
    ids = populate(store)
    d = Directory.build(load_directory_data(store))
    assert d.problems == ()
    route = resolve("72001", DeviceCaller("alice-desk"), d, NOW)
    assert isinstance(route, RingPerson) and route.person_id == ids["bob"] and route.caller_id.number == "81001"
    assert resolve("+15125550100", TrunkCaller("gw"), d, NOW).auto_attendant_id == ids["menu"]
    assert isinstance(resolve("1000", DeviceCaller("bob"), d, NOW), Reject)  # Dallas has no 1000
    assert isinstance(resolve("81000", DeviceCaller("bob"), d, NOW), RunAutoAttendant)
    assert resolve("81099", DeviceCaller("bob"), d, NOW) == Reject(480, "auto attendant is disabled")
    assert resolve("5125550102", TrunkCaller("gw"), d, NOW) == Reject(404, "number is being ported")
    assert resolve("5125550103", TrunkCaller("gw"), d, NOW) == Reject(404, "number not yet activated")
    out = resolve("9 212 555 0199", DeviceCaller("alice-soft"), d, NOW)
    assert isinstance(out, ToTrunk) and out.trunk.port == 5080 and out.caller_id.number == "+15125550101"
    assert resolve("2125550199", DeviceCaller("bob"), d, NOW) == Reject(503, "no PSTN connection")
    sos = resolve("911", DeviceCaller("alice-desk"), d, NOW)
    assert isinstance(sos, Emergency) and sos.esa == HOME and sos.notify_email == "ops@acme.example"
    assert d.trunk_for_source("192.0.2.10", 40123).name == "gw"


def test_empty_store(store):
    data = load_directory_data(store)
    assert (list(data.organizations), list(data.numbers), list(data.trunks)) == ([], [], [])
    assert Directory.build(data).problems == ()
