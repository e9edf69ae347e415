"""Stream framing for SIP over TCP and TLS (RFC 3261 §18.3): messages are delimited by the
blank line after the headers and the Content-Length, which stream transports must carry.
Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are recognised here so that the
shell can answer a double-CRLF ping with a single-CRLF pong."""
from __future__ import annotations

import re

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
PING = b"\r\n\r\n"
PONG = b"\r\n"


class FramingError(ValueError):
    """The stream cannot be framed any more; the connection must be closed after `status`."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class StreamFramer:
    def __init__(self, max_message_size: int = 65535):
        self.max_message_size = max_message_size
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return complete messages (a PING counts as one)."""
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        while buf:
            if buf[:1] in (b"\r", b"\n"):
                # Leading CRLFs: a keep-alive ping (double CRLF) or stray line ends to skip.
                if buf.startswith(PING):
                    out.append(PING)
                    del buf[:4]
                    continue
                if len(buf) < 4 and PING.startswith(bytes(buf)):
                    break  # maybe the start of a ping; wait for more
                del buf[:1]
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self.max_message_size:
                    raise FramingError(513, "Message Too Large")
                break
            head = bytes(buf[:end])
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                raise FramingError(400, "Content-Length required on stream transports")
            total = end + 4 + int(match.group(1))
            if total > self.max_message_size:
                raise FramingError(513, "Message Too Large")
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
