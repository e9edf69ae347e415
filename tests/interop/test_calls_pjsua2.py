"""Two PJSIP phones (pjsua2 2.14) call each other by extension through callrouter.

Alice dials Bob's extension; Bob answers; Alice sends DTMF as RFC 4733 events and as SIP
INFO, and Bob's PJSIP reports each digit with the method it arrived by; Alice holds and
resumes and Bob's PJSIP sees the remote hold come and go; Alice hangs up; the call record
is in the store with both parties, the answer time and who hung up.
"""
from __future__ import annotations

import json
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.interop.conftest import require_module
from tests.server import NAMED_USERS

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]
PHONE = Path(__file__).resolve().parent / "pjsua2_callphone.py"


class CallPhone:
    def __init__(self, server, log: Path, user: str, role: str):
        self._spawn(server, log, user, role)

    @classmethod
    def registered(cls, server, log: Path, user: str, role: str, tries: int = 3) -> "CallPhone":
        """A phone that has registered. The wheel's bindings can deadlock when a callback of
        a Python subclass (the callee's) fires while the main thread is inside pjsua2 during
        start-up (see pjsua2_callphone.py); that shows as a phone that never registers, and a
        fresh process is the remedy, as a user would restart a frozen soft phone."""
        for attempt in range(tries):
            phone = cls(server, log.with_name(f"{log.stem}-{attempt}{log.suffix}"), user, role)
            try:
                phone.expect(lambda e: e["ev"] == "registered" and e["code"] == 200, timeout=8)
                return phone
            except AssertionError:
                phone.proc.kill()
                if attempt == tries - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, server, log: Path, user: str, role: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PHONE), "--port", str(server.sip_port), "--log", str(log),
             "--user", user, "--password", NAMED_USERS[user][0], "--role", role],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.log = log
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.backlog: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                self.events.put({"ev": "noise", "line": line.rstrip()})

    def expect(self, match, timeout: float = 15.0) -> dict:
        """The first event, seen before or arriving within `timeout`, that `match` accepts
        (events come in PJSIP's order, which need not be the order the test asks in)."""
        for i, event in enumerate(self.backlog):
            if match(event):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(event)
            if event.get("ev") == "error":
                raise AssertionError(f"phone error: {event['message']}")
            if match(event):
                return event
            self.backlog.append(event)
        raise AssertionError(f"timed out; events so far: {self.seen}\nlog tail:\n{self.tail()}")

    def send(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()


def test_extension_call_with_dtmf_hold_and_call_record(start_server, tmp_path):
    require_module("pjsua2", "install the pjsua2-pybind11 wheel (pip install -e '.[test]')")
    server = start_server()
    bob = CallPhone.registered(server, tmp_path / "bob.log", "bob", "callee")
    alice = CallPhone.registered(server, tmp_path / "alice.log", "alice", "caller")
    try:

        alice.send(cmd="call", uri=f"sip:{NAMED_USERS['bob'][1]}@127.0.0.1:{server.sip_port}")
        alice.expect(lambda e: e["ev"] == "state" and e["state"] == "CONFIRMED")
        bob.expect(lambda e: e["ev"] == "state" and e["state"] == "CONFIRMED")
        bob.expect(lambda e: e["ev"] == "media" and e["status"] == "ACTIVE")

        alice.send(cmd="dtmf", digits="15#", method="RFC2833")
        got = [bob.expect(lambda e: e["ev"] == "dtmf")["digit"] for _ in range(3)]
        assert got == ["1", "5", "#"]
        assert all(e["method"] == "RFC2833" for e in bob.seen if e["ev"] == "dtmf")

        alice.send(cmd="dtmf", digits="7*", method="SIP_INFO")
        info = [bob.expect(lambda e: e["ev"] == "dtmf") for _ in range(2)]
        assert [e["digit"] for e in info] == ["7", "*"] and all(e["method"] == "SIP_INFO" for e in info)

        alice.send(cmd="hold")
        bob.expect(lambda e: e["ev"] == "media" and e["status"] == "REMOTE_HOLD")
        alice.send(cmd="unhold")
        bob.expect(lambda e: e["ev"] == "media" and e["status"] == "ACTIVE")

        alice.send(cmd="hangup")
        alice.expect(lambda e: e["ev"] == "state" and e["state"] == "DISCONNECTED")
        bob.expect(lambda e: e["ev"] == "state" and e["state"] == "DISCONNECTED")
    finally:
        alice.close()
        bob.close()

    deadline = time.monotonic() + 10
    rows = []
    while time.monotonic() < deadline and not rows:
        with sqlite3.connect(server.workdir / "callrouter.db") as db:
            rows = db.execute("SELECT direction, disposition, hangup_by, dialled, answer_time, caller_person_id, "
                              "callee_person_id, caller, callee FROM call_records").fetchall()
        time.sleep(0.2)
    assert len(rows) == 1, rows
    direction, disposition, hangup_by, dialled, answer_time, caller_pid, callee_pid, caller, callee = rows[0]
    assert (direction, disposition, hangup_by, dialled) == ("INTERNAL", "ANSWERED", "caller", "1002")
    assert answer_time is not None and caller_pid and callee_pid and caller_pid != callee_pid
    assert json.loads(caller)["device"] == "alice" and json.loads(callee)["device"] == "bob"
