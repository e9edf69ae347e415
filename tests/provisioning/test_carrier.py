"""The simulated carrier on a fake clock: inventory, requests, portability, and every port answer."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import pytest

from provisioning.carrier import (
    DEFAULT_CONFIG,
    REJECTIONS,
    Bill,
    CarrierConfigError,
    CarrierError,
    InventoryQuery,
    Loa,
    NumberKind,
    NumberRequest,
    PortPhase,
    PortRequest,
    RejectionCode,
    RequestPhase,
    ServiceAddress,
    SimulatedCarrier,
    UnknownReference,
    add_business_days,
    carrier_from_settings,
    is_business_day,
    load_carrier_config,
)

MONDAY = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)  # no US holiday near it


class FakeClock:
    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def carrier(clock) -> SimulatedCarrier:
    return SimulatedCarrier.from_file(DEFAULT_CONFIG, clock)


ACME_ADDRESS = ServiceAddress(address1="100 Congress Avenue", city="Austin", state="TX", postal_code="78701")


def acme_port(today: date, **changes) -> PortRequest:
    """A port that agrees with Acme's customer service record; ``changes`` make it disagree."""
    numbers = changes.pop("numbers", ("+15124440101", "+15124440102"))
    loa_numbers = changes.pop("loa_numbers", numbers)
    signer = changes.pop("signer", changes.get("authorized_name", "Jane Doe"))
    base = PortRequest(
        numbers=tuple(numbers), btn="+15124440100", company_name="ACME Widgets, Inc.", authorized_name="Jane Doe",
        service_address=ACME_ADDRESS, account_number="8812 4471",
        bill=Bill(issue_date=today - timedelta(days=5), content_type="application/pdf", size=2000),
        loa=Loa(signed_name=signer, title="CFO", signed_on=today, numbers=tuple(loa_numbers)),
    )
    return dataclasses.replace(base, **changes)


def answer(carrier: SimulatedCarrier, request: PortRequest):
    reference = carrier.submit_port(request)
    assert carrier.poll_port(reference).phase is PortPhase.SUBMITTED  # nobody answers the same day
    carrier.advance(1)
    return carrier.poll_port(reference)


# --- configuration ---------------------------------------------------------------------------


def test_shipped_configuration_loads():
    config = load_carrier_config()
    assert {b.country for b in config.inventory} >= {"US", "CA", "GB"}
    assert set(config.request_only) == {"DE", "FR"}
    assert config.porting.min_lead_business_days == 7


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ("inventory:\n  - {country: US, first: '+1512', count: 3}\n", 2, "inventory[0].first", "not a valid phone number"),
        ("porting:\n  minLeadBusinessDays: soon\n", 2, "porting.minLeadBusinessDays", "must be an integer"),
        ("porting:\n  cutoverWindow: '18:00-08:00'\n", 2, "porting.cutoverWindow", "start first"),
        ("customerRecords:\n  - accountNumber: '1'\n    company: C\n    authorizedName: A\n"
         "    serviceAddress: {address1: a, city: c, postalCode: '1'}\n    wireless: true\n"
         "    btns: [{btn: '+15124440100', numbers: ['+15124440100']}]\n", 2, "customerRecords[0]", "needs its pin"),
        ("inventory:\n  - {country: US, first: '+15125551000', count: 2}\n  - {country: US, first: '+15125551001', count: 2}\n",
         1, "", "+15125551001 is listed twice"),
        ("inventory:\n  - {country: GB, first: '+15125551000', count: 2}\n", 2, "inventory[0]", "not a valid GB number"),
        ("nmae: x\n", 1, "nmae", "unknown key"),
    ],
)
def test_configuration_errors_name_file_line_and_key(tmp_path, text, line, key, reason):
    path = tmp_path / "carrier.yaml"
    path.write_text(text)
    with pytest.raises(CarrierConfigError) as info:
        load_carrier_config(path)
    error = info.value
    assert (error.file, error.line, error.key) == (str(path), line, key)
    assert reason in error.reason


def test_carrier_from_settings(clock, tmp_path):
    assert carrier_from_settings(None, clock) is None
    assert carrier_from_settings("", clock) is None
    assert carrier_from_settings(True, clock).name == "Simulated carrier"
    path = tmp_path / "c.yaml"
    path.write_text("name: Tiny\n")
    tiny = carrier_from_settings(str(path), clock)
    assert tiny.name == "Tiny" and not tiny.searchable("US")


# --- business days ---------------------------------------------------------------------------


