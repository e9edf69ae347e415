"""The media relay's own process: a tight epoll loop that moves RTP and RTCP between legs.

Started by `sipcore.relay.MediaRelay` as

    python -I _relay_worker.py CONTROL_FD HOST PORT_MIN PORT_MAX RELATCH_GAP

It imports nothing but the standard library (it starts in a few tens of milliseconds and
is independent of the parent's sys.path), owns every relay socket, and takes commands as
JSON datagrams on the SOCK_SEQPACKET control socket it inherited. When the control socket
closes (the parent stopped or died) it exits.

Latching (symmetric RTP), per leg:
- Until a packet arrives, media for the leg goes to the address its SDP gave (`update`).
- The first valid RTP packet on the leg's RTP port latches the leg to its source address;
  media for the leg then goes to that address (the phone may be behind NAT).
- A packet from another source is dropped while the latched source is alive; once the
  latched source has sent nothing for RELATCH_GAP seconds, the next valid packet from
  anywhere re-latches (a NAT rebinding, or a phone that moved).
- `update` with a different address clears the latch (a re-INVITE to a new address takes
  effect with its first packet); `update` with no address (hold with c=0.0.0.0, rejected
  stream) stops media towards the leg, while latching from it goes on.
- RTCP latches separately on the odd port, to its first valid source; that latch is cleared
  whenever the leg's RTP latch changes or `update` changes the address or the RTCP address. Until latched,
  RTCP goes to the given RTCP address, else to the RTP address's port + 1.
Datagrams that are not RTP/RTCP version 2 (or too short) are dropped and never latch.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import select
import socket
import sys
from collections import deque
from time import monotonic

RTP_MIN, RTCP_MIN = 12, 8


class Port:
    """One relay socket: a leg's RTP or RTCP port, and where media for that leg goes."""

    __slots__ = (
        "sock", "number", "rtcp", "leg", "peer", "latched", "last_rx", "dest", "min_len",
        "received", "received_bytes", "forwarded", "forwarded_bytes",
        "dropped_foreign", "dropped_invalid", "dropped_no_destination", "send_errors",
    )

    def __init__(self, sock: socket.socket, number: int, rtcp: bool, leg: "Leg"):
        self.sock = sock
        self.number = number
        self.rtcp = rtcp
        self.leg = leg
        self.peer: Port | None = None       # the other leg's port of the same kind
        self.latched: tuple | None = None
        self.last_rx = 0.0
        self.dest: tuple | None = None      # where packets for this leg are sent (None: nowhere)
        self.min_len = RTCP_MIN if rtcp else RTP_MIN
        self.received = self.received_bytes = self.forwarded = self.forwarded_bytes = 0
        self.dropped_foreign = self.dropped_invalid = self.dropped_no_destination = self.send_errors = 0

    def stats(self) -> dict:
        return {name: getattr(self, name) for name in (
            "received", "received_bytes", "forwarded", "forwarded_bytes", "dropped_foreign",
            "dropped_invalid", "dropped_no_destination", "send_errors")}


class Leg:
    __slots__ = ("rtp", "rtcp", "remote", "rtcp_remote", "send", "port")

    def __init__(self, port: int, rtp_sock: socket.socket, rtcp_sock: socket.socket):
        self.port = port
        self.rtp = Port(rtp_sock, port, False, self)
        self.rtcp = Port(rtcp_sock, port + 1, True, self)
        self.remote: tuple | None = None        # from SDP
        self.rtcp_remote: tuple | None = None   # from SDP (a=rtcp), else remote port + 1
        self.send = True                         # False after update(None): send it nothing

    def refresh(self) -> None:
        """Recompute where media for this leg goes (after a latch or an update)."""
        if not self.send:
            self.rtp.dest = self.rtcp.dest = None
            return
        self.rtp.dest = self.rtp.latched or self.remote
        rtcp_default = self.rtcp_remote or (
            (self.remote[0], self.remote[1] + 1) if self.remote is not None else None)
        if self.rtcp.latched is not None:
            self.rtcp.dest = self.rtcp.latched
        elif rtcp_default is not None:
            self.rtcp.dest = rtcp_default
        elif self.rtp.latched is not None:
            self.rtcp.dest = (self.rtp.latched[0], self.rtp.latched[1] + 1)
        else:
            self.rtcp.dest = None

    def stats(self) -> dict:
        rtp, rtcp = self.rtp.stats(), self.rtcp.stats()
        return {
            "local_port": self.port,
            "remote": list(self.remote) if self.remote else None,
            "latched": list(self.rtp.latched[:2]) if self.rtp.latched else None,
            "latched_rtcp": list(self.rtcp.latched[:2]) if self.rtcp.latched else None,
            "rtcp_packets": rtcp["received"],
            **{k: rtp[k] + rtcp[k] for k in rtp},
        }


