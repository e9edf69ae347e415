"""IVR media through its own worker process, with real UDP sockets on 127.0.0.1.

Each "phone" is a plain UDP socket that records what it receives (with arrival times) and
sends RTP built with sipcore.rtp: audio frames, RFC 4733 key presses, in-band DTMF tones
from ivr.dtmf_tones, and garbage.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import time

import numpy as np
import pytest

from ivr.dtmf_tones import key_sequence, to_pcm
from ivr.media import (ChannelFailed, Digit, IvrDied, IvrError, IvrFull, IvrMedia, PlaybackDone,
                       Recorded)
from sipcore import g711
from sipcore.rtp import RtpPacket, RtpSender, TelephoneEvent

HOST = "127.0.0.1"
EVENT_PT = 101
FRAME = 160


def port_base(span: int) -> int:
    """An even base above the ephemeral range and the ports other tests and benchmarks use."""
    return random.randrange(62000, 65400 - span, 2)


async def started(span: int, host: str = HOST, **options) -> IvrMedia:
    """An IvrMedia on `span` ports that got every channel it asked for (a range that another
    program happens to hold is given up for another)."""
    for _ in range(5):
        base = port_base(span)
        media = IvrMedia(host, base, base + span - 1, **options)
        await media.start()
        if (await media.stats()).channels == min(media.capacity, media.spare):
            return media
        await media.stop()
    raise AssertionError(f"no free range of {span} ports found")


class Phone:
    """A UDP socket on the event loop: what arrives is kept with its arrival time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.received: list[tuple[float, bytes, tuple]] = []
        self.rtp = RtpSender(0)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        while True:
            try:
                data, src = self.sock.recvfrom(4096)
            except BlockingIOError:
                return
            self.received.append((time.monotonic(), data, src))

    def packets(self) -> list[RtpPacket]:
        return [RtpPacket.parse(data) for _, data, _ in self.received]

    def send(self, port: int, data: bytes) -> None:
        self.sock.sendto(data, (HOST, port))

    async def send_audio(self, port: int, codes: bytes, pace: float = 0.020) -> None:
        """G.711 bytes as 20 ms packets, one every `pace` seconds."""
        for i in range(0, len(codes), FRAME):
            self.send(port, self.rtp.packet(codes[i:i + FRAME]))
            await asyncio.sleep(pace)

    async def press(self, port: int, digit: str, duration: int = 800) -> None:
        """One RFC 4733 key press (end packet three times), packets 20 ms apart."""
        for packet in self.rtp.key_press(digit, EVENT_PT, duration=duration):
            self.send(port, packet)
            await asyncio.sleep(0.020)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class Events(list):
    async def wait(self, predicate, count: int = 1, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self if predicate(e)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout} s for {count} events, got {found} (all: {list(self)})")
            await asyncio.sleep(0.01)


@pytest.fixture
async def phones():
    made: list[Phone] = []

    def make() -> Phone:
        made.append(Phone())
        return made[-1]

    yield make
    for phone in made:
        phone.close()


@pytest.fixture
async def ivr():
    events = Events()
    media = await started(100, on_event=events.append, spare=4)
    media.events = events
    yield media
    await media.stop()


def noise(samples: int, seed: int, level: int = 3000) -> np.ndarray:
    return to_pcm(np.random.default_rng(seed).normal(0.0, level, samples))


def frames_of(codes: bytes) -> list[bytes]:
    return [codes[i:i + FRAME] for i in range(0, len(codes), FRAME)]


def find_run(payloads: list[bytes], frames: list[bytes]) -> int:
    """Where `frames` appear consecutively among `payloads` (asserts they do)."""
    for start in range(len(payloads) - len(frames) + 1):
        if payloads[start:start + len(frames)] == frames:
            return start
    raise AssertionError(f"the {len(frames)} frames were not sent consecutively")


