"""The IVR media process: one loop that, every 20 ms tick, serves every IVR channel at once.

Started by `ivr.media.IvrMedia` as

    python -I _media_worker.py CONTROL_FD HOST PORT_MIN PORT_MAX TICK RELATCH_GAP

Each 20 ms tick has four send points, 5 ms apart, and each connected channel belongs to
one (a thousand frames go out as four short bursts, not one long one). At each point
(docs/ivr-media.md has the reasons):

1. Send: the next pre-encoded frame of each channel of that point (its clip, or comfort
   silence so that NATs and the phone's media timer stay happy), one RTP packet each,
   numbered by the channel (SSRC, sequence number, timestamp = 160 per tick, marker on the
   first packet and after a pause). Points keep absolute deadlines (start + k * 5 ms), so
   lateness never accumulates; a frame sent more than half a tick after its point counts
   as late, and after a stall of more than 200 ms the missed frames are skipped (and
   counted late) rather than sent in a burst.
2. Receive: everything that arrived on every channel since the last point, one
   `recvfrom_into` into one scratch buffer per datagram (the loop wakes per point, not per
   packet). Audio payloads land in the channel's row of one (channels, 160) array;
   telephone-events go to the channel's `Rfc4733Receiver`. Symmetric RTP: the first valid
   packet latches the channel's destination to its source, as the relay does.

After the last point of the tick:

3. Detect: the rows of every channel that received a frame are decoded together and the
   in-band `BatchDetector` runs once over them (a channel that got two frames in one tick,
   after jitter or with 10 ms packets, has its second frame in a further round).
   `DtmfDeduplicator` makes a press sent both as events and as tones one digit.
4. Report: the tick's events (digits, playbacks done, failures) go to the parent in one
   message; a heartbeat every 0.25 s tells it the loop is alive.

Commands (ivr/_media_channels.py) are read while waiting for the next send point, and
for a moment at the end of every tick.
When the control socket closes (the parent stopped or died) the process exits.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import select
import socket
import struct
import sys
from collections import deque
from pathlib import Path
from time import monotonic

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))     # -I leaves the project off sys.path

import numpy as np  # noqa: E402

from ivr._media_channels import FRAME, PART, Channel, ChannelCommands, warn  # noqa: E402
from ivr.dtmf import BatchDetector  # noqa: E402
from sipcore.g711 import ALAW_DECODE, ALAW_SILENCE, ULAW_DECODE, ULAW_SILENCE  # noqa: E402

HEADER = struct.Struct("!BBHII")
SILENCE = {"PCMU": bytes([ULAW_SILENCE]) * FRAME, "PCMA": bytes([ALAW_SILENCE]) * FRAME}
CN_PT = 13                    # comfort noise (RFC 3389): accepted and ignored
MAX_BEHIND = 0.2              # a stall longer than this skips frames instead of bursting
PHASES = 4                    # send points per tick; each channel has one
POINTS = PHASES + 1           # and then the detection point: 4 ms apart at the usual tick
MAX_PENDING = 10 * FRAME      # audio a channel may have waiting beyond one frame per round
EXTRA_ROUNDS = 3              # detector rounds per tick for channels that got several frames
RECEIVE_PASSES = 4            # sockets still readable are read again, up to this many times
BEAT = 0.25
EVENTS_PER_MESSAGE = 500
GC_EVERY = 10.0


def payload_bounds(buf: bytearray, n: int) -> tuple[int, int] | None:
    """Where an RTP packet's payload lies (CSRCs, extension and padding skipped), or None."""
    b0 = buf[0]
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:
        if off + 4 > n:
            return None
        off += 4 + 4 * ((buf[off + 2] << 8) | buf[off + 3])
    end = n
    if b0 & 0x20:
        pad = buf[n - 1]
        if pad == 0:
            return None
        end -= pad
    return (off, end) if off <= end else None


