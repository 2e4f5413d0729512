"""Who may touch a manager's C state, and when.

A Mongoose manager is not thread-safe: its C state may be used by one thread at a
time. That thread *owns the loop*: the thread inside :meth:`Manager.poll` (and so
inside every handler it runs), or a thread making a call while no poll runs. The
manager's ``_lock`` is held by the owner and ``_owner`` names it.

A call from any other thread is carried over to the loop: it runs at once if no
poll is in progress, otherwise on the polling thread right after the current poll
iteration (the poll is woken), and the caller waits for its result. That is what
the Cython binding's examples do when they send from the main thread while a worker
polls, made safe.
"""

from __future__ import annotations

import functools
import threading
from threading import get_ident
from typing import Any, Callable, List, Optional, Protocol, Set, TypeVar

from .errors import ManagerClosedError

_F = TypeVar("_F", bound=Callable[..., Any])


class LoopOwner(Protocol):
    """What connections and the helpers here use of their manager. Manager, higher
    up, provides it; modules below it name this instead, so imports run one way."""

    _ptr: Any                 # the C manager (struct mg_mgr *), None once closed
    _owner: Optional[int]     # the thread that owns the loop, if any
    _lock: Any                # held by that thread (threading.Lock)
    _handler: Any             # the manager's default handler
    _narrowed: Set[int]       # connections whose events changed during this poll
    _consumer: Optional[object]  # the last connection whose input consume() took

    def _release_loop(self) -> None: ...

    def _post(self, function: Callable[..., Any], args: Any) -> None: ...

    def _run_inbox(self) -> None: ...


# How often a caller waiting for the loop checks that somebody still polls it.
_RECHECK_SECONDS = 0.05


def call_owning_loop(manager: LoopOwner, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` from a thread that does not own the loop, and return its
    result (or raise its exception): directly while no poll is in progress,
    otherwise on the polling thread after its current iteration."""
    if manager._lock.acquire(blocking=False):
        manager._owner = get_ident()
        try:
            return method(*args, **kwargs)
        finally:
            manager._release_loop()
    return _run_on_polling_thread(manager, method, args, kwargs)


def _run_on_polling_thread(manager: LoopOwner, method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    done = threading.Event()
    outcome: List[Any] = []  # [True, value] or [False, exception]

    def run() -> None:
        try:
            outcome[:] = [True, method(*args, **kwargs)]
        except BaseException as exc:  # handed back to the caller, never lost
            outcome[:] = [False, exc]
        finally:
            done.set()

    manager._post(run, ())
    while not done.wait(_RECHECK_SECONDS):
        # The poll may have ended before it reached the call: then nobody owns the
        # loop, and this thread runs what is waiting.
        if manager._lock.acquire(blocking=False):
            manager._owner = get_ident()
            try:
                if manager._ptr is not None:
                    manager._run_inbox()
            finally:
                manager._release_loop()
            if not done.is_set():
                raise ManagerClosedError(f"{method.__name__}() was not run: the Manager was closed")
    ok, value = outcome
    if not ok:
        raise value
    return value


def call_on_loop(manager: LoopOwner, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` with the loop owned: directly from the thread that owns
    it (a handler), as :func:`call_owning_loop` does from any other moment or thread
    (its first case is made here inline: the app servers' responses come this way)."""
    me = get_ident()
    if manager._owner == me:
        return function(*args)
    if manager._lock.acquire(blocking=False):
        manager._owner = me
        try:
            return function(*args)
        finally:
            manager._release_loop()
    return _run_on_polling_thread(manager, function, args, {})


def on_loop(method: _F) -> _F:
    """Decorate a method that touches C state (of ``self._manager``).

    From the owning thread (inside a handler) it runs directly; from any other,
    through :func:`call_owning_loop`. (The hottest methods, ``reply`` and ``send``,
    make the same check inline rather than pay for this wrapper.)
    """

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._manager._owner == get_ident():
            return method(self, *args, **kwargs)
        return call_owning_loop(self._manager, method, self, *args, **kwargs)

    return guarded  # type: ignore[return-value]
