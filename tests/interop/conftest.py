"""Fixtures for the interop tests: real callrouter processes and real SIP peers.

The peers are SIPp (Debian `sip-tester`), PJSIP through the `pjsua2` module of the
pjsua2-pybind11 wheel, and pyVoIP. On a developer machine a missing peer skips the tests
that need it, with the reason; when the ``CI`` environment variable is set a missing peer
is a failure, so that a broken CI image cannot pass by testing nothing.

Everything here is bounded in time: servers get a start timeout, SIPp runs get both a
SIPp-level ``-timeout`` and a subprocess timeout, and every socket read has a timeout.
"""
from __future__ import annotations

import csv
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.sipcore.sipclient import challenge_params, digest_authorization
from tests.server import NAMED_USERS, REALM, ServerProcess, bulk_password, free_port

SIPP_DIR = Path(__file__).resolve().parent / "sipp"


# --------------------------------------------------------------------------- missing peers

def missing(reason: str) -> None:
    """Skip the calling test, or fail it when CI is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so a missing interop peer is a failure", pytrace=False)
    pytest.skip(f"{reason} (with CI set this would fail)")


def require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        missing("sipp is not installed (Debian package sip-tester; `make debian-test-deps`)")
    return path


def require_module(name: str, hint: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"cannot import {name} ({exc}); {hint}")


@pytest.fixture(scope="session")
def sipp() -> str:
    return require_sipp()


# --------------------------------------------------------------------------- ports

def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free on host (127.0.0.2 works too: Linux routes all of 127/8 on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def udp_socket(host: str = "127.0.0.1", port: int = 0, timeout: float = 2.0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    s.settimeout(timeout)
    return s


# --------------------------------------------------------------------------- servers

@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: start_server(name, bulk_users=0, settings={}, **ServerProcess options such as
    org= and prepare=) -> a started ServerProcess, killed at the end of the test whatever happened."""
    started: list[ServerProcess] = []

    def start(name: str = "server", bulk_users: int = 0, settings: dict | None = None,
              timeout: float = 60.0, **options) -> ServerProcess:
        server = ServerProcess(tmp_path / name, bulk_users=bulk_users, settings=settings or {}, **options)
        started.append(server)
        return server.start(timeout=timeout)

    yield start
    for server in started:
        server.stop(signal.SIGKILL, timeout=10)


@pytest.fixture(scope="module")
def start_module_server(tmp_path_factory) -> Iterator[Callable[..., ServerProcess]]:
    """Like start_server, for a server shared by the tests of one module."""
    started: list[ServerProcess] = []

    def start(name: str = "server", bulk_users: int = 0, settings: dict | None = None,
              timeout: float = 60.0, **options) -> ServerProcess:
        server = ServerProcess(tmp_path_factory.mktemp(name), bulk_users=bulk_users,
                               settings=settings or {}, **options)
        started.append(server)
        return server.start(timeout=timeout)

    yield start
    for server in started:
        server.stop(signal.SIGKILL, timeout=10)


def wait_metric(server: ServerProcess, name: str, expected: float, timeout: float = 10.0,
                labels: str = "") -> float:
    """Poll a metric until it equals expected; returns the last value seen (the caller asserts)."""
    deadline = time.monotonic() + timeout
    value = float("nan")
    while True:
        try:
            value = server.metric(name, labels)
        except KeyError:
            value = float("nan")
        if value == expected or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def password_of(user: str) -> str:
    if user in NAMED_USERS:
        return NAMED_USERS[user][0]
    m = re.fullmatch(r"u(\d+)", user)
    if m is None:
        raise KeyError(user)
    return bulk_password(int(m.group(1)))


# --------------------------------------------------------------------------- SIPp

@dataclass
class SippResult:
    returncode: int
    successful: int
    failed: int
    created: int
    retransmissions: int
    elapsed: float            # wall-clock seconds of the SIPp process
    stats: dict[str, str] = field(default_factory=dict)  # last row of the -trace_stat CSV
    errors: str = ""          # head of the -trace_err file
    stdout: str = ""

    def summary(self) -> str:
        return (f"sipp rc={self.returncode} created={self.created} ok={self.successful} "
                f"failed={self.failed} retrans={self.retransmissions} in {self.elapsed:.2f}s\n"
                f"errors:\n{self.errors}\nstdout tail:\n{self.stdout[-1500:]}")


def write_injection(path: Path, rows: list[list[str]], order: str = "SEQUENTIAL") -> Path:
    """A SIPp -inf file; fields are separated by ';'."""
    path.write_text(order + "\n" + "".join(";".join(r) + "\n" for r in rows))
    return path


