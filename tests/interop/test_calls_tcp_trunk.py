"""A trunk reached over TCP: callrouter opens the connection itself, the INVITE and the
trunk's answers share it, and the caller hears the trunk's final answer."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from sipcore.message import make_response, parse
from tests.interop.conftest import UdpUac
from tests.server import NAMED_USERS, add_trunk, free_port, update_location

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]


class TcpTrunk:
    """Accepts one connection, answers every INVITE with 486 and records what it received."""

    def __init__(self):
        self.port = free_port()
        self.received: list = []
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.sock.settimeout(20)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(20)
        buffer = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                       if line.lower().startswith(b"content-length")), b"0"))
                    if len(rest) < length:
                        break
                    message, buffer = parse(head + b"\r\n\r\n" + rest[:length]), rest[length:]
                    self.received.append(message)
                    if getattr(message, "method", None) == "INVITE":
                        conn.sendall(make_response(message, 486, to_tag="trunk").to_bytes())


def test_an_outbound_call_over_a_tcp_trunk(start_server):
    trunk = TcpTrunk()

    def prepare(store):
        add_trunk(store, "austin-tcp", "127.0.0.1", trunk.port, "TCP")
        update_location(store, "Austin", pstn_trunk="austin-tcp")

    server = start_server(prepare=prepare)
    with UdpUac(server) as uac:
        assert uac.register("alice", NAMED_USERS["alice"][0]).status == 200
        host, port = uac.local
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
               "m=audio 40000 RTP/AVP 0\r\n").encode()
        invite = (f"INVITE sip:2125550199@127.0.0.1:{server.sip_port} SIP/2.0\r\n"
                  f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bKtcptrunk1;rport\r\nMax-Forwards: 70\r\n"
                  f"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:2125550199@127.0.0.1>\r\n"
                  f"Call-ID: tcp-trunk-1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@{host}:{port}>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n").encode() + sdp
        final = uac.transact(invite, timeout=10)
    assert final is not None and final.status == 486, final
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(getattr(m, "method", "") == "ACK" for m in trunk.received):
        time.sleep(0.05)
    methods = [getattr(m, "method", None) for m in trunk.received]
    assert methods[:2] == ["INVITE", "ACK"], methods
    invite = trunk.received[0]
    assert invite.top_via.transport == "TCP" and "transport=tcp" in str(invite.uri)
