"""IVR media: prompts played and key presses heard on every auto-attendant call, in one process.

The audio never touches the SIP process: a separate process (`ivr/_media_worker.py`) owns
one RTP port per IVR channel and, once per 20 ms tick over all channels, sends each
channel's next pre-encoded prompt frame (or comfort silence), reads everything that
arrived, and runs the in-band DTMF detector over all of them as one numpy computation.
This module is its asyncio control side, modelled on `sipcore.relay`: one SOCK_SEQPACKET
socket pair, small JSON messages. Its API is synchronous and never waits, for the call
core: channels are opened ahead of need, commands are queued in order and sent in one
message per event-loop iteration, and what happens comes back as events.

    media = IvrMedia("0.0.0.0", 40000, 40999, advertise="203.0.113.5", on_event=handle)
    await media.start()
    media.register_clip("welcome", pcm)                 # int16 8 kHz mono, once
    ch, port = media.open_nowait()                      # port goes into the SDP answer
    media.connect(ch, ("192.0.2.10", 49170), "PCMU", 101)
    media.play(ch, ["welcome", "menu"], token=1)        # -> PlaybackDone(ch, 1)
    ...                                                 # -> Digit(ch, "1", "rfc4733", at)
    media.close(ch)

docs/ivr-media.md describes the worker loop, latching and the figures of bench/ivr.py.
"""
from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ivr.media_events import (ChannelFailed, Digit, IvrDied, IvrError, IvrEvent, IvrFull, IvrStats,
                              PlaybackDone, Recorded)
from sipcore import g711

__all__ = [
    "ChannelFailed", "Digit", "IvrDied", "IvrError", "IvrEvent", "IvrFull", "IvrMedia", "IvrStats",
    "PlaybackDone", "Recorded",
]

log = logging.getLogger("ivr.media")

WORKER = Path(__file__).with_name("_media_worker.py")
Address = tuple[str, int]
CODECS = ("PCMU", "PCMA")
FRAME = 160                      # samples (and G.711 bytes) per 20 ms
# A SEQPACKET message must fit the socket's send buffer (net.core.wmem_default, 208 kB by
# default); clips and recordings travel in parts of this size.
PART_BYTES = 48 * 1024
MAX_CLIP_SECONDS = 600.0


class _Unusable(Exception):
    """A media address from SDP that this channel cannot send to."""


class _Hold(Exception):
    """An SDP address that asks for no media."""


# --- the control side -----------------------------------------------------------------------

@dataclass(slots=True)
class _Channel:
    port: int
    play_gen: int = 0            # the worker reports PlaybackDone with this, not the token
    play_token: int | None = None
    failed: bool = False
    recording: list = field(default_factory=list)   # parts of a Recorded being received


