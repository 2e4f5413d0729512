"""Timers: Python callbacks run by the event loop after a delay, once or repeatedly.

>>> timer = manager.timer_add(1000, lambda: print("tick"), repeat=True)  # doctest: +SKIP
>>> timer.cancel()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Protocol

__all__ = ["Timer"]


class TimerOwner(Protocol):
    """What a timer uses of its manager (Manager, higher up, provides it)."""

    _timers: Dict[int, "Timer"]

    def _cancel_timer(self, timer_id: int) -> None: ...

    def _run_on_loop(self, function: Callable[..., Any], *args: Any) -> None: ...


class Timer:
    """A timer created by :meth:`Manager.timer_add`.

    The manager keeps it until it has run (one-shot) or is cancelled, so dropping
    the object does not stop the timer. :meth:`cancel` may be called from any
    thread, and from inside the timer's own callback.
    """

    __slots__ = ("_manager", "_id", "_callback", "_interval_ms", "_repeat", "_active", "__weakref__")

    def __init__(self, manager: TimerOwner, timer_id: int, interval_ms: int,
                 callback: Callable[[], Any], repeat: bool) -> None:
        self._manager = manager
        self._id = timer_id  # C finds the timer by this id; Python holds no pointer
        self._callback = callback
        self._interval_ms = interval_ms
        self._repeat = repeat
        self._active = True

    @property
    def active(self) -> bool:
        """True until the timer has run (one-shot), been cancelled, or its manager closed."""
        return self._active

    @property
    def interval_ms(self) -> int:
        """The delay, or period, in milliseconds."""
        return self._interval_ms

    @property
    def repeat(self) -> bool:
        """True for a repeating timer."""
        return self._repeat

    @property
    def callback(self) -> Callable[[], Any]:
        """The function the timer calls."""
        return self._callback

    def cancel(self) -> None:
        """Stop the timer; its callback is not called again. Safe from any thread."""
        if not self._active:
            return
        self._active = False
        manager = self._manager
        manager._timers.pop(self._id, None)
        manager._run_on_loop(manager._cancel_timer, self._id)

    def _fired(self) -> None:
        """Called by the manager when Mongoose runs the timer."""
        if not self._repeat:
            # Mongoose frees a one-shot timer as soon as this returns.
            self._active = False
            self._manager._timers.pop(self._id, None)

    def _forget(self) -> None:
        """The manager freed every timer (Manager.close)."""
        self._active = False

    def __repr__(self) -> str:
        kind = "repeating" if self._repeat else "one-shot"
        state = "active" if self._active else "done"
        return f"<Timer {kind} {self._interval_ms} ms {state}>"

