"""A minimal SIP user agent for tests: builds REGISTERs and answers digest challenges.

Used both against the sans-IO endpoint (bytes in, bytes out) and over real sockets, so
that the client side of digest is computed independently of sipcore.auth.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re

_HASH = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')
_branches = itertools.count(1)


def challenge_params(value: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PARAM.finditer(value)}


def digest_authorization(challenge: str, username: str, password: str, method: str, uri: str,
                         nc: int = 1, cnonce: str | None = None, qop: bool | None = None) -> str:
    """The Authorization value for `challenge`, computed with hashlib (independently of
    sipcore.auth); qop=auth when the challenge offers it unless `qop` says otherwise."""
    p = challenge_params(challenge)
    algorithm = p.get("algorithm", "MD5").upper()
    qop = "qop" in p if qop is None else qop
    cnonce = cnonce or os.urandom(6).hex()
    h = lambda text: _HASH[algorithm](text.encode()).hexdigest()  # noqa: E731
    ha1 = h(f"{username}:{p['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        nc_text = f"{nc:08x}"
        response = h(f"{ha1}:{p['nonce']}:{nc_text}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc_text}, cnonce="{cnonce}"'
    else:
        response = h(f"{ha1}:{p['nonce']}:{ha2}")
        extra = ""
    opaque = f', opaque="{p["opaque"]}"' if "opaque" in p else ""
    return (f'Digest username="{username}", realm="{p["realm"]}", nonce="{p["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm={algorithm}{opaque}{extra}')


def register(user: str, *, host: str = "127.0.0.1", port: int = 5060, local: tuple[str, int] = ("127.0.0.1", 5099),
             call_id: str | None = None, cseq: int = 1, contacts: list[str] | None = None,
             expires: int | None = None, authorization: str | None = None, transport: str = "UDP",
             rport: bool = False, extra: str = "") -> bytes:
    branch = f"z9hG4bK{os.urandom(4).hex()}{next(_branches)}"
    call_id = call_id or f"{user}-{os.urandom(4).hex()}"
    lines = [
        f"REGISTER sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch={branch}{';rport' if rport else ''}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{host}>;tag=t{cseq}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    for c in (contacts if contacts is not None else [f"<sip:{user}@{local[0]}:{local[1]}>"]):
        lines.append(f"Contact: {c}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization:
        lines.append(f"Authorization: {authorization}")
    if extra:
        lines.append(extra.rstrip("\r\n"))
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request_uri(data: bytes) -> str:
    return data.split(b" ", 2)[1].decode()
