"""/v1/announcements: multipart uploads converted by the real converter (ffmpeg), use and deletion."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
from aiohttp import FormData

from ivr.prompts import SAMPLE_RATE, read_wav, wav_bytes
from tests.provisioning.api.ivr_world import IvrWorld, ivr_world, tone_wav  # noqa: F401


def menu_with(announcement_id: str) -> dict:
    return {"greeting": "CUSTOM", "announcementId": announcement_id,
            "keyConfigurations": [{"key": "5", "action": "PLAY_ANNOUNCEMENT", "value": announcement_id}]}


async def test_upload_download_use_and_delete(ivr_world: IvrWorld, tmp_path: Path) -> None:
    w = ivr_world
    created = await w.upload(tone_wav(1.5), "Welcome.wav", name="Welcome")
    assert created["name"] == "Welcome" and created["fileName"] == "Welcome.wav"
    assert created["sourceFormat"] == "WAV" and abs(created["durationSeconds"] - 1.5) < 0.01
    assert created["locationId"] is None and created["usedBy"] == []

    wav = await w.call("GET", f"/v1/announcements/{created['id']}/audio", expect=200)
    assert hashlib.sha256(wav).hexdigest() == created["sha256"] and len(wav) == created["size"]
    pcm = read_wav(wav)  # 8 kHz mono 16-bit, or read_wav raises
    assert len(pcm) == round(1.5 * SAMPLE_RATE)
    rms = np.sqrt(np.mean(pcm.astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms / 32768) + 20) < 0.5  # level-normalised to -20 dBFS

    # An MP3 is taken too (named after its file when no name is given).
    source = tmp_path / "in.wav"
    source.write_bytes(tone_wav(2.0, 22050, 1))
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(source), str(tmp_path / "after.mp3")], check=True)
    mp3 = await w.upload((tmp_path / "after.mp3").read_bytes(), "after.mp3", locationId=w.org.locations["Austin"])
    assert mp3["name"] == "after.mp3" and mp3["sourceFormat"] == "MP3" and mp3["locationId"] == w.org.locations["Austin"]
    listed = await w.call("GET", "/v1/announcements", expect=200)
    assert [a["name"] for a in listed["items"]] == ["Welcome", "after.mp3"]
    assert (await w.call("GET", f"/v1/announcements?locationId={w.org.locations['Austin']}", expect=200))["total"] == 1

    austin = w.org.locations["Austin"]
    aa = await w.call("POST", "/v1/autoAttendants", expect=201, json={
        "name": "Main", "locationId": austin, "extension": "2000",
        "businessHoursMenu": menu_with(created["id"]), "afterHoursMenu": menu_with(mp3["id"])})
    assert (await w.call("GET", f"/v1/announcements/{created['id']}", expect=200))["usedBy"] == ["Main"]
    problem = await w.problem("DELETE", f"/v1/announcements/{created['id']}", 409, "announcement-in-use")
    assert problem["usedBy"] == ["Main"]
    # Once no menu plays it, it can go.
    await w.call("PUT", f"/v1/autoAttendants/{aa['id']}", expect=200, json={
        "name": "Main", "locationId": austin, "extension": "2000",
        "businessHoursMenu": {}, "afterHoursMenu": menu_with(mp3["id"])})
    await w.call("DELETE", f"/v1/announcements/{created['id']}", expect=204)
    await w.problem("GET", f"/v1/announcements/{created['id']}/audio", 404, "not-found")
    await w.problem("DELETE", f"/v1/announcements/{mp3['id']}", 409, "announcement-in-use")
    assert [e.action for e in w.entity_events("announcement")] == ["created", "created", "deleted"]


async def test_bad_uploads_are_refused_and_nothing_is_kept(ivr_world: IvrWorld) -> None:
    w = ivr_world
    problem = await w.problem("POST", "/v1/announcements", 422, "audio-unreadable", "file",
                              data=_form(b"this is a letter, not a recording\n" * 30, "greeting.wav"))
    assert "not a readable audio file" in problem["detail"]
    problem = await w.problem("POST", "/v1/announcements", 422, "audio-unreadable", "file",
                              data=_form(b"RIFF", "notes.txt"))
    assert "unsupported file type '.txt'" in problem["detail"]
    await w.problem("POST", "/v1/announcements", 422, "audio-unreadable", "file", data=_form(b"", "empty.wav"))
    silent = np.zeros(16000, dtype=np.int16)
    await w.problem("POST", "/v1/announcements", 422, "audio-unreadable", "file",
                    data=_form(wav_bytes(silent), "quiet.wav"))
    await w.problem("POST", "/v1/announcements", 413, "announcement-too-large", "file",
                    data=_form(b"\x00" * (10 * 1024 * 1024 + 1), "huge.wav"))
    no_file = FormData(default_to_multipart=True)
    no_file.add_field("name", "x")
    await w.problem("POST", "/v1/announcements", 422, "file-required", "file", data=no_file)
    await w.problem("POST", "/v1/announcements", 415, "unsupported-media-type", json={"file": "x"})
    extra = _form(tone_wav(0.5), "a.wav")
    extra.add_field("colour", "blue")
    await w.problem("POST", "/v1/announcements", 422, "unknown-part", "colour", data=extra)
    await w.problem("POST", "/v1/announcements", 404, "location-not-found", "locationId",
                    data=_form(tone_wav(0.5), "a.wav", locationId=w.other.locations["Elsewhere"]))
    await w.problem("POST", "/v1/announcements", 403, "role-not-allowed", data=_form(tone_wav(0.5), "a.wav"),
                    role="READ_ONLY")
    assert (await w.call("GET", "/v1/announcements", expect=200))["total"] == 0
    assert w.entity_events("announcement") == []


async def test_names_locations_organisations_and_a_missing_converter(ivr_world: IvrWorld) -> None:
    w = ivr_world
    first = await w.upload(tone_wav(0.5), "a.wav", name="Greeting", locationId=w.org.locations["Boston"])
    await w.problem("POST", "/v1/announcements", 409, "announcement-name-taken", "name",
                    data=_form(tone_wav(0.5), "b.wav", name="Greeting"))
    # A Boston announcement cannot be played by an Austin attendant.
    await w.problem("POST", "/v1/autoAttendants", 422, "announcement-other-location", "businessHoursMenu.announcementId",
                    json={"name": "Main", "locationId": w.org.locations["Austin"], "extension": "2000",
                          "businessHoursMenu": menu_with(first["id"]), "afterHoursMenu": {}})
    await w.problem("GET", f"/v1/announcements/{first['id']}", 404, "not-found", org=w.other)
    await w.problem("GET", f"/v1/announcements/{first['id']}/audio", 404, "not-found", org=w.other)
    await w.problem("DELETE", f"/v1/announcements/{first['id']}", 404, "not-found", org=w.other)
    w.ctx.audio_converter = None
    await w.problem("POST", "/v1/announcements", 503, "audio-converter-unavailable", data=_form(tone_wav(0.5), "c.wav"))


def _form(data: bytes, filename: str, **parts: str) -> FormData:
    form = FormData()
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    for name, value in parts.items():
        form.add_field(name, value)
    return form
