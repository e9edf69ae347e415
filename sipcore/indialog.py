"""Requests inside an established call: BYE ends both sides; re-INVITE, UPDATE, INFO,
MESSAGE, NOTIFY and OPTIONS are passed to the other side with SDP rewritten for the relay,
and their answers back. Mixed into B2BUA; uses its dialogs, outbox and transaction layer."""
from __future__ import annotations

import logging
from typing import Any

from .calls import Call, MediaError, Side, State
from .dialog import Dialog
from .message import Request, Response, make_response
from .transaction import ClientTransaction, Send, ServerTransaction

log = logging.getLogger("sipcore.b2bua")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
# Headers an in-dialog request keeps when we pass it to the other side (the rest are per hop).
_RELAYED_HEADERS = ("content-type", "event", "subscription-state", "info-package", "content-disposition")


class _Relay:
    """An in-dialog request from `side` that we re-sent to the other side."""
    __slots__ = ("call", "side", "txn", "method")

    def __init__(self, call: Call, side: Side, txn: ServerTransaction, method: str):
        self.call, self.side, self.txn, self.method = call, side, txn, method


class InDialog:
    def _in_dialog(self, req: Request, txn: ServerTransaction, now: float) -> Response | None:
        method = req.method
        found = self._dialogs.get((req.call_id, req.to.tag or ""))
        if found is None:
            return make_response(req, 481)
        call, side = found
        if not side.dialog.accepts(req):
            return make_response(req, 500, "Server Internal Error: CSeq out of order")
        if method == "BYE":
            call.hangup_by = "caller" if side is call.a else "callee"
            self._hangup(call, now, by=call.hangup_by, skip=side)
            return make_response(req, 200)
        if method == "CANCEL":
            return make_response(req, 200)
        if method not in ("INVITE", "UPDATE", "INFO", "MESSAGE", "NOTIFY", "OPTIONS"):
            resp = make_response(req, 501)
            resp.set("Allow", ALLOW)
            return resp
        if call.app is not None and call.b is None:
            return self._local_request(call, side, req, txn, now)
        other = call.other(side)
        if other is None or call.state is State.ENDED:
            return make_response(req, 481)
        if method in ("INVITE", "UPDATE") and (side.pending is not None or other.pending is not None):
            resp = make_response(req, 491)
            resp.set("Retry-After", "1")
            return resp
        body = req.body
        if body and _content_type(req) == "application/sdp" and call.media is not None:
            try:
                body = call.media.offer(side.name, body)
            except MediaError as exc:
                resp = make_response(req, exc.status)
                resp.set("Warning", f'399 callrouter "{exc.reason}"')
                return resp
        if method in ("INVITE", "UPDATE"):
            side.dialog.refresh_target(req)
            side.pending = txn
        extra = {name: req.get(name) for name in _RELAYED_HEADERS if name in req and name != "content-type"}
        relayed = self._send_in_dialog(other.dialog, method, now, body=body,
                                       content_type=req.get("content-type"), extra=extra)
        relayed.user_data = _Relay(call, side, txn, method)
        return None

    def _relay_response(self, relay: _Relay, resp: Response, now: float) -> None:
        status = resp.status
        if status < 200:
            return
        call, side = relay.call, relay.side
        other = call.other(side)
        out = make_response(relay.txn.request, status, resp.reason)
        body = resp.body
        if relay.method in ("INVITE", "UPDATE"):
            side.pending = None
            if 200 <= status < 300 and other is not None:
                other.dialog.refresh_target(resp)
                if body and call.media is not None and _content_type(resp) == "application/sdp":
                    try:
                        body = call.media.answer(other.name, body)
                    except MediaError as exc:
                        log.info("call %s: re-INVITE answer unusable: %s", call.id, exc.reason)
                if relay.method == "INVITE":
                    host, port = self.local(other.dialog.transport, other.dialog.dest)
                    ack = other.dialog.request("ACK", f"SIP/2.0/{other.dialog.transport} {host}:{port}",
                                               cseq=resp.cseq[0])
                    self._out.append(Send(ack.to_bytes(), other.dialog.dest, other.dialog.transport))
                out.set("Contact", self._contact_for(side.dialog))
        if body:
            out.body = body
            out.set("Content-Type", resp.get("content-type") or "application/sdp")
        self._send_response(relay.txn, out, now)

    def _send_in_dialog(self, dialog: Dialog, method: str, now: float, *, body: bytes = b"",
                        content_type: str | None = None,
                        extra: dict[str, Any] | None = None) -> ClientTransaction:
        host, port = self.local(dialog.transport, dialog.dest)
        req = dialog.request(method, f"SIP/2.0/{dialog.transport} {host}:{port}", body=body,
                             content_type=content_type, contact=_contact(host, port, dialog.transport),
                             extra=extra)
        txn, sends = self.transactions.send_request(req, dialog.dest, dialog.transport, now)
        self._out.extend(sends)
        return txn


def _content_type(msg: Request | Response) -> str:
    return (msg.get("content-type") or "").split(";")[0].strip().lower()


def _contact(host: str, port: int, transport: str) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
    return f"<sip:{host}:{port}{suffix}>"
