"""Registration throughput: SIPp registers 10,000 distinct users (per round) against

  (a) callrouter with digest authentication on every REGISTER (MD5, the only digest SIPp
      3.6.1 computes: one 401 challenge and one authenticated REGISTER per registration),
  (b) callrouter without authentication (`auth.required: false`),
  (c) Kamailio, the reference registrar, started from ../shared/bench-peers/
      kamailio-registrar-proxy.cfg (no authentication),

all in one run on this machine, with the same SIPp and the same load shape.

Run from the project root with the project's interpreter (`make bench` installs SIPp and
Kamailio; this script installs nothing):

    .venv/bin/python bench/register.py [--users 10000] [--rounds 3]

How a figure is measured: SIPp is given a call rate far above what any of the three can
take (-r) and a cap on registrations in flight (-l), so it sends as fast as the registrar
answers; the figure is successful registrations divided by the time SIPp took for all of
them (from its -trace_stat file), i.e. the registrar's sustained throughput, not SIPp's
configured rate. The cap is found by ramping: after a warm-up, short calibration runs on
separate users at rising caps, stopping when throughput no longer rises or the registrar
starts dropping; the best cap with no failure and no retransmission is then used for
--rounds measured runs of --users fresh users each (their first registration), and the
median round is the figure: the machine is shared, and one run can catch a neighbour's
burst of CPU use. Every server is started fresh for its measurement.

The last line of stdout carries the figures; bench/results/register.json has the details.
Exit status: 0 when every registration succeeded and every process behaved (targets missed
are reported, not fatal), 1 on a failed registration or a process that failed.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.server import ServerProcess, bulk_password  # noqa: E402

SCENARIOS = ROOT / "tests" / "interop" / "sipp"
KAMAILIO_CFG = ROOT.parent / "shared" / "bench-peers" / "kamailio-registrar-proxy.cfg"
KAMAILIO_PORT = 5070
TARGET_AUTH_PER_S = 3000
TARGET_RATIO = 0.5


class BenchError(Exception):
    """A failed registration or a process that failed: the run is invalid."""


# --------------------------------------------------------------------------- SIPp

def write_users(path: Path, first: int, count: int, auth: bool) -> Path:
    """SIPp injection file: `u<n>` (and, for digest, the whole [authentication ...] keyword,
    since SIPp 3.6.1 does not expand [field0] nested inside it)."""
    with path.open("w") as f:
        f.write("SEQUENTIAL\n")
        for n in range(first, first + count):
            f.write(f"u{n};[authentication username=u{n} password={bulk_password(n)}]\n" if auth else f"u{n}\n")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sipp(sipp: str, target: tuple[str, int], scenario: str, users: Path, calls: int, limit: int,
             rate: int, workdir: Path, label: str, local_port: int, timeout: float = 180.0) -> dict:
    stat, errors = workdir / f"{label}.csv", workdir / f"{label}-errors.log"
    cmd = [sipp, f"{target[0]}:{target[1]}", "-sf", str(SCENARIOS / scenario), "-inf", str(users),
           "-m", str(calls), "-r", str(rate), "-l", str(limit), "-t", "u1",
           "-i", "127.0.0.1", "-p", str(local_port),
           "-trace_stat", "-stf", str(stat), "-fd", "1", "-trace_err", "-error_file", str(errors),
           "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error", "-max_non_invite_retrans", "6"]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout + 20)
        rc, err = proc.returncode, proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, err = -9, "killed after the subprocess timeout"
    wall = time.monotonic() - started
    row = {}
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
        parts = (row.get(name) or "").split("\t")  # "date<TAB>time<TAB>epoch"
        try:
            return float(parts[-1])
        except ValueError:
            return None

    start, end = epoch("StartTime"), epoch("CurrentTime")
    elapsed = end - start if start is not None and end is not None and end > start else wall
    ok = number("SuccessfulCall(C)")
    return {"limit": limit, "calls": calls, "returncode": rc, "successful": ok,
            "failed": number("FailedCall(C)"), "created": number("TotalCallCreated"),
            "retransmissions": number("Retransmissions(C)"), "seconds": round(elapsed, 3),
            "per_s": round(ok / elapsed, 1) if elapsed > 0 else 0.0,
            "errors": (errors.read_text(errors="replace")[:2000] if errors.exists() else "") + err[-500:]}


def total_users(args) -> int:
    return args.rounds * args.users + args.calibration_users


def measure(sipp: str, target: tuple[str, int], scenario: str, auth: bool, args, workdir: Path,
            label: str, alive) -> dict:
    """Ramp the in-flight cap on the calibration users, then measure args.rounds runs of
    args.users fresh users each (users 1..users, users+1..2*users, ...); the figure is the
    median round, which a neighbour's burst of CPU use moves less than a single run."""
    workdir.mkdir(parents=True, exist_ok=True)
    # One SIPp port for every run against this registrar: a calibration user's Contact stays
    # the same from run to run, so later runs refresh its binding rather than add one.
    local_port = free_udp_port()
    cal_file = write_users(workdir / "calibration.csv", args.rounds * args.users + 1, args.calibration_users, auth)

    def run(users_file: Path, calls: int, limit: int, tag: str) -> dict:
        r = run_sipp(sipp, target, scenario, users_file, calls, limit, args.rate, workdir, f"{label}-{tag}",
                     local_port)
        alive()
        if r["failed"] or r["successful"] != calls or r["returncode"] != 0:
            raise BenchError(f"{label} {tag}: {r['successful']} of {calls} registered, {r['failed']} failed, "
                             f"SIPp rc {r['returncode']}\n{r['errors']}")
        return r

    # Warm-up: the calibration users' first registration (inserts, and the server's first
    # touch of that code), so that every calibration run below is alike (refreshes).
    warm = run(cal_file, args.calibration_users, args.limits[0], "warmup")
    calibration: list[dict] = []
    for limit in args.limits:
        r = run(cal_file, args.calibration_users, limit, f"cal-l{limit}")
        calibration.append(r)
        clean = [c for c in calibration if c["retransmissions"] == 0]
        if len(calibration) >= 2 and r["per_s"] < 0.9 * max(c["per_s"] for c in calibration[:-1]):
            break  # throughput stopped rising: more in flight only queues (or drops)
        if r["retransmissions"] and clean:
            break  # the registrar started dropping: the cap before this one is the answer
    clean = [c for c in calibration if c["retransmissions"] == 0] or calibration
    chosen = max(clean, key=lambda c: c["per_s"])["limit"]

    rounds = []
    for i in range(args.rounds):
        users_file = write_users(workdir / f"users-{i}.csv", i * args.users + 1, args.users, auth)
        rounds.append(run(users_file, args.users, chosen, f"round{i}"))
    median = statistics.median(r["per_s"] for r in rounds)
    return {"chosen_limit": chosen, "per_s": round(median, 1),
            "rounds_per_s": [r["per_s"] for r in rounds],
            "successful": sum(r["successful"] for r in rounds), "failed": sum(r["failed"] for r in rounds),
            "retransmissions": sum(r["retransmissions"] for r in rounds),
            "warmup": warm, "calibration": calibration, "rounds": rounds}