def bulk_user_rows(count: int, first: int = 1, password: Callable[[int], str] = bulk_password) -> list[list[str]]:
    """Rows `u<n>;[authentication username=u<n> password=...]` for register-auth.xml.

    SIPp 3.6.1 does not expand keywords nested inside [authentication ...] (it ends the
    keyword at the first ']'), so per-user credentials come from the injection file: SIPp
    recognises an injected field that holds a whole [authentication ...] keyword."""
    return [[f"u{n}", f"[authentication username=u{n} password={password(n)}]"]
            for n in range(first, first + count)]


def run_sipp(target: tuple[str, int], scenario: str | Path, workdir: Path, *, calls: int,
             rate: int = 100, limit: int = 100, inf: Path | None = None, transport: str = "u1",
             local_ip: str = "127.0.0.1", local_port: int | None = None, timeout: float = 60.0,
             extra: list[str] | None = None, sipp_path: str | None = None) -> SippResult:
    """Run SIPp as a UAC to completion and read its counters from the -trace_stat file.

    `-timeout` bounds SIPp itself (with -timeout_error it then fails); the subprocess timeout
    is a second guard a little longer than that.
    """
    sipp_path = sipp_path or require_sipp()
    scenario = Path(scenario)
    if not scenario.is_absolute():
        scenario = SIPP_DIR / scenario
    workdir.mkdir(parents=True, exist_ok=True)
    tag = f"{scenario.stem}-{time.monotonic_ns()}"
    stat_file, err_file = workdir / f"{tag}.csv", workdir / f"{tag}-errors.log"
    cmd = [sipp_path, f"{target[0]}:{target[1]}", "-sf", str(scenario),
           "-m", str(calls), "-r", str(rate), "-l", str(limit), "-t", transport,
           "-i", local_ip, "-p", str(local_port or free_udp_port(local_ip)),
           "-trace_stat", "-stf", str(stat_file), "-fd", "1",
           "-trace_err", "-error_file", str(err_file),
           "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
           "-max_non_invite_retrans", "6"]
    if inf is not None:
        cmd += ["-inf", str(inf)]
    cmd += extra or []
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=timeout + 15)
        rc, out = proc.returncode, proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        rc, out = -9, (exc.stdout or b"").decode(errors="replace") + "\n[killed: subprocess timeout]"
    elapsed = time.monotonic() - started
    stats = read_sipp_stats(stat_file)
    errors = err_file.read_text(errors="replace")[:4000] if err_file.exists() else ""

    def count(name: str) -> int:
        try:
            return int(float(stats.get(name, "0") or 0))
        except ValueError:
            return 0

    return SippResult(rc, count("SuccessfulCall(C)"), count("FailedCall(C)"),
                      count("TotalCallCreated"), count("Retransmissions(C)"), elapsed, stats,
                      errors, out)


def read_sipp_stats(path: Path) -> dict[str, str]:
    """The last row of a SIPp -trace_stat CSV (';'-separated, header on the first line)."""
    if not path.exists():
        return {}
    with path.open(newline="", errors="replace") as f:
        rows = list(csv.reader(f, delimiter=";"))
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1]))


# --------------------------------------------------------------------------- a blocking SIP UAC

_PARAM = re.compile(r'([\w-]+)=(?:"([^"]*)"|([^\s,]+))')
def digest(challenge: str, user: str, password: str, method: str, uri: str,
           nc: int = 1, cnonce: str | None = None) -> str:
    """Authorization value for one challenge (qop=auth when offered)."""
    return digest_authorization(challenge, user, password, method, uri, nc=nc, cnonce=cnonce)


def pick_challenge(values: list[str], algorithm: str) -> str:
    for v in values:
        if challenge_params(v).get("algorithm", "MD5").upper() == algorithm:
            return v
    raise AssertionError(f"no {algorithm} challenge among {values}")


@dataclass
class SipResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    raw: bytes

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def contacts(self) -> list[tuple[str, int]]:
        """(URI, expires) for every Contact, split on the commas between entries."""
        out = []
        for value in self.all("contact") + self.all("m"):
            for entry in re.findall(r"<[^>]*>[^,]*", value):
                uri = entry[1:entry.index(">")]
                m = re.search(r";\s*expires\s*=\s*(\d+)", entry[entry.index(">"):])
                out.append((uri, int(m.group(1)) if m else -1))
        return out


def parse_response(data: bytes) -> SipResponse:
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    lines = head.split("\r\n")
    m = re.match(r"SIP/2\.0 (\d{3}) ?(.*)", lines[0])
    if m is None:
        raise AssertionError(f"not a SIP response: {data[:200]!r}")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
        elif ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return SipResponse(int(m.group(1)), m.group(2), headers, data)


