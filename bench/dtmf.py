"""DTMF detector throughput: channel-seconds of audio per CPU-second at 1, 100 and 1,000
channels, and the 99th-percentile CPU time of one 20 ms tick.

Run from the project root with the project's interpreter (needs espeak-ng for speech):

    .venv/bin/python bench/dtmf.py [--seconds 20] [--rounds 3]

The audio is what an auto attendant hears from callers: each channel carries background
noise (-50 dBm0) with, in turn, silence (0.5-2 s), speech (1-3 s of espeak-ng, -20 dBm0
active level) and bursts of 1-4 key presses (80-150 ms on and off, -12 dBm0 per tone, up to
4 dB twist); keys take about 12% of the time, speech 35%. A pool of 100 twenty-second
streams is generated; channel c plays stream c mod 100, rotated to start at one of its
segment boundaries, so no two channels are in step. Everything goes through μ-law.

How a figure is measured: BatchDetector.process is called once per tick with one frame for
every channel, exactly as the media loop does, and the CPU time of this process (all
threads) is taken around each call. channel-s per CPU-s = channels x seconds of audio / CPU
seconds of all ticks; p99 is over the ticks of the run. Each configuration runs --rounds
times and the median round is reported, since the machine may be shared. A last run puts
every one of 1,000 channels in a key press all the time (the worst case: every window goes
on to the harmonic tests) and reports its p99 too.

The last line of stdout carries the figures; bench/results/dtmf.json has the details.
Exit status: 0 when every channel recognised exactly the keys it was sent (targets missed
are reported, not fatal), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ivr.dtmf import KEYS, BatchDetector  # noqa: E402
from ivr.dtmf_tones import dtmf_tone, g711_round_trip, power_dbm0, to_pcm, white_noise  # noqa: E402

FRAME = 160
POOL = 100
STREAM_SECONDS = 20
TARGET_CHANNEL_SECONDS = 15_000       # per CPU-second, at 1,000 channels
TARGET_P99_MS = 2.0
VOICES = [("en-us", 50, 160), ("en-gb+f3", 70, 150), ("en-us+m3", 30, 175), ("fr+f2", 65, 155),
          ("de+m2", 35, 150), ("en-us+f1", 90, 180)]
TEXT = ("Thank you for calling. For sales, press one. For support, press two. To reach a person "
        "by name, press nine and spell the last name. I would like to speak to someone about my "
        "invoice from last month, it seems the amount is wrong and nobody answered my e-mail. "
        "Operator. Representative. Yes, my account number is four five seven, two two one, zero. ")


class BenchError(Exception):
    pass


def speech_pool() -> np.ndarray:
    espeak, ffmpeg = shutil.which("espeak-ng"), shutil.which("ffmpeg")
    if not espeak or not ffmpeg:
        raise BenchError("espeak-ng and ffmpeg are needed (make debian-test-deps installs them)")
    parts = []
    for voice, pitch, speed in VOICES:
        wav = subprocess.run([espeak, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout"],
                             input=(TEXT * 3).encode(), capture_output=True, check=True).stdout
        raw = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "pipe:0", "-ar", "8000",
                              "-ac", "1", "-f", "s16le", "pipe:1"], input=wav, capture_output=True, check=True).stdout
        x = np.frombuffer(raw, dtype=np.int16).astype(np.float64)
        active = x[np.abs(x) > 0.01 * np.abs(x).max()]
        parts.append(x * 10 ** ((-20.0 - power_dbm0(active)) / 20))
    return np.concatenate(parts)


def make_stream(rng: np.random.Generator, speech: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """One caller's audio and its segments: (start sample, keys pressed in that segment)."""
    total = STREAM_SECONDS * 8000
    signal = white_noise(total, -50.0, rng)
    segments: list[tuple[int, str]] = []
    at = 0
    while True:
        kind = rng.choice(["silence", "speech", "keys"], p=[0.35, 0.35, 0.30])
        if kind == "silence":
            length, keys, piece = int(rng.uniform(0.5, 2.0) * 8000), "", None
        elif kind == "speech":
            length = int(rng.uniform(1.0, 3.0) * 8000)
            start = int(rng.integers(0, len(speech) - length))
            keys, piece = "", speech[start:start + length]
        else:
            keys = "".join(rng.choice(list(KEYS), int(rng.integers(1, 5))))
            chunks = []
            for key in keys:
                twist = rng.uniform(-2.0, 4.0)
                chunks += [dtmf_tone(key, int(rng.integers(640, 1200)), level_dbm0=-12.0, twist_db=twist),
                           np.zeros(int(rng.integers(640, 1200)))]
            piece = np.concatenate(chunks)
            length = len(piece)
        if at + length + 1600 > total:
            break
        if piece is not None:
            signal[at:at + length] += piece
        segments.append((at, keys))
        at += length + 800          # 100 ms of background between segments
    return g711_round_trip(to_pcm(signal)), segments


