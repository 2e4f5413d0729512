"""The loop core: a Mongoose manager's C lifetime, its table of connections, and
the dispatch of every event Mongoose raises to the handler it is for.

Every event reaches Python through one C entry point, :func:`pm_on_event` (the
cffi trampoline). It finds the :class:`LoopCore` by its handle, the connection by
id, makes the event's data (a number, a view, a message) and calls the
connection's handler under one error policy. :class:`~pymongoose.Manager` is the
public facade built on it (listen, connect, timers, wakeup); this module never
imports it, and calls handlers only through the objects it was given.
"""

from __future__ import annotations

import collections
import itertools
import logging
import platform
import signal
import threading
import weakref
from threading import get_ident
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple, Type, TypeVar

from ._args import int_arg
from ._binding import ffi, lib
from ._text import decode
from .connection import Connection, EventHandler
from .errors import ManagerClosedError
from .events import (
    MG_EV_CLOSE,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_OPEN,
    MG_EV_POLL,
    MG_EV_WS_MSG,
    event_name,
)
from .messages import HttpMessage, MqttMessage, WsMessage
from .timers import Timer
from .tls import describe_tls_error

logger = logging.getLogger("pymongoose")

_Self = TypeVar("_Self", bound="LoopCore")


# ---- event data: what a handler receives as ``data`` for each event -------------

# How dispatch makes ``data`` for each event number, from the C event table
# (pm_event_data_kind in _native/dispatch.c): markers for the cases handled inline,
# or a function called as maker(ev_data, frame_tokens, extra).
_NONE = "none"      # no data (MG_EV_POLL, MG_EV_CONNECT...)
_NUMBER = "number"  # the int the shim passes (byte counts, CONNACK code, SNTP time)
_OPEN = "open"      # the connection's first event: bookkeeping first
_CLOSE = "close"    # its last: bookkeeping after


def _error_text(ev_data: Any, tokens: Any, token: int) -> str:
    return describe_tls_error(decode(ffi.string(ffi.cast("char *", ev_data))))


_MAKERS: Dict[int, Any] = {
    lib.PM_DATA_NONE: _NONE,
    lib.PM_DATA_NUMBER: _NUMBER,
    lib.PM_DATA_TEXT: _error_text,
    # Views into Mongoose's buffers, valid while the handler runs.
    lib.PM_DATA_HTTP: HttpMessage._maker(),
    lib.PM_DATA_MQTT: MqttMessage._maker(),
    lib.PM_DATA_WS: WsMessage._from_event,  # not a view: a copy of the payload
    lib.PM_DATA_OPEN: _OPEN,
    lib.PM_DATA_CLOSE: _CLOSE,
}
# Indexed by event number; user events beyond it carry no data.
_PLAN: List[Any] = [_MAKERS[lib.pm_event_data_kind(ev)] for ev in range(64)]
_http_view = _MAKERS[lib.PM_DATA_HTTP]


# ---- the one entry point from C ----------------------------------------------------

# KeyboardInterrupt/SystemExit that arrived before dispatch could catch it (a signal
# at the trampoline's first instruction); the next poll() on this thread raises it.
_stray_interrupts: Dict[int, BaseException] = {}


def _trampoline_failed(exc_type: Type[BaseException], exc: BaseException, tb: Any) -> None:
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        _stray_interrupts.setdefault(get_ident(), exc)
    else:
        logger.error("pymongoose: internal error while dispatching an event", exc_info=(exc_type, exc, tb))


# The managers C knows, by the key each gave pm_mgr_new: weak references, so that a
# Manager dropped without close() is still collected (and freed by its finalizer).
_managers: Dict[int, Callable[[], Optional["LoopCore"]]] = {}
_keys = itertools.count(1)

