"""The B2BUA core driven through the Endpoint with bytes and a fake clock, no sockets.

Phones are addresses; what the server sends is collected per destination and answered by
hand, so each test reads like a call flow diagram.
"""
from __future__ import annotations

import itertools

import pytest

from routing.callers import DeviceCaller
from routing.records import TrunkRecord
from routing.route import CallerId, Emergency, Reject, RingPerson, ToTrunk
from sipcore.auth import DigestAuthenticator
from sipcore.b2bua import B2BUA
from sipcore.calls import MediaError
from sipcore.endpoint import Endpoint
from sipcore.guard import SourceGuard
from sipcore.location import Binding, MemoryBindingStore
from sipcore.message import Request, Response, make_response, parse
from sipcore.registrar import Registrar
from sipcore.transaction import TransactionLayer

ALICE = ("10.0.0.2", 5060)
DESK = ("10.0.0.3", 5060)
SOFT = ("10.0.0.4", 5062)
TRUNK = ("10.9.9.9", 5060)
SERVER = ("10.0.0.1", 5060)
SDP = b"v=0\r\no=- 1 1 IN IP4 PHONE\r\ns=-\r\nc=IN IP4 PHONE\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
_n = itertools.count(1)


class FakeMedia:
    """Marks which side an SDP was rewritten for, so tests can see the B2BUA used it."""
    closed = 0

    def __init__(self, call_id: str):
        self.call_id = call_id

    def offer(self, leg: str, body: bytes) -> bytes:
        if b"nocodec" in body:
            raise MediaError(488, "no common codec")
        return body.replace(b"PHONE", f"RELAY-OFFER-FROM-{leg}".encode())

    def answer(self, leg: str, body: bytes) -> bytes:
        return body.replace(b"PHONE", f"RELAY-ANSWER-FROM-{leg}".encode())

    def close(self) -> dict:
        FakeMedia.closed += 1
        return {}


class Net:
    def __init__(self, route=None, identify=None):
        self.now = 1000.0
        self.bindings = MemoryBindingStore()
        self.records = []
        self.route = route
        self.txl = TransactionLayer(trying_after=None)
        self.b2b = B2BUA(
            transactions=self.txl, bindings=self.bindings,
            identify=identify or (lambda req, src, tr, now: DeviceCaller("alice")),
            router=lambda dialled, caller, now: self.route, local=lambda t, d: SERVER,
            media_factory=FakeMedia, records=self.records.append, no_answer_timeout=30.0)
        self.ep = Endpoint(registrar=Registrar(self.bindings), authenticator=DigestAuthenticator(b"k" * 32),
                           guard=SourceGuard(rate=1e9, burst=1e9, ban_failures=1000, ban_window=60, ban_duration=60), credentials=lambda u: None,
                           realm=lambda r: "test", transactions=self.txl, handler=self.b2b)
        self.inbox: dict[tuple[str, int], list] = {}

    def bind(self, user: str, addr: tuple[str, int]) -> None:
        self.bindings.replace(user, [Binding(aor=user, contact=f"sip:{user}@{addr[0]}:{addr[1]}",
                                             expires_at=self.now + 3600, call_id=f"reg-{user}", cseq=1,
                                             received=addr)])

    def _collect(self, sends) -> None:
        for s in sends:
            self.inbox.setdefault(s.addr, []).append(parse(s.data))

    def send(self, msg: Request | Response | bytes, src: tuple[str, int]) -> None:
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        self._collect(self.ep.receive(data, src, "UDP", self.now))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._collect(self.ep.handle_timers(self.now))

    def take(self, addr) -> list:
        out = self.inbox.pop(addr, [])
        return out

    def requests(self, addr, method=None) -> list[Request]:
        return [m for m in self.take(addr) if isinstance(m, Request) and (method is None or m.method == method)]


