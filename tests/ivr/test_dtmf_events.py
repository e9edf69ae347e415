"""Key presses as RFC 4733 telephone-events and SIP INFO, and one digit per press across paths.

The RFC 4733 tests build the 4-byte event payloads with struct, as a phone would put them on
the wire, with the timing phones really use (an event packet every 20 or 50 ms, the end
packet three times), and then break them the ways real phones and networks do.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import pytest

from ivr.dtmf import BatchDetector, DtmfDeduplicator, Rfc4733Receiver, SipInfoDtmf, SipInfoDtmfError
from ivr.dtmf_tones import dtmf_tone, g711_round_trip, to_pcm

CODES = "0123456789*#ABCD"


@dataclass
class Packet:
    payload: bytes
    timestamp: int
    seq: int
    marker: bool
    at: float                       # arrival time, seconds


def decode(payload: bytes) -> tuple[int, bool, int, int]:
    event, flags, duration = struct.unpack("!BBH", payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


class Phone:
    """Sends key presses as RFC 4733 packets, numbering them as one RTP stream."""

    def __init__(self, interval: float = 0.05, seq: int = 1000, timestamp: int = 160_000, now: float = 0.0):
        self.interval, self.seq, self.timestamp, self.now = interval, seq, timestamp, now

    def press(self, key: str, seconds: float, marker: bool = True, ends: int = 3,
              advancing_timestamp: bool = False) -> list[Packet]:
        """One press: a packet every `interval` with the duration so far, then `ends` end
        packets. With advancing_timestamp the RTP timestamp moves on with every packet
        instead of staying at the event's start (as some gateways do)."""
        step = int(self.interval * 8000)
        total = int(seconds * 8000)
        packets, duration, first = [], step, True
        start = self.timestamp
        while duration < total:
            ts = start + (duration - step if advancing_timestamp else 0)
            packets.append(self._packet(key, False, duration, ts, marker and first))
            duration += step
            first = False
            self.now += self.interval
        ts = start + (total - step if advancing_timestamp else 0)
        for _ in range(ends):
            packets.append(self._packet(key, True, total, ts, False))
        self.now += self.interval
        self.timestamp = start + total
        return packets

    def pause(self, seconds: float) -> None:
        """Audio between presses: time, timestamps and sequence numbers move on."""
        self.now += seconds
        self.timestamp += int(seconds * 8000)
        self.seq += int(seconds / 0.02)

    def _packet(self, key: str, end: bool, duration: int, ts: int, marker: bool) -> Packet:
        payload = struct.pack("!BBH", CODES.index(key), (0x80 if end else 0) | 10, min(duration, 0xFFFF))
        packet = Packet(payload, ts % (1 << 32), self.seq % (1 << 16), marker, self.now)
        self.seq += 1
        return packet


def receive(packets: list[Packet], receiver: Rfc4733Receiver | None = None) -> str:
    receiver = receiver or Rfc4733Receiver()
    digits = ""
    for p in packets:
        event, end, volume, duration = decode(p.payload)
        digits += receiver.feed(event, end, volume, duration, p.timestamp, p.seq, p.marker, p.at)
    return digits


def test_well_behaved_presses():
    phone = Phone()
    packets = phone.press("1", 0.2)
    phone.pause(0.1)
    packets += phone.press("#", 0.12)
    phone.pause(0.1)
    packets += phone.press("1", 0.06)
    assert receive(packets) == "1#1"


def test_lost_end_packets_end_the_press_by_a_new_event_or_by_timeout():
    phone = Phone()
    first = [p for p in phone.press("5", 0.2) if not decode(p.payload)[1]]     # every end lost
    phone.pause(0.1)
    second = [p for p in phone.press("6", 0.2) if not decode(p.payload)[1]]
    phone.pause(1.0)
    third = [p for p in phone.press("6", 0.2, marker=False) if not decode(p.payload)[1]]
    receiver = Rfc4733Receiver()
    assert receive(first, receiver) == "5"
    assert receiver.pressed == "5"
    assert receive(second, receiver) == "6"          # a new event ends the old one
    deadline = receiver.next_deadline()
    assert deadline is not None and deadline == pytest.approx(second[-1].at + receiver.end_timeout)
    receiver.expire(deadline + 0.001)
    assert receiver.pressed is None                   # ...and silence ends the last
    assert receive(third, receiver) == "6"            # so the same key again is a new press


def test_same_key_again_right_after_lost_end_packets():
    """The end packets of the first press are lost and the second starts 60 ms later, well
    before the timeout: its new timestamp and the skipped sequence numbers tell them apart."""
    phone = Phone(interval=0.02)
    first = [p for p in phone.press("9", 0.1) if not decode(p.payload)[1]]
    phone.pause(0.06)
    second = phone.press("9", 0.1, marker=False)
    assert receive(first + second) == "99"


