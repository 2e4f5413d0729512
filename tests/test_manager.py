"""Manager lifecycle, error policy, handler routing and thread rules."""

from __future__ import annotations

import gc
import logging
import socket
import sys
import textwrap
import threading
import time
from typing import Any, List

import pytest
import requests

import pymongoose
from pymongoose import (
    MG_EV_ACCEPT,
    MG_EV_CLOSE,
    MG_EV_ERROR,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_OPEN,
    MG_EV_READ,
    MG_EV_WRITE,
    ConnectionClosedError,
    ListenError,
    Manager,
    ManagerClosedError,
    MessageExpiredError,
)

from support import DEFAULT_TIMEOUT, LoopThread, poll_until, raw_request, run_python, wait_for


def ok_handler(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, "ok")


# ---- lifecycle ----------------------------------------------------------------------

def test_context_manager_closes_and_poll_after_close_raises() -> None:
    with Manager(ok_handler) as mgr:
        mgr.listen("http://127.0.0.1:0")
        mgr.poll(0)
    assert mgr.closed
    with pytest.raises(ManagerClosedError):
        mgr.poll(0)
    with pytest.raises(RuntimeError):  # the Cython binding raised RuntimeError
        mgr.poll(0)
    with pytest.raises(ManagerClosedError):
        mgr.listen("http://127.0.0.1:0")
    mgr.close()  # idempotent


def test_close_delivers_close_to_every_connection() -> None:
    closed: List[int] = []
    mgr = Manager(lambda c, e, d: e == MG_EV_CLOSE and closed.append(c.id))
    listeners = [mgr.listen("tcp://127.0.0.1:0") for _ in range(3)]
    mgr.close()
    assert sorted(closed) == sorted(c.id for c in listeners)
    assert all(c.is_closed for c in listeners)


def test_close_from_another_thread_wakes_a_long_poll() -> None:
    mgr = Manager(ok_handler)
    mgr.listen("http://127.0.0.1:0")
    polled = threading.Event()
    outcome: List[BaseException] = []

    def loop() -> None:
        try:
            while True:
                polled.set()
                mgr.poll(30_000)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    polled.wait(DEFAULT_TIMEOUT)
    time.sleep(0.05)  # let it block inside the 30-second poll
    started = time.monotonic()
    mgr.close()
    assert time.monotonic() - started < 5, "close() waited for the poll timeout instead of waking it"
    thread.join(DEFAULT_TIMEOUT)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ManagerClosedError)


def test_other_threads_run_while_poll_waits() -> None:
    # Calls into C keep the GIL on CPython (held_gil.h); the wait inside poll() must
    # release it, with connections open or not.
    mgr = Manager(ok_handler)
    mgr.listen("http://127.0.0.1:0")
    counted = [0]
    stop = threading.Event()
    running = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counted[0] += 1
            running.set()

    thread = threading.Thread(target=count)
    thread.start()
    try:
        running.wait(DEFAULT_TIMEOUT)
        before = counted[0]
        time.sleep(0.3)  # the counter's pace on this machine, the GIL free
        pace = counted[0] - before
        before = counted[0]
        mgr.poll(300)
        during = counted[0] - before
    finally:
        stop.set()
        thread.join(DEFAULT_TIMEOUT)
        mgr.close()
    # Held through the wait, the GIL would let the counter run at most one switch
    # interval (5 ms) of the 300: under 2% of its pace.
    assert during > pace / 4, f"{during} increments while poll() waited 300 ms, {pace} while sleeping as long"


def test_close_while_polling_many_rounds_never_crashes() -> None:
    for _ in range(200):
        mgr = Manager(ok_handler)
        mgr.listen("http://127.0.0.1:0")
        loop = LoopThread(mgr, poll_ms=5)
        loop.start()
        mgr.close()
        loop.stop_after_close()
        assert mgr.closed