async def test_clip_plays_with_rtp_numbering_timing_and_content(ivr, phones):
    phone = phones()
    clip = noise(25 * FRAME - 37, seed=1)          # not whole frames: the last is padded
    ivr.register_clip("hello", clip)
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    ivr.play(ch, ["hello"], token=7)
    await ivr.events.wait(lambda e: isinstance(e, PlaybackDone))
    await asyncio.sleep(0.3)
    assert [e for e in ivr.events if isinstance(e, PlaybackDone)] == [PlaybackDone(ch, 7)]

    assert all(src == (HOST, port) for _, _, src in phone.received)
    packets = phone.packets()
    assert len({p.ssrc for p in packets}) == 1
    assert all(p.payload_type == 0 for p in packets)
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    for a, b in zip(packets, packets[1:]):
        assert b.sequence_number == (a.sequence_number + 1) & 0xFFFF
        assert b.timestamp == (a.timestamp + FRAME) & 0xFFFFFFFF

    padded = np.concatenate([clip, np.zeros(37, dtype=np.int16)])
    expected = frames_of(g711.ulaw_encode(padded).tobytes())
    payloads = [p.payload for p in packets]
    start = find_run(payloads, expected)
    # Comfort silence before and after, nothing else.
    silence = bytes([g711.ULAW_SILENCE]) * FRAME
    assert set(payloads[:start]) <= {silence}
    assert set(payloads[start + len(expected):]) == {silence}
    assert np.array_equal(g711.ulaw_decode(b"".join(payloads[start:start + 25]))[:len(clip)],
                          g711.ulaw_decode(g711.ulaw_encode(clip)))
    # Paced by absolute deadlines: never early, and not far behind on a busy machine.
    times = [t for t, _, _ in phone.received[start:start + 25]]
    assert 24 * 0.020 - 0.005 <= times[-1] - times[0] <= 24 * 0.020 + 0.3


async def test_clips_back_to_back_and_alaw(ivr, phones):
    phone = phones()
    a, b = noise(10 * FRAME, seed=2), noise(6 * FRAME, seed=3)
    ivr.register_clip("a", a)
    ivr.register_clip("b", b)
    ch, _ = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMA", None)
    ivr.play(ch, ["a", "b", "a"], token=1)
    await ivr.events.wait(lambda e: isinstance(e, PlaybackDone))
    packets = phone.packets()
    assert {p.payload_type for p in packets} == {8}
    payloads = [p.payload for p in packets]
    expected = frames_of(g711.alaw_encode(np.concatenate([a, b, a])).tobytes())
    find_run(payloads, expected)
    assert clip_silence_only(payloads, expected, g711.ALAW_SILENCE)


def clip_silence_only(payloads: list[bytes], expected: list[bytes], silence_code: int) -> bool:
    start = find_run(payloads, expected)
    rest = payloads[:start] + payloads[start + len(expected):]
    return set(rest) <= {bytes([silence_code]) * FRAME}


async def test_play_replaces_and_stop_playback(ivr, phones):
    phone = phones()
    long, short = noise(100 * FRAME, seed=4), noise(8 * FRAME, seed=5)
    ivr.register_clip("long", long)
    ivr.register_clip("short", short)
    ch, _ = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    ivr.play(ch, ["long"], token=1)
    await asyncio.sleep(0.3)
    ivr.play(ch, ["short"], token=2)
    await ivr.events.wait(lambda e: isinstance(e, PlaybackDone))
    payloads = [p.payload for p in phone.packets()]
    long_frames = frames_of(g711.ulaw_encode(long).tobytes())
    short_frames = frames_of(g711.ulaw_encode(short).tobytes())
    cut = find_run(payloads, short_frames)
    played = payloads[:cut]
    first = played.index(long_frames[0])
    assert played[first:] == long_frames[:cut - first]          # the long clip, cut short
    assert 5 <= cut - first < 100

    ivr.play(ch, ["long"], token=3)
    await asyncio.sleep(0.2)
    ivr.stop_playback(ch)
    await asyncio.sleep(0.4)
    assert [e for e in ivr.events if isinstance(e, PlaybackDone)] == [PlaybackDone(ch, 2)]
    tail = [p.payload for p in phone.packets()][-5:]
    assert set(tail) == {bytes([g711.ULAW_SILENCE]) * FRAME}


