"""Serve a WSGI application (PEP 3333: Flask, Django, Bottle...) with Mongoose.

    from pymongoose.wsgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")            # until Ctrl-C or SIGTERM

or, with more control::

    server = WSGIServer(app, workers=8)             # 8 threads run the application
    server.listen("http://0.0.0.0:8000")
    server.run()

From the command line: ``python -m pymongoose --wsgi myapp:app --listen URL``.

How it works: Mongoose parses requests on the loop thread, which builds each
request's environ and hands it to a pool of worker threads (a body over
``STREAM_BODY_OVER`` with a Content-Length is read by the application as it
arrives; others are buffered, up to ``max_body``); applications block, the loop goes on serving other connections.
What a worker produces comes back to the loop with ``call_soon_threadsafe``: a
response whose body is a list (the usual case) leaves as one ``reply``; any other
iterable is streamed as it is produced, chunked, the worker waiting whenever more
than ``high_water`` bytes are queued for a slow client. A client that goes away
stops its worker's iteration (the result's ``close()`` is called, always).
"""

from __future__ import annotations

import io
import logging
import os
import queue
import stat
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from ._binding import lib
from ._core import poll_until_signalled
from .connection import Connection
from .errors import MongooseError
from .events import MG_EV_CLOSE, MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_READ, MG_EV_WRITE
from .manager import Manager
from .messages import HttpMessage
from .tls import TlsOpts

logger = logging.getLogger("pymongoose.wsgi")

WSGIApp = Callable[..., Iterable[bytes]]
StartResponse = Callable[..., Callable[[bytes], None]]

# A worker streaming a response waits while more than this is queued for its client.
DEFAULT_HIGH_WATER = 1024 * 1024
# A request body larger than this reaches the application as it arrives: wsgi.input
# reads it from the network (reading pauses while 4 MiB wait unread). Smaller
# bodies, and chunked ones, are buffered whole before the application runs.
STREAM_BODY_OVER = 1024 * 1024
_INPUT_HIGH, _INPUT_LOW = 4 * 1024 * 1024, 1024 * 1024


class _BodyStream:
    """``wsgi.input`` for a body that is still arriving: the loop thread feeds it,
    the application's thread reads it (blocking until bytes or the end come)."""

    def __init__(self, length: int, resume: Callable[[], None]) -> None:
        self.remaining = length       # bytes the loop has yet to feed
        self._buffer = bytearray()
        self._done = False            # all fed, or the client left
        self._abandoned = False       # the application has finished: drop the rest
        self._paused = False          # the loop stopped reading this connection
        self._resume = resume         # asks the loop to read again
        self._ready = threading.Condition()

    # -- the loop thread

    def feed(self, data: bytes) -> bool:
        """Add what arrived; True if reading should pause (too much unread)."""
        with self._ready:
            self.remaining -= len(data)
            if self._abandoned:
                return False
            self._buffer += data
            self._done = self._done or self.remaining <= 0
            self._ready.notify_all()
            self._paused = len(self._buffer) > _INPUT_HIGH and not self._done
            return self._paused

    def abort(self) -> None:
        with self._ready:
            self._done = True
            self._ready.notify_all()

    # -- the application's thread, once it has finished

    def abandon(self) -> None:
        """What the application did not read is dropped as it arrives (the client
        may still be sending it: the connection must read on to reach the next
        request)."""
        with self._ready:
            self._abandoned = True
            self._buffer.clear()
            if self._paused:
                self._paused = False
                self._resume()

    # -- the application's thread (PEP 3333's input stream)

    def _take(self, size: int, until_newline: bool = False) -> bytes:
        with self._ready:
            while True:
                end = len(self._buffer) if size < 0 else min(size, len(self._buffer))
                if until_newline:
                    newline = self._buffer.find(b"\n", 0, end if size >= 0 else len(self._buffer))
                    if newline >= 0:
                        end = newline + 1
                    elif not self._done and (size < 0 or len(self._buffer) < size):
                        self._ready.wait()
                        continue
                elif not self._done and (size < 0 or len(self._buffer) < size):
                    self._ready.wait()
                    continue
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                if self._paused and len(self._buffer) < _INPUT_LOW:
                    self._paused = False
                    self._resume()
                return data

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._take(-1 if size is None else size)

    def readline(self, size: Optional[int] = -1) -> bytes:
        return self._take(-1 if size is None else size, until_newline=True)

    def readlines(self, hint: int = -1) -> List[bytes]:
        lines: List[bytes] = []
        total = 0
        while hint < 0 or total < hint:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class FileWrapper:
    """``environ["wsgi.file_wrapper"]`` (PEP 3333). A regular file is sent in
    ``blksize`` blocks read by C straight into the send buffer; anything else with
    a ``read()`` is iterated.

    >>> import io
    >>> list(FileWrapper(io.BytesIO(b"abc"), blksize=2))
    [b'ab', b'c']
    """

    def __init__(self, filelike: Any, blksize: int = 256 * 1024) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if not data:
            raise StopIteration
        return data if isinstance(data, bytes) else bytes(data, "latin-1")

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _ErrorStream:
    """``environ["wsgi.errors"]``: what the application writes goes to the log."""

    def write(self, text: str) -> None:
        if text.strip():
            logger.error("%s", text.rstrip())

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


