"""Calls from our own phones: extensions, routing prefixes, national and international numbers,
outside-dial digits, emergency numbers, the organisation's own numbers, and every refusal."""
from __future__ import annotations

import pytest

from routing.callers import DeviceCaller
from routing.directory import Directory
from routing.resolve import resolve
from routing.route import CallerId, Emergency, Reject, RingPerson, RunAutoAttendant, ToTrunk

from .world import ESA_AUS, ESA_BER, ESA_CAROL_HOME, ESA_LON, ESA_SYD, NOW, TRUNK_AUS, TRUNK_LON, TRUNK_SYD, acme


@pytest.fixture(scope="module")
def directory() -> Directory:
    d = Directory.build(acme())
    assert d.problems == ()
    return d


def call(directory, username, dialled):
    return resolve(dialled, DeviceCaller(username), directory, NOW)


# -- extensions and routing prefixes -------------------------------------------------------------
def test_extension_in_own_location_rings_every_phone_of_the_person(directory):
    route = call(directory, "bob", "1001")
    assert route == RingPerson("p-alice", "Alice Anderson", ("alice-desk", "alice-soft"),
                               CallerId("1002", "Bob Brown"), "1001", "AUS")


def test_own_location_wins_over_another_location_with_the_same_extension(directory):
    # Alice (AUS) and Sophie (SYD) are both 1001; Globex's Greta too.
    assert call(directory, "bob", "1001").person_id == "p-alice"
    assert call(directory, "sophie", "1001").person_id == "p-sophie"
    assert call(directory, "greta", "1001").person_id == "p-greta"


def test_extension_of_an_auto_attendant(directory):
    route = call(directory, "alice-desk", "1009")
    assert route == RunAutoAttendant("aa-sales", "AUS", "Sales menu", CallerId("1001", "Alice Anderson"), "1009")


def test_routing_prefix_reaches_another_location_and_shows_a_number_to_call_back(directory):
    route = call(directory, "alice-desk", "72001")
    assert isinstance(route, RingPerson) and route.person_id == "p-liam"
    assert route.caller_id == CallerId("81001", "Alice Anderson")  # Liam redials 8 + 1001
    assert call(directory, "liam", "81001").caller_id == CallerId("72001", "Liam Lewis")
    assert call(directory, "alice-desk", "61001").person_id == "p-sophie"


def test_location_without_prefix_shows_its_people_by_number(directory):
    route = call(directory, "bernd", "81002")  # Berlin has no prefix, but may dial into Austin
    assert route.person_id == "p-bob" and route.caller_id == CallerId("+493012345601", "Bernd Bauer")


def test_routing_prefix_works_only_inside_the_organisation(directory):
    # Globex has no location with prefix 8: 81001 is no extension there, and too short for a number.
    assert call(directory, "greta", "81001") == Reject(484, "address incomplete")


def test_dialling_ones_own_extension_rings_ones_other_phones(directory):
    route = call(directory, "alice-desk", "1001")
    assert route.sip_usernames == ("alice-desk", "alice-soft")  # the B2BUA skips the calling phone


def test_person_without_a_phone(directory):
    assert call(directory, "bob", "1005") == Reject(480, "no phone assigned to the person")


def test_device_usernames_are_case_insensitive(directory):
    assert call(directory, "Alice-Desk", "1002").person_id == "p-bob"


# -- the organisation's own numbers stay inside -----------------------------------------------------
@pytest.mark.parametrize("dialled", ["5125550103", "15125550103", "+15125550103", "+1 (512) 555-0103",
                                     "9 1 512 555 0103", "95125550103", "9011 1 512 555 0103", "1.512.555.0103"])
def test_us_number_of_a_colleague_in_any_form(directory, dialled):
    route = call(directory, "bob", dialled)
    assert isinstance(route, RingPerson) and route.person_id == "p-carol"
    assert route.caller_id == CallerId("1002", "Bob Brown")


