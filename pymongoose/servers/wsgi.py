"""Serve a WSGI application (PEP 3333: Flask, Django, Bottle...) with Mongoose.

    from pymongoose.wsgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")            # until Ctrl-C or SIGTERM

or, with more control::

    server = WSGIServer(app, workers=8)             # 8 threads run the application
    server.listen("http://0.0.0.0:8000")
    server.run()

From the command line: ``python -m pymongoose --wsgi myapp:app --listen URL``.

How it works: Mongoose parses requests on the loop thread (screened in C as RFC
9112 asks), which builds each request's environ (:mod:`.wsgi_environ`) and hands it
to a pool of worker threads (a body over ``STREAM_BODY_OVER`` with a Content-Length
is read by the application as it arrives; others are buffered, up to
``max_body``); applications block, the loop goes on serving other connections.
``start_response`` checks the status and headers at once (:mod:`.writer`). What a
worker produces comes back to the loop with ``call_soon_threadsafe``, which writes
it through the checked writer: a response whose body is a list, or whose first
piece is the whole Content-Length the application declared (Flask's, Django's),
leaves as one write; any other iterable is streamed as it is produced, chunked
(under HTTP/1.0, ended by the close), the worker waiting whenever more than
``high_water`` bytes are queued for a slow client. A client that goes away stops
its worker's iteration (the result's ``close()`` is called, always).
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import stat
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .._core import poll_until_signalled
from ..connection import Connection
from ..errors import InvalidResponseError, MongooseError
from ..events import MG_EV_CLOSE, MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_READ, MG_EV_WRITE
from ..manager import Manager
from ..messages import HttpMessage
from ..tls import TlsOpts
from . import intake, writer
from .accesslog import log_access, wsgi_access
from .config import (
    DEFAULT_GRACE,
    DEFAULT_HIGH_WATER,
    DEFAULT_MAX_BODY,
    STREAM_BODY_OVER,
    ServerConfig,
)
from .listen import BETWEEN_WAIT, banner, open_listener, unfinished
from .metrics import Region
from .proxy import DEFAULT_FORWARDED_ALLOW_IPS
from .wsgi_environ import BodyStream, FileWrapper, build_environ

__all__ = ["DEFAULT_HIGH_WATER", "STREAM_BODY_OVER", "FileWrapper", "WSGIServer", "serve"]

logger = logging.getLogger("pymongoose.wsgi")

WSGIApp = Callable[..., Iterable[bytes]]
StartResponse = Callable[..., Callable[[bytes], None]]

# The events _on_event handles: the others, above all MG_EV_POLL (every connection,
# every iteration, and a worker's reply wakes an iteration), stay in C.
_HTTP_EVENTS = (1 << MG_EV_HTTP_HDRS | 1 << MG_EV_HTTP_MSG | 1 << MG_EV_READ | 1 << MG_EV_WRITE
                | 1 << MG_EV_CLOSE)

# Hop-by-hop fields and framing are the server's: an application's are dropped
# (PEP 3333), and the server frames the body itself.
_SERVER_FIELDS = frozenset({"content-length", "transfer-encoding", "connection"})


class _Exchange:
    """One request in flight: shared by the loop thread and the worker running it."""

    __slots__ = ("conn", "closed", "queued", "written", "wakeup", "http10", "finished", "started")

    def __init__(self, conn: Connection, http10: bool, started: float) -> None:
        self.conn = conn
        self.closed = False     # the client went away: stop producing
        self.queued = 0         # body bytes handed to the loop for this response...
        self.written = 0        # ...and bytes Mongoose has written since
        self.wakeup = threading.Condition()
        self.http10 = http10    # no chunked encoding: the body ends with the connection
        self.finished = False   # the whole response is queued (set on the loop thread)
        self.started = started  # perf_counter() at the request, for the access log (else 0)


def _parse_status(status: Any) -> Tuple[int, bytes]:
    """PEP 3333's status, ``"200 OK"``, as a code and a reason (checked in C).

    >>> _parse_status("404 Not Found")
    (404, b'Not Found')
    >>> _parse_status("20 OK")
    Traceback (most recent call last):
    pymongoose.errors.InvalidResponseError: start_response: invalid status '20 OK' (want "NNN Reason")
    """
    if not isinstance(status, str):
        raise TypeError(f"start_response: status must be a str, not {type(status).__name__}")
    return _parse_status_text(status)


@functools.lru_cache(maxsize=64)  # an application says "200 OK" and a few others; it, not the client, chooses
def _parse_status_text(status: str) -> Tuple[int, bytes]:
    code, space, reason = status[:3], status[3:4], status[4:]
    if not (code.isdigit() and code.isascii() and space in ("", " ")):
        raise InvalidResponseError(f"start_response: invalid status {status!r} (want \"NNN Reason\")")
    try:
        return int(code), reason.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidResponseError(f"start_response: the reason in {status!r} is not latin-1") from None


def _pack(headers: Any) -> Tuple[bytes, int, Optional[int]]:
    """The application's headers, less those the server owns, for the C writer;
    and the body length the application declared (Content-Length), if any.

    >>> _pack([("Content-Type", "text/plain"), ("Content-Length", "5")])
    (b'Content-Type\\x00text/plain', 1, 5)
    """
    if not isinstance(headers, list):
        raise TypeError(f"start_response: headers must be a list, not {type(headers).__name__}")
    kept = []
    declared = None
    for pair in headers:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                and isinstance(pair[1], str)):
            raise TypeError(f"start_response: each header must be a (str, str) tuple, not {pair!r}")
        name = pair[0].lower()
        if name not in _SERVER_FIELDS:
            kept.append(pair)
        elif name == "content-length" and pair[1].isdigit() and pair[1].isascii():
            declared = int(pair[1])
    kv, pairs = writer.pack_headers(kept)
    return kv, pairs, declared


class WSGIServer:
    """A WSGI server: Mongoose for the I/O, ``workers`` threads for the application.

    ``error_handler`` is the Manager's (called with exceptions from the server's
    own handlers; the application's are logged and answered 500).
    ``stream_timeout``: how long a streamed response may wait for a slow client
    before it is dropped. ``root_path``: the prefix a proxy mounts the application
    under (``/app``): ``SCRIPT_NAME``, taken off ``PATH_INFO``. The options shared
    with :class:`~pymongoose.asgi.ASGIServer` (``max_body``, ``high_water``, ``max_head``, ``max_target``,
    ``header_read_timeout``, ``timeout_keep_alive``, ``access_log``,
    ``poll_interval``, ``proxy_headers``, ``forwarded_allow_ips``, ``limit_concurrency``,
    ``access_log_format``) are described by
    :class:`~pymongoose.servers.config.ServerConfig`.

    >>> server = WSGIServer(app, workers=8, timeout_keep_alive=5)  # doctest: +SKIP
    >>> server.listen("http://0.0.0.0:8000")                       # doctest: +SKIP
    >>> server.run()                                               # doctest: +SKIP
    """

    def __init__(self, app: WSGIApp, workers: int = 4, error_handler: Optional[Callable[[BaseException], None]] = None,
                 stream_timeout: float = 30.0, *, max_body: int = DEFAULT_MAX_BODY,
                 high_water: int = DEFAULT_HIGH_WATER, multiprocess: bool = False, max_head: int = 64 * 1024,
                 max_target: int = 8 * 1024, header_read_timeout: Optional[float] = 30.0,
                 timeout_keep_alive: Optional[float] = 5.0, access_log: bool = False,
                 poll_interval: int = 100, proxy_headers: bool = False,
                 forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS, root_path: str = "",
                 limit_concurrency: Optional[int] = None, access_log_format: Optional[str] = None) -> None:
        if not callable(app):
            raise TypeError("app must be a WSGI application (a callable)")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        if not isinstance(root_path, str):
            raise TypeError(f"root_path must be a str, not {type(root_path).__name__}")
        if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
            raise ValueError(f"root_path must start with / and not end with one, like '/app', not {root_path!r}")
        self._config = ServerConfig(max_body=max_body, high_water=high_water, max_head=max_head,
                                    max_target=max_target, header_read_timeout=header_read_timeout,
                                    timeout_keep_alive=timeout_keep_alive, access_log=access_log,
                                    poll_interval=poll_interval, proxy_headers=proxy_headers,
                                    forwarded_allow_ips=forwarded_allow_ips, limit_concurrency=limit_concurrency,
                                    access_log_format=access_log_format)
        self._proxy = self._config.proxy
        self._access_line = self._config.access_line
        self._limit = limit_concurrency
        self._root_path = root_path
        self._app = app
        self._workers = workers
        self._stream_timeout = stream_timeout
        self._high_water = high_water
        self._multiprocess = multiprocess
        # Requests for the worker threads, started on first use. A plain queue costs
        # less per request than an executor's futures, which nobody would read.
        self._requests: "queue.SimpleQueue[Optional[Tuple[Dict[str, Any], _Exchange]]]" = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._manager = Manager(self._on_event, error_handler=error_handler)
        self._exchanges: Dict[int, _Exchange] = {}  # by connection id; the loop thread's
        self._inputs: Dict[int, BodyStream] = {}   # bodies still arriving, by connection id
        self._listeners: List[Connection] = []
        self._in_flight = 0
        self._idle = threading.Condition()
        self._stopping = False
        self.requests_served = 0  # responses completed (approximate: counted on several threads)
        self.metrics: Optional[Region] = None  # where to count for --metrics (:mod:`.metrics`)

    @property
    def manager(self) -> Manager:
        """The Manager underneath (poll it yourself instead of :meth:`run` if you like)."""
        return self._manager

    @property
    def config(self) -> ServerConfig:
        """The options shared with the ASGI server, as given."""
        return self._config

    def listen(self, url: str = "http://127.0.0.1:8000", *, tls: Optional[TlsOpts] = None,
               reuse_port: bool = False, fd: Optional[int] = None, uds: Optional[str] = None,
               backlog: Optional[int] = None) -> Connection:
        """Listen on ``url`` (``https://`` with ``tls``); port 0 picks a free one.
        ``reuse_port``: other processes may listen on the same port; ``fd``: on this
        listening socket instead; ``uds``: on a Unix domain socket at this path;
        ``backlog``: the accept queue's length (see :meth:`Manager.listen`)."""
        listener = open_listener(self._manager, url, self._config, tls, reuse_port, fd, uds, backlog)
        listener._set_mask(_HTTP_EVENTS)  # its connections inherit it
        self._listeners.append(listener)
        return listener

    def run(self, poll_ms: Optional[int] = None, grace: float = DEFAULT_GRACE) -> None:
        """Serve until SIGINT or SIGTERM; then stop accepting, let the requests in
        flight finish (up to ``grace`` seconds) and close. ``poll_ms``: the
        constructor's ``poll_interval`` unless given."""
        try:
            poll_until_signalled(self._manager.poll, poll_ms or self._config.poll_interval,
                                 then=lambda: self.shutdown(grace))
        finally:
            self.close()

    def shutdown(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop accepting connections, then poll until the requests in flight are
        answered and sent, or ``grace`` seconds have passed."""
        self._stopping = True
        for listener in self._listeners:
            listener.close()
        writer.closing(self._mgr())
        began = time.monotonic()
        deadline = began + grace
        while time.monotonic() < deadline:
            busy = self._in_flight or any(c.send_len for c in self._manager.connections if not c.is_listening) \
                or unfinished(self._manager, time.monotonic() < began + BETWEEN_WAIT)
            if not busy:
                break
            self._manager.poll(20)

    stop = shutdown  # the ASGI server's verb

    @property
    def in_flight(self) -> int:
        """Requests the application is handling now."""
        return self._in_flight

    def close(self) -> None:
        """Close every connection and the manager; workers still running finish alone."""
        for exchange in self._exchanges.values():
            self._mark_closed(exchange)
        for _ in self._threads:
            self._requests.put(None)  # each worker ends when it takes one
        self._manager.close()

    # ---- the loop thread ------------------------------------------------------------

    def _on_event(self, conn: Connection, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            self._start(conn, data)
        elif event == MG_EV_READ:
            stream = self._inputs.get(conn.id)
            if stream is not None:
                self._feed(conn, stream, intake.pull(conn, stream.remaining))
        elif event == MG_EV_HTTP_HDRS:
            if conn.id not in self._inputs:
                self._maybe_stream(conn, data)
        elif event == MG_EV_WRITE:
            exchange = self._exchanges.get(conn.id)
            if exchange is not None:
                with exchange.wakeup:
                    exchange.written += data
                    exchange.wakeup.notify()
        elif event == MG_EV_CLOSE:
            exchange = self._exchanges.pop(conn.id, None)
            if exchange is not None:
                self._mark_closed(exchange)
            stream = self._inputs.pop(conn.id, None)
            if stream is not None:
                stream.abort()

    @staticmethod
    def _mark_closed(exchange: _Exchange) -> None:
        with exchange.wakeup:
            exchange.closed = True
            exchange.wakeup.notify()

    def _maybe_stream(self, conn: Connection, message: HttpMessage) -> None:
        """A large body with a Content-Length: run the application now and let it
        read the body as it arrives (see intake.py)."""
        length = intake.streamed_length(conn, message)
        if length is None:
            return
        stream = BodyStream(length, lambda: self._post(intake.resume, conn))
        environ = build_environ(conn, message, stream, self._workers > 1, self._multiprocess, self._proxy,
                                self._root_path)
        first = intake.take_over(conn, message, length)
        self._inputs[conn.id] = stream
        self._feed(conn, stream, first)
        self._begin(conn, message, environ)

    def _feed(self, conn: Connection, stream: BodyStream, data: bytes) -> None:
        if stream.feed(data):
            intake.pause(conn)  # the application reads slower than the client sends
        if stream.remaining <= 0:
            del self._inputs[conn.id]
            exchange = self._exchanges.get(conn.id)
            intake.hand_back(conn, exchange is not None and not exchange.finished)

    def _start(self, conn: Connection, message: HttpMessage) -> None:
        environ = build_environ(conn, message, None, self._workers > 1, self._multiprocess, self._proxy,
                                self._root_path)
        self._begin(conn, message, environ)

    def _begin(self, conn: Connection, message: HttpMessage, environ: Dict[str, Any]) -> None:
        if self._limit is not None and self._in_flight >= self._limit:
            writer.busy(self._mgr(), conn.id, message.proto.upper() == "HTTP/1.0")
            return
        exchange = _Exchange(conn, message.proto.upper() == "HTTP/1.0",
                             time.perf_counter() if self._config.access_log or self.metrics else 0.0)
        self._exchanges[conn.id] = exchange
        with self._idle:
            self._in_flight += 1
        if len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name=f"pymongoose-wsgi-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._requests.put((environ, exchange))

    # ---- a worker thread ------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            self._serve(*request)

    def _serve(self, environ: Dict[str, Any], exchange: _Exchange) -> None:
        try:
            _Response(self, environ, exchange).run()
        except BaseException:  # a worker must never die silently
            logger.exception("WSGI worker failed")
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _post(self, function: Callable[..., Any], *args: Any) -> None:
        try:
            self._manager.call_soon_threadsafe(function, *args)
        except MongooseError:  # the manager is closed: nobody to send to
            pass

    def _mgr(self) -> Any:
        """The C manager, or None once closed (for calls made on the loop thread)."""
        return self._manager._ptr


class _Response:
    """Runs the application for one request, on a worker thread, and hands what it
    produces to the loop thread, which writes it through :mod:`.writer`."""

    def __init__(self, server: WSGIServer, environ: Dict[str, Any], exchange: _Exchange) -> None:
        self.server = server
        self.environ = environ
        self.exchange = exchange
        self.status: Optional[int] = None
        self.reason = b""
        self.kv, self.pairs = b"", 0
        self.declared: Optional[int] = None  # the application's Content-Length
        self.head_sent = False           # the head has been handed to the loop
        self.framing = writer.NOT_STARTED  # as the loop thread's writer.start chose
        self.head_only = environ["REQUEST_METHOD"] == "HEAD"

    def start_response(self, status: str, headers: List[Tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:  # too late to change the response: PEP 3333 says re-raise
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        code, reason = _parse_status(status)
        kv, pairs, declared = _pack(headers)
        writer.check_head(code, reason, kv, pairs)  # the application sees a bad head at once
        self.status, self.reason, self.kv, self.pairs, self.declared = code, reason, kv, pairs, declared
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: streams what it is given."""
        if self.status is None:
            raise AssertionError("write() before start_response()")
        self._stream(data)

    def run(self) -> None:
        result = None
        try:
            result = self.server._app(self.environ, self.start_response)
            if isinstance(result, (list, tuple)) and not self.head_sent:
                self._reply_whole(b"".join(result))
                return
            if isinstance(result, FileWrapper) and not self.head_sent and self._send_file(result):
                result = None  # the loop closes it, after its last block
                return
            pieces = iter(result)
            for piece in pieces:
                if self.exchange.closed:
                    return
                if piece:
                    if not self.head_sent and type(piece) is bytes and len(piece) == self.declared:
                        self._reply_whole(piece)  # the whole body at once (Flask's, Django's)
                        self._expect_end(pieces)
                        return
                    self._stream(piece)
            self._finish()
        except Exception as exc:  # the application's: answered 500, or the connection closed
            logger.error("exception in WSGI application for %s %s", self.environ["REQUEST_METHOD"],
                         self.environ["PATH_INFO"], exc_info=exc)
            head_sent, self.head_sent = self.head_sent, True
            if not head_sent:  # else the loop thread may still be writing the head: leave it be
                self.status = 500
            self.server._post(self._fail, head_sent)
        finally:
            stream = self.environ["wsgi.input"]
            if isinstance(stream, BodyStream):
                stream.abandon()
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("close() of the WSGI application's result failed")

    def _expect_end(self, pieces: Iterable[bytes]) -> None:
        """The body the application declared has been sent whole: what it yields
        after that is dropped, as Content-Length said the response had ended."""
        for piece in pieces:
            if piece:
                logger.error("WSGI application for %s %s yielded more than its Content-Length; the rest is dropped",
                             self.environ["REQUEST_METHOD"], self.environ["PATH_INFO"])
                return

    # -- handing the response over (on the worker)

    def _require_status(self) -> None:
        if self.status is None:
            raise AssertionError("the application returned without calling start_response")

    def _reply_whole(self, body: bytes) -> None:
        self._require_status()
        self.head_sent = True
        self._hand_over(len(body), self._send_head, body, False)

    def _stream(self, piece: bytes) -> None:
        if not isinstance(piece, bytes):
            raise TypeError(f"the WSGI application yielded {type(piece).__name__}, not bytes")
        if not self.head_sent:
            self.head_sent = True
            self._hand_over(0, self._send_head, b"", True)
        self._wait_for_room()
        self._hand_over(len(piece), self._send_piece, piece, True)

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Answer a FileWrapper over a regular file in blocks read by C straight
        into the send buffer; False (iterate it instead) for anything else, and
        under HTTP/1.0 (no chunks)."""
        if self.exchange.http10:
            return False
        try:
            fd = wrapper.filelike.fileno()
            info = os.fstat(fd)
            offset = wrapper.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        self._require_status()
        self.head_sent = True
        self._hand_over(0, self._send_head, b"", True)
        while offset < info.st_size and not self.exchange.closed:
            size = min(wrapper.blksize, info.st_size - offset)
            self._wait_for_room()
            self._hand_over(size, self._send_file_block, fd, offset, size)
            offset += size
        self._hand_over(0, self._send_piece, b"", False)
        self.server._post(self._close_result, wrapper)
        return True

    def _finish(self) -> None:
        if not self.head_sent:
            self._reply_whole(b"")
        else:
            self._hand_over(0, self._send_piece, b"", False)

    def _hand_over(self, size: int, function: Callable[..., None], *args: Any) -> None:
        if not self.head_only:  # the answer to HEAD drops its body: it never waits to leave
            self.exchange.queued += size
        self.server._post(function, *args)

    def _wait_for_room(self) -> None:
        exchange, high_water = self.exchange, self.server._high_water
        deadline = time.monotonic() + self.server._stream_timeout
        with exchange.wakeup:
            while exchange.queued - exchange.written > high_water and not exchange.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    logger.warning("client too slow: stopped streaming after %.0f s", self.server._stream_timeout)
                    exchange.closed = True
                    self.server._post(self._fail, True)
                    break
                exchange.wakeup.wait(left)

    # -- on the loop thread: every byte through the writer

    def _send_head(self, body: bytes, more: bool) -> None:
        assert self.status is not None
        exchange = self.exchange
        framing = writer.start(self.server._mgr(), exchange.conn.id, self.status, self.reason, self.kv, self.pairs,
                               body, more, exchange.http10)
        if framing == writer.REFUSED:  # checked in start_response: cannot happen, but never send it
            logger.error("WSGI response head refused: %d %r", self.status, self.reason)
            self.framing = writer.NOT_STARTED
            self._fail(False)
            return
        self.framing = framing
        if framing == writer.COMPLETE:
            self._completed()

    def _send_piece(self, piece: bytes, more: bool) -> None:
        if self.framing < 0 or self.exchange.conn.is_closed:
            return
        if writer.send_body(self.server._mgr(), self.exchange.conn.id, self.framing, piece, more) >= 0 and not more:
            self._completed()

    def _send_file_block(self, fd: int, offset: int, size: int) -> None:
        conn = self.exchange.conn
        if self.framing == writer.CHUNKED and not conn.is_closed:
            try:
                conn.http_chunk_file(fd, offset, size)
            except OSError as error:
                logger.error("wsgi.file_wrapper: %s", error)
                conn.close()

    def _completed(self) -> None:
        exchange = self.exchange
        exchange.finished = True
        server = self.server
        server.requests_served += 1
        if server.metrics is not None:
            server.metrics.request_done(self.status or 0, time.perf_counter() - exchange.started)
        if self.server._config.access_log:
            environ = self.environ
            client = (environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])) if environ["REMOTE_ADDR"] else None
            log_access(wsgi_access, client, environ["REQUEST_METHOD"], environ["RAW_URI"],
                       environ["SERVER_PROTOCOL"][5:], self.status or 0, exchange.queued, exchange.started,
                       self.server._access_line)

    def _fail(self, head_sent: bool) -> None:
        """The error policy (:func:`writer.fail`)."""
        exchange = self.exchange
        if exchange.conn.is_closed or exchange.finished:
            return
        framing = self.framing if head_sent else writer.NOT_STARTED
        writer.fail(self.server._mgr(), exchange.conn.id, framing, exchange.http10)
        if framing == writer.NOT_STARTED:
            self._completed()

    @staticmethod
    def _close_result(result: Any) -> None:
        try:
            result.close()
        except Exception:
            logger.exception("close() of the WSGI application's result failed")


def serve(app: WSGIApp, url: str = "http://127.0.0.1:8000", workers: int = 4,
          stream_timeout: float = 30.0, **options: Any) -> None:
    """Serve ``app`` on ``url`` until Ctrl-C or SIGTERM (see :class:`WSGIServer`)."""
    server = WSGIServer(app, workers=workers, stream_timeout=stream_timeout, **options)
    listener = server.listen(url)
    print(banner("pymongoose WSGI server", url, listener, f"{workers} threads"), flush=True)
    server.run()
