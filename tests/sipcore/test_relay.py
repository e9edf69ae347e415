"""The media relay, through its own process, with real UDP sockets on 127.0.0.1.

Each "phone" is a plain UDP socket. A packet that must *not* arrive is checked by sending a
good one right after it and seeing that the good one is the next to arrive.
"""
from __future__ import annotations

import asyncio
import errno
import os
import random
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from sipcore.relay import WORKER, MediaRelay, RelayDied, RelayError, RelayFull
from sipcore.rtp import RtpPacket

HOST = "127.0.0.1"
GAP = 1.0  # long enough that a starved relay process cannot see the impostor "after" the gap


def port_base(span: int) -> int:
    """An even base below the ephemeral range; the relay skips ports someone else holds."""
    return random.randrange(20000, 30000 - span, 2)


class Phone:
    def __init__(self, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.addr = self.sock.getsockname()
        self.seq = 0

    def send(self, port: int, payload: bytes | None = None, raw: bytes | None = None) -> bytes:
        if raw is None:
            self.seq += 1
            raw = RtpPacket(payload_type=0, sequence_number=self.seq, timestamp=160 * self.seq,
                            ssrc=self.addr[1], payload=payload or os.urandom(160)).serialize()
        self.sock.sendto(raw, (HOST, port))
        return raw

    def recv(self, timeout: float = 2.0) -> tuple[bytes, tuple] | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recvfrom(4096)
        except (socket.timeout, BlockingIOError):
            return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def phones():
    made: list[Phone] = []

    def make(port: int = 0) -> Phone:
        phone = Phone(port)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()


@pytest.fixture
async def relay():
    base = port_base(200)
    r = MediaRelay(HOST, base, base + 199, relatch_gap=GAP)
    await r.start()
    yield r
    await r.stop()


async def call(relay: MediaRelay, a: Phone, b: Phone):
    session = await relay.allocate("call-1@test")
    await relay.update(session.id, "a", a.addr)
    await relay.update(session.id, "b", b.addr)
    return session


def expect(phone: Phone, data: bytes, source_port: int) -> None:
    got = phone.recv()
    assert got is not None, "nothing arrived"
    assert got == (data, (HOST, source_port))


async def test_allocate_gives_even_rtp_ports_with_their_rtcp_ports(relay):
    s1 = await relay.allocate("one")
    s2 = await relay.allocate("two")
    ports = [s1.leg_a.local_port, s1.leg_b.local_port, s2.leg_a.local_port, s2.leg_b.local_port]
    assert len(set(ports)) == 4 and s1.id != s2.id
    for port in ports:
        assert port % 2 == 0 and relay.port_min <= port < relay.port_max
        for taken in (port, port + 1):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with pytest.raises(OSError) as caught:
                probe.bind((HOST, taken))
            probe.close()
            assert caught.value.errno == errno.EADDRINUSE
    assert s1.call_id == "one" and relay.advertise == HOST


async def test_media_flows_both_ways(relay, phones):
    a, b = phones(), phones()
    s = await call(relay, a, b)
    sent_ab, sent_ba = [], []
    for _ in range(20):
        sent_ab.append(a.send(s.leg_a.local_port))
        expect(b, sent_ab[-1], s.leg_b.local_port)
        sent_ba.append(b.send(s.leg_b.local_port))
        expect(a, sent_ba[-1], s.leg_a.local_port)
    stats = await relay.stats(s.id)
    assert stats.a_to_b_packets == stats.b_to_a_packets == 20
    assert stats.a_to_b_bytes == sum(map(len, sent_ab)) and stats.b_to_a_bytes == sum(map(len, sent_ba))
    assert stats.a.latched == a.addr and stats.b.latched == b.addr
    assert stats.a.remote == a.addr and stats.a.dropped_invalid == stats.a.dropped_foreign == 0


async def test_latches_to_a_phone_behind_nat(relay, phones):
    a_sdp, a_nat, b = phones(), phones(), phones()   # A's SDP names a private address it is not at
    s = await call(relay, a_sdp, b)
    early = b.send(s.leg_b.local_port)
    expect(a_sdp, early, s.leg_a.local_port)         # before A sends, the SDP address is all we have
    first = a_nat.send(s.leg_a.local_port)
    expect(b, first, s.leg_b.local_port)
    reply = b.send(s.leg_b.local_port)
    expect(a_nat, reply, s.leg_a.local_port)         # now media follows where A really is
    assert a_sdp.recv(0.2) is None
    assert (await relay.stats(s.id)).a.latched == a_nat.addr


async def test_another_source_is_ignored_until_the_latched_one_falls_silent(relay, phones):
    a1, a2, b = phones(), phones(), phones()
    s = await call(relay, a1, b)
    expect(b, a1.send(s.leg_a.local_port), s.leg_b.local_port)
    a2.send(s.leg_a.local_port)                      # within the gap: an impostor, dropped
    good = a1.send(s.leg_a.local_port)
    expect(b, good, s.leg_b.local_port)
    assert (await relay.stats(s.id)).a.dropped_foreign == 1
    await asyncio.sleep(GAP + 0.15)                  # a1 silent longer than the gap
    moved = a2.send(s.leg_a.local_port)
    expect(b, moved, s.leg_b.local_port)
    reply = b.send(s.leg_b.local_port)
    expect(a2, reply, s.leg_a.local_port)
    stats = await relay.stats(s.id)
    assert stats.a.latched == a2.addr and stats.a.received == 3


async def test_a_new_sdp_address_takes_over_at_once(relay, phones):
    a1, a2, a3, b = phones(), phones(), phones(), phones()
    s = await call(relay, a1, b)
    expect(b, a1.send(s.leg_a.local_port), s.leg_b.local_port)
    await relay.update(s.id, "a", a2.addr)           # re-INVITE: A moved
    to_new = b.send(s.leg_b.local_port)
    expect(a2, to_new, s.leg_a.local_port)
    from_nat = a3.send(s.leg_a.local_port)           # A's first packet from its new place, via NAT
    expect(b, from_nat, s.leg_b.local_port)
    assert (await relay.stats(s.id)).a.latched == a3.addr
    assert a1.recv(0.1) is None


async def test_hold_without_an_address_sends_the_held_leg_nothing(relay, phones):
    a, b = phones(), phones()
    s = await call(relay, a, b)
    expect(b, a.send(s.leg_a.local_port), s.leg_b.local_port)
    await relay.update(s.id, "a", None)               # A holds with c=0.0.0.0
    b.send(s.leg_b.local_port)                        # dropped: A asked for nothing
    music = a.send(s.leg_a.local_port)                # A may still send (music on hold)
    expect(b, music, s.leg_b.local_port)
    assert a.recv(0.2) is None
    await relay.update(s.id, "a", a.addr)             # resume
    back = b.send(s.leg_b.local_port)
    expect(a, back, s.leg_a.local_port)
    stats = await relay.stats(s.id)
    assert stats.b.dropped_no_destination == 1 and stats.b_to_a_packets == 1


async def test_rtcp_is_relayed_between_the_odd_ports(relay, phones):
    b_rtp = b_rtcp = None
    while b_rtcp is None:                             # B needs RTP on an even port, RTCP on the next
        port = random.randrange(31000, 32000, 2)
        try:
            b_rtp, b_rtcp = phones(port), phones(port + 1)
        except OSError:
            continue
    a, a_rtcp = phones(), phones()
    s = await call(relay, a, b_rtp)
    report = bytes([0x81, 200, 0, 12]) + os.urandom(48)   # a sender report
    a_rtcp.send(s.leg_a.local_port + 1, raw=report)
    expect(b_rtcp, report, s.leg_b.local_port + 1)        # default: B's RTP port + 1
    # B's RTCP latches A's RTCP source, not A's RTP address + 1.
    back = bytes([0x81, 201, 0, 7]) + os.urandom(28)
    b_rtcp.send(s.leg_b.local_port + 1, raw=back)
    expect(a_rtcp, back, s.leg_a.local_port + 1)
    explicit = phones()
    await relay.update(s.id, "b", b_rtp.addr, rtcp=explicit.addr)   # a=rtcp in B's new SDP
    again = a_rtcp.send(s.leg_a.local_port + 1, raw=report)
    expect(explicit, again, s.leg_b.local_port + 1)
    stats = await relay.stats(s.id)
    assert stats.a.rtcp_packets == 2 and stats.b.rtcp_packets == 1
    assert stats.a.latched_rtcp == a_rtcp.addr and stats.a.latched is None


async def test_garbage_is_dropped_and_never_latches(relay, phones):
    a, b, stranger = phones(), phones(), phones()
    s = await call(relay, a, b)
    for junk in (b"hello, relay", b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12), b"\x80\x00\x00",
                 bytes(200), b""):
        stranger.send(s.leg_a.local_port, raw=junk)
    stranger.send(s.leg_a.local_port + 1, raw=b"\x80\xc8\x00")   # RTCP too short
    good = a.send(s.leg_a.local_port)
    expect(b, good, s.leg_b.local_port)
    a.send(s.leg_a.local_port, raw=b"\x40" + bytes(20))           # version 1, even from A
    good = a.send(s.leg_a.local_port)
    expect(b, good, s.leg_b.local_port)
    stats = await relay.stats(s.id)
    assert stats.a.latched == a.addr and stats.a.latched_rtcp is None
    assert stats.a.dropped_invalid == 7 and stats.a.received == 2


