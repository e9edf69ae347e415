import logging

import pytest

from sipcore.guard import SourceGuard, Verdict

A = "198.51.100.1"
B = "198.51.100.2"


def guard(**kw):
    params = dict(rate=2.0, burst=5.0, ban_failures=3, ban_window=60.0, ban_duration=600.0)
    params.update(kw)
    return SourceGuard(**params)


def test_burst_then_refill():
    g = guard()
    assert [g.admit(A, 0.0) for _ in range(5)] == [Verdict.ALLOW] * 5
    assert g.admit(A, 0.0) is Verdict.RATE_LIMITED
    assert g.admit(A, 0.25) is Verdict.RATE_LIMITED  # half a token at 2/s
    assert g.admit(A, 0.5) is Verdict.ALLOW  # one token refilled
    assert g.admit(A, 0.5) is Verdict.RATE_LIMITED
    # A long idle period refills to the burst and no further.
    assert [g.admit(A, 1000.0) for _ in range(6)] == [Verdict.ALLOW] * 5 + [Verdict.RATE_LIMITED]


def test_rate_limited_requests_do_not_spend_tokens():
    g = guard()
    for _ in range(5):
        g.admit(A, 0.0)
    for _ in range(100):
        assert g.admit(A, 0.1) is Verdict.RATE_LIMITED
    assert g.admit(A, 0.5) is Verdict.ALLOW


def test_clock_going_back_does_not_mint_tokens():
    g = guard()
    for _ in range(5):
        g.admit(A, 100.0)
    assert g.admit(A, 50.0) is Verdict.RATE_LIMITED
    assert g.admit(A, 100.0) is Verdict.RATE_LIMITED


def test_zero_rate_disables_limiting():
    g = guard(rate=0.0, burst=0.0)
    assert all(g.admit(A, 0.0) is Verdict.ALLOW for _ in range(10_000))
    assert g.tracked_sources == 0


def test_flood_from_one_source_does_not_affect_another():
    g = guard()
    flood = [g.admit(A, 1.0) for _ in range(10_000)]
    assert flood.count(Verdict.ALLOW) == 5
    assert g.admit(A, 1.0) is Verdict.RATE_LIMITED
    assert [g.admit(B, 1.0) for _ in range(5)] == [Verdict.ALLOW] * 5
    for _ in range(3):
        g.auth_failed(A, 1.0)
    assert g.admit(A, 2.0) is Verdict.BANNED
    assert g.admit(B, 2.0) is Verdict.ALLOW


def test_malformed_drains_the_same_bucket():
    g = guard()
    assert g.admit(A, 0.0) is Verdict.ALLOW  # 4 left
    for _ in range(4):
        g.malformed(A, 0.0)
    assert g.admit(A, 0.0) is Verdict.RATE_LIMITED
    g.malformed(A, 0.0)  # an empty bucket does not go into debt
    assert g.admit(A, 0.5) is Verdict.ALLOW
    assert g.admit(B, 0.0) is Verdict.ALLOW


def test_ban_after_n_failures_in_window(caplog):
    g = guard()
    with caplog.at_level(logging.WARNING, logger="sipcore.guard"):
        assert g.auth_failed(A, 0.0) is False
        assert g.auth_failed(A, 10.0) is False
        assert g.admit(A, 11.0) is Verdict.ALLOW  # N-1 failures: not banned
        assert g.auth_failed(A, 59.0) is True
    assert g.admit(A, 59.5) is Verdict.BANNED
    records = [r for r in caplog.records if r.name == "sipcore.guard"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    msg = records[0].getMessage()
    assert A in msg and "3" in msg and "600" in msg
    # Further failures while banned do not start another ban.
    assert g.auth_failed(A, 60.0) is False
    assert g.banned_sources(60.0) == [(A, 659.0)]


def test_failures_spread_beyond_window_do_not_ban():
    g = guard()
    assert g.auth_failed(A, 0.0) is False
    assert g.auth_failed(A, 40.0) is False
    assert g.auth_failed(A, 80.0) is False  # the one at 0 has left the 60 s window
    assert g.auth_failed(A, 120.0) is False
    assert g.admit(A, 121.0) is Verdict.ALLOW
    assert g.auth_failed(A, 121.0) is True  # 80, 120, 121


def test_ban_expiry_and_fresh_start():
    g = guard()
    for t in (0.0, 1.0, 2.0):
        g.auth_failed(A, t)
    assert g.admit(A, 601.9) is Verdict.BANNED
    assert g.admit(A, 602.0) is Verdict.ALLOW
    assert g.banned_sources(602.0) == []
    # The failures that led to the ban do not count again.
    assert g.auth_failed(A, 603.0) is False
    assert g.auth_failed(A, 604.0) is False
    assert g.auth_failed(A, 605.0) is True


def test_unban():
    g = guard()
    for t in (0.0, 1.0, 2.0):
        g.auth_failed(A, t)
    assert g.unban(A) is True
    assert g.unban(A) is False
    assert g.admit(A, 3.0) is Verdict.ALLOW


def test_banning_disabled():
    g = guard(ban_failures=0)
    assert not any(g.auth_failed(A, float(i)) for i in range(100))
    assert g.admit(A, 100.0) is Verdict.ALLOW


def test_lru_bound_under_spoofed_flood():
    g = guard(max_sources=100)
    for _ in range(5):
        g.admit(A, 0.0)  # A's bucket is empty
    for t in (0.0, 0.1, 0.2):
        g.auth_failed(B, t)  # B is banned
    for i in range(50):
        g.admit(f"10.0.{i // 256}.{i % 256}", 0.3)
    assert g.admit(A, 0.3) is Verdict.RATE_LIMITED  # touched: now most recent
    for i in range(50, 100_000):
        g.admit(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", 0.4)
        if i % 97 == 0:
            g.admit(A, 0.4)  # A keeps talking and so keeps its (drained) state
    assert g.tracked_sources <= 100
    assert g.admit(A, 0.4) is Verdict.RATE_LIMITED
    # The flood evicted bucket state, but not B's ban.
    assert g.admit(B, 0.5) is Verdict.BANNED
    # An evicted source comes back as new.
    assert g.admit("10.0.0.0", 0.5) is Verdict.ALLOW


def test_ban_table_is_bounded_too():
    g = guard(max_sources=10, ban_failures=1)
    for i in range(100):
        assert g.auth_failed(f"203.0.113.{i}", float(i)) is True
    banned = g.banned_sources(100.0)
    assert len(banned) == 10
    assert banned[-1] == ("203.0.113.99", 699.0)


def test_bad_settings():
    with pytest.raises(ValueError):
        SourceGuard(rate=1.0, burst=0.5, ban_failures=3, ban_window=1, ban_duration=1)
    with pytest.raises(ValueError):
        SourceGuard(rate=1.0, burst=5, ban_failures=3, ban_window=1, ban_duration=1, max_sources=0)
