"""Number-order and port-order rules and state machines (pure functions, no store, no clock)."""

from __future__ import annotations

from datetime import date, time

import pytest

from provisioning.lifecycle import (
    BILL_MAX_BYTES,
    EDITABLE_PORTS,
    OPEN_PORTS,
    LocationFacts,
    OrderEvent,
    OrderKind,
    OrderStatus,
    OrgFacts,
    PortEvent,
    PortStatus,
    RuleViolation,
    bill_content_type,
    check_bill,
    check_calling_plan,
    check_loa,
    check_number_order,
    check_number_removal,
    check_port_number,
    check_porting_allowed,
    check_ready_to_submit,
    check_requested_completion,
    check_terms_acceptance,
    is_consecutive,
    order_transition,
    parse_number,
    parse_numbers,
    port_transition,
)

PAID = OrgFacts("PAID", numbers_held=0)
AUSTIN = LocationFacts("US", "CALLING_PLAN")
TODAY = date(2025, 3, 3)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 17


def violation(call, *args) -> RuleViolation:
    with pytest.raises(RuleViolation) as info:
        call(*args)
    return info.value


def numbers(count: int, start: int = 5125551000) -> list[str]:
    return [f"+1{start + i}" for i in range(count)]


# --- numbers -------------------------------------------------------------------------------


def test_parse_number_accepts_national_and_international_forms():
    assert parse_number("(512) 555-1000", "US", "numbers[0]") == "+15125551000"
    assert parse_number("+44 20 7946 0000", "US", "x") == "+442079460000"
    error = violation(parse_number, "555-1000", "US", "numbers[2]")
    assert (error.rule, error.field, error.status) == ("number-invalid", "numbers[2]", 422)
    assert violation(parse_number, "hello", "US", "n").rule == "number-invalid"


def test_parse_numbers_refuses_duplicates_naming_both_places():
    error = violation(parse_numbers, ["+15125551000", "512 555 1001", "5125551000"], "US", "numbers")
    assert (error.rule, error.field) == ("number-duplicate", "numbers[2]")
    assert "numbers[0]" in error.detail


def test_is_consecutive():
    assert is_consecutive(["+15125551002", "+15125551000", "+15125551001"])
    assert not is_consecutive(["+15125551000", "+15125551002"])
    assert is_consecutive(["+15125551000"])


# --- number orders ---------------------------------------------------------------------------


def test_a_paid_order_within_limits_passes():
    check_number_order(OrderKind.NUMBERS, PAID, AUSTIN, numbers(100), 100)
    check_number_order(OrderKind.BLOCK, PAID, AUSTIN, numbers(20), 20)
    check_number_order(OrderKind.SEARCH, OrgFacts("TRIAL", 7), AUSTIN, [], 3)


@pytest.mark.parametrize(
    ("kind", "org", "location", "nums", "quantity", "rule", "field"),
    [
        (OrderKind.NUMBERS, PAID, AUSTIN, numbers(101), 101, "order-max-numbers", "phoneNumbers"),
        (OrderKind.SEARCH, PAID, AUSTIN, [], 101, "order-max-numbers", "quantity"),
        (OrderKind.REQUEST, PAID, AUSTIN, [], 0, "order-empty", "quantity"),
        (OrderKind.NUMBERS, OrgFacts("TRIAL", 10), AUSTIN, numbers(1), 1, "trial-max-numbers", "phoneNumbers"),
        (OrderKind.REQUEST, OrgFacts("TRIAL", 8), AUSTIN, [], 3, "trial-max-numbers", "quantity"),
        (OrderKind.BLOCK, OrgFacts("TRIAL", 0), AUSTIN, numbers(2), 2, "block-paid-only", "kind"),
        (OrderKind.NUMBERS, PAID, AUSTIN, ["+15125551000", "+18005550100"], 2, "toll-free-not-orderable", "phoneNumbers[1]"),
        (OrderKind.NUMBERS, PAID, AUSTIN, ["+442079460000"], 1, "number-wrong-country", "phoneNumbers[0]"),
        (OrderKind.BLOCK, PAID, AUSTIN, ["+15125551000", "+15125551002"], 2, "block-not-consecutive", "phoneNumbers"),
        (OrderKind.NUMBERS, PAID, LocationFacts("PH", "CALLING_PLAN"), [], 1, "calling-plan-not-sold", "locationId"),
        (OrderKind.SEARCH, PAID, LocationFacts("SA", None), [], 1, "calling-plan-not-sold", "locationId"),
        (OrderKind.SEARCH, PAID, LocationFacts("US", "LOCAL_GATEWAY"), [], 1, "location-not-calling-plan", "locationId"),
        (OrderKind.SEARCH, PAID, LocationFacts("US", None), [], 1, "location-not-calling-plan", "locationId"),
    ],
)
def test_each_order_limit_names_its_rule_and_field(kind, org, location, nums, quantity, rule, field):
    error = violation(check_number_order, kind, org, location, nums, quantity)
    assert (error.rule, error.field, error.status) == (rule, field, 422)


