"""Deferred events: MG_EV_POLL, MG_EV_WRITE, MG_EV_READ after a protocol handler and
small MG_EV_WS_MSG wait in C and cross into Python together (see pm_deferrable in
_native/dispatch.c).

What a handler can observe must not change: each handler sees exactly the sequence
of (connection, event) that Mongoose raised, with the same data. These tests compare
what handlers saw with the shim's own trace of what Mongoose raised."""

from __future__ import annotations

import socket
import threading
from typing import Any, List, Tuple

import pytest

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_WRITE,
    MG_EV_WS_MSG,
    WEBSOCKET_OP_TEXT,
    Manager,
)
from pymongoose._binding import ffi, lib

from support import DEFAULT_TIMEOUT, WS_UPGRADE, poll_until, ws_frame

TRACE_EVENTS = 200_000


def start_trace(mgr: Manager) -> Any:
    """Make the shim record every event bound for Python, in Mongoose's order."""
    buffer = ffi.new("int64_t[]", 2 * TRACE_EVENTS)
    frames = mgr._frames
    frames.trace, frames.trace_cap, frames.trace_len = buffer, TRACE_EVENTS, 0
    return buffer


def trace_of(mgr: Manager, buffer: Any) -> List[Tuple[int, int]]:
    frames = mgr._frames
    assert frames.trace_len < TRACE_EVENTS, "trace full: make the scenario smaller"
    flat = ffi.unpack(buffer, 2 * frames.trace_len)
    frames.trace = ffi.NULL
    return list(zip(flat[0::2], flat[1::2]))


