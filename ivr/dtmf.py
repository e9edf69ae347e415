"""In-band DTMF detection for many channels at once, within the ITU-T Q.24 receiver limits.

`BatchDetector.process` takes one 20 ms frame per channel per tick and runs one numpy
computation over all of them; `detect_digits` runs the same computation over one stream.
Both give exactly the same digits for the same audio (see "Exactness" below).

Algorithm (docs/dtmf.md has the figures and the reasons):

1. Each 20 ms frame is cut into four 5 ms blocks; one matrix product gives every block's
   DFT at the 8 DTMF frequencies (only for channels loud enough to hold a tone at the
   minimum level: a caller listening to a prompt is mostly silent).
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

from ivr.dtmf_analysis import (
    BLOCK_MS,
    COL_HZ,
    DBM0_PEAK,
    FRAME_MS,
    HISTORY_BLOCKS,
    KEYS,
    ROW_HZ,
    WindowAnalysis,
)
from ivr.dtmf_events import DtmfDeduplicator, Rfc4733Receiver, SipInfoDtmf, SipInfoDtmfError

__all__ = [
    "BatchDetector", "COL_HZ", "DBM0_PEAK", "DtmfDeduplicator", "KEYS", "ROW_HZ", "Rfc4733Receiver",
    "SipInfoDtmf", "SipInfoDtmfError", "detect_digits",
]

# Timing rules (docs/dtmf.md): windows are judged every 5 ms.
ONSET_HITS = 3                 # a 40 ms tone fills 3 windows; 23 ms gives at most 2 hits
RELEASE_MISSES = 8             # a 10 ms break costs at most 7 windows, a 40 ms pause 10
_RUN_CAP = 127
_STREAM_SEGMENT = 256          # blocks per segment when one stream is analysed at once

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
        self._analysis = WindowAnalysis(sample_rate, self.block_samples)
        # Per channel, channels last so that every numpy operation runs along a contiguous
        # row of channels: the last four blocks' energies and samples and, when the last tick
        # needed them, their DFTs (a quiet channel's are not computed) and their harmonics'
        # DFTs (computed only for windows that pass every other test); the digit tracker.
        self._energy = np.zeros((HISTORY_BLOCKS, max_channels), dtype=np.float32)
        self._samples = np.zeros((max_channels, HISTORY_BLOCKS * self.block_samples), dtype=np.int16)
        self._spectra = _BlockCache(len(self._analysis.basis), max_channels)
        self._harmonics = _BlockCache(len(self._analysis.harmonic_basis), max_channels)
        self._tracker = _Tracker(max_channels)
        self._allocated = np.zeros(max_channels, dtype=bool)
        self._free = list(range(max_channels - 1, -1, -1))
        self._ids = np.arange(max_channels)

    # -- channels ---------------------------------------------------------------------------
    def add_channel(self) -> int:
        """Allocate a channel id (the lowest free one) with fresh state."""
        if not self._free:
            raise RuntimeError(f"all {self.max_channels} DTMF detector channels are in use")
        ch = self._free.pop()
        self._energy[:, ch] = 0.0
        self._samples[ch] = 0
        self._spectra.kept[ch] = self._harmonics.kept[ch] = False
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
        k = len(channels)
        if k == 0:
            return []
        analysis, blocks = self._analysis, self.blocks_per_frame
        x = analysis.samples(frames, blocks)                          # (k * blocks, block)
        energy = np.concatenate([self._energy[:, where], analysis.energies(x, k, blocks)])
        self._energy[:, where] = energy[-HISTORY_BLOCKS:]
        window_energy = analysis.window_energy(energy)
        ids = self._ids[where]
        # Spectra are needed only for channels loud enough to hold a key; for the others the
        # caches lapse and are rebuilt from the kept samples when they are needed again.
        loud = analysis.loud(window_energy)
        spectra_kept, harmonics_kept = self._spectra.begin_tick(where), self._harmonics.begin_tick(where)
        verdict = np.full(window_energy.shape, -1, dtype=np.int8)
        if loud.size:
            chosen = ids[loud]
            new = analysis.dft(x.reshape(k, blocks * self.block_samples)[loud], blocks)
            spectra = self._spectra.with_history(chosen, spectra_kept[loud], new,
                                                 lambda stale: analysis.dft(self._samples[stale], HISTORY_BLOCKS))

            def harmonic_spectra(positions: np.ndarray) -> np.ndarray:
                rows = loud[positions]
                new = analysis.dft(frames[rows], blocks, harmonics=True)
                return self._harmonics.with_history(
                    ids[rows], harmonics_kept[rows], new,
                    lambda stale: analysis.dft(self._samples[stale], HISTORY_BLOCKS, harmonics=True))

            verdict[:, loud] = analysis.judge(spectra, np.take(window_energy, loud, axis=1), harmonic_spectra)
        self._samples[where] = frames[:, -self._samples.shape[1]:]
        return [(int(channels[i]), KEYS[code]) for _, i, code in self._tracker.run(where, verdict)]

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
        self._spectra.kept[ch] = self._harmonics.kept[ch] = False
        digits: list[str] = []
        for start in range(0, len(pcm), self.frame_samples * 3000):    # a minute at a time
            part = pcm[start:start + self.frame_samples * 3000]
            n = len(part) // block                                     # windows to judge
            count = -(-n // seg)
            samples = np.zeros(history + count * seg * block, dtype=np.int16)
            samples[:history] = self._samples[ch]
            samples[history:history + len(part)] = part
            self._samples[ch] = samples[history + len(part) - history:history + len(part)]
            x = self._analysis.samples(samples[None], len(samples) // block)
            spectra = self._analysis.dft(samples[None], len(samples) // block)
            energy = self._analysis.energies(x, 1, len(samples) // block)
            self._energy[:, ch] = energy[history // block + n - HISTORY_BLOCKS:history // block + n, 0]
            index = np.arange(seg + HISTORY_BLOCKS)[:, None] + seg * np.arange(count)[None, :]
            segments = np.lib.stride_tricks.sliding_window_view(samples, (seg + HISTORY_BLOCKS) * block)
            segments = segments[::seg * block]

            def harmonic_spectra(positions: np.ndarray, segments=segments) -> np.ndarray:
                return self._analysis.dft(segments[positions], seg + HISTORY_BLOCKS, harmonics=True)

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
        if last - first == len(channels) - 1 and np.array_equal(channels, self._ids[first:last + 1]):
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


class _BlockCache:
    """The last four blocks' DFTs of each channel, kept from one tick to the next when that
    tick computed them, so that a channel judged in consecutive ticks needs only its new
    blocks transformed."""

    def __init__(self, rows: int, max_channels: int) -> None:
        self.values = np.zeros((rows, HISTORY_BLOCKS, max_channels), dtype=np.float32)
        self.kept = np.zeros(max_channels, dtype=bool)

    def begin_tick(self, where: slice | np.ndarray) -> np.ndarray:
        """Which of these channels' entries are valid; they lapse unless refreshed this tick."""
        kept = self.kept[where].copy()
        self.kept[where] = False
        return kept

    def with_history(self, ids: np.ndarray, kept: np.ndarray, new: np.ndarray,
                     compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The channels' last four blocks (from the cache, or compute(ids) for those not
        kept) followed by their new blocks; the newest four are kept for the next tick."""
        old = np.take(self.values, ids, axis=2)
        stale = np.flatnonzero(~kept)
        if stale.size:
            old[..., stale] = compute(ids[stale])
        self.values[..., ids] = new[:, -HISTORY_BLOCKS:]
        self.kept[ids] = True
        return np.concatenate([old, new], axis=1)


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
