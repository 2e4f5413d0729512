"""Mongoose on the asyncio event loop: :class:`AsyncManager`.

    async def main():
        async with AsyncManager(handler) as mgr:
            mgr.listen("http://127.0.0.1:8000")
            await asyncio.Event().wait()      # serve until cancelled

There is no poll thread (cymongoose 0.2.5 runs one; the names and signatures here
are its own). The event loop watches Mongoose's descriptor (the manager's epoll set,
``loop.add_reader``; in the poll() build, macOS's and Windows', each socket for what
Mongoose waits for) and polls once, without waiting, whenever it is ready: so
handlers run on the event loop's thread and may create tasks and set futures
directly. After each poll it asks Mongoose what the descriptor cannot show (output
that a handler queued after the write step, Mongoose's timers, a connection to
close) and polls again when that is due, and at least every ``poll_interval``
milliseconds; what a task sends outside a handler (``conn.send(...)`` in a
coroutine) leaves at the next turn of the loop. Works with the default loop and
with uvloop. Other threads reach it as they reach a :class:`Manager` (``wakeup``,
``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Coroutine, Dict, Optional, Tuple, Union

from ._binding import ffi, lib
from .connection import Connection
from .errors import ConnectError
from .events import MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_ERROR, MG_EV_MQTT_OPEN, MG_EV_WS_OPEN
from .manager import Manager
from .timers import Timer

__all__ = ["AsyncManager"]


class _SocketWatch:
    """The poll() build's stand-in for the epoll descriptor: the loop watches each
    socket (``add_reader``/``add_writer``) for what Mongoose waits for, re-read
    after every poll. That costs a pass over the connections per poll, which the
    epoll build, where the loop watches one descriptor, does not pay."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None]) -> None:
        self._loop, self._on_ready = loop, on_ready
        self._watched: Dict[int, Tuple[int, int]] = {}  # fd -> (connection id, PM_WANT_* bits)
        self._triples = ffi.new("int64_t[]", 3 * 64)

    def sync(self, pointer: Any) -> None:
        """Watch what Mongoose now waits for, and no more."""
        count = int(lib.pm_mgr_sockets(pointer, self._triples, len(self._triples) // 3))
        if 3 * count > len(self._triples):
            self._triples = ffi.new("int64_t[]", 6 * count)
            count = int(lib.pm_mgr_sockets(pointer, self._triples, len(self._triples) // 3))
        t = self._triples
        wanted = {int(t[i]): (int(t[i + 1]), int(t[i + 2])) for i in range(0, 3 * count, 3)}
        if wanted == self._watched:
            return
        for fd, (conn_id, bits) in self._watched.items():
            if wanted.get(fd, (0, 0))[0] != conn_id:  # closed, or its fd reused since
                self._change(fd, bits, 0)
        for fd, (conn_id, bits) in wanted.items():
            before = self._watched.get(fd, (0, 0))
            self._change(fd, before[1] if before[0] == conn_id else 0, bits)
        self._watched = wanted

    def close(self) -> None:
        for fd, (_, bits) in self._watched.items():
            self._change(fd, bits, 0)
        self._watched = {}

    def _change(self, fd: int, before: int, after: int) -> None:
        for bit, add, remove in ((lib.PM_WANT_READ, self._loop.add_reader, self._loop.remove_reader),
                                 (lib.PM_WANT_WRITE, self._loop.add_writer, self._loop.remove_writer)):
            if after & bit and not before & bit:
                add(fd, self._on_ready)
            elif before & bit and not after & bit:
                remove(fd)


class AsyncManager:
    """A :class:`Manager` driven by the running asyncio loop (see the module)."""

    def __init__(self, handler: Optional[Callable[..., Any]] = None, poll_interval: int = 100,
                 error_handler: Optional[Callable[[BaseException], Any]] = None,
                 shutdown_timeout: float = 30) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int) or poll_interval < 1:
            raise ValueError(f"poll_interval must be an int >= 1 (milliseconds), not {poll_interval!r}")
        self._handler = handler
        self._poll_interval = poll_interval
        self._error_handler = error_handler
        self._shutdown_timeout = shutdown_timeout  # kept for cymongoose's signature: no thread to join
        self._manager: Optional[Manager] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread = 0
        self._fd = -1
        self._tick: Optional[asyncio.TimerHandle] = None
        self._poll_pending = False
        self._sockets: Optional[_SocketWatch] = None  # without an epoll descriptor

    # ---- the context ------------------------------------------------------------

    async def __aenter__(self) -> "AsyncManager":
        if self._manager is not None:
            raise RuntimeError("AsyncManager is already started")
        loop = asyncio.get_running_loop()
        manager = Manager(self._handler, enable_wakeup=True, error_handler=self._error_handler)
        self._manager, self._loop, self._loop_thread = manager, loop, threading.get_ident()
        self._fd = int(lib.pm_mgr_wait_fd(manager._live_pointer()))
        if self._fd >= 0:
            loop.add_reader(self._fd, self._poll)
        else:
            self._sockets = _SocketWatch(loop, self._poll)
            try:
                self._sockets.sync(manager._live_pointer())
            except NotImplementedError:  # Windows' default, the proactor loop
                self.close()
                raise RuntimeError("AsyncManager needs an event loop with add_reader(): on Windows, "
                                   "asyncio.WindowsSelectorEventLoopPolicy()") from None
        manager._after_outside_call = self._poll_soon
        self._tick = loop.call_later(self._poll_interval / 1000, self._on_tick)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop watching the descriptor, close every connection (their
        ``MG_EV_CLOSE`` runs now) and the manager. Idempotent."""
        manager, self._manager = self._manager, None
        if manager is None:
            return
        if self._tick is not None:
            self._tick.cancel()
        loop = self._loop
        if self._fd >= 0 and loop is not None and not loop.is_closed():
            loop.remove_reader(self._fd)
        if self._sockets is not None and loop is not None and not loop.is_closed():
            self._sockets.close()
        self._sockets = None
        manager._after_outside_call = None
        manager.close()

    # ---- polling ---------------------------------------------------------------------

    def _poll(self) -> None:
        self._poll_pending = False
        manager = self._manager
        if manager is not None and not manager.closed:
            manager.poll(0)
            if not manager.closed:
                pointer = manager._live_pointer()
                if self._sockets is not None:
                    self._sockets.sync(pointer)
                self._poll_when_due(int(lib.pm_mgr_due(pointer, self._poll_interval)))

    def _poll_when_due(self, due_ms: int) -> None:
        """Poll again in ``due_ms``: sooner than the tick for work the descriptor
        will not show (a refill queued by MG_EV_WRITE's handler, a timer)."""
        if due_ms == 0:
            self._poll_soon()
        elif due_ms < self._poll_interval and self._loop is not None:
            when = self._loop.time() + due_ms / 1000
            if self._tick is None or when < self._tick.when():
                if self._tick is not None:
                    self._tick.cancel()
                self._tick = self._loop.call_at(when, self._on_tick)

    def _poll_soon(self) -> None:
        if self._poll_pending or self._loop is None:
            return
        self._poll_pending = True
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._poll)
        else:
            try:
                self._loop.call_soon_threadsafe(self._poll)
            except RuntimeError:  # the loop is closed
                self._poll_pending = False

    def _on_tick(self) -> None:
        self._tick = None
        try:
            self._poll()  # Mongoose's timers, idle timeouts, DNS retries; may arm a sooner tick
        finally:
            if self._tick is None and self._manager is not None and self._loop is not None:
                self._tick = self._loop.call_later(self._poll_interval / 1000, self._on_tick)

    def _started(self) -> Manager:
        if self._manager is None:
            raise RuntimeError("AsyncManager is not started: use it in `async with`")
        return self._manager

    # ---- cymongoose's AsyncManager API -------------------------------------------------

    @property
    def manager(self) -> Manager:
        """The Manager underneath."""
        return self._started()

    @property
    def running(self) -> bool:
        """True inside ``async with``."""
        return self._manager is not None

    def listen(self, url: str, handler: Optional[Callable[..., Any]] = None, **options: Any) -> Connection:
        """:meth:`Manager.listen`."""
        return self._started().listen(url, handler, **options)

    def connect(self, url: str, handler: Optional[Callable[..., Any]] = None, **options: Any) -> Connection:
        """:meth:`Manager.connect`."""
        return self._started().connect(url, handler, **options)

    def ws_connect(self, url: str, handler: Optional[Callable[..., Any]] = None, **options: Any) -> Connection:
        """:meth:`Manager.ws_connect`."""
        return self._started().ws_connect(url, handler, **options)

    def mqtt_connect(self, url: str, **options: Any) -> Connection:
        """:meth:`Manager.mqtt_connect`."""
        return self._started().mqtt_connect(url, **options)

    def mqtt_listen(self, url: str, handler: Optional[Callable[..., Any]] = None, **options: Any) -> Connection:
        """:meth:`Manager.mqtt_listen`."""
        return self._started().mqtt_listen(url, handler, **options)

    def sntp_connect(self, url: str, handler: Optional[Callable[..., Any]] = None) -> Connection:
        """:meth:`Manager.sntp_connect`."""
        return self._started().sntp_connect(url, handler)

    def wakeup(self, connection_id: int, data: bytes = b"") -> bool:
        """:meth:`Manager.wakeup`, from any thread."""
        return self._started().wakeup(connection_id, data)

    def timer_add(self, ms: int, callback: Callable[..., Any], *, repeat: bool = False,
                  run_now: bool = False) -> Timer:
        """:meth:`Manager.timer_add`; timers are checked every ``poll_interval`` ms."""
        return self._started().timer_add(ms, callback, repeat=repeat, run_now=run_now)

    # ---- awaitable opening (added: asyncio users expect them) ----------------------------

    async def connect_async(self, url: str, handler: Optional[Callable[..., Any]] = None,
                            **options: Any) -> Connection:
        """:meth:`connect`, returning once connected (for TLS, once the handshake is
        done). Compose with ``asyncio.wait_for`` or ``asyncio.timeout``: cancelled, the
        connection is closed.

        :raises ConnectError: the connection failed (``MG_EV_ERROR``'s message), or
            closed first.

        >>> conn = await asyncio.wait_for(mgr.connect_async("tcp://127.0.0.1:1883"), 5)  # doctest: +SKIP
        """
        return await self._opened(self._started().connect, MG_EV_CONNECT, url, handler, options)

    async def ws_connect_async(self, url: str, handler: Optional[Callable[..., Any]] = None,
                               **options: Any) -> Connection:
        """:meth:`ws_connect`, returning once the handshake is done (``MG_EV_WS_OPEN``);
        as :meth:`connect_async` otherwise."""
        return await self._opened(self._started().ws_connect, MG_EV_WS_OPEN, url, handler, options)

    async def mqtt_connect_async(self, url: str, handler: Optional[Callable[..., Any]] = None,
                                 **options: Any) -> Connection:
        """:meth:`mqtt_connect`, returning once the broker accepted (``MG_EV_MQTT_OPEN``
        with CONNACK code 0; another code raises :class:`ConnectError`); as
        :meth:`connect_async` otherwise."""
        return await self._opened(self._started().mqtt_connect, MG_EV_MQTT_OPEN, url, handler, options)

    async def _opened(self, open_: Callable[..., Connection], ready: int, url: str,
                      handler: Optional[Callable[..., Any]], options: Dict[str, Any]) -> Connection:
        manager = self._started()
        future: "asyncio.Future[Connection]" = asyncio.get_running_loop().create_future()
        user = handler if handler is not None else manager._handler
        wanted = options.get("events")
        if wanted is not None:  # the events watched here must reach the watcher
            wanted = frozenset(wanted)
            options["events"] = wanted | {ready, MG_EV_ERROR, MG_EV_CLOSE}

        def watch(conn: Connection, event: int, data: Any) -> None:
            if not future.done():
                if event == MG_EV_MQTT_OPEN and data != 0:
                    future.set_exception(ConnectError(f"{url}: the broker refused (CONNACK code {data})"))
                elif event == ready:
                    future.set_result(conn)
                    conn.set_handler(handler)  # the watcher's work is done
                    if wanted is not None:
                        conn.events = wanted
                elif event == MG_EV_ERROR:
                    future.set_exception(ConnectError(f"{url}: {data}"))
                elif event == MG_EV_CLOSE:
                    future.set_exception(ConnectError(f"{url}: closed before it was ready"))
            if user is not None and (wanted is None or event in wanted):
                user(conn, event, data)

        conn = open_(url, watch, **options)
        try:
            return await future
        except BaseException:  # cancelled (a timeout) or failed: nothing half-open is left
            if not conn.is_closed:
                conn.close()
            raise

    def schedule(self, coro_or_callback: Union[Coroutine[Any, Any, Any], Callable[[], Any]]) -> None:
        """Run a coroutine as a task, or call a callback, on the event loop; from a
        handler or from any thread."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("AsyncManager is not started: use it in `async with`")
        on_loop = threading.get_ident() == self._loop_thread
        if asyncio.iscoroutine(coro_or_callback):
            if on_loop:
                loop.create_task(coro_or_callback)
            else:
                asyncio.run_coroutine_threadsafe(coro_or_callback, loop)
        elif callable(coro_or_callback):
            (loop.call_soon if on_loop else loop.call_soon_threadsafe)(coro_or_callback)
        else:
            raise TypeError("schedule() takes a coroutine or a callable")
