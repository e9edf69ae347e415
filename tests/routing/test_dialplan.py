"""Per-country facts read from phonenumbers' metadata once, so calls need no parsing."""
from __future__ import annotations

import pytest

from routing.dialplan import UnknownCountry, dial_plan, region_of, split_country_code


@pytest.mark.parametrize("country,cc,national,intl,emergency", [
    ("US", "1", "1", "011", {"911", "112"}),
    ("GB", "44", "0", "00", {"999", "112"}),
    ("AU", "61", "0", "0011", {"000", "112", "106"}),
    ("DE", "49", "0", "00", {"110", "112"}),
    ("FR", "33", "0", "00", {"112", "15", "17", "18"}),
])
def test_country_facts(country, cc, national, intl, emergency):
    plan = dial_plan(country.lower())
    assert (plan.country, plan.country_code, plan.national_prefix) == (country, cc, national)
    assert plan.international_prefix.match(intl + "44") is not None
    assert plan.emergency_numbers == emergency
    assert all(plan.is_emergency(n) for n in emergency)
    assert not plan.is_emergency("1234") and not plan.is_emergency("")


def test_national_prefix_is_optional_only_in_nanp():
    assert dial_plan("US").prefix_optional and dial_plan("CA").prefix_optional
    assert not dial_plan("GB").prefix_optional and not dial_plan("DE").prefix_optional


def test_lengths_are_the_countrys_own():
    assert dial_plan("US").lengths == {10}       # not Canada's 7
    assert dial_plan("AU").lengths >= {9}
    assert 7 in dial_plan("CA").lengths


def test_long_emergency_numbers_use_the_pattern():
    assert dial_plan("SE").is_emergency("90000") and not dial_plan("SE").is_emergency("90001")


def test_italy_has_no_national_prefix():
    plan = dial_plan("IT")
    assert plan.national_prefix is None and plan.country_code == "39"


def test_unknown_country():
    with pytest.raises(UnknownCountry, match="'XX'"):
        dial_plan("XX")


@pytest.mark.parametrize("digits,split", [
    ("15125550101", ("1", "5125550101")),
    ("442079460000", ("44", "2079460000")),
    ("3725551234", ("372", "5551234")),
    ("999123", None),
    ("44", None),
])
def test_split_country_code(digits, split):
    assert split_country_code(digits) == split


@pytest.mark.parametrize("cc,nsn,region", [
    ("1", "5125550101", "US"), ("1", "4165550199", "CA"), ("1", "8762345678", "JM"),
    ("44", "2079460000", "GB"), ("44", "1534456789", "JE"), ("49", "3012345678", "DE"),
    ("7", "4951234567", "RU"), ("7", "7012345678", "KZ"), ("999", "1", None),
])
def test_region_of_shared_country_codes(cc, nsn, region):
    assert region_of(cc, nsn) == region
    assert region_of(cc, nsn) == region  # again, from the cache
