"""Helpers for the auto-attendant interop tests: the organisation, real phones, and ears.

- ``attendant_org(now)`` is the test organisation with four auto attendants whose schedules
  are made relative to ``now``, so the business-hours, after-hours and holiday menus are what
  the tests expect at any hour of any day.
- ``PjPhone`` is the PJSIP phone of tests/interop/pjsua2_callphone.py for any user (not only
  the named ones), with a wait for the re-INVITE that bridges a transferred caller.
- ``PyPhone`` is a pyVoIP phone; ``heard(call)`` is what a pyVoIP call received, laid out by
  RTP timestamp (the sender's media clock, which keeps the silences between prompts), and
  ``press_inband`` writes DTMF tones into the call.
- ``find_clip`` finds where a prompt occurs in received audio (normalised cross-correlation),
  and ``active_span``/``rms_dbfs`` measure how long and how loud it is.
"""
from __future__ import annotations

import json
import queue
import random
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from ivr.dtmf_tones import dtmf_tone, to_pcm
from ivr.prompts import read_wav, speak
from tests.interop.conftest import free_udp_port
from tests.interop.test_calls_pjsua2 import PHONE, CallPhone
from tests.server import NAMED_USERS, ROOT, org_document

RATE = 8000
FRAME = 160
TIME_ZONE = "America/Chicago"
MAIN_NUMBER = "+15125550100"

# Extensions of the attendants that are not on the main number.
NIGHT_LINE = "7101"     # business hours exclude now: the after-hours menu
HOLIDAY_LINE = "7102"   # open all week, but today is a holiday: the after-hours menu
QUIET_LINE = "7103"     # a short menu with 1 s no-input timeout, one repeat, then goodbye

SUBMENU_TEXT = "Support. For billing, press 1. To go back, press star."
AFTER_HOURS_TEXT = "We are closed. For the night line, press 2."

# People beyond the named users alice (1001), bob (1002) and carol (1003):
#   sam: sales, key 1 of the top menu; pat: extension 40, a prefix of nora's 4020, so only #
#   (or the inter-digit timeout) ends it; nora: found by name dialing (QUIST = 78478), next to
#   oscar Quinn (QUINN = 78466), who shares the first three keys and has no phone.
PASSWORDS = {name: password for name, (password, _ext) in NAMED_USERS.items()}
PASSWORDS.update(sam="sam-pw-3010", pat="pat-pw-40", nora="nora-pw-4020")
EXTENSIONS = {name: ext for name, (_pw, ext) in NAMED_USERS.items()}
EXTENSIONS.update(sam="3010", pat="40", nora="4020")

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _person(first: str, last: str, ext: str, device: str | None) -> dict:
    person = {"email": f"{first.lower()}.{last.lower()}@acme.test", "firstName": first, "lastName": last,
              "location": "Austin", "extension": ext}
    if device:
        person["devices"] = [{"sipUsername": device, "password": PASSWORDS[device]}]
    return person


def _business_menu() -> dict:
    # No key descriptions: the DEFAULT greeting is then exactly "Thank you for calling." and
    # "If you know the extension ...", two prompts whose length and level the tests know.
    return {"keyConfigurations": [
        {"key": "1", "action": "TRANSFER_WITHOUT_PROMPT", "value": EXTENSIONS["sam"]},
        {"key": "6", "action": "GO_TO_MENU", "value": "support"},
        {"key": "#", "action": "NAME_DIALING"},
    ]}


def _after_hours_menu() -> dict:
    # Key 2 reaches carol only here: the business-hours menu has no key 2 (and no extension
    # starts with 2), so carol answering proves which menu the caller was in.
    return {"greeting": "TEXT", "greetingText": AFTER_HOURS_TEXT, "keyConfigurations": [
        {"key": "2", "action": "TRANSFER_WITHOUT_PROMPT", "value": EXTENSIONS["carol"]}]}


