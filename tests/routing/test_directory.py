"""Building the directory: indexes, lookups, trunk identification, effective ESA, and bad
data that is reported rather than fatal."""
from __future__ import annotations

import dataclasses

import pytest

from routing.callers import DeviceCaller, TrunkCaller
from routing.directory import Directory
from routing.records import (
    AutoAttendantRecord,
    DeviceRecord,
    DirectoryData,
    LocationRecord,
    NumberRecord,
    PersonRecord,
    TrunkRecord,
)
from routing.resolve import resolve
from routing.route import Reject, RingPerson

from .world import ESA_AUS, ESA_CAROL_HOME, ESA_LON, NOW, TRUNK_AUS, TRUNK_GLOBEX, TRUNK_LON, TRUNK_SYD, acme


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.build(acme())


def test_lookups(directory):
    assert directory.device("ALICE-SOFT") == DeviceRecord("alice-soft", "p-alice")
    assert directory.device("nobody") is None
    assert directory.person("p-bob").last_name == "Brown"
    assert directory.location("LON").country == "GB"
    assert directory.number("+15125550104").state == "PORT_PENDING"
    assert directory.auto_attendant("aa-ber").extension == "3000"
    assert directory.sip_usernames("p-alice") == ("alice-desk", "alice-soft")
    assert directory.sip_usernames("p-erin") == ()
    assert directory.trunk("ccp-lon") == TRUNK_LON
    assert directory.trunk("pstn", org_id="globex") == TRUNK_GLOBEX
    assert directory.trunk("pstn", org_id="acme") is None
    assert directory.trunk_for_location("SYD") == TRUNK_SYD
    assert directory.trunk_for_location("BER") is None
    assert set(directory.trunks) == {TRUNK_AUS, TRUNK_LON, TRUNK_SYD, TRUNK_GLOBEX}


def test_empty_directory():
    empty = Directory.build(DirectoryData((), (), (), (), (), (), ()))
    assert empty.problems == ()
    assert resolve("1001", DeviceCaller("alice"), empty, NOW) == Reject(403, "device not provisioned")
    assert resolve("+15125550101", TrunkCaller("gw"), empty, NOW) == Reject(403, "call from an unknown trunk")


def test_trunk_for_source(directory):
    assert directory.trunk_for_source("192.0.2.10", 5060) == TRUNK_AUS
    # A trunk's requests may come from another port (always so over TCP): its host decides.
    assert directory.trunk_for_source("192.0.2.20", 49152) == TRUNK_LON
    assert directory.trunk_for_source("sbc.carrier.example", 5060) == TRUNK_SYD
    assert directory.trunk_for_source("192.0.2.99", 5060) is None


def test_two_trunks_on_one_host_are_told_apart_by_port():
    data = acme()
    second = TrunkRecord("t-aus2", "acme", "gw-aus-2", "192.0.2.10", 5080, "UDP")
    d = Directory.build(dataclasses.replace(data, trunks=[*data.trunks, second]))
    assert d.trunk_for_source("192.0.2.10", 5060) == TRUNK_AUS
    assert d.trunk_for_source("192.0.2.10", 5080) == second
    assert d.trunk_for_source("192.0.2.10", 40000) is None  # ambiguous: neither


def test_effective_esa(directory):
    assert directory.effective_esa("+15125550103") == ESA_CAROL_HOME   # the number's own
    assert directory.effective_esa("+15125550101") == ESA_AUS          # else its location's
    assert directory.effective_esa("+442079460101") == ESA_LON
    assert directory.effective_esa("p-carol") == ESA_CAROL_HOME
    assert directory.effective_esa(directory.person("p-bob")) == ESA_AUS  # no number at all
    assert directory.effective_esa("+19999999999") is None
    assert directory.effective_esa("p-nobody") is None


