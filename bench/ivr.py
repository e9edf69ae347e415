"""IVR media benchmark: N concurrent calls in auto-attendant menus, each playing the greeting
and listening for DTMF, and whether every prompt frame went out on time and every key was heard.

Run from the project root with the project's interpreter:

    .venv/bin/python bench/ivr.py [--calls 100,500,1000] [--seconds 10]

For each N, an `IvrMedia` (its own worker process) opens N channels, each playing the default
business-hours greeting followed by "if you know the extension..." and starting it again
when it ends or when a key is pressed (as a menu would). Separate load processes (one per
500 calls, at nice 19 so they do not take the worker's core) play the callers: an RTP stream
of μ-law background noise per call (white noise whose level changes every second between
-60 and -35 dBm0), 50 packets/s, the calls' phases spread over each 20 ms tick. Each caller
presses a key (0-9, *, #) every 1.2-3 s: odd calls as in-band tones (100 ms at -12 dBm0 per
tone, mixed into the noise), even calls as RFC 4733 events (100 ms, end packet three times,
no audio meanwhile). They count the prompt packets that come back.

Figures per level, over the measured seconds: prompt frames sent more than 10 ms after
their slot (the worker's own count, including frames of ticks skipped after a stall), the
digits sent against those recognised (per call, in order: none missed, none extra), the
worker's CPU (user + system time of its process over wall time) and the time it was ready
to run but waited for a CPU (/proc/PID/schedstat), the load generator's CPU and offered rate,
and how busy the whole machine was (/proc/stat). A level counts only if the load processes
offered at least 95% of the nominal packets, the machine kept at least 10% of its CPU idle
(/proc/stat; approximate in some VMs) and the worker waited for a CPU less than 10% of the
time; otherwise the lateness measures the machine's contention (on a 2-core machine the
load generator alone needs most of a core at 1,000 calls) and the level is marked INVALID.

Target (issue 5, acceptance 5): at least 1,000 concurrent calls with under 0.1% of prompt
frames late and every digit recognised. Results go to bench/results/ivr.json and, as one
line, to the last line of stdout; the exit status is non-zero if the target is missed or
anything fails.
"""
from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import multiprocessing
import os
import platform
import random
import select
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ivr.dtmf_tones import dtmf_tone, to_pcm, white_noise  # noqa: E402
from ivr.media import Digit, IvrError, IvrFull, IvrMedia, PlaybackDone  # noqa: E402
from ivr.prompts import PromptLibrary  # noqa: E402
from sipcore import g711  # noqa: E402

TICK = 0.020
FRAME = 160
SLOTS = 20                  # phases per tick: call i sends in slot i % SLOTS
SOCKETS_PER_PROCESS = 16    # load-side sockets; calls share them (each channel latches to one)
EVENT_PT = 101
KEYS = "0123456789*#"
PRESS_FRAMES = 5            # 100 ms
NOISE_SECONDS = 8
GREETING = ["greeting_business_hours", "extension_any_time"]
HEADER = struct.Struct("!BBHII")
EVENT = struct.Struct("!BBH")
TARGET_CALLS, TARGET_LATE_PCT = 1000, 0.1
LOAD_NICENESS = 19
MIN_OFFERED_PCT = 95.0
MAX_MACHINE_BUSY_PCT = 90.0  # beyond this the worker measured the machine's contention, not itself
MAX_WORKER_WAIT_PCT = 10.0   # the worker was ready to run but had no CPU: the same, seen from it
CALLS_PER_LOAD_PROCESS = 500
SETTLE = 1.0                # seconds after the last press for its digit to arrive


def caller_audio(seed: int) -> tuple[bytes, dict[str, bytes]]:
    """μ-law background noise (its level changing each second) and, per key, a press's
    frames: the key's tones over the same kind of noise."""
    rng = np.random.default_rng(seed)
    seconds = [white_noise(8000, rng.uniform(-60.0, -35.0), rng) for _ in range(NOISE_SECONDS)]
    noise = g711.ulaw_encode(to_pcm(np.concatenate(seconds))).tobytes()
    presses = {}
    for key in KEYS:
        samples = PRESS_FRAMES * FRAME
        signal = dtmf_tone(key, samples, level_dbm0=-12.0) + white_noise(samples, -45.0, rng)
        presses[key] = g711.ulaw_encode(to_pcm(signal)).tobytes()
    return noise, presses