def test_close_from_inside_a_handler_frees_after_the_poll(serve: Any) -> None:
    mgr = Manager()
    closed: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "bye")
            mgr.close()
            assert mgr.closed
        elif event == MG_EV_CLOSE:
            closed.append(conn.id)

    listener = mgr.listen("http://127.0.0.1:0", handler)
    port = listener.local_addr.port
    client = threading.Thread(target=lambda: raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    client.start()
    with pytest.raises(ManagerClosedError):
        while True:
            mgr.poll(20)
    client.join(DEFAULT_TIMEOUT)
    assert listener.id in closed


def test_poll_from_inside_a_handler_is_refused() -> None:
    errors: List[BaseException] = []
    mgr = Manager()

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_OPEN:
            try:
                mgr.poll(0)
            except RuntimeError as exc:
                errors.append(exc)

    with mgr:
        mgr.listen("tcp://127.0.0.1:0", handler)
    assert len(errors) == 1 and "inside a handler" in str(errors[0])


def test_manager_dropped_without_close_is_freed_safely() -> None:
    script = textwrap.dedent("""
        import gc, os, faulthandler
        faulthandler.enable()
        from pymongoose import Manager
        def fds():
            return len(os.listdir('/proc/self/fd'))
        before = fds()
        for _ in range(200):
            m = Manager(lambda c, e, d: None)
            m.listen('http://127.0.0.1:0')
            m.timer_add(1000, lambda: None, repeat=True)
            m.poll(0)
            del m
            gc.collect()
        gc.collect()
        after = fds()
        assert after - before < 5, (before, after)
        print('ok', before, after)
    """)
    proc = run_python("-c", script)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.startswith("ok")


# ---- errors -------------------------------------------------------------------------

def test_listen_on_a_busy_port_names_the_url_and_cause(manager: Manager) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(ListenError) as info:
            manager.listen(url)
    message = str(info.value)
    assert url in message
    assert "Address already in use" in message
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("url, error", [
    ("nonsense://127.0.0.1:0", ValueError),
    ("127.0.0.1:0", ValueError),
    ("http://999.1.1.1:80", ListenError),
    ("tcp://no-such-host.invalid:80", ListenError),
    ("", ValueError),
    ("http://127.0.0.1:0\x00junk", ValueError),
    (b"http://127.0.0.1:0", TypeError),
    (None, TypeError),
])
def test_listen_rejects_bad_urls(manager: Manager, url: Any, error: type) -> None:
    with pytest.raises(error):
        manager.listen(url)
    assert manager.connections == ()


def test_bad_arguments_raise_clear_errors(manager: Manager) -> None:
    with pytest.raises(TypeError):
        Manager(handler="not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        manager.poll("10")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        manager.listen("tcp://127.0.0.1:0", handler=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        manager.listen("tcp://127.0.0.1:0", events=[99])
    with pytest.raises(TypeError):
        manager.listen("tcp://127.0.0.1:0", events="abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Manager(dns="8.8.8.8")


def test_handler_exception_is_logged_and_the_loop_goes_on(serve: Any, caplog: Any) -> None:
    calls: List[str] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            calls.append(data.uri)
            if data.uri == "/boom":
                raise ValueError("handler exploded")
            conn.reply(200, "fine")

    caplog.set_level(logging.ERROR, logger="pymongoose")
    server = serve(handler)
    with pytest.raises(requests.RequestException):
        requests.get(f"{server.url}/boom", timeout=1)
    assert requests.get(f"{server.url}/next", timeout=DEFAULT_TIMEOUT).text == "fine"
    records = [r for r in caplog.records if r.name == "pymongoose"]
    assert records, "the exception was not logged"
    message = records[0].getMessage()
    assert "MG_EV_HTTP_MSG" in message and "Connection id=" in message
    assert records[0].exc_info is not None and records[0].exc_info[0] is ValueError
    assert calls == ["/boom", "/next"]


def test_error_handler_receives_the_exception(serve: Any) -> None:
    seen: List[BaseException] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "x")
            raise KeyError("custom")

    server = serve(handler, manager=Manager(error_handler=seen.append))
    requests.get(server.url, timeout=DEFAULT_TIMEOUT)
    wait_for(lambda: seen)
    assert isinstance(seen[0], KeyError)


@pytest.mark.parametrize("exception", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_leave_poll(exception: type) -> None:
    mgr = Manager()
    raised = [False]

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "served before leaving")
            if not raised[0]:
                raised[0] = True
                raise exception()

    with mgr:
        port = mgr.listen("http://127.0.0.1:0", handler).local_addr.port
        replies: List[bytes] = []
        client = threading.Thread(target=lambda: replies.append(
            raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
        client.start()
        with pytest.raises(exception):
            poll_until(mgr, lambda: False, timeout=DEFAULT_TIMEOUT)
        # The loop is still usable afterwards.
        poll_until(mgr, lambda: not client.is_alive())
        assert b"served before leaving" in replies[0]


# ---- handlers and events --------------------------------------------------------

def test_event_sequence_and_data_types() -> None:
    events: List[int] = []
    data_types = {}

    def handler(conn: Any, event: int, data: Any) -> None:
        if not conn.is_listening:
            events.append(event)
            data_types.setdefault(event, type(data))
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "x")
            conn.drain()

    with Manager(handler) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr.port
        client = threading.Thread(target=raw_request, args=(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        client.start()
        poll_until(mgr, lambda: MG_EV_CLOSE in events)
        client.join(DEFAULT_TIMEOUT)
    for event in (MG_EV_OPEN, MG_EV_ACCEPT, MG_EV_READ, MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_WRITE,
                  MG_EV_CLOSE):
        assert event in events, pymongoose.event_name(event)
    assert events[0] == MG_EV_OPEN and events[-1] == MG_EV_CLOSE
    assert events.index(MG_EV_ACCEPT) < events.index(MG_EV_HTTP_MSG) < events.index(MG_EV_CLOSE)
    assert data_types[MG_EV_READ] is int and data_types[MG_EV_WRITE] is int
    assert data_types[MG_EV_HTTP_MSG] is pymongoose.HttpMessage
    assert data_types[MG_EV_OPEN] is type(None) and data_types[MG_EV_CLOSE] is type(None)


def test_error_event_carries_text() -> None:
    errors: List[Any] = []
    with Manager(lambda c, e, d: e == MG_EV_ERROR and errors.append(d)) as mgr:
        conn = mgr.connect(f"tcp://127.0.0.1:{_closed_port()}")
        poll_until(mgr, lambda: errors)
        poll_until(mgr, lambda: conn.is_closed)
    assert isinstance(errors[0], str) and errors[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_accepted_connections_inherit_the_listener_handler(serve: Any) -> None:
    default_calls: List[int] = []
    mgr = Manager(lambda c, e, d: default_calls.append(e))
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(200, "listener handler"), manager=mgr)
    assert requests.get(server.url, timeout=DEFAULT_TIMEOUT).text == "listener handler"
    assert MG_EV_HTTP_MSG not in default_calls


def test_connections_without_a_handler_use_the_manager_default(manager: Manager) -> None:
    seen: List[int] = []
    mgr = Manager(lambda c, e, d: seen.append(e))
    with mgr:
        conn = mgr.listen("tcp://127.0.0.1:0")
        assert conn.handler is mgr.handler
    assert MG_EV_OPEN in seen and MG_EV_CLOSE in seen


def test_set_handler_replaces_the_handler_at_run_time(serve: Any) -> None:
    def second(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "second")

    def first(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "first")
            conn.set_handler(second)

    server = serve(first)
    with requests.Session() as s:
        assert [s.get(server.url, timeout=DEFAULT_TIMEOUT).text for _ in range(3)] == ["first", "second", "second"]


def test_userdata_and_identity(serve: Any) -> None:
    seen: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_OPEN:
            conn.userdata = {"n": 0}
        if event == MG_EV_HTTP_MSG:
            conn.userdata["n"] += 1
            seen.append((conn.id, conn.userdata["n"], conn.manager))
            conn.reply(200, str(conn.userdata["n"]))

    server = serve(handler)
    with requests.Session() as s:
        assert [s.get(server.url, timeout=DEFAULT_TIMEOUT).text for _ in range(3)] == ["1", "2", "3"]
    assert len({conn_id for conn_id, _, _ in seen}) == 1
    assert seen[0][2] is server.manager


# ---- connections after close, messages after their callback ---------------------

def test_closed_connection_keeps_values_and_drops_sends(caplog: Any) -> None:
    kept: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            kept.append(conn)
            conn.reply(200, "x")
            conn.drain()

    with Manager(handler) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr.port
        client = threading.Thread(target=raw_request, args=(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        client.start()
        poll_until(mgr, lambda: kept and kept[0].is_closed)
        client.join(DEFAULT_TIMEOUT)
        conn = kept[0]
        for late in (lambda: conn.send(b"late"), lambda: conn.reply(200, "late"),
                     lambda: conn.http_chunk("late"), lambda: conn.ws_send("late")):
            with pytest.raises(ConnectionClosedError, match=f"Connection has been closed.*connection {conn.id}"):
                late()
        with pytest.raises(RuntimeError):  # what cymongoose raises
            conn.send(b"late")
        conn.close()  # closing again is harmless
        conn.drain()
        assert conn.recv_len == 0 and conn.send_len == 0
        assert conn.recv_data() == b"" and conn.send_data() == b""
        assert conn.is_closing and conn.is_closed
        assert conn.remote_addr.ip == "127.0.0.1" and conn.local_addr.port == port
        assert conn.recv_data() == b"" and conn.send_len == 0
        assert not conn.is_listening
        assert "closed" in repr(conn)


@pytest.mark.parametrize("strict", [False, True])
def test_message_used_after_its_callback_never_reads_the_buffer(serve: Any, strict: bool) -> None:
    kept: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            kept.append(data)
            assert data.valid and bool(data)
            conn.reply(200, data.uri)

    server = serve(handler, manager=Manager(strict_messages=strict))
    assert requests.get(f"{server.url}/keep?a=1", timeout=DEFAULT_TIMEOUT).text == "/keep"
    message = kept[0]
    assert not message.valid and not message
    uses = {"uri": lambda: message.uri, "body": lambda: message.body_bytes, "header": lambda: message.header("Host"),
            "headers": lambda: message.headers(), "query_var": lambda: message.query_var("a"),
            "status": lambda: message.status(), "header_var": lambda: message.header_var("Host", "x"),
            "fields": lambda: message.fields()}
    if strict:  # Manager(strict_messages=True): every use raises
        for use in uses.values():
            with pytest.raises(MessageExpiredError):
                use()
    else:  # the Cython bindings' way: an empty message
        assert {name: use() for name, use in uses.items()} == {
            "uri": "", "body": b"", "header": None, "headers": [], "query_var": None, "status": None,
            "header_var": None, "fields": ("", "", "", "", [])}
        assert message.header("Host", "default") == "default" and message.method == ""
    assert "expired" in repr(message)


def test_calls_from_a_foreign_thread_while_polling_run_on_the_loop(serve: Any) -> None:
    """As the Cython binding allows (its UDP echo example sends from the main thread
    while a worker polls), but carried over to the polling thread, never racing it."""
    server = serve(ok_handler)
    assert server.listener.send(b"x") is True
    other = server.manager.listen("tcp://127.0.0.1:0")
    assert other.is_listening and other.local_addr.port
    assert "Connection id=" in repr(other)
    with pytest.raises(ConnectionClosedError):  # exceptions come back to the caller
        other.close()
        wait_for(lambda: other.is_closed)
        other.send(b"late")
    # call_soon_threadsafe still works too:
    assert server.loop.call(lambda: server.listener.is_listening) is True


def test_udp_client_driven_from_the_main_thread_while_a_worker_polls() -> None:
    """The Cython binding's UDP echo example, as written."""
    import socket

    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(DEFAULT_TIMEOUT)
    replies: List[bytes] = []

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_READ:
            replies.append(conn.recv_data())
            conn.consume(conn.recv_len)

    mgr = Manager(client)
    loop = LoopThread(mgr, poll_ms=50).start()
    try:
        conn = mgr.connect(f"udp://127.0.0.1:{echo.getsockname()[1]}")
        for i in range(20):
            assert conn.send(b"ping %d" % i) is True
            data, peer = echo.recvfrom(100)
            echo.sendto(data.replace(b"ping", b"pong"), peer)
        wait_for(lambda: len(replies) == 20)
        assert replies == [b"pong %d" % i for i in range(20)]
    finally:
        loop.stop()
        mgr.close()
        echo.close()


def test_many_threads_sending_while_polling_and_closing_never_hang_or_crash() -> None:
    for _ in range(5):
        mgr = Manager()
        listener = mgr.listen("tcp://127.0.0.1:0")
        loop = LoopThread(mgr, poll_ms=1).start()
        outcomes: List[str] = []

        def sender(listener: Any = listener, outcomes: List[str] = outcomes) -> None:
            for _ in range(200):
                try:
                    listener.send(b"x")
                    outcomes.append("sent")
                except (ManagerClosedError, ConnectionClosedError):
                    outcomes.append("refused")
                    return

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for t in threads:
            t.start()
        mgr.close()
        for t in threads:
            t.join(DEFAULT_TIMEOUT)
            assert not t.is_alive()
        loop.stop_after_close()
        assert outcomes and set(outcomes) <= {"sent", "refused"}


def test_repr_of_connections_and_manager(manager: Manager) -> None:
    listener = manager.listen("tcp://127.0.0.1:0")
    assert repr(listener).startswith(f"<Connection id={listener.id} tcp listening on 127.0.0.1:")
    assert "1 connections" in repr(manager)


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc/self/fd")
def test_no_file_descriptor_leak_across_managers() -> None:
    import os

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = fds()
    for _ in range(50):
        with Manager(ok_handler) as mgr:
            mgr.listen("http://127.0.0.1:0")
            mgr.poll(0)
    gc.collect()
    assert fds() - before <= 2


def test_bookkeeping_cut_short_by_an_interrupt_leaves_nothing_dangling(monkeypatch: Any) -> None:
    """A signal's KeyboardInterrupt may land anywhere, even in the manager's own
    MG_EV_CLOSE bookkeeping. C, not Python, decides what is still open, so the
    half-retired connection must still be safe to use."""
    kept: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            kept.append((conn, data))
            conn.reply(200, "x")

    def interrupted(self: Any, c: Any) -> None:
        raise KeyboardInterrupt

    with Manager(handler) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr.port
        client = threading.Thread(target=raw_request, args=(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        client.start()
        poll_until(mgr, lambda: kept)
        monkeypatch.setattr(pymongoose.Connection, "_retire", interrupted)
        kept[0][0].drain()  # it closes at the next poll, in the patched bookkeeping
        with pytest.raises(KeyboardInterrupt):
            poll_until(mgr, lambda: False)
        monkeypatch.undo()
        client.join(DEFAULT_TIMEOUT)
        conn, message = kept[0]
        assert not conn.is_closed  # Python's bookkeeping never ran...
        with pytest.raises(ConnectionClosedError):  # ...yet nothing reaches the freed connection
            conn.send(b"after")
        assert conn.recv_data() == b"" and conn.is_closing
        conn.close()
        assert message.body_bytes == b""  # the view reads as empty, never the freed buffer


def test_reuse_port_where_the_platform_lacks_it_is_a_clear_error(manager: Manager, monkeypatch: Any) -> None:
    # As on Windows: no SO_REUSEPORT. Refused before a port is opened.
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        manager.listen("http://127.0.0.1:0", reuse_port=True)
    assert [c for c in manager.connections if c.is_listening] == []
