"""WebSocket methods of :class:`~pymongoose.Connection`.

A server upgrades an HTTP request, then exchanges messages::

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            conn.ws_send(data.data, WEBSOCKET_OP_BINARY if data.op == WEBSOCKET_OP_BINARY
                         else WEBSOCKET_OP_TEXT)

A client is made by :meth:`Manager.ws_connect`; ``MG_EV_WS_OPEN`` says it is ready.
Mongoose answers pings and reassembles fragmented messages itself.
"""

from __future__ import annotations

from threading import get_ident
from typing import Mapping, Optional

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

_pm_ws_send = lib.pm_ws_send  # bound once: the hot path skips a lookup on lib

_OPCODES = frozenset({WEBSOCKET_OP_CONTINUE, WEBSOCKET_OP_TEXT, WEBSOCKET_OP_BINARY, WEBSOCKET_OP_CLOSE,
                      WEBSOCKET_OP_PING, WEBSOCKET_OP_PONG})


def extra_header_lines(headers: Optional[Mapping[str, str]]) -> bytes:
    """Checked ``Name: value\\r\\n`` lines for a handshake (no default Content-Type)."""
    return format_headers(headers, default_type=b"") if headers else b""


class WebSocketMethods(ConnectionBase):
    """WebSocket methods of :class:`~pymongoose.Connection`."""

    __slots__ = ()

    @on_loop
    def ws_upgrade(self, message: HttpMessage,
                   extra_headers: Optional[Mapping[str, str]] = None) -> None:
        """Answer the HTTP request ``message`` with a WebSocket handshake; the
        handler then gets ``MG_EV_WS_OPEN`` (at once) and ``MG_EV_WS_MSG``. A request
        that is not a WebSocket upgrade is answered 426 and closed."""
        if not isinstance(message, HttpMessage):
            raise TypeError("message must be the HttpMessage passed to this handler")
        hm = message._ptr()
        self._call(lib.pm_ws_upgrade, hm, extra_header_lines(extra_headers), action="ws_upgrade")

    def ws_send(self, data: BytesLike, op: int = WEBSOCKET_OP_TEXT) -> bool:
        """Send one WebSocket message (str is UTF-8 encoded); True.

        :raises ConnectionClosedError: once the connection has closed."""
        manager = self._manager
        if manager._owner != get_ident():  # @on_loop's check, inline: a hot path
            queued: bool = call_owning_loop(manager, WebSocketMethods.ws_send, self, data, op)
            return queued
        if type(data) is str:
            payload = data.encode()
        else:
            payload = data if type(data) is bytes else to_bytes(data, "data")
        mgr = manager._ptr
        try:
            sent = 0 if mgr is None else _pm_ws_send(mgr, self._id, payload, len(payload), op)
        except TypeError:  # op is not an int
            sent = -1
        if sent > 0:
            return True
        if sent < 0 or op not in _OPCODES:  # the shim checks the opcode
            raise ValueError(f"op must be one of the WEBSOCKET_OP_* constants, not {op!r}")
        self._dropped("ws_send")
        return False
