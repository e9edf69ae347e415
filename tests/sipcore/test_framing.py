"""Stream framing for TCP/TLS: split, reassemble, keep-alives, limits."""
import pytest

from sipcore.framing import PING, FramingError, StreamFramer

MSG = (b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n"
       b"Content-Length: 5\r\n\r\nhello")


def test_two_messages_in_one_read_and_one_split_across_reads():
    f = StreamFramer()
    assert f.feed(MSG + MSG[:30]) == [MSG]
    assert f.feed(MSG[30:-2]) == []
    assert f.feed(MSG[-2:]) == [MSG]
    assert f.pending == 0


def test_byte_by_byte():
    f = StreamFramer()
    out = []
    for i in range(len(MSG)):
        out += f.feed(MSG[i:i + 1])
    assert out == [MSG]


def test_compact_content_length_and_case():
    msg = MSG.replace(b"Content-Length: 5", b"l:5")
    assert StreamFramer().feed(msg) == [msg]
    msg = MSG.replace(b"Content-Length", b"CONTENT-LENGTH")
    assert StreamFramer().feed(msg) == [msg]


def test_keepalive_ping_between_messages():
    f = StreamFramer()
    assert f.feed(PING + MSG + PING) == [PING, MSG, PING]
    # a CRLF may be the first half of a ping: it waits for more
    assert f.feed(b"\r\n") == []
    assert f.feed(b"\r\n" + MSG) == [PING, MSG]
    # a lone CRLF (a pong, or a stray line end) before a message is skipped
    assert f.feed(b"\r\n") == []
    assert f.feed(MSG) == [MSG]
    assert f.pending == 0


def test_missing_content_length_is_an_error():
    with pytest.raises(FramingError) as exc:
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
    assert exc.value.status == 400


def test_size_limits():
    f = StreamFramer(max_message_size=100)
    with pytest.raises(FramingError) as exc:
        f.feed(MSG.replace(b"Content-Length: 5", b"Content-Length: 500"))
    assert exc.value.status == 513
    with pytest.raises(FramingError):
        StreamFramer(max_message_size=100).feed(b"X" * 200)  # headers never end
