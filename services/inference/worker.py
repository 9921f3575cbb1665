"""The gunicorn worker of the model server: gthread, hardened, and the home of the gRPC server.

It is gunicorn 27's ``gthread`` worker (``ThreadWorker``): its thread pool, the thread's side of a
request (``handle``: gunicorn's parser, the WSGI call, the error pages), its wake-up queue and
poller. It changes what stock gthread gets wrong for this server, each change named beside the test
that runs the same server on stock gthread and shows the failure (``tests/services``; the table in
README.md, "What the worker adds to gthread"):

1. **Whole requests before threads.** The event loop reads every connection without blocking and
   hands a request to a thread only once its headers and body are complete (``framing.py``), so a
   client that sends slowly holds a buffer, never one of the threads that run predictions (stock
   gthread defers only a connection that has sent nothing yet, after holding a thread 5 s for it;
   once a byte arrives a thread blocks reading it). Headers must arrive within
   ``REQUEST_HEADER_TIMEOUT`` and the body within ``REQUEST_BODY_TIMEOUT`` (else 408); a body over
   ``MAX_BODY_BYTES`` is refused with 413 from its headers, before it is read, and whatever
   gunicorn's parser would refuse in the request line, the framing or a chunked body with 400, at
   once (``framing.py`` asks gunicorn's own parser code). Buffered bodies share a per-worker budget;
   past it, connections still sending a body wait their turn. Responses to clients that do not read
   are bounded by a socket send timeout. Only HTTP/1.1 in clear text: gthread's TLS and HTTP/2
   (which start in the thread, in ``TConn.init``) are refused at start (``check_config``); gRPC is
   the server's HTTP/2.
2. **Connections spread over workers.** Workers share one listening socket and a small table of
   their open connections (shared memory set up by ``gunicorn.conf.py``); a worker takes a new
   connection only while it holds no more than the average, so 8 keep-alive connections on 2
   workers end up 4 and 4 instead of wherever the kernel happened to wake.
3. **A drain that cuts nothing.** On SIGTERM the readiness turns false; for ``DRAIN_DELAY_SECONDS``
   everything is served as usual except that every response carries ``Connection: close``; then
   the worker takes what is waiting in the listen queue, closes its listener (new connections are
   refused, not reset: stock gthread keeps the listener open, unpolled, until it exits), answers
   every request already received or still arriving on an open connection with
   ``Connection: close`` (kept-alive connections stay ``STOP_KEEPALIVE_LINGER``, gthread's own cap),
   and exits when no connection is left (at most ``GRACEFUL_TIMEOUT``).
   ``python -m services.inference.drain`` (an exec preStop hook) starts the same soft phase before
   SIGTERM.
4. **gRPC.** The worker runs the TF Serving gRPC server (``grpc_api.py``) on ``GRPC_PORT`` next to
   its REST threads, over the same model repository; every worker binds the port with
   ``SO_REUSEPORT``, so gRPC keeps answering while any one worker restarts. It stops with the same
   grace as REST.
5. **Settings read once** (``ReadOnceConfig``): gunicorn looks up about twenty settings per request.
"""

from __future__ import annotations

import errno
import mmap
import os
import selectors
import socket
import struct
import sys
import time
from collections.abc import Container
from concurrent.futures import Future
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from gunicorn.http.errors import ParseException
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser
from gunicorn.http.unreader import IterUnreader
from gunicorn.workers.gthread import (  # type: ignore[attr-defined]  # STOP_KEEPALIVE_LINGER: gunicorn 27, not its stubs
    STOP_KEEPALIVE_LINGER,
    TConn,
    ThreadWorker,
)

from services.inference.framing import ParserRules, Reject, RequestFramer
from services.inference.settings import DRAIN_MARKER, WORKER_STATE_DIR_ENV, Settings

if TYPE_CHECKING:  # the master imports this module: it must not load grpc or a model runtime
    import threading

    from gunicorn._types import _AddressType
    from gunicorn.config import Config

    from services.inference.grpc_api import DrainableServer
    from services.inference.repository import ModelRepository

REJECT_LINGER = 2.0  # after an early error response, read and discard this long so the client sees it
MARKER_CHECK_SECONDS = 0.5
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


