"""Session descriptions (RFC 4566) and offer/answer (RFC 3264), the subset real phones use.

The B2BUA never lets one side's media description reach the other untouched: it keeps
only the codecs the relay and the IVR understand (`filter_offer`), points the media at the
relay (`rewrite_for_relay`), and checks what came back (`negotiate`). The IVR answers
offers itself (`make_answer`).

Parsing keeps every line it does not interpret, verbatim and in order, so a description
survives a round trip; what it does interpret (o=, c=, m=, rtpmap, fmtp, ptime, direction)
is checked, and garbage raises `SdpError` whose `reason` is fit for a 400/488 Warning.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# What the answerer says back to each offered direction (RFC 3264 §6.1).
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}

PCMU, PCMA, TELEPHONE_EVENT = "PCMU", "PCMA", "telephone-event"
# Static payload types that need no rtpmap (RFC 3551 table 4); only those we might meet.
STATIC_RTPMAP: dict[int, tuple[str, int, int]] = {
    0: (PCMU, 8000, 1), 3: ("GSM", 8000, 1), 4: ("G723", 8000, 1), 8: (PCMA, 8000, 1),
    9: ("G722", 8000, 1), 18: ("G729", 8000, 1),
}
# Codecs carried: G.711 both laws at 8 kHz mono, and RFC 4733 events at the same clock.
SUPPORTED_AUDIO = ((PCMU, 8000), (PCMA, 8000))
SUPPORTED = {0: (PCMU, 8000, 1), 8: (PCMA, 8000, 1)}  # plus telephone-event/8000 on a dynamic pt
RTP_PROTOS = ("RTP/AVP", "RTP/AVPF")
# Attributes that name the offerer's own transport addresses; a relayed description must not
# carry them or the far end would bypass (or fail to reach) the relay.
TRANSPORT_ATTRIBUTES = (
    "rtcp", "candidate", "remote-candidates", "ice-ufrag", "ice-pwd", "ice-options",
    "ice-lite", "ice-mismatch", "end-of-candidates",
)
HOLD_ADDRESSES = ("0.0.0.0",)


class SdpError(ValueError):
    """The body is not a session description we can use; `reason` says why."""

    status = 400

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class NoCommonCodec(SdpError):
    """Nothing left to talk with: answer 488 Not Acceptable Here."""

    status = 488


@dataclass(slots=True)
class Origin:
    username: str
    session_id: str
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def line(self) -> str:
        return (f"o={self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass(slots=True)
class MediaDescription:
    kind: str                                   # "audio", "video", "image", "application"...
    port: int                                   # 0: the stream is rejected or removed
    proto: str                                  # "RTP/AVP"...
    formats: list[int]                          # payload types, in preference order (RTP protos)
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # pt: (name, clock, channels)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"                 # effective: its own a=, else the session's
    connection: str | None = None               # media-level c= address
    ptime: int | None = None
    port_count: int | None = None               # m=audio 49170/2
    raw_formats: list[str] = field(default_factory=list)  # non-RTP protos: fmt tokens verbatim
    info: str | None = None                     # i=
    bandwidth: list[str] = field(default_factory=list)    # b= and k= lines, verbatim
    attributes: list[str] = field(default_factory=list)   # other a= values, verbatim, in order

    def codec(self, pt: int) -> tuple[str, int, int] | None:
        """(encoding, clock, channels) for a payload type: its rtpmap, else the static table."""
        found = self.rtpmap.get(pt)
        return found if found is not None else STATIC_RTPMAP.get(pt)

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOS

    @property
    def active(self) -> bool:
        return self.port != 0

    def lines(self) -> list[str]:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        fmts = [str(pt) for pt in self.formats] if self.formats else self.raw_formats
        out = [f"m={self.kind} {port} {self.proto} {' '.join(fmts)}".rstrip()]
        if self.info is not None:
            out.append(f"i={self.info}")
        if self.connection is not None:
            out.append(f"c=IN {addrtype(self.connection)} {self.connection}")
        out.extend(self.bandwidth)
        for pt in self.formats:
            codec = self.rtpmap.get(pt)
            if codec is not None:
                name, clock, channels = codec
                out.append(f"a=rtpmap:{pt} {name}/{clock}" + (f"/{channels}" if channels != 1 else ""))
            if pt in self.fmtp:
                out.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime is not None:
            out.append(f"a=ptime:{self.ptime}")
        out.extend(f"a={a}" for a in self.attributes)
        out.append(f"a={self.direction}")
        return out


@dataclass(slots=True)
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    connection: str | None = None               # session-level c= address
    media: list[MediaDescription] = field(default_factory=list)
    direction: str | None = None                # session-level a=sendrecv... (media inherit it)
    before_connection: list[str] = field(default_factory=list)  # i= u= e= p= lines, verbatim
    after_connection: list[str] = field(default_factory=list)   # b= t= r= z= k= lines, verbatim
    attributes: list[str] = field(default_factory=list)         # other session a= values

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        return parse(data)

    def to_bytes(self) -> bytes:
        out = ["v=0", self.origin.line(), f"s={self.session_name}"]
        out.extend(self.before_connection)
        if self.connection is not None:
            out.append(f"c=IN {addrtype(self.connection)} {self.connection}")
        out.extend(self.after_connection)
        if not any(line.startswith("t=") for line in self.after_connection):
            out.append("t=0 0")
        out.extend(f"a={a}" for a in self.attributes)
        if self.direction is not None:
            out.append(f"a={self.direction}")
        for m in self.media:  # each also states its effective direction
            out.extend(m.lines())
        return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        return replace(
            self, origin=replace(self.origin),
            media=[replace(m, formats=list(m.formats), rtpmap=dict(m.rtpmap), fmtp=dict(m.fmtp),
                           raw_formats=list(m.raw_formats), bandwidth=list(m.bandwidth),
                           attributes=list(m.attributes)) for m in self.media],
            before_connection=list(self.before_connection),
            after_connection=list(self.after_connection), attributes=list(self.attributes),
        )

    def media_connection(self, m: MediaDescription) -> str | None:
        return m.connection if m.connection is not None else self.connection

    def first_audio(self) -> MediaDescription | None:
        """The audio stream calls use: the first active RTP audio m= line."""
        for m in self.media:
            if m.kind == "audio" and m.active and m.is_rtp:
                return m
        return None


def addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


# --- parsing ---------------------------------------------------------------------------

def parse(data: bytes | str) -> SessionDescription:
    """Parse a session description; `SdpError` says what is wrong with one we cannot use."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8", "surrogateescape")
    else:
        text = data
    lines = [line for line in text.replace("\r\n", "\n").split("\n")]
    while lines and lines[-1].strip() == "":
        lines.pop()
    if not lines:
        raise SdpError("empty session description")
    if lines[0].strip() != "v=0":
        raise SdpError(f"first line must be v=0, got {_show(lines[0])}")
    origin: Origin | None = None
    sdp = SessionDescription(origin=Origin("-", "0", 0, "0.0.0.0"))
    media: MediaDescription | None = None
    explicit_direction: dict[int, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"line {number} is not type=value: {_show(line)}")
        kind, value = line[0], line[2:]
        if media is None:
            if kind == "o":
                origin = _parse_origin(value, number)
                sdp.origin = origin
            elif kind == "s":
                sdp.session_name = value
            elif kind == "c":
                sdp.connection = _parse_connection(value, number)
            elif kind == "a":
                if value in DIRECTIONS:
                    sdp.direction = value
                else:
                    sdp.attributes.append(value)
            elif kind == "m":
                media = _parse_media_line(value, number)
                sdp.media.append(media)
            elif kind in "iuep":
                sdp.before_connection.append(line)
            elif kind == "v":
                raise SdpError(f"line {number}: a second v= line")
            else:
                sdp.after_connection.append(line)
        else:
            if kind == "m":
                media = _parse_media_line(value, number)
                sdp.media.append(media)
            elif kind == "c":
                media.connection = _parse_connection(value, number)
            elif kind == "a":
                _parse_media_attribute(media, value, number, explicit_direction, len(sdp.media) - 1)
            elif kind == "i":
                media.info = value
            elif kind in "bk":
                media.bandwidth.append(line)
            else:
                raise SdpError(f"line {number}: {kind}= is not allowed in a media section")
    if origin is None:
        raise SdpError("no o= (origin) line")
    if not any(line.startswith("t=") for line in sdp.after_connection):
        sdp.after_connection.append("t=0 0")  # mandatory; some phones leave it out
    for index, m in enumerate(sdp.media):
        m.direction = explicit_direction.get(index, sdp.direction or "sendrecv")
        if m.active and m.is_rtp and sdp.media_connection(m) is None:
            raise SdpError(f"m={m.kind} line {index + 1} has no c= address, neither its own nor the session's")
    return sdp


