"""`callrouter demo`: the example organisation, one scripted call, narrated.

A callrouter server starts on free ports with config/example-org.yaml in a scratch
directory. Two pyVoIP soft phones register: Sam (sales, extension 1010) and Alice. Alice calls
the Austin main number, hears the phone menu's greeting, presses 1 (DTMF tones in the audio,
as a caller on an old phone would), and Sam's phone rings and answers. Each step is printed
as it happens; the exit status says whether the call reached Sam.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAIN_NUMBER = "+15125550100"
CREDENTIALS = {"alice": "alice-secret-1001", "sam": "sam-secret-1010"}


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue


def _say(step: str, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {step:<8} {text}", flush=True)


def _level_dbfs(pcm_u8: bytes) -> float:
    x = np.frombuffer(pcm_u8, np.uint8).astype(np.float64) - 128.0
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    return 20 * np.log10(max(rms, 1e-9) / 128.0)


def _start_server(workdir: Path) -> tuple[subprocess.Popen, dict]:
    config = yaml.safe_load((ROOT / "config" / "callrouter.yaml").read_text())
    ports = {"sip": _free_port(), "tls": _free_port(), "api": _free_port()}
    config["sip"].update(host="127.0.0.1", port=ports["sip"], tls_port=ports["tls"])
    config["api"].update(host="127.0.0.1", port=ports["api"])
    config["store"]["url"] = f"sqlite:///{workdir / 'callrouter.db'}"
    config["location"]["snapshot_path"] = str(workdir / "bindings.db")
    config["org"] = str(ROOT / "config" / "example-org.yaml")
    if (config.get("carrier") or {}).get("simulator"):
        config["carrier"]["simulator"] = str(ROOT / "config" / config["carrier"]["simulator"])
    config.setdefault("log", {})["level"] = "INFO"  # the log file is there to diagnose a failed run
    path = workdir / "callrouter.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(workdir / "server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "callrouter", "serve", "--config", str(path)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited; see {workdir / 'server.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/healthz", timeout=1):
                return proc, ports
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start within 60 s")


def run() -> int:
    try:
        from pyVoIP.VoIP import CallState, PhoneStatus, VoIPPhone
    except ImportError:
        print("callrouter demo needs pyVoIP (pip install -e '.[test]', which make run does)", file=sys.stderr)
        return 2
    from ivr.dtmf_tones import dtmf_tone, to_pcm

    workdir = Path(tempfile.mkdtemp(prefix="callrouter-demo-"))
    _say("server", f"starting callrouter with config/example-org.yaml (scratch files in {workdir})")
    proc, ports = _start_server(workdir)
    _say("server", f"SIP on 127.0.0.1:{ports['sip']}, API on http://127.0.0.1:{ports['api']}")
    answered = threading.Event()
    phones = []
    try:
        def sam_answers(call) -> None:
            _say("sam", "phone rings: a call transferred from the main menu; Sam answers")
            call.answer()
            answered.set()
            time.sleep(2)
            try:
                call.hangup()
            except Exception:
                pass

        def phone(user: str, rtp: int, callback=None):
            p = VoIPPhone("127.0.0.1", ports["sip"], user, CREDENTIALS[user], callCallback=callback,
                          myIP="127.0.0.1", sipPort=_free_port(), rtpPortLow=rtp, rtpPortHigh=rtp + 200)
            p.sip.register_timeout = 10
            p.start()
            phones.append(p)
            if p.get_status() != PhoneStatus.REGISTERED:
                raise RuntimeError(f"{user}'s phone did not register")
            _say(user, "soft phone registered")
            return p

        phone("sam", 45000, sam_answers)
        alice = phone("alice", 45400)
        _say("alice", f"calls the Austin main number {MAIN_NUMBER}")
        call = alice.call(MAIN_NUMBER)
        deadline = time.monotonic() + 15
        while call.state != CallState.ANSWERED and time.monotonic() < deadline:
            time.sleep(0.05)
        if call.state != CallState.ANSWERED:
            _say("alice", f"the call was not answered ({call.state})")
            return 1
        _say("menu", "the auto attendant answers and plays its greeting")
        heard = bytearray()
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            heard += call.read_audio(160, blocking=True)
        _say("alice", f"hears {len(heard) / 8000:.1f} s of greeting at {_level_dbfs(bytes(heard)):.0f} dBFS")
        tone = to_pcm(dtmf_tone("1", 8000 * 120 // 1000, level_dbm0=-8.0))
        silence = np.zeros(800, np.int16)
        pcm = np.concatenate([tone, silence]).astype(np.int32)
        call.write_audio(((pcm >> 8) + 128).clip(0, 255).astype(np.uint8).tobytes())
        _say("alice", "presses 1 (for sales)")
        if not answered.wait(20):
            _say("alice", "nobody answered; see the server log")
            return 1
        _say("done", "Sam Sales answered the call from the main menu")
        time.sleep(1)
        return 0
    finally:
        for p in phones:
            try:
                p.stop()
            except Exception:
                pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if os.environ.get("CALLROUTER_DEMO_KEEP") is None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
