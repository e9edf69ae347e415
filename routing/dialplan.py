"""A country's dialling habits, read once from phonenumbers' metadata.

phonenumbers parses a number in about 20 us; a router that resolves 200,000 calls a second
cannot afford that per call. What a call needs (the country calling code, the national and
international prefixes, the possible lengths of a national number, the emergency short codes)
is fixed per country, so it is read here once and every call after that is a few string
operations and dict lookups.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

# Visual separators people and phones put in numbers: "+1 (512) 555-0101", "020.7946.0000".
SEPARATORS = str.maketrans("", "", " \t-.()/[]")

_COUNTRY_CODES: dict[str, tuple[str, ...]] = {
    str(code): regions for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()
}


class UnknownCountry(ValueError):
    """A location's country that phonenumbers has no dialling plan for."""


@dataclass(frozen=True, slots=True)
class DialPlan:
    country: str                       # ISO 3166 alpha-2
    country_code: str                  # "1", "44"
    national_prefix: str | None        # "1" (NANP), "0" (GB, AU, DE); None where there is none (IT)
    # NANP: a national number may be dialled with or without its "1". Elsewhere a number
    # without the trunk prefix is a local subscriber number whose area code we cannot know.
    prefix_optional: bool
    international_prefix: re.Pattern[str]  # matched at the start: "011", "00", "0011"...
    emergency: re.Pattern[str]         # full match: "911", "112", "999", "000"...
    emergency_max_length: int          # longer strings skip the pattern
    emergency_numbers: frozenset[str]  # those of up to four digits, spelt out: a set lookup
    lengths: frozenset[int]            # possible lengths of a national significant number
    min_length: int

    def is_emergency(self, digits: str) -> bool:
        if len(digits) <= 4:
            return digits in self.emergency_numbers
        return len(digits) <= self.emergency_max_length and self.emergency.fullmatch(digits) is not None


@lru_cache(maxsize=None)
def dial_plan(country: str) -> DialPlan:
    region = country.upper()
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        raise UnknownCountry(f"no dialling plan for country {country!r}")
    short = PhoneMetadata.short_metadata_for_region(region)
    desc = short.emergency if short is not None else None
    pattern = desc.national_number_pattern if desc is not None else None
    max_length = max(desc.possible_length or (6,)) if pattern else 3
    cc = str(meta.country_code)
    # The country's own lengths, not those of every region sharing its code: Canada's
    # 7-digit numbers would otherwise make a 7-digit local number look complete in the US.
    lengths = frozenset(meta.general_desc.possible_length or ()) or _lengths(cc)
    emergency = re.compile(pattern or "112")
    return DialPlan(
        country=region,
        country_code=cc,
        national_prefix=meta.national_prefix or None,
        prefix_optional=cc == "1",
        international_prefix=re.compile(meta.international_prefix or "(?!)"),
        # Every country has 112 on GSM networks at least; a region without short-number data
        # still gets that rather than no emergency number at all.
        emergency=emergency,
        emergency_max_length=max_length,
        emergency_numbers=frozenset(_spell_out(emergency, 4)),
        lengths=lengths,
        min_length=min(lengths),
    )


def _spell_out(pattern: re.Pattern[str], max_length: int) -> list[str]:
    """Every digit string of up to max_length that the pattern matches in full (11,110 tries)."""
    found = []
    for length in range(1, max_length + 1):
        for n in range(10 ** length):
            text = f"{n:0{length}d}"
            if pattern.fullmatch(text):
                found.append(text)
    return found


@lru_cache(maxsize=None)
def _lengths(cc: str) -> frozenset[int]:
    """Possible national-number lengths over every region sharing a country calling code."""
    found: set[int] = set()
    for region in _COUNTRY_CODES.get(cc, ()):
        meta = PhoneMetadata.metadata_for_region(region)
        if meta is not None and meta.general_desc is not None:
            found.update(meta.general_desc.possible_length or ())
    if not found:
        # Non-geographic codes (+800, +882...) carry their metadata elsewhere; E.164 allows 15.
        found.update(range(4, 16 - len(cc)))
    return frozenset(found)


def split_country_code(digits: str) -> tuple[str, str] | None:
    """("44", "2079460000") from "442079460000"; None when no country code starts it.

    Country codes are prefix-free (ITU-T E.164), so the first match is the only one.
    """
    for size in (1, 2, 3):
        cc = digits[:size]
        if cc in _COUNTRY_CODES and len(digits) > size:
            return cc, digits[size:]
    return None


def lengths_for(cc: str) -> frozenset[int]:
    return _lengths(cc)


def regions_for(cc: str) -> tuple[str, ...]:
    return _COUNTRY_CODES.get(cc, ())


# (cc + leading digits) -> region, filled on first use: only countries that share a calling
# code (NANP, +44 with the Crown Dependencies, +7...) need more than the code to tell.
_region_cache: dict[str, str] = {}


def region_of(cc: str, nsn: str) -> str | None:
    """The ISO country of a number, for rating calls; a dict lookup after the first call."""
    regions = _COUNTRY_CODES.get(cc)
    if not regions:
        return None
    if len(regions) == 1:
        return regions[0]
    key = cc + nsn[: 3 if cc == "1" else 4]
    known = _region_cache.get(key)
    if known is not None:
        return known
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + cc + nsn))
    except phonenumbers.NumberParseException:
        region = None
    if region is None:
        return regions[0]  # an invalid number is not cached: it says nothing about its prefix
    _region_cache[key] = region
    return region
