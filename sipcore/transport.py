"""asyncio shell around the endpoint core: UDP, TCP and TLS listeners, one timer.

Everything protocol-related happens in `Endpoint`; this module only moves bytes between
sockets and the core and keeps the core's next deadline armed on the event loop.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time

from .endpoint import Endpoint
from .framing import PING, PONG, FramingError, StreamFramer
from .transaction import Send

log = logging.getLogger("sipcore.transport")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "SipServer"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        server = self.server
        now = server.clock()
        if not server.endpoint.admit(addr[0], now):
            return  # flood or ban: refused before anything else is spent on it
        if len(data) <= 4 and not data.strip():
            return  # CRLF keep-alive
        server.deliver(data, (addr[0], addr[1]), "UDP", now)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for a phone that went away: nothing to do, timers handle it.
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, server: "SipServer", transport_name: str):
        self.server = server
        self.name = transport_name
        self.framer = StreamFramer(server.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self.server.connections[(self.name, self.peer)] = self
        self._touch()

    def connection_lost(self, exc) -> None:
        if self.peer is not None:
            self.server.connections.pop((self.name, self.peer), None)
        if self.idle is not None:
            self.idle.cancel()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self.framer.feed(data)
        except FramingError as exc:
            log.info("closing %s connection from %s: %s", self.name, self.peer, exc.reason)
            self.transport.close()
            return
        for message in messages:
            if message == PING:
                self.transport.write(PONG)
            else:
                self.server.deliver(message, self.peer, self.name)

    def _touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.server.tcp_idle_timeout, self._expire)

    def _expire(self) -> None:
        log.debug("closing idle %s connection from %s", self.name, self.peer)
        self.transport.close()


class SipServer:
    def __init__(self, endpoint: Endpoint, host: str, port: int, tls_port: int = 0,
                 ssl_context: ssl.SSLContext | None = None, max_message_size: int = 65535,
                 tcp_idle_timeout: float = 300.0, clock=time.time):
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.ssl_context = ssl_context
        self.max_message_size = max_message_size
        self.tcp_idle_timeout = tcp_idle_timeout
        self.clock = clock
        self.connections: dict[tuple[str, tuple[str, int]], _Stream] = {}
        self._udp: _Udp | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._udp_transport = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: dict[tuple[str, tuple[str, int]], list[bytes]] = {}
        # Verifies peers' certificates by default; a deployment with private CAs sets its own.
        self.client_ssl_context: ssl.SSLContext | None = None

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._udp_transport, self._udp = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port))
        if self.port == 0:  # tests ask for any free port; TCP then takes the same number
            self.port = self._udp_transport.get_extra_info("sockname")[1]
        self._servers.append(await loop.create_server(lambda: _Stream(self, "TCP"), self.host, self.port))
        if self.tls_port is not None and self.tls_port >= 0 and self.ssl_context is not None:
            srv = await loop.create_server(lambda: _Stream(self, "TLS"), self.host, self.tls_port,
                                           ssl=self.ssl_context)
            self.tls_port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        log.info("SIP listening on %s:%d (UDP, TCP)%s", self.host, self.port,
                 f", TLS {self.tls_port}" if self.ssl_context else "")

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp_transport is not None:
            self._udp_transport.close()
        for srv in self._servers:
            srv.close()
        for conn in list(self.connections.values()):
            conn.transport.close()
        for srv in self._servers:
            await srv.wait_closed()

    def deliver(self, data: bytes, source: tuple[str, int], transport: str,
                now: float | None = None) -> None:
        """Hand a message to the core; UDP has already been admitted (now is given)."""
        try:
            if now is None:
                sends = self.endpoint.receive(data, source, transport, self.clock())
            else:
                sends = self.endpoint.handle(data, source, transport, now)
        except Exception:  # a bug must cost one message, never the server
            log.exception("error handling a message from %s:%s", *source)
            return
        if sends:
            self.send(sends)
        self._arm()

    def send(self, sends: list[Send]) -> None:
        udp = self._udp_transport
        for item in sends:
            if item.transport == "UDP":
                udp.sendto(item.data, item.addr)
                continue
            key = (item.transport, item.addr)
            conn = self.connections.get(key)
            if conn is not None:
                conn.transport.write(item.data)
                continue
            # No connection yet (a trunk over TCP or TLS, a phone whose connection closed):
            # open one and send once it is up, keeping the order of what was queued meanwhile.
            queued = self._connecting.get(key)
            if queued is None:
                self._connecting[key] = [item.data]
                self._loop.create_task(self._connect(item.transport, item.addr))
            else:
                queued.append(item.data)

    async def _connect(self, transport: str, addr: tuple[str, int]) -> None:
        key = (transport, addr)
        try:
            ctx = None
            if transport == "TLS":
                ctx = self.client_ssl_context or ssl.create_default_context()
            _, stream = await asyncio.wait_for(self._loop.create_connection(
                lambda: _Stream(self, transport), addr[0], addr[1], ssl=ctx), timeout=10)
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            dropped = self._connecting.pop(key, [])
            log.warning("cannot open %s to %s:%s (%s); %d message(s) dropped (transactions will time out)",
                        transport, addr[0], addr[1], exc or "timed out", len(dropped))
            return
        # Responses come back on this connection from the peer's own address; index it under
        # the address we dialled as well, which is what our transactions send to.
        self.connections[key] = stream
        for data in self._connecting.pop(key, []):
            stream.transport.write(data)

    def rearm(self) -> None:
        """Something outside a SIP event (a digit from the media side) created timers."""
        self._arm()

    def _arm(self) -> None:
        deadline = self.endpoint.next_deadline()
        if deadline is None:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self.clock())
        self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            sends = self.endpoint.handle_timers(self.clock())
        except Exception:
            log.exception("error handling SIP timers")
            sends = []
        if sends:
            self.send(sends)
        self._arm()
