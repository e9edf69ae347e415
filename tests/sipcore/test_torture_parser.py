"""RFC 4475 torture messages through the parser, one test per file.

Each test checks what the RFC's section says about parsing that message: valid messages
parse and their fields come out right; invalid requests raise ParseError with the status
the section calls for, invalid responses raise ParseError (they are dropped); the
transaction, application and compat messages parse, and the fields the server acts on
(Max-Forwards, the Request-URI scheme, Require, Content-Type...) read as the section
describes. What the running server answers is checked in tests/interop.

The messages live outside the project, in ../shared/sip-torture/rfc4475 (see its README).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable

import pytest

from sipcore.fields import FieldError, NameAddr, unquote
from sipcore.message import ParseError, Request, Response, parse
from sipcore.uri import URI, unescape

TORTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "sip-torture" / "rfc4475"


def _manifest() -> list[dict[str, str]]:
    path = TORTURE / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = _manifest()
if not ROWS:
    _missing = f"RFC 4475 torture messages not found at {TORTURE.resolve()} (../shared/sip-torture is absent)"
    if os.environ.get("CI"):
        pytest.fail(_missing, pytrace=False)
    pytest.skip(_missing, allow_module_level=True)


def rejected(data: bytes, status: int | None = None) -> ParseError:
    with pytest.raises(ParseError) as err:
        parse(data)
    if status is not None:
        assert err.value.status == status, err.value.reason
    return err.value


def contacts(m) -> list[NameAddr]:
    return [NameAddr.parse(v) for v in m.values("contact")]


CHECKS: dict[str, Callable[[bytes], None]] = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


# -- 3.1.1 valid messages --------------------------------------------------------------------
@check("wsinv.dat")
def _wsinv(data: bytes) -> None:
    """3.1.1.1: folding, escaped quotes, empty Subject, LWS everywhere, short and long
    names mixed, unknown header fields and parameters, leading zeros. Well formed."""
    m = parse(data)
    assert isinstance(m, Request) and m.method == "INVITE"
    assert (m.uri.user, m.uri.host, m.uri.params) == ("vivekg", "chair-dnrc.example.com", {"unknownparam": None})
    assert m.to.tag == "1918181833n" and m.to.uri.user == "vivekg" and m.to.display is None
    assert unquote(m.from_.display) == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert str(m.from_.uri) == "sip:jdrosen@example.com"
    assert int(m.get("max-forwards")) == 68
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.cseq == (9, "INVITE")
    assert [(v.transport, v.host, v.port, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", None, "390skdjuw"),
        ("TCP", "spindle.example.com", None, "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", None, "z9hG4bK30239"),
    ]
    assert m.get("subject") == "" and "s" in m
    assert m.get("newfangledheader") == "newfangled value continued newfangled value"
    assert m.get("unknownheaderwithunusualvalue") == ";;,,;;,;"  # unknown: kept as text
    route = NameAddr.parse(m.get("route"))
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    [contact] = contacts(m)
    assert unquote(contact.display) == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert m.get("content-type") == "application/sdp"
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


@check("intmeth.dat")
def _intmeth(data: bytes) -> None:
    """3.1.1.2: every token character in the method, unusual legal characters in the
    Request-URI, branch, quoted-pairs of control characters, token display names, UTF-8
    parameter values, word characters in Call-ID. '%' is not an escape in these places."""
    m = parse(data)
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq == (139122385, method)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com" and m.uri.params == {} and m.uri.headers == {}
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert unquote(m.to.display) == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.params == {"fromparam''~+*_!.-%": '"работающий"', "tag": "_token~1'+`*%!-."}
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.get("max-forwards") == "255"
    assert m.get("extensionheader-!.%*+_`'~") == "\ufeff大停電"


@check("esc01.dat")
def _esc01(data: bytes) -> None:
    """3.1.1.3: %HH escapes in SIP URIs are the characters they encode; unescaping is
    never recursive ('value%2541' is 'value%41', not 'valueA')."""
    m = parse(data)
    assert unescape(m.uri.user) == "sips:user@example.com" and m.uri.host == "example.net"
    assert unescape(m.to.uri.user) == "user" and m.to.uri.equivalent(URI.parse("sip:user@example.com"))
    assert unescape(m.from_.uri.user) == "I have spaces" and m.from_.tag == "938"
    [contact] = contacts(m)
    uri = contact.uri
    assert unescape(uri.user) == "caller"
    assert {unescape(k): unescape(v) if v else v for k, v in uri.params.items()} == {"lr": None, "name": "value%41"}
    assert uri.equivalent(URI.parse("sip:caller@host5.example.net;lr;name=value%2541"))
    assert not uri.equivalent(URI.parse("sip:caller@host5.example.net;lr;name=valueA"))
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact i
    assert m.get("content-type") == "application/sdp"       # compact C
    assert len(m.body) == 150


@check("escnull.dat")
def _escnull(data: bytes) -> None:
    """3.1.1.4: escaped NULs in user parts; the AOR must not be cut short at the NUL,
    and the two Contact URIs are distinct."""
    m = parse(data)
    assert m.method == "REGISTER"
    assert unescape(m.to.uri.user) == "null-\x00-null" == unescape(m.from_.uri.user)
    assert m.to.uri.aor() == "sip:null-\x00-null@example.com"
    first, second = contacts(m)
    assert unescape(first.uri.user) == "\x00" and unescape(second.uri.user) == "\x00\x00"
    assert not first.uri.equivalent(second.uri)
    assert first.uri.aor() != second.uri.aor()
    assert m.body == b""


@check("esc02.dat")
def _esc02(data: bytes) -> None:
    """3.1.1.5: '%' where it is not an escape: the method RE%47IST%45R is not REGISTER,
    "%Z%45" is a display name, C%6Fntact is an unknown header, not Contact."""
    m = parse(data)
    assert m.method == "RE%47IST%45R" != "REGISTER" and m.cseq == (29344, "RE%47IST%45R")
    assert unquote(m.to.display) == "%Z%45" == unquote(m.from_.display)
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [c.uri.user for c in contacts(m)] == ["alias1", "alias3"]
    assert m.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert ("C%6Fntact", "<sip:alias2@host2.example.com>") in m.headers()


@check("lwsdisp.dat")
def _lwsdisp(data: bytes) -> None:
    """3.1.1.6: no LWS between the display name and '<': accepted as well formed."""
    m = parse(data)
    assert m.from_.display == "caller" and m.from_.tag == "323"
    assert str(m.from_.uri) == "sip:caller@example.com"


@check("longreq.dat")
def _longreq(data: bytes) -> None:
    """3.1.1.7: many header values and very long ones."""
    m = parse(data)
    assert unquote(m.to.display) == "I have a user name of " + "extreme" * 10 + " proportion"
    assert m.to.uri.port == 6000
    assert m.to.uri.params["unknownparam1"] == "very" + "long" * 20 + "value"
    assert m.to.uri.params["longparam" + "name" * 25] == "shortvalue"
    assert m.to.uri.params["very" + "long" * 25 + "ParameterNameWithNoValue"] is None
    assert m.from_.uri.user == "amazinglylongcallername" * 5  # compact F
    assert m.from_.tag == "12982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982982424"
    assert m.from_.params["unknownheaderparam" + "name" * 20] == "unknowheaderparam" + "value" * 15
    assert m.from_.params["unknownvalueless" + "paramname" * 10] is None
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    long_name = "Unknown-" + "Long" * 20 + "-Name"
    assert m.get(long_name).startswith("unknown-" + "long" * 20 + "-value;")
    vias = m.vias
    assert len(vias) == 34
    assert [v.host for v in vias[:33]] == [f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert vias[33].params == {"received": "192.0.2.5", "branch": "very" + "long" * 50 + "branchvalue"}
    [contact] = contacts(m)
    assert contact.uri.user == "amazinglylongcallername" * 5
    assert len(m.body) == 150  # compact l


@check("dblreq.dat")
def _dblreq(data: bytes) -> None:
    """3.1.1.8: a REGISTER followed by octets that look like an INVITE in the same
    datagram; only the REGISTER counts (RFC 3261 §18.3)."""
    m = parse(data)
    assert m.method == "REGISTER" and m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert m.body == b"" and m.get("content-length") == "0"
    assert b"INVITE" not in m.to_bytes()


@check("semiuri.dat")
def _semiuri(data: bytes) -> None:
    """3.1.1.9: a ';' parameter inside the user part: the user is 'user;par=u@example.net'."""
    m = parse(data)
    assert unescape(m.uri.user) == "user;par=u@example.net"
    assert m.uri.host == "example.com" and m.uri.params == {}
    assert m.values("accept") == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                  "multipart/signed", "message/sip", "message/sipfrag"]


@check("transports.dat")
def _transports(data: bytes) -> None:
    """3.1.1.10: Vias with every known transport and an unknown one."""
    m = parse(data)
    assert [(v.transport, v.host) for v in m.vias] == [
        ("UDP", "t1.example.com"), ("SCTP", "t2.example.com"), ("TLS", "t3.example.com"),
        ("UNKNOWN", "t4.example.com"), ("TCP", "t5.example.com")]


@check("mpart01.dat")
def _mpart01(data: bytes) -> None:
    """3.1.1.11: a multipart body with a binary part containing NULs: framed by
    Content-Length, not by its contents."""
    m = parse(data)
    assert m.method == "MESSAGE"
    assert len(m.body) == int(m.get("content-length")) == 553
    assert b"\x00" in m.body and m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert m.get("content-type") == "multipart/mixed;boundary=7a9cbec02ceef655"


@check("unreason.dat")
def _unreason(data: bytes) -> None:
    """3.1.1.12: a 200 with a reason phrase in UTF-8 (and '*' and '=' in it)."""
    m = parse(data)
    assert isinstance(m, Response) and m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154


@check("noreason.dat")
def _noreason(data: bytes) -> None:
    """3.1.1.13: a 100 with an empty reason phrase (the SP after the code is there)."""
    m = parse(data)
    assert isinstance(m, Response) and (m.status, m.reason) == (100, "")
    assert m.to.tag == "902jndnke3"


# -- 3.1.2 invalid messages ------------------------------------------------------------------
@check("badinv01.dat")
def _badinv01(data: bytes) -> None:
    """3.1.2.1: extra ';' and ',' in Via and Contact: 400."""
    assert "Via" in rejected(data, 400).reason
    with pytest.raises(FieldError):
        NameAddr.parse('"Joe" <sip:joe@example.org>;;;;')


@check("clerr.dat")
def _clerr(data: bytes) -> None:
    """3.1.2.2: Content-Length larger than the datagram's body: 400 over UDP."""
    err = rejected(data, 400)
    assert "larger" in err.reason and err.message.call_id == "clerr.0ha0isndaksdjweiafasdk3"


