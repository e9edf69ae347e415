"""Who is calling: a trunk, one of our phones, or someone who must prove it first.

An INVITE from the exact address (and transport) a device registered from is that
device's: it proved who it is when it registered, and that address is where its calls ring
anyway; softphones (pyVoIP among them) that answer INVITE challenges badly still work. One
from a trunk's address is that trunk's. Anything else is challenged with 407 and must answer
with the device's digest credentials (RFC 3261 §22.3, RFC 7616).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routing.callers import DeviceCaller, TrunkCaller

from .dialog import new_tag
from .auth import AuthOutcome, DigestAuthenticator, DigestCredentials
from .location import MemoryBindingStore
from .message import Request, Response, make_response
from .uri import unescape

Address = tuple[str, int]


class CallerIdentifier:
    def __init__(self, *, authenticator: DigestAuthenticator,
                 credentials: Callable[[str], DigestCredentials | None],
                 realm: Callable[[Request], str], bindings: MemoryBindingStore,
                 trunk_for_source: Callable[[str, int], Any],
                 on_auth_failed: Callable[[Address, float, str], None] | None = None,
                 auth_required: bool = True):
        self.authenticator = authenticator
        self.credentials = credentials
        self.realm = realm
        self.bindings = bindings
        self.trunk_for_source = trunk_for_source
        self.on_auth_failed = on_auth_failed
        self.auth_required = auth_required

    def __call__(self, req: Request, source: Address, transport: str,
                 now: float) -> DeviceCaller | TrunkCaller | Response:
        # A registered device's exact address first: a trunk may be recognised by its host
        # alone (any port), and a phone can share that host.
        user = unescape(req.from_.uri.user or "").lower()
        if user:
            for binding in self.bindings.lookup(user, now):
                if binding.received == source and binding.transport == transport:
                    return DeviceCaller(user)
        trunk = self.trunk_for_source(source[0], source[1])
        if trunk is not None:
            return TrunkCaller(trunk.name, unescape(req.from_.uri.user or "") or None, trunk_id=trunk.id)
        if user and not self.auth_required and self.credentials(user) is not None:
            return DeviceCaller(user)
        realm = self.realm(req)
        chosen = None
        for value in req.get_all("proxy-authorization"):
            if value[:6].lower() == "digest" and f'realm="{realm}"' in value:
                chosen = value
                break
        if chosen is None:
            return self._challenge(req, realm, now)
        result = self.authenticator.verify(chosen, req.method, str(req.uri), realm, self.credentials, now)
        if result.outcome is AuthOutcome.OK:
            return DeviceCaller(result.username.lower())
        if result.outcome is AuthOutcome.STALE:
            return self._challenge(req, realm, now, stale=True)
        if result.outcome in (AuthOutcome.WRONG_CREDENTIALS, AuthOutcome.UNKNOWN_USER):
            if self.on_auth_failed is not None:
                self.on_auth_failed(source, now, f"{result.outcome.name.lower()} for {result.username!r}")
            return make_response(req, 403, "Forbidden: wrong credentials", to_tag=new_tag())
        if result.outcome is AuthOutcome.MALFORMED:
            return make_response(req, 400, f"Bad Proxy-Authorization: {result.reason}", to_tag=new_tag())
        return self._challenge(req, realm, now)

    def _challenge(self, req: Request, realm: str, now: float, stale: bool = False) -> Response:
        resp = make_response(req, 407, to_tag=new_tag())
        resp.set("Proxy-Authenticate", self.authenticator.challenge(realm, now, stale=stale))
        return resp