async def test_release_returns_final_counts_and_frees_the_ports(relay, phones):
    a, b = phones(), phones()
    s = await call(relay, a, b)
    expect(b, a.send(s.leg_a.local_port), s.leg_b.local_port)
    final = await relay.release(s.id)
    assert final.a_to_b_packets == 1 and final.call_id == "call-1@test"
    for port in (s.leg_a.local_port, s.leg_a.local_port + 1, s.leg_b.local_port, s.leg_b.local_port + 1):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, port))
        probe.close()
    with pytest.raises(RelayError, match="no relay session"):
        await relay.stats(s.id)
    with pytest.raises(RelayError, match="no relay session"):
        await relay.release(s.id)


async def test_exhausted_ports_raise_relay_full_until_a_call_ends():
    base = port_base(8)
    small = MediaRelay(HOST, base, base + 7)          # even ports base..base+6: two calls
    await small.start()
    try:
        assert small.capacity == 2
        first = await small.allocate("1")
        await small.allocate("2")
        with pytest.raises(RelayFull) as caught:
            await small.allocate("3")
        assert caught.value.status == 503 and "no free relay port" in caught.value.reason
        await small.release(first.id)
        again = await small.allocate("4")
        assert {again.leg_a.local_port, again.leg_b.local_port} == {first.leg_a.local_port, first.leg_b.local_port}
    finally:
        await small.stop()