def test_short_press_with_lost_ends_then_the_same_key_without_marker():
    """Only the first packet of a 40 ms press arrives; the next press of the key starts with
    the same duration and no marker. The sequence numbers the lost end packets used up show
    that it is not the same press."""
    phone = Phone(interval=0.02)
    first = [p for p in phone.press("9", 0.04) if not decode(p.payload)[1]]
    phone.pause(0.06)
    second = phone.press("9", 0.1, marker=False)
    assert decode(first[-1].payload)[3] == decode(second[0].payload)[3] == 160
    assert receive(first + second) == "99"


def test_marker_bit_starts_a_new_press():
    """A phone that sends two end packets and no audio between presses: both ends lost, the
    next press of the key is only three sequence numbers on, but it has the marker bit."""
    phone = Phone(interval=0.02)
    first = [p for p in phone.press("3", 0.04, ends=2) if not decode(p.payload)[1]]
    phone.now += 0.06
    phone.timestamp += 480
    second = phone.press("3", 0.1, marker=True)
    assert second[0].seq - first[-1].seq == 3
    assert receive(first + second) == "33"


def test_phone_that_never_sets_the_marker_bit():
    phone = Phone()
    packets = phone.press("3", 0.15, marker=False)
    phone.pause(0.08)
    packets += phone.press("3", 0.15, marker=False)
    phone.pause(0.08)
    packets += phone.press("4", 0.15, marker=False)
    assert receive(packets) == "334"


def test_duplicated_packets_and_three_end_packets_give_one_digit():
    phone = Phone()
    packets = phone.press("8", 0.3, ends=3)
    doubled = [p for p in packets for _ in range(2)]               # every packet arrives twice
    late_end = packets[-1]
    assert receive(doubled + [late_end, late_end]) == "8"


def test_reordered_packets_give_one_digit():
    phone = Phone()
    packets = phone.press("2", 0.3)
    packets[1], packets[3] = packets[3], packets[1]
    straggler = packets[2]
    phone.pause(0.2)
    later = phone.press("7", 0.1)
    # A packet of the "2" press arrives after that press ended and after "7" began.
    assert receive(packets + later[:1] + [straggler] + later[1:]) == "27"


@pytest.mark.parametrize("interval", [0.02, 0.05])
def test_timestamp_that_moves_within_one_press(interval):
    """Some gateways advance the RTP timestamp on every packet of a press."""
    phone = Phone(interval=interval)
    packets = phone.press("0", 0.4, advancing_timestamp=True)
    phone.pause(0.1)
    packets += phone.press("0", 0.2, advancing_timestamp=True, marker=False)
    assert receive(packets) == "00"


def test_long_event_in_segments():
    """A key held for 10 s: beyond 0xFFFF timestamp units the sender starts a new segment at
    timestamp + 0xFFFF (RFC 4733 2.5.1.3), its duration counting from zero again."""
    receiver = Rfc4733Receiver()
    seq, ts, now, digits = 500, 1_000_000, 0.0, ""
    elapsed = 0
    while elapsed < 80_000:
        segment = elapsed // 0xFFFF
        start = ts + segment * 0xFFFF
        duration = min(elapsed - segment * 0xFFFF + 400, 0xFFFF)
        digits += receiver.feed(CODES.index("*"), False, 10, duration, start, seq, seq == 500, now)
        elapsed += 400
        seq += 1
        now += 0.05
    for _ in range(3):
        digits += receiver.feed(CODES.index("*"), True, 10, 80_000 - 0xFFFF, ts + 0xFFFF, seq, False, now)
        seq += 1
    assert digits == "*"


def test_long_event_whose_duration_wraps():
    """Other senders keep the timestamp and let the 16-bit duration wrap around."""
    receiver = Rfc4733Receiver()
    digits = ""
    for i in range(200):
        duration = (400 * (i + 1)) % 0x10000
        digits += receiver.feed(CODES.index("A"), False, 10, duration, 5000, i, i == 0, i * 0.05)
    assert digits == "A"


def test_sequence_number_and_timestamp_wrap_around():
    phone = Phone(seq=65_530, timestamp=(1 << 32) - 1000)
    packets = phone.press("D", 0.4)
    phone.pause(0.1)
    packets += phone.press("D", 0.2)
    assert receive(packets) == "DD"


def test_other_events_and_malformed_fields_are_ignored():
    receiver = Rfc4733Receiver()
    assert receiver.feed(16, False, 10, 400, 1000, 1, True, 0.0) == ""        # hook flash
    assert receiver.feed(70, False, 10, 400, 2000, 2, True, 0.1) == ""        # a tone, not a key
    assert receiver.feed(1, False, 64, 400, 3000, 3, True, 0.2) == ""         # volume out of range
    assert receiver.feed(1, False, 10, 400, 1 << 32, 4, True, 0.3) == ""      # timestamp too big
    assert receiver.feed(1, False, 10, 400, 4000, 5, True, 0.4) == "1"


def test_an_end_packet_alone_is_a_press():
    """Only the end packets of a short press got through."""
    phone = Phone()
    packets = [p for p in phone.press("4", 0.06) if decode(p.payload)[1]]
    assert receive(packets) == "4"