def build_register(user: str, server: tuple[str, int], *, sent_by: tuple[str, int], transport: str = "UDP",
                   call_id: str, cseq: int, contacts: list[str] | None = None, expires: int | None = None,
                   authorization: str | None = None, rport: bool = False, scheme: str = "sip") -> bytes:
    branch = "z9hG4bK" + os.urandom(8).hex()
    host = f"{server[0]}:{server[1]}"
    lines = [f"REGISTER {scheme}:{host} SIP/2.0",
             f"Via: SIP/2.0/{transport} {sent_by[0]}:{sent_by[1]};branch={branch}{';rport' if rport else ''}",
             "Max-Forwards: 70",
             f"From: <sip:{user}@{server[0]}>;tag={os.urandom(4).hex()}",
             f"To: <sip:{user}@{server[0]}>",
             f"Call-ID: {call_id}",
             f"CSeq: {cseq} REGISTER",
             "User-Agent: callrouter-interop-test"]
    lines += [f"Contact: {c}" for c in (contacts or [])]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class UdpUac:
    """A phone on one UDP socket: REGISTER with digest, answered through Timer E/F-style
    retransmission (bounded by `timeout`)."""

    def __init__(self, server: ServerProcess, host: str = "127.0.0.1", port: int = 0,
                 algorithm: str = "MD5"):
        self.server = server
        self.dest = ("127.0.0.1", server.sip_port)
        self.sock = udp_socket(host, port)
        self.local = self.sock.getsockname()
        self.algorithm = algorithm
        self._cseq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "UdpUac":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transact(self, data: bytes, timeout: float = 8.0) -> SipResponse | None:
        """Send and wait for a final response to this request; None if none came."""
        branch = re.search(rb"branch=([^;\r\n]+)", data).group(1)
        deadline = time.monotonic() + timeout
        interval = 0.5
        while time.monotonic() < deadline:
            self.sock.sendto(data, self.dest)
            until = min(deadline, time.monotonic() + interval)
            while time.monotonic() < until:
                self.sock.settimeout(max(0.01, until - time.monotonic()))
                try:
                    raw = self.sock.recv(65535)
                except socket.timeout:
                    break
                if branch not in raw:
                    continue  # a late answer to an earlier request
                resp = parse_response(raw)
                if resp.status >= 200:
                    return resp
            interval = min(interval * 2, 4.0)
        return None

    def register(self, user: str, password: str | None = None, *, contacts: list[str] | None = None,
                 expires: int | None = None, call_id: str | None = None, timeout: float = 8.0,
                 sent_by: tuple[str, int] | None = None, rport: bool = False) -> SipResponse | None:
        """Challenge and answer; returns the final response (None on silence).

        contacts=None registers the socket's own address; [] makes a query (no Contact)."""
        password = password_of(user) if password is None else password
        call_id = call_id or f"{user}-{os.urandom(6).hex()}"
        if contacts is None:
            contacts = [f"<sip:{user}@{self.local[0]}:{self.local[1]}>"]
        sent_by = sent_by or self.local
        self._cseq += 1
        first = build_register(user, self.dest, sent_by=sent_by, call_id=call_id, cseq=self._cseq,
                               contacts=contacts, expires=expires, rport=rport)
        resp = self.transact(first, timeout)
        if resp is None or resp.status != 401:
            return resp
        challenge = pick_challenge(resp.all("www-authenticate"), self.algorithm)
        auth = digest(challenge, user, password, "REGISTER", f"sip:{self.dest[0]}:{self.dest[1]}")
        self._cseq += 1
        second = build_register(user, self.dest, sent_by=sent_by, call_id=call_id, cseq=self._cseq,
                                contacts=contacts, expires=expires, authorization=auth, rport=rport)
        return self.transact(second, timeout)

    def bindings(self, user: str) -> list[tuple[str, int]]:
        """The registrar's view of user's bindings: a REGISTER without Contact (RFC 3261
        §10.2.3) answered 200 with every binding and its remaining time."""
        resp = self.register(user, contacts=[])
        assert resp is not None and resp.status == 200, f"query for {user}: {resp and resp.raw!r}"
        return resp.contacts()


# --------------------------------------------------------------------------- calls: SIPp peers

