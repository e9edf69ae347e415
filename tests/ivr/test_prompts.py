"""Prompt audio (ivr.prompts, prompts/): the default set, real ffmpeg/espeak-ng conversions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from ivr.menu import KEYS, PromptId, key_prompt_id
from ivr.prompts import (
    FRAME_SAMPLES,
    PROMPTS_DIR,
    SAMPLE_RATE,
    AnnouncementError,
    PromptError,
    PromptLibrary,
    convert_upload,
    encode_frames,
    normalize_level,
    read_wav,
    speak,
    trim_silence,
)

ROOT = Path(__file__).resolve().parents[2]


def rms_dbfs(pcm: np.ndarray) -> float:
    x = pcm.astype(np.float64)
    return 20 * np.log10(np.sqrt(np.mean(x * x)) / 32768)


def tone_level(pcm: np.ndarray, frequency: float) -> float:
    """Amplitude (0..1 of full scale) of one frequency, by correlation with a complex sinusoid."""
    t = np.arange(len(pcm)) / SAMPLE_RATE
    return float(2 * np.abs(np.mean(pcm * np.exp(-2j * np.pi * frequency * t))) / 32768)


def wav_file(channels: list[np.ndarray], rate: int) -> bytes:
    """A 16-bit WAV with one array per channel (what a desktop recorder would save)."""
    interleaved = np.stack(channels, axis=1).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(len(channels))
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(interleaved.tobytes())
    return buffer.getvalue()


def sine(frequency: float, seconds: float, rate: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def ffmpeg_encode(wav: bytes, suffix: str, tmp_path: Path, *codec: str) -> bytes:
    source, target = tmp_path / "source.wav", tmp_path / f"upload.{suffix}"
    source.write_bytes(wav)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(source), *codec, str(target)], check=True)
    return target.read_bytes()


# --- the default set ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def library() -> PromptLibrary:
    return PromptLibrary()


def test_every_prompt_the_menu_plays_is_in_the_default_set(library: PromptLibrary) -> None:
    needed = {p.value for p in PromptId} | {key_prompt_id(k) for k in KEYS}
    needed |= {"beep", "record_greeting", "record_review", "pin_enter"}
    assert needed - set(library.ids()) == set()


def test_default_prompts_are_8k_mono_normalised_and_match_the_manifest(library: PromptLibrary) -> None:
    for prompt_id, info in library.info.items():
        pcm = library.pcm(prompt_id)
        assert pcm.dtype == np.int16 and not pcm.flags.writeable
        assert len(pcm) / SAMPLE_RATE == pytest.approx(info.duration, abs=0.001)
        assert 0.1 < info.duration < 15, prompt_id
        assert rms_dbfs(pcm) == pytest.approx(-20.0, abs=0.1), prompt_id
        assert np.abs(pcm.astype(np.int32)).max() <= 32767 * 10 ** (-1 / 20) + 1, prompt_id
    assert tone_level(library.pcm("beep"), 1000) > 0.1


def test_regeneration_is_deterministic() -> None:
    manifest = json.loads((PROMPTS_DIR / "manifest.json").read_text())
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    if manifest["generator"]["espeak-ng"] not in version:
        pytest.skip(f"prompts were made with espeak-ng {manifest['generator']['espeak-ng']}, this is {version!r}")
    done = subprocess.run([sys.executable, str(PROMPTS_DIR / "generate.py"), "--check", "goodbye", "digit_7", "beep"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "3 checked, 0 differ, 0 stale"


def test_a_damaged_prompt_is_refused_at_load(tmp_path: Path) -> None:
    for item in PROMPTS_DIR.iterdir():
        if item.suffix in (".wav", ".json"):
            (tmp_path / item.name).write_bytes(item.read_bytes())
    goodbye = tmp_path / "goodbye.wav"
    goodbye.write_bytes(goodbye.read_bytes()[:-2] + b"\x00\x01")
    with pytest.raises(PromptError, match="'goodbye'.*does not match the manifest's sha256"):
        PromptLibrary(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(PromptError, match="cannot read the prompt manifest"):
        PromptLibrary(tmp_path)


def test_g711_frames_are_160_bytes_padded_with_silence(library: PromptLibrary) -> None:
    from sipcore import g711

    pcm = library.pcm("goodbye")
    for codec, decode in (("PCMU", g711.ulaw_decode), ("PCMA", g711.alaw_decode)):
        frames = library.frames("goodbye", codec)
        assert library.frames("goodbye", codec) is frames  # encoded once
        assert len(frames) == -(-len(pcm) // FRAME_SAMPLES)
        assert {len(f) for f in frames} == {FRAME_SAMPLES}
        decoded = np.asarray(decode(b"".join(frames)), dtype=np.float64)
        # G.711 keeps speech within a few percent (about 38 dB SNR); the tail is silence.
        error = decoded[: len(pcm)] - pcm
        assert 10 * np.log10(np.mean(pcm.astype(np.float64) ** 2) / np.mean(error ** 2)) > 30
        assert np.all(np.abs(decoded[len(pcm):]) <= 8)
    with pytest.raises(ValueError, match="PCMU or PCMA"):
        encode_frames(pcm, "G729")


# --- uploads -----------------------------------------------------------------------------

def test_wav_44k_stereo_becomes_8k_mono_normalised_without_aliasing() -> None:
    rate = 44100
    # Left 440 Hz; right 660 Hz plus a 6 kHz tone, which only a resampler without an
    # anti-aliasing filter would fold down to 2 kHz.
    left = sine(440, 2.0, rate, 0.2)
    right = sine(660, 2.0, rate, 0.2) // 2 + sine(6000, 2.0, rate, 0.2) // 2
    announcement = convert_upload(wav_file([left, right], rate), "Greeting.WAV")
    pcm = announcement.pcm
    assert announcement.source_format == "WAV"
    assert announcement.duration == pytest.approx(2.0, abs=0.01)
    assert rms_dbfs(pcm) == pytest.approx(-20.0, abs=0.2)
    assert tone_level(pcm, 440) > 0.05 and tone_level(pcm, 660) > 0.02  # both channels mixed in
    assert tone_level(pcm, 2000) < 0.002  # no alias of 6 kHz
    assert read_wav(announcement.wav()).tolist() == pcm.tolist()


@pytest.mark.parametrize(("suffix", "codec", "kind"), [
    ("mp3", ["-codec:a", "libmp3lame", "-b:a", "64k"], "MP3"),
    ("ogg", ["-codec:a", "libvorbis"], "Ogg"),
    ("flac", [], "FLAC"),
    ("m4a", ["-codec:a", "aac"], "M4A/AAC"),
])
def test_compressed_uploads_are_decoded(tmp_path: Path, suffix: str, codec: list[str], kind: str) -> None:
    data = ffmpeg_encode(wav_file([sine(500, 1.5, 48000)], 48000), suffix, tmp_path, *codec)
    announcement = convert_upload(data, f"menu.{suffix}")
    assert announcement.source_format == kind
    assert announcement.duration == pytest.approx(1.5, abs=0.08)  # encoders add a little padding
    assert rms_dbfs(announcement.pcm) == pytest.approx(-20.0, abs=0.5)
    assert tone_level(announcement.pcm, 500) > 0.1


def test_mp3_named_wav_still_decodes(tmp_path: Path) -> None:
    data = ffmpeg_encode(wav_file([sine(500, 1.0, 22050)], 22050), "mp3", tmp_path)
    assert convert_upload(data, "greeting.wav").duration == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize(("data", "filename", "reason"), [
    (b"Dear admin, this is not audio at all.\n" * 20, "greeting.wav", "not a readable audio file"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 4, "greeting.mp3", "not a readable audio file"),
    (b"", "greeting.wav", "the file is empty"),
    (b"RIFF", "greeting.txt", r"unsupported file type '\.txt'"),
    (b"RIFF", "greeting", "unsupported file type no extension"),
    (b"\x00" * (10 * 1024 * 1024 + 1), "big.wav", "the limit is 10 MB"),
])
def test_bad_uploads_get_a_clear_reason(data: bytes, filename: str, reason: str) -> None:
    with pytest.raises(AnnouncementError, match=reason) as caught:
        convert_upload(data, filename)
    assert caught.value.reason == str(caught.value)


def test_length_limits_and_silence() -> None:
    with pytest.raises(AnnouncementError, match="longer than 5 minutes"):
        convert_upload(wav_file([sine(300, 301, 8000)], 8000), "long.wav")
    assert convert_upload(wav_file([sine(300, 299, 8000)], 8000), "ok.wav").duration == pytest.approx(299)
    with pytest.raises(AnnouncementError, match="shorter than"):
        convert_upload(wav_file([sine(300, 0.1, 8000)], 8000), "short.wav")
    with pytest.raises(AnnouncementError, match="silent"):
        convert_upload(wav_file([np.zeros(16000, dtype=np.int16)], 16000), "quiet.wav")


# --- level helpers and text-to-speech ------------------------------------------------------

def test_normalize_level_reaches_the_target_unless_peaks_forbid() -> None:
    quiet = sine(1000, 1.0, 8000, 0.01)
    assert rms_dbfs(normalize_level(quiet)) == pytest.approx(-20.0, abs=0.05)
    # A click in silence: the peak limit wins over the RMS target.
    click = np.zeros(8000, dtype=np.int16)
    click[100] = 1000
    limited = normalize_level(click)
    assert np.abs(limited).max() == pytest.approx(32767 * 10 ** (-1 / 20), abs=1)
    assert normalize_level(np.zeros(10, dtype=np.int16)).tolist() == [0] * 10


def test_trim_silence_keeps_a_little_padding() -> None:
    pcm = np.concatenate([np.zeros(8000, np.int16), sine(700, 0.5, 8000), np.zeros(8000, np.int16)])
    trimmed = trim_silence(pcm, pad_ms=60)
    assert len(trimmed) / SAMPLE_RATE == pytest.approx(0.5 + 0.12, abs=0.011)
    assert trim_silence(np.zeros(800, np.int16)).size == 0


def test_speak_renders_text_at_8k_normalised_and_caches() -> None:
    pcm = speak("For sales, press one.")
    assert pcm.dtype == np.int16 and not pcm.flags.writeable
    assert 0.8 < len(pcm) / SAMPLE_RATE < 4.0
    assert rms_dbfs(pcm) == pytest.approx(-20.0, abs=0.1)
    assert speak("For sales, press one.") is pcm
    assert len(speak("For sales, press one, for support, press two, for billing, press three.")) > len(pcm) * 2
    # A leading dash is text, not an option: it reaches espeak-ng on stdin.
    assert len(speak("--help me")) > 0
    assert len(speak("Guten Tag", voice="de")) > 0


@pytest.mark.parametrize(("text", "voice", "reason"), [
    ("   ", "en", "text to speak is empty"),
    ("x" * 2001, "en", "the limit is 2000"),
    ("hello", "--path=/tmp", "voice must be a language tag"),
])
def test_speak_refuses_bad_requests(text: str, voice: str, reason: str) -> None:
    with pytest.raises(AnnouncementError, match=reason):
        speak(text, voice)
