"""Activation: the mailed 6-digit code, five wrong answers and the 15-minute lock, one owner."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from provisioning.api.activation import MAX_FAILURES, begin_activation, code_hash, judge
from provisioning.tables_access import Activation, ApiToken, OutboxMessage
from tests.provisioning.api.conftest import OWNER_EMAIL, ApiHarness, owner_settings

NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def _pending(**kw) -> Activation:
    return Activation(org_id="org-1", email=OWNER_EMAIL, code_hash=code_hash("org-1", "123456"),
                      failed_attempts=kw.get("failed_attempts", 0), locked_until=kw.get("locked_until"),
                      completed_at=kw.get("completed_at"))


def test_judge_counts_failures_and_locks_on_the_fifth():
    assert judge(_pending(), OWNER_EMAIL, "123456", NOW).accepted
    assert not judge(_pending(), "other@acme.example", "123456", NOW).accepted  # the right code, wrong person
    verdict = judge(_pending(failed_attempts=3), OWNER_EMAIL, "654321", NOW)
    assert (verdict.accepted, verdict.failed_attempts, verdict.locked_until) == (False, 4, None)
    assert verdict.error.status == 422 and "1 attempts left" in verdict.error.detail
    verdict = judge(_pending(failed_attempts=MAX_FAILURES - 1), OWNER_EMAIL, "654321", NOW)
    assert verdict.locked_until == NOW + timedelta(minutes=15) and verdict.error.status == 429
    locked = _pending(locked_until=NOW + timedelta(minutes=15))
    verdict = judge(locked, OWNER_EMAIL, "123456", NOW + timedelta(minutes=14, seconds=59))
    assert not verdict.accepted and verdict.error.rule == "activation-locked"
    assert verdict.error.headers["Retry-After"] == "2"
    assert judge(locked, OWNER_EMAIL, "123456", NOW + timedelta(minutes=15)).accepted
    done = judge(_pending(completed_at=NOW), OWNER_EMAIL, "123456", NOW)
    assert not done.accepted and done.error.rule == "already-activated"


async def _code(api: ApiHarness) -> str:
    mail = (await api.wait_for_mail(OWNER_EMAIL))[-1]
    assert mail["Subject"] == "Your callrouter activation code"
    return re.search(r"\b(\d{6})\b", mail.get_payload()).group(1)


async def test_lockout_then_activation_after_fifteen_minutes(api: ApiHarness):
    assert await asyncio.to_thread(begin_activation, api.ctx)
    code = await _code(api)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1):
        body = await api.problem("POST", "/v1/activation", 422, "activation-code-wrong", "code", role=None,
                                 json={"email": OWNER_EMAIL, "code": wrong})
        assert f"{left} attempts left" in body["detail"]
    response, body = await api.request("POST", "/v1/activation", role=None, json={"email": OWNER_EMAIL, "code": wrong})
    assert response.status == 429 and body["rule"] == "activation-locked"
    assert int(response.headers["Retry-After"]) == 900
    # Locked: even the right code is refused until the 15 minutes are over.
    await api.problem("POST", "/v1/activation", 429, "activation-locked", role=None,
                      json={"email": OWNER_EMAIL, "code": code})
    api.clock.advance(minutes=15, seconds=1)
    body = await api.call("POST", "/v1/activation", role=None, expect=201, json={"email": OWNER_EMAIL, "code": code})
    assert body["role"] == "OWNER" and body["token"].startswith("cr_")
    api.tokens["OWNER"] = body["token"]
    assert (await api.call("GET", "/v1/tokens/me"))["name"] == OWNER_EMAIL

    # One owner: the code is spent, a restart sends no new one.
    await api.problem("POST", "/v1/activation", 409, "no-activation-pending", role=None,
                      json={"email": OWNER_EMAIL, "code": code})
    assert not await asyncio.to_thread(begin_activation, api.ctx)
    trail = await api.call("GET", "/v1/auditEvents?action=activation.failed")
    # Newest first: the attempt while locked, the fifth (which locked and reset the count), four before.
    assert [e["after"]["failedAttempts"] for e in trail["items"]] == [0, 0, 4, 3, 2, 1]


async def test_restart_mails_a_new_code_and_the_old_one_stops_working(api: ApiHarness):
    assert await asyncio.to_thread(begin_activation, api.ctx)
    old = await _code(api)
    assert await asyncio.to_thread(begin_activation, api.ctx)
    mails = await api.wait_for_mail(OWNER_EMAIL, count=2)
    new = re.search(r"\b(\d{6})\b", mails[-1].get_payload()).group(1)
    if new != old:
        await api.problem("POST", "/v1/activation", 422, "activation-code-wrong", role=None,
                          json={"email": OWNER_EMAIL, "code": old})
    await api.call("POST", "/v1/activation", role=None, expect=201, json={"email": OWNER_EMAIL, "code": new})
    with api.store.session() as s:
        assert s.scalars(select(ApiToken.role)).all() == ["OWNER"]
        assert "123456" not in s.scalars(select(Activation.code_hash)).one()  # only a hash is kept


async def test_without_owner_email_there_is_no_activation(api: ApiHarness):
    api.ctx.settings = owner_settings(email=None)
    assert not await asyncio.to_thread(begin_activation, api.ctx)
    await api.problem("POST", "/v1/activation", 409, "no-activation-pending", role=None,
                      json={"email": OWNER_EMAIL, "code": "000000"})
    with api.store.session() as s:
        assert s.scalars(select(OutboxMessage)).all() == []
