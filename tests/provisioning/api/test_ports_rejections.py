"""Each catalogued port rejection, produced by the simulated carrier from its customer service
records, reported with its description and fix (and by e-mail), then cleared by the correction
the fix describes and a resubmission. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from provisioning.carrier import REJECTIONS, RejectionCode
from tests.provisioning.api.orders_fixtures import OrdersWorld, orders_world  # noqa: F401  (fixture)
from tests.provisioning.api.test_ports import ACME, upload_bill

Fix = Callable[[OrdersWorld, str], Awaitable[list[str]]]
INITECH: dict[str, Any] = {
    "accountNumber": "IM-770021", "btn": "+15124460100", "companyName": "Initech Mobile LLC",
    "authorizedName": "Bill Lumbergh", "pin": "1111",
    "serviceAddress": {"address1": "4120 Freidrich Ln", "city": "Austin", "state": "TX", "postalCode": "78744"},
}


def business_days(world: OrdersWorld, n: int) -> str:
    return world.carrier.add_business_days(world.carrier.today(), n).isoformat()


async def sign(world: OrdersWorld, path: str, name: str = "Jane Doe") -> None:
    await world.call("POST", f"{path}/loa", json={"name": name, "title": "Office Manager"}, expect=200)


async def draft(world: OrdersWorld, numbers: list[str], details: dict[str, Any], signer: str,
                bill_age_days: int = 3) -> str:
    created = await world.call("POST", "/v1/portOrders", expect=201, json={
        "locationId": world.org.locations["Austin"], "phoneNumbers": numbers, "notificationEmail": "it@acme.example",
        **details})
    assert created["flagged"] == [], created["flagged"]
    path = f"/v1/portOrders/{created['order']['id']}"
    response = await upload_bill(world, created["order"]["id"], issued=world.carrier.today() - timedelta(days=bill_age_days))
    assert response.status == 200, await response.text()
    await sign(world, path, signer)
    return path


def patch(changes: dict[str, Any] | Callable[[OrdersWorld], dict[str, Any]], resign: str | None = None) -> Fix:
    async def fix(world: OrdersWorld, path: str) -> list[str]:
        body = changes(world) if callable(changes) else changes
        await world.call("PATCH", path, json=body, expect=200)
        if resign:
            await sign(world, path, resign)
        return [path]
    return fix


def remove(number: str) -> Fix:
    """Take the offending number off; the numbers changed, so the LOA is signed again."""
    async def fix(world: OrdersWorld, path: str) -> list[str]:
        await world.call("DELETE", f"{path}/numbers/{number.replace('+', '%2B')}", expect=200)
        assert (await world.call("GET", path, expect=200))["loa"]["coversCurrentNumbers"] is False
        await sign(world, path)
        return [path]
    return fix


async def new_bill(world: OrdersWorld, path: str) -> list[str]:
    response = await upload_bill(world, path.rsplit("/", 1)[1], issued=world.carrier.today())
    assert response.status == 200
    return [path]


async def new_loa(world: OrdersWorld, path: str) -> list[str]:
    await sign(world, path)
    return [path]


async def one_order_per_btn(world: OrdersWorld, path: str) -> list[str]:
    await world.call("POST", f"{path}/cancel", expect=200)
    first = await draft(world, ["+15124440101"], ACME, "Jane Doe")
    second = await draft(world, ["+15124440201"], {**ACME, "btn": "+15124440200"}, "Jane Doe")
    return [first, second]


@dataclass
class Case:
    numbers: list[str]
    fix: Fix
    details: dict[str, Any] | Callable[[OrdersWorld], dict[str, Any]] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=lambda: ACME)
    signer: str = "Jane Doe"
    added_after_loa: list[str] = field(default_factory=list)
    bill_age_days: int = 3


ACME_TWO = ["+15124440101", "+15124440102"]
CASES: dict[RejectionCode, Case] = {
    RejectionCode.TN_NOT_PORTABLE: Case(ACME_TWO + ["+15124440106"], remove("+15124440106")),
    RejectionCode.TN_MISMATCH: Case(ACME_TWO + ["+15124450101"], remove("+15124450101")),
    RejectionCode.MULTIPLE_BTNS: Case(["+15124440101", "+15124440201"], one_order_per_btn),
    RejectionCode.PENDING_ORDER: Case(ACME_TWO + ["+15124440108"], remove("+15124440108")),
    RejectionCode.TN_SPECIAL_FEATURE: Case(ACME_TWO + ["+15124440105"], remove("+15124440105")),
    RejectionCode.UNSUPPORTED_RATE_CENTER: Case(ACME_TWO + ["+15124440107"], remove("+15124440107")),
    RejectionCode.PENDING_MAIN_BTN: Case(["+15124440100", "+15124440101"],
                                         patch({"newBtn": "+15124440102", "remainingNumbersAction": "KEEP"})),
    RejectionCode.ACCOUNT_NUMBER_REQUIRED: Case(ACME_TWO, patch({"accountNumber": "8812-4471"}),
                                                details={"accountNumber": None}),
    RejectionCode.ACCOUNT_NUMBER_MISMATCH: Case(ACME_TWO, patch({"accountNumber": "8812 4471"}),
                                                details={"accountNumber": "8812-4472"}),
    RejectionCode.BTN_MISMATCH: Case(ACME_TWO, patch({"btn": "(512) 444-0100"}), details={"btn": "+15124440101"}),
    RejectionCode.INVALID_PIN: Case(["+15124460101"], patch({"pin": "4321"}), base=INITECH, signer="Bill Lumbergh"),
    RejectionCode.COMPANY_NAME_MISMATCH: Case(ACME_TWO, patch({"companyName": "ACME WIDGETS, INC."}),
                                              details={"companyName": "Acme Gadgets Inc"}),
    RejectionCode.ACCOUNT_NAME_MISMATCH: Case(ACME_TWO, patch({"authorizedName": "Jane Doe"}, resign="Jane Doe"),
                                              details={"authorizedName": "John Doe"}, signer="John Doe"),
    RejectionCode.SERVICE_ADDRESS_MISMATCH: Case(
        ACME_TWO, patch({"serviceAddress": ACME["serviceAddress"]}),
        details={"serviceAddress": {**ACME["serviceAddress"], "city": "Round Rock"}}),
    RejectionCode.POSTAL_CODE_MISMATCH: Case(
        ACME_TWO, patch({"serviceAddress": ACME["serviceAddress"]}),
        details={"serviceAddress": {**ACME["serviceAddress"], "postalCode": "78702"}}),
    # Valid when uploaded (30 days old), too old by the time the losing carrier answers.
    RejectionCode.PREVIOUS_BILL_INVALID: Case(ACME_TWO, new_bill, bill_age_days=30),
    RejectionCode.LOA_INVALID: Case(["+15124440101"], new_loa, added_after_loa=["+15124440102"]),
    RejectionCode.FOC_REJECTED: Case(
        ACME_TWO, patch(lambda w: {"requestedCompletion": {"date": business_days(w, 10)}}),
        details=lambda w: {"requestedCompletion": {"date": business_days(w, 3)}}),
    RejectionCode.UNKNOWN: Case(
        ACME_TWO, patch(lambda w: {"requestedCompletion": {"date": business_days(w, 12), "time": "09:30"}}),
        details=lambda w: {"requestedCompletion": {"date": business_days(w, 12), "time": "03:00"}}),
}


def test_every_code_has_a_case():
    assert set(CASES) == set(RejectionCode)


async def test_each_rejection_then_corrected_resubmission(orders_world: OrdersWorld):
    """One world for all codes (building one costs more than a case); each case cleans up after itself."""
    for code, case in CASES.items():
        try:
            await _rejected_then_cleared(orders_world, code, case)
        except AssertionError as exc:
            raise AssertionError(f"{code}: {exc}") from exc


async def _rejected_then_cleared(world: OrdersWorld, code: RejectionCode, case: Case) -> None:
    details = {**case.base, **(case.details(world) if callable(case.details) else case.details)}
    details = {k: v for k, v in details.items() if v is not None}
    path = await draft(world, case.numbers, details, case.signer, case.bill_age_days)
    if case.added_after_loa:
        await world.call("POST", f"{path}/numbers", json={"phoneNumbers": case.added_after_loa}, expect=200)
    assert (await world.call("POST", f"{path}/submit", expect=200))["status"] == "SUBMITTED"
    await world.advance(1)

    rejected = await world.call("GET", path, expect=200)
    assert rejected["status"] == "REJECTED"
    description, fix = REJECTIONS[code]
    rejection = rejected["rejection"]
    assert (rejection["code"], rejection["description"], rejection["fix"]) == (str(code), description, fix)
    assert rejection["detail"]
    mails = await world.mail_to("it@acme.example", f"rejected ({code})")
    assert mails and fix in mails[0].get_content()

    corrected = await case.fix(world, path)
    for order in corrected:
        resubmitted = await world.call("POST", f"{order}/submit", expect=200)
        assert (resubmitted["status"], resubmitted["rejection"]) == ("SUBMITTED", None)
    await world.advance(1)
    for order in corrected:
        answered = await world.call("GET", order, expect=200)
        assert answered["status"] == "FOC_RECEIVED", answered["rejection"]
        assert answered["focDate"]
        # Withdrawn again so the next case can port the same numbers.
        await world.call("POST", f"{order}/cancel", expect=200)
