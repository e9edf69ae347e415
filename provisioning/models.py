"""Pydantic pieces shared by the API resources, the CSV import and the organisation file:
countries, phone numbers, e-mail addresses, extensions and validated postal/emergency addresses.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any

import phonenumbers
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic.alias_generators import to_camel

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EXTENSION = re.compile(r"^[0-9]{2,6}$")
SIP_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")

# Business rule: the provider's calling plan is not sold in these countries.
NO_CALLING_PLAN = {"ID": "Indonesia", "MO": "Macau", "PH": "the Philippines", "SA": "Saudi Arabia"}

# Countries whose emergency services need a state/province/region in the address.
STATE_REQUIRED = {"US", "CA", "AU", "MX", "BR", "IN"}
US_STATES = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI".split())
CA_PROVINCES = set("AB BC MB NB NL NS NT NU ON PE QC SK YT".split())
AU_STATES = set("ACT NSW NT QLD SA TAS VIC WA".split())
# Postal code shapes where they are simple enough to check (upper-cased, spaces as given).
POSTAL_CODES = {
    "US": r"\d{5}(-\d{4})?", "CA": r"[A-Z]\d[A-Z] ?\d[A-Z]\d", "GB": r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}",
    "DE": r"\d{5}", "FR": r"\d{5}", "IT": r"\d{5}", "ES": r"\d{5}", "NL": r"\d{4} ?[A-Z]{2}", "BE": r"\d{4}",
    "CH": r"\d{4}", "AT": r"\d{4}", "DK": r"\d{4}", "NO": r"\d{4}", "SE": r"\d{3} ?\d{2}", "FI": r"\d{5}",
    "PL": r"\d{2}-\d{3}", "PT": r"\d{4}-\d{3}", "IE": r"[A-Z]\d[\dW] ?[A-Z\d]{4}", "AU": r"\d{4}",
    "NZ": r"\d{4}", "JP": r"\d{3}-?\d{4}", "IN": r"\d{6}", "BR": r"\d{5}-?\d{3}", "MX": r"\d{5}",
    "SG": r"\d{6}", "ZA": r"\d{4}", "CN": r"\d{6}", "KR": r"\d{5}",
}


def check_country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"must be an ISO 3166 alpha-2 country code, got {value!r}")
    return code


def check_time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/Chicago)") from None
    return value


def check_email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError(f"not an e-mail address: {value!r}")
    return value.lower()


def check_extension(value: str | None) -> str | None:
    if value is not None and not EXTENSION.match(value):
        raise ValueError(f"must be 2 to 6 digits, got {value!r}")
    return value


def check_sip_username(value: str) -> str:
    if not SIP_USERNAME.match(value):
        raise ValueError("must be 1-64 letters, digits or . _ + - (starting with a letter or digit)")
    return value


Country = Annotated[str, Field(min_length=2, max_length=2, examples=["US"]), AfterValidator(check_country)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, examples=["America/Chicago"]),
                     AfterValidator(check_time_zone)]
Email = Annotated[str, Field(min_length=3, max_length=254, examples=["alice@example.com"]), AfterValidator(check_email)]
Extension = Annotated[str, Field(min_length=2, max_length=6, pattern=r"^[0-9]{2,6}$")]
PhoneText = Annotated[str, Field(min_length=1, max_length=32, examples=["+15125550100"])]


def parse_number(text: str, country: str | None = None) -> str:
    """E.164 for a number in international format, or national format of ``country``.

    Toll-free numbers are refused: they cannot be added, ordered or ported in.
    """
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {text!r} ({exc._msg})") from None
    region = phonenumbers.region_code_for_number(parsed)
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{text!r} is not a valid phone number")
    if country is not None and region != country:
        raise ValueError(f"{text!r} is not a number of {country}")
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE:
        raise ValueError(f"{text!r} is toll-free; toll-free numbers cannot be added or ported in")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_e164(text: str) -> str | None:
    """``text`` as E.164 when it is a syntactically valid international number, else None."""
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class Wire(BaseModel):
    """camelCase on the wire, unknown fields refused, surrounding blanks trimmed."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              str_strip_whitespace=True)


class Address(Wire):
    """A postal address as shown (not re-validated: older data may predate the rules)."""

    address1: str
    address2: str | None = None
    city: str
    state: str | None = None
    postal_code: str
    country: str


def address_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, reason) for every rule an emergency/postal address breaks; empty when it is valid."""
    problems = []
    country = str(data.get("country") or "").upper()
    state = data.get("state")
    postal = str(data.get("postalCode") or "").upper()
    if country in STATE_REQUIRED and not state:
        problems.append(("state", f"an address in {country} needs a state, province or region"))
    elif state:
        known = {"US": US_STATES, "CA": CA_PROVINCES, "AU": AU_STATES}.get(country)
        if known is not None and state.upper() not in known:
            problems.append(("state", f"{state!r} is not a {country} state or province code (e.g. "
                                      f"{sorted(known)[0]})"))
    shape = POSTAL_CODES.get(country)
    if shape is not None and postal and not re.fullmatch(shape, postal):
        problems.append(("postalCode", f"{data.get('postalCode')!r} is not a valid postal code in {country}"))
    return problems


class AddressIn(Wire):
    """A postal or emergency service address, checked for the country's rules.

    ``country`` comes first so that the state and postal code checks can see it (pydantic
    validates fields in order) and an error names the field that is wrong.
    """

    country: Country
    address1: str = Field(min_length=1, max_length=200)
    address2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100, validate_default=True)
    postal_code: str = Field(min_length=1, max_length=20)

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None, info: ValidationInfo) -> str | None:
        country = info.data.get("country")
        for field, reason in address_problems({"country": country, "state": value}):
            if field == "state":
                raise PydanticCustomError("address-state", reason)
        if value and country in ("US", "CA", "AU"):
            return value.upper()
        return value

    @field_validator("postal_code")
    @classmethod
    def _postal_code(cls, value: str, info: ValidationInfo) -> str:
        country = info.data.get("country")
        for field, reason in address_problems({"country": country, "state": "-", "postalCode": value}):
            if field == "postalCode":
                raise PydanticCustomError("address-postal-code", reason)
        return value

    def as_json(self) -> dict[str, str]:
        data = self.model_dump(by_alias=True, exclude_none=True)
        return {k: data[k] for k in ("address1", "address2", "city", "state", "postalCode", "country") if k in data}
