"""Serve an ASGI 3 application (Starlette, FastAPI, Quart, Django's ASGI...) with Mongoose.

    from pymongoose.asgi import serve
    from myapp import app

    serve(app, "http://127.0.0.1:8000")        # until Ctrl-C or SIGTERM

or inside your own event loop::

    server = ASGIServer(app)
    await server.start("http://127.0.0.1:8000")
    ...
    await server.stop()

From the command line: ``python -m pymongoose --asgi myapp:app --listen URL``.

How it works: Mongoose runs on the asyncio event loop itself (:class:`~pymongoose.aio.
AsyncManager`: no thread), parses requests and WebSocket frames in C, and each
request becomes one task running the application. What the application sends is
queued in C at once, written at the next turn of the loop. A request body larger
than ``STREAM_BODY_OVER`` (with a Content-Length) reaches the application in pieces
as it arrives; a response body sent in pieces is chunked unless the application
gave its length, and ``send`` waits while more than ``high_water`` bytes are queued
for a slow client. HTTP follows ASGI spec 2.3 (a send after the client left is
dropped; ``receive`` says ``http.disconnect``), WebSocket 2.4 (a send after the
client left raises :class:`ClientDisconnected`, an ``OSError``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import signal
import sys
import threading
from collections import deque
from typing import Any, Awaitable, Callable, Coroutine, Deque, Dict, List, MutableMapping, Optional, Set, Tuple, Union
from urllib.parse import unquote_to_bytes

from ._apps import load_app
from ._binding import ffi, lib
from ._loop import call_on_loop
from ._text import from_mg_str
from .aio import AsyncManager
from .connection import Connection
from .errors import ClientDisconnected, LifespanError, MongooseError
from .events import (
    MG_EV_CLOSE,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WRITE,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_CLOSE,
    WEBSOCKET_OP_TEXT,
)
from .manager import Manager
from .messages import HttpMessage, WsMessage
from .tls import TlsOpts
from .websocket import DEFAULT_MAX_MESSAGE_SIZE, extra_header_lines, message_size_arg

__all__ = ["ASGIServer", "ClientDisconnected", "LifespanError", "serve", "serve_async", "run_loop"]

logger = logging.getLogger("pymongoose.asgi")
access_logger = logging.getLogger("pymongoose.asgi.access")  # one line per response, when asked

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A request body larger than this, with a Content-Length, reaches the application in
# pieces as it arrives (reading pauses while BODY_HIGH bytes wait unread); smaller
# ones, and chunked ones, come whole in the first http.request.
STREAM_BODY_OVER = 1024 * 1024
_BODY_HIGH = 4 * 1024 * 1024
# send() of a streamed body, or of a WebSocket message, waits while more than this
# is queued for the client.
DEFAULT_HIGH_WATER = 1024 * 1024
# Received WebSocket messages the application has not read yet: reading from the
# client pauses beyond this many bytes.
_WS_INBOX_HIGH = 4 * 1024 * 1024
# How long a graceful stop waits for responses in flight, unless told.
DEFAULT_GRACE = 10.0

_HTTP_EVENTS = (1 << MG_EV_HTTP_HDRS | 1 << MG_EV_HTTP_MSG | 1 << MG_EV_WS_MSG | 1 << MG_EV_WS_CTL
                | 1 << MG_EV_CLOSE)
_READ, _WRITE = 1 << MG_EV_READ, 1 << MG_EV_WRITE

_pm_asgi_respond = lib.pm_asgi_respond
_pm_asgi_body = lib.pm_asgi_body
_pm_ws_send = lib.pm_ws_send
_COMPLETE, _NO_BODY = lib.PM_ASGI_COMPLETE, lib.PM_ASGI_NO_BODY

_UPGRADE_WEBSOCKET = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)
_SPEC_HTTP = {"version": "3.0", "spec_version": "2.3"}
_SPEC_WEBSOCKET = {"version": "3.0", "spec_version": "2.4"}


def _asgi_message_error(kind: str, expected: str) -> RuntimeError:
    return RuntimeError(f"ASGI: unexpected message {kind!r}; expected {expected}")


class _Peer:
    """What an ASGI server keeps of a connection: its addresses as the scope gives
    them, and the exchange in progress (``conn.userdata``)."""

    __slots__ = ("client", "server", "schemes", "cycle")

    def __init__(self, conn: Connection) -> None:
        remote, local = conn.remote_addr, conn.local_addr
        self.client = (remote.ip, remote.port) if remote is not None else None
        self.server = (local.ip, local.port) if local is not None else None
        self.schemes = ("https", "wss") if conn.is_tls else ("http", "ws")
        self.cycle: Any = None


class _Signal:
    """Wakes the coroutines of one exchange waiting for the loop side (bytes arrived,
    room to send, the client left): each re-checks what it waits for."""

    __slots__ = ("futures",)

    def __init__(self) -> None:
        self.futures: List[asyncio.Future[None]] = []

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        try:
            await future
        finally:
            if future in self.futures:
                self.futures.remove(future)

    def wake(self) -> None:
        futures, self.futures = self.futures, []
        for future in futures:
            if not future.done():
                future.set_result(None)


class _HttpCycle:
    """One HTTP request and its response: ``receive`` and ``send`` of its task."""

    __slots__ = ("server", "conn", "scope", "body", "stream", "http10", "started", "status", "headers",
                 "framing", "done", "gone", "event", "task")

    def __init__(self, server: "ASGIServer", conn: Connection, scope: Scope, body: Optional[bytes],
                 http10: bool) -> None:
        self.server = server
        self.conn = conn
        self.scope = scope
        self.body = body                  # the whole body, until the first receive()
        self.stream: Optional[_BodyStream] = None  # or the body, still arriving
        self.http10 = http10
        self.started = False              # http.response.start came
        self.status = 0
        self.headers: Any = ()
        self.framing = -1                 # set once the head is queued (lib.PM_ASGI_*)
        self.done = False                 # the whole response is queued
        self.gone = False                 # the client went away
        self.event = _Signal()            # wakes receive() and send() waiting on the loop
        self.task: Optional[asyncio.Task[None]] = None

    async def receive(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        stream = self.stream
        if stream is not None and not self.gone:
            return await stream.take(self)
        while not (self.gone or self.done):
            await self.event.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.done:
                raise _asgi_message_error(kind, "http.response.start" if not self.started else "nothing more")
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if self.gone:
                return  # ASGI 2.3: dropped
            if type(body) is not bytes:
                body = _bytes(body, "body")
            if self.framing < 0:
                self._respond(body, more)
            else:
                self._body(body, more)
            if more and not self.gone and len(body) > 0:
                await self.server._room(self.conn, self)
        elif kind == "http.response.start":
            if self.started:
                raise _asgi_message_error(kind, "http.response.body")
            status = message["status"]
            if type(status) is not int or not 100 <= status <= 999:
                raise ValueError(f"ASGI: status must be an int from 100 to 999, not {status!r}")
            self.status, self.headers, self.started = status, message.get("headers", ()), True
        else:
            raise _asgi_message_error(kind, "http.response.start or http.response.body")

    def _respond(self, body: bytes, more: bool) -> None:
        headers = self.headers
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)  # any iterable of pairs, as ASGI allows
        try:
            kv = b"\0".join([b"\0".join(pair) for pair in headers])
        except TypeError:
            raise TypeError(f"ASGI: headers must be [name, value] pairs of bytes, not {headers!r}") from None
        framing = call_on_loop(self.server._manager, self.server._respond, self.conn.id, self.status,
                                   kv, len(headers), body, more, self.http10)
        if framing == -1:
            raise ValueError(f"ASGI: invalid response headers (a name that is not a token, CR or LF in a "
                             f"value, or not pairs): {headers!r}")
        self.framing = framing
        if framing == -2:
            self.gone = True
        elif framing == _COMPLETE:
            self.finished()

    def _body(self, body: bytes, more: bool) -> None:
        pending = call_on_loop(self.server._manager, self.server._more, self.conn.id, self.framing,
                                   body, more)
        if pending < 0:
            self.gone = True
        elif not more:
            self.finished()

    def finished(self) -> None:
        self.done = True
        self.event.wake()
        stream = self.stream
        if stream is not None:
            stream.abandon()
        if self.server._access_log:
            scope, client = self.scope, self.scope["client"]
            access_logger.info('%s:%s - "%s %s HTTP/%s" %d', client[0] if client else "-", client[1] if client else "-",
                               scope["method"], scope["raw_path"].decode("latin-1")
                               + ("?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""),
                               scope["http_version"], self.status)

    def closed(self) -> None:
        self.gone = True
        self.event.wake()


class _BodyStream:
    """A request body arriving after the application started: the loop side feeds
    it, ``receive`` takes it in pieces."""

    __slots__ = ("remaining", "pieces", "size", "paused", "abandoned")

    def __init__(self, length: int) -> None:
        self.remaining = length     # bytes yet to arrive
        self.pieces: Deque[bytes] = deque()
        self.size = 0               # bytes arrived, not yet taken
        self.paused = False         # reading from the client is paused
        self.abandoned = False      # the response is complete: drop what arrives

    def feed(self, data: bytes) -> bool:
        """Add what arrived; True if reading should pause."""
        self.remaining -= len(data)
        if self.abandoned:
            return False
        self.pieces.append(data)
        self.size += len(data)
        self.paused = self.size > _BODY_HIGH and self.remaining > 0
        return self.paused

    async def take(self, cycle: _HttpCycle) -> Message:
        while not self.pieces and self.remaining > 0 and not cycle.gone:
            await cycle.event.wait()
        if cycle.gone:
            return {"type": "http.disconnect"}
        data = b"".join(self.pieces)
        self.pieces.clear()
        self.size = 0
        if self.paused:
            self.paused = False
            cycle.server._resume_reading(cycle.conn)
        return {"type": "http.request", "body": data, "more_body": self.remaining > 0}

    def abandon(self) -> None:
        self.abandoned = True
        self.pieces.clear()
        self.size = 0


class _WebSocketCycle:
    """One WebSocket, from the upgrade request to its close."""

    __slots__ = ("server", "conn", "scope", "head", "state", "inbox", "sizes", "inbox_size", "paused", "event",
                 "close_code", "close_reason", "sent_close", "task", "http")

    _CONNECTING, _OPEN, _CLOSED, _DENIED = range(4)

    def __init__(self, server: "ASGIServer", conn: Connection, scope: Scope, head: bytes) -> None:
        self.server = server
        self.conn = conn
        self.scope = scope
        self.head = head              # the upgrade request, accepted later
        self.state = self._CONNECTING
        self.inbox: Deque[Message] = deque([{"type": "websocket.connect"}])
        self.sizes: Deque[int] = deque()  # the bytes of each websocket.receive waiting
        self.inbox_size = 0               # their sum
        self.paused = False
        self.event = _Signal()
        self.close_code: Optional[int] = None  # from the client's close frame
        self.close_reason = ""
        self.sent_close = False
        self.task: Optional[asyncio.Task[None]] = None
        self.http: Optional[_HttpCycle] = None  # a denial response (websocket.http.response)

    # -- the loop side

    def on_message(self, message: WsMessage) -> None:
        data = message.data
        if message.flags & 15 == WEBSOCKET_OP_TEXT:
            self.inbox.append({"type": "websocket.receive", "text": data.decode("utf-8", "replace")})
        else:
            self.inbox.append({"type": "websocket.receive", "bytes": data})
        self.sizes.append(len(data))
        self.inbox_size += len(data)
        if self.inbox_size > _WS_INBOX_HIGH and not self.paused:
            self.paused = True
            self.conn.is_full = True
        self.event.wake()

    def on_control(self, message: WsMessage) -> None:
        if message.flags & 15 == WEBSOCKET_OP_CLOSE and self.close_code is None:
            data = message.data
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            self.close_reason = data[2:].decode("utf-8", "replace")

    @property
    def gone(self) -> bool:
        """The connection has closed."""
        return self.state == self._CLOSED

    def closed(self) -> None:
        if self.state != self._CLOSED:
            self.state = self._CLOSED
            self.inbox.append({"type": "websocket.disconnect", "code": self.close_code or 1006,
                               "reason": self.close_reason})
        if self.http is not None:
            self.http.closed()
        self.event.wake()

    # -- the application's side

    async def receive(self) -> Message:
        inbox = self.inbox
        while not inbox:
            if self.state == self._CLOSED or (self.http is not None and self.http.done):
                return {"type": "websocket.disconnect", "code": self.close_code or 1006,
                        "reason": self.close_reason}
            await self.event.wait()
        message = inbox.popleft()
        if message["type"] == "websocket.receive":
            self.inbox_size -= self.sizes.popleft()
            if self.paused and self.inbox_size < _WS_INBOX_HIGH // 4:
                self.paused = False
                self.server._resume_reading(self.conn)
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if kind == "websocket.send":
            if state != self._OPEN:
                if state == self._CLOSED or self.sent_close:
                    raise ClientDisconnected(f"WebSocket connection {self.conn.id} is closed")
                raise _asgi_message_error(kind, "websocket.accept or websocket.close first")
            text = message.get("text")
            if text is not None:
                payload, op = text.encode(), WEBSOCKET_OP_TEXT
            else:
                payload, op = _bytes(message.get("bytes"), "bytes"), WEBSOCKET_OP_BINARY
            pending = call_on_loop(self.server._manager, self.server._ws_send, self.conn.id, payload, op)
            if pending < 0:
                raise ClientDisconnected(f"WebSocket connection {self.conn.id} is closed")
            if pending > self.server._high_water:
                await self.server._room(self.conn, self)
        elif kind == "websocket.accept":
            if state != self._CONNECTING:
                raise _asgi_message_error(kind, "nothing: the WebSocket is already accepted or closed")
            self._accept(message)
        elif kind == "websocket.close":
            if state == self._CONNECTING:  # refused before the handshake: HTTP 403
                await self._deny({"type": "websocket.http.response.start", "status": 403,
                                  "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
                await self._deny({"type": "websocket.http.response.body", "body": b"Forbidden\n"})
            elif state == self._OPEN and not self.sent_close:
                self._close(message.get("code", 1000), message.get("reason") or "")
        elif kind.startswith("websocket.http.response."):
            if state not in (self._CONNECTING, self._DENIED):
                raise _asgi_message_error(kind, "websocket.send or websocket.close: already accepted")
            await self._deny(message)
        else:
            raise _asgi_message_error(kind, "websocket.accept, websocket.send or websocket.close")

    def _accept(self, message: Message) -> None:
        lines = b""
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            lines = extra_header_lines({"Sec-WebSocket-Protocol": subprotocol})
        headers = message.get("headers")
        if headers:
            lines += extra_header_lines([(_text(n), _text(v)) for n, v in headers])  # type: ignore[arg-type]
        accepted = call_on_loop(self.server._manager, self.server._ws_accept, self.conn.id, self.head, lines)
        if accepted == 1:
            self.state = self._OPEN
        elif accepted == 0:
            self.closed()

    def _close(self, code: Any, reason: str) -> None:
        if type(code) is not int or not 1000 <= code <= 4999:
            raise ValueError(f"ASGI: websocket.close code must be an int from 1000 to 4999, not {code!r}")
        # A close frame's payload is at most 125 bytes: the reason is cut to 123,
        # on a character boundary (a cut character would be invalid UTF-8: 1007).
        payload = code.to_bytes(2, "big") + reason.encode()[:123].decode("utf-8", "ignore").encode()
        self.sent_close = True
        if self.close_code is None:  # websocket.disconnect will carry the code sent
            self.close_code, self.close_reason = code, reason
        call_on_loop(self.server._manager, self.server._ws_close, self.conn.id, payload)

    async def _deny(self, message: Message) -> None:
        """An HTTP response instead of the handshake (the websocket.http.response
        extension; also the 403 of a close before accept); the connection closes
        once it is sent."""
        if self.http is None:
            self.state = self._DENIED
            self.http = _HttpCycle(self.server, self.conn, self.scope, b"", False)
        message = dict(message, type=message["type"][len("websocket."):])
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await self.http.send(message)


def _headers(head: bytes, end: int) -> List[Tuple[bytes, bytes]]:
    """The header lines of a request head Mongoose has parsed and accepted (from
    ``end``, the end of the request line), as ASGI wants them: lowercase names, values
    without surrounding whitespace. (A split is several times faster than a regular
    expression here, on both interpreters.)

    >>> _headers(b"GET / HTTP/1.1\\r\\nHost: a\\r\\nX-Y:  b c \\r\\n\\r\\n", 14)
    [(b'host', b'a'), (b'x-y', b'b c')]
    """
    headers: List[Tuple[bytes, bytes]] = []
    lines = head[end + 2:-4]
    if not lines:
        return headers
    for line in lines.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers.append((name.lower(), value.strip(b" \t")))
    return headers


def _bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"ASGI: {what} must be bytes, not {type(value).__name__}")


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class ASGIServer:
    """An ASGI 3 server on the running asyncio loop (see the module).

    ``root_path`` goes into every scope (the prefix a proxy mounts the application
    under). ``lifespan``: ``"auto"`` runs the lifespan protocol if the application
    speaks it, ``"on"`` requires it, ``"off"`` skips it. ``max_body`` bounds a
    request body (413 beyond it); ``max_message_size`` a WebSocket message (close
    1009 beyond it); ``compression`` agrees to permessage-deflate when a client
    offers it; ``high_water`` bounds what a streamed response or a WebSocket may
    queue for a slow client before ``send`` waits. ``error_handler`` is the
    Manager's (exceptions from the server's own handlers, not the application's:
    those are logged and answered 500). ``access_log``: one line per response on
    the logger ``pymongoose.asgi.access``, ``127.0.0.1:51234 - "GET /?q=1 HTTP/1.1" 200``.

    >>> server = ASGIServer(app)                            # doctest: +SKIP
    >>> listener = await server.start("http://127.0.0.1:0")  # doctest: +SKIP
    >>> listener.local_addr.port                            # doctest: +SKIP
    41234
    """

    def __init__(self, app: ASGIApp, error_handler: Optional[Callable[[BaseException], Any]] = None, *,
                 root_path: str = "", lifespan: str = "auto", max_body: int = 64 * 1024 * 1024,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, compression: bool = True,
                 high_water: int = DEFAULT_HIGH_WATER, poll_interval: int = 100, access_log: bool = False) -> None:
        if not callable(app):
            raise TypeError("app must be an ASGI application (an async callable)")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if not isinstance(root_path, str):
            raise TypeError(f"root_path must be a str, not {type(root_path).__name__}")
        self._app = app
        self._root_path = root_path
        self._lifespan_mode = lifespan
        self._max_body = max_body
        self._max_message = message_size_arg(max_message_size)
        self._compression = bool(compression)
        self._high_water = high_water
        self._access_log = access_log
        self._aio = AsyncManager(self._on_event, poll_interval=poll_interval, error_handler=error_handler)
        self._manager: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._start_task: Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"] = _no_loop
        self._listeners: List[Connection] = []
        self._cycles: Set[Any] = set()                 # exchanges whose task runs
        self._state: Dict[str, Any] = {}               # lifespan state, copied into each scope
        self._lifespan: Optional[_Lifespan] = None

    @property
    def manager(self) -> Manager:
        """The Manager underneath (once started)."""
        if self._manager is None:
            raise RuntimeError("ASGIServer is not started")
        return self._manager  # type: ignore[no-any-return]

    @property
    def state(self) -> Dict[str, Any]:
        """The lifespan state: what startup put in ``scope["state"]``."""
        return self._state

    # ---- starting and stopping -----------------------------------------------------

    async def start(self, url: str = "http://127.0.0.1:8000", *, tls: Optional[TlsOpts] = None,
                    reuse_port: bool = False) -> Connection:
        """Run the lifespan startup, then listen on ``url`` (``https://`` with
        ``tls``; port 0 picks a free one). Returns the listener.

        :raises LifespanError: the application's startup failed (nothing listens).
        :raises ListenError: the address cannot be listened on."""
        if self._manager is not None:
            raise RuntimeError("ASGIServer is already started")
        self._loop = asyncio.get_running_loop()
        self._start_task = _task_starter(self._loop)
        if self._lifespan_mode != "off":
            self._lifespan = _Lifespan(self._app, self._state, required=self._lifespan_mode == "on")
            await self._lifespan.startup()
        await self._aio.__aenter__()
        self._manager = self._aio.manager
        try:
            return self.listen(url, tls=tls, reuse_port=reuse_port)
        except BaseException:
            await self.stop(0)
            raise

    def listen(self, url: str, *, tls: Optional[TlsOpts] = None, reuse_port: bool = False) -> Connection:
        """Listen on one more address, once started."""
        manager = self.manager
        listener = manager.listen(url, http=True, tls=tls, max_body=self._max_body, reuse_port=reuse_port)
        listener._set_mask(_HTTP_EVENTS)
        listener._call(lib.pm_conn_set_hdrs_over, STREAM_BODY_OVER)
        self._listeners.append(listener)
        return listener

    async def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop gracefully: stop accepting, close WebSockets (code 1012), let the
        responses in flight finish (``grace`` seconds at most), cancel what is left,
        close every connection, then run the lifespan shutdown. Idempotent."""
        if self._manager is None:
            return
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        for cycle in list(self._cycles):
            if isinstance(cycle, _WebSocketCycle) and cycle.state == cycle._OPEN and not cycle.sent_close:
                try:
                    cycle._close(1012, "server restarting")
                except MongooseError:
                    pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and (self._busy() or self._unsent()):
            await asyncio.sleep(0.01)
        tasks = [cycle.task for cycle in self._cycles if cycle.task is not None and not cycle.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self._aio.close()  # every connection's MG_EV_CLOSE runs now
        self._manager = None
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is not None:
            await lifespan.shutdown()

    def _busy(self) -> bool:
        return any(isinstance(cycle, _HttpCycle) and not (cycle.done or cycle.gone) for cycle in self._cycles)

    def _unsent(self) -> bool:
        return any(conn.send_len for conn in self.manager.connections if not conn.is_listening)

    # ---- the loop side: Mongoose's events ----------------------------------------------

    def _on_event(self, conn: Connection, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            self._request(conn, data)
        elif event == MG_EV_WS_MSG:
            cycle = conn.userdata.cycle
            if cycle is not None:  # None once the application returned
                cycle.on_message(data)
        elif event == MG_EV_WRITE:
            self._written(conn)
        elif event == MG_EV_READ:
            self._feed(conn)
        elif event == MG_EV_HTTP_HDRS:
            self._maybe_stream(conn, data)
        elif event == MG_EV_WS_CTL:
            cycle = conn.userdata.cycle
            if cycle is not None:
                cycle.on_control(data)
        elif event == MG_EV_CLOSE:
            peer = conn.userdata
            if peer is not None and peer.cycle is not None:
                peer.cycle.closed()

    def _request(self, conn: Connection, message: HttpMessage, stream: Optional[_BodyStream] = None) -> None:
        peer = conn.userdata
        if peer is None:
            peer = conn.userdata = _Peer(conn)
        p = message._ptr()  # one validity check for both copies
        head = from_mg_str(p.head)
        end = head.find(b"\r\n")
        parts = head[:end].split()
        if len(parts) == 3:
            method, target, proto = parts
        else:  # a request line Mongoose took but that is not three words
            method, target, proto = (message.method.encode("latin-1"), message.uri.encode("latin-1"),
                                     message.proto.encode("latin-1"))
        raw_path, _, query = target.partition(b"?")
        if raw_path[:1] != b"/" and b"://" in raw_path:  # absolute-form: http://host/path
            raw_path = b"/" + raw_path.split(b"/", 3)[3] if raw_path.count(b"/") >= 3 else b"/"
        path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("utf-8", "replace")
        headers = _headers(head, end)
        http_version = "1.1" if proto == b"HTTP/1.1" else proto[5:].decode("latin-1")
        schemes = peer.schemes
        if b"ebsocket" in head and method == b"GET" and _UPGRADE_WEBSOCKET.search(head):
            self._websocket(conn, peer, head, raw_path, path, query, headers, http_version, schemes[1])
            return
        scope = {
            "type": "http",
            "asgi": _SPEC_HTTP,
            "http_version": http_version,
            "server": peer.server,
            "client": peer.client,
            "scheme": schemes[0],
            "method": method.decode("latin-1"),
            "root_path": self._root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "state": self._state.copy(),
        }
        body = None if stream is not None else from_mg_str(p.body)
        cycle = _HttpCycle(self, conn, scope, body, http_version == "1.0")
        cycle.stream = stream
        peer.cycle = cycle
        self._cycles.add(cycle)
        cycle.task = self._start_task(self._run_http(cycle))

    def _websocket(self, conn: Connection, peer: _Peer, head: bytes, raw_path: bytes, path: str,
                   query: bytes, headers: List[Tuple[bytes, bytes]], http_version: str, scheme: str) -> None:
        subprotocols = [token.strip().decode("latin-1") for name, value in headers
                        if name == b"sec-websocket-protocol" for token in value.split(b",") if token.strip()]
        scope: Scope = {
            "type": "websocket",
            "asgi": _SPEC_WEBSOCKET,
            "http_version": http_version,
            "scheme": scheme,
            "server": peer.server,
            "client": peer.client,
            "root_path": self._root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        cycle = _WebSocketCycle(self, conn, scope, head)
        peer.cycle = cycle
        self._cycles.add(cycle)
        cycle.task = self._start_task(self._run_websocket(cycle))

    def _maybe_stream(self, conn: Connection, message: HttpMessage) -> None:
        """A body over STREAM_BODY_OVER with a Content-Length (C delivers
        MG_EV_HTTP_HDRS for no other): start the application now, and hand it the
        body as it arrives. Consuming the buffer detaches Mongoose's parser until
        pm_http_resume."""
        length = message.header("Content-Length")
        head = message.head_bytes
        if length is None or not length.isdigit() or conn.recv_data(len(head)) != head:
            return  # pipelined behind another request: buffered as usual
        stream = _BodyStream(int(length))
        self._request(conn, message, stream)
        first = conn.recv_data(len(head) + int(length))[len(head):]
        conn.consume(len(head) + len(first))
        conn._set_mask(conn._mask | _READ)
        self._fed(conn, stream, first)

    def _feed(self, conn: Connection) -> None:
        peer = conn.userdata
        cycle = peer.cycle if peer is not None else None
        stream = cycle.stream if isinstance(cycle, _HttpCycle) else None
        if stream is None or stream.remaining <= 0:
            return
        data = conn.recv_data(stream.remaining)
        conn.consume(len(data))
        self._fed(conn, stream, data)

    def _fed(self, conn: Connection, stream: _BodyStream, data: bytes) -> None:
        cycle = conn.userdata.cycle
        if stream.feed(data):
            conn.is_full = True  # the application reads slower than the client sends
        if stream.remaining <= 0:
            conn._set_mask(conn._mask & ~_READ)
            # The next request is Mongoose's again, once this response is complete.
            conn._call(lib.pm_http_resume, not cycle.done)
            if cycle not in self._cycles:  # the application had returned: forget it now
                conn.userdata.cycle = None
        cycle.event.wake()

    def _written(self, conn: Connection) -> None:
        if conn.send_len <= self._high_water // 2:
            conn._set_mask(conn._mask & ~_WRITE)
            peer = conn.userdata
            if peer is not None and peer.cycle is not None:
                peer.cycle.event.wake()

    # ---- the application's side: C calls made owning the loop ------------------------------

    def _mgr(self) -> Any:
        """The C manager, or None once stopped (these calls run owning the loop)."""
        return self._manager._ptr if self._manager is not None else None

    def _respond(self, conn_id: int, status: int, kv: bytes, pairs: int, body: bytes, more: bool,
                 http10: bool) -> int:
        mgr = self._mgr()
        if mgr is None:
            return -2
        return int(_pm_asgi_respond(mgr, conn_id, status, kv, len(kv), pairs, body, len(body), more, http10))

    def _more(self, conn_id: int, framing: int, body: bytes, more: bool) -> int:
        mgr = self._mgr()
        return -1 if mgr is None else int(_pm_asgi_body(mgr, conn_id, framing, body, len(body), more))

    def _ws_send(self, conn_id: int, payload: bytes, op: int) -> int:
        mgr = self._mgr()
        if mgr is None or _pm_ws_send(mgr, conn_id, payload, len(payload), op) <= 0:
            return -1
        c = lib.pm_conn(mgr, conn_id)
        return -1 if c == ffi.NULL else int(c.send.len)

    def _ws_accept(self, conn_id: int, head: bytes, lines: bytes) -> int:
        mgr = self._mgr()
        if mgr is None:
            return 0
        return int(lib.pm_ws_accept(mgr, conn_id, head, len(head), lines, self._max_message, self._compression))

    def _ws_close(self, conn_id: int, payload: bytes) -> None:
        mgr = self._mgr()
        if mgr is not None and _pm_ws_send(mgr, conn_id, payload, len(payload), WEBSOCKET_OP_CLOSE) > 0:
            lib.pm_conn_drain(lib.pm_conn(mgr, conn_id))

    def _close(self, conn_id: int) -> None:
        self._with_conn(conn_id, lib.pm_conn_close)

    def _drain(self, conn_id: int) -> None:
        self._with_conn(conn_id, lib.pm_conn_drain)

    def _with_conn(self, conn_id: int, function: Callable[[Any], Any]) -> None:
        mgr = self._mgr()
        c = lib.pm_conn(mgr, conn_id) if mgr is not None else ffi.NULL
        if c != ffi.NULL:
            function(c)

    async def _room(self, conn: Connection, cycle: Any) -> None:
        """Wait while more than ``high_water`` bytes are queued for ``conn``."""
        while not cycle.gone:
            if conn.send_len <= self._high_water:
                return
            conn._set_mask(conn._mask | _WRITE)  # _written wakes us
            await cycle.event.wait()

    def _resume_reading(self, conn: Connection) -> None:
        if not conn.is_closed:
            conn.is_full = False

    # ---- running the application --------------------------------------------------------

    async def _run_http(self, cycle: _HttpCycle) -> None:
        try:
            await self._app(cycle.scope, cycle.receive, cycle.send)
        except Exception as exc:
            logger.error("Exception in ASGI application (%s %s)", cycle.scope["method"], cycle.scope["path"],
                         exc_info=exc)
            self._fail(cycle)
        except asyncio.CancelledError:
            self._fail(cycle)
            raise
        else:
            if not (cycle.done or cycle.gone):
                logger.error("ASGI application returned without %s the response (%s %s)",
                             "completing" if cycle.framing >= 0 else "sending", cycle.scope["method"],
                             cycle.scope["path"])
                self._fail(cycle)
        finally:
            self._forget(cycle)
            if cycle.stream is not None:
                cycle.stream.abandon()

    def _fail(self, cycle: _HttpCycle) -> None:
        """Answer 500 if no byte of the response left yet; otherwise only closing can
        tell the client."""
        if cycle.done or cycle.gone:
            return
        if cycle.framing < 0:
            cycle.status, cycle.framing = 500, -1
            cycle.headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
            cycle._respond(b"Internal Server Error\n", False)
        else:  # what was produced goes out, without its end: the client sees it cut short
            cycle.gone = True
            call_on_loop(self._manager, self._drain, cycle.conn.id)

    async def _run_websocket(self, cycle: _WebSocketCycle) -> None:
        try:
            await self._app(cycle.scope, cycle.receive, cycle.send)
        except Exception as exc:
            logger.error("Exception in ASGI application (WebSocket %s)", cycle.scope["path"], exc_info=exc)
            self._ws_end(cycle, 1011, 500)
        except asyncio.CancelledError:
            self._ws_end(cycle, 1012, 503)
            raise
        else:
            if cycle.state == cycle._CONNECTING:
                logger.error("ASGI application returned without accepting or closing the WebSocket (%s)",
                             cycle.scope["path"])
            self._ws_end(cycle, 1000, 500)
        finally:
            self._forget(cycle)

    def _forget(self, cycle: Any) -> None:
        """The application is done with this exchange: nothing keeps it any longer
        (kept until the connection's next request, every request's objects would
        outlive a young-generation collection: on PyPy, a tenth of the time)."""
        self._cycles.discard(cycle)
        peer = cycle.conn.userdata
        streaming = isinstance(cycle, _HttpCycle) and cycle.stream is not None and cycle.stream.remaining > 0
        if peer is not None and peer.cycle is cycle and not streaming:  # the rest of a body is still read
            peer.cycle = None

    def _ws_end(self, cycle: _WebSocketCycle, code: int, status: int) -> None:
        if self._manager is None:
            return
        if cycle.state == cycle._OPEN and not cycle.sent_close:
            cycle._close(code, "")
        elif cycle.state == cycle._CONNECTING:
            http = cycle.http = _HttpCycle(self, cycle.conn, cycle.scope, b"", False)
            cycle.state = cycle._DENIED
            http.status, http.started = status, True
            http.headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
            http._respond(b"Internal Server Error\n" if status == 500 else b"Service Unavailable\n", False)
        elif cycle.state == cycle._DENIED and cycle.http is not None and not cycle.http.done:
            call_on_loop(self._manager, self._close, cycle.conn.id)


def _no_loop(coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
    coroutine.close()
    raise RuntimeError("ASGIServer is not started")


def _task_starter(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]:
    """How a request's task starts on ``loop``: eagerly where the interpreter allows.

    An eager task runs its first step at once, inside the event handler that made
    it (with itself as the current task, as any task), instead of one turn of the
    loop later: a response the application makes without waiting for anything is
    then written in the same poll. Python 3.12 has ``eager_start``; before it, the
    pure-Python Task (PyPy's) is started the same way by :class:`_EagerTask`. With
    CPython's C Task before 3.12, and with loops that make their own tasks, a task
    starts as ``create_task`` starts it."""
    if sys.version_info >= (3, 12):
        return lambda coroutine: asyncio.Task(coroutine, loop=loop, eager_start=True)  # type: ignore[call-arg]
    if asyncio.Task is getattr(asyncio.tasks, "_PyTask", None) and hasattr(asyncio.Task, "_Task__step"):
        def start(coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
            if asyncio.current_task(loop) is not None:  # inside a task: a step cannot nest
                return loop.create_task(coroutine)
            return _EagerTask(coroutine, loop)
        return start
    return loop.create_task


class _EagerTask(asyncio.Task):  # type: ignore[type-arg]
    """The pure-Python Task (PyPy), its first step run at once (see _task_starter).
    Its ``__init__`` is the Task's own, less the ``call_soon`` of the first step and
    the registration for ``asyncio.all_tasks()``."""

    def __init__(self, coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
        asyncio.Future.__init__(self, loop=loop)
        self._name = "pymongoose-asgi"
        self._must_cancel = False
        self._fut_waiter = None
        self._coro = coroutine
        self._context = contextvars.copy_context()
        # Not registered with asyncio.all_tasks(): that is a WeakSet, and a weak
        # reference per request costs PyPy's GC 15% of the throughput of a Starlette
        # hello-world. The server keeps its tasks itself (ASGIServer._cycles).
        self._context.run(self._Task__step)  # type: ignore[attr-defined]


class _Lifespan:
    """The lifespan protocol: one task running the application with a lifespan
    scope, told ``startup`` before the server listens and ``shutdown`` after."""

    def __init__(self, app: ASGIApp, state: Dict[str, Any], required: bool) -> None:
        self._app = app
        self._state = state
        self._required = required
        self._inbox: "asyncio.Queue[Message]" = asyncio.Queue()
        self._replies: "asyncio.Queue[Message]" = asyncio.Queue()
        self._task: Optional[asyncio.Task[None]] = None
        self._unsupported = False

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self._state}
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply is None:
            return
        if reply["type"] == "lifespan.startup.failed":
            raise LifespanError(f"ASGI lifespan startup failed: {reply.get('message', '')}")
        if reply["type"] != "lifespan.startup.complete":
            raise LifespanError(f"ASGI lifespan startup: unexpected message {reply['type']!r}")

    async def shutdown(self) -> None:
        if self._unsupported or self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply is not None and reply["type"] == "lifespan.shutdown.failed":
            logger.error("ASGI lifespan shutdown failed: %s", reply.get("message", ""))

    async def _reply(self) -> Optional[Message]:
        """The application's answer, or None if it ended without one."""
        assert self._task is not None
        answer = asyncio.ensure_future(self._replies.get())
        await asyncio.wait([answer, self._task], return_when=asyncio.FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        error = self._task.exception() if not self._task.cancelled() else None
        if error is not None and not self._required:
            self._unsupported = True
            logger.info("ASGI 'lifespan' protocol appears unsupported (%s: %s)", type(error).__name__, error)
            return None
        if error is not None:
            raise LifespanError(f"ASGI lifespan failed: {type(error).__name__}: {error}") from error
        if self._required:
            raise LifespanError("ASGI lifespan: the application returned without answering")
        self._unsupported = True
        return None

    async def _run(self, scope: Scope) -> None:
        async def receive() -> Message:
            return await self._inbox.get()

        async def send(message: Message) -> None:
            await self._replies.put(message)

        await self._app(scope, receive, send)


# ---- running a server ------------------------------------------------------------------


def _load(app: Union[ASGIApp, str]) -> ASGIApp:
    if isinstance(app, str):  # "module:attribute", as on the command line
        return load_app(app)
    return app


async def serve_async(app: Union[ASGIApp, str], url: str = "http://127.0.0.1:8000", *,
                      grace: float = DEFAULT_GRACE, tls: Optional[TlsOpts] = None, reuse_port: bool = False,
                      quiet: bool = False, **options: Any) -> None:
    """Serve ``app`` on the running loop until SIGINT or SIGTERM (or cancellation),
    then stop gracefully."""
    server = ASGIServer(_load(app), **options)
    listener = await server.start(url, tls=tls, reuse_port=reuse_port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stopped.set)
            signals.append(number)
    address = listener.local_addr
    if not quiet and address is not None:
        host = f"[{address.ip}]" if address.is_ipv6 else address.ip
        print(f"pymongoose ASGI server on {url.split('://', 1)[0]}://{host}:{address.port}/ (Ctrl-C to stop)",
              flush=True)
    try:
        await stopped.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
        await server.stop(grace)


def serve(app: Union[ASGIApp, str], url: str = "http://127.0.0.1:8000", *, loop: str = "auto",
          **options: Any) -> None:
    """Serve ``app`` (an ASGI application, or ``"module:attribute"``) on ``url``
    until Ctrl-C or SIGTERM. ``loop``: ``"auto"`` (uvloop if installed),
    ``"asyncio"`` or ``"uvloop"``. Other options: :class:`ASGIServer`'s, and
    ``grace``, ``tls``, ``reuse_port``."""
    run_loop(serve_async(app, url, **options), loop)


def run_loop(main: Awaitable[None], loop: str = "auto") -> None:
    """``asyncio.run(main)`` on the event loop named (see :func:`serve`)."""
    if loop not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"loop must be 'auto', 'asyncio' or 'uvloop', not {loop!r}")
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            if hasattr(uvloop, "run"):
                uvloop.run(main)  # type: ignore[arg-type]
                return
            uvloop.install()
    asyncio.run(main)  # type: ignore[arg-type]