def test_trial_limit_counts_what_the_organisation_already_holds():
    check_number_order(OrderKind.NUMBERS, OrgFacts("TRIAL", 9), AUSTIN, numbers(1), 1)  # the 10th
    error = violation(check_number_order, OrderKind.NUMBERS, OrgFacts("TRIAL", 10), AUSTIN, numbers(1), 1)
    assert "at most 10 numbers; it has 10 and this order adds 1" in error.detail


@pytest.mark.parametrize("country", ["ID", "MO", "PH", "SA"])
def test_calling_plan_not_sold(country):
    error = violation(check_calling_plan, LocationFacts(country, None))
    assert error.rule == "calling-plan-not-sold" and "not sold in" in error.detail


def test_order_state_machine():
    assert order_transition(OrderStatus.PENDING, OrderEvent.DELIVERED) is OrderStatus.ACTION_REQUIRED
    assert order_transition(OrderStatus.PENDING, OrderEvent.FAILED) is OrderStatus.ERROR
    assert order_transition(OrderStatus.ACTION_REQUIRED, OrderEvent.TERMS_ACCEPTED) is OrderStatus.COMPLETED
    for status in (OrderStatus.COMPLETED, OrderStatus.ERROR):
        for event in OrderEvent:
            error = violation(order_transition, status, event)
            assert (error.rule, error.status) == ("number-order-state", 409)
    assert violation(order_transition, OrderStatus.PENDING, OrderEvent.TERMS_ACCEPTED).rule == "number-order-state"


@pytest.mark.parametrize("role", ["OWNER", "FULL_ADMIN"])
def test_customer_administrators_accept_terms(role):
    check_terms_acceptance(role, OrderStatus.ACTION_REQUIRED)


@pytest.mark.parametrize("role", ["PARTNER_ADMIN", "READ_ONLY"])
def test_others_are_told_the_customer_must_accept(role):
    error = violation(check_terms_acceptance, role, OrderStatus.ACTION_REQUIRED)
    assert (error.rule, error.status) == ("terms-customer-admin-only", 403)
    assert "ask the customer" in error.detail


def test_terms_only_when_action_is_required():
    error = violation(check_terms_acceptance, "OWNER", OrderStatus.COMPLETED)
    assert (error.rule, error.status) == ("number-order-state", 409)


def test_blocks_are_deleted_whole_other_orders_freely():
    block = numbers(5)
    check_number_removal(OrderKind.BLOCK, block, list(reversed(block)))
    error = violation(check_number_removal, OrderKind.BLOCK, block, block[:2])
    assert (error.rule, error.field) == ("block-delete-whole", "phoneNumbers")
    check_number_removal(OrderKind.NUMBERS, block, block[:2])
    assert violation(check_number_removal, OrderKind.NUMBERS, block, ["+15125559999"]).rule == "number-not-in-order"


# --- port orders -----------------------------------------------------------------------------


