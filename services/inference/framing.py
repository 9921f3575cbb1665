"""Where one HTTP/1.1 request ends in a byte buffer, found without blocking (used by ``worker.py``).

The worker's event loop feeds every connection's bytes to a :class:`RequestFramer` until it
reports the request complete; only then does a thread parse and run it, so a client that sends
slowly holds a buffer, never a thread. The framer reads only what framing needs (the end of the
headers, ``Content-Length``, ``Transfer-Encoding: chunked`` and its chunk sizes) and refuses early
what can never be served: a body over the limit (413), an invalid chunk size or framing that two
parsers could read differently (400), headers that are too large (431). Everything else (header
syntax, the request line) is validated by gunicorn's own parser afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_BYTES = 64 * 1024
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}(?:[ \t]*;[^\r\n]*)?")
_MAX_CHUNK_LINE = 4096


@dataclass(frozen=True)
class Reject:
    """The request cannot be served: answer ``status`` with ``message`` and close the connection."""

    status: int
    message: str


class RequestFramer:
    """Incremental framing of one request at the start of a buffer.

    :meth:`feed` returns the request's length in bytes once it is complete, ``None`` while more
    bytes are needed, or a :class:`Reject`. The framer keeps its place, so each byte is scanned
    about once however the request arrives. ``expects_continue`` tells, once the headers are
    complete, that the client waits for ``100 Continue`` before it sends the body.
    """

    def __init__(self, max_body: int):
        self.max_body = max_body
        self.header_end = -1  # index just past the blank line ending the headers
        self.expects_continue = False
        self._scanned = 0
        self._length: int | None = None  # Content-Length
        self._chunked = False
        self._chunk_pos = 0  # where the next chunk-size line starts
        self._decoded = 0
        self._in_trailers = False

    @property
    def headers_complete(self) -> bool:
        """True once the blank line after the headers has arrived."""
        return self.header_end >= 0

    def feed(self, buf: bytearray | bytes) -> int | Reject | None:
        """Look at ``buf`` (the connection's bytes, the request at its start); see the class doc."""
        if self.header_end < 0:
            end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
            if end < 0:
                self._scanned = len(buf)
                if len(buf) > MAX_HEADER_BYTES:
                    return Reject(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
                return None
            if end > MAX_HEADER_BYTES:
                return Reject(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
            self.header_end = end + 4
            problem = self._read_framing_headers(bytes(buf[: self.header_end]))
            if problem is not None:
                return problem
            self._chunk_pos = self.header_end
        if self._chunked:
            return self._feed_chunked(buf)
        total = self.header_end + (self._length or 0)
        return total if len(buf) >= total else None

    def _read_framing_headers(self, head: bytes) -> Reject | None:
        lengths, codings = set(), []
        request_line, *lines = head.split(b"\r\n")
        http11 = not request_line.endswith(b"HTTP/1.0")
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep:
                continue  # the blank lines at the end; gunicorn's parser judges anything else
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                lengths.add(value)
            elif name == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
            elif name == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = http11  # HTTP/1.0 clients do not wait for it
        if codings:
            if lengths:
                return Reject(400, "a request must not have both Content-Length and Transfer-Encoding")
            if codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                return Reject(400, "Transfer-Encoding must end with a single 'chunked'")
            self._chunked = True
            return None
        if len(lengths) > 1:
            return Reject(400, "conflicting Content-Length headers")
        if lengths:
            raw = lengths.pop()
            if not raw.isdigit() or len(raw) > 18:
                return Reject(400, f"invalid Content-Length {raw[:40].decode('latin-1')!r}")
            self._length = int(raw)
            if self._length > self.max_body:
                return Reject(413, f"request body exceeds MAX_BODY_BYTES={self.max_body} bytes")
        else:
            self.expects_continue = False  # no body: nothing to continue with
        return None

    def _feed_chunked(self, buf: bytearray | bytes) -> int | Reject | None:
        while True:
            line_end = buf.find(b"\r\n", self._chunk_pos)
            if line_end < 0:
                if len(buf) - self._chunk_pos > _MAX_CHUNK_LINE:
                    return Reject(400, "chunk-size line too long")
                return None
            line = bytes(buf[self._chunk_pos : line_end])
            if self._in_trailers:
                self._chunk_pos = line_end + 2
                if not line:
                    return self._chunk_pos  # the blank line after the last chunk's trailers
                if self._chunk_pos - self.header_end > self.max_body + MAX_HEADER_BYTES:
                    return Reject(400, "chunked trailers too large")
                continue
            if not _CHUNK_SIZE.fullmatch(line):
                return Reject(400, f"invalid chunk size {line[:40].decode('latin-1')!r} in a chunked body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if self._decoded + size > self.max_body:
                return Reject(413, f"request body exceeds MAX_BODY_BYTES={self.max_body} bytes")
            if size == 0:
                self._in_trailers = True
                self._chunk_pos = line_end + 2
                continue
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                return None
            if buf[data_end : data_end + 2] != b"\r\n":
                return Reject(400, "a chunk of a chunked body is not followed by CRLF")
            self._decoded += size
            self._chunk_pos = data_end + 2
