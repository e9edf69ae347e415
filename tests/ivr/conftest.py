"""Audio corpora for the DTMF talk-off tests: espeak-ng speech and synthesised music.

Speech is generated on first use and cached under the system temp directory (keyed by the
espeak-ng version, voices and text), so later runs read it back in milliseconds.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Voice, pitch (0-99), words per minute: men, women, other accents and other languages.
VOICES = [
    ("en-us", 50, 160), ("en-gb+f3", 70, 150), ("en-us+m3", 30, 175), ("en-gb-x-rp+f5", 80, 140),
    ("en-029", 40, 190), ("en-gb-scotland+m7", 25, 165), ("fr+f2", 65, 155), ("de+m2", 35, 150),
    ("es+f4", 75, 170), ("it", 45, 160), ("en-us+klatt2", 55, 145), ("en-us+f1", 90, 180),
    ("en-us+m1", 20, 200), ("en-gb+f4", 85, 130), ("nl+m4", 40, 160), ("pt+f2", 70, 165),
    ("sv", 50, 150), ("pl+m2", 35, 170), ("en-us+croak", 30, 150), ("en-gb+whisper", 50, 160),
    ("hi+f3", 75, 155), ("ru+m3", 25, 165), ("en-us+f5", 95, 185), ("en-gb-x-gbclan+m5", 45, 140),
]
SECONDS_PER_VOICE = 150          # 24 voices x 150 s: about an hour of distinct speech
TEXT_MODULES = [
    "argparse", "collections", "email.message", "http.client", "json", "logging", "pathlib", "re",
    "subprocess", "threading", "unittest", "urllib.request", "zipfile", "csv", "datetime", "decimal",
    "fractions", "heapq", "inspect", "itertools", "os", "random", "shutil", "socket", "sqlite3",
    "string", "tarfile", "textwrap", "uuid", "calendar", "configparser", "difflib", "ftplib",
    "gettext", "gzip", "hashlib", "imaplib", "locale", "mailbox", "mimetypes", "pickle", "pprint",
    "queue", "sched", "secrets", "smtplib", "statistics", "tempfile", "timeit", "turtle", "wave",
]


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (make debian-test-deps installs it)"
    if "CI" in os.environ:
        pytest.fail(f"{reason}; CI is set, so a missing tool is a failure", pytrace=False)
    pytest.skip(reason)


def _texts() -> list[str]:
    """English prose from the standard library's docstrings: plenty of it, and the same on
    every machine with this Python."""
    texts = []
    for name in TEXT_MODULES:
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""]
        for attr in sorted(vars(module)):
            doc = getattr(getattr(module, attr, None), "__doc__", None)
            if not attr.startswith("_") and isinstance(doc, str) and len(doc) > 200:
                docs.append(doc)
        text = re.sub(r"[^A-Za-z0-9 ,.;:'?!-]+", " ", " ".join(docs))
        texts.append(re.sub(r"\s+", " ", text))
    return texts


@pytest.fixture(scope="session")
def speech_corpus() -> list[np.ndarray]:
    """About an hour of espeak-ng speech at 8 kHz, one int16 array per voice."""
    espeak, ffmpeg = _require_tool("espeak-ng"), _require_tool("ffmpeg")
    version = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True).stdout
    text = " ".join(_texts())
    key = hashlib.sha256(repr((version, VOICES, SECONDS_PER_VOICE, text)).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"callrouter-dtmf-speech-{key}"
    cache.mkdir(exist_ok=True)
    chars = SECONDS_PER_VOICE * 16                   # about 16 characters a second
    corpus = []
    for i, (voice, pitch, speed) in enumerate(VOICES):
        path = cache / f"{i:02d}.raw"
        if not path.exists():
            words = text[i * chars:(i + 1) * chars]
            wav = subprocess.run([espeak, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout"],
                                 input=words.encode(), capture_output=True, check=True).stdout
            raw = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
                                  "-ar", "8000", "-ac", "1", "-f", "s16le", "pipe:1"],
                                 input=wav, capture_output=True, check=True).stdout
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(raw)
            tmp.replace(path)
        corpus.append(np.frombuffer(path.read_bytes(), dtype=np.int16))
    return corpus


TIMBRES = {
    # Relative amplitude of harmonic n: string- and brass-like, clarinet-like (odd only),
    # mellow, bright, and an organ stop with octaves only.
    "saw": lambda n: 1.0 / n,
    "clarinet": lambda n: np.where(n % 2 == 1, 1.0 / n, 0.0),
    "mellow": lambda n: 0.5 ** (n - 1),
    "bright": lambda n: 1.0 / np.sqrt(n),
    "organ": lambda n: np.where(np.isin(n, [1, 2, 4, 8]), 1.0 / np.sqrt(n), 0.0),
}


_TABLE = 4096
_tables: dict[tuple[int, str], np.ndarray] = {}


def _wavetable(midi: int, timbre: str, sample_rate: int) -> np.ndarray:
    """One period of a note's waveform: its harmonics below Nyquist, with fixed random phases."""
    table = _tables.get((midi, timbre))
    if table is None:
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12)
        n = np.arange(1, int((sample_rate / 2 - 1) // f0) + 1)
        phases = np.random.default_rng(midi * 31 + len(timbre)).uniform(0.0, 2.0 * np.pi, len(n))
        grid = 2.0 * np.pi * np.arange(_TABLE) / _TABLE
        table = _tables[(midi, timbre)] = TIMBRES[timbre](n) @ np.sin(np.outer(n, grid) + phases[:, None])
    return table


def synthesise_music(seconds: float, seed: int, sample_rate: int = 8000) -> np.ndarray:
    """Overlapping notes and chords of 1-4 equal-tempered notes (C3 to F#6 roots) with
    harmonics up to the Nyquist frequency, slightly detuned, with attack and decay; float
    samples, peak 1."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate))
    names = list(TIMBRES)
    start = 0
    while start < len(out):
        length = int(rng.uniform(0.08, 0.6) * sample_rate)
        timbre = names[rng.integers(len(names))]
        root = int(rng.integers(48, 90))
        extra = rng.choice([3, 4, 5, 7, 8, 9, 12, 16, 19], size=int(rng.integers(0, 4)), replace=False)
        t = np.arange(length)
        envelope = np.minimum(1.0, t / (0.01 * sample_rate)) * np.exp(-t / sample_rate * rng.uniform(0.0, 4.0))
        chord = np.zeros(length)
        for midi in [root, *(root + extra)]:
            f0 = 440.0 * 2.0 ** ((midi - 69) / 12) * (1.0 + rng.normal(0.0, 0.002))
            cycles = (f0 / sample_rate * t + rng.uniform()) % 1.0
            chord += _wavetable(int(midi), timbre, sample_rate)[(cycles * _TABLE).astype(np.intp)]
        end = min(len(out), start + length)
        out[start:end] += (chord * envelope)[:end - start]
        start += int(length * rng.uniform(0.5, 1.0))
    return out / max(1e-9, np.abs(out).max())


@pytest.fixture(scope="session")
def music_corpus() -> list[np.ndarray]:
    """An hour of synthesised music as 360 ten-second pieces (float, peak 1)."""
    key = hashlib.sha256((inspect.getsource(synthesise_music) + inspect.getsource(_wavetable)
                          + inspect.getsource(TIMBRES["saw"])).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"callrouter-dtmf-music-{key}.npy"
    if cache.exists():
        data = np.load(cache)
    else:
        data = np.stack([synthesise_music(10.0, seed) for seed in range(360)]).astype(np.float32)
        tmp = cache.with_name(cache.name + ".tmp.npy")
        np.save(tmp, data)
        tmp.replace(cache)
    return list(data.astype(np.float64))
