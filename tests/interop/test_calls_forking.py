"""Issue 4, acceptance 2: a person with a desk phone and a soft client.

Bob has two devices ("bob", his desk phone, and "bob-soft", a soft client), each a SIPp UAS
registered under its own SIP username. Alice (a SIPp UAC) dials Bob's extension: both devices
must ring; the one that answers gets the call, the other must be CANCELled (its scenario only
completes through CANCEL -> 200, 487 -> ACK), and Alice gets the 200.
"""
from __future__ import annotations

import pytest

from tests.interop.conftest import free_udp_port, register_from, sipp_peer, wait_listening
from tests.server import NAMED_USERS, org_document

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

BOB_EXTENSION = NAMED_USERS["bob"][1]


@pytest.mark.parametrize("answering", ["bob", "bob-soft"])
def test_both_devices_ring_one_answers_the_other_is_cancelled(start_server, sipp, tmp_path, answering):
    server = start_server(org=org_document(extra_devices={"bob": ["bob-soft"]}))
    ringing = "bob-soft" if answering == "bob" else "bob"
    passwords = {"bob": NAMED_USERS["bob"][0], "bob-soft": "bob-soft-pw"}
    ports = {user: free_udp_port() for user in ("bob", "bob-soft", "alice")}
    for user, port in ports.items():
        register_from(server, user, "127.0.0.1", port, passwords.get(user))

    # The answering device waits 1.5 s before its 200, so the other has surely been rung.
    answerer = sipp_peer(answering, "call-uas-answer.xml", tmp_path, port=ports[answering], pause_ms=1500)
    ringer = sipp_peer(ringing, "call-uas-ring.xml", tmp_path, port=ports[ringing])
    try:
        wait_listening(ports[answering])
        wait_listening(ports[ringing])
        caller = sipp_peer("alice", "call-uac.xml", tmp_path, port=ports["alice"],
                           target=("127.0.0.1", server.sip_port), service=BOB_EXTENSION,
                           keys={"caller": "alice"}, pause_ms=300)
        caller_rc = caller.wait(30)
        answer_rc, ring_rc = answerer.wait(15), ringer.wait(15)
    finally:
        answerer.stop()
        ringer.stop()

    assert caller_rc == 0, caller.describe() + "\n" + server.log()
    finals = [m.status for m in caller.messages() if m.status and m.status >= 200]
    assert finals[0] == 200, finals  # the caller's INVITE was answered, by Bob
    assert answer_rc == 0, answerer.describe()
    assert ring_rc == 0, ringer.describe()

    # Both devices were offered the same call at the same time.
    invite_a, = answerer.requests("INVITE")
    invite_r, = ringer.requests("INVITE")
    assert invite_a.request_uri.startswith("sip:") and invite_r.request_uri.startswith("sip:")
    # The device that did not answer was told to stop ringing: CANCEL for its INVITE, then
    # the ACK for its 487 (a new transaction for the CANCEL, the INVITE's for the ACK).
    cancel, = ringer.requests("CANCEL")
    assert cancel.first("Call-ID") == invite_r.first("Call-ID")
    assert cancel.first("CSeq").split()[0] == invite_r.first("CSeq").split()[0]
    ack, = ringer.requests("ACK")
    assert ack.first("Call-ID") == invite_r.first("Call-ID")
    assert ringer.requests("BYE") == []
    # The answering device got the call's ACK and, when Alice hung up, its BYE.
    assert len(answerer.requests("ACK")) == 1 and len(answerer.requests("BYE")) == 1
    # Bob's two legs are separate dialogs of ours, neither the caller's.
    assert invite_a.first("Call-ID") != invite_r.first("Call-ID")
    alice_invite = next(m for m in caller.messages("sent") if m.method == "INVITE")
    assert alice_invite.first("Call-ID") not in (invite_a.first("Call-ID"), invite_r.first("Call-ID"))
