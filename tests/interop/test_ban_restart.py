"""The registrar as a phone network sees it, over real sockets: wrong passwords and bans,
bindings across a restart or a crash, TCP and TLS, and responses routed by rport.

Clients here compute digest themselves (conftest.digest, hashlib) and read what the server
actually sent back; 127.0.0.2 serves as a second source address (Linux routes all of
127.0.0.0/8 on loopback).
"""
from __future__ import annotations

import os
import re
import socket
import ssl
import time

import pytest

from tests.interop.conftest import (UdpUac, build_register, digest, parse_response, pick_challenge,
                                    udp_socket, wait_metric)
from tests.server import NAMED_USERS

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

ALICE, BOB, CAROL = (NAMED_USERS[u][0] for u in ("alice", "bob", "carol"))


@pytest.fixture(scope="module")
def server(start_module_server):
    """One ordinary server for the tests that neither ban nor restart it."""
    return start_module_server("shared")


# --------------------------------------------------------------------------- wrong passwords, bans

def test_wrong_password_gets_403(server):
    failures = server.metric("callrouter_sip_auth_failures_total")
    with UdpUac(server) as uac:
        resp = uac.register("carol", "not-carols-password")
        assert resp is not None and resp.status == 403, resp and resp.raw
        # The same phone with the right password is still welcome (one failure is no ban).
        resp = uac.register("carol", CAROL, contacts=[f"<sip:carol@{uac.local[0]}:{uac.local[1]}>"])
        assert resp is not None and resp.status == 200, resp and resp.raw
        resp = uac.register("carol", CAROL, contacts=["*"], expires=0)
        assert resp is not None and resp.status == 200
    assert server.metric("callrouter_sip_auth_failures_total") == failures + 1


def _tcp_register_unanswered(server, source_ip: str, timeout: float = 2.0) -> bool:
    """True if a REGISTER over TCP from source_ip gets no answer within timeout."""
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=timeout,
                                  source_address=(source_ip, 0)) as s:
        local = s.getsockname()
        s.sendall(build_register("alice", ("127.0.0.1", server.sip_port), sent_by=local, transport="TCP",
                                 call_id=f"tcp-{os.urandom(4).hex()}", cseq=1,
                                 contacts=[f"<sip:alice@{local[0]}:{local[1]};transport=tcp>"]))
        s.settimeout(timeout)
        try:
            return s.recv(65535) == b""
        except socket.timeout:
            return True


def test_repeated_failures_ban_the_source_but_not_others(start_server):
    server = start_server(settings={"security": {"ban_failures": 3, "ban_window": 60, "ban_duration": 600}})
    with UdpUac(server, host="127.0.0.1") as attacker:
        for attempt in range(3):
            resp = attacker.register("alice", f"guess-{attempt}")
            assert resp is not None and resp.status == 403, (attempt, resp and resp.raw)
        # Banned: silence, even for the right password, from any port of that address.
        assert attacker.register("alice", ALICE, timeout=3) is None
    with UdpUac(server, host="127.0.0.1") as same_address:
        assert same_address.register("alice", ALICE, timeout=2) is None
    assert _tcp_register_unanswered(server, "127.0.0.1")

    with UdpUac(server, host="127.0.0.2") as elsewhere:
        resp = elsewhere.register("alice", ALICE)
        assert resp is not None and resp.status == 200, resp and resp.raw
        assert any(uri.startswith("sip:alice@127.0.0.2:") for uri, _ in resp.contacts())

    assert server.metric("callrouter_sip_banned_sources") == 1
    assert server.metric("callrouter_sip_dropped_total", 'reason="banned"') >= 2
    assert server.metric("callrouter_sip_auth_failures_total") == 3
    log = server.log()
    assert re.search(r"banning source 127\.0\.0\.1 for 600 s after 3 authentication failures", log), log[-2000:]
    assert "127.0.0.2" not in re.findall(r"banning source (\S+)", log)


# --------------------------------------------------------------------------- restart and crash

def _check_bindings(uac: UdpUac, user: str, expected: dict[str, int], elapsed: float) -> None:
    """user's bindings are exactly `expected` (contact -> expires at registration), each with
    its remaining time: at most the original less the time gone by (plus rounding)."""
    got = dict(uac.bindings(user))
    assert set(got) == set(expected), (user, got, expected)
    for contact, expires in expected.items():
        assert expires - elapsed - 2 <= got[contact] <= expires - elapsed + 1, (user, contact, got[contact], expires, elapsed)


