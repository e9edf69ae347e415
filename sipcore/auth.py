"""SIP digest authentication, server side (RFC 3261 §22, RFC 7616, RFC 8760).

Sans-IO: the caller passes header values, the request's method, URI and body, a credential
lookup and the current time, and gets back a decision. Nothing here reads a clock or a socket.

Nonces are stateless: each carries its issue time and a random part, authenticated by an HMAC
keyed by the server secret and bound to the realm. Any node holding the secret can check a nonce,
so a restart or a second node needs no shared nonce store. The only state is the replay table
(highest nc accepted per nonce, and "used once" marks for the legacy no-qop form), which is
bounded.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import unquote

__all__ = [
    "ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "AuthHeaderError",
    "AuthOutcome",
    "AuthResult",
    "DigestAuthenticator",
    "DigestCredentials",
    "DigestResponse",
    "compute_ha1",
    "parse_credentials",
]

# RFC 8760 §2.4: the UAS lists its challenges most preferred first; MD5 stays for old phones
# (pyVoIP 1.6.8 only knows MD5).
ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha512_256(data: bytes) -> str:
    return hashlib.new("sha512_256", data).hexdigest()


_HASHES: dict[str, Callable[[bytes], str]] = {"MD5": _md5, "SHA-256": _sha256}
try:
    # SHA-512/256 comes from OpenSSL; a build without it simply does not offer the algorithm.
    hashlib.new("sha512_256", b"")
    _HASHES["SHA-512-256"] = _sha512_256
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    pass

SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(_HASHES)
_HEX_LEN = {name: len(fn(b"")) for name, fn in _HASHES.items()}


def compute_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """H(username:realm:password) in lowercase hex, what provisioning stores instead of a password."""
    fn = _HASHES.get(algorithm.upper())
    if fn is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return fn(f"{username}:{realm}:{password}".encode())


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """A user's stored secrets: one HA1 per algorithm, never the password."""

    username: str
    realm: str
    ha1: Mapping[str, str]

    @classmethod
    def from_password(
        cls, username: str, realm: str, password: str, algorithms: tuple[str, ...] = SUPPORTED_ALGORITHMS
    ) -> DigestCredentials:
        return cls(username, realm, {a: compute_ha1(username, realm, password, a) for a in algorithms})


# --------------------------------------------------------------------------- header parsing


