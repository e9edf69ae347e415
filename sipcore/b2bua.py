"""The back-to-back user agent: each call is two dialogs, one with the caller and one with
whoever answers, and everything between them passes through here.

Sans-IO like the rest of sipcore: the Endpoint hands in requests, responses, ACKs and
transaction time-outs with the current time; what to send collects in an outbox the
Endpoint drains (`drain`), and the B2BUA's own timers (no-answer, 2xx retransmission) are
deadlines (`next_deadline`/`handle_timers`). Who the caller is (`identify`), where the call
goes (`router`, routing.resolve over the directory), where phones are (the binding store)
and how media is carried (`media_factory`) are handed in, so tests drive it with a fake
clock and no sockets.
"""
from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from routing.route import Emergency, Reject, RingPerson, RunAutoAttendant, ToTrunk

from .calls import (
    Call,
    CallMedia,
    CallRecord,
    Disposition,
    Fork,
    MediaError,
    Side,
    State,
    aggregate_failure,
    disposition_for,
    reason_header,
)
from .outbound import OutboundLegs
from .dialog import Dialog, new_tag
from .indialog import ALLOW, InDialog, _contact, _content_type, _Relay
from .localcalls import LocalCalls, _Bridge
from .location import MemoryBindingStore
from .message import Request, Response, make_response
from .transaction import MAGIC_COOKIE, ClientTransaction, Deliver, Send, ServerTransaction, TimedOut, TransactionLayer
from .uri import URI, unescape

log = logging.getLogger("sipcore.b2bua")

Address = tuple[str, int]
T1, T2 = 0.5, 4.0


