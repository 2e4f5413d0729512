"""Who may touch a manager's C state, and when.

A Mongoose manager is not thread-safe: its C state may be used by one thread at a
time. That thread *owns the loop*: the thread inside :meth:`Manager.poll` (and so
inside every handler it runs), or a thread making a call while no poll runs. The
manager's ``_lock`` is held by the owner and ``_owner`` names it.
"""

from __future__ import annotations

import functools
from threading import get_ident
from typing import Any, Callable, TypeVar

from .errors import WrongThreadError

_F = TypeVar("_F", bound=Callable[..., Any])


def on_loop(method: _F) -> _F:
    """Decorate a method that touches C state (of ``self._manager``).

    From the owning thread (inside a handler) it runs directly. From any other
    thread it runs only if no poll is in progress, owning the loop meanwhile so none
    can start; if a poll is running it raises :class:`WrongThreadError`, which
    names the thread-safe ways to hand work over.
    """

    @functools.wraps(method)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = self._manager
        if manager._owner == get_ident():
            return method(self, *args, **kwargs)
        if not manager._lock.acquire(blocking=False):
            raise WrongThreadError(
                f"{method.__name__}() called from a thread other than the one polling "
                f"{manager!r}; hand the work over with Manager.wakeup() or "
                "Manager.call_soon_threadsafe()"
            )
        manager._owner = get_ident()
        try:
            return method(self, *args, **kwargs)
        finally:
            manager._release_loop()

    return guarded  # type: ignore[return-value]
