"""Registrar behaviour through the sans-IO endpoint: bytes in, bytes out, a fake clock."""
from __future__ import annotations

import pytest

from sipcore.auth import DigestAuthenticator, DigestCredentials
from sipcore.endpoint import Endpoint
from sipcore.guard import SourceGuard
from sipcore.location import Binding, MemoryBindingStore, SQLiteSnapshot
from sipcore.message import parse
from sipcore.registrar import Registrar, RegistrarPolicy

from .sipclient import challenge_params, digest_authorization, register, request_uri

REALM = "acme"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
SRC = ("127.0.0.1", 5099)


class Harness:
    def __init__(self, **guard):
        self.now = 1_700_000_000.0
        self.store = MemoryBindingStore()
        creds = {u: DigestCredentials.from_password(u, REALM, p) for u, p in PASSWORDS.items()}
        g = dict(rate=1000, burst=1000, ban_failures=3, ban_window=60, ban_duration=600)
        g.update(guard)
        self.endpoint = Endpoint(
            registrar=Registrar(self.store, RegistrarPolicy(min_expires=60, max_expires=7200,
                                                            default_expires=3600, max_contacts=4)),
            authenticator=DigestAuthenticator(b"k" * 32, nonce_ttl=300),
            guard=SourceGuard(**g), credentials=creds.get, realm=lambda _r: REALM)

    def send(self, data: bytes, src=SRC, transport="UDP"):
        out = self.endpoint.receive(data, src, transport, self.now)
        return [parse(s.data) for s in out], out

    def register(self, user="alice", password=None, algorithm="MD5", src=SRC, **kw):
        """Full challenge/response exchange; returns the final response."""
        first = register(user, local=src, **kw)
        (challenge,), _ = self.send(first, src)
        assert challenge.status == 401, challenge
        values = challenge.get_all("www-authenticate")
        chosen = next(v for v in values if f"algorithm={algorithm}" in v)
        auth = digest_authorization(chosen, user, password or PASSWORDS[user], "REGISTER",
                                    request_uri(first))
        kw["cseq"] = kw.get("cseq", 1) + 1
        (final,), _ = self.send(register(user, local=src, authorization=auth, **kw), src)
        return final


@pytest.fixture
def h():
    return Harness()


def test_challenge_offers_sha256_then_md5(h):
    (resp,), sends = h.send(register("alice"))
    assert resp.status == 401
    values = resp.get_all("www-authenticate")
    assert [challenge_params(v)["algorithm"] for v in values] == ["SHA-256", "MD5"]
    assert all(challenge_params(v)["qop"] == "auth" and challenge_params(v)["realm"] == REALM for v in values)
    assert resp.to.tag  # a final response carries a To tag
    assert sends[0].addr == SRC


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_register_with_each_algorithm(h, algorithm):
    resp = h.register(algorithm=algorithm, contacts=["<sip:alice@10.0.0.5:5062>"])
    assert resp.status == 200
    assert resp.values("contact") == ["<sip:alice@10.0.0.5:5062>;expires=3600"]
    assert "date" in resp
    assert [b.contact for b in h.store.lookup("alice", h.now)] == ["sip:alice@10.0.0.5:5062"]


def test_wrong_password_is_403_and_repeated_failures_ban_the_source(h):
    for _ in range(3):
        assert h.register(password="nope").status == 403
    # banned: nothing comes back, even for the right password, while another source works
    out = h.endpoint.receive(register("alice"), SRC, "UDP", h.now)
    assert out == []
    assert h.register(user="bob", src=("127.0.0.2", 5099)).status == 200
    h.now += 601
    assert h.register().status == 200


def test_credentials_of_another_user_are_refused(h):
    first = register("bob")
    (challenge,), _ = h.send(first)
    auth = digest_authorization(challenge.get_all("www-authenticate")[1], "alice", "alice-pw",
                                "REGISTER", request_uri(first))
    (resp,), _ = h.send(register("bob", authorization=auth, cseq=2))
    assert resp.status == 403


def test_stale_nonce_gets_a_fresh_challenge_with_stale_true(h):
    first = register("alice")
    (challenge,), _ = h.send(first)
    auth = digest_authorization(challenge.get_all("www-authenticate")[1], "alice", "alice-pw",
                                "REGISTER", request_uri(first))
    h.now += 301
    (resp,), _ = h.send(register("alice", authorization=auth, cseq=2))
    assert resp.status == 401
    assert all(challenge_params(v).get("stale") == "true" for v in resp.get_all("www-authenticate"))


def test_several_contacts_refresh_and_expiry(h):
    assert h.register(call_id="desk", contacts=["<sip:alice@10.0.0.5>;q=0.9"], expires=600).status == 200
    h.now += 100
    resp = h.register(call_id="soft", contacts=['<sip:alice@10.0.0.6:5070;transport=tcp>;+sip.instance="<urn:uuid:1234>";reg-id=1'],
                      expires=3600)
    values = resp.values("contact")
    assert values[0] == "<sip:alice@10.0.0.5>;expires=500;q=0.9"
    assert values[1] == '<sip:alice@10.0.0.6:5070;transport=tcp>;expires=3600;+sip.instance="<urn:uuid:1234>";reg-id=1'
    # refresh of the desk phone restarts its timer; the soft client is untouched
    h.now += 50
    resp = h.register(call_id="desk", cseq=10, contacts=["<sip:alice@10.0.0.5>;q=0.9"], expires=600)
    assert resp.values("contact")[0].endswith("expires=600;q=0.9")
    assert "expires=3550" in resp.values("contact")[1]
    # the same instance from a new address replaces its old binding instead of adding one
    resp = h.register(call_id="soft2", contacts=['<sip:alice@10.0.0.9:5070>;+sip.instance="<urn:uuid:1234>";reg-id=1'])
    assert [v.split(";")[0] for v in resp.values("contact")] == ["<sip:alice@10.0.0.5>", "<sip:alice@10.0.0.9:5070>"]
    h.now += 601
    assert [b.contact for b in h.store.lookup("alice", h.now)] == ["sip:alice@10.0.0.9:5070"]


