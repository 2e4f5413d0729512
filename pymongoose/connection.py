"""A network connection: a thin object over one Mongoose connection.

Connections are made by :class:`~pymongoose.Manager` (``listen``, ``connect``...) and
handed to handlers; you never construct one. Once its ``MG_EV_CLOSE`` has been
delivered a connection is *closed*: its flags and addresses keep their last values,
its buffers read as empty, calls that would send raise
:class:`~pymongoose.ConnectionClosedError` (a RuntimeError, as with cymongoose),
``close()`` and ``drain()`` do nothing, and nothing touches the freed C memory.
"""

from __future__ import annotations

import logging
import socket
from threading import get_ident
from typing import Any, Callable, FrozenSet, Iterable, NamedTuple, Optional

from ._args import int_arg
from ._binding import ffi, lib
from ._loop import call_owning_loop, on_loop
from ._text import BytesLike, to_bytes, to_cstr
from .http import HttpMethods
from .mqtt import MqttMethods
from .tls import TlsMethods
from .websocket import WebSocketMethods

_pm_send = lib.pm_send  # bound once: the hot path skips a lookup on lib

logger = logging.getLogger("pymongoose")

#: The type of a handler: called as ``handler(conn, event, data)`` on the polling
#: thread; what ``data`` is depends on the event (see :mod:`pymongoose.events`).
EventHandler = Callable[["Connection", int, Any], None]


class Address(NamedTuple):
    """A connection's local or remote end: ``(ip, port)``.

    >>> Address("::1", 8000).is_ipv6
    True
    """

    ip: str
    port: int

    @property
    def is_ipv6(self) -> bool:
        """True for an IPv6 address."""
        return ":" in self.ip


def events_mask(events: Optional[Iterable[int]]) -> int:
    """The C event mask for ``events`` (None: every event)."""
    if events is None:
        return 0xFFFFFFFF
    if isinstance(events, (str, bytes)) or not hasattr(events, "__iter__"):
        raise TypeError("events must be an iterable of MG_EV_* numbers or None")
    mask = 0
    for event in events:
        int_arg(event, "an event to filter", 0, 31)
        mask |= 1 << event
    return mask


class _Final:
    """What a connection looked like when it closed: the values its read-only
    properties keep."""

    __slots__ = ("flags", "local", "remote", "recv_len", "send_len", "recv_size", "send_size")

    def __init__(self, c: Any = None) -> None:
        self.flags = lib.PM_IS_CLOSING
        self.local = self.remote = None
        self.recv_len = self.recv_size = self.send_len = self.send_size = 0
        if c is not None:  # its buffers are freed with it: they read as empty
            self.flags |= int(lib.pm_conn_flags(c))
            self.local, self.remote = _read_address(c, False), _read_address(c, True)


_CLOSED = _Final()  # for a connection whose MG_EV_CLOSE bookkeeping did not run


