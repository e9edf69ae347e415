"""Issue 4, acceptance 5: a number being ported in is not routable until the port completes,
and then is, without a restart.

Everything goes through the running server's API with a bearer token: a port order for
+15124440101 (a number the simulated carrier's customer record for Acme holds, see
config/carrier-sim.yaml), a new person Ann given that PORT_PENDING number with a SIP device,
the bill, the LOA and the submission. The carrier (a plain UDP socket on the trunk's address)
calls the number: 404 with a Reason saying it is being ported. Then the simulated carrier's
clock is moved on through the FOC date; the order completes, the number turns ACTIVE, and the
same call from the carrier rings Ann's phone (a SIPp UAS) and is answered.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import date, timedelta

import holidays
import pytest

from tests.interop.conftest import (
    free_udp_port,
    parse_response,
    register_from,
    sipp_peer,
    udp_socket,
    wait_listening,
)
from tests.server import ROOT, add_api_token, add_trunk, org_document

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PORTED = "+15124440101"
TOKEN = "t-porting-" + "y" * 40
ACME = {  # matches the simulator's customer record, so the port is accepted
    "accountNumber": "8812-4471", "btn": "+15124440100", "companyName": "Acme Widgets Inc",
    "authorizedName": "Jane Doe",
    "serviceAddress": {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701"},
}
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


# -- the API --------------------------------------------------------------------------------------
class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: dict | None = None, *, expect: int = 200,
             data: bytes | None = None, content_type: str = "application/json") -> dict:
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        result = json.loads(text) if text else {}
        assert status == expect, f"{method} {path}: {status} {result}"
        return result

    def upload_bill(self, order_id: str, issued: date) -> dict:
        boundary = uuid.uuid4().hex
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bill.pdf\"\r\n"
                f"Content-Type: application/pdf\r\n\r\n").encode() + PDF + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"issueDate\"\r\n\r\n"
                f"{issued.isoformat()}\r\n--{boundary}--\r\n").encode()
        return self.call("PUT", f"/v1/portOrders/{order_id}/bill", data=data,
                         content_type=f"multipart/form-data; boundary={boundary}")


def _business_day_after(start: date, days: int) -> date:
    """A weekday that is not a US holiday, `days` calendar days or a little more after start."""
    us = holidays.country_holidays("US", years=range(start.year, start.year + 2))
    day = start + timedelta(days=days)
    while day.weekday() >= 5 or day in us:
        day += timedelta(days=1)
    return day


# -- the carrier: a UDP socket on the trunk's address --------------------------------------------
class Carrier:
    """Places one call at a time from the trunk's address, as a carrier's SBC would."""

    def __init__(self, host: str, port: int, server: tuple[str, int]):
        self.sock = udp_socket(host, port)
        self.local = (host, port)
        self.server = server

    def close(self) -> None:
        self.sock.close()

    def _send(self, lines: list[str], body: bytes = b"") -> None:
        head = "\r\n".join(lines + [f"Content-Length: {len(body)}"]) + "\r\n\r\n"
        self.sock.sendto(head.encode() + body, self.server)

    def _via(self, branch: str) -> str:
        return f"Via: SIP/2.0/UDP {self.local[0]}:{self.local[1]};branch={branch}"

    def invite(self, number: str, timeout: float = 15.0):
        """INVITE `number`; returns (final response, dialog facts). Non-2xx finals are ACKed."""
        call_id, tag, branch = uuid.uuid4().hex, os.urandom(4).hex(), "z9hG4bK" + os.urandom(8).hex()
        sdp = (f"v=0\r\no=carrier 1 1 IN IP4 {self.local[0]}\r\ns=-\r\nc=IN IP4 {self.local[0]}\r\nt=0 0\r\n"
               f"m=audio {free_udp_port(self.local[0])} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n").encode()
        target = f"sip:{number}@{self.server[0]}:{self.server[1]}"
        common = [f"From: <sip:+13125550199@{self.local[0]}>;tag={tag}", f"To: <{target}>",
                  f"Call-ID: {call_id}", "Max-Forwards: 70"]
        invite = [f"INVITE {target} SIP/2.0", self._via(branch), *common, "CSeq: 1 INVITE",
                  f"Contact: <sip:carrier@{self.local[0]}:{self.local[1]}>", "Content-Type: application/sdp"]
        deadline = time.monotonic() + timeout
        next_send, interval = 0.0, 0.5
        final = None
        while final is None and time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                self._send(invite, sdp)
                next_send, interval = time.monotonic() + interval, min(interval * 2, 4.0)
            self.sock.settimeout(0.1)
            try:
                raw = self.sock.recv(65535)
            except socket.timeout:
                continue
            resp = parse_response(raw)
            if call_id in raw.decode(errors="replace") and resp.status >= 200:
                final = resp
            elif resp.status >= 100:
                next_send = deadline  # provisional: the server has it, stop retransmitting
        assert final is not None, f"no final response to the INVITE of {number}"
        to = final.first("To")
        if final.status >= 300:  # ACK for a non-2xx final: same branch, hop by hop
            self._send([f"ACK {target} SIP/2.0", self._via(branch), *common[:1], f"To: {to}", *common[2:],
                        "CSeq: 1 ACK"])
        return final, {"target": target, "common": common, "to": to}

    def ack_and_bye(self, final, dialog: dict) -> int:
        contact = re.search(r"<([^>]+)>", final.first("Contact")).group(1)
        from_, _, call_id, mf = dialog["common"]
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            self._send([f"{method} {contact} SIP/2.0", self._via("z9hG4bK" + os.urandom(8).hex()), from_,
                        f"To: {dialog['to']}", call_id, mf, f"CSeq: {cseq} {method}"])
        self.sock.settimeout(5)
        while True:
            resp = parse_response(self.sock.recv(65535))
            if resp.first("CSeq") and resp.first("CSeq").endswith("BYE"):
                return resp.status


@pytest.fixture
def world(start_server):
    trunk_port = free_udp_port("127.0.0.2")

    def prepare(store) -> None:
        add_trunk(store, "carrier", "127.0.0.2", trunk_port)
        add_api_token(store, TOKEN)

    org = org_document(austin={"pstn": {"type": "CALLING_PLAN"}})
    server = start_server(org=org, prepare=prepare,
                          settings={"carrier": {"simulator": str(ROOT / "config" / "carrier-sim.yaml")}})
    carrier = Carrier("127.0.0.2", trunk_port, ("127.0.0.1", server.sip_port))
    yield server, Api(server.api_port), carrier
    carrier.close()


def test_a_number_being_ported_is_refused_then_rings_once_the_port_completes(world, sipp, tmp_path):
    server, api, carrier = world
    austin = next(loc for loc in api.call("GET", "/v1/locations")["items"] if loc["name"] == "Austin")
    today = date.fromisoformat(api.call("GET", "/v1/carrierSimulator/clock")["today"])
    wanted = _business_day_after(today, 18)

    created = api.call("POST", "/v1/portOrders", {
        "locationId": austin["id"], "phoneNumbers": [PORTED],
        "requestedCompletion": {"date": wanted.isoformat(), "time": "10:00"}, **ACME}, expect=201)
    order_id = created["order"]["id"]
    assert created["added"] == [PORTED], created
    ann = api.call("POST", "/v1/people", {
        "email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee", "locationId": austin["id"],
        "extension": "2001", "phoneNumber": PORTED,
        "devices": [{"sipUsername": "ann", "password": "ann-secret-2001"}]}, expect=201)
    assert ann["phoneNumberState"] == "PORT_PENDING"
    api.upload_bill(order_id, today - timedelta(days=3))
    api.call("POST", f"/v1/portOrders/{order_id}/loa", {"name": "Jane Doe", "title": "Office Manager"})
    assert api.call("POST", f"/v1/portOrders/{order_id}/submit")["status"] == "SUBMITTED"

    # Ann's phone registers (her device came through the API: no restart for that either).
    ann_port = free_udp_port()
    register_from(server, "ann", "127.0.0.1", ann_port, "ann-secret-2001")

    # While the port is in progress the number does not ring here. (The routing directory
    # follows the API's commits a moment later: until then the number is simply unknown.)
    deadline = time.monotonic() + 5
    while True:
        final, _ = carrier.invite(PORTED)
        if "not in service" not in (final.first("Reason") or "") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert final.status == 404, final.raw
    reason = final.first("Reason") or ""
    assert "ported" in reason.lower(), final.raw

    # The carrier answers (FOC), then the FOC date comes: the port completes.
    api.call("POST", "/v1/carrierSimulator/clock", {"advanceBusinessDays": 1})
    order = api.call("GET", f"/v1/portOrders/{order_id}")
    assert order["status"] == "FOC_RECEIVED", order
    days = 0
    while api.call("GET", f"/v1/portOrders/{order_id}")["status"] != "COMPLETED" and days < 30:
        api.call("POST", "/v1/carrierSimulator/clock", {"advanceBusinessDays": 1})
        days += 1
    assert api.call("GET", f"/v1/portOrders/{order_id}")["status"] == "COMPLETED"
    assert api.call("GET", f"/v1/people/{ann['id']}")["phoneNumberState"] == "ACTIVE"

    phone = sipp_peer("ann", "call-uas-answer.xml", tmp_path, port=ann_port, pause_ms=100, timeout=20)
    try:
        wait_listening(ann_port)
        # The directory follows the store's change events a moment after the commit.
        deadline = time.monotonic() + 5
        while True:
            final, dialog = carrier.invite(PORTED)
            if final.status != 404 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert final.status == 200, final.raw.decode(errors="replace") + "\n" + server.log()
        assert carrier.ack_and_bye(final, dialog) == 200
        assert phone.wait(10) == 0, phone.describe()
    finally:
        phone.stop()
    invite, = phone.requests("INVITE")
    assert "+13125550199" in invite.first("From")
