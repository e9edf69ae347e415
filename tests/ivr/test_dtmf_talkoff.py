"""No false digits ("talk-off") from noise, speech, music or call-progress tones.

Each "hour" is 360 ten-second channels run side by side
through one BatchDetector, one 20 ms frame per channel per tick as the media loop feeds it:
3,600 channel-seconds of audio through the same code path that serves calls, in seconds of
CPU. Everything goes through a G.711 round trip, alternating μ-law and A-law.
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from ivr.dtmf import BatchDetector
from ivr.dtmf_tones import amplitude, cadenced, g711_round_trip, power_dbm0, sine, to_pcm, white_noise

ROOT = Path(__file__).resolve().parents[2]
FRAME = 160


def run_batch(streams: list[np.ndarray]) -> list[tuple[int, int, str]]:
    """Feed int16 streams to one detector tick by tick; returns (stream, second, digit)."""
    length = -(-max(len(s) for s in streams) // FRAME) * FRAME
    audio = np.zeros((len(streams), length), dtype=np.int16)
    for i, s in enumerate(streams):
        audio[i, :len(s)] = s
    detector = BatchDetector(len(streams))
    channels = np.array([detector.add_channel() for _ in streams])
    found = []
    for tick in range(length // FRAME):
        for ch, digit in detector.process(audio[:, tick * FRAME:(tick + 1) * FRAME], channels):
            found.append((int(ch), tick * FRAME // 8000, digit))
    return found


def through_g711(signals: list[np.ndarray]) -> list[np.ndarray]:
    return [g711_round_trip(to_pcm(s), ("PCMU", "PCMA")[i % 2]) for i, s in enumerate(signals)]


def at_level(signal: np.ndarray, level_dbm0: float) -> np.ndarray:
    """Scale so that the signal's active part (above 1% of its peak) has this power."""
    active = signal[np.abs(signal) > 0.01 * np.abs(signal).max()]
    return signal * 10 ** ((level_dbm0 - power_dbm0(active)) / 20)


def test_an_hour_of_noise_gives_no_digit():
    """White, pink and brown noise and clicks, 360 channels x 10 s, from -60 to 0 dBm0."""
    rng = np.random.default_rng(3)
    n = 80_000
    signals = []
    for i, level in enumerate(np.linspace(-60.0, 0.0, 360)):
        kind = i % 4
        if kind == 0:
            signal = white_noise(n, level, rng)
        elif kind in (1, 2):
            spectrum = np.fft.rfft(rng.normal(size=n))
            f = np.fft.rfftfreq(n, 1 / 8000)
            spectrum /= np.maximum(f, 20.0) ** (0.5 if kind == 1 else 1.0)     # pink, brown
            signal = np.fft.irfft(spectrum, n)
            signal *= 10 ** ((level - power_dbm0(signal)) / 20)
        else:
            signal = white_noise(n, level - 20, rng)
            clicks = rng.integers(0, n - 40, 200)
            for c in clicks:
                signal[c:c + 8] += amplitude(level) * rng.uniform(-1, 1)
        signals.append(signal)
    assert run_batch(through_g711(signals)) == []


def test_an_hour_of_speech_and_the_prompts_give_no_digit(speech_corpus):
    """24 espeak-ng voices (men, women, accents, eight languages), 150 s each, cut into
    ten-second channels at -25, -15 and -5 dBm0 active level in turn, plus every prompt in
    prompts/."""
    chunks = [voice[i:i + 80_000] for voice in speech_corpus for i in range(0, len(voice), 80_000)]
    signals = [at_level(c.astype(np.float64), (-25.0, -15.0, -5.0)[i % 3]) for i, c in enumerate(chunks)]
    total = sum(len(s) for s in signals) / 8000
    assert total >= 3400, f"only {total:.0f} s of speech"
    for path in sorted((ROOT / "prompts").glob("*.wav")):
        with wave.open(str(path)) as f:
            if f.getframerate() == 8000 and f.getnchannels() == 1 and f.getsampwidth() == 2:
                signals.append(np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float64))
    found = run_batch(through_g711(signals))
    assert found == [], f"false digits (stream, second, digit): {found}"


def test_an_hour_of_music_gives_no_digit(music_corpus):
    """360 ten-second pieces of chords and melodies with harmonics (string, clarinet, mellow,
    bright and organ timbres), at -25 to -5 dBm0 active level."""
    signals = [at_level(m, level) for m, level in zip(music_corpus, np.linspace(-25.0, -5.0, len(music_corpus)))]
    found = run_batch(through_g711(signals))
    assert found == [], f"false digits (stream, second, digit): {found}"


CALL_PROGRESS = {
    # name: (frequencies, seconds on, seconds off); (on, off) = (x, 0) is continuous
    "US dial": ((350.0, 440.0), 1.0, 0.0),
    "US ringback": ((440.0, 480.0), 2.0, 4.0),
    "US busy": ((480.0, 620.0), 0.5, 0.5),
    "US reorder": ((480.0, 620.0), 0.25, 0.25),
    "US call waiting": ((440.0,), 0.3, 9.7),
    "EU dial": ((425.0,), 1.0, 0.0),
    "EU ringback": ((425.0,), 1.0, 4.0),
    "EU busy": ((425.0,), 0.5, 0.5),
    "EU congestion": ((425.0,), 0.2, 0.3),
    "UK dial": ((350.0, 450.0), 1.0, 0.0),
    "UK ringback": ((400.0, 450.0), 0.4, 0.2),
    "Japan ringback": ((400.0,), 1.0, 2.0),
}


def test_call_progress_tones_give_no_digit():
    """Dial, ringback, busy and reorder tones of the US, Europe (425 Hz), the UK and Japan,
    and the special information tone, each for 30 s at -30, -20, -10 and -3 dBm0 per tone."""
    n = 30 * 8000
    signals = []
    for level in (-30.0, -20.0, -10.0, -3.0):
        for freqs, on, off in CALL_PROGRESS.values():
            signals.append(cadenced(freqs, on, off, n, level))
        # SIT: 913.8, 1370.6 and 1776.7 Hz for 330 ms each, then 4 s of silence.
        sit = np.concatenate([sine(f, 2640, level) for f in (913.8, 1370.6, 1776.7)] + [np.zeros(32000)])
        signals.append(np.tile(sit, n // len(sit) + 1)[:n])
    found = run_batch(through_g711(signals))
    assert found == [], f"false digits (stream, second, digit): {found}"
