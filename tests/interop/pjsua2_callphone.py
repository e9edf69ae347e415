"""A PJSIP phone that places or takes one call, driven over stdin/stdout in JSON lines.

    python pjsua2_callphone.py --port 5060 --log pj.log --user bob --password ... --role callee
    python pjsua2_callphone.py --port 5060 --log pj.log --user alice --password ... --role caller

The wheel's bindings keep the GIL while they wait for PJSUA's lock, so a Python callback
running on PJSIP's worker thread while the main thread is inside a pjsua2 call deadlocks
(see pjsua2_phone.py). The two roles avoid that in opposite ways:
- the callee's main thread never calls into pjsua2 once registered: everything happens in
  callbacks on the worker thread (answer on INVITE, note DTMF digits and media state), and
  the main thread only prints what the callbacks queued;
- the caller overrides no callback at all: its main thread acts and polls `Call.info`.

Events: {"ev": "ready"}, {"ev": "registered", "code": 200}, {"ev": "state", "state": "CONFIRMED"},
{"ev": "dtmf", "digit": "5", "method": "RFC2833"|"SIP_INFO"}, {"ev": "media", "status": "REMOTE_HOLD"},
{"ev": "error", "message": ...}, {"ev": "bye"}.
Caller commands: {"cmd": "call", "uri": "sip:1002@127.0.0.1:5060"}, {"cmd": "dtmf", "digits": "123",
"method": "RFC2833"|"SIP_INFO"}, {"cmd": "hold"}, {"cmd": "unhold"}, {"cmd": "hangup"}, {"cmd": "quit"}.
"""
from __future__ import annotations

import argparse
import json
import queue
import select
import sys
import time

import pjsua2 as pj

POLL = 0.05
OUT: queue.Queue = queue.Queue()


def name_of(value, enum) -> str:
    """The enum member's name, whether the binding hands out the enum or a plain int."""
    return value.name if hasattr(value, "name") else enum(int(value)).name


def emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def guarded(callback):
    """An exception escaping a callback aborts the process (C++ terminate): report it instead."""
    def run(self, prm):
        try:
            callback(self, prm)
        except Exception as exc:
            import traceback
            OUT.put({"ev": "error", "message": f"{callback.__name__}: {exc!r} {traceback.format_exc()[-400:]}"})
    run.__name__ = callback.__name__
    return run


class CalleeCall(pj.Call):
    """Runs on PJSIP's worker thread only."""

    @guarded
    def onCallState(self, prm) -> None:
        OUT.put({"ev": "state", "state": name_of(self.info.state, pj.InvState)})

    @guarded
    def onCallMediaState(self, prm) -> None:
        media = self.info.media
        if media:  # one audio stream: what the B2BUA relays
            OUT.put({"ev": "media", "status": name_of(media[0].status, pj.CallMediaStatus)})

    @guarded
    def onDtmfDigit(self, prm) -> None:
        OUT.put({"ev": "dtmf", "digit": prm.digit, "method": name_of(prm.method, pj.DtmfMethod)})


class CalleeAccount(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[CalleeCall] = []

    @guarded
    def onRegState(self, prm) -> None:
        OUT.put({"ev": "registered", "code": int(prm.code)})

    @guarded
    def onIncomingCall(self, prm) -> None:
        call = CalleeCall(self, prm.callId)
        self.calls.append(call)  # keep the Python object alive as long as the call
        answer = pj.CallOpParam()
        answer.statusCode = pj.StatusCode.RINGING
        call.answer(answer)
        answer = pj.CallOpParam()
        answer.statusCode = pj.StatusCode.OK
        call.answer(answer)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--role", choices=("caller", "callee"), required=True)
    ap.add_argument("--max-seconds", type=float, default=90.0)
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
    # The caller connects no audio, so PJSUA would close the null sound device after 1 s idle;
    # that device is the clock that sends RFC 4733 events, so a later key would never go out.
    cfg.medConfig.sndAutoCloseTime = -1
    ep.libInit(cfg)
    tc = pj.TransportConfig()
    tc.boundAddress = "127.0.0.1"
    tc.port = 0
    transport = ep.transportCreate(pj.TransportType.UDP, tc)
    ep.libStart()
    ep.audDevManager.setNullDev()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.host}"
    acfg.regConfig.registrarUri = f"sip:{args.host}:{args.port}"
    acfg.regConfig.timeoutSec = 300
    acfg.regConfig.retryIntervalSec = 0
    acfg.sipConfig.transportId = transport
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    acc = CalleeAccount() if args.role == "callee" else pj.Account()
    call: pj.Call | None = None
    try:
        acc.create(acfg)
        emit(ev="ready")
        deadline = time.monotonic() + args.max_seconds
        last_state = None
        registered = False
        while time.monotonic() < deadline:
            while not OUT.empty():
                emit(**OUT.get())
            if args.role == "caller":
                if not registered:
                    info = acc.info
                    if info.regIsActive and 200 <= int(info.regStatus) < 300:
                        registered = True
                        emit(ev="registered", code=int(info.regStatus))
                if call is not None:
                    state = name_of(call.info.state, pj.InvState)
                    if state != last_state:
                        emit(ev="state", state=state, code=int(call.info.lastStatusCode))
                        last_state = state
            ready, _, _ = select.select([sys.stdin], [], [], POLL)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line:
                break
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
                name = cmd["cmd"]
                if name == "quit":
                    break
                if args.role != "caller":
                    raise ValueError("the callee takes no commands but quit")
                if name == "call":
                    call = pj.Call(acc)
                    call.makeCall(cmd["uri"], pj.CallOpParam(True))
                elif name == "dtmf":
                    prm = pj.CallSendDtmfParam()
                    prm.digits = cmd["digits"]
                    prm.method = getattr(pj.DtmfMethod, cmd.get("method", "RFC2833"))
                    call.sendDtmf(prm)
                elif name == "hold":
                    call.setHold(pj.CallOpParam(True))
                elif name == "unhold":
                    prm = pj.CallOpParam(True)
                    prm.opt.flag = 1  # PJSUA_CALL_UNHOLD
                    call.reinvite(prm)
                elif name == "hangup":
                    call.hangup(pj.CallOpParam(True))
                else:
                    raise ValueError(f"unknown command {name!r}")
            except Exception as exc:
                emit(ev="error", message=f"{type(exc).__name__}: {exc}")
    finally:
        try:
            acc.shutdown()
        except Exception:
            pass
        ep.libDestroy()
        emit(ev="bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
