"""Bulk registration against a real server: 1,000 users through SIPp (MD5) and through an
asyncio UDP client of our own (SHA-256), then the server's own count of bindings.

SIPp 3.6.1 computes only MD5 (and AKAv1-MD5) digests, and it answers the first
WWW-Authenticate of the 401: against the default challenge order (SHA-256 first, then MD5)
it gives up with "createAuthHeader: authentication must use MD5 or AKAv1-MD5". Its
server therefore offers MD5 only (`auth: {algorithms: [MD5]}`). The SHA-256 run uses the
default settings, so it also shows that a client may pick the challenge it prefers.
"""
from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from tests.sipcore.sipclient import digest_authorization
from tests.interop.conftest import (bulk_user_rows, challenge_params, password_of, run_sipp,
                                    wait_metric, write_injection)
from tests.server import REALM

pytestmark = [pytest.mark.interop, pytest.mark.timeout(150)]

USERS = 1000


@pytest.fixture(scope="module")
def md5_server(start_module_server, sipp):
    # SIPp answers only MD5 and picks the first challenge: MD5 must be the only (or first) one.
    return start_module_server("md5", bulk_users=USERS, settings={"auth": {"algorithms": ["MD5"]}})


@pytest.fixture(scope="module")
def sha_server(start_module_server):
    return start_module_server("sha", bulk_users=USERS)  # default: SHA-256 first, then MD5


def test_sipp_registers_1000_users_with_md5(md5_server, tmp_path):
    users = write_injection(tmp_path / "users.csv", bulk_user_rows(USERS))
    result = run_sipp(("127.0.0.1", md5_server.sip_port), "register-auth.xml", tmp_path,
                      calls=USERS, rate=1000, limit=100, inf=users, timeout=60)
    assert result.returncode == 0, result.summary()
    assert (result.created, result.successful, result.failed) == (USERS, USERS, 0), result.summary()
    assert wait_metric(md5_server, "callrouter_registrations", USERS) == USERS
    assert md5_server.metric("callrouter_registered_aors") == USERS
    assert md5_server.metric("callrouter_sip_auth_failures_total") == 0
    # Each registration is one challenge and one authenticated REGISTER (plus retransmissions).
    assert md5_server.metric("callrouter_sip_responses_total", 'class="2xx"') == USERS


def test_sipp_registers_over_tcp(md5_server, tmp_path):
    """The same scenario over one TCP connection (-t t1): framing of back-to-back messages."""
    before = md5_server.metric("callrouter_registrations")
    users = write_injection(tmp_path / "tcp-users.csv", bulk_user_rows(200))
    result = run_sipp(("127.0.0.1", md5_server.sip_port), "register-auth.xml", tmp_path,
                      calls=200, rate=1000, limit=50, inf=users, transport="t1", timeout=30)
    assert result.returncode == 0, result.summary()
    assert (result.successful, result.failed) == (200, 0), result.summary()
    # New contacts (SIPp's TCP address), so 200 more bindings.
    assert wait_metric(md5_server, "callrouter_registrations", before + 200) == before + 200


def test_sipp_wrong_password_gets_403(md5_server, tmp_path):
    before = md5_server.metric("callrouter_registrations")
    users = write_injection(tmp_path / "wrong.csv",
                            [["u7", "[authentication username=u7 password=not-pw-u7]"]])
    result = run_sipp(("127.0.0.1", md5_server.sip_port), "register-wrong-password.xml", tmp_path,
                      calls=1, rate=1, limit=1, inf=users, timeout=20)
    assert result.returncode == 0 and result.successful == 1, result.summary()
    assert md5_server.metric("callrouter_sip_auth_failures_total") == 1
    assert md5_server.metric("callrouter_registrations") == before


# --------------------------------------------------------------------------- SHA-256 client

class _Dispatch(asyncio.DatagramProtocol):
    """Routes each response to the future waiting on its Via branch."""

    def __init__(self) -> None:
        self.waiting: dict[bytes, asyncio.Future] = {}
        self.stray = 0

    def datagram_received(self, data: bytes, addr) -> None:
        m = re.search(rb"branch=([^;\r\n,]+)", data)
        fut = self.waiting.get(m.group(1)) if m else None
        if fut is None or fut.done():
            self.stray += 1
            return
        status = int(data[8:11])
        if status >= 200:
            fut.set_result(data)


