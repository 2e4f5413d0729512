"""The asyncio internals the ASGI server uses to start each request's task eagerly
(pymongoose/servers/tasks.py): checked here, so that a new interpreter that changes
them fails loudly instead of slowing every request down quietly, and the fallback
to ``create_task`` is tested."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Dict, List

import pytest

from pymongoose.asgi import ASGIServer
from pymongoose.servers import tasks

from support import raw_request


def test_a_task_runs_its_first_step_at_once_where_the_interpreter_allows() -> None:
    eager = sys.version_info >= (3, 12) or sys.implementation.name == "pypy"
    if sys.implementation.name == "pypy" and sys.version_info < (3, 12):
        # If this fails, PyPy's asyncio changed: every request's task would start a
        # turn of the loop later. Update servers/tasks.py.
        assert tasks.eager_supported(), "asyncio's private Task names changed: see servers/tasks.py"
    loop = asyncio.new_event_loop()
    stepped: List[str] = []
    seen_at_start: List[List[str]] = []

    async def request() -> None:
        stepped.append("first step")
        await asyncio.sleep(0)
        stepped.append("second step")

    def event_handler() -> None:  # as Mongoose's events arrive: a callback, not a task
        task = tasks.task_starter(loop)(request())
        seen_at_start.append(list(stepped))
        started.append(task)

    started: List[Any] = []
    try:
        loop.call_soon(event_handler)
        loop.run_until_complete(asyncio.sleep(0.05))
        assert seen_at_start == [["first step"] if eager else []]
        assert stepped == ["first step", "second step"] and started[0].done()
    finally:
        loop.close()


@pytest.mark.parametrize("eager", [True, False])
def test_a_task_starts_and_answers_either_way_named_on_every_interpreter(eager: bool) -> None:
    names: List[str] = []

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        current = asyncio.current_task()
        names.append(current.get_name() if current is not None else "no task")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> bytes:
        server = ASGIServer(app, lifespan="off", eager_tasks=eager)
        port = (await server.start("http://127.0.0.1:0")).local_addr.port
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(None, raw_request, port,
                                           b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await server.stop(0.5)
        return reply

    assert asyncio.run(main()).endswith(b"ok")
    assert names == ["pymongoose-asgi"]


def test_the_fallback_when_the_internals_are_missing(monkeypatch: Any) -> None:
    loop = asyncio.new_event_loop()
    stepped: List[str] = []

    async def request() -> None:
        stepped.append("first step")

    try:
        monkeypatch.setattr(tasks, "eager_supported", lambda: False)
        monkeypatch.setattr(tasks.sys, "version_info", (3, 11, 0))
        for eager in (True, False):
            task = tasks.task_starter(loop, eager=eager)(request())
            assert isinstance(task, asyncio.Task) and task.get_name() == "pymongoose-asgi"
            assert stepped == []  # started as create_task starts it: a turn later
            loop.run_until_complete(task)
            assert stepped == ["first step"]
            stepped.clear()
    finally:
        loop.close()


def test_a_task_factory_set_on_the_loop_makes_the_tasks() -> None:
    loop = asyncio.new_event_loop()
    made: List[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coroutine: Any, **kwargs: Any) -> "asyncio.Task[Any]":
        task = asyncio.Task(coroutine, loop=loop, **kwargs)
        made.append(task)
        return task

    async def request() -> None:
        pass

    try:
        loop.set_task_factory(factory)
        for eager in (True, False):
            task = tasks.task_starter(loop, eager=eager)(request())
            loop.run_until_complete(task)
        assert len(made) == 2 and made[1] is task
    finally:
        loop.close()
