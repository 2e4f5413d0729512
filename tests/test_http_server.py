"""HTTP server behaviour, checked with requests and raw sockets as clients."""

from __future__ import annotations

import socket
from http import HTTPStatus
from typing import Any, Dict, List

import pytest
import requests

from pymongoose import MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, HttpMessage

from support import DEFAULT_TIMEOUT, raw_request, wait_for


def echo_request(conn: Any, event: int, data: Any) -> None:
    """Answers with what it saw of the request, as JSON."""
    if event != MG_EV_HTTP_MSG:
        return
    import json

    conn.reply(200, json.dumps({
        "method": data.method, "uri": data.uri, "query": data.query, "proto": data.proto,
        "body": data.body_text, "x_test": data.header("X-Test"), "missing": data.header("X-Nope", "dflt"),
        "name": data.query_var("name"), "absent": data.query_var("absent"),
        "charset": data.header_var("Content-Type", "charset"),
        "headers": [list(h) for h in data.headers()],
    }), {"Content-Type": "application/json"})


def test_get_exposes_request_line_headers_and_query(serve: Any) -> None:
    server = serve(echo_request)
    r = requests.get(f"{server.url}/some/path?name=J%C3%BCrgen+x&other=1",
                     headers={"X-Test": "yes"}, timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    seen = r.json()
    assert seen["method"] == "GET"
    assert seen["uri"] == "/some/path"
    assert seen["query"] == "name=J%C3%BCrgen+x&other=1"
    assert seen["proto"] == "HTTP/1.1"
    assert seen["name"] == "Jürgen x"
    assert seen["absent"] is None
    assert seen["x_test"] == "yes"
    assert seen["missing"] == "dflt"
    assert ["X-Test", "yes"] in seen["headers"]


@pytest.mark.parametrize("value", [b"plain", "w\u00f6rld \u2713".encode(), b"bad \xff\xfe bytes"])
def test_fields_read_the_head_at_once_as_the_properties_do(serve: Any, value: bytes) -> None:
    # fields() copies the head once and slices it (ASCII) or decodes each field
    # (anything else, invalid UTF-8 as U+FFFD), as the properties and headers() do.
    seen: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            seen.append((data.fields(), (data.method, data.uri, data.query, data.proto, data.headers())))
            conn.reply(200, "ok")

    server = serve(handler)
    many = b"".join(b"X-H%d: v%d\r\n" % (i, i) for i in range(25))
    answer = raw_request(server.port, b"PATCH /a/b?x=1&y HTTP/1.0\r\nX-Value: " + value + b"\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    fields, properties = seen[0]
    assert fields == properties
    method, uri, query, proto, headers = fields
    assert (method, uri, query, proto) == ("PATCH", "/a/b", "x=1&y", "HTTP/1.0")
    assert headers[0] == ("X-Value", value.decode("utf-8", "replace")) and len(headers) == 26
    assert headers[-1] == ("X-H24", "v24")


def test_post_body_and_header_variables(serve: Any) -> None:
    server = serve(echo_request)
    r = requests.post(f"{server.url}/submit", data="héllo wörld".encode(),
                      headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=DEFAULT_TIMEOUT)
    seen = r.json()
    assert seen["method"] == "POST"
    assert seen["body"] == "héllo wörld"
    assert seen["charset"] == "utf-8"


def test_binary_bodies_travel_byte_for_byte_both_ways(serve: Any) -> None:
    payload = bytes(range(256)) * 64 + b"\x00\x00end"
    received: List[bytes] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            received.append(data.body_bytes)
            conn.reply(200, data.body_bytes[::-1], {"Content-Type": "application/octet-stream"})

    server = serve(handler)
    r = requests.post(f"{server.url}/bin", data=payload, timeout=DEFAULT_TIMEOUT)
    assert received == [payload]
    assert r.content == payload[::-1]
    assert int(r.headers["Content-Length"]) == len(payload)


def test_reply_defaults_to_text_plain_and_accepts_str(serve: Any) -> None:
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(201, "créé"))
    r = requests.get(server.url, timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text == "créé"


@pytest.mark.parametrize("status, reason", [(200, b"OK"), (404, b"Not Found"), (503, b"Service Unavailable"),
                                            (299, b"")])
def test_status_line(serve: Any, status: int, reason: bytes) -> None:
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(status, "x"))
    raw = raw_request(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                      read_until_close=False)
    assert raw.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason))


def test_keep_alive_answers_every_request_on_one_connection(serve: Any) -> None:
    accepted: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            if conn.id not in accepted:
                accepted.append(conn.id)
            conn.reply(200, data.uri)

    server = serve(handler)
    with requests.Session() as session:
        bodies = [session.get(f"{server.url}/n{i}", timeout=DEFAULT_TIMEOUT).text for i in range(50)]
    assert bodies == [f"/n{i}" for i in range(50)]
    assert len(accepted) == 1


