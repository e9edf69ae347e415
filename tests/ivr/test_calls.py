"""Callers in auto attendants (ivr.calls) driven through the real B2BUA with a fake clock and a
fake media worker: the call is answered with our SDP, the greeting plays, a key transfers the
call and the B2BUA bridges it; SIP INFO digits count like the worker's; no input hangs up."""
from __future__ import annotations

import numpy as np
import pytest

from ivr.attendant import build_attendant
from ivr.calls import AttendantCalls
from ivr.menu import DirectorySnapshot
from routing.route import CallerId, RunAutoAttendant
from sipcore.message import parse
from tests.sipcore.test_b2bua import ALICE, DESK, SDP, SOFT, Net, answer, in_dialog, invite, ring_bob


class Media:
    """Records what the call side asks of the media worker."""

    advertise = "10.0.0.1"

    def __init__(self):
        self.log = []
        self.clips = {}
        self.open = set()

    def open_nowait(self):
        ch = len(self.log) + 1
        self.open.add(ch)
        return ch, 30000 + 2 * ch

    def port_of(self, ch):
        return 30000 + 2 * ch

    def connect(self, ch, remote, codec, event_pt):
        self.log.append(("connect", ch, remote, codec, event_pt))

    def register_clip(self, clip_id, pcm):
        self.clips[clip_id] = pcm

    def play(self, ch, ids, token):
        self.log.append(("play", ch, tuple(ids), token))

    def stop_playback(self, ch):
        self.log.append(("stop", ch))

    def close(self, ch):
        self.open.discard(ch)
        self.log.append(("close", ch))

    def plays(self):
        return [entry for entry in self.log if entry[0] == "play"]


DOCUMENT = {
    "id": "aa1", "name": "Main menu", "locationId": "loc", "enabled": True, "language": "en",
    "businessHoursMenu": {"greeting": "DEFAULT", "extensionEnabled": False, "keyConfigurations": [
        {"key": "1", "action": "TRANSFER_WITHOUT_PROMPT", "value": "1002", "description": "sales"}]},
    "afterHoursMenu": {"greeting": "DEFAULT", "keyConfigurations": []},
    "noInput": {"timeoutSeconds": 5, "repeats": 1, "finalAction": {"action": "EXIT"}},
}


@pytest.fixture
def world():
    net = Net(route=RunAutoAttendant("aa1", "loc", "Main menu", CallerId("+15125550101", "Alice"), "+15125550100"))
    net.bind("bob-desk", DESK)
    net.bind("bob-soft", SOFT)
    media = Media()
    attendant = build_attendant(DOCUMENT, "America/Chicago", {})
    transfers = []

    def route_for(att, call, out):
        transfers.append(out)
        return ring_bob() if out.target == "1002" else None

    calls = AttendantCalls(
        b2bua=net.b2b, media=media, send=net._collect, attendant={"aa1": attendant}.get,
        menu_directory=lambda att: DirectorySnapshot(["1002"], ["1002"], [], []), transfer_route=route_for,
        clip=lambda ref, lang: (f"{ref.kind}:{ref.value}", np.zeros(160, np.int16)), clock=lambda: net.now)
    net.b2b.auto_attendant = calls
    net.b2b.application_timers = calls
    return net, media, calls, transfers


def call_in(net):
    raw = invite("+15125550100")
    net.send(raw, ALICE)
    ok, = [m for m in net.take(ALICE) if m.status == 200]
    a_inv = parse(raw)
    dlg = dict(a_tag=a_inv.from_.tag, remote_tag=ok.to.tag, call_id=a_inv.call_id)
    net.send(in_dialog(None, "ACK", 1, ALICE, **dlg), ALICE)
    return ok, dlg


