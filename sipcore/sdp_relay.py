"""Session descriptions the relay and the IVR send: one o= line per leg (RFC 3264 §8),
descriptions pointed at the relay, our own answers, and where a description wants media.
Re-exported by sipcore.sdp, which holds the model, the parser and offer/answer."""
from __future__ import annotations

import random

from .sdp import (
    ANSWER_DIRECTION,
    HOLD_ADDRESSES,
    TRANSPORT_ATTRIBUTES,
    MediaDescription,
    Origin,
    SessionDescription,
    _digits,
    _disable,
    _is_telephone_event,
    _supported_audio,
    addrtype,
    filter_offer,
)


# --- origin and relaying ---------------------------------------------------------------

class LegOrigin:
    """The o= line we use towards one side of a call (RFC 3264 §8).

    Each description we send on a leg keeps the same username and session id; the version
    goes up by one exactly when the description differs from the last one sent.
    """

    __slots__ = ("username", "session_id", "version", "address", "_last")

    def __init__(self, address: str, username: str = "callrouter", session_id: int | None = None):
        self.username = username
        self.session_id = str(session_id if session_id is not None else random.randint(1, 2**62))
        self.version = 1
        self.address = address
        self._last: bytes | None = None

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        """Put this leg's origin on `sdp` (in place, returned), bumping the version on change."""
        sdp.origin = Origin(self.username, self.session_id, self.version, self.address,
                            "IN", addrtype(self.address))
        body = sdp.to_bytes()
        if self._last is not None and body != self._last:
            self.version += 1
            sdp.origin.session_version = self.version
            body = sdp.to_bytes()
        self._last = body
        return sdp


def _hold_direction(direction: str) -> str:
    """c=0.0.0.0 meant 'send me nothing' (RFC 2543 hold): the same as dropping 'recv'."""
    return {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)


def rewrite_for_relay(sdp: SessionDescription, address: str, port: int,
                      origin: LegOrigin | None = None, origin_username: str = "callrouter",
                      session_id: int | None = None, session_version: int | None = None,
                      ) -> SessionDescription:
    """A copy of `sdp` whose audio goes to the relay at address:port.

    The first active RTP audio stream gets the relay's port; every other active stream is
    rejected (port 0): the relay carries one stream per leg. Session and media c= become
    `address`; an RFC 2543 hold (c=0.0.0.0) becomes the equivalent direction so the hold
    survives the new address; attributes naming the sender's own transport (a=rtcp, ICE)
    are dropped. The o= line comes from `origin` (keeps the leg's session and bumps its
    version on change) or, without one, from `origin_username`/`session_id`/`session_version`
    (defaulting to the incoming description's id and version).
    """
    out = sdp.copy()
    audio_done = False
    for m in out.media:
        if not m.active:
            continue
        if audio_done or not (m.kind == "audio" and m.is_rtp):
            _disable(m)
            continue
        if (sdp.media_connection(m) or "").split("/", 1)[0] in HOLD_ADDRESSES:
            m.direction = _hold_direction(m.direction)
        m.port = port
        m.port_count = None
        m.connection = None
        m.attributes = [a for a in m.attributes if a.partition(":")[0] not in TRANSPORT_ATTRIBUTES]
        audio_done = True
    out.connection = address
    out.attributes = [a for a in out.attributes if a.partition(":")[0] not in TRANSPORT_ATTRIBUTES]
    if origin is not None:
        return origin.stamp(out)
    out.origin = Origin(
        origin_username,
        str(session_id) if session_id is not None else sdp.origin.session_id,
        session_version if session_version is not None else sdp.origin.session_version,
        address, "IN", addrtype(address),
    )
    return out


def make_answer(offer: SessionDescription, address: str, port: int, origin: LegOrigin | None = None,
                ptime: int = 20) -> SessionDescription:
    """Our own answer (the IVR's): one codec from the first usable audio stream, in the
    offerer's order, plus telephone-event when offered; every other stream rejected."""
    filtered = filter_offer(offer)
    media: list[MediaDescription] = []
    for m in filtered.media:
        if not m.active:
            media.append(MediaDescription(m.kind, 0, m.proto, list(m.formats), raw_formats=list(m.raw_formats)))
            continue
        codec = next(pt for pt in m.formats if _supported_audio(m, pt))
        te = next((pt for pt in m.formats if _is_telephone_event(m, pt)), None)
        formats = [codec] + ([te] if te is not None else [])
        rtpmap = {pt: m.codec(pt) for pt in formats}
        fmtp = {te: m.fmtp.get(te, "0-16")} if te is not None else {}
        media.append(MediaDescription("audio", port, m.proto, formats, rtpmap, fmtp,
                                      ANSWER_DIRECTION[m.direction], ptime=ptime))
    answer = SessionDescription(Origin("callrouter", "0", 0, address, "IN", addrtype(address)),
                                "callrouter", address, media)
    if origin is not None:
        return origin.stamp(answer)
    answer.origin.session_id = str(random.randint(1, 2**62))
    answer.origin.session_version = 1
    return answer


def is_hold(sdp: SessionDescription) -> bool:
    """True when the audio stream is put on hold: sendonly/inactive, or c=0.0.0.0."""
    m = sdp.first_audio()
    if m is None:
        return False
    if m.direction in ("sendonly", "inactive"):
        return True
    return (sdp.media_connection(m) or "").split("/", 1)[0] in HOLD_ADDRESSES


def rtp_destination(sdp: SessionDescription) -> tuple[str, int] | None:
    """Where the sender of `sdp` wants its audio: (address, port) of the first active RTP
    audio stream, or None when there is none or it says c=0.0.0.0. The direction does not
    matter here: a sendonly phone still has an address (and its RTCP goes there)."""
    m = sdp.first_audio()
    if m is None:
        return None
    host = (sdp.media_connection(m) or "").split("/", 1)[0]
    if not host or host in HOLD_ADDRESSES:
        return None
    return host, m.port


def rtcp_destination(sdp: SessionDescription) -> tuple[str, int] | None:
    """Where the sender wants RTCP when it says so with a=rtcp (RFC 3605), else None (then
    it is the RTP port + 1, which the relay assumes by itself)."""
    m = sdp.first_audio()
    if m is None:
        return None
    for attribute in m.attributes:
        name, _, value = attribute.partition(":")
        if name != "rtcp":
            continue
        parts = value.split()
        if not parts or not _digits(parts[0]) or not 0 < int(parts[0]) <= 65535:
            return None
        host = parts[3] if len(parts) == 4 and parts[1] == "IN" else None
        if host is None:
            rtp = rtp_destination(sdp)
            if rtp is None:
                return None
            host = rtp[0]
        return host, int(parts[0])
    return None
