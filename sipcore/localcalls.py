"""Calls answered here rather than passed on: the auto attendant's side of the B2BUA.

An application (the IVR) takes a call the router sent to it: the B2BUA answers the caller
with the application's SDP and hands it the in-dialog traffic that is its business (SIP INFO
digits, re-INVITEs for hold). When the application transfers the call, the B2BUA rings the
target with the caller's own offer through the relay; the first device to answer is bridged
by re-INVITEing the caller towards the relay, and the application lets go. If nobody answers,
the application gets the call back (`on_transfer_failed`) and carries on.

Application protocol (all called on the event loop, synchronously):
    on_info(call, content_type, body, now) -> None
    on_reoffer(call, sdp, now) -> bytes | None     # our answer to the caller's new offer
    on_transferred(call, now) -> None              # bridged: the application's media can go
    on_transfer_failed(call, status, reason, now) -> None
    on_end(call, now) -> None
"""
from __future__ import annotations

import logging
from typing import Any

from .calls import Call, Disposition, MediaError, Side, State, aggregate_failure
from .message import Request, Response, make_response
from .transaction import Send, ServerTransaction

log = logging.getLogger("sipcore.b2bua")


class _Bridge:
    """Our re-INVITE to the caller that moves its media from the application to the relay."""
    __slots__ = ("call",)

    def __init__(self, call: Call):
        self.call = call