@dataclass
class SipText:
    """One SIP message as a peer saw it: first line, headers in order, body (all text)."""
    first_line: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def method(self) -> str | None:
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        return int(self.first_line.split()[1]) if self.first_line.startswith("SIP/2.0") else None

    @property
    def request_uri(self) -> str:
        return self.first_line.split()[1]

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def first(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def parse_sip_text(text: str) -> SipText:
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.strip("\n").split("\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
        elif ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return SipText(lines[0].strip(), headers, body)


# SIPp writes "UDP message received [581] bytes :" and "UDP message sent (314 bytes):".
_TRACE_ENTRY = re.compile(r"^-{10,} [^\n]*\n(UDP|TCP|TLS) message (received|sent) "
                          r"(?:\[\d+\] bytes ?|\(\d+ bytes\)):\n\n", re.MULTILINE)


def read_message_trace(path: Path) -> list[tuple[str, SipText]]:
    """("received" | "sent", message) for every message in a SIPp -trace_msg file."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    entries = list(_TRACE_ENTRY.finditer(text))
    out = []
    for i, m in enumerate(entries):
        end = entries[i + 1].start() if i + 1 < len(entries) else len(text)
        raw = text[m.end():end].strip("\n")
        if raw:
            out.append((m.group(2), parse_sip_text(raw + "\n")))
    return out


@dataclass
class SippPeer:
    """A SIPp process in the background (a phone or a trunk), with its message trace."""
    name: str
    proc: subprocess.Popen
    trace: Path
    stat_file: Path
    log: Path

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -9

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def messages(self, direction: str = "received") -> list[SipText]:
        return [m for d, m in read_message_trace(self.trace) if d == direction]

    def requests(self, method: str) -> list[SipText]:
        return [m for m in self.messages() if m.method == method]

    def stats(self) -> dict[str, str]:
        return read_sipp_stats(self.stat_file)

    def describe(self) -> str:
        out = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
        got = [m.first_line for d, m in read_message_trace(self.trace)]
        return f"sipp peer {self.name} rc={self.proc.poll()} messages={got}\n{out}"


def sipp_peer(name: str, scenario: str | Path, workdir: Path, *, ip: str = "127.0.0.1", port: int,
              target: tuple[str, int] | None = None, calls: int = 1, timeout: float = 30.0,
              keys: dict[str, str] | None = None, service: str | None = None,
              pause_ms: int = 500, extra: list[str] | None = None) -> SippPeer:
    """Start SIPp on ip:port: a UAS (no target) waiting for `calls` calls, or a UAC placing them
    to target. It traces every message to <workdir>/<name>-messages.log and gives up after
    `timeout` seconds (-timeout with -timeout_error: an unfinished call is a failure)."""
    sipp_path = require_sipp()
    scenario = Path(scenario)
    if not scenario.is_absolute():
        scenario = SIPP_DIR / scenario
    workdir.mkdir(parents=True, exist_ok=True)
    trace, stat_file, log = workdir / f"{name}-messages.log", workdir / f"{name}.csv", workdir / f"{name}.out"
    cmd = [sipp_path]
    if target is not None:
        cmd.append(f"{target[0]}:{target[1]}")
    cmd += ["-sf", str(scenario), "-m", str(calls), "-i", ip, "-p", str(port),
            "-mp", str(free_udp_port(ip)), "-d", str(pause_ms), "-t", "u1",
            "-trace_msg", "-message_file", str(trace), "-trace_stat", "-stf", str(stat_file), "-fd", "1",
            "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error"]
    if service is not None:
        cmd += ["-s", service]
    for key, value in (keys or {}).items():
        cmd += ["-key", key, value]
    cmd += extra or []
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return SippPeer(name, proc, trace, stat_file, log)


def wait_listening(port: int, ip: str = "127.0.0.1", timeout: float = 5.0) -> None:
    """Wait until something has bound UDP ip:port (a SIPp UAS takes a moment to start).
    Read from /proc/net/udp: probing with bind() could take the port from under SIPp."""
    wanted = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/udp") as table:
            if any(line.split()[1] == wanted for line in list(table)[1:]):
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {ip}:{port} after {timeout}s")


def register_from(server: ServerProcess, user: str, ip: str, port: int, password: str | None = None) -> None:
    """Register `user` from ip:port (a binding's address is where the REGISTER came from, so a
    SIPp UAS started on that port afterwards is where the user's calls ring)."""
    with UdpUac(server, host=ip, port=port) as uac:
        resp = uac.register(user, password)
    assert resp is not None and resp.status == 200, f"REGISTER {user} from {ip}:{port}: {resp and resp.raw!r}"


__all__ = [
    "NAMED_USERS", "REALM", "SIPP_DIR", "SipResponse", "SippResult", "UdpUac", "build_register",
    "bulk_user_rows", "challenge_params", "digest", "free_port", "free_udp_port", "missing",
    "parse_response", "password_of", "pick_challenge", "require_module", "require_sipp",
    "run_sipp", "udp_socket", "wait_metric", "write_injection",
    "SipText", "SippPeer", "parse_sip_text", "read_message_trace", "register_from", "sipp_peer",
    "wait_listening",
]