def _digits(text: str) -> bool:
    # str.isdigit() also accepts digits such as "²" that int() refuses.
    return text.isascii() and text.isdigit()


def _show(line: str) -> str:
    return repr(line[:60])


def _check_address(address: str, number: int) -> str:
    host = address.split("/", 1)[0]  # multicast TTL / count
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # A fully qualified domain name is allowed by RFC 4566; only reject what is neither.
        if not host or any(not (ch.isalnum() or ch in "-.") for ch in host):
            raise SdpError(f"line {number}: {address!r} is not an address") from None
    return address


def _parse_origin(value: str, number: int) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"line {number}: o= needs 6 fields, got {len(parts)}")
    username, session_id, version, nettype, atype, address = parts
    if not _digits(session_id):
        raise SdpError(f"line {number}: o= session id {session_id!r} is not a number")
    if not _digits(version):
        raise SdpError(f"line {number}: o= session version {version!r} is not a number")
    return Origin(username, session_id, int(version), _check_address(address, number), nettype, atype)


def _parse_connection(value: str, number: int) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"line {number}: c= must be 'IN IP4|IP6 address', got {value[:60]!r}")
    return _check_address(parts[2], number)


def _parse_media_line(value: str, number: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"line {number}: m= needs media, port, proto and formats")
    kind, port_text, proto, fmts = parts[0], parts[1], parts[2], parts[3:]
    port_count = None
    if "/" in port_text:
        port_text, count = port_text.split("/", 1)
        if not _digits(count):
            raise SdpError(f"line {number}: m= port count {count!r} is not a number")
        port_count = int(count)
    if not _digits(port_text) or int(port_text) > 65535:
        raise SdpError(f"line {number}: m= port {port_text!r} is not a port number")
    m = MediaDescription(kind=kind, port=int(port_text), proto=proto, formats=[], port_count=port_count)
    if m.is_rtp:
        for fmt in fmts:
            if not _digits(fmt) or int(fmt) > 127:
                raise SdpError(f"line {number}: m= payload type {fmt!r} is not 0-127")
            m.formats.append(int(fmt))
        if not m.formats and m.active:
            raise SdpError(f"line {number}: m={kind} offers no payload types")
    else:
        m.raw_formats = fmts
    return m