def load_worker(conn, calls: list[int], seconds: float) -> None:
    """The callers of `calls`: audio and key presses out, prompt packets counted in."""
    try:
        os.nice(LOAD_NICENESS)   # the worker under test must not be the one that waits
        _load(conn, calls, seconds)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


def _load(conn, calls: list[int], seconds: float) -> None:
    socks = []
    for _ in range(SOCKETS_PER_PROCESS):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    conn.send([s.getsockname() for s in socks])
    ports, start = conn.recv()                         # {call: channel port}, start time
    noise, presses = caller_audio(calls[0] if calls else 0)
    rng = random.Random(calls[0] if calls else 0)
    ep = select.epoll()
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
    by_fd = {s.fileno(): s for s in socks}
    call_of_port = {ports[i]: i for i in calls}
    received = dict.fromkeys(calls, 0)
    pressed: dict[int, list[str]] = {i: [] for i in calls}
    ticks = int(seconds / TICK)
    last_press_tick = ticks - int(SETTLE / TICK)

    class Call:
        __slots__ = ("i", "dest", "send", "ssrc", "seq", "ts", "noise_at", "next_press", "key",
                     "press_frame", "inband")

    state = []
    for i in calls:
        c = Call()
        c.i, c.dest = i, ("127.0.0.1", ports[i])
        c.send = socks[i % SOCKETS_PER_PROCESS].sendto
        c.ssrc, c.seq, c.ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
        c.noise_at = rng.randrange(0, len(noise) // FRAME) * FRAME
        c.next_press = rng.randrange(int(0.5 / TICK), int(2.5 / TICK))
        c.key, c.press_frame, c.inband = None, 0, i % 2 == 1
        state.append(c)
    slot_calls = [[c for c in state if c.i % SLOTS == slot] for slot in range(SLOTS)]
    buf = bytearray(2048)
    mono = time.monotonic
    sent = bad = late_slots = 0
    pack = HEADER.pack
    end_packets = 3

    def drain(until: float) -> None:
        """Read what has come, then sleep until `until`. Sleeping on a timer rather than on
        the sockets matters: a sleeper on a socket is woken by the worker's sends, and
        the worker pays for each wake-up, which a phone across the network never costs it."""
        nonlocal bad
        while True:
            events = ep.poll(0)
            for fd, _ in events:
                s = by_fd[fd]
                while True:
                    try:
                        n, src = s.recvfrom_into(buf)
                    except BlockingIOError:
                        break
                    i = call_of_port.get(src[1])
                    if i is None or n != 12 + FRAME:
                        bad += 1
                    else:
                        received[i] += 1
            now = mono()
            if now >= until:
                return
            time.sleep(until - now)

    def step(c, tick: int) -> int:
        """This tick's packet(s) of one caller; returns how many were sent."""
        if c.key is None and tick >= c.next_press and tick < last_press_tick:
            c.key, c.press_frame = KEYS[rng.randrange(len(KEYS))], 0
            pressed[c.i].append(c.key)
        if c.key is not None and c.inband:
            payload = presses[c.key][c.press_frame * FRAME:(c.press_frame + 1) * FRAME]
        elif c.key is not None:
            # RFC 4733: the press's packets share its first timestamp; the last goes three times.
            c.press_frame += 1
            done = c.press_frame >= PRESS_FRAMES
            event = EVENT.pack(KEYS.index(c.key), (0x80 if done else 0) | 10, c.press_frame * FRAME)
            start_ts = (c.ts - (c.press_frame - 1) * FRAME) & 0xFFFFFFFF
            copies = end_packets if done else 1
            for _ in range(copies):
                c.send(pack(0x80, (0x80 if c.press_frame == 1 else 0) | EVENT_PT, c.seq, start_ts, c.ssrc)
                       + event, c.dest)
                c.seq = (c.seq + 1) & 0xFFFF
            c.ts = (c.ts + FRAME) & 0xFFFFFFFF
            if done:
                c.key = None
                c.next_press = tick + rng.randrange(int(1.2 / TICK), int(3.0 / TICK))
            return copies
        else:
            payload = noise[c.noise_at:c.noise_at + FRAME]
            c.noise_at = (c.noise_at + FRAME) % len(noise)
        c.send(pack(0x80, 0, c.seq, c.ts, c.ssrc) + payload, c.dest)
        c.seq = (c.seq + 1) & 0xFFFF
        c.ts = (c.ts + FRAME) & 0xFFFFFFFF
        if c.key is not None:
            c.press_frame += 1
            if c.press_frame >= PRESS_FRAMES:
                c.key = None
                c.next_press = tick + rng.randrange(int(1.2 / TICK), int(3.0 / TICK))
        return 1

    audio_packets = 0
    drain(start)
    cpu0 = time.process_time()
    for i in received:                                 # what came before the window does not count
        received[i] = 0
    for tick in range(ticks):
        tick_start = start + tick * TICK
        for slot in range(SLOTS):
            slot_at = tick_start + slot * TICK / SLOTS
            drain(slot_at)
            if mono() - slot_at > 0.010:
                late_slots += 1
            for c in slot_calls[slot]:
                sent += step(c, tick)
            audio_packets += len(slot_calls[slot])
    send_seconds = mono() - start
    cpu = time.process_time() - cpu0
    conn.send({"sent": sent, "packet_slots": audio_packets, "send_seconds": send_seconds, "cpu": cpu,
               "received": received, "bad": bad, "late_slots": late_slots, "slots": ticks * SLOTS,
               "pressed": pressed})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_queue_seconds(pid: int) -> float:
    """Time the process (its main thread) was ready to run but waited for a CPU."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


async def run_level(n_calls: int, seconds: float, port_min: int, load_procs: int, prompts: PromptLibrary) -> dict:
    digits: dict[int, list[tuple[str, str]]] = {}
    media: IvrMedia

    def on_event(event) -> None:
        if isinstance(event, Digit):
            digits.setdefault(event.ch, []).append((event.digit, event.source))
            media.play(event.ch, GREETING, token=0)       # a key interrupts the greeting
        elif isinstance(event, PlaybackDone):
            media.play(event.ch, GREETING, token=0)       # the menu repeats
        else:
            failures.append(event)

    failures: list = []
    media = IvrMedia("127.0.0.1", port_min, port_min + 2 * n_calls + 200, on_event=on_event,
                     spare=min(n_calls, 256), timeout=5.0)
    await media.start()
    for clip in GREETING:
        media.register_clip(clip, prompts.pcm(clip))
    ctx = multiprocessing.get_context("spawn")
    shares = [list(range(p, n_calls, load_procs)) for p in range(load_procs)]
    pipes = [ctx.Pipe() for _ in shares]
    procs = [ctx.Process(target=load_worker, args=(child, share, seconds), daemon=True)
             for (_, child), share in zip(pipes, shares)]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()

    async def receive(conn):
        reply = await loop.run_in_executor(None, conn.recv)
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    try:
        addresses = [await receive(parent) for parent, _ in pipes]
        channels, ports = [], []
        deadline = time.monotonic() + 30
        while len(channels) < n_calls:
            try:
                ch, port = media.open_nowait()
            except IvrFull:
                if time.monotonic() > deadline or not media.alive:
                    raise
                await asyncio.sleep(0.005)
                continue
            i = len(channels)
            proc = i % load_procs
            media.connect(ch, tuple(addresses[proc][i % SOCKETS_PER_PROCESS]), "PCMU", EVENT_PT)
            media.play(ch, GREETING, token=0)
            channels.append(ch)
            ports.append(port)
        await asyncio.sleep(0.5)                          # every channel sending before we measure
        before = await media.stats()
        cpu0, wall0 = cpu_seconds(media.pid), time.monotonic()
        wait0, machine0 = run_queue_seconds(media.pid), machine_ticks()
        start = time.monotonic() + 0.2
        for (parent, _), share in zip(pipes, shares):
            parent.send(({i: ports[i] for i in share}, start))
        loads = await asyncio.gather(*(receive(parent) for parent, _ in pipes))
        after = await media.stats()
        wall = time.monotonic() - wall0
        worker_cpu = (cpu_seconds(media.pid) - cpu0) / wall
        worker_wait = (run_queue_seconds(media.pid) - wait0) / wall
        machine1 = machine_ticks()
        machine_busy = (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1)
        await asyncio.sleep(0.3)                          # digits of the last presses in flight
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        await media.stop()

    sent_digits = recognised = missed = extra = 0
    wrong_calls = []
    for share, load in zip(shares, loads):
        for i in share:
            want = load["pressed"][i]
            got = [d for d, _ in digits.get(channels[i], [])]
            matched = sum(b.size for b in difflib.SequenceMatcher(None, want, got, autojunk=False).get_matching_blocks())
            sent_digits += len(want)
            recognised += matched
            missed += len(want) - matched
            extra += len(got) - matched
            if got != want:
                wrong_calls.append({"call": i, "sent": "".join(want), "recognised": "".join(got),
                                    "sources": "".join(src[0] for _, src in digits.get(channels[i], []))})
    sources = [s for v in digits.values() for _, s in v]
    frames = after.frames_sent - before.frames_sent
    late = after.frames_late - before.frames_late
    slots = sum(x["packet_slots"] for x in loads)
    send_seconds = max(x["send_seconds"] for x in loads)
    expected_prompt = n_calls * send_seconds / TICK
    return {
        "calls": n_calls,
        "prompt_frames_sent": frames,
        "prompt_frames_late": late,
        "late_pct": 100.0 * late / max(frames + after.frames_skipped - before.frames_skipped, 1),
        "frames_skipped": after.frames_skipped - before.frames_skipped,
        "max_behind_ms": after.max_behind_ms,
        "digits_sent": sent_digits,
        "digits_recognised": recognised,
        "digits_missed": missed,
        "digits_extra": extra,
        "digits_inband": sources.count("inband"),
        "digits_rfc4733": sources.count("rfc4733"),
        "wrong_calls": wrong_calls[:20],
        "worker_cpu_pct": round(100 * worker_cpu, 1),
        "worker_waiting_for_cpu_pct": round(100 * worker_wait, 1),
        "machine_busy_pct": round(100 * machine_busy, 1),
        "loadgen_cpu_pct": round(100 * sum(x["cpu"] for x in loads) / send_seconds, 1),
        "offered_rate_pct": round(100.0 * slots / send_seconds / (n_calls / TICK), 1),
        "prompt_packets_received_pct": round(100.0 * sum(sum(x["received"].values()) for x in loads)
                                             / expected_prompt, 1),
        "loadgen_late_slots_pct": round(100.0 * sum(x["late_slots"] for x in loads)
                                        / max(sum(x["slots"] for x in loads), 1), 2),
        "loadgen_bad_packets": sum(x["bad"] for x in loads),
        "dropped_invalid": after.dropped_invalid - before.dropped_invalid,
        "dropped_foreign": after.dropped_foreign - before.dropped_foreign,
        "channel_failures": [str(f) for f in failures[:5]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="100,500,1000", help="comma-separated call counts")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds measured per level (default 10)")
    ap.add_argument("--port-min", type=int, default=62000,
                    help="first IVR port (default 62000: above the ephemeral range)")
    ap.add_argument("--load-processes", type=int, default=0,
                    help=f"processes playing the callers (default: one per {CALLS_PER_LOAD_PROCESS} calls)")
    args = ap.parse_args()
    levels = [int(c) for c in args.calls.split(",") if c.strip()]
    prompts = PromptLibrary()
    results = []
    try:
        for n in levels:
            r = asyncio.run(run_level(n, args.seconds, args.port_min,
                                      args.load_processes or -(-n // CALLS_PER_LOAD_PROCESS), prompts))
            results.append(r)
            print(f"{n} calls: {r['late_pct']:.3f}% of {r['prompt_frames_sent'] + r['frames_skipped']} prompt frames late "
                  f"(skipped {r['frames_skipped']}, worst {r['max_behind_ms']:.1f} ms behind), digits "
                  f"{r['digits_recognised']}/{r['digits_sent']} ({r['digits_inband']} in-band, "
                  f"{r['digits_rfc4733']} RFC 4733; missed {r['digits_missed']}, extra {r['digits_extra']}), "
                  f"worker CPU {r['worker_cpu_pct']}% (waited for a CPU {r['worker_waiting_for_cpu_pct']}% of "
                  f"the time), load generator CPU {r['loadgen_cpu_pct']}%, machine busy {r['machine_busy_pct']}% "
                  f"of {os.cpu_count()} CPUs, load offered {r['offered_rate_pct']}% of the rate "
                  f"(late slots {r['loadgen_late_slots_pct']}%), prompt packets received "
                  f"{r['prompt_packets_received_pct']}%, failures {r['channel_failures']}", flush=True)
            if r["wrong_calls"]:
                print(f"  calls whose digits differ (first {len(r['wrong_calls'])}): {r['wrong_calls']}", flush=True)
    except (IvrError, RuntimeError, OSError) as exc:
        print(f"ivr: FAILED: {type(exc).__name__}: {exc}")
        return 1

    def good(r: dict) -> bool:
        return (r["late_pct"] < TARGET_LATE_PCT and r["digits_missed"] == 0 and r["digits_extra"] == 0
                and not r["channel_failures"])

    def invalid(r: dict) -> str | None:
        if r["offered_rate_pct"] < MIN_OFFERED_PCT:
            return f"load reached {r['offered_rate_pct']:.0f}% of the rate"
        if (r["machine_busy_pct"] >= MAX_MACHINE_BUSY_PCT
                or r["worker_waiting_for_cpu_pct"] >= MAX_WORKER_WAIT_PCT):
            return f"machine {r['machine_busy_pct']:.0f}% busy, worker waited for a CPU {r['worker_waiting_for_cpu_pct']:.0f}%"
        return None

    valid = [r for r in results if invalid(r) is None]
    met = [r for r in valid if r["calls"] >= TARGET_CALLS and good(r)]
    tested_target = any(r["calls"] >= TARGET_CALLS for r in valid)
    asked_target = any(r["calls"] >= TARGET_CALLS for r in results)
    broken = [r for r in valid if r["digits_missed"] or r["digits_extra"] or r["channel_failures"]]
    if broken:
        verdict = "FAILED: digits lost or invented"
    elif met:
        verdict = "target met"
    elif tested_target:
        verdict = "target MISSED"
    elif asked_target:
        verdict = "target NOT MEASURED (the machine could not run the load and the worker together)"
    else:
        verdict = "target not tested"
    out = ROOT / "bench" / "results" / "ivr.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "ivr", "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(), "seconds_per_level": args.seconds,
        "target": f">= {TARGET_CALLS} calls with < {TARGET_LATE_PCT}% prompt frames late and every digit recognised",
        "verdict": verdict, "levels": results,
    }, indent=2) + "\n")

    def summary(r: dict) -> str:
        text = (f"{r['calls']} calls {r['late_pct']:.2f}% late, {r['digits_recognised']}/{r['digits_sent']} digits "
                f"(CPU {r['worker_cpu_pct']:.0f}%")
        if invalid(r):
            text += f"; INVALID: {invalid(r)}"
        return text + ")"

    print("ivr: " + " | ".join(summary(r) for r in results) + f" | {verdict}")
    return 0 if not broken and (met or not asked_target) else 1


if __name__ == "__main__":
    sys.exit(main())