@check("ncl.dat")
def _ncl(data: bytes) -> None:
    """3.1.2.3: negative Content-Length: an error, never a negative count."""
    assert "Content-Length" in rejected(data, 400).reason


@check("scalar02.dat")
def _scalar02(data: bytes) -> None:
    """3.1.2.4: CSeq, Max-Forwards, Expires and contact expires out of range: 400
    because of the CSeq."""
    assert "CSeq" in rejected(data, 400).reason
    m = parse(data, strict=False)  # nothing else stops the headers from being read
    assert m.get("max-forwards") == "300" and m.get("expires") == "1" + "0" * 100


@check("scalarlg.dat")
def _scalarlg(data: bytes) -> None:
    """3.1.2.5: a response with out-of-range scalars: dropped (ParseError)."""
    err = rejected(data)
    assert "CSeq" in err.reason and isinstance(err.message, Response)


@check("quotbal.dat")
def _quotbal(data: bytes) -> None:
    """3.1.2.6: unterminated quoted string in the To display name: 400."""
    assert "To" in rejected(data, 400).reason


@check("ltgtruri.dat")
def _ltgtruri(data: bytes) -> None:
    """3.1.2.7: Request-URI enclosed in <>: 400."""
    assert "Request-URI" in rejected(data, 400).reason


