"""An ASGI HTTP exchange: the ``receive`` and ``send`` of one request's task.

``send`` writes through the core's checked writer (:mod:`.writer`), owning the
loop; a head the writer refuses raises
:class:`~pymongoose.errors.InvalidResponseError` in the application, which the
server answers 500 (:meth:`ASGIServer._fail`). A body streamed in (:mod:`.intake`)
is taken with ``receive`` in pieces.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Deque, List, MutableMapping, Optional, Protocol

from .._loop import call_on_loop
from ..connection import Connection
from . import intake, writer
from .accesslog import AccessFormat, asgi_access, log_access
from .config import BODY_PAUSE_OVER
from .metrics import Region

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class ServerSide(Protocol):
    """What an exchange uses of its server (:class:`~pymongoose.asgi.ASGIServer`)."""

    _manager: Any
    _access_log: bool
    _access_line: Optional[AccessFormat]
    requests_served: int
    metrics: Optional[Region]

    def _mgr(self) -> Any: ...

    async def _room(self, conn: Connection, cycle: Any) -> None: ...


def asgi_message_error(kind: str, expected: str) -> RuntimeError:
    return RuntimeError(f"ASGI: unexpected message {kind!r}; expected {expected}")


def to_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"ASGI: {what} must be bytes, not {type(value).__name__}")


class Signal(List["asyncio.Future[None]"]):
    """Wakes the coroutines of one exchange waiting for the loop side (bytes arrived,
    room to send, the client left): each re-checks what it waits for.

    It is the list of their futures itself: one is made per request, and a list
    subclass without ``__init__`` is made without running any Python; an empty one
    (nobody waits, as usual) is false, so callers skip ``wake()``."""

    __slots__ = ()

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self.append(future)
        try:
            await future
        finally:
            if future in self:
                self.remove(future)

    def wake(self) -> None:
        futures = self[:]
        self.clear()
        for future in futures:
            if not future.done():
                future.set_result(None)


class HttpCycle:
    """One HTTP request and its response: ``receive`` and ``send`` of its task."""

    __slots__ = ("server", "conn", "scope", "body", "stream", "http10", "started", "status", "headers",
                 "framing", "done", "gone", "event", "task", "sent", "began")

    def __init__(self, server: ServerSide, conn: Connection, scope: Scope, body: Optional[bytes],
                 http10: bool) -> None:
        self.server = server
        self.conn = conn
        self.scope = scope
        self.body = body                  # the whole body, until the first receive()
        self.stream: Optional[BodyStream] = None  # or the body, still arriving
        self.http10 = http10
        self.started = False              # http.response.start came
        self.status = 0
        self.headers: Any = ()
        self.framing = writer.NOT_STARTED  # once the head is queued: how the body is framed
        self.done = False                 # the whole response is queued
        self.gone = False                 # the client went away
        self.event = Signal()            # wakes receive() and send() waiting on the loop
        self.task: Optional[asyncio.Task[None]] = None
        self.sent = 0                     # body bytes queued, for the access log
        self.began = time.perf_counter() if server._access_log or server.metrics else 0.0

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
                raise asgi_message_error(kind, "http.response.start" if not self.started else "nothing more")
            body = message.get("body", b"")
            more = bool(message.get("more_body", False))
            if self.gone:
                return  # ASGI 2.3: dropped
            if type(body) is not bytes:
                body = to_bytes(body, "body")
            if self.framing < 0:
                self._respond(body, more)
            else:
                self._body(body, more)
            if more and not self.gone and len(body) > 0:
                await self.server._room(self.conn, self)
        elif kind == "http.response.start":
            if self.started:
                raise asgi_message_error(kind, "http.response.body")
            status = message["status"]
            if type(status) is not int or not 100 <= status <= 999:
                raise ValueError(f"ASGI: status must be an int from 100 to 999, not {status!r}")
            self.status, self.headers, self.started = status, message.get("headers", ()), True
        else:
            raise asgi_message_error(kind, "http.response.start or http.response.body")

    def _respond(self, body: bytes, more: bool) -> None:
        headers = self.headers
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)  # any iterable of pairs, as ASGI allows
        try:
            kv = b"\0".join([b"\0".join(pair) for pair in headers])
        except TypeError:
            raise TypeError(f"ASGI: headers must be [name, value] pairs of bytes, not {headers!r}") from None
        framing = call_on_loop(self.server._manager, self._start, kv, len(headers), body, more)
        if framing == writer.REFUSED:
            writer.check_head(self.status, None, kv, len(headers))  # raises, saying why
        self.framing = framing
        self.sent += len(body)
        if framing == writer.GONE:
            self.gone = True
        elif framing == writer.COMPLETE:
            self.finished()

    def _start(self, kv: bytes, pairs: int, body: bytes, more: bool) -> int:
        manager = self.server._manager  # server._mgr(), inline
        return writer.start(manager._ptr if manager is not None else None, self.conn.id, self.status, None, kv, pairs,
                            body, more, self.http10)

    def _body(self, body: bytes, more: bool) -> None:
        pending = call_on_loop(self.server._manager, self._send_body, body, more)
        self.sent += len(body)
        if pending < 0:
            self.gone = True
        elif not more:
            self.finished()

    def _send_body(self, body: bytes, more: bool) -> int:
        return writer.send_body(self.server._mgr(), self.conn.id, self.framing, body, more)

    def finished(self) -> None:
        self.done = True
        if self.event:
            self.event.wake()
        server = self.server
        server.requests_served += 1
        if server.metrics is not None:
            server.metrics.request_done(self.status, time.perf_counter() - self.began)
        stream = self.stream
        if stream is not None:
            stream.abandon()
        if self.server._access_log:
            scope = self.scope
            target = scope["raw_path"].decode("latin-1")
            if scope["query_string"]:
                target += "?" + scope["query_string"].decode("latin-1")
            log_access(asgi_access, scope["client"], scope["method"], target, scope["http_version"], self.status,
                       self.sent, self.began, self.server._access_line)

    def closed(self) -> None:
        self.gone = True
        self.event.wake()


class BodyStream:
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
        self.paused = self.size > BODY_PAUSE_OVER and self.remaining > 0
        return self.paused

    async def take(self, cycle: HttpCycle) -> Message:
        while not self.pieces and self.remaining > 0 and not cycle.gone:
            await cycle.event.wait()
        if cycle.gone:
            return {"type": "http.disconnect"}
        data = b"".join(self.pieces)
        self.pieces.clear()
        self.size = 0
        if self.paused:
            self.paused = False
            intake.resume(cycle.conn)
        return {"type": "http.request", "body": data, "more_body": self.remaining > 0}

    def abandon(self) -> None:
        self.abandoned = True
        self.pieces.clear()
        self.size = 0
