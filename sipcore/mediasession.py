"""One call's media through the relay: the SDP each side sends is checked, trimmed to the
codecs we carry, and pointed at the relay port facing the other side.

The relay itself runs in its own process (sipcore.relay); what the B2BUA core needs from
it is synchronous and never waits: a session with two ports taken from a pool the shell
keeps filled, and remote addresses pushed down the control channel without awaiting an
answer. The core therefore stays sans-IO.
"""
from __future__ import annotations

from typing import Any, Protocol

from .calls import MediaError
from .sdp import (
    LegOrigin,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    filter_offer,
    negotiate,
    parse,
    rewrite_for_relay,
    rtp_destination,
)

_OTHER = {"a": "b", "b": "a"}


class RelayControl(Protocol):
    """What a call needs of the relay; sipcore.relay's controller provides it."""

    address: str

    def open_session(self, call_id: str) -> tuple[str, dict[str, int]]:
        """(session id, {"a": port, "b": port}); raises MediaError(503) when none is free."""
        ...

    def set_remote(self, session_id: str, leg: str, remote: tuple[str, int] | None) -> None: ...
    def close_session(self, session_id: str) -> None: ...


class RelayedMedia:
    """CallMedia through the relay. `leg` is the side an SDP came from."""

    def __init__(self, control: RelayControl, call_id: str):
        self.control = control
        self.session_id, self.ports = control.open_session(call_id)
        # One o= line per side we send descriptions to (RFC 3264 §8: same session id,
        # version bumped on change).
        self.origins = {"a": LegOrigin(control.address), "b": LegOrigin(control.address)}
        self._offers: dict[str, SessionDescription] = {}
        self._closed = False

    def adopt_origin(self, leg: str, origin: LegOrigin) -> None:
        """Continue a session description the caller already has from us (the IVR answered
        it), so a re-INVITE towards the relay is a new version of the same session."""
        self.origins[leg] = origin

    def offer(self, leg: str, body: bytes) -> bytes:
        sdp = _parse(body)
        try:
            trimmed = filter_offer(sdp)
        except NoCommonCodec as exc:
            raise MediaError(488, exc.reason) from None
        self._offers[leg] = trimmed
        self.control.set_remote(self.session_id, leg, rtp_destination(sdp))
        towards = _OTHER[leg]
        out = rewrite_for_relay(trimmed, self.control.address, self.ports[towards], origin=self.origins[towards])
        return out.to_bytes()

    def answer(self, leg: str, body: bytes) -> bytes:
        sdp = _parse(body)
        offer = self._offers.get(_OTHER[leg])
        if offer is not None:
            try:
                negotiate(offer, sdp)
            except NoCommonCodec as exc:
                raise MediaError(488, exc.reason) from None
            except SdpError as exc:
                raise MediaError(488, exc.reason) from None
        self.control.set_remote(self.session_id, leg, rtp_destination(sdp))
        towards = _OTHER[leg]
        out = rewrite_for_relay(sdp, self.control.address, self.ports[towards], origin=self.origins[towards])
        return out.to_bytes()

    def close(self) -> dict[str, Any]:
        if not self._closed:
            self._closed = True
            self.control.close_session(self.session_id)
        return {"session": self.session_id}


class PassthroughMedia:
    """CallMedia when the relay is off: phones send RTP to each other directly, and SDP is
    only checked for a common codec."""

    def __init__(self, call_id: str):
        self.call_id = call_id

    def offer(self, leg: str, body: bytes) -> bytes:
        try:
            filter_offer(_parse(body))
        except NoCommonCodec as exc:
            raise MediaError(488, exc.reason) from None
        return body

    def answer(self, leg: str, body: bytes) -> bytes:
        _parse(body)
        return body

    def close(self) -> dict[str, Any]:
        return {}


def _parse(body: bytes) -> SessionDescription:
    try:
        return parse(body)
    except SdpError as exc:
        raise MediaError(488, f"unreadable SDP: {exc.reason}") from None