def invite(to="1002", body=SDP, src=ALICE, extra="", call_id=None) -> bytes:
    n = next(_n)
    call_id = call_id or f"call-{n}"
    lines = [f"INVITE sip:{to}@10.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bKa{n};rport",
             "Max-Forwards: 70", f"From: <sip:alice@10.0.0.1>;tag=a{n}", f"To: <sip:{to}@10.0.0.1>",
             f"Call-ID: {call_id}", "CSeq: 1 INVITE", f"Contact: <sip:alice@{src[0]}:{src[1]}>"]
    if extra:
        lines.append(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def answer(req: Request, status: int, tag: str, contact: tuple[str, int] | None = None, body: bytes = b"") -> Response:
    resp = make_response(req, status, to_tag=tag, body=body)
    if contact:
        resp.set("Contact", f"<sip:x@{contact[0]}:{contact[1]}>")
    if body:
        resp.set("Content-Type", "application/sdp")
    return resp


def in_dialog(resp_or_req, method: str, cseq: int, src, body=b"", *, from_caller=True, a_tag=None, remote_tag=None,
              call_id=None) -> bytes:
    n = next(_n)
    lines = [f"{method} sip:10.0.0.1:5060 SIP/2.0", f"Via: SIP/2.0/UDP {src[0]}:{src[1]};branch=z9hG4bKd{n}",
             "Max-Forwards: 70", f"From: <sip:me@{src[0]}>;tag={a_tag}", f"To: <sip:you@10.0.0.1>;tag={remote_tag}",
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", f"Contact: <sip:me@{src[0]}:{src[1]}>"]
    if body:
        lines.append("Content-Type: application/sdp" if method in ("INVITE", "ACK") else "Content-Type: application/dtmf-relay")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def ring_bob() -> RingPerson:
    return RingPerson(person_id="p-bob", display_name="Bob Brown", sip_usernames=("bob-desk", "bob-soft"),
                      caller_id=CallerId("1001", "Alice Anderson"), dialled="1002")


@pytest.fixture
def net():
    n = Net(route=ring_bob())
    n.bind("bob-desk", DESK)
    n.bind("bob-soft", SOFT)
    return n


def establish(net: Net):
    """Alice calls Bob; the desk phone rings, the soft client answers."""
    inv = invite()
    net.send(inv, ALICE)
    first = net.take(ALICE)
    assert [r.status for r in first] == [100]
    desk_inv, = net.requests(DESK, "INVITE")
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(desk_inv, 180, "desk"), DESK)
    ringing, = net.take(ALICE)
    assert ringing.status == 180
    net.send(answer(soft_inv, 200, "soft", SOFT, SDP), SOFT)
    return parse(inv), desk_inv, soft_inv


def test_forks_to_every_device_first_answer_wins_the_other_is_cancelled(net):
    a_inv, desk_inv, soft_inv = establish(net)
    assert b"RELAY-OFFER-FROM-a" in desk_inv.body and b"RELAY-OFFER-FROM-a" in soft_inv.body
    assert desk_inv.call_id != a_inv.call_id and desk_inv.call_id != soft_inv.call_id
    assert '"Alice Anderson" <sip:1001@' in desk_inv.get("from")
    assert int(desk_inv.get("max-forwards")) == 69
    ok, = net.take(ALICE)
    assert ok.status == 200 and b"RELAY-ANSWER-FROM-b" in ok.body and ok.to.tag
    ack, = net.requests(SOFT, "ACK")
    assert ack.cseq == (1, "ACK") and ack.to.tag == "soft"
    cancel, = net.requests(DESK, "CANCEL")
    net.send(answer(cancel, 200, "desk"), DESK)
    net.send(answer(desk_inv, 487, "desk"), DESK)
    assert [r.method for r in net.requests(DESK)] == ["ACK"]  # the 487 is acknowledged
    assert net.take(ALICE) == []  # the caller hears nothing of the cancelled fork


def test_caller_hangs_up_and_the_call_record_says_so(net):
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    net.send(in_dialog(None, "ACK", 1, ALICE, a_tag=a_inv.from_.tag, remote_tag=ok.to.tag, call_id=a_inv.call_id), ALICE)
    net.take(SOFT); net.take(DESK)
    net.send(in_dialog(None, "BYE", 2, ALICE, a_tag=a_inv.from_.tag, remote_tag=ok.to.tag, call_id=a_inv.call_id), ALICE)
    assert [r.status for r in net.take(ALICE)] == [200]
    bye, = net.requests(SOFT, "BYE")
    assert bye.call_id == soft_inv.call_id and bye.uri.host == SOFT[0] and bye.uri.port == SOFT[1]
    record, = net.records
    assert record.disposition == "ANSWERED" and record.hangup_by == "caller" and record.answer is not None
    assert record.caller == {"device": "alice"} and record.callee["device"] == "bob-soft"


def test_callee_hangs_up(net):
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    net.send(in_dialog(None, "BYE", 1, SOFT, a_tag="soft", remote_tag=soft_inv.from_.tag, call_id=soft_inv.call_id), SOFT)
    assert any(isinstance(m, Response) and m.status == 200 for m in net.take(SOFT))
    bye, = net.requests(ALICE, "BYE")
    assert bye.call_id == a_inv.call_id and bye.to.tag == a_inv.from_.tag and bye.from_.tag == ok.to.tag
    assert net.records[0].hangup_by == "callee"


def test_second_answer_after_the_first_is_acked_and_released(net):
    a_inv, desk_inv, soft_inv = establish(net)
    net.take(ALICE); net.take(SOFT)
    net.send(answer(desk_inv, 200, "desk", DESK, SDP), DESK)  # raced our CANCEL
    methods = [m.method for m in net.requests(DESK)]
    assert "ACK" in methods and "BYE" in methods
    assert net.take(ALICE) == []


@pytest.mark.parametrize("statuses, expected", [((486, 486), 486), ((486, 480), 480), ((603, 486), 603), ((404, 486), 404)])
def test_the_caller_hears_one_answer_for_all_failed_forks(net, statuses, expected):
    net.send(invite(), ALICE)
    net.take(ALICE)
    desk_inv, = net.requests(DESK, "INVITE")
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(desk_inv, statuses[0], "d"), DESK)
    assert net.take(ALICE) == []  # still waiting for the soft client
    net.send(answer(soft_inv, statuses[1], "s"), SOFT)
    final, = net.take(ALICE)
    assert final.status == expected
    assert net.records[0].disposition == ("BUSY" if expected == 486 else "FAILED" if expected != 480 else "NO_ANSWER")