async def test_rfc4733_presses_give_one_digit_each(ivr, phones):
    phone = phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    silence = bytes([g711.ULAW_SILENCE]) * FRAME * 5
    for digit in "12#1":
        await phone.send_audio(port, silence)
        packets = phone.rtp.key_press(digit, EVENT_PT)
        for packet in packets:
            phone.send(port, packet)
            await asyncio.sleep(0.020)
        for packet in packets[-3:]:                       # the end packets again, late
            phone.send(port, packet)
    await phone.send_audio(port, silence)
    digits = await ivr.events.wait(lambda e: isinstance(e, Digit), count=4)
    await asyncio.sleep(0.4)
    digits = [e for e in ivr.events if isinstance(e, Digit)]
    assert [(d.ch, d.digit, d.source) for d in digits] == [(ch, k, "rfc4733") for k in "12#1"]
    assert all(abs(d.at - time.monotonic()) < 10 for d in digits)
    assert (await ivr.stats()).digits_rfc4733 >= 4


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_inband_tones_give_digits(ivr, phones, codec):
    phone = phones()
    phone.rtp = RtpSender(0 if codec == "PCMU" else 8)
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, codec, None)
    tones = to_pcm(key_sequence("159#0", on_samples=800, off_samples=800, lead_samples=1600))
    codes = g711.encode(np.concatenate([tones, np.zeros(1600, np.int16)]), codec).tobytes()
    await phone.send_audio(port, codes, pace=0.010)      # twice real time: two frames a tick
    await ivr.events.wait(lambda e: isinstance(e, Digit), count=5)
    await asyncio.sleep(0.3)
    digits = [e for e in ivr.events if isinstance(e, Digit)]
    assert [(d.ch, d.digit, d.source) for d in digits] == [(ch, k, "inband") for k in "159#0"]


async def test_press_sent_both_ways_gives_one_digit(ivr, phones):
    phone = phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    events = RtpSender(EVENT_PT, ssrc=phone.rtp.ssrc)
    for _ in range(2):                                    # two presses of the same key
        tone = to_pcm(key_sequence("5", on_samples=960, off_samples=1600, lead_samples=0))
        codes = g711.ulaw_encode(tone).tobytes()
        presses = events.key_press("5", EVENT_PT, duration=960)
        for i, frame in enumerate(frames_of(codes)):
            phone.send(port, phone.rtp.packet(frame))
            if i < len(presses):
                phone.send(port, presses[i])
            await asyncio.sleep(0.020)
        for packet in presses[len(frames_of(codes)):]:
            phone.send(port, packet)
    await asyncio.sleep(0.5)
    digits = [e for e in ivr.events if isinstance(e, Digit)]
    assert [d.digit for d in digits] == ["5", "5"], digits
    stats = await ivr.stats()
    assert stats.digits == 2


async def test_recording_returns_the_audio_sent(ivr, phones):
    phone = phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    await phone.send_audio(port, bytes([g711.ULAW_SILENCE]) * FRAME * 3)
    ivr.record(ch, 5.0, token=11)
    await asyncio.sleep(0.1)
    audio = noise(40 * FRAME, seed=6)
    await phone.send_audio(port, g711.ulaw_encode(audio).tobytes())
    await asyncio.sleep(0.1)
    ivr.stop_recording(ch)
    [recorded] = await ivr.events.wait(lambda e: isinstance(e, Recorded))
    assert recorded.ch == ch and recorded.token == 11
    assert np.array_equal(recorded.pcm, g711.ulaw_decode(g711.ulaw_encode(audio)))

    # max_seconds ends a recording by itself, with that much audio.
    ivr.record(ch, 0.2, token=12)
    await asyncio.sleep(0.1)
    more = noise(30 * FRAME, seed=7)
    await phone.send_audio(port, g711.ulaw_encode(more).tobytes())
    [second] = await ivr.events.wait(lambda e: isinstance(e, Recorded) and e.token == 12)
    assert np.array_equal(second.pcm, g711.ulaw_decode(g711.ulaw_encode(more[:10 * FRAME])))