class B2BUA(OutboundLegs, InDialog, LocalCalls):
    def __init__(self, *, transactions: TransactionLayer, bindings: MemoryBindingStore,
                 identify: Callable[[Request, Address, str, float], Any],
                 router: Callable[[str, Any, float], Any],
                 local: Callable[[str, Address], Address],
                 media_factory: Callable[[str], CallMedia] | None = None,
                 records: Callable[[CallRecord], None] | None = None,
                 emergency_notify: Callable[[Any, Call], None] | None = None,
                 auto_attendant: Callable[[Call, Any, float], Response | None] | None = None,
                 no_answer_timeout: float = 30.0, user_agent: str = "callrouter"):
        self.transactions = transactions
        self.bindings = bindings
        self.identify = identify
        self.router = router
        self.local = local
        self.media_factory = media_factory
        self.records = records
        self.emergency_notify = emergency_notify
        self.auto_attendant = auto_attendant
        self.no_answer_timeout = no_answer_timeout
        self.user_agent = user_agent
        self.respond_via: Callable[[ServerTransaction, Response, float], list[Send]] = (
            transactions.respond)  # the Endpoint replaces this with its own (counting) respond
        self.calls: dict[str, Call] = {}
        self._dialogs: dict[tuple[str, str], tuple[Call, Side]] = {}
        self._out: list[Send] = []
        self._timers: list[tuple[float, int, Call, str]] = []
        self._seq = itertools.count(1)
        # Our INVITE branches carry this marker: an INVITE that comes back with it in a Via
        # has looped through a peer (RFC 3261 §16.3 item 4, done the B2BUA way).
        self._cookie = os.urandom(3).hex()
        self._ids = (f"{os.urandom(4).hex()}-{n}" for n in itertools.count(1))
        self._host_cache: dict[str, str] = {}
        # An application with deadlines of its own (the IVR's menus) shares our timer.
        self.application_timers: Any = None

    # -- Endpoint contract ----------------------------------------------------------------------
    def drain(self) -> list[Send]:
        out, self._out = self._out, []
        return out

    def __call__(self, req: Request, txn: ServerTransaction, now: float) -> Response | None:
        if req.to.tag:
            return self._in_dialog(req, txn, now)
        method = req.method
        if method == "INVITE":
            return self._new_call(req, txn, now)
        if method == "CANCEL":
            return self._cancel(req, now)
        if method in ("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            return make_response(req, 481, to_tag=new_tag())
        if method in ("MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH"):
            return make_response(req, 480, "Temporarily Unavailable: no route", to_tag=new_tag())
        return make_response(req, 501, to_tag=new_tag())

    def on_response(self, item: Deliver, now: float) -> list[Send]:
        data = item.txn.user_data
        if isinstance(data, Fork):
            self._fork_response(data, item.txn, item.response, now)
        elif isinstance(data, _Relay):
            self._relay_response(data, item.response, now)
        elif isinstance(data, _Bridge):
            self._bridge_response(data, item.response, now)
        return self.drain()

    def on_ack(self, req: Request, now: float, txn: ServerTransaction | None = None) -> list[Send]:
        found = self._dialogs.get((req.call_id, req.to.tag or ""))
        if found is None:
            # An ACK that reused the INVITE's branch matched its transaction even though its
            # To tag is wrong (pyVoIP invents a new one): it acknowledges that INVITE's 2xx.
            call = txn.user_data if txn is not None else None
            if not isinstance(call, Call) or call.state is not State.ANSWERED:
                return []
            found = (call, call.a)
        call, side = found
        if side is call.a and call.state is State.ANSWERED:
            call.state = State.CONFIRMED
            call.a_2xx = None
            if call.delayed_offer and call.b is not None:
                body = req.body
                if body and call.media is not None:
                    try:
                        body = call.media.answer("a", body)
                    except MediaError as exc:
                        log.info("call %s: caller's answer unusable (%s); hanging up", call.id, exc.reason)
                        self._hangup(call, now, by="system", disposition=Disposition.FAILED)
                        return self.drain()
                self._ack_fork(call, call.b, body, now)
        return self.drain()

    def on_timeout(self, item: TimedOut, now: float) -> list[Send]:
        data = item.txn.user_data
        if isinstance(data, Fork) and data.final is None:
            data.final, data.reason = 408, "Request Timeout"
            self._fork_failed(data.call, now)
        elif isinstance(data, _Relay):
            self._send_response(data.txn, make_response(data.txn.request, 408), now)
            data.side.pending = None
        return self.drain()

    def next_deadline(self) -> float | None:
        timers = self._timers
        own = None
        while timers:
            deadline, _seq, call, kind = timers[0]
            if self._timer_live(call, kind, deadline):
                own = deadline
                break
            heapq.heappop(timers)
        app = self.application_timers.next_deadline() if self.application_timers is not None else None
        if app is not None and (own is None or app < own):
            return app
        return own

    def handle_timers(self, now: float) -> list[Send]:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _seq, call, kind = heapq.heappop(timers)
            if not self._timer_live(call, kind, deadline):
                continue
            if kind == "no-answer":
                self._no_answer(call, now)
            elif kind == "transfer":
                self._transfer_timeout(call, now)
            elif kind == "2xx":
                self._retransmit_2xx(call, now)
        if self.application_timers is not None:
            self.application_timers.handle_timers(now)
        return self.drain()

    @staticmethod
    def _timer_live(call: Call, kind: str, deadline: float) -> bool:
        if kind == "no-answer":
            return call.no_answer_at == deadline and call.state in (State.ROUTING, State.EARLY)
        if kind == "transfer":
            return call.transfer_deadline == deadline and call.state is not State.ENDED
        return call.a_2xx is not None and call.state is State.ANSWERED and call.a_2xx_deadline > 0

    def _schedule(self, call: Call, kind: str, deadline: float) -> None:
        heapq.heappush(self._timers, (deadline, next(self._seq), call, kind))

    # -- a new call ------------------------------------------------------------------------
    def _new_call(self, req: Request, txn: ServerTransaction, now: float) -> Response | None:
        marker = MAGIC_COOKIE + self._cookie
        if any((v.branch or "").startswith(marker) for v in req.vias):
            return make_response(req, 482, to_tag=new_tag())
        caller = self.identify(req, txn.reply_addr, txn.transport, now)
        if isinstance(caller, Response):
            return caller
        dialled = dialled_from(req.uri)
        a_tag = new_tag()
        call = Call(id=next(self._ids), invite=req, txn=txn,
                    a=Side("a", Dialog.as_uas(req, a_tag, txn.reply_addr, txn.transport)),
                    started=now, caller=_describe_caller(caller, req))
        call.callee = {"dialled": dialled}
        txn.user_data = call
        self.calls[call.id] = call
        if not dialled:
            return self._refuse(call, 404, "Not Found", "no number in the Request-URI", now)
        try:
            route = self.router(dialled, caller, now)
        except Exception:  # a routing bug costs this call, not the server
            log.exception("routing %r failed", dialled)
            return self._refuse(call, 500, "Server Internal Error", "routing failed", now)
        if isinstance(route, Reject):
            return self._refuse(call, route.status, None, route.reason, now)
        call.direction = "INBOUND" if getattr(caller, "trunk_name", None) else "INTERNAL"
        # Every remaining route takes a moment (INVITEs onwards, an attendant starting): say so
        # at once rather than after 200 ms. Some phones (pyVoIP) wait for a 100 or 180 before
        # they take any answer to their INVITE.
        self._send_response(txn, make_response(req, 100), now)
        if isinstance(route, RunAutoAttendant):
            call.callee = {"dialled": dialled, "autoAttendantId": route.auto_attendant_id}
            if self.auto_attendant is None:
                return self._refuse(call, 480, None, "auto attendant unavailable", now)
            return self.auto_attendant(call, route, now)
        has_sdp = bool(req.body) and _content_type(req) == "application/sdp"
        call.delayed_offer = not has_sdp
        b_body = b""
        if self.media_factory is not None:
            try:
                call.media = self.media_factory(call.id)
            except MediaError as exc:  # no relay ports: a clear 503, not a dropped INVITE
                return self._refuse(call, exc.status, None, exc.reason, now)
            if has_sdp:
                try:
                    b_body = call.media.offer("a", req.body)
                except MediaError as exc:
                    return self._refuse(call, exc.status, None, exc.reason, now)
        elif has_sdp:
            b_body = req.body
        if isinstance(route, RingPerson):
            self._ring_person(call, route, b_body, now)
        elif isinstance(route, Emergency):
            self._emergency(call, route, b_body, now)
        elif isinstance(route, ToTrunk):
            self._to_trunk(call, route, b_body, now)
        else:
            return self._refuse(call, 500, None, f"unknown route {type(route).__name__}", now)
        if call.state is State.ROUTING and call.forks:
            call.no_answer_at = now + self.no_answer_timeout
            self._schedule(call, "no-answer", call.no_answer_at)
        return None

    # -- responses to our INVITEs ---------------------------------------------------------------
    def _fork_response(self, fork: Fork, txn: ClientTransaction, resp: Response, now: float) -> None:
        call = fork.call
        status = resp.status
        if call.transfer_deadline is not None or (call.app is not None and call.b is None
                                                   and call.state is not State.ROUTING):
            self._transfer_fork_response(fork, resp, now)
            return
        if status < 200:
            if status == 100 or call.state not in (State.ROUTING, State.EARLY):
                return
            if resp.to.tag:
                fork.dialog.remote_tag = resp.to.tag
            out = make_response(call.invite, status, resp.reason, to_tag=call.a.dialog.local_tag)
            if resp.body and _content_type(resp) == "application/sdp" and not call.delayed_offer:
                try:
                    out.body = call.media.answer("b", resp.body) if call.media else resp.body
                    out.set("Content-Type", "application/sdp")
                except MediaError as exc:
                    log.info("call %s: early media SDP unusable: %s", call.id, exc.reason)
            out.set("Contact", self._contact_for(call.a.dialog))
            call.state = State.EARLY
            self._send_response(call.txn, out, now)
            return
        if status < 300:
            self._fork_answered(fork, resp, now)
            return
        if status in (401, 407):
            if self._retry_with_credentials(fork, resp, now):
                return
            # The far side's challenge is not the caller's to answer (it would prompt the
            # phone for credentials it does not have): the call failed at the trunk.
            status, resp.reason = 503, "Service Unavailable: trunk authentication failed"
        if fork.final is None:
            fork.final, fork.reason = status, resp.reason
            if call.state in (State.ROUTING, State.EARLY):
                self._fork_failed(call, now)

    def _fork_answered(self, fork: Fork, resp: Response, now: float) -> None:
        call = fork.call
        if fork.final is not None and 200 <= fork.final < 300:  # a retransmitted 2xx
            if fork.ack is not None:
                self._out.append(Send(fork.ack, fork.dialog.dest, fork.dialog.transport))
            return
        fork.final, fork.reason = resp.status, resp.reason
        fork.dialog.confirm(resp)
        if call.b is not None or call.state not in (State.ROUTING, State.EARLY):
            # Another device answered first, or the caller gave up: this one is not wanted.
            self._ack_and_bye(fork, now)
            return
        side = Side("b", fork.dialog)
        call.b = side
        self._dialogs[(fork.dialog.call_id, fork.dialog.local_tag)] = (call, side)
        self._dialogs[(call.a.dialog.call_id, call.a.dialog.local_tag)] = (call, call.a)
        body = resp.body
        if body and call.media is not None:
            try:
                body = (call.media.offer("b", body) if call.delayed_offer
                        else call.media.answer("b", body))
            except MediaError as exc:
                self._ack_and_bye(fork, now)
                call.b = None
                self._final_to_caller(call, 488, None, exc.reason, now)
                return
        if not call.delayed_offer:
            self._ack_fork(call, side, b"", now)
        for other in call.forks:
            if other is not fork and other.final is None and other.txn is not None:
                cancelled = self.transactions.cancel(other.txn, now)
                if cancelled is not None:
                    self._out.extend(cancelled[1])
        out = make_response(call.invite, 200, to_tag=call.a.dialog.local_tag)
        out.set("Contact", self._contact_for(call.a.dialog))
        out.set("Allow", ALLOW)
        if body:
            out.body = body
            out.set("Content-Type", "application/sdp")
        call.callee.setdefault("device", fork.target)
        self._answer_caller(call, out, now)

    def _answer_caller(self, call: Call, out: Response, now: float) -> None:
        """Send the caller our 2xx, and keep re-sending it over UDP until the ACK (§13.3.1.4)."""
        call.state = State.ANSWERED
        call.answered = now
        self._dialogs[(call.a.dialog.call_id, call.a.dialog.local_tag)] = (call, call.a)
        sends = self._send_response(call.txn, out, now)
        if call.txn.transport == "UDP" and sends:
            call.a_2xx = sends[0].data
            call.a_2xx_interval = T1
            call.a_2xx_deadline = now + 64 * T1
            self._schedule(call, "2xx", now + T1)

    def _ack_fork(self, call: Call, side: Side, body: bytes, now: float) -> None:
        fork = next(f for f in call.forks if f.dialog is side.dialog)
        host, port = self.local(side.dialog.transport, side.dialog.dest)
        ack = side.dialog.request("ACK", f"SIP/2.0/{side.dialog.transport} {host}:{port}",
                                  cseq=fork.invite.cseq[0], body=body)
        fork.ack = ack.to_bytes()
        self._out.append(Send(fork.ack, side.dialog.dest, side.dialog.transport))

    def _ack_and_bye(self, fork: Fork, now: float) -> None:
        dialog = fork.dialog
        host, port = self.local(dialog.transport, dialog.dest)
        via = f"SIP/2.0/{dialog.transport} {host}:{port}"
        fork.ack = dialog.request("ACK", via, cseq=fork.invite.cseq[0]).to_bytes()
        self._out.append(Send(fork.ack, dialog.dest, dialog.transport))
        self._send_in_dialog(dialog, "BYE", now)

    def _fork_failed(self, call: Call, now: float) -> None:
        if call.transfer_deadline is not None:
            self._transfer_fork_failed(call, now)
            return
        if call.app is not None:
            return  # a late failure of an abandoned transfer: the call is in its application
        if call.b is not None or any(f.final is None for f in call.forks):
            return
        status, reason = aggregate_failure(call.forks)
        self._final_to_caller(call, status, reason, None, now)

    # -- the caller gives up, nobody answers, a side hangs up --------------------------------------
    def _cancel(self, req: Request, now: float) -> Response:
        invite_txn = self.transactions.find_invite_for_cancel(req)
        call = invite_txn.user_data if invite_txn is not None else None
        if not isinstance(call, Call):
            return make_response(req, 481, to_tag=new_tag())
        if call.state in (State.ROUTING, State.EARLY):
            call.hangup_by = "caller"
            self._cancel_forks(call, now)
            self._final_to_caller(call, 487, None, None, now, disposition=Disposition.CANCELLED)
        return make_response(req, 200, to_tag=call.a.dialog.local_tag)

    def _no_answer(self, call: Call, now: float) -> None:
        self._cancel_forks(call, now)
        self._final_to_caller(call, 480, "Temporarily Unavailable", "no answer", now,
                              disposition=Disposition.NO_ANSWER)

    def _cancel_forks(self, call: Call, now: float) -> None:
        for fork in call.forks:
            if fork.final is None and fork.txn is not None:
                cancelled = self.transactions.cancel(fork.txn, now)
                if cancelled is not None:
                    self._out.extend(cancelled[1])

    def _retransmit_2xx(self, call: Call, now: float) -> None:
        if now >= call.a_2xx_deadline:
            # §13.3.1.4: no ACK within 64*T1 means the dialog is confirmed and torn down.
            log.info("call %s: no ACK from the caller; hanging up", call.id)
            self._dialogs[(call.a.dialog.call_id, call.a.dialog.local_tag)] = (call, call.a)
            self._hangup(call, now, by="system", disposition=Disposition.FAILED)
            return
        self._out.append(Send(call.a_2xx, call.a.dialog.dest, call.a.dialog.transport))
        call.a_2xx_interval = min(call.a_2xx_interval * 2, T2)
        self._schedule(call, "2xx", min(now + call.a_2xx_interval, call.a_2xx_deadline))

    def _hangup(self, call: Call, now: float, *, by: str, disposition: Disposition | None = None,
                skip: Side | None = None) -> None:
        for side in (call.a, call.b):
            if side is not None and side is not skip:
                self._send_in_dialog(side.dialog, "BYE", now)
        call.hangup_by = call.hangup_by or by
        self._end(call, now, disposition or Disposition.ANSWERED, 200 if call.answered else None)

    # -- requests inside a call --------------------------------------------------------------
    # -- endings ---------------------------------------------------------------------------
    def _refuse(self, call: Call, status: int, reason: str | None, why: str, now: float) -> None:
        self._final_to_caller(call, status, reason, why, now, disposition=Disposition.REJECTED)
        return None

    def _final_to_caller(self, call: Call, status: int, reason: str | None, why: str | None,
                         now: float, disposition: Disposition | None = None) -> None:
        if call.state is State.ENDED:
            return
        out = make_response(call.invite, status, reason, to_tag=call.a.dialog.local_tag)
        if why:
            out.set("Reason", reason_header(status, why))
        self._send_response(call.txn, out, now)
        self._end(call, now, disposition or disposition_for(status), status)

    def _end(self, call: Call, now: float, disposition: Disposition, status: int | None) -> None:
        if call.state is State.ENDED:
            return
        call.state = State.ENDED
        call.ended = now
        call.disposition = disposition
        call.final_status = status
        call.a_2xx = None
        self.calls.pop(call.id, None)
        self._dialogs.pop((call.a.dialog.call_id, call.a.dialog.local_tag), None)
        if call.b is not None:
            self._dialogs.pop((call.b.dialog.call_id, call.b.dialog.local_tag), None)
        if call.media is not None:
            try:
                call.media.close()
            except Exception:
                log.exception("call %s: releasing media failed", call.id)
        if call.app is not None:
            try:
                call.app.on_end(call, now)
            except Exception:
                log.exception("call %s: the application failed at the end of the call", call.id)
        if self.records is not None:
            record = CallRecord(
                call_id=call.invite.call_id, direction=call.direction, caller=call.caller,
                callee=call.callee, dialled=call.callee.get("dialled", ""), start=call.started,
                answer=call.answered, end=now, disposition=disposition.value, status=status,
                international=call.international, emergency=call.emergency,
                hangup_by=call.hangup_by)
            try:
                self.records(record)
            except Exception:
                log.exception("call %s: recording the call failed", call.id)

    # -- helpers -------------------------------------------------------------------------------
    def _send_response(self, txn: ServerTransaction, resp: Response, now: float) -> list[Send]:
        if resp.status >= 200 and "server" not in resp:
            resp.set("Server", self.user_agent)
        sends = self.respond_via(txn, resp, now)
        self._out.extend(sends)
        return sends

    def _contact_for(self, dialog: Dialog) -> str:
        host, port = self.local(dialog.transport, dialog.dest)
        return _contact(host, port, dialog.transport)

    def _host(self, host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        known = self._host_cache.get(host)
        if known is None:
            # Trunk names resolve once and are cached: the directory changes rarely, and a
            # blocking lookup per call would stall signalling.
            known = socket.gethostbyname(host)
            self._host_cache[host] = known
        return known


def dialled_from(uri: URI) -> str:
    """The number or extension a Request-URI asks for (user part, or a tel: number)."""
    user = uri.user or ""
    if ";" in user:  # tel-style parameters in the user part (phone-context...)
        user = user.split(";", 1)[0]
    return unescape(user)


def _describe_caller(caller: Any, req: Request) -> dict[str, Any]:
    if hasattr(caller, "sip_username"):
        return {"device": caller.sip_username}
    if hasattr(caller, "trunk_name"):
        return {"trunk": caller.trunk_name, "number": getattr(caller, "from_number", None)}
    return {"from": str(req.from_.uri)}


