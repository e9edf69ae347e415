"""SIP messages: single-pass parsing of bytes into requests and responses, and back.

Header values are kept as text (folded lines joined, compact names expanded) and parsed
into structures only when asked for; the fields every request needs before anything else
can happen (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length) are checked by
`parse`, which raises ParseError carrying the status to answer with and, when the
headers were readable, the partial message so that the answer can be addressed.
"""
from __future__ import annotations

from .fields import TOKEN_CHARS, FieldError, NameAddr, Via, is_token, parse_cseq, split_commas
from .uri import URI, URIError

SIP_VERSION = "SIP/2.0"

# lower-case long name -> canonical spelling; compact forms map to their long name's key.
_DISPLAY = {
    "accept": "Accept", "accept-contact": "Accept-Contact", "accept-encoding": "Accept-Encoding",
    "accept-language": "Accept-Language", "alert-info": "Alert-Info", "allow": "Allow",
    "allow-events": "Allow-Events", "authentication-info": "Authentication-Info",
    "authorization": "Authorization", "call-id": "Call-ID", "call-info": "Call-Info",
    "contact": "Contact", "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding", "content-language": "Content-Language",
    "content-length": "Content-Length", "content-type": "Content-Type", "cseq": "CSeq",
    "date": "Date", "error-info": "Error-Info", "event": "Event", "expires": "Expires",
    "from": "From", "geolocation": "Geolocation", "identity": "Identity",
    "in-reply-to": "In-Reply-To", "max-forwards": "Max-Forwards", "min-expires": "Min-Expires",
    "mime-version": "MIME-Version", "organization": "Organization",
    "p-asserted-identity": "P-Asserted-Identity", "p-preferred-identity": "P-Preferred-Identity",
    "path": "Path", "priority": "Priority", "proxy-authenticate": "Proxy-Authenticate",
    "proxy-authorization": "Proxy-Authorization", "proxy-require": "Proxy-Require",
    "rack": "RAck", "reason": "Reason", "record-route": "Record-Route", "refer-to": "Refer-To",
    "referred-by": "Referred-By", "reject-contact": "Reject-Contact", "reply-to": "Reply-To",
    "request-disposition": "Request-Disposition", "require": "Require",
    "retry-after": "Retry-After", "route": "Route", "rseq": "RSeq", "server": "Server",
    "session-expires": "Session-Expires", "subject": "Subject", "supported": "Supported",
    "timestamp": "Timestamp", "to": "To", "unsupported": "Unsupported",
    "user-agent": "User-Agent", "via": "Via", "warning": "Warning",
    "www-authenticate": "WWW-Authenticate",
}
_COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "o": "event", "r": "refer-to", "s": "subject",
    "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}
_KEYS: dict[str, str] = {name: name for name in _DISPLAY}
_KEYS.update(_COMPACT)
# Header fields that may appear once only; a second value makes the request malformed.
_SINGLE = frozenset(("from", "to", "call-id", "cseq", "max-forwards", "content-length", "content-type"))

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 429: "Too Many Requests",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