# --------------------------------------------------------------------------- callrouter

def callrouter_settings(auth_required: bool) -> dict:
    return {
        # SIPp answers only MD5, and takes the first challenge: offer MD5 alone.
        "auth": {"algorithms": ["MD5"], "required": auth_required},
        # All the load comes from one address; the per-source limits would measure themselves.
        "security": {"rate_limit": 1_000_000, "rate_burst": 1_000_000},
        "location": {"snapshot_interval": 2},  # the documented default, not the tests' 0.5 s
        "log": {"level": "WARNING"},
    }


def bench_callrouter(sipp: str, workdir: Path, args, auth: bool) -> dict:
    label = "callrouter-auth" if auth else "callrouter-noauth"
    total = total_users(args)
    # Credentials only matter with auth; without it any user may register.
    server = ServerProcess(workdir / label, bulk_users=total if auth else 0,
                           settings=callrouter_settings(auth_required=auth))
    try:
        server.start(timeout=600)
    except RuntimeError as exc:
        raise BenchError(f"{label}: callrouter did not start: {exc}") from None

    def alive() -> None:
        if server.proc.poll() is not None:
            raise BenchError(f"{label}: callrouter exited with {server.proc.returncode}:\n{server.log()}")

    try:
        result = measure(sipp, ("127.0.0.1", server.sip_port), "register-auth.xml" if auth else "register-noauth.xml",
                         auth, args, workdir / label / "sipp", label, alive)
        registered = server.metric("callrouter_registrations")
        if registered != total:
            raise BenchError(f"{label}: the server holds {registered:.0f} bindings, expected {total}")
        result["bindings"] = int(registered)
        result["server_metrics"] = {name: server.metric(name) for name in (
            "callrouter_sip_auth_failures_total", "callrouter_sip_parse_errors_total")}
    finally:
        alive_before_stop = server.proc.poll() is None
        rc = server.stop(signal.SIGTERM, timeout=60)
    if not alive_before_stop or rc != 0:
        raise BenchError(f"{label}: callrouter exit status {rc} on SIGTERM:\n{server.log()}")
    return result


