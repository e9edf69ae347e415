"""Regenerate the default English prompt set: ``python prompts/generate.py [--check] [ids...]``.

Each prompt is spoken by espeak-ng (US English), resampled to 8 kHz mono 16-bit by ffmpeg,
trimmed of leading and trailing silence and level-normalised (ivr.prompts does all three, so
text-to-speech at run time sounds like these files). The beep is a generated tone. Output is
deterministic for a given espeak-ng and ffmpeg: ``manifest.json`` records id, text, duration,
sha256 and the espeak-ng version, and ``--check`` regenerates into a scratch directory and
fails if anything differs from what is committed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ivr.prompts import SAMPLE_RATE, normalize_level, synthesize, wav_bytes  # noqa: E402

VOICE = "en-us"
BEEP = "beep"

# id -> what is said. Ids are what ivr.menu and the recording feature ask for.
PROMPTS: dict[str, str] = {
    "greeting_business_hours": "Thank you for calling.",
    "greeting_after_hours": "Thank you for calling. Our office is now closed.",
    "extension_any_time": "If you know the extension of the person you are calling, you may dial it at any time.",
    "invalid_option": "That is not a valid option.",
    "transfer_hold": "Please hold while your call is transferred.",
    "extension_invalid": "The extension you dialled is not valid.",
    "no_one_available": "No one is available to take your call.",
    "goodbye": "Goodbye.",
    "enter_extension": "Please enter the extension of the person you are calling, followed by the pound key.",
    "name_enter": ("Please spell the last name, then the first name, of the person you are calling, "
                   "using the letters on your keypad, followed by the pound key."),
    "name_not_found": "There is no one by that name in the directory.",
    "name_confirm": "To call this person, press 1. For the next name, press 2. To start again, press star.",
    "name_no_more": "There are no more names that match.",
    "press": "press",
    "for": "for",
    **{f"digit_{d}": word for d, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))},
    "star": "star",
    "pound": "pound",
    "pin_enter": "Please enter your PIN, followed by the pound key.",
    "pin_invalid": "That PIN is not valid.",
    "record_greeting": "Record your greeting after the tone. Press pound when you are done.",
    "record_review": "To keep it, press 1. To re-record, press 2.",
    "record_saved": "Your greeting has been saved.",
    BEEP: "(a 1 kHz tone, 400 ms)",
}


def beep() -> np.ndarray:
    """1 kHz for 400 ms with 10 ms raised-cosine edges (no clicks)."""
    t = np.arange(int(0.4 * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 1000.0 * t)
    ramp = int(0.01 * SAMPLE_RATE)
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    tone[:ramp] *= edge
    tone[-ramp:] *= edge[::-1]
    return normalize_level(np.round(tone * 16384).astype(np.int16))


def render(prompt_id: str) -> bytes:
    pcm = beep() if prompt_id == BEEP else synthesize(PROMPTS[prompt_id], VOICE)
    return wav_bytes(pcm)


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].replace("eSpeak NG text-to-speech:", "").strip()


def generate(directory: Path, ids: list[str]) -> dict:
    entries = []
    for prompt_id in ids:
        data = render(prompt_id)
        (directory / f"{prompt_id}.wav").write_bytes(data)
        samples = (len(data) - 44) // 2
        entries.append({
            "id": prompt_id,
            "text": PROMPTS[prompt_id],
            "duration": round(samples / SAMPLE_RATE, 3),
            "sha256": hashlib.sha256(data).hexdigest(),
            "file": f"{prompt_id}.wav",
        })
    return {
        "generator": {"espeak-ng": espeak_version(), "voice": VOICE, "sampleRate": SAMPLE_RATE,
                      "format": "WAV, mono, 16-bit PCM, -20 dBFS RMS, peaks at most -1 dBFS"},
        "prompts": entries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="regenerate elsewhere and compare with prompts/")
    parser.add_argument("ids", nargs="*", help="only these prompts (with --check)")
    args = parser.parse_args(argv)
    unknown = [i for i in args.ids if i not in PROMPTS]
    if unknown:
        parser.error(f"unknown prompt ids: {', '.join(unknown)}")
    if not args.check:
        if args.ids:
            parser.error("ids are only for --check; regenerating writes the whole set and its manifest")
        manifest = generate(HERE, list(PROMPTS))
        (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        total = sum(p["duration"] for p in manifest["prompts"])
        print(f"{len(manifest['prompts'])} prompts, {total:.1f} s of audio, written to {HERE}")
        return 0
    committed = {p["id"]: p for p in json.loads((HERE / "manifest.json").read_text())["prompts"]}
    with tempfile.TemporaryDirectory() as scratch:
        fresh = generate(Path(scratch), args.ids or list(PROMPTS))
    differ = [p["id"] for p in fresh["prompts"] if committed.get(p["id"], {}).get("sha256") != p["sha256"]]
    missing = [] if args.ids else sorted(set(committed) - set(PROMPTS))
    for prompt_id in differ:
        print(f"differs: {prompt_id}")
    for prompt_id in missing:
        print(f"in the manifest but no longer generated: {prompt_id}")
    print(f"{len(fresh['prompts'])} checked, {len(differ)} differ, {len(missing)} stale")
    return 1 if differ or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
