"""The SIP endpoint core: bytes in, bytes out, no sockets.

Every datagram or framed stream message goes through `receive()`, which returns what to
send. Order of checks for a new request follows RFC 3261 §8.2 (method, URI scheme,
Max-Forwards, extensions, content) so that every malformed or unsupported request gets the
status the RFCs prescribe, and only well-formed ones reach the registrar or a handler.
"""
from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from .auth import AuthOutcome, DigestAuthenticator, DigestCredentials
from .fields import split_commas
from .guard import SourceGuard, Verdict
from .message import ParseError, Request, Response, make_response, parse
from .registrar import ContactError, Registrar, parse_contacts
from .transaction import Deliver, Send, ServerTransaction, State, TimedOut, TransactionLayer
from .uri import unescape

log = logging.getLogger("sipcore.endpoint")

Address = tuple[str, int]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, NOTIFY, REFER, UPDATE"
SUPPORTED = ("path", "outbound", "gruu")  # option tags whose Require we can honour
ACCEPTED_BODIES = ("application/sdp", "multipart/mixed", "application/dtmf-relay",
                   "application/dtmf", "text/plain", "message/sipfrag")
# A request handler gets the request and its transaction; it answers now (a Response)
# or later through Endpoint.respond (None).
RequestHandler = Callable[[Request, ServerTransaction, float], "Response | None"]


@dataclass
class Stats:
    """Plain counters, read by the metrics exporter (no locking: one event loop)."""
    requests: Counter = field(default_factory=Counter)     # by method
    responses: Counter = field(default_factory=Counter)    # by class: "2xx"...
    parse_errors: int = 0
    dropped: Counter = field(default_factory=Counter)      # by reason
    auth_failures: int = 0
    bans: int = 0