class AuthHeaderError(ValueError):
    """An Authorization/Proxy-Authorization value that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class DigestResponse:
    """A parsed credentials header: the scheme and its auth-params (names lowercased)."""

    scheme: str
    params: Mapping[str, str]
    token68: str | None = None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def username(self) -> str | None:
        return self.params.get("username")

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def uri(self) -> str | None:
        return self.params.get("uri")

    @property
    def algorithm(self) -> str:
        # RFC 7616 §3.4: an absent algorithm means MD5.
        return self.params.get("algorithm", "MD5").upper()


_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CTL = r"\x00-\x08\x0a-\x1f\x7f"
_SCHEME_RE = re.compile(r"[ \t]*(" + _TOKEN + r")")
_QDTEXT = r'[^"\\' + _CTL + "]"
# One auth-param and the list separator after it (or the end). The quoted-string is written
# as an unrolled loop, which the re engine runs far faster than an alternation per character.
_PARAM_RE = re.compile(
    r"[ \t]*(" + _TOKEN + r")[ \t]*=[ \t]*"
    r'(?:"(' + _QDTEXT + r"*(?:\\[^" + _CTL + "]" + _QDTEXT + r'*)*)"|(' + _TOKEN + r"))"
    r"[ \t]*(?:,[ \t,]*|\Z)"
)
_SEPARATORS_RE = re.compile(r"(?:[ \t]*,)+[ \t]*")
_TOKEN68_RE = re.compile(r"([A-Za-z0-9\-._~+/]+=*)[ \t]*\Z")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)
_EXT_VALUE_RE = re.compile(r"(UTF-8|ISO-8859-1)'[A-Za-z0-9\-]*'((?:%[0-9A-Fa-f]{2}|[!#$&+\-.^_`|~0-9A-Za-z])*)\Z", re.I)
_MAX_HEADER = 16384


def parse_credentials(value: str) -> DigestResponse:
    """Parse an Authorization or Proxy-Authorization header value.

    Any scheme parses (so the caller can say "unsupported" rather than "bad request"); only
    malformed input raises, and only AuthHeaderError.
    """
    if not isinstance(value, str):
        raise AuthHeaderError("header value is not text")
    if len(value) > _MAX_HEADER:
        raise AuthHeaderError("header value too long")
    if "\n" in value or "\r" in value:
        # RFC 3261 §7.3.1: a line break followed by whitespace is folding, i.e. one space.
        value = _FOLD_RE.sub(" ", value)
        if "\n" in value or "\r" in value:
            raise AuthHeaderError("line break that is not header folding")
    m = _SCHEME_RE.match(value)
    if m is None:
        raise AuthHeaderError("missing authentication scheme")
    scheme = m.group(1)
    pos = m.end()
    n = len(value)
    if pos == n or not value[pos:].strip(" \t"):
        return DigestResponse(scheme, {})
    if value[pos] not in " \t":
        raise AuthHeaderError("authentication scheme must be followed by whitespace")
    digest = scheme.lower() == "digest"
    if not digest:
        start = pos
        while value[start] in " \t":
            start += 1
        t = _TOKEN68_RE.match(value, start)
        if t is not None:
            return DigestResponse(scheme, {}, t.group(1))
    params: dict[str, str] = {}
    s = _SEPARATORS_RE.match(value, pos)  # the list rule allows empty elements
    if s is not None:
        pos = s.end()
    # finditer walks the params in C; a gap between two matches is text that is not a param.
    for m in _PARAM_RE.finditer(value, pos):
        if m.start() != pos:
            break
        name, quoted, token = m.groups()
        name = name.lower()
        if name in params:
            # RFC 7235 §2.1: a parameter occurs once; two would let parsers disagree.
            raise AuthHeaderError(f"duplicate parameter {name!r}")
        if quoted is None:
            params[name] = token
        else:
            params[name] = _QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted
        pos = m.end()
    if pos != n:
        raise AuthHeaderError(f"expected name=value at offset {pos}")
    if digest and "username*" in params:
        # RFC 7616 §3.4.4: username* carries a non-ASCII name in RFC 5987 encoding.
        if "username" in params:
            raise AuthHeaderError("both username and username* given")
        params["username"] = _decode_ext_value(params["username*"])
    return DigestResponse(scheme, params)


def _decode_ext_value(raw: str) -> str:
    m = _EXT_VALUE_RE.match(raw)
    if m is None:
        raise AuthHeaderError("malformed username* value")
    charset = "utf-8" if m.group(1).upper() == "UTF-8" else "latin-1"
    try:
        return unquote(m.group(2), encoding=charset, errors="strict")
    except UnicodeDecodeError:
        raise AuthHeaderError("username* is not valid in its charset") from None


# --------------------------------------------------------------------------- verification


class AuthOutcome(enum.Enum):
    OK = "ok"
    STALE = "stale"  # credentials fine, nonce not acceptable any more: challenge with stale=true
    REPLAY = "replay"  # nonce/nc already used
    WRONG_CREDENTIALS = "wrong-credentials"
    UNKNOWN_USER = "unknown-user"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"  # scheme, algorithm, qop or userhash we do not do
    REALM_MISMATCH = "realm-mismatch"


@dataclass(frozen=True, slots=True)
class AuthResult:
    outcome: AuthOutcome
    username: str | None = None
    credentials: DigestCredentials | None = None
    algorithm: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}\Z")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}\Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+\Z")
_NONCE_HEAD = struct.Struct(">d8s")  # issue time, random part
_MAC_LEN = 16
# A nonce stamped slightly in the future is tolerated (nodes sharing a secret and a wall clock
# drift a little); further than this means the clock went back, and the nonce is refused.
_CLOCK_SKEW = 2.0
# Marks a nonce consumed by a no-qop response: greater than any 8-hex-digit nc, so any reuse
# of that nonce, with or without qop, is a replay.
_USED_ONCE = 1 << 32


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestAuthenticator:
    """Issues digest challenges and verifies responses to them.

    `algorithms` is both what challenges offer (in that order) and what responses may use;
    the "-sess" variant of an offered algorithm is accepted too.
    """

    def __init__(
        self,
        secret: bytes,
        nonce_ttl: float = 300.0,
        algorithms: tuple[str, ...] = ALGORITHMS,
        *,
        max_tracked_nonces: int = 100_000,
    ) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        if nonce_ttl <= 0:
            raise ValueError("nonce_ttl must be positive")
        if not algorithms:
            raise ValueError("at least one algorithm is needed")
        canonical = tuple(a.upper() for a in algorithms)
        for a in canonical:
            if a not in _HASHES:
                raise ValueError(f"unsupported digest algorithm {a!r}")
        if max_tracked_nonces < 1:
            raise ValueError("max_tracked_nonces must be at least 1")
        self._secret = bytes(secret)
        self._mac_key = hashlib.blake2b(self._secret).digest()  # any length secret -> 64 bytes
        self.nonce_ttl = float(nonce_ttl)
        self.algorithms = canonical
        self._accepted = frozenset(canonical)
        self._max_tracked = max_tracked_nonces
        # nonce bytes -> [highest nc accepted (or _USED_ONCE), expiry time], in first-use order
        self._seen: OrderedDict[bytes, list[float]] = OrderedDict()
        # Nonces issued at or before this time that are not in _seen were evicted (or never
        # seen before the eviction): they must be refused, or eviction would reopen replays.
        self._evicted_floor = float("-inf")
        self._opaque_cache: dict[str, str] = {}

    # ---- challenges

    def challenge(self, realm: str, now: float, stale: bool = False) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, one per algorithm, most preferred first.

        All share one nonce: nonces are not bound to an algorithm, so a client may answer any
        of the challenges (pyVoIP answers the first with MD5 whatever it says).
        """
        nonce = self._make_nonce(realm, now)
        tail = f", nonce=\"{nonce}\", opaque=\"{self._opaque(realm)}\", algorithm="
        qop = ', qop="auth", stale=true' if stale else ', qop="auth"'
        head = "Digest realm=" + _quote(realm)
        return [head + tail + a + qop for a in self.algorithms]

    def _make_nonce(self, realm: str, now: float) -> str:
        head = _NONCE_HEAD.pack(float(now), os.urandom(8))
        mac = self._mac(head + realm.encode())
        return base64.urlsafe_b64encode(head + mac).rstrip(b"=").decode("ascii")

    def _open_nonce(self, nonce: str, realm: str) -> tuple[bytes, float] | None:
        """The nonce's raw bytes and issue time, or None if this server did not issue it for realm."""
        if _NONCE_RE.match(nonce) is None:
            return None
        raw = base64.urlsafe_b64decode(nonce + "=")
        head = raw[:16]
        mac = self._mac(head + realm.encode())
        if not hmac.compare_digest(mac, raw[16:]):
            return None
        return head, _NONCE_HEAD.unpack(head)[0]

    def _mac(self, data: bytes) -> bytes:
        # Keyed BLAKE2b is a MAC in its own right (RFC 7693 §2.9) at a third of HMAC-SHA256's
        # cost, and every REGISTER computes one.
        return hashlib.blake2b(data, key=self._mac_key, digest_size=_MAC_LEN).digest()

    def _opaque(self, realm: str) -> str:
        opaque = self._opaque_cache.get(realm)
        if opaque is None:
            mac = hmac.digest(self._secret, b"opaque\x00" + realm.encode(), "sha256")[:12]
            opaque = base64.urlsafe_b64encode(mac).decode("ascii")
            if len(self._opaque_cache) < 1024:
                self._opaque_cache[realm] = opaque
        return opaque

    # ---- verification

    def verify(
        self,
        value: str | DigestResponse,
        method: str,
        request_uri: str,
        realm: str,
        lookup: Callable[[str], DigestCredentials | None],
        now: float,
        body: bytes = b"",
    ) -> AuthResult:
        """Check one Authorization/Proxy-Authorization value against the request it came with."""
        if isinstance(value, DigestResponse):
            parsed = value
        else:
            try:
                parsed = parse_credentials(value)
            except AuthHeaderError as exc:
                return AuthResult(AuthOutcome.MALFORMED, reason=str(exc))
        if not parsed.is_digest:
            return AuthResult(AuthOutcome.UNSUPPORTED, reason=f"scheme {parsed.scheme} not supported")
        p = parsed.params
        username = p.get("username")
        nonce = p.get("nonce")
        uri = p.get("uri")
        response = p.get("response")
        their_realm = p.get("realm")
        if username is None or nonce is None or uri is None or response is None or their_realm is None:
            missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
            return AuthResult(AuthOutcome.MALFORMED, username, reason="missing " + ", ".join(missing))

        algorithm = p.get("algorithm", "MD5").upper()
        sess = algorithm.endswith("-SESS")
        base = algorithm[:-5] if sess else algorithm
        if base not in self._accepted:
            return AuthResult(AuthOutcome.UNSUPPORTED, username, algorithm=algorithm,
                              reason=f"algorithm {algorithm} not accepted")
        if p.get("userhash", "false").lower() == "true":
            # We never offer userhash; honouring it would need a table of hashed usernames.
            return AuthResult(AuthOutcome.UNSUPPORTED, username, algorithm=algorithm, reason="userhash not supported")

        qop = p.get("qop")
        nc_text = cnonce = None
        nc = 0
        if qop is not None:
            qop = qop.lower()
            if qop != "auth" and qop != "auth-int":
                return AuthResult(AuthOutcome.UNSUPPORTED, username, algorithm=algorithm, reason=f"qop {qop} not supported")
            nc_text = p.get("nc")
            cnonce = p.get("cnonce")
            if nc_text is None or cnonce is None:
                return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm, reason="qop without nc and cnonce")
            if _NC_RE.match(nc_text) is None:
                return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm, reason="nc is not 8 hex digits")
            nc = int(nc_text, 16)
            if nc == 0:
                return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm, reason="nc must start at 1")
        elif sess:
            cnonce = p.get("cnonce")
            if cnonce is None:
                return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm, reason=f"{algorithm} without cnonce")
        if len(response) != _HEX_LEN[base] or _HEX_RE.match(response) is None:
            return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm,
                              reason=f"response is not a {algorithm} digest")

        if their_realm != realm:
            return AuthResult(AuthOutcome.REALM_MISMATCH, username, algorithm=algorithm,
                              reason=f"realm {their_realm!r} is not {realm!r}")
        if uri != request_uri and _normalise_uri(uri) != _normalise_uri(request_uri):
            # Without this a response captured for one request-URI could be replayed for another.
            return AuthResult(AuthOutcome.MALFORMED, username, algorithm=algorithm,
                              reason=f"digest uri {uri!r} does not match request URI {request_uri!r}")
        credentials = lookup(username)
        if credentials is None or credentials.realm != realm:
            return AuthResult(AuthOutcome.UNKNOWN_USER, username, algorithm=algorithm, reason="no such user in realm")
        ha1 = credentials.ha1.get(base)
        if ha1 is None:
            return AuthResult(AuthOutcome.UNSUPPORTED, username, algorithm=algorithm,
                              reason=f"no {base} secret stored for user")

        h = _HASHES[base]
        if sess:
            ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
        if qop == "auth-int":
            ha2 = h(f"{method}:{uri}:{h(body)}".encode())
        else:
            ha2 = h(f"{method}:{uri}".encode())
        if qop is None:
            expected = h(f"{ha1}:{nonce}:{ha2}".encode())
        else:
            expected = h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:{qop}:{ha2}".encode())
        opened = self._open_nonce(nonce, realm)
        if not hmac.compare_digest(expected, response.lower()):
            reason = "wrong response" if opened is not None else "wrong response to a nonce we did not issue"
            return AuthResult(AuthOutcome.WRONG_CREDENTIALS, username, algorithm=algorithm, reason=reason)

        # The response is right: from here on the client knows the password, and any refusal
        # is about the nonce, which a fresh challenge fixes.
        opaque = p.get("opaque")
        if opened is None or (opaque is not None and opaque != self._opaque(realm)):
            # Issued under another secret (restart, rotation) or tampered with: the phone
            # echoes the old challenge's nonce and opaque, and a fresh challenge fixes both.
            return AuthResult(AuthOutcome.STALE, username, algorithm=algorithm, reason="nonce not issued by us")
        key, issued = opened
        age = now - issued
        if age > self.nonce_ttl:
            return AuthResult(AuthOutcome.STALE, username, algorithm=algorithm, reason=f"nonce expired {age:.0f}s old")
        if age < -_CLOCK_SKEW:
            return AuthResult(AuthOutcome.STALE, username, algorithm=algorithm, reason="nonce from the future")

        seen = self._seen
        entry = seen.get(key)
        if entry is None:
            if issued <= self._evicted_floor:
                return AuthResult(AuthOutcome.STALE, username, algorithm=algorithm, reason="nonce forgotten under load")
            self._prune(now)
            seen[key] = [_USED_ONCE if qop is None else nc, issued + self.nonce_ttl]
        elif qop is None or nc <= entry[0]:
            return AuthResult(AuthOutcome.REPLAY, username, algorithm=algorithm,
                              reason="nonce already used" if qop is None else f"nc {nc_text} not above last accepted")
        else:
            entry[0] = nc
        return AuthResult(AuthOutcome.OK, username, credentials, algorithm, "ok")

    def _prune(self, now: float) -> None:
        seen = self._seen
        # First-use order roughly follows issue order, so expired entries gather at the front.
        while seen:
            key, entry = next(iter(seen.items()))
            if entry[1] > now:
                break
            seen.popitem(last=False)
        while len(seen) >= self._max_tracked:
            _, entry = seen.popitem(last=False)
            issued = entry[1] - self.nonce_ttl
            if issued > self._evicted_floor:
                self._evicted_floor = issued

    @property
    def tracked_nonces(self) -> int:
        return len(self._seen)


