"""HA1 digests for SIP credentials (RFC 7616 §3.4.2, RFC 8760).

The store keeps H(username:realm:password) per algorithm instead of the password, so a
registrar can verify any of the algorithms a phone picks and a leaked database does not
hand out passwords. Changing the realm invalidates every HA1, which is why the realm is
part of the organisation and not a runtime setting.
"""

from __future__ import annotations

import hashlib

# RFC 8760 names; the hashlib name is what OpenSSL calls the same function.
ALGORITHMS: dict[str, str] = {
    "MD5": "md5",
    "SHA-256": "sha256",
    "SHA-512-256": "sha512_256",
}


def digest_hex(algorithm: str, data: str) -> str:
    """H(data) as lowercase hex, for an RFC 8760 algorithm name."""
    try:
        name = ALGORITHMS[algorithm]
    except KeyError:
        raise ValueError(f"unknown digest algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS)}") from None
    return hashlib.new(name, data.encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """HA1 = H(username ":" realm ":" password) for the given algorithm."""
    return digest_hex(algorithm, f"{username}:{realm}:{password}")


def ha1_all(username: str, realm: str, password: str) -> dict[str, str]:
    """HA1 for every supported algorithm, keyed by RFC 8760 name."""
    return {algorithm: ha1(algorithm, username, realm, password) for algorithm in ALGORITHMS}
