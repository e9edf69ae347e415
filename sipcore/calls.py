"""What the B2BUA keeps per call: the two sides, the forks while ringing, and the record.

Plain data and small decisions (which final response the caller hears when every fork
failed, how a call record reads); the state machine that moves them is in `b2bua`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from .dialog import Dialog
from .message import Request
from .transaction import ClientTransaction, ServerTransaction

Address = tuple[str, int]


class MediaError(Exception):
    """The session description cannot be carried (no common codec, unparsable SDP)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CallMedia(Protocol):
    """One call's media as the B2BUA sees it: SDP from one side rewritten for the other.

    `leg` is the side the SDP came from ("a": the caller, "b": the callee). Implementations
    relay RTP through the server (sipcore.mediasession) or pass SDP through untouched.
    """

    def offer(self, leg: str, body: bytes) -> bytes: ...
    def answer(self, leg: str, body: bytes) -> bytes: ...
    def close(self) -> dict[str, Any]: ...


class State(enum.Enum):
    ROUTING = "routing"        # INVITE received, forks not yet answered
    EARLY = "early"            # a fork sent a provisional response
    ANSWERED = "answered"      # 2xx relayed to the caller, waiting for the caller's ACK
    CONFIRMED = "confirmed"    # both dialogs established
    ENDED = "ended"


class Disposition(enum.StrEnum):
    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"      # routing refused it (404, 403, 484...)
    FAILED = "FAILED"          # the far end or the network failed it


@dataclass(eq=False)
class Fork:
    """One INVITE we sent for the call: to one registered device, or to a trunk."""
    call: "Call"
    target: str                         # device username or trunk name
    invite: Request
    txn: ClientTransaction | None
    dialog: Dialog
    final: int | None = None            # status of its final response
    reason: str = ""
    ack: bytes | None = None            # the ACK we sent for its 2xx, re-sent on retransmits
    # A trunk's digest identity: (username, realm or None, HA1 per algorithm), used once when
    # the trunk challenges the INVITE.
    credentials: tuple[str, str | None, Any] | None = None
    auth_tried: bool = False


@dataclass(eq=False)
class Side:
    """One established side of the call: its dialog and how to reach it."""
    name: str                           # "a" or "b"
    dialog: Dialog
    pending: ServerTransaction | None = None   # its in-dialog request we are relaying


@dataclass(eq=False)
class Call:
    id: str
    invite: Request                     # the caller's INVITE
    txn: ServerTransaction              # its server transaction
    a: Side                             # the caller's side (our dialog as UAS)
    started: float                      # wall clock
    caller: dict[str, Any] = field(default_factory=dict)     # who called (for the record)
    callee: dict[str, Any] = field(default_factory=dict)     # who was called
    direction: str = "INTERNAL"         # INTERNAL, INBOUND, OUTBOUND
    emergency: bool = False
    international: bool = False
    state: State = State.ROUTING
    forks: list[Fork] = field(default_factory=list)
    b: Side | None = None               # the fork that answered, once it has
    media: CallMedia | None = None
    delayed_offer: bool = False         # the caller's INVITE had no SDP
    answered: float | None = None
    ended: float | None = None
    disposition: Disposition | None = None
    final_status: int | None = None
    final_reason: str = ""
    a_2xx: bytes | None = None          # our 2xx to the caller, re-sent until the ACK
    a_2xx_interval: float = 0.0
    a_2xx_deadline: float = 0.0
    no_answer_at: float | None = None
    hangup_by: str | None = None        # "caller", "callee" or "system"
    # A call answered here (an auto attendant): the application that handles it, the SDP the
    # caller last offered, and while it is being transferred the deadline of that attempt.
    app: Any = None
    a_offer: bytes = b""
    transfer_deadline: float | None = None

    def other(self, side: Side) -> Side | None:
        return self.b if side is self.a else self.a


def aggregate_failure(forks: list[Fork]) -> tuple[int, str]:
    """The response the caller hears when every fork failed (RFC 3261 §16.7 in spirit):
    a 6xx decides at once; busy only when every device was busy; otherwise the lowest
    class among 4xx/5xx, preferring an informative status over a timeout."""
    finals = [(f.final, f.reason) for f in forks if f.final is not None]
    if not finals:
        return 480, "Temporarily Unavailable"
    for status, reason in finals:
        if status >= 600:
            return status, reason
    if all(status in (486, 600) for status, _ in finals):
        return 486, "Busy Here"
    if all(status == 487 for status, _ in finals):
        return 487, "Request Terminated"
    four = [(s, r) for s, r in finals if 400 <= s < 500 and s not in (408, 486, 487)]
    if four:
        return min(four)
    if any(s in (408, 486) for s, _ in finals):
        return 480, "Temporarily Unavailable"
    return min(finals)


def disposition_for(status: int) -> Disposition:
    if status in (486, 600):
        return Disposition.BUSY
    if status in (408, 480):
        return Disposition.NO_ANSWER
    if status == 487:
        return Disposition.CANCELLED
    return Disposition.FAILED


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    direction: str
    caller: dict[str, Any]
    callee: dict[str, Any]
    dialled: str
    start: float
    answer: float | None
    end: float
    disposition: str
    status: int | None
    international: bool
    emergency: bool
    hangup_by: str | None


def reason_header(status: int, text: str) -> str:
    """RFC 3326 Reason, so a phone (and a test) can tell why a call was refused."""
    clean = text.replace('"', "'")
    return f'SIP;cause={status};text="{clean}"'