def http_client(port: int, requests_count: int, done: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as s:
        for _ in range(requests_count):
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = b""
            while not response.endswith(b"ok"):
                chunk = s.recv(4096)
                assert chunk
                response += chunk
    done.set()


def test_handlers_see_the_sequence_mongoose_raised_with_http_clients() -> None:
    seen: List[Tuple[int, int]] = []
    numbers: List[Tuple[int, Any]] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        seen.append((conn.id, event))
        if event in (MG_EV_POLL, MG_EV_READ, MG_EV_WRITE):
            numbers.append((event, data))
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")

    with Manager(handler) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        trace = start_trace(mgr)
        seen.clear()
        done = [threading.Event() for _ in range(4)]
        for event in done:
            threading.Thread(target=http_client, args=(listener.local_addr.port, 5, event)).start()
        poll_until(mgr, lambda: all(e.is_set() for e in done))
        poll_until(mgr, lambda: len(mgr.connections) == 1)  # the clients' closes seen
        raised, handled = trace_of(mgr, trace), list(seen)

    assert handled == raised
    kinds = {event for _, event in seen}
    assert {MG_EV_POLL, MG_EV_READ, MG_EV_WRITE, MG_EV_HTTP_MSG, MG_EV_CLOSE} <= kinds
    assert all(data is None for event, data in numbers if event == MG_EV_POLL)
    assert any(isinstance(data, int) and data > 0 for event, data in numbers if event == MG_EV_WRITE)


def test_sequence_is_kept_when_the_queue_overflows() -> None:
    """More deferred events than the queue holds (PM_QUEUE_MAX): the shim crosses
    early, and nothing is lost or reordered."""
    seen: List[Tuple[int, int]] = []
    with Manager(lambda conn, event, data: seen.append((conn.id, event))) as mgr:
        listener = mgr.listen("tcp://127.0.0.1:0")
        uptime = ffi.new("uint64_t *", 1)
        count = lib.PM_QUEUE_MAX * 3 + 7
        trace = start_trace(mgr)
        seen.clear()
        assert lib.pm_bench_events(mgr._ptr, listener.id, MG_EV_POLL, uptime, count) == count
        raised, handled = trace_of(mgr, trace), list(seen)
    polls = [entry for entry in handled if entry[1] == MG_EV_POLL]
    assert len(polls) == count
    assert handled == raised


def test_a_send_from_a_poll_handler_still_goes_out() -> None:
    """A deferred event's handler runs later in the same poll: what it sends leaves
    on the next iteration at the latest."""
    state = {"sent": False}

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_POLL and conn.is_accepted and not state["sent"]:
            state["sent"] = conn.send(b"tick\n")

    with Manager(handler) as mgr:
        listener = mgr.listen("tcp://127.0.0.1:0")
        received = bytearray()
        with socket.create_connection(("127.0.0.1", listener.local_addr.port), timeout=DEFAULT_TIMEOUT) as s:
            s.setblocking(False)

            def got_tick() -> bool:
                try:
                    received.extend(s.recv(64))
                except BlockingIOError:
                    pass
                return received.endswith(b"\n")

            poll_until(mgr, got_tick)
    assert bytes(received) == b"tick\n"


def test_a_close_from_a_write_handler_closes() -> None:
    closed = threading.Event()

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")
        elif event == MG_EV_WRITE:
            conn.close()
        elif event == MG_EV_CLOSE and conn.is_accepted:
            closed.set()

    with Manager(handler) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        with socket.create_connection(("127.0.0.1", listener.local_addr.port), timeout=DEFAULT_TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            poll_until(mgr, closed.is_set)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")


@pytest.mark.parametrize("raise_in", [MG_EV_POLL, MG_EV_WRITE])
def test_an_exception_in_a_deferred_handler_is_logged_and_the_rest_delivered(raise_in: int, caplog: Any) -> None:
    seen: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        seen.append(event)
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")
        if event == raise_in:
            raise RuntimeError("boom in a deferred handler")

    with Manager(handler) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        done = threading.Event()
        threading.Thread(target=http_client, args=(listener.local_addr.port, 2, done)).start()
        poll_until(mgr, done.is_set)
    assert seen.count(MG_EV_HTTP_MSG) == 2
    assert "boom in a deferred handler" in caplog.text


def test_keyboard_interrupt_from_a_deferred_handler_leaves_poll() -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_POLL:
            raise KeyboardInterrupt

    with Manager(handler) as mgr:
        mgr.listen("tcp://127.0.0.1:0")
        with pytest.raises(KeyboardInterrupt):
            mgr.poll(0)
        # The manager stays usable.
        handler_calls: List[int] = []
        mgr.connections[0].set_handler(lambda c, e, d: handler_calls.append(e))
        mgr.poll(0)
        assert MG_EV_POLL in handler_calls


def test_websocket_echo_sequence_matches() -> None:
    import websocket  # websocket-client

    seen: List[Tuple[int, int]] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        seen.append((conn.id, event))
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            conn.ws_send(data.text, WEBSOCKET_OP_TEXT)

    with Manager(handler) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        trace = start_trace(mgr)
        seen.clear()
        echoes: List[str] = []

        def client() -> None:
            ws = websocket.create_connection(f"ws://127.0.0.1:{listener.local_addr.port}/", timeout=DEFAULT_TIMEOUT)
            for i in range(20):
                ws.send(f"m{i}")
                echoes.append(ws.recv())
            ws.close()

        thread = threading.Thread(target=client)
        thread.start()
        poll_until(mgr, lambda: not thread.is_alive())
        poll_until(mgr, lambda: len(mgr.connections) == 1)
        raised, handled = trace_of(mgr, trace), list(seen)
    assert echoes == [f"m{i}" for i in range(20)]
    assert handled == raised


# ---- WebSocket messages: those of one read cross together, before the writes --------

def ws_connect(mgr: Manager, port: int) -> socket.socket:
    """A raw WebSocket client socket, upgraded (polling mgr meanwhile)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(WS_UPGRADE)
    response = bytearray()
    s.setblocking(False)

    def upgraded() -> bool:
        try:
            response.extend(s.recv(4096))
        except BlockingIOError:
            pass
        return b"\r\n\r\n" in response

    poll_until(mgr, upgraded)
    s.settimeout(DEFAULT_TIMEOUT)
    assert response.startswith(b"HTTP/1.1 101") and response.endswith(b"\r\n\r\n")
    return s


class WsRecorder:
    """An echo server's handler that records what it saw."""

    def __init__(self) -> None:
        self.seen: List[Tuple[int, int]] = []
        self.messages: List[Tuple[bytes, int]] = []

    def __call__(self, conn: Any, event: int, data: Any) -> None:
        self.seen.append((conn.id, event))
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            self.messages.append((data.data, data.flags))
            conn.ws_send(data.data, data.op)


def test_websocket_messages_of_one_read_arrive_in_order_and_intact() -> None:
    # Around the sizes where a message stops being deferred (PM_DEFER_MESSAGE_MAX).
    sizes = [0, 1, 125, 126, 5000, 16384, 16385, 3, 70000, 0, 9]
    payloads = [bytes((i + k) % 251 for k in range(n)) for i, n in enumerate(sizes)]
    record = WsRecorder()
    with Manager(record) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        with ws_connect(mgr, listener.local_addr.port) as s:
            trace = start_trace(mgr)
            record.seen.clear()
            s.sendall(b"".join(ws_frame(2, p) for p in payloads))
            poll_until(mgr, lambda: len(record.messages) == len(payloads))
            raised, handled = trace_of(mgr, trace), list(record.seen)
    assert [data for data, _ in record.messages] == payloads
    assert all(flags == 0x82 for _, flags in record.messages)  # FIN, binary
    assert handled == raised


def test_more_deferred_payload_than_the_buffer_holds_crosses_early() -> None:
    payloads = [bytes([i]) * 10_000 for i in range(60)]  # 600 kB in one write: > PM_PAYLOADS_MAX
    record = WsRecorder()
    with Manager(record) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        with ws_connect(mgr, listener.local_addr.port) as s:
            s.sendall(b"".join(ws_frame(2, p) for p in payloads))
            poll_until(mgr, lambda: len(record.messages) == len(payloads))
    assert [data for data, _ in record.messages] == payloads


def test_replies_to_a_read_leave_in_the_iteration_that_read_it() -> None:
    """Deferred messages cross with the MG_EV_READ that follows them, before
    Mongoose writes: the echoes are on the wire without another poll."""
    record = WsRecorder()
    frames = [ws_frame(WEBSOCKET_OP_TEXT, f"m{i}".encode()) for i in range(30)]
    with Manager(record) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        with ws_connect(mgr, listener.local_addr.port) as s:
            s.sendall(b"".join(frames))
            poll_until(mgr, lambda: len(record.messages) == len(frames))
            expected = b"".join(bytes([0x81, len(f"m{i}")]) + f"m{i}".encode() for i in range(30))
            received = b""
            while len(received) < len(expected):  # no poll() any more
                chunk = s.recv(65536)
                assert chunk, "server closed"
                received += chunk
    assert received == expected


def test_a_handler_that_narrows_events_mid_batch_sees_no_more() -> None:
    """Direct delivery would filter the later messages in C once the mask changed;
    batched delivery must do the same."""
    delivered: List[bytes] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            delivered.append(data.data)
            conn.events = [MG_EV_CLOSE]

    with Manager(handler) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        with ws_connect(mgr, listener.local_addr.port) as s:
            messages = [ws_frame(WEBSOCKET_OP_TEXT, b"x%d" % i) for i in range(5)]
            s.sendall(b"".join(messages) + ws_frame(0x8, b""))  # then CLOSE
            poll_until(mgr, lambda: len(mgr.connections) == 1)  # closed after the CLOSE frame
    assert delivered == [b"x0"]