# -- SIP INFO ------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type, body, key", [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("application/dtmf-relay", b"Signal= #\nDuration= 250\n", "#"),
    ("Application/DTMF-Relay; charset=utf-8", b"signal=*\r\n", "*"),
    ("application/dtmf-relay", b"Duration=100\r\nSignal=d\r\n", "D"),
    ("application/dtmf-relay", b"Signal=11\r\nDuration=160\r\n", "#"),
    ("application/dtmf-relay", b"Signal=10\r\n", "*"),
    ("application/dtmf", b"7", "7"),
    ("application/dtmf", b"11\r\n", "#"),
    ("application/dtmf", b" a ", "A"),
])
def test_sip_info_bodies(content_type, body, key):
    assert SipInfoDtmf.handles(content_type)
    assert SipInfoDtmf.parse(content_type, body) == key


def test_sip_info_that_carries_no_key():
    assert SipInfoDtmf.parse("application/sdp", b"v=0\r\n") is None
    assert not SipInfoDtmf.handles("text/plain")
    assert SipInfoDtmf.parse("application/dtmf-relay", b"Signal=!\r\n") is None    # hook flash
    assert SipInfoDtmf.parse("application/dtmf", b"16") is None


@pytest.mark.parametrize("content_type, body, status, message", [
    ("application/dtmf-relay", b"Duration=160\r\n", 400, "no Signal= line"),
    ("application/dtmf-relay", b"Signal=1\r\nSignal=2\r\n", 400, "two Signal= lines"),
    ("application/dtmf-relay", b"Signal=X\r\n", 400, "'X' is not a key"),
    ("application/dtmf-relay", b"Signal 5\r\n", 400, "is not name=value"),
    ("application/dtmf", b"", 400, "'' is not a key"),
    ("application/dtmf", b"99", 400, "'99' is not a key"),
    ("application/dtmf", "5\u00e9".encode(), 400, "not ASCII"),
    ("application/dtmf-relay", b"Signal=1\r\n" + b"x" * 2000, 413, "at most 1024"),
])
def test_malformed_sip_info_is_a_clear_error(content_type, body, status, message):
    with pytest.raises(SipInfoDtmfError, match=message) as raised:
        SipInfoDtmf.parse(content_type, body)
    assert raised.value.status == status


# -- one press seen on several paths ----------------------------------------------------------

def test_event_and_audio_of_one_press_give_one_digit():
    dedup = DtmfDeduplicator()
    assert dedup.offer("5", "rfc4733", 10.000) == "5"
    assert dedup.offer("5", "inband", 10.035) is None
    assert dedup.offer("5", "info", 10.120) is None
    # Audio first this time.
    assert dedup.offer("6", "inband", 11.000) == "6"
    assert dedup.offer("6", "rfc4733", 11.010) is None


def test_two_presses_of_one_key_seen_both_ways_give_two_digits():
    dedup = DtmfDeduplicator()
    reports = [("rfc4733", 0.00), ("inband", 0.035), ("rfc4733", 0.12), ("inband", 0.155)]
    assert [dedup.offer("1", source, at) for source, at in reports] == ["1", None, "1", None]


def test_a_report_long_after_the_press_is_a_new_press():
    dedup = DtmfDeduplicator(window=0.4)
    assert dedup.offer("3", "rfc4733", 1.0) == "3"
    assert dedup.offer("3", "inband", 1.5) == "3"


def test_a_press_seen_by_only_one_path_counts():
    dedup = DtmfDeduplicator()
    assert dedup.offer("9", "inband", 0.0) == "9"
    assert dedup.offer("8", "rfc4733", 0.2) == "8"


def test_phone_sending_events_and_tones_together_end_to_end():
    """A phone plays each key in the audio and also sends it as RFC 4733 events; the audio
    goes through the batch detector tick by tick, the events through the receiver, and both
    through the deduplicator: each press is one digit, including repeated keys."""
    keys = "1123#55"
    phone = Phone(interval=0.02)
    audio, packets, presses = [np.zeros(1600)], [], []
    now = 0.2
    phone.now = now
    for key in keys:
        presses.append(now)
        audio += [dtmf_tone(key, 800, level_dbm0=-10.0), np.zeros(800)]
        packets += phone.press(key, 0.1)
        phone.pause(0.1)
        now += 0.2
        phone.now = now
    pcm = g711_round_trip(to_pcm(np.concatenate(audio)))
    detector = BatchDetector(1)
    ch = np.array([detector.add_channel()])
    receiver, dedup = Rfc4733Receiver(), DtmfDeduplicator()
    heard, pending = "", sorted(packets, key=lambda p: p.at)
    for tick in range(len(pcm) // 160):
        tick_end = (tick + 1) * 0.02
        while pending and pending[0].at < tick_end:
            p = pending.pop(0)
            event, end, volume, duration = decode(p.payload)
            for digit in receiver.feed(event, end, volume, duration, p.timestamp, p.seq, p.marker, p.at):
                heard += dedup.offer(digit, "rfc4733", p.at) or ""
        for _, digit in detector.process(pcm[None, tick * 160:(tick + 1) * 160], ch):
            heard += dedup.offer(digit, "inband", tick_end) or ""
    assert heard == keys
