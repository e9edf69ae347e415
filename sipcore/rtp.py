"""RTP packets (RFC 3550 §5.1), RFC 4733 telephone-events, and a sender's numbering.

Plain data and byte layouts, no sockets: the relay forwards datagrams without parsing
them, and the IVR builds prompt packets with `RtpSender` and reads key presses with
`TelephoneEvent`.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

HEADER = struct.Struct("!BBHII")
EVENT = struct.Struct("!BBH")
DIGITS = "0123456789*#ABCD"   # RFC 4733 §3.2: events 0-15


def is_rtcp(data: bytes) -> bool:
    """True for an RTCP packet sharing a port with RTP (RFC 5761 §4: packet types 192-223)."""
    return len(data) >= 8 and data[0] >> 6 == 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpPacket:
    version: int = 2
    padding: int = 0                                   # padding bytes at the end (0: none)
    extension: tuple[int, bytes] | None = None         # (profile, data), data a multiple of 4
    marker: bool = False
    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrc: list[int] = field(default_factory=list)
    payload: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one datagram; ValueError says what is wrong with one that is not RTP."""
        n = len(data)
        if n < 12:
            raise ValueError(f"RTP packet too short: {n} bytes, the header alone is 12")
        first, second, seq, ts, ssrc = HEADER.unpack_from(data)
        version = first >> 6
        if version != 2:
            raise ValueError(f"RTP version {version}, expected 2")
        pos = 12
        cc = first & 0x0F
        if pos + 4 * cc > n:
            raise ValueError(f"RTP packet of {n} bytes cannot hold its {cc} CSRCs")
        csrc = list(struct.unpack_from(f"!{cc}I", data, pos)) if cc else []
        pos += 4 * cc
        extension = None
        if first & 0x10:
            if pos + 4 > n:
                raise ValueError("RTP header extension flag set but no extension header")
            profile, words = struct.unpack_from("!HH", data, pos)
            pos += 4
            if pos + 4 * words > n:
                raise ValueError(f"RTP header extension of {words} words does not fit")
            extension = (profile, bytes(data[pos:pos + 4 * words]))
            pos += 4 * words
        end = n
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > n:
                raise ValueError(f"RTP padding count {padding} is not within the packet")
            end -= padding
        return cls(version, padding, extension, bool(second & 0x80), second & 0x7F, seq, ts, ssrc,
                   csrc, bytes(data[pos:end]))

    def serialize(self) -> bytes:
        first = (self.version << 6) | (0x20 if self.padding else 0) | (
            0x10 if self.extension is not None else 0) | len(self.csrc)
        out = [HEADER.pack(first, (0x80 if self.marker else 0) | self.payload_type,
                           self.sequence_number & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)]
        if self.csrc:
            out.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension is not None:
            profile, data = self.extension
            if len(data) % 4:
                raise ValueError("RTP header extension data must be a multiple of 4 bytes")
            out.append(struct.pack("!HH", profile, len(data) // 4) + data)
        out.append(self.payload)
        if self.padding:
            out.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(out)


@dataclass(slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 named event: a key press in progress or ended."""
    event: int                     # 0-9, 10 '*', 11 '#', 12-15 A-D; others are tones
    end: bool = False
    volume: int = 10               # -dBm0, 0..63
    duration: int = 0              # in RTP timestamp units since the event began

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < 4:
            raise ValueError(f"telephone-event payload is {len(payload)} bytes, needs 4")
        event, flags, duration = EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255 or not 0 <= self.volume <= 63 or not 0 <= self.duration <= 0xFFFF:
            raise ValueError(f"telephone-event out of range: {self}")
        return EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < 16 else None


def event_for_digit(digit: str) -> int:
    index = DIGITS.find(digit.upper())
    if index < 0 or len(digit) != 1:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


class RtpSender:
    """The numbering of one outgoing RTP stream: SSRC, sequence number, timestamp.

    `packet(payload)` returns the next datagram; G.711 has one sample per byte, so the
    timestamp advances by the payload's length unless `samples` says otherwise.
    """

    __slots__ = ("payload_type", "ssrc", "sequence_number", "timestamp", "_marker_next")

    def __init__(self, payload_type: int, ssrc: int | None = None, sequence_number: int | None = None,
                 timestamp: int | None = None):
        self.payload_type = payload_type
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        # Random starting points (RFC 3550 §5.1) make known-plaintext attacks harder.
        self.sequence_number = random.getrandbits(16) if sequence_number is None else sequence_number
        self.timestamp = random.getrandbits(32) if timestamp is None else timestamp
        self._marker_next = True   # the first packet of a talkspurt carries the marker

    def packet(self, payload: bytes, samples: int | None = None, marker: bool = False) -> bytes:
        mark = marker or self._marker_next
        self._marker_next = False
        data = HEADER.pack(0x80, (0x80 if mark else 0) | self.payload_type,
                           self.sequence_number, self.timestamp, self.ssrc) + payload
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + (len(payload) if samples is None else samples)) & 0xFFFFFFFF
        return data

    def skip(self, samples: int) -> None:
        """Silence not sent (e.g. a pause between prompts): time moves on, numbering does not."""
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self._marker_next = True

    def key_press(self, digit: str, event_pt: int, duration: int = 800, step: int = 160,
                  volume: int = 10) -> list[bytes]:
        """The packets of one RFC 4733 key press, one per `step` samples (send them 20 ms
        apart), then the end packet three times (§2.5.1.4). They share the press's start
        timestamp; afterwards the stream's timestamp has moved on by `duration`."""
        event = event_for_digit(digit)
        start = self.timestamp
        packets = []
        elapsed = step
        first = True
        while True:
            end = elapsed >= duration
            payload = TelephoneEvent(event, end, volume, min(elapsed, duration)).serialize()
            copies = 3 if end else 1
            for _ in range(copies):
                packets.append(HEADER.pack(0x80, (0x80 if first else 0) | event_pt,
                                           self.sequence_number, start, self.ssrc) + payload)
                self.sequence_number = (self.sequence_number + 1) & 0xFFFF
                first = False
            if end:
                break
            elapsed += step
        self.timestamp = (start + duration) & 0xFFFFFFFF
        self._marker_next = True
        return packets
