"""Prompt audio: the default set, uploaded announcements and text-to-speech, all 8 kHz mono int16.

Everything a caller hears goes through here once and is then kept as numpy arrays and as
pre-encoded G.711 frames (160 bytes = 20 ms), so the media loop only copies bytes per tick.

- ``PromptLibrary`` loads ``prompts/*.wav`` through ``prompts/manifest.json`` and checks each
  file against the manifest's sha256 (a stale or damaged prompt is refused at start, not
  discovered on a call).
- ``convert_upload`` turns an administrator's WAV/MP3/OGG/FLAC/M4A... into an
  ``Announcement`` with pydub and ffmpeg, level-normalised, within size and length limits.
- ``speak`` renders text with espeak-ng (cached by a hash of voice, rate and text). It runs
  subprocesses: call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tempfile
import threading
import wave
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sipcore import g711

__all__ = [
    "Announcement", "AnnouncementError", "PromptError", "PromptLibrary", "SAMPLE_RATE", "FRAME_SAMPLES",
    "convert_upload", "encode_frames", "normalize_level", "read_wav", "speak", "trim_silence", "wav_bytes",
]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms, one RTP packet of G.711
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

TARGET_RMS_DBFS = -20.0
PEAK_LIMIT_DBFS = -1.0
SILENCE_DBFS = -60.0  # quieter than this overall is "no sound", not a quiet recording

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_ANNOUNCEMENT_SECONDS = 300.0
MIN_ANNOUNCEMENT_SECONDS = 0.2
UPLOAD_FORMATS = {
    "wav": "WAV", "wave": "WAV", "mp3": "MP3", "ogg": "Ogg", "oga": "Ogg", "opus": "Opus", "flac": "FLAC",
    "m4a": "M4A/AAC", "aac": "AAC", "mp4": "MP4 audio", "webm": "WebM audio", "wma": "WMA", "aif": "AIFF",
    "aiff": "AIFF", "amr": "AMR",
}

ESPEAK_RATE = 155  # words per minute: a little slower than espeak's 175, clearer on a phone line
_ESPEAK_VOICES = {"en": "en-us"}
_VOICE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{1,8})*$")
MAX_TTS_CHARS = 2000


class PromptError(Exception):
    """The default prompt set is missing, damaged, or out of step with its manifest."""


class AnnouncementError(ValueError):
    """An upload or text that cannot become an announcement; ``reason`` says why, for the admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- level and framing ------------------------------------------------------------------

def _dbfs(value: float) -> float:
    return 20.0 * np.log10(max(value, 1e-12) / 32768.0)


def normalize_level(pcm: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS,
                    peak_dbfs: float = PEAK_LIMIT_DBFS) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS, less if the loudest sample would pass ``peak_dbfs``.

    A single gain (no compression), so the recording keeps its dynamics; the peak limit wins
    over the RMS target because clipping is worse on G.711 than being a little quiet.
    """
    samples = pcm.astype(np.float64)
    if samples.size == 0:
        return pcm.astype(np.int16)
    rms = float(np.sqrt(np.mean(samples * samples)))
    peak = float(np.max(np.abs(samples)))
    if rms == 0.0:
        return np.zeros(samples.shape, dtype=np.int16)
    gain = 32768.0 * 10 ** (target_dbfs / 20) / rms
    gain = min(gain, 32767.0 * 10 ** (peak_dbfs / 20) / peak)
    return np.clip(np.round(samples * gain), -32768, 32767).astype(np.int16)


def trim_silence(pcm: np.ndarray, threshold_dbfs: float = -45.0, pad_ms: int = 60) -> np.ndarray:
    """Cut leading and trailing silence (10 ms windows under ``threshold_dbfs``), keeping ``pad_ms``."""
    window = SAMPLE_RATE // 100
    usable = len(pcm) - len(pcm) % window
    if usable == 0:
        return pcm
    blocks = pcm[:usable].astype(np.float64).reshape(-1, window)
    loud = np.flatnonzero(np.sqrt(np.mean(blocks * blocks, axis=1)) > 32768.0 * 10 ** (threshold_dbfs / 20))
    if loud.size == 0:
        return pcm[:0]
    pad = SAMPLE_RATE * pad_ms // 1000
    start = max(0, int(loud[0]) * window - pad)
    end = min(len(pcm), (int(loud[-1]) + 1) * window + pad)
    return pcm[start:end]


def encode_frames(pcm: np.ndarray, codec: str) -> tuple[bytes, ...]:
    """G.711 frames of 160 bytes (``codec`` "PCMU" or "PCMA"); the last is padded with silence."""
    encoder = g711.ENCODERS.get(codec)
    if encoder is None:
        raise ValueError(f"codec must be PCMU or PCMA, got {codec!r}")
    samples = np.asarray(pcm, dtype=np.int16)
    padded = np.zeros(-(-len(samples) // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=np.int16)
    padded[: len(samples)] = samples
    data = encoder(padded).tobytes()
    return tuple(data[i:i + FRAME_SAMPLES] for i in range(0, len(data), FRAME_SAMPLES))


# --- WAV --------------------------------------------------------------------------------

def read_wav(source: bytes | Path | str) -> np.ndarray:
    """An 8 kHz mono 16-bit WAV as int16 samples; any other layout is a PromptError."""
    try:
        handle = wave.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "rb")
    except (wave.Error, EOFError, OSError) as exc:
        raise PromptError(f"not a readable WAV file: {exc}") from None
    with handle:
        layout = (handle.getframerate(), handle.getnchannels(), handle.getsampwidth())
        if layout != (SAMPLE_RATE, 1, 2):
            raise PromptError(f"expected 8000 Hz mono 16-bit WAV, got {layout[0]} Hz, "
                              f"{layout[1]} channel(s), {8 * layout[2]}-bit")
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.int16)


def wav_bytes(pcm: np.ndarray) -> bytes:
    """8 kHz mono 16-bit WAV; the header is fixed, so equal samples give equal bytes."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()