class ParseError(ValueError):
    """A message we cannot accept. `status` is what to answer a request with (400, 505...);
    `message` is the partially parsed message when its headers could be read, so that the
    answer can be addressed (it is None when nothing usable was found)."""

    def __init__(self, status: int, reason: str, message: "Message | None" = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.message = message


def header_key(name: str) -> str:
    """The lower-case long form under which a header is stored ('v', 'VIA' -> 'via')."""
    key = _LOOKUP.get(name)
    if key is None:
        low = name.strip().lower()
        key = _KEYS.get(low, low)
    return key


class Message:
    __slots__ = ("_h", "_names", "body", "_vias", "_top", "_cseq", "_from", "_to")

    def __init__(self, headers: dict[str, list[str]] | None = None, body: bytes = b"",
                 names: dict[str, str] | None = None):
        self._h: dict[str, list[str]] = headers if headers is not None else {}
        self._names = names  # original spelling of unknown header names
        self.body = body
        self._vias: list[Via] | None = None
        self._top: Via | None = None
        self._cseq: tuple[int, str] | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None

    # -- header access -------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._h.get(header_key(name))
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        """Every header line's value for `name`, as received (not split on commas)."""
        return list(self._h.get(header_key(name), ()))

    def values(self, name: str) -> list[str]:
        """Every list element for `name`, split on top-level commas across all its lines."""
        out: list[str] = []
        for value in self._h.get(header_key(name), ()):
            out.extend(v for v in split_commas(value) if v)
        return out

    def __contains__(self, name: str) -> bool:
        return header_key(name) in self._h

    def set(self, name: str, value: str | list[str]) -> None:
        key = header_key(name)
        self._remember_name(key, name)
        self._h[key] = [value] if isinstance(value, str) else list(value)
        self._invalidate(key)

    def add(self, name: str, value: str, first: bool = False) -> None:
        key = header_key(name)
        self._remember_name(key, name)
        values = self._h.setdefault(key, [])
        values.insert(0, value) if first else values.append(value)
        self._invalidate(key)

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._h.pop(key, None)
        self._invalidate(key)

    def pop_first(self, name: str) -> str | None:
        key = header_key(name)
        values = self._h.get(key)
        if not values:
            return None
        value = values.pop(0)
        if not values:
            del self._h[key]
        self._invalidate(key)
        return value

    def headers(self) -> list[tuple[str, str]]:
        return [(self.display_name(k), v) for k, vals in self._h.items() for v in vals]

    def display_name(self, key: str) -> str:
        disp = _DISPLAY.get(key)
        if disp is None:
            disp = (self._names or {}).get(key) or "-".join(p.capitalize() for p in key.split("-"))
        return disp

    def _remember_name(self, key: str, name: str) -> None:
        if key not in _DISPLAY:
            if self._names is None:
                self._names = {}
            self._names.setdefault(key, name)

    def _invalidate(self, key: str) -> None:
        if key == "via":
            self._vias = self._top = None
        elif key == "cseq":
            self._cseq = None
        elif key == "from":
            self._from = None
        elif key == "to":
            self._to = None

    # -- structured fields (parsed once, on first use) ---------------------------------------
    @property
    def vias(self) -> list[Via]:
        if self._vias is None:
            values = self.values("via")
            if self._top is not None and values:  # the top one is already parsed
                self._vias = [self._top] + [Via.parse(v) for v in values[1:]]
            else:
                self._vias = [Via.parse(v) for v in values]
        return self._vias

    @property
    def top_via(self) -> Via:
        """The first Via value (parsed once; `parse` has already done it)."""
        if self._top is not None:
            return self._top
        if self._vias:
            return self._vias[0]
        raw = self._h.get("via")
        if not raw:
            raise FieldError("no Via")
        first = raw[0]
        if "," in first:
            first = split_commas(first)[0]
        self._top = Via.parse(first)
        return self._top

    @property
    def call_id(self) -> str:
        return self._h["call-id"][0]

    @property
    def cseq(self) -> tuple[int, str]:
        if self._cseq is None:
            self._cseq = parse_cseq(self._h["cseq"][0])
        return self._cseq

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = NameAddr.parse(self._h["from"][0])
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = NameAddr.parse(self._h["to"][0])
        return self._to

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        lines = [self.start_line()]
        for key, vals in self._h.items():
            if key == "content-length":
                continue
            disp = _DISPLAY.get(key) or self.display_name(key)
            for v in vals:
                lines.append(f"{disp}: {v}")
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        head = "\r\n".join(lines).encode("utf-8", "surrogateescape")
        return head + self.body if self.body else head

    __bytes__ = to_bytes


class Request(Message):
    __slots__ = ("method", "uri", "version")

    def __init__(self, method: str, uri: URI | str, headers: dict[str, list[str]] | None = None,
                 body: bytes = b"", version: str = SIP_VERSION, names: dict[str, str] | None = None):
        super().__init__(headers, body, names)
        self.method = method
        self.uri = URI.parse(uri) if isinstance(uri, str) else uri
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("status", "reason", "version")

    def __init__(self, status: int, reason: str | None = None,
                 headers: dict[str, list[str]] | None = None, body: bytes = b"",
                 version: str = SIP_VERSION, names: dict[str, str] | None = None):
        super().__init__(headers, body, names)
        self.status = status
        self.reason = REASONS.get(status, "Unknown") if reason is None else reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, body: bytes = b"") -> Response:
    """A response to `request` as RFC 3261 §8.2.6 builds it: Via, From, To, Call-ID and
    CSeq copied; a To tag added (when given) unless the request already had one."""
    src = request._h
    headers: dict[str, list[str]] = {}
    for key in ("via", "from", "to", "call-id", "cseq"):
        vals = src.get(key)
        if vals:
            headers[key] = list(vals)
    if to_tag and status > 100 and "to" in headers:
        to_value = headers["to"][0]
        try:
            has_tag = "tag" in request.to.params
        except (FieldError, LookupError):  # unparsable To: look for the text
            has_tag = ";tag=" in "".join(to_value.split()).lower()
        if not has_tag:
            headers["to"] = [f"{to_value};tag={to_tag}"]
    if status == 100 and "timestamp" in src:
        headers["timestamp"] = list(src["timestamp"])
    return Response(status, reason, headers, body)


