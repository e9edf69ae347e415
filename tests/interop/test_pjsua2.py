"""PJSIP (pjsua2 2.14 from the pjsua2-pybind11 wheel) as a phone: register over UDP and over
TCP, refresh, unregister; the server's bindings follow.

Each scenario runs pjsua2_phone.py in a subprocess (one pjsua2 Endpoint per process) and
talks to it in JSON lines.
"""
from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.interop.conftest import UdpUac, require_module, wait_metric
from tests.server import NAMED_USERS

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

PHONE = Path(__file__).resolve().parent / "pjsua2_phone.py"


@pytest.fixture(autouse=True, scope="module")
def _pjsua2():
    require_module("pjsua2", "install the pjsua2-pybind11 wheel (pip install -e '.[test]')")


class PjPhone:
    def __init__(self, server, log: Path, accounts: list[dict]):
        self.log = log
        cmd = [sys.executable, str(PHONE), "--port", str(server.sip_port), "--log", str(log)]
        for acc in accounts:
            cmd += ["--account", json.dumps(acc)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.noise: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.expect(lambda e: e["ev"] == "ready", 15)

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.noise.append(line)  # PJSIP's own console output before libInit
        self.events.put({"ev": "eof"})

    def expect(self, pred, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out; events so far: {self.seen}\n{''.join(self.noise)[-2000:]}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if ev["ev"] == "eof":
                raise AssertionError(f"pjsua2 phone exited; events: {self.seen}\n{''.join(self.noise)[-3000:]}")
            if ev["ev"] == "error":
                raise AssertionError(f"pjsua2 phone: {ev['message']}")
            if pred(ev):
                return ev

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _registered(acc: str, n: int = 1):
    """The n-th successful registration of account acc (n > 1: refreshes)."""
    return lambda e: e["ev"] == "reg" and e["acc"] == acc and e["active"] and e["code"] == 200 and e["n"] >= n


def test_pjsip_registers_over_udp_and_tcp_refreshes_and_unregisters(start_server, tmp_path):
    # Short registrations so that PJSIP refreshes within the test.
    server = start_server(settings={"registrar": {"min_expires": 5}})
    alice, bob = NAMED_USERS["alice"][0], NAMED_USERS["bob"][0]
    phone = PjPhone(server, tmp_path / "pj.log", [
        {"name": "udp", "user": "alice", "password": alice, "transport": "udp", "expires": 6,
         "refresh_before": 3},
        {"name": "tcp", "user": "bob", "password": bob, "transport": "tcp", "expires": 6,
         "refresh_before": 3},
    ])
    try:
        for acc in ("udp", "tcp"):
            phone.expect(_registered(acc), 15)
        started = time.monotonic()
        assert wait_metric(server, "callrouter_registrations", 2) == 2
        with UdpUac(server) as uac:
            for user in ("alice", "bob"):
                bindings = uac.bindings(user)
                assert len(bindings) == 1 and 4 <= bindings[0][1] <= 6, (user, bindings)
        assert server.metric("callrouter_registered_aors") == 2

        # PJSIP refreshes before the 6 s expiry, on its own; each refresh is a 200.
        for acc in ("udp", "tcp"):
            phone.expect(_registered(acc, 2), 10)
        # Past the first registration's expiry, the registrar still holds both bindings:
        # the refreshes, not the first REGISTER, kept them.
        time.sleep(max(0.0, 6.5 - (time.monotonic() - started)))
        with UdpUac(server) as uac:
            for user, password in (("alice", alice), ("bob", bob)):
                bindings = uac.bindings(user)
                assert len(bindings) == 1 and 0 < bindings[0][1] <= 6, (user, bindings)
                assert bindings[0][0].startswith(f"sip:{user}@127.0.0.1:")
        assert server.metric("callrouter_registrations") == 2

        # An explicit re-registration is answered too.
        done = max(e["n"] for e in phone.seen if e["ev"] == "reg" and e["acc"] == "udp")
        phone.send(cmd="renew", acc="udp")
        phone.expect(_registered("udp", done + 1), 10)

        # PJSIP writes its log file through a buffer, so the server's side is what is
        # watched live; the log is read once the phone has exited.
        phone.send(cmd="unregister", acc="tcp")
        assert wait_metric(server, "callrouter_registrations", 1) == 1
        phone.send(cmd="unregister", acc="udp")
        assert wait_metric(server, "callrouter_registrations", 0) == 0
        assert server.metric("callrouter_registered_aors") == 0
        with UdpUac(server) as uac:
            assert uac.bindings("alice") == [] and uac.bindings("bob") == []
        assert server.metric("callrouter_sip_auth_failures_total") == 0
        phone.close()
        log = phone.log_text()
        assert "sip:bob@127.0.0.1: unregistration success" in log
        assert "sip:alice@127.0.0.1: unregistration success" in log
        assert re.search(r"REGISTER sip:127\.0\.0\.1:\d+;transport=tcp SIP/2\.0\s+Via: SIP/2\.0/TCP", log), \
            "bob's REGISTER did not go over TCP"
        assert re.search(r"REGISTER sip:127\.0\.0\.1:\d+;transport=udp SIP/2\.0\s+Via: SIP/2\.0/UDP", log)
    finally:
        phone.close()


def _authorization_algorithms(log: str) -> list[str]:
    return re.findall(r"Authorization: Digest [^\r\n]*?algorithm=([A-Za-z0-9-]+)", log)


def test_pjsip_answers_the_md5_challenge_when_sha256_comes_first(start_server, tmp_path):
    """Default challenge order (SHA-256, then MD5): PJSIP 2.14 skips the algorithm it does
    not know and answers MD5 — the reason the server keeps offering MD5."""
    server = start_server()
    phone = PjPhone(server, tmp_path / "pj.log", [
        {"name": "udp", "user": "carol", "password": NAMED_USERS["carol"][0], "expires": 60}])
    try:
        phone.expect(_registered("udp"), 15)
        assert wait_metric(server, "callrouter_registrations", 1) == 1
        phone.close()  # flushes PJSIP's log
        algorithms = _authorization_algorithms(phone.log_text())
        # 2.14 knows only MD5; a later PJSIP may prefer SHA-256, which is fine too.
        allowed = {"MD5"} if phone.ready["version"].startswith("2.14") else {"MD5", "SHA-256"}
        assert algorithms and set(algorithms) <= allowed, algorithms
        # Unregistered on exit, with the same kind of Authorization.
        assert wait_metric(server, "callrouter_registrations", 0) == 0
    finally:
        phone.close()


def test_pjsip_against_a_sha256_only_registrar(start_server, tmp_path):
    """With SHA-256 the only challenge, a PJSIP that implements RFC 8760 registers with a
    SHA-256 Authorization. PJSIP 2.14.1 (this wheel) does not: it logs 'Unsupported digest
    algorithm "SHA-256"' and ends with the 401 — sending no Authorization, so the server
    records no failed authentication."""
    server = start_server(settings={"auth": {"algorithms": ["SHA-256"]}})
    phone = PjPhone(server, tmp_path / "pj.log", [
        {"name": "udp", "user": "carol", "password": NAMED_USERS["carol"][0], "expires": 60}])
    try:
        version = phone.ready["version"]
        ev = phone.expect(lambda e: e["ev"] == "reg" and e["acc"] == "udp" and e["code"] >= 200, 15)
        phone.close()  # flushes PJSIP's log
        log = phone.log_text()
        if ev["code"] == 200 and ev["active"]:
            assert _authorization_algorithms(log) == ["SHA-256"], _authorization_algorithms(log)
            assert wait_metric(server, "callrouter_registrations", 1) == 1
        else:
            assert version.startswith("2.14"), f"PJSIP {version} failed to register with SHA-256: {ev}"
            assert ev["code"] == 401, ev
            assert 'Unsupported digest algorithm "SHA-256"' in log
            assert _authorization_algorithms(log) == []
            assert server.metric("callrouter_sip_auth_failures_total") == 0
            assert server.metric("callrouter_registrations") == 0
    finally:
        phone.close()
