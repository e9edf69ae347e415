"""Issue 4, acceptance 3: three locations, one of each PSTN connection type, each trunk a SIPp
peer on its own address.

  Austin   LOCAL_GATEWAY         trunk austin-gw     127.0.0.2
  Dallas   CLOUD_CONNECTED_PSTN  trunk dallas-ccp    127.0.0.3
  New York CALLING_PLAN          trunk calling-plan  127.0.0.4

Phones are SIPp processes on 127.0.0.1, each registered from the port it then listens or
calls on. What a trunk received is read from its SIPp message trace.

The organisation file cannot give a calling-plan location a trunk (it and the API refuse one:
"a calling plan location has no trunk of its own"), and nothing else names the provider's SIP
peer yet, so the New York location's `pstn_trunk` is written into the store directly; routing
follows a location's trunk name whatever its connection type.
"""
from __future__ import annotations

import pytest

from tests.interop.conftest import free_udp_port, register_from, sipp_peer, wait_listening
from tests.server import NAMED_USERS, add_trunk, org_document, update_location

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

ADDRESS = {"address1": "1 Main St", "postalCode": "00000", "country": "US"}
TRUNKS = {  # location -> (trunk name, host)
    "Austin": ("austin-gw", "127.0.0.2"),
    "Dallas": ("dallas-ccp", "127.0.0.3"),
    "New York": ("calling-plan", "127.0.0.4"),
}
MAIN = {"Austin": "+15125550100", "Dallas": "+12145550100", "New York": "+12125550100"}
# person -> (location, extension, number or None); alice and bob are tests/server.py's.
PEOPLE = {
    "alice": ("Austin", "1001", "+15125550101"),
    "bob": ("Austin", "1002", None),
    "dave": ("Dallas", "2001", "+12145550101"),
    "erin": ("New York", "3001", "+12125550101"),
    "frank": ("New York", "3002", None),
}
PASSWORDS = {name: f"{name}-secret" for name in PEOPLE} | {n: NAMED_USERS[n][0] for n in ("alice", "bob")}
OUTSIDE = "2065550123"  # a Seattle number nobody here owns, dialled nationally


def _organisation() -> dict:
    def location(name: str, city: str, state: str, pstn: dict, numbers: list[str]) -> dict:
        return {"name": name, "country": "US", "timeZone": "America/Chicago",
                "address": ADDRESS | {"city": city, "state": state}, "pstn": pstn,
                "mainNumber": MAIN[name], "numbers": numbers}

    def numbers(loc: str) -> list[str]:
        return [MAIN[loc]] + [n for l, _, n in PEOPLE.values() if l == loc and n]

    people = [{"email": f"{name}@acme.test", "firstName": name.capitalize(), "lastName": "Test",
               "location": loc, "extension": ext, **({"phoneNumber": num} if num else {}),
               "devices": [{"sipUsername": name, "password": PASSWORDS[name]}]}
              for name, (loc, ext, num) in PEOPLE.items() if name not in NAMED_USERS]
    return org_document(
        phone_numbers={"alice": PEOPLE["alice"][2]},
        austin={"mainNumber": MAIN["Austin"], "numbers": numbers("Austin"),
                "pstn": {"type": "LOCAL_GATEWAY", "trunk": "austin-gw"}},
        locations=[location("Dallas", "Dallas", "TX", {"type": "CLOUD_CONNECTED_PSTN", "trunk": "dallas-ccp"},
                            numbers("Dallas")),
                   location("New York", "New York", "NY", {"type": "CALLING_PLAN"}, numbers("New York"))],
        people=people)


@pytest.fixture(scope="module")
def setup(start_module_server):
    trunk_ports = {loc: free_udp_port(host) for loc, (_, host) in TRUNKS.items()}

    def prepare(store) -> None:
        for loc, (name, host) in TRUNKS.items():
            add_trunk(store, name, host, trunk_ports[loc])
        update_location(store, "New York", pstn_trunk="calling-plan")

    server = start_module_server("trunks", org=_organisation(), prepare=prepare)
    phone_ports = {name: free_udp_port() for name in PEOPLE}
    return server, trunk_ports, phone_ports


def _register(server, phone_ports, *names: str) -> None:
    for name in names:
        register_from(server, name, "127.0.0.1", phone_ports[name], PASSWORDS[name])


def _trunk_peers(tmp_path, trunk_ports, calls: dict[str, int], timeout: float = 20.0):
    peers = {}
    for loc, (name, host) in TRUNKS.items():
        peers[loc] = sipp_peer(f"trunk-{name}", "call-uas-answer.xml", tmp_path, ip=host, port=trunk_ports[loc],
                               calls=max(calls.get(loc, 0), 1), timeout=timeout, pause_ms=100)
        wait_listening(trunk_ports[loc], host)
    return peers


def _call(tmp_path, server, phone_ports, caller: str, dialled: str):
    return sipp_peer(f"{caller}-dials-{dialled}", "call-uac.xml", tmp_path, port=phone_ports[caller],
                     target=("127.0.0.1", server.sip_port), service=dialled, keys={"caller": caller},
                     pause_ms=200, timeout=20)


