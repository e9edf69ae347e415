import hashlib
import random
import re

import pytest

from sipcore.auth import (
    ALGORITHMS,
    AuthHeaderError,
    AuthOutcome,
    DigestAuthenticator,
    DigestCredentials,
    compute_ha1,
    parse_credentials,
)

SECRET = b"0123456789abcdef-test-secret"
REALM = "pbx.example.com"
USER = "alice"
PASSWORD = "s3cret pass"
RURI = "sip:pbx.example.com"

H = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
    "SHA-512-256": lambda b: hashlib.new("sha512_256", b).hexdigest(),
}


def users(*creds):
    table = {c.username: c for c in creds}
    return table.get


ALICE = DigestCredentials.from_password(USER, REALM, PASSWORD)
LOOKUP = users(ALICE)


def challenge_params(header):
    assert header.startswith("Digest ")
    return dict((k, v1 or v2) for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', header))


def client_response(
    *, nonce, algorithm="SHA-256", method="REGISTER", uri=RURI, user=USER, password=PASSWORD,
    realm=REALM, qop="auth", nc="00000001", cnonce="0a4f113b", body=b"", opaque=None, extra="",
):
    """What an RFC 7616 client computes and sends."""
    base = algorithm.upper().removesuffix("-SESS")
    h = H[base]
    ha1 = h(f"{user}:{realm}:{password}".encode())
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    ha2 = h(f"{method}:{uri}:{h(body)}".encode()) if qop == "auth-int" else h(f"{method}:{uri}".encode())
    if qop:
        resp = h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())
        q = f", qop={qop}, nc={nc}, cnonce=\"{cnonce}\""
    else:
        resp = h(f"{ha1}:{nonce}:{ha2}".encode())
        q = ""
    op = f', opaque="{opaque}"' if opaque else ""
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{resp}", algorithm={algorithm}{q}{op}{extra}'
    )


@pytest.fixture
def auth():
    return DigestAuthenticator(SECRET, nonce_ttl=300.0)


def fresh(auth, now=1000.0, realm=REALM):
    return challenge_params(auth.challenge(realm, now)[0])


# --------------------------------------------------------------------------- RFC 7616 vectors

RFC_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(
    "algorithm, expected",
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm, expected):
    # The RFC's nonce is not one of ours: a correct response to it is "credentials right,
    # nonce not acceptable", i.e. STALE, while one wrong digit of the response is WRONG.
    creds = DigestCredentials.from_password("Mufasa", "http-auth@example.org", "Circle of Life")
    header = (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC_NONCE}", nc=00000001, cnonce="{RFC_CNONCE}", '
        f'qop=auth, response="{expected}", opaque="{RFC_OPAQUE}"'
    )
    auth = DigestAuthenticator(SECRET)
    args = ("GET", "/dir/index.html", "http-auth@example.org", users(creds), 0.0)
    # Opaque is checked before the response, so drop the RFC's to reach the digest check.
    header = header.replace(f', opaque="{RFC_OPAQUE}"', "")
    res = auth.verify(header, *args)
    assert res.outcome is AuthOutcome.STALE, res.reason
    assert res.algorithm == algorithm
    wrong = header.replace(expected, ("0" if expected[0] != "0" else "1") + expected[1:])
    assert auth.verify(wrong, *args).outcome is AuthOutcome.WRONG_CREDENTIALS


def test_rfc7616_vectors_via_client_formula():
    for algorithm, expected in (
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ):
        header = client_response(
            nonce=RFC_NONCE, algorithm=algorithm, method="GET", uri="/dir/index.html", user="Mufasa",
            password="Circle of Life", realm="http-auth@example.org", cnonce=RFC_CNONCE,
        )
        assert f'response="{expected}"' in header
    assert compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "md5") == hashlib.md5(
        b"Mufasa:http-auth@example.org:Circle of Life"
    ).hexdigest()


# --------------------------------------------------------------------------- challenges


def test_challenge_lists_algorithms_in_preference_order_with_one_nonce(auth):
    headers = auth.challenge(REALM, 10.0)
    assert ALGORITHMS == ("SHA-256", "MD5")
    assert [challenge_params(h)["algorithm"] for h in headers] == ["SHA-256", "MD5"]
    first = challenge_params(headers[0])
    assert first["realm"] == REALM and first["qop"] == "auth" and first["opaque"]
    assert "stale" not in first
    assert len({challenge_params(h)["nonce"] for h in headers}) == 1
    assert headers[0] == (
        f'Digest realm="{REALM}", nonce="{first["nonce"]}", opaque="{first["opaque"]}", '
        'algorithm=SHA-256, qop="auth"'
    )
    stale = auth.challenge(REALM, 10.0, stale=True)
    assert all(h.endswith(", stale=true") for h in stale)


