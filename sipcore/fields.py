"""Structured header field values: name-addr/addr-spec, Via, CSeq, generic parameters.

The message layer keeps header values as text; these parsers turn the ones we act on into
objects, raising FieldError (a ValueError) with a reason that ends up in the 400's phrase.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .uri import URI, URIError

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_LWS = " \t"


class FieldError(ValueError):
    """A header field value that does not follow its grammar."""


def is_token(text: str) -> bool:
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def split_commas(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements.

    Commas inside quoted strings and <...> belong to the element.
    """
    if "," not in value:
        return [value.strip()]
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


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ';name[=value]' parameters (LWS allowed around ';' and '='; quoted values kept quoted)."""
    params: dict[str, str | None] = {}
    text = text.strip()
    if not text:
        return params
    if text[0] != ";":
        raise FieldError("expected ';' before parameter")
    i, n = 1, len(text)
    while True:
        while i < n and text[i] in _LWS:
            i += 1
        start = i
        while i < n and text[i] in TOKEN_CHARS:
            i += 1
        name = text[start:i]
        if not name:
            raise FieldError("empty parameter")
        while i < n and text[i] in _LWS:
            i += 1
        value: str | None = None
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in _LWS:
                i += 1
            if i < n and text[i] == '"':
                end = _end_of_quoted(text, i)
                value = text[i:end]
                i = end
            else:
                start = i
                while i < n and text[i] not in _LWS and text[i] != ";":
                    i += 1
                value = text[start:i]
                if not value or not all(c in TOKEN_CHARS or c in ":[]" for c in value):
                    raise FieldError(f"invalid value for parameter {name}")
            while i < n and text[i] in _LWS:
                i += 1
        params[name.lower()] = value
        if i >= n:
            return params
        if text[i] != ";":
            raise FieldError(f"unexpected {text[i]!r} after parameter {name}")
        i += 1


def _end_of_quoted(text: str, i: int) -> int:
    """Index just past the closing quote of the quoted string starting at text[i]."""
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


@dataclass(slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, a URI, header parameters."""
    uri: URI
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @classmethod
    def parse(cls, value: str) -> "NameAddr":
        text = value.strip()
        if not text:
            raise FieldError("empty address")
        display: str | None = None
        i = 0
        if text[0] == '"':
            end = _end_of_quoted(text, 0)
            display = text[:end]
            i = end
            while i < len(text) and text[i] in _LWS:
                i += 1
            if i >= len(text) or text[i] != "<":
                raise FieldError("quoted display name not followed by <URI>")
        else:
            lt = text.find("<")
            if lt > 0:
                words = text[:lt].split()
                if not all(is_token(w) for w in words):
                    raise FieldError("display name must be tokens or a quoted string")
                display = " ".join(words) or None
                i = lt
            elif lt < 0:
                # addr-spec: the URI runs to the first ';' and cannot contain ',', '?' or ';'
                uri_text, semi, rest = text.partition(";")
                uri_text = uri_text.strip()
                if "?" in uri_text or "," in uri_text:
                    raise FieldError("a URI with '?' or ',' must be enclosed in <>")
                return cls(uri=_uri(uri_text), params=parse_params(semi + rest))
        gt = text.find(">", i)
        if gt < 0:
            raise FieldError("missing '>'")
        uri = _uri(text[i + 1:gt])
        return cls(uri=uri, display=display, params=parse_params(text[gt + 1:]))

    def __str__(self) -> str:
        parts = []
        if self.display:
            parts.append(self.display + " ")
        parts.append(f"<{self.uri}>")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        return "".join(parts)


def _uri(text: str) -> URI:
    try:
        return URI.parse(text)
    except URIError as exc:
        raise FieldError(f"bad URI: {exc}") from None


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> str:
        return f"{self.host.lower()}:{self.port or 5060}"

    @classmethod
    def parse(cls, value: str) -> "Via":
        proto, sep, rest = value.partition("/")
        if not sep or proto.strip().upper() != "SIP":
            raise FieldError("Via must start with SIP/2.0/transport")
        version, sep, rest = rest.partition("/")
        if not sep or version.strip() != "2.0":
            raise FieldError("unsupported SIP version in Via")
        rest = rest.lstrip(_LWS)
        i, n = 0, len(rest)
        while i < n and rest[i] in TOKEN_CHARS:
            i += 1
        transport = rest[:i].upper()
        if not transport:
            raise FieldError("Via without a transport")
        rest = rest[i:].lstrip(_LWS)
        semi = rest.find(";")
        hostport, params = (rest, "") if semi < 0 else (rest[:semi], rest[semi:])
        hostport = hostport.strip()
        if not hostport or any(c in _LWS for c in hostport):
            raise FieldError("Via without a valid sent-by")
        try:
            probe = URI.parse("sip:" + hostport)
        except URIError as exc:
            raise FieldError(f"Via sent-by: {exc}") from None
        return cls(transport=transport, host=probe.host, port=probe.port, params=parse_params(params))

    def __str__(self) -> str:
        parts = [f"SIP/2.0/{self.transport} {self.host}"]
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        return "".join(parts)


def parse_cseq(value: str) -> tuple[int, str]:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise FieldError("CSeq must be a number and a method")
    number = int(parts[0])
    if number >= 2 ** 31:
        raise FieldError("CSeq number too large")
    if not is_token(parts[1]):
        raise FieldError("CSeq method is not a token")
    return number, parts[1]
