"""The INVITEs the B2BUA sends for a call: to every registered device of a person, to a
trunk (signed with the trunk's HA1 when it challenges), and emergency calls with the
caller's location (RFC 6442). Mixed into B2BUA; uses its outbox and transaction layer."""
from __future__ import annotations

import logging
import os
from typing import Any

from routing.route import Emergency, RingPerson, ToTrunk

from .auth import answer_challenge
from .calls import Call, Fork, State
from .dialog import Dialog, new_call_id, new_tag
from .emergency import emergency_body
from .indialog import ALLOW, _contact
from .message import Request, Response
from .transaction import MAGIC_COOKIE
from .uri import URI

log = logging.getLogger("sipcore.b2bua")

Address = tuple[str, int]


class OutboundLegs:
    def _ring_person(self, call: Call, route: RingPerson, body: bytes, now: float) -> None:
        if not self._fork_to_person(call, route, body, now):
            self._refuse(call, 480, None, "no registered device", now)

    def _fork_to_person(self, call: Call, route: RingPerson, body: bytes, now: float) -> bool:
        """INVITE every registered device of the person; False when none is registered."""
        call.callee.update(personId=route.person_id, name=route.display_name)
        caller_source = call.a.dialog.dest
        targets = []
        for username in route.sip_usernames:
            for binding in self.bindings.lookup(username.lower(), now):
                dest = binding.received or _contact_address(binding.contact)
                if dest == caller_source:
                    continue  # the phone that is calling does not ring itself
                targets.append((username, binding, dest))
        if not targets:
            return False
        cid = route.caller_id
        for username, binding, dest in targets:
            host, port = self.local(binding.transport, dest)
            uri = URI.parse(binding.contact)
            from_value = _name_addr(cid.name, f"sip:{_user(cid.number) or 'anonymous'}@{host}")
            to_value = _name_addr(route.display_name, f"sip:{_user(route.dialled)}@{host}")
            self._send_invite(call, username, uri, dest, binding.transport, from_value, to_value,
                              body, {}, now)
        return True

    def _to_trunk(self, call: Call, route: ToTrunk, body: bytes, now: float) -> None:
        trunk = route.trunk
        call.direction = "OUTBOUND" if call.direction == "INTERNAL" else call.direction
        call.international = bool(route.international)
        call.callee.update(number=route.number, trunk=trunk.name)
        dest = (self._host(trunk.host), trunk.port)
        transport = trunk.transport.upper()
        host, port = self.local(transport, dest)
        uri = URI.parse(f"sip:{route.number}@{trunk.host}:{trunk.port};user=phone")
        if transport != "UDP":
            uri.params["transport"] = transport.lower()
        number = route.caller_id.number or "anonymous"
        from_value = _name_addr(route.caller_id.name, f"sip:{number}@{host}")
        extra = {}
        if route.caller_id.number:
            extra["p-asserted-identity"] = f"<sip:{route.caller_id.number}@{host};user=phone>"
        self._send_invite(call, trunk.name, uri, dest, transport, from_value,
                          f"<sip:{route.number}@{trunk.host}>", body, extra, now, _trunk_credentials(trunk))

    def _emergency(self, call: Call, route: Emergency, body: bytes, now: float) -> None:
        call.emergency = True
        call.direction = "OUTBOUND"
        call.callee.update(number=route.service_number, emergency=True)
        if self.emergency_notify is not None:
            try:
                self.emergency_notify(route, call)
            except Exception:
                log.exception("emergency notification failed")
        trunk = route.trunk
        if trunk is None:
            self._refuse(call, 503, None, "no PSTN connection for emergency calls", now)
            return
        dest = (self._host(trunk.host), trunk.port)
        transport = trunk.transport.upper()
        host, port = self.local(transport, dest)
        uri = URI.parse(f"sip:{route.service_number}@{trunk.host}:{trunk.port};user=phone")
        callback = route.callback_number
        from_value = _name_addr(route.caller_name, f"sip:{callback or 'anonymous'}@{host}")
        ctype, full_body, cid = emergency_body(body, route.esa, f"sip:{callback or 'anonymous'}@{host}", now)
        extra = {
            "geolocation": f"<cid:{cid}>",
            "geolocation-routing": "no",
            "priority": "emergency",
            "content-type": ctype,
        }
        if callback:
            extra["p-asserted-identity"] = f"<sip:{callback}@{host};user=phone>"
        self._send_invite(call, trunk.name, uri, dest, transport, from_value,
                          f"<sip:{route.service_number}@{trunk.host}>", full_body, extra, now,
                          _trunk_credentials(trunk))

    def _send_invite(self, call: Call, target: str, uri: URI, dest: Address, transport: str,
                     from_value: str, to_value: str, body: bytes, extra: dict[str, str],
                     now: float, credentials: tuple | None = None) -> None:
        host, port = self.local(transport, dest)
        max_forwards = int(call.invite.get("max-forwards") or "70") - 1
        headers: dict[str, list[str]] = {
            "via": [f"SIP/2.0/{transport} {host}:{port};branch={MAGIC_COOKIE}{self._cookie}"
                    f"{os.urandom(8).hex()};rport"],
            "max-forwards": [str(max(max_forwards, 0))],
            "from": [f"{from_value};tag={new_tag()}"],
            "to": [to_value],
            "call-id": [new_call_id(host)],
            "cseq": ["1 INVITE"],
            "contact": [_contact(host, port, transport)],
            "allow": [ALLOW],
            "user-agent": [self.user_agent],
        }
        for name, value in extra.items():
            headers[name] = [value]
        if body and "content-type" not in headers:
            headers["content-type"] = ["application/sdp"]
        invite = Request("INVITE", uri, headers, body)
        fork = Fork(call=call, target=target, invite=invite, txn=None,
                    dialog=Dialog.as_uac(invite, dest, transport), credentials=credentials)
        call.forks.append(fork)
        txn, sends = self.transactions.send_request(invite, dest, transport, now)
        txn.user_data = fork
        fork.txn = txn
        self._out.extend(sends)

    def _retry_with_credentials(self, fork: Fork, resp: Response, now: float) -> bool:
        """A trunk challenged our INVITE: send it again once, signed with the trunk's HA1."""
        if fork.credentials is None or fork.auth_tried or fork.call.state not in (State.ROUTING, State.EARLY):
            return False
        username, realm, ha1 = fork.credentials
        header = "www-authenticate" if resp.status == 401 else "proxy-authenticate"
        invite = fork.invite
        answer = answer_challenge(resp.get_all(header), "INVITE", str(invite.uri), username, realm, ha1,
                                  os.urandom(8).hex())
        if answer is None:
            log.info("call %s: trunk %s challenged in a realm or algorithm we hold no HA1 for",
                     fork.call.id, fork.target)
            return False
        fork.auth_tried = True
        retry = Request("INVITE", invite.uri.copy(), {k: list(v) for k, v in invite._h.items()}, invite.body)
        via = retry.get("via").split(";branch=")[0]
        retry.set("Via", f"{via};branch={MAGIC_COOKIE}{self._cookie}{os.urandom(8).hex()};rport")
        retry.set("CSeq", f"{invite.cseq[0] + 1} INVITE")
        retry.set("Authorization" if resp.status == 401 else "Proxy-Authorization", answer)
        fork.invite = retry
        fork.dialog.local_seq = invite.cseq[0] + 1
        txn, sends = self.transactions.send_request(retry, fork.dialog.dest, fork.dialog.transport, now)
        txn.user_data = fork
        fork.txn = txn
        self._out.extend(sends)
        return True


def _trunk_credentials(trunk: Any) -> tuple | None:
    if getattr(trunk, "username", None) and getattr(trunk, "ha1", None):
        return (trunk.username, trunk.realm, dict(trunk.ha1))
    return None


def _contact_address(contact: str) -> Address:
    uri = URI.parse(contact)
    return (uri.host.strip("[]"), uri.port or 5060)


def _user(number: str | None) -> str:
    return "".join(ch for ch in (number or "") if ch.isalnum() or ch in "+*#") or ""


def _name_addr(name: str | None, uri: str) -> str:
    if name:
        clean = name.replace("\\", "").replace('"', "")
        return f'"{clean}" <{uri}>'
    return f"<{uri}>"
