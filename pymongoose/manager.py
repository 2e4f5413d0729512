"""The public event loop: :class:`Manager` owns a Mongoose manager, opens its
connections (listen, connect, per protocol), and runs its timers and wakeups.

Events reach the connections' handlers through the loop core (``_core.py``), which
Manager builds on::

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

import logging
import os
import re
import socket
from typing import Any, Callable, Iterable, List, Mapping, Optional

from ._args import int_arg
from ._binding import ffi, lib
from ._core import LoopCore
from ._listen_socket import DEFAULT_BACKLOG, adoptable, check_backlog, unix_listener
from ._loop import on_loop
from ._resolv import system_dns
from ._text import BytesLike, to_bytes, to_cstr
from .connection import Connection, EventHandler, events_mask
from .errors import ConnectError, ListenError, ManagerClosedError
from .events import MG_EV_WAKEUP
from .http import MAX_BODY_CEILING, HttpLimits
from .log import capture_errors
from .messages import STRICT_SLOT
from .mqtt import Property, check_qos, check_text, check_topic, mqtt_opts, mqtt_props
from .timers import Timer
from .tls import TlsOpts, c_tls_opts, default_client_tls, set_connection_tls
from .urls import url_host, url_is_ssl
from .websocket import DEFAULT_MAX_MESSAGE_SIZE, compression_arg, extra_header_lines, message_size_arg

__all__ = ["Manager"]

logger = logging.getLogger("pymongoose")

_HTTP_SCHEMES = ("http://", "https://", "ws://", "wss://")
# Mongoose treats any other scheme as plain TCP: refuse it, a typo must not open a port.
_KNOWN_SCHEMES = frozenset({"tcp", "udp", "http", "https", "ws", "wss", "mqtt", "mqtts", "tls", "ssl"})


_DEFAULT_LIMITS = HttpLimits()


# ---- the manager ---------------------------------------------------------------------

class Manager(LoopCore):
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
        log it on the ``pymongoose`` logger with the connection and event. The third
        positional argument, as in cymongoose.
    :param strict_messages: a message view used after its callback returned raises
        :class:`MessageExpiredError`; by default it reads as an empty message, as
        with the Cython bindings (see :mod:`pymongoose.messages`).

    Use it as a context manager, or call :meth:`close`, to free it.
    """

    def __init__(self, handler: Optional[EventHandler] = None, enable_wakeup: bool = False,
                 error_handler: Optional[Callable[[BaseException], Any]] = None, *,
                 events: Optional[Iterable[int]] = None, dns: Optional[str] = None,
                 dns_timeout_ms: Optional[int] = None, strict_messages: bool = False) -> None:
        if handler is not None and not callable(handler):
            raise TypeError("handler must be callable or None")
        if error_handler is not None and not callable(error_handler):
            raise TypeError("error_handler must be callable or None")
        mask = events_mask(events)
        super().__init__(handler, error_handler, mask)
        self._enable_wakeup = bool(enable_wakeup)
        self._tokens[STRICT_SLOT] = bool(strict_messages)
        self._warned_wakeup = False
        self._next_timer_id = 1
        self._configure_dns(dns, dns_timeout_ms)

    def _configure_dns(self, dns: Optional[str], timeout_ms: Optional[int]) -> None:
        if dns is None:
            v4, v6 = system_dns()
        else:
            v4, v6 = dns, None
            if not isinstance(dns, str) or not dns.startswith(("udp://", "tcp://")):
                raise ValueError(f"dns must be a URL like 'udp://127.0.0.1:53', not {dns!r}")
        self._c_strings[:] = [ffi.new("char[]", to_cstr(url, "dns")) for url in (v4, v6 or v4)]
        self._ptr.dns4.url, self._ptr.dns6.url = self._c_strings
        if timeout_ms is not None:
            self._ptr.dnstimeout = int_arg(timeout_ms, "dns_timeout_ms", 1)

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
            raise error(f"Failed to {what} {url!r}: not a URL with a supported scheme "
                        f"({', '.join(sorted(_KNOWN_SCHEMES))})")
        chosen = self._check_handler(handler)
        mask = self._mask if events is None else events_mask(events)
        if tls is None and client and url_is_ssl(url):
            tls = default_client_tls(url_host(url))
        c_tls, _keep = (ffi.NULL, None)
        if tls is not None:
            if not isinstance(tls, TlsOpts):
                raise TypeError(f"tls must be a TlsOpts, not {type(tls).__name__}")
            c_tls, _keep = c_tls_opts(tls, pointer, client)
        outer, self._opening_handler = self._opening_handler, chosen
        try:
            with capture_errors() as errors:
                conn_id = call(pointer, raw_url, mask, c_tls)
        finally:
            self._opening_handler = outer
        if conn_id == 0:
            raise error(f"Failed to {what} {url}: {_explain(errors)}")  # the Cython bindings' words
        conn = self._conns[conn_id]
        c = conn._c()
        if tls is not None and c is not None:
            set_connection_tls(c, tls, client)  # before MG_EV_ACCEPT or MG_EV_CONNECT starts TLS
        return conn

    @on_loop
    def listen(self, url: str, handler: Optional[EventHandler] = None, *, http: Optional[bool] = None,
               events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None,
               idle_timeout_ms: Optional[int] = None, max_body: Optional[int] = None,
               reuse_port: bool = False, limits: Optional[HttpLimits] = None, backlog: Optional[int] = None,
               fd: Optional[int] = None, uds: Optional[str] = None) -> Connection:
        """Listen on ``url`` (``"tcp://0.0.0.0:1234"``, ``"udp://..."``,
        ``"http://127.0.0.1:0"``...) and return the listening connection.

        ``http`` turns on the HTTP parser; None infers it from the scheme (http, https,
        ws, wss). Port 0 lets the OS choose: read it from ``local_addr``. Accepted
        connections inherit ``handler`` and ``events``; with ``tls`` each one starts
        TLS as it is accepted; with ``idle_timeout_ms`` each one closes after that
        long without I/O (see :meth:`Connection.set_idle_timeout`).

        An HTTP request whose body is larger than ``max_body`` bytes (3 MiB unless
        told; at most 1 GiB) is answered ``413 Content Too Large`` without reaching the
        handler, and the connection closed once the body is read::

            mgr.listen("http://0.0.0.0:8000", handler, max_body=64 * 1024 * 1024)

        Every HTTP request is screened as RFC 9112 asks before a handler sees it:
        ``400`` for a missing or repeated ``Host`` (HTTP/1.1), whitespace before a
        colon, conflicting ``Content-Length`` fields, ``Content-Length`` with
        ``Transfer-Encoding``, a final transfer coding other than chunked; ``431``,
        ``414`` and ``408`` as ``limits`` say (:class:`HttpLimits`: 64 KiB of head,
        8 KiB of target, 30 s for a head to arrive; no keep-alive timeout unless
        given). Each is followed by a close.

        ``reuse_port`` (Linux ``SO_REUSEPORT``) lets other processes listen on the same
        port, each with its own Manager; the kernel spreads new connections across
        them (``python -m pymongoose --workers N`` does this). Where there is no
        ``SO_REUSEPORT`` (Windows) it raises ``ValueError``.

        ``backlog``: how many new connections may wait to be accepted (2048 unless
        told). Instead of an address, a listener may take a socket made elsewhere;
        ``url`` then names only the protocol (``"http://"``, ``"https://"``...):

        - ``fd``: a listening (or bound) stream socket's descriptor, as systemd's
          socket activation or a supervisor hands over. The listener uses a
          duplicate; closing yours is up to you.
        - ``uds``: a Unix domain socket at this path, made now. A socket file left by
          a server that has gone is replaced; a live one is an error. The file stays
          when the listener closes (the next listen replaces it). Connections on it
          have no client address: ``remote_addr`` reads ``0.0.0.0:0``.

        Both need POSIX (``ValueError`` on Windows)::

            mgr.listen("http://", handler, uds="/run/app.sock")

        :raises ListenError: with the URL and the cause (address in use...).
        :raises TlsError: if ``tls`` cannot be used.
        """
        proto = lib.PM_PROTO_HTTP if _wants_http(url, http) else lib.PM_PROTO_TCP
        return self._listen(url, handler, proto, events, tls, idle_timeout_ms, max_body, reuse_port, limits,
                            backlog, fd, uds)

    def _listen(self, url: str, handler: Optional[EventHandler], proto: int, events: Optional[Iterable[int]],
                tls: Optional[TlsOpts], idle_timeout_ms: Optional[int], max_body: Optional[int] = None,
                reuse_port: bool = False, limits: Optional[HttpLimits] = None, backlog: Optional[int] = None,
                fd: Optional[int] = None, uds: Optional[str] = None) -> Connection:
        # Arguments are checked before a port is opened.
        if limits is not None and not isinstance(limits, HttpLimits):
            raise TypeError(f"limits must be an HttpLimits, not {type(limits).__name__}")
        if idle_timeout_ms is not None:
            int_arg(idle_timeout_ms, "idle_timeout_ms", 1)
        if max_body is not None:
            int_arg(max_body, "max_body", 1, MAX_BODY_CEILING)
        if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ValueError("reuse_port needs SO_REUSEPORT, which this platform lacks (Windows)")
        queue = DEFAULT_BACKLOG if backlog is None else check_backlog(backlog)
        if fd is not None or uds is not None:
            if fd is not None and uds is not None:
                raise ValueError("give fd or uds, not both")
            if reuse_port:
                raise ValueError("reuse_port applies to a socket Mongoose opens, not to fd or uds")
            if isinstance(url, str) and url.lower().startswith("udp:"):
                raise ValueError("fd and uds listen for streams, not udp://")
        own = -1
        if uds is not None:
            own = unix_listener(uds, queue)
        elif fd is not None:
            own = adoptable(fd)
        opened: List[int] = []

        def call(pointer: Any, raw_url: bytes, mask: int, c_tls: Any) -> int:
            opened.append(lib.pm_listen(pointer, raw_url, proto, mask, c_tls, bool(reuse_port), queue, own))
            return opened[-1]

        try:
            listener = self._open("listen on", ListenError, url, handler, events, call, tls)
        except BaseException:
            if own >= 0 and not any(opened):  # not adopted: still ours
                os.close(own)
            raise
        if idle_timeout_ms is not None:
            listener.set_idle_timeout(idle_timeout_ms)
        if max_body is not None:
            listener._call(lib.pm_conn_set_max_body, max_body)
        if proto == lib.PM_PROTO_HTTP:
            listener._call(lib.pm_conn_set_http_limits, *(limits or _DEFAULT_LIMITS).c_args())
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
                    idle_timeout_ms: Optional[int] = None, max_body: Optional[int] = None,
                    limits: Optional[HttpLimits] = None) -> Connection:
        """:meth:`listen` with the HTTP parser on."""
        return self.listen(url, handler, http=True, events=events, tls=tls, idle_timeout_ms=idle_timeout_ms,
                           max_body=max_body, limits=limits)

    def http_connect(self, url: str, handler: Optional[EventHandler] = None, *,
                     events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None) -> Connection:
        """:meth:`connect` with the HTTP parser on; send the request on MG_EV_CONNECT."""
        return self.connect(url, handler, http=True, events=events, tls=tls)

    @on_loop
    def ws_connect(self, url: str, handler: Optional[EventHandler] = None, *,
                   headers: Optional[Mapping[str, str]] = None, events: Optional[Iterable[int]] = None,
                   tls: Optional[TlsOpts] = None, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                   compression: bool = True) -> Connection:
        """Open a WebSocket client connection (``ws://`` or ``wss://``), sending the
        handshake with ``headers`` added; ``MG_EV_WS_OPEN`` says it is ready.

        As for :meth:`Connection.ws_upgrade`: a message from the server larger than
        ``max_message_size`` bytes fails the connection with close code 1009, and
        with ``compression`` the handshake offers permessage-deflate (used if the
        server agrees; a response agreeing to anything else fails the connection)."""
        lines = extra_header_lines(headers)
        limit = message_size_arg(max_message_size)
        deflate = compression_arg(compression)
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_ws_connect(p, u, lines, limit, deflate, m, t), tls,
                          client=True)

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
        int_arg(keepalive, "keepalive (seconds)", 0, 65535)
        if will_message and not will_topic:
            raise ValueError("will_message needs a will_topic")
        if version not in (4, 5) or isinstance(version, bool):
            raise ValueError(f"version must be 4 (MQTT 3.1.1) or 5, not {version!r}")
        if version == 4 and (properties is not None or will_properties is not None):
            raise ValueError("properties need MQTT 5 (version=5)")
        keep: List[Any] = []
        opts = mqtt_opts(keep, client_id=check_text(client_id, "client_id", allow_empty=True),
                         user=check_text(username, "username", allow_empty=True),
                         **{"pass": check_text(password, "password", allow_empty=True)},
                         topic=check_topic(will_topic, wildcards=False) if will_topic else b"",
                         message=to_bytes(will_message, "will_message"), qos=check_qos(will_qos),
                         retain=bool(will_retain), clean=bool(clean_session), keepalive=keepalive, version=version)
        opts.props, opts.num_props = mqtt_props(keep, properties)
        opts.will_props, opts.num_will_props = mqtt_props(keep, will_properties)
        return self._open("connect to", ConnectError, url, handler, events,
                          lambda p, u, m, t: lib.pm_mqtt_connect(p, u, opts, m, t), tls, client=True)

    @on_loop
    def mqtt_listen(self, url: str, handler: Optional[EventHandler] = None, *,
                    events: Optional[Iterable[int]] = None, tls: Optional[TlsOpts] = None,
                    idle_timeout_ms: Optional[int] = None) -> Connection:
        """Listen for MQTT clients (broker side): each packet arrives as
        ``MG_EV_MQTT_CMD``; answering CONNECT, SUBSCRIBE and PINGREQ is the
        handler's job (see examples/mqtt_broker.py). QoS acknowledgements are automatic.
        ``events``, ``tls`` and ``idle_timeout_ms`` work as with :meth:`listen`."""
        return self._listen(url, handler, lib.PM_PROTO_MQTT, events, tls, idle_timeout_ms)

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
        int_arg(milliseconds, "milliseconds", 0, 2**53)
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

    # ---- wakeups from other threads ---------------------------------------------

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
        int_arg(connection_id, "connection_id")
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

    # ---- introspection ----------------------------------------------------------

    @property
    def wakeup_id(self) -> int:
        """The id of the connection behind Mongoose's wakeup pipe, or 0 when the
        manager was made without ``enable_wakeup=True`` (as cymongoose)."""
        pointer = self._ptr
        return int(lib.pm_mgr_wakeup_id(pointer)) if self._enable_wakeup and pointer is not None else 0

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
