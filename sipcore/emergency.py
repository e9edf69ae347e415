"""Location conveyance for emergency calls (RFC 6442): the caller's emergency service
address as a PIDF-LO civic location (RFC 4119, RFC 5139, RFC 5491) carried by value in a
multipart body next to the SDP, pointed at by a Geolocation header (cid: URI)."""
from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape

_HOUSE_NUMBER = re.compile(r"^\s*(\d+[A-Za-z]?)\s+(.+)$")


def civic_address_xml(esa: dict) -> str:
    """RFC 5139 civicAddress elements for an ESA with address1, address2, city, state,
    postalCode and country."""
    parts: list[tuple[str, str]] = [("country", str(esa.get("country", "")).upper())]
    if esa.get("state"):
        parts.append(("A1", str(esa["state"])))
    if esa.get("city"):
        parts.append(("A3", str(esa["city"])))
    street = str(esa.get("address1") or "")
    match = _HOUSE_NUMBER.match(street)
    if match:  # "100 Congress Ave" -> house number and street, as PSAPs' databases expect
        parts.append(("RD", match.group(2)))
        parts.append(("HNO", match.group(1)))
    elif street:
        parts.append(("RD", street))
    if esa.get("address2"):
        parts.append(("LOC", str(esa["address2"])))
    if esa.get("postalCode"):
        parts.append(("PC", str(esa["postalCode"])))
    return "".join(f"<ca:{tag}>{escape(value)}</ca:{tag}>" for tag, value in parts)


def pidf_lo(esa: dict, entity: str, now: float) -> bytes:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    tuple_id = "t" + os.urandom(4).hex()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        'xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr" '
        f'entity="{escape(entity)}">'
        f'<tuple id="{tuple_id}"><status><gp:geopriv><gp:location-info>'
        f"<ca:civicAddress>{civic_address_xml(esa)}</ca:civicAddress>"
        "</gp:location-info><gp:usage-rules/><gp:method>Manual</gp:method>"
        f"</gp:geopriv></status><timestamp>{stamp}</timestamp></tuple></presence>\n"
    )
    return xml.encode("utf-8")


def emergency_body(sdp: bytes, esa: dict, entity: str, now: float) -> tuple[str, bytes, str]:
    """(Content-Type, body, content id): a multipart/mixed body with the SDP (when there is
    one) and the PIDF-LO; the content id goes into `Geolocation: <cid:...>`."""
    boundary = "cr-" + os.urandom(8).hex()
    cid = f"{os.urandom(6).hex()}@callrouter"
    parts = []
    if sdp:
        parts.append(b"Content-Type: application/sdp\r\n\r\n" + sdp)
    parts.append(
        f"Content-Type: application/pidf+xml\r\nContent-ID: <{cid}>\r\n\r\n".encode()
        + pidf_lo(esa, entity, now)
    )
    delimiter = f"--{boundary}\r\n".encode()
    body = b"".join(delimiter + part + (b"" if part.endswith(b"\r\n") else b"\r\n") for part in parts)
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/mixed;boundary={boundary}", body, cid


def sdp_from_multipart(content_type: str, body: bytes) -> bytes | None:
    """The application/sdp part of a multipart body (what a trunk answers is plain SDP, but a
    peer may send multipart to us too)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return None
    delimiter = b"--" + match.group(1).encode()
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if b"application/sdp" in head.lower():
            return content.rstrip(b"\r\n") + b"\r\n"
    return None