class Endpoint:
    def __init__(self, *, registrar: Registrar, authenticator: DigestAuthenticator,
                 guard: SourceGuard, credentials: Callable[[str], DigestCredentials | None],
                 realm: Callable[[Request], str], transactions: TransactionLayer | None = None,
                 server_name: str = "callrouter", handler: RequestHandler | None = None,
                 auth_required: bool = True):
        self.registrar = registrar
        self.authenticator = authenticator
        self.guard = guard
        self.credentials = credentials
        self.realm = realm
        self.transactions = transactions if transactions is not None else TransactionLayer()
        self.server_name = server_name
        self.handler = handler
        if handler is not None and hasattr(handler, "respond_via"):
            handler.respond_via = self.respond
        # Off only for benchmarks and closed lab networks: anyone may then register any user.
        self.auth_required = auth_required
        self.stats = Stats()
        self._tags = (f"{os.urandom(4).hex()}{n:x}" for n in itertools.count(1))

    # -- input ----------------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, transport: str, now: float) -> list[Send]:
        if not self.admit(source[0], now):
            return []
        return self.handle(data, source, transport, now)

    def admit(self, ip: str, now: float) -> bool:
        """The per-source guard alone: under a flood the shell calls this first, so that a
        refused datagram costs as little as possible."""
        verdict = self.guard.admit(ip, now)
        if verdict is Verdict.ALLOW:
            return True
        self.stats.dropped[verdict.name.lower()] += 1
        return False

    def handle(self, data: bytes, source: Address, transport: str, now: float) -> list[Send]:
        """A datagram or framed message the guard admitted."""
        try:
            msg = parse(data)
        except ParseError as exc:
            self.stats.parse_errors += 1
            self.guard.malformed(source[0], now)
            return self._reject_unparsable(exc, source, transport)
        if isinstance(msg, Response):
            return self._on_response(msg, now)
        return self._on_request(msg, source, transport, now)

    def _reject_unparsable(self, exc: ParseError, source: Address, transport: str) -> list[Send]:
        partial = exc.message
        # Responses and requests we cannot address (no Via) are dropped, as RFC 3261 §18.1.2
        # and RFC 4475 §3.1.2 expect; everything else learns what was wrong.
        if partial is None or isinstance(partial, Response) or "via" not in partial or "cseq" not in partial:
            self.stats.dropped["unparsable"] += 1
            return []
        resp = make_response(partial, exc.status, exc.reason, to_tag=next(self._tags))  # type: ignore[arg-type]
        self._count_response(resp)
        return [Send(resp.to_bytes(), source, transport)]

    def _on_response(self, resp: Response, now: float) -> list[Send]:
        out: list[Send] = []
        for item in self.transactions.receive_response(resp, now):
            if isinstance(item, Send):
                out.append(item)
            elif isinstance(item, Deliver) and self.handler is not None:
                on_response = getattr(self.handler, "on_response", None)
                if on_response is not None:
                    out.extend(on_response(item, now) or ())
        return out

    def _handler_output(self) -> list[Send]:
        drain = getattr(self.handler, "drain", None)
        return drain() if drain is not None else []

    def _on_request(self, req: Request, source: Address, transport: str, now: float) -> list[Send]:
        self.stats.requests[req.method] += 1
        txn = self.transactions.match_server(req)
        if txn is not None:
            sends = self.transactions.on_retransmission(txn, req, now)
            if req.method == "ACK" and txn.state is State.ACCEPTED:
                sends.extend(self._ack_to_handler(req, source, transport, now, txn))
            return sends
        if req.method == "ACK":
            # An ACK for a 2xx is its own transaction-less request and belongs to the dialog.
            return self._ack_to_handler(req, source, transport, now)
        reply_addr = self._stamp_via(req, source, transport)
        if req.method == "REGISTER" and self.auth_required and "authorization" not in req:
            # The challenge is answered statelessly, as Kamailio's sl does (RFC 3261 §8.2.7):
            # a retransmission just gets a fresh challenge, and half of all REGISTERs then
            # cost no transaction kept for 32 s.
            resp = self._dispatch(req, None, source, transport, now)
            resp.set("Server", self.server_name)
            self._count_response(resp)
            return [Send(resp.to_bytes(), reply_addr, transport)]
        txn = self.transactions.create_server(req, reply_addr, transport, now)
        resp = self._dispatch(req, txn, source, transport, now)
        out = self._handler_output() if self.handler is not None else []
        if resp is None:
            return out
        return out + self.respond(txn, resp, now)

    def _ack_to_handler(self, req: Request, source: Address, transport: str, now: float,
                        txn: ServerTransaction | None = None) -> list[Send]:
        on_ack = getattr(self.handler, "on_ack", None)
        if on_ack is None:
            return []
        try:
            req.to  # an ACK without a usable To cannot belong to a dialog
        except (ValueError, KeyError):
            return []
        return on_ack(req, now, txn) or []

    def respond(self, txn: ServerTransaction, resp: Response, now: float) -> list[Send]:
        if resp.status >= 200 and "server" not in resp:
            resp.set("Server", self.server_name)
        self._count_response(resp)
        return self.transactions.respond(txn, resp, now)

    def _count_response(self, resp: Response) -> None:
        self.stats.responses[f"{resp.status // 100}xx"] += 1

    # -- routing of responses (RFC 3261 §18.2.2, RFC 3581) ----------------------------------
    def _stamp_via(self, req: Request, source: Address, transport: str) -> Address:
        via = req.top_via
        ip, port = source
        rport = "rport" in via.params
        if via.host.strip("[]") != ip or rport:
            if via.host.strip("[]") != ip:
                via.params["received"] = ip
            if rport:
                via.params["rport"] = str(port)
            first = req.get_all("via")
            head = first[0]
            rest = ""
            if "," in head:
                parts = split_commas(head)
                head, rest = parts[0], ", ".join(parts[1:])
            first[0] = str(via) + (", " + rest if rest else "")
            req.set("Via", first)
        if transport != "UDP" or rport:
            return source
        return (ip, via.port or 5060)

    # -- request handling -------------------------------------------------------------------
    def _dispatch(self, req: Request, txn: ServerTransaction | None, source: Address, transport: str,
                  now: float) -> Response | None:
        method = req.method
        tag = next(self._tags)
        if req.uri.scheme not in ("sip", "sips", "tel"):
            return make_response(req, 416, to_tag=tag)
        mf = req.get("max-forwards")
        # Max-Forwards 0 on a request for someone else means it cannot travel further
        # (RFC 3261 §16.3); a REGISTER or a request to the server itself ends here anyway.
        if mf is not None and int(mf) == 0 and req.uri.user is not None and method != "REGISTER":
            return make_response(req, 483, to_tag=tag)
        unsupported = [t for t in req.values("require") + req.values("proxy-require")
                       if t.lower() not in SUPPORTED]
        if unsupported:
            resp = make_response(req, 420, to_tag=tag)
            resp.set("Unsupported", ", ".join(unsupported))
            return resp
        if req.body and method != "REGISTER":
            ctype = (req.get("content-type") or "").split(";")[0].strip().lower()
            if ctype not in ACCEPTED_BODIES:
                resp = make_response(req, 415, to_tag=tag)
                resp.set("Accept", ", ".join(ACCEPTED_BODIES[:3]))
                return resp
        if method == "REGISTER":
            return self._register(req, source, transport, now, tag)
        if method == "OPTIONS":
            resp = make_response(req, 200, to_tag=tag)
            resp.set("Allow", ALLOW)
            resp.set("Accept", "application/sdp")
            resp.set("Supported", ", ".join(SUPPORTED))
            return resp
        if method == "INVITE":
            accept = [a.split(";")[0].strip().lower() for a in req.values("accept")]
            if accept and not any(a in ("application/sdp", "*/*", "application/*") for a in accept):
                resp = make_response(req, 406, "Not Acceptable: only application/sdp", to_tag=tag)
                resp.set("Accept", "application/sdp")
                return resp
        if self.handler is not None:
            return self.handler(req, txn, now)
        if method in ("BYE", "CANCEL", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            return make_response(req, 481, to_tag=tag)
        if method in ("INVITE", "MESSAGE", "SUBSCRIBE", "REFER", "PUBLISH"):
            return make_response(req, 480, "Temporarily Unavailable: no route", to_tag=tag)
        return make_response(req, 501, to_tag=tag)

    def _register(self, req: Request, source: Address, transport: str, now: float,
                  tag: str) -> Response:
        try:
            contacts = parse_contacts(req)
        except ContactError as exc:
            return make_response(req, 400, str(exc), to_tag=tag)
        to_uri = req.to.uri
        if to_uri.scheme not in ("sip", "sips") or not to_uri.user:
            return make_response(req, 400, "To must be a SIP URI naming a user", to_tag=tag)
        if not self.auth_required:
            return self.registrar.register(req, unescape(to_uri.user).lower(), contacts, source,
                                           transport, now, tag)
        realm = self.realm(req)
        chosen = None
        for value in req.get_all("authorization"):
            if value[:6].lower() == "digest" and f'realm="{realm}"' in value:
                chosen = value
                break
        if chosen is None:
            return self._challenge(req, realm, now, tag)
        result = self.authenticator.verify(chosen, "REGISTER", str(req.uri), realm,
                                           self.credentials, now)
        outcome = result.outcome
        if outcome is AuthOutcome.OK:
            username = result.username.lower()
            if unescape(to_uri.user).lower() != username:
                self._auth_failed(source, now, f"{username} may not register {to_uri.user}")
                return make_response(req, 403, "Forbidden: credentials do not match the To user",
                                     to_tag=tag)
            return self.registrar.register(req, username, contacts, source, transport, now, tag)
        if outcome is AuthOutcome.STALE:
            return self._challenge(req, realm, now, tag, stale=True)
        if outcome in (AuthOutcome.WRONG_CREDENTIALS, AuthOutcome.UNKNOWN_USER):
            self._auth_failed(source, now, f"{outcome.name.lower()} for {result.username!r}")
            return make_response(req, 403, "Forbidden: wrong credentials", to_tag=tag)
        if outcome is AuthOutcome.MALFORMED:
            return make_response(req, 400, f"Bad Authorization: {result.reason}", to_tag=tag)
        return self._challenge(req, realm, now, tag)  # REPLAY, UNSUPPORTED, REALM_MISMATCH

    def _challenge(self, req: Request, realm: str, now: float, tag: str, stale: bool = False) -> Response:
        resp = make_response(req, 401, to_tag=tag)
        resp.set("WWW-Authenticate", self.authenticator.challenge(realm, now, stale=stale))
        return resp

    def _auth_failed(self, source: Address, now: float, why: str) -> None:
        self.stats.auth_failures += 1
        log.info("authentication failed from %s:%s: %s", source[0], source[1], why)
        if self.guard.auth_failed(source[0], now):
            self.stats.bans += 1

    # -- time -----------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadline = self.transactions.next_deadline()
        own = getattr(self.handler, "next_deadline", None)
        if own is not None:
            theirs = own()
            if theirs is not None and (deadline is None or theirs < deadline):
                return theirs
        return deadline

    def handle_timers(self, now: float) -> list[Send]:
        out: list[Send] = []
        on_timeout = getattr(self.handler, "on_timeout", None)
        for item in self.transactions.handle_timers(now):
            if isinstance(item, Send):
                out.append(item)
            elif isinstance(item, TimedOut) and on_timeout is not None:
                out.extend(on_timeout(item, now) or ())
        own = getattr(self.handler, "handle_timers", None)
        if own is not None:
            out.extend(own(now) or ())
        return out


