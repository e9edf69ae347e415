"""Whatever arrives in a Request-URI, resolve() answers with a route and never raises."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from routing.callers import DeviceCaller, TrunkCaller
from routing.directory import Directory
from routing.resolve import resolve
from routing.route import Emergency, Reject, RingPerson, RunAutoAttendant, ToTrunk

from .world import NOW, acme

DIRECTORY = Directory.build(acme())
CALLERS = [DeviceCaller(u) for u in ("alice-desk", "bob", "liam", "sophie", "bernd", "greta", "lobby", "x")] + [
    TrunkCaller(t, f) for t in ("gw-aus", "ccp-lon", "cp-syd", "pstn", "none") for f in (None, "anonymous", "0")]
STATUSES = {403, 404, 480, 484, 503}
dialled = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789+*# -().", max_size=24),
    st.from_regex(r"\+?[0-9]{1,16}", fullmatch=True),
)


@settings(max_examples=600, deadline=None)
@given(dialled=dialled, caller=st.sampled_from(CALLERS))
def test_resolve_always_answers(dialled, caller):
    route = resolve(dialled, caller, DIRECTORY, NOW)
    assert isinstance(route, (RingPerson, RunAutoAttendant, ToTrunk, Emergency, Reject))
    if isinstance(route, Reject):
        assert route.status in STATUSES and route.reason and "\n" not in route.reason
    if isinstance(route, ToTrunk):
        assert route.number.startswith("+") and route.number[1:].isdigit() and len(route.number) <= 16
        assert isinstance(caller, DeviceCaller)  # trunks never reach other trunks through us


@settings(max_examples=300, deadline=None)
@given(number=st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True))
def test_every_us_ten_digit_form_reaches_the_same_e164(number):
    forms = [number, "1" + number, "9" + number, "91" + number, "+1" + number, "011 1 " + number]
    routes = [resolve(f, DeviceCaller("bob"), DIRECTORY, NOW) for f in forms]
    targets = {r.number if isinstance(r, ToTrunk) else getattr(r, "person_id", None) or getattr(
        r, "auto_attendant_id", None) or r.reason for r in routes}
    assert len(targets) == 1