def attendant_org(now: datetime) -> dict:
    """The organisation document, with schedules relative to `now` (any aware datetime)."""
    local = now.astimezone(ZoneInfo(TIME_ZONE))
    # Open only three days from now (never today, tomorrow or yesterday, whatever the hour
    # or the zone), so a call now is after hours.
    other_day = WEEKDAYS[(local.weekday() + 3) % 7]
    schedules = [
        {"name": "Always open", "location": "Austin", "type": "BUSINESS_HOURS",
         "hours": {day: [{"startTime": "00:00", "endTime": "24:00"}] for day in WEEKDAYS}},
        {"name": "Closed now", "location": "Austin", "type": "BUSINESS_HOURS",
         "hours": {other_day: [{"startTime": "09:00", "endTime": "17:00"}]}},
        # Yesterday to tomorrow: still a holiday if the test runs across midnight.
        {"name": "Holiday now", "location": "Austin", "type": "HOLIDAYS",
         "holidays": [{"name": "Test holiday", "date": (local.date() - timedelta(days=1)).isoformat(),
                       "endDate": (local.date() + timedelta(days=1)).isoformat()}]},
    ]
    main = {
        "name": "Main menu", "location": "Austin", "phoneNumber": MAIN_NUMBER,
        "businessSchedule": "Always open",
        "businessHoursMenu": _business_menu(), "afterHoursMenu": _after_hours_menu(),
        "submenus": [{"id": "support", "greeting": "TEXT", "greetingText": SUBMENU_TEXT, "keyConfigurations": [
            {"key": "1", "action": "TRANSFER_WITHOUT_PROMPT", "value": EXTENSIONS["bob"]},
            {"key": "*", "action": "RETURN_TO_PREVIOUS_MENU"}]}],
        "noInput": {"timeoutSeconds": 3, "repeats": 1, "finalAction": {"action": "EXIT"}},
        "interDigitTimeoutSeconds": 1,
    }
    night = {"name": "Night line", "location": "Austin", "extension": NIGHT_LINE,
             "businessSchedule": "Closed now",
             "businessHoursMenu": _business_menu(), "afterHoursMenu": _after_hours_menu(),
             "submenus": main["submenus"], "interDigitTimeoutSeconds": 1}
    holiday = {**night, "name": "Holiday line", "extension": HOLIDAY_LINE,
               "businessSchedule": "Always open", "holidaySchedule": "Holiday now"}
    quiet = {"name": "Quiet line", "location": "Austin", "extension": QUIET_LINE,
             "businessHoursMenu": {"extensionEnabled": False}, "afterHoursMenu": {"extensionEnabled": False},
             "noInput": {"timeoutSeconds": 1, "repeats": 1, "finalAction": {"action": "EXIT"}}}
    people = [_person("Sam", "Sales", EXTENSIONS["sam"], "sam"),
              _person("Pat", "Lee", EXTENSIONS["pat"], "pat"),
              _person("Nora", "Quist", EXTENSIONS["nora"], "nora"),
              _person("Oscar", "Quinn", "4030", None)]
    document = org_document(people=people, austin={"numbers": [MAIN_NUMBER, "+15125550101"],
                                                    "mainNumber": MAIN_NUMBER})
    document["schedules"] = schedules
    document["autoAttendants"] = [main, night, holiday, quiet]
    return document


# --------------------------------------------------------------------------- PJSIP phones