class Worker(ChannelCommands):
    """The loop over all channels; the commands that change them are in ChannelCommands."""

    def __init__(self, control: socket.socket, host: str, port_min: int, port_max: int, tick: float, gap: float):
        self.control = control
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.tick = tick
        self.late = tick / 2
        self.gap = gap
        first = port_min + (port_min & 1)
        self.free: deque[int] = deque(range(first, port_max, 2))   # p and p + 1 both <= port_max
        self.capacity = len(self.free)
        self.detector = BatchDetector(max(1, self.capacity))
        self.rx = np.zeros((max(1, self.capacity), FRAME), dtype=np.uint8)
        self.rx_bytes = memoryview(self.rx).cast("B")
        self.alaw = np.zeros(max(1, self.capacity), dtype=bool)
        self.scratch = bytearray(2048)
        self.scratch_view = memoryview(self.scratch)
        self.channels: dict[int, Channel] = {}
        self.by_fd: dict[int, Channel] = {}
        self.by_slot: dict[int, Channel] = {}
        # Connected channels in PHASES groups, each sent at its own point of the tick: the
        # frames of many channels go out as several short bursts rather than one long one.
        self.groups: list[dict[int, Channel]] = [{} for _ in range(PHASES)]
        self.recording: dict[int, Channel] = {}
        self.ready: list[Channel] = []
        self.clips: dict[str, dict[str, bytes]] = {}
        self.clip_parts: dict[tuple[str, str], bytearray] = {}
        self.next_id = 1
        self.tick_no = 0
        self.media_poll = select.epoll()
        self.control_poll = select.epoll()
        self.control_poll.register(control.fileno(), select.EPOLLIN)
        self.outbox: deque[bytes] = deque()
        self.backlog: deque[dict] = deque()      # commands received and not yet done
        self.rotor = 0                           # where receiving starts among ready sockets
        self.busy_at_beat = 0.0
        self.waiting_for_room = False
        self.events: list[list] = []
        self.running = True
        self.last_beat = 0.0
        self.last_gc = monotonic()
        self.counters = dict.fromkeys((
            "frames_sent", "frames_late", "digits", "digits_inband", "digits_rfc4733", "ticks",
            "frames_skipped", "packets_received", "dropped_invalid", "dropped_foreign", "send_errors"), 0)
        self.max_behind = 0.0
        self.phases = [0.0, 0.0, 0.0]   # wall seconds in send, receive, detect + report

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        start = monotonic()
        k = 0                                      # points since start: POINTS per tick
        step = self.tick / POINTS
        poll = self.control_poll.poll
        counters = self.counters
        while self.running:
            slot = start + k * step
            wait = slot - monotonic()
            if wait > 0:
                if self.backlog:
                    self.handle_control(slot)
                    continue
                for _, mask in poll(wait):
                    if mask & select.EPOLLOUT:
                        self.flush_out()
                    if mask & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self.handle_control(slot)
                continue
            if -wait > MAX_BEHIND:
                skip = int(-wait / step)
                ticks, rest = divmod(skip, POINTS)
                sizes = [sum(1 for c in group.values() if c.dest is not None) for group in self.groups]
                skipped = ticks * sum(sizes) + sum(sizes[(k + j) % POINTS] for j in range(rest)
                                                   if (k + j) % POINTS < PHASES)
                counters["frames_skipped"] += skipped
                counters["frames_late"] += skipped
                k += skip
                slot = start + k * step
            self.run_point(k // POINTS, k % POINTS, slot, slot + step)
            k += 1

    def run_point(self, n: int, point: int, slot: float, next_slot: float) -> None:
        """One point of tick n: a send point sends its group's frames, the detection point
        (the last) runs the detector over the tick's audio and reports; both then receive
        what has arrived, until the next point."""
        self.tick_no = n
        phases = self.phases
        started = monotonic()
        if point < PHASES:
            self.send_frames(n, slot, self.groups[point])
            now = monotonic()
            self.receive(now, next_slot)
            phases[0] += now - started
            phases[1] += monotonic() - now
            return
        self.counters["ticks"] += 1
        self.receive(started, next_slot)
        now = monotonic()
        phases[1] += now - started
        self.detect(now)
        if self.recording:
            for c in [c for c in self.recording.values() if now >= c.rec_deadline]:
                self.finish_recording(c)
        self.report(now)
        # Normally commands are read while waiting for the next point; a loop that runs behind
        # for a while never waits, so each tick also gives them a moment.
        self.handle_control(monotonic() + 0.001)
        phases[2] += monotonic() - now

    def send_frames(self, n: int, slot: float, group: dict[int, Channel]) -> None:
        late_at = slot + self.late
        pack_into = HEADER.pack_into
        clock = monotonic
        sent = late = 0
        is_late = False
        behind = clock() - slot
        if behind > self.max_behind:
            self.max_behind = behind
        ts_step = FRAME * n
        for c in group.values():
            dest = c.dest
            if dest is None:
                continue
            tx = c.tx
            clip = c.clip
            if clip is None:
                if not c.silent:
                    tx[12:] = SILENCE[c.codec]
                    c.silent = True
            else:
                pos = c.pos
                tx[12:] = clip[pos:pos + FRAME]
                c.silent = False
                pos += FRAME
                if pos >= len(clip):
                    self.next_clip(c)
                else:
                    c.pos = pos
            pack_into(tx, 0, 0x80, (0x80 | c.pt) if c.marker else c.pt, c.seq,
                      (c.ts_base + ts_step) & 0xFFFFFFFF, c.ssrc)
            c.marker = False
            c.seq = (c.seq + 1) & 0xFFFF
            try:
                c.sendto(tx, dest)
            except OSError:
                self.counters["send_errors"] += 1
            sent += 1
            if not is_late and clock() > late_at:
                is_late = True
            if is_late:
                late += 1
        self.counters["frames_sent"] += sent
        self.counters["frames_late"] += late

    def next_clip(self, c: Channel) -> None:
        """Start the channel's next queued clip; at the end of the queue, report the play done."""
        while c.queue:
            clip_id = c.queue.popleft()
            data = self.clips.get(clip_id, {}).get(c.codec)
            if data is not None:
                c.clip, c.clip_id, c.pos = memoryview(data), clip_id, 0
                return
            warn(f"channel {c.id}: clip {clip_id!r} is not registered; skipped")
        c.clip = c.clip_id = None
        self.events.append(["done", c.id, c.gen])

    def receive(self, now: float, deadline: float) -> None:
        """What has arrived, until the next send point is due: sending is what must be on
        time, packets can wait in their sockets. At least a share of the channels is read
        every time (each channel sends one packet a tick, and there are PHASES calls a tick),
        so that a loop running behind still keeps pace with what arrives."""
        by_fd = self.by_fd
        at_least = len(by_fd) // PHASES + 16
        buf = self.scratch
        view = self.scratch_view
        ready = self.ready
        gap = self.gap
        counters = self.counters
        maxevents = max(1, len(by_fd))
        size = len(buf)                 # a datagram that fills it was truncated: too big for RTP audio
        received = invalid = foreign = 0
        out_of_time = False
        for _ in range(RECEIVE_PASSES):
            events = self.media_poll.poll(0, maxevents)
            if not events or out_of_time:
                break
            # epoll hands the ready sockets back in the same order each time: when time runs
            # out part way, the next call starts where this one stopped, or the last sockets
            # in that order would wait for ever (and a key press's packets arrive seconds apart).
            start = self.rotor % len(events)
            if start:
                events = events[start:] + events[:start]
            for fd, _ in events:
                if received >= at_least and not received & 31 and monotonic() >= deadline:
                    out_of_time = True    # the rest stay readable for the next call
                    break
                self.rotor += 1
                c = by_fd.get(fd)
                if c is None:
                    continue
                try:
                    n, src = c.recvfrom_into(buf)
                except OSError:   # EAGAIN, or an ICMP error left over from an earlier send
                    continue
                received += 1
                if n < 12 or buf[0] & 0xC0 != 0x80 or n == size or not c.connected:
                    invalid += 1
                    continue
                pt = buf[1] & 0x7F
                if pt != c.pt and pt != c.event_pt and pt != CN_PT:
                    invalid += 1          # never latches: not the caller's stream
                    continue
                plain = n == 12 + FRAME and buf[0] == 0x80
                if plain:
                    off, end = 12, n
                else:
                    bounds = payload_bounds(buf, n)
                    if bounds is None or (pt == c.event_pt and bounds[1] - bounds[0] < 4):
                        invalid += 1      # malformed: checked whole before it may latch
                        continue
                    off, end = bounds
                if src != c.latched:
                    if c.latched is not None and now - c.last_rx < gap:
                        foreign += 1
                        continue
                    c.latched = src
                    if not c.hold:
                        c.dest = src
                c.last_rx = now
                if pt == c.pt:
                    if plain and not c.has_frame and not c.pending:
                        c.row[:] = view[12:12 + FRAME]
                        c.has_frame = True
                        ready.append(c)
                    else:
                        self.audio_slow(c, off, end)
                elif pt == c.event_pt:
                    self.telephone_event(c, off, now)
        counters["packets_received"] += received
        counters["dropped_invalid"] += invalid
        counters["dropped_foreign"] += foreign

    def audio_slow(self, c: Channel, off: int, end: int) -> None:
        """Audio that is not one plain 20 ms packet, or that queues behind earlier audio."""
        c.pending += self.scratch_view[off:end]
        if len(c.pending) > MAX_PENDING:
            del c.pending[:len(c.pending) - MAX_PENDING]   # a sender far too fast: keep the newest
        if not c.has_frame:
            self.frame_from_pending(c)

    def frame_from_pending(self, c: Channel) -> None:
        if len(c.pending) >= FRAME:
            c.row[:] = c.pending[:FRAME]
            del c.pending[:FRAME]
            c.has_frame = True
            self.ready.append(c)

    def telephone_event(self, c: Channel, off: int, now: float) -> None:
        buf = self.scratch
        flags = buf[off + 1]
        digit = c.rfc4733.feed(buf[off], bool(flags & 0x80), flags & 0x3F, (buf[off + 2] << 8) | buf[off + 3],
                               int.from_bytes(buf[4:8], "big"), (buf[2] << 8) | buf[3], bool(buf[1] & 0x80), now)
        if digit:
            self.digit(c, digit, "rfc4733", now)

    def digit(self, c: Channel, digit: str, source: str, now: float) -> None:
        if c.dedup.offer(digit, source, now) is not None:
            self.events.append(["digit", c.id, digit, source, now])
            self.counters["digits"] += 1
            self.counters["digits_" + source] += 1

    def detect(self, now: float) -> None:
        rounds = 0
        while self.ready and rounds <= EXTRA_ROUNDS:
            rounds += 1
            chans, self.ready = self.ready, []
            chans.sort(key=lambda c: c.slot)
            slots = np.fromiter((c.slot for c in chans), dtype=np.intp, count=len(chans))
            codes = self.rx[slots]
            alaw = self.alaw[slots]
            pcm = ULAW_DECODE[codes]
            if alaw.any():
                pcm[alaw] = ALAW_DECODE[codes[alaw]]
            try:
                found = self.detector.process(pcm, slots)
            except Exception as exc:  # noqa: BLE001 - a detector fault must not stop the prompts
                warn(f"DTMF detector failed: {type(exc).__name__}: {exc}")
                found = []
            for i, c in enumerate(chans):
                c.has_frame = False
                if c.rec is not None:
                    c.rec.append(pcm[i].tobytes())
                    if len(c.rec) >= c.rec_limit:
                        self.finish_recording(c)
            for slot, digit in found:
                c = self.by_slot.get(slot)
                if c is not None:
                    self.digit(c, digit, "inband", now)
            for c in chans:
                if c.pending:
                    self.frame_from_pending(c)
        for c in self.ready:   # past the rounds: they wait for the next tick
            c.has_frame = False
            c.pending[:0] = c.row
        self.ready = []

    def finish_recording(self, c: Channel) -> None:
        data = b"".join(c.rec or ())
        c.rec = None
        self.recording.pop(c.id, None)
        for start in range(0, max(len(data), 1), PART):
            header = {"rec": c.id, "token": c.rec_token, "last": start + PART >= len(data)}
            self.send(json.dumps(header).encode() + b"\n" + data[start:start + PART])

    def report(self, now: float) -> None:
        events = self.events
        if events:
            for start in range(0, len(events), EVENTS_PER_MESSAGE):
                self.send(json.dumps({"events": events[start:start + EVENTS_PER_MESSAGE]}).encode())
            self.events = []
        if now - self.last_beat >= BEAT:
            # How much of the last beat the loop spent working: the parent refuses new
            # channels when it nears 1 (every call would suffer, not just the new one).
            busy = sum(self.phases)
            load = (busy - self.busy_at_beat) / max(now - self.last_beat, 1e-3)
            self.busy_at_beat, self.last_beat = busy, now
            self.send(b'{"beat":%d,"load":%.3f}' % (self.tick_no, min(load, 9.999)))
        if now - self.last_gc >= GC_EVERY:
            self.last_gc = now
            gc.collect(1)    # the loop makes no cycles to speak of; this keeps it that way

    # --- control ----------------------------------------------------------------------------------

def raise_file_limit() -> None:
    # Two sockets per channel: the default soft limit (often 1024) would cap us at ~500.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


def main(argv: list[str]) -> int:
    fd, host = int(argv[1]), argv[2]
    port_min, port_max, tick, gap = int(argv[3]), int(argv[4]), float(argv[5]), float(argv[6])
    control = socket.socket(fileno=fd)
    control.setblocking(False)
    raise_file_limit()
    # A host this machine does not have would make every port "busy" and every call "full":
    # say what is wrong instead, before the parent counts on us.
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
    except OSError as exc:
        control.send(json.dumps({"ready": False, "error": f"cannot bind {host}: {exc.strerror}"}).encode())
        return 1
    worker = Worker(control, host, port_min, port_max, tick, gap)
    gc.disable()   # collections at random moments would only add jitter; see report()
    gc.freeze()
    control.send(json.dumps({"ready": True, "pid": os.getpid(), "capacity": worker.capacity}).encode())
    try:
        worker.run()
    except KeyboardInterrupt:
        pass
    worker.flush_out()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