def _normalise_uri(uri: str) -> tuple[str, ...] | str:
    """Light normalisation for comparing a digest uri with a request URI.

    SIP URIs compare by scheme, user, lowercased host and port (absent = default); parameters
    and headers are ignored because clients differ there without changing the target
    (pyVoIP signs "sip:host;transport=UDP" for a request line "sip:host").
    """
    u = uri.strip()
    if u[:1] == "<" and u[-1:] == ">":
        u = u[1:-1]
    colon = u.find(":")
    if colon <= 0:
        return u
    scheme = u[:colon].lower()
    if scheme != "sip" and scheme != "sips":
        return scheme + u[colon:]
    rest = u[colon + 1:]
    at = rest.find("@")
    if at >= 0:
        user = rest[:at].split(":", 1)[0]
        if "%" in user:
            user = unquote(user)
        hostport = rest[at + 1:]
    else:
        user = ""
        hostport = rest
    for sep in ";?":
        cut = hostport.find(sep)
        if cut >= 0:
            hostport = hostport[:cut]
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[: close + 1] if close >= 0 else hostport
        port = hostport[close + 2:] if close >= 0 and hostport[close + 1: close + 2] == ":" else ""
    else:
        host, _, port = hostport.partition(":")
    if not port:
        port = "5061" if scheme == "sips" else "5060"
    return (scheme, user, host.lower(), port)


