"""A PJSIP phone driven over stdin/stdout, one JSON object per line; run by test_pjsua2.py.

Each scenario runs in its own process because pjsua2 allows one Endpoint per process.

    python pjsua2_phone.py --port 5060 --log pj.log \
        --account '{"name": "udp", "user": "alice", "password": "...", "transport": "udp", "expires": 6}'

Why polling and no Python callbacks: this wheel has no libHandleEvents, so a PJSIP worker
thread (threadCnt = 1) runs the stack, and its bindings do not release the GIL around
calls into PJSIP. A Python override of Account.onRegState then deadlocks: the worker holds
the PJSUA lock and waits for the GIL inside the callback, while the main thread holds the
GIL inside setRegistration() and waits for the PJSUA lock (seen as a hang on the first
unregistration). So accounts are plain pj.Account objects (their callbacks never enter
Python) and the main thread polls Account.info.

Events written: {"ev": "ready", "version": "2.14.1"};
{"ev": "reg", "acc": name, "code": 200, "active": true, "n": 1, "next": 3} whenever an
account's registration status or activity changes or a new registration restarts its refresh
countdown; "n" counts the successful (re-)registrations so far. While a refresh is under way
PJSIP reports the account inactive with the previous status, so an unregistration is judged
from the PJSIP log ("unregistration success") and the server, not from these events.
{"ev": "error", "message": ...}; {"ev": "bye"}.
Commands read: {"cmd": "renew", "acc": name}, {"cmd": "unregister", "acc": name}, {"cmd": "quit"}.
"""
from __future__ import annotations

import argparse
import json
import select
import sys
import time

import pjsua2 as pj

POLL = 0.05


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def state(acc: pj.Account) -> tuple[bool, int, int]:
    info = acc.info  # a property in this wheel
    return bool(info.regIsActive), int(info.regStatus), int(info.regExpiresSec)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--account", action="append", required=True, help="JSON, repeatable")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="exit on our own after this")
    args = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 1
    cfg.uaConfig.mainThreadOnly = False
    cfg.logConfig.level = 5
    cfg.logConfig.consoleLevel = 0
    cfg.logConfig.msgLogging = 1
    cfg.logConfig.filename = args.log
    ep.libInit(cfg)
    transports: dict[str, int] = {}
    accounts: dict[str, pj.Account] = {}
    try:
        specs = [json.loads(raw) for raw in args.account]
        for spec in specs:
            kind = spec.get("transport", "udp")
            if kind not in transports:
                tc = pj.TransportConfig()
                tc.boundAddress = "127.0.0.1"
                tc.port = 0
                transports[kind] = ep.transportCreate(
                    pj.TransportType.TCP if kind == "tcp" else pj.TransportType.UDP, tc)
        ep.libStart()
        ep.audDevManager.setNullDev()  # a property in this wheel; no sound card in tests
        for spec in specs:
            kind = spec.get("transport", "udp")
            acfg = pj.AccountConfig()
            acfg.idUri = f"sip:{spec['user']}@{args.host}"
            acfg.regConfig.registrarUri = f"sip:{args.host}:{args.port};transport={kind}"
            acfg.regConfig.timeoutSec = int(spec.get("expires", 60))
            acfg.regConfig.delayBeforeRefreshSec = int(spec.get("refresh_before", 5))
            acfg.regConfig.retryIntervalSec = 0  # a failure is final: the test judges it
            acfg.regConfig.unregWaitMsec = 2000
            acfg.sipConfig.transportId = transports[kind]
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", "*", spec["user"], 0, spec["password"]))
            acc = pj.Account()  # not a subclass: see the module docstring
            acc.create(acfg)
            accounts[spec["name"]] = acc
        version = ep.version() if callable(ep.version) else ep.version
        emit(ev="ready", version=version.full)

        last: dict[str, tuple[bool, int, int]] = {}
        successes = dict.fromkeys(accounts, 0)
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline:
            for name, acc in accounts.items():
                now = state(acc)
                before = last.get(name)
                registered = now[0] and 200 <= now[1] < 300
                was = before is not None and before[0] and 200 <= before[1] < 300
                if registered and (not was or now[2] > before[2]):
                    successes[name] += 1
                if before is None or now[:2] != before[:2] or (registered and now[2] > before[2]):
                    emit(ev="reg", acc=name, active=now[0], code=now[1], next=now[2], n=successes[name])
                last[name] = now
            ready, _, _ = select.select([sys.stdin], [], [], POLL)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line:
                break  # the test went away
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                if cmd["cmd"] == "quit":
                    break
                acc = accounts[cmd["acc"]]
                if cmd["cmd"] == "renew":
                    acc.setRegistration(True)
                elif cmd["cmd"] == "unregister":
                    acc.setRegistration(False)
                else:
                    raise ValueError(f"unknown command {cmd['cmd']!r}")
            except Exception as exc:  # report and keep serving: the test decides
                emit(ev="error", message=f"{type(exc).__name__}: {exc}")
    finally:
        for acc in accounts.values():
            try:
                acc.shutdown()
            except Exception:
                pass
        ep.libDestroy()
        emit(ev="bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
