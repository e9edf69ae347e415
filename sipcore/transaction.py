"""SIP transactions: RFC 3261 §17 client and server state machines with the RFC 6026
corrections (the INVITE "Accepted" states and Timers L and M), sans-IO.

Nothing here touches a socket or the clock. Every entry point takes `now` and returns what
to do (bytes to send, responses for the TU, timeouts); the shell asks `next_deadline()` and
calls `handle_timers(now)` when it passes. All timers of all transactions live in one heap
of (deadline, seq, txn, kind) entries; a transaction remembers the seq of the entry that
is live in each of its three timer slots (retransmission, guard, end), so cancelling is
just forgetting the seq and the stale entry is skipped when it surfaces.

Matching follows §17.2.3 (server: branch with the z9hG4bK cookie, sent-by, method with ACK
mapped to INVITE; otherwise the RFC 2543 fields) and §17.1.3 (client: branch and CSeq
method), as dictionary lookups.
"""
from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .fields import split_commas
from .message import Request, Response, make_response
from .uri import URI, unescape

T1, T2, T4 = 0.5, 4.0, 5.0
TIMER_D = 32.0          # "at least 32 seconds" for unreliable transports (§17.1.1.2)
TRYING_AFTER = 0.2      # an INVITE server transaction answers 100 if the TU has not (§17.2.1)
MAGIC_COOKIE = "z9hG4bK"
Address = tuple[str, int]
_UNRELIABLE = frozenset(("UDP", "DTLS"))


class State(Enum):
    CALLING = "Calling"          # INVITE client transaction before any response
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"        # RFC 6026: a 2xx passed through an INVITE transaction
    TERMINATED = "Terminated"


_CALLING, _TRYING, _PROCEEDING = State.CALLING, State.TRYING, State.PROCEEDING
_COMPLETED, _CONFIRMED, _ACCEPTED = State.COMPLETED, State.CONFIRMED, State.ACCEPTED
_TERMINATED = State.TERMINATED


@dataclass(slots=True)
class Send:
    data: bytes
    addr: Address
    transport: str


@dataclass(slots=True)
class Deliver:
    """A response the TU must see."""
    txn: "ClientTransaction"
    response: Response


@dataclass(slots=True)
class TimedOut:
    """Timer B/F fired (client), Timer H fired (server: no ACK), or a CANCELled INVITE got no
    final response within 64*T1 (§9.1)."""
    txn: "ClientTransaction | ServerTransaction"


@dataclass(slots=True)
class Terminated:
    txn: "ClientTransaction | ServerTransaction"


def new_branch() -> str:
    """A fresh RFC 3261 branch for a request's top Via."""
    return MAGIC_COOKIE + os.urandom(10).hex()


class Transaction:
    __slots__ = ("kind", "request", "state", "transport", "reliable", "last_response",
                 "user_data", "_key", "_out", "_interval", "_rt", "_guard", "_end")

    def __init__(self, kind: str, request: Request, state: State, transport: str, key: Any):
        self.kind = kind                  # "ist", "nist", "ict" or "nict"
        self.request = request
        self.state = state
        self.transport = transport
        self.reliable = transport.upper() not in _UNRELIABLE
        self.last_response: Response | None = None
        self.user_data: Any = None
        self._key = key
        self._out: bytes | None = None    # what a retransmission re-sends
        self._interval = 0.0              # current Timer A/E/G interval
        self._rt = self._guard = self._end = 0  # seq of the live heap entry per slot, 0 = none

    @property
    def is_invite(self) -> bool:
        return self.kind == "ist" or self.kind == "ict"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.request.method} {self.state.name}>"


class ServerTransaction(Transaction):
    __slots__ = ("reply_addr", "_ack_key")

    def __init__(self, kind, request, state, transport, key, reply_addr: Address):
        Transaction.__init__(self, kind, request, state, transport, key)
        self.reply_addr = reply_addr
        self._ack_key: tuple | None = None  # RFC 2543 matching of the ACK (To tag of our final)


