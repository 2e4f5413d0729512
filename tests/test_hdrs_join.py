"""MG_EV_HTTP_HDRS of a request already whole in the buffer crosses into Python
together with its MG_EV_HTTP_MSG (one crossing instead of two). The handler must not
be able to tell: same order, same views, and what a handler does in MG_EV_HTTP_HDRS
(consume the input, narrow its events, raise) has the effect it has when the two
cross apart, as they still do when the body is not there yet."""

from __future__ import annotations

import logging
import socket
from typing import Any, List, Tuple

import pytest

from pymongoose import MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_READ, HttpMessage, Manager

from support import DEFAULT_TIMEOUT, poll_until

Seen = List[Tuple[int, str, str, bool]]


def _listen(handler: Any) -> Tuple[Manager, int]:
    manager = Manager()
    listener = manager.listen("http://127.0.0.1:0", handler)
    return manager, listener.local_addr.port


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)


def _recording(seen: Seen) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event in (MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG):
            assert isinstance(data, HttpMessage)
            seen.append((event, data.uri, data.header("X-N") or "", data.valid))
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, f"body={data.body_bytes.decode()}")
    return handler


def test_pipelined_whole_requests_see_headers_then_message_each() -> None:
    seen: Seen = []
    manager, port = _listen(_recording(seen))
    try:
        with _connect(port) as s:
            s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nX-N: 1\r\nContent-Length: 2\r\n\r\nhi"
                      b"GET /b HTTP/1.1\r\nHost: x\r\nX-N: 2\r\n\r\n")
            poll_until(manager, lambda: len(seen) == 4, what="two requests")
        assert seen == [(MG_EV_HTTP_HDRS, "/a", "1", True), (MG_EV_HTTP_MSG, "/a", "1", True),
                        (MG_EV_HTTP_HDRS, "/b", "2", True), (MG_EV_HTTP_MSG, "/b", "2", True)]
    finally:
        manager.close()


def test_headers_view_from_a_joined_crossing_expires_with_it() -> None:
    kept: List[HttpMessage] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_HDRS:
            kept.append(data)
        elif event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")

    manager, port = _listen(handler)
    try:
        with _connect(port) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            poll_until(manager, lambda: kept and not kept[0].valid, what="the request")
            assert s.recv(1024).startswith(b"HTTP/1.1 200")
        assert kept[0].uri == ""  # an expired view reads empty
    finally:
        manager.close()


def test_body_still_arriving_keeps_its_own_headers_crossing() -> None:
    seen: Seen = []
    manager, port = _listen(_recording(seen))
    try:
        with _connect(port) as s:
            s.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nX-N: 3\r\nContent-Length: 4\r\n\r\nab")
            poll_until(manager, lambda: seen, what="the headers")
            assert seen == [(MG_EV_HTTP_HDRS, "/slow", "3", True)]  # before the body is whole
            s.sendall(b"cd")
            poll_until(manager, lambda: seen[-1][0] == MG_EV_HTTP_MSG, what="the message")
            # Mongoose parses the head again with each read, and says so each time.
            assert set(seen[:-1]) == {(MG_EV_HTTP_HDRS, "/slow", "3", True)}
            assert seen[-1] == (MG_EV_HTTP_MSG, "/slow", "3", True)
            assert s.recv(1024).endswith(b"body=abcd")
    finally:
        manager.close()


def test_consuming_the_input_in_headers_takes_the_request_over() -> None:
    """As Mongoose does when the two cross apart: no MG_EV_HTTP_MSG, and what follows
    arrives as plain MG_EV_READ for the handler to read itself."""
    events: List[int] = []
    raw: List[bytes] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event in (MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG):
            events.append(event)
        if event == MG_EV_HTTP_HDRS:
            raw.append(conn.recv_data())
            conn.consume(conn.recv_len)
        elif event == MG_EV_READ and raw:
            raw.append(conn.recv_data())
            conn.consume(conn.recv_len)

    manager, port = _listen(handler)
    try:
        with _connect(port) as s:
            s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            poll_until(manager, lambda: raw, what="the headers")
            s.sendall(b"more bytes")
            poll_until(manager, lambda: b"".join(raw).endswith(b"more bytes"), what="the raw bytes")
        assert events == [MG_EV_HTTP_HDRS]
        assert raw[0].endswith(b"\r\n\r\nabc")
    finally:
        manager.close()


def test_narrowing_events_in_headers_drops_the_message() -> None:
    events: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        events.append(event)
        if event == MG_EV_HTTP_HDRS:
            conn.reply(413, "no")
            conn.events = [MG_EV_READ]

    manager, port = _listen(handler)
    try:
        with _connect(port) as s:
            s.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
            poll_until(manager, lambda: MG_EV_HTTP_HDRS in events, what="the headers")
            assert s.recv(1024).startswith(b"HTTP/1.1 413")
            manager.poll(20)
        assert MG_EV_HTTP_MSG not in events
    finally:
        manager.close()


def test_headers_handler_that_raises_is_logged_and_message_still_comes(caplog: Any) -> None:
    seen: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_HDRS:
            raise RuntimeError("in headers")
        if event == MG_EV_HTTP_MSG:
            seen.append(event)
            conn.reply(200, "ok")

    manager, port = _listen(handler)
    try:
        with caplog.at_level(logging.ERROR, logger="pymongoose"), _connect(port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            poll_until(manager, lambda: seen, what="the message")
            assert s.recv(1024).startswith(b"HTTP/1.1 200")
        assert "in headers" in caplog.text and "MG_EV_HTTP_HDRS" in caplog.text
    finally:
        manager.close()


@pytest.mark.parametrize("chunked", [True, False])
def test_chunked_request_keeps_its_own_headers_crossing(chunked: bool) -> None:
    seen: Seen = []
    manager, port = _listen(_recording(seen))
    body = b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" if chunked else b"Content-Length: 2\r\n\r\nhi"
    try:
        with _connect(port) as s:
            s.sendall(b"POST /c HTTP/1.1\r\nHost: x\r\n" + body)
            poll_until(manager, lambda: len(seen) == 2, what="the request")
            assert s.recv(1024).endswith(b"body=hi")
        assert [event for event, *_ in seen] == [MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG]
    finally:
        manager.close()
