"""What the IVR media reports: its events, its errors and its counters (see ivr.media)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChannelFailed", "Digit", "IvrDied", "IvrError", "IvrEvent", "IvrFull", "IvrStats",
           "PlaybackDone", "Recorded"]


# --- events -------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class Digit:
    """One key press, however it arrived; a press sent both as RFC 4733 events and as tones
    gives one Digit (from whichever path reported it first). ``at`` is time.monotonic() (the
    event loop's clock) when the worker recognised it."""
    ch: int
    digit: str
    source: str                  # "rfc4733" or "inband"
    at: float


@dataclass(slots=True, frozen=True)
class PlaybackDone:
    """The last frame of the last clip of play(ch, ..., token) was sent. Not sent for a play
    that stop_playback, another play or close ended first."""
    ch: int
    token: int


@dataclass(slots=True, frozen=True)
class Recorded:
    """What the caller sent since record(ch, ..., token): after stop_recording, or when
    max_seconds of audio have arrived. int16 8 kHz mono, frames in arrival order."""
    ch: int
    token: int
    pcm: np.ndarray = field(repr=False)


@dataclass(slots=True, frozen=True)
class ChannelFailed:
    """The channel can no longer carry media (the worker process is gone, or its port failed).
    The call should end; close(ch) is still welcome but not needed."""
    ch: int
    reason: str


IvrEvent = Digit | PlaybackDone | Recorded | ChannelFailed


@dataclass(slots=True, frozen=True)
class IvrStats:
    """Counters of the worker since it started. ``frames_late`` counts frames sent more than
    half a tick (10 ms) after their slot, including frames skipped after a stall."""
    channels: int                # open channels (handed out or kept ready)
    connected: int               # channels sending media
    frames_sent: int
    frames_late: int
    digits: int                  # Digit events (after de-duplication)
    digits_inband: int
    digits_rfc4733: int
    ticks: int
    frames_skipped: int          # not sent because of a stall of more than 200 ms (also late)
    packets_received: int
    dropped_invalid: int         # not RTP version 2, malformed, or an unknown payload type
    dropped_foreign: int         # from a source other than the latched one
    send_errors: int
    max_behind_ms: float         # the worst lateness of a phase's first frame since the last stats()
    send_seconds: float          # wall time the loop spent sending frames,
    receive_seconds: float       # receiving packets,
    detect_seconds: float        # and detecting digits and reporting events

    @classmethod
    def from_wire(cls, d: dict) -> IvrStats:
        return cls(**{name: d[name] for name in cls.__slots__})


# --- errors --------------------------------------------------------------------------------

class IvrError(Exception):
    """The IVR media could not do what was asked; ``status`` is the SIP answer it deserves."""

    status = 500

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class IvrFull(IvrError):
    """No IVR channel is free (or none can be had at all): answer 503 Service Unavailable."""

    status = 503


class IvrDied(IvrFull):
    """The worker process is gone or never came up. A kind of IvrFull: no channel can be had."""
