"""Starting a request's task on the asyncio loop: eagerly where the interpreter
allows, through asyncio's own internals where it must.

Python 3.12 has ``eager_start``. Before it, on PyPy (whose ``asyncio.Task`` is the
pure-Python one), :class:`_EagerTask` runs the first step itself: that uses
private names of ``asyncio.tasks`` (``_PyTask``, ``_Task__step``, ``_fut_waiter``,
``_must_cancel``, ``_coro``, ``_context``). They are checked once, by
:func:`eager_supported`; if an interpreter changes them, tasks start the ordinary
way (as ``create_task`` would), and ``tests/test_asgi_tasks.py`` fails loudly so that we
know.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from typing import Any, Callable, Coroutine

TaskStarter = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]

_TASK_NAME = "pymongoose-asgi"  # every request's task, however it starts

# What _EagerTask sets and calls of the pure-Python Task: if one goes, so does it.
_PRIVATE_NAMES = ("_Task__step", "_must_cancel", "_fut_waiter", "_coro", "_context", "_name")


@functools.lru_cache(maxsize=None)
def eager_supported() -> bool:
    """True if this interpreter's Task is the pure-Python one, with the private
    names :class:`_EagerTask` relies on (read from the code of its ``__init__``
    and its class: nothing is run)."""
    task = asyncio.Task
    if task is not getattr(asyncio.tasks, "_PyTask", None) or not hasattr(task, "_Task__step"):
        return False
    init = getattr(task.__init__, "__code__", None)
    return init is not None and all(name in init.co_names for name in _PRIVATE_NAMES[1:])


def no_loop(coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
    """The starter of a server that is not started."""
    coroutine.close()
    raise RuntimeError("ASGIServer is not started")


def task_starter(loop: asyncio.AbstractEventLoop, eager: bool = True) -> TaskStarter:
    """How a request's task starts on ``loop``: eagerly where the interpreter allows.

    An eager task runs its first step at once, inside the event handler that made
    it (with itself as the current task, as any task), instead of one turn of the
    loop later: a response the application makes without waiting for anything is
    then written in the same poll. With CPython's C Task before 3.12 and with
    ``eager=False``, a task starts as ``create_task`` starts it. Either way it is
    named ``pymongoose-asgi``: before 3.12, CPython formats a ``Task-<n>`` name for
    each task made without one (about 1,000 instructions of the 82,000 a request
    costs the ASGI server). A loop with a task factory (``set_task_factory``, set
    before the server starts) makes every task itself."""
    if loop.get_task_factory() is not None:
        return loop.create_task
    task = asyncio.Task
    named: TaskStarter = functools.partial(task, loop=loop, name=_TASK_NAME)  # C: no Python frame per task
    if not eager:
        return named
    if sys.version_info >= (3, 12):
        return lambda coroutine: task(coroutine, loop=loop, eager_start=True, name=_TASK_NAME)  # type: ignore[call-arg]
    if eager_supported():
        def start(coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
            if asyncio.current_task(loop) is not None:  # inside a task: a step cannot nest
                return named(coroutine)
            return _EagerTask(coroutine, loop)
        return start
    return named


class _EagerTask(asyncio.Task):  # type: ignore[type-arg]
    """The pure-Python Task (PyPy), its first step run at once (see task_starter).
    Its ``__init__`` is the Task's own, less the ``call_soon`` of the first step and
    the registration for ``asyncio.all_tasks()``."""

    def __init__(self, coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
        asyncio.Future.__init__(self, loop=loop)
        self._name = _TASK_NAME
        self._must_cancel = False
        self._fut_waiter = None
        self._coro = coroutine
        self._context = contextvars.copy_context()
        # Not registered with asyncio.all_tasks(): that is a WeakSet, and a weak
        # reference per request costs PyPy's GC 15% of the throughput of a Starlette
        # hello-world. The server keeps its tasks itself (ASGIServer._cycles).
        self._context.run(self._Task__step)  # type: ignore[attr-defined]