def rotated(stream: np.ndarray, segments: list[tuple[int, str]], index: int) -> tuple[np.ndarray, str]:
    start, _ = segments[index % len(segments)]
    keys = "".join(k for _, k in segments[index % len(segments):]) + "".join(k for _, k in segments[:index % len(segments)])
    return np.roll(stream, -start), keys


def run(channels: int, seconds: float, streams) -> dict:
    """One measured run: returns channel-seconds per CPU-second, tick times and correctness."""
    ticks = int(seconds * 8000) // FRAME
    audio = np.empty((channels, ticks * FRAME), dtype=np.int16)
    expected = []
    for c in range(channels):
        stream, segments = streams[c % len(streams)]
        pcm, keys = rotated(stream, segments, c // len(streams) * 3)
        audio[c] = np.resize(pcm, ticks * FRAME)
        expected.append(keys)
    detector = BatchDetector(channels)
    ids = np.array([detector.add_channel() for _ in range(channels)])
    heard = [""] * channels
    times = np.empty(ticks)
    for t in range(ticks):
        frames = audio[:, t * FRAME:(t + 1) * FRAME]
        start = time.process_time()
        found = detector.process(frames, ids)
        times[t] = time.process_time() - start
        for ch, digit in found:
            heard[ch] += digit
    return {"channel_s_per_cpu_s": channels * ticks * FRAME / 8000 / times.sum(),
            "p99_ms": float(np.percentile(times, 99) * 1e3), "mean_ms": float(times.mean() * 1e3),
            "heard": heard, "expected": expected}


def check(result: dict, seconds: float, stream_seconds: float) -> None:
    """Every channel heard exactly its keys (all of them when the run covers whole streams)."""
    for c, (heard, expected) in enumerate(zip(result["heard"], result["expected"])):
        if seconds >= stream_seconds:
            ok = heard.startswith(expected)
        else:
            ok = expected.startswith(heard) and len(expected) - len(heard) <= 4
        if not ok:
            raise BenchError(f"channel {c} heard {heard!r}, was sent {expected!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per run at 100 and 1,000 channels")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(4733)
    speech = speech_pool()
    streams = [make_stream(rng, speech) for _ in range(POOL)]
    results: dict[str, dict] = {}
    try:
        for channels, seconds in ((1, max(args.seconds, 60.0)), (100, args.seconds), (1000, args.seconds)):
            rounds = []
            for _ in range(args.rounds):
                r = run(channels, seconds, streams)
                check(r, seconds, STREAM_SECONDS)
                rounds.append(r)
            median = sorted(rounds, key=lambda r: r["channel_s_per_cpu_s"])[len(rounds) // 2]
            results[str(channels)] = {
                "channel_s_per_cpu_s": median["channel_s_per_cpu_s"], "p99_ms": median["p99_ms"],
                "mean_ms": median["mean_ms"], "audio_seconds": seconds,
                "digits": sum(map(len, median["heard"])),
                "rounds": [{"channel_s_per_cpu_s": r["channel_s_per_cpu_s"], "p99_ms": r["p99_ms"]} for r in rounds]}
        # Worst case: every channel holds a key nearly all the time (900 ms on, 100 ms off).
        keys = "".join(rng.choice(list(KEYS), STREAM_SECONDS))
        held = np.concatenate([np.concatenate([dtmf_tone(k, 7200, level_dbm0=-12.0), np.zeros(800)]) for k in keys])
        held = g711_round_trip(to_pcm(held))
        worst = [run(1000, min(args.seconds, 10.0), [(held, [(8000 * i, k) for i, k in enumerate(keys)])])
                 for _ in range(args.rounds)]
        results["all_keys_1000"] = {
            "p99_ms": statistics.median(w["p99_ms"] for w in worst),
            "channel_s_per_cpu_s": statistics.median(w["channel_s_per_cpu_s"] for w in worst)}
    except BenchError as exc:
        print(f"dtmf bench failed: {exc}", file=sys.stderr)
        return 1

    at_1000 = results["1000"]
    met_rate = bool(at_1000["channel_s_per_cpu_s"] >= TARGET_CHANNEL_SECONDS)
    met_p99 = bool(at_1000["p99_ms"] < TARGET_P99_MS)
    out = ROOT / "bench" / "results" / "dtmf.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "cpu": platform.processor()},
        "results": results,
        "targets": {"channel_s_per_cpu_s_at_1000": TARGET_CHANNEL_SECONDS, "p99_ms": TARGET_P99_MS,
                    "rate_met": met_rate, "p99_met": met_p99},
    }, indent=2) + "\n")
    figures = " | ".join(f"{c} ch {results[c]['channel_s_per_cpu_s']:,.0f} ch-s/CPU-s p99 {results[c]['p99_ms']:.2f} ms"
                         for c in ("1", "100", "1000"))
    print(f"dtmf: {figures} | 1000 ch all pressing keys p99 {results['all_keys_1000']['p99_ms']:.2f} ms | "
          f"targets >={TARGET_CHANNEL_SECONDS:,} ch-s/CPU-s at 1000 ch: {'met' if met_rate else 'MISSED'}, "
          f"p99 <{TARGET_P99_MS} ms: {'met' if met_p99 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