_ERRORS = _ErrorStream()


class _Exchange:
    """One request in flight: shared by the loop thread and the worker running it."""

    __slots__ = ("conn", "closed", "queued", "written", "wakeup", "http10", "finished")

    def __init__(self, conn: Connection, http10: bool) -> None:
        self.conn = conn
        self.closed = False     # the client went away: stop producing
        self.queued = 0         # bytes handed to the loop for this response...
        self.written = 0        # ...and bytes Mongoose has written since
        self.wakeup = threading.Condition()
        self.http10 = http10    # no chunked encoding: the body ends with the connection
        self.finished = False   # the whole response is queued (set on the loop thread)


def _status_code(status: str) -> int:
    try:
        code = int(status.split(" ", 1)[0])
    except ValueError:
        code = 0
    if not 100 <= code <= 999:
        raise ValueError(f"start_response: invalid status {status!r}")
    return code


def _check_headers(headers: List[Tuple[str, str]]) -> None:
    if not isinstance(headers, list):
        raise TypeError(f"start_response: headers must be a list, not {type(headers).__name__}")
    for pair in headers:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise TypeError(f"start_response: each header must be a (str, str) tuple, not {pair!r}")


class WSGIServer:
    """A WSGI server: Mongoose for the I/O, ``workers`` threads for the application.

    ``max_body`` bounds a request body (413 beyond it); ``high_water`` bounds what a
    streamed response may queue for a slow client. ``error_handler`` is the
    Manager's (called with exceptions from handlers)."""

    def __init__(self, app: WSGIApp, workers: int = 4, error_handler: Optional[Callable[[BaseException], None]] = None,
                 stream_timeout: float = 30.0, *, max_body: int = 64 * 1024 * 1024,
                 high_water: int = DEFAULT_HIGH_WATER, multiprocess: bool = False) -> None:
        if not callable(app):
            raise TypeError("app must be a WSGI application (a callable)")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        self._app = app
        self._workers = workers
        self._stream_timeout = stream_timeout
        self._max_body = max_body
        self._high_water = high_water
        self._multiprocess = multiprocess
        # Requests for the worker threads, started on first use. A plain queue costs
        # less per request than an executor's futures, which nobody would read.
        self._requests: "queue.SimpleQueue[Optional[Tuple[Dict[str, Any], _Exchange]]]" = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._manager = Manager(self._on_event, error_handler=error_handler)
        self._exchanges: Dict[int, _Exchange] = {}  # by connection id; the loop thread's
        self._inputs: Dict[int, _BodyStream] = {}   # bodies still arriving, by connection id
        self._listeners: List[Connection] = []
        self._in_flight = 0
        self._idle = threading.Condition()
        self._stopping = False

    @property
    def manager(self) -> Manager:
        """The Manager underneath (poll it yourself instead of :meth:`run` if you like)."""
        return self._manager

    def listen(self, url: str = "http://127.0.0.1:8000", *, tls: Optional[TlsOpts] = None,
               reuse_port: bool = False) -> Connection:
        """Listen on ``url`` (``https://`` with ``tls``); port 0 picks a free one.
        ``reuse_port``: other processes may listen on the same port (see
        :meth:`Manager.listen`)."""
        listener = self._manager.listen(url, http=True, tls=tls, max_body=self._max_body, reuse_port=reuse_port)
        # Only a body that may be streamed brings MG_EV_HTTP_HDRS into Python.
        listener._call(lib.pm_conn_set_hdrs_over, STREAM_BODY_OVER)
        self._listeners.append(listener)
        return listener

    def run(self, poll_ms: int = 100, grace: float = 10.0) -> None:
        """Serve until SIGINT or SIGTERM; then stop accepting, let the requests in
        flight finish (up to ``grace`` seconds) and close."""
        try:
            poll_until_signalled(self._manager.poll, poll_ms)
            self.shutdown(grace)
        finally:
            self.close()

    def shutdown(self, grace: float = 10.0) -> None:
        """Stop accepting connections, then poll until the requests in flight are
        answered and sent, or ``grace`` seconds have passed."""
        self._stopping = True
        for listener in self._listeners:
            listener.close()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = self._in_flight or any(c.send_len for c in self._manager.connections if not c.is_listening)
            if not busy:
                break
            self._manager.poll(20)

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
                self._feed(conn, stream)
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
        read the body as it arrives (the handler takes the body over from Mongoose
        by consuming the buffer; pm_http_resume hands the connection back)."""
        length = message.header("Content-Length")
        if (length is None or not length.isdigit() or int(length) <= STREAM_BODY_OVER
                or message.header("Transfer-Encoding") is not None):
            return
        head = message.head_bytes
        if conn.recv_data(len(head)) != head:
            return  # not at the start of the buffer (pipelined): buffered as usual
        stream = _BodyStream(int(length), lambda: self._post(self._resume_reading, conn))
        environ = self._environ(conn, message, stream)
        first = conn.recv_data(len(head) + int(length))[len(head):]
        conn.consume(len(head) + len(first))  # Mongoose now leaves the body to us
        self._inputs[conn.id] = stream
        self._feed_bytes(conn, stream, first)
        self._begin(conn, message, environ)

    def _feed(self, conn: Connection, stream: _BodyStream) -> None:
        data = conn.recv_data(stream.remaining)
        conn.consume(len(data))
        self._feed_bytes(conn, stream, data)

    def _feed_bytes(self, conn: Connection, stream: _BodyStream, data: bytes) -> None:
        if stream.feed(data):
            conn.is_full = True  # the application reads slower than the client sends
        if stream.remaining <= 0:
            del self._inputs[conn.id]
            exchange = self._exchanges.get(conn.id)
            # The next request is Mongoose's again, once this response is complete.
            conn._call(lib.pm_http_resume, exchange is not None and not exchange.finished)

    @staticmethod
    def _resume_reading(conn: Connection) -> None:
        if not conn.is_closed:
            conn.is_full = False

    def _start(self, conn: Connection, message: HttpMessage) -> None:
        self._begin(conn, message, self._environ(conn, message))

    def _begin(self, conn: Connection, message: HttpMessage, environ: Dict[str, Any]) -> None:
        exchange = _Exchange(conn, message.proto.upper() == "HTTP/1.0")
        self._exchanges[conn.id] = exchange
        with self._idle:
            self._in_flight += 1
        if len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name=f"pymongoose-wsgi-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._requests.put((environ, exchange))

    def _environ(self, conn: Connection, message: HttpMessage,
                 stream: Optional[_BodyStream] = None) -> Dict[str, Any]:
        local, remote = conn.local_addr, conn.remote_addr
        body = b"" if stream is not None else message.body_bytes
        environ: Dict[str, Any] = {
            "REQUEST_METHOD": message.method,
            "SCRIPT_NAME": "",
            # PEP 3333: bytes decoded as latin-1, so that the application can recover them.
            "PATH_INFO": unquote(message.uri, encoding="latin-1"),
            "RAW_URI": message.uri + ("?" + message.query if message.query else ""),
            "QUERY_STRING": message.query,
            "SERVER_NAME": local.ip if local is not None else "",
            "SERVER_PORT": str(local.port) if local is not None else "",
            "SERVER_PROTOCOL": message.proto or "HTTP/1.1",
            "REMOTE_ADDR": remote.ip if remote is not None else "",
            "REMOTE_PORT": str(remote.port) if remote is not None else "",
            "CONTENT_LENGTH": str(stream.remaining) if stream is not None else str(len(body)) if body else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if conn.is_tls else "http",
            "wsgi.input": stream if stream is not None else io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": _ERRORS,
            "wsgi.multithread": self._workers > 1,
            "wsgi.multiprocess": self._multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        for name, value in message.headers():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if key == "CONTENT_LENGTH":
                continue  # the body's own length, set above
            key = "HTTP_" + key
            environ[key] = environ[key] + "," + value if key in environ else value
        if "HTTP_HOST" in environ:
            environ["SERVER_NAME"] = urlsplit("//" + environ["HTTP_HOST"]).hostname or environ["SERVER_NAME"]
        return environ

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


class _Response:
    """Runs the application for one request, on a worker thread, and hands what it
    produces to the loop thread."""

    def __init__(self, server: WSGIServer, environ: Dict[str, Any], exchange: _Exchange) -> None:
        self.server = server
        self.environ = environ
        self.exchange = exchange
        self.status: Optional[str] = None
        self.headers: List[Tuple[str, str]] = []
        self.head_sent = False
        self.chunked = False

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
        if not isinstance(status, str):
            raise TypeError(f"start_response: status must be a str, not {type(status).__name__}")
        _status_code(status)
        _check_headers(headers)
        self.status, self.headers = status, headers
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
            for piece in result:
                if self.exchange.closed:
                    return
                if piece:
                    self._stream(piece)
            self._finish()
        except Exception as exc:  # the application's: answered 500
            logger.error("exception in WSGI application for %s %s", self.environ["REQUEST_METHOD"],
                         self.environ["PATH_INFO"], exc_info=exc)
            if not self.head_sent:
                self.status, self.headers = "500 Internal Server Error", [("Content-Type", "text/plain")]
                self._reply_whole(b"Internal Server Error\n")
            else:  # half a response was sent: only closing can tell the client
                self.server._post(self._abort)
        finally:
            stream = self.environ["wsgi.input"]
            if isinstance(stream, _BodyStream):
                stream.abandon()
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("close() of the WSGI application's result failed")

    # -- building the response

    def _head(self, extra: List[Tuple[str, str]]) -> Tuple[int, List[Tuple[str, str]]]:
        assert self.status is not None, "the application returned without calling start_response"
        headers = [(n, v) for n, v in self.headers
                   if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        return _status_code(self.status), headers + extra

    def _reply_whole(self, body: bytes) -> None:
        if self.status is None:
            raise AssertionError("the application returned without calling start_response")
        code, headers = self._head([])
        self.head_sent = True
        self._hand_over(len(body), self._send_reply, code, headers, body)

    def _stream(self, piece: bytes) -> None:
        if not isinstance(piece, bytes):
            raise TypeError(f"the WSGI application yielded {type(piece).__name__}, not bytes")
        if not self.head_sent:
            self.head_sent = True
            if self.exchange.http10:  # no chunked encoding in HTTP/1.0: the close ends the body
                code, headers = self._head([])
                self._hand_over(0, self._send_raw_head, code, headers)
            else:
                self.chunked = True
                code, headers = self._head([("Transfer-Encoding", "chunked")])
                self._hand_over(0, self._send_reply, code, headers, b"")
        self._wait_for_room()
        self._hand_over(len(piece), self._send_piece, piece)

    def _send_file(self, wrapper: FileWrapper) -> bool:
        """Answer a FileWrapper over a regular file in blocks read by C straight
        into the send buffer; False (iterate it instead) for anything else."""
        try:
            fd = wrapper.filelike.fileno()
            info = os.fstat(fd)
            offset = wrapper.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        if self.status is None:
            raise AssertionError("the application returned without calling start_response")
        self.head_sent = self.chunked = True
        code, headers = self._head([("Transfer-Encoding", "chunked")])
        self._hand_over(0, self._send_reply, code, headers, b"")
        while offset < info.st_size and not self.exchange.closed:
            size = min(wrapper.blksize, info.st_size - offset)
            self._wait_for_room()
            self._hand_over(size, self._send_file_block, fd, offset, size)
            offset += size
        self._hand_over(0, self._send_piece, b"")
        self.server._post(self._close_result, wrapper)
        return True

    def _finish(self) -> None:
        if not self.head_sent:
            self._reply_whole(b"")
        elif self.chunked:
            self._hand_over(0, self._send_piece, b"")
        else:
            self.server._post(self._close_after_send)

    def _hand_over(self, size: int, function: Callable[..., None], *args: Any) -> None:
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
                    self.server._post(self._abort)
                    break
                exchange.wakeup.wait(left)

    # -- on the loop thread

    def _send_reply(self, code: int, headers: List[Tuple[str, str]], body: bytes) -> None:
        conn = self.exchange.conn
        self.exchange.finished = not self.chunked
        if not conn.is_closed:
            conn.reply(code, body, headers)

    def _send_raw_head(self, code: int, headers: List[Tuple[str, str]]) -> None:
        conn = self.exchange.conn
        if not conn.is_closed:
            lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
            conn.send(f"HTTP/1.0 {self.status}\r\n{lines}\r\n".encode("latin-1"))

    def _send_piece(self, piece: bytes) -> None:
        conn = self.exchange.conn
        if conn.is_closed:
            return
        if self.chunked:
            self.exchange.finished = not piece
            conn.http_chunk(piece)
        elif self.environ["REQUEST_METHOD"] != "HEAD":
            conn.send(piece)

    def _send_file_block(self, fd: int, offset: int, size: int) -> None:
        conn = self.exchange.conn
        if not conn.is_closed:
            try:
                conn.http_chunk_file(fd, offset, size)
            except OSError as error:
                logger.error("wsgi.file_wrapper: %s", error)
                conn.close()

    @staticmethod
    def _close_result(result: Any) -> None:
        try:
            result.close()
        except Exception:
            logger.exception("close() of the WSGI application's result failed")

    def _close_after_send(self) -> None:
        self.exchange.finished = True
        if not self.exchange.conn.is_closed:
            self.exchange.conn.drain()

    def _abort(self) -> None:
        if not self.exchange.conn.is_closed:
            self.exchange.conn.close()


def serve(app: WSGIApp, url: str = "http://127.0.0.1:8000", workers: int = 4,
          stream_timeout: float = 30.0, **options: Any) -> None:
    """Serve ``app`` on ``url`` until Ctrl-C or SIGTERM (see :class:`WSGIServer`)."""
    server = WSGIServer(app, workers=workers, stream_timeout=stream_timeout, **options)
    listener = server.listen(url)
    address = listener.local_addr
    print(f"pymongoose WSGI server on {url.split('://', 1)[0]}://{address.ip if address else '?'}:"
          f"{address.port if address else '?'}/ ({workers} threads; Ctrl-C to stop)", flush=True)
    server.run()
