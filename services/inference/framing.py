"""Where one HTTP/1.1 request ends in a byte buffer, found without blocking (used by ``worker.py``).

The worker's event loop feeds every connection's bytes to a :class:`RequestFramer` until it
reports the request complete; only then does a thread parse and run it, so a client that sends
slowly holds a buffer, never a thread. The framer reads only what framing needs (the end of the
head, ``Content-Length``, ``Transfer-Encoding``, the chunk-size lines and the trailer section) and
refuses early what can never be served: a body over the limit (413), headers that are too large
(431), and every body, trailer section or framing header that gunicorn's parser would refuse.

One framing truth: those judgements are gunicorn's own code (:class:`ParserRules`, the same
functions and limits its parser applies in the thread), so the framer and the parser never
disagree on whether a request is valid or on where it ends; a refusal is answered at once from the
event loop instead of failing later inside the app. The request line is judged as soon as it is
complete; the other header fields are left to gunicorn's parser in the thread, which answers its own
4xx (before the worker sends ``100 Continue``, it asks that parser about the head).

gunicorn parses heads with its C parser (gunicorn_h1c) when it is installed and ``http_parser`` is
``auto`` (the default) or ``fast``, else with its Python parser; the framer follows the same choice
(gunicorn's own, made per ``Request``). The two parsers differ on a few request lines (see
:meth:`ParserRules.request_version`), and the C one refuses some bad bytes before the head ends.
Of those, the framer refuses a bare CR at once too (the one that can keep a head from ending, as a
bare LF does); any other it hands over with the complete head, for gunicorn to refuse in the thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import ParseException
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader, Unreader

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from gunicorn.config import Config

MAX_HEADER_BYTES = 64 * 1024
# RFC 9112 section 2.2: every line ends with CRLF. gunicorn's parser refuses a bare LF in the head
# and the trailers at once; in a chunk-size line it would wait for a CRLF, but such a line can never
# become valid (LF is neither a hex digit nor allowed in a chunk extension), so it is refused at once.
_BARE_LF = re.compile(rb"(?<!\r)\n")
# A CR not followed by LF: both parsers refuse it in a complete head, and the C parser as soon as it
# sees it (before the head ends), so it is refused at once. A CR at the end of the bytes so far waits.
_BARE_CR_OR_LF = re.compile(rb"(?<!\r)\n|\r[^\n]")
# The fields gunicorn's set_body_reader reads, named as its parse_headers names them.
_FRAMING_FIELDS = {b"content-length": "CONTENT-LENGTH", b"transfer-encoding": "TRANSFER-ENCODING"}


@dataclass(frozen=True)
class Reject:
    """The request cannot be served: answer ``status`` with ``message`` and close the connection."""

    status: int
    message: str


class _NeedMore(Exception):
    """gunicorn's parser asked for bytes beyond those the framer holds."""


class _Held(Unreader):
    """The source gunicorn's chunk parser reads here: only the bytes handed to it.

    Reading past them raises :class:`_NeedMore` (the request is not complete yet); what the
    parser hands back (``unread``) is kept in ``rest``, which tells where its part ended.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rest = b""

    def read(self, size: int | None = None, read_ahead: int | None = None) -> bytes:
        raise _NeedMore

    def unread(self, data: ReadableBuffer) -> None:
        self.rest = bytes(data)


def _refusal(exc: ParseException, what: str) -> Reject:
    """gunicorn's status for ``exc`` when it carries one (501 for an unknown coding), else 400."""
    return Reject(getattr(exc, "code", 400), f"{what}: {exc}")