def test_bindings_survive_sigterm_restart_and_expired_ones_are_pruned(start_server):
    server = start_server(settings={"registrar": {"min_expires": 2}})
    bob_contacts = {"sip:bob@192.0.2.10:5060": 600, "sip:bob@192.0.2.11:5062;transport=tcp": 300}
    with UdpUac(server) as uac:
        registered_at = time.monotonic()
        alice_contact = f"sip:alice@{uac.local[0]}:{uac.local[1]}"
        assert uac.register("alice", contacts=[f"<{alice_contact}>"], expires=300).status == 200
        resp = uac.register("bob", contacts=[f"<{c}>;expires={e}" for c, e in bob_contacts.items()])
        assert resp.status == 200 and dict(resp.contacts()) == bob_contacts, resp.raw
        # carol's binding lapses while the server is down: it must not come back.
        assert uac.register("carol", contacts=["<sip:carol@192.0.2.12:5060>"], expires=2).status == 200
    assert wait_metric(server, "callrouter_registrations", 4) == 4

    assert server.stop() == 0  # SIGTERM: flushes the bindings
    time.sleep(max(0.0, 2.5 - (time.monotonic() - registered_at)))
    server.start()

    assert re.search(r"restored 3 bindings", server.log()), server.log()[-2000:]
    assert server.metric("callrouter_registrations") == 3
    assert server.metric("callrouter_registered_aors") == 2
    with UdpUac(server) as uac:
        elapsed = time.monotonic() - registered_at
        _check_bindings(uac, "alice", {alice_contact: 300}, elapsed)
        _check_bindings(uac, "bob", bob_contacts, elapsed)
        assert uac.bindings("carol") == []
        # A refresh of one of bob's contacts: the 200 lists both, the other one still
        # counting down from before the restart.
        resp = uac.register("bob", contacts=["<sip:bob@192.0.2.10:5060>"], expires=600)
        assert resp.status == 200
        got = dict(resp.contacts())
        elapsed = time.monotonic() - registered_at
        assert got["sip:bob@192.0.2.10:5060"] == 600, got
        assert 300 - elapsed - 2 <= got["sip:bob@192.0.2.11:5062;transport=tcp"] <= 300 - elapsed + 1, got


def test_bindings_survive_sigkill_after_a_snapshot(start_server):
    interval = 0.5  # tests/server.py's location.snapshot_interval
    server = start_server()
    with UdpUac(server) as uac:
        registered_at = time.monotonic()
        alice_contact = f"sip:alice@{uac.local[0]}:{uac.local[1]}"
        assert uac.register("alice", contacts=[f"<{alice_contact}>"], expires=900).status == 200
        bob_contacts = {"sip:bob@192.0.2.20:5060": 900, "sip:bob@192.0.2.21:5060": 120}
        assert uac.register("bob", contacts=[f"<{c}>;expires={e}" for c, e in bob_contacts.items()]).status == 200
        assert uac.register("carol", contacts=["<sip:carol@192.0.2.22:5060>"], expires=900).status == 200
        # Removals are persisted too: carol unregisters before the crash.
        assert uac.register("carol", contacts=["*"], expires=0).status == 200
    assert wait_metric(server, "callrouter_registrations", 3) == 3
    time.sleep(3 * interval)  # longer than the snapshot interval: the changes are on disk

    server.kill()
    server.start()
    assert server.metric("callrouter_registrations") == 3
    with UdpUac(server) as uac:
        elapsed = time.monotonic() - registered_at
        _check_bindings(uac, "alice", {alice_contact: 900}, elapsed)
        _check_bindings(uac, "bob", bob_contacts, elapsed)
        assert uac.bindings("carol") == []


# --------------------------------------------------------------------------- stale nonces

def _answer_old_challenge(uac: UdpUac, challenge: str, nc: int, call_id: str, cseq: int,
                          keep_opaque: bool = True):
    auth = digest(challenge, "alice", ALICE, "REGISTER", f"sip:{uac.dest[0]}:{uac.dest[1]}", nc=nc,
                  cnonce="0b1e2c3d")
    if not keep_opaque:
        auth = re.sub(r', opaque="[^"]*"', "", auth)
    return uac.transact(build_register("alice", uac.dest, sent_by=uac.local, call_id=call_id, cseq=cseq,
                                       contacts=[f"<sip:alice@{uac.local[0]}:{uac.local[1]}>"],
                                       authorization=auth))


def _assert_stale_challenge(resp, what: str) -> None:
    assert resp is not None, f"{what}: no answer"
    assert resp.status == 401, f"{what}: expected 401 with stale=true, got {resp.status} {resp.reason}"
    challenges = resp.all("www-authenticate")
    assert challenges and all("stale=true" in c for c in challenges), f"{what}: {challenges}"


