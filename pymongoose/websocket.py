"""WebSocket methods of :class:`~pymongoose.Connection`.

A server upgrades an HTTP request, then exchanges messages::

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            conn.ws_send(data.data, WEBSOCKET_OP_BINARY if data.op == WEBSOCKET_OP_BINARY
                         else WEBSOCKET_OP_TEXT)

A client is made by :meth:`Manager.ws_connect`; ``MG_EV_WS_OPEN`` says it is ready.
Mongoose answers pings and reassembles fragmented messages itself. What reaches a
handler follows RFC 6455: a peer that breaks it (bad UTF-8 in a text message,
reserved bits or opcodes, a message over ``max_message_size``...) gets a close frame
with the matching code, and the handler sees nothing more from it (the shim checks
every frame in C, ``_native/ws.c``).
"""

from __future__ import annotations

from threading import get_ident
from typing import Mapping, Optional

from ._args import int_arg
from ._binding import lib
from ._connection_base import ConnectionBase
from ._loop import call_owning_loop, on_loop
from ._text import BytesLike, to_bytes
from .events import (
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_CLOSE,
    WEBSOCKET_OP_CONTINUE,
    WEBSOCKET_OP_PING,
    WEBSOCKET_OP_PONG,
    WEBSOCKET_OP_TEXT,
)
from .http import format_headers
from .messages import HttpMessage

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE"]

_pm_ws_send = lib.pm_ws_send  # bound once: the hot path skips a lookup on lib

_OPCODES = frozenset({WEBSOCKET_OP_CONTINUE, WEBSOCKET_OP_TEXT, WEBSOCKET_OP_BINARY, WEBSOCKET_OP_CLOSE,
                      WEBSOCKET_OP_PING, WEBSOCKET_OP_PONG})


#: A message larger than this fails its connection with close code 1009 (RFC 6455
#: 7.4.1), as soon as the frame header announcing it arrives (``max_message_size=``
#: changes it).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
# Mongoose's frame parser takes frames up to 1 GiB; a message is at least one frame.
_MESSAGE_SIZE_CEILING = 1024 * 1024 * 1024


def message_size_arg(value: int) -> int:
    """A checked ``max_message_size``: from 1 byte to 1 GiB."""
    return int_arg(value, "max_message_size", 1, _MESSAGE_SIZE_CEILING)


def compression_arg(value: bool) -> bool:
    """A checked ``compression`` flag (a bool: a truthy string would hide a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"compression must be True or False, not {type(value).__name__}")
    return value


def extra_header_lines(headers: Optional[Mapping[str, str]]) -> bytes:
    """Checked ``Name: value\\r\\n`` lines for a handshake (no default Content-Type)."""
    return format_headers(headers, default_type=b"") if headers else b""


class WebSocketMethods(ConnectionBase):
    """WebSocket methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    @on_loop
    def ws_upgrade(self, message: HttpMessage,
                   extra_headers: Optional[Mapping[str, str]] = None, *,
                   max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, compression: bool = True) -> None:
        """Answer the HTTP request ``message`` with a WebSocket handshake; the
        handler then gets ``MG_EV_WS_OPEN`` (at once) and ``MG_EV_WS_MSG``. A request
        that is not a WebSocket upgrade is answered 426 and closed.

        A message larger than ``max_message_size`` bytes (16 MiB unless told; at
        most 1 GiB) fails the connection with close code 1009 as soon as its frame
        header arrives, before its bytes are buffered; a compressed message, once it
        inflates past it.

        With ``compression`` (the default), a client that offers permessage-deflate
        (RFC 7692; browsers do) gets it: messages are compressed and inflated in C,
        and handlers see plain bytes either way. ``extra_headers`` naming
        ``Sec-WebSocket-Extensions`` leave the negotiation to the caller::

            conn.ws_upgrade(data, max_message_size=64 * 1024)  # small messages only
            conn.ws_upgrade(data, compression=False)           # never compress
        """
        if not isinstance(message, HttpMessage):
            raise TypeError("message must be the HttpMessage passed to this handler")
        limit = message_size_arg(max_message_size)
        deflate = compression_arg(compression)
        hm = message._ptr()
        self._call(lib.pm_ws_upgrade, hm, extra_header_lines(extra_headers), limit, deflate,
                   action="ws_upgrade")

    def ws_send(self, data: BytesLike, op: int = WEBSOCKET_OP_TEXT) -> bool:
        """Send one WebSocket message (str is UTF-8 encoded); True.

        :raises ConnectionClosedError: once the connection has closed."""
        manager = self._manager
        if manager._owner != get_ident():  # @on_loop's check, inline: a hot path
            queued: bool = call_owning_loop(manager, WebSocketMethods.ws_send, self, data, op)
            return queued
        if type(data) is str:  # common enough not to go through cffi's TypeError below
            data = data.encode()
        try:  # a closed manager's pointer is None, which C takes as NULL: not sent
            sent = _pm_ws_send(manager._ptr, self._id, data, len(data), op)
        except (TypeError, OverflowError):  # data cffi does not take as it is (bytearray...), a bad op
            return self._ws_send_converted(data, op)
        if sent > 0:
            return True
        return self._ws_send_refused(sent, op)

    def _ws_send_converted(self, data: BytesLike, op: int) -> bool:
        """ws_send() for data that is neither bytes nor str (cffi passes only bytes to
        C, and refuses the rest: the common cases make no other check)."""
        data = data.encode() if isinstance(data, str) else to_bytes(data, "data")
        try:
            sent = _pm_ws_send(self._manager._ptr, self._id, data, len(data), op)
        except (TypeError, OverflowError):  # op is not an int, or not a C int
            sent = -1
        return sent > 0 or self._ws_send_refused(sent, op)

    def _ws_send_refused(self, sent: int, op: int) -> bool:
        if sent < 0 or op not in _OPCODES:  # the shim checks the opcode
            raise ValueError(f"op must be one of the WEBSOCKET_OP_* constants, not {op!r}")
        self._dropped("ws_send")
        return False