def test_porting_refused_on_trial_and_toll_free():
    check_porting_allowed("PAID")
    assert violation(check_porting_allowed, "TRIAL").rule == "trial-cannot-port"
    check_port_number("+15124440101", 0)
    error = violation(check_port_number, "+18885550123", 3)
    assert (error.rule, error.field) == ("toll-free-not-portable", "phoneNumbers[3]")


def test_port_state_machine_through_its_life():
    status = PortStatus.PENDING
    status = port_transition(status, PortEvent.EDIT)
    status = port_transition(status, PortEvent.WAIT_FOR_LOA)
    assert status is PortStatus.PENDING
    status = port_transition(status, PortEvent.SEND)
    assert status is PortStatus.SUBMITTED
    assert port_transition(status, PortEvent.REJECT) is PortStatus.REJECTED
    status = port_transition(status, PortEvent.FOC)
    assert port_transition(status, PortEvent.FOC) is PortStatus.FOC_RECEIVED
    assert port_transition(status, PortEvent.COMPLETE) is PortStatus.COMPLETED
    # A rejected order is corrected and resubmitted.
    rejected = PortStatus.REJECTED
    assert port_transition(port_transition(rejected, PortEvent.EDIT), PortEvent.SEND) is PortStatus.SUBMITTED


@pytest.mark.parametrize("status", list(PortStatus))
def test_port_cancel_and_edit_only_where_allowed(status):
    if status in EDITABLE_PORTS | OPEN_PORTS:
        assert port_transition(status, PortEvent.CANCEL) is PortStatus.CANCELLED
    else:
        error = violation(port_transition, status, PortEvent.CANCEL)
        assert (error.rule, error.status) == ("port-order-state", 409)
        assert f"that is {status.value} cannot be cancelled" in error.detail
    if status in EDITABLE_PORTS:
        assert port_transition(status, PortEvent.EDIT) is status
    else:
        assert violation(port_transition, status, PortEvent.EDIT).rule == "port-order-state"
        assert violation(port_transition, status, PortEvent.SEND).rule == "port-order-state"


def test_submission_needs_the_carrier_fields_but_not_the_loa():
    check_ready_to_submit(["phoneNumbers", "btn", "companyName", "authorizedName", "serviceAddress", "bill"])
    error = violation(check_ready_to_submit, ["phoneNumbers", "companyName", "serviceAddress"])
    assert (error.rule, error.field) == ("port-order-incomplete", "btn")
    assert error.detail.endswith("btn, authorizedName, bill")


def test_requested_completion_must_be_in_the_future():
    check_requested_completion(date(2025, 3, 4), time(9, 0), TODAY)
    check_requested_completion(None, None, TODAY)
    error = violation(check_requested_completion, TODAY, None, TODAY)
    assert (error.rule, error.field) == ("requested-date-not-future", "requestedCompletion.date")
    assert violation(check_requested_completion, None, time(9, 0), TODAY).rule == "requested-time-without-date"


def test_bill_type_comes_from_the_content():
    assert bill_content_type(PDF) == "application/pdf"
    assert bill_content_type(PNG) == "image/png"
    for content in (b"GIF89a....", b"\xff\xd8\xff\xe0JFIF", b"%PDF-1.4 cut short", b"\x89PNG\r\n\x1a\nXXXXXXXX"):
        assert violation(bill_content_type, content).rule == "bill-type"


def test_bill_checks():
    assert check_bill(PDF, date(2025, 2, 1), TODAY) == "application/pdf"  # 30 days old
    assert violation(check_bill, PDF, date(2025, 1, 31), TODAY).rule == "bill-too-old"
    assert violation(check_bill, PNG, date(2025, 3, 4), TODAY).rule == "bill-issue-date-future"
    assert violation(check_bill, b"", TODAY, TODAY).rule == "bill-type"
    big = violation(check_bill, PDF + b"\0" * BILL_MAX_BYTES, TODAY, TODAY)
    assert (big.rule, big.status) == ("bill-too-large", 413)


def test_loa_needs_name_and_title():
    check_loa("Jane Doe", "CFO")
    assert violation(check_loa, " ", "CFO").field == "name"
    assert violation(check_loa, "Jane Doe", "").field == "title"