# --------------------------------------------------------------------------- client side


def answer_challenge(challenges: list[str], method: str, uri: str, username: str, realm: str | None,
                     ha1: Mapping[str, str], cnonce: str, nc: int = 1) -> str | None:
    """An Authorization value answering the first challenge we can answer with a stored HA1
    (we never hold a trunk's password, only H(username:realm:password) per algorithm), or
    None when the realm differs from the one the HA1 was made for or no algorithm matches."""
    for value in challenges:
        try:
            parsed = parse_credentials(value)
        except AuthHeaderError:
            continue
        p = parsed.params
        algorithm = (p.get("algorithm") or "MD5").upper()
        if algorithm.endswith("-SESS") or algorithm not in ha1 or algorithm not in _HASHES:
            continue
        if realm is not None and p.get("realm") != realm:
            continue
        nonce = p.get("nonce")
        if nonce is None:
            continue
        h = _HASHES[algorithm]
        ha2 = h(f"{method}:{uri}".encode())
        qops = [q.strip() for q in (p.get("qop") or "").split(",") if q.strip()]
        parts = [f'username="{username}"', f'realm="{p.get("realm", "")}"', f'nonce="{nonce}"',
                 f'uri="{uri}"', f"algorithm={algorithm}"]
        if "auth" in qops:
            nc_text = f"{nc:08x}"
            response = h(f"{ha1[algorithm]}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}".encode())
            parts += [f'response="{response}"', "qop=auth", f"nc={nc_text}", f'cnonce="{cnonce}"']
        else:
            parts.append(f'response="{h(f"{ha1[algorithm]}:{nonce}:{ha2}".encode())}"')
        if p.get("opaque") is not None:
            parts.append(f'opaque="{p["opaque"]}"')
        return "Digest " + ", ".join(parts)
    return None