async def test_close_frees_the_ports(ivr):
    ch, port = ivr.open_nowait()
    ivr.close(ch)
    ivr.close(ch)                         # twice is harmless
    deadline = time.monotonic() + 3
    while True:
        try:
            for p in (port, port + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind((HOST, p))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
    with pytest.raises(ValueError, match="not open"):
        ivr.play(ch, [], token=1)


async def test_full_raises_ivr_full_until_a_channel_closes():
    media = await started(6, on_event=lambda e: None)    # ports for 3 channels
    try:
        assert media.capacity == 3
        opened = [media.open_nowait() for _ in range(3)]
        assert len({port for _, port in opened}) == 3
        with pytest.raises(IvrFull) as info:
            media.open_nowait()
        assert info.value.status == 503
        media.close(opened[0][0])
        deadline = time.monotonic() + 3
        while True:
            try:
                media.open_nowait()
                break
            except IvrFull:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    finally:
        await media.stop()


async def test_worker_death_fails_channels_without_hanging(ivr, phones):
    ch1, _ = ivr.open_nowait()
    ch2, _ = ivr.open_nowait()
    ivr.connect(ch1, phones().addr, "PCMU", None)
    os.kill(ivr.pid, signal.SIGKILL)
    failed = await ivr.events.wait(lambda e: isinstance(e, ChannelFailed), count=2)
    assert {e.ch for e in failed} == {ch1, ch2}
    assert "SIGKILL" in failed[0].reason
    assert not ivr.alive
    with pytest.raises(IvrDied) as info:
        ivr.open_nowait()
    assert isinstance(info.value, IvrFull) and info.value.status == 503
    ivr.play(ch1, [], token=1)            # a failed channel takes commands quietly
    ivr.close(ch1)
    with pytest.raises(IvrDied):
        await ivr.stats()
    started = time.monotonic()
    await ivr.stop()
    assert time.monotonic() - started < 1


async def test_a_stopped_worker_counts_as_dead():
    events = Events()
    media = await started(20, on_event=events.append, timeout=1.0)
    try:
        ch, _ = media.open_nowait()
        os.kill(media.pid, signal.SIGSTOP)
        [failed] = await events.wait(lambda e: isinstance(e, ChannelFailed), timeout=4)
        assert failed.ch == ch and "stopped answering" in failed.reason
        assert not media.alive
        with pytest.raises(ProcessLookupError):
            for _ in range(100):
                os.kill(media.pid, 0)
                await asyncio.sleep(0.01)
    finally:
        await media.stop()


async def test_garbage_is_ignored_and_never_latches(ivr, phones):
    phone, stranger = phones(), phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", EVENT_PT)
    garbage = [
        b"", b"\x80", os.urandom(11), bytes(200),                           # empty, short, version 0
        b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12),               # STUN binding request
        bytes([0x81, 200]) + bytes(26),                                     # RTCP sender report
        RtpPacket(payload_type=96, payload=os.urandom(160)).serialize(),    # not a negotiated type
        bytes([0x90, 0]) + bytes(10) + b"\x00\x00\x00\x40",                 # extension past the end
        bytes([0xA0, 0]) + bytes(10) + bytes(159) + b"\xff",                # padding past the start
        bytes([0x80, EVENT_PT]) + bytes(10) + b"\x01",                      # event payload too short
        bytes([0x80, 0]) + bytes(4000),                                     # larger than any frame
    ]
    for data in garbage:
        stranger.send(port, data)
        phone.send(port, data)
    await asyncio.sleep(0.3)
    stats = await ivr.stats()
    assert stats.dropped_invalid >= 2 * len(garbage) - 2 and stats.dropped_foreign == 0
    # Still alive, still sending to the phone only, still hearing its key presses.
    assert ivr.alive and not stranger.received and phone.received
    await phone.press(port, "7")
    [digit] = await ivr.events.wait(lambda e: isinstance(e, Digit))
    assert digit.digit == "7"
    assert not stranger.received


