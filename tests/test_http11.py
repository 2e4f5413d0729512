"""HTTP/1.1 details a real client relies on: body limits (413), closing when asked,
Expect: 100-continue, backpressure; pipelining and HEAD stay as they are."""

from __future__ import annotations

import socket
import time
from typing import Any, Dict, Iterator, List

import pytest
import requests

from pymongoose import MG_EV_HTTP_MSG, MG_EV_POLL, MG_EV_WRITE, Manager
from pymongoose.http import DEFAULT_MAX_BODY

from support import DEFAULT_TIMEOUT, read_until_closed, wait_for


def body_size_echo(seen: List[int]) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            seen.append(len(data.body_bytes))
            conn.reply(200, str(len(data.body_bytes)))

    return handler


def still_serving(server: Any) -> None:
    assert requests.get(server.url, timeout=DEFAULT_TIMEOUT).status_code == 200


def test_a_body_over_the_default_limit_gets_413_not_a_reset(serve: Any) -> None:
    seen: List[int] = []
    server = serve(body_size_echo(seen))
    r = requests.post(server.url, data=b"x" * (8 << 20), timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 413 and "Content Too Large" in r.text
    assert r.headers.get("Connection") == "close"
    ok = requests.post(server.url, data=b"x" * DEFAULT_MAX_BODY, timeout=DEFAULT_TIMEOUT)
    assert ok.text == str(DEFAULT_MAX_BODY)
    assert seen == [DEFAULT_MAX_BODY]  # the refused request never reached the handler
    still_serving(server)


def test_max_body_is_set_per_listener(serve: Any) -> None:
    seen: List[int] = []
    big = serve(body_size_echo(seen), max_body=16 << 20)
    small = serve(body_size_echo(seen), max_body=1000)
    assert requests.post(big.url, data=b"x" * (8 << 20), timeout=DEFAULT_TIMEOUT).text == str(8 << 20)
    assert requests.post(small.url, data=b"x" * 1000, timeout=DEFAULT_TIMEOUT).status_code == 200
    assert requests.post(small.url, data=b"x" * 1001, timeout=DEFAULT_TIMEOUT).status_code == 413
    assert seen == [8 << 20, 1000]


def test_a_chunked_body_over_the_limit_gets_413(serve: Any) -> None:
    seen: List[int] = []
    server = serve(body_size_echo(seen), max_body=100_000)

    def chunks() -> Iterator[bytes]:  # requests sends a generator chunked
        for _ in range(50):
            yield b"y" * 10_000

    r = requests.post(server.url, data=chunks(), timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 413 and seen == []
    small = requests.post(server.url, data=iter([b"z" * 5000] * 3), timeout=DEFAULT_TIMEOUT)
    assert small.text == "15000"
    still_serving(server)


@pytest.mark.parametrize("value, error", [(0, ValueError), ((1 << 30) + 1, ValueError), (True, TypeError),
                                          ("1M", TypeError)])
def test_max_body_is_checked(value: Any, error: type) -> None:
    with Manager() as mgr, pytest.raises(error, match="max_body"):
        mgr.listen("http://127.0.0.1:0", max_body=value)


def request(port: int, raw: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(raw)
    return s


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, close\r\n\r\n",
])
@pytest.mark.parametrize("later", [False, True], ids=["reply-now", "reply-from-a-timer"])
def test_the_server_closes_after_the_response_when_asked(serve: Any, head: bytes, later: bool) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            if later:
                conn.manager.timer_add(20, lambda: conn.reply(200, "late"))
            else:
                conn.reply(200, "now")

    server = serve(handler)
    s = request(server.port, head)
    try:
        started = time.monotonic()
        response = read_until_closed(s)  # returns when the server closes
    finally:
        s.close()
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"late" if later else b"now")
    assert time.monotonic() - started < DEFAULT_TIMEOUT / 2