def test_the_attendant_answers_plays_the_greeting_and_a_key_transfers(world):
    net, media, calls, transfers = world
    ok, dlg = call_in(net)
    assert b"m=audio 30002 RTP/AVP 0" in ok.body and b"c=IN IP4 10.0.0.1" in ok.body
    connect, play = media.log[0], media.log[1]
    assert connect[:4] == ("connect", 1, ("PHONE", 4000), "PCMU")
    assert "PROMPT:greeting_business_hours" in play[2] and "TEXT:sales" in play[2]
    assert net.take(DESK) == []  # nobody rings while the caller is in the menu
    calls.on_media_event(type("Digit", (), {"ch": 1, "digit": "1"})())
    assert transfers and transfers[0].target == "1002"
    soft_inv, = net.requests(SOFT, "INVITE")
    net.send(answer(soft_inv, 200, "soft", SOFT, SDP), SOFT)
    reinvite, = net.requests(ALICE, "INVITE")
    assert b"RELAY-OFFER-FROM-b" in reinvite.body
    assert ("close", 1) in media.log and calls.calls == {} and calls.completed_transfers == 1


def test_sip_info_digits_drive_the_menu_too(world):
    net, media, calls, transfers = world
    ok, dlg = call_in(net)
    net.send(in_dialog(None, "INFO", 2, ALICE, b"Signal=1\r\nDuration=160\r\n", **dlg), ALICE)
    assert [m.status for m in net.take(ALICE)] == [200]
    assert transfers and net.requests(SOFT, "INVITE")


def test_no_input_repeats_the_menu_then_hangs_up(world):
    net, media, calls, transfers = world
    ok, dlg = call_in(net)
    state = next(iter(calls.calls.values()))
    calls.on_media_event(type("PlaybackDone", (), {"ch": 1, "token": state.token})())
    net.advance(5.1)
    assert len(media.plays()) == 2  # the menu again
    calls.on_media_event(type("PlaybackDone", (), {"ch": 1, "token": state.token})())
    net.advance(5.1)
    if not net.inbox.get(ALICE):  # a goodbye prompt first, then the hang-up
        assert len(media.plays()) == 3
        calls.on_media_event(type("PlaybackDone", (), {"ch": 1, "token": state.token})())
    bye = net.requests(ALICE, "BYE")
    assert bye and ("close", 1) in media.log and net.records[-1].hangup_by == "system"


def test_a_transfer_nobody_takes_returns_to_the_menu(world):
    net, media, calls, transfers = world
    ok, dlg = call_in(net)
    calls.on_media_event(type("Digit", (), {"ch": 1, "digit": "1"})())
    plays_before = len(media.plays())
    for addr in (DESK, SOFT):
        inv, = net.requests(addr, "INVITE")
        net.send(answer(inv, 486, "busy"), addr)
    assert calls.calls and len(media.plays()) > plays_before  # the fallback: back to the menu


def test_the_relayed_media_continues_the_session_the_attendant_answered():
    """After a transfer the caller gets a re-INVITE whose o= is the attendant's session, one
    version on (RFC 3264 §8), not a new session."""
    from sipcore.mediasession import RelayedMedia
    from sipcore.sdp import LegOrigin, make_answer, parse as parse_sdp

    class Control:
        address = "10.0.0.1"

        def open_session(self, call_id):
            return "s1", {"a": 20000, "b": 20002}

        def set_remote(self, *args):
            pass

        def close_session(self, sid):
            pass

    phone = (b"v=0\r\no=- 7 7 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")
    origin = LegOrigin("10.0.0.1")
    first = make_answer(parse_sdp(phone), "10.0.0.1", 30002, origin)
    media = RelayedMedia(Control(), "c1")
    media.adopt_origin("a", origin)
    media.offer("a", phone)
    reinvite = parse_sdp(media.offer("b", phone.replace(b"10.0.0.2", b"10.0.0.3")))
    assert reinvite.origin.session_id == first.origin.session_id
    assert int(reinvite.origin.session_version) == int(first.origin.session_version) + 1
    assert reinvite.media[0].port == 20000
