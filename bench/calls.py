"""Call benchmark (issue 4, acceptance 6), two figures from one run on this machine:

  1. Call set-up and tear-down rate: SIPp places INVITE/ACK/BYE calls (no talk time) to a
     registered SIPp callee through
       (a) callrouter, a B2BUA, with `auth.required: false` (SIPp does not answer INVITE
           challenges cheaply) and `rtp.relay: true` (the default: every call also allocates
           and frees relay ports), and
       (b) Kamailio's stateful record-routing proxy (../shared/bench-peers/), the reference,
     with the same SIPp scenarios (tests/interop/sipp/call-uac-bench.xml, call-uas-bench.xml)
     and the same load shape. The figure is the highest rate served with zero failed calls:
     SIPp paces new calls at rising rates (--rates) until a call fails or is retransmitted or
     the rate is not reached; the best clean rate is run --rounds times and the median round
     (calls completed / SIPp's elapsed time) is the figure; a failed call there fails the run.
     (A cap on calls in flight with an unbounded rate, as bench/register.py uses, starts with
     a burst that callrouter answers with 503 "media relay has no free ports" while its relay
     pool refills.) Target: callrouter >= 0.3 x Kamailio.

  2. Concurrent relayed calls with RTP both ways: a load process sets up --relayed calls from
     "alice" to "bob" through callrouter (its own minimal SIP UAs: one call at a time, so each
     answer is known to be that call's), then plays both phones of every call for --seconds
     (50 packets/s each way, 172-byte G.711-sized RTP, phases spread over the 20 ms tick),
     counts what arrives at the other phone, and hangs every call up. The loss is measured end
     to end, phone to phone through the relay, so it also counts any loss in the load process's
     own sockets: an upper bound on the relay's. Target: >= 500 calls with < 0.1% lost.

Run from the project root (`make bench` installs SIPp and Kamailio; this script installs nothing):

    .venv/bin/python bench/calls.py [--round-seconds 5] [--rounds 3] [--rates 100,200,...] [--relayed 500] [--seconds 10]

The last line of stdout carries the figures; bench/results/calls.json has the details. Exit
status: 0 when every call succeeded and every process behaved (targets missed are reported,
not fatal), 1 on a failed call or a process that failed.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.register import KAMAILIO_CFG, KAMAILIO_PORT, free_udp_port, port_free, sip_answers  # noqa: E402
from tests.server import NAMED_USERS, ServerProcess  # noqa: E402

SCENARIOS = ROOT / "tests" / "interop" / "sipp"
TARGET_RATIO, TARGET_CALLS, TARGET_LOSS_PCT = 0.3, 500, 0.1
CALLER, CALLEE = "alice", "bob"
CALLEE_EXTENSION = NAMED_USERS[CALLEE][1]
MAX_IN_FLIGHT = 5000  # SIPp -l: the rate, not a cap on calls in flight, sets the load
# Relay ports for the benchmark's server: below the tests' slices (20000+) and the kernel's
# ephemeral range, and room for thousands of calls (4 ports per call).
RTP_PORTS = (10000, 19998)


class BenchError(Exception):
    """A failed call or a process that failed: the run is invalid."""


# --------------------------------------------------------------------------- SIP bits

def register(target: tuple[str, int], user: str, contact_port: int, sock: socket.socket | None = None) -> None:
    """REGISTER user with Contact 127.0.0.1:contact_port, from `sock` (callrouter binds a user
    to where its REGISTER came from) or from a throwaway socket (Kamailio uses the Contact)."""
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    try:
        local = sock.getsockname()
        msg = (f"REGISTER sip:{target[0]}:{target[1]} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{os.urandom(8).hex()}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:{user}@{target[0]}>;tag={os.urandom(4).hex()}\r\n"
               f"To: <sip:{user}@{target[0]}>\r\nCall-ID: bench-reg-{os.urandom(6).hex()}\r\n"
               f"CSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact_port}>\r\nExpires: 3600\r\n"
               "Content-Length: 0\r\n\r\n").encode()
        sock.settimeout(1.0)
        for _ in range(5):
            sock.sendto(msg, target)
            try:
                reply = sock.recv(65535)
            except OSError:
                continue
            if reply.startswith(b"SIP/2.0 200"):
                return
            raise BenchError(f"REGISTER {user} at {target}: {reply[:200]!r}")
        raise BenchError(f"REGISTER {user} at {target}: no answer")
    finally:
        if own:
            sock.close()


def run_sipp_calls(sipp: str, target: tuple[str, int], service: str, calls: int, limit: int, rate: int,
                   workdir: Path, label: str, local_port: int, timeout: float = 180.0) -> dict:
    stat, errors = workdir / f"{label}.csv", workdir / f"{label}-errors.log"
    cmd = [sipp, f"{target[0]}:{target[1]}", "-sf", str(SCENARIOS / "call-uac-bench.xml"), "-s", service,
           "-key", "caller", CALLER, "-m", str(calls), "-r", str(rate), "-l", str(limit),
           "-t", "u1", "-i", "127.0.0.1", "-p", str(local_port), "-mp", str(free_udp_port()),
           "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_err", "-error_file", str(errors),
           "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error"]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout + 20)
        rc, err = proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, err = -9, "killed after the subprocess timeout"
    wall = time.monotonic() - started
    row: dict[str, str] = {}
    if stat.exists():
        with stat.open(newline="", errors="replace") as f:
            rows = list(csv.reader(f, delimiter=";"))
        if len(rows) >= 2:
            row = dict(zip(rows[0], rows[-1]))

    def number(name: str) -> int:
        try:
            return int(float(row.get(name) or 0))
        except ValueError:
            return 0

    def epoch(name: str) -> float | None:
        try:
            return float((row.get(name) or "").split("\t")[-1])  # "date<TAB>time<TAB>epoch"
        except ValueError:
            return None

    start, end = epoch("StartTime"), epoch("CurrentTime")
    elapsed = end - start if start is not None and end is not None and end > start else wall
    ok = number("SuccessfulCall(C)")
    return {"limit": limit, "calls": calls, "returncode": rc, "successful": ok,
            "failed": number("FailedCall(C)"), "retransmissions": number("Retransmissions(C)"),
            "seconds": round(elapsed, 3), "per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
            "errors": (errors.read_text(errors="replace")[:2000] if errors.exists() else "") + err[-500:]}


@contextmanager
def sipp_callee(sipp: str, port: int, workdir: Path):
    """SIPp answering every call at once on 127.0.0.1:port (tests/interop/sipp/call-uas-bench.xml)."""
    log = (workdir / f"uas-{port}.log").open("wb")
    proc = subprocess.Popen([sipp, "-sf", str(SCENARIOS / "call-uas-bench.xml"), "-i", "127.0.0.1", "-p", str(port), "-mp", str(free_udp_port()),
                             "-nostdin", "-fd", "1", "-trace_stat", "-stf", str(workdir / f"uas-{port}.csv")],
                            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 5
        while port_free(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            raise BenchError(f"the SIPp callee exited with {proc.returncode}")
        yield proc
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        log.close()


def measure_cps(sipp: str, target: tuple[str, int], service: str, args, workdir: Path, label: str, alive) -> dict:
    """The highest call rate served with no failed call: SIPp paces new calls at each rate of
    args.rates in turn (calls in flight uncapped), stopping at the first rate with a failed or
    retransmitted call or a rate it could not reach; the best clean rate is then measured
    args.rounds times, where any failed call invalidates the run."""
    workdir.mkdir(parents=True, exist_ok=True)
    local_port = free_udp_port()

    def run(calls: int, rate: int, tag: str, strict: bool) -> dict:
        r = run_sipp_calls(sipp, target, service, calls, MAX_IN_FLIGHT, rate, workdir, f"{label}-{tag}", local_port)
        r["rate"] = rate
        alive()
        if strict and (r["failed"] or r["successful"] != calls or r["returncode"] != 0):
            raise BenchError(f"{label} {tag}: {r['successful']} of {calls} calls completed, {r['failed']} failed, "
                             f"SIPp rc {r['returncode']}\n{r['errors']}")
        return r

    def clean(r: dict) -> bool:
        return (not r["failed"] and r["successful"] == r["calls"] and r["returncode"] == 0
                and not r["retransmissions"] and r["per_s"] >= 0.85 * r["rate"])

    def calls_for(rate: int, seconds: float) -> int:
        return max(200, int(rate * seconds))

    warm = run(calls_for(args.rates[0], args.calibration_seconds), args.rates[0], "warmup", strict=True)
    calibration: list[dict] = []
    for rate in args.rates:
        r = run(calls_for(rate, args.calibration_seconds), rate, f"cal-r{rate}", strict=False)
        calibration.append(r)
        if not clean(r):
            break
    good = [c for c in calibration if clean(c)]
    if not good:
        raise BenchError(f"{label}: calls failed even at {args.rates[0]} calls/s\n{calibration[0]['errors']}")
    chosen = max(good, key=lambda c: c["per_s"])["rate"]
    # A rate that was clean for a short calibration run may not hold for a long round on a
    # shared machine: a failed round steps down one rate and starts the rounds again.
    failed_rounds: list[dict] = []
    while True:
        try:
            rounds = [run(calls_for(chosen, args.round_seconds), chosen, f"round{i}-r{chosen}", strict=True)
                      for i in range(args.rounds)]
            break
        except BenchError as exc:
            lower = [r for r in args.rates if r < chosen]
            failed_rounds.append({"rate": chosen, "error": str(exc)[:600]})
            if not lower:
                raise
            chosen = lower[-1]
    for r in calibration + rounds + [warm]:
        r["errors"] = r["errors"][:600]
    return {"chosen_rate": chosen, "per_s": round(statistics.median(r["per_s"] for r in rounds), 1),
            "rounds_per_s": [r["per_s"] for r in rounds],
            "successful": sum(r["successful"] for r in rounds), "failed": sum(r["failed"] for r in rounds),
            "retransmissions": sum(r["retransmissions"] for r in rounds),
            "warmup": warm, "calibration": calibration, "rounds": rounds, "failed_rounds": failed_rounds}


# --------------------------------------------------------------------------- callrouter

def start_callrouter(workdir: Path, relay: bool = True) -> ServerProcess:
    server = ServerProcess(workdir, settings={
        "auth": {"required": False},
        "rtp": {"relay": relay, "port_min": RTP_PORTS[0], "port_max": RTP_PORTS[1]},
        "security": {"rate_limit": 1_000_000, "rate_burst": 1_000_000},
        "location": {"snapshot_interval": 2},
        "log": {"level": "WARNING"},
    })
    try:
        return server.start(timeout=120)
    except RuntimeError as exc:
        raise BenchError(f"callrouter did not start: {exc}") from None


def server_alive(server: ServerProcess, label: str):
    def alive() -> None:
        if server.proc.poll() is not None:
            raise BenchError(f"{label}: callrouter exited with {server.proc.returncode}:\n{server.log()}")
    return alive


def stop_callrouter(server: ServerProcess, label: str) -> None:
    running = server.proc is not None and server.proc.poll() is None
    rc = server.stop(signal.SIGTERM, timeout=60)
    if not running or rc != 0:
        raise BenchError(f"{label}: callrouter exit status {rc} on SIGTERM:\n{server.log()}")


def bench_callrouter_cps(sipp: str, workdir: Path, args, relay: bool = True) -> dict:
    label = "callrouter" if relay else "callrouter-norelay"
    server = start_callrouter(workdir / label, relay)
    try:
        callee_port = free_udp_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", callee_port))
            register(("127.0.0.1", server.sip_port), CALLEE, callee_port, s)
        with sipp_callee(sipp, callee_port, workdir):
            return measure_cps(sipp, ("127.0.0.1", server.sip_port), CALLEE_EXTENSION, args,
                               workdir / label / "sipp", label, server_alive(server, label))
    finally:
        stop_callrouter(server, label)


# --------------------------------------------------------------------------- Kamailio

@contextmanager
def kamailio(workdir: Path):
    """Kamailio from the shared configuration, on 5070 or, when that is taken, on a free port
    from a temporary copy of the configuration (as bench/register.py does)."""
    kam = shutil.which("kamailio") or ("/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None)
    if kam is None or not KAMAILIO_CFG.exists():
        raise BenchError(f"kamailio or {KAMAILIO_CFG} missing (run `make bench`, which installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    cfg, port = KAMAILIO_CFG, KAMAILIO_PORT
    if not port_free(port):
        port = free_udp_port()
        while not port_free(port):
            port = free_udp_port()
        text = KAMAILIO_CFG.read_text().replace(f"127.0.0.1:{KAMAILIO_PORT}", f"127.0.0.1:{port}")
        text = text.replace("unix:/tmp/kamailio_ctl", f"unix:{workdir / 'kamailio_ctl'}")
        cfg = workdir / "kamailio.cfg"
        cfg.write_text(text)
    log_path = workdir / "kamailio.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([kam, "-f", str(cfg), "-P", str(workdir / "kamailio.pid"), "-m", "1024", "-M", "64",
                                 "-DD"], stdout=log, stderr=subprocess.STDOUT)

        def alive() -> None:
            if proc.poll() is not None:
                raise BenchError(f"kamailio exited with {proc.returncode}: "
                                 f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if not sip_answers(port, 20):
                alive()
                raise BenchError(f"kamailio does not answer on 127.0.0.1:{port}")
            yield port, alive
        finally:
            running = proc.poll() is None
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not running:
        raise BenchError(f"kamailio exited early with {proc.returncode}")


def bench_kamailio_cps(sipp: str, workdir: Path, args) -> dict:
    with kamailio(workdir / "kamailio") as (port, alive):
        callee_port = free_udp_port()
        register(("127.0.0.1", port), "uas", callee_port)
        with sipp_callee(sipp, callee_port, workdir):
            result = measure_cps(sipp, ("127.0.0.1", port), "uas", args, workdir / "kamailio" / "sipp",
                                 "kamailio", alive)
        result["port"] = port
        return result


# --------------------------------------------------------------------------- relayed calls

TICK, SLOTS, SOCKETS_PER_SIDE, PAYLOAD = 0.020, 20, 16, 160
SETUP_RATE = 100  # relayed calls set up per second
# RTP header (version, payload type, sequence, timestamp, SSRC), then call, direction,
# sequence and send time, padded to a G.711 frame.
PACKET = struct.Struct("!BBHII I B I d")
_HEADER = re.compile(rb"^([A-Za-z-]+)[ \t]*:[ \t]*(.*?)\r?$", re.MULTILINE)
_COMPACT = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id", b"m": b"contact", b"l": b"content-length"}


def _parse(data: bytes) -> tuple[bytes, dict[bytes, list[bytes]], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    first, _, rest = head.partition(b"\r\n")
    headers: dict[bytes, list[bytes]] = {}
    for m in _HEADER.finditer(rest):
        name = m.group(1).lower()
        headers.setdefault(_COMPACT.get(name, name), []).append(m.group(2))
    return first, headers, body


def _sdp_address(body: bytes) -> tuple[str, int]:
    host = re.search(rb"^c=IN IP4 (\S+)", body, re.MULTILINE).group(1).decode()
    port = int(re.search(rb"^m=audio (\d+)", body, re.MULTILINE).group(1))
    return host, port


def _sdp(port: int) -> bytes:
    return (f"v=0\r\no=bench {port} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n").encode()


class Phones:
    """Both ends of every call: "alice" places them from one SIP socket, "bob" (registered from
    another) answers them; RTP from SOCKETS_PER_SIDE sockets per side, call i on socket i % 16."""

    def __init__(self, server: tuple[str, int]):
        self.server = server
        self.a_sip, self.b_sip = self._socket(), self._socket()
        self.media = [[self._socket() for _ in range(SOCKETS_PER_SIDE)] for _ in range(2)]
        self.calls: list[dict] = []
        self.b_dialogs: dict[bytes, bytes] = {}   # bob's Call-ID -> the 200 he answered with

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        return s

    def _request(self, method: str, uri: str, call: dict, cseq: int, body: bytes = b"", to_tag: str = "") -> bytes:
        local = self.a_sip.getsockname()
        to = f"<sip:{CALLEE_EXTENSION}@{self.server[0]}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{os.urandom(8).hex()}",
                 "Max-Forwards: 70", f"From: <sip:{CALLER}@{local[0]}>;tag={call['tag']}", f"To: {to}",
                 f"Call-ID: {call['call_id']}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:{CALLER}@{local[0]}:{local[1]}>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _bob(self, data: bytes, source: tuple[str, int]) -> tuple[bytes, bytes]:
        """Bob answers an INVITE with 200 and SDP, a BYE with 200; returns (method, Call-ID)."""
        first, h, body = _parse(data)
        method = first.split(b" ", 1)[0]
        call_id = h[b"call-id"][0]
        if method not in (b"INVITE", b"BYE"):
            return method, call_id
        if method == b"INVITE" and call_id in self.b_dialogs:
            self.b_sip.sendto(self.b_dialogs[call_id], source)  # a retransmitted INVITE
            return b"INVITE-again", call_id
        lines = [b"SIP/2.0 200 OK", *(b"Via: " + v for v in h[b"via"]), b"From: " + h[b"from"][0],
                 b"To: " + h[b"to"][0] + (b";tag=b" + os.urandom(4).hex().encode() if method == b"INVITE" else b""),
                 b"Call-ID: " + call_id, b"CSeq: " + h[b"cseq"][0]]
        answer = b""
        if method == b"INVITE":
            local = self.b_sip.getsockname()
            index = len(self.calls)
            answer = _sdp(self.media[1][index % SOCKETS_PER_SIDE].getsockname()[1])
            lines += [f"Contact: <sip:{CALLEE}@{local[0]}:{local[1]}>".encode(), b"Content-Type: application/sdp"]
            self.pending_b = (call_id, _sdp_address(body))
        lines.append(f"Content-Length: {len(answer)}".encode())
        reply = b"\r\n".join(lines) + b"\r\n\r\n" + answer
        if method == b"INVITE":
            self.b_dialogs[call_id] = reply
        self.b_sip.sendto(reply, source)
        return method, call_id

    def setup(self, timeout: float = 5.0) -> bool:
        """One call, start to established (alice has the 200 and ACKed it, bob has the ACK)."""
        index = len(self.calls)
        call = {"call_id": f"bench-{os.getpid()}-{index}@127.0.0.1", "tag": os.urandom(4).hex()}
        offer = _sdp(self.media[0][index % SOCKETS_PER_SIDE].getsockname()[1])
        invite = self._request("INVITE", f"sip:{CALLEE_EXTENSION}@{self.server[0]}:{self.server[1]}", call, 1, offer)
        self.pending_b = None
        deadline = time.monotonic() + timeout
        resend, got_provisional, acked_by_b = time.monotonic(), False, False
        while time.monotonic() < deadline:
            if not got_provisional and time.monotonic() >= resend:
                self.a_sip.sendto(invite, self.server)
                resend = time.monotonic() + 0.5
            ready, _, _ = select.select([self.a_sip, self.b_sip], [], [], 0.05)
            for s in ready:
                data, source = s.recvfrom(65535)
                if s is self.b_sip:
                    method, b_call_id = self._bob(data, source)
                    acked_by_b |= method == b"ACK" and self.pending_b is not None and b_call_id == self.pending_b[0]
                    continue
                first, h, body = _parse(data)
                if h[b"call-id"][0].decode() != call["call_id"]:
                    continue  # a late retransmission for an earlier call
                status = int(first.split()[1])
                if status < 200:
                    got_provisional = True
                    continue
                if status != 200 or not h[b"cseq"][0].endswith(b"INVITE"):
                    return False
                if "to_tag" not in call:  # the first 200 (a retransmission is ACKed again below)
                    call["to_tag"] = re.search(rb";tag=([^;>\s]+)", h[b"to"][0]).group(1).decode()
                    call["target"] = re.search(rb"<([^>]+)>", h[b"contact"][0]).group(1).decode()
                    call["relay_a"] = _sdp_address(body)
                self.a_sip.sendto(self._request("ACK", call["target"], call, 1, to_tag=call["to_tag"]), self.server)
            if "to_tag" in call and acked_by_b and self.pending_b is not None:
                call["relay_b"] = self.pending_b[1]
                self.calls.append(call)
                return True
        return False

    def hang_up_all(self, timeout: float = 20.0) -> int:
        """BYE from alice for every call, in batches; returns how many got their 200."""
        done: set[str] = set()
        pending: dict[str, tuple[bytes, float]] = {}
        queue = list(self.calls)
        deadline = time.monotonic() + timeout
        while (queue or pending) and time.monotonic() < deadline:
            while queue and len(pending) < 50:
                call = queue.pop()
                bye = self._request("BYE", call["target"], call, 2, to_tag=call["to_tag"])
                self.a_sip.sendto(bye, self.server)
                pending[call["call_id"]] = (bye, time.monotonic())
            ready, _, _ = select.select([self.a_sip, self.b_sip], [], [], 0.05)
            for s in ready:
                data, source = s.recvfrom(65535)
                if s is self.b_sip:
                    self._bob(data, source)
                    continue
                first, h, _ = _parse(data)
                call_id = h[b"call-id"][0].decode()
                if first.startswith(b"SIP/2.0 200") and call_id in pending:
                    pending.pop(call_id)
                    done.add(call_id)
            now = time.monotonic()
            for call_id, (bye, sent) in list(pending.items()):
                if now - sent > 0.5:
                    self.a_sip.sendto(bye, self.server)
                    pending[call_id] = (bye, now)
        return len(done)

    def play(self, seconds: float) -> dict:
        """RTP both ways on every call for `seconds`; counts what reaches the other phone."""
        n = len(self.calls)
        ep = select.epoll()
        by_fd = {}
        for side, socks in enumerate(self.media):
            for s in socks:
                s.setblocking(False)
                ep.register(s.fileno(), select.EPOLLIN)
                by_fd[s.fileno()] = (s, side)
        sent, received, bad, late, misrouted = [0, 0], [0, 0], 0, 0, 0
        delays: list[float] = []
        seq = [0] * n
        slots = [[i for i in range(n) if i % SLOTS == slot] for slot in range(SLOTS)]
        filler = bytes(PAYLOAD - (PACKET.size - 12))
        buf = bytearray(2048)
        pack, unpack_from, mono = PACKET.pack, PACKET.unpack_from, time.monotonic
        a_socks, b_socks = self.media

        def drain(until: float) -> None:
            nonlocal bad, misrouted
            while True:
                events = ep.poll(max(until - mono(), 0))
                now = mono()
                for fd, _ in events:
                    s, side = by_fd[fd]
                    while True:
                        try:
                            size = s.recv_into(buf)
                        except BlockingIOError:
                            break
                        if size != 12 + PAYLOAD:
                            bad += 1
                            continue
                        fields = unpack_from(buf)
                        if fields[6] == side:  # alice (side 0) sends direction 0, which is bob's to hear
                            misrouted += 1
                            continue
                        received[fields[6]] += 1
                        if len(delays) < 2_000_000:
                            delays.append(now - fields[8])
                if now >= until:
                    return

        start = mono() + 0.1
        end, tick, slots_run = start + seconds, start, 0
        while tick < end:
            for slot in range(SLOTS):
                slots_run += 1
                at = tick + slot * TICK / SLOTS
                drain(at)
                if mono() - at > TICK / SLOTS:
                    late += 1
                now = mono()
                for i in slots[slot]:
                    call, q = self.calls[i], seq[i]
                    seq[i] = q + 1
                    k = i % SOCKETS_PER_SIDE
                    a_socks[k].sendto(pack(0x80, 0, q & 0xFFFF, q * PAYLOAD, 2 * i + 1, i, 0, q, now) + filler,
                                      call["relay_a"])
                    b_socks[k].sendto(pack(0x80, 0, q & 0xFFFF, q * PAYLOAD, 2 * i + 2, i, 1, q, now) + filler,
                                      call["relay_b"])
                    sent[0] += 1
                    sent[1] += 1
            tick += TICK
        played = mono() - start  # longer than `seconds` when this process could not keep the pace
        drain(mono() + 0.5)
        delays.sort()

        def pick(q: float) -> float:
            return round(delays[min(len(delays) - 1, int(q * len(delays)))] * 1000, 3) if delays else 0.0

        return {"sent": sent, "received": received, "bad": bad, "misrouted": misrouted,
                "late_slots_pct": round(100 * late / max(1, slots_run), 2), "played_seconds": round(played, 2),
                "packets_per_s": round(sum(sent) / played) if played > 0 else 0,
                "delay_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}}


def relayed_worker(conn, server: tuple[str, int], calls: int, seconds: float) -> None:
    try:
        phones = Phones(server)
        register(server, CALLEE, phones.b_sip.getsockname()[1], phones.b_sip)
        # Set up at a steady SETUP_RATE: this part measures calls held and their media, and the
        # set-up rate has its own figure above.
        started = time.monotonic()
        failed_setups = 0
        for i in range(calls):
            time.sleep(max(0.0, started + i / SETUP_RATE - time.monotonic()))
            failed_setups += not phones.setup()
        setup_s = time.monotonic() - started
        media = phones.play(seconds) if not failed_setups else {}
        hung_up = phones.hang_up_all()
        conn.send({"calls": calls, "established": len(phones.calls), "failed_setups": failed_setups,
                   "setup_seconds": round(setup_s, 2), "hung_up": hung_up, **media})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def bench_relayed(workdir: Path, args) -> dict:
    label = "callrouter-relayed"
    server = start_callrouter(workdir / label)
    try:
        relay_pids = _children(server.proc.pid)
        cpu_before = {pid: _cpu_seconds(pid) for pid in [server.proc.pid, *relay_pids]}
        parent, child = multiprocessing.Pipe()
        worker = multiprocessing.Process(target=relayed_worker,
                                         args=(child, ("127.0.0.1", server.sip_port), args.relayed, args.seconds))
        worker.start()
        limit = 60 + args.relayed / SETUP_RATE + args.relayed * 0.05 + args.seconds
        if not parent.poll(limit):
            worker.kill()
            raise BenchError(f"{label}: the load process did not finish within {limit:.0f}s")
        result = parent.recv()
        worker.join(10)
        server_alive(server, label)()
        if "error" in result:
            raise BenchError(f"{label}: load process failed: {result['error']}")
        cpu_after = {pid: _cpu_seconds(pid) for pid in cpu_before if Path(f"/proc/{pid}").exists()}
        result["cpu_seconds"] = {("server" if pid == server.proc.pid else f"child-{pid}"): round(cpu_after[pid] - cpu_before[pid], 2)
                                 for pid in cpu_after}
        if result["failed_setups"] or result["hung_up"] != result["established"]:
            raise BenchError(f"{label}: {result['failed_setups']} calls failed to set up, "
                             f"{result['established'] - result['hung_up']} failed to hang up\n{server.log()}")
        sent, received = sum(result["sent"]), sum(result["received"])
        # A packet heard by the phone that sent it (misrouted) counts as lost.
        result["lost_pct"] = round(100 * (sent - received) / sent, 4) if sent else None
        return result
    finally:
        stop_callrouter(server, label)


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--round-seconds", type=float, default=5.0, help="length of each measured run")
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per server (median reported)")
    ap.add_argument("--calibration-seconds", type=float, default=2.0, help="length of each calibration run")
    ap.add_argument("--rates", default="100,200,300,400,500,600,700,800,1000,1250,1500,2000,2500,3000,4000",
                    help="call rates (SIPp -r) to ramp through, ascending")
    ap.add_argument("--relayed", type=int, default=TARGET_CALLS, help="concurrent relayed calls with RTP")
    ap.add_argument("--seconds", type=float, default=10.0, help="RTP play time of the relayed calls")
    ap.add_argument("--skip-no-relay", action="store_true", help="skip the comparison run with rtp.relay false")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp traces)")
    args = ap.parse_args()
    args.rates = [int(x) for x in args.rates.split(",")]

    sipp = shutil.which("sipp")
    if sipp is None:
        print("calls: FAILED: sipp is not installed (run `make bench`, which installs it)")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    result: dict = {"benchmark": "calls", "round_seconds": args.round_seconds, "rounds": args.rounds,
                    "calibration_seconds": args.calibration_seconds, "rates": args.rates,
                    "callrouter_settings": {"auth.required": False, "rtp.relay": True},
                    "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    status = 0
    try:
        result["callrouter"] = bench_callrouter_cps(sipp, workdir, args)
        if not args.skip_no_relay:  # for comparison: the B2BUA without the relay's round trips
            result["callrouter_no_relay"] = bench_callrouter_cps(sipp, workdir, args, relay=False)
        result["kamailio"] = bench_kamailio_cps(sipp, workdir, args)
        result["relayed"] = bench_relayed(workdir, args)
    except BenchError as exc:
        result["error"] = str(exc)
        status = 1
    finally:
        if not args.keep and status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["workdir"] = str(workdir)

    cr = result.get("callrouter", {}).get("per_s")
    kam = result.get("kamailio", {}).get("per_s")
    ratio = cr / kam if cr and kam else None
    relayed = result.get("relayed", {})
    loss = relayed.get("lost_pct")
    no_relay = result.get("callrouter_no_relay", {}).get("per_s")
    failed = sum(result.get(k, {}).get("failed", 0) for k in ("callrouter", "callrouter_no_relay", "kamailio"))
    result.update({"ratio": round(ratio, 3) if ratio else None, "failed": failed, "targets": {
        "ratio": TARGET_RATIO, "relayed_calls": TARGET_CALLS, "lost_pct": TARGET_LOSS_PCT,
        "ratio_met": bool(ratio and ratio >= TARGET_RATIO),
        "relayed_met": bool(relayed.get("established", 0) >= TARGET_CALLS and loss is not None and loss < TARGET_LOSS_PCT)}})
    out = ROOT / "bench" / "results" / "calls.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    if status:
        print(result["error"])
        print(f"calls: FAILED: {result['error'].splitlines()[0]} (details in {out}, logs in {workdir})")
        return status
    print(f"calls: callrouter {cr:,.0f} cps vs kamailio {kam:,.0f} cps = {ratio:.2f}x ({failed} failed; "
          f"callrouter auth off, relay on{f'; relay off {no_relay:,.0f} cps' if no_relay else ''}) | relayed {relayed['established']} calls {loss:.3f}% lost "
          f"end to end ({relayed['packets_per_s']:,} packets/s) | targets >={TARGET_RATIO}x, >={TARGET_CALLS} calls <{TARGET_LOSS_PCT}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