def test_business_days_skip_weekends_and_holidays(carrier):
    calendar = carrier._calendar
    friday = date(2025, 2, 28)
    assert add_business_days(friday, 1, calendar) == date(2025, 3, 3)
    assert add_business_days(friday, 0, calendar) == friday
    # 4 July 2025 is a Friday and a US holiday: Thursday + 1 is the Monday after.
    assert add_business_days(date(2025, 7, 3), 1, calendar) == date(2025, 7, 7)
    assert not is_business_day(date(2025, 7, 4), calendar) and is_business_day(date(2025, 7, 3), calendar)
    assert add_business_days(friday, 5, frozenset()) == date(2025, 3, 7)
    with pytest.raises(ValueError):
        add_business_days(friday, -1, calendar)


def test_clock_is_the_real_date_moved_on_in_business_days(carrier, clock):
    assert carrier.today() == date(2025, 3, 3)
    assert carrier.advance(5) == date(2025, 3, 10)
    clock.now += timedelta(days=1)  # the real date moves too
    assert carrier.today() == date(2025, 3, 11)
    with pytest.raises(ValueError):
        carrier.advance(-1)


# --- inventory -------------------------------------------------------------------------------


def test_search_filters_by_state_city_area_code_and_prefix(carrier):
    def search(**kw):
        return [n.e164 for n in carrier.search(InventoryQuery(**{"country": "US", "quantity": 1000, **kw}))]

    assert len(search()) == 700
    assert search(state="ny", quantity=2) == ["+12125554000", "+12125554001"]
    assert len(search(city="san  francisco")) == 100
    assert set(search(area_code="214")) == {f"+1214555{2000 + i}" for i in range(100)}
    assert search(prefix="512-555-13", quantity=3) == ["+15125551300", "+15125551301", "+15125551302"]
    assert search(state="TX", city="Austin", area_code="214") == []
    found = carrier.search(InventoryQuery("GB", city="London", quantity=1))[0]
    assert (found.e164, found.area_code, found.state) == ("+442079460000", "20", None)


def test_consecutive_search_skips_holes(carrier):
    carrier.provision(["+15125551002"])
    run = carrier.search(InventoryQuery("US", city="Austin", quantity=5, consecutive=True))
    assert [n.e164 for n in run] == [f"+1512555{1003 + i}" for i in range(5)]
    assert carrier.search(InventoryQuery("US", city="Austin", quantity=401, consecutive=True)) == []
    plain = carrier.search(InventoryQuery("US", city="Austin", quantity=3), exclude={"+15125551000"})
    assert [n.e164 for n in plain] == ["+15125551001", "+15125551003", "+15125551004"]


def test_countries_without_inventory_cannot_be_searched(carrier):
    assert carrier.searchable("US") and not carrier.searchable("DE")
    with pytest.raises(CarrierError) as info:
        carrier.search(InventoryQuery("DE"))
    assert info.value.code == "inventoryNotSearchable" and "request numbers instead" in info.value.detail


def test_provision_takes_all_or_none_and_release_returns(carrier):
    carrier.provision(["+15125551000", "+15125551001"])
    with pytest.raises(CarrierError) as info:
        carrier.provision(["+15125551002", "+15125551001", "+19995550000"])
    assert info.value.code == "numbersUnavailable"
    assert info.value.numbers == ("+15125551001", "+19995550000")
    # Nothing of the refused call was taken.
    assert carrier.search(InventoryQuery("US", city="Austin", quantity=1))[0].e164 == "+15125551002"
    carrier.release(["+15125551000"])
    assert carrier.search(InventoryQuery("US", city="Austin", quantity=1))[0].e164 == "+15125551000"


# --- requests for numbers --------------------------------------------------------------------


def test_request_is_fulfilled_after_a_business_day(carrier):
    reference = carrier.request_numbers(NumberRequest("DE", NumberKind.LOCAL, 3), exclude={"+493012345601"})
    assert carrier.poll_request(reference).phase is RequestPhase.PENDING
    carrier.advance(1)
    progress = carrier.poll_request(reference)
    assert progress.phase is RequestPhase.FULFILLED
    assert progress.numbers == ("+493012345600", "+493012345602", "+493012345603")
    assert carrier.poll_request(reference) == progress  # stable once answered
    again = carrier.request_numbers(NumberRequest("DE", NumberKind.LOCAL, 1))
    carrier.advance(1)
    assert carrier.poll_request(again).numbers == ("+493012345601",)


