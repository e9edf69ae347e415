"""RTP packets, RFC 4733 events and a sender's numbering, against hand-assembled bytes."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore.rtp import DIGITS, RtpPacket, RtpSender, TelephoneEvent, event_for_digit, is_rtcp


def header(first: int, second: int, seq: int, ts: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", first, second, seq, ts, ssrc)


def test_parse_a_plain_g711_packet():
    data = header(0x80, 0x80 | 8, 4711, 160000, 0x12345678) + b"\xd5" * 160
    p = RtpPacket.parse(data)
    assert (p.version, p.padding, p.extension, p.marker) == (2, 0, None, True)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (8, 4711, 160000, 0x12345678)
    assert p.csrc == [] and p.payload == b"\xd5" * 160
    assert p.serialize() == data


def test_parse_csrcs_extension_and_padding():
    data = (header(0x80 | 0x20 | 0x10 | 2, 0, 1, 2, 3) + struct.pack("!II", 0xAAAA, 0xBBBB)
            + struct.pack("!HH", 0xBEDE, 1) + b"\x10\x01\x02\x03" + b"audio" + b"\x00\x00\x03")
    p = RtpPacket.parse(data)
    assert p.csrc == [0xAAAA, 0xBBBB]
    assert p.extension == (0xBEDE, b"\x10\x01\x02\x03")
    assert p.padding == 3 and p.payload == b"audio"
    assert p.serialize() == data


@pytest.mark.parametrize("data, words", [
    (b"", "too short"),
    (b"\x80\x00" + b"\x00" * 9, "too short"),
    (header(0x40, 0, 0, 0, 0), "version 1"),
    (header(0x00, 0, 0, 0, 0), "version 0"),
    (header(0x83, 0, 0, 0, 0) + b"\x00" * 8, "CSRC"),
    (header(0x90, 0, 0, 0, 0) + b"\xbe\xde", "no extension header"),
    (header(0x90, 0, 0, 0, 0) + struct.pack("!HH", 0xBEDE, 5) + b"\x00" * 4, "does not fit"),
    (header(0xA0, 0, 0, 0, 0) + b"abc\x00", "padding count 0"),
    (header(0xA0, 0, 0, 0, 0) + b"ab\x09", "padding count 9"),
])
def test_garbage_raises_value_error(data, words):
    with pytest.raises(ValueError, match=words):
        RtpPacket.parse(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_value_error(data):
    try:
        p = RtpPacket.parse(data)
    except ValueError:
        return
    assert RtpPacket.parse(p.serialize()) == p


@settings(max_examples=300, deadline=None)
@given(
    marker=st.booleans(), pt=st.integers(0, 127), seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b * 4))),
    padding=st.integers(0, 255), payload=st.binary(max_size=200),
)
def test_serialize_then_parse_gives_the_same_packet(marker, pt, seq, ts, ssrc, csrc, ext, padding, payload):
    p = RtpPacket(marker=marker, payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc,
                  csrc=csrc, extension=ext, padding=padding, payload=payload)
    assert RtpPacket.parse(p.serialize()) == p


def test_extension_data_must_be_whole_words():
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(extension=(1, b"abc")).serialize()


def test_telephone_event_layout_rfc4733():
    # Event 5, end bit, volume 10, duration 800: 05 8a 03 20.
    assert TelephoneEvent(5, True, 10, 800).serialize() == bytes([0x05, 0x8A, 0x03, 0x20])
    ev = TelephoneEvent.parse(bytes([0x0B, 0x4A, 0x01, 0x40]))  # '#', R bit set (ignored)
    assert ev == TelephoneEvent(11, False, 10, 320) and ev.digit == "#"
    assert TelephoneEvent.parse(bytes([66, 0x00, 0, 0])).digit is None  # a tone, not a key
    with pytest.raises(ValueError, match="needs 4"):
        TelephoneEvent.parse(b"\x05\x8a")
    with pytest.raises(ValueError, match="out of range"):
        TelephoneEvent(5, volume=64).serialize()


def test_digits_map_both_ways():
    assert [event_for_digit(d) for d in DIGITS] == list(range(16))
    assert event_for_digit("a") == 12
    for bad in ("", "E", "12"):
        with pytest.raises(ValueError):
            event_for_digit(bad)


def test_sender_numbers_packets_and_wraps():
    s = RtpSender(0, ssrc=99, sequence_number=0xFFFF, timestamp=0xFFFFFF00)
    first = RtpPacket.parse(s.packet(b"\xff" * 160))
    second = RtpPacket.parse(s.packet(b"\xff" * 160))
    assert first.marker and not second.marker
    assert (first.sequence_number, second.sequence_number) == (0xFFFF, 0)
    assert (second.timestamp - first.timestamp) % 2**32 == 160
    assert first.ssrc == second.ssrc == 99 and first.payload_type == 0
    s.skip(800)
    third = RtpPacket.parse(s.packet(b"\xff" * 80, samples=80))
    assert third.marker and (third.timestamp - second.timestamp) % 2**32 == 960
    assert RtpPacket.parse(s.packet(b"")).timestamp == (third.timestamp + 80) % 2**32


def test_sender_starts_at_random_points():
    a, b = RtpSender(8), RtpSender(8)
    assert (a.ssrc, a.sequence_number, a.timestamp) != (b.ssrc, b.sequence_number, b.timestamp)


def test_key_press_packets_follow_rfc4733():
    s = RtpSender(0, ssrc=1, sequence_number=100, timestamp=8000)
    s.packet(b"\xff" * 160)
    packets = [RtpPacket.parse(d) for d in s.key_press("7", 101, duration=800)]
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert len(packets) == 4 + 3                     # 20, 40, 60, 80 ms, then the end three times
    assert {p.timestamp for p in packets} == {8160}  # one event, one timestamp
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [p.sequence_number for p in packets] == list(range(101, 108))
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert all(e.event == 7 and p.payload_type == 101 for e, p in zip(events, packets))
    after = RtpPacket.parse(s.packet(b"\xff" * 160))
    assert after.timestamp == 8160 + 800 and after.sequence_number == 108 and after.marker


def test_rtcp_is_told_from_rtp():
    sender_report = bytes([0x80, 200, 0, 6]) + b"\x00" * 24
    assert is_rtcp(sender_report)
    assert not is_rtcp(header(0x80, 0, 1, 2, 3))
    assert not is_rtcp(header(0x80, 0x80 | 0, 1, 2, 3))  # PCMU with the marker: 128, not RTCP
    assert not is_rtcp(b"\x80\xc8")
