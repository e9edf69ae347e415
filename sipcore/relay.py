"""The media relay: RTP and RTCP of relayed calls go through the server, like rtpproxy.

The packets themselves never touch the SIP process: a separate process
(`sipcore/_relay_worker.py`) owns every relay socket and moves datagrams in a tight epoll
loop, so 50,000+ packets/s do not compete with signalling for the GIL. This module is its
asyncio control side: one SOCK_SEQPACKET socket pair, one small JSON message per command
and per reply. The latching rule (symmetric RTP) is documented in the worker and in
docs/media.md.

    relay = MediaRelay("0.0.0.0", 20000, 29999, advertise="203.0.113.5")
    await relay.start()
    session = await relay.allocate(call_id)            # two legs, an even port each
    await relay.update(session.id, "a", ("192.0.2.10", 49170))   # from the caller's SDP
    ...                                                 # SDP to the callee names leg_b's port
    stats = await relay.release(session.id)
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sipcore.relay")

WORKER = Path(__file__).with_name("_relay_worker.py")
Address = tuple[str, int]


class RelayError(Exception):
    """The relay could not do what was asked; `status` is the SIP answer it deserves."""

    status = 500

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RelayFull(RelayError):
    """Every port pair is in use: answer the call 503 Service Unavailable."""

    status = 503


class RelayDied(RelayError):
    """The relay process is gone (or never came up); no relayed call can work until restarted."""

    status = 503


@dataclass(slots=True, frozen=True)
class RelayLeg:
    local_port: int      # even RTP port on the relay; RTCP is local_port + 1


@dataclass(slots=True, frozen=True)
class RelaySession:
    id: int
    call_id: str
    leg_a: RelayLeg
    leg_b: RelayLeg


@dataclass(slots=True, frozen=True)
class LegStats:
    """What one leg's ports saw. `received_*` counts the valid datagrams accepted from the
    leg's own phone (RTP and RTCP); `forwarded_*` those of them sent on to the other leg."""
    local_port: int
    remote: Address | None            # from SDP
    latched: Address | None           # RTP source latched to
    latched_rtcp: Address | None
    received: int
    received_bytes: int
    rtcp_packets: int
    forwarded: int
    forwarded_bytes: int
    dropped_foreign: int              # from a source other than the latched one
    dropped_invalid: int              # not RTP/RTCP version 2
    dropped_no_destination: int       # the other leg had no address yet, or is on hold
    send_errors: int

    @classmethod
    def from_wire(cls, d: dict) -> LegStats:
        def addr(v):
            return (v[0], v[1]) if v else None
        return cls(d["local_port"], addr(d["remote"]), addr(d["latched"]), addr(d["latched_rtcp"]),
                   d["received"], d["received_bytes"], d["rtcp_packets"], d["forwarded"],
                   d["forwarded_bytes"], d["dropped_foreign"], d["dropped_invalid"],
                   d["dropped_no_destination"], d["send_errors"])


@dataclass(slots=True, frozen=True)
class RelayStats:
    session_id: int
    call_id: str
    a: LegStats
    b: LegStats

    @property
    def a_to_b_packets(self) -> int:
        return self.a.forwarded

    @property
    def a_to_b_bytes(self) -> int:
        return self.a.forwarded_bytes

    @property
    def b_to_a_packets(self) -> int:
        return self.b.forwarded

    @property
    def b_to_a_bytes(self) -> int:
        return self.b.forwarded_bytes

    @classmethod
    def from_wire(cls, d: dict) -> RelayStats:
        return cls(d["session"], d["call_id"], LegStats.from_wire(d["a"]), LegStats.from_wire(d["b"]))