# -- parsing -------------------------------------------------------------------------------
# Every spelling under which a header name is commonly written -> its key, so that the
# header loop finds most names with one dict lookup (others are stripped and lower-cased).
_LOOKUP: dict[str, str] = dict(_KEYS)
for _key, _disp in _DISPLAY.items():
    _LOOKUP[_disp] = _key
    _LOOKUP["-".join(p.capitalize() for p in _key.split("-"))] = _key
    _LOOKUP[_key.upper()] = _key
for _c, _key in _COMPACT.items():
    _LOOKUP[_c.upper()] = _key
del _key, _disp, _c


def parse(data: bytes, *, strict: bool = True) -> Request | Response:
    """Parse one message from a datagram (or a framed stream message).

    With strict (the default) the header fields every transaction needs are validated and
    a ParseError says which status the request deserves; responses that fail are for the
    caller to drop.
    """
    if data[:1] in (b"\r", b"\n"):  # CRLFs before the start line are ignored (§7.5)
        data = data.lstrip(b"\r\n")
    if not data:
        raise ParseError(400, "Empty message")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        text = data[:end].decode("utf-8", "surrogateescape")
        rest = data[end + 4:]
    else:
        end = data.find(b"\n\n")
        if end >= 0:
            text, rest = data[:end].decode("utf-8", "surrogateescape"), data[end + 2:]
        else:  # no blank line: headers only
            text, rest = data.decode("utf-8", "surrogateescape").rstrip("\r\n"), b""
    # With CRLF throughout, there are as many CRs and as many LFs as line breaks; any
    # other count means a bare LF (tolerated as a line end) or a bare CR (rejected).
    lines = text.split("\r\n")
    n = len(lines) - 1
    if text.count("\n") != n or text.count("\r") != n:
        lines = _split_lax(text)
    first = lines[0]  # not empty: leading CRLFs are gone

    headers, names, repeated, bad_line = _read_headers(lines)

    if first.startswith("SIP/"):
        msg: Request | Response = _response_from(first, headers, names)
    else:
        msg = _request_from(first, headers, names)
    if bad_line is not None:
        # The other headers were read, so the 400 can still be addressed to the sender.
        raise ParseError(400, bad_line, msg)

    # Body delimited by Content-Length; extra octets in a datagram are not ours (§18.3).
    cl_values = headers.get("content-length")
    if cl_values is None:
        msg.body = rest
    else:
        cl_text = cl_values[0]
        if len(cl_values) > 1 or "," in cl_text:
            raise ParseError(400, "Multiple Content-Length values", msg)
        length = _number(cl_text, 9)
        if length is None:
            raise ParseError(400, "Invalid Content-Length", msg)
        if length < 0:
            raise ParseError(400, "Content-Length larger than message", msg)
        if length > len(rest):
            raise ParseError(400, "Content-Length larger than message", msg)
        msg.body = rest[:length] if length < len(rest) else rest
    if strict:
        _validate(msg, repeated)
    return msg