@check("lwsruri.dat")
def _lwsruri(data: bytes) -> None:
    """3.1.2.8: LWS inside the Request-URI: 400."""
    assert "Request-Line" in rejected(data, 400).reason


@check("lwsstart.dat")
def _lwsstart(data: bytes) -> None:
    """3.1.2.9: several SP between Request-Line elements: rejected as malformed (400)."""
    assert "Request-Line" in rejected(data, 400).reason


@check("trws.dat")
def _trws(data: bytes) -> None:
    """3.1.2.10: SP after the SIP-Version: rejected as malformed (400)."""
    assert "Request-Line" in rejected(data, 400).reason


@check("escruri.dat")
def _escruri(data: bytes) -> None:
    """3.1.2.11: escaped headers in the Request-URI: 400."""
    err = rejected(data, 400)
    assert "header" in err.reason and err.message.uri.headers == {"Route": "%3Csip:example.com%3E"}


@check("baddate.dat")
def _baddate(data: bytes) -> None:
    """3.1.2.12: a Date that is not in GMT ("EST"): 400."""
    assert "GMT" in rejected(data, 400).reason


@check("regbadct.dat")
def _regbadct(data: bytes) -> None:
    """3.1.2.13: a Contact whose URI has an escaped header but is not in <>. The request
    parses; reading the Contact fails, and the registrar answers 400 for it."""
    m = parse(data)
    assert m.method == "REGISTER"
    with pytest.raises(FieldError, match="enclosed"):
        NameAddr.parse(m.get("contact"))