class MediaRelay:
    """Control side of the relay process. All methods are coroutines on one event loop.

    `host` is the address relay sockets bind to; `advertise` is the address put into SDP
    (required when `host` is a wildcard). Ports come in even/odd pairs from
    [port_min, port_max]. `relatch_gap` is the silence (seconds) after which a leg accepts
    a new source. `on_exit(reason)` is called once if the relay process dies.
    """

    def __init__(self, host: str, port_min: int, port_max: int, advertise: str | None = None,
                 *, relatch_gap: float = 1.0, timeout: float = 2.0,
                 on_exit: Callable[[str], None] | None = None):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"relay host must be an IP address, got {host!r}") from None
        if advertise is None and ip.is_unspecified:
            raise ValueError(f"relay host {host} is a wildcard: give the address to advertise in SDP")
        if not (0 < port_min < port_max <= 65535) or port_max - port_min + (port_min & 1) < 3:
            raise ValueError(f"relay ports {port_min}-{port_max}: need 0 < min < max <= 65535 "
                             f"and room for two even/odd pairs")
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self.advertise = advertise or host
        self.relatch_gap = relatch_gap
        self.timeout = timeout
        self.on_exit = on_exit
        self.pid: int | None = None
        self.capacity = 0                 # calls it can hold (port pairs // 2)
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        # One waiting sender at a time, in order: asyncio keeps a single writer callback per
        # descriptor, so concurrent sock_sendall calls on the control socket would strand all
        # but the last (seen as requests that never finished once the queue filled).
        self._send_lock = asyncio.Lock()
        self._dead: str | None = "not started"
        self._stopping = False

    @property
    def alive(self) -> bool:
        return self._dead is None

    async def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("relay already started")
        self._loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), str(theirs.fileno()), self.host,
                 str(self.port_min), str(self.port_max), repr(self.relatch_gap)],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except OSError as exc:
            mine.close()
            raise RelayDied(f"cannot start the relay process: {exc}") from None
        finally:
            theirs.close()
        mine.setblocking(False)
        self._sock = mine
        self._dead = None
        ready: asyncio.Future = self._loop.create_future()
        self._pending[0] = ready
        self._loop.add_reader(mine.fileno(), self._readable)
        try:
            hello = await asyncio.wait_for(ready, timeout=max(self.timeout, 10.0))
        except (asyncio.TimeoutError, RelayError) as exc:
            self._close(f"relay process did not start: {exc}")
            self._kill()
            raise RelayDied(f"relay process did not start: {exc}") from None
        if not hello.get("ready"):
            self._kill()
            raise RelayDied(f"relay process did not start: {self._dead}")
        self.pid = hello["pid"]
        self.capacity = hello["ports"] // 4
        log.info("media relay pid %d on %s ports %d-%d (%d calls)", self.pid, self.host,
                 self.port_min, self.port_max, self.capacity)

    async def stop(self) -> None:
        """Release everything: the process exits and every relay port closes."""
        self._stopping = True
        if self._dead is None:
            try:
                await self._call({"op": "quit"})
            except RelayError:
                pass
        self._close("relay stopped")
        proc = self._process
        if proc is not None:
            for _ in range(100):
                if proc.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            else:
                self._kill()

    async def allocate(self, call_id: str) -> RelaySession:
        """Two legs for one call, each an even RTP port with its odd RTCP port.
        Raises `RelayFull` (503) when no port pair is free."""
        reply = await self._call({"op": "alloc", "call_id": call_id})
        return RelaySession(reply["session"], call_id, RelayLeg(reply["a"]), RelayLeg(reply["b"]))

    async def update(self, session_id: int, leg: str, remote: Address | None,
                     rtcp: Address | None = None) -> None:
        """Where leg `leg` ("a" or "b") wants media, from its SDP: `remote` is the RTP address
        (None: send it nothing, e.g. hold with c=0.0.0.0), `rtcp` an explicit RTCP address
        (a=rtcp), else RTP port + 1. Until the leg's first packet latches, media goes here."""
        if leg not in ("a", "b"):
            raise ValueError(f"leg must be 'a' or 'b', got {leg!r}")
        wire_remote = await self._resolve(remote) if remote is not None else None
        wire_rtcp = await self._resolve(rtcp) if rtcp is not None else None
        await self._call({"op": "update", "session": session_id, "leg": leg,
                          "remote": wire_remote, "rtcp": wire_rtcp})

    async def release(self, session_id: int) -> RelayStats:
        """Close the session's ports (they return to the pool) and return its final counts."""
        return RelayStats.from_wire(await self._call({"op": "release", "session": session_id}))

    async def stats(self, session_id: int) -> RelayStats:
        return RelayStats.from_wire(await self._call({"op": "stats", "session": session_id}))

    async def ping(self) -> dict:
        """{"sessions": n, "free_ports": n}: a liveness check for /healthz."""
        return await self._call({"op": "ping"})

    # --- internals ------------------------------------------------------------------

    async def _resolve(self, address: Address) -> list:
        host, port = address
        if not (isinstance(port, int) and 0 < port <= 65535):
            raise ValueError(f"bad port {port!r} for {host}")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            # SDP may name a host; resolve it here so the relay process never blocks on DNS.
            try:
                infos = await self._loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise RelayError(f"cannot resolve media address {host!r}: {exc}") from None
            return [infos[0][4][0], port]
        if (ip.version == 6) != (family == socket.AF_INET6):
            raise RelayError(f"media address {host} is IPv{ip.version}; the relay is bound to {self.host}")
        return [str(ip), port]

    async def _call(self, request: dict) -> dict:
        if self._dead is not None:
            raise RelayDied(f"media relay unavailable: {self._dead}")
        rid = next(self._ids)
        request["id"] = rid
        future = self._loop.create_future()
        self._pending[rid] = future
        try:
            data = json.dumps(request).encode()
            try:
                if self._send_lock.locked():
                    raise BlockingIOError  # others are waiting to send: queue behind them
                self._sock.send(data)
            except BlockingIOError:
                async with self._send_lock:
                    try:
                        await asyncio.wait_for(self._loop.sock_sendall(self._sock, data), self.timeout)
                    except asyncio.TimeoutError:
                        raise RelayError(f"relay process took no {request['op']!r} request within "
                                         f"{self.timeout:g} s") from None
            except OSError as exc:
                self._pending.pop(rid, None)
                future.cancel()
                self._close(self._exit_reason(f"control channel failed ({exc.strerror})"))
                raise RelayDied(f"media relay unavailable: {self._dead}") from None
            try:
                reply = await asyncio.wait_for(future, self.timeout)
            except asyncio.TimeoutError:
                raise RelayError(f"relay process did not answer {request['op']!r} within "
                                 f"{self.timeout:g} s") from None
        finally:
            self._pending.pop(rid, None)
        error = reply.get("error")
        if error == "full":
            raise RelayFull(reply.get("reason", "relay ports exhausted"))
        if error is not None:
            raise RelayError(f"relay {request['op']}: {reply.get('reason', error)}")
        return reply

    def _readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                data = b""
                log.error("relay control socket: %s", exc)
            if not data:
                self._close(self._exit_reason("relay process closed its control channel"))
                return
            try:
                reply = json.loads(data)
            except ValueError:
                log.error("relay sent an unreadable reply: %r", data[:100])
                continue
            rid = 0 if "ready" in reply else reply.get("id")
            future = self._pending.get(rid)
            if future is not None and not future.done():
                future.set_result(reply)
            if reply.get("ready") is False:
                # Its own reason, before the end of the channel is mistaken for the cause.
                self._close(reply.get("error", "relay process refused to start"))
                return

    def _exit_reason(self, otherwise: str) -> str:
        code = self._process.poll() if self._process is not None else None
        if code is None:
            return otherwise
        if code < 0:
            try:
                return f"relay process exited: killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"relay process exited: killed by signal {-code}"
        return f"relay process exited with status {code}"

    def _close(self, reason: str) -> None:
        if self._dead is not None:
            return
        self._dead = reason
        if self._sock is not None:
            try:
                self._loop.remove_reader(self._sock.fileno())
            except (ValueError, RuntimeError):
                pass
            self._sock.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RelayDied(f"media relay unavailable: {reason}"))
        if not self._stopping:
            log.error("media relay: %s", reason)
            if self.on_exit is not None:
                self.on_exit(reason)

    def _kill(self) -> None:
        proc = self._process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
