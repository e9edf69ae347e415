"""SDP parsing and offer/answer: what phones send, what we send back, what we refuse."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore.sdp import (
    LegOrigin, NoCommonCodec, SdpError, SessionDescription, check_answer, answer_matches_offer,
    filter_offer, is_hold, make_answer, negotiate, parse, rewrite_for_relay, rtcp_destination,
    rtp_destination,
)

# A desk phone's offer: G.722 first, G.729 with fmtp, G.711 both laws, events, RTCP port.
DESK_PHONE = (
    "v=0\r\n"
    "o=- 20518 0 IN IP4 192.168.1.20\r\n"
    "s=SDP data\r\n"
    "c=IN IP4 192.168.1.20\r\n"
    "b=AS:84\r\n"
    "t=0 0\r\n"
    "m=audio 11780 RTP/AVP 9 0 8 18 101\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=fmtp:18 annexb=no\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=ptime:20\r\n"
    "a=rtcp:11781\r\n"
    "a=sendrecv\r\n"
)

# A soft client with ICE, opus, a video stream and a session-level direction.
SOFT_CLIENT = (
    "v=0\n"
    "o=linphone 1523 3288 IN IP4 10.0.0.7\n"
    "s=Talk\n"
    "c=IN IP4 10.0.0.7\n"
    "t=0 0\n"
    "a=ice-ufrag:F7gI\n"
    "a=ice-pwd:x9cml/YzichV2+XlhiMu8g\n"
    "a=sendrecv\n"
    "m=audio 7078 RTP/AVP 96 97 0 8 101 98\n"
    "a=rtpmap:96 opus/48000/2\n"
    "a=fmtp:96 useinbandfec=1\n"
    "a=rtpmap:97 speex/16000\n"
    "a=rtpmap:101 telephone-event/48000\n"
    "a=rtpmap:98 telephone-event/8000\n"
    "a=candidate:1 1 UDP 2130706431 10.0.0.7 7078 typ host\n"
    "a=candidate:1 2 UDP 2130706430 10.0.0.7 7079 typ host\n"
    "a=rtcp-fb:* trr-int 1000\n"
    "m=video 9078 RTP/AVP 99\n"
    "a=rtpmap:99 VP8/90000\n"
)


def test_parse_reads_what_phones_send():
    sdp = parse(DESK_PHONE.encode())
    assert sdp.origin.username == "-" and sdp.origin.session_id == "20518"
    assert sdp.origin.session_version == 0 and sdp.origin.address == "192.168.1.20"
    assert sdp.session_name == "SDP data" and sdp.connection == "192.168.1.20"
    (audio,) = sdp.media
    assert (audio.kind, audio.port, audio.proto) == ("audio", 11780, "RTP/AVP")
    assert audio.formats == [9, 0, 8, 18, 101]
    assert audio.rtpmap[101] == ("telephone-event", 8000, 1)
    assert audio.fmtp == {18: "annexb=no", 101: "0-15"}
    assert audio.ptime == 20 and audio.direction == "sendrecv"
    assert audio.attributes == ["rtcp:11781"]
    assert audio.connection is None and sdp.media_connection(audio) == "192.168.1.20"


def test_parse_accepts_bare_newlines_and_inherits_session_direction():
    sdp = parse(SOFT_CLIENT)
    assert [m.kind for m in sdp.media] == ["audio", "video"]
    assert sdp.media[0].rtpmap[96] == ("opus", 48000, 2)
    assert all(m.direction == "sendrecv" for m in sdp.media)
    assert sdp.attributes[:2] == ["ice-ufrag:F7gI", "ice-pwd:x9cml/YzichV2+XlhiMu8g"]
    held = parse(SOFT_CLIENT.replace("a=sendrecv", "a=sendonly"))
    assert [m.direction for m in held.media] == ["sendonly", "sendonly"]


def test_static_payload_types_need_no_rtpmap():
    sdp = parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
                "m=audio 4000 RTP/AVP 8 0\r\n")
    m = sdp.media[0]
    assert m.rtpmap == {} and m.codec(8) == ("PCMA", 8000, 1) and m.codec(0) == ("PCMU", 8000, 1)
    assert filter_offer(sdp).media[0].formats == [8, 0]


@pytest.mark.parametrize("body", [DESK_PHONE, SOFT_CLIENT])
def test_round_trip_keeps_every_line_it_does_not_interpret(body):
    sdp = parse(body)
    again = parse(sdp.to_bytes())
    assert again == sdp
    text = sdp.to_bytes().decode()
    assert "b=AS:84" in text or "b=" not in body
    for line in body.splitlines():
        if line.startswith(("a=rtcp:", "a=candidate", "a=ice-", "a=rtcp-fb", "a=fmtp")):
            assert line in text.splitlines()


@pytest.mark.parametrize("body, words", [
    ("", "empty"),
    ("hello world", "v=0"),
    ("v=0\r\ns=-\r\nt=0 0\r\n", "o="),
    ("v=0\r\no=- 1 IN IP4 192.0.2.1\r\ns=-\r\n", "6 fields"),
    ("v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\n", "session id"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4\r\n", "c="),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 bad_address!\r\n", "not an address"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n", "port"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0 PCMU\r\n", "payload type"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 200\r\n", "0-127"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP \u00b2\r\n", "0-127"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio \u0664 RTP/AVP 0\r\n", "port"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n"
     "a=rtpmap:0 PCMU\r\n", "rtpmap"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 4000 RTP/AVP 0\r\n", "no c= address"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nthis is not sdp\r\n", "type=value"),
    ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n"
     "t=0 0\r\n", "not allowed in a media section"),
])
def test_garbage_raises_sdp_error_with_a_reason(body, words):
    with pytest.raises(SdpError) as caught:
        parse(body)
    assert words in caught.value.reason
    assert caught.value.status == 400


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_sdp_error(data):
    try:
        sdp = parse(data)
    except SdpError:
        return
    assert parse(sdp.to_bytes()) == sdp


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0", "m=audio 4000 RTP/AVP 0 8 101",
    "m=video 0 RTP/AVP 99", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=sendonly",
    "a=ptime:30", "a=rtcp:4001", "b=AS:64", "c=IN IP6 2001:db8::1", "a=rtpmap:99 H264/90000",
    "a=inactive", "i=info", "m=audio 4002/2 RTP/AVP 0", "m=image 5000 udptl t38",
]), max_size=12))
def test_sdp_like_lines_parse_or_raise_and_round_trip(lines):
    try:
        sdp = parse("\r\n".join(["v=0"] + lines))
    except SdpError:
        return
    assert parse(sdp.to_bytes()) == sdp


def test_filter_offer_keeps_g711_and_events_in_the_offerers_order():
    offer = parse(DESK_PHONE)
    filtered = filter_offer(offer)
    m = filtered.media[0]
    assert m.formats == [0, 8, 101]
    assert 18 not in m.rtpmap and 18 not in m.fmtp and 9 not in m.rtpmap
    assert m.fmtp == {101: "0-15"} and m.rtpmap[101] == ("telephone-event", 8000, 1)
    assert offer.media[0].formats == [9, 0, 8, 18, 101], "the original is left alone"


def test_filter_offer_rejects_other_streams_but_keeps_their_lines():
    filtered = filter_offer(parse(SOFT_CLIENT))
    audio, video = filtered.media
    # opus, speex and the 48 kHz telephone-event go; the 8 kHz one stays.
    assert audio.formats == [0, 8, 98] and audio.port == 7078
    assert video.port == 0 and video.formats == [99]


def test_filter_offer_without_g711_is_no_common_codec():
    body = DESK_PHONE.replace("RTP/AVP 9 0 8 18 101", "RTP/AVP 9 18 101")
    with pytest.raises(NoCommonCodec) as caught:
        filter_offer(parse(body))
    assert caught.value.status == 488
    assert "G722/8000" in caught.value.reason and "G729/8000" in caught.value.reason


def test_only_the_first_usable_audio_stream_is_kept():
    body = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 18\r\nm=audio 4002 RTP/AVP 0\r\nm=audio 4004 RTP/AVP 8\r\n")
    filtered = filter_offer(parse(body))
    assert [m.port for m in filtered.media] == [0, 4002, 0]


def test_rewrite_for_relay_points_audio_at_the_relay_and_drops_transport_attributes():
    offer = filter_offer(parse(SOFT_CLIENT))
    out = rewrite_for_relay(offer, "203.0.113.5", 30000)
    assert out.connection == "203.0.113.5"
    assert out.media[0].port == 30000 and out.media[0].connection is None
    assert out.media[1].port == 0
    text = out.to_bytes().decode()
    for gone in ("a=candidate", "a=ice-ufrag", "a=ice-pwd", "10.0.0.7"):
        assert gone not in text
    assert "a=rtcp-fb:* trr-int 1000" in text
    assert rtp_destination(out) == ("203.0.113.5", 30000)


def test_rewrite_keeps_media_level_address_semantics():
    body = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.0.2.77\r\na=rtcp:4001\r\n")
    sdp = parse(body)
    assert rtp_destination(sdp) == ("192.0.2.77", 4000)
    out = rewrite_for_relay(sdp, "2001:db8::5", 30002)
    text = out.to_bytes().decode()
    assert "c=IN IP6 2001:db8::5" in text and "192.0.2.77" not in text and "a=rtcp" not in text
    assert "o=callrouter 1 1 IN IP6 2001:db8::5" in text


def test_rfc2543_hold_survives_the_relay_address():
    held = parse(DESK_PHONE.replace("c=IN IP4 192.168.1.20", "c=IN IP4 0.0.0.0"))
    assert is_hold(held) and rtp_destination(held) is None
    out = rewrite_for_relay(filter_offer(held), "203.0.113.5", 30000)
    assert out.connection == "203.0.113.5"
    assert out.media[0].direction == "sendonly" and is_hold(out)


@pytest.mark.parametrize("direction, held", [
    ("sendrecv", False), ("recvonly", False), ("sendonly", True), ("inactive", True)])
def test_is_hold_follows_the_direction(direction, held):
    assert is_hold(parse(DESK_PHONE.replace("a=sendrecv", f"a={direction}"))) is held


def test_leg_origin_bumps_the_version_only_when_the_description_changes():
    origin = LegOrigin("203.0.113.5")
    offer = filter_offer(parse(DESK_PHONE))
    first = rewrite_for_relay(offer, "203.0.113.5", 30000, origin=origin)
    again = rewrite_for_relay(offer, "203.0.113.5", 30000, origin=origin)
    assert first.origin.session_id == again.origin.session_id
    assert again.origin.session_version == first.origin.session_version == 1
    assert first.to_bytes() == again.to_bytes()
    hold = parse(DESK_PHONE.replace("a=sendrecv", "a=sendonly"))
    third = rewrite_for_relay(filter_offer(hold), "203.0.113.5", 30000, origin=origin)
    assert third.origin.session_id == first.origin.session_id
    assert third.origin.session_version == 2
    assert third.origin.username == "callrouter" and third.origin.address == "203.0.113.5"
    other_leg = LegOrigin("203.0.113.5")
    assert other_leg.session_id != origin.session_id


ANSWER = (
    "v=0\r\no=bob 7 7 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\n"
    "m=audio 5004 RTP/AVP 8 96\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:96 telephone-event/8000\r\n"
    "a=fmtp:96 0-16\r\na=ptime:30\r\na=sendrecv\r\n"
)


def test_negotiate_picks_the_answers_codec_and_event_types():
    offer = filter_offer(parse(DESK_PHONE))
    result = negotiate(offer, parse(ANSWER))
    assert (result.codec_pt, result.encoding, result.clock_rate) == (8, "PCMA", 8000)
    # The answer numbers events 96 while the offer said 101: each side's own number counts.
    assert result.telephone_event_pt == 96 and result.offer_telephone_event_pt == 101
    assert result.ptime == 30 and result.direction == "sendrecv" and result.media_index == 0


def test_negotiate_without_events_on_one_side():
    offer = filter_offer(parse(DESK_PHONE.replace(" 18 101", " 18")))
    answer = parse(ANSWER)
    # Events in the answer that were never offered: not strictly valid, but no reason to drop a call.
    assert not answer_matches_offer(offer, answer)
    result = negotiate(offer, answer)
    assert result.encoding == "PCMA"
    assert result.telephone_event_pt is None and result.offer_telephone_event_pt is None


def test_negotiate_skips_answer_codecs_that_were_not_offered():
    offer = filter_offer(parse(DESK_PHONE.replace("RTP/AVP 9 0 8 18 101", "RTP/AVP 0 101")))
    result = negotiate(offer, parse(ANSWER.replace("RTP/AVP 8 96", "RTP/AVP 8 0 96")))
    assert (result.codec_pt, result.encoding) == (0, "PCMU")
    with pytest.raises(NoCommonCodec):
        negotiate(offer, parse(ANSWER))


def test_answers_that_do_not_fit_the_offer_are_refused():
    offer = filter_offer(parse(SOFT_CLIENT))          # two m= lines
    one_line = parse(ANSWER)
    assert not answer_matches_offer(offer, one_line)
    with pytest.raises(SdpError, match="1 m= lines, the offer had 2"):
        negotiate(offer, one_line)
    g729 = parse(ANSWER.replace("RTP/AVP 8 96", "RTP/AVP 18 96"))
    with pytest.raises(SdpError, match="G729/8000, which was not offered"):
        check_answer(filter_offer(parse(DESK_PHONE)), g729)
    events_only = parse(ANSWER.replace("RTP/AVP 8 96", "RTP/AVP 96"))
    with pytest.raises(NoCommonCodec):
        negotiate(filter_offer(parse(DESK_PHONE)), events_only)
    video_answered = parse(ANSWER + "m=video 6000 RTP/AVP 99\r\na=rtpmap:99 VP8/90000\r\n")
    with pytest.raises(SdpError, match="rejected"):
        check_answer(filter_offer(parse(SOFT_CLIENT)), video_answered)


def test_an_answer_rejecting_audio_is_no_common_codec():
    offer = filter_offer(parse(DESK_PHONE))
    rejected = parse(ANSWER.replace("m=audio 5004", "m=audio 0"))
    assert answer_matches_offer(offer, rejected)
    with pytest.raises(NoCommonCodec):
        negotiate(offer, rejected)


@pytest.mark.parametrize("offered, answered", [
    ("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("recvonly", "sendonly"), ("inactive", "inactive")])
def test_make_answer_is_a_valid_answer(offered, answered):
    offer = parse(SOFT_CLIENT.replace("a=sendrecv", f"a={offered}"))
    origin = LegOrigin("192.0.2.50")
    answer = make_answer(offer, "192.0.2.50", 40000, origin=origin)
    check_answer(offer, answer)
    audio, video = answer.media
    assert audio.formats == [0, 98] and audio.port == 40000 and audio.direction == answered
    assert audio.fmtp == {98: "0-16"} and video.port == 0
    result = negotiate(offer, parse(answer.to_bytes()))
    assert (result.encoding, result.telephone_event_pt) == ("PCMU", 98)
    assert answer.origin.session_id == origin.session_id


def test_make_answer_refuses_an_offer_without_g711():
    with pytest.raises(NoCommonCodec):
        make_answer(parse(DESK_PHONE.replace("RTP/AVP 9 0 8 18 101", "RTP/AVP 9 18")), "192.0.2.50", 40000)


def test_session_description_parse_classmethod_and_copy_are_independent():
    sdp = SessionDescription.parse(DESK_PHONE)
    copy = sdp.copy()
    copy.media[0].formats.append(3)
    copy.media[0].attributes.clear()
    assert sdp.media[0].formats == [9, 0, 8, 18, 101] and sdp.media[0].attributes == ["rtcp:11781"]


def test_rtcp_destination_from_a_rtcp():
    assert rtcp_destination(parse(DESK_PHONE)) == ("192.168.1.20", 11781)
    assert rtcp_destination(parse(DESK_PHONE.replace("a=rtcp:11781", "a=rtcp:9000 IN IP4 192.0.2.33"))) == (
        "192.0.2.33", 9000)
    assert rtcp_destination(parse(ANSWER)) is None          # none given: RTP port + 1
    assert rtcp_destination(parse(DESK_PHONE.replace("a=rtcp:11781", "a=rtcp:x"))) is None
