"""RFC 4475 torture messages sent to the running server over UDP, one test per file.

The RFC section is the oracle for each answer. Without `rport`, a response goes to the
source address at the port of the top Via (RFC 3261 §18.2.2), so each message is sent from
a socket bound to that port on 127.0.0.1: the answer comes back to the sender either way.
"""
from __future__ import annotations

import csv
import os
import re
import socket
from pathlib import Path

import pytest

from sipcore.message import ParseError, parse
from tests.server import ServerProcess

TORTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "sip-torture" / "rfc4475"

# file -> the status the RFC 4475 section calls for (None: the message must be dropped).
EXPECTED = {
    # 3.1.1 valid: processed as ordinary requests. An INVITE from nobody we know is challenged
    # (407) before it is routed; one with a To tag names a dialog that does not exist (481);
    # MESSAGE has no route (480); OPTIONS is answered, REGISTER is challenged, unknown
    # methods are 501.
    "wsinv.dat": 481, "intmeth.dat": 501, "esc01.dat": 407, "escnull.dat": 401,
    "esc02.dat": 501, "lwsdisp.dat": 200, "longreq.dat": 407, "dblreq.dat": 401,
    "semiuri.dat": 200, "transports.dat": 200, "mpart01.dat": 480,
    "unreason.dat": None, "noreason.dat": None,  # responses matching no transaction: dropped
    # 3.1.2 invalid: 400, 505 for the unknown version; invalid responses are dropped
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "scalarlg.dat": None, "quotbal.dat": 400, "ltgtruri.dat": 400, "lwsruri.dat": 400,
    "lwsstart.dat": 400, "trws.dat": 400, "escruri.dat": 400, "baddate.dat": 400,
    "regbadct.dat": 400, "badaspec.dat": 400, "baddn.dat": 400, "badvers.dat": 505,
    "mismatch01.dat": 400, "mismatch02.dat": 400, "bigcode.dat": None,
    # 3.2.1: a branch of just the magic cookie is matched the RFC 2543 way and answered
    "badbranch.dat": 200,
    # 3.3 application
    "insuf.dat": 400, "unkscm.dat": 416, "novelsc.dat": 416,
    "unksm2.dat": 400,   # a registrar needs a SIP or SIPS URI as the address of record
    "bext01.dat": 420, "invut.dat": 415,
    "regaut01.dat": 401,  # unknown scheme: ignored, and the registrar challenges
    "multi01.dat": 400, "mcl01.dat": 400, "bcast.dat": None, "zeromf.dat": 483,
    "cparam01.dat": 401, "cparam02.dat": 401, "regescrt.dat": 401, "sdp01.dat": 406,
    # 3.4.1 RFC 2543 syntax is still understood
    "inv2543.dat": 407,
}


def manifest() -> list[tuple[str, str]]:
    path = TORTURE / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open() as f:
        return [(row["file"], row["class"]) for row in csv.DictReader(f, delimiter="\t")]


ROWS = manifest()
if not ROWS:
    if os.environ.get("CI"):
        raise RuntimeError(f"RFC 4475 messages not found at {TORTURE}")
    pytest.skip(f"RFC 4475 messages not found at {TORTURE} (../shared is absent)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("torture"))
    srv.start()
    srv.seen_transactions = set()
    yield srv
    srv.stop()


def transaction_key(data: bytes) -> tuple[bytes, bytes | None]:
    """Method and top Via, roughly what RFC 3261 §17.2.3 matches a request on."""
    method = data.split(b" ", 1)[0]
    method = b"INVITE" if method == b"ACK" else method
    match = re.search(rb"^(?:via|v)[ \t]*:(.*(?:\r\n[ \t].*)*)", data, re.I | re.M)
    return method, match.group(1).split(b",")[0].strip() if match else None


def fresh_transaction_space(server: ServerProcess, data: bytes) -> None:
    """Several RFC 4475 messages reuse one branch and sent-by (they were written to be
    tried one at a time). The server rightly takes a reused branch for a retransmission
    of the earlier request, so such a message goes to a restarted server instead."""
    key = transaction_key(data)
    if key in server.seen_transactions:
        server.restart()
        server.seen_transactions.clear()
    server.seen_transactions.add(key)


def reply_port(data: bytes) -> int:
    try:
        msg = parse(data, strict=False)
        return msg.top_via.port or 5060
    except (ParseError, ValueError, KeyError):
        return 5060


def exchange(server: ServerProcess, data: bytes, port: int, wait: float = 1.5) -> list[bytes]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        pytest.fail(f"cannot bind 127.0.0.1:{port} to receive the answer (is another SIP server running?): {exc}")
    try:
        sock.sendto(data, ("127.0.0.1", server.sip_port))
        sock.settimeout(wait)
        answers = []
        try:
            while True:
                answers.append(sock.recv(65535))
                sock.settimeout(0.3)  # anything else that follows quickly (there should be nothing)
        except socket.timeout:
            pass
        return answers
    finally:
        sock.close()


def raw_call_id(data: bytes) -> bytes | None:
    match = re.search(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", data, re.I | re.M)
    return match.group(1) if match else None


def send_ack(server: ServerProcess, invite_data: bytes, resp) -> None:
    """ACK a non-2xx final answer to an INVITE (RFC 3261 §17.1.1.3) so that the server's
    transaction stops retransmitting it."""
    try:
        invite = parse(invite_data)
    except ParseError:
        return  # answered statelessly: there is no transaction to stop
    lines = [f"ACK {invite.uri} SIP/2.0", f"Via: {invite.get_all('via')[0].split(',')[0]}",
             f"From: {invite.get('from')}", f"To: {resp.get('to')}", f"Call-ID: {invite.get('call-id')}",
             f"CSeq: {invite.cseq[0]} ACK", "Max-Forwards: 70", "Content-Length: 0"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape"),
                    ("127.0.0.1", server.sip_port))


@pytest.mark.parametrize("name,klass", ROWS, ids=[r[0] for r in ROWS])
def test_torture_message(server, name, klass):
    data = (TORTURE / name).read_bytes()
    expected = EXPECTED[name]
    if not data.startswith(b"SIP/"):
        fresh_transaction_space(server, data)
    answers = exchange(server, data, reply_port(data), wait=0.6 if expected is None else 3.0)
    if expected is None:
        assert answers == [], f"{name}: a {klass} response must be dropped, got {answers[:1]}"
        return
    call_id = raw_call_id(data)
    mine = [a for a in answers if raw_call_id(a) == call_id]  # not a stray retransmission
    assert len(mine) == 1, f"{name}: expected one answer, got {len(mine)}"
    resp = parse(mine[0], strict=False)  # it echoes the broken fields it complains about
    if resp.status >= 300 and resp.get("cseq", "").endswith("INVITE"):
        send_ack(server, data, resp)
    assert resp.status == expected, f"{name} ({klass}): {resp.status} {resp.reason}"
    assert resp.reason  # every error says why
    if expected == 420:
        assert {"nothingSupported", "noProxiesSupport", "foo", "bar"} & set(resp.values("unsupported")) or resp.values("unsupported")
    if expected == 415:
        assert resp.get("accept")
    if expected == 401:
        assert resp.get_all("www-authenticate")


def test_server_still_answers_options_after_the_set(server):
    # Runs after the parametrized set in file order.
    data = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKafter\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
            b"Call-ID: after-torture\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    sock.sendto(data, ("127.0.0.1", server.sip_port))
    resp = parse(sock.recv(65535))
    sock.close()
    assert resp.status == 200
    assert "REGISTER" in resp.get("allow")
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()
