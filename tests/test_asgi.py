"""pymongoose.asgi: ASGI 3 with real applications (Starlette; FastAPI where it
installs) and real clients (requests, websocket-client, raw sockets); lifespan;
the command line with worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests
import websocket as wsclient

from pymongoose.asgi import ASGIServer, ClientDisconnected, LifespanError

from support import DEFAULT_TIMEOUT, Workers, raw_request, server_frames, wait_for, ws_frame

LOOPS = ["asyncio"] + (["uvloop"] if sys.implementation.name == "cpython" else [])


class Served:
    """An ASGIServer running on its own event loop in a thread."""

    def __init__(self, app: Any, loop_kind: str = "asyncio", url: str = "http://127.0.0.1:0", tls: Any = None,
                 **options: Any) -> None:
        if loop_kind == "uvloop":
            uvloop = pytest.importorskip("uvloop")
            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self.server = ASGIServer(app, **options)
        started = threading.Event()
        self.error: Optional[BaseException] = None

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.listener = self.loop.run_until_complete(self.server.start(url, tls=tls))
            except BaseException as error:  # handed to the test
                self.error = error
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(DEFAULT_TIMEOUT)
        if self.error is None:
            self.port = self.listener.local_addr.port
            self.url = f"http://127.0.0.1:{self.port}"

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(DEFAULT_TIMEOUT * 2)

    def stop(self, grace: float = 1.0) -> None:
        if self.error is None and self.thread.is_alive():
            self.call(self.server.stop(grace))
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEFAULT_TIMEOUT)
        self.loop.close()


@pytest.fixture
def asgi() -> Iterator[Callable[..., Served]]:
    """``asgi(app, **options)`` serves app in the background; stopped afterwards."""
    started: List[Served] = []

    def start(app: Any, **options: Any) -> Served:
        served = Served(app, **options)
        started.append(served)
        if served.error is not None:
            raise served.error
        return served

    yield start
    for served in started:
        served.stop()


# ---- raw applications -----------------------------------------------------------


def recording_app(seen: List[Any], body: bytes = b"ok", status: int = 200,
                  headers: Optional[List[Any]] = None) -> Any:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append(scope)
        await send({"type": "http.response.start", "status": status,
                    "headers": headers if headers is not None else [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
    return app


def test_http_scope_is_complete(asgi: Callable[..., Served]) -> None:
    seen: List[Any] = []
    served = asgi(recording_app(seen), root_path="/mounted")
    response = requests.get(served.url + "/caf%C3%A9/a%2Fb?x=1&y=%20", headers={"X-Custom": "Value One"})
    assert response.status_code == 200 and response.text == "ok"
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == "/mounted"
    assert (b"x-custom", b"Value One") in scope["headers"]
    assert all(isinstance(n, bytes) and n == n.lower() and isinstance(v, bytes) for n, v in scope["headers"])
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ("127.0.0.1", served.port)
    assert scope["state"] == {}
    # Date and Content-Length are added; the application's headers are kept as sent.
    assert response.headers["content-length"] == "2"
    assert "GMT" in response.headers["date"]


def test_https_and_wss_scopes(asgi: Callable[..., Served], tmp_path: Path) -> None:
    import ssl

    from pymongoose import TlsOpts

    from support import TestPKI

    pki = TestPKI(tmp_path)
    cert, key = pki.issue("localhost")
    seen: List[Any] = []
    app = recording_app(seen)

    async def both(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            seen.append(scope)
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "secure"})
            await receive()
        else:
            await app(scope, receive, send)

    served = asgi(both, url="https://127.0.0.1:0", tls=TlsOpts(cert=cert.read_text(), key=key.read_bytes()))
    response = requests.get(f"https://localhost:{served.port}/s", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
    assert response.text == "ok" and seen[0]["scheme"] == "https"
    ws = wsclient.create_connection(f"wss://localhost:{served.port}/w", timeout=DEFAULT_TIMEOUT,
                                    sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(pki.ca_cert)})
    try:
        assert ws.recv() == "secure" and seen[1]["scheme"] == "wss"
    finally:
        ws.close()


def test_access_log_when_asked(asgi: Callable[..., Served], caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Any] = []
    served = asgi(recording_app(seen, status=201), access_log=True)
    with caplog.at_level(logging.INFO, logger="pymongoose.asgi.access"):
        requests.get(served.url + "/x?y=1")
        wait_for(lambda: caplog.records, what="the access line")
    # client, request line, status, body bytes, milliseconds
    assert re.search(r' - "GET /x\?y=1 HTTP/1.1" 201 2 \d+\.\dms$', caplog.records[0].getMessage())
    assert caplog.records[0].getMessage().startswith("127.0.0.1:")


def test_unusual_requests_get_sensible_scopes(asgi: Callable[..., Served]) -> None:
    seen: List[Any] = []
    served = asgi(recording_app(seen))
    close = b"Host: h\r\nConnection: close\r\n\r\n"
    for request in (b"GET http://example.com/abs/path?q=1 HTTP/1.1\r\n" + close,
                    b"OPTIONS * HTTP/1.1\r\n" + close,
                    b"GET /x HTTP/1.1\r\nX-Empty:\r\nX-Padded:    a b   \r\n" + close,
                    b"GET /%ff/\xc3\xa9 HTTP/1.1\r\n" + close,
                    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + close[:-2] + b"\r\n5\r\nhello\r\n0\r\n\r\n"):
        assert raw_request(served.port, request).startswith(b"HTTP/1.1 200 OK\r\n"), request
    # Refused in C (400, then a close): no application call.
    assert raw_request(served.port, b"GARBAGE\r\n\r\n", timeout=2).startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert [(scope["method"], scope["path"], scope["raw_path"], scope["query_string"]) for scope in seen] == [
        ("GET", "/abs/path", b"/abs/path", b"q=1"),
        ("OPTIONS", "*", b"*", b""),
        ("GET", "/x", b"/x", b""),
        ("GET", "/\ufffd/é", b"/%ff/\xc3\xa9", b""),
        ("GET", "/", b"/", b""),
    ]
    assert (b"x-empty", b"") in seen[2]["headers"] and (b"x-padded", b"a b") in seen[2]["headers"]
    assert raw_request(served.port, b"GET /still HTTP/1.1\r\n" + close).startswith(b"HTTP/1.1 200")


def test_http10_request_and_head(asgi: Callable[..., Served]) -> None:
    seen: List[Any] = []
    served = asgi(recording_app(seen, body=b"hello"))
    reply = raw_request(served.port, b"GET /x HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n") and reply.endswith(b"\r\n\r\nhello")
    assert seen[0]["http_version"] == "1.0"
    reply = raw_request(served.port, b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert b"content-length: 5\r\n" in reply.lower() and reply.endswith(b"\r\n\r\n")
    assert seen[1]["method"] == "HEAD"


def test_pipelined_requests_are_answered_in_order(asgi: Callable[..., Served]) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    served = asgi(app)
    reply = raw_request(served.port, b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
                        b"GET /fast HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert reply.index(b"/slow") < reply.index(b"/fast")
    assert reply.count(b"HTTP/1.1 200") == 2


def body_app(received: List[Any]) -> Any:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        total, pieces = 0, 0
        while True:
            message = await receive()
            received.append((len(message.get("body", b"")), message.get("more_body")))
            total += len(message["body"])
            pieces += 1
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": f"{total} {pieces}".encode()})
    return app


def test_small_request_body_comes_whole(asgi: Callable[..., Served]) -> None:
    received: List[Any] = []
    served = asgi(body_app(received))
    assert requests.post(served.url, data=b"x" * 1000).text == "1000 1"
    assert received == [(1000, False)]
    # A chunked body is buffered, then handed over whole.
    assert requests.post(served.url, data=iter([b"ab", b"cd"])).text == "4 1"


def test_large_request_body_streams_in_pieces(asgi: Callable[..., Served]) -> None:
    received: List[Any] = []
    served = asgi(body_app(received))
    size = 6 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        wait_for(lambda: received, what="the application to start before the body is in")
        for _ in range(size // 65536):
            s.sendall(b"y" * 65536)
        s.settimeout(DEFAULT_TIMEOUT)
        reply = b""
        while not reply.endswith(b" %d" % len(received)):
            reply += s.recv(4096)
        total, pieces = map(int, reply.rpartition(b"\r\n\r\n")[2].split())
        assert total == size and pieces == len(received) > 1
        assert received[-1][1] is False and all(more for _, more in received[:-1])
        # The connection is HTTP again after the streamed body.
        s.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nsmall")
        assert s.recv(4096).endswith(b"\r\n\r\n5 1")


def test_unread_large_body_is_skipped_and_the_connection_goes_on(asgi: Callable[..., Served]) -> None:
    seen: List[Any] = []
    served = asgi(recording_app(seen, body=b"answered early"))
    size = 3 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.settimeout(DEFAULT_TIMEOUT)
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        reply = b""
        while not reply.endswith(b"answered early"):
            reply += s.recv(4096)
        s.sendall(b"z" * size)  # the application never reads it
        s.sendall(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        reply = b""
        while not reply.endswith(b"answered early"):
            reply += s.recv(4096)
    assert [scope["path"] for scope in seen] == ["/upload", "/next"]


def test_body_over_max_body_is_refused_413(asgi: Callable[..., Served]) -> None:
    received: List[Any] = []
    served = asgi(body_app(received), max_body=1024 * 1024)
    response = requests.post(served.url, data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert received == []


def test_disconnect_reaches_a_waiting_receive(asgi: Callable[..., Served]) -> None:
    events: List[Any] = []
    got_disconnect = threading.Event()

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        events.append(await receive())
        events.append(await receive())  # waits until the client goes
        got_disconnect.set()

    served = asgi(app)
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        wait_for(lambda: len(events) == 1, what="the request")
    assert got_disconnect.wait(DEFAULT_TIMEOUT)
    assert events[0]["type"] == "http.request" and events[1] == {"type": "http.disconnect"}


def test_receive_after_the_response_says_disconnect(asgi: Callable[..., Served]) -> None:
    after: List[Any] = []

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        after.append(await receive())

    served = asgi(app)
    assert requests.get(served.url).status_code == 204
    wait_for(lambda: after, what="receive() to return")
    assert after == [{"type": "http.disconnect"}]


def streaming_app(pieces: List[bytes], headers: Optional[List[Any]] = None) -> Any:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers or []})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
    return app


def test_streamed_response_is_chunked(asgi: Callable[..., Served]) -> None:
    served = asgi(streaming_app([b"one ", b"two ", b"three"]))
    reply = raw_request(served.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"4\r\none \r\n4\r\ntwo \r\n5\r\nthree\r\n0\r\n\r\n"
    assert requests.get(served.url).text == "one two three"


def test_streamed_response_with_its_length_is_not_chunked(asgi: Callable[..., Served]) -> None:
    served = asgi(streaming_app([b"abc", b"def"], headers=[(b"content-length", b"6")]))
    reply = raw_request(served.port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and body == b"abcdef"


def test_streamed_response_to_http10_ends_with_the_close(asgi: Callable[..., Served]) -> None:
    served = asgi(streaming_app([b"abc", b"def"]))
    reply = raw_request(served.port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower() and body == b"abcdef"


def test_slow_client_slows_send_and_memory_stays_bounded(asgi: Callable[..., Served]) -> None:
    sent = [0]
    piece = b"z" * 65536

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(512):  # 32 MiB
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent[0] += len(piece)
        await send({"type": "http.response.body", "body": b""})

    high_water = 256 * 1024
    served = asgi(app, high_water=high_water)
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)  # the client reads nothing meanwhile
        stalled = sent[0]
        # What was produced is what the server queues (high_water and a piece) plus
        # what the kernel's socket buffers hold: far from the 32 MiB of the response.
        assert stalled < 12 * 1024 * 1024, stalled
        s.settimeout(DEFAULT_TIMEOUT)
        received = 0
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    assert sent[0] == 32 * 1024 * 1024
    assert received > 32 * 1024 * 1024


def test_application_errors_are_logged_and_answered_500(asgi: Callable[..., Served],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/raise":
            raise RuntimeError("boom")
        if scope["path"] == "/bad-header":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb")]})
            await send({"type": "http.response.body", "body": b""})
        if scope["path"] == "/half":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise RuntimeError("midway")
        # "/nothing": returns without a response

    served = asgi(app)
    with caplog.at_level(logging.ERROR, logger="pymongoose.asgi"):
        assert requests.get(served.url + "/raise").status_code == 500
        assert requests.get(served.url + "/nothing").status_code == 500
        assert requests.get(served.url + "/bad-header").status_code == 500
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(served.url + "/half")
        assert requests.get(served.url + "/raise").status_code == 500  # still serving
    text = caplog.text
    assert "boom" in text and "without sending" in text
    assert "invalid response header (b'x', b'a\\r\\nb')" in text
    assert "midway" in text


def test_protocol_misuse_raises_in_the_application(asgi: Callable[..., Served]) -> None:
    errors: List[BaseException] = []

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        for bad in ({"type": "http.response.body", "body": b"x"},
                    {"type": "http.response.start", "status": 99},
                    {"type": "nonsense"}):
            try:
                await send(bad)
            except (RuntimeError, ValueError) as error:
                errors.append(error)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.body", "body": "text, not bytes"})
        except TypeError as error:
            errors.append(error)
        await send({"type": "http.response.body", "body": b"done"})

    served = asgi(app)
    assert requests.get(served.url).text == "done"
    assert len(errors) == 4, errors


# ---- lifespan ---------------------------------------------------------------------


def lifespan_app(log: List[str], fail: str = "") -> Any:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                log.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail == "startup":
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    scope["state"]["greeting"] = "hello"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["state"]["greeting"].encode()})
    return app


def test_lifespan_state_reaches_requests_and_shutdown_runs() -> None:
    log: List[str] = []
    served = Served(lifespan_app(log))
    try:
        assert requests.get(served.url).text == "hello"
    finally:
        served.stop()
    assert log == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_startup_failure_refuses_to_start() -> None:
    log: List[str] = []
    served = Served(lifespan_app(log, fail="startup"))
    served.stop()
    assert isinstance(served.error, LifespanError) and "no database" in str(served.error)
    assert served.server._manager is None  # never listened


def test_lifespan_unsupported_is_skipped_unless_required(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise ValueError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"up"})

    with caplog.at_level(logging.INFO, logger="pymongoose.asgi"):
        served = Served(app)
        try:
            assert requests.get(served.url).text == "up"
        finally:
            served.stop()
    assert "unsupported" in caplog.text
    required = Served(app, lifespan="on")
    required.stop()
    assert isinstance(required.error, LifespanError) and "no lifespan here" in str(required.error)


# ---- WebSocket ------------------------------------------------------------------


def ws_app(events: List[Any]) -> Any:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        events.append(scope)
        message = await receive()
        assert message["type"] == "websocket.connect"
        if scope["path"] == "/deny":
            await send({"type": "websocket.close"})
            return
        if scope["path"] == "/custom-deny":
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "websocket.http.response.body", "body": b"who are you?"})
            return
        subprotocol = "chat" if "chat" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-accepted", b"yes")]})
        while True:
            message = await receive()
            events.append(message)
            if message["type"] == "websocket.disconnect":
                try:
                    await send({"type": "websocket.send", "text": "too late"})
                except ClientDisconnected as error:
                    events.append(error)
                return
            if message.get("text") == "close please":
                await send({"type": "websocket.close", "code": 4001, "reason": "asked to"})
                continue
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"].upper()})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})
    return app


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_websocket_echo_with_subprotocol_and_headers(asgi: Callable[..., Served], loop_kind: str) -> None:
    events: List[Any] = []
    served = asgi(ws_app(events), loop_kind=loop_kind)
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/room?id=7", subprotocols=["other", "chat"],
                                    timeout=DEFAULT_TIMEOUT)
    try:
        assert ws.getsubprotocol() == "chat"
        assert ws.getheaders()["x-accepted"] == "yes"
        ws.send("hello")
        assert ws.recv() == "HELLO"
        ws.send_binary(b"\x00\x01\x02")
        assert ws.recv() == b"\x02\x01\x00"
    finally:
        ws.close(status=4321, reason=b"bye")
    wait_for(lambda: any(isinstance(e, dict) and e.get("type") == "websocket.disconnect" for e in events),
             what="websocket.disconnect")
    scope = events[0]
    assert scope["type"] == "websocket" and scope["scheme"] == "ws" and scope["path"] == "/room"
    assert scope["query_string"] == b"id=7" and scope["subprotocols"] == ["other", "chat"]
    disconnect = next(e for e in events if isinstance(e, dict) and e.get("type") == "websocket.disconnect")
    assert disconnect["code"] == 4321 and disconnect["reason"] == "bye"
    wait_for(lambda: isinstance(events[-1], ClientDisconnected), what="send after disconnect to raise")
    assert isinstance(events[-1], OSError)


def test_websocket_server_close_with_code_and_reason(asgi: Callable[..., Served]) -> None:
    served = asgi(ws_app([]))
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
    ws.send("close please")
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == wsclient.ABNF.OPCODE_CLOSE
    assert struct.unpack("!H", frame.data[:2])[0] == 4001 and frame.data[2:] == b"asked to"
    ws.close()


def test_websocket_long_close_reason_is_cut_on_a_character(asgi: Callable[..., Served]) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000, "reason": "é" * 200})

    served = asgi(app)
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
    opcode, frame = ws.recv_data_frame(control_frame=True)
    ws.close()
    assert opcode == wsclient.ABNF.OPCODE_CLOSE
    assert frame.data[2:].decode("utf-8") == "é" * 61  # 122 bytes: the 62nd would not fit in 123


def test_websocket_close_before_accept_is_403(asgi: Callable[..., Served]) -> None:
    served = asgi(ws_app([]))
    with pytest.raises(wsclient.WebSocketBadStatusException) as refused:
        wsclient.create_connection(f"ws://127.0.0.1:{served.port}/deny", timeout=DEFAULT_TIMEOUT)
    assert refused.value.status_code == 403
    with pytest.raises(wsclient.WebSocketBadStatusException) as custom:
        wsclient.create_connection(f"ws://127.0.0.1:{served.port}/custom-deny", timeout=DEFAULT_TIMEOUT)
    assert custom.value.status_code == 401 and custom.value.resp_body == b"who are you?"


def test_websocket_client_gone_without_close_frame_is_1006(asgi: Callable[..., Served]) -> None:
    events: List[Any] = []
    served = asgi(ws_app(events))
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        s.settimeout(DEFAULT_TIMEOUT)
        assert s.recv(4096).startswith(b"HTTP/1.1 101")
        s.sendall(ws_frame(1, b"abc"))
        assert server_frames(s.recv(4096)) == [(0x81, b"ABC")]
    wait_for(lambda: any(isinstance(e, dict) and e.get("type") == "websocket.disconnect" for e in events),
             what="websocket.disconnect")
    disconnect = next(e for e in events if isinstance(e, dict) and e.get("type") == "websocket.disconnect")
    assert disconnect["code"] == 1006


def test_websocket_application_error_closes_1011(asgi: Callable[..., Served],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("handler bug")

    served = asgi(app)
    with caplog.at_level(logging.ERROR, logger="pymongoose.asgi"):
        ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
        ws.send("anything")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        ws.close()
    assert opcode == wsclient.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1011
    assert "handler bug" in caplog.text


def test_websocket_messages_wait_while_the_application_is_busy(asgi: Callable[..., Served]) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.5)  # busy: the messages pile up (reading pauses past 4 MiB)
        total = 0
        for _ in range(100):
            total += len((await receive())["text"])
        await send({"type": "websocket.send", "text": str(total)})

    served = asgi(app)
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
    try:
        text = "é" * 50_000  # 100 KB each, 10 MB in all
        sender = threading.Thread(target=lambda: [ws.send(text) for _ in range(100)])
        sender.start()
        assert ws.recv() == str(100 * len(text))
        sender.join()
    finally:
        ws.close()


def test_websocket_returning_without_accept_is_500(asgi: Callable[..., Served]) -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    served = asgi(app, lifespan="off")
    with pytest.raises(wsclient.WebSocketBadStatusException) as refused:
        wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
    assert refused.value.status_code == 500


def test_stop_closes_websockets_1012_and_finishes_requests_in_flight() -> None:
    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
        elif scope["type"] == "http":
            await asyncio.sleep(0.3)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"finished"})

    served = Served(app)
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/", timeout=DEFAULT_TIMEOUT)
    results: List[Any] = []
    getter = threading.Thread(target=lambda: results.append(requests.get(served.url, timeout=DEFAULT_TIMEOUT)))
    getter.start()
    time.sleep(0.1)  # the request is in flight
    served.stop(grace=5)
    getter.join(DEFAULT_TIMEOUT)
    assert results and results[0].text == "finished"
    opcode, frame = ws.recv_data_frame(control_frame=True)
    assert opcode == wsclient.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1012
    ws.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=1).close()


# ---- Starlette -----------------------------------------------------------------------


def starlette_app() -> Any:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        yield {"started_at": "startup"}

    async def hello(request: Any) -> Any:
        return JSONResponse({"message": "Hello, World!", "state": request.state.started_at})

    async def item(request: Any) -> Any:
        return JSONResponse({"id": int(request.path_params["item_id"]), "q": request.query_params.get("q")})

    async def upload(request: Any) -> Any:
        body = await request.body()
        return PlainTextResponse(f"{len(body)} bytes", status_code=201)

    async def stream(request: Any) -> Any:
        async def numbers() -> Any:
            for i in range(5):
                yield f"{i}\n"
                await asyncio.sleep(0)
        return StreamingResponse(numbers(), media_type="text/plain")

    async def echo(websocket: Any) -> None:
        await websocket.accept(subprotocol="echo.v1" if "echo.v1" in websocket.scope["subprotocols"] else None)
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[Route("/", hello), Route("/items/{item_id:int}", item),
                             Route("/upload", upload, methods=["POST"]), Route("/stream", stream),
                             WebSocketRoute("/ws", echo)], lifespan=lifespan)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_starlette_application(asgi: Callable[..., Served], loop_kind: str) -> None:
    served = asgi(starlette_app(), loop_kind=loop_kind)
    assert requests.get(served.url).json() == {"message": "Hello, World!", "state": "startup"}
    assert requests.get(served.url + "/items/42?q=x").json() == {"id": 42, "q": "x"}
    assert requests.get(served.url + "/items/nope").status_code == 404
    upload = requests.post(served.url + "/upload", data=b"u" * 3_000_000)
    assert (upload.status_code, upload.text) == (201, "3000000 bytes")
    streamed = requests.get(served.url + "/stream")
    assert streamed.text == "0\n1\n2\n3\n4\n" and streamed.headers["transfer-encoding"] == "chunked"
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/ws", subprotocols=["echo.v1"],
                                    timeout=DEFAULT_TIMEOUT)
    try:
        assert ws.getsubprotocol() == "echo.v1"
        for text in ("a", "é" * 1000, "x" * 100_000):
            ws.send(text)
            assert ws.recv() == text
    finally:
        ws.close()


# ---- FastAPI ---------------------------------------------------------------------------


def test_fastapi_application(asgi: Callable[..., Served]) -> None:
    pytest.importorskip("fastapi")
    import fastapi_app

    done = fastapi_app.done
    served = asgi(fastapi_app.app)
    created = requests.post(served.url + "/items?token=alice", json={"name": "book", "price": 9.5})
    assert created.status_code == 200
    assert created.json() == {"name": "book", "price": 9.5, "user": "ALICE"}
    wait_for(lambda: done == ["book"], what="the background task")
    invalid = requests.post(served.url + "/items", json={"name": "book", "price": "free"})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "price"]
    assert requests.get(served.url + "/sync").json() == {"thread": True}
    ws = wsclient.create_connection(f"ws://127.0.0.1:{served.port}/ws", timeout=DEFAULT_TIMEOUT)
    try:
        ws.send('{"n": 1}')
        assert ws.recv() == '{"got":{"n":1}}'
    finally:
        ws.close()


# ---- the command line ---------------------------------------------------------------------


APP_MODULE = '''
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if FAIL:
                    await send({"type": "lifespan.startup.failed", "message": "cannot start"})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        import asyncio, os
        prefix = b""
        if scope["path"] == "/slow":
            await asyncio.sleep(1)
            prefix = b"slow "
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": prefix + str(os.getpid()).encode()})
'''


def test_command_line_workers_share_the_port_and_sigterm_finishes_requests(tmp_path: Path) -> None:
    (tmp_path / "asgimod.py").write_text("FAIL = False\n" + APP_MODULE)
    with Workers(tmp_path, "--asgi", "asgimod:app") as workers:
        assert workers.process.stdout is not None and "Serving asgimod:app" in workers.process.stdout.readline()
        assert len(workers.bodies_from_each()) == 2, "both worker processes answered"
        slow, status = workers.sigterm_during("/slow")
        assert slow is not None and slow.text.startswith("slow"), "the request in flight was finished"
        assert status == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(workers.url, timeout=DEFAULT_TIMEOUT)


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    (tmp_path / "asgimod.py").write_text("FAIL = False\n" + APP_MODULE)
    with Workers(tmp_path, "--asgi", "asgimod:app") as workers:
        wait_for(lambda: _answers(workers.url), what="the workers to serve")
    # Leaving kills the supervisor (SIGKILL: it cannot pass anything on).
    wait_for(lambda: not _answers(workers.url), what="the orphaned workers to stop")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_command_line_exits_3_when_lifespan_startup_fails(tmp_path: Path) -> None:
    (tmp_path / "asgimod.py").write_text("FAIL = True\n" + APP_MODULE)
    result = subprocess.run([sys.executable, "-m", "pymongoose", "--asgi", "asgimod:app", "--listen",
                             "http://127.0.0.1:0"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=DEFAULT_TIMEOUT * 2)
    assert result.returncode == 3 and "cannot start" in result.stderr
    (tmp_path / "broken.py").write_text("raise ImportError('missing dependency')\n")
    result = subprocess.run([sys.executable, "-m", "pymongoose", "--asgi", "broken:app"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=DEFAULT_TIMEOUT * 2)
    assert result.returncode == 2 and "missing dependency" in result.stderr


def test_bad_arguments_are_refused() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(TypeError):
        ASGIServer("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ASGIServer(app, lifespan="sometimes")
    with pytest.raises(ValueError):
        ASGIServer(app, max_message_size=0)
    assert os.environ.get("PYMONGOOSE_WORKER") is None
