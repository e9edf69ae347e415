"""Two pyVoIP phones call each other through callrouter, and sound really crosses the relay.

pyVoIP can write and read audio (8-bit unsigned PCM at 8 kHz, carried as PCMU/PCMA), which
the pjsua2 wheel cannot: alice plays a 600 Hz tone and bob a 1,000 Hz tone; each side must
hear the other's tone, measured by its energy at that frequency against the other one.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.interop.conftest import free_udp_port, require_module
from tests.server import NAMED_USERS

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
RATE = 8000


def tone(freq: float, seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (128 + 80 * np.sin(2 * np.pi * freq * t)).astype(np.uint8).tobytes()


def level_at(pcm: bytes, freq: float) -> float:
    """Energy of an 8-bit unsigned signal at `freq` (a single-bin DFT)."""
    x = np.frombuffer(pcm, dtype=np.uint8).astype(np.float64) - 128.0
    if len(x) == 0:
        return 0.0
    t = np.arange(len(x)) / RATE
    return float(abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) / len(x))


@pytest.fixture(scope="module")
def voip():
    require_module("pyVoIP", "install pyVoIP==1.6.8 (pip install -e '.[test]')")
    from pyVoIP.VoIP import CallState, PhoneStatus, VoIPPhone

    return VoIPPhone, PhoneStatus, CallState


def _phone(VoIPPhone, server, user, rtp_low, callback=None):
    phone = VoIPPhone("127.0.0.1", server.sip_port, user, NAMED_USERS[user][0], callCallback=callback,
                      myIP="127.0.0.1", sipPort=free_udp_port(), rtpPortLow=rtp_low, rtpPortHigh=rtp_low + 100)
    phone.sip.register_timeout = 10
    return phone


def _collect(call, seconds: float) -> bytes:
    got = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += call.read_audio(160, blocking=True)
    return bytes(got)


def test_a_tone_each_way_is_heard_at_the_other_end(start_server, voip):
    VoIPPhone, PhoneStatus, CallState = voip
    server = start_server()
    heard_by_bob: list[bytes] = []
    answered = threading.Event()
    bob_done = threading.Event()

    def bob_answers(call):
        try:
            call.answer()
            answered.set()
            call.write_audio(tone(1000, 3.0))
            heard_by_bob.append(_collect(call, 2.5))
        finally:
            bob_done.set()

    bob = _phone(VoIPPhone, server, "bob", 42000, bob_answers)
    alice = _phone(VoIPPhone, server, "alice", 42200)
    bob.start()
    alice.start()
    try:
        assert bob.get_status() == PhoneStatus.REGISTERED and alice.get_status() == PhoneStatus.REGISTERED
        call = alice.call(NAMED_USERS["bob"][1])  # bob's extension
        deadline = time.monotonic() + 15
        while call.state != CallState.ANSWERED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert call.state == CallState.ANSWERED, call.state
        assert answered.wait(5)
        call.write_audio(tone(600, 3.0))
        heard_by_alice = _collect(call, 2.5)
        assert bob_done.wait(10)
        call.hangup()
    finally:
        alice.stop()
        bob.stop()
        time.sleep(0.2)
    a, b = heard_by_alice, heard_by_bob[0]
    # Each side hears the far tone clearly and not its own (the relay did not loop it back).
    assert level_at(a, 1000) > 10 and level_at(a, 1000) > 5 * level_at(a, 600), (level_at(a, 1000), level_at(a, 600))
    assert level_at(b, 600) > 10 and level_at(b, 600) > 5 * level_at(b, 1000), (level_at(b, 600), level_at(b, 1000))
