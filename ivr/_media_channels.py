"""IVR media worker: one channel's state, and the commands that open, connect, play to,
record and close channels (the loop over all of them is in _media_worker.py).

Commands arrive as JSON on the control socket between send points: ``{"ops": [...]}``
batches, and clip audio as ``{"op": "clip", ...}\\n<G.711 bytes>`` parts. Each op is
``op_<name>(op)``; a reply goes back when the op carries an "id". An op that fails is
answered with the reason and, for a channel, reported as a "failed" event: one bad command
never ends the other calls.
"""
from __future__ import annotations

import json
import random
import select
import socket
import sys
from collections import deque
from time import monotonic

from ivr.dtmf_events import DtmfDeduplicator, Rfc4733Receiver

FRAME = 160
AUDIO_PT = {"PCMU": 0, "PCMA": 8}
PART = 48 * 1024              # bytes of audio per message (the socket's buffer is ~208 kB)
RECORD_GRACE = 0.5            # a recording ends this long after max_seconds even if audio lags
OPEN_AT_ONCE = 32             # channels opened per command: binding sockets takes time


def warn(message: str) -> None:
    print(f"ivr media worker: {message}", file=sys.stderr, flush=True)


class Channel:
    """One IVR channel: its RTP socket, where media goes, what it plays, what it hears."""

    __slots__ = (
        "id", "slot", "port", "sock", "rtcp", "row", "connected", "remote", "hold", "latched", "last_rx",
        "dest", "codec", "pt", "event_pt", "ssrc", "seq", "ts_base", "marker", "tx", "silent",
        "queue", "clip", "clip_id", "pos", "gen", "pending", "has_frame", "rec", "rec_token",
        "rec_limit", "rec_deadline", "rfc4733", "dedup", "sendto", "recvfrom_into",
    )

    def __init__(self, cid: int, slot: int, port: int, sock: socket.socket, rtcp: socket.socket,
                 row: memoryview):
        self.id, self.slot, self.port, self.sock, self.rtcp, self.row = cid, slot, port, sock, rtcp, row
        self.sendto, self.recvfrom_into = sock.sendto, sock.recvfrom_into     # looked up once
        self.connected = False
        self.remote: tuple | None = None      # from SDP (connect)
        self.hold = False                     # send nothing, even once latched
        self.latched: tuple | None = None     # source of the caller's packets
        self.last_rx = float("-inf")
        self.dest: tuple | None = None        # where frames go; None: send nothing
        self.codec = "PCMU"
        self.pt = 0
        self.event_pt: int | None = None
        # Random starting points (RFC 3550 5.1).
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts_base = 0
        self.marker = True
        self.tx = bytearray(12 + FRAME)
        self.silent = False                   # tx already holds a silence payload
        self.queue: deque[str] = deque()      # clips after the current one
        self.clip: memoryview | None = None
        self.clip_id: str | None = None
        self.pos = 0
        self.gen = 0
        self.pending = bytearray()            # audio beyond this round's frame
        self.has_frame = False                # row holds a frame not yet analysed
        self.rec: list[bytes] | None = None   # decoded frames being recorded
        self.rec_token = 0
        self.rec_limit = 0
        self.rec_deadline = 0.0
        self.rfc4733 = Rfc4733Receiver()
        self.dedup = DtmfDeduplicator()



