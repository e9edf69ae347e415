"""A flood of junk from one address must not starve legitimate phones elsewhere."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

from sipcore.message import parse
from tests.server import NAMED_USERS, ServerProcess
from tests.sipcore.sipclient import digest_authorization, register, request_uri


def transact(sock: socket.socket, data: bytes, dest: tuple[str, int]) -> bytes:
    """Send a request the way a phone does over UDP: retransmitted on Timer E (T1 = 0.5 s,
    doubling), giving up after Timer F (32 s) — a lost datagram is normal on UDP."""
    interval, deadline = 0.5, time.monotonic() + 32
    while time.monotonic() < deadline:
        sock.sendto(data, dest)
        sock.settimeout(interval)
        try:
            return sock.recv(65535)
        except socket.timeout:
            interval = min(interval * 2, 4.0)
    raise TimeoutError("no answer within Timer F")


def register_over_udp(server: ServerProcess, sock: socket.socket, user: str, cseq: int) -> int:
    """One challenge/response registration from `sock`; the same contact each time."""
    local, dest = sock.getsockname(), ("127.0.0.1", server.sip_port)
    first = register(user, host="127.0.0.1", port=server.sip_port, local=local, cseq=cseq,
                     call_id=f"flood-{user}")
    challenge = parse(transact(sock, first, dest))
    assert challenge.status == 401
    auth = digest_authorization(challenge.get_all("www-authenticate")[0], user,
                                NAMED_USERS[user][0], "REGISTER", request_uri(first))
    second = register(user, host="127.0.0.1", port=server.sip_port, local=local, cseq=cseq + 1,
                      call_id=f"flood-{user}", authorization=auth)
    return parse(transact(sock, second, dest)).status


def register_once(server: ServerProcess, user: str) -> int:
    """One registration from a fresh socket on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        return register_over_udp(server, phone, user, cseq=1)


FLOODER = """
import os, socket, sys, time
port, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
junk = [os.urandom(n) for n in (40, 300, 1200)] + [
    b"INVITE sip:x SIP/2.0\\r\\nVia: broken\\r\\n\\r\\n",
    b"REGISTER sip:127.0.0.1 SIP/2.0\\r\\nX-Junk: " + b"a" * 2000 + b"\\r\\n\\r\\n"]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.3", 0))
start = time.monotonic()
sent, end = 0, start + seconds
while time.monotonic() < end:
    for j in junk * 100:
        s.sendto(j, ("127.0.0.1", port))
    sent += 500
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
print(sent)
"""


def test_junk_flood_from_one_source_does_not_starve_others(tmp_path):
    server = ServerProcess(tmp_path, settings={"security": {"rate_limit": 200, "rate_burst": 400}})
    server.start()
    # The flood comes from its own process (as it would from another host), so that it
    # competes with the server for the CPU, not with this test for the GIL: 50,000 junk
    # datagrams a second (about 250 Mbit/s), 250 times the per-source limit.
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER, str(server.sip_port), "60", "50000"],
                               stdout=subprocess.PIPE, text=True)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.2", 0))
    try:
        time.sleep(0.5)
        started = time.monotonic()
        results = [register_over_udp(server, phone, "alice", cseq=2 * i + 1) for i in range(20)]
        took = time.monotonic() - started
        flooder.send_signal(signal.SIGINT)
        flooder.wait(10)
        assert results == [200] * 20
        assert took < 20, f"20 registrations took {took:.1f} s under the flood"
        # What the kernel let through was mostly refused by the rate limit, before parsing.
        dropped = server.metric("callrouter_sip_dropped_total", 'reason="rate_limited"')
        parsed_junk = server.metric("callrouter_sip_parse_errors_total")
        assert dropped > 5000, "the flood was too small to prove anything"
        assert dropped > 10 * parsed_junk > 0
        assert server.proc.poll() is None
    finally:
        if flooder.poll() is None:
            flooder.kill()
        phone.close()
        server.stop()
    assert "Traceback" not in server.log()
