"""Calls arriving from PSTN trunks: the dialled DID in any form a carrier sends reaches its
owner or its location's main-number destination; anything else is refused with the reason."""
from __future__ import annotations

import pytest

from routing.callers import TrunkCaller
from routing.directory import Directory
from routing.resolve import resolve
from routing.route import CallerId, Reject, RingPerson, RunAutoAttendant

from .world import NOW, acme


@pytest.fixture(scope="module")
def directory() -> Directory:
    return Directory.build(acme())


def inbound(directory, trunk, dialled, from_number="+12125550123", trunk_id=None):
    return resolve(dialled, TrunkCaller(trunk, from_number, trunk_id), directory, NOW)


@pytest.mark.parametrize("dialled", ["+15125550101", "15125550101", "5125550101", "+1 512-555-0101"])
def test_did_in_e164_or_national_form_rings_its_owner(directory, dialled):
    route = inbound(directory, "gw-aus", dialled)
    assert route == RingPerson("p-alice", "Alice Anderson", ("alice-desk", "alice-soft"),
                               CallerId("+12125550123", None), dialled.translate(str.maketrans("", "", " -")), "AUS")


@pytest.mark.parametrize("dialled", ["+442079460101", "442079460101", "02079460101"])
def test_gb_trunk_forms(directory, dialled):
    assert inbound(directory, "ccp-lon", dialled).person_id == "p-liam"


def test_au_trunk_national_form(directory):
    assert inbound(directory, "cp-syd", "0290000101").person_id == "p-sophie"


def test_main_numbers_reach_their_destinations(directory):
    route = inbound(directory, "gw-aus", "5125550100")
    assert isinstance(route, RunAutoAttendant)
    assert (route.auto_attendant_id, route.location_id, route.name) == ("aa-aus", "AUS", "Austin main menu")
    assert inbound(directory, "ccp-lon", "02079460100").person_id == "p-liam"   # main number -> a person
    assert inbound(directory, "gw-aus", "5125550109").auto_attendant_id == "aa-sales"


def test_a_trunk_may_deliver_any_number_of_its_organisation(directory):
    # Carriers sometimes deliver all of a customer's DIDs over one trunk.
    assert inbound(directory, "gw-aus", "+442079460101").person_id == "p-liam"


@pytest.mark.parametrize("dialled,reason", [
    ("5125550104", "number is being ported"),
    ("5125550106", "number not yet activated"),
    ("5125550107", "number not assigned"),
    ("5125550199", "number not in service here"),
    ("1001", "number not in service here"),              # trunks do not dial extensions
    ("+442079460201", "number not in service here"),     # Globex's number on Acme's trunk
    ("alice", "number not in service here"),
])
def test_unroutable_dids(directory, dialled, reason):
    assert inbound(directory, "gw-aus", dialled) == Reject(404, reason)


def test_main_number_without_destination(directory):
    assert inbound(directory, "cp-syd", "+61290000100") == Reject(404, "main number has no destination")


def test_empty_request_uri_user(directory):
    assert inbound(directory, "gw-aus", "") == Reject(484, "address incomplete: nothing dialled")


def test_unknown_trunk_is_refused(directory):
    assert inbound(directory, "nobody", "+15125550101") == Reject(403, "call from an unknown trunk")


def test_trunk_id_tells_organisations_apart(directory):
    assert inbound(directory, "ignored", "+442079460201", trunk_id="t-gx").person_id == "p-greta"
    assert inbound(directory, "pstn", "+15125550101", trunk_id="t-gx") == Reject(404, "number not in service here")


@pytest.mark.parametrize("from_number,shown", [
    ("+12125550123", "+12125550123"),
    ("2125550123", "+12125550123"),         # national form of the trunk's country
    ("12125550123", "+12125550123"),
    ("011442079460000", "+442079460000"),   # international prefix of the trunk's country
    ("442079460000", "+442079460000"),      # E.164 without its plus
    ("anonymous", None),
    (None, None),
    ("", None),
])
def test_caller_number_is_shown_in_e164(directory, from_number, shown):
    route = inbound(directory, "gw-aus", "+15125550101", from_number)
    assert route.caller_id == CallerId(shown, None)


def test_gb_caller_numbers(directory):
    assert inbound(directory, "ccp-lon", "02079460101", "07700900123").caller_id.number == "+447700900123"