def test_main_number_reaches_its_destination(directory):
    route = call(directory, "bob", "5125550100")
    assert isinstance(route, RunAutoAttendant) and route.auto_attendant_id == "aa-aus"
    route = call(directory, "alice-desk", "011 44 20 7946 0100")  # London's main number rings Liam
    assert isinstance(route, RingPerson) and route.person_id == "p-liam"
    assert route.caller_id == CallerId("81001", "Alice Anderson")


def test_number_owned_by_an_auto_attendant(directory):
    assert call(directory, "bob", "5125550109").auto_attendant_id == "aa-sales"


@pytest.mark.parametrize("dialled,reason", [
    ("5125550104", "number is being ported"),          # Dave's, still with the old carrier
    ("5125550108", "number is being ported"),
    ("5125550106", "number not yet activated"),
    ("5125550107", "number not assigned"),
    ("+61 2 9000 0100", "main number has no destination"),
])
def test_own_numbers_that_are_not_routable(directory, dialled, reason):
    assert call(directory, "bob", dialled) == Reject(404, reason)


def test_another_organisations_number_leaves_through_the_trunk(directory):
    route = call(directory, "alice-desk", "+442079460201")  # Globex's Greta: not ours
    assert isinstance(route, ToTrunk) and route.trunk == TRUNK_AUS and route.number == "+442079460201"


# -- outside numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("dialled", ["2125550199", "12125550199", "92125550199", "912125550199",
                                     "+12125550199", "(212) 555-0199"])
def test_us_national_number_leaves_through_the_location_trunk(directory, dialled):
    route = call(directory, "alice-desk", dialled)
    assert route == ToTrunk(TRUNK_AUS, "+12125550199", CallerId("+15125550101", "Alice Anderson"), False,
                            dialled.translate(str.maketrans("", "", " ()-")), "US")


@pytest.mark.parametrize("dialled", ["011442079460999", "9011442079460999", "+44 20 7946 0999"])
def test_us_international_number(directory, dialled):
    route = call(directory, "alice-desk", dialled)
    assert isinstance(route, ToTrunk) and route.number == "+442079460999"
    assert route.international and route.country == "GB"


def test_nanp_number_of_another_country_is_international(directory):
    route = call(directory, "alice-desk", "4165550199")  # Toronto: +1 but Canada
    assert route.number == "+14165550199" and route.international and route.country == "CA"


def test_caller_without_a_routable_number_presents_the_main_number(directory):
    assert call(directory, "bob", "2125550199").caller_id == CallerId("+15125550100", "Bob Brown")
    # Dave's own number is still being ported: the main number is shown until it is ours.
    assert call(directory, "dave", "2125550199").caller_id == CallerId("+15125550100", "Dave Diaz")


@pytest.mark.parametrize("dialled,number", [
    ("02079460999", "+442079460999"),
    ("9 020 7946 0999", "+442079460999"),
    ("07700 900123", "+447700900123"),
    ("+44 (0)20 7946 0999".replace("(0)", ""), "+442079460999"),
])
def test_gb_national_numbers(directory, dialled, number):
    route = call(directory, "liam", dialled)
    assert isinstance(route, ToTrunk) and route.trunk == TRUNK_LON
    assert route.number == number and not route.international and route.country == "GB"
    assert route.caller_id == CallerId("+442079460101", "Liam Lewis")


def test_gb_international_number(directory):
    route = call(directory, "liam", "001 212 555 0199")
    assert route.number == "+12125550199" and route.international and route.country == "US"


def test_gb_number_without_its_trunk_prefix_is_refused_with_the_reason(directory):
    assert call(directory, "liam", "2079460999") == Reject(404, "not a number in GB: national numbers begin with 0")


@pytest.mark.parametrize("dialled,number", [
    ("0290000999", "+61290000999"),        # the outside digit 0 is optional...
    ("00290000999", "+61290000999"),       # ...and may precede a national number
    ("0412 345 678", "+61412345678"),
    ("0011 44 20 7946 0999", "+442079460999"),
    ("00011442079460999", "+442079460999"),
    ("+61 2 9000 0999", "+61290000999"),
])
def test_au_numbers_with_outside_digit_zero(directory, dialled, number):
    route = call(directory, "sophie", dialled)
    assert isinstance(route, ToTrunk) and route.trunk == TRUNK_SYD and route.number == number
    assert route.international == (not number.startswith("+61"))