def _parse_media_attribute(m: MediaDescription, value: str, number: int,
                           explicit_direction: dict[int, str], index: int) -> None:
    if value in DIRECTIONS:
        explicit_direction[index] = value
        return
    name, _, rest = value.partition(":")
    listed = rest.split(" ", 1)[0]
    if name in ("rtpmap", "fmtp") and not (_digits(listed) and int(listed) in m.formats):
        # For a payload type the m= line does not list: meaningless, kept verbatim.
        m.attributes.append(value)
    elif name == "rtpmap" and m.is_rtp:
        pt_text, _, spec = rest.partition(" ")
        pieces = spec.strip().split("/")
        if (not _digits(pt_text) or int(pt_text) > 127 or len(pieces) not in (2, 3)
                or not pieces[0] or not _digits(pieces[1])
                or (len(pieces) == 3 and not _digits(pieces[2]))):
            raise SdpError(f"line {number}: malformed rtpmap {value[:60]!r}")
        channels = int(pieces[2]) if len(pieces) == 3 else 1
        m.rtpmap[int(pt_text)] = (pieces[0], int(pieces[1]), channels)
    elif name == "fmtp" and m.is_rtp:
        pt_text, _, params = rest.partition(" ")
        m.fmtp[int(pt_text)] = params.strip()
    elif name == "ptime" and _digits(rest.strip().replace(".", "", 1)):
        # Some phones write a=ptime:20.0; the value is milliseconds either way.
        m.ptime = int(float(rest))
    else:
        m.attributes.append(value)


# --- offer/answer ----------------------------------------------------------------------

def _codec_key(m: MediaDescription, pt: int) -> tuple[str, int] | None:
    codec = m.codec(pt)
    if codec is None:
        return None
    name, clock, channels = codec
    return (name.upper(), clock) if channels == 1 else None


def _is_telephone_event(m: MediaDescription, pt: int) -> bool:
    codec = m.rtpmap.get(pt)
    return codec is not None and codec[0].lower() == TELEPHONE_EVENT and codec[1] == 8000


def _supported_audio(m: MediaDescription, pt: int) -> bool:
    key = _codec_key(m, pt)
    return key in SUPPORTED_AUDIO


def _disable(m: MediaDescription) -> None:
    """Reject a stream in place the RFC 3264 way: port 0, formats kept."""
    m.port = 0
    m.port_count = None


def filter_offer(offer: SessionDescription) -> SessionDescription:
    """A copy of `offer` carrying only what we support, for the other leg.

    The first RTP audio stream keeps its PCMU/PCMA payload types (in the offerer's order)
    and telephone-event/8000 with its pt and fmtp; every other stream is rejected with port
    0 (kept, so the answer has as many m= lines as the offer, RFC 3264 §6). Raises
    `NoCommonCodec` when no audio codec is left.
    """
    out = offer.copy()
    chosen: MediaDescription | None = None
    for m in out.media:
        if chosen is not None or not (m.kind == "audio" and m.active and m.is_rtp):
            _disable(m)
            continue
        audio = [pt for pt in m.formats if _supported_audio(m, pt)]
        if not audio:
            _disable(m)
            continue
        keep = [pt for pt in m.formats if pt in audio or _is_telephone_event(m, pt)]
        m.formats = keep
        m.rtpmap = {pt: m.rtpmap[pt] for pt in keep if pt in m.rtpmap}
        m.fmtp = {pt: m.fmtp[pt] for pt in keep if pt in m.fmtp}
        chosen = m
    if chosen is None:
        offered = sorted({_describe(m, pt) for m in offer.media if m.kind == "audio" for pt in m.formats})
        raise NoCommonCodec("no common audio codec: offered " + (", ".join(offered) or "none")
                            + "; supported PCMU/8000, PCMA/8000")
    return out