class ClientTransaction(Transaction):
    __slots__ = ("dest", "cancel_txn", "cancels", "_cancel_pending")

    def __init__(self, kind, request, state, transport, key, dest: Address):
        Transaction.__init__(self, kind, request, state, transport, key)
        self.dest = dest
        self.cancel_txn: ClientTransaction | None = None  # INVITE: the CANCEL sent for it
        self.cancels: ClientTransaction | None = None     # CANCEL: the INVITE it cancels
        self._cancel_pending = False


# Timer kind -> the transaction slot holding its live seq.
_SLOT = {
    "A": "_rt", "E": "_rt", "G": "_rt", "100": "_rt",
    "B": "_guard", "F": "_guard", "H": "_guard", "cancel": "_guard",
    "D": "_end", "I": "_end", "J": "_end", "K": "_end", "L": "_end", "M": "_end",
}
_KINDS = ("ist", "nist", "ict", "nict")


class TransactionLayer:
    def __init__(self, t1: float = T1, t2: float = T2, t4: float = T4, *,
                 timer_d: float = TIMER_D, trying_after: float | None = TRYING_AFTER):
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.timer_d = timer_d
        self.trying_after = trying_after  # None: the TU always answers INVITEs itself at once
        self._server: dict[tuple, ServerTransaction] = {}
        self._client: dict[tuple, ClientTransaction] = {}
        self._counts = dict.fromkeys(_KINDS, 0)
        self._heap: list[tuple[float, int, Transaction, str]] = []
        self._seq = 0
        self._stale = 0
        self._key_req: Request | None = None  # one-entry cache: match_server -> create_server
        self._key_val: tuple | None = None

    # -- bookkeeping ---------------------------------------------------------------------
    def __len__(self) -> int:
        """Transactions alive."""
        c = self._counts
        return c["ist"] + c["nist"] + c["ict"] + c["nict"]

    def counts(self) -> dict[str, int]:
        """Transactions alive per kind: ist, nist, ict, nict."""
        return dict(self._counts)

    # -- server side ---------------------------------------------------------------------
    def _server_key(self, req: Request, method: str | None = None) -> tuple:
        if method is None and req is self._key_req:
            return self._key_val  # type: ignore[return-value]
        via = req.top_via
        branch = via.branch
        m = method or req.method
        if branch and branch.startswith(MAGIC_COOKIE):
            key: tuple = (branch, via.sent_by, "INVITE" if m == "ACK" else m)
        else:
            key = _rfc2543_key(req, via, m)
        if method is None:
            self._key_req, self._key_val = req, key
        return key

    def match_server(self, req: Request) -> ServerTransaction | None:
        """The server transaction `req` belongs to: a retransmission, or the ACK for a final
        response sent by an INVITE transaction. None for a new request, or an ACK for a 2xx
        (which is the TU's, RFC 3261 §17.2.3)."""
        try:
            return self._server.get(self._server_key(req))
        except (ValueError, KeyError):
            return None

    def on_retransmission(self, txn: ServerTransaction, req: Request, now: float) -> list[Send]:
        """Absorb a request that matched `txn`; re-send the last response where the RFC says
        so. An ACK moves a Completed INVITE transaction to Confirmed (Timer I). An ACK that
        matches a transaction in Accepted belongs to the TU (RFC 6026 §7.1): nothing is sent
        and the caller passes it up (`receive_request` does this)."""
        state = txn.state
        if req.method == "ACK":
            if state is _COMPLETED and txn.kind == "ist":
                txn.state = _CONFIRMED
                self._cancel(txn, "_rt")
                self._cancel(txn, "_guard")
                self._schedule(txn, "I", now if txn.reliable else now + self.t4)
            return []
        if txn.kind == "ist":
            # Proceeding: the latest provisional; Completed: the final. Confirmed absorbs,
            # and Accepted absorbs too: the TU retransmits its own 2xx (RFC 6026 §7.1).
            if (state is _PROCEEDING or state is _COMPLETED) and txn._out is not None:
                return [Send(txn._out, txn.reply_addr, txn.transport)]
            return []
        if txn._out is not None and state is not _TERMINATED:
            return [Send(txn._out, txn.reply_addr, txn.transport)]
        return []

    def create_server(self, req: Request, reply_addr: Address, transport: str,
                      now: float) -> ServerTransaction:
        """A server transaction for a new request (not an ACK). INVITE starts in Proceeding
        and answers 100 Trying after `trying_after` unless the TU responds first; others start
        in Trying."""
        method = req.method
        if method == "ACK":
            raise ValueError("an ACK does not create a server transaction")
        key = self._server_key(req)
        if key in self._server:
            raise ValueError("a server transaction already exists for this request")
        if method == "INVITE":
            txn = ServerTransaction("ist", req, _PROCEEDING, transport, key, reply_addr)
            if self.trying_after is not None:
                self._schedule(txn, "100", now + self.trying_after)
        else:
            txn = ServerTransaction("nist", req, _TRYING, transport, key, reply_addr)
        self._server[key] = txn
        self._counts[txn.kind] += 1
        return txn

    def receive_request(self, req: Request, reply_addr: Address, transport: str,
                        now: float) -> tuple[ServerTransaction | None, bool, list[Send]]:
        """match_server + on_retransmission / create_server in one call. Returns
        (txn, for_tu, sends): for_tu says the TU must handle `req`: a new transaction (txn
        is it), or an ACK no transaction absorbs (txn None: an ACK for a 2xx; or the INVITE
        transaction in Accepted)."""
        txn = self.match_server(req)
        if txn is not None:
            sends = self.on_retransmission(txn, req, now)
            return txn, req.method == "ACK" and txn.state is _ACCEPTED, sends
        if req.method == "ACK":
            return None, True, []
        return self.create_server(req, reply_addr, transport, now), True, []

    def respond(self, txn: ServerTransaction, response: Response, now: float) -> list[Send]:
        """Send a response from the TU through `txn` and move it on (§17.2.1, §17.2.2,
        RFC 6026 §7.1). Responses the state does not allow (a second final, a non-2xx after
        a 2xx) are dropped: []."""
        status = response.status
        state = txn.state
        if txn.kind == "ist":
            if state is _PROCEEDING:
                self._cancel(txn, "_rt")  # the pending automatic 100
                data = self._store(txn, response)
                if status >= 200:
                    if status < 300:
                        txn.state = _ACCEPTED
                        self._schedule(txn, "L", now + 64 * self.t1)
                    else:
                        txn.state = _COMPLETED
                        if not txn.reliable:
                            txn._interval = self.t1
                            self._schedule(txn, "G", now + self.t1)
                        self._schedule(txn, "H", now + 64 * self.t1)
                    if len(txn._key) == 7:  # matched by RFC 2543 rules
                        self._index_rfc2543_ack(txn, response)
                return [Send(data, txn.reply_addr, txn.transport)]
            if state is _ACCEPTED and 200 <= status < 300:
                # the TU retransmitting its 2xx, or a 2xx for another early dialog
                return [Send(self._store(txn, response), txn.reply_addr, txn.transport)]
            return []
        if state is _TRYING or state is _PROCEEDING:
            data = self._store(txn, response)
            if status < 200:
                txn.state = _PROCEEDING
            else:
                txn.state = _COMPLETED
                self._schedule(txn, "J", now if txn.reliable else now + 64 * self.t1)
            return [Send(data, txn.reply_addr, txn.transport)]
        return []

    @staticmethod
    def _store(txn: Transaction, response: Response) -> bytes:
        data = response.to_bytes()
        txn.last_response = response
        txn._out = data
        return data

    def _index_rfc2543_ack(self, txn: ServerTransaction, response: Response) -> None:
        # RFC 2543 peers: the ACK matches by the INVITE's fields and the To tag of our final.
        uri_k, _to_tag, from_tag, call_id, number, _method, via_k = txn._key
        try:
            tag = response.to.tag
        except (ValueError, KeyError):
            tag = None
        key = (uri_k, tag, from_tag, call_id, number, "ACK", via_k)
        txn._ack_key = key
        self._server[key] = txn

    def find_invite_for_cancel(self, cancel: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL targets (§9.2: the §17.2.3 rules with the
        method taken as INVITE)."""
        try:
            txn = self._server.get(self._server_key(cancel, "INVITE"))
        except (ValueError, KeyError):
            return None
        return txn if txn is not None and txn.kind == "ist" else None

    # -- client side ---------------------------------------------------------------------
    def send_request(self, req: Request, dest: Address, transport: str,
                     now: float) -> tuple[ClientTransaction, list[Send]]:
        """Start a client transaction. The top Via must carry an RFC 3261 branch
        (see new_branch); it and the CSeq method identify the transaction."""
        method = req.method
        if method == "ACK":
            raise ValueError("an ACK is not sent in a client transaction")
        branch = req.top_via.branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("the top Via needs a branch starting with z9hG4bK")
        key = (branch, method)
        if key in self._client:
            raise ValueError("a client transaction with this branch and method exists")
        invite = method == "INVITE"
        txn = ClientTransaction("ict" if invite else "nict", req, _CALLING if invite else _TRYING,
                                transport, key, dest)
        data = txn._out = req.to_bytes()
        t1 = self.t1
        if not txn.reliable:
            txn._interval = t1
            self._schedule(txn, "A" if invite else "E", now + t1)
        self._schedule(txn, "B" if invite else "F", now + 64 * t1)
        self._client[key] = txn
        self._counts[txn.kind] += 1
        return txn, [Send(data, dest, transport)]

    def receive_response(self, resp: Response, now: float) -> list[Send | Deliver]:
        """Feed a response from the network. Unmatched responses give []."""
        try:
            txn = self._client.get((resp.top_via.branch, resp.cseq[1]))
        except (ValueError, KeyError):
            return []
        if txn is None:
            return []
        status = resp.status
        state = txn.state
        if txn.kind == "ict":
            if state is _CALLING or state is _PROCEEDING:
                txn.last_response = resp
                if status < 200:
                    out: list[Send | Deliver] = [Deliver(txn, resp)]
                    if state is _CALLING:
                        txn.state = _PROCEEDING
                        self._cancel(txn, "_rt")
                        self._cancel(txn, "_guard")
                        if txn._cancel_pending:
                            out.extend(self._send_cancel(txn, now)[1])
                    return out
                self._cancel(txn, "_rt")
                self._cancel(txn, "_guard")
                txn._cancel_pending = False
                if status < 300:
                    txn.state = _ACCEPTED
                    self._schedule(txn, "M", now + 64 * self.t1)
                    return [Deliver(txn, resp)]
                txn.state = _COMPLETED
                ack = txn._out = _ack_for(txn.request, resp)
                self._schedule(txn, "D", now if txn.reliable else now + self.timer_d)
                return [Send(ack, txn.dest, txn.transport), Deliver(txn, resp)]
            if state is _ACCEPTED:
                if 200 <= status < 300:  # retransmission, or another fork's 2xx
                    txn.last_response = resp
                    return [Deliver(txn, resp)]
                return []
            if state is _COMPLETED and status >= 300:
                return [Send(txn._out, txn.dest, txn.transport)]  # type: ignore[arg-type]
            return []
        if state is _TRYING or state is _PROCEEDING:
            txn.last_response = resp
            if status < 200:
                txn.state = _PROCEEDING
            else:
                txn.state = _COMPLETED
                self._cancel(txn, "_rt")
                self._cancel(txn, "_guard")
                self._schedule(txn, "K", now if txn.reliable else now + self.t4)
            return [Deliver(txn, resp)]
        return []  # Completed: retransmitted finals are absorbed

    def cancel(self, txn: ClientTransaction,
               now: float) -> tuple[ClientTransaction, list[Send]] | None:
        """CANCEL an INVITE client transaction (§9.1). Returns the CANCEL's own client
        transaction and what to send, or None: before any provisional response the CANCEL is
        held and sent when one arrives (from receive_response); after a final response, or
        when already cancelled, nothing is done."""
        if txn.kind != "ict" or txn.cancel_txn is not None:
            return None
        if txn.state is _CALLING:
            txn._cancel_pending = True
            return None
        if txn.state is not _PROCEEDING:
            return None
        return self._send_cancel(txn, now)

    def _send_cancel(self, txn: ClientTransaction, now: float) -> tuple[ClientTransaction, list[Send]]:
        txn._cancel_pending = False
        cancel = _derived_request(txn.request, "CANCEL", txn.request.get_all("to"))
        ctxn, sends = self.send_request(cancel, txn.dest, txn.transport, now)
        ctxn.cancels = txn
        txn.cancel_txn = ctxn
        # §9.1: no final response within 64*T1 of the CANCEL -> the INVITE is given up.
        self._schedule(txn, "cancel", now + 64 * self.t1)
        return ctxn, sends

    # -- any transaction -------------------------------------------------------------------
    def terminate(self, txn: Transaction, now: float) -> list[Terminated]:
        """End a transaction at the TU's request (transport error, TU-level timeout)."""
        if txn.state is _TERMINATED:
            return []
        out: list = []
        self._terminate(txn, out)
        return out

    def _terminate(self, txn: Transaction, out: list) -> None:
        txn.state = _TERMINATED
        self._cancel(txn, "_rt")
        self._cancel(txn, "_guard")
        self._cancel(txn, "_end")
        table: dict = self._client if isinstance(txn, ClientTransaction) else self._server
        if table.get(txn._key) is txn:
            del table[txn._key]
        if isinstance(txn, ServerTransaction) and txn._ack_key is not None:
            if table.get(txn._ack_key) is txn:
                del table[txn._ack_key]
        self._counts[txn.kind] -= 1
        out.append(Terminated(txn))

    # -- timers ------------------------------------------------------------------------------
    def _schedule(self, txn: Transaction, kind: str, deadline: float) -> None:
        slot = _SLOT[kind]
        if getattr(txn, slot):
            self._stale += 1
        self._seq = seq = self._seq + 1
        setattr(txn, slot, seq)
        heapq.heappush(self._heap, (deadline, seq, txn, kind))

    def _cancel(self, txn: Transaction, slot: str) -> None:
        if getattr(txn, slot):
            setattr(txn, slot, 0)
            self._stale += 1
            if self._stale > 4096 and self._stale * 2 > len(self._heap):
                self._compact()

    def _compact(self) -> None:
        heap = self._heap
        heap[:] = [e for e in heap if getattr(e[2], _SLOT[e[3]]) == e[1]]
        heapq.heapify(heap)
        self._stale = 0

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, seq, txn, kind = heap[0]
            if getattr(txn, _SLOT[kind]) == seq:
                return deadline
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def handle_timers(self, now: float) -> list[Send | TimedOut | Terminated]:
        out: list = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _deadline, seq, txn, kind = heapq.heappop(heap)
            slot = _SLOT[kind]
            if getattr(txn, slot) != seq:
                self._stale -= 1
                continue
            setattr(txn, slot, 0)
            _FIRE[kind](self, txn, now, out)
        return out

    def _fire_retransmit(self, txn: Transaction, now: float, out: list) -> None:
        state = txn.state
        kind = txn.kind
        if kind == "ict":            # Timer A: doubles, no cap (Timer B ends it)
            if state is not _CALLING:
                return
            txn._interval *= 2
            kind_letter = "A"
        elif kind == "nict":         # Timer E: doubles up to T2; T2 once Proceeding
            if state is _TRYING:
                txn._interval = min(txn._interval * 2, self.t2)
            elif state is _PROCEEDING:
                txn._interval = self.t2
            else:
                return
            kind_letter = "E"
        else:                        # Timer G: the final response, doubling up to T2
            if state is not _COMPLETED:
                return
            txn._interval = min(txn._interval * 2, self.t2)
            kind_letter = "G"
        addr = txn.dest if isinstance(txn, ClientTransaction) else txn.reply_addr  # type: ignore
        out.append(Send(txn._out, addr, txn.transport))  # type: ignore[arg-type]
        self._schedule(txn, kind_letter, now + txn._interval)

    def _fire_timeout(self, txn: Transaction, now: float, out: list) -> None:
        # B (Calling), F (Trying/Proceeding), H (Completed) and the CANCEL guard (Proceeding)
        out.append(TimedOut(txn))
        self._terminate(txn, out)

    def _fire_end(self, txn: Transaction, now: float, out: list) -> None:
        self._terminate(txn, out)   # D, I, J, K, L, M

    def _fire_trying(self, txn: Transaction, now: float, out: list) -> None:
        if txn.state is _PROCEEDING and txn._out is None:
            data = self._store(txn, make_response(txn.request, 100))
            out.append(Send(data, txn.reply_addr, txn.transport))  # type: ignore[attr-defined]


_FIRE = {
    "A": TransactionLayer._fire_retransmit, "E": TransactionLayer._fire_retransmit,
    "G": TransactionLayer._fire_retransmit,
    "B": TransactionLayer._fire_timeout, "F": TransactionLayer._fire_timeout,
    "H": TransactionLayer._fire_timeout, "cancel": TransactionLayer._fire_timeout,
    "D": TransactionLayer._fire_end, "I": TransactionLayer._fire_end,
    "J": TransactionLayer._fire_end, "K": TransactionLayer._fire_end,
    "L": TransactionLayer._fire_end, "M": TransactionLayer._fire_end,
    "100": TransactionLayer._fire_trying,
}


# -- building ACK and CANCEL -----------------------------------------------------------------
def _derived_request(req: Request, method: str, to: list[str]) -> Request:
    """An ACK or CANCEL for `req` (§17.1.1.3, §9.1): same Request-URI, Call-ID, From, CSeq
    number and Route set, only the top Via (same branch), the given To."""
    top_via = req.get("via") or ""
    if "," in top_via:
        top_via = split_commas(top_via)[0]
    headers: dict[str, list[str]] = {
        "via": [top_via],
        "max-forwards": [req.get("max-forwards") or "70"],
        "from": req.get_all("from"),
        "to": to,
        "call-id": req.get_all("call-id"),
        "cseq": [f"{req.cseq[0]} {method}"],
    }
    route = req.get_all("route")
    if route:
        headers["route"] = route
    return Request(method, req.uri, headers)


def _ack_for(invite: Request, resp: Response) -> bytes:
    return _derived_request(invite, "ACK", resp.get_all("to")).to_bytes()


# -- RFC 2543 matching -----------------------------------------------------------------------
def _uri_key(uri: URI) -> tuple:
    if uri.opaque is not None:
        return (uri.scheme, uri.opaque)
    params = tuple(sorted((k.lower(), unescape(v).lower() if v else v)
                          for k, v in uri.params.items()))
    return (uri.scheme, unescape(uri.user) if uri.user else None, uri.host.lower(),
            uri.port, params)


def _rfc2543_key(req: Request, via, method: str) -> tuple:
    """Request-URI, To tag, From tag, Call-ID, CSeq number and method, top Via (§17.2.3).
    An ACK is looked up under the To tag of the final response (see _index_rfc2543_ack)."""
    number = req.cseq[0]
    via_key = (via.transport, via.sent_by, tuple(sorted(via.params.items(), key=_first)))
    return (_uri_key(req.uri), req.to.tag, req.from_.tag, req.call_id, number, method, via_key)


def _first(item: tuple) -> Any:
    return item[0]