class ConnectionShare:
    """Open connections per worker, in shared memory the master creates before forking.

    A slot is ``(pid, connections)``; the master assigns slots (``pre_fork``) and frees them
    (``child_exit``); each worker writes only its own slot, so no lock is needed.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._map = mmap.mmap(-1, slots * 16)
        self._view = memoryview(self._map).cast("q")

    def claim(self, slot: int, pid: int) -> None:
        """Worker, after the fork: take ``slot``."""
        self._view[2 * slot + 1] = 0
        self._view[2 * slot] = pid

    def release(self, slot: int) -> None:
        """Master, after a worker died: free its slot."""
        self._view[2 * slot] = 0
        self._view[2 * slot + 1] = 0

    def set(self, slot: int, connections: int) -> None:
        """Worker: publish its number of open connections."""
        self._view[2 * slot + 1] = connections

    def below_average(self, slot: int) -> bool:
        """True while this worker holds no more connections than the average of the live workers."""
        view, mine = self._view, self._view[2 * slot + 1]
        live = total = 0
        for i in range(self.slots):
            if view[2 * i]:
                live += 1
                total += view[2 * i + 1]
        return mine * live <= total

    def free_slot(self, used: Container[int]) -> int:
        """Master: the lowest slot no live worker holds."""
        return next(i for i in range(self.slots) if i not in used)


# Stock fails: test_read_once_config_gives_every_setting_as_gunicorn_does_and_looks_each_up_once.
class ReadOnceConfig:
    """A worker's view of gunicorn's ``Config`` that reads each setting once.

    ``Config.__getattr__`` looks a setting up and validates it on every access, and gunicorn reads
    about twenty per request (its parser, ``wsgi.create``, the request hooks): measured, about a
    quarter of its parsing time. In a worker the configuration never changes (a reload starts new workers), so
    the first value read is kept as a plain attribute.
    """

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._cfg, name)
        setattr(self, name, value)  # threads may race to set the same value: harmless
        return value


def raw_error_response(status: int, message: str) -> bytes:
    """A complete HTTP/1.1 error response in the API's JSON shape, closing the connection."""
    body = orjson.dumps({"error": message})
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class BufferedConn(TConn):
    """A connection whose next request is being collected by the event loop."""

    def __init__(
        self,
        cfg: Config,
        sock: socket.socket,
        client: _AddressType,
        server: _AddressType,
        max_body: int,
        rules: ParserRules,
    ) -> None:
        super().__init__(cfg, sock, client, server)
        # Each request gets an in-memory parser, so gthread's TConn.init (its socket parser, TLS,
        # HTTP/2) and its wait for a first byte in the thread (the pending-connection deferral) never run.
        self.initialized = True
        self.data_ready = True
        self.max_body = max_body
        self.rules = rules
        self.buf = bytearray()
        self.framer = RequestFramer(max_body, rules)
        self.deadline = 0.0
        self.lingering = False
        self.continued = False

    def next_request(self) -> None:
        """Forget the request just served; bytes already read for the next one stay in ``buf``."""
        self.framer = RequestFramer(self.max_body, self.rules)
        self.continued = False