def test_caller_cancels_while_ringing(net):
    raw = invite()
    net.send(raw, ALICE)
    net.take(ALICE)
    desk_inv, = net.requests(DESK, "INVITE")
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(desk_inv, 180, "d"), DESK)
    net.send(answer(soft_inv, 180, "s"), SOFT)
    net.take(ALICE)
    cancel = raw.replace(b"INVITE sip:", b"CANCEL sip:", 1).replace(b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL")
    cancel = cancel.split(b"Content-Type")[0] + b"Content-Length: 0\r\n\r\n"
    net.send(cancel, ALICE)
    statuses = sorted((m.status, m.cseq[1]) for m in net.take(ALICE))
    assert statuses == [(200, "CANCEL"), (487, "INVITE")]
    assert len(net.requests(DESK, "CANCEL")) == 1 and len(net.requests(SOFT, "CANCEL")) == 1
    assert net.records[0].disposition == "CANCELLED" and net.records[0].hangup_by == "caller"


def test_nobody_answers_within_the_timeout(net):
    net.send(invite(), ALICE)
    net.take(ALICE)
    desk_inv, = net.requests(DESK, "INVITE")
    net.send(answer(desk_inv, 180, "d"), DESK)
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(soft_inv, 180, "s"), SOFT)
    net.take(ALICE)
    net.advance(29.0)
    assert net.take(ALICE) == []
    net.advance(1.5)
    final, = [m for m in net.take(ALICE) if m.status >= 200]
    assert final.status == 480 and "no answer" in final.get("reason")
    assert net.requests(DESK, "CANCEL") and net.requests(SOFT, "CANCEL")
    assert net.records[0].disposition == "NO_ANSWER"


def test_hold_and_resume_re_invites_are_relayed_with_rewritten_sdp(net):
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    a_tag, b_tag = a_inv.from_.tag, ok.to.tag
    net.send(in_dialog(None, "ACK", 1, ALICE, a_tag=a_tag, remote_tag=b_tag, call_id=a_inv.call_id), ALICE)
    net.take(SOFT); net.take(DESK)
    hold = SDP + b"a=sendonly\r\n"
    net.send(in_dialog(None, "INVITE", 2, ALICE, hold, a_tag=a_tag, remote_tag=b_tag, call_id=a_inv.call_id), ALICE)
    reinv, = net.requests(SOFT, "INVITE")
    assert reinv.call_id == soft_inv.call_id and b"a=sendonly" in reinv.body and b"RELAY-OFFER-FROM-a" in reinv.body
    assert reinv.cseq[0] == 2
    net.send(answer(reinv, 200, "soft", SOFT, SDP + b"a=recvonly\r\n"), SOFT)
    assert [m.method for m in net.requests(SOFT)] == ["ACK"]
    ok2, = [m for m in net.take(ALICE) if isinstance(m, Response) and m.status == 200]
    assert b"a=recvonly" in ok2.body and ok2.cseq == (2, "INVITE")