def _read_headers(lines: list[str]) -> tuple[dict[str, list[str]], dict[str, str] | None,
                                             list[str] | None, str | None]:
    """{key: [values]} from the lines after the start line (lines[0]), the spelling of the
    unknown names, the keys that occur more than once (for _validate), and why a line
    could not be read (such lines are skipped so that the rest still addresses the 400).
    Continuation lines only cost something when they occur: they fail the name lookup first."""
    bad_line: str | None = None
    headers: dict[str, list[str]] = {}
    names: dict[str, str] | None = None
    repeated: list[str] | None = None  # keys seen more than once (checked by _validate)
    lookup = _LOOKUP
    key = None
    it = iter(lines)
    next(it)
    for line in it:
        name, sep, value = line.partition(":")
        if not sep:
            if line[:1] in (" ", "\t"):
                if key is not None or bad_line is None:  # else: it continues a skipped line
                    _fold(headers, key, line)
            elif line.strip():
                bad_line = bad_line or "Header line without a colon"
            continue
        try:
            key = lookup[name]
        except KeyError:
            if name[:1] in (" ", "\t"):  # a continuation line with a ':' in it
                _fold(headers, key, line)
                continue
            stripped = name.rstrip()
            low = stripped.lower()
            key = lookup.get(low)
            if key is None:
                if not is_token(stripped):
                    bad_line = bad_line or "Invalid header name"
                    key = None
                    continue
                key = low
                if names is None:
                    names = {}
                names.setdefault(key, stripped)
        if key in headers:
            headers[key].append(value.strip())
            if repeated is None:
                repeated = [key]
            else:
                repeated.append(key)
        else:
            headers[key] = [value.strip()]

    return headers, names, repeated, bad_line


def _split_lax(text: str) -> list[str]:
    """The lines of a header section that does not end every line with CRLF: a bare LF
    ends a line too (leniency), a CR anywhere but before LF is malformed."""
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        raise ParseError(400, "Bare CR in the header section")
    return text.split("\n")


def _fold(headers: dict[str, list[str]], key: str | None, line: str) -> None:
    """Join a continuation line (it starts with SP or HT) to the value before (§7.3.1)."""
    if key is None:
        raise ParseError(400, "Continuation line before any header")
    values = headers[key]
    values[-1] = (values[-1] + " " + line.strip()).strip()


def _is_version(text: str) -> bool:
    """SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (case-insensitive)."""
    proto, slash, number = text.partition("/")
    major, dot, minor = number.partition(".")
    return (proto.upper() == "SIP" and bool(slash) and bool(dot) and major.isdigit()
            and minor.isdigit() and number.isascii())


