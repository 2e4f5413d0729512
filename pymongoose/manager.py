"""The event loop: :class:`Manager` owns a Mongoose manager and its connections.

Every event Mongoose raises for a connection made here reaches Python through one
C entry point (``pm_on_event``); the manager finds the :class:`Connection` by id in
its table and calls that connection's handler::

    from pymongoose import Manager, MG_EV_HTTP_MSG

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "Hello, World!")

    with Manager(handler) as mgr:
        mgr.listen("http://127.0.0.1:8000", http=True)
        while True:
            mgr.poll(1000)
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import weakref
from threading import get_ident
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple

from ._binding import ffi, lib
from ._loop import on_loop
from ._resolv import system_dns
from ._text import BytesLike, decode, to_bytes, to_cstr
from .connection import Connection, EventHandler, events_mask
from .errors import ConnectError, ListenError, ManagerClosedError
from .events import (
    MG_EV_CLOSE,
    MG_EV_ERROR,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_MQTT_CMD,
    MG_EV_MQTT_MSG,
    MG_EV_MQTT_OPEN,
    MG_EV_OPEN,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_SNTP_TIME,
    MG_EV_WAKEUP,
    MG_EV_WRITE,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    event_name,
)
from .log import capture_errors
from .messages import HttpMessage, MqttMessage, WsMessage
from .mqtt import Property, _qos, _string, _topic, mqtt_opts, mqtt_props
from .timers import Timer
from .tls import TlsOpts, default_client_tls
from .urls import url_host, url_is_ssl
from .websocket import extra_header_lines

logger = logging.getLogger("pymongoose")

_PM_EV_TIMER = lib.PM_EV_TIMER
_ALL_EVENTS = 0xFFFFFFFF
_HTTP_SCHEMES = ("http://", "https://", "ws://", "wss://")
# Mongoose treats any other scheme as plain TCP: refuse it, a typo must not open a port.
_KNOWN_SCHEMES = frozenset({"tcp", "udp", "http", "https", "ws", "wss", "mqtt", "mqtts", "tls", "ssl"})


# ---- event data: what a handler receives as ``data`` for each event -------------

# How dispatch finds ``data`` for each event number, looked up per event:
_NONE = "none"      # no data (MG_EV_POLL, MG_EV_CONNECT...)
_NUMBER = "number"  # the int the shim passes (byte counts, CONNACK code, SNTP time)
_OPEN = "open"      # the connection's first event: bookkeeping first
_CLOSE = "close"    # its last: bookkeeping after


def _error_text(ev_data: Any, tokens: Any, token: int) -> str:
    return decode(ffi.string(ffi.cast("char *", ev_data)))


_PLANS: Dict[int, Any] = {
    MG_EV_OPEN: _OPEN,
    MG_EV_CLOSE: _CLOSE,
    MG_EV_ERROR: _error_text,
    MG_EV_READ: _NUMBER,
    MG_EV_WRITE: _NUMBER,
    MG_EV_MQTT_OPEN: _NUMBER,
    MG_EV_SNTP_TIME: _NUMBER,
    # Views into Mongoose's buffers, valid while the handler runs; each is made as
    # view_class(ev_data, frame_tokens, token).
    MG_EV_HTTP_HDRS: HttpMessage,
    MG_EV_HTTP_MSG: HttpMessage,
    MG_EV_WS_OPEN: HttpMessage,
    MG_EV_WS_MSG: WsMessage._from_event,  # not a view: a copy of the payload
    MG_EV_WS_CTL: WsMessage._from_event,
    MG_EV_MQTT_CMD: MqttMessage,
    MG_EV_MQTT_MSG: MqttMessage,
}
# Indexed by event number; user events beyond it carry no data.
_PLAN: List[Any] = [_PLANS.get(ev, _NONE) for ev in range(64)]


# ---- the one entry point from C ----------------------------------------------------

# KeyboardInterrupt/SystemExit that arrived before dispatch could catch it (a signal
# at the trampoline's first instruction); the next poll() on this thread raises it.
_stray_interrupts: Dict[int, BaseException] = {}


def _trampoline_failed(exc_type: type, exc: BaseException, tb: Any) -> None:
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        _stray_interrupts.setdefault(get_ident(), exc)
    else:
        logger.error("pymongoose: internal error while dispatching an event", exc_info=(exc_type, exc, tb))


_from_handle = ffi.from_handle
_unpack = ffi.unpack
_PM_EV_FLUSH = lib.PM_EV_FLUSH
_HAS_PAYLOADS = lib.PM_QUEUE_HAS_PAYLOADS
_new_object = object.__new__


@ffi.def_extern(onerror=_trampoline_failed)
def pm_on_event(owner, queued, conn_id, ev, ev_data, extra):  # type: ignore[no-untyped-def]
    """Every event Python asked for arrives here (see pm_forward in shim.c).

    The hot path: one call per crossing, so it is written flat. Deferred events
    (``queued`` of them) come first, in the order Mongoose raised them; the rare
    cases (timers, a connection's first and last events) go to the manager."""
    manager = _from_handle(owner)
    if queued:
        manager._run_queued(queued)
    if ev < 0:
        if ev != _PM_EV_FLUSH:
            manager._fire_timer(conn_id)
        return
    conn = manager._conns.get(conn_id)
    plan = _PLAN[ev] if ev < 64 else _NONE
    if plan is _NONE:
        data = None
    elif plan is _NUMBER:
        data = extra
    elif plan is _OPEN:
        conn = manager._opened(ev_data, conn_id, conn)
        if conn is None:
            return
        data = None
    elif plan is _CLOSE:
        if conn is None or not manager._closed_conn(ev_data, conn):
            return
        data = None
    else:
        data = plan(ev_data, manager._tokens, extra)
    if conn is None:
        return
    handler = conn._handler  # Manager._deliver, inline: one call less per crossing
    if handler is not None:
        try:
            handler(conn, ev, data)
        except BaseException as exc:
            manager._handler_raised(exc, conn, ev)


def _free_abandoned(pointer: Any, keepalive: Any) -> None:
    """Finalizer of a Manager dropped without close(): free the C side without
    running any Python handler (they must not run during garbage collection)."""
    lib.pm_mgr_disown(pointer)
    lib.pm_mgr_free(pointer)
    del keepalive  # what C read until now: DNS URL strings, the frames struct


# ---- the manager ---------------------------------------------------------------------

class Manager:
    """Owns a Mongoose event manager, its connections and its timers.

    :param handler: called as ``handler(conn, event, data)`` for the events of every
        connection that has no handler of its own.
    :param enable_wakeup: allow :meth:`wakeup` (as the Cython binding requires);
        without it, ``wakeup()`` returns False. :meth:`call_soon_threadsafe` always
        works.
    :param events: the ``MG_EV_*`` events delivered to Python by default (None: all).
        Others are filtered out in C, before they cost anything.
    :param dns: DNS server URL (``"udp://127.0.0.1:53"``); default: the system's.
    :param dns_timeout_ms: how long a DNS lookup may take.
    :param error_handler: called with the exception when a handler raises; default:
        log it on the ``pymongoose`` logger with the connection and event.

    Use it as a context manager, or call :meth:`close`, to free it.
    """

    def __init__(self, handler: Optional[EventHandler] = None, enable_wakeup: bool = False, *,
                 events: Optional[Iterable[int]] = None, dns: Optional[str] = None,
                 dns_timeout_ms: Optional[int] = None,
                 error_handler: Optional[Callable[[BaseException], Any]] = None) -> None:
        if handler is not None and not callable(handler):
            raise TypeError("handler must be callable or None")
        if error_handler is not None and not callable(error_handler):
            raise TypeError("error_handler must be callable or None")
        self._manager = self  # so on_loop-guarded methods find their manager uniformly
        self._handler = handler
        self._enable_wakeup = bool(enable_wakeup)
        self._warned_wakeup = False
        self._error_handler = error_handler
        self._mask = events_mask(events)
        self._conns: Dict[int, Connection] = {}
        self._timers: Dict[int, Timer] = {}
        self._next_timer_id = 1
        self._opening_handler: Optional[EventHandler] = None
        self._held: Optional[BaseException] = None  # KeyboardInterrupt/SystemExit from a handler
        # Loop ownership (see _loop.py) and the hand-over queue from other threads.
        self._lock = threading.Lock()
        self._owner: Optional[int] = None
        self._inbox: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._wake_pending = False
        self._wake_lock = threading.Lock()  # guards _ptr against a concurrent free
        self._closed = False

        self._handle = ffi.new_handle(self)
        self._frames = ffi.new("struct pm_frames *")
        self._queue = self._frames.queue  # a view into _frames, which it does not keep alive
        # Owned here, not inside _frames, so that message views can keep it alive.
        self._tokens = self._frames.token = ffi.new("uint64_t[]", lib.PM_MAX_FRAMES)
        pointer = lib.pm_mgr_new(self._handle, self._frames)
        if pointer == ffi.NULL:
            raise OSError("could not create a Mongoose manager (out of memory or sockets)")
        self._ptr: Optional[Any] = pointer
        self._dns_urls: List[Any] = []
        self._finalizer = weakref.finalize(self, _free_abandoned, pointer, (self._dns_urls, self._frames, self._tokens))
        self._configure_dns(dns, dns_timeout_ms)

    def _configure_dns(self, dns: Optional[str], timeout_ms: Optional[int]) -> None:
        if dns is None:
            v4, v6 = system_dns()
        else:
            v4, v6 = dns, None
            if not isinstance(dns, str) or not dns.startswith(("udp://", "tcp://")):
                raise ValueError(f"dns must be a URL like 'udp://127.0.0.1:53', not {dns!r}")
        self._dns_urls[:] = [ffi.new("char[]", to_cstr(url, "dns")) for url in (v4, v6 or v4)]
        self._ptr.dns4.url, self._ptr.dns6.url = self._dns_urls
        if timeout_ms is not None:
            if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
                raise ValueError("dns_timeout_ms must be a positive int")
            self._ptr.dnstimeout = timeout_ms

    # ---- the loop ----------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> None:
        """Run one iteration of the event loop, waiting up to ``timeout_ms`` for I/O.

        Handlers run inside this call. A ``KeyboardInterrupt`` or ``SystemExit``
        raised by a handler is re-raised here once the iteration is over.
        """
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
            raise TypeError("timeout_ms must be an int")
        if self._closed:
            raise ManagerClosedError("poll() on a closed Manager")
        me = get_ident()
        if self._owner == me:
            raise RuntimeError("poll() called from inside a handler of the same Manager")
        with self._lock:
            pointer = self._ptr
            if pointer is None:
                raise ManagerClosedError("poll() on a closed Manager")
            self._owner = me
            try:
                lib.pm_mgr_poll(pointer, max(timeout_ms, 0))
                if self._inbox:
                    self._run_inbox()
            finally:
                self._owner = None
                if self._closed and self._ptr is not None:
                    self._free()
        self._raise_held(me)

    def run(self, poll_ms: int = 100) -> None:
        """Poll until interrupted (Ctrl-C or SIGTERM), then close the manager."""
        import signal

        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        try:
            while not stop.is_set():
                self.poll(poll_ms)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self.close()

    def _raise_held(self, me: int) -> None:
        held, self._held = self._held, None
        if held is None and _stray_interrupts:
            held = _stray_interrupts.pop(me, None)
        if held is not None:
            raise held

    def _release_loop(self) -> None:
        """End an on_loop call made from outside a poll (see _loop.py)."""
        self._owner = None
        try:
            if self._closed and self._ptr is not None:
                self._free()
        finally:
            self._lock.release()

    # ---- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close every connection and timer, then free the manager. Idempotent.

        From another thread while :meth:`poll` runs, it wakes the poll, waits for it
        to return, then frees. From inside a handler, the manager is freed as soon
        as the current poll returns. Either way, later polls raise
        :class:`ManagerClosedError`.
        """
        with self._wake_lock:
            if self._closed:
                return
            self._closed = True
        me = get_ident()
        if self._owner == me:
            return  # inside a handler: poll() frees on its way out
        if not self._lock.acquire(blocking=False):
            self._wake()
            self._lock.acquire()
        self._owner = me
        self._release_loop()

    def _free(self) -> None:
        with self._wake_lock:
            pointer, self._ptr = self._ptr, None
        self._finalizer.detach()
        lib.pm_mgr_free(pointer)  # delivers MG_EV_CLOSE for every connection
        for timer in list(self._timers.values()):
            timer._forget()
        self._timers.clear()
        self._conns.clear()
        undelivered = len(self._inbox)
        self._inbox.clear()
        if undelivered:
            logger.warning("%d wakeups/calls handed to %r were not run: it was closed", undelivered, self)

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def _live_pointer(self) -> Any:
        pointer = self._ptr
        if pointer is None or self._closed:
            raise ManagerClosedError("the Manager is closed")
        return pointer

    # ---- dispatch (the hot path is pm_on_event, at module level) -------------------

    def _deliver(self, conn: Connection, ev: int, data: Any) -> None:
        """Call conn's handler under the manager's error policy."""
        handler = conn._handler
        if handler is not None:
            try:
                handler(conn, ev, data)
            except BaseException as exc:
                self._handler_raised(exc, conn, ev)

    def _handler_raised(self, exc: BaseException, conn: Connection, ev: int) -> None:
        self._raised(exc, f"handler for {event_name(ev)} on {conn!r}")

    def _raised(self, exc: BaseException, where: str) -> None:
        """The error policy for user code: an Exception is reported and the loop goes
        on; a KeyboardInterrupt or SystemExit leaves poll() once the iteration is over."""
        if isinstance(exc, Exception):
            self._handler_failed(exc, where)
        elif self._held is None:
            self._held = exc

    def _run_queued(self, queued: int) -> None:
        """Deliver the deferred events: ``queued`` (id, event, number) triples in
        the shim's queue, in the order Mongoose raised them. Their data is a number
        (None for MG_EV_POLL) or, for MG_EV_WS_MSG, a message whose payload is the
        next (number >> 8) bytes of the batch's payloads."""
        payloads = b""
        if queued & _HAS_PAYLOADS:
            frames = self._frames  # copied before any handler runs, as the queue
            payloads = _unpack(frames.payloads, frames.handed)
            queued &= ~_HAS_PAYLOADS
        items = _unpack(self._queue, 3 * queued)
        offset = 0
        conns = self._conns
        for conn_id, ev, number in zip(items[0::3], items[1::3], items[2::3]):
            if ev == MG_EV_WS_MSG:
                end = offset + (number >> 8)
                data = _new_object(WsMessage)
                data.data = payloads[offset:end]
                data.flags = number & 0xFF
                offset = end
            else:
                data = None if ev == MG_EV_POLL else number
            conn = conns.get(conn_id)
            if conn is None:
                continue
            handler = conn._handler
            # A handler earlier in the batch may have narrowed this connection's events.
            if handler is None or not conn._mask >> ev & 1:
                continue
            try:
                handler(conn, ev, data)
            except BaseException as exc:
                self._handler_raised(exc, conn, ev)

    def _handler_failed(self, exc: Exception, where: str) -> None:
        if self._error_handler is not None:
            try:
                self._error_handler(exc)
                return
            except Exception:
                logger.exception("error_handler failed while handling an exception from the %s", where)
        logger.error("exception in the %s", where, exc_info=exc)

    def _opened(self, c: Any, conn_id: int, conn: Optional[Connection]) -> Optional[Connection]:
        """On MG_EV_OPEN (c: the C connection): the new connection, if the handler
        is to see the event."""
        if conn is None:
            conn = self._adopt(ffi.cast("struct mg_connection *", c), conn_id)
        return conn if conn._mask >> MG_EV_OPEN & 1 else None

    def _closed_conn(self, c: Any, conn: Connection) -> bool:
        """On MG_EV_CLOSE (c: the C connection): retire the connection; True if the
        handler is to see it."""
        self._conns.pop(conn._id, None)
        conn._retire(ffi.cast("struct mg_connection *", c))
        return bool(conn._mask >> MG_EV_CLOSE & 1)

    def _adopt(self, c: Any, conn_id: int) -> Connection:
        """Create the Connection for a new C connection (on its MG_EV_OPEN)."""
        parent_id = lib.pm_conn_parent(c)
        if parent_id:
            parent = self._conns.get(parent_id)
            handler = parent._handler if parent is not None else self._handler
        else:
            handler = self._opening_handler
        conn = Connection(self, conn_id, handler, int(lib.pm_conn_events(c)))
        self._conns[conn_id] = conn
        return conn

    # ---- opening connections --------------------------------------------------------

    def _check_handler(self, handler: Optional[EventHandler]) -> Optional[EventHandler]:
        if handler is None:
            return self._handler
        if not callable(handler):
            raise TypeError("handler must be callable or None")
        return handler

    def _open(self, what: str, error: type, url: str, handler: Optional[EventHandler],
              events: Optional[Iterable[int]], call: Callable[[Any, bytes, int, Any], int],
              tls: Optional[TlsOpts] = None, client: bool = False) -> Connection:
        """Open a connection with ``call(mgr, url, events_mask, tls_opts_or_NULL)``,
        which returns its id (0 on failure), creating the Connection on MG_EV_OPEN."""
        pointer = self._live_pointer()
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        raw_url = to_cstr(url, "url")
        scheme, separator, _ = url.partition("://")
        if not separator or scheme.lower() not in _KNOWN_SCHEMES:
            raise error(f"cannot {what} {url!r}: not a URL with a supported scheme "
                        f"({', '.join(sorted(_KNOWN_SCHEMES))})")
        chosen = self._check_handler(handler)
        mask = self._mask if events is None else events_mask(events)
        if tls is None and client and url_is_ssl(url):
            tls = default_client_tls(url_host(url))
        c_tls, _keep = (ffi.NULL, None)
        if tls is not None:
            if not isinstance(tls, TlsOpts):
                raise TypeError(f"tls must be a TlsOpts, not {type(tls).__name__}")
            tls._check(pointer, client)
            c_tls, _keep = tls._to_c()
        outer, self._opening_handler = self._opening_handler, chosen
        try:
            with capture_errors() as errors:
                conn_id = call(pointer, raw_url, mask, c_tls)
        finally:
            self._opening_handler = outer
        if conn_id == 0:
            raise error(f"cannot {what} {url}: {_explain(errors)}")
        return self._conns[conn_id]

    @on_loop
    def listen(self, url: str, handler: Optional[EventHandler] = None, *, http: Optional[bool] = None,
               events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None,
               idle_timeout_ms: Optional[int] = None) -> Connection:
        """Listen on ``url`` (``"tcp://0.0.0.0:1234"``, ``"udp://..."``,
        ``"http://127.0.0.1:0"``...) and return the listening connection.

        ``http`` turns on the HTTP parser; None infers it from the scheme (http, https,
        ws, wss). Port 0 lets the OS choose: read it from ``local_addr``. Accepted
        connections inherit ``handler`` and ``events``; with ``tls`` each one starts
        TLS as it is accepted; with ``idle_timeout_ms`` each one closes after that
        long without I/O (see :meth:`Connection.set_idle_timeout`).

        :raises ListenError: with the URL and the cause (address in use...).
        :raises TlsError: if ``tls`` cannot be used.
        """
        proto = lib.PM_PROTO_HTTP if _wants_http(url, http) else lib.PM_PROTO_TCP
        listener = self._open("listen on", ListenError, url, handler, events,
                              lambda p, u, m, t: lib.pm_listen(p, u, proto, m, t), tls)
        if idle_timeout_ms is not None:
            listener.set_idle_timeout(idle_timeout_ms)
        listener._read_address(False)  # final already: cached now, any thread may read it
        return listener

    @on_loop
    def connect(self, url: str, handler: Optional[EventHandler] = None, *, http: Optional[bool] = None,
                events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None) -> Connection:
        """Start an outbound connection to ``url`` and return it at once;
        ``MG_EV_CONNECT`` (or ``MG_EV_ERROR``) follows. ``http`` as for :meth:`listen`.
        A TLS URL (``https://``, ``mqtts://``...) verifies the server with ``tls``, or
        by default with the system CAs and the URL's host name."""
        proto = lib.PM_PROTO_HTTP if _wants_http(url, http) else lib.PM_PROTO_TCP
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_connect(p, u, proto, m, t), tls, client=True)

    def http_listen(self, url: str, handler: Optional[EventHandler] = None, *,
                    events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None,
                    idle_timeout_ms: Optional[int] = None) -> Connection:
        """:meth:`listen` with the HTTP parser on."""
        return self.listen(url, handler, http=True, events=events, tls=tls, idle_timeout_ms=idle_timeout_ms)

    def http_connect(self, url: str, handler: Optional[EventHandler] = None, *,
                     events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None) -> Connection:
        """:meth:`connect` with the HTTP parser on; send the request on MG_EV_CONNECT."""
        return self.connect(url, handler, http=True, events=events, tls=tls)

    @on_loop
    def ws_connect(self, url: str, handler: Optional[EventHandler] = None, *,
                   headers: Optional[Mapping[str, str]] = None, events: Optional[Iterable[int]] = None,
                   tls: Optional[TlsOpts] = None) -> Connection:
        """Open a WebSocket client connection (``ws://`` or ``wss://``), sending the
        handshake with ``headers`` added; ``MG_EV_WS_OPEN`` says it is ready."""
        lines = extra_header_lines(headers)
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_ws_connect(p, u, lines, m, t), tls, client=True)

    @on_loop
    def mqtt_connect(self, url: str, handler: Optional[EventHandler] = None, client_id: str = "",
                     username: str = "", password: str = "", clean_session: bool = True, keepalive: int = 60,
                     *, will_topic: str = "", will_message: BytesLike = b"", will_qos: int = 0,
                     will_retain: bool = False, version: int = 4, properties: Optional[Iterable[Property]] = None,
                     will_properties: Optional[Iterable[Property]] = None, events: Optional[Iterable[int]] = None,
                     tls: Optional[TlsOpts] = None) -> Connection:
        """Connect to an MQTT broker (``mqtt://host:1883``, ``mqtts://...``) as an MQTT
        client, 3.1.1 (``version=4``) or 5 (``version=5``, with CONNECT ``properties``
        and ``will_properties`` as for :meth:`Connection.mqtt_pub`).
        ``MG_EV_MQTT_OPEN`` brings the CONNACK code (0: accepted).

        An empty ``client_id`` lets Mongoose make one up. With ``keepalive`` seconds
        (0: none) pymongoose pings the broker when idle. ``will_*`` set the last will.
        """
        if isinstance(keepalive, bool) or not isinstance(keepalive, int) or not 0 <= keepalive <= 65535:
            raise ValueError("keepalive must be a number of seconds from 0 to 65535")
        if will_message and not will_topic:
            raise ValueError("will_message needs a will_topic")
        if version not in (4, 5) or isinstance(version, bool):
            raise ValueError(f"version must be 4 (MQTT 3.1.1) or 5, not {version!r}")
        if version == 4 and (properties is not None or will_properties is not None):
            raise ValueError("properties need MQTT 5 (version=5)")
        keep: List[Any] = []
        opts = mqtt_opts(keep, client_id=_string(client_id, "client_id", allow_empty=True),
                         user=_string(username, "username", allow_empty=True),
                         **{"pass": _string(password, "password", allow_empty=True)},
                         topic=_topic(will_topic, wildcards=False) if will_topic else b"",
                         message=to_bytes(will_message, "will_message"), qos=_qos(will_qos),
                         retain=bool(will_retain), clean=bool(clean_session), keepalive=keepalive, version=version)
        opts.props, opts.num_props = mqtt_props(keep, properties)
        opts.will_props, opts.num_will_props = mqtt_props(keep, will_properties)
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_mqtt_connect(p, u, opts, m, t), tls, client=True)

    @on_loop
    def mqtt_listen(self, url: str, handler: Optional[EventHandler] = None, *,
                    events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None) -> Connection:
        """Listen for MQTT clients (broker side): each packet arrives as
        ``MG_EV_MQTT_CMD``; answering CONNECT, SUBSCRIBE and PINGREQ is the
        handler's job (see examples/mqtt_broker.py). QoS acknowledgements are automatic."""
        listener = self._open("listen on", ListenError, url, handler, events,
                              lambda p, u, m, t: lib.pm_listen(p, u, lib.PM_PROTO_MQTT, m, t), tls)
        listener._read_address(False)  # final already: cached now, any thread may read it
        return listener

    @on_loop
    def sntp_connect(self, url: str, handler: Optional[EventHandler] = None, *,
                     events: Optional[Iterable[int]] = None) -> Connection:
        """Open an SNTP client connection to ``url`` (``udp://time.example:123``; there
        is no default server). Call :meth:`Connection.sntp_request`;
        ``MG_EV_SNTP_TIME`` brings epoch milliseconds. A reply also sets Mongoose's
        own clock."""
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_connect(p, u, lib.PM_PROTO_SNTP, m, t), client=True)

    # ---- timers ---------------------------------------------------------------------

    @on_loop
    def timer_add(self, milliseconds: int, callback: Callable[[], Any], *,
                  repeat: bool = False, run_now: bool = False) -> Timer:
        """Call ``callback()`` after ``milliseconds`` (every ``milliseconds`` with
        ``repeat``; also on the next poll with ``run_now``). Returns a :class:`Timer`."""
        if isinstance(milliseconds, bool) or not isinstance(milliseconds, int):
            raise TypeError("milliseconds must be an int")
        if not 0 <= milliseconds <= 2**53:
            raise ValueError("milliseconds must be >= 0")
        if not callable(callback):
            raise TypeError("callback must be callable")
        pointer = self._live_pointer()
        timer_id = self._next_timer_id
        self._next_timer_id += 1
        timer = Timer(self, timer_id, milliseconds, callback, bool(repeat))
        self._timers[timer_id] = timer
        if not lib.pm_timer_add(pointer, milliseconds, bool(repeat), bool(run_now), timer_id):
            del self._timers[timer_id]
            raise MemoryError("could not allocate a timer")
        return timer

    def _fire_timer(self, timer_id: int) -> None:
        timer = self._timers.get(timer_id)
        if timer is None:
            return  # cancelled; Mongoose unlinks it after this poll
        timer._fired()
        try:
            timer._callback()
        except BaseException as exc:
            self._raised(exc, f"callback of {timer!r}")

    def _cancel_timer(self, timer_id: int) -> None:
        if self._ptr is not None:  # after close(), mg_mgr_free has freed every timer
            lib.pm_timer_cancel(self._ptr, timer_id)

    # ---- handing work over from other threads -----------------------------------

    def wakeup(self, connection_id: int, data: BytesLike = b"") -> bool:
        """Deliver ``MG_EV_WAKEUP`` with ``data`` to a connection, from any thread.

        Wakeups reach the connection's handler, on the polling thread, whole and in
        the order each sender made them. Returns False, as the Cython binding does,
        when the manager was made without ``enable_wakeup=True`` or no open
        connection has this id; raises :class:`ManagerClosedError` once the manager
        is closed.

        >>> mgr = Manager(handler, enable_wakeup=True)  # doctest: +SKIP
        >>> mgr.wakeup(conn_id, b"result")  # doctest: +SKIP
        True
        """
        if self._closed:
            raise ManagerClosedError("the Manager is closed")
        payload = to_bytes(data, "data")
        if isinstance(connection_id, bool) or not isinstance(connection_id, int):
            raise TypeError("connection_id must be an int")
        if not self._enable_wakeup:
            if not self._warned_wakeup:
                self._warned_wakeup = True
                logger.warning("wakeup() on %r made without enable_wakeup=True: nothing is delivered", self)
            return False
        conn = self._conns.get(connection_id)
        if conn is None or conn._closed:
            return False
        self._post(self._deliver_wakeup, (conn, payload))
        return True

    def _deliver_wakeup(self, conn: Connection, payload: bytes) -> None:
        if conn._closed or conn._c() is None:
            logger.warning("wakeup for connection %d dropped: it closed before delivery", conn.id)
        elif conn._mask >> MG_EV_WAKEUP & 1:
            self._deliver(conn, MG_EV_WAKEUP, payload)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the polling thread after the current poll
        iteration; safe from any thread. Use it to reach connections from workers."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        self._post(self._call_guarded, (callback, args))

    def _call_guarded(self, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        try:
            callback(*args)
        except BaseException as exc:
            self._raised(exc, f"callback {callback!r}")

    def _post(self, function: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        if self._closed:
            raise ManagerClosedError("the Manager is closed")
        self._inbox.append((function, args))
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._ptr is not None:
                lib.pm_mgr_wake(self._ptr)

    def _run_on_loop(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` where C state may be touched: now if nothing is
        polling, otherwise right after the current Mongoose poll iteration."""
        if self._owner == get_ident():
            self._inbox.append((function, args))
        elif self._lock.acquire(blocking=False):
            self._owner = get_ident()
            try:
                function(*args)
            finally:
                self._release_loop()
        else:
            self._post(function, args)

    def _run_inbox(self) -> None:
        self._wake_pending = False  # before draining: a later post must wake again
        inbox = self._inbox
        while inbox:
            function, args = inbox.popleft()
            function(*args)

    # ---- introspection ----------------------------------------------------------

    @property
    def wakeup_id(self) -> int:
        """The id of the connection behind Mongoose's wakeup pipe, or 0 when the
        manager was made without ``enable_wakeup=True`` (as cymongoose)."""
        pointer = self._ptr
        return int(lib.pm_mgr_wakeup_id(pointer)) if self._enable_wakeup and pointer is not None else 0

    @property
    def connections(self) -> Tuple[Connection, ...]:
        """The open connections, as a snapshot."""
        return tuple(self._conns.values())

    @property
    def handler(self) -> Optional[EventHandler]:
        """The default handler."""
        return self._handler

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._conns)} connections"
        return f"<Manager {state}>"


def _wants_http(url: str, http: Optional[bool]) -> bool:
    if http is None:
        return isinstance(url, str) and url.lower().startswith(_HTTP_SCHEMES)
    return bool(http)


_ERRNO_LINE = re.compile(r"^(\w[\w()]*): (\d+)\b")


def _explain(errors: List[str]) -> str:
    """Turn Mongoose's error lines ("bind: 98") into a reason a person can read."""
    if not errors:
        return "Mongoose gave no reason (see the pymongoose.mongoose log)"
    reasons = []
    for line in errors:
        match = _ERRNO_LINE.match(line)
        if match:
            call, number = match[1], int(match[2])
            reasons.append(f"{call} failed: {os.strerror(number)} (errno {number})")
        else:
            reasons.append(line)
    return "; ".join(reasons)
