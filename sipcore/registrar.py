"""Registrar decisions (RFC 3261 §10.3): turn an authenticated REGISTER into binding
changes and the answer. No I/O: the binding store is an in-memory map."""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate

from .fields import FieldError, NameAddr
from .location import Binding, MemoryBindingStore
from .message import Request, Response, make_response
from .uri import URI


@dataclass(slots=True)
class RegistrarPolicy:
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600
    max_contacts: int = 10


class ContactError(ValueError):
    """A Contact header we cannot accept; the request is answered 400."""


def parse_contacts(req: Request) -> list[NameAddr] | None:
    """The REGISTER's contacts; None for the wildcard '*'. Raises ContactError."""
    values = req.values("contact")
    if len(values) == 1 and values[0] == "*":
        return None
    contacts = []
    for value in values:
        if value == "*":
            raise ContactError("'*' must be the only Contact")
        try:
            contacts.append(NameAddr.parse(value))
        except FieldError as exc:
            raise ContactError(f"Bad Contact: {exc}") from None
    return contacts


def _expires_value(text: str | None, default: int, maximum: int) -> int:
    """Expires as RFC 3261 reads it; overlarge values are capped, garbage means the default
    (RFC 4475 §3.1.2.4 lets an element treat bad expiry values as the default)."""
    if text is None:
        return default
    text = text.strip()
    if not text.isdigit():
        return default
    return maximum if len(text) > 10 else min(int(text), maximum)


class Registrar:
    def __init__(self, store: MemoryBindingStore, policy: RegistrarPolicy | None = None):
        self.store = store
        self.policy = policy or RegistrarPolicy()

    def register(self, req: Request, aor: str, contacts: list[NameAddr] | None,
                 received: tuple[str, int], transport: str, now: float,
                 to_tag: str) -> Response:
        policy = self.policy
        call_id = req.call_id
        cseq = req.cseq[0]
        header_expires = req.get("expires")
        current = self.store.lookup(aor, now)

        if contacts is None:  # '*': remove every binding of this AOR
            if _expires_value(header_expires, -1, policy.max_expires) != 0:
                return make_response(req, 400, "Wildcard Contact requires Expires: 0", to_tag=to_tag)
            for b in current:
                if b.call_id == call_id and cseq <= b.cseq:
                    return make_response(req, 500, "Out-of-order CSeq", to_tag=to_tag)
            self.store.replace(aor, [])
            return self._ok(req, [], now, to_tag)

        default = _expires_value(header_expires, policy.default_expires, policy.max_expires)
        updated = list(current)
        for na in contacts:
            expires = _expires_value(na.params.get("expires"), default, policy.max_expires)
            if 0 < expires < policy.min_expires:
                resp = make_response(req, 423, to_tag=to_tag)
                resp.set("Min-Expires", str(policy.min_expires))
                return resp
            instance = na.params.get("+sip.instance")
            reg_id = na.params.get("reg-id")
            existing = None
            for i, b in enumerate(updated):
                if instance is not None and b.instance == instance and b.reg_id == _int_or_none(reg_id):
                    existing = i
                    break
                if na.uri.equivalent(_uri_of(b)):
                    existing = i
                    break
            if existing is not None:
                b = updated[existing]
                if b.call_id == call_id and cseq <= b.cseq:
                    return make_response(req, 500, "Out-of-order CSeq", to_tag=to_tag)
                if expires == 0:
                    del updated[existing]
                    continue
            elif expires == 0:
                continue
            binding = Binding(
                aor=aor, contact=str(na.uri), expires_at=now + expires, call_id=call_id,
                cseq=cseq, q=_q_value(na.params.get("q")), instance=instance,
                reg_id=_int_or_none(reg_id), received=received, transport=transport,
                user_agent=req.get("user-agent"),
                params={k: v for k, v in na.params.items()
                        if k not in ("expires", "q", "+sip.instance", "reg-id")},
            )
            if existing is not None:
                updated[existing] = binding
            else:
                updated.append(binding)
        if len(updated) > policy.max_contacts:
            return make_response(req, 403, f"Too many contacts (at most {policy.max_contacts})",
                                 to_tag=to_tag)
        self.store.replace(aor, updated)
        return self._ok(req, updated, now, to_tag)

    def _ok(self, req: Request, bindings: list[Binding], now: float, to_tag: str) -> Response:
        resp = make_response(req, 200, to_tag=to_tag)
        if bindings:
            resp.set("Contact", [contact_value(b, now) for b in bindings])
        resp.set("Date", _http_date(now))
        return resp


_date_cache: list = [None, ""]


def _http_date(now: float) -> str:
    """RFC 1123 date for the 200's Date header (phones set their clocks from it); formatting
    it once per second matters at thousands of REGISTERs a second."""
    second = int(now)
    if _date_cache[0] != second:
        _date_cache[0], _date_cache[1] = second, formatdate(second, usegmt=True)
    return _date_cache[1]


def contact_value(b: Binding, now: float) -> str:
    parts = [f"<{b.contact}>;expires={b.remaining(now)}"]
    if b.q is not None:
        parts.append(f";q={b.q:g}")
    if b.instance is not None:
        parts.append(f";+sip.instance={b.instance}")
    if b.reg_id is not None:
        parts.append(f";reg-id={b.reg_id}")
    return "".join(parts)


def _q_value(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        q = float(text)
    except ValueError:
        return None
    return q if 0.0 <= q <= 1.0 else None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) < 10 else None


def _uri_of(b: Binding) -> URI:
    return URI.parse(b.contact)