@pytest.mark.parametrize("dialled", ["030 1234 5600", "0049 30 12345600", "+493012345600", "3000"])
def test_de_forms_of_the_berlin_main_number(directory, dialled):
    route = call(directory, "bernd", dialled)
    assert isinstance(route, RunAutoAttendant) and route.auto_attendant_id == "aa-ber"


def test_location_without_a_trunk_has_no_outside_calls(directory):
    assert call(directory, "bernd", "030 1234 5699") == Reject(503, "no PSTN connection")
    assert call(directory, "bernd", "+15125550101").person_id == "p-alice"  # own numbers still work


# -- emergency --------------------------------------------------------------------------------------
@pytest.mark.parametrize("username,dialled,service,trunk,esa", [
    ("alice-desk", "911", "911", TRUNK_AUS, ESA_AUS),
    ("alice-desk", "9911", "911", TRUNK_AUS, ESA_AUS),
    ("alice-desk", "112", "112", TRUNK_AUS, ESA_AUS),
    ("liam", "999", "999", TRUNK_LON, ESA_LON),
    ("liam", "9999", "999", TRUNK_LON, ESA_LON),
    ("liam", "112", "112", TRUNK_LON, ESA_LON),
    ("sophie", "000", "000", TRUNK_SYD, ESA_SYD),
    ("sophie", "0000", "000", TRUNK_SYD, ESA_SYD),
    ("sophie", "112", "112", TRUNK_SYD, ESA_SYD),
    ("bernd", "112", "112", None, ESA_BER),
    ("bernd", "110", "110", None, ESA_BER),
])
def test_emergency_numbers_of_each_country(directory, username, dialled, service, trunk, esa):
    route = call(directory, username, dialled)
    assert isinstance(route, Emergency)
    assert (route.service_number, route.trunk, route.esa, route.dialled) == (service, trunk, esa, dialled)


def test_emergency_call_carries_callback_location_and_notification(directory):
    route = call(directory, "alice-desk", "911")
    assert route == Emergency(TRUNK_AUS, "911", "911", "+15125550101", ESA_AUS, "AUS", "ops@acme.example",
                              "Alice Anderson", "p-alice")


def test_emergency_from_a_person_without_a_number(directory):
    route = call(directory, "bob", "9911")
    assert route.callback_number == "+15125550100" and route.esa == ESA_AUS


def test_emergency_uses_the_numbers_own_address(directory):
    assert call(directory, "carol", "911").esa == ESA_CAROL_HOME


def test_emergency_callback_is_never_a_number_still_being_ported(directory):
    assert call(directory, "dave", "911").callback_number == "+15125550100"


def test_other_countries_emergency_numbers_are_not_emergency_calls(directory):
    # 999 is not an emergency number in the US: it is simply too short to be a number.
    assert call(directory, "alice-desk", "999") == Reject(484, "address incomplete")


# -- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dialled,status,reason", [
    ("", 484, "address incomplete: nothing dialled"),
    ("555", 484, "address incomplete"),
    ("5550101", 484, "address incomplete"),        # a 7-digit local number: the area code is needed
    ("+44", 484, "address incomplete"),
    ("011", 484, "address incomplete"),
    ("+4420794", 484, "address incomplete"),
    ("+999123456", 404, "no country has the calling code of +999"),
    ("+1512555010199999", 404, "not a valid number: too many digits for +1"),
    ("*72", 404, "not a number or an extension"),
    ("alice", 404, "not a number or an extension"),
    ("+1512abc", 404, "not a valid number"),
])
def test_bad_numbers_are_refused_with_a_reason(directory, dialled, status, reason):
    assert call(directory, "alice-desk", dialled) == Reject(status, reason)


def test_unknown_and_unassigned_devices_are_refused(directory):
    assert call(directory, "mallory", "1001") == Reject(403, "device not provisioned")
    assert call(directory, "lobby", "911") == Reject(403, "device not assigned to a person")