def test_an_expired_nonce_gets_a_stale_challenge(start_server):
    server = start_server(settings={"auth": {"nonce_ttl": 1}})
    with UdpUac(server) as uac:
        first = uac.transact(build_register("alice", uac.dest, sent_by=uac.local, call_id="ttl", cseq=1,
                                            contacts=[f"<sip:alice@{uac.local[0]}:{uac.local[1]}>"]))
        challenge = pick_challenge(first.all("www-authenticate"), "SHA-256")
        assert _answer_old_challenge(uac, challenge, 1, "ttl", 2).status == 200
        time.sleep(1.5)
        _assert_stale_challenge(_answer_old_challenge(uac, challenge, 2, "ttl", 3), "nonce past nonce_ttl")
    assert server.metric("callrouter_sip_auth_failures_total") == 0


def test_a_nonce_from_before_a_restart_gets_a_stale_challenge(start_server):
    """A phone that reuses its last challenge after the server restarted (new random secret,
    the default) has the right password: it must get 401 stale=true (RFC 7616 §3.3), so that
    it retries at once, never a 4xx that ends its registration or counts towards a ban."""
    server = start_server()
    with UdpUac(server) as uac:
        first = uac.transact(build_register("alice", uac.dest, sent_by=uac.local, call_id="rs", cseq=1,
                                            contacts=[f"<sip:alice@{uac.local[0]}:{uac.local[1]}>"]))
        challenges = first.all("www-authenticate")
        assert _answer_old_challenge(uac, pick_challenge(challenges, "MD5"), 1, "rs", 2).status == 200
        server.restart()
        # Without opaque (as pyVoIP answers): the nonce alone is foreign, and judged stale.
        _assert_stale_challenge(
            _answer_old_challenge(uac, pick_challenge(challenges, "MD5"), 2, "rs", 3, keep_opaque=False),
            "old nonce, no opaque")
        # With the opaque echoed back, as RFC 7616 asks and PJSIP and SIPp do.
        resp = _answer_old_challenge(uac, pick_challenge(challenges, "SHA-256"), 3, "rs", 4)
        assert resp is not None
        assert resp.status != 400, (
            "BUG in sipcore/auth.py DigestAuthenticator.verify (line ~421): the opaque minted under "
            "the previous secret is refused as malformed ('opaque not ours' -> 400 Bad Authorization) "
            "before the nonce is judged, so every phone that echoes opaque gets 400 after a restart or "
            "a secret rotation instead of 401 stale=true")
        _assert_stale_challenge(resp, "old nonce and opaque")
    assert server.metric("callrouter_sip_auth_failures_total") == 0


# --------------------------------------------------------------------------- TCP and TLS

def _read_message(sock: socket.socket, buf: bytearray, timeout: float = 5.0) -> bytes:
    """One SIP message from a stream (headers, then Content-Length bytes of body)."""
    deadline = time.monotonic() + timeout
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            m = re.search(rb"\r\n(?:Content-Length|l)\s*:\s*(\d+)", bytes(buf[:end + 2]), re.I)
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) >= total:
                msg = bytes(buf[:total])
                del buf[:total]
                return msg
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no complete message; have {bytes(buf)!r}")
        sock.settimeout(left)
        chunk = sock.recv(65535)
        if not chunk:
            raise AssertionError(f"connection closed; have {bytes(buf)!r}")
        buf += chunk


def _register_over_stream(sock: socket.socket, server, transport: str, user: str, password: str):
    local = sock.getsockname()
    dest = ("127.0.0.1", server.sip_port)
    call_id = f"{transport.lower()}-{os.urandom(4).hex()}"
    contact = f"<sip:{user}@{local[0]}:{local[1]};transport={transport.lower()}>"
    buf = bytearray()
    sock.sendall(build_register(user, dest, sent_by=local, transport=transport, call_id=call_id, cseq=1,
                                contacts=[contact], expires=600))
    first = parse_response(_read_message(sock, buf))
    assert first.status == 401, first.raw
    assert len(first.all("www-authenticate")) == 2, first.raw  # SHA-256 and MD5
    auth = digest(pick_challenge(first.all("www-authenticate"), "SHA-256"), user, password, "REGISTER",
                  f"sip:{dest[0]}:{dest[1]}")
    sock.sendall(build_register(user, dest, sent_by=local, transport=transport, call_id=call_id, cseq=2,
                                contacts=[contact], expires=600, authorization=auth))
    second = parse_response(_read_message(sock, buf))
    return first, second, contact


