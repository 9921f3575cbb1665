"""The worker's request framer (``framing.py``) against gunicorn's own parser, without a server.

The framer decides in the event loop whether a request is complete, where it ends, and refuses
what gunicorn's parser would refuse in the body, the trailers and the framing headers; the
differential property below drives both over the same bytes (valid requests and byte-level
mutations of them) and checks they agree, under each of gunicorn's parsers (``http_parser``: the C
parser, gunicorn_h1c, and the Python one). Also here: the safety net for a malformed body that
would still reach the app (issue 33, item 1).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.http.body import LengthReader
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData, ParseException
from gunicorn.http.parser import RequestParser
from hypothesis import given, settings
from hypothesis import strategies as st
from svc_helpers import HTTP_PARSERS

from services.inference.framing import ParserRules, Reject, RequestFramer


def _config(parser: str) -> Config:
    cfg = Config()
    cfg.set("http_parser", parser)
    return cfg


CONFIGS = {parser: _config(parser) for parser in HTTP_PARSERS}
RULES = {parser: ParserRules(cfg) for parser, cfg in CONFIGS.items()}
CFG = CONFIGS["python"]  # where the parser does not matter (limits, bodies: gunicorn's Python alone)
MAX_BODY = 1 << 20  # above anything generated: 413 is the framer's own limit, not gunicorn's
CHUNKED_HEAD = b"POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


def frame(raw: bytes, cuts: Sequence[int] = (), parser: str = "fast") -> int | Reject | None:
    """The framer's answer for ``raw`` arriving in pieces ending at ``cuts`` (then the rest)."""
    framer = RequestFramer(MAX_BODY, RULES[parser])
    result = None
    for cut in [*sorted(c for c in cuts if c < len(raw)), len(raw)]:
        result = framer.feed(raw[:cut])
        if result is not None:
            break
    return result


# --- the framer alone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\r\nGET / HTTP/1.1\r\n\r\n", 20),  # one leading CRLF is ignored, as gunicorn does (RFC 9112 2.2)
        (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400),  # a second one is an empty request line
        (b"GET / HTTP/1.1\nHost: t\n", 400),  # bare LF: refused at once, not after the header timeout
        (b"GET / HTTP/1.1\r\nHost: t\n", 400),
        (b"GET / HTTP/1.1\r\nX: 1\r\r\n", 400),  # bare CR: the C parser refuses it before the head ends
        (b"GET / HTTP/1.1\r\nX: 1\r", None),  # a CR at the end may be followed by its LF
        (b"GET / HTTP/9.9\r\nHost: t\r\n", 400),  # a bad request line is refused before the headers end
        (CHUNKED_HEAD + b"5\nhello\n0\n", 400),  # bare LF chunk lines: refused at once
        (CHUNKED_HEAD + b"5;\r\nhello\r\n0\r\n\r\n", 400),  # chunk extension without a name
        (CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nGET / HTTP/1.1\r\n\r\n", 400),  # no blank line after the last chunk
        (CHUNKED_HEAD + b"0\r\nHost: x\r\n\r\n", 400),  # forbidden in trailers (RFC 9110 6.5.1)
        (CHUNKED_HEAD + b"0\r\nX: 1\n", 400),  # bare LF in the trailers: refused before they end
        (CHUNKED_HEAD + b"0\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
        (CHUNKED_HEAD + b"0\r\nX: a\r\n\r\nGET", len(CHUNKED_HEAD) + 11),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501),  # gunicorn's status for it
    ],
)
@pytest.mark.parametrize("parser", HTTP_PARSERS)
def test_framer_answers(raw: bytes, expected: int | None, parser: str) -> None:
    result = frame(raw, parser=parser)
    assert (result.status if isinstance(result, Reject) else result) == expected, result


# Where the two parsers differ on a request line: the framer's answer, and gunicorn's (ok or head).
PARSERS_DIFFER = {
    # gunicorn_h1c accepts runs of spaces between the parts; Python's parser refuses them.
    b"GET  /  HTTP/1.1\r\nHost: t\r\n\r\n": {"fast": (29, "ok"), "python": (400, "head")},
    # Python's parser accepts HTTP/1.2; the C parser refuses it in the thread (the framer hands the
    # complete head over, as for any header gunicorn refuses).
    b"GET / HTTP/1.2\r\nHost: t\r\n\r\n": {"fast": (27, "head"), "python": (27, "ok")},
}