def _describe(m: MediaDescription, pt: int) -> str:
    codec = m.codec(pt)
    return f"{codec[0]}/{codec[1]}" if codec else f"pt {pt}"


@dataclass(slots=True, frozen=True)
class Negotiated:
    """What one audio stream will carry after an offer and its answer."""
    codec_pt: int                     # payload type of the audio codec (as the answer numbers it)
    encoding: str                     # "PCMU" or "PCMA"
    clock_rate: int
    telephone_event_pt: int | None    # the answer's pt for RFC 4733 events, if both sides have them
    offer_telephone_event_pt: int | None
    ptime: int                        # milliseconds per packet the answerer asked for (default 20)
    direction: str                    # the answer's direction
    media_index: int                  # which m= line


def _check_streams(offer: SessionDescription, answer: SessionDescription) -> None:
    if len(answer.media) != len(offer.media):
        raise SdpError(f"answer has {len(answer.media)} m= lines, the offer had {len(offer.media)}")
    for index, (o, a) in enumerate(zip(offer.media, answer.media), start=1):
        if o.kind != a.kind:
            raise SdpError(f"m= line {index}: answer is {a.kind}, the offer was {o.kind}")
        if a.active and not o.active:
            raise SdpError(f"m= line {index}: answer accepts a stream the offer rejected")


def check_answer(offer: SessionDescription, answer: SessionDescription) -> None:
    """Raise `SdpError` unless `answer` is a valid RFC 3264 answer to `offer`: as many m=
    lines of the same kinds, nothing accepted that was rejected, no format not offered."""
    _check_streams(offer, answer)
    for index, (o, a) in enumerate(zip(offer.media, answer.media), start=1):
        if not a.active or not a.is_rtp:
            continue
        offer_te = any(_is_telephone_event(o, pt) for pt in o.formats)
        offer_codecs = {_codec_key(o, pt) for pt in o.formats}
        for pt in a.formats:
            if _is_telephone_event(a, pt):
                fits = offer_te
            elif (key := _codec_key(a, pt)) is not None:
                fits = key in offer_codecs
            else:  # no rtpmap and not static: only the offer's own number can mean it
                fits = pt in o.formats
            if not fits:
                raise SdpError(f"m= line {index}: answer has {_describe(a, pt)}, which was not offered")


def answer_matches_offer(offer: SessionDescription, answer: SessionDescription) -> bool:
    try:
        check_answer(offer, answer)
    except SdpError:
        return False
    return True


def negotiate(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """The codec and telephone-event payload types an answer settles on.

    Raises `SdpError` for an answer whose streams do not match the offer's, `NoCommonCodec`
    when it accepts no offered PCMU/PCMA audio. Formats the answer adds that were never
    offered (a phone's harmless sloppiness) are ignored rather than failing the call;
    `check_answer` is the strict test.
    """
    _check_streams(offer, answer)
    for index, (o, a) in enumerate(zip(offer.media, answer.media)):
        if not (a.kind == "audio" and a.active and a.is_rtp):
            continue
        offered = {_codec_key(o, pt) for pt in o.formats}
        codec_pt = next((pt for pt in a.formats if _supported_audio(a, pt) and _codec_key(a, pt) in offered), None)
        if codec_pt is None:
            continue
        name, clock = _codec_key(a, codec_pt)
        te = next((pt for pt in a.formats if _is_telephone_event(a, pt)), None)
        offer_te = next((pt for pt in o.formats if _is_telephone_event(o, pt)), None)
        return Negotiated(codec_pt, name, clock, te if offer_te is not None else None,
                          offer_te if te is not None else None,
                          a.ptime or 20, a.direction, index)
    raise NoCommonCodec("the answer accepts no PCMU/8000 or PCMA/8000 audio stream")


# Building descriptions for the relay and the IVR lives in sdp_relay; the names stay here.
from .sdp_relay import (  # noqa: E402,F401  (re-exported)
    LegOrigin,
    is_hold,
    make_answer,
    rewrite_for_relay,
    rtcp_destination,
    rtp_destination,
)
