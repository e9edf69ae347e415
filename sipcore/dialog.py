"""SIP dialogs (RFC 3261 §12): the state one side of a call keeps to send in-dialog requests.

A B2BUA holds two dialogs per call, one towards each party. Each knows its Call-ID, both
tags, the remote target (the peer's Contact), the route set, the CSeq counters and, for
phones behind NAT, the address the peer's messages really came from (`dest`), which is
where requests go regardless of what the Contact says (RFC 3581's symmetric response
routing carried over to requests, as every SBC does).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from .fields import NameAddr, split_commas
from .message import Request, Response
from .transaction import new_branch
from .uri import URI

Address = tuple[str, int]


def new_tag() -> str:
    return os.urandom(6).hex()


def new_call_id(host: str) -> str:
    return f"{os.urandom(12).hex()}@{host}"


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local: str                  # our From/To value, without tag
    remote: str                 # the peer's From/To value, without tag
    remote_target: URI          # where in-dialog requests are addressed (the peer's Contact)
    dest: Address               # where they are sent (the peer's real address)
    transport: str
    local_seq: int = 0
    remote_seq: int | None = None
    route_set: list[str] = field(default_factory=list)

    # -- creation ---------------------------------------------------------------------
    @classmethod
    def as_uas(cls, req: Request, local_tag: str, dest: Address, transport: str) -> "Dialog":
        """Our side of a dialog the peer's INVITE starts (we answer it)."""
        return cls(
            call_id=req.call_id,
            local_tag=local_tag,
            remote_tag=req.from_.tag,
            local=_without_tag(req.get("to") or ""),
            remote=_without_tag(req.get("from") or ""),
            remote_target=_contact_uri(req) or req.from_.uri,
            dest=dest,
            transport=transport,
            local_seq=0,
            remote_seq=req.cseq[0],
            route_set=_record_routes(req),
        )

    @classmethod
    def as_uac(cls, invite: Request, dest: Address, transport: str) -> "Dialog":
        """Our side of a dialog our INVITE starts; completed by `confirm` on the answer."""
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=None,
            local=_without_tag(invite.get("from") or ""),
            remote=_without_tag(invite.get("to") or ""),
            remote_target=invite.uri.copy(),
            dest=dest,
            transport=transport,
            local_seq=invite.cseq[0],
        )

    def confirm(self, resp: Response) -> None:
        """Take the peer's tag, target and route set from a 1xx/2xx to our INVITE."""
        self.remote_tag = resp.to.tag
        target = _contact_uri(resp)
        if target is not None:
            self.remote_target = target
        self.route_set = list(reversed(_record_routes(resp)))

    # -- in-dialog requests -----------------------------------------------------------------
    def request(self, method: str, via: str, *, body: bytes = b"", content_type: str | None = None,
                contact: str | None = None, cseq: int | None = None,
                extra: dict[str, str | list[str]] | None = None) -> Request:
        """A new request in this dialog. `via` is our sent-by ("SIP/2.0/UDP host:port");
        a branch is added. ACK and CANCEL pass the CSeq number of the INVITE."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri = self.remote_target.copy()
        routes = list(self.route_set)
        if routes and "lr" not in NameAddr.parse(routes[0]).uri.params:
            # Strict router (RFC 3261 §12.2.1.1): it takes the Request-URI's place.
            routes.append(f"<{uri}>")
            uri = NameAddr.parse(routes.pop(0)).uri
            uri.params.pop("lr", None)
        headers: dict[str, list[str]] = {
            "via": [f"{via};branch={new_branch()};rport"],
            "max-forwards": ["70"],
            "from": [f"{self.local};tag={self.local_tag}"],
            "to": [self.remote + (f";tag={self.remote_tag}" if self.remote_tag else "")],
            "call-id": [self.call_id],
            "cseq": [f"{cseq} {method}"],
        }
        if routes:
            headers["route"] = routes
        if contact is not None and method in ("INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"):
            headers["contact"] = [contact]
        for name, value in (extra or {}).items():
            headers[name.lower()] = [value] if isinstance(value, str) else list(value)
        if body:
            headers["content-type"] = [content_type or "application/sdp"]
        return Request(method, uri, headers, body)

    def accepts(self, req: Request) -> bool:
        """Check and record the CSeq of a request from the peer (§12.2.2): an older one is
        out of order and gets 500."""
        number = req.cseq[0]
        if req.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and number <= self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def refresh_target(self, msg: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE and their 2xx) may move the peer's Contact."""
        target = _contact_uri(msg)
        if target is not None:
            self.remote_target = target


def _without_tag(value: str) -> str:
    try:
        na = NameAddr.parse(value)
    except ValueError:
        return value
    na.params.pop("tag", None)
    return str(na)


def _contact_uri(msg: Request | Response) -> URI | None:
    values = msg.values("contact")
    if not values:
        return None
    try:
        return NameAddr.parse(values[0]).uri
    except ValueError:
        return None


def _record_routes(msg: Request | Response) -> list[str]:
    out: list[str] = []
    for value in msg.get_all("record-route"):
        out.extend(v.strip() for v in split_commas(value) if v.strip())
    return out