def test_expires_zero_removes_one_and_star_removes_all(h):
    h.register(call_id="a", contacts=["<sip:alice@10.0.0.5>"])
    h.register(call_id="b", contacts=["<sip:alice@10.0.0.6>"])
    resp = h.register(call_id="a", cseq=5, contacts=["<sip:alice@10.0.0.5>;expires=0"])
    assert resp.values("contact") == ["<sip:alice@10.0.0.6>;expires=3600"]
    resp = h.register(call_id="z", contacts=["*"], expires=0)
    assert resp.status == 200 and "contact" not in resp
    assert h.store.lookup("alice", h.now) == []


def test_star_without_expires_zero_is_400(h):
    assert h.register(contacts=["*"]).status == 400
    # a malformed contact set is refused before any challenge
    (resp,), _ = h.send(register("alice", contacts=["*", "<sip:alice@10.0.0.5>"], expires=0))
    assert resp.status == 400


def test_interval_too_brief_names_min_expires(h):
    resp = h.register(contacts=["<sip:alice@10.0.0.5>;expires=10"])
    assert resp.status == 423
    assert resp.get("min-expires") == "60"
    assert h.store.lookup("alice", h.now) == []


def test_overlarge_expires_is_capped(h):
    resp = h.register(expires=10 ** 30)
    assert resp.status == 200
    assert resp.values("contact")[0].endswith("expires=7200")


def test_out_of_order_cseq_is_refused(h):
    h.register(call_id="same", cseq=20)
    assert h.register(call_id="same", cseq=3).status == 500


def test_too_many_contacts(h):
    contacts = [f"<sip:alice@10.0.0.{i}>" for i in range(5)]
    assert h.register(contacts=contacts).status == 403


def test_query_without_contact_lists_bindings(h):
    h.register(contacts=["<sip:alice@10.0.0.5>"])
    h.now += 10
    resp = h.register(contacts=[])
    assert resp.status == 200
    assert resp.values("contact") == ["<sip:alice@10.0.0.5>;expires=3590"]


def test_retransmission_is_answered_from_the_transaction(h):
    first = register("alice")
    (challenge,), _ = h.send(first)
    auth = digest_authorization(challenge.get_all("www-authenticate")[1], "alice", "alice-pw",
                                "REGISTER", request_uri(first))
    data = register("alice", authorization=auth, cseq=2)
    (ok,), _ = h.send(data)
    h.now += 0.5
    (again,), _ = h.send(data)
    # the same bytes: re-sent by the transaction, not re-processed (that would be a replay)
    assert ok.status == 200 and again.to_bytes() == ok.to_bytes()


def test_challenges_are_stateless(h):
    data = register("alice")
    (first,), _ = h.send(data)
    (again,), _ = h.send(data)
    assert first.status == again.status == 401
    assert len(h.endpoint.transactions) == 0  # nothing kept for a challenge


def test_bad_contact_is_400(h):
    data = register("alice", contacts=["sip:alice@example.com?Route=%3Csip:x%3E"])
    (resp,), _ = h.send(data)
    assert resp.status == 400 and "Contact" in resp.reason


def test_rport_and_received_are_stamped(h):
    data = register("alice", local=("192.0.2.7", 5070), rport=True)
    (resp,), sends = h.send(data, src=("127.0.0.1", 40000))
    via = resp.top_via
    assert via.params["received"] == "127.0.0.1" and via.params["rport"] == "40000"
    assert sends[0].addr == ("127.0.0.1", 40000)
    # without rport the answer goes to the source address at the Via port (RFC 3261 §18.2.2)
    data = register("alice", local=("192.0.2.7", 5070))
    _, sends = h.send(data, src=("127.0.0.1", 40000))
    assert sends[0].addr == ("127.0.0.1", 5070)


def test_unauthenticated_mode_registers_the_to_user():
    h = Harness()
    h.endpoint.auth_required = False
    (resp,), _ = h.send(register("zed", contacts=["<sip:zed@10.1.1.1>"]))
    assert resp.status == 200
    assert h.store.lookup("zed", h.now)[0].contact == "sip:zed@10.1.1.1"


def test_snapshot_round_trip_prunes_expired(tmp_path):
    store = MemoryBindingStore()
    now = 1000.0
    store.replace("alice", [Binding("alice", "sip:alice@10.0.0.5", now + 60, "c", 1, q=0.5,
                                    instance='"<urn:uuid:1>"', reg_id=1, received=("10.0.0.5", 5060))])
    store.replace("bob", [Binding("bob", "sip:bob@10.0.0.6", now + 5, "d", 1)])
    snap = SQLiteSnapshot(tmp_path / "b.db")
    snap.write(store.take_dirty())
    assert store.take_dirty() == {}
    restored = MemoryBindingStore()
    assert restored.load(snap.read(now + 10), now + 10) == 1
    (b,) = restored.lookup("alice", now + 10)
    assert (b.q, b.instance, b.reg_id, b.received) == (0.5, '"<urn:uuid:1>"', 1, ("10.0.0.5", 5060))
    store.replace("alice", [])
    snap.write(store.take_dirty())
    assert snap.read(now) == []
