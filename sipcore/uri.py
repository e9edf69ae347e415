"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with the §19.1.4 comparison rules.

Parsing is strict where the grammar is unambiguous (no whitespace, no angle brackets, a
valid host) because a URI that smuggles those in is exactly what RFC 4475 §3.1.2.7-8 tests.
Unknown schemes are kept opaque: they are legal in header fields and only the request-URI
check decides whether we can serve them (416).

Components are stored as received (escapes kept); `unescape` decodes them when a value is
needed, and `equivalent` compares them the way §19.1.4 says.
"""
from __future__ import annotations

import ipaddress
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
_SIGNIFICANT_PARAMS = ("transport", "user", "ttl", "method", "maddr")
# RFC 3261 §25.1 "reserved": an escaped reserved character is not the same as the character.
_RESERVED = frozenset(";/?:@&=+$,")
_HEX = frozenset("0123456789abcdefABCDEF")
# host[:port] texts seen to be valid -> (host, port), so that the host regex runs once per
# distinct host, not once per URI (the same few hosts fill most messages).
_HOSTPORTS: dict[str, tuple[str, int | None]] = {}
_HOSTPORTS_MAX = 4096
# SIP URI text -> its parsed components. The same addresses of record, registrar and proxy
# URIs come back in message after message; a hit builds a fresh URI (own params and
# headers dicts) without parsing. Bounded: emptied when full.
_PARSED: dict[str, tuple] = {}
_PARSED_MAX = 8192


class URIError(ValueError):
    """A URI that does not follow the grammar; str() says what is wrong."""


def unescape(text: str) -> str:
    """Decode %HH escapes, keeping octets that are not UTF-8 (escaped NULs are legal)."""
    if "%" not in text:
        return text
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _canonical(text: str) -> str:
    """`text` with escapes of unreserved characters decoded and the others upper-cased, so
    that two spellings compare equal exactly when RFC 3261 §19.1.4 says they are the same
    ("%61lice" is "alice"; "%3B" is "%3b" but not ";")."""
    if "%" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%" and i + 2 < n and text[i + 1] in _HEX and text[i + 2] in _HEX:
            ch = chr(int(text[i + 1:i + 3], 16))
            out.append(("%" + text[i + 1:i + 3].upper()) if ch in _RESERVED or ch == "%" else ch)
            i += 3
        else:
            out.append(c)
            i += 1
    return "".join(out)


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
        known = _PARSED.get(text)
        if known is not None:
            uri = _new_uri(cls)
            uri.scheme, uri.user, uri.password, uri.host, uri.port, params, headers = known
            uri.params = params.copy() if params else {}
            uri.headers = headers.copy() if headers else {}
            uri.opaque = None
            return uri
        if not text:
            raise URIError("empty URI")
        # isprintable() rules out controls (HT, CR, LF, NUL...) in one C pass.
        if not text.isprintable() or " " in text or "<" in text or ">" in text or '"' in text:
            ch = next(c for c in text if c in _FORBIDDEN or not c.isprintable())
            raise URIError(f"character {ch!r} not allowed in a URI")
        scheme, sep, rest = text.partition(":")
        if scheme != "sip" and scheme != "sips":
            scheme_l = scheme.lower()
            if scheme_l != "sip" and scheme_l != "sips":
                return cls._parse_other(scheme, sep, rest)
            scheme = scheme_l
        # '@' cannot appear unescaped after the host, while '?', ';' and ':' can appear in
        # the user part (RFC 4475 §3.1.1.2, §3.1.1.9): split the userinfo off first.
        user = password = None
        at = rest.rfind("@")
        if at >= 0:
            user = rest[:at]
            rest = rest[at + 1:]
            if not user:
                raise URIError("empty user part before '@'")
            if ":" in user:
                user, _, password = user.partition(":")
        headers: dict[str, str] = {}
        if "?" in rest:
            rest, _, hdrs = rest.partition("?")
            for item in hdrs.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq:
                    raise URIError("malformed URI header")
                headers[name] = value
        semi = rest.find(";")
        if semi >= 0:
            params = _parse_params(rest[semi + 1:])
            rest = rest[:semi]
        else:
            params = {}
        try:
            host, port = _HOSTPORTS[rest]
        except KeyError:
            host, port = split_hostport(rest)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = (scheme, user, password, host, port, params.copy(), headers.copy())
        uri = _new_uri(cls)
        uri.scheme = scheme
        uri.user = user
        uri.password = password
        uri.host = host
        uri.port = port
        uri.params = params
        uri.headers = headers
        uri.opaque = None
        return uri

    @classmethod
    def _parse_other(cls, scheme: str, sep: str, rest: str) -> "URI":
        if not sep or not _SCHEME_RE.match(scheme):
            raise URIError("missing or invalid scheme")
        scheme_l = scheme.lower()
        if scheme_l == "tel":
            number, semi, params = rest.partition(";")
            if not number:
                raise URIError("tel URI without a number")
            return cls(scheme="tel", user=number, params=_parse_params(params) if semi else {})
        if not rest:
            raise URIError("URI without a scheme-specific part")
        return cls(scheme=scheme_l, opaque=rest)

    def copy(self) -> "URI":
        """An independent copy (its own params and headers dicts)."""
        uri = _new_uri(URI)
        uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.opaque = (
            self.scheme, self.user, self.password, self.host, self.port, self.opaque)
        uri.params = self.params.copy()
        uri.headers = self.headers.copy()
        return uri

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
        """Address of record: scheme, unescaped user and host, nothing else (lower-case host).
        A tel URI is its number; an opaque URI is itself."""
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        user = unescape(self.user) if self.user else ""
        host = self.host.lower()
        if not host:
            return f"{self.scheme}:{user}"
        return f"{self.scheme}:{user}@{host}" if user else f"{self.scheme}:{host}"

    def equivalent(self, other: "URI") -> bool:
        """RFC 3261 §19.1.4 comparison.

        Userinfo is case-sensitive, everything else is not; an escaped unreserved character
        equals the character; parameter and header order does not matter; a port, transport,
        user, ttl, method or maddr present in one URI only makes them differ (even with the
        default value); other parameters present in one URI only are ignored; headers must
        all be present in both and match.
        """
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if (self.user is None) != (other.user is None):
            return False
        if self.user is not None and _canonical(self.user) != _canonical(other.user or ""):
            return False
        if (self.password is None) != (other.password is None):
            return False
        if self.password is not None and _canonical(self.password) != _canonical(other.password or ""):
            return False
        if self.port != other.port or not _same_host(self.host, other.host):
            return False
        mine = {_canonical(k).lower(): v for k, v in self.params.items()}
        theirs = {_canonical(k).lower(): v for k, v in other.params.items()}
        for name in _SIGNIFICANT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (_canonical(a).lower() if a else a) != (_canonical(b).lower() if b else b):
                return False
        mine_h = {_canonical(k).lower(): _canonical(v) for k, v in self.headers.items()}
        theirs_h = {_canonical(k).lower(): _canonical(v) for k, v in other.headers.items()}
        return mine_h == theirs_h


def _same_host(a: str, b: str) -> bool:
    if a.lower() == b.lower():
        return True
    if a.startswith("[") and b.startswith("["):  # IPv6 references compare as addresses
        try:
            return ipaddress.IPv6Address(a[1:-1]) == ipaddress.IPv6Address(b[1:-1])
        except ValueError:
            return False
    return False


_new_uri = object.__new__


def split_hostport(hostport: str) -> tuple[str, int | None]:
    """('example.com', 5060) from 'example.com:5060'; the host is validated, IPv6 references
    keep their brackets. Raises URIError."""
    known = _HOSTPORTS.get(hostport)
    if known is not None:
        return known
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise URIError("unterminated IPv6 reference")
        host, port_text = hostport[:end + 1], hostport[end + 1:]
        if port_text:
            if port_text[0] != ":":
                raise URIError("invalid port")
            port_text = port_text[1:]
            has_port = True
        else:
            has_port = False
    else:
        host, has_port, port_text = hostport.partition(":")
    if not host or not _HOST_RE.match(host):
        raise URIError(f"invalid host {host!r}")
    if host[0] == "[":  # the regex only checks the characters; no zone IDs (RFC 3261 IPv6reference)
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise URIError(f"invalid IPv6 reference {host!r}") from None
    port = None
    if has_port:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
            raise URIError("invalid port")
        port = int(port_text)
        if port > 65535:
            raise URIError("port out of range")
    if len(_HOSTPORTS) >= _HOSTPORTS_MAX:
        _HOSTPORTS.clear()
    result = _HOSTPORTS[hostport] = (host, port)
    return result


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise URIError("empty URI parameter")
        params[name] = value if eq else None
    return params
