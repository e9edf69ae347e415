"""Structured header field values: name-addr/addr-spec, Via, CSeq, generic parameters.

The message layer keeps header values as text; these parsers turn the ones we act on into
objects, raising FieldError (a ValueError) with a reason that ends up in the 400's phrase.
They run on every request (Via, From, To, CSeq are checked by `parse`), so the common
shapes take fast paths built on str methods, and only unusual input walks characters.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .uri import URI, URIError, split_hostport

_TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
TOKEN_CHARS = frozenset(_TOKEN)
# generic-param values that are not quoted: token / host (IPv6 references included).
_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")
# Deleting these octets from an encoded text leaves nothing when the text is a run of
# tokens separated by ';' and '=' (bytes.translate checks a whole value in one C pass).
_TOKEN_BYTES = _TOKEN.encode()
_PARAMS_BYTES = (_TOKEN + ";=").encode()
_LWS = " \t"


class FieldError(ValueError):
    """A header field value that does not follow its grammar."""


def is_token(text: str) -> bool:
    return bool(text) and not text.encode("utf-8", "surrogateescape").translate(None, _TOKEN_BYTES)


def split_commas(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements.

    Commas inside quoted strings and <...> belong to the element.
    """
    if "," not in value:
        return [value.strip()]
    if '"' not in value and "<" not in value:
        return [v.strip() for v in value.split(",")]
    items: list[str] = []
    start = 0
    in_quote = in_angle = False
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            items.append(value[start:i].strip())
            start = i + 1
        i += 1
    items.append(value[start:].strip())
    return items


def _split_semicolons(text: str) -> list[str]:
    """Split on the ';' that are not inside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = i = 0
    while True:
        semi = text.find(";", i)
        quote = text.find('"', i)
        if semi < 0:
            if quote >= 0:
                _end_of_quoted(text, quote)  # an unterminated quote is an error
            parts.append(text[start:])
            return parts
        if quote < 0 or semi < quote:
            parts.append(text[start:semi])
            start = i = semi + 1
        else:
            i = _end_of_quoted(text, quote)


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ';name[=value]' parameters (LWS allowed around ';' and '='; quoted values kept
    quoted). Names are lower-cased; a value is a token, a host or a quoted string."""
    if text[:1] != ";":
        text = text.strip()
        if not text:
            return {}
        if text[0] != ";":
            raise FieldError("expected ';' before parameter")
    body = text[1:]
    if body.isascii() and not body.encode().translate(None, _PARAMS_BYTES):
        # Only token characters, ';' and '=': what is left to check is the structure.
        params: dict[str, str | None] = {}
        for item in body.split(";"):
            name, eq, value = item.partition("=")
            if not name or eq and (not value or "=" in value):
                break  # the general path below says what is wrong
            params[name.lower()] = value if eq else None
        else:
            return params
    items = body.split(";") if '"' not in body else _split_semicolons(body)
    lws = " " in body or "\t" in body
    params = {}
    for item in items:
        name, eq, value = item.partition("=")
        if lws:
            name = name.strip(_LWS)
            value = value.strip(_LWS)
        if not name:
            raise FieldError("empty parameter")
        if not TOKEN_CHARS.issuperset(name):
            raise FieldError(f"invalid parameter name {name!r}")
        if eq:
            if value[:1] == '"':
                if _end_of_quoted(value, 0) != len(value):
                    raise FieldError(f"unexpected text after the quoted value of {name}")
            elif not value or not _VALUE_CHARS.issuperset(value):
                raise FieldError(f"invalid value for parameter {name}")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def _end_of_quoted(text: str, i: int) -> int:
    """Index just past the closing quote of the quoted string starting at text[i]."""
    j = text.find('"', i + 1)
    if j < 0:
        raise FieldError("unterminated quoted string")
    if text.find("\\", i + 1, j) < 0:
        return j + 1
    j, n = i + 1, len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == '"':
            return j + 1
        j += 1
    raise FieldError("unterminated quoted string")


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out, i = [], 0
        while i < len(inner):
            if inner[i] == "\\" and i + 1 < len(inner):
                i += 1
            out.append(inner[i])
            i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """A quoted-string for `text` (quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, a URI, header parameters.

    `display` is kept as received: a quoted string keeps its quotes and escapes (use
    `unquote`), a run of tokens is normalised to single spaces.
    """
    uri: URI
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @classmethod
    def parse(cls, value: str) -> "NameAddr":
        # A phone sends the same From, To and Contact text in every REGISTER (the challenge,
        # the answer, each refresh): parse each text once and hand out copies.
        known = _NAME_ADDRS.get(value)
        if known is None:
            if "tag=" in value:  # a From (or a To in a dialog) is new with every call
                return cls._parse(value)
            known = cls._parse(value)
            if len(_NAME_ADDRS) >= _NAME_ADDRS_MAX:
                _NAME_ADDRS.clear()
            _NAME_ADDRS[value] = known
        na = _new(cls)
        na.uri = known.uri.copy()
        na.display = known.display
        na.params = known.params.copy()
        return na

    @classmethod
    def _parse(cls, value: str) -> "NameAddr":
        text = value.strip()
        if not text:
            raise FieldError("empty address")
        display: str | None = None
        c = text[0]
        if c == "<":
            lt = 0
        elif c == '"':
            end = _end_of_quoted(text, 0)
            display = text[:end]
            lt = end
            while lt < len(text) and text[lt] in _LWS:
                lt += 1
            if lt >= len(text) or text[lt] != "<":
                raise FieldError("quoted display name not followed by <URI>")
        else:
            lt = text.find("<")
            if lt < 0:
                # addr-spec: parameters after it belong to the header field (RFC 3261
                # §20.10), so the URI ends at the first ';' and cannot contain ',' or '?'.
                uri_text, semi, rest = text.partition(";")
                uri_text = uri_text.rstrip()
                if "?" in uri_text or "," in uri_text:
                    raise FieldError("a URI with '?' or ',' must be enclosed in <>")
                try:
                    uri = URI.parse(uri_text)
                except URIError as exc:
                    raise FieldError(f"bad URI: {exc}") from None
                return cls(uri, None, parse_params(semi + rest) if semi else {})
            words = text[:lt].split()
            for w in words:
                if not TOKEN_CHARS.issuperset(w):
                    raise FieldError("display name must be tokens or a quoted string")
            display = " ".join(words) or None
        gt = text.find(">", lt + 1)
        if gt < 0:
            raise FieldError("missing '>'")
        try:
            uri = URI.parse(text[lt + 1:gt])
        except URIError as exc:
            raise FieldError(f"bad URI: {exc}") from None
        rest = text[gt + 1:]
        na = _new(cls)
        na.uri = uri
        na.display = display
        na.params = parse_params(rest) if rest else {}
        return na

    def __str__(self) -> str:
        parts = []
        display = self.display
        if display:
            if display[0] != '"' and not all(is_token(w) for w in display.split(" ")):
                display = quote(display)
            parts.append(display + " ")
        parts.append(f"<{self.uri}>")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        return "".join(parts)


