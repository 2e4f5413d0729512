"""pymongoose.aio.AsyncManager: Mongoose driven by the asyncio loop, no poll thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Dict, List

import pytest
import requests
import websocket  # websocket-client

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WAKEUP,
    MG_EV_WS_OPEN,
)
from pymongoose.aio import AsyncManager
from pymongoose.errors import ConnectError

from support import DEFAULT_TIMEOUT


def test_handlers_run_on_the_loop_thread_and_may_set_futures() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        requested: asyncio.Future[str] = loop.create_future()
        threads: List[int] = []

        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                threads.append(threading.get_ident())
                requested.set_result(data.uri)  # only safe on the loop's own thread
                conn.reply(200, "from the event loop")

        async with AsyncManager(handler, poll_interval=10_000) as mgr:
            port = mgr.listen("http://127.0.0.1:0").local_addr.port
            response = await asyncio.wait_for(
                asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/path", timeout=DEFAULT_TIMEOUT),
                DEFAULT_TIMEOUT)
            assert response.text == "from the event loop"
            assert await requested == "/path"
        assert threads == [threading.get_ident()]
        assert not any(t.name.startswith("pymongoose") for t in threading.enumerate())

    asyncio.run(main())


def test_a_task_sends_outside_handlers_and_it_leaves_at_once() -> None:
    # poll_interval is 10 s: what the task sends must not wait for a timer tick.
    async def main() -> None:
        members: Dict[int, Any] = {}
        opened = asyncio.Event()

        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                conn.ws_upgrade(data)
            elif event == MG_EV_WS_OPEN:
                members[conn.id] = conn
                opened.set()
            elif event == MG_EV_CLOSE:
                members.pop(conn.id, None)

        async with AsyncManager(handler, poll_interval=10_000) as mgr:
            port = mgr.listen("http://127.0.0.1:0").local_addr.port
            client = await asyncio.to_thread(websocket.create_connection, f"ws://127.0.0.1:{port}/",
                                             timeout=DEFAULT_TIMEOUT)
            await asyncio.wait_for(opened.wait(), DEFAULT_TIMEOUT)
            started = time.monotonic()
            for conn in members.values():
                conn.ws_send("pushed by a task")
            assert await asyncio.to_thread(client.recv) == "pushed by a task"
            assert time.monotonic() - started < 2
            client.close()

    asyncio.run(main())


def test_timers_fire_and_wakeups_from_threads_arrive() -> None:
    async def main() -> None:
        ticks: List[float] = []
        woken: asyncio.Queue[bytes] = asyncio.Queue()

        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_WAKEUP:
                woken.put_nowait(data)

        async with AsyncManager(handler, poll_interval=10) as mgr:
            mgr.timer_add(20, lambda: ticks.append(time.monotonic()), repeat=True)
            listener = mgr.listen("tcp://127.0.0.1:0")
            client = socket.create_connection(("127.0.0.1", listener.local_addr.port))
            await asyncio.sleep(0.3)
            conn = next(c for c in mgr.manager.connections if not c.is_listening and c.id != mgr.manager.wakeup_id)
            threading.Thread(target=mgr.wakeup, args=(conn.id, b"from a thread")).start()
            assert await asyncio.wait_for(woken.get(), DEFAULT_TIMEOUT) == b"from a thread"
            client.close()
        assert len(ticks) >= 5

    asyncio.run(main())


def test_exit_closes_connections_and_stops_watching() -> None:
    async def main() -> None:
        closed: List[int] = []

        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_CLOSE:
                closed.append(conn.id)

        manager = AsyncManager(handler)
        async with manager as mgr:
            port = mgr.listen("tcp://127.0.0.1:0").local_addr.port
            client = socket.create_connection(("127.0.0.1", port))
            await asyncio.sleep(0.2)
        assert len(closed) >= 2 and not manager.running  # the listener and the accepted one
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
        client.close()
        with pytest.raises(RuntimeError, match="not started"):
            manager.listen("tcp://127.0.0.1:0")
        await asyncio.sleep(0.05)  # the loop goes on without it

    asyncio.run(main())


def test_schedule_runs_coroutines_from_handlers() -> None:
    async def main() -> None:
        done = asyncio.Event()

        async def later(text: str) -> None:
            await asyncio.sleep(0)
            assert text == "GET"
            done.set()

        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                manager.schedule(later(data.method))
                conn.reply(200, "scheduled")

        manager = AsyncManager(handler)
        async with manager as mgr:
            port = mgr.listen("http://127.0.0.1:0").local_addr.port
            r = await asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/", timeout=DEFAULT_TIMEOUT)
            assert r.text == "scheduled"
            await asyncio.wait_for(done.wait(), DEFAULT_TIMEOUT)
            with pytest.raises(TypeError):
                mgr.schedule(42)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError, match="not started"):
            AsyncManager().schedule(lambda: None)

    asyncio.run(main())


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_poll_interval_is_checked(value: Any) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        AsyncManager(poll_interval=value)


def test_with_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                conn.reply(200, "uvloop")

        async with AsyncManager(handler, poll_interval=10_000) as mgr:
            port = mgr.listen("http://127.0.0.1:0").local_addr.port
            r = await asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/", timeout=DEFAULT_TIMEOUT)
            assert r.text == "uvloop"

    uvloop.run(main())


def test_awaitable_connects_resolve_when_ready_and_fail_clearly() -> None:
    async def main() -> None:
        received: List[Any] = []

        def server(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                conn.ws_upgrade(data)

        def client(conn: Any, event: int, data: Any) -> None:
            received.append(event)

        async with AsyncManager(server) as mgr:
            port = mgr.listen("http://127.0.0.1:0").local_addr.port
            conn = await asyncio.wait_for(mgr.connect_async(f"tcp://127.0.0.1:{port}", client), DEFAULT_TIMEOUT)
            assert not conn.is_closed and conn.handler is client
            ws = await asyncio.wait_for(mgr.ws_connect_async(f"ws://127.0.0.1:{port}/", client,
                                                             events=[MG_EV_READ]), DEFAULT_TIMEOUT)
            assert ws.is_websocket and ws.events == frozenset({MG_EV_READ})
            assert MG_EV_WS_OPEN not in received  # filtered out, as asked
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                closed_port = unused.getsockname()[1]
            with pytest.raises(ConnectError, match=str(closed_port)):
                await asyncio.wait_for(mgr.connect_async(f"tcp://127.0.0.1:{closed_port}"), DEFAULT_TIMEOUT)

    asyncio.run(main())


def test_a_cancelled_connect_leaves_nothing_open() -> None:
    async def main() -> None:
        with socket.socket() as silent:  # accepts (the kernel does) but never answers the handshake
            silent.bind(("127.0.0.1", 0))
            silent.listen(1)
            async with AsyncManager() as mgr:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(mgr.ws_connect_async(f"ws://127.0.0.1:{silent.getsockname()[1]}/"), 0.3)
                for _ in range(50):
                    if not [c for c in mgr.manager.connections if not c.is_listening]:
                        break
                    await asyncio.sleep(0.02)
                assert [c for c in mgr.manager.connections if not c.is_listening] == []

    asyncio.run(main())


def test_awaitable_mqtt_connect_reports_the_brokers_answer(tmp_path: Any) -> None:
    from support import Mosquitto

    secured = Mosquitto(tmp_path, users={"alice": "s3cret"})

    async def main() -> None:
        async with AsyncManager() as mgr:
            conn = await asyncio.wait_for(mgr.mqtt_connect_async(secured.url, username="alice", password="s3cret"),
                                          DEFAULT_TIMEOUT)
            assert not conn.is_closed
            with pytest.raises(ConnectError, match="refused|closed"):
                await asyncio.wait_for(mgr.mqtt_connect_async(secured.url, username="alice", password="wrong"),
                                       DEFAULT_TIMEOUT)

    try:
        asyncio.run(main())
    finally:
        secured.stop()
