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
import logging
import re
import signal
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Set, Tuple, Union
from urllib.parse import unquote_to_bytes

from .._apps import load_app
from .._binding import ffi, lib
from .._loop import call_on_loop
from ..aio import AsyncManager
from ..connection import Connection
from ..errors import ClientDisconnected, LifespanError, MongooseError
from ..events import (
    MG_EV_CLOSE,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WRITE,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
)
from ..manager import Manager
from ..messages import HttpMessage
from ..tls import TlsOpts
from ..websocket import DEFAULT_MAX_MESSAGE_SIZE, message_size_arg
from . import intake, writer
from .asgi_http import BodyStream, HttpCycle
from .asgi_websocket import WebSocketCycle
from .config import DEFAULT_GRACE, DEFAULT_HIGH_WATER, DEFAULT_MAX_BODY, STREAM_BODY_OVER, ServerConfig
from .lifespan import Lifespan
from .listen import BETWEEN_WAIT, banner, open_listener, unfinished
from .metrics import Region
from .proxy import DEFAULT_FORWARDED_ALLOW_IPS, ProxyTrust
from .tasks import TaskStarter, no_loop, task_starter

__all__ = ["ASGIServer", "ClientDisconnected", "LifespanError", "serve", "serve_async", "run_loop",
           "DEFAULT_GRACE", "DEFAULT_HIGH_WATER", "STREAM_BODY_OVER"]

logger = logging.getLogger("pymongoose.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_HTTP_EVENTS = (1 << MG_EV_HTTP_HDRS | 1 << MG_EV_HTTP_MSG | 1 << MG_EV_WS_MSG | 1 << MG_EV_WS_CTL
                | 1 << MG_EV_CLOSE)
_READ, _WRITE = 1 << MG_EV_READ, 1 << MG_EV_WRITE

_UPGRADE_WEBSOCKET = re.compile(rb"\r\nupgrade:[ \t]*websocket[ \t]*\r\n", re.IGNORECASE)
_SPEC_HTTP = {"version": "3.0", "spec_version": "2.3"}
_SPEC_WEBSOCKET = {"version": "3.0", "spec_version": "2.4"}
_unpack = ffi.unpack  # bound once: _request copies the head and the body with it


class _Peer:
    """What an ASGI server keeps of a connection: its addresses as the scope gives
    them, and the exchange in progress (``conn.userdata``)."""

    __slots__ = ("client", "server", "schemes", "cycle")

    def __init__(self, conn: Connection) -> None:
        remote, local = conn.remote_addr, conn.local_addr
        # Port 0: a Unix domain socket, which has no address to give (as in uvicorn).
        self.client = (remote.ip, remote.port) if remote is not None and remote.port else None
        self.server = (local.ip, local.port) if local is not None and local.port else None
        self.schemes = _SECURE if conn.is_tls else _PLAIN
        self.cycle: Any = None


_SECURE, _PLAIN = ("https", "wss"), ("http", "ws")


def _keepalive(interval: Optional[float], timeout: Optional[float]) -> Optional[Tuple[float, float]]:
    """(interval, timeout) of the server's WebSocket pings, checked; None: no pings.
    A timeout alone is refused: without an interval no ping is sent."""
    if interval is None:
        if timeout is not None:
            raise ValueError("ws_ping_timeout needs ws_ping_interval")
        return None
    for value, name in ((interval, "ws_ping_interval"), (timeout, "ws_ping_timeout")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"{name} must be a number of seconds above 0, not {value!r}")
    return float(interval), float(timeout if timeout is not None else interval)


def _behind_proxy(proxy: ProxyTrust, peer: Optional[Tuple[str, int]],
                  headers: List[Tuple[bytes, bytes]]) -> Tuple[Optional[Tuple[str, int]], Optional[bool]]:
    """The client and whether it came over HTTPS, as a trusted proxy's headers say."""
    found: Dict[bytes, List[str]] = {}
    for name, value in headers:
        if name in _PROXY_HEADERS:
            found.setdefault(name, []).append(value.decode("latin-1"))
    if not found:
        return peer, None
    forwarded, for_, proto = (",".join(found[name]) if name in found else None for name in _PROXY_HEADERS)
    return proxy.resolve(peer, forwarded, for_, proto)