class ParserRules:
    """gunicorn's parser under the server's ``Config``, asked about framing one question at a time.

    Built once per worker (event loop only: not thread-safe). ``_judge`` is a real gunicorn
    ``Request`` (its limits come from ``cfg`` exactly as in the thread's parser) whose
    ``parse_request_line``, ``set_body_reader`` and ``parse_headers`` judge the request line,
    the framing headers and the trailers; ``_chunks`` is
    gunicorn's ``ChunkedReader`` on it, whose ``parse_chunk_size`` and ``parse_trailers`` judge the
    chunked body with gunicorn's own chunk-extension pattern and line and trailer limits.
    """

    def __init__(self, cfg: Config) -> None:
        self._judge = Request(cfg, IterUnreader([b"GET / HTTP/1.1\r\n\r\n"]), ("127.0.0.1", 0))
        self._chunks = ChunkedReader(self._judge, _Held())
        # The trailer limit as ChunkedReader derives it (limit_trailer_section in gunicorn 27).
        self.trailer_limit: int = self._chunks.limit_trailer_section  # type: ignore[attr-defined]

    def request_version(self, line: bytes) -> tuple[int, int]:
        """The HTTP version of a request line (without its CRLF); raises if gunicorn refuses the line.

        Judged by gunicorn's Python ``parse_request_line`` (the cheapest judge). Under the C parser
        (``http_parser`` auto with gunicorn_h1c installed, or fast), a line that judge refuses is
        asked again of the C path gunicorn runs in the thread, which accepts a few such lines (runs
        of spaces between the parts); a line only the C parser refuses (``HTTP/1.2``) is gunicorn's
        to refuse in the thread, once the head is complete.
        """
        judge = self._judge
        try:
            judge.parse_request_line(line)
        except ParseException as refused:
            if not judge._use_fast:  # type: ignore[attr-defined]  # gunicorn's own choice of parser
                raise
            try:
                judge._parse_fast(_Held(), bytearray(line + b"\r\n\r\n"))  # type: ignore[attr-defined]
            except _NeedMore:  # not a request line to the C parser either
                raise refused from None
        assert judge.version is not None  # either parser sets it or raises
        return judge.version

    def body_length(self, fields: list[tuple[str, str]], version: tuple[int, int]) -> int | None:
        """The body's length from the ``Content-Length`` and ``Transfer-Encoding`` fields (uppercase
        names, values as gunicorn strips them), None when chunked; raises what gunicorn raises."""
        judge = self._judge
        judge.headers, judge.version = fields, version
        judge.set_body_reader()
        assert judge.body is not None  # set_body_reader always sets it
        reader = judge.body.reader
        return reader.length if isinstance(reader, LengthReader) else None

    def chunk_size(self, line: bytes) -> int:
        """The size a complete chunk-size line (without its CRLF) announces; raises if invalid."""
        # A CRLF after the line, and an empty trailer section in case the size is 0: gunicorn then
        # judges the line alone and reads nothing more.
        size, _rest = self._chunks.parse_chunk_size(_Held(), line + b"\r\n\r\n")
        return size

    def check_partial_chunk_line(self, partial: bytes) -> None:
        """Raise as gunicorn does when a chunk-size line still without CRLF is already too long."""
        try:
            self._chunks.parse_chunk_size(_Held(), partial)
        except _NeedMore:
            pass

    def trailers_end(self, data: bytes) -> int | None:
        """Where the trailer section at the start of ``data`` ends (past its blank line), None while
        incomplete; raises if gunicorn refuses it (bare LF, a bad or forbidden field, too large)."""
        held = _Held()
        try:
            self._chunks.parse_trailers(held, data)
        except _NeedMore:
            return None
        return len(data) - len(held.rest)