class Session:
    __slots__ = ("id", "call_id", "a", "b")

    def __init__(self, sid: int, call_id: str, a: Leg, b: Leg):
        self.id, self.call_id, self.a, self.b = sid, call_id, a, b


class Relay:
    def __init__(self, control: socket.socket, host: str, port_min: int, port_max: int, gap: float):
        self.control = control
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.gap = gap
        first = port_min + (port_min & 1)
        self.free: deque[int] = deque(range(first, port_max, 2))  # p and p+1 both <= port_max
        self.sessions: dict[int, Session] = {}
        self.ports: dict[int, Port] = {}
        self.next_id = 1
        self.epoll = select.epoll()
        self.epoll.register(control.fileno(), select.EPOLLIN)
        self.replies: deque[bytes] = deque()   # waiting for room in the control socket
        self.waiting_for_room = False
        self.running = True

    # --- the hot loop ---------------------------------------------------------------

    def run(self) -> None:
        ports = self.ports
        buf = bytearray(65536)
        view = memoryview(buf)
        poll = self.epoll.poll
        control_fd = self.control.fileno()
        gap = self.gap
        while self.running:
            events = poll(1.0)
            if not events:
                gc.collect()  # idle: the cheapest moment for the collector we keep disabled
                continue
            now = monotonic()
            for fd, _ in events:
                port = ports.get(fd)
                if port is None:
                    if fd == control_fd:
                        if self.replies:
                            self.flush_replies()
                        self.handle_control()
                    continue
                try:
                    n, src = port.sock.recvfrom_into(buf)
                except OSError:  # EAGAIN, or an ICMP error left over from an earlier send
                    continue
                if n < port.min_len or buf[0] & 0xC0 != 0x80:
                    port.dropped_invalid += 1
                    continue
                if src != port.latched:
                    # RTCP (one packet every few seconds) never re-latches on a gap: only a
                    # new RTP latch or an update frees it.
                    if port.latched is not None and (port.rtcp or now - port.last_rx < gap):
                        port.dropped_foreign += 1
                        continue
                    self.latch(port, src)
                port.last_rx = now
                port.received += 1
                port.received_bytes += n
                peer = port.peer
                dest = peer.dest
                if dest is None:
                    port.dropped_no_destination += 1
                    continue
                try:
                    peer.sock.sendto(view[:n], dest)
                except OSError:
                    port.send_errors += 1
                    continue
                port.forwarded += 1
                port.forwarded_bytes += n

    def latch(self, port: Port, src: tuple) -> None:
        port.latched = src
        leg = port.leg
        if not port.rtcp:
            # A new RTP source: its RTCP will come from the same new place, not the old one.
            leg.rtcp.latched = None
        leg.refresh()

    # --- control --------------------------------------------------------------------

    def handle_control(self) -> None:
        while True:
            request = None
            try:
                data = self.control.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.running = False  # the parent is gone
                return
            try:
                request = json.loads(data)
                reply = getattr(self, "op_" + request["op"])(request)
            except KeyError as exc:
                reply = {"error": "bad-request", "reason": f"missing or unknown {exc}"}
            except AttributeError:
                reply = {"error": "bad-request", "reason": f"unknown op {request.get('op')!r}"}
            except Exception as exc:  # noqa: BLE001 - one bad command must not end every call
                reply = {"error": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            if isinstance(request, dict) and "id" in request:
                reply["id"] = request["id"]
            self.replies.append(json.dumps(reply).encode())
            self.flush_replies()

    def flush_replies(self) -> None:
        """Send queued replies; if the parent is slow to read, wait for room without
        blocking the media loop."""
        replies = self.replies
        while replies:
            try:
                self.control.send(replies[0])
            except BlockingIOError:
                if not self.waiting_for_room:
                    self.waiting_for_room = True
                    self.epoll.modify(self.control.fileno(), select.EPOLLIN | select.EPOLLOUT)
                return
            except OSError:
                self.running = False  # the parent is gone
                return
            replies.popleft()
        if self.waiting_for_room:
            self.waiting_for_room = False
            self.epoll.modify(self.control.fileno(), select.EPOLLIN)

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _take_leg(self) -> Leg | None:
        for _ in range(len(self.free)):
            port = self.free.popleft()
            try:
                rtp = self._bind(port)
            except OSError:
                self.free.append(port)  # in use by someone else: try it again later
                continue
            try:
                rtcp = self._bind(port + 1)
            except OSError:
                rtp.close()
                self.free.append(port)
                continue
            leg = Leg(port, rtp, rtcp)
            for p in (leg.rtp, leg.rtcp):
                self.ports[p.sock.fileno()] = p
                self.epoll.register(p.sock.fileno(), select.EPOLLIN)
            return leg
        return None

    def _drop_leg(self, leg: Leg) -> None:
        for p in (leg.rtp, leg.rtcp):
            fd = p.sock.fileno()
            self.epoll.unregister(fd)
            del self.ports[fd]
            p.sock.close()
        # Back at the end of the queue: the longest possible time before the port is reused,
        # so stray packets of this call do not reach the next one.
        self.free.append(leg.port)

    def op_ping(self, request: dict) -> dict:
        return {"ok": True, "sessions": len(self.sessions), "free_ports": len(self.free)}

    def op_alloc(self, request: dict) -> dict:
        a = self._take_leg()
        b = self._take_leg() if a is not None else None
        if b is None:
            if a is not None:
                self._drop_leg(a)
            return {"error": "full", "reason": f"no free relay port pair ({len(self.sessions)} sessions)"}
        a.rtp.peer, b.rtp.peer = b.rtp, a.rtp
        a.rtcp.peer, b.rtcp.peer = b.rtcp, a.rtcp
        sid = self.next_id
        self.next_id += 1
        self.sessions[sid] = Session(sid, str(request.get("call_id", "")), a, b)
        return {"ok": True, "session": sid, "a": a.port, "b": b.port}

    def _session(self, request: dict) -> Session:
        session = self.sessions.get(request["session"])
        if session is None:
            raise LookupError(f"no relay session {request['session']!r}")
        return session

    def op_update(self, request: dict) -> dict:
        try:
            session = self._session(request)
        except LookupError as exc:
            return {"error": "unknown-session", "reason": str(exc)}
        leg = {"a": session.a, "b": session.b}.get(request["leg"])
        if leg is None:
            return {"error": "bad-request", "reason": f"leg must be 'a' or 'b', got {request['leg']!r}"}
        remote = tuple(request["remote"]) if request.get("remote") else None
        rtcp = tuple(request["rtcp"]) if request.get("rtcp") else None
        if remote is None:
            leg.send = False
        else:
            if remote != leg.remote:
                leg.rtp.latched = leg.rtcp.latched = None
            elif rtcp != leg.rtcp_remote:
                leg.rtcp.latched = None
            leg.send = True
            leg.remote = remote
            leg.rtcp_remote = rtcp
        leg.refresh()
        return {"ok": True}

    def _stats(self, session: Session) -> dict:
        return {"ok": True, "session": session.id, "call_id": session.call_id,
                "a": session.a.stats(), "b": session.b.stats()}

    def op_stats(self, request: dict) -> dict:
        try:
            return self._stats(self._session(request))
        except LookupError as exc:
            return {"error": "unknown-session", "reason": str(exc)}

    def op_release(self, request: dict) -> dict:
        try:
            session = self._session(request)
        except LookupError as exc:
            return {"error": "unknown-session", "reason": str(exc)}
        reply = self._stats(session)
        del self.sessions[session.id]
        self._drop_leg(session.a)
        self._drop_leg(session.b)
        return reply

    def op_quit(self, request: dict) -> dict:
        self.running = False
        return {"ok": True}


def raise_file_limit() -> None:
    # Four sockets per call: the default soft limit (often 1024) would cap us at ~250 calls.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


def main(argv: list[str]) -> int:
    fd, host, port_min, port_max, gap = int(argv[1]), argv[2], int(argv[3]), int(argv[4]), float(argv[5])
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
    relay = Relay(control, host, port_min, port_max, gap)
    gc.disable()  # the loop makes no reference cycles; collections would only add jitter
    gc.freeze()
    control.send(json.dumps({"ready": True, "pid": os.getpid(),
                             "ports": len(relay.free) * 2}).encode())
    try:
        relay.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