def test_pipelined_requests_are_all_answered_in_order(serve: Any) -> None:
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(200, d.uri))
    requests_bytes = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as s:
        s.sendall(requests_bytes)
        received = b""
        while received.count(b"HTTP/1.1 200") < 10 or not received.endswith(b"/p9"):
            chunk = s.recv(65536)
            assert chunk, f"connection closed early: {received!r}"
            received += chunk
    order = [received.index(b"/p%d" % i) for i in range(10)]
    assert order == sorted(order)


@pytest.mark.parametrize("headers", [
    {"X-Evil": "a\r\nSet-Cookie: hacked=1"},
    {"X-Evil": "a\nb"},
    {"X-Evil": "a\x00b"},
    {"Bad Name": "x"},
    {"Bad:Name": "x"},
    {"X\r\nInjected": "x"},
])
def test_header_injection_is_refused_with_value_error(serve: Any, headers: Dict[str, str]) -> None:
    outcome: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            try:
                conn.reply(200, "ok", headers)
                outcome.append("sent")
            except ValueError as exc:
                outcome.append(exc)
                conn.reply(500, "refused")

    server = serve(handler)
    r = requests.get(server.url, timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 500
    assert "Set-Cookie" not in r.headers and "Injected" not in r.headers
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError)


def test_reply_rejects_bad_arguments(serve: Any) -> None:
    errors: List[BaseException] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event != MG_EV_HTTP_MSG:
            return
        for args in [("200", "x"), (42, "x"), (200, 3.5), (200, "x", ["not", "a", "dict"]), (True, "x"),
                     (None, "x"), (1000, "x"), (-200, "x"), (2**40, "x"), (200.0, "x")]:
            try:
                conn.reply(*args)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        conn.reply(HTTPStatus.CREATED, "done")  # an int subclass is an int

    server = serve(handler)
    r = requests.get(server.url, timeout=DEFAULT_TIMEOUT)
    assert (r.status_code, r.text) == (201, "done")  # nothing else was sent
    assert [type(e) for e in errors] == [TypeError, ValueError, TypeError, TypeError, TypeError,
                                         TypeError, ValueError, ValueError, ValueError, TypeError]
    assert all("status_code" in str(e) for i, e in enumerate(errors) if i not in (2, 3))  # body, headers


def test_chunked_response(serve: Any) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "first;", {"Transfer-Encoding": "chunked"})
            for i in range(5):
                conn.http_chunk(f"chunk{i};")
            conn.http_chunk(b"bin\x00;")
            conn.http_chunk("")

    server = serve(handler)
    r = requests.get(server.url, stream=True, timeout=DEFAULT_TIMEOUT)
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.headers
    assert r.raw.read() == b"first;chunk0;chunk1;chunk2;chunk3;chunk4;bin\x00;"


def test_server_sent_events(serve: Any) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "", {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                 "Transfer-Encoding": "chunked"})
            conn.http_sse("greeting", "hello")
            conn.http_sse("update", "line one\nline two")
            conn.http_chunk("")

    server = serve(handler)
    r = requests.get(server.url, stream=True, timeout=DEFAULT_TIMEOUT)
    assert r.headers["Content-Type"] == "text/event-stream"
    text = r.raw.read().decode()
    assert text == "event: greeting\ndata: hello\n\nevent: update\ndata: line one\ndata: line two\n\n"


def test_headers_event_comes_before_message(serve: Any) -> None:
    order: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event in (MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG):
            assert isinstance(data, HttpMessage)
            order.append(event)
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")

    server = serve(handler)
    requests.post(server.url, data=b"x" * 100, timeout=DEFAULT_TIMEOUT)
    assert order[-1] == MG_EV_HTTP_MSG and MG_EV_HTTP_HDRS in order


def test_ipv6_listener_on_loopback(serve: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support in this kernel")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured on this machine")
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(200, repr(c.remote_addr.ip)),
                   url="http://[::1]:0")
    assert server.listener.local_addr.ip == "::1"
    assert server.listener.local_addr.is_ipv6
    r = requests.get(f"http://[::1]:{server.port}/", timeout=DEFAULT_TIMEOUT)
    assert r.text == "'::1'"


def test_request_line_garbage_gets_a_clean_close_and_server_keeps_serving(serve: Any) -> None:
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and c.reply(200, "fine"))
    raw = raw_request(server.port, b"\x00\x01\x02 NOT HTTP\r\n\r\n" * 3)
    assert b"fine" not in raw
    assert requests.get(server.url, timeout=DEFAULT_TIMEOUT).text == "fine"


def test_many_sequential_clients(serve: Any) -> None:
    count: List[int] = []
    server = serve(lambda c, e, d: e == MG_EV_HTTP_MSG and (count.append(1), c.reply(200, "k")))
    for _ in range(100):
        assert requests.get(server.url, timeout=DEFAULT_TIMEOUT, headers={"Connection": "close"}).text == "k"
    wait_for(lambda: len(count) == 100)


def test_reply_headers_as_pairs_may_repeat_a_name(serve: Any) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "two cookies", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Kind", "pairs")])

    server = serve(handler)
    r = requests.get(server.url, timeout=DEFAULT_TIMEOUT)
    assert r.cookies.get("a") == "1" and r.cookies.get("b") == "2" and r.headers["X-Kind"] == "pairs"