# --------------------------------------------------------------------------- Kamailio

def port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def sip_answers(port: int, timeout: float) -> bool:
    """Whether something answers a SIP OPTIONS on 127.0.0.1:port (any status will do)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]
        n = 0
        while time.monotonic() < deadline:
            n += 1
            s.sendto((f"OPTIONS sip:ping@127.0.0.1:{port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKbenchping{n}\r\n"
                      "Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=b\r\nTo: <sip:ping@127.0.0.1>\r\n"
                      f"Call-ID: bench-ping-{os.getpid()}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
                     ("127.0.0.1", port))
            s.settimeout(0.3)
            try:
                if s.recv(65535).startswith(b"SIP/2.0 "):
                    return True
            except OSError:
                time.sleep(0.1)
    return False


def bench_kamailio(sipp: str, kamailio: str, workdir: Path, args) -> dict:
    label = "kamailio"
    (workdir / label).mkdir(parents=True, exist_ok=True)
    cfg, port, ctl = KAMAILIO_CFG, KAMAILIO_PORT, "unix:/tmp/kamailio_ctl"
    if not port_free(KAMAILIO_PORT):
        # Someone holds 5070: run a temporary copy on a free port (never committed), with its
        # own control socket so that it cannot collide with the other instance's either.
        port = free_udp_port()
        while not port_free(port):
            port = free_udp_port()
        ctl = f"unix:{workdir / label / 'kamailio_ctl'}"
        text = KAMAILIO_CFG.read_text().replace(f"127.0.0.1:{KAMAILIO_PORT}", f"127.0.0.1:{port}")
        text = text.replace("unix:/tmp/kamailio_ctl", ctl)
        cfg = workdir / label / "kamailio.cfg"
        cfg.write_text(text)
    log = (workdir / label / "kamailio.log").open("wb")
    # -DD: stay in the foreground (children still fork), so that this script owns the process.
    proc = subprocess.Popen([kamailio, "-f", str(cfg), "-P", str(workdir / label / "kamailio.pid"),
                             "-m", "1024", "-M", "64", "-DD"], stdout=log, stderr=subprocess.STDOUT)

    def alive() -> None:
        if proc.poll() is not None:
            raise BenchError(f"kamailio exited with {proc.returncode}: "
                             f"{(workdir / label / 'kamailio.log').read_text(errors='replace')[-2000:]}")

    try:
        if not sip_answers(port, 20):
            alive()
            raise BenchError(f"kamailio does not answer on 127.0.0.1:{port}")
        result = measure(sipp, ("127.0.0.1", port), "register-noauth.xml", False, args,
                         workdir / label / "sipp", label, alive)
        result["port"] = port
        result["config"] = str(cfg)
        kamcmd = shutil.which("kamcmd")
        if kamcmd:
            out = subprocess.run([kamcmd, "-s", ctl, "stats.get_statistics", "usrloc:location_contacts"],
                                 capture_output=True, text=True, timeout=10).stdout
            contacts = int(out.split("=")[-1]) if "=" in out else None
            result["bindings"] = contacts
            if contacts is not None and contacts != total_users(args):
                raise BenchError(f"kamailio holds {contacts} contacts, expected {total_users(args)}")
    finally:
        running = proc.poll() is None
        proc.terminate()
        try:
            rc = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    if not running:
        raise BenchError(f"kamailio exited early with {rc}")
    return result


# --------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=10_000, help="distinct users in each measured run")
    ap.add_argument("--rounds", type=int, default=3, help="measured runs per registrar (median reported)")
    ap.add_argument("--calibration-users", type=int, default=3_000, help="users per calibration run")
    ap.add_argument("--limits", default="10,25,50,100,200,400,800",
                    help="in-flight caps (-l) to ramp through, ascending")
    ap.add_argument("--rate", type=int, default=50_000, help="SIPp -r: far above any registrar here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, SIPp traces)")
    args = ap.parse_args()
    args.limits = [int(x) for x in args.limits.split(",")]

    sipp, kamailio = shutil.which("sipp"), shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None)
    missing = [name for name, path in (("sipp", sipp), ("kamailio", kamailio)) if path is None]
    if missing or not KAMAILIO_CFG.exists():
        what = ", ".join(missing) + (f" {KAMAILIO_CFG}" if not KAMAILIO_CFG.exists() else "")
        print(f"register: FAILED: missing {what} (run `make bench`, which installs them)")
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="bench-register-"))
    result: dict = {"benchmark": "register", "users": args.users, "rounds": args.rounds,
                    "calibration_users": args.calibration_users,
                    "sipp_rate": args.rate, "limits": args.limits, "python": platform.python_version(),
                    "machine": platform.machine(), "cpus": os.cpu_count()}
    status = 0
    try:
        result["callrouter_auth"] = bench_callrouter(sipp, workdir, args, auth=True)
        result["callrouter_noauth"] = bench_callrouter(sipp, workdir, args, auth=False)
        result["kamailio_noauth"] = bench_kamailio(sipp, kamailio, workdir, args)
    except BenchError as exc:
        result["error"] = str(exc)
        status = 1
    finally:
        if not args.keep and status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            result["workdir"] = str(workdir)

    auth = result.get("callrouter_auth", {}).get("per_s")
    cr = result.get("callrouter_noauth", {}).get("per_s")
    kam = result.get("kamailio_noauth", {}).get("per_s")
    ratio = cr / kam if cr and kam else None
    failed = sum(result.get(k, {}).get("failed", 0) for k in ("callrouter_auth", "callrouter_noauth", "kamailio_noauth"))
    result.update({
        "auth_per_s": auth, "noauth_callrouter_per_s": cr, "noauth_kamailio_per_s": kam,
        "noauth_ratio": round(ratio, 3) if ratio else None, "failed": failed,
        "targets": {"auth_per_s": TARGET_AUTH_PER_S, "ratio": TARGET_RATIO,
                    "auth_met": bool(auth and auth >= TARGET_AUTH_PER_S),
                    "ratio_met": bool(ratio and ratio >= TARGET_RATIO)},
    })
    out = ROOT / "bench" / "results" / "register.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    if status:
        print(result["error"])
        print(f"register: FAILED: {result['error'].splitlines()[0]} (details in {out}, logs in {workdir})")
        return status

    def f(x):
        return f"{x:,.0f}/s"

    print(f"register: auth {f(auth)} ({failed} failed) | no-auth callrouter {f(cr)} vs kamailio {f(kam)} "
          f"= {ratio:.2f}x | targets auth>={TARGET_AUTH_PER_S}/s, ratio>={TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