def test_bad_rows_are_reported_and_left_out():
    data = acme()
    bad = dataclasses.replace(
        data,
        locations=[*data.locations,
                   LocationRecord("MARS", "acme", "Mars", "XX", "UTC"),
                   LocationRecord("NOWHERE", "no-org", "Nowhere", "US", "UTC"),
                   LocationRecord("DAL", "acme", "Dallas", "US", "UTC", routing_prefix="8", trunk_name="missing")],
        people=[*data.people, PersonRecord("p-ghost", "acme", "MARS", "g@x", "G", "H", "1")],
        numbers=[*data.numbers, NumberRecord("+15125559999", "ATLANTIS")],
        auto_attendants=[*data.auto_attendants, AutoAttendantRecord("aa-dup", "AUS", "Duplicate", "1001"),
                         AutoAttendantRecord("aa-lost", "ATLANTIS", "Lost")],
        trunks=[*data.trunks, TrunkRecord("t-x", "no-org", "x", "203.0.113.1"),
                TrunkRecord("t-dup", "acme", "dup", "192.0.2.10", 5060)],
    )
    d = Directory.build(bad)
    text = "\n".join(d.problems)
    for expected in ("location MARS: no dialling plan for country 'XX'",
                     "location NOWHERE: unknown organisation no-org",
                     "person p-ghost: unknown location MARS",
                     "number +15125559999: unknown location ATLANTIS",
                     "extension 1001 in location AUS: held by both p-alice and aa-dup; keeping p-alice",
                     "auto attendant aa-lost: unknown location ATLANTIS",
                     "location DAL: routing prefix 8 is already location AUS's",
                     "location DAL: unknown trunk 'missing'",
                     "trunk x: unknown organisation no-org",
                     "trunk dup: 192.0.2.10:5060 is already trunk gw-aus"):
        assert expected in text
    assert len(d.problems) == 10
    # Everything else routes as before.
    assert resolve("1001", DeviceCaller("bob"), d, NOW).person_id == "p-alice"
    assert d.number("+15125559999") is None and d.person("p-ghost") is None
    assert d.trunk_for_source("192.0.2.10", 5060) == TRUNK_AUS


def test_a_change_is_a_new_directory(directory):
    """Activating a ported number builds a new snapshot; calls on the old one are unaffected."""
    data = acme()
    numbers = [dataclasses.replace(n, state="ACTIVE") if n.e164 == "+15125550104" else n for n in data.numbers]
    after = Directory.build(dataclasses.replace(data, numbers=numbers))
    caller = TrunkCaller("gw-aus", None)
    assert resolve("+15125550104", caller, directory, NOW) == Reject(404, "number is being ported")
    route = resolve("+15125550104", caller, after, NOW)
    assert isinstance(route, RingPerson) and route.person_id == "p-dave"
    assert resolve("+15125550104", caller, directory, NOW) == Reject(404, "number is being ported")


def test_records_are_immutable(directory):
    with pytest.raises(dataclasses.FrozenInstanceError):
        directory.person("p-bob").extension = "9999"  # type: ignore[misc]


def test_person_known_only_by_its_phone_number_field():
    # The number row is missing, the person row names the number: it still reaches them.
    data = acme()
    numbers = [n for n in data.numbers if n.e164 != "+15125550101"]
    d = Directory.build(dataclasses.replace(data, numbers=numbers))
    assert resolve("+15125550101", TrunkCaller("gw-aus"), d, NOW).person_id == "p-alice"
    assert resolve("5125550101", DeviceCaller("bob"), d, NOW).person_id == "p-alice"


def test_trunk_given_by_name_is_recognised_by_its_addresses():
    lookups = []

    def resolve_host(name):
        lookups.append(name)
        if name == "sbc.carrier.example":
            return ["203.0.113.7", "2001:db8::7"]
        raise OSError("Name or service not known")

    data = acme()
    extra = TrunkRecord("t-bad", "acme", "bad", "nowhere.invalid")
    d = Directory.build(dataclasses.replace(data, trunks=[*data.trunks, extra]), resolve_host=resolve_host)
    assert lookups == ["sbc.carrier.example", "nowhere.invalid"]  # IP literals are not looked up
    assert d.trunk_for_source("203.0.113.7", 5060) == TRUNK_SYD
    assert d.trunk_for_source("2001:db8::7", 33333) == TRUNK_SYD
    assert d.trunk_for_source("sbc.carrier.example", 5060) == TRUNK_SYD
    assert d.problems == ("trunk bad: cannot resolve nowhere.invalid (Name or service not known); "
                          "calls from it are recognised only by that name",)
