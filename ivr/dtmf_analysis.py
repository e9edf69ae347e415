"""The signal analysis of the in-band DTMF detector: block DFTs, and the verdict on each
25 ms window (which key, or none). ivr.dtmf builds the batch and stream detectors on it;
docs/dtmf.md explains the method and the thresholds.

Arrays put channels last, so that every numpy operation runs along a contiguous row of
channels. Block DFTs are computed exactly (float64 products of int16 samples and an
integer basis); everything after is elementwise float32, so a window's verdict does not
depend on what else is in the batch.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["COL_HZ", "DBM0_PEAK", "KEYS", "ROW_HZ", "WindowAnalysis"]

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = "123A456B789C*0#D"          # KEYS[row * 4 + col]

# G.711 (11/88) Tables 1a and 2a: the largest sine a μ-law codec carries is +3.17 dBm0
# (A-law +3.14 dBm0), so 0 dBm0 is a sine 3.17 dB below a full-scale 16-bit sine.
DBM0_PEAK = 32768.0 * 10.0 ** (-3.17 / 20.0)

BLOCK_MS = 5
FRAME_MS = 20
WINDOW_BLOCKS = 5
HISTORY_BLOCKS = WINDOW_BLOCKS - 1

# Receiver thresholds; docs/dtmf.md explains each choice against the Q.24 limits.
MIN_TONE_DBM0 = -40.0          # operate to -25 dBm0, never at -55 dBm0
FREQ_TOLERANCE = 0.025         # operate within 1.5%, never at 3.5%
NORMAL_TWIST_DB = 10.0         # column louder than row: operate at 8 dB
REVERSE_TWIST_DB = 6.0         # row louder than column: operate at 4 dB
PURITY = 0.80                  # share of the window's energy in the two tones
ROW_HARMONIC_DB = -8.0         # a row's second harmonic, relative to the louder tone
COL_HARMONIC_DB = -12.0        # a column's second harmonic, relative to that column
ROW_THIRD_HARMONIC_DB = -15.0  # a row's third harmonic, relative to the louder tone
OCTAVE_HZ = 8.0                # 2, 6, C: how near twice the row the column may not be

_FREQS = np.array(ROW_HZ + COL_HZ)
# Second harmonics of all eight, then the rows' third harmonics (a column's third
# harmonic is at or above 3.6 kHz, where G.711's band ends).
_HARMONIC_FREQS = np.concatenate([2.0 * _FREQS, 3.0 * _FREQS[:4]])
_NH = len(_HARMONIC_FREQS)
# The DFT basis is rounded to integers at this scale; the products are scaled back by an
# exact power of two so that squares of spectra stay well inside float32's range.
_BASIS_SCALE = 32767.0
_UNSCALE = 2.0 ** -15

# Positions among a call's k channels (sorted, distinct) -> the harmonic spectra of those
# channels' blocks, (24, n, len(positions)), as WindowAnalysis.dft computes them.
HarmonicSpectra = Callable[[np.ndarray], np.ndarray]



def _db(value: float) -> float:
    return 10.0 ** (value / 10.0)


class WindowAnalysis:
    """Block spectra and the per-window verdicts; shared by the batch and stream paths.

    Arrays put channels last. Spectra are (16, blocks, channels): the real parts of the 8
    DFTs, then the imaginary parts; energies are (blocks, channels); verdicts (windows,
    channels). In between, complex values are (2, ...) arrays, real part first, so that each
    step of complex arithmetic is a few numpy operations over both parts at once.
    """

    def __init__(self, sample_rate: int, block: int) -> None:
        self.block = block
        self.basis = _basis(_FREQS, block, sample_rate)              # (16, block)
        self.harmonic_basis = _basis(_HARMONIC_FREQS, block, sample_rate)   # (24, block)
        step = 2.0 * np.pi * _FREQS * block / sample_rate           # phase advance per block
        column = (slice(None), None, None)                          # broadcast over (blocks, channels)
        self.c1 = _rotation(np.cos(step).astype(np.float32)[column], np.sin(step).astype(np.float32)[column])
        self.c2 = _rotation(np.cos(2 * step).astype(np.float32)[column],
                            np.sin(2 * step).astype(np.float32)[column])
        self.c1_flat = (np.cos(step).astype(np.float32), np.sin(step).astype(np.float32))
        # Largest phase error per block allowed by the frequency tolerance, as a cosine.
        self.cos_tolerance_flat = np.cos(2.0 * np.pi * FREQ_TOLERANCE * _FREQS * block / sample_rate
                                         ).astype(np.float32)
        half_window = WINDOW_BLOCKS * block / 2.0          # |DFT| of a sine of amplitude A is A * N / 2
        gain = _BASIS_SCALE * _UNSCALE
        min_amplitude = DBM0_PEAK * 10.0 ** (MIN_TONE_DBM0 / 20.0)
        self.level = np.float32((min_amplitude * half_window * gain) ** 2)
        self.purity = np.float32(PURITY * half_window * gain ** 2)
        # A tone's power in a window of N samples is at most N times the window's energy
        # (Cauchy-Schwarz), so a window with less than level / N energy cannot hold a key;
        # half of that leaves room for rounding.
        self.audible = np.float32(0.5 * self.level / (2 * half_window))
        self.normal_twist = np.float32(_db(NORMAL_TWIST_DB))
        self.reverse_twist = np.float32(_db(REVERSE_TWIST_DB))
        self.row_harmonic = np.float32(_db(ROW_HARMONIC_DB))
        self.col_harmonic = np.float32(_db(COL_HARMONIC_DB))
        self.row_third = np.float32(_db(ROW_THIRD_HARMONIC_DB))
        # For 2, 6 and C the column tone lies within 71 Hz of the row's second harmonic, so
        # that harmonic cannot be measured apart from the column. Instead the column must not
        # be at twice the row's frequency (within 8 Hz; a real key within 1.5% is at least
        # 17 Hz away), which is what one note with a strong second harmonic looks like.
        second = 2.0 * np.repeat(np.array(ROW_HZ), 4)
        self.row_second_tested = np.abs(second - np.tile(np.array(COL_HZ), 4)) > 75.0
        self.cos_octave = np.float32(np.cos(2.0 * np.pi * OCTAVE_HZ * block / sample_rate))

    def samples(self, frames: np.ndarray, blocks: int) -> np.ndarray:
        """(k, blocks * block) int16 (or such samples already in float64) -> (k * blocks, block)
        float64, one row per block."""
        return frames.reshape(frames.shape[0] * blocks, self.block).astype(np.float64, copy=False)

    def energies(self, x: np.ndarray, k: int, blocks: int) -> np.ndarray:
        """Each block's energy, (blocks, k) float32, from samples(); exact (integer sums)."""
        return np.ascontiguousarray(np.einsum("ij,ij->i", x, x).astype(np.float32).reshape(k, blocks).T)

    def dft(self, frames: np.ndarray, blocks: int, harmonics: bool = False) -> np.ndarray:
        """(k, blocks * block) int16 -> (16, blocks, k) float32 DFTs of the 8 tones, or with
        harmonics (24, blocks, k) of their harmonics. Computed in float64 from integers, so
        every sum is exact and a block's DFT is the same however it is batched."""
        basis = self.harmonic_basis if harmonics else self.basis
        k = frames.shape[0]
        x = self.samples(frames, blocks)
        # BLAS reads x transposed in place; the (channel, block) columns of the product are
        # put channels-last while scaling to float32, on 16 or 24 rows rather than 40 samples.
        product = (basis @ x.T).reshape(len(basis), k, blocks).transpose(0, 2, 1)
        spectra = np.empty((len(basis), blocks, k), dtype=np.float32)
        np.multiply(product, _UNSCALE, out=spectra, casting="same_kind")
        return spectra

    @staticmethod
    def window_energy(energy: np.ndarray) -> np.ndarray:
        """(n, k) block energies -> (n - 4, k) energies of the five-block windows."""
        w = energy.shape[0] - WINDOW_BLOCKS + 1
        total = energy[0:w]
        for lag in range(1, WINDOW_BLOCKS):
            total = total + energy[lag:lag + w]
        return total

    def loud(self, window_energy: np.ndarray) -> np.ndarray:
        """Positions of the channels with a window loud enough to hold a key."""
        return np.flatnonzero((window_energy >= self.audible).any(axis=0))

    def hits(self, spectra: np.ndarray, energy: np.ndarray, harmonic_spectra: HarmonicSpectra) -> np.ndarray:
        """Verdicts for every full window: (16, n, k) and (n, k) -> (n - 4, k) int8 key or -1."""
        window_energy = self.window_energy(energy)
        verdict = np.full(window_energy.shape, -1, dtype=np.int8)
        loud = self.loud(window_energy)
        if loud.size:
            verdict[:, loud] = self.judge(np.take(spectra, loud, axis=2), np.take(window_energy, loud, axis=1),
                                          lambda positions: harmonic_spectra(loud[positions]))
        return verdict

    def judge(self, spectra: np.ndarray, window_energy: np.ndarray, harmonic_spectra: HarmonicSpectra
              ) -> np.ndarray:
        """Verdicts (w, k) from spectra (16, w + 4, k) and window energies (w, k).

        Only channels loud enough to hold a key need judging (a caller listening to a prompt
        is mostly silent). Harmonics are measured only in the windows that pass every other
        test (in speech, music and silence, few), from the spectra ``harmonic_spectra`` gives
        for their channels.
        """
        m = self.measure(spectra, window_energy)
        p_row, p_col = m["p_row"], m["p_col"]
        key = m["row"] * 4 + m["col"]
        hit = (m["ok_row"] & m["ok_col"]
               & (p_row >= self.level) & (p_col >= self.level)
               & (p_col <= p_row * self.normal_twist) & (p_row <= p_col * self.reverse_twist)
               & (p_row + p_col >= self.purity * window_energy))
        cells = np.flatnonzero(hit)
        if cells.size:
            second_row, second_col, third_row, octave = self.harmonics(m, cells, harmonic_spectra)
            p_row, p_col, cell_key = p_row.reshape(-1)[cells], p_col.reshape(-1)[cells], key.reshape(-1)[cells]
            louder = np.maximum(p_row, p_col)
            separate = self.row_second_tested[cell_key]
            clean = (np.where(separate, second_row <= self.row_harmonic * louder, octave < self.cos_octave)
                     & (second_col <= self.col_harmonic * p_col)
                     & (third_row <= self.row_third * louder))
            hit.reshape(-1)[cells[~clean]] = False
        return np.where(hit, key, -1)

    def measure(self, spectra: np.ndarray, window_energy: np.ndarray) -> dict[str, np.ndarray]:
        """Per window (w = n - 4 of them, by k channels; window_energy is (w, k)): the
        strongest row and column, their power at the measured frequency, whether that
        frequency is within tolerance, and their measured phase step per block (the powers on
        the scale of the energies, so that the thresholds compare them directly)."""
        n, k = spectra.shape[1:]
        w = n - WINDOW_BLOCKS + 1
        x = spectra.reshape(2, 8, n, k)
        # Coherent sums at the nominal frequencies, each block rotated by the phase a
        # nominal tone advances per block: pairs P, then fours W4; the last four blocks of
        # each window pick its strongest row and column.
        p = x[:, :, 1:] + _rotate(x[:, :, :-1], self.c1)             # (2, 8, n - 1, k)
        w4 = p[:, :, 2:] + _rotate(p[:, :, :-2], self.c2)            # (2, 8, n - 3, k)
        nominal = _power(w4[:, :, 1:])                               # (8, w, k)
        row, col = _strongest(nominal[0:4]), _strongest(nominal[4:8])
        # From here on only those two tones of each window: (2 parts, 2 tones, w, k).
        tone = np.stack([row, col + 4])
        cell = np.arange(w * k).reshape(w, k)                        # window j, channel c: j * k + c

        def pick(a: np.ndarray, offsets: range) -> np.ndarray:
            """a[:, tone, j + offset, c] for each offset: (2, len(offsets), 2, w, k)."""
            base = tone * (a.shape[2] * k) + cell
            at = base[None] + (np.array(offsets) * k)[:, None, None, None]
            return a.reshape(-1).take(np.stack([at, at + a[0].size]))

        cr, ci = self.c1_flat[0][tone], self.c1_flat[1][tone]
        c1 = _rotation(cr, ci)
        # Phase advance per block, measured between the window's first and last four blocks
        # weighted 1, 2, 2, 1 (a 2-block window convolved with a 3-block one): its sidelobes
        # are low enough that a loud tone of the other group hardly moves a quiet tone's phase.
        w4s, ps = pick(w4, range(2)), pick(p, range(1, 3))
        t_old = w4s[:, 0] + _rotate(ps[:, 0], c1)                     # blocks j .. j + 3
        t_new = w4s[:, 1] + _rotate(ps[:, 1], c1)                     # blocks j + 1 .. j + 4
        z = _rotate(t_new, _rotation(t_old[0], -t_old[1]))           # t_new * conj(t_old)
        zabs = np.sqrt(_power(z))
        on_frequency = (z[0] * cr + z[1] * ci) >= self.cos_tolerance_flat[tone] * zabs
        u = z / np.where(zabs > 0, zabs, np.float32(1.0))

        # The whole window summed again, each block rotated by the measured phase step (Horner).
        xs = pick(x, range(WINDOW_BLOCKS))
        by = _rotation(u[0], u[1])
        s = xs[:, 0]
        for lag in range(1, WINDOW_BLOCKS):
            s = xs[:, lag] + _rotate(s, by)
        measured = _power(s)                                         # (2, w, k)
        return {"row": row, "col": col, "p_row": measured[0], "p_col": measured[1],
                "ok_row": on_frequency[0], "ok_col": on_frequency[1], "u": u, "z": z}

    def harmonics(self, m: dict[str, np.ndarray], cells: np.ndarray, harmonic_spectra: HarmonicSpectra
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Power of the chosen row's second and third and the chosen column's second harmonic
        in the given flat (window, channel) cells, summed over the window at h times the
        measured frequency (a harmonic advances h times its fundamental's phase per block);
        and the cosine of the angle between the column's phase step and twice the row's
        (near 1 when the column is at twice the row's frequency)."""
        w, k = m["row"].shape
        t, ch = np.divmod(cells, k)
        involved = np.zeros(k, dtype=bool)
        involved[ch] = True
        channels = np.flatnonzero(involved)
        position = (np.cumsum(involved) - 1)[ch]
        h = harmonic_spectra(channels)                                # (24, n, c)
        n = h.shape[1]
        row, col = m["row"].reshape(-1)[cells], m["col"].reshape(-1)[cells]
        u = m["u"].reshape(2, 2, -1)
        u_row, u_col = u[:, 0, cells], u[:, 1, cells]
        u2_row = _rotate(u_row, _rotation(u_row[0], u_row[1]))
        u2_col = _rotate(u_col, _rotation(u_col[0], u_col[1]))
        u3_row = _rotate(u2_row, _rotation(u_row[0], u_row[1]))
        u3 = np.stack([u2_row, u2_col, u3_row], axis=1)               # (2, 3, C)
        band = np.stack([row, 4 + col, 8 + row])                      # rows of the harmonic basis
        c = len(channels)
        at = (band * (n * c) + t * c + position)[None] + (np.arange(WINDOW_BLOCKS) * c)[:, None, None]
        flat = h.reshape(-1)
        x = np.stack([flat.take(at), flat.take(at + _NH * n * c)])    # (2, lag, 3, C)
        s = x[:, 0]
        rotation = _rotation(u3[0], u3[1])
        for lag in range(1, WINDOW_BLOCKS):
            s = x[:, lag] + _rotate(s, rotation)
        power = _power(s)
        octave = u_col[0] * u2_row[0] + u_col[1] * u2_row[1]
        return power[0], power[1], power[2], octave


def _basis(freqs: np.ndarray, block: int, sample_rate: int) -> np.ndarray:
    """DFT rows for X = sum x e^{-jwn}: cos rows, then -sin rows, rounded to integers so
    that products with int16 samples are exact in float64."""
    phase = 2.0 * np.pi * np.outer(freqs, np.arange(block)) / sample_rate
    return np.round(np.concatenate([np.cos(phase), -np.sin(phase)]) * _BASIS_SCALE)


def _rotation(re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A complex multiplier in the form _rotate wants: (re, [-im, im])."""
    return re, np.stack([-im, im])


def _rotate(a: np.ndarray, by: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """a * by for complex a stored as (2, ...): (ar*re - ai*im, ai*re + ar*im)."""
    re, im = by
    return a * re + a[::-1] * im


def _power(a: np.ndarray) -> np.ndarray:
    return a[0] * a[0] + a[1] * a[1]


def _strongest(power: np.ndarray) -> np.ndarray:
    """Index of the largest of four, (4, w, k) -> (w, k); the first on ties, as argmax."""
    second = power[1] > power[0]
    fourth = power[3] > power[2]
    low, high = np.maximum(power[0], power[1]), np.maximum(power[2], power[3])
    return np.where(high > low, 2 + fourth, second).astype(np.intp)
