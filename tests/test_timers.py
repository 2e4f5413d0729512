"""Timers: one-shot, repeating, run_now, cancellation from anywhere, errors."""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any, List

import pytest

from pymongoose import Manager, Timer

from support import DEFAULT_TIMEOUT, LoopThread, poll_until, wait_for


def poll_for(mgr: Manager, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        mgr.poll(5)


def test_one_shot_fires_once_after_its_delay(manager: Manager) -> None:
    fired: List[float] = []
    started = time.monotonic()
    timer = manager.timer_add(50, lambda: fired.append(time.monotonic()))
    assert isinstance(timer, Timer) and timer.active and not timer.repeat
    poll_until(manager, lambda: fired)
    assert fired[0] - started >= 0.045
    poll_for(manager, 0.15)
    assert len(fired) == 1
    assert not timer.active


def test_a_long_poll_ends_when_a_timer_is_due(manager: Manager) -> None:
    # Mongoose runs timers after its wait, so a long poll must end when one is due;
    # and a period starts when the timer is added (Mongoose would start it at the
    # next poll: the first call would then take two polls).
    fired: List[str] = []
    manager.timer_add(30, lambda: fired.append("once"))
    manager.poll(10_000)
    assert fired == ["once"]
    repeating = manager.timer_add(20, lambda: fired.append("again"), repeat=True)
    for _ in range(3):
        manager.poll(10_000)
    assert fired == ["once", "again", "again", "again"]
    repeating.cancel()


def test_repeating_timer_and_cancel(manager: Manager) -> None:
    fired: List[int] = []
    timer = manager.timer_add(10, lambda: fired.append(1), repeat=True)
    poll_until(manager, lambda: len(fired) >= 5)
    timer.cancel()
    count = len(fired)
    poll_for(manager, 0.1)
    assert len(fired) == count
    assert not timer.active
    timer.cancel()  # idempotent


def test_run_now_fires_on_the_next_poll(manager: Manager) -> None:
    fired: List[int] = []
    manager.timer_add(60_000, lambda: fired.append(1), run_now=True)
    manager.poll(0)
    assert fired == [1]


def test_cancel_from_inside_its_own_callback(manager: Manager) -> None:
    fired: List[int] = []

    def tick() -> None:
        fired.append(1)
        if len(fired) == 3:
            repeating.cancel()
        once.cancel()  # cancelling a fired or pending one-shot is harmless

    once = manager.timer_add(5, tick)
    repeating = manager.timer_add(5, tick, repeat=True)
    poll_for(manager, 0.15)
    assert len(fired) == 3 or len(fired) == 4  # the one-shot may have fired first
    assert not repeating.active


def test_cancel_from_another_thread_while_polling() -> None:
    mgr = Manager()
    fired: List[int] = []
    timer = mgr.timer_add(5, lambda: fired.append(1), repeat=True)
    loop = LoopThread(mgr, poll_ms=5).start()
    try:
        wait_for(lambda: len(fired) >= 3)
        timer.cancel()
        count = len(fired)
        time.sleep(0.1)  # what is being checked is that nothing happens meanwhile
        assert len(fired) <= count + 1  # at most the call already under way
    finally:
        loop.stop()
        mgr.close()


def test_callback_exceptions_are_logged_and_the_timer_goes_on(manager: Manager, caplog: Any) -> None:
    calls: List[int] = []

    def flaky() -> None:
        calls.append(1)
        raise RuntimeError("timer trouble")

    caplog.set_level(logging.ERROR, logger="pymongoose")
    manager.timer_add(5, flaky, repeat=True)
    poll_until(manager, lambda: len(calls) >= 3)
    assert "timer trouble" in caplog.text and "Timer repeating" in caplog.text


def test_keyboard_interrupt_in_a_timer_leaves_poll(manager: Manager) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    manager.timer_add(0, interrupt, run_now=True)
    with pytest.raises(KeyboardInterrupt):
        manager.poll(0)
    manager.poll(0)  # still usable


def test_dropped_timer_keeps_running_and_close_stops_everything() -> None:
    fired: List[int] = []
    mgr = Manager()
    mgr.timer_add(5, lambda: fired.append(1), repeat=True)  # the Timer object is dropped at once
    gc.collect()
    poll_until(mgr, lambda: len(fired) >= 3)
    timers = [mgr.timer_add(5, lambda: fired.append(2), repeat=True) for _ in range(3)]
    mgr.close()
    assert not any(t.active for t in timers)
    for t in timers:
        t.cancel()  # harmless after close


def test_bad_arguments(manager: Manager) -> None:
    with pytest.raises(TypeError):
        manager.timer_add(1.5, lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        manager.timer_add(-1, lambda: None)
    with pytest.raises(TypeError):
        manager.timer_add(10, "not callable")  # type: ignore[arg-type]


def test_timers_added_and_cancelled_from_many_threads() -> None:
    mgr = Manager()
    fired: List[int] = []
    loop = LoopThread(mgr, poll_ms=2).start()
    errors: List[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(50):
                timer = loop.call(lambda: mgr.timer_add(1, lambda: fired.append(1), repeat=True))
                timer.cancel()  # from this thread, while the loop polls
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEFAULT_TIMEOUT * 3)
    loop.stop()
    assert not errors, errors
    assert mgr._timers == {}
    mgr.close()