class PjPhone(CallPhone):
    """pjsua2_callphone.py as `user` (any user of attendant_org), caller or callee."""

    def __init__(self, server, log: Path, user: str, role: str):
        self.server, self.user, self.role, self.log = server, user, role, log
        self._spawn()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PHONE), "--port", str(self.server.sip_port), "--log", str(self.log),
             "--user", self.user, "--password", PASSWORDS[self.user], "--role", self.role,
             "--max-seconds", "60"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.backlog: list[dict] = []
        threading.Thread(target=self._read_from, args=(self.proc, self.events), daemon=True).start()

    @staticmethod
    def _read_from(proc: subprocess.Popen, events: queue.Queue) -> None:
        for line in proc.stdout:
            try:
                events.put(json.loads(line))
            except json.JSONDecodeError:
                events.put({"ev": "noise", "line": line.rstrip()})

    def registered(self, timeout: float = 15.0) -> PjPhone:
        # The wheel's bindings hold the GIL while they wait for PJSUA's lock: when the
        # registrar answers while the main thread is still creating the account, a callee's
        # registration callback and the main thread wait for each other for ever, before
        # "ready". That is the phone's problem, not the server's: start it again (once).
        try:
            self.expect(lambda e: e["ev"] == "ready", 5.0)
        except AssertionError:
            self.proc.kill()
            self.proc.wait(5)
            self.log = self.log.with_name(self.log.stem + "-again" + self.log.suffix)
            self._spawn()
        self.expect(lambda e: e["ev"] == "registered" and e["code"] == 200, timeout)
        return self

    def state(self, state: str, timeout: float = 15.0) -> dict:
        return self.expect(lambda e: e["ev"] == "state" and e["state"] == state, timeout)

    def dtmf(self, digits: str, method: str) -> None:
        self.send(cmd="dtmf", digits=digits, method=method)

    def got(self, kind: str, **match) -> list[dict]:
        """Every event of `kind` seen so far (drains what is queued) matching the given fields."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self.seen.append(event)
            self.backlog.append(event)
        return [e for e in self.seen if e["ev"] == kind and all(e.get(k) == v for k, v in match.items())]

    def messages(self, direction: str, first_line: str) -> int:
        """How many SIP messages PJSIP logged as sent (TX) or received (RX) whose summary
        matches `first_line`, e.g. ("TX", "Response msg 200/INVITE")."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return 0
        pattern = re.compile(rf"\b{direction} \d+ bytes {re.escape(first_line)}")
        return len(pattern.findall(text))

    def place_call(self, uri: str) -> None:
        """Call `uri` (caller role) and wait until it is answered."""
        self._answers_before = self.messages("TX", "Response msg 200/INVITE")
        self.send(cmd="call", uri=uri)
        self.state("CONFIRMED")

    def wait_bridged(self, timeout: float = 10.0) -> None:
        """The caller has answered our re-INVITE that moves its media to the transfer target:
        a 200 it sent to an INVITE since place_call (its own INVITE is answered, not answering)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.messages("TX", "Response msg 200/INVITE") > self._answers_before:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.user}'s phone never answered a re-INVITE\n{self.tail()}")


# --------------------------------------------------------------------------- pyVoIP phones

_RTP_BASES = iter(random.sample(range(10000, 19800, 200), 40))


@dataclass
class PyPhone:
    """A registered pyVoIP phone; `answer_with` (optional) runs for each incoming call."""
    server: object
    user: str
    answer_with: object = None
    phone: object = None
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        from pyVoIP.VoIP import PhoneStatus, VoIPPhone

        callback = self._guarded if self.answer_with else None
        rtp = next(_RTP_BASES)
        self.phone = VoIPPhone("127.0.0.1", self.server.sip_port, self.user, PASSWORDS[self.user],
                               callCallback=callback, myIP="127.0.0.1", sipPort=free_udp_port(),
                               rtpPortLow=rtp, rtpPortHigh=rtp + 150)
        self.phone.sip.register_timeout = 10
        started = time.monotonic()
        self.phone.start()
        if self.phone.get_status() != PhoneStatus.REGISTERED:
            self.stop()
            raise AssertionError(f"pyVoIP phone {self.user} did not register: {self.phone.get_status()}")
        # pyVoIP starts reading its SIP socket 1 s after start(): an answer arriving earlier
        # waits there, and the caller would miss the first second of what it is played.
        time.sleep(max(0.0, started + 1.1 - time.monotonic()))

    def _guarded(self, call) -> None:
        try:
            self.answer_with(call)
        except BaseException as exc:  # a callback's failure is the test's, not a lost thread's
            self.errors.append(exc)

    def call(self, target: str, timeout: float = 15.0):
        """Dial and wait until answered."""
        from pyVoIP.VoIP import CallState

        call = self.phone.call(target)
        deadline = time.monotonic() + timeout
        while call.state != CallState.ANSWERED and time.monotonic() < deadline:
            if call.state == CallState.ENDED:
                break
            time.sleep(0.02)
        assert call.state == CallState.ANSWERED, f"call to {target} not answered: {call.state}"
        return call

    def stop(self) -> None:
        try:
            self.phone.stop()
        except Exception:
            pass


def heard(call) -> np.ndarray:
    """Everything the call has received so far as int16-scale floats, each packet placed by its
    RTP timestamp (the sender's media clock), so the silences between prompts stay in place and
    a missing packet is silence, not pyVoIP's zero-filled gap."""
    packets = dict(call.RTPClients[0].pmin.log)  # timestamp -> 8-bit PCM, in arrival order
    if not packets:
        return np.zeros(0)
    first = next(iter(packets))
    placed = {((ts - first + 2**31) % 2**32) - 2**31: data for ts, data in packets.items()}
    base = min(placed)
    out = np.full(max(k + len(v) for k, v in placed.items()) - base, 128, np.uint8)
    for offset, data in placed.items():
        out[offset - base: offset - base + len(data)] = np.frombuffer(data, np.uint8)
    return (out.astype(np.float64) - 128.0) * 256.0


def ended(call) -> bool:
    from pyVoIP.VoIP import CallState

    return call.state == CallState.ENDED


def press_inband(call, keys: str, on_ms: int = 120, off_ms: int = 120, level_dbm0: float = -8.0) -> float:
    """Write DTMF tones for `keys` into the call (8-bit PCM as pyVoIP sends it); returns how
    long they take to play."""
    parts = []
    for key in keys:
        parts += [to_pcm(dtmf_tone(key, RATE * on_ms // 1000, level_dbm0=level_dbm0)),
                  np.zeros(RATE * off_ms // 1000, np.int16)]
    pcm = np.concatenate(parts).astype(np.int32)
    call.write_audio(((pcm >> 8) + 128).clip(0, 255).astype(np.uint8).tobytes())
    return len(pcm) / RATE


def tone(freq: float, seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (128 + 80 * np.sin(2 * np.pi * freq * t)).astype(np.uint8).tobytes()


def level_at(pcm: np.ndarray, freq: float) -> float:
    """Amplitude at `freq` of int16-scale samples (one DFT bin)."""
    if len(pcm) == 0:
        return 0.0
    t = np.arange(len(pcm)) / RATE
    return float(2 * abs(np.dot(pcm, np.exp(-2j * np.pi * freq * t))) / len(pcm))


# --------------------------------------------------------------------------- ears

_MANIFEST = {p["id"]: p for p in json.loads((ROOT / "prompts" / "manifest.json").read_text())["prompts"]}


def prompt_duration(prompt_id: str) -> float:
    return float(_MANIFEST[prompt_id]["duration"])


def prompt(prompt_id: str) -> np.ndarray:
    return read_wav(ROOT / "prompts" / _MANIFEST[prompt_id]["file"]).astype(np.float64)


def spoken(text: str) -> np.ndarray:
    """What the server plays for a TEXT greeting (the same espeak-ng rendering)."""
    return np.asarray(speak(text), np.float64)


def rms_dbfs(pcm: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(pcm * pcm))) if len(pcm) else 0.0
    return 20 * np.log10(max(rms, 1e-9) / 32768.0)


def frame_levels(pcm: np.ndarray) -> np.ndarray:
    """dBFS of each 20 ms frame."""
    n = len(pcm) // FRAME
    frames = pcm[: n * FRAME].reshape(n, FRAME)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-9) / 32768.0)


def active_span(pcm: np.ndarray, threshold_dbfs: float = -40.0) -> tuple[float, float]:
    """(start, end) in seconds from the first to the last frame louder than the threshold."""
    loud = np.flatnonzero(frame_levels(pcm) > threshold_dbfs)
    if len(loud) == 0:
        return (0.0, 0.0)
    return (loud[0] * FRAME / RATE, (loud[-1] + 1) * FRAME / RATE)


def find_clip(audio: np.ndarray, clip: np.ndarray, threshold: float = 0.8,
              skip: float = 0.1) -> list[tuple[float, float]]:
    """(offset in seconds, score) of every place `clip` occurs in `audio`: normalised
    cross-correlation above `threshold`, one hit per clip length (G.711 and pyVoIP's 8-bit
    samples leave a true occurrence near 0.99; other speech stays far below 0.5).

    The clip's first `skip` seconds are left out of the match (the offset still says where the
    whole clip starts): pyVoIP opens its RTP socket only once it has read the answer, so the
    first packet or two of what the attendant plays at once can arrive before anyone listens."""
    cut = int(skip * RATE) if len(clip) > 4 * int(skip * RATE) else 0
    return [(offset - cut / RATE, score) for offset, score in _find(audio, clip[cut:], threshold)]


def _find(audio: np.ndarray, clip: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    n, m = len(audio), len(clip)
    if n < m or m == 0:
        return []
    size = 1 << int(np.ceil(np.log2(n + m)))
    corr = np.fft.irfft(np.fft.rfft(audio, size) * np.conj(np.fft.rfft(clip, size)), size)[: n - m + 1]
    energy = np.concatenate(([0.0], np.cumsum(audio * audio)))
    window = energy[m:] - energy[:-m]
    score = corr / (np.sqrt(np.maximum(window, 1e-9)) * np.sqrt(float(np.dot(clip, clip))))
    hits = []
    i = 0
    above = np.flatnonzero(score > threshold)
    while i < len(above):
        start = above[i]
        group = above[(above >= start) & (above < start + m)]
        best = int(group[np.argmax(score[group])])
        hits.append((best / RATE, float(score[best])))
        i += len(group)
    return hits


def listen_for(call, clip: np.ndarray, timeout: float) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Poll what the call hears until `clip` has been heard whole (or `timeout`): (hits, audio)."""
    deadline = time.monotonic() + timeout
    while True:
        audio = heard(call)
        hits = find_clip(audio, clip)
        if hits or time.monotonic() > deadline:
            return hits, audio
        time.sleep(0.2)


def describe(audio: np.ndarray) -> str:
    """What a failed test heard: its length, loud part, and the default prompts found in it."""
    found = {pid: [round(t, 2) for t, _ in find_clip(audio, prompt(pid))]
             for pid in _MANIFEST if _MANIFEST[pid]["duration"] >= 0.6}
    return (f"heard {len(audio) / RATE:.2f} s, loud from {active_span(audio)}, "
            f"prompts: {({k: v for k, v in found.items() if v})}")


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


__all__ = [
    "AFTER_HOURS_TEXT", "EXTENSIONS", "HOLIDAY_LINE", "MAIN_NUMBER", "NIGHT_LINE", "PASSWORDS", "PjPhone",
    "PyPhone", "QUIET_LINE", "RATE", "SUBMENU_TEXT", "active_span", "attendant_org", "describe", "ended",
    "find_clip", "frame_levels", "heard", "level_at", "listen_for", "press_inband", "prompt", "prompt_duration",
    "rms_dbfs", "spoken", "tone", "wait_until",
]