def test_nonces_are_unique_and_realm_is_quoted(auth):
    nonces = {fresh(auth)["nonce"] for _ in range(200)}
    assert len(nonces) == 200
    header = auth.challenge('odd "realm"\\x', 0.0)[0]
    assert parse_credentials(header).realm == 'odd "realm"\\x'


def test_constructor_rejects_bad_settings():
    with pytest.raises(ValueError):
        DigestAuthenticator(b"short")
    with pytest.raises(ValueError):
        DigestAuthenticator(SECRET, algorithms=("SHA-1",))
    with pytest.raises(ValueError):
        DigestAuthenticator(SECRET, nonce_ttl=0)


# --------------------------------------------------------------------------- full loop


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5", "SHA-256-sess", "MD5-sess"])
def test_challenge_response_verify_loop(auth, algorithm):
    ch = fresh(auth, now=1000.0)
    header = client_response(nonce=ch["nonce"], algorithm=algorithm, opaque=ch["opaque"])
    res = auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1010.0)
    assert res.outcome is AuthOutcome.OK, res.reason
    assert res.ok and res.username == USER and res.credentials is ALICE
    assert res.algorithm == algorithm.upper()


def test_sha512_256_when_offered():
    auth = DigestAuthenticator(SECRET, algorithms=("SHA-512-256", "SHA-256"))
    ch = challenge_params(auth.challenge(REALM, 0.0)[0])
    assert ch["algorithm"] == "SHA-512-256"
    header = client_response(nonce=ch["nonce"], algorithm="SHA-512-256")
    assert auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1.0).outcome is AuthOutcome.OK
    # MD5 is not offered by this authenticator, so an MD5 answer is refused as unsupported.
    md5 = client_response(nonce=ch["nonce"], algorithm="MD5")
    assert auth.verify(md5, "REGISTER", RURI, REALM, LOOKUP, 1.0).outcome is AuthOutcome.UNSUPPORTED


def test_user_without_hash_for_chosen_algorithm_is_unsupported(auth):
    only_sha = DigestCredentials(USER, REALM, {"SHA-256": compute_ha1(USER, REALM, PASSWORD, "SHA-256")})
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], algorithm="MD5")
    res = auth.verify(header, "REGISTER", RURI, REALM, users(only_sha), 1000.0)
    assert res.outcome is AuthOutcome.UNSUPPORTED


def test_stale_after_ttl(auth):
    ch = fresh(auth, now=1000.0)
    header = client_response(nonce=ch["nonce"], nc="00000001")
    assert auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1300.0).outcome is AuthOutcome.OK
    later = client_response(nonce=ch["nonce"], nc="00000002")
    res = auth.verify(later, "REGISTER", RURI, REALM, LOOKUP, 1300.5)
    assert res.outcome is AuthOutcome.STALE
    assert res.username == USER
    # Stale only when the response is right: a wrong password on an old nonce is still wrong.
    bad = client_response(nonce=ch["nonce"], nc="00000003", password="nope")
    assert auth.verify(bad, "REGISTER", RURI, REALM, LOOKUP, 1300.5).outcome is AuthOutcome.WRONG_CREDENTIALS


def test_nonce_from_the_future_is_stale(auth):
    ch = fresh(auth, now=5000.0)
    header = client_response(nonce=ch["nonce"])
    assert auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 4000.0).outcome is AuthOutcome.STALE


def test_forged_and_corrupted_nonces_are_never_accepted(auth):
    ch = fresh(auth)
    nonce = ch["nonce"]
    other = DigestAuthenticator(b"another-secret-of-16+bytes")
    foreign = challenge_params(other.challenge(REALM, 1000.0)[0])["nonce"]
    flipped = nonce[:10] + ("A" if nonce[10] != "A" else "B") + nonce[11:]
    other_realm = fresh(auth, realm="elsewhere.example.com")["nonce"]
    for bad in (foreign, flipped, other_realm, nonce[:-1], nonce + "A", "x" * 43, "not/base64+at=all", ""):
        header = client_response(nonce=bad)
        res = auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1000.0)
        assert res.outcome is AuthOutcome.STALE, (bad, res)
        assert not res.ok and res.credentials is None
        wrong = client_response(nonce=bad, password="guess")
        assert auth.verify(wrong, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.WRONG_CREDENTIALS


def test_wrong_password(auth):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], password="wrong")
    res = auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1000.0)
    assert res.outcome is AuthOutcome.WRONG_CREDENTIALS
    assert res.credentials is None and res.username == USER