class Connection(HttpMethods, WebSocketMethods, MqttMethods, TlsMethods):
    """One connection of a :class:`~pymongoose.Manager`.

    Handlers receive it as their first argument::

        def handler(conn, event, data):
            if event == MG_EV_HTTP_MSG:
                conn.reply(200, "Hello, World!")

    A connection is named by its id: every call looks the C connection up by id, so
    a closed connection can never reach freed memory.
    """

    __slots__ = ()

    # ---- identity and handler --------------------------------------------------

    @property
    def manager(self) -> Any:  # the Manager; typed loosely, as Manager sits above this module
        """The manager this connection belongs to."""
        return self._manager

    @property
    def handler(self) -> Optional[EventHandler]:
        """The handler this connection's events go to."""
        return self._handler

    def set_handler(self, handler: Optional[EventHandler]) -> None:
        """Send this connection's events to ``handler`` (None: the manager's)."""
        if handler is not None and not callable(handler):
            raise TypeError("handler must be callable or None")
        self._handler = handler if handler is not None else self._manager._handler

    @property
    def events(self) -> Optional[FrozenSet[int]]:
        """The events delivered to Python for this connection; None means all.

        Assign an iterable of ``MG_EV_*`` numbers to narrow it at run time."""
        if self._mask == 0xFFFFFFFF:
            return None
        return frozenset(ev for ev in range(32) if self._mask >> ev & 1)

    @events.setter
    def events(self, events: Optional[Iterable[int]]) -> None:
        self._set_mask(events_mask(events))

    @on_loop
    def _set_mask(self, mask: int) -> None:
        self._mask = mask
        self._manager._narrowed.add(self._id)  # events already deferred are checked again
        self._call(lib.pm_conn_set_events, mask)

    def set_idle_timeout(self, milliseconds: Optional[int]) -> None:
        """Close this connection after ``milliseconds`` without reading or writing
        (MG_EV_ERROR "idle timeout", then MG_EV_CLOSE); None turns it off. On a
        listener it applies to the connections it accepts from now on: the cure for
        clients that connect and stay silent, or dribble a request (slowloris)."""
        self._set_idle_timeout(0 if milliseconds is None else int_arg(milliseconds, "milliseconds", 1))

    @on_loop
    def _set_idle_timeout(self, milliseconds: int) -> None:
        self._call(lib.pm_conn_set_idle_timeout, milliseconds)

    @property
    def is_closed(self) -> bool:
        """True once the connection's MG_EV_CLOSE has been delivered."""
        return self._closed

    # ---- state flags ---------------------------------------------------------------

    @on_loop
    def _flags(self) -> int:
        c = self._c()
        return int(lib.pm_conn_flags(c)) if c is not None else (self._final or _CLOSED).flags

    is_listening = property(lambda self: bool(self._flags() & lib.PM_IS_LISTENING), doc="Listening socket?")
    is_client = property(lambda self: bool(self._flags() & lib.PM_IS_CLIENT), doc="Outbound connection?")
    is_accepted = property(lambda self: bool(self._flags() & lib.PM_IS_ACCEPTED), doc="Accepted by a listener?")
    is_tls = property(lambda self: bool(self._flags() & lib.PM_IS_TLS), doc="TLS enabled?")
    is_udp = property(lambda self: bool(self._flags() & lib.PM_IS_UDP), doc="UDP socket?")
    is_websocket = property(lambda self: bool(self._flags() & lib.PM_IS_WEBSOCKET), doc="Upgraded to WebSocket?")
    is_readable = property(lambda self: bool(self._flags() & lib.PM_IS_READABLE), doc="Data available to read?")
    is_writable = property(lambda self: bool(self._flags() & lib.PM_IS_WRITABLE), doc="Socket writable?")
    is_draining = property(lambda self: bool(self._flags() & lib.PM_IS_DRAINING), doc="Closing once sent?")
    is_resolving = property(lambda self: bool(self._flags() & lib.PM_IS_RESOLVING), doc="DNS lookup running?")
    is_connecting = property(lambda self: bool(self._flags() & lib.PM_IS_CONNECTING), doc="Connect running?")
    is_closing = property(lambda self: bool(self._flags() & lib.PM_IS_CLOSING), doc="Closing (or closed)?")

    @property
    def is_full(self) -> bool:
        """Reads paused? Set it True to stop reading (backpressure), False to resume."""
        return bool(self._flags() & lib.PM_IS_FULL)

    @is_full.setter
    def is_full(self, full: bool) -> None:
        self._set_full(bool(full))

    @on_loop
    def _set_full(self, full: bool) -> None:
        self._call(lib.pm_conn_set_full, full)

    # ---- addresses and buffers --------------------------------------------------

    def _address(self, remote: bool) -> Optional[Address]:
        # Once known for good (after connect/accept), an address never changes, so
        # it is kept and may then be read from any thread.
        cached = self._addresses[remote]
        return cached if cached is not None else self._read_address(remote)

    @on_loop
    def _read_address(self, remote: bool) -> Optional[Address]:
        c = self._c()
        if c is None:
            final = self._final or _CLOSED
            return final.remote if remote else final.local
        address = _read_address(c, remote)
        if not lib.pm_conn_flags(c) & (lib.PM_IS_RESOLVING | lib.PM_IS_CONNECTING):
            self._addresses[remote] = address
        return address

    @property
    def local_addr(self) -> Optional[Address]:
        """Local end as ``(ip, port)``; for a listener on port 0, the chosen port."""
        return self._address(False)

    @property
    def remote_addr(self) -> Optional[Address]:
        """Remote end as ``(ip, port)``."""
        return self._address(True)

    @on_loop
    def _buffer_number(self, buffer: str, field: str) -> int:
        c = self._c()
        if c is None:
            return int(getattr(self._final or _CLOSED, f"{buffer}_{field}"))
        return int(getattr(getattr(c, buffer), "len" if field == "len" else "size"))

    recv_len = property(lambda self: self._buffer_number("recv", "len"), doc="Bytes in the receive buffer.")
    send_len = property(lambda self: self._buffer_number("send", "len"), doc="Bytes waiting to be sent.")
    recv_size = property(lambda self: self._buffer_number("recv", "size"), doc="Receive buffer capacity.")
    send_size = property(lambda self: self._buffer_number("send", "size"), doc="Send buffer capacity.")

    @on_loop
    def recv_data(self, length: int = -1) -> bytes:
        """Return up to ``length`` bytes (-1: all) of the receive buffer, leaving them there."""
        return self._peek("recv", length)

    @on_loop
    def send_data(self, length: int = -1) -> bytes:
        """Return up to ``length`` bytes (-1: all) of the send buffer, leaving them there."""
        return self._peek("send", length)

    def _peek(self, which: str, length: int) -> bytes:
        int_arg(length, "length (-1: all)", -1)
        c = self._c()
        if c is None:
            return b""
        buffer = getattr(c, which)
        n = buffer.len if length == -1 else min(length, buffer.len)
        return ffi.unpack(ffi.cast("char *", buffer.buf), n) if n else b""

    @on_loop
    def consume(self, length: int) -> None:
        """Discard the first ``length`` bytes of the receive buffer (after reading
        them with :meth:`recv_data` in an ``MG_EV_READ`` handler)."""
        int_arg(length, "length", 0)
        c = self._c()
        if c is not None:
            recv = c.recv
            n = min(length, recv.len)
            if n:
                ffi.memmove(recv.buf, recv.buf + n, recv.len - n)
                recv.len -= n
                self._manager._consumer = self

    # ---- sending -------------------------------------------------------------------

    def send(self, data: BytesLike) -> bool:
        """Queue raw bytes (str is UTF-8 encoded) for sending; True.

        :raises ConnectionClosedError: once the connection has closed."""
        manager = self._manager
        if manager._owner != get_ident():  # @on_loop's check, inline: a hot path
            queued: bool = call_owning_loop(manager, Connection.send, self, data)
            return queued
        payload = data if type(data) is bytes else to_bytes(data, "data")
        mgr = manager._ptr
        if mgr is not None and _pm_send(mgr, self._id, payload, len(payload)):
            return True
        self._dropped("send")
        return False

    # ---- closing ---------------------------------------------------------------------

    @on_loop
    def close(self) -> None:
        """Close now, discarding unsent data; MG_EV_CLOSE follows on the next poll."""
        self._call(lib.pm_conn_close)

    @on_loop
    def drain(self) -> None:
        """Close once everything queued has been sent (graceful close)."""
        self._call(lib.pm_conn_drain)

    @on_loop
    def error(self, message: str) -> None:
        """Raise MG_EV_ERROR with ``message`` on this connection, then close it."""
        self._call(lib.pm_error, to_cstr(message, "message"), action="error")

    # ---- DNS and SNTP -------------------------------------------------------------

    @on_loop
    def resolve(self, url: str) -> None:
        """Resolve ``url``'s host with the manager's DNS server, then connect this
        connection to it (Mongoose's mg_resolve): ``MG_EV_RESOLVE``, then
        ``MG_EV_CONNECT`` or ``MG_EV_ERROR``. To just look a name up, use
        :meth:`Manager.connect` on a ``udp://name:port`` URL and read
        ``remote_addr`` on ``MG_EV_RESOLVE``."""
        self._call(lib.pm_resolve, ffi.new("char[]", to_cstr(url, "url")), action="resolve")

    @on_loop
    def resolve_cancel(self) -> None:
        """Cancel a DNS lookup in progress for this connection."""
        self._call(lib.pm_resolve_cancel)

    @on_loop
    def sntp_request(self) -> None:
        """Ask the SNTP server for the time (on a :meth:`Manager.sntp_connect`
        connection); ``MG_EV_SNTP_TIME`` brings it as epoch milliseconds."""
        self._call(lib.mg_sntp_request, action="sntp_request")

    # ---- bookkeeping for the Manager --------------------------------------------

    def _retire(self, c: Any) -> None:
        """Mark closed and record the final state (on MG_EV_CLOSE, c still valid)."""
        self._closed = True
        self._final = _Final(c)

    def __repr__(self) -> str:
        manager = self._manager
        if manager._owner != get_ident() and manager._lock.locked():
            return f"<Connection id={self._id}>"  # a repr never waits for a poll
        flags = self._flags()
        local, remote = self.local_addr, self.remote_addr
        kind = "udp" if flags & lib.PM_IS_UDP else "tcp"
        if flags & lib.PM_IS_TLS:
            kind += "+tls"
        if flags & lib.PM_IS_WEBSOCKET:
            kind += " websocket"
        if flags & lib.PM_IS_LISTENING:
            where = f"listening on {_format(local)}"
        else:
            where = f"{_format(local)} <-> {_format(remote)}"
        state = " closed" if self._closed else (" closing" if flags & lib.PM_IS_CLOSING else "")
        return f"<Connection id={self._id} {kind} {where}{state}>"


def _format(address: Optional[Address]) -> str:
    if address is None:
        return "?"
    return f"[{address.ip}]:{address.port}" if address.is_ipv6 else f"{address.ip}:{address.port}"


def _read_address(p: Any, remote: bool) -> Address:
    ip = ffi.new("uint8_t[16]")
    is_ip6 = ffi.new("bool *")
    port = lib.pm_conn_addr(p, remote, ip, is_ip6)
    raw = bytes(ffi.buffer(ip))
    if is_ip6[0]:
        return Address(socket.inet_ntop(socket.AF_INET6, raw), port)
    return Address(socket.inet_ntop(socket.AF_INET, raw[:4]), port)


__all__ = ["Address", "Connection", "EventHandler"]