_unpack = ffi.unpack
# Integers compared, never combined with & or |: CPython 3.11 specialises the
# comparison of small ints, not bitwise operations.
_EV_TIMER = lib.PM_EV_TIMER
_EV_HTTP_MSG = lib.PM_EV_HTTP_MSG
_EV_HTTP_HDRS_MSG = lib.PM_EV_HTTP_HDRS_MSG
assert _EV_HTTP_HDRS_MSG < _EV_HTTP_MSG < lib.PM_EV_FLUSH and _EV_HTTP_MSG < _EV_TIMER < 0  # pm_on_event's order
_HAS_PAYLOADS = lib.PM_QUEUE_HAS_PAYLOADS  # added to the count; no count reaches it
_QUEUED_WS_MSG = lib.PM_QUEUE_WS_MSG  # plus a message's flags
_new_object = object.__new__
# How _run_queued reads the queue's integers. On CPython, ffi.unpack converts them
# one by one through cffi's backend (about 400 ns for a crossing's 15 here); a
# memoryview's tolist() is one C loop (about 215). PyPy's JIT does better with unpack.
_QUEUE_AS_MEMORYVIEW = platform.python_implementation() == "CPython"


@ffi.def_extern(onerror=_trampoline_failed)
def pm_on_event(owner, queued, conn_id, ev, ev_data, extra):  # type: ignore[no-untyped-def]
    """Every event Python asked for arrives here (see pm_forward in _native/dispatch.c).

    The hot path: one call per crossing, so it is written flat. Deferred events
    (``queued`` of them) come first, in the order Mongoose raised them; the rare
    cases (timers, a connection's first and last events) go to the manager."""
    manager = _managers[owner]()
    if manager is None:  # collected: its finalizer disowns it before C can call again
        return
    if ev <= _EV_HTTP_MSG:  # the common crossing of an HTTP server or client
        manager._run_request(queued, conn_id, ev_data, extra, ev == _EV_HTTP_HDRS_MSG)
        return
    if queued:
        manager._run_queued(queued)
    if ev < 0:  # a timer, or only the deferred events (PM_EV_FLUSH)
        if ev == _EV_TIMER:
            manager._fire_timer(conn_id)
        return
    conn = manager._conns.get(conn_id)
    plan: Any = _PLAN[ev] if ev < 64 else _NONE
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


def _free_abandoned(pointer: Any, key: int, keepalive: Any) -> None:
    """Finalizer of a Manager dropped without close(): free the C side without
    running any Python handler (they must not run during garbage collection)."""
    lib.pm_mgr_disown(pointer)
    lib.pm_mgr_free(pointer)
    _managers.pop(key, None)
    del keepalive  # what C read until now: DNS URL strings, the frames struct


# ---- the core -------------------------------------------------------------------------


def poll_until_signalled(poll: Callable[[int], None], poll_ms: int,
                         then: Optional[Callable[[], None]] = None) -> None:
    """Call ``poll(poll_ms)`` until SIGINT or SIGTERM (on the main thread; from
    another, until the poll raises), then ``then()``, during which more of those
    signals change nothing (a service manager may signal every process of a
    service, and its supervisor again); then restore the previous handlers."""
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set():
            poll(poll_ms)
        if then is not None:
            then()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)

