"""DTMF and call-progress tone synthesis at levels in dBm0, and the G.711 round trip.

Used to play DTMF in-band and, in tests and benchmarks, to make the signals the detector
must accept or reject. Levels follow ivr.dtmf.DBM0_PEAK (0 dBm0 = 3.17 dB below a
full-scale sine, G.711 μ-law).
"""
from __future__ import annotations

import numpy as np

from ivr.dtmf import COL_HZ, DBM0_PEAK, KEYS, ROW_HZ
from sipcore import g711

__all__ = ["amplitude", "cadenced", "digit_frequencies", "dtmf_tone", "g711_round_trip", "key_sequence", "power_dbm0", "sine", "to_pcm",
           "white_noise"]


def amplitude(level_dbm0: float) -> float:
    """Peak amplitude (16-bit scale) of a sine at this level."""
    return DBM0_PEAK * 10.0 ** (level_dbm0 / 20.0)


def digit_frequencies(digit: str) -> tuple[float, float]:
    index = KEYS.find(digit.upper())
    if len(digit) != 1 or index < 0:
        raise ValueError(f"not a DTMF key: {digit!r}")
    return ROW_HZ[index // 4], COL_HZ[index % 4]


def sine(freq: float, samples: int, level_dbm0: float, sample_rate: int = 8000, phase: float = 0.0) -> np.ndarray:
    n = np.arange(samples)
    return amplitude(level_dbm0) * np.sin(2.0 * np.pi * freq * n / sample_rate + phase)


def dtmf_tone(digit: str, samples: int, level_dbm0: float = -10.0, twist_db: float = 0.0,
              row_offset: float = 0.0, col_offset: float = 0.0, sample_rate: int = 8000,
              phases: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A key's two tones as float samples: the row tone at ``level_dbm0``, the column tone
    ``twist_db`` louder (negative: reverse twist), each frequency off by a relative offset."""
    row, col = digit_frequencies(digit)
    return (sine(row * (1.0 + row_offset), samples, level_dbm0, sample_rate, phases[0])
            + sine(col * (1.0 + col_offset), samples, level_dbm0 + twist_db, sample_rate, phases[1]))


def to_pcm(signal: np.ndarray) -> np.ndarray:
    """Round float samples to int16, clipping at full scale as a codec would."""
    return np.clip(np.rint(signal), -32768, 32767).astype(np.int16)


def g711_round_trip(pcm: np.ndarray, encoding: str = "PCMU") -> np.ndarray:
    """What the far end hears: int16 samples through a G.711 encoder and decoder."""
    return g711.decode(g711.encode(pcm, encoding), encoding)


def key_sequence(keys: str, on_samples: int, off_samples: int, lead_samples: int = 400, **tone) -> np.ndarray:
    """Keys pressed one after another: silence, then each key's tones and a pause. Extra
    keyword arguments go to dtmf_tone (level_dbm0, twist_db, offsets, sample_rate)."""
    parts = [np.zeros(lead_samples)]
    for key in keys:
        parts.append(dtmf_tone(key, on_samples, **tone))
        parts.append(np.zeros(off_samples))
    return np.concatenate(parts)


def white_noise(samples: int, level_dbm0: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise whose power equals that of a sine at ``level_dbm0``."""
    return rng.normal(0.0, amplitude(level_dbm0) / np.sqrt(2.0), samples)


def cadenced(freqs: tuple[float, ...], on_s: float, off_s: float, samples: int, level_dbm0: float,
             sample_rate: int = 8000) -> np.ndarray:
    """A call-progress tone: the frequencies together, each at ``level_dbm0``, switched on for
    ``on_s`` and off for ``off_s`` seconds (off_s = 0: continuous, like dial tone)."""
    signal = sum(sine(f, samples, level_dbm0, sample_rate) for f in freqs)
    if off_s:
        t = np.arange(samples) / sample_rate
        signal = signal * ((t % (on_s + off_s)) < on_s)
    return signal


def power_dbm0(signal: np.ndarray) -> float:
    """Mean power of float samples in dBm0 (a sine at L dBm0 gives L)."""
    return float(10.0 * np.log10(np.mean(np.square(signal)) / (DBM0_PEAK ** 2 / 2.0)))