def _frozen(pcm: np.ndarray) -> np.ndarray:
    pcm.setflags(write=False)  # shared between calls: nobody may change it in place
    return pcm


# --- uploaded announcements ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Announcement:
    """An announcement ready to play: 8 kHz mono int16, level-normalised."""

    pcm: np.ndarray
    source_format: str  # what the upload was, for the admin ("MP3", "WAV"...)

    @property
    def duration(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    def wav(self) -> bytes:
        return wav_bytes(self.pcm)

    def frames(self, codec: str) -> tuple[bytes, ...]:
        return encode_frames(self.pcm, codec)


def convert_upload(data: bytes, filename: str) -> Announcement:
    """Decode an uploaded audio file (pydub + ffmpeg) into an Announcement, or AnnouncementError."""
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix not in UPLOAD_FORMATS:
        shown = f"'.{suffix}'" if suffix else "no extension"
        raise AnnouncementError(f"unsupported file type {shown}: upload WAV, MP3, OGG, FLAC or M4A")
    if not data:
        raise AnnouncementError("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise AnnouncementError(f"the file is {len(data) / 1048576:.1f} MB; the limit is "
                                f"{MAX_UPLOAD_BYTES // 1048576} MB")
    kind = UPLOAD_FORMATS[suffix]
    from pydub import AudioSegment  # imported late: pydub probes for ffmpeg at import time

    with tempfile.TemporaryDirectory(prefix="callrouter-upload-") as scratch:
        path = Path(scratch) / f"upload.{suffix}"
        path.write_bytes(data)
        try:
            # Decode at most a little past the limit: a too-long file is refused without
            # decoding hours of audio. ffmpeg finds the real format from the content, so an
            # MP3 saved as .wav still works while a text file named .wav does not.
            segment = AudioSegment.from_file(str(path), duration=MAX_ANNOUNCEMENT_SECONDS + 1)
            if len(segment) > MAX_ANNOUNCEMENT_SECONDS * 1000:
                raise AnnouncementError(f"the recording is longer than {MAX_ANNOUNCEMENT_SECONDS / 60:.0f} minutes")
            if len(segment) < MIN_ANNOUNCEMENT_SECONDS * 1000:
                raise AnnouncementError(f"the recording is shorter than {MIN_ANNOUNCEMENT_SECONDS} seconds")
            # ffmpeg resamples (with a proper anti-aliasing filter, unlike pydub's own
            # set_frame_rate) and mixes down to mono.
            out = io.BytesIO()
            segment.export(out, format="wav", parameters=["-ar", str(SAMPLE_RATE), "-ac", "1", "-sample_fmt", "s16"])
            pcm = read_wav(out.getvalue())
        except AnnouncementError:
            raise
        except Exception as exc:  # pydub raises CouldntDecodeError, IndexError, KeyError... on bad input
            raise AnnouncementError(f"not a readable audio file ({kind} expected from the name): "
                                    f"{_first_line(exc)}") from None
    if pcm.size == 0 or _dbfs(float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))) < SILENCE_DBFS:
        raise AnnouncementError("the recording is silent")
    return Announcement(_frozen(normalize_level(pcm)), kind)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        # ffmpeg's own complaint is more useful than pydub's preamble
        if "Invalid data" in line or "could not find" in line.lower() or "error" in line.lower():
            return line.strip()[:200]
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