def test_register_over_tcp(server):
    with socket.create_connection(("127.0.0.1", server.sip_port), timeout=5) as sock:
        first, second, contact = _register_over_stream(sock, server, "TCP", "alice", ALICE)
        assert second.status == 200, second.raw
        assert (contact[1:-1], 600) in second.contacts(), second.raw
        assert "SIP/2.0/TCP" in second.first("via")
        # Remove it again over the same connection (the module's server is shared).
        local = sock.getsockname()
        buf = bytearray()
        dest = ("127.0.0.1", server.sip_port)
        sock.sendall(build_register("alice", dest, sent_by=local, transport="TCP", call_id="tcp-del", cseq=1,
                                    contacts=[contact], expires=0))
        challenge = parse_response(_read_message(sock, buf))
        auth = digest(pick_challenge(challenge.all("www-authenticate"), "MD5"), "alice", ALICE,
                      "REGISTER", f"sip:{dest[0]}:{dest[1]}")
        sock.sendall(build_register("alice", dest, sent_by=local, transport="TCP", call_id="tcp-del", cseq=2,
                                    contacts=[contact], expires=0, authorization=auth))
        assert parse_response(_read_message(sock, buf)).status == 200


def test_register_over_tls(server):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the server made itself a self-signed certificate
    with socket.create_connection(("127.0.0.1", server.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.version() in ("TLSv1.2", "TLSv1.3")
            first, second, contact = _register_over_stream(sock, server, "TLS", "bob", BOB)
            assert second.status == 200, second.raw
            assert (contact[1:-1], 600) in second.contacts(), second.raw
            assert "SIP/2.0/TLS" in second.first("via")
    with UdpUac(server) as uac:
        assert contact[1:-1] in dict(uac.bindings("bob"))
        assert uac.register("bob", contacts=["*"], expires=0).status == 200


# --------------------------------------------------------------------------- malformed header lines

@pytest.mark.parametrize("line", ["u1[authentication username= password=pw-u1]", "Bad Header Name: x"])
def test_a_malformed_header_line_gets_400_not_silence(server, line):
    """What SIPp 3.6.1 sends when a keyword does not expand (found while writing
    register-auth.xml): a header line without a colon. Via, CSeq, From, To and Call-ID are
    all fine, so the request can be answered (DESIGN.md: every error is a clear answer)."""
    with UdpUac(server) as uac:
        data = build_register("alice", uac.dest, sent_by=uac.local, call_id=f"bad-{os.urandom(4).hex()}",
                              cseq=1, contacts=[f"<sip:alice@{uac.local[0]}:{uac.local[1]}>"])
        data = data.replace(b"Content-Length: 0", line.encode() + b"\r\nContent-Length: 0")
        resp = uac.transact(data, timeout=3)
        assert resp is not None, (
            f"BUG in sipcore/message.py parse(): {line!r} raises ParseError(400, ...) without the partial "
            "message ('Header line without a colon' / 'Invalid header name'), so "
            "sipcore/endpoint.py _reject_unparsable has no Via/CSeq to answer with and drops the "
            "request silently; expected 400 Bad Request")
        assert resp.status == 400, resp.raw


# --------------------------------------------------------------------------- rport (RFC 3581)

def test_rport_answers_the_source_port_and_fills_received_and_rport(server):
    with UdpUac(server) as uac:
        port = uac.local[1]
        # A phone behind NAT: its Via names an address nobody can reach.
        resp = uac.register("carol", contacts=[f"<sip:carol@192.0.2.30:5060>"], sent_by=("192.0.2.30", 5060),
                            rport=True, timeout=5)
        assert resp is not None, "no response at the source port"
        assert resp.status == 200, resp.raw
        via = resp.first("via")
        assert "192.0.2.30:5060" in via, via
        assert re.search(r";received=127\.0\.0\.1(;|$)", via), via
        assert re.search(rf";rport={port}(;|$)", via), via
        assert uac.register("carol", contacts=["*"], expires=0).status == 200


def test_without_rport_the_response_goes_to_the_via_port(server):
    """RFC 3261 §18.2.2: no rport, so the answer goes to the source address at the Via's port."""
    with udp_socket() as listener, UdpUac(server) as uac:
        sent_by = ("127.0.0.1", listener.getsockname()[1])
        data = build_register("carol", uac.dest, sent_by=sent_by, call_id=f"norport-{os.urandom(4).hex()}",
                              cseq=1, contacts=["<sip:carol@127.0.0.1:5999>"])
        uac.sock.sendto(data, uac.dest)
        listener.settimeout(3)
        resp = parse_response(listener.recv(65535))
        assert resp.status == 401
        assert "received=" not in resp.first("via") and "rport" not in resp.first("via")
        uac.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            uac.sock.recv(65535)