@pytest.mark.parametrize("head", [
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_the_connection_stays_open_otherwise(serve: Any, head: bytes) -> None:
    server = serve(body_size_echo([]))
    s = request(server.port, head)
    try:
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(head)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        s.close()


def recv_until(s: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        assert chunk, f"closed before {marker!r}: {data!r}"
        data += chunk
    return data


def test_expect_100_continue_is_answered_before_the_body_is_sent(serve: Any) -> None:
    seen: List[int] = []
    server = serve(body_size_echo(seen))
    s = request(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    try:
        assert recv_until(s, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        assert recv_until(s, b"\r\n\r\n5").startswith(b"HTTP/1.1 200")
        # A second request on the connection gets its own 100 Continue.
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert recv_until(s, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hi")
        assert recv_until(s, b"\r\n\r\n2").startswith(b"HTTP/1.1 200")
    finally:
        s.close()
    assert seen == [5, 2]


def test_expect_100_continue_over_the_limit_gets_413_alone(serve: Any) -> None:
    server = serve(body_size_echo([]), max_body=10)
    s = request(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
    try:
        response = read_until_closed(s)
    finally:
        s.close()
    assert response.startswith(b"HTTP/1.1 413") and b"100 Continue" not in response


def test_curl_style_upload_with_expect_100_continue(serve: Any) -> None:
    seen: List[int] = []
    server = serve(body_size_echo(seen), max_body=4 << 20)
    r = requests.post(server.url, data=b"u" * (2 << 20), headers={"Expect": "100-continue"},
                      timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200 and seen == [2 << 20]


def test_pipelined_requests_are_answered_in_order_and_head_has_no_body(serve: Any) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, data.uri)

    server = serve(handler)
    s = request(server.port, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nHEAD /two HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    try:
        response = read_until_closed(s)
    finally:
        s.close()
    assert response.count(b"HTTP/1.1 200") == 3
    assert response.index(b"/one") < response.index(b"/three") and b"/two" not in response


def test_backpressure_a_slow_reader_bounds_the_queue_and_write_events_resume(serve: Any) -> None:
    chunk = b"d" * 65536
    state: Dict[str, Any] = {"sent": 0, "peak": 0, "writes": 0}
    high_water = 256 * 1024

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(chunk) * 400))
            state["conn"] = conn
        elif event in (MG_EV_WRITE, MG_EV_POLL) and conn is state.get("conn") and state["sent"] < 400:
            state["writes"] += event == MG_EV_WRITE
            # The pattern: top the queue up to a high-water mark, no further.
            while conn.send_len < high_water and state["sent"] < 400:
                conn.send(chunk)
                state["sent"] += 1
            state["peak"] = max(state["peak"], conn.send_len)

    server = serve(handler)
    s = request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        time.sleep(0.3)  # not reading: the kernel buffers fill, then ours
        stalled = state["sent"]
        time.sleep(0.3)
        assert state["sent"] == stalled < 400, "nothing more is queued while the client does not read"
        assert state["peak"] < high_water + len(chunk)
        received = 0
        while received < len(chunk) * 400:  # reading again: the rest arrives
            received += len(s.recv(1 << 20))
    finally:
        s.close()
    wait_for(lambda: state["sent"] == 400)
    assert state["writes"] > 0 and state["peak"] < high_water + len(chunk)


def test_a_handler_can_take_a_large_body_in_pieces_without_buffering_it(serve: Any) -> None:
    from pymongoose import MG_EV_HTTP_HDRS, MG_EV_READ

    state: Dict[str, Any] = {"received": 0, "peak": 0, "pieces": 0}
    total = 40 << 20  # far more than the 3 MiB Mongoose would buffer

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_HDRS and "expected" not in state:
            state["expected"] = int(data.header("Content-Length"))
            head = len(data.head_bytes)
            body = conn.recv_data()[head:]          # what came with the headers...
            conn.consume(conn.recv_len)             # ...and from now on Mongoose leaves the body to us
            state["received"] += len(body)
        elif event == MG_EV_READ and "expected" in state:
            state["peak"] = max(state["peak"], conn.recv_len)
            state["received"] += conn.recv_len
            state["pieces"] += 1
            conn.consume(conn.recv_len)
            if state["received"] >= state["expected"]:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreceived")
                conn.drain()

    server = serve(handler, max_body=64 << 20)
    r = requests.post(server.url, data=b"b" * total, timeout=DEFAULT_TIMEOUT * 3)
    assert r.text == "received" and state["received"] == total
    assert state["pieces"] > 10 and state["peak"] < 8 << 20