_new = object.__new__
_NAME_ADDRS: dict[str, NameAddr] = {}
_NAME_ADDRS_MAX = 50_000


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]
    version: str = "2.0"  # SIP version in sent-protocol; anything but 2.0 is rejected by parse

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        port = self.port or (5061 if self.transport in ("TLS", "TLS-SCTP", "WSS") else 5060)
        return f"{self.host.lower()}:{port}"

    @classmethod
    def parse(cls, value: str) -> "Via":
        semi = value.find(";")
        head = value if semi < 0 else value[:semi]
        known = _SENT_BY.get(head)
        if known is None:
            known = _parse_sent_by(head)
            if len(_SENT_BY) >= _SENT_BY_MAX:
                _SENT_BY.clear()
            _SENT_BY[head] = known
        via = _new(cls)
        via.transport, via.host, via.port, via.version = known
        via.params = parse_params(value[semi:]) if semi >= 0 else {}
        return via

    def __str__(self) -> str:
        parts = [f"SIP/{self.version}/{self.transport} {self.host}"]
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        return "".join(parts)


# "SIP/2.0/UDP host:port" (a Via value up to its parameters) -> (transport, host, port,
# version): each phone and proxy sends the same one in every message.
_SENT_BY: dict[str, tuple[str, str, int | None, str]] = {}
_SENT_BY_MAX = 4096


def _parse_sent_by(text: str) -> tuple[str, str, int | None, str]:
    """sent-protocol LWS sent-by, with LWS allowed around '/' and ':' (RFC 3261 §20.42)."""
    if text.startswith("SIP/2.0/"):
        version, rest = "2.0", text[8:]
    else:  # LWS around the slashes, lower-case "sip", other versions
        proto, sep, rest = text.partition("/")
        if not sep or proto.strip().upper() != "SIP":
            raise FieldError("Via must start with SIP/2.0/transport")
        version, sep, rest = rest.partition("/")
        version = version.strip()
        if not sep or not is_token(version):
            raise FieldError("Via without a protocol version")
    parts = rest.split(None, 1)
    if len(parts) != 2 or not is_token(parts[0]):
        raise FieldError("Via without a transport and sent-by")
    transport, hostport = parts[0].upper(), parts[1].rstrip()
    if " " in hostport or "\t" in hostport:  # LWS is allowed around the port's colon
        hostport = ":".join(p.strip() for p in hostport.split(":"))
        if " " in hostport or "\t" in hostport:
            raise FieldError("Via without a valid sent-by")
    try:
        host, port = split_hostport(hostport)
    except URIError as exc:
        raise FieldError(f"Via sent-by: {exc}") from None
    return transport, host, port, version


def parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not parts[0].isascii():
        raise FieldError("CSeq must be a number and a method")
    digits, method = parts
    if len(digits) > 10 and len(digits.lstrip("0")) > 10:
        raise FieldError("CSeq number too large")
    number = int(digits)
    if number >= 2 ** 31:
        raise FieldError("CSeq number too large")
    if not TOKEN_CHARS.issuperset(method):
        raise FieldError("CSeq method is not a token")
    return number, method
