"""DTMF and call-progress tone synthesis at levels in dBm0, and the G.711 round trip.

Used to play DTMF in-band and, in tests and benchmarks, to make the signals the detector
must accept or reject. Levels follow ivr.dtmf.DBM0_PEAK (0 dBm0 = 3.17 dB below a
full-scale sine, G.711 μ-law).
"""
from __future__ import annotations

import numpy as np

from ivr.dtmf import COL_HZ, DBM0_PEAK, KEYS, ROW_HZ
from sipcore import g711

__all__ = ["amplitude", "digit_frequencies", "dtmf_tone", "g711_round_trip", "sine", "to_pcm"]


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