def _sha256_authorization(challenge: str, user: str, password: str, uri: str, nc: int, cnonce: str) -> str:
    p = challenge_params(challenge)
    assert p["algorithm"] == "SHA-256" and p["realm"] == REALM and "auth" in p["qop"].split(",")
    return digest_authorization(challenge, user, password, "REGISTER", uri, nc=nc, cnonce=cnonce)


async def _register_sha256(transport, proto: _Dispatch, server: tuple[str, int], local: tuple[str, int],
                           user: str) -> tuple[int, list[str]]:
    uri = f"sip:{server[0]}:{server[1]}"
    call_id = f"sha-{user}-{os.urandom(4).hex()}"

    def request(cseq: int, authorization: str | None) -> tuple[bytes, bytes]:
        branch = ("z9hG4bK" + os.urandom(8).hex()).encode()
        lines = [f"REGISTER {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch.decode()}",
                 "Max-Forwards: 70", f"From: <sip:{user}@{server[0]}>;tag=a{cseq}",
                 f"To: <sip:{user}@{server[0]}>", f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER",
                 f"Contact: <sip:{user}@{local[0]}:{local[1]};line=sha>", "Expires: 1800"]
        if authorization:
            lines.append(f"Authorization: {authorization}")
        return branch, ("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode()

    async def transact(branch: bytes, data: bytes) -> bytes:
        fut = asyncio.get_running_loop().create_future()
        proto.waiting[branch] = fut
        try:
            interval = 0.5
            for _ in range(7):  # 0.5+1+2+4+4+4+4 s: about Timer F
                transport.sendto(data, server)
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), interval)
                except asyncio.TimeoutError:
                    interval = min(2 * interval, 4.0)
            raise TimeoutError(f"no final response for {user}")
        finally:
            proto.waiting.pop(branch, None)

    branch, data = request(1, None)
    first = (await transact(branch, data)).decode()
    if not first.startswith("SIP/2.0 401"):
        return int(first[8:11]), []
    challenges = re.findall(r"^WWW-Authenticate:\s*(.*)$", first, re.M | re.I)
    # The client prefers SHA-256: it must find that challenge among those offered.
    sha = [c.strip() for c in challenges if "algorithm=SHA-256" in c]
    assert sha, f"no SHA-256 challenge: {challenges}"
    auth = _sha256_authorization(sha[0], user, password_of(user), uri, 1, os.urandom(6).hex())
    branch, data = request(2, auth)
    final = (await transact(branch, data)).decode()
    return int(final[8:11]), re.findall(r"^Contact:\s*(.*)$", final, re.M | re.I)


async def test_asyncio_client_registers_1000_users_with_sha256(sha_server):
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", sha_server.sip_port)
    transport, proto = await loop.create_datagram_endpoint(_Dispatch, local_addr=("127.0.0.1", 0))
    local = transport.get_extra_info("sockname")[:2]
    limit = asyncio.Semaphore(100)

    async def one(n: int):
        async with limit:
            try:
                return await _register_sha256(transport, proto, server, local, f"u{n}")
            except TimeoutError as exc:
                return 0, [str(exc)]

    started = time.monotonic()
    try:
        results = await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(1, USERS + 1))), 90)
    finally:
        transport.close()
    took = time.monotonic() - started
    failed = [(n + 1, r) for n, r in enumerate(results) if r[0] != 200]
    assert not failed, f"{len(failed)} of {USERS} failed, e.g. {failed[:5]} ({took:.1f}s)"
    # Every 200 lists the binding just made, with the granted expiry.
    for n, (_, contacts) in enumerate(results, 1):
        assert any(f"sip:u{n}@" in c and ";line=sha>" in c and "expires=1800" in c for c in contacts), contacts
    assert wait_metric(sha_server, "callrouter_registrations", USERS) == USERS
    assert sha_server.metric("callrouter_sip_auth_failures_total") == 0