class LocalCalls:
    """Mixed into B2BUA; uses its internals (dialogs, outbox, forks, timers)."""

    # -- answering ---------------------------------------------------------------------------
    def answer_locally(self, call: Call, body: bytes, app: Any, now: float,
                       ringing: bool = False) -> list[Send]:
        """Answer the caller ourselves with `body` (our SDP); `app` handles the call from now."""
        call.app = app
        call.a_offer = call.invite.body
        call.direction = call.direction or "INBOUND"
        if ringing:
            ring = make_response(call.invite, 180, to_tag=call.a.dialog.local_tag)
            self._send_response(call.txn, ring, now)
        out = make_response(call.invite, 200, to_tag=call.a.dialog.local_tag)
        out.set("Contact", self._contact_for(call.a.dialog))
        out.set("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY")
        if body:
            out.body = body
            out.set("Content-Type", "application/sdp")
        self._answer_caller(call, out, now)
        return self.drain()

    def refuse_locally(self, call: Call, status: int, why: str, now: float) -> list[Send]:
        self._refuse(call, status, None, why, now)
        return self.drain()

    def hangup_locally(self, call: Call, now: float) -> list[Send]:
        """The application ends the call (goodbye, or a final action of hanging up)."""
        if call.state is not State.ENDED:
            self._hangup(call, now, by="system", disposition=Disposition.ANSWERED)
        return self.drain()

    # -- transfer ------------------------------------------------------------------------------
    def transfer(self, call: Call, route: Any, now: float, timeout: float | None = None) -> list[Send]:
        """Ring `route` (a routing.RingPerson) for a caller the application holds."""
        if call.state is State.ENDED or call.transfer_deadline is not None:
            return self.drain()
        offer = call.a_offer
        body = b""
        try:
            if self.media_factory is not None and offer:
                if call.media is None:
                    call.media = self.media_factory(call.id)
                    adopt = getattr(call.media, "adopt_origin", None)
                    origin = getattr(call.app, "origin_for", lambda c: None)(call)
                    if adopt is not None and origin is not None:
                        adopt("a", origin)  # the caller keeps one SDP session (RFC 3264 §8)
                body = call.media.offer("a", offer)
            else:
                body = offer
        except MediaError as exc:
            call.app.on_transfer_failed(call, exc.status, exc.reason, now)
            return self.drain()
        call.forks = []
        if not self._fork_to_person(call, route, body, now):
            call.app.on_transfer_failed(call, 480, "no registered device", now)
            return self.drain()
        call.transfer_deadline = now + (timeout or self.no_answer_timeout)
        self._schedule(call, "transfer", call.transfer_deadline)
        return self.drain()

    def _transfer_fork_response(self, fork, resp: Response, now: float) -> None:
        call = fork.call
        status = resp.status
        if status < 200:
            if resp.to.tag:
                fork.dialog.remote_tag = resp.to.tag
            return  # the application keeps the caller company while it rings
        if status < 300:
            if fork.final is not None and 200 <= fork.final < 300:
                if fork.ack is not None:
                    self._out.append(Send(fork.ack, fork.dialog.dest, fork.dialog.transport))
                return
            fork.final, fork.reason = status, resp.reason
            fork.dialog.confirm(resp)
            if call.transfer_deadline is None or call.b is not None or call.state is State.ENDED:
                self._ack_and_bye(fork, now)
                return
            self._bridge(call, fork, resp, now)
            return
        if fork.final is None:
            fork.final, fork.reason = status, resp.reason
            if call.transfer_deadline is not None:
                self._transfer_fork_failed(call, now)

    def _bridge(self, call: Call, fork, resp: Response, now: float) -> None:
        side = Side("b", fork.dialog)
        body = resp.body
        try:
            a_body = call.media.offer("b", body) if (call.media is not None and body) else body
        except MediaError as exc:
            self._ack_and_bye(fork, now)
            self._transfer_fork_failed(call, now, (exc.status, exc.reason))
            return
        call.b = side
        call.transfer_deadline = None
        self._dialogs[(fork.dialog.call_id, fork.dialog.local_tag)] = (call, side)
        self._ack_fork(call, side, b"", now)
        for other in call.forks:
            if other is not fork and other.final is None and other.txn is not None:
                cancelled = self.transactions.cancel(other.txn, now)
                if cancelled is not None:
                    self._out.extend(cancelled[1])
        call.callee.setdefault("device", fork.target)
        call.callee["transferred"] = True
        reinvite = self._send_in_dialog(call.a.dialog, "INVITE", now, body=a_body or b"",
                                        content_type="application/sdp" if a_body else None)
        reinvite.user_data = _Bridge(call)
        app, call.app = call.app, None
        app.on_transferred(call, now)

    def _bridge_response(self, bridge: _Bridge, resp: Response, now: float) -> None:
        call = bridge.call
        if resp.status < 200 or call.state is State.ENDED:
            return
        dialog = call.a.dialog
        host, port = self.local(dialog.transport, dialog.dest)
        if 200 <= resp.status < 300:
            ack = dialog.request("ACK", f"SIP/2.0/{dialog.transport} {host}:{port}", cseq=resp.cseq[0])
            self._out.append(Send(ack.to_bytes(), dialog.dest, dialog.transport))
            dialog.refresh_target(resp)
            if resp.body and call.media is not None:
                try:
                    call.media.answer("a", resp.body)
                except MediaError as exc:
                    log.info("call %s: caller refused the bridged media (%s)", call.id, exc.reason)
            return
        log.info("call %s: caller refused the re-INVITE to the transfer target (%d)", call.id, resp.status)
        self._hangup(call, now, by="system", disposition=Disposition.FAILED)

    def _transfer_fork_failed(self, call: Call, now: float, failure: tuple[int, str] | None = None) -> None:
        if failure is None:
            if any(f.final is None for f in call.forks):
                return
            failure = aggregate_failure(call.forks)
        call.transfer_deadline = None
        if call.app is not None and call.state is not State.ENDED:
            call.app.on_transfer_failed(call, failure[0], failure[1], now)

    def _transfer_timeout(self, call: Call, now: float) -> None:
        self._cancel_forks(call, now)
        for fork in call.forks:
            if fork.final is None:
                fork.final, fork.reason = 408, "no answer"
        self._transfer_fork_failed(call, now, (480, "no answer"))

    # -- requests to the application ---------------------------------------------------------------
    def _local_request(self, call: Call, side: Side, req: Request, txn: ServerTransaction,
                       now: float) -> Response:
        method = req.method
        ctype = (req.get("content-type") or "").split(";")[0].strip().lower()
        if method == "INFO":
            call.app.on_info(call, ctype, req.body, now)
            return make_response(req, 200)
        if method in ("INVITE", "UPDATE"):
            side.dialog.refresh_target(req)
            answer = None
            if req.body and ctype == "application/sdp":
                call.a_offer = req.body
                answer = call.app.on_reoffer(call, req.body, now)
                if answer is None:
                    return make_response(req, 488, "Not Acceptable Here: no common codec")
            resp = make_response(req, 200)
            resp.set("Contact", self._contact_for(side.dialog))
            if answer:
                resp.body = answer
                resp.set("Content-Type", "application/sdp")
            return resp
        if method in ("OPTIONS", "NOTIFY", "MESSAGE"):
            return make_response(req, 200)
        return make_response(req, 501)