@check("badaspec.dat")
def _badaspec(data: bytes) -> None:
    """3.1.2.14: spaces inside <> around the addr-spec in To: 400."""
    assert "To" in rejected(data, 400).reason


@check("baddn.dat")
def _baddn(data: bytes) -> None:
    """3.1.2.15: unquoted display names with non-token characters: 400."""
    assert "From" in rejected(data, 400).reason
    with pytest.raises(FieldError):
        NameAddr.parse("Watson, Thomas <sip:t.watson@example.org>")


@check("badvers.dat")
def _badvers(data: bytes) -> None:
    """3.1.2.16: SIP/7.0: 505 Version Not Supported."""
    err = rejected(data, 505)
    assert err.message is not None and err.message.get("call-id") == "badvers.31417@c.example.com"


@check("mismatch01.dat")
def _mismatch01(data: bytes) -> None:
    """3.1.2.17: OPTIONS with CSeq method INVITE: 400."""
    assert "CSeq" in rejected(data, 400).reason


@check("mismatch02.dat")
def _mismatch02(data: bytes) -> None:
    """3.1.2.18: an unknown method with a CSeq method that does not match. The RFC
    prefers 501 and accepts 400; the parser answers 400 for every mismatch."""
    err = rejected(data, 400)
    assert "CSeq" in err.reason and err.message.method == "NEWMETHOD"


@check("bigcode.dat")
def _bigcode(data: bytes) -> None:
    """3.1.2.19: a response code larger than 699: dropped (ParseError, nothing to answer)."""
    err = rejected(data)
    assert "Status-Line" in err.reason and err.message is None


# -- 3.2 transaction layer -------------------------------------------------------------------
@check("badbranch.dat")
def _badbranch(data: bytes) -> None:
    """3.2.1: a branch that is only the magic cookie: parses; the transaction layer
    falls back to RFC 2543 matching (or answers 400)."""
    m = parse(data)
    assert m.top_via.branch == "z9hG4bK"


# -- 3.3 application layer -------------------------------------------------------------------
@check("insuf.dat")
def _insuf(data: bytes) -> None:
    """3.3.1: no Call-ID, From or To: must not break; ideally 400. The ParseError keeps
    the Via and CSeq so that the 400 can be sent."""
    err = rejected(data, 400)
    assert "Missing" in err.reason
    assert err.message.top_via.branch == "z9hG4bKkdj.insuf" and err.message.cseq == (193942, "INVITE")
    m = parse(data, strict=False)
    assert "from" not in m and "to" not in m and "call-id" not in m and len(m.body) == 152


@check("unkscm.dat")
def _unkscm(data: bytes) -> None:
    """3.3.2: an unknown Request-URI scheme: parses (the server answers 416)."""
    m = parse(data)
    assert (m.uri.scheme, m.uri.opaque) == ("nobodyknowsthisscheme", "totallyopaquecontent")
    assert m.uri.scheme not in ("sip", "sips", "tel")
    assert m.to.uri.scheme == "sip"  # the To is no routing information


@check("novelsc.dat")
def _novelsc(data: bytes) -> None:
    """3.3.3: a registered but unusual scheme (soap.beep) in the Request-URI: parses."""
    m = parse(data)
    assert (m.uri.scheme, m.uri.opaque) == ("soap.beep", "//192.0.2.103:3002")


@check("unksm2.dat")
def _unksm2(data: bytes) -> None:
    """3.3.4: non-SIP schemes in To, From and Contact: syntactically valid (a registrar
    answers 400: the To must be a SIP or SIPS URI)."""
    m = parse(data)
    assert (m.to.uri.scheme, m.to.uri.opaque) == ("isbn", "2983792873")
    assert (m.from_.uri.scheme, m.from_.uri.opaque, m.from_.tag) == ("http", "//www.example.com", "3234233")
    [contact] = contacts(m)
    assert (contact.uri.scheme, contact.uri.opaque) == ("name", "John_Smith")