def test_info_dtmf_is_relayed_and_answered(net):
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    net.take(SOFT)
    net.send(in_dialog(None, "INFO", 2, ALICE, b"Signal=5\r\nDuration=160\r\n", a_tag=a_inv.from_.tag,
                       remote_tag=ok.to.tag, call_id=a_inv.call_id), ALICE)
    info, = net.requests(SOFT, "INFO")
    assert info.body == b"Signal=5\r\nDuration=160\r\n" and info.get("content-type") == "application/dtmf-relay"
    net.send(answer(info, 200, "soft"), SOFT)
    assert [(m.status, m.cseq[1]) for m in net.take(ALICE)] == [(200, "INFO")]


def test_requests_for_unknown_dialogs_get_481_and_old_cseq_500(net):
    net.send(in_dialog(None, "BYE", 5, ALICE, a_tag="x", remote_tag="nope", call_id="unknown"), ALICE)
    assert [m.status for m in net.take(ALICE)] == [481]
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    net.send(in_dialog(None, "INFO", 1, ALICE, b"Signal=1\r\n", a_tag=a_inv.from_.tag, remote_tag=ok.to.tag,
                       call_id=a_inv.call_id), ALICE)
    assert [m.status for m in net.take(ALICE)] == [500]


def test_rejections_carry_a_reason(net):
    net.route = Reject(404, "number is being ported")
    net.send(invite("+15125550199"), ALICE)
    final, = net.take(ALICE)
    assert final.status == 404 and 'text="number is being ported"' in final.get("reason")
    assert net.records[0].disposition == "REJECTED"


def test_a_person_with_no_registered_device_is_480(net):
    net.bindings.replace("bob-desk", [])
    net.bindings.replace("bob-soft", [])
    net.send(invite(), ALICE)
    statuses = [m.status for m in net.take(ALICE)]
    assert statuses[-1] == 480


def test_no_common_codec_is_488(net):
    net.send(invite(body=SDP + b"a=nocodec\r\n"), ALICE)
    final, = [m for m in net.take(ALICE) if m.status >= 200]
    assert final.status == 488 and net.take(DESK) == []


def test_an_invite_that_comes_back_to_us_is_a_loop(net):
    net.send(invite(), ALICE)
    net.take(ALICE)
    desk_inv, = net.requests(DESK, "INVITE")
    looped = desk_inv.to_bytes().replace(b"Via: ", b"Via: SIP/2.0/UDP 10.0.0.3:5060;branch=z9hG4bKloop\r\nVia: ", 1)
    net.send(looped, DESK)
    assert [m.status for m in net.take(DESK)] == [482]


def test_2xx_is_retransmitted_until_the_ack_then_the_call_is_torn_down(net):
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    net.take(SOFT)
    net.advance(0.6)
    assert [m.status for m in net.take(ALICE)] == [200]
    for _ in range(10):
        net.advance(4.0)
    resent = net.take(ALICE)
    assert any(isinstance(m, Request) and m.method == "BYE" for m in resent)
    assert net.requests(SOFT, "BYE")


def test_outbound_and_emergency_calls_go_to_the_trunk():
    trunk = TrunkRecord(id="t1", org_id="o", name="austin-gw", host=TRUNK[0], port=TRUNK[1], transport="UDP",
                        register=False, username=None, realm=None, ha1=None)
    net = Net(route=ToTrunk(trunk=trunk, number="+15125550199", caller_id=CallerId("+15125550101", "Alice"),
                            international=False, dialled="5125550199"))
    net.send(invite("5125550199"), ALICE)
    inv, = net.requests(TRUNK, "INVITE")
    assert str(inv.uri).startswith("sip:+15125550199@10.9.9.9:5060") and "user=phone" in str(inv.uri)
    assert "+15125550101" in inv.get("from") and "+15125550101" in inv.get("p-asserted-identity")

    esa = {"address1": "100 Congress Ave", "address2": "Suite 400", "city": "Austin", "state": "TX",
           "postalCode": "78701", "country": "US"}
    net.route = Emergency(trunk=trunk, dialled="911", service_number="911", callback_number="+15125550101",
                          esa=esa, location_id="loc", notify_email=None, caller_name="Alice")
    net.send(invite("911"), ALICE)
    inv, = net.requests(TRUNK, "INVITE")
    assert inv.get("content-type").startswith("multipart/mixed")
    cid = inv.get("geolocation").strip("<>").removeprefix("cid:")
    assert f"Content-ID: <{cid}>".encode() in inv.body
    assert b"<ca:RD>Congress Ave</ca:RD><ca:HNO>100</ca:HNO>" in inv.body and b"<ca:PC>78701</ca:PC>" in inv.body
    assert b"application/sdp" in inv.body and inv.get("priority") == "emergency"
    assert "+15125550101" in inv.get("p-asserted-identity")
    net.send(answer(inv, 200, "psap", TRUNK, SDP), TRUNK)
    ok = [m for m in net.take(ALICE) if m.status == 200][0]
    assert b"RELAY-ANSWER-FROM-b" in ok.body


