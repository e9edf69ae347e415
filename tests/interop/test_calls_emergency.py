"""Issue 4, acceptance 4: emergency calls carry the caller's emergency service address.

Austin (local gateway "austin-gw", a SIPp trunk on 127.0.0.2) has a default emergency address
(the office floor) and the outside-dial digit 9. Alice is a remote worker whose number has its
own address; Bob's number uses the location's; Carol has no number at all. Each calls 911 or
9911: the trunk must get the INVITE for the emergency service with the right PIDF-LO civic
address (RFC 4119/5139, parsed here as XML) pointed at by the Geolocation header (RFC 6442),
the callback number in P-Asserted-Identity (the location's main number for Carol), and each
call must work end to end. The call records, read through GET /v1/cdrs with a bearer token,
are flagged as emergency calls.
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from tests.interop.conftest import free_udp_port, register_from, sipp_peer, wait_listening
from tests.server import NAMED_USERS, add_api_token, add_trunk, org_document, update_location, update_number

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

MAIN, ALICE, BOB = "+15125550100", "+15125550101", "+15125550102"
OFFICE_ESA = {"address1": "500 E 4th St", "address2": "Floor 3", "city": "Austin", "state": "TX",
              "postalCode": "78701", "country": "US"}
HOME_ESA = {"address1": "742 Evergreen Ter", "city": "Round Rock", "state": "TX",
            "postalCode": "78664", "country": "US"}
TOKEN = "t-emergency-" + "x" * 40
NS = {"pidf": "urn:ietf:params:xml:ns:pidf", "gp": "urn:ietf:params:xml:ns:pidf:geopriv10",
      "ca": "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"}
# caller -> (dialled, callback number expected, address expected)
CALLS = {
    "alice": ("911", ALICE, HOME_ESA),
    "bob": ("9911", BOB, OFFICE_ESA),
    "carol": ("911", MAIN, OFFICE_ESA),
}


@pytest.fixture
def server_and_trunk(start_server):
    trunk_port = free_udp_port("127.0.0.2")

    def prepare(store) -> None:
        add_trunk(store, "austin-gw", "127.0.0.2", trunk_port)
        update_location(store, "Austin", outside_dial_digit="9")
        update_number(store, ALICE, emergency_address=HOME_ESA)
        add_api_token(store, TOKEN)

    org = org_document(phone_numbers={"alice": ALICE, "bob": BOB},
                       austin={"numbers": [MAIN, ALICE, BOB], "mainNumber": MAIN,
                               "emergencyAddress": OFFICE_ESA})
    return start_server(org=org, prepare=prepare), trunk_port


def _multipart(content_type: str, body: str) -> list[tuple[dict[str, str], str]]:
    boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1)
    parts = []
    for chunk in body.split("--" + boundary)[1:]:
        if chunk.startswith("--"):
            break
        head, _, content = chunk.strip("\r\n").partition("\n\n")
        headers = {}
        for line in head.splitlines():
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        parts.append((headers, content))
    return parts


def _civic_address(pidf: str) -> dict[str, str]:
    root = ET.fromstring(pidf.strip().encode())
    assert root.tag == "{urn:ietf:params:xml:ns:pidf}presence"
    civic = root.find("pidf:tuple/pidf:status/gp:geopriv/gp:location-info/ca:civicAddress", NS)
    assert civic is not None, pidf
    return {child.tag.split("}", 1)[1]: child.text for child in civic}


def _expected_civic(esa: dict[str, str]) -> dict[str, str]:
    number, road = esa["address1"].split(" ", 1)
    out = {"country": esa["country"], "A1": esa["state"], "A3": esa["city"], "RD": road, "HNO": number,
           "PC": esa["postalCode"]}
    if "address2" in esa:
        out["LOC"] = esa["address2"]
    return out


def _user(value: str) -> str:
    uri = value[value.index("<") + 1:value.index(">")] if "<" in value else value
    return uri.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0]


def _cdrs(server, **query) -> dict:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    request = urllib.request.Request(f"http://127.0.0.1:{server.api_port}/v1/cdrs?{qs}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_emergency_calls_carry_the_callers_address_and_are_flagged(server_and_trunk, sipp, tmp_path):
    server, trunk_port = server_and_trunk
    ports = {name: free_udp_port() for name in CALLS}
    for name, port in ports.items():
        register_from(server, name, "127.0.0.1", port, NAMED_USERS[name][0])
    trunk = sipp_peer("psap-trunk", "call-uas-answer.xml", tmp_path, ip="127.0.0.2", port=trunk_port,
                      calls=len(CALLS), pause_ms=100, timeout=25)
    try:
        wait_listening(trunk_port, "127.0.0.2")
        callers = {name: sipp_peer(name, "call-uac.xml", tmp_path, port=ports[name],
                                   target=("127.0.0.1", server.sip_port), service=dialled,
                                   keys={"caller": name}, pause_ms=300, timeout=20)
                   for name, (dialled, _, _) in CALLS.items()}
        rcs = {name: peer.wait(30) for name, peer in callers.items()}
        trunk_rc = trunk.wait(15)
    finally:
        trunk.stop()
    for name, rc in rcs.items():
        assert rc == 0, callers[name].describe() + "\n" + server.log()  # the call worked end to end
    assert trunk_rc == 0, trunk.describe()

    invites = {_user(i.first("P-Asserted-Identity") or "<sip:none@x>"): i for i in trunk.requests("INVITE")}
    assert sorted(invites) == sorted(callback for _, callback, _ in CALLS.values()), list(invites)
    for name, (dialled, callback, esa) in CALLS.items():
        invite = invites[callback]
        # The emergency service number itself, without the outside digit.
        assert _user(invite.request_uri) == "911", invite.first_line
        assert _user(invite.first("From")) == callback
        assert (invite.first("Priority") or "").lower() == "emergency"
        content_type = invite.first("Content-Type")
        assert content_type.startswith("multipart/mixed"), content_type
        parts = _multipart(content_type, invite.body)
        types = [headers.get("content-type") for headers, _ in parts]
        assert types == ["application/sdp", "application/pidf+xml"], types
        sdp = parts[0][1]
        assert "m=audio " in sdp
        pidf_headers, pidf = parts[1]
        cid = pidf_headers["content-id"].strip("<>")
        assert invite.first("Geolocation") == f"<cid:{cid}>", (invite.first("Geolocation"), cid)
        assert _civic_address(pidf) == _expected_civic(esa), (name, pidf)

    # The call records are written behind in batches: wait for all three.
    deadline = time.monotonic() + 10
    while True:
        flagged = _cdrs(server, emergency="true")
        if flagged["total"] >= len(CALLS) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert flagged["total"] == len(CALLS), flagged
    assert sorted(r["dialled"] for r in flagged["items"]) == sorted(d for d, _, _ in CALLS.values())
    for record in flagged["items"]:
        assert record["emergency"] is True and record["direction"] == "OUTBOUND", record
        assert record["answerTime"] is not None and record["callerPersonId"], record
    assert _cdrs(server, emergency="false")["total"] == 0