@check("bext01.dat")
def _bext01(data: bytes) -> None:
    """3.3.5: unknown option tags in Require and Proxy-Require (the server answers 420
    listing them in Unsupported)."""
    m = parse(data)
    assert m.values("require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.values("proxy-require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


@check("invut.dat")
def _invut(data: bytes) -> None:
    """3.3.6: an INVITE with a body of unknown type (the server answers 415)."""
    m = parse(data)
    assert m.get("content-type") == "application/unknownformat"
    assert m.body == b'<audio>\r\n <pcmu port="443"/>\r\n</audio>\r\n'


@check("regaut01.dat")
def _regaut01(data: bytes) -> None:
    """3.3.7: an Authorization with an unknown scheme: well formed (a registrar that
    authenticates challenges with a scheme it knows)."""
    m = parse(data)
    assert m.get("authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert m.get("content-length") == "0"  # no space after the colon


@check("multi01.dat")
def _multi01(data: bytes) -> None:
    """3.3.8: several values in single-value fields (CSeq, Call-ID, To, From,
    Max-Forwards): 400."""
    assert "Multiple" in rejected(data, 400).reason


@check("mcl01.dat")
def _mcl01(data: bytes) -> None:
    """3.3.9: two Content-Length values: the body cannot be framed: 400."""
    assert "Multiple Content-Length" in rejected(data, 400).reason


@check("bcast.dat")
def _bcast(data: bytes) -> None:
    """3.3.10: a 200 whose second Via is the broadcast address: well formed (a proxy
    must not forward it there)."""
    m = parse(data)
    assert isinstance(m, Response) and m.status == 200
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


@check("zeromf.dat")
def _zeromf(data: bytes) -> None:
    """3.3.11: Max-Forwards 0: legal (a proxy answers 483, an endpoint processes it)."""
    m = parse(data)
    assert int(m.get("max-forwards")) == 0 and m.method == "OPTIONS"


@check("cparam01.dat")
def _cparam01(data: bytes) -> None:
    """3.3.12: 'unknownparam' after an addr-spec Contact is a contact parameter, not a
    URI parameter."""
    [contact] = contacts(parse(data))
    assert contact.uri.params == {} and contact.params == {"unknownparam": None}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net"


@check("cparam02.dat")
def _cparam02(data: bytes) -> None:
    """3.3.13: 'unknownparam' inside <> is a URI parameter, kept in the binding."""
    [contact] = contacts(parse(data))
    assert contact.uri.params == {"unknownparam": None} and contact.params == {}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net;unknownparam"


@check("regescrt.dat")
def _regescrt(data: bytes) -> None:
    """3.3.14: a Contact URI (in <>) with an escaped Route header: valid, stored as is."""
    m = parse(data)
    [contact] = contacts(m)  # compact M
    assert contact.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert unescape(contact.uri.headers["Route"]) == "<sip:sip.example.com>"
    assert str(contact.uri) == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


@check("sdp01.dat")
def _sdp01(data: bytes) -> None:
    """3.3.15: an SDP offer with an Accept that does not allow SDP (the server answers
    406 or 415)."""
    m = parse(data)
    assert m.values("accept") == ["text/nobodyKnowsThis"]
    assert m.get("content-type") == "application/sdp" and len(m.body) == 150


# -- 3.4 backward compatibility ----------------------------------------------------------------
@check("inv2543.dat")
def _inv2543(data: bytes) -> None:
    """3.4.1: RFC 2543 syntax: no branch, no Max-Forwards, no Content-Length, no From
    tag. Accepted; the body is the rest of the datagram."""
    m = parse(data)
    assert m.method == "INVITE" and m.top_via.branch is None and m.top_via.params == {}
    assert "max-forwards" not in m and "content-length" not in m
    assert m.from_.tag is None and m.from_.uri.params == {"user": "phone"}
    # an addr-spec's parameters are the header's (RFC 3261 §20.10)
    assert m.to.params == {"user": "phone"} and m.to.uri.params == {}
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")


@pytest.mark.parametrize("row", [pytest.param(row, id=row["file"]) for row in ROWS])
def test_rfc4475(row: dict[str, str]) -> None:
    data = (TORTURE / row["file"]).read_bytes()
    assert row["file"] in CHECKS, f"no check for {row['file']} (RFC 4475 §{row['rfc4475_section']})"
    CHECKS[row["file"]](data)
    if row["class"] == "invalid" and row["file"] != "regbadct.dat":
        with pytest.raises(ParseError):
            parse(data)
    elif row["class"] == "valid":
        parse(data)


def test_every_file_is_listed_and_checked() -> None:
    listed = {row["file"] for row in ROWS}
    on_disk = {p.name for p in TORTURE.glob("*.dat")}
    assert len(listed) == 49 and listed == on_disk == set(CHECKS)