class RequestFramer:
    """Incremental framing of one request at the start of a buffer.

    :meth:`feed` returns the request's length in bytes once it is complete, ``None`` while more
    bytes are needed, or a :class:`Reject`. The framer keeps its place, so each byte is scanned
    about once however the request arrives. ``expects_continue`` tells, once the headers are
    complete, that an HTTP/1.1 client waits for ``100 Continue`` before it sends its body.
    """

    def __init__(self, max_body: int, rules: ParserRules):
        self.max_body = max_body
        self.rules = rules
        self.header_end = -1  # index just past the blank line ending the headers
        self.expects_continue = False
        self._scanned = 0
        self._version: tuple[int, int] | None = None  # from the request line, once gunicorn accepted it
        self._length: int | None = 0  # the body's length; None when chunked
        self._chunk_pos = 0  # where the next chunk-size line (or the trailer section) starts
        self._decoded = 0
        self._in_trailers = False

    @property
    def headers_complete(self) -> bool:
        """True once the blank line after the headers has arrived."""
        return self.header_end >= 0

    def feed(self, buf: bytearray | bytes) -> int | Reject | None:
        """Look at ``buf`` (the connection's bytes, the request at its start); see the class doc."""
        if self.header_end < 0:
            problem = self._feed_head(buf)
            if problem is not None or self.header_end < 0:
                return problem
        if self._length is None:
            return self._feed_chunked(buf)
        total = self.header_end + self._length
        return total if len(buf) >= total else None

    def _feed_head(self, buf: bytearray | bytes) -> Reject | None:
        # RFC 9112 section 2.2: gunicorn's parser ignores one CRLF before the request line, no more.
        # Restated: that rule sits inside gunicorn's parse(), which reads the whole head at once.
        if buf[:1] == b"\r" and len(buf) < 2:
            return None
        start = 2 if buf[:2] == b"\r\n" else 0
        scanned = max(start, self._scanned)
        if self._version is None:
            line_end = buf.find(b"\r\n", max(start, scanned - 1))
            if line_end >= 0:
                try:  # judged as soon as it is complete: a bad request line never waits for the headers
                    self._version = self.rules.request_version(bytes(buf[start:line_end]))
                except ParseException as exc:
                    return _refusal(exc, "invalid request line")
        version = self._version
        end = -1 if version is None else buf.find(b"\r\n\r\n", max(start, scanned - 3))
        bare = _BARE_CR_OR_LF.search(buf, max(start, scanned - 1), len(buf) if end < 0 else end + 4)
        if bare:
            what = "bare CR" if bare[0][:1] == b"\r" else "bare LF as line terminator"
            return Reject(400, f"{what} in the request head")
        if version is None or end < 0:
            self._scanned = len(buf)
            if len(buf) > MAX_HEADER_BYTES:
                return Reject(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
            return None
        if end > MAX_HEADER_BYTES:
            return Reject(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
        self.header_end = self._chunk_pos = end + 4
        return self._read_framing_headers(bytes(buf[start:end]), version)

    def _read_framing_headers(self, head: bytes, version: tuple[int, int]) -> Reject | None:
        fields, expect = [], False
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                continue  # gunicorn's parser refuses the head
            name = name.lower()
            field = _FRAMING_FIELDS.get(name)
            if field is not None:
                fields.append((field, value.decode("latin-1").strip(" \t")))
            elif name == b"expect" and value.strip(b" \t").lower() == b"100-continue":
                expect = True
        if fields:  # without either field a request has no body (RFC 9112 section 6.3): nothing to ask
            try:
                self._length = self.rules.body_length(fields, version)
            except ParseException as exc:
                return _refusal(exc, "Content-Length or Transfer-Encoding refused")
        if self._length is not None and self._length > self.max_body:
            return Reject(413, f"request body exceeds MAX_BODY_BYTES={self.max_body} bytes")
        # RFC 9110 section 10.1.1: an HTTP/1.0 client does not wait for 100 Continue.
        self.expects_continue = expect and version >= (1, 1) and self._length != 0
        return None

    def _feed_chunked(self, buf: bytearray | bytes) -> int | Reject | None:
        rules = self.rules
        while not self._in_trailers:
            line_end = buf.find(b"\r\n", self._chunk_pos)
            if line_end < 0:
                partial = bytes(buf[self._chunk_pos :])
                if b"\n" in partial:
                    return Reject(400, "bare LF as line terminator in a chunked body")
                try:
                    rules.check_partial_chunk_line(partial)
                except ParseException as exc:
                    return _refusal(exc, "malformed chunked body")
                return None
            try:
                size = rules.chunk_size(bytes(buf[self._chunk_pos : line_end]))
            except ParseException as exc:
                return _refusal(exc, "malformed chunked body")
            if self._decoded + size > self.max_body:
                return Reject(413, f"request body exceeds MAX_BODY_BYTES={self.max_body} bytes")
            if size == 0:
                self._in_trailers = True
                self._chunk_pos = line_end + 2
                break
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                return None
            # Restated from gunicorn's parse_chunked, a generator that cannot resume where bytes ran out.
            if buf[data_end : data_end + 2] != b"\r\n":
                return Reject(400, "malformed chunked body: a chunk is not followed by CRLF")
            self._decoded += size
            self._chunk_pos = data_end + 2
        # At most the trailer limit and a blank line: past that gunicorn refuses the section, so
        # the window also keeps bytes pipelined behind the request from being copied again and again.
        window = bytes(buf[self._chunk_pos : self._chunk_pos + rules.trailer_limit + 4])
        try:
            end = rules.trailers_end(window)
        except ParseException as exc:
            return _refusal(exc, "malformed chunked trailers")
        return None if end is None else self._chunk_pos + end