def _user(uri_header: str) -> str:
    """The user part of the URI in a From/To/P-Asserted-Identity value."""
    uri = uri_header[uri_header.index("<") + 1:uri_header.index(">")] if "<" in uri_header else uri_header
    return uri.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]


def test_outbound_leaves_through_the_callers_location_trunk_with_its_caller_id(setup, sipp, tmp_path):
    server, trunk_ports, phone_ports = setup
    callers = ["alice", "bob", "dave", "frank"]
    _register(server, phone_ports, *callers)
    expected_calls = {"Austin": 2, "Dallas": 1, "New York": 1}
    trunks = _trunk_peers(tmp_path, trunk_ports, expected_calls)
    try:
        calls = {c: _call(tmp_path, server, phone_ports, c, OUTSIDE) for c in callers}
        rcs = {c: p.wait(30) for c, p in calls.items()}
        trunk_rcs = {loc: p.wait(15) for loc, p in trunks.items()}
    finally:
        for p in trunks.values():
            p.stop()
    for caller, rc in rcs.items():
        assert rc == 0, calls[caller].describe() + "\n" + server.log()
    for loc, rc in trunk_rcs.items():
        assert rc == 0, trunks[loc].describe()

    seen: dict[str, list[tuple[str, str | None]]] = {}
    for loc, peer in trunks.items():
        invites = peer.requests("INVITE")
        assert len(invites) == expected_calls[loc], (loc, [i.first_line for i in invites])
        for invite in invites:
            # The dialled national number leaves in E.164, towards this trunk.
            assert _user(invite.request_uri) == "+1" + OUTSIDE, invite.first_line
            assert _user(invite.first("To")) == "+1" + OUTSIDE
            pai = invite.first("P-Asserted-Identity")
            assert pai is not None and _user(pai) == _user(invite.first("From")), invite.headers
            seen.setdefault(loc, []).append((_user(invite.first("From")), invite.first("Content-Type")))
    # Each caller's own number, or the location's main number for a person without one.
    assert sorted(n for n, _ in seen["Austin"]) == sorted([PEOPLE["alice"][2], MAIN["Austin"]])
    assert [n for n, _ in seen["Dallas"]] == [PEOPLE["dave"][2]]
    assert [n for n, _ in seen["New York"]] == [MAIN["New York"]]
    assert all(ctype == "application/sdp" for calls in seen.values() for _, ctype in calls)


@pytest.mark.parametrize("location, dialled, callee", [
    ("Austin", "+15125550101", "alice"),    # E.164 with its plus
    ("Dallas", "2145550101", "dave"),       # national, as some carriers send it
    ("New York", "12125550101", "erin"),    # E.164 without the plus
])
def test_an_inbound_did_reaches_its_person(setup, sipp, tmp_path, location, dialled, callee):
    server, trunk_ports, phone_ports = setup
    _register(server, phone_ports, callee)
    phone = sipp_peer(callee, "call-uas-answer.xml", tmp_path, port=phone_ports[callee], pause_ms=100, timeout=20)
    try:
        wait_listening(phone_ports[callee])
        name, host = TRUNKS[location]
        carrier = sipp_peer(f"{name}-inbound", "call-uac.xml", tmp_path, ip=host, port=trunk_ports[location],
                            target=("127.0.0.1", server.sip_port), service=dialled,
                            keys={"caller": "+13125550199"}, pause_ms=200, timeout=20)
        carrier_rc, phone_rc = carrier.wait(30), phone.wait(15)
    finally:
        phone.stop()
    assert carrier_rc == 0, carrier.describe() + "\n" + server.log()
    assert phone_rc == 0, phone.describe()
    invite, = phone.requests("INVITE")
    # The outside caller's number is shown to the person.
    assert _user(invite.first("From")) == "+13125550199", invite.first("From")


@pytest.mark.parametrize("caller, dialled, callee", [
    ("bob", "2145550101", "dave"),        # Austin -> a Dallas DID, national form
    ("frank", "+15125550101", "alice"),   # New York -> an Austin DID, E.164
    ("dave", "12125550101", "erin"),      # Dallas -> a New York DID, with the national prefix 1
])
def test_a_number_the_organisation_owns_stays_inside(setup, sipp, tmp_path, caller, dialled, callee):
    server, trunk_ports, phone_ports = setup
    _register(server, phone_ports, caller, callee)
    trunks = _trunk_peers(tmp_path, trunk_ports, {}, timeout=10)
    phone = sipp_peer(callee, "call-uas-answer.xml", tmp_path, port=phone_ports[callee], pause_ms=100, timeout=20)
    try:
        wait_listening(phone_ports[callee])
        call = _call(tmp_path, server, phone_ports, caller, dialled)
        call_rc, phone_rc = call.wait(30), phone.wait(15)
    finally:
        phone.stop()
        for p in trunks.values():
            p.stop()
    assert call_rc == 0, call.describe() + "\n" + server.log()
    assert phone_rc == 0, phone.describe()
    assert len(phone.requests("INVITE")) == 1
    for loc, peer in trunks.items():
        assert peer.messages() == [], (loc, [m.first_line for m in peer.messages()])