async def test_a_dead_relay_process_is_reported_not_waited_for():
    base = port_base(40)
    exits: list[str] = []
    r = MediaRelay(HOST, base, base + 39, on_exit=exits.append)
    await r.start()
    s = await r.allocate("x")
    os.kill(r.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(RelayDied, match="relay"):
        await r.stats(s.id)
    assert time.monotonic() - started < 1.0
    for _ in range(50):
        if exits:
            break
        await asyncio.sleep(0.01)
    assert not r.alive and len(exits) == 1
    assert exits[0] in ("relay process exited: killed by SIGKILL", "relay process closed its control channel")
    with pytest.raises(RelayDied) as caught:
        await r.allocate("y")
    assert caught.value.status == 503
    await r.stop()


async def test_a_stuck_relay_process_times_out():
    base = port_base(40)
    r = MediaRelay(HOST, base, base + 39, timeout=0.3)
    await r.start()
    s = await r.allocate("x")
    os.kill(r.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RelayError, match="did not answer 'stats' within 0.3 s"):
            await r.stats(s.id)
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(r.pid, signal.SIGCONT)
    assert (await r.stats(s.id)).session_id == s.id   # the late answer is not mistaken for this one
    await r.stop()


async def test_stop_ends_the_process_and_closes_every_port(phones):
    base = port_base(40)
    r = MediaRelay(HOST, base, base + 39)
    await r.start()
    s = await r.allocate("x")
    pid = r.pid
    await r.stop()
    assert not r.alive
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    phones(s.leg_a.local_port)                     # bindable again
    with pytest.raises(RelayDied):
        await r.allocate("y")


async def test_bad_arguments_are_refused(relay):
    with pytest.raises(ValueError, match="wildcard"):
        MediaRelay("0.0.0.0", 20000, 20100)
    assert MediaRelay("0.0.0.0", 20000, 20100, advertise="203.0.113.5").advertise == "203.0.113.5"
    with pytest.raises(ValueError, match="IP address"):
        MediaRelay("localhost", 20000, 20100)
    with pytest.raises(ValueError, match="ports"):
        MediaRelay(HOST, 20000, 20001)
    with pytest.raises(ValueError, match="ports"):
        MediaRelay(HOST, 20000, 70000)
    s = await relay.allocate("x")
    with pytest.raises(ValueError, match="leg"):
        await relay.update(s.id, "c", (HOST, 4000))
    with pytest.raises(ValueError, match="port"):
        await relay.update(s.id, "a", (HOST, 0))
    with pytest.raises(RelayError, match="IPv6"):
        await relay.update(s.id, "a", ("2001:db8::1", 4000))
    await relay.update(s.id, "a", ("localhost", 4000))   # SDP may name a host: resolved here
    assert (await relay.stats(s.id)).a.remote == ("127.0.0.1", 4000)
    assert (await relay.ping())["sessions"] == 1


def test_replies_wait_for_a_slow_reader_instead_of_ending_the_relay():
    """Thousands of requests in flight, none read until the end: the relay process queues
    its replies until the control socket has room, and answers every one."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    base = port_base(40)
    proc = subprocess.Popen([sys.executable, "-I", str(WORKER), str(theirs.fileno()), HOST, str(base),
                             str(base + 39), "1.0"], pass_fds=(theirs.fileno(),))
    theirs.close()
    try:
        mine.settimeout(5)
        assert json.loads(mine.recv(4096))["ready"]
        count = 3000
        for i in range(count):
            mine.send(json.dumps({"op": "ping", "id": i}).encode())
        time.sleep(0.3)      # let the relay hit a full socket
        assert proc.poll() is None
        ids = [json.loads(mine.recv(4096))["id"] for _ in range(count)]
        assert ids == list(range(count))
        mine.send(json.dumps({"op": "nonsense", "id": "x"}).encode())
        assert json.loads(mine.recv(4096)) == {"error": "bad-request", "reason": "unknown op 'nonsense'", "id": "x"}
        mine.send(b"not json")
        assert json.loads(mine.recv(4096))["error"] == "failed"
    finally:
        mine.close()      # the relay exits when its parent's end closes
        assert proc.wait(timeout=5) == 0


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_relays_over_ipv6():
    base = port_base(40)
    r = MediaRelay("::1", base, base + 39)
    await r.start()
    a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        a.bind(("::1", 0))
        b.bind(("::1", 0))
        b.settimeout(2)
        s = await r.allocate("v6")
        await r.update(s.id, "b", ("::1", b.getsockname()[1]))
        packet = RtpPacket(payload_type=8, payload=b"\xd5" * 160).serialize()
        a.sendto(packet, ("::1", s.leg_a.local_port))
        data, source = b.recvfrom(4096)
        assert data == packet and source[:2] == ("::1", s.leg_b.local_port)
        stats = await r.release(s.id)
        assert stats.a.latched == ("::1", a.getsockname()[1]) and stats.a_to_b_packets == 1
        with pytest.raises(RelayError, match="IPv4"):
            s2 = await r.allocate("v4 remote")
            await r.update(s2.id, "a", ("192.0.2.1", 4000))
    finally:
        a.close()
        b.close()
        await r.stop()


async def test_an_address_this_machine_does_not_have_fails_at_start():
    exits: list[str] = []
    r = MediaRelay("192.0.2.200", 20000, 20100, on_exit=exits.append)   # TEST-NET-1: not ours
    with pytest.raises(RelayDied, match="cannot bind 192.0.2.200"):
        await r.start()
    assert not r.alive and exits == ["cannot bind 192.0.2.200: Cannot assign requested address"]
    with pytest.raises(RelayDied):
        await r.allocate("x")
    await r.stop()


async def test_hundreds_of_concurrent_control_requests_all_complete():
    """The control socket's queue holds only a few messages; requests beyond it wait their
    turn in order instead of stranding (asyncio keeps one writer callback per descriptor)."""
    import asyncio

    from sipcore.relay import MediaRelay

    relay = MediaRelay("127.0.0.1", 42000, 43998, advertise="127.0.0.1", timeout=5.0)
    await relay.start()
    try:
        async def cycle(n):
            session = await relay.allocate(f"c{n}")
            await asyncio.gather(relay.update(session.id, "a", ("127.0.0.1", 40000 + 2 * n)),
                                 relay.update(session.id, "b", ("127.0.0.1", 41000 + 2 * n)))
            return await relay.release(session.id)

        results = await asyncio.wait_for(asyncio.gather(*(cycle(n) for n in range(400))), 20)
        assert len(results) == 400
        assert (await relay.ping())["sessions"] == 0
    finally:
        await relay.stop()