class LoopCore:
    """A Mongoose manager and its connections, as the dispatch sees them.

    Not used directly: :class:`~pymongoose.Manager` is the public class.
    """

    def __init__(self, handler: Optional[EventHandler], error_handler: Optional[Callable[[BaseException], Any]],
                 mask: int) -> None:
        self._manager = self  # so on_loop-guarded methods find their manager uniformly
        self._handler = handler
        self._error_handler = error_handler
        self._mask = mask
        self._conns: Dict[int, Connection] = {}
        self._timers: Dict[int, Timer] = {}
        self._opening_handler: Optional[EventHandler] = None
        self._held: Optional[BaseException] = None  # KeyboardInterrupt/SystemExit from a handler
        # Ids of connections whose events were narrowed during this poll: their
        # deferred events are checked against the new mask (see _run_queued).
        self._narrowed: Set[int] = set()
        # The connection whose input a handler last consumed (Connection.consume):
        # see _run_request.
        self._consumer: Optional[object] = None
        # Loop ownership (see _loop.py) and the hand-over queue from other threads.
        self._lock = threading.Lock()
        self._owner: Optional[int] = None
        self._polling: Optional[int] = None  # the thread inside poll(), if any
        self._inbox: Deque[Tuple[Callable[..., Any], Tuple[Any, ...]]] = collections.deque()
        self._wake_pending = False
        self._wake_lock = threading.Lock()  # guards _ptr against a concurrent free
        # Called after a call that touched C state outside a poll (a send from an
        # asyncio task): pymongoose.aio polls soon, so that it leaves at once.
        self._after_outside_call: Optional[Callable[[], None]] = None
        self._closed = False

        self._key = next(_keys)
        self._frames = ffi.new("struct pm_frames *")
        self._queue = self._frames.queue  # a view into _frames, which it does not keep alive
        self._queue_view: Optional[memoryview] = (
            memoryview(ffi.buffer(self._queue)).cast("q") if _QUEUE_AS_MEMORYVIEW else None)
        # Owned here, not inside _frames, so that message views can keep it alive.
        # One slot more than C uses: messages.STRICT_SLOT, set by Manager(strict_messages=True).
        self._tokens = self._frames.token = ffi.new("uint64_t[]", lib.PM_MAX_FRAMES + 1)
        pointer = lib.pm_mgr_new(self._key, self._frames)
        if pointer == ffi.NULL:
            raise OSError("could not create a Mongoose manager (out of memory or sockets)")
        _managers[self._key] = weakref.ref(self)
        self._ptr: Any = pointer  # None once closed
        self._c_strings: List[Any] = []  # strings C keeps pointers to (the DNS server URLs)
        self._finalizer = weakref.finalize(self, _free_abandoned, pointer, self._key,
                                           (self._c_strings, self._frames, self._tokens))

    # ---- the loop ----------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> None:
        """Run one iteration of the event loop, waiting up to ``timeout_ms`` for I/O.

        Handlers run inside this call. A ``KeyboardInterrupt`` or ``SystemExit``
        raised by a handler is re-raised here once the iteration is over.
        """
        int_arg(timeout_ms, "timeout_ms")
        if self._closed:
            raise ManagerClosedError("poll() on a closed Manager")
        me = get_ident()
        if self._owner == me:
            raise RuntimeError("poll() called from inside a handler of the same Manager")
        if self._polling is not None:  # almost always a bug: one thread polls a manager
            raise RuntimeError("poll() is already in progress in another thread; one thread polls a Manager "
                               "(use call_soon_threadsafe() to hand it work)")
        with self._lock:
            pointer = self._ptr
            if pointer is None:
                raise ManagerClosedError("poll() on a closed Manager")
            self._owner = self._polling = me
            try:
                lib.pm_mgr_poll(pointer, max(timeout_ms, 0))
                # Whatever woke this poll, a post from now on must wake the next one:
                # a wake whose work a previous drain already ran would otherwise
                # leave the flag set, and the next post would not wake anyone.
                self._wake_pending = False
                if self._inbox:
                    self._run_inbox()
                self._narrowed.clear()
            finally:
                self._owner = self._polling = None
                if self._closed and self._ptr is not None:
                    self._free()
        self._raise_held(me)

    def run(self, poll_ms: int = 100) -> None:
        """Poll until interrupted (Ctrl-C or SIGTERM), then close the manager."""
        try:
            poll_until_signalled(self.poll, poll_ms)
        finally:
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
        if self._after_outside_call is not None:
            self._after_outside_call()

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
        del _managers[self._key]
        for timer in list(self._timers.values()):
            timer._forget()
        self._timers.clear()
        self._conns.clear()
        undelivered = len(self._inbox)
        self._inbox.clear()
        if undelivered:
            logger.warning("%d wakeups/calls handed to %r were not run: it was closed", undelivered, self)

    def __enter__(self: _Self) -> _Self:
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

    # ---- dispatch (the hot path is pm_on_event, above) -----------------------------

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
        (None for MG_EV_POLL), unless the batch has messages (see
        _run_queued_messages)."""
        if queued >= _HAS_PAYLOADS:
            self._run_queued_messages(queued - _HAS_PAYLOADS)
            return
        view = self._queue_view
        items = iter(view[:3 * queued].tolist() if view is not None else _unpack(self._queue, 3 * queued))
        conns = self._conns
        narrowed = self._narrowed
        for conn_id, ev, number in zip(items, items, items):  # the same iterator: triples
            try:
                conn = conns[conn_id]
            except KeyError:  # closed earlier in the batch
                continue
            handler = conn._handler
            # A handler earlier in the batch may have narrowed this connection's events.
            if handler is None or narrowed and conn_id in narrowed and not conn._mask >> ev & 1:
                continue
            try:
                handler(conn, ev, None if ev == MG_EV_POLL else number)
            except BaseException as exc:
                self._handler_raised(exc, conn, ev)

    def _run_queued_messages(self, queued: int) -> None:
        """_run_queued for a batch with WebSocket messages, queued as
        (id, _QUEUED_WS_MSG + flags, end): the message's payload is the batch's
        payloads from where the previous one's ended to ``end``."""
        frames = self._frames  # copied before any handler runs, as the queue
        payloads = _unpack(frames.payloads, frames.handed) if frames.handed else b""  # all may be empty
        view = self._queue_view
        items = iter(view[:3 * queued].tolist() if view is not None else _unpack(self._queue, 3 * queued))
        offset = 0
        data: Any
        conns = self._conns
        narrowed = self._narrowed
        for conn_id, ev, number in zip(items, items, items):
            if ev >= _QUEUED_WS_MSG:
                data = _new_object(WsMessage)
                data.data = payloads[offset:number]
                data.flags = ev - _QUEUED_WS_MSG
                offset = number
                ev = MG_EV_WS_MSG
            else:
                data = None if ev == MG_EV_POLL else number
            try:
                conn = conns[conn_id]
            except KeyError:
                continue
            handler = conn._handler
            if handler is None or narrowed and conn_id in narrowed and not conn._mask >> ev & 1:
                continue
            try:
                handler(conn, ev, data)
            except BaseException as exc:
                self._handler_raised(exc, conn, ev)

    def _run_request(self, queued: int, conn_id: int, message: Any, token: int, hdrs_first: bool) -> None:
        """Deliver an MG_EV_HTTP_MSG (``message``, ``token``) after the deferred
        events. With ``hdrs_first``, deliver its MG_EV_HTTP_HDRS first: the shim
        joins the two into one crossing when the request is already whole
        (pm_hdrs_join), and they share a view. If the headers' handler consumed the
        input, Mongoose lets go of the connection as it does when that happens in a
        crossing of its own, and MG_EV_HTTP_MSG is not delivered."""
        if queued:
            self._run_queued(queued)
        conn = self._conns.get(conn_id)
        if conn is None or conn._handler is None:
            return
        view = _http_view(message, self._tokens, token)
        if hdrs_first:
            narrowed = self._narrowed  # by a handler of the batch, or of the headers
            if not (narrowed and conn_id in narrowed and not conn._mask >> MG_EV_HTTP_HDRS & 1):
                self._consumer = None
                try:
                    conn._handler(conn, MG_EV_HTTP_HDRS, view)
                except BaseException as exc:
                    self._handler_raised(exc, conn, MG_EV_HTTP_HDRS)
                if self._consumer is not None:
                    consumer, self._consumer = self._consumer, None
                    if consumer is conn:
                        if self._ptr is not None:
                            lib.pm_http_detach(self._ptr, conn_id)
                        return
            if narrowed and conn_id in narrowed and not conn._mask >> MG_EV_HTTP_MSG & 1:
                return
        handler = conn._handler  # the headers' handler may have replaced it
        if handler is not None:
            try:
                handler(conn, MG_EV_HTTP_MSG, view)
            except BaseException as exc:
                self._handler_raised(exc, conn, MG_EV_HTTP_MSG)

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

    # ---- timers Mongoose fires (Manager.timer_add makes them) ----------------------

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
    def connections(self) -> Tuple[Connection, ...]:
        """The open connections, as a snapshot."""
        return tuple(self._conns.values())

    @property
    def handler(self) -> Optional[EventHandler]:
        """The default handler."""
        return self._handler