@pytest.mark.parametrize("raw", list(PARSERS_DIFFER))
@pytest.mark.parametrize("parser", HTTP_PARSERS)
def test_framer_follows_the_parser_in_use(raw: bytes, parser: str) -> None:
    framed, judged = PARSERS_DIFFER[raw][parser]
    result = frame(raw, parser=parser)
    assert (result.status if isinstance(result, Reject) else result) == framed, result
    assert gunicorn_outcome(raw, parser)[0] == judged


@pytest.mark.parametrize("parser", HTTP_PARSERS)
def test_100_continue_only_for_http11_with_a_body(parser: str) -> None:
    def expects(raw: bytes) -> bool:
        framer = RequestFramer(MAX_BODY, RULES[parser])
        assert framer.feed(raw) is None
        return framer.expects_continue

    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert expects(head) and expects(b"\r\n" + head)
    assert not expects(b"\r\n" + head.replace(b"HTTP/1.1", b"HTTP/1.0"))  # RFC 9110 15.2: never to HTTP/1.0
    assert not expects(head.replace(b"Expect: 100-continue\r\n", b""))


def test_chunk_size_line_limit_is_gunicorns() -> None:
    limit = CFG.limit_request_field_size  # what gunicorn's ChunkedReader allows an unterminated line
    assert frame(CHUNKED_HEAD + b"0" * limit) is None
    assert isinstance(frame(CHUNKED_HEAD + b"0" * (limit + 1)), Reject)


# --- the framer and gunicorn's parser over the same bytes ----------------------------------------------


def gunicorn_outcome(raw: bytes, parser: str) -> tuple[str, object, bool | None]:
    """What gunicorn's parser makes of ``raw`` held in memory, as the worker hands a request to it:
    (``ok``, where the request ends) | (``incomplete``, None) | (``head`` or ``body``, the refusal),
    and, once the head is parsed, whether it would send ``100 Continue`` (None before)."""
    requests = RequestParser(CONFIGS[parser], [raw], ("127.0.0.1", 1))
    try:
        req = next(requests)
    except (StopIteration, NoMoreData):
        return "incomplete", None, None
    except ParseException as exc:
        return "head", exc, None
    assert req.body is not None
    reader = req.body.reader
    announced = reader.length if isinstance(reader, LengthReader) else None
    continues = req._expected_100_continue and announced != 0  # type: ignore[attr-defined]
    try:
        body = req.body.read()
    except NoMoreData:
        return "incomplete", None, continues
    except ChunkMissingTerminator as exc:
        # Raised too when the bytes run out after a chunk or in the trailers: that is not a refusal.
        return ("incomplete", None, continues) if len(exc.term) < 2 else ("body", exc, continues)
    except ParseException as exc:
        return "body", exc, continues
    if announced is not None and len(body) < announced:
        return "incomplete", None, continues
    return "ok", len(raw) - len(requests.unreader.take_buffered()), continues