def test_uppercase_hex_response_accepted(auth):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"])
    header = re.sub(r'response="([0-9a-f]+)"', lambda m: f'response="{m.group(1).upper()}"', header)
    assert auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.OK


def test_unknown_user(auth):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], user="mallory")
    res = auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1000.0)
    assert res.outcome is AuthOutcome.UNKNOWN_USER and res.username == "mallory"
    # A user stored under another realm is not a user of this one.
    elsewhere = DigestCredentials.from_password(USER, "other.example.com", PASSWORD)
    header = client_response(nonce=ch["nonce"])
    assert auth.verify(header, "REGISTER", RURI, REALM, users(elsewhere), 1000.0).outcome is AuthOutcome.UNKNOWN_USER


def test_realm_mismatch(auth):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], realm="evil.example.com")
    assert auth.verify(header, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.REALM_MISMATCH


@pytest.mark.parametrize(
    "digest_uri, request_uri, ok",
    [
        ("sip:pbx.example.com", "sip:pbx.example.com", True),
        ("sip:pbx.example.com;transport=UDP", "sip:pbx.example.com", True),
        ("sip:PBX.Example.COM:5060", "sip:pbx.example.com", True),
        ("sip:bob@pbx.example.com;user=phone", "sip:bob@pbx.example.com", True),
        ("sip:b%6Fb@pbx.example.com", "sip:bob@pbx.example.com", True),
        ("sip:[2001:db8::1]:5060", "sip:[2001:DB8::1]", True),
        ("sips:pbx.example.com", "sips:pbx.example.com:5061", True),
        ("sip:pbx.example.com", "sip:other.example.com", False),
        ("sip:pbx.example.com:5070", "sip:pbx.example.com", False),
        ("sip:carol@pbx.example.com", "sip:bob@pbx.example.com", False),
        ("sip:pbx.example.com", "sips:pbx.example.com", False),
        ("sip:pbx.example.com", "sip:bob@pbx.example.com", False),
    ],
)
def test_uri_must_match_request_uri(auth, digest_uri, request_uri, ok):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], uri=digest_uri)
    res = auth.verify(header, "REGISTER", request_uri, REALM, LOOKUP, 1000.0)
    assert res.outcome is (AuthOutcome.OK if ok else AuthOutcome.MALFORMED), res.reason