async def test_media_latches_to_where_the_caller_sends_from(ivr, phones):
    announced, actual = phones(), phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, announced.addr, "PCMU", EVENT_PT)
    await asyncio.sleep(0.1)
    assert announced.received                       # until the caller sends, SDP's address
    await actual.send_audio(port, bytes([g711.ULAW_SILENCE]) * FRAME * 3)
    await asyncio.sleep(0.1)
    before = len(announced.received)
    await asyncio.sleep(0.2)
    assert len(announced.received) == before        # then where its packets come from
    assert len(actual.received) >= 5
    await announced.press(port, "3")                 # a third party is not listened to
    await actual.send_audio(port, bytes([g711.ULAW_SILENCE]) * FRAME * 3)
    assert not [e for e in ivr.events if isinstance(e, Digit)]
    assert (await ivr.stats()).dropped_foreign >= 1
    # connect(None): hold, nothing sent
    ivr.connect(ch, None, "PCMU", EVENT_PT)
    await asyncio.sleep(0.1)
    before = len(actual.received)
    await asyncio.sleep(0.2)
    assert len(actual.received) == before


async def test_bad_requests_are_refused_clearly(ivr):
    ch, _ = ivr.open_nowait()
    with pytest.raises(ValueError, match="no clip 'nope'"):
        ivr.play(ch, ["nope"], token=1)
    with pytest.raises(TypeError):
        ivr.play(ch, "nope", token=1)
    with pytest.raises(ValueError, match="codec"):
        ivr.connect(ch, (HOST, 4000), "G729", None)
    with pytest.raises(ValueError, match="port"):
        ivr.connect(ch, (HOST, 70000), "PCMU", None)
    with pytest.raises(ValueError, match=r"\(ip, port\)"):
        ivr.connect(ch, HOST, "PCMU", None)
    with pytest.raises(ValueError, match="payload type"):
        ivr.connect(ch, (HOST, 4000), "PCMU", 13)
    with pytest.raises(ValueError, match="int16"):
        ivr.register_clip("x", np.zeros(100, dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        ivr.register_clip("x", np.zeros(0, dtype=np.int16))
    with pytest.raises(ValueError, match="max_seconds"):
        ivr.record(ch, 0, token=1)
    with pytest.raises(ValueError, match="not open"):
        ivr.connect(123456, (HOST, 4000), "PCMU", None)
    with pytest.raises(ValueError, match="not open"):
        ivr.port_of(123456)
    with pytest.raises(ValueError, match="wildcard"):
        IvrMedia("0.0.0.0", 40000, 40010, on_event=print)
    for low, high in ((40001, 40002), (40000, 40000), (0, 10), (40000, 70000)):
        with pytest.raises(ValueError, match="even/odd pair"):
            IvrMedia(HOST, low, high, on_event=print)
    assert IvrMedia(HOST, 40001, 40003, on_event=print).capacity == 1
    unreachable = IvrMedia("192.0.2.1", 40000, 40010, on_event=print)
    with pytest.raises(IvrDied, match="cannot bind"):
        await unreachable.start()
    assert isinstance(IvrDied("x"), IvrError)
    assert ivr.alive


async def test_30ms_packets_and_a_codec_change(ivr, phones):
    """Audio in 30 ms packets is cut into 20 ms frames; a re-INVITE to A-law switches both ways."""
    phone = phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, phone.addr, "PCMU", None)
    tones = to_pcm(key_sequence("47", on_samples=800, off_samples=800, lead_samples=800))
    codes = g711.ulaw_encode(np.concatenate([tones, np.zeros(1600, np.int16)])).tobytes()
    for i in range(0, len(codes), 240):
        phone.send(port, phone.rtp.packet(codes[i:i + 240]))
        await asyncio.sleep(0.030)
    await ivr.events.wait(lambda e: isinstance(e, Digit), count=2)
    ivr.register_clip("c", noise(5 * FRAME, seed=8))
    ivr.connect(ch, phone.addr, "PCMA", None)
    ivr.play(ch, ["c"], token=5)
    await ivr.events.wait(lambda e: isinstance(e, PlaybackDone))
    phone.rtp = RtpSender(8)
    alaw = g711.alaw_encode(to_pcm(key_sequence("8", on_samples=800, off_samples=1600))).tobytes()
    await phone.send_audio(port, alaw)
    await ivr.events.wait(lambda e: isinstance(e, Digit), count=3)
    assert [e.digit for e in ivr.events if isinstance(e, Digit)] == ["4", "7", "8"]
    payloads = [p.payload for p in phone.packets() if p.payload_type == 8]
    find_run(payloads, frames_of(g711.alaw_encode(noise(5 * FRAME, seed=8)).tobytes()))


async def test_clips_before_start_and_a_failing_event_handler(phones):
    seen: list = []

    def handler(event) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("a bug in the call core")

    base = port_base(20)
    media = IvrMedia(HOST, base, base + 19, on_event=handler, spare=2)
    media.register_clip("early", noise(3 * FRAME, seed=9))
    await media.start()          # (if the range is taken, open_nowait below says so)
    try:
        phone = phones()
        ch, _ = media.open_nowait()
        media.connect(ch, phone.addr, "PCMU", None)
        media.play(ch, ["early"], token=1)
        deadline = time.monotonic() + 5
        while len(seen) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        media.play(ch, ["early"], token=2)
        while len(seen) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert seen == [PlaybackDone(ch, 1), PlaybackDone(ch, 2)]
        assert media.clip_seconds("early") == 0.06
    finally:
        await media.stop()


async def test_over_ipv6(phones):
    events = Events()
    media = await started(20, "::1", on_event=events.append, spare=2)
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        sock.bind(("::1", 0))
        sock.setblocking(False)
        ch, port = media.open_nowait()
        media.connect(ch, sock.getsockname()[:2], "PCMU", EVENT_PT)
        data, src = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 2048), 3)
        assert src[:2] == ("::1", port) and RtpPacket.parse(data).payload_type == 0
        for packet in RtpSender(0).key_press("9", EVENT_PT):
            sock.sendto(packet, ("::1", port))
        [digit] = await events.wait(lambda e: isinstance(e, Digit))
        assert digit.digit == "9" and digit.source == "rfc4733"
    finally:
        sock.close()
        await media.stop()