FIELD = st.sampled_from([b"X-T: 1", b"checksum:abc", b"X-Empty:", b'Etag: \t"x y"\t'])
EXTENSION = st.sampled_from([b"", b";a", b";a=b", b' ; n="q \\" x"', b";a;b=c", b"\t;x=1"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A valid request (chunked or with Content-Length) and what follows it on the connection."""
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    head = [b"POST /v1/models/m:predict " + version, b"Host: t", *draw(st.lists(FIELD, max_size=2))]
    if draw(st.booleans()):
        head.append(b"Expect: 100-continue")
    if version == b"HTTP/1.1" and draw(st.booleans()):
        head.append(b"Transfer-Encoding: " + draw(st.sampled_from([b"chunked", b"gzip, chunked", b"CHUNKED"])))
        body = b""
        for chunk in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4)):
            size = draw(st.sampled_from(["{:x}", "{:X}", "00{:x}"])).format(len(chunk)).encode()
            body += size + draw(EXTENSION) + b"\r\n" + chunk + b"\r\n"
        body += b"0" + draw(EXTENSION) + b"\r\n" + b"".join(f + b"\r\n" for f in draw(st.lists(FIELD, max_size=2)))
        body += b"\r\n"
    else:
        body = draw(st.binary(max_size=60))
        head.append(b"Content-Length: %d" % len(body))
    lead = draw(st.sampled_from([b"", b"\r\n"]))
    after = draw(st.sampled_from([b"", b"\r\n", b"GET / HTTP/1.1\r\n\r\n"]))
    return lead + b"\r\n".join(head) + b"\r\n\r\n" + body + after


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A request, maybe with one byte inserted, replaced or deleted, or cut short."""
    raw = draw(requests())
    op = draw(st.sampled_from(["none", "insert", "replace", "delete", "truncate"]))
    if op == "none":
        return raw
    at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
    byte = draw(st.sampled_from([b"\r", b"\n", b";", b":", b" ", b"\t", b"0", b"a", b'"', b"=", b",", b"\x00"]))
    return {
        "insert": raw[:at] + byte + raw[at:],
        "replace": raw[:at] + byte + raw[at + 1 :],
        "delete": raw[:at] + raw[at + 1 :],
        "truncate": raw[:at],
    }[op]


@pytest.mark.parametrize("parser", HTTP_PARSERS)
@settings(max_examples=400, deadline=None)
@given(raw=mutated(), cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=3))
def test_framer_and_gunicorn_agree(parser: str, raw: bytes, cuts: list[int]) -> None:
    framer = RequestFramer(MAX_BODY, RULES[parser])
    result = framer.feed(raw)
    in_pieces = frame(raw, cuts, parser)  # however the bytes arrive, the same answer (its wording aside)
    assert (in_pieces.status if isinstance(in_pieces, Reject) else in_pieces) == (
        result.status if isinstance(result, Reject) else result
    )
    stage, detail, continues = gunicorn_outcome(raw, parser)
    note = f"framer {result!r}, gunicorn {stage} {detail!r}"
    if stage == "ok":
        assert result == detail, note  # accepted by both, ending at the same byte
    elif stage == "body":
        assert isinstance(result, Reject), note  # never handed to a thread that would fail reading it
    elif stage == "head":
        # Header syntax is gunicorn's to judge in the thread (it answers 4xx and closes): the framer
        # refuses, or has the whole head and hands it over.
        assert isinstance(result, Reject) or framer.headers_complete, note
    elif isinstance(result, Reject):
        # Incomplete for gunicorn, refused by the framer: only a bare LF in a chunk-size line or a bare
        # CR in the head, which gunicorn would refuse once the line or the head ends, rather than wait.
        assert "bare" in result.message, note
        if "chunked body" in result.message:
            assert gunicorn_outcome(raw + b"\r\n", parser)[0] == "body", note
        else:
            assert gunicorn_outcome(raw + b"\r\n\r\n", parser)[0] == "head", note
    else:
        assert result is None, note
    if continues is not None and not isinstance(result, Reject):
        assert framer.expects_continue == continues, note  # HTTP/1.1, Expect: 100-continue and a body


# --- the safety net: a malformed body that still reaches the app ----------------------------------------


def test_a_failed_body_read_closes_the_connection() -> None:
    # gunicorn 27's own (Body.failed): gthread keeps a connection only if the drain of the body before
    # it succeeds, and after a failed read it refuses, so the worker no longer overrides should_close
    parser = RequestParser(CFG, [CHUNKED_HEAD, b"zz\r\nhello\r\n0\r\n\r\n"], ("127.0.0.1", 1))
    req = next(parser)
    with pytest.raises(InvalidChunkSize):
        req.body.read()
    assert parser.finish_body() is False  # where the next request starts is unknown: close


class _RaisingInput(io.BytesIO):
    """A ``wsgi.input`` whose body gunicorn's parser refuses while the app reads it."""

    def read(self, size: int | None = -1) -> bytes:
        raise InvalidChunkSize(b"zz")

    def readinto(self, buffer: object) -> int:
        raise InvalidChunkSize(b"zz")


def test_app_answers_a_malformed_body_with_400_and_no_traceback(
    trained_store, caplog: pytest.LogCaptureFixture
) -> None:
    from svc_helpers import MODEL, make_app, wait_loaded

    app: Flask = make_app(trained_store)
    wait_loaded(app)
    with caplog.at_level(logging.INFO, logger="services.inference"):
        response = app.test_client().post(
            f"/v1/models/{MODEL}:predict",
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input": _RaisingInput(), "wsgi.input_terminated": True},  # as gunicorn sets
        )
    assert response.status_code == 400, response.data
    assert "malformed request body" in response.get_json()["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
