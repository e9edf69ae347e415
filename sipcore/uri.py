"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with the §19.1.4 comparison rules.

Parsing is strict where the grammar is unambiguous (no whitespace, no angle brackets, a
valid host) because a URI that smuggles those in is exactly what RFC 4475 §3.1.2.7-8 tests.
Unknown schemes are kept opaque: they are legal in header fields and only the request-URI
check decides whether we can serve them (416).
"""
from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

_HOST_RE = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]"                                  # IPv6 reference
    r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"                          # IPv4
    r"|(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*"        # hostname labels
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)\Z"
)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*\Z")
_FORBIDDEN = frozenset(' \t\r\n<>"')
# Parameters whose presence in only one URI makes two SIP URIs differ (RFC 3261 §19.1.4).
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr")


class URIError(ValueError):
    """A URI that does not follow the grammar; str() says what is wrong."""


def unescape(text: str) -> str:
    """Decode %HH escapes, keeping octets that are not UTF-8 (escaped NULs are legal)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


class URI:
    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque")

    def __init__(self, scheme: str = "sip", user: str | None = None, host: str = "",
                 port: int | None = None, params: dict[str, str | None] | None = None,
                 headers: dict[str, str] | None = None, password: str | None = None,
                 opaque: str | None = None):
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params if params is not None else {}
        self.headers = headers if headers is not None else {}
        self.opaque = opaque  # the part after "scheme:" for schemes we do not interpret

    @classmethod
    def parse(cls, text: str) -> "URI":
        if not text:
            raise URIError("empty URI")
        for ch in text:
            if ch in _FORBIDDEN:
                raise URIError(f"character {ch!r} not allowed in a URI")
        scheme, sep, rest = text.partition(":")
        if not sep or not _SCHEME_RE.match(scheme):
            raise URIError("missing or invalid scheme")
        scheme_l = scheme.lower()
        if scheme_l in ("sip", "sips"):
            return cls._parse_sip(scheme_l, rest)
        if scheme_l == "tel":
            number, _, params = rest.partition(";")
            if not number:
                raise URIError("tel URI without a number")
            return cls(scheme="tel", user=number, params=_parse_params(params) if params else {})
        if not rest:
            raise URIError("URI without a scheme-specific part")
        return cls(scheme=scheme_l, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> "URI":
        # '@' cannot appear unescaped after the host, while '?', ';' and ':' can appear in
        # the user part (RFC 4475 §3.1.1.2): split the userinfo off first.
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1:]
            if not userinfo:
                raise URIError("empty user part before '@'")
            user, colon, pw = userinfo.partition(":")
            password = pw if colon else None
        rest, _, hdrs = rest.partition("?")
        hostport, semi, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        headers: dict[str, str] = {}
        if hdrs:
            for item in hdrs.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise URIError("malformed URI header")
                headers[name] = value
        return cls(scheme=scheme, user=user, password=password, host=host, port=port,
                   params=_parse_params(params) if semi else {}, headers=headers)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            if self.scheme != "tel":
                parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        for name, value in self.params.items():
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)

    def __repr__(self) -> str:
        return f"URI({str(self)!r})"

    @property
    def host_key(self) -> str:
        return self.host.lower()

    def aor(self) -> str:
        """Address of record: scheme, unescaped user and host, nothing else (lower-case host)."""
        user = unescape(self.user) if self.user else ""
        return f"{self.scheme}:{user}@{self.host.lower()}" if user else f"{self.scheme}:{self.host.lower()}"

    def equivalent(self, other: "URI") -> bool:
        """RFC 3261 §19.1.4 comparison."""
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if (self.user is None) != (other.user is None):
            return False
        if self.user is not None and unescape(self.user) != unescape(other.user or ""):
            return False
        if (self.password or None) != (other.password or None):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {k.lower(): v for k, v in self.params.items()}
        theirs = {k.lower(): v for k, v in other.params.items()}
        for name in _SIGNIFICANT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        if ("transport" in mine) != ("transport" in theirs):
            return False
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (unescape(a).lower() if a else a) != (unescape(b).lower() if b else b):
                return False
        mine_h = {k.lower(): unescape(v) for k, v in self.headers.items()}
        theirs_h = {k.lower(): unescape(v) for k, v in other.headers.items()}
        return mine_h == theirs_h


def _split_hostport(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise URIError("unterminated IPv6 reference")
        host, rest = hostport[:end + 1], hostport[end + 1:]
    else:
        host, _, port_text = hostport.partition(":")
        rest = ":" + port_text if _ else ""
    if not host or not _HOST_RE.match(host):
        raise URIError(f"invalid host {host!r}")
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        raise URIError("invalid port")
    port = int(rest[1:])
    if port > 65535:
        raise URIError("port out of range")
    return host, port


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise URIError("empty URI parameter")
        params[name] = value if eq else None
    return params
