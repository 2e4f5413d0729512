"""An ASGI WebSocket exchange, from the upgrade request to the close.

The application accepts (or refuses, with an HTTP response: the
``websocket.http.response`` extension) when it likes; messages it has not read
yet pause reading from the client beyond ``_INBOX_HIGH`` bytes. Its C calls, by
connection id, run owning the loop.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Deque, MutableMapping, Optional, Protocol

from .._binding import ffi, lib
from .._loop import call_on_loop
from ..connection import Connection
from ..errors import ClientDisconnected
from ..events import WEBSOCKET_OP_BINARY, WEBSOCKET_OP_CLOSE, WEBSOCKET_OP_PING, WEBSOCKET_OP_PONG, WEBSOCKET_OP_TEXT
from ..messages import WsMessage
from ..websocket import extra_header_lines
from . import intake
from .asgi_http import HttpCycle, ServerSide, Signal, asgi_message_error, to_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

# Received messages the application has not read yet: reading from the client
# pauses beyond this many bytes.
_INBOX_HIGH = 4 * 1024 * 1024

_pm_ws_send = lib.pm_ws_send


class WebSocketServerSide(ServerSide, Protocol):
    """What a WebSocket exchange uses of its server, on top of an HTTP one's."""

    _high_water: int
    _max_message: int
    _compression: bool


class WebSocketCycle:
    """One WebSocket, from the upgrade request to its close."""

    __slots__ = ("server", "conn", "scope", "head", "state", "inbox", "sizes", "inbox_size", "paused", "event",
                 "close_code", "close_reason", "sent_close", "task", "http", "pinged")

    _CONNECTING, _OPEN, _CLOSED, _DENIED = range(4)

    def __init__(self, server: WebSocketServerSide, conn: Connection, scope: Scope, head: bytes) -> None:
        self.server = server
        self.conn = conn
        self.scope = scope
        self.head = head              # the upgrade request, accepted later
        self.state = self._CONNECTING
        self.inbox: Deque[Message] = deque([{"type": "websocket.connect"}])
        self.sizes: Deque[int] = deque()  # the bytes of each websocket.receive waiting
        self.inbox_size = 0               # their sum
        self.paused = False
        self.event = Signal()
        self.close_code: Optional[int] = None  # from the client's close frame
        self.close_reason = ""
        self.sent_close = False
        self.task: Optional[asyncio.Task[None]] = None
        self.http: Optional[HttpCycle] = None  # a denial response (websocket.http.response)
        self.pinged: Optional[float] = None  # when the server's ping unanswered yet was sent

    # -- the loop side

    def on_message(self, message: WsMessage) -> None:
        data = message.data
        if message.flags & 15 == WEBSOCKET_OP_TEXT:
            self.inbox.append({"type": "websocket.receive", "text": data.decode("utf-8", "replace")})
        else:
            self.inbox.append({"type": "websocket.receive", "bytes": data})
        self.sizes.append(len(data))
        self.inbox_size += len(data)
        if self.server.metrics is not None:
            self.server.metrics.websocket(received=True)
        if self.inbox_size > _INBOX_HIGH and not self.paused:
            self.paused = True
            self.conn.is_full = True
        self.event.wake()

    def on_control(self, message: WsMessage) -> None:
        if message.flags & 15 == WEBSOCKET_OP_PONG:
            self.pinged = None
        elif message.flags & 15 == WEBSOCKET_OP_CLOSE and self.close_code is None:
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
            if self.paused and self.inbox_size < _INBOX_HIGH // 4:
                self.paused = False
                intake.resume(self.conn)
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if kind == "websocket.send":
            if state != self._OPEN:
                if state == self._CLOSED or self.sent_close:
                    raise ClientDisconnected(f"WebSocket connection {self.conn.id} is closed")
                raise asgi_message_error(kind, "websocket.accept or websocket.close first")
            text = message.get("text")
            if text is not None:
                payload, op = text.encode(), WEBSOCKET_OP_TEXT
            else:
                payload, op = to_bytes(message.get("bytes"), "bytes"), WEBSOCKET_OP_BINARY
            pending = call_on_loop(self.server._manager, self._send_frame, payload, op)
            if pending < 0:
                raise ClientDisconnected(f"WebSocket connection {self.conn.id} is closed")
            if self.server.metrics is not None:
                self.server.metrics.websocket(received=False)
            if pending > self.server._high_water:
                await self.server._room(self.conn, self)
        elif kind == "websocket.accept":
            if state != self._CONNECTING:
                raise asgi_message_error(kind, "nothing: the WebSocket is already accepted or closed")
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
                raise asgi_message_error(kind, "websocket.send or websocket.close: already accepted")
            await self._deny(message)
        else:
            raise asgi_message_error(kind, "websocket.accept, websocket.send or websocket.close")

    def _accept(self, message: Message) -> None:
        lines = b""
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            lines = extra_header_lines({"Sec-WebSocket-Protocol": subprotocol})
        headers = message.get("headers")
        if headers:
            lines += extra_header_lines([(_text(n), _text(v)) for n, v in headers])  # type: ignore[arg-type]
        accepted = call_on_loop(self.server._manager, self._upgrade, lines)
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
        call_on_loop(self.server._manager, self._send_close, payload)

    async def _deny(self, message: Message) -> None:
        """An HTTP response instead of the handshake (the websocket.http.response
        extension; also the 403 of a close before accept); the connection closes
        once it is sent."""
        if self.http is None:
            self.state = self._DENIED
            self.http = HttpCycle(self.server, self.conn, self.scope, b"", False)
        message = dict(message, type=message["type"][len("websocket."):])
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), (b"connection", b"close")]
        await self.http.send(message)

    # -- C calls, owning the loop

    def _send_frame(self, payload: bytes, op: int) -> int:
        """Queue a frame; the bytes now waiting to be sent, or -1 once closed."""
        mgr = self.server._mgr()
        if mgr is None or _pm_ws_send(mgr, self.conn.id, payload, len(payload), op) <= 0:
            return -1
        c = lib.pm_conn(mgr, self.conn.id)
        return -1 if c == ffi.NULL else int(c.send.len)

    def _upgrade(self, lines: bytes) -> int:
        mgr = self.server._mgr()
        if mgr is None:
            return 0
        server = self.server
        return int(lib.pm_ws_accept(mgr, self.conn.id, self.head, len(self.head), lines, server._max_message,
                                    server._compression))

    def keepalive(self, now: float, interval: float, timeout: float) -> None:
        """On the loop, every so often: ping the client when ``interval`` has passed
        since the last answered ping; close (1011) if one is unanswered ``timeout``
        after it was sent."""
        if self.state != self._OPEN or self.sent_close:
            return
        if self.pinged is None:
            if self._send_frame(b"", WEBSOCKET_OP_PING) >= 0:
                self.pinged = now
        elif now - self.pinged >= timeout:
            self.sent_close = True
            if self.close_code is None:
                self.close_code, self.close_reason = 1011, "keepalive ping timeout"
            self._send_close((1011).to_bytes(2, "big") + b"keepalive ping timeout")

    def _send_close(self, payload: bytes) -> None:
        mgr = self.server._mgr()
        if mgr is not None and _pm_ws_send(mgr, self.conn.id, payload, len(payload), WEBSOCKET_OP_CLOSE) > 0:
            lib.pm_conn_drain(lib.pm_conn(mgr, self.conn.id))


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
