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


def call_owning_loop(manager: Any, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` from a thread that does not own the loop: only if no poll is
    in progress, owning the loop meanwhile; otherwise raise WrongThreadError."""
    if not manager._lock.acquire(blocking=False):
        raise WrongThreadError(
            f"{method.__name__}() called from a thread other than the one polling "
            f"{manager!r}; hand the work over with Manager.wakeup() or "
            "Manager.call_soon_threadsafe()"
        )
    manager._owner = get_ident()
    try:
        return method(*args, **kwargs)
    finally:
        manager._release_loop()


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