def test_request_beyond_the_pool_fails_and_unknown_kinds_are_refused(carrier):
    reference = carrier.request_numbers(NumberRequest("FR", NumberKind.NATIONAL, 21))
    carrier.advance(1)
    progress = carrier.poll_request(reference)
    assert progress.phase is RequestPhase.FAILED and "only 20 national numbers left in FR" in progress.reason
    with pytest.raises(CarrierError, match="does not take requests for local numbers in US"):
        carrier.request_numbers(NumberRequest("US", NumberKind.LOCAL, 1))
    with pytest.raises(UnknownReference):
        carrier.poll_request("SIM-REQ-nope")


# --- porting ---------------------------------------------------------------------------------


def test_portability_check_flags_and_passes(carrier):
    results = {p.e164: p for p in carrier.check_portability(
        ["+15124440101", "+15124479999", "+15125551000", "+442071234567", "+4932212345600"])}
    assert results["+15124440101"].portable and results["+15124479999"].portable  # records are read later
    assert "already belongs to Simulated carrier" in results["+15125551000"].reason
    assert "does not port numbers in GB" in results["+442071234567"].reason
    assert not results["+4932212345600"].portable


def test_a_port_that_agrees_with_the_records_gets_a_foc_date_and_completes_on_it(carrier):
    reference = carrier.submit_port(acme_port(carrier.today()))
    assert carrier.poll_port(reference).phase is PortPhase.SUBMITTED
    carrier.advance(1)  # Tuesday 4 March: the losing carrier answers
    progress = carrier.poll_port(reference)
    assert progress.phase is PortPhase.FOC_RECEIVED
    assert progress.foc_date == date(2025, 3, 13)  # seven business days after the answer
    carrier.advance(6)
    assert carrier.poll_port(reference).phase is PortPhase.FOC_RECEIVED
    carrier.advance(1)
    done = carrier.poll_port(reference)
    assert (done.phase, done.foc_date) == (PortPhase.COMPLETED, date(2025, 3, 13))


def test_requested_date_becomes_the_foc_date(carrier):
    wanted = date(2025, 3, 24)
    progress = answer(carrier, acme_port(carrier.today(), requested_date=wanted, requested_time=time(9, 30)))
    assert (progress.phase, progress.foc_date) == (PortPhase.FOC_RECEIVED, wanted)


def test_cancelled_port_stays_cancelled(carrier):
    reference = carrier.submit_port(acme_port(carrier.today()))
    carrier.cancel_port(reference)
    carrier.advance(20)
    assert carrier.poll_port(reference).phase is PortPhase.CANCELLED
    with pytest.raises(UnknownReference):
        carrier.poll_port("SIM-PORT-unknown")
    with pytest.raises(UnknownReference):
        carrier.cancel_port("SIM-PORT-unknown")
    with pytest.raises(CarrierError, match="at least one number"):
        carrier.submit_port(acme_port(carrier.today(), numbers=()))


# Each catalogued rejection: the disagreement that produces it, then the correction that clears it.
WRONG_THEN_RIGHT = {
    RejectionCode.TN_NOT_PORTABLE: ({"numbers": ("+15124440101", "+15124440106")}, {}),
    RejectionCode.TN_MISMATCH: ({"numbers": ("+15124440101", "+15124450101")}, {}),
    RejectionCode.MULTIPLE_BTNS: ({"numbers": ("+15124440101", "+15124440201")}, {}),
    RejectionCode.PENDING_ORDER: ({"numbers": ("+15124440101", "+15124440108")}, {}),
    RejectionCode.TN_SPECIAL_FEATURE: ({"numbers": ("+15124440105",)}, {}),
    RejectionCode.UNSUPPORTED_RATE_CENTER: ({"numbers": ("+15124440101", "+15124440107")}, {}),
    RejectionCode.PENDING_MAIN_BTN: ({"numbers": ("+15124440100", "+15124440101")},
                                     {"numbers": ("+15124440100", "+15124440101"), "new_btn": "+15124440102",
                                      "remaining_numbers_action": "KEEP"}),
    RejectionCode.ACCOUNT_NUMBER_REQUIRED: ({"account_number": None}, {}),
    RejectionCode.ACCOUNT_NUMBER_MISMATCH: ({"account_number": "8812-4472"}, {}),
    RejectionCode.BTN_MISMATCH: ({"btn": "+15124440101"}, {}),
    RejectionCode.COMPANY_NAME_MISMATCH: ({"company_name": "Acme Gadgets Inc"}, {}),
    RejectionCode.ACCOUNT_NAME_MISMATCH: ({"authorized_name": "John Doe"}, {}),
    RejectionCode.SERVICE_ADDRESS_MISMATCH: ({"service_address": dataclasses.replace(ACME_ADDRESS, city="Round Rock")}, {}),
    RejectionCode.POSTAL_CODE_MISMATCH: ({"service_address": dataclasses.replace(ACME_ADDRESS, postal_code="78702")}, {}),
    RejectionCode.PREVIOUS_BILL_INVALID: ({"bill": Bill(date(2025, 1, 20), "image/png", 10)}, {}),
    RejectionCode.LOA_INVALID: ({"loa_numbers": ("+15124440101",)}, {}),
    RejectionCode.FOC_REJECTED: ({"requested_date": date(2025, 3, 7)}, {"requested_date": date(2025, 3, 17)}),
    RejectionCode.UNKNOWN: ({"requested_date": date(2025, 3, 17), "requested_time": time(3, 0)},
                            {"requested_date": date(2025, 3, 17), "requested_time": time(8, 0)}),
}