@pytest.mark.parametrize("remote", [("phone.example.com", 4000), ("::1", 4000)])
async def test_an_address_it_cannot_use_waits_for_the_callers_packets(ivr, phones, remote, caplog):
    phone = phones()
    ch, port = ivr.open_nowait()
    assert ivr.port_of(ch) == port
    ivr.connect(ch, remote, "PCMU", EVENT_PT)
    assert "first packet" in caplog.text
    await asyncio.sleep(0.2)
    assert (await ivr.stats()).frames_sent == 0          # nowhere to send yet
    await phone.send_audio(port, bytes([g711.ULAW_SILENCE]) * FRAME * 2)
    await asyncio.sleep(0.2)
    assert len(phone.received) >= 5                      # latched to the caller
    assert {src for _, _, src in phone.received} == {(HOST, port)}


async def test_port_zero_is_hold(ivr, phones):
    phone = phones()
    ch, port = ivr.open_nowait()
    ivr.connect(ch, (HOST, 0), "PCMU", EVENT_PT)
    await phone.send_audio(port, bytes([g711.ULAW_SILENCE]) * FRAME * 5)
    await phone.press(port, "2")
    await ivr.events.wait(lambda e: isinstance(e, Digit))    # still listening
    assert not phone.received                                # but sending nothing


async def test_an_overloaded_worker_refuses_new_channels(phones):
    media = await started(20, on_event=lambda e: None, spare=4, max_load=1e-6)
    try:
        ch, _ = media.open_nowait()
        media.connect(ch, phones().addr, "PCMU", None)      # it now has work every tick
        deadline = time.monotonic() + 3
        while media.load <= 1e-6:
            assert time.monotonic() < deadline, "no load reported"
            await asyncio.sleep(0.05)
        with pytest.raises(IvrFull, match="overloaded") as info:
            media.open_nowait()
        assert info.value.status == 503
        media.max_load = 0.9                                # what a real setting allows
        media.open_nowait()
    finally:
        await media.stop()