class InferenceWorker(ThreadWorker):
    """gthread with buffered reads, balanced accepts, a drain that cuts nothing and a gRPC server."""

    #: Open connections of every worker: made by the master (``on_starting`` in gunicorn.conf.py)
    #: before it forks, so every worker inherits it; None without that hook.
    connection_share: ClassVar[ConnectionShare | None] = None
    #: This worker's row of ``connection_share``, given by the master in ``pre_fork``.
    slot: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = Settings.from_env()
        self.reading: dict[BufferedConn, None] = {}  # insertion-ordered set of connections being read
        self.paused: dict[BufferedConn, None] = {}  # waiting for the body budget
        self.buffered = 0
        self.budget = max(4, self.cfg.threads * 2) * self.settings.max_body_bytes
        self.closing = False  # soft drain: every response says Connection: close
        self.stop_at: float | None = None  # hard stop: set when the listeners closed
        self.grpc_server: DrainableServer | None = None
        self.grpc_stopped: threading.Event | None = None
        self._next_marker_check = 0.0
        self._next_timeout_check = 0.0
        self._stop_due: float | None = None  # when a delayed SIGTERM stops the worker (drain_delay_seconds)

    # --- lifecycle ------------------------------------------------------------------------------------

    @classmethod
    def check_config(cls, cfg: Config, log: Any) -> None:
        """Master, at start: refuse what gthread would do in ``TConn.init``, which this worker never calls.

        TLS and HTTP/2 start there; served without them, a port set up for them would speak clear
        HTTP/1.1 instead, so the server stops with a message (exit 2, refused configuration).
        """
        super().check_config(cfg, log)
        refused = [f"{name} is set" for name in ("certfile", "keyfile") if getattr(cfg, name)]
        if "h2" in cfg.http_protocols:
            refused.append(f"http_protocols={cfg.http_protocols} includes h2")
        if refused:
            log.error(
                "model server configuration error: %s: the worker serves HTTP/1.1 in clear text only "
                "(TLS ends at the mesh or the Gateway; gRPC is its HTTP/2, on GRPC_PORT)",
                "; ".join(refused),
            )
            sys.exit(2)

    def init_process(self) -> None:
        """In the forked worker: settings read once from here on (``ReadOnceConfig``), then gunicorn's start."""
        self.cfg = ReadOnceConfig(self.cfg)  # type: ignore[assignment]  # reads like the Config it wraps
        self.rules = ParserRules(self.cfg)
        super().init_process()

    @property
    def repository(self) -> ModelRepository | None:
        """The Flask app's model repository (None before the app is loaded)."""
        return getattr(self.wsgi, "extensions", {}).get("inference.repository")

    # Stock's loop serves gthread's connection queues: each test named in this class fails on it.
    def run(self) -> None:
        """Start gRPC, then the event loop; drain and stop both on SIGTERM."""
        share, slot = self.connection_share, self.slot
        if share is not None and slot is not None:
            share.claim(slot, os.getpid())
        repository = self.repository
        if self.settings.grpc_port and repository is not None:
            from services.inference import grpc_api

            self.grpc_server = grpc_api.serve(repository, self.settings.host, self.settings.grpc_port, self.cfg.threads)
        wakeup = self.method_queue.fileno()
        if wakeup is None:
            raise RuntimeError("gunicorn closed the method queue before the worker ran")
        self.poller.register(wakeup, selectors.EVENT_READ, self.method_queue.run_callbacks)
        self.set_accept_enabled(True)
        while self.alive:
            self.notify()
            self._balance_accepts()
            self.wait_for_and_dispatch_events(timeout=0.5)
            if not self.is_parent_alive():
                break
            self._housekeeping()
        self._stop_listening()
        limit = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < limit:
            self.notify()
            self.wait_for_and_dispatch_events(timeout=0.2)
            self._housekeeping()
        for conn in list(self.reading) + list(self.paused):
            self._close(conn)
        self.tpool.shutdown(wait=True, cancel_futures=False)
        if self.grpc_stopped is not None:
            self.grpc_stopped.wait(max(0.0, limit - time.monotonic()))
        self.poller.close()
        self.method_queue.close()

    # Stock fails: test_sigterm_turns_readiness_false_during_the_drain_delay[stock] (it just stops).
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: readiness false and the soft drain now; the hard stop after DRAIN_DELAY_SECONDS."""
        self._start_soft_drain("SIGTERM")
        delay = self.settings.drain_delay_seconds
        if delay > 0:
            self.method_queue.defer(self._schedule_stop, time.monotonic() + delay)
        else:
            super().handle_exit(sig, frame)

    def _schedule_stop(self, when: float) -> None:
        self._stop_due = when

    def _start_soft_drain(self, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        repository = self.repository
        if repository is not None and not repository.draining:
            repository.drain()
        self.log.info(
            "%s: readiness is false; draining (delay %.1fs, grace %ss); responses now close their connection",
            why,
            self.settings.drain_delay_seconds,
            self.cfg.graceful_timeout,
        )

    # Stock fails: test_a_connection_made_during_the_drain_is_refused_or_answered_never_cut[stock].
    def _stop_listening(self) -> None:
        """Hard stop: take what waits in the listen queue, close the listeners, stop gRPC with grace."""
        if self.stop_at is not None:
            return
        self._start_soft_drain("stop")
        for listener in self.sockets:
            while self._accept_one(listener):
                pass
        self.set_accept_enabled(False)
        for listener in self.sockets:
            listener.close()
        self.stop_at = time.monotonic()
        linger = self.stop_at + STOP_KEEPALIVE_LINGER
        for conn in self.reading:
            if not conn.buf:
                conn.deadline = min(conn.deadline, linger)
        if self.grpc_server is not None:
            from services.inference import grpc_api

            self.grpc_stopped = grpc_api.stop(self.grpc_server, self.cfg.graceful_timeout)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        due = self._stop_due
        if due is not None and now >= due and self.alive:
            self.alive = False
        if now >= self._next_marker_check and not self.closing:
            self._next_marker_check = now + MARKER_CHECK_SECONDS
            state_dir = os.environ.get(WORKER_STATE_DIR_ENV)
            if state_dir and os.path.exists(os.path.join(state_dir, DRAIN_MARKER)):
                self._start_soft_drain("drain requested (preStop)")
        if now >= self._next_timeout_check:
            self._next_timeout_check = now + 0.1
            for conn in [c for c in (*self.reading, *self.paused) if c.deadline <= now]:
                self._expire(conn)

    # --- accepting ------------------------------------------------------------------------------------

    # Stock fails: test_keepalive_connections_spread_over_both_workers[stock].
    def _balance_accepts(self) -> None:
        share, slot = self.connection_share, self.slot
        fair = share is None or slot is None or self.closing or share.below_average(slot)
        self.set_accept_enabled(self.nr_conns < self.worker_connections and fair)

    def _publish(self) -> None:
        share, slot = self.connection_share, self.slot
        if share is not None and slot is not None:
            share.set(slot, self.nr_conns)

    # Stock fails: test_fifty_slow_clients_do_not_stall_a_normal_one[stock].
    def accept(self, listener: socket.socket) -> None:
        """A new connection: read its first request in the event loop."""
        self._accept_one(listener)
        self._balance_accepts()

    def _accept_one(self, listener: socket.socket) -> bool:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK, errno.EBADF, errno.EINVAL):
                return False
            raise
        self.nr_conns += 1
        self._publish()
        timeout = self.settings.body_timeout
        client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), 0))
        if client_sock.family in (socket.AF_INET, socket.AF_INET6):
            client_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = BufferedConn(
            self.cfg, client_sock, client_addr, listener.getsockname(), self.settings.max_body_bytes, self.rules
        )
        conn.deadline = time.monotonic() + self.settings.header_timeout
        self._watch(conn)
        return True

    # --- reading --------------------------------------------------------------------------------------

    def _watch(self, conn: BufferedConn) -> None:
        self.reading[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _unwatch(self, conn: BufferedConn) -> None:
        self.reading.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass

    def _on_readable(self, conn: BufferedConn, _sock: socket.socket) -> None:
        if conn.lingering:
            self._discard(conn)
            return
        if conn.framer.headers_complete and conn.buf and self.buffered > self.budget:
            self._unwatch(conn)  # this body waits until buffered bodies have been served
            self.paused[conn] = None
            return
        data = self._recv(conn)
        if data is None:
            return
        if not data:
            self._close(conn)  # the client went away (mid-request or idle): nothing to answer
            return
        if not conn.buf and not conn.framer.headers_complete:
            conn.deadline = time.monotonic() + self.settings.header_timeout  # the request has started
        conn.buf += data
        self.buffered += len(data)
        self._frame(conn)

    def _frame(self, conn: BufferedConn) -> None:
        had_headers = conn.framer.headers_complete
        result = conn.framer.feed(conn.buf)
        if isinstance(result, Reject):
            self._reject(conn, result.status, result.message)
            return
        if conn.framer.headers_complete and not had_headers:
            conn.deadline = time.monotonic() + self.settings.body_timeout
        if result is None:
            if conn.framer.expects_continue and not conn.continued:
                conn.continued = True
                if not self._head_accepted(conn):
                    self._dispatch(conn, conn.framer.header_end)  # gunicorn's parser answers its error
                    return
                self._send_now(conn, _CONTINUE)
            return
        self._dispatch(conn, result)

    def _head_accepted(self, conn: BufferedConn) -> bool:
        """Whether gunicorn's parser accepts the request line and headers (as it checks them before
        it would send ``100 Continue`` itself)."""
        try:
            Request(self.cfg, IterUnreader([bytes(conn.buf[: conn.framer.header_end])]), conn.client)
        except ParseException:
            return False
        return True

    def _dispatch(self, conn: BufferedConn, end: int) -> None:
        """Hand the request in ``conn.buf[:end]`` to a thread."""
        with memoryview(conn.buf) as view:
            pieces = [bytes(view[: conn.framer.header_end]), bytes(view[conn.framer.header_end : end])]
        del conn.buf[:end]
        self.buffered -= end
        self._unwatch(conn)
        # The head and the body apart: gunicorn's parser copies everything it holds while it looks for
        # the end of the request line and of the headers, and the body then reaches the app in one piece.
        conn.parser = RequestParser(self.cfg, pieces if pieces[1] else pieces[:1], conn.client)
        conn.sock.setblocking(True)
        self.enqueue_req(conn)

    def _send_now(self, conn: BufferedConn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # small and non-blocking: it fits an empty send buffer
        except OSError:
            pass

    def _reject(self, conn: BufferedConn, status: int, message: str) -> None:
        """Answer an error from the event loop, then read and discard briefly before closing."""
        self.log.info("refused a request from %s with %d: %s", conn.client, status, message)
        self._send_now(conn, raw_error_response(status, message))
        self.buffered -= len(conn.buf)
        conn.buf.clear()
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.lingering = True
        conn.deadline = time.monotonic() + REJECT_LINGER

    @staticmethod
    def _recv(conn: BufferedConn) -> bytes | None:
        """What the socket has now: None when it has nothing yet, b"" when the peer closed or failed."""
        try:
            return conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _discard(self, conn: BufferedConn) -> None:
        if self._recv(conn) == b"":
            self._close(conn)

    def _expire(self, conn: BufferedConn) -> None:
        if conn.lingering or (not conn.buf and not conn.framer.headers_complete):
            self._close(conn)  # idle keep-alive, or done lingering
        elif conn.framer.headers_complete:
            self._reject(
                conn, 408, f"request body not received within REQUEST_BODY_TIMEOUT={self.settings.body_timeout:g}s"
            )
        else:
            self._reject(
                conn,
                408,
                f"request headers not received within REQUEST_HEADER_TIMEOUT={self.settings.header_timeout:g}s",
            )

    def _close(self, conn: BufferedConn) -> None:
        self._unwatch(conn)
        self.paused.pop(conn, None)
        self.buffered -= len(conn.buf)
        conn.buf.clear()
        self.nr_conns -= 1
        self._publish()
        conn.close()
        self._resume_paused()

    def _resume_paused(self) -> None:
        while self.paused and self.buffered <= self.budget:
            conn = next(iter(self.paused))
            del self.paused[conn]
            self._watch(conn)

    # --- after a request ------------------------------------------------------------------------------

    def handle_request(self, req: Request, conn: TConn) -> bool:
        """Run one request in a thread; every response closes its connection once draining."""
        # The event loop already sent "100 Continue"; the flag is private to gunicorn (http/message.py).
        req._expected_100_continue = False  # type: ignore[attr-defined]
        if self.closing:  # the soft drain (gthread itself closes once stopping: not self.alive)
            req.must_close = True
        return super().handle_request(req, conn)

    # Stock fails: test_stock_gthread_answers_a_malformed_unread_body_a_second_time.
    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        """After a response, gthread drains a body the app did not read; should gunicorn's parser
        refuse it there, the connection just closes: one request, one response (never its 400 too)."""
        try:
            return bool(super()._keepalive_after(conn, keepalive))  # type: ignore[misc]  # gthread's, not in its stubs
        except ParseException as exc:
            self.log.info("closing a connection from %s: its request's unread body was malformed: %s", conn.client, exc)
            return False

    def finish_request(self, conn: TConn, fs: Future[bool]) -> None:
        """Event loop, after a request: back to reading the next one (gthread would hand the connection
        to a thread as soon as it turns readable), or close it."""
        assert isinstance(conn, BufferedConn)  # every connection of this worker is one (_accept_one)
        try:
            keep = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keep = False
        self._resume_paused()
        if not keep or conn.sock.fileno() < 0:
            self._close(conn)
            return
        conn.sock.setblocking(False)
        conn.next_request()
        now = time.monotonic()
        conn.deadline = now + (self.settings.header_timeout if conn.buf else self.cfg.keepalive)
        if self.stop_at is not None and not conn.buf:
            conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        self._watch(conn)
        if conn.buf:
            self._frame(conn)  # a pipelined request already arrived