def test_every_catalogued_code_is_covered():
    assert set(WRONG_THEN_RIGHT) | {RejectionCode.INVALID_PIN} == set(RejectionCode) == set(REJECTIONS)


@pytest.mark.parametrize("code", list(WRONG_THEN_RIGHT), ids=str)
def test_each_disagreement_gets_its_rejection_and_the_correction_clears_it(carrier, code):
    wrong, right = WRONG_THEN_RIGHT[code]
    progress = answer(carrier, acme_port(carrier.today(), **wrong))
    assert progress.phase is PortPhase.REJECTED
    rejection = progress.rejection
    assert rejection.code is code
    assert (rejection.description, rejection.fix) == REJECTIONS[code]
    assert rejection.detail
    corrected = answer(carrier, acme_port(carrier.today(), **right))
    assert corrected.phase is PortPhase.FOC_RECEIVED, corrected.rejection


def test_rejection_details_say_which_numbers(carrier):
    progress = answer(carrier, acme_port(carrier.today(), numbers=("+15124440101", "+15124479999", "+15124440106")))
    assert progress.rejection.detail == "inactive or not on any account: +15124479999, +15124440106"
    progress = answer(carrier, acme_port(carrier.today(), numbers=("+15124440105",)))
    assert "+15124440105 (REMOTE_CALL_FORWARDING)" in progress.rejection.detail


def test_wireless_port_needs_the_pin_which_never_shows_in_the_detail(carrier):
    today = carrier.today()
    initech = dataclasses.replace(
        acme_port(today, numbers=("+15124460101",), authorized_name="Bill Lumbergh"),
        btn="+15124460100", company_name="Initech Mobile LLC", account_number="IM-770021",
        service_address=ServiceAddress("4120 Freidrich Lane", "Austin", "TX", "78744"))
    for pin in (None, "1234"):
        progress = answer(carrier, dataclasses.replace(initech, pin=pin))
        assert progress.rejection.code is RejectionCode.INVALID_PIN
        assert "4321" not in progress.rejection.detail
    assert answer(carrier, dataclasses.replace(initech, pin="4321")).phase is PortPhase.FOC_RECEIVED


def test_btn_as_account_number_and_accounts_without_one(carrier):
    today = carrier.today()
    globex = dataclasses.replace(
        acme_port(today, numbers=("+15124450101",), authorized_name="Hank Scorpio"),
        btn="+15124450100", company_name="Globex Corporation", account_number="(512) 445-0100",
        service_address=ServiceAddress("200 Cypress Creek Rd.", "austin", "tx", "78759"))
    assert answer(carrier, globex).phase is PortPhase.FOC_RECEIVED
    maple = dataclasses.replace(
        acme_port(today, numbers=("+14165550901",), authorized_name="Anne Shirley"),
        btn="+14165550900", company_name="Maple Paper Company", account_number=None,
        service_address=ServiceAddress("1 Yonge Street", "Toronto", "ON", "m5e1e5"))
    assert answer(carrier, maple).phase is PortPhase.FOC_RECEIVED


def test_bill_age_is_judged_on_the_day_the_carrier_answers(carrier):
    request = acme_port(carrier.today(), bill=Bill(date(2025, 2, 2), "application/pdf", 10))  # 29 days old
    assert answer(carrier, request).phase is PortPhase.FOC_RECEIVED  # answered on day 30
    carrier.advance(1)
    assert answer(carrier, request).rejection.code is RejectionCode.PREVIOUS_BILL_INVALID


@pytest.mark.parametrize("wanted", [date(2025, 3, 15), date(2025, 7, 1)], ids=["saturday", "too far"])
def test_foc_rejected_for_weekends_and_far_dates(carrier, wanted):
    assert answer(carrier, acme_port(carrier.today(), requested_date=wanted)).rejection.code is RejectionCode.FOC_REJECTED