# --- text-to-speech ---------------------------------------------------------------------

def espeak_voice(voice: str) -> str:
    name = _ESPEAK_VOICES.get(voice, voice)
    if not _VOICE.match(name):
        raise AnnouncementError(f"voice must be a language tag such as 'en' or 'de', got {voice!r}")
    return name


def synthesize(text: str, voice: str = "en", rate: int = ESPEAK_RATE) -> np.ndarray:
    """espeak-ng, resampled by ffmpeg to 8 kHz, trimmed and level-normalised (uncached)."""
    text = text.strip()
    if not text:
        raise AnnouncementError("text to speak is empty")
    if len(text) > MAX_TTS_CHARS:
        raise AnnouncementError(f"text to speak is {len(text)} characters; the limit is {MAX_TTS_CHARS}")
    # Text goes in on stdin, never as an argument, so it cannot be read as an option.
    spoken = _run(["espeak-ng", "-v", espeak_voice(voice), "-s", str(rate), "--stdout"], text.encode())
    raw = _run(["ffmpeg", "-v", "error", "-nostdin", "-f", "wav", "-i", "pipe:0", "-ac", "1",
                "-ar", str(SAMPLE_RATE), "-f", "s16le", "-bitexact", "pipe:1"], spoken)
    pcm = trim_silence(np.frombuffer(raw, dtype="<i2"))
    if pcm.size == 0:
        raise AnnouncementError(f"text-to-speech produced no sound for {text[:40]!r}")
    return normalize_level(pcm)


def _run(command: list[str], stdin: bytes) -> bytes:
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=60, check=False)
    except FileNotFoundError:
        raise PromptError(f"{command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise PromptError(f"{command[0]} did not finish within 60 s") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise PromptError(f"{command[0]} failed ({done.returncode}): {detail[-1] if detail else 'no message'}")
    return done.stdout


class _SpeechCache:
    def __init__(self, capacity: int = 512) -> None:
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def get(self, text: str, voice: str, rate: int) -> np.ndarray:
        key = hashlib.sha256(f"{voice}\0{rate}\0{text.strip()}".encode()).hexdigest()
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        pcm = _frozen(synthesize(text, voice, rate))  # outside the lock: it takes a while
        with self._lock:
            self._items[key] = pcm
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return pcm


_speech = _SpeechCache()


def speak(text: str, voice: str = "en") -> np.ndarray:
    """``text`` spoken by espeak-ng as 8 kHz int16 (read-only; cached by a hash of the text)."""
    return _speech.get(text, voice, ESPEAK_RATE)


# --- the default prompt set --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PromptInfo:
    id: str
    text: str
    duration: float
    sha256: str
    file: str


class PromptLibrary:
    """The default prompts of ``directory`` (its manifest.json), verified and loaded eagerly."""

    def __init__(self, directory: Path = PROMPTS_DIR) -> None:
        self.directory = Path(directory)
        manifest_path = self.directory / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
            entries = [PromptInfo(p["id"], p["text"], float(p["duration"]), p["sha256"], p["file"])
                       for p in manifest["prompts"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PromptError(f"{manifest_path}: cannot read the prompt manifest ({exc})") from None
        self.info = {entry.id: entry for entry in entries}
        self._pcm: dict[str, np.ndarray] = {}
        self._frames: dict[tuple[str, str], tuple[bytes, ...]] = {}
        for entry in entries:
            path = self.directory / entry.file
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PromptError(f"prompt {entry.id!r}: {exc}") from None
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise PromptError(f"prompt {entry.id!r}: {path.name} does not match the manifest's sha256 "
                                  "(run python prompts/generate.py)")
            self._pcm[entry.id] = _frozen(read_wav(data))

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._pcm

    def ids(self) -> list[str]:
        return list(self._pcm)

    def pcm(self, prompt_id: str) -> np.ndarray:
        try:
            return self._pcm[prompt_id]
        except KeyError:
            raise PromptError(f"no prompt {prompt_id!r} in {self.directory}") from None

    def frames(self, prompt_id: str, codec: str) -> tuple[bytes, ...]:
        key = (prompt_id, codec)
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = encode_frames(self.pcm(prompt_id), codec)
        return frames