_PROXY_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto")


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


class ASGIServer:
    """An ASGI 3 server on the running asyncio loop (see the module).

    ``root_path`` goes into every scope (the prefix a proxy mounts the application
    under). ``lifespan``: ``"auto"`` runs the lifespan protocol if the application
    speaks it, ``"on"`` requires it, ``"off"`` skips it. ``max_message_size`` bounds a
    WebSocket message (close 1009 beyond it); ``compression`` agrees to
    permessage-deflate when a client offers it. ``ws_ping_interval``: ping each
    WebSocket client that often (seconds; None: never), closing with 1011 one that
    has not answered within ``ws_ping_timeout`` (the interval unless given).
    ``error_handler`` is the Manager's (exceptions from the server's own handlers,
    not the application's: those are logged and answered 500). ``eager_tasks``: start each request's task at once
    where the interpreter allows (see ``servers/tasks.py``). The options shared with
    :class:`~pymongoose.wsgi.WSGIServer` (``max_body``, ``high_water``, ``max_head``,
    ``max_target``, ``header_read_timeout``, ``timeout_keep_alive``, ``access_log``,
    ``poll_interval``, ``proxy_headers``, ``forwarded_allow_ips``, ``limit_concurrency``,
    ``access_log_format``) are described by
    :class:`~pymongoose.servers.config.ServerConfig`.

    >>> server = ASGIServer(app)                            # doctest: +SKIP
    >>> listener = await server.start("http://127.0.0.1:0")  # doctest: +SKIP
    >>> listener.local_addr.port                            # doctest: +SKIP
    41234
    """

    def __init__(self, app: ASGIApp, error_handler: Optional[Callable[[BaseException], Any]] = None, *,
                 root_path: str = "", lifespan: str = "auto", max_body: int = DEFAULT_MAX_BODY,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, compression: bool = True,
                 high_water: int = DEFAULT_HIGH_WATER, poll_interval: int = 100, access_log: bool = False,
                 max_head: int = 64 * 1024, max_target: int = 8 * 1024,
                 header_read_timeout: Optional[float] = 30.0, timeout_keep_alive: Optional[float] = 5.0,
                 eager_tasks: bool = True, proxy_headers: bool = False,
                 forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS,
                 limit_concurrency: Optional[int] = None, access_log_format: Optional[str] = None,
                 ws_ping_interval: Optional[float] = None, ws_ping_timeout: Optional[float] = None) -> None:
        if not callable(app):
            raise TypeError("app must be an ASGI application (an async callable)")
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if not isinstance(root_path, str):
            raise TypeError(f"root_path must be a str, not {type(root_path).__name__}")
        self._config = ServerConfig(max_body=max_body, high_water=high_water, max_head=max_head,
                                    max_target=max_target, header_read_timeout=header_read_timeout,
                                    timeout_keep_alive=timeout_keep_alive, access_log=access_log,
                                    poll_interval=poll_interval, proxy_headers=proxy_headers,
                                    forwarded_allow_ips=forwarded_allow_ips, limit_concurrency=limit_concurrency,
                                    access_log_format=access_log_format)
        self._proxy = self._config.proxy
        self._access_line = self._config.access_line
        self._limit = limit_concurrency
        self._app = app
        self._root_path = root_path
        self._lifespan_mode = lifespan
        self._max_message = message_size_arg(max_message_size)
        self._ping = _keepalive(ws_ping_interval, ws_ping_timeout)
        self._compression = bool(compression)
        self._high_water = high_water
        self._access_log = access_log
        self.requests_served = 0  # HTTP responses completed
        self.metrics: Optional[Region] = None  # where to count for --metrics (:mod:`.metrics`)
        self._eager = eager_tasks
        self._aio = AsyncManager(self._on_event, poll_interval=poll_interval, error_handler=error_handler)
        self._manager: Any = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._start_task: TaskStarter = no_loop
        self._listeners: List[Connection] = []
        self._cycles: Set[Any] = set()                 # exchanges whose task runs
        self._state: Dict[str, Any] = {}               # lifespan state, copied into each scope
        self._lifespan: Optional[Lifespan] = None

    @property
    def manager(self) -> Manager:
        """The Manager underneath (once started)."""
        if self._manager is None:
            raise RuntimeError("ASGIServer is not started")
        return self._manager  # type: ignore[no-any-return]

    @property
    def config(self) -> ServerConfig:
        """The options shared with the WSGI server, as given."""
        return self._config

    @property
    def state(self) -> Dict[str, Any]:
        """The lifespan state: what startup put in ``scope["state"]``."""
        return self._state

    # ---- starting and stopping -----------------------------------------------------

    async def start(self, url: str = "http://127.0.0.1:8000", *, tls: Optional[TlsOpts] = None,
                    reuse_port: bool = False, fd: Optional[int] = None, uds: Optional[str] = None,
                    backlog: Optional[int] = None) -> Connection:
        """Run the lifespan startup, then listen on ``url`` (``https://`` with
        ``tls``; port 0 picks a free one; ``reuse_port``, ``fd``, ``uds``,
        ``backlog``: see :meth:`Manager.listen`). Returns the listener.

        :raises LifespanError: the application's startup failed (nothing listens).
        :raises ListenError: the address cannot be listened on."""
        if self._manager is not None:
            raise RuntimeError("ASGIServer is already started")
        self._loop = asyncio.get_running_loop()
        self._start_task = task_starter(self._loop, self._eager)
        if self._lifespan_mode != "off":
            self._lifespan = Lifespan(self._app, self._state, required=self._lifespan_mode == "on")
            await self._lifespan.startup()
        await self._aio.__aenter__()
        self._manager = self._aio.manager
        if self._ping is not None:
            self._manager.timer_add(max(10, int(min(self._ping) * 1000)), self._keepalive, repeat=True)
        try:
            return self.listen(url, tls=tls, reuse_port=reuse_port, fd=fd, uds=uds, backlog=backlog)
        except BaseException:
            await self.stop(0)
            raise

    def listen(self, url: str, *, tls: Optional[TlsOpts] = None, reuse_port: bool = False,
               fd: Optional[int] = None, uds: Optional[str] = None, backlog: Optional[int] = None) -> Connection:
        """Listen on one more address, once started."""
        listener = open_listener(self.manager, url, self._config, tls, reuse_port, fd, uds, backlog)
        listener._set_mask(_HTTP_EVENTS)
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
        writer.closing(self._mgr())
        for cycle in list(self._cycles):
            if isinstance(cycle, WebSocketCycle) and cycle.state == cycle._OPEN and not cycle.sent_close:
                try:
                    cycle._close(1012, "server restarting")
                except MongooseError:
                    pass
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + grace
        while loop.time() < deadline and (self._busy() or self._unsent() or
                                          unfinished(self.manager, loop.time() < began + BETWEEN_WAIT)):
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

    shutdown = stop  # the WSGI server's verb

    def _keepalive(self) -> None:
        assert self._ping is not None
        now = time.monotonic()
        for cycle in self._cycles:
            if isinstance(cycle, WebSocketCycle):
                cycle.keepalive(now, *self._ping)

    @property
    def in_flight(self) -> int:
        """HTTP requests and WebSockets the application is handling now."""
        return len(self._cycles)

    def _busy(self) -> bool:
        return any(isinstance(cycle, HttpCycle) and not (cycle.done or cycle.gone) for cycle in self._cycles)

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

    def _request(self, conn: Connection, message: HttpMessage, stream: Optional[BodyStream] = None) -> None:
        if self._limit is not None and len(self._cycles) >= self._limit:
            writer.busy(self._mgr(), conn.id, message.proto.upper() == "HTTP/1.0")
            return
        peer = conn.userdata
        if peer is None:
            peer = conn.userdata = _Peer(conn)
        p = message._ptr()  # one validity check for both copies
        head_str = p.head  # from_mg_str(), inline (as the body's below): a request's head is never empty
        head = _unpack(head_str.buf, head_str.len)
        end = head.find(b"\r\n")
        parts = head[:end].split()
        if len(parts) == 3:
            method, target, proto = parts
        else:  # a request line Mongoose took but that is not three words
            method, target, proto = (message.method.encode("latin-1"), message.uri.encode("latin-1"),
                                     message.proto.encode("latin-1"))
        raw_path, _, query = target.partition(b"?")
        # find(), not `in`: CPython's `bytes in bytes` (3.9 to 3.13 at least) first tries the
        # operand as an int and formats a TypeError it then drops (1,000 instructions).
        if raw_path[:1] != b"/" and raw_path.find(b"://") >= 0:  # absolute-form: http://host/path
            raw_path = b"/" + raw_path.split(b"/", 3)[3] if raw_path.count(b"/") >= 3 else b"/"
        path = (unquote_to_bytes(raw_path) if raw_path.find(b"%") >= 0 else raw_path).decode("utf-8", "replace")
        headers = _headers(head, end)
        http_version = "1.1" if proto == b"HTTP/1.1" else proto[5:].decode("latin-1")
        schemes, client = peer.schemes, peer.client
        if self._proxy is not None:
            client, secure = _behind_proxy(self._proxy, client, headers)
            if secure is not None:
                schemes = _SECURE if secure else _PLAIN
        if method == b"GET" and head.find(b"ebsocket") >= 0 and _UPGRADE_WEBSOCKET.search(head):
            self._websocket(conn, peer, head, raw_path, path, query, headers, http_version, schemes[1], client)
            return
        scope = {
            "type": "http",
            "asgi": _SPEC_HTTP,
            "http_version": http_version,
            "server": peer.server,
            "client": client,
            "scheme": schemes[0],
            "method": method.decode("latin-1"),
            "root_path": self._root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "state": self._state.copy(),
        }
        body_str = p.body
        body = None if stream is not None else _unpack(body_str.buf, body_str.len) if body_str.len else b""
        cycle = HttpCycle(self, conn, scope, body, http_version == "1.0")
        cycle.stream = stream
        peer.cycle = cycle
        self._cycles.add(cycle)
        cycle.task = self._start_task(self._run_http(cycle))

    def _websocket(self, conn: Connection, peer: _Peer, head: bytes, raw_path: bytes, path: str,
                   query: bytes, headers: List[Tuple[bytes, bytes]], http_version: str, scheme: str,
                   client: Optional[Tuple[str, int]]) -> None:
        subprotocols = [token.strip().decode("latin-1") for name, value in headers
                        if name == b"sec-websocket-protocol" for token in value.split(b",") if token.strip()]
        scope: Scope = {
            "type": "websocket",
            "asgi": _SPEC_WEBSOCKET,
            "http_version": http_version,
            "scheme": scheme,
            "server": peer.server,
            "client": client,
            "root_path": self._root_path,
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": subprotocols,
            "state": self._state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        cycle = WebSocketCycle(self, conn, scope, head)
        peer.cycle = cycle
        self._cycles.add(cycle)
        cycle.task = self._start_task(self._run_websocket(cycle))

    def _maybe_stream(self, conn: Connection, message: HttpMessage) -> None:
        """A large body with a Content-Length: start the application now, and hand
        it the body as it arrives (see intake.py)."""
        length = intake.streamed_length(conn, message)
        if length is None:
            return
        stream = BodyStream(length)
        self._request(conn, message, stream)
        first = intake.take_over(conn, message, length)
        conn._set_mask(conn._mask | _READ)
        self._fed(conn, stream, first)

    def _feed(self, conn: Connection) -> None:
        peer = conn.userdata
        cycle = peer.cycle if peer is not None else None
        stream = cycle.stream if isinstance(cycle, HttpCycle) else None
        if stream is not None and stream.remaining > 0:
            self._fed(conn, stream, intake.pull(conn, stream.remaining))

    def _fed(self, conn: Connection, stream: BodyStream, data: bytes) -> None:
        cycle = conn.userdata.cycle
        if stream.feed(data):
            intake.pause(conn)  # the application reads slower than the client sends
        if stream.remaining <= 0:
            conn._set_mask(conn._mask & ~_READ)
            intake.hand_back(conn, not cycle.done)
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

    async def _room(self, conn: Connection, cycle: Any) -> None:
        """Wait while more than ``high_water`` bytes are queued for ``conn``."""
        while not cycle.gone:
            if conn.send_len <= self._high_water:
                return
            conn._set_mask(conn._mask | _WRITE)  # _written wakes us
            await cycle.event.wait()

    # ---- running the application --------------------------------------------------------

    async def _run_http(self, cycle: HttpCycle) -> None:
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

    def _fail(self, cycle: HttpCycle) -> None:
        """The error policy (:func:`writer.fail`): 500 if no byte of the response
        was queued yet, otherwise a close."""
        if cycle.done or cycle.gone or self._manager is None:
            return
        framing = cycle.framing
        call_on_loop(self._manager, self._fail_on_loop, cycle.conn.id, framing, cycle.http10)
        if framing == writer.NOT_STARTED:
            cycle.status = 500
            cycle.finished()
        else:
            cycle.gone = True

    def _fail_on_loop(self, conn_id: int, framing: int, http10: bool) -> None:
        writer.fail(self._mgr(), conn_id, framing, http10)

    async def _run_websocket(self, cycle: WebSocketCycle) -> None:
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
        streaming = isinstance(cycle, HttpCycle) and cycle.stream is not None and cycle.stream.remaining > 0
        if peer is not None and peer.cycle is cycle and not streaming:  # the rest of a body is still read
            peer.cycle = None

    def _ws_end(self, cycle: WebSocketCycle, code: int, status: int) -> None:
        if self._manager is None:
            return
        if cycle.state == cycle._OPEN and not cycle.sent_close:
            cycle._close(code, "")
        elif cycle.state == cycle._CONNECTING:
            http = cycle.http = HttpCycle(self, cycle.conn, cycle.scope, b"", False)
            cycle.state = cycle._DENIED
            http.status, http.started = status, True
            http.headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
            http._respond(b"Internal Server Error\n" if status == 500 else b"Service Unavailable\n", False)
        elif cycle.state == cycle._DENIED and cycle.http is not None and not cycle.http.done:
            call_on_loop(self._manager, self._close, cycle.conn.id)

    def _close(self, conn_id: int) -> None:
        mgr = self._mgr()
        c = lib.pm_conn(mgr, conn_id) if mgr is not None else None
        if c is not None and c != ffi.NULL:
            lib.pm_conn_close(c)


# ---- running a server ------------------------------------------------------------------


def _load(app: Union[ASGIApp, str]) -> ASGIApp:
    if isinstance(app, str):  # "module:attribute", as on the command line
        return load_app(app)
    return app


async def serve_async(app: Union[ASGIApp, str], url: str = "http://127.0.0.1:8000", *,
                      grace: float = DEFAULT_GRACE, tls: Optional[TlsOpts] = None, reuse_port: bool = False,
                      quiet: bool = False, fd: Optional[int] = None, uds: Optional[str] = None,
                      backlog: Optional[int] = None, ready: Optional[Callable[[ASGIServer], None]] = None,
                      **options: Any) -> None:
    """Serve ``app`` on the running loop until SIGINT or SIGTERM (or cancellation),
    then stop gracefully. ``ready(server)`` is called once it listens (after the
    lifespan startup) and its signal handlers are set."""
    server = ASGIServer(_load(app), **options)
    listener = await server.start(url, tls=tls, reuse_port=reuse_port, fd=fd, uds=uds, backlog=backlog)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stopped.set)
            signals.append(number)
    if ready is not None:
        ready(server)
    if not quiet:
        print(banner("pymongoose ASGI server", url, listener, uds=uds), flush=True)
    try:
        await stopped.wait()
    finally:
        try:
            await server.stop(grace)  # a second SIGTERM (a service manager's) changes nothing
        finally:
            for number in signals:
                loop.remove_signal_handler(number)


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
