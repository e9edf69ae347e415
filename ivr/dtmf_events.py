"""Key presses that arrive as signalling rather than audio: RFC 4733 telephone-events and
SIP INFO, and the de-duplication of one press seen by several of these paths.

All three are sans-IO: they take already-decoded fields and the current time (seconds on
any monotonic clock) and return digits. The RTP layer decodes the 4-byte event payload
(sipcore.rtp.TelephoneEvent); this module does not depend on it.

What phones really send, and how each case is read (RFC 4733 §2.5 is the ideal):

- The first packet of an event usually has the marker bit; some phones never set it. A
  new press is recognised by its event code or RTP timestamp, not by the marker.
- The end packet is sent three times with the same timestamp; all three may be lost.
  A press then ends when another event starts or when no packet for it has arrived for
  ``end_timeout`` seconds. The digit is reported when the press starts, so a lost end
  delays nothing; it only matters for telling the next press of the same key apart.
- Some gateways advance the RTP timestamp on every packet of one press. A packet with the
  same code, no marker, the next few sequence numbers and a duration that has not gone
  back continues the press.
- Events longer than 0xFFFF timestamp units are sent as segments (§2.5.1.3): a new
  timestamp equal to the old one plus 0xFFFF; some senders instead let the duration wrap
  under the same timestamp. Both continue the press.
- Packets that arrive late, after their press ended, have older sequence numbers, a
  timestamp of that press, or repeat its final end packet; they are ignored.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["DtmfDeduplicator", "Rfc4733Receiver", "SipInfoDtmf", "SipInfoDtmfError"]

KEYS = "0123456789*#ABCD"          # RFC 4733 event codes 0-15
_TS_MOD = 1 << 32
_SEQ_MOD = 1 << 16
_DURATION_MOD = 1 << 16
# A continuation may skip this many sequence numbers (lost packets); a new press after a
# lost end skips at least four: the three end packets, then its own first packet.
_MAX_SEQ_STEP = 3
_SEGMENT_SLACK = 8000              # timestamp units of a segment's end that may go missing
_ENDED_MEMORY = 4
_LATE_HORIZON = 2.0                # seconds an ended press is remembered for late packets


def _ts_diff(a: int, b: int) -> int:
    return (a - b + (1 << 31)) % _TS_MOD - (1 << 31)


def _seq_diff(a: int, b: int) -> int:
    return (a - b + (1 << 15)) % _SEQ_MOD - (1 << 15)


@dataclass(slots=True)
class _Press:
    event: int
    timestamps: set[int]
    last_ts: int
    last_duration: int
    last_seq: int
    last_seen: float
    final_duration: int | None = None


class Rfc4733Receiver:
    """RFC 4733 telephone-events of one RTP stream -> key presses, one digit per press.

    ``feed(...)`` takes the payload fields (event, end, volume, duration) and the packet's
    RTP timestamp, sequence number and marker bit, and returns the digit that started with
    this packet, or "". Events other than 0-15 (flash, tones) are ignored.
    """

    def __init__(self, clock_rate: int = 8000, end_timeout: float = 0.3) -> None:
        if clock_rate <= 0 or end_timeout <= 0:
            raise ValueError("clock_rate and end_timeout must be positive")
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self._active: _Press | None = None
        self._ended: deque[_Press] = deque(maxlen=_ENDED_MEMORY)

    @property
    def pressed(self) -> str | None:
        """The key held down right now (no end seen and not timed out), if any."""
        return KEYS[self._active.event] if self._active else None

    def next_deadline(self) -> float | None:
        """When ``expire`` would end a press whose end packets were lost."""
        return self._active.last_seen + self.end_timeout if self._active else None

    def expire(self, now: float) -> None:
        active = self._active
        if active is not None and now - active.last_seen > self.end_timeout:
            self._finish()

    def feed_event(self, event, timestamp: int, seq: int, marker: bool, now: float) -> str:
        """``feed`` for any object with event, end, volume and duration attributes."""
        return self.feed(event.event, event.end, event.volume, event.duration, timestamp, seq, marker, now)

    def feed(self, event: int, end: bool, volume: int, duration: int, timestamp: int, seq: int,
             marker: bool, now: float) -> str:
        if not (0 <= event <= 255 and 0 <= volume <= 63 and 0 <= duration < _DURATION_MOD
                and 0 <= timestamp < _TS_MOD and 0 <= seq < _SEQ_MOD):
            return ""                    # not a well-formed event; the RTP layer counts these
        self.expire(now)
        while self._ended and now - self._ended[0].last_seen > _LATE_HORIZON:
            self._ended.popleft()
        if event >= len(KEYS):
            return ""
        active = self._active
        if active is not None and active.event == event and self._continues(active, end, duration, timestamp, seq, marker):
            self._update(active, end, duration, timestamp, seq, now)
            return ""
        if any(p.event == event and self._is_late(p, end, duration, timestamp, seq) for p in self._ended):
            return ""
        if active is not None:
            self._finish()
        press = _Press(event, {timestamp}, timestamp, duration, seq, now)
        self._active = press
        if end:
            self._update(press, end, duration, timestamp, seq, now)
        return KEYS[event]

    @staticmethod
    def _continues(press: _Press, end: bool, duration: int, timestamp: int, seq: int, marker: bool) -> bool:
        if timestamp in press.timestamps:
            return True
        if marker:
            return False
        step = _seq_diff(seq, press.last_seq)
        if not -_MAX_SEQ_STEP <= step <= _MAX_SEQ_STEP:
            return False
        if step < 0:                       # reordered: an older packet of this press
            return True
        # A long event's next segment starts 0xFFFF units after the last one, its duration
        # counting from zero again; the old segment's last packets may have been lost.
        new_segment = (press.last_duration >= _DURATION_MOD - 1 - _SEGMENT_SLACK
                       and 0 < _ts_diff(timestamp, press.last_ts) <= _DURATION_MOD - 1)
        return duration >= press.last_duration or new_segment

    @staticmethod
    def _is_late(press: _Press, end: bool, duration: int, timestamp: int, seq: int) -> bool:
        if timestamp in press.timestamps or _seq_diff(seq, press.last_seq) <= 0:
            return True
        # A repeat of the final end packet under a new timestamp (timestamp-advancing senders).
        return end and duration == press.final_duration and _seq_diff(seq, press.last_seq) <= _MAX_SEQ_STEP

    def _update(self, press: _Press, end: bool, duration: int, timestamp: int, seq: int, now: float) -> None:
        press.timestamps.add(timestamp)
        if _seq_diff(seq, press.last_seq) > 0:
            press.last_seq = seq
            press.last_ts = timestamp
            press.last_duration = duration
        press.last_seen = now
        if end:
            press.final_duration = duration
            self._finish()

    def _finish(self) -> None:
        if self._active is not None:
            self._ended.append(self._active)
            self._active = None


class SipInfoDtmfError(ValueError):
    """A DTMF INFO body that cannot be read; answer the INFO with ``status`` and ``reason``."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SipInfoDtmf:
    """Key presses carried in SIP INFO bodies.

    application/dtmf-relay (Cisco's format, the common one)::

        Signal=5
        Duration=160

    application/dtmf: the body is the key itself ("5") or its event code ("11" for #).
    """

    CONTENT_TYPES = ("application/dtmf-relay", "application/dtmf")
    MAX_BODY = 1024

    @classmethod
    def handles(cls, content_type: str) -> bool:
        return _media_type(content_type) in cls.CONTENT_TYPES

    @classmethod
    def parse(cls, content_type: str, body: bytes) -> str | None:
        """The key in the body, or None if the content type is not a DTMF one or the signal is
        a hook flash (not a key). Raises SipInfoDtmfError for a DTMF body that is malformed."""
        media = _media_type(content_type)
        if media not in cls.CONTENT_TYPES:
            return None
        if len(body) > cls.MAX_BODY:
            raise SipInfoDtmfError(f"{media} body is {len(body)} bytes; at most {cls.MAX_BODY}", 413)
        try:
            text = bytes(body).decode("ascii")
        except UnicodeDecodeError:
            raise SipInfoDtmfError(f"{media} body is not ASCII text") from None
        if media == "application/dtmf":
            return _signal(text.strip(), media)
        signal = None
        for line in text.replace("\r\n", "\n").split("\n"):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise SipInfoDtmfError(f"application/dtmf-relay line {line.strip()!r} is not name=value")
            if name.strip().lower() == "signal":
                if signal is not None:
                    raise SipInfoDtmfError("application/dtmf-relay body has two Signal= lines")
                signal = value.strip()
        if signal is None:
            raise SipInfoDtmfError("application/dtmf-relay body has no Signal= line")
        return _signal(signal, media)


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _signal(value: str, media: str) -> str | None:
    if len(value) == 1 and value.upper() in KEYS:
        return value.upper()
    if value == "!" or value == "16":
        return None                        # hook flash
    if value.isdigit() and int(value) < len(KEYS):
        return KEYS[int(value)]
    raise SipInfoDtmfError(f"{media} signal {value[:20]!r} is not a key (0-9, *, #, A-D or event code 0-16)")


@dataclass(slots=True)
class _SeenPress:
    digit: str
    at: float
    sources: set[str] = field(default_factory=set)


class DtmfDeduplicator:
    """One key press reported by several paths (RFC 4733, in-band audio, SIP INFO) -> one digit.

    ``offer(digit, source, now)`` returns the digit if it is a new press, or None if it is
    another path's report of a press already counted. A report joins the oldest counted press
    of the same key, less than ``window`` seconds old, that this source has not yet reported;
    each path reports each press once, so two real presses of one key stay two digits.
    """

    def __init__(self, window: float = 0.4) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._recent: deque[_SeenPress] = deque()

    def offer(self, digit: str, source: str, now: float) -> str | None:
        while self._recent and now - self._recent[0].at >= self.window:
            self._recent.popleft()
        for press in self._recent:
            if press.digit == digit and source not in press.sources:
                press.sources.add(source)
                return None
        self._recent.append(_SeenPress(digit, now, {source}))
        return digit