def test_nc_replay(auth):
    ch = fresh(auth)
    first = client_response(nonce=ch["nonce"], nc="00000001")
    assert auth.verify(first, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.OK
    assert auth.verify(first, "REGISTER", RURI, REALM, LOOKUP, 1001.0).outcome is AuthOutcome.REPLAY
    third = client_response(nonce=ch["nonce"], nc="00000003", cnonce="other")
    assert auth.verify(third, "REGISTER", RURI, REALM, LOOKUP, 1002.0).outcome is AuthOutcome.OK
    second = client_response(nonce=ch["nonce"], nc="00000002")
    assert auth.verify(second, "REGISTER", RURI, REALM, LOOKUP, 1003.0).outcome is AuthOutcome.REPLAY
    # A wrong response must not advance the counter (else anyone could burn a nonce).
    burn = client_response(nonce=ch["nonce"], nc="000000ff", password="x")
    assert auth.verify(burn, "REGISTER", RURI, REALM, LOOKUP, 1004.0).outcome is AuthOutcome.WRONG_CREDENTIALS
    fourth = client_response(nonce=ch["nonce"], nc="00000004")
    assert auth.verify(fourth, "REGISTER", RURI, REALM, LOOKUP, 1005.0).outcome is AuthOutcome.OK


def test_qop_parameter_errors(auth):
    ch = fresh(auth)
    base = client_response(nonce=ch["nonce"])
    no_nc = base.replace(", nc=00000001", "")
    assert auth.verify(no_nc, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.MALFORMED
    bad_nc = client_response(nonce=ch["nonce"], nc="1")
    assert auth.verify(bad_nc, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.MALFORMED
    zero_nc = client_response(nonce=ch["nonce"], nc="00000000")
    assert auth.verify(zero_nc, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.MALFORMED
    odd_qop = base.replace("qop=auth", "qop=auth-conf")
    assert auth.verify(odd_qop, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.UNSUPPORTED
    short = re.sub(r'response="[0-9a-f]+"', 'response="abc"', base)
    assert auth.verify(short, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.MALFORMED
    missing = base.replace(f', uri="{RURI}"', "")
    res = auth.verify(missing, "REGISTER", RURI, REALM, LOOKUP, 1000.0)
    assert res.outcome is AuthOutcome.MALFORMED and "uri" in res.reason
    sha1 = client_response(nonce=ch["nonce"], algorithm="MD5").replace("algorithm=MD5", "algorithm=SHA-1")
    assert auth.verify(sha1, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.UNSUPPORTED
    hashed = base + ", userhash=true"
    assert auth.verify(hashed, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.UNSUPPORTED


def test_opaque_must_be_ours_when_present(auth):
    ch = fresh(auth)
    good = client_response(nonce=ch["nonce"], opaque=ch["opaque"])
    assert auth.verify(good, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.OK
    # A foreign opaque (a challenge from before a restart, echoed back) is never accepted:
    # the right password earns a fresh challenge (stale), a wrong one a refusal.
    ch = fresh(auth)
    bad = client_response(nonce=ch["nonce"], opaque="somebody-else")
    assert auth.verify(bad, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.STALE
    wrong = client_response(nonce=ch["nonce"], opaque="somebody-else", password="nope")
    assert auth.verify(wrong, "REGISTER", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.WRONG_CREDENTIALS


def test_non_digest_and_garbage(auth):
    res = auth.verify("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "REGISTER", RURI, REALM, LOOKUP, 0.0)
    assert res.outcome is AuthOutcome.UNSUPPORTED
    assert auth.verify('Digest username="a', "REGISTER", RURI, REALM, LOOKUP, 0.0).outcome is AuthOutcome.MALFORMED
    assert auth.verify("", "REGISTER", RURI, REALM, LOOKUP, 0.0).outcome is AuthOutcome.MALFORMED


def test_auth_int_covers_the_body(auth):
    ch = fresh(auth)
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    header = client_response(nonce=ch["nonce"], method="INVITE", uri="sip:bob@pbx.example.com", qop="auth-int", body=body)
    ok = auth.verify(header, "INVITE", "sip:bob@pbx.example.com", REALM, LOOKUP, 1000.0, body=body)
    assert ok.outcome is AuthOutcome.OK
    header2 = client_response(nonce=ch["nonce"], method="INVITE", uri="sip:bob@pbx.example.com", qop="auth-int",
                              body=body, nc="00000002")
    tampered = auth.verify(header2, "INVITE", "sip:bob@pbx.example.com", REALM, LOOKUP, 1000.0, body=body + b"x")
    assert tampered.outcome is AuthOutcome.WRONG_CREDENTIALS


def test_method_is_covered(auth):
    ch = fresh(auth)
    header = client_response(nonce=ch["nonce"], method="REGISTER")
    assert auth.verify(header, "INVITE", RURI, REALM, LOOKUP, 1000.0).outcome is AuthOutcome.WRONG_CREDENTIALS


# --------------------------------------------------------------------------- legacy no-qop (pyVoIP)


def pyvoip_authorization(challenge_header, *, username, password, server, method="REGISTER"):
    """Byte for byte what pyVoIP 1.6.8 SIPClient.gen_register puts in its Authorization line.

    pyVoIP reads realm and nonce from the first WWW-Authenticate header, ignores algorithm,
    qop and opaque, always uses MD5 without qop (RFC 2069 form), and signs the uri
    "sip:<server>;transport=UDP" while its request line is "REGISTER sip:<server>".
    """
    ch = challenge_params(challenge_header)
    realm, nonce = ch["realm"], ch["nonce"]
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:sip:{server};transport=UDP".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{username}",realm="{realm}",nonce="{nonce}",'
        f'uri="sip:{server};transport=UDP",response="{response}",algorithm=MD5'
    )


def test_pyvoip_no_qop_form_accepted_once():
    server = "192.0.2.10"
    auth = DigestAuthenticator(SECRET)
    creds = DigestCredentials.from_password("1001", server, "pw1001")
    first = auth.challenge(server, 50.0)[0]  # SHA-256 first: pyVoIP answers it with MD5 anyway
    header = pyvoip_authorization(first, username="1001", password="pw1001", server=server)
    res = auth.verify(header, "REGISTER", f"sip:{server}", server, users(creds), 51.0)
    assert res.outcome is AuthOutcome.OK, res.reason
    assert res.algorithm == "MD5"
    # The same captured REGISTER, replayed: refused, even well within the nonce's lifetime.
    again = auth.verify(header, "REGISTER", f"sip:{server}", server, users(creds), 52.0)
    assert again.outcome is AuthOutcome.REPLAY
    # Reusing that nonce with qop is a replay too.
    ch = challenge_params(first)
    qop = client_response(nonce=ch["nonce"], algorithm="MD5", user="1001", password="pw1001", realm=server,
                          uri=f"sip:{server}")
    assert auth.verify(qop, "REGISTER", f"sip:{server}", server, users(creds), 53.0).outcome is AuthOutcome.REPLAY
    # A fresh challenge lets the phone in again (pyVoIP re-registers from scratch).
    header2 = pyvoip_authorization(auth.challenge(server, 60.0)[0], username="1001", password="pw1001", server=server)
    assert auth.verify(header2, "REGISTER", f"sip:{server}", server, users(creds), 61.0).outcome is AuthOutcome.OK


def test_real_pyvoip_register_is_accepted():
    # pyVoIP.SIP imported first fails on a circular import; pyVoIP.VoIP pulls it in correctly.
    pytest.importorskip("pyVoIP.VoIP")
    from pyVoIP import SIP as sip

    server = "192.0.2.10"
    auth = DigestAuthenticator(SECRET)
    creds = DigestCredentials.from_password("1001", server, "pw1001")
    challenges = auth.challenge(server, 100.0)
    unauthorized = (
        "SIP/2.0 401 Unauthorized\r\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKabc;rport=5060\r\n"
        f"From: \"1001\" <sip:1001@{server}>;tag=abcd1234\r\n"
        f"To: \"1001\" <sip:1001@{server}>;tag=srv1\r\n"
        "Call-ID: 1234567890abcdef@192.0.2.20:5060\r\n"
        "CSeq: 1 REGISTER\r\n"
        + "".join(f"WWW-Authenticate: {c}\r\n" for c in challenges)
        + "Content-Length: 0\r\n\r\n"
    ).encode()
    client = sip.SIPClient(server, 5060, "1001", "pw1001", phone=None, myIP="192.0.2.20", myPort=5060)
    register = client.gen_register(sip.SIPMessage(unauthorized))
    request_line = register.split("\r\n", 1)[0]
    assert request_line == f"REGISTER sip:{server} SIP/2.0"
    auth_line = next(line for line in register.split("\r\n") if line.startswith("Authorization: "))
    value = auth_line[len("Authorization: "):]
    assert value == pyvoip_authorization(challenges[0], username="1001", password="pw1001", server=server)
    request_uri = request_line.split(" ")[1]
    res = auth.verify(value, "REGISTER", request_uri, server, users(creds), 101.0)
    assert res.outcome is AuthOutcome.OK, res.reason
    assert auth.verify(value, "REGISTER", request_uri, server, users(creds), 102.0).outcome is AuthOutcome.REPLAY


def test_no_qop_replay_after_many_other_nonces_is_not_reopened_by_eviction():
    auth = DigestAuthenticator(SECRET, max_tracked_nonces=8)
    server = "192.0.2.10"
    creds = DigestCredentials.from_password("1001", server, "pw1001")
    captured = pyvoip_authorization(auth.challenge(server, 0.0)[0], username="1001", password="pw1001", server=server)
    assert auth.verify(captured, "REGISTER", f"sip:{server}", server, users(creds), 0.5).outcome is AuthOutcome.OK
    for i in range(50):
        h = pyvoip_authorization(auth.challenge(server, 1.0 + i)[0], username="1001", password="pw1001", server=server)
        assert auth.verify(h, "REGISTER", f"sip:{server}", server, users(creds), 1.5 + i).outcome is AuthOutcome.OK
    assert auth.tracked_nonces <= 8
    res = auth.verify(captured, "REGISTER", f"sip:{server}", server, users(creds), 60.0)
    assert res.outcome in (AuthOutcome.REPLAY, AuthOutcome.STALE)
    assert not res.ok


def test_replay_table_prunes_expired_nonces():
    auth = DigestAuthenticator(SECRET, nonce_ttl=10.0)
    for i in range(20):
        ch = fresh(auth, now=float(i * 20))
        h = client_response(nonce=ch["nonce"])
        assert auth.verify(h, "REGISTER", RURI, REALM, LOOKUP, i * 20 + 1.0).outcome is AuthOutcome.OK
    assert auth.tracked_nonces == 1


# --------------------------------------------------------------------------- header parsing


def test_parse_basic_shapes():
    r = parse_credentials('Digest username="bob", realm="r", nonce="n", uri="sip:x", response="ab", nc=00000001')
    assert r.is_digest and r.username == "bob" and r.params["nc"] == "00000001"
    assert r.algorithm == "MD5"  # absent means MD5


def test_parse_case_insensitive_names_and_scheme():
    r = parse_credentials('dIgEsT USERNAME="bob",Realm=r ,  ALGORITHM=sha-256')
    assert r.is_digest and r.username == "bob" and r.realm == "r" and r.algorithm == "SHA-256"


def test_parse_quoted_pairs_and_specials():
    r = parse_credentials(r'Digest username="a\"b\\c", realm="x, y = z", uri="sip:a@b;c=d"')
    assert r.username == 'a"b\\c' and r.realm == "x, y = z" and r.uri == "sip:a@b;c=d"


def test_parse_whitespace_folding_and_empty_elements():
    r = parse_credentials('Digest username="bob",\r\n realm="r" ,\r\n\tnonce="n",, ,uri="u",')
    assert dict(r.params) == {"username": "bob", "realm": "r", "nonce": "n", "uri": "u"}
    r = parse_credentials("  Digest\t, username=bob")
    assert r.username == "bob"


def test_parse_non_digest_schemes():
    r = parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    assert not r.is_digest and r.token68 == "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    r = parse_credentials('Bearer realm="x", error=invalid_token')
    assert r.scheme == "Bearer" and r.params["error"] == "invalid_token"
    assert parse_credentials("Negotiate").scheme == "Negotiate"


def test_parse_username_star():
    r = parse_credentials("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=r")
    assert r.username == "Jäsøn Doe"
    with pytest.raises(AuthHeaderError):
        parse_credentials("Digest username*=UTF-8''%C3, realm=r")
    with pytest.raises(AuthHeaderError):
        parse_credentials("Digest username=a, username*=UTF-8''b")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Digest"',
        "Digest=",
        'Digest username="unterminated',
        "Digest username",
        "Digest username=",
        'Digest username="a" realm="b"',  # missing comma
        'Digest username="a", username="b"',  # duplicate
        'Digest USERNAME="a", username="b"',  # duplicate, case-insensitively
        'Digest username="a\x00b"',
        'Digest username="a"\r\nrealm="b"',  # a line break that is not folding
        'Digest username="a"\n',
        'Digestusername="a"',
        "Digest QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # token68 is not digest syntax
        'Digest user name="a"',
        'Digest username="a",realm="b" junk',
        "Digest a=b=c",
        "Digest " + "a" * 20000 + "=b",
    ],
)
def test_parse_rejects_malformed(value):
    with pytest.raises(AuthHeaderError):
        parse_credentials(value)
    assert issubclass(AuthHeaderError, ValueError)


def test_parse_rejects_non_text():
    with pytest.raises(AuthHeaderError):
        parse_credentials(b'Digest username="a"')  # type: ignore[arg-type]


def test_fuzz_parse_credentials_only_raises_auth_header_error():
    rng = random.Random(7616)
    alphabet = 'Digest usernamerealmnonce=",\\ \t\r\n*\'%abcAZ09\x00\x7f\xe9\u2028'
    seeds = [
        client_response(nonce="n" * 43),
        'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==',
        "Digest username*=UTF-8''%C3%A4, realm=r",
    ]
    auth = DigestAuthenticator(SECRET)
    outcomes = set()
    for i in range(6000):
        kind = i % 3
        if kind == 0:
            value = rng.randbytes(rng.randrange(0, 80)).decode("latin-1")
        elif kind == 1:
            value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        else:
            s = list(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                pos = rng.randrange(len(s))
                op = rng.randrange(3)
                if op == 0:
                    del s[pos]
                elif op == 1:
                    s.insert(pos, rng.choice(alphabet))
                else:
                    s[pos] = rng.choice(alphabet)
            value = "".join(s)
        try:
            parse_credentials(value)
        except AuthHeaderError:
            pass
        # verify must turn anything into an outcome, never an exception
        outcomes.add(auth.verify(value, "REGISTER", RURI, REALM, LOOKUP, 0.0).outcome)
    assert AuthOutcome.MALFORMED in outcomes
    assert AuthOutcome.OK not in outcomes