def _request_from(first: str, headers: dict[str, list[str]], names) -> Request:
    parts = first.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
        raise ParseError(400, "Malformed Request-Line", _bare(headers, names))
    method, uri_text, version = parts
    if not TOKEN_CHARS.issuperset(method):
        raise ParseError(400, "Invalid method", _bare(headers, names))
    if version != SIP_VERSION:
        if version.upper() == SIP_VERSION:
            version = SIP_VERSION
        elif not _is_version(version):
            raise ParseError(400, "Malformed SIP-Version", _bare(headers, names))
    try:
        uri = URI.parse(uri_text)
    except URIError as exc:
        if version != SIP_VERSION:
            raise ParseError(505, "Version Not Supported", _bare(headers, names)) from None
        raise ParseError(400, f"Bad Request-URI: {exc}", _bare(headers, names)) from None
    req = _new(Request)
    req._h, req._names, req.body = headers, names, b""
    req._vias = req._top = req._cseq = req._from = req._to = None
    req.method, req.uri, req.version = method, uri, version
    if version != SIP_VERSION:
        raise ParseError(505, "Version Not Supported", req)
    if uri.headers:
        raise ParseError(400, "Request-URI must not contain header fields", req)
    return req


def _response_from(first: str, headers: dict[str, list[str]], names) -> Response:
    version, _, rest = first.partition(" ")
    code, _, reason = rest.partition(" ")
    if (version.upper() != SIP_VERSION or len(code) != 3 or not code.isdigit()
            or not code.isascii() or not "100" <= code <= "699"):
        raise ParseError(400, "Malformed Status-Line")
    resp = _new(Response)
    Message.__init__(resp, headers, b"", names)
    resp.status, resp.reason, resp.version = int(code), reason, SIP_VERSION
    return resp


_new = object.__new__


def _number(text: str, max_digits: int) -> int | None:
    """The value of a run of ASCII digits (leading zeros allowed); -1 when it has more than
    `max_digits` significant digits; None when it is not a number."""
    if not text.isdigit() or not text.isascii():
        return None
    if len(text) > max_digits:
        text = text.lstrip("0") or "0"
        if len(text) > max_digits:
            return -1
    return int(text)


def _bare(headers: dict[str, list[str]], names) -> Message:
    return Message(headers, b"", names)


def _validate(msg: Request | Response, repeated: list[str] | None = None) -> None:
    h = msg._h
    try:
        via, from_, to, call_id, cseq = h["via"], h["from"], h["to"], h["call-id"], h["cseq"]
    except KeyError:
        for key in ("via", "from", "to", "call-id", "cseq"):
            if key not in h:
                raise ParseError(400, f"Missing {_DISPLAY[key]} header", msg) from None
        raise
    if repeated is not None:
        for key in repeated:
            if key in _SINGLE:
                raise ParseError(400, f"Multiple {_DISPLAY[key]} values", msg)
    top = via[0]
    if "," in top:
        top = split_commas(top)[0]
    try:
        top_via = Via.parse(top)
    except FieldError as exc:
        raise ParseError(400, f"Bad Via: {exc}", msg) from None
    if top_via.version != "2.0":
        raise ParseError(400, "Bad Via: SIP version is not 2.0", msg)
    msg._top = top_via
    try:
        msg._cseq = parse_cseq(cseq[0])
    except FieldError as exc:
        raise ParseError(400, f"Bad CSeq: {exc}", msg) from None
    try:
        msg._from = NameAddr.parse(from_[0])
    except FieldError as exc:
        raise ParseError(400, f"Bad From header: {exc}", msg) from None
    try:
        msg._to = NameAddr.parse(to[0])
    except FieldError as exc:
        raise ParseError(400, f"Bad To header: {exc}", msg) from None
    cid = call_id[0]
    if not cid or " " in cid or "\t" in cid:
        raise ParseError(400, "Bad Call-ID", msg)
    if msg.__class__ is Request:
        if msg._cseq[1] != msg.method:
            # RFC 4475 §3.1.2.18 prefers 501 when the method is unknown; 400 is allowed too.
            raise ParseError(400, "CSeq method does not match the request method", msg)
        mf = h.get("max-forwards")
        if mf is not None:
            hops = _number(mf[0], 3)
            if hops is None or not 0 <= hops <= 255:
                raise ParseError(400, "Invalid Max-Forwards", msg)
        date = h.get("date")
        if date is not None and not date[0].endswith(" GMT"):
            raise ParseError(400, "Date must be in GMT", msg)