def test_a_trunk_that_challenges_gets_the_invite_again_signed_with_its_ha1():
    from sipcore.auth import AuthOutcome, DigestAuthenticator, DigestCredentials

    creds = DigestCredentials.from_password("acme", "carrier.example", "trunk-secret")
    trunk = TrunkRecord(id="t1", org_id="o", name="carrier", host=TRUNK[0], port=TRUNK[1], transport="UDP",
                        register=False, username="acme", realm="carrier.example", ha1=dict(creds.ha1))
    net = Net(route=ToTrunk(trunk=trunk, number="+15125550199", caller_id=CallerId("+15125550101", "Alice"),
                            international=False, dialled="5125550199"))
    net.send(invite("5125550199"), ALICE)
    first, = net.requests(TRUNK, "INVITE")
    carrier = DigestAuthenticator(b"c" * 32)
    challenge = make_response(first, 407, to_tag="c1")
    challenge.set("Proxy-Authenticate", carrier.challenge("carrier.example", net.now))
    net.send(challenge, TRUNK)
    msgs = net.take(TRUNK)
    assert [m.method for m in msgs] == ["ACK", "INVITE"]  # the 407 acknowledged, then the retry
    retry = msgs[1]
    assert retry.cseq == (2, "INVITE") and retry.call_id == first.call_id and retry.from_.tag == first.from_.tag
    result = carrier.verify(retry.get("proxy-authorization"), "INVITE", str(retry.uri), "carrier.example",
                            lambda user: creds, net.now)
    assert result.outcome is AuthOutcome.OK
    # A second challenge is not answered again, nor passed on: the caller hears 503.
    again = make_response(retry, 407, to_tag="c2")
    again.set("Proxy-Authenticate", carrier.challenge("carrier.example", net.now))
    net.send(again, TRUNK)
    final, = [m for m in net.take(ALICE) if m.status >= 200]
    assert final.status == 503 and "trunk authentication" in final.reason


class FakeApp:
    """Stands in for the IVR: records what the B2BUA tells it."""

    def __init__(self):
        self.events = []

    def on_info(self, call, ctype, body, now):
        self.events.append(("info", ctype, body))

    def on_reoffer(self, call, sdp, now):
        self.events.append(("reoffer",))
        return SDP.replace(b"PHONE", b"IVR")

    def on_transferred(self, call, now):
        self.events.append(("transferred",))

    def on_transfer_failed(self, call, status, reason, now):
        self.events.append(("failed", status, reason))

    def on_end(self, call, now):
        self.events.append(("end",))


def answered_by_app(net):
    from routing.route import RunAutoAttendant

    app = FakeApp()
    net.route = RunAutoAttendant(auto_attendant_id="aa1", location_id="loc", name="Main menu",
                                 caller_id=CallerId("+15125550101", "Alice"), dialled="+15125550100")
    calls = []
    net.b2b.auto_attendant = lambda call, route, now: calls.append(call)
    raw = invite("+15125550100")
    net.send(raw, ALICE)
    call, = calls
    net._collect(net.b2b.answer_locally(call, SDP.replace(b"PHONE", b"IVR"), app, net.now))
    ok, = [m for m in net.take(ALICE) if m.status == 200]
    a_inv = parse(raw)
    net.send(in_dialog(None, "ACK", 1, ALICE, a_tag=a_inv.from_.tag, remote_tag=ok.to.tag, call_id=a_inv.call_id), ALICE)
    return app, call, a_inv, ok


