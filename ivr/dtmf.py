"""In-band DTMF detection for many channels at once, within the ITU-T Q.24 receiver limits.

`BatchDetector.process` takes one 20 ms frame per channel per tick and runs one numpy
computation over all of them; `detect_digits` runs the same computation over one stream.
Both give exactly the same digits for the same audio (see "Exactness" below).

Algorithm (docs/dtmf.md has the figures and the reasons):

1. Each 20 ms frame is cut into four 5 ms blocks; one matrix product gives every block's
   DFT at the 8 DTMF frequencies.
2. Every 5 ms the window of the last five blocks (25 ms) is judged. Block DFTs summed at
   the nominal frequencies pick the strongest row and column. The phase a tone advances
   from block to block measures its real frequency, which must lie within 2.5% of nominal
   (Q.24: operate at 1.5%, never at 3.5%). The blocks are then summed at the measured
   frequency, so a tone 1.5% off loses almost nothing, and that power is tested for
   level, twist and purity (the share of the window's energy held by the two tones).
   Windows that pass all that also have their harmonics measured (second harmonics, and a
   row's third), from the samples, at multiples of the measured frequency.
3. A window that passes is a hit for one key. Three hits in a row start a digit (a 40 ms
   tone always fills three windows, a 23 ms tone gives at most two hits); eight windows
   without the key end it (a 10 ms break costs at most seven, a 40 ms pause at least ten).

Exactness: block DFTs are computed in float64 from int16 samples and a basis rounded to
integers, so every product and sum is an exact integer whatever order BLAS adds in; the
rest is elementwise float32 arithmetic (+, -, *, /, sqrt, comparisons), which IEEE rounding
makes independent of array shape. A channel's digits therefore do not depend on which
other channels share its batch, nor on how its audio is cut into calls.
"""
from __future__ import annotations

import ctypes
import glob
import os
import platform
import threading
from collections.abc import Callable

import numpy as np

from ivr.dtmf_events import DtmfDeduplicator, Rfc4733Receiver, SipInfoDtmf, SipInfoDtmfError

__all__ = [
    "BatchDetector", "COL_HZ", "DBM0_PEAK", "DtmfDeduplicator", "KEYS", "ROW_HZ", "Rfc4733Receiver",
    "SipInfoDtmf", "SipInfoDtmfError", "detect_digits",
]

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
ONSET_HITS = 3                 # a 40 ms tone fills 3 windows; 23 ms gives at most 2 hits
RELEASE_MISSES = 8             # a 10 ms break costs at most 7 windows, a 40 ms pause 10

_FREQS = np.array(ROW_HZ + COL_HZ)
# Second harmonics of all eight, then the rows' third harmonics (a column's third
# harmonic is at or above 3.6 kHz, where G.711's band ends).
_HARMONIC_FREQS = np.concatenate([2.0 * _FREQS, 3.0 * _FREQS[:4]])
_NH = len(_HARMONIC_FREQS)
# The DFT basis is rounded to integers at this scale; the products are scaled back by an
# exact power of two so that squares of spectra stay well inside float32's range.
_BASIS_SCALE = 32767.0
_UNSCALE = 2.0 ** -15
_RUN_CAP = 127
_STREAM_SEGMENT = 256          # blocks per segment when one stream is analysed at once

# Positions among a call's k channels (sorted, distinct) -> the harmonic spectra of those
# channels' blocks, (24, n, len(positions)), as blocks() computes them.
HarmonicSpectra = Callable[[np.ndarray], np.ndarray]


def _db(value: float) -> float:
    return 10.0 ** (value / 10.0)


_heap_kept = False


def _keep_freed_heap() -> None:
    """Stop glibc from handing freed heap back to the kernel after every tick.

    Each tick allocates and frees megabytes of numpy temporaries. By default glibc trims
    the heap whenever more than 128 kB at its top is free, so the next tick takes every page
    back through a page fault: at 1,000 channels that was 60% of the tick. Keeping the
    memory (and serving these sizes from the heap, not mmap) costs only the peak's RSS.
    """
    global _heap_kept
    if _heap_kept or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    _heap_kept = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 256 << 20)     # M_TRIM_THRESHOLD
        libc.mallopt(-3, 32 << 20)      # M_MMAP_THRESHOLD (its largest allowed value)
    except (OSError, AttributeError):
        pass


