"""Our HTTP client against our own server."""

from __future__ import annotations

from typing import Any, Dict, List

from pymongoose import MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG, Manager

from support import poll_until


def test_http_client_against_our_server() -> None:
    result: Dict[str, Any] = {}

    def server(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(201, b"created:" + data.body_bytes, {"X-Server": "pymongoose"})

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_CONNECT:
            conn.send(b"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
        elif event == MG_EV_HTTP_MSG:
            result.update(status=data.status(), body=data.body_bytes, header=data.header("X-Server"),
                          proto=data.method)
            conn.drain()

    with Manager() as mgr:
        port = mgr.http_listen("http://127.0.0.1:0", server).local_addr.port
        conn = mgr.http_connect(f"http://127.0.0.1:{port}", client)
        assert conn.is_client
        poll_until(mgr, lambda: "status" in result and conn.is_closed)
    assert result == {"status": 201, "body": b"created:hello", "header": "pymongoose", "proto": "HTTP/1.1"}


def test_request_status_is_what_mg_http_status_reads_and_basic_auth_header_is_sent() -> None:
    seen: List[Any] = []

    def server(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            seen.append((data.status(), data.header("Authorization")))
            conn.reply(200, "ok")

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_CONNECT:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            conn.http_basic_auth("user", "pa:ss")
            conn.send(b"\r\n")
        elif event == MG_EV_HTTP_MSG:
            conn.drain()

    with Manager() as mgr:
        port = mgr.listen("http://127.0.0.1:0", server).local_addr.port
        mgr.connect(f"http://127.0.0.1:{port}", client)
        poll_until(mgr, lambda: seen)
    # As the Cython binding: on a request, mg_http_status reads the URI ("/" -> 0).
    assert seen == [(0, "Basic dXNlcjpwYTpzcw==")]


def test_connection_refused_reports_an_error() -> None:
    errors: List[str] = []
    with Manager(lambda c, e, d: e == MG_EV_ERROR and errors.append(d)) as mgr:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conn = mgr.http_connect(f"http://127.0.0.1:{port}")
        poll_until(mgr, lambda: conn.is_closed)
    assert errors