class ChannelCommands:
    """The worker's commands (mixed into _media_worker.Worker, whose __init__ sets up the
    state used here: channels, free ports, detector, groups, clips, the control socket)."""

    def handle_control(self, deadline: float) -> None:
        """Commands, one at a time, until none is waiting or the next send point is due: a
        message may carry hundreds (a burst of calls), and the rest waits in the backlog."""
        backlog = self.backlog
        while monotonic() < deadline:
            if backlog:
                self.do(backlog.popleft())
                continue
            try:
                data = self.control.recv(256 * 1024)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.running = False  # the parent is gone
                return
            header, _, blob = data.partition(b"\n")
            try:
                message = json.loads(header)
                if message.get("op") == "clip":
                    self.clip_part(message, blob)
                    continue
                ops = message["ops"]
                if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
                    raise TypeError("ops must be a list of objects")
                backlog.extend(ops)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                warn(f"unreadable control message ({exc}): {data[:80]!r}")

    def do(self, op: dict) -> None:
        reply = None
        try:
            method = getattr(self, "op_" + str(op["op"]), None)
            if method is None:
                reply = {"error": "bad-request", "reason": f"unknown op {op['op']!r}"}
            else:
                reply = method(op)
        except Exception as exc:  # noqa: BLE001 - one bad command must not end every call
            reason = f"{op.get('op')} failed: {type(exc).__name__}: {exc}"
            warn(reason)
            reply = {"error": "failed", "reason": reason}
            ch = op.get("ch")
            if isinstance(ch, int) and ch in self.channels:
                self.events.append(["failed", ch, reason])
        if "id" in op:
            reply = reply or {}
            reply["id"] = op["id"]
            self.send(json.dumps(reply).encode())

    def send(self, message: bytes) -> None:
        self.outbox.append(message)
        self.flush_out()

    def flush_out(self) -> None:
        """Send queued messages; if the parent is slow to read, wait for room without
        holding up the media."""
        outbox = self.outbox
        while outbox:
            try:
                self.control.send(outbox[0])
            except BlockingIOError:
                if not self.waiting_for_room:
                    self.waiting_for_room = True
                    self.control_poll.modify(self.control.fileno(), select.EPOLLIN | select.EPOLLOUT)
                return
            except OSError:
                self.running = False  # the parent is gone
                return
            outbox.popleft()
        if self.waiting_for_room:
            self.waiting_for_room = False
            self.control_poll.modify(self.control.fileno(), select.EPOLLIN)

    def clip_part(self, message: dict, blob: bytes) -> None:
        key = (str(message["clip"]), str(message["codec"]))
        staged = self.clip_parts.setdefault(key, bytearray())
        staged += blob
        if message.get("last"):
            del self.clip_parts[key]
            if len(staged) % FRAME or key[1] not in AUDIO_PT:
                warn(f"clip {key[0]!r} {key[1]}: {len(staged)} bytes is not whole frames; ignored")
                return
            self.clips.setdefault(key[0], {})[key[1]] = bytes(staged)

    def _bind(self, port: int, rtcp: bool) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            if rtcp:
                # Never read: the smallest buffer absorbs the caller's RTCP and drops the rest.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def open_channel(self) -> Channel | None:
        for _ in range(len(self.free)):
            port = self.free.popleft()
            try:
                rtp = self._bind(port, False)
            except OSError:
                self.free.append(port)   # someone else holds it: try it again later
                continue
            try:
                rtcp = self._bind(port + 1, True)
            except OSError:
                rtp.close()
                self.free.append(port)
                continue
            slot = self.detector.add_channel()
            c = Channel(self.next_id, slot, port, rtp, rtcp, self.rx_bytes[slot * FRAME:(slot + 1) * FRAME])
            self.next_id += 1
            self.channels[c.id] = c
            self.by_fd[rtp.fileno()] = c
            self.by_slot[slot] = c
            self.media_poll.register(rtp.fileno(), select.EPOLLIN)
            return c
        return None

    def channel(self, op: dict) -> Channel | None:
        return self.channels.get(op["ch"])   # None: closed in the meantime

    def op_open(self, op: dict) -> dict:
        """Up to OPEN_AT_ONCE channels (binding sockets takes time the tick cannot spare)."""
        opened = []
        for _ in range(min(int(op["count"]), OPEN_AT_ONCE)):
            c = self.open_channel()
            if c is None:
                return {"opened": opened, "reason": f"no free port pair ({len(self.channels)} channels open)"}
            opened.append([c.id, c.port])
        return {"opened": opened}

    def op_connect(self, op: dict) -> dict | None:
        c = self.channel(op)
        if c is None:
            return None
        remote = tuple(op["remote"]) if op.get("remote") else None
        codec = op["codec"]
        if codec not in AUDIO_PT:
            raise ValueError(f"codec {codec!r}")
        if not c.connected:
            c.connected = True
            c.ts_base = random.getrandbits(32) - FRAME * (self.tick_no + 1)
            min(self.groups, key=len)[c.id] = c
        if remote != c.remote:
            c.latched = None        # a new address takes effect; its first packet latches again
        c.remote = remote
        c.hold = bool(op.get("hold", remote is None))
        dest = None if c.hold else (c.latched or remote)
        if dest is None:
            c.marker = True         # the first packet after the pause is marked
        c.dest = dest
        if codec != c.codec:
            c.codec, c.pt, c.silent = codec, AUDIO_PT[codec], False
            self.alaw[c.slot] = codec == "PCMA"
            if c.clip_id is not None:
                data = self.clips.get(c.clip_id, {}).get(codec)
                if data is not None:
                    c.clip = memoryview(data)
        c.event_pt = op.get("event_pt")
        return None

    def op_play(self, op: dict) -> None:
        c = self.channel(op)
        if c is None:
            return
        c.gen = op["gen"]
        c.queue = deque(op["clips"])
        c.clip = c.clip_id = None
        if c.queue:
            self.next_clip(c)

    def op_record(self, op: dict) -> None:
        c = self.channel(op)
        if c is None:
            return
        if c.rec is not None:
            self.finish_recording(c)
        c.rec = []
        c.rec_token = op["token"]
        seconds = float(op["max_seconds"])
        c.rec_limit = max(1, int(round(seconds * 8000 / FRAME)))
        c.rec_deadline = monotonic() + seconds + RECORD_GRACE
        self.recording[c.id] = c

    def op_stop_recording(self, op: dict) -> None:
        c = self.channel(op)
        if c is not None and c.rec is not None:
            self.finish_recording(c)

    def op_close(self, op: dict) -> None:
        c = self.channels.pop(op["ch"], None)
        if c is None:
            return
        fd = c.sock.fileno()
        self.media_poll.unregister(fd)
        del self.by_fd[fd]
        del self.by_slot[c.slot]
        for group in self.groups:
            group.pop(c.id, None)
        self.recording.pop(c.id, None)
        self.detector.remove_channel(c.slot)
        self.alaw[c.slot] = False
        c.sock.close()
        c.rtcp.close()
        # Back at the end of the queue: the longest possible time before the port is reused,
        # so stray packets of this call do not reach the next one.
        self.free.append(c.port)

    def op_forget_clip(self, op: dict) -> None:
        self.clips.pop(op["clip"], None)

    def op_stats(self, op: dict) -> dict:
        worst, self.max_behind = self.max_behind, 0.0
        return {"channels": len(self.channels), "connected": sum(map(len, self.groups)),
                "max_behind_ms": round(worst * 1000, 3),
                "send_seconds": self.phases[0], "receive_seconds": self.phases[1],
                "detect_seconds": self.phases[2], **self.counters}

    def op_quit(self, op: dict) -> dict:
        self.running = False
        return {"ok": True}