_blas_thread = threading.local()
_blas_threads_local = None


def _single_threaded_blas() -> None:
    """Make numpy's OpenBLAS run this thread's matrix products on one core.

    OpenBLAS splits a product as small as a tick's (16 x 40 by 40 x 4,000) across all cores;
    the threads spin while waiting, which cost four times the CPU of doing it on one core and
    makes tick times depend on what else the machine runs. The setting is per thread
    (openblas_set_num_threads_local, OpenBLAS 0.3.27+) and applied once per thread.
    """
    global _blas_threads_local
    if getattr(_blas_thread, "done", False):
        return
    _blas_thread.done = True
    if _blas_threads_local is None:
        _blas_threads_local = False
        libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "lib*openblas*.so*"))
        for path in libs:
            try:
                function = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
            _blas_threads_local = function
            break
    if _blas_threads_local:
        _blas_threads_local(1)


class BatchDetector:
    """DTMF detection for up to `max_channels` streams, one 20 ms frame each per tick.

    ``process(frames, channels)`` takes ``frames`` of shape (k, frame_samples) int16 for the
    k distinct channel ids in ``channels`` (ids from ``add_channel``) and returns the
    ``(channel, digit)`` pairs recognised in that tick, in channel order. A channel left out
    of a tick does not advance: its audio is the concatenation of the frames given for it.
    Passing the channels as a run of consecutive ids (as add_channel hands them out) is the
    fast case; any other order works.
    """

    def __init__(self, max_channels: int, sample_rate: int = 8000) -> None:
        if isinstance(max_channels, bool) or not isinstance(max_channels, int) or max_channels < 1:
            raise ValueError(f"max_channels must be a positive integer, got {max_channels!r}")
        if (isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000
                or sample_rate % (1000 // BLOCK_MS)):
            raise ValueError(
                f"sample_rate must be an integer of at least 8000 divisible by {1000 // BLOCK_MS}, "
                f"got {sample_rate!r}")
        _keep_freed_heap()
        self.max_channels = max_channels
        self.sample_rate = sample_rate
        self.block_samples = sample_rate * BLOCK_MS // 1000
        self.frame_samples = sample_rate * FRAME_MS // 1000
        self.blocks_per_frame = FRAME_MS // BLOCK_MS
        self._analysis = _Analysis(sample_rate, self.block_samples)
        # Per channel, channels last so that every numpy operation runs along a contiguous
        # row of channels: the last four blocks' DFTs and energies; their samples and, when
        # they were needed in the last tick, their harmonics' DFTs (computed only for windows
        # that pass every other test); the digit tracker.
        self._spectra = np.zeros((16, HISTORY_BLOCKS, max_channels), dtype=np.float32)
        self._energy = np.zeros((HISTORY_BLOCKS, max_channels), dtype=np.float32)
        self._samples = np.zeros((max_channels, HISTORY_BLOCKS * self.block_samples), dtype=np.int16)
        self._harmonics = np.zeros((2 * _NH, HISTORY_BLOCKS, max_channels), dtype=np.float32)
        self._harmonics_kept = np.zeros(max_channels, dtype=bool)
        self._tracker = _Tracker(max_channels)
        self._allocated = np.zeros(max_channels, dtype=bool)
        self._free = list(range(max_channels - 1, -1, -1))

    # -- channels ---------------------------------------------------------------------------
    def add_channel(self) -> int:
        """Allocate a channel id (the lowest free one) with fresh state."""
        if not self._free:
            raise RuntimeError(f"all {self.max_channels} DTMF detector channels are in use")
        ch = self._free.pop()
        self._spectra[..., ch] = 0.0
        self._energy[:, ch] = 0.0
        self._samples[ch] = 0
        self._harmonics_kept[ch] = False
        self._tracker.reset(ch)
        self._allocated[ch] = True
        return ch

    def remove_channel(self, ch: int) -> None:
        self._require(ch)
        self._allocated[ch] = False
        self._free.append(int(ch))
        self._free.sort(reverse=True)

    @property
    def active_channels(self) -> int:
        return int(self._allocated.sum())

    # -- audio ------------------------------------------------------------------------------
    def process(self, frames: np.ndarray, channels: np.ndarray) -> list[tuple[int, str]]:
        _single_threaded_blas()
        frames, channels, where = self._check(frames, channels)
        if len(channels) == 0:
            return []
        spectra, energy = self._analysis.blocks(frames, self.blocks_per_frame)
        spectra = np.concatenate([self._spectra[..., where], spectra], axis=1)
        energy = np.concatenate([self._energy[:, where], energy], axis=0)
        self._spectra[..., where] = spectra[:, -HISTORY_BLOCKS:]
        self._energy[:, where] = energy[-HISTORY_BLOCKS:]
        ids = np.arange(where.start, where.stop) if isinstance(where, slice) else where
        kept = self._harmonics_kept[where].copy()
        self._harmonics_kept[where] = False      # unless computed again in this tick

        def harmonic_spectra(positions: np.ndarray) -> np.ndarray:
            chosen = ids[positions]
            new = self._analysis.blocks(frames[positions], self.blocks_per_frame, harmonics=True)
            old = self._harmonics[..., chosen]
            stale = np.flatnonzero(~kept[positions])
            if stale.size:
                old[..., stale] = self._analysis.blocks(self._samples[chosen[stale]], HISTORY_BLOCKS, harmonics=True)
            self._harmonics[..., chosen] = new[:, -HISTORY_BLOCKS:]
            self._harmonics_kept[chosen] = True
            return np.concatenate([old, new], axis=1)

        hits = self._analysis.hits(spectra, energy, harmonic_spectra)
        self._samples[where] = frames[:, -self._samples.shape[1]:]
        return [(int(channels[i]), KEYS[code]) for _, i, code in self._tracker.run(where, hits)]

    def feed_stream(self, ch: int, pcm: np.ndarray) -> list[str]:
        """Feed a whole stretch of audio (a multiple of the frame length) to one channel.

        Gives what calling ``process`` once per frame would, computed over all the frames at
        once: the stream is cut into segments that are analysed side by side as if they were
        channels, each starting with the four blocks before it. ``detect_digits`` uses this.
        """
        _single_threaded_blas()
        self._require(ch)
        pcm = _as_pcm(pcm, "pcm")
        if pcm.ndim != 1 or len(pcm) % self.frame_samples:
            raise ValueError(f"pcm must be 1-D with a multiple of {self.frame_samples} samples, "
                             f"got shape {pcm.shape}")
        block, seg = self.block_samples, _STREAM_SEGMENT
        history = len(self._samples[ch])
        self._harmonics_kept[ch] = False
        digits: list[str] = []
        for start in range(0, len(pcm), self.frame_samples * 3000):    # a minute at a time
            part = pcm[start:start + self.frame_samples * 3000]
            n = len(part) // block                                     # windows to judge
            count = -(-n // seg)
            samples = np.zeros(history + count * seg * block, dtype=np.int16)
            samples[:history] = self._samples[ch]
            samples[history:history + len(part)] = part
            self._samples[ch] = samples[history + len(part) - history:history + len(part)]
            spectra, energy = self._analysis.blocks(samples[None], len(samples) // block)
            self._spectra[..., ch] = spectra[:, history // block + n - HISTORY_BLOCKS:history // block + n, 0]
            self._energy[:, ch] = energy[history // block + n - HISTORY_BLOCKS:history // block + n, 0]
            index = np.arange(seg + HISTORY_BLOCKS)[:, None] + seg * np.arange(count)[None, :]
            segments = np.lib.stride_tricks.sliding_window_view(samples, (seg + HISTORY_BLOCKS) * block)
            segments = segments[::seg * block]

            def harmonic_spectra(positions: np.ndarray, segments=segments) -> np.ndarray:
                return self._analysis.blocks(segments[positions], seg + HISTORY_BLOCKS, harmonics=True)

            hits = self._analysis.hits(spectra[:, index, 0], energy[index, 0], harmonic_spectra)   # (seg, count)
            hits = hits.T.reshape(-1)[:n]
            found = self._tracker.run(np.array([ch]), _squeeze_idle(hits)[:, None])
            digits.extend(KEYS[code] for _, _, code in found)
        return digits

    def _require(self, ch) -> None:
        if not (isinstance(ch, (int, np.integer)) and 0 <= ch < self.max_channels and self._allocated[ch]):
            raise ValueError(f"channel {ch!r} is not allocated")

    def _check(self, frames, channels) -> tuple[np.ndarray, np.ndarray, slice | np.ndarray]:
        """Validated frames and channel ids, and how to index the channels' state: a slice
        when they are a run of consecutive ids (the usual case), else the ids themselves."""
        frames = _as_pcm(frames, "frames")
        channels = np.asarray(channels)
        if channels.ndim != 1 or (channels.size and not np.issubdtype(channels.dtype, np.integer)):
            raise ValueError(f"channels must be a 1-D array of channel ids, got {channels.dtype} "
                             f"shape {channels.shape}")
        if frames.ndim != 2 or frames.shape != (len(channels), self.frame_samples):
            raise ValueError(f"frames must have shape ({len(channels)}, {self.frame_samples}) for "
                             f"{len(channels)} channels, got {frames.shape}")
        if not channels.size:
            return frames, channels, channels
        channels = channels.astype(np.intp, copy=False)
        first, last = int(channels[0]), int(channels[-1])
        if last - first == len(channels) - 1 and (len(channels) == 1 or bool(np.all(np.diff(channels) == 1))):
            if first < 0 or last >= self.max_channels:
                raise ValueError(f"channel ids must be in 0..{self.max_channels - 1}")
            where: slice | np.ndarray = slice(first, last + 1)
        else:
            if channels.min() < 0 or channels.max() >= self.max_channels:
                raise ValueError(f"channel ids must be in 0..{self.max_channels - 1}")
            if np.bincount(channels).max() > 1:
                raise ValueError("a channel id appears twice in one tick")
            where = channels
        if not self._allocated[where].all():
            missing = sorted(set(channels[~self._allocated[channels]].tolist()))
            shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ValueError(f"channels {shown} are not allocated")
        return frames, channels, where


def detect_digits(pcm: np.ndarray, sample_rate: int = 8000) -> str:
    """The digits in one stream of int16 samples (padded with silence to whole frames)."""
    detector = BatchDetector(1, sample_rate)
    pcm = _as_pcm(pcm, "pcm")
    if pcm.ndim != 1:
        raise ValueError(f"pcm must be 1-D, got shape {pcm.shape}")
    tail = -len(pcm) % detector.frame_samples
    if tail:
        pcm = np.concatenate([pcm, np.zeros(tail, dtype=np.int16)])
    return "".join(detector.feed_stream(detector.add_channel(), pcm))


def _as_pcm(data, name: str) -> np.ndarray:
    array = np.asarray(data)
    if array.dtype != np.int16:
        raise TypeError(f"{name} must be int16 samples, got {array.dtype}")
    return array


def _squeeze_idle(hits: np.ndarray) -> np.ndarray:
    """Shorten runs of no-hit windows in one channel's verdicts to RELEASE_MISSES + 1.

    After that many misses the tracker is idle whatever came before, and further misses
    leave it unchanged, so the digits are the same; silence and noise then cost nothing.
    """
    keep = RELEASE_MISSES + 1
    if len(hits) <= keep:
        return hits
    miss = hits < 0
    idx = np.arange(len(hits))
    last_hit = np.maximum.accumulate(np.where(miss, -1, idx))
    return hits[~miss | (idx - last_hit <= keep)]


class _Analysis:
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

    def blocks(self, frames: np.ndarray, blocks: int, harmonics: bool = False):
        """(k, blocks * block) int16 -> (16, blocks, k) float32 DFTs and (blocks, k) float32
        energies; with harmonics, only the (24, blocks, k) DFTs of the harmonics. Computed in
        float64 from integers, so every sum is exact."""
        basis = self.harmonic_basis if harmonics else self.basis
        k = frames.shape[0]
        x = frames.reshape(k * blocks, self.block).astype(np.float64)
        # BLAS reads x transposed in place; the (channel, block) columns of the product are
        # put channels-last while scaling to float32, on 16 or 24 rows rather than 40 samples.
        product = (basis @ x.T).reshape(len(basis), k, blocks).transpose(0, 2, 1)
        spectra = np.empty((len(basis), blocks, k), dtype=np.float32)
        np.multiply(product, _UNSCALE, out=spectra, casting="same_kind")
        if harmonics:
            return spectra
        energy = np.einsum("ij,ij->i", x, x).astype(np.float32).reshape(k, blocks).T
        return spectra, np.ascontiguousarray(energy)

    def hits(self, spectra: np.ndarray, energy: np.ndarray, harmonic_spectra: HarmonicSpectra) -> np.ndarray:
        """Verdicts for every full window: (16, n, k) and (n, k) -> (n - 4, k) int8 key or -1.

        Channels too quiet in all their windows to hold a tone at the minimum level are
        skipped (a caller listening to a prompt is mostly silent). Harmonics are measured only
        in the windows that pass every other test (in speech, music and silence, few), from
        the spectra ``harmonic_spectra`` gives for their channels.
        """
        n, k = spectra.shape[1:]
        w = n - WINDOW_BLOCKS + 1
        window_energy = energy[0:w]
        for lag in range(1, WINDOW_BLOCKS):
            window_energy = window_energy + energy[lag:lag + w]
        verdict = np.full((w, k), -1, dtype=np.int8)
        loud = np.flatnonzero((window_energy >= self.audible).any(axis=0))
        if loud.size == 0:
            return verdict
        if loud.size < k:
            spectra, window_energy = np.take(spectra, loud, axis=2), np.take(window_energy, loud, axis=1)
            all_channels = harmonic_spectra

            def harmonic_spectra(positions: np.ndarray) -> np.ndarray:
                return all_channels(loud[positions])

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
        verdict[:, loud] = np.where(hit, key, -1)
        return verdict

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


class _Tracker:
    """Turns each channel's window verdicts into key presses (the timing rules of Q.24)."""

    def __init__(self, max_channels: int) -> None:
        self.prev = np.full(max_channels, -1, dtype=np.int8)    # last window's verdict
        self.length = np.zeros(max_channels, dtype=np.int16)    # windows in a row with that key
        self.key = np.full(max_channels, -1, dtype=np.int8)     # the key being pressed, or -1
        self.miss = np.zeros(max_channels, dtype=np.int16)      # windows since it was last seen

    def reset(self, ch: int) -> None:
        self.prev[ch] = -1
        self.length[ch] = 0
        self.key[ch] = -1
        self.miss[ch] = 0

    def run(self, where: slice | np.ndarray, hits: np.ndarray) -> list[tuple[int, int, int]]:
        """Advance the channels at ``where`` over hits (n, k); returns (window, index, key)
        for each press that starts, index being the position in the k channels."""
        ids = np.arange(where.start, where.stop) if isinstance(where, slice) else np.asarray(where)
        # A channel with no hit and no key held ends up at rest whatever its state was;
        # only the others (a few, usually) are stepped through the windows.
        busy = (hits >= 0).any(axis=0) | (self.key[ids] >= 0)
        resting = ids[~busy]
        self.prev[resting], self.length[resting], self.key[resting], self.miss[resting] = -1, 0, -1, 0
        positions = np.flatnonzero(busy)
        if not positions.size:
            return []
        ids, hits = ids[positions], hits[:, positions]
        prev, run, key, miss = self.prev[ids], self.length[ids], self.key[ids], self.miss[ids]
        out: list[tuple[int, int, int]] = []
        for t in range(hits.shape[0]):
            h = hits[t]
            seen = h >= 0
            run = np.where(seen & (h == prev), np.minimum(run + 1, _RUN_CAP), seen)
            prev = h
            held = h == key
            miss = np.where(held, 0, np.minimum(miss + 1, RELEASE_MISSES))
            key = np.where(miss >= RELEASE_MISSES, -1, key)
            pressed = (run >= ONSET_HITS) & ~held
            if pressed.any():
                key = np.where(pressed, h, key)
                miss = np.where(pressed, 0, miss)
                out.extend((t, int(positions[i]), int(h[i])) for i in np.flatnonzero(pressed))
        self.prev[ids], self.length[ids], self.key[ids], self.miss[ids] = prev, run, key, miss
        return out