class IvrMedia:
    """Control side of the IVR media process. Start and stop are coroutines; everything else
    is synchronous, never waits, and must be called on the event loop that ran start().

    `host` is what the RTP sockets bind to, `advertise` the address for SDP (required when
    `host` is a wildcard). Each channel takes an even RTP port from [port_min, port_max] and
    the odd port above it (RTCP, absorbed). `on_event` receives every IvrEvent, on the loop.
    `tick` paces the frames: 0.020 is real time; tests may run faster. `timeout` bounds
    start-up, stats() and how long the worker may stay silent before it counts as dead.
    `spare` channels are kept open ahead of need; `relatch_gap` is the silence (seconds)
    after which a channel accepts media from a new source (see docs/ivr-media.md). New
    channels are refused (IvrFull) while the worker's loop is busier than `max_load` (the
    share of its time spent working, reported four times a second as `load`).
    """

    def __init__(self, host: str, port_min: int, port_max: int, advertise: str | None = None, *,
                 on_event: Callable[[IvrEvent], None], tick: float = 0.020, timeout: float = 2.0,
                 spare: int = 32, relatch_gap: float = 1.0, max_load: float = 0.9):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"IVR media host must be an IP address, got {host!r}") from None
        if advertise is None and ip.is_unspecified:
            raise ValueError(f"IVR media host {host} is a wildcard: give the address to advertise in SDP")
        if not (0 < port_min < port_max <= 65535) or not range(port_min + (port_min & 1), port_max, 2):
            raise ValueError(f"IVR media ports {port_min}-{port_max}: need 0 < min < max <= 65535 "
                             f"and room for one even/odd pair")
        if not 0.001 <= tick <= 0.1:
            raise ValueError(f"tick must be between 0.001 and 0.1 seconds, got {tick!r}")
        if timeout <= 0 or spare < 1 or relatch_gap <= 0 or max_load <= 0:
            raise ValueError("timeout, spare, relatch_gap and max_load must be positive")
        self.host = host
        self.family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self.port_min = port_min
        self.port_max = port_max
        self.advertise = advertise or host
        self.on_event = on_event
        self.tick = tick
        self.timeout = timeout
        self.spare = spare
        self.relatch_gap = relatch_gap
        self.max_load = max_load
        self.load = 0.0                   # share of the worker's time spent working, lately
        self.capacity = len(range(port_min + (port_min & 1), port_max, 2))
        self.pid: int | None = None
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dead: str | None = "not started"
        self._stopping = False
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._batch: list[dict] = []
        self._batch_scheduled = False
        self._outbox: deque[bytes] = deque()
        self._writing = False
        self._ready: list[tuple[int, int]] = []      # opened ahead of need: (ch, port)
        self._opening = 0                            # channels asked for and not yet answered
        self._channels: dict[int, _Channel] = {}     # handed out by open_nowait
        self._clips: dict[str, int] = {}             # clip id -> frames
        self._last_heard = 0.0
        self._watchdog: asyncio.TimerHandle | None = None

    @property
    def alive(self) -> bool:
        return self._dead is None

    @property
    def active(self) -> int:
        """Channels handed out and not yet closed."""
        return len(self._channels)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("IVR media already started")
        self._loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), str(theirs.fileno()), self.host, str(self.port_min),
                 str(self.port_max), repr(self.tick), repr(self.relatch_gap)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except OSError as exc:
            mine.close()
            raise IvrDied(f"cannot start the IVR media process: {exc}") from None
        finally:
            theirs.close()
        mine.setblocking(False)
        self._sock = mine
        self._dead = None
        ready: asyncio.Future = self._loop.create_future()
        self._pending[0] = ready
        self._loop.add_reader(mine.fileno(), self._readable)
        try:
            hello = await asyncio.wait_for(ready, timeout=max(self.timeout, 15.0))
        except (asyncio.TimeoutError, IvrError) as exc:
            self._close(f"IVR media process did not start: {exc}")
            self._kill()
            raise IvrDied(f"IVR media process did not start: {exc}") from None
        finally:
            self._pending.pop(0, None)
        if not hello.get("ready"):
            self._kill()
            raise IvrDied(f"IVR media process did not start: {self._dead}")
        self.pid = hello["pid"]
        self.capacity = hello["capacity"]
        self._last_heard = self._loop.time()
        self._watchdog = self._loop.call_later(self.timeout / 2, self._check_alive)
        self._pump()
        log.info("IVR media pid %d on %s ports %d-%d (%d channels)", self.pid, self.host,
                 self.port_min, self.port_max, self.capacity)
        await self._refill()

    async def stop(self) -> None:
        """End the worker: every channel's port closes. No events are delivered afterwards."""
        self._stopping = True
        if self._dead is None:
            self._flush_batch()
            try:
                await self._request({"op": "quit"})
            except IvrError:
                pass
        self._close("IVR media stopped")
        proc = self._process
        if proc is not None:
            for _ in range(200):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            else:
                self._kill()

    async def stats(self) -> IvrStats:
        return IvrStats.from_wire(await self._request({"op": "stats"}))

    # --- channels (synchronous, never waiting) ------------------------------------------------

    def open_nowait(self) -> tuple[int, int]:
        """A channel and its local RTP port, at once. Raises IvrFull (503) when none is ready
        (all in use, or still being opened after a burst), IvrDied when the worker is gone."""
        if self._dead is not None:
            raise IvrDied(f"IVR media unavailable: {self._dead}")
        if not self._ready:
            self._kick()
            raise IvrFull(f"no free IVR channel ({len(self._channels)} of {self.capacity} in use)")
        if self.load > self.max_load:
            raise IvrFull(f"IVR media is overloaded: its loop is busy {self.load:.0%} of the time "
                          f"with {len(self._channels)} channels")
        ch, port = self._ready.pop()
        self._channels[ch] = _Channel(port)
        self._kick()
        return ch, port

    def connect(self, ch: int, remote: Address | None, codec: str, event_pt: int | None) -> None:
        """Where the channel's media goes (the caller's SDP) and how it is encoded. May be
        called again (re-INVITE). `event_pt` is the telephone-event payload type, or None when
        none was negotiated.

        `remote` (ip, port): frames go there until the caller's first RTP packet latches them
        to its source (symmetric RTP). None: hold (c=0.0.0.0, or port 0), nothing is sent
        while still listening. An address this channel cannot send to (a host name, which
        would need DNS here, or the other IP version) is logged and the channel waits for
        the caller's first packet to learn where to send."""
        if codec not in CODECS:
            raise ValueError(f"codec must be PCMU or PCMA, got {codec!r}")
        if event_pt is not None and (isinstance(event_pt, bool) or not isinstance(event_pt, int)
                                     or not 96 <= event_pt <= 127):
            raise ValueError(f"telephone-event payload type must be 96-127, got {event_pt!r}")
        wire, hold = None, remote is None
        if remote is not None:
            try:
                wire = self._wire_address(remote)
            except _Unusable as exc:
                log.warning("IVR channel %s: %s; sending once the caller's first packet arrives", ch, exc)
            except _Hold:
                hold = True
        if self._usable(ch):
            self._op({"op": "connect", "ch": ch, "remote": wire, "hold": hold, "codec": codec,
                      "event_pt": event_pt})

    def port_of(self, ch: int) -> int:
        """The channel's local RTP port (for an SDP answer to a re-INVITE)."""
        state = self._channels.get(ch)
        if state is None:
            raise ValueError(f"IVR channel {ch!r} is not open")
        return state.port

    def register_clip(self, clip_id: str, pcm: np.ndarray) -> None:
        """Make audio (int16 8 kHz mono) playable as `clip_id`; encoded here once per codec,
        padded with silence to whole 20 ms frames. Registering an id again replaces its audio
        for later plays; plays under way finish with the old. Allowed before start()."""
        if not isinstance(clip_id, str) or not clip_id or len(clip_id) > 200:
            raise ValueError(f"clip id must be a non-empty string of at most 200 characters, got {clip_id!r}")
        samples = np.asarray(pcm)
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise ValueError(f"clip {clip_id!r} must be 1-D int16 samples, got {samples.dtype} shape {samples.shape}")
        if samples.size == 0:
            raise ValueError(f"clip {clip_id!r} is empty")
        if samples.size > MAX_CLIP_SECONDS * 8000:
            raise ValueError(f"clip {clip_id!r} is {samples.size / 8000:.0f} s; at most {MAX_CLIP_SECONDS:.0f} s")
        padded = np.zeros(-(-samples.size // FRAME) * FRAME, dtype=np.int16)
        padded[:samples.size] = samples
        self._flush_batch()      # clip parts must not overtake commands queued before them
        for codec in CODECS:
            data = g711.encode(padded, codec).tobytes()
            for start in range(0, len(data), PART_BYTES):
                last = start + PART_BYTES >= len(data)
                header = {"op": "clip", "clip": clip_id, "codec": codec, "last": last}
                self._outbox.append(json.dumps(header).encode() + b"\n" + data[start:start + PART_BYTES])
        self._clips[clip_id] = len(padded) // FRAME
        self._pump()

    def forget_clip(self, clip_id: str) -> None:
        """Free a clip's memory in the worker (plays under way finish first)."""
        if self._clips.pop(clip_id, None) is not None:
            self._op({"op": "forget_clip", "clip": clip_id})

    def clip_seconds(self, clip_id: str) -> float:
        """The clip's length as played (whole frames)."""
        return self._clips[clip_id] * FRAME / 8000

    def play(self, ch: int, clip_ids: list[str], token: int) -> None:
        """Play the clips back to back, replacing whatever the channel plays; PlaybackDone(ch,
        token) follows the last frame. An empty list just stops playback."""
        if isinstance(clip_ids, str):
            raise TypeError("clip_ids must be a list of clip ids, not one string")
        clip_ids = list(clip_ids)
        unknown = [c for c in clip_ids if c not in self._clips]
        if unknown:
            raise ValueError(f"no clip {unknown[0]!r} registered")
        if not self._usable(ch):
            return
        state = self._channels[ch]
        state.play_gen += 1
        state.play_token = token if clip_ids else None
        self._op({"op": "play", "ch": ch, "clips": clip_ids, "gen": state.play_gen})

    def stop_playback(self, ch: int) -> None:
        if not self._usable(ch):
            return
        state = self._channels[ch]
        state.play_gen += 1
        state.play_token = None
        self._op({"op": "play", "ch": ch, "clips": [], "gen": state.play_gen})

    def record(self, ch: int, max_seconds: float, token: int) -> None:
        """Collect the caller's audio until stop_recording or `max_seconds` of it (at most 600);
        then Recorded(ch, token, pcm). A recording under way ends first, with its own event."""
        if not (isinstance(max_seconds, (int, float)) and 0 < max_seconds <= MAX_CLIP_SECONDS):
            raise ValueError(f"max_seconds must be in (0, {MAX_CLIP_SECONDS:g}], got {max_seconds!r}")
        if self._usable(ch):
            self._op({"op": "record", "ch": ch, "max_seconds": float(max_seconds), "token": token})

    def stop_recording(self, ch: int) -> None:
        """End the recording: Recorded follows (nothing, if the channel was not recording)."""
        if self._usable(ch):
            self._op({"op": "stop_recording", "ch": ch})

    def close(self, ch: int) -> None:
        """Release the channel: its port closes and, later, returns to the pool. No further
        events for it. Closing twice, or after ChannelFailed, is harmless."""
        if self._channels.pop(ch, None) is None:
            return
        if self._dead is None:
            self._op({"op": "close", "ch": ch})
            self._kick()

    # --- internals: commands -------------------------------------------------------------------

    def _usable(self, ch: int) -> bool:
        """True if commands for `ch` should go to the worker; False for a channel whose worker
        died (ChannelFailed was delivered); ValueError for one that is not open."""
        state = self._channels.get(ch)
        if state is None:
            raise ValueError(f"IVR channel {ch!r} is not open")
        return not state.failed and self._dead is None

    def _wire_address(self, address: Address) -> list:
        try:
            host, port = address
        except (TypeError, ValueError):
            raise ValueError(f"remote must be (ip, port) or None, got {address!r}") from None
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"bad RTP port {port!r} for {host}")
        if port == 0:
            raise _Hold()            # a rejected stream: nothing to send
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise _Unusable(f"media address {host!r} is not an IP address") from None
        if (ip.version == 6) != (self.family == socket.AF_INET6):
            raise _Unusable(f"media address {host} is IPv{ip.version}; IVR media is bound to {self.host}")
        return [str(ip), port]

    def _op(self, op: dict) -> None:
        self._batch.append(op)
        if not self._batch_scheduled:
            self._batch_scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self._flush_batch)
            except RuntimeError:
                self._flush_batch()

    def _flush_batch(self) -> None:
        """Everything asked in one loop iteration goes in as few messages as will fit: the
        control socket queues only net.unix.max_dgram_qlen (10) messages."""
        self._batch_scheduled = False
        batch, self._batch = self._batch, []
        message: list[bytes] = []
        size = 0
        for op in batch:
            encoded = json.dumps(op, separators=(",", ":")).encode()
            if message and size + len(encoded) > PART_BYTES:
                self._outbox.append(b'{"ops":[' + b",".join(message) + b"]}")
                message, size = [], 0
            message.append(encoded)
            size += len(encoded) + 1
        if message:
            self._outbox.append(b'{"ops":[' + b",".join(message) + b"]}")
        self._pump()

    def _pump(self) -> None:
        sock = self._sock
        if self._dead is not None and self._process is not None:
            self._outbox.clear()      # the worker is gone: nobody will read it
            return
        if sock is None or self._dead is not None:
            return                    # not started yet: sent once the worker is up
        outbox = self._outbox
        while outbox:
            try:
                sock.send(outbox[0])
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    self._loop.add_writer(sock.fileno(), self._pump)
                return
            except OSError as exc:
                self._close(self._exit_reason(f"control channel failed ({exc.strerror})"))
                return
            outbox.popleft()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(sock.fileno())

    async def _request(self, op: dict) -> dict:
        if self._dead is not None:
            raise IvrDied(f"IVR media unavailable: {self._dead}")
        rid = next(self._ids)
        op["id"] = rid
        future = self._loop.create_future()
        self._pending[rid] = future
        self._op(op)
        try:
            try:
                reply = await asyncio.wait_for(future, self.timeout)
            except asyncio.TimeoutError:
                raise IvrError(f"IVR media process did not answer {op['op']!r} within {self.timeout:g} s") from None
        finally:
            self._pending.pop(rid, None)
        if reply.get("error") is not None:
            raise IvrError(f"IVR media {op['op']}: {reply.get('reason', reply['error'])}")
        return reply

    def _kick(self) -> None:
        if (self._dead is None and self._opening == 0 and len(self._ready) < self.spare
                and len(self._ready) + len(self._channels) < self.capacity):
            self._loop.create_task(self._refill())

    async def _refill(self) -> None:
        """Open channels until `spare` are ready; the worker opens a few per request, so that
        binding sockets never holds up its tick for long."""
        if self._opening:
            return
        while self._dead is None:
            want = min(self.spare - len(self._ready), self.capacity - len(self._ready) - len(self._channels))
            if want <= 0:
                return
            self._opening = want
            try:
                reply = await self._request({"op": "open", "count": want})
            except IvrError as exc:
                if self._dead is None:
                    log.warning("cannot open IVR channels ahead: %s", exc)
                return
            finally:
                self._opening = 0
            self._ready.extend((ch, port) for ch, port in reply["opened"])
            if reply.get("reason"):
                # Ports held by other programs: the pool is as full as it gets for now.
                log.info("IVR media opened %d of %d channels: %s", len(reply["opened"]), want, reply["reason"])
                return

    # --- internals: what the worker says ---------------------------------------------------------

    def _readable(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(256 * 1024)
            except BlockingIOError:
                return
            except OSError as exc:
                data = b""
                log.error("IVR media control socket: %s", exc)
            if not data:
                self._close(self._exit_reason("IVR media process closed its control channel"))
                return
            self._last_heard = self._loop.time()
            header, _, blob = data.partition(b"\n")
            try:
                message = json.loads(header)
            except ValueError:
                log.error("IVR media process sent an unreadable message: %r", data[:100])
                continue
            if "events" in message:
                self._deliver_events(message["events"])
            elif "beat" in message:
                self.load = float(message.get("load", 0.0))
            elif "rec" in message:
                self._recording_part(message, blob)
            elif "ready" in message or "id" in message:
                future = self._pending.get(0 if "ready" in message else message["id"])
                if future is not None and not future.done():
                    future.set_result(message)
                if message.get("ready") is False:
                    self._close(message.get("error", "IVR media process refused to start"))
                    return

    def _deliver_events(self, events: list) -> None:
        for event in events:
            kind, ch = event[0], event[1]
            state = self._channels.get(ch)
            if state is None:
                continue       # closed since: nothing more for it
            if kind == "digit":
                self._emit(Digit(ch, event[2], event[3], event[4]))
            elif kind == "done":
                if event[2] == state.play_gen and state.play_token is not None:
                    token, state.play_token = state.play_token, None
                    self._emit(PlaybackDone(ch, token))
            elif kind == "failed":
                state.failed = True
                self._emit(ChannelFailed(ch, event[2]))

    def _recording_part(self, message: dict, blob: bytes) -> None:
        ch = message["rec"]
        state = self._channels.get(ch)
        if state is None:
            return
        state.recording.append(blob)
        if message["last"]:
            data = b"".join(state.recording)
            state.recording = []
            self._emit(Recorded(ch, message["token"], np.frombuffer(data, dtype=np.int16).copy()))

    def _emit(self, event: IvrEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - one bad handler must not stop every channel's events
            log.exception("IVR media event handler failed on %r", event)

    def _check_alive(self) -> None:
        if self._dead is not None:
            return
        self._readable()          # a busy loop may not have read what is waiting
        if self._dead is not None:
            return
        silent = self._loop.time() - self._last_heard
        if silent > self.timeout:
            self._kill()
            self._close(f"IVR media process stopped answering ({silent:.1f} s silent; killed)")
            return
        self._watchdog = self._loop.call_later(self.timeout / 4, self._check_alive)

    def _exit_reason(self, otherwise: str) -> str:
        code = None
        if self._process is not None:
            # The channel closes while the process exits; its status follows a moment later.
            for _ in range(20):
                code = self._process.poll()
                if code is not None:
                    break
                time.sleep(0.005)
        if code is None:
            return otherwise
        if code < 0:
            try:
                return f"IVR media process exited: killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"IVR media process exited: killed by signal {-code}"
        return f"IVR media process exited with status {code}"

    def _close(self, reason: str) -> None:
        if self._dead is not None:
            return
        self._dead = reason
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._sock is not None:
            try:
                self._loop.remove_reader(self._sock.fileno())
                if self._writing:
                    self._loop.remove_writer(self._sock.fileno())
            except (ValueError, RuntimeError):
                pass
            self._sock.close()
            self._sock = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(IvrDied(f"IVR media unavailable: {reason}"))
        self._ready.clear()
        self._outbox.clear()
        if self._stopping:
            return
        log.error("IVR media: %s", reason)
        for ch, state in list(self._channels.items()):
            if not state.failed:
                state.failed = True
                self._emit(ChannelFailed(ch, reason))

    def _kill(self) -> None:
        proc = self._process
        if proc is not None and proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
            proc.wait()
