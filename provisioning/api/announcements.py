"""/v1/announcements: uploaded recordings for auto-attendant greetings and PLAY_ANNOUNCEMENT keys.

An upload is ``multipart/form-data`` with a ``file`` part (WAV, MP3, OGG, FLAC, M4A...) and
optional ``name`` and ``locationId`` parts. Provisioning may not import ivr, so the conversion
is whatever the wiring put in ``ApiContext.audio_converter``: a callable
``(data: bytes, filename: str) -> announcement`` (``.wav() -> bytes``, ``.duration`` in
seconds, ``.source_format``) that raises ``ValueError`` with a reason for a file it cannot use
(``ivr.prompts.convert_upload`` is that function). It runs in a worker thread: decoding takes
ffmpeg a while and must not hold up other requests.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provisioning.api.framework import ApiError, ApiModel, ApiRequest, Page, PageQuery, WRITE_ROLES, route
from provisioning.api.schedules import location_of
from provisioning.attendants import announcement_users
from provisioning.tables_ivr import Announcement, AnnouncementAudio

TAGS = ["announcements"]
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_NAME = 100

UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": f"WAV, MP3, OGG, FLAC, M4A...; at most {MAX_UPLOAD_BYTES // 1048576} MB and 5 minutes"},
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME,
                 "description": "unique in the organisation; the file name when left out"},
        "locationId": {"type": "string", "description": "only this location's auto attendants may use it"},
    }}}}}


class AnnouncementOut(ApiModel):
    id: str
    name: str
    location_id: str | None = None
    file_name: str
    media_type: str = "audio/wav"
    source_format: str
    duration_seconds: float
    size: int = Field(description="bytes of the stored 8 kHz mono WAV")
    sha256: str
    used_by: list[str] = Field(default_factory=list, description="auto attendants whose menus play it")
    created_at: datetime


class AnnouncementQuery(PageQuery):
    location_id: str | None = Field(default=None, max_length=36)


def _view(session: Session, row: Announcement) -> AnnouncementOut:
    return AnnouncementOut(id=row.id, name=row.name, location_id=row.location_id, file_name=row.file_name,
                           source_format=row.source_format, duration_seconds=row.duration_ms / 1000,
                           size=row.size, sha256=row.sha256, used_by=announcement_users(session, row.id),
                           created_at=row.created_at)


def _snapshot(view: AnnouncementOut) -> dict[str, Any]:
    return view.model_dump(by_alias=True, mode="json", exclude={"used_by"})


def _owned(session: Session, org_id: str, announcement_id: str) -> Announcement:
    row = session.get(Announcement, announcement_id)
    if row is None or row.org_id != org_id:
        raise ApiError(404, "Announcement not found",
                       f"no announcement with id {announcement_id!r} in this organisation", rule="not-found")
    return row


async def _read_upload(request: web.Request) -> tuple[bytes, str, dict[str, str]]:
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "Unsupported media type", "upload the recording as multipart/form-data with a 'file' part",
                       rule="unsupported-media-type")
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES + 65536:
        raise ApiError(413, "Recording too large", f"the file may be at most {MAX_UPLOAD_BYTES // 1048576} MB",
                       field="file", rule="announcement-too-large")
    try:
        reader = await request.multipart()
        data: bytes | None = None
        filename = ""
        fields: dict[str, str] = {}
        while (part := await reader.next()) is not None:
            name = part.name or ""
            if name == "file":
                chunks, size = [], 0
                while chunk := await part.read_chunk(65536):
                    size += len(chunk)
                    if size > MAX_UPLOAD_BYTES:
                        raise ApiError(413, "Recording too large",
                                       f"the file may be at most {MAX_UPLOAD_BYTES // 1048576} MB",
                                       field="file", rule="announcement-too-large")
                    chunks.append(chunk)
                data, filename = b"".join(chunks), part.filename or ""
            elif name in ("name", "locationId"):
                raw = await part.read(decode=True)
                if len(raw) > 4 * MAX_NAME:
                    raise ApiError(422, "Invalid request", f"{name}: too long", field=name, rule="string_too_long")
                try:
                    fields[name] = raw.decode("utf-8").strip()
                except UnicodeDecodeError:
                    raise ApiError(422, "Invalid request", f"{name}: must be UTF-8 text", field=name,
                                   rule="invalid-text") from None
            else:
                raise ApiError(422, "Invalid request", f"unexpected part {name!r}: send file, name and locationId",
                               field=name or "body", rule="unknown-part")
    except (ValueError, AssertionError) as exc:  # aiohttp's complaints about a broken multipart body
        raise ApiError(400, "Malformed multipart body", f"the multipart body cannot be read: {exc}",
                       rule="malformed-multipart") from None
    if data is None:
        raise ApiError(422, "Invalid request", "the upload needs a 'file' part with the recording",
                       field="file", rule="file-required")
    for name, value in fields.items():
        if "\x00" in value or not value or (name == "name" and len(value) > MAX_NAME):
            raise ApiError(422, "Invalid request", f"{name}: must be 1 to {MAX_NAME} characters of text",
                           field=name, rule="invalid-text")
    return data, filename, fields


@route("POST", "/v1/announcements", summary="Upload an announcement", tags=TAGS, response=AnnouncementOut,
       status=201, roles=WRITE_ROLES, request_body=UPLOAD_BODY,
       responses={413: "The file is larger than 10 MB", 415: "Not multipart/form-data",
                  503: "Uploads are not configured on this server"},
       description="Converted to 8 kHz mono and level-normalised; a file that cannot be decoded, is empty, "
                   "silent or longer than 5 minutes is refused (422, field 'file', with the reason).")
async def upload_announcement(req: ApiRequest) -> AnnouncementOut:
    data, filename, fields = await _read_upload(req.raw)
    converter = req.ctx.audio_converter
    if converter is None:
        raise ApiError(503, "Uploads unavailable", "this server has no audio converter configured",
                       rule="audio-converter-unavailable")
    name = fields.get("name") or filename.strip() or "announcement"
    name = name[:MAX_NAME]
    with req.ctx.read() as session:  # cheap checks first, before minutes of decoding
        if "locationId" in fields:
            location_of(session, req.org_id, fields["locationId"])
        if session.scalar(select(Announcement.id).where(Announcement.org_id == req.org_id,
                                                        Announcement.name == name)) is not None:
            raise ApiError(409, "Conflict", f"an announcement named {name!r} exists", field="name",
                           rule="announcement-name-taken")
    try:
        converted = await asyncio.to_thread(converter, data, filename)
    except ValueError as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise ApiError(422, "Unusable recording", reason, field="file", rule="audio-unreadable") from None
    wav = converted.wav()
    with req.ctx.unit_of_work(req.actor) as uow:
        location_id = location_of(uow.session, req.org_id, fields["locationId"]).id if "locationId" in fields else None
        if uow.session.scalar(select(Announcement.id).where(Announcement.org_id == req.org_id,
                                                            Announcement.name == name)) is not None:
            raise ApiError(409, "Conflict", f"an announcement named {name!r} exists", field="name",
                           rule="announcement-name-taken")
        row = Announcement(org_id=req.org_id, location_id=location_id, name=name, file_name=filename[:255] or name,
                           source_format=str(converted.source_format)[:32],
                           duration_ms=round(converted.duration * 1000), size=len(wav),
                           sha256=hashlib.sha256(wav).hexdigest())
        uow.session.add(row)
        uow.session.flush()
        uow.session.add(AnnouncementAudio(announcement_id=row.id, wav=wav))
        uow.session.flush()
        view = _view(uow.session, row)
        uow.change("announcement", row.id, "created", None, _snapshot(view))
    return view


@route("GET", "/v1/announcements", summary="List announcements", tags=TAGS, query=AnnouncementQuery,
       response=Page[AnnouncementOut])
async def list_announcements(req: ApiRequest) -> Page[AnnouncementOut]:
    params: AnnouncementQuery = req.params
    query = select(Announcement).where(Announcement.org_id == req.org_id)
    if params.location_id:
        query = query.where(Announcement.location_id == params.location_id)
    with req.ctx.read() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Announcement.name, Announcement.id).offset(params.start).limit(params.max))
        items = [_view(session, row) for row in rows]
    return Page[AnnouncementOut](items=items, start=params.start, max=params.max, total=total)


@route("GET", "/v1/announcements/{announcementId}", summary="Get an announcement", tags=TAGS,
       response=AnnouncementOut)
async def get_announcement(req: ApiRequest) -> AnnouncementOut:
    with req.ctx.read() as session:
        return _view(session, _owned(session, req.org_id, req.path["announcementId"]))


@route("GET", "/v1/announcements/{announcementId}/audio", summary="Download an announcement as 8 kHz WAV",
       tags=TAGS, cache=False)
async def get_announcement_audio(req: ApiRequest) -> web.Response:
    with req.ctx.read() as session:
        row = _owned(session, req.org_id, req.path["announcementId"])
        audio = session.get(AnnouncementAudio, row.id)
        wav, etag = (audio.wav if audio else b""), f'"{row.sha256[:32]}"'
    if req.raw.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=wav, content_type="audio/wav", headers={"ETag": etag})


@route("DELETE", "/v1/announcements/{announcementId}", summary="Delete an announcement", tags=TAGS, status=204,
       roles=WRITE_ROLES, responses={409: "An auto attendant's menu plays the announcement"})
async def delete_announcement(req: ApiRequest) -> None:
    with req.ctx.unit_of_work(req.actor) as uow:
        row = _owned(uow.session, req.org_id, req.path["announcementId"])
        before = _view(uow.session, row)
        req.check_if_match(before)
        if before.used_by:
            raise ApiError(409, "Announcement in use", f"auto attendants play this announcement: "
                           f"{', '.join(before.used_by)}; change their menus first",
                           rule="announcement-in-use", extra={"usedBy": before.used_by})
        uow.session.delete(row)
        uow.change("announcement", row.id, "deleted", _snapshot(before), None)