def test_an_application_answers_and_gets_info_reoffers_and_the_end(net):
    app, call, a_inv, ok = answered_by_app(net)
    assert b"IVR" in ok.body and net.take(DESK) == []
    dlg = dict(a_tag=a_inv.from_.tag, remote_tag=ok.to.tag, call_id=a_inv.call_id)
    net.send(in_dialog(None, "INFO", 2, ALICE, b"Signal=1\r\nDuration=100\r\n", **dlg), ALICE)
    assert [m.status for m in net.take(ALICE)] == [200]
    net.send(in_dialog(None, "INVITE", 3, ALICE, SDP + b"a=sendonly\r\n", **dlg), ALICE)
    reok, = net.take(ALICE)
    assert reok.status == 200 and b"IVR" in reok.body
    net.send(in_dialog(None, "BYE", 4, ALICE, **dlg), ALICE)
    assert [m.status for m in net.take(ALICE)] == [200]
    assert [e[0] for e in app.events] == ["info", "reoffer", "end"]
    assert app.events[0][1:] == ("application/dtmf-relay", b"Signal=1\r\nDuration=100\r\n")


def test_transfer_rings_the_target_bridges_the_first_answer_and_releases_the_application(net):
    app, call, a_inv, ok = answered_by_app(net)
    net._collect(net.b2b.transfer(call, ring_bob(), net.now))
    desk_inv, = net.requests(DESK, "INVITE")
    soft_inv, = net.requests(SOFT, "INVITE")
    assert b"RELAY-OFFER-FROM-a" in desk_inv.body  # the caller's own offer, through the relay
    net.send(answer(desk_inv, 180, "d"), DESK)
    assert net.take(ALICE) == []  # the application keeps the caller company while it rings
    net.send(answer(soft_inv, 200, "soft", SOFT, SDP), SOFT)
    assert [m.method for m in net.requests(SOFT)] == ["ACK"]
    assert net.requests(DESK, "CANCEL")
    reinvite, = net.requests(ALICE, "INVITE")
    assert reinvite.call_id == a_inv.call_id and b"RELAY-OFFER-FROM-b" in reinvite.body
    assert app.events == [("transferred",)]
    net.send(answer(reinvite, 200, "x", ALICE, SDP), ALICE)
    assert [m.method for m in net.requests(ALICE)] == ["ACK"]
    # From now on it is an ordinary bridged call: the callee's BYE reaches the caller.
    net.send(in_dialog(None, "BYE", 1, SOFT, a_tag="soft", remote_tag=soft_inv.from_.tag, call_id=soft_inv.call_id), SOFT)
    assert net.requests(ALICE, "BYE")
    assert net.records[-1].disposition == "ANSWERED" and net.records[-1].callee["transferred"] is True


def test_a_transfer_nobody_answers_comes_back_to_the_application(net):
    app, call, a_inv, ok = answered_by_app(net)
    net._collect(net.b2b.transfer(call, ring_bob(), net.now, timeout=20))
    desk_inv, = net.requests(DESK, "INVITE")
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(desk_inv, 180, "d"), DESK)
    net.send(answer(soft_inv, 486, "s"), SOFT)
    assert app.events == []
    net.advance(21)
    assert app.events == [("failed", 480, "no answer")] and net.requests(DESK, "CANCEL")
    net.send(answer(desk_inv, 487, "d"), DESK)  # the cancelled fork's answer does not end the call
    assert call.state.name == "CONFIRMED" and net.records == []


def test_an_ack_with_the_invite_branch_and_a_wrong_to_tag_still_acknowledges_the_2xx(net):
    """pyVoIP acknowledges with the INVITE's branch and a To tag of its own invention."""
    a_inv, desk_inv, soft_inv = establish(net)
    ok, = net.take(ALICE)
    branch = a_inv.top_via.branch
    ack = (f"ACK sip:1002@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE[0]}:{ALICE[1]};branch={branch}\r\n"
           f"Max-Forwards: 70\r\nTo: <sip:1002@10.0.0.1>;tag=invented\r\nFrom: <sip:alice@10.0.0.1>;tag={a_inv.from_.tag}\r\n"
           f"Call-ID: {a_inv.call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
    net.send(ack, ALICE)
    net.advance(5)
    assert net.take(ALICE) == []  # no more 2xx retransmissions: the ACK counted
