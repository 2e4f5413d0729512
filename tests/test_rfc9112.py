"""RFC 9112 as written, on every HTTP server pymongoose has: a plain Manager
listener, the WSGI server and the ASGI server. Each rule is checked with raw
sockets: the refusal is made in C, before any handler or application runs, and
the connection closes after it. Then the limits, the header-read and keep-alive
timeouts, and the checked response writer of the app servers."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from pymongoose import MG_EV_HTTP_MSG, HttpLimits, Manager
from pymongoose.asgi import ASGIServer
from pymongoose.errors import InvalidResponseError
from pymongoose.wsgi import WSGIServer

from support import DEFAULT_TIMEOUT, LoopThread, raw_request, read_until_closed, wait_for

KINDS = ["manager", "wsgi", "asgi"]


class Running:
    """An HTTP server of one kind answering ``ok`` (or as its application says),
    polled in the background; ``calls`` counts the requests that reached Python."""

    def __init__(self, kind: str, wsgi_app: Optional[Callable[..., Any]] = None, **limits: Any) -> None:
        self.calls = 0
        self._stop: Callable[[], None]
        if kind == "manager":
            self._manager(limits)
        elif kind == "wsgi":
            self._wsgi(wsgi_app or self._wsgi_ok, limits)
        else:
            self._asgi(limits)

    def _manager(self, limits: Dict[str, Any]) -> None:
        def handler(conn: Any, event: int, data: Any) -> None:
            if event == MG_EV_HTTP_MSG:
                self.calls += 1
                conn.reply(200, "ok")

        manager = Manager(handler)
        self.port = manager.listen("http://127.0.0.1:0", limits=HttpLimits(**limits)).local_addr.port
        loop = LoopThread(manager).start()

        def stop() -> None:
            loop.stop()
            manager.close()
        self._stop = stop

    def _wsgi_ok(self, environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def _wsgi(self, app: Callable[..., Any], limits: Dict[str, Any]) -> None:
        server = WSGIServer(app, **limits)
        self.port = server.listen("http://127.0.0.1:0").local_addr.port
        loop = LoopThread(server.manager).start()

        def stop() -> None:
            loop.stop()
            server.close()
        self._stop = stop

    def _asgi(self, limits: Dict[str, Any]) -> None:
        async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            self.calls += 1
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok"})

        loop = asyncio.new_event_loop()
        server = ASGIServer(app, lifespan="off", **limits)
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self.port = loop.run_until_complete(server.start("http://127.0.0.1:0")).local_addr.port
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert started.wait(DEFAULT_TIMEOUT)

        def stop() -> None:
            asyncio.run_coroutine_threadsafe(server.stop(0.5), loop).result(DEFAULT_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(DEFAULT_TIMEOUT)
            loop.close()
        self._stop = stop

    def ask(self, request: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        return raw_request(self.port, request, timeout=timeout)

    def still_serving(self) -> None:
        reply = self.ask(b"GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"ok"), reply


@pytest.fixture
def serve() -> Iterator[Callable[..., Running]]:
    running: List[Running] = []

    def start(kind: str, **options: Any) -> Running:
        server = Running(kind, **options)
        running.append(server)
        return server

    yield start
    for server in running:
        server._stop()


# Each request breaks one rule; the status that must answer it.
H = b"Host: x\r\n"
RULES: Dict[str, Tuple[bytes, int]] = {
    "HTTP/1.1 without Host (3.2)": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two Host fields (3.2)": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "an unclosed IP literal as Host (3.2)": (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    "an IPv4 address in brackets as Host (3.2)": (b"GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n", 400),
    "a Host with two colons (3.2)": (b"GET / HTTP/1.1\r\nHost: a:b:c\r\n\r\n", 400),
    "a Host with a space (3.2)": (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "a Host with a port that is not a number (3.2)": (b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", 400),
    "a Host with a bad escape (3.2)": (b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
    "a Host with a byte beyond ASCII (3.2)": (b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", 400),
    "whitespace before the colon (5.1)": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "obsolete line folding (5.2)": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n  folded\r\n\r\n", 400),
    "a bare CR (2.2)": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r2\r\n\r\n", 400),
    "NUL in a field value (RFC 9110 5.5)": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\x002\r\n\r\n", 400),
    "conflicting Content-Lengths (6.3)": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 2\r\n"
                                          b"\r\nab", 400),
    "Content-Length that is not a number (6.3)": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1x\r\n\r\nab", 400),
    "Content-Length and Transfer-Encoding (6.1)": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
                                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "final transfer coding not chunked (6.3)": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 400),
    "chunked not final (6.3)": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    "a transfer coding not implemented (6.1)": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n"
                                                b"\r\n0\r\n\r\n", 501),
    "Transfer-Encoding in HTTP/1.0 (6.1)": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "HTTP/2.0 on an HTTP/1 connection (2.6)": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "a malformed request line (3)": (b"GET\r\n\r\n", 400),
    "a status line instead of a request line (3)": (b"HTTP/1.1 200 OK\r\n" + H + b"\r\n", 400),
    "a target over 8 KiB (3)": (b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    "a head over 64 KiB (5)": (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 65536 + b"\r\n\r\n", 431),
    "more header fields than are parsed (5)": (b"GET / HTTP/1.1\r\n" + H + b"X-A: 1\r\n" * 40 + b"\r\n", 431),
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("kind", KINDS)
def test_each_rule_is_refused_in_c_then_closed(serve: Callable[..., Running], kind: str, rule: str) -> None:
    server = serve(kind)
    request, status = RULES[rule]
    reply = server.ask(request)  # read until the server closes
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"\r\nConnection: close\r\n" in reply
    assert reply.count(b"\r\n\r\n") == 1  # one response head: nothing else was answered
    assert server.calls == 0  # no handler, no application saw it
    server.still_serving()


@pytest.mark.parametrize("kind", KINDS)
def test_the_refusal_reaches_a_client_still_sending_a_huge_head(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind)
    reply = server.ask(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("kind", KINDS)
def test_a_lenient_but_valid_request_is_served(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind)
    for request in (b"GET / HTTP/1.0\r\n\r\n",  # HTTP/1.0 needs no Host
                    b"GET / HTTP/1.1\r\nhOsT: x\r\nConnection: close\r\n\r\n",
                    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
                    b"2\r\nab\r\n0\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 28 + b"Connection: close\r\n\r\n",
                    # Every form RFC 3986 gives a host and port, and the empty value (RFC 9110 7.2)
                    *(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
                      for host in (b"", b"example.com:8080", b"127.0.0.1", b"[::1]", b"[::1]:80", b"[v7.a:b]",
                                   b"a%2Db.test", b"x_y~z!$&'()*+,;=", b"example.com:"))):
        assert re.match(rb"HTTP/1\.[01] 200 OK\r\n", server.ask(request)), request[:60]


@pytest.mark.parametrize("kind", KINDS)
def test_the_limits_are_configurable(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind, max_head=4096, max_target=100)
    close = b"Host: x\r\nConnection: close\r\n\r\n"
    assert server.ask(b"GET /" + b"a" * 99 + b" HTTP/1.1\r\n" + close).startswith(b"HTTP/1.1 200 ")
    assert server.ask(b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + close).startswith(b"HTTP/1.1 414 ")
    assert server.ask(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 3000 + b"\r\n" + close).startswith(b"HTTP/1.1 200 ")
    assert server.ask(b"GET / HTTP/1.1\r\nX-A: " + b"a" * 5000 + b"\r\n" + close).startswith(b"HTTP/1.1 431 ")


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_head"):
        HttpLimits(max_head=10)
    with pytest.raises(ValueError, match="header_read_timeout"):
        HttpLimits(header_read_timeout=-1)
    with pytest.raises(TypeError, match="HttpLimits"):
        Manager().listen("http://127.0.0.1:0", limits={"max_head": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_keep_alive"):
        WSGIServer(lambda e, s: [], timeout_keep_alive=0)


# ---- timeouts ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_head_that_does_not_arrive_in_time_is_answered_408(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind, header_read_timeout=0.5)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    try:
        started = time.monotonic()
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        server.still_serving()  # others are served meanwhile
        reply = read_until_closed(slow)
        assert reply.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in reply
        assert read_until_closed(silent) == b""  # nothing asked, nothing answered: closed
        assert 0.4 < time.monotonic() - started < 5
    finally:
        slow.close()
        silent.close()
    assert server.calls == 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_idle_keep_alive_connection_is_closed(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind, timeout_keep_alive=0.3)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        reply = read_until_closed(s)  # the response, then the close
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"ok")
        assert 0.25 < time.monotonic() - started < 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_keep_alive_connection_in_use_is_not_closed(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind, timeout_keep_alive=1.0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as s:
        for _ in range(6):  # 6 requests 0.3 s apart: each within the timeout of the last
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
            time.sleep(0.3)
    assert server.calls == 6


@pytest.mark.parametrize("kind", KINDS)
def test_many_slow_clients_do_not_stop_others(serve: Callable[..., Running], kind: str) -> None:
    server = serve(kind, header_read_timeout=2.0)
    slow: List[socket.socket] = []
    try:
        for _ in range(100):  # each sends half a head at once: its clock runs from its accept
            slow.append(socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT))
            slow[-1].sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        for _ in range(5):
            server.still_serving()
        for sock in slow:
            assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in slow:
            sock.close()


# ---- the app servers' responses, through the checked writer ---------------------------------

def _wsgi_app(status: str, headers: List[Tuple[str, str]], body: Any) -> Callable[..., Any]:
    """Answers as told, and ``/fine`` with ``ok`` (for ``still_serving``)."""
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/fine":
            start_response("200 OK", [])
            return [b"ok"]
        start_response(status, headers)
        return body() if callable(body) else body
    return app


def _iterator() -> Iterator[bytes]:
    yield b"hello"


SPLITTING = {
    "CR LF in a value": ("302 Found", [("Location", "/x\r\nX-Injected: yes")]),
    "LF in a value": ("302 Found", [("Location", "/x\nX-Injected: yes")]),
    "NUL in a value": ("200 OK", [("X-A", "a\x00b")]),
    "space in a name": ("200 OK", [("X A", "b")]),
    "CR LF in the status": ("200 OK\r\nX-Injected: yes", []),
    "a status of two digits": ("20 OK", []),
    "not latin-1": ("200 OK", [("X-A", "\u20ac")]),
}


@pytest.mark.parametrize("body", ["list", "iterator"])
@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
@pytest.mark.parametrize("case", list(SPLITTING))
def test_wsgi_a_bad_head_is_a_500_never_on_the_wire(serve: Callable[..., Running], caplog: Any, case: str,
                                                    version: bytes, body: str) -> None:
    status, headers = SPLITTING[case]
    server = serve("wsgi", wsgi_app=_wsgi_app(status, headers, [b"hello"] if body == "list" else _iterator))
    with caplog.at_level(logging.ERROR, logger="pymongoose.wsgi"):
        reply = server.ask(b"GET / HTTP/" + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/" + version + b" 500 Internal Server Error\r\n"), reply
    assert b"Injected" not in reply and b"hello" not in reply
    assert reply.endswith(b"Internal Server Error\n")
    assert any(isinstance(record.exc_info[1], (InvalidResponseError, TypeError))
               for record in caplog.records if record.exc_info)
    server.still_serving()


def test_wsgi_start_response_raises_for_a_bad_head_so_the_application_may_catch_it(
        serve: Callable[..., Running]) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
        try:
            start_response("200 OK", [("Location", "/a\r\nb")])
        except ValueError as error:  # InvalidResponseError is a ValueError too
            assert "Location" in str(error)
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"bad redirect"]
        return [b"unreachable"]

    server = serve("wsgi", wsgi_app=app)
    reply = server.ask(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n") and reply.endswith(b"bad redirect")


def test_wsgi_keeps_the_application_reason_and_frames_for_each_version(serve: Callable[..., Running]) -> None:
    server = serve("wsgi", wsgi_app=_wsgi_app("299 Very Fine", [("X-A", "b")], _iterator))
    reply = server.ask(b"GET / HTTP/1.0\r\n\r\n")  # HTTP/1.0: no chunks, the close ends it
    assert reply.startswith(b"HTTP/1.0 299 Very Fine\r\n")
    assert b"transfer-encoding" not in reply.lower() and reply.endswith(b"\r\n\r\nhello")
    reply = server.ask(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 299 Very Fine\r\n")
    assert b"transfer-encoding: chunked\r\n" in reply.lower() and reply.endswith(b"5\r\nhello\r\n0\r\n\r\n")


def test_wsgi_a_failure_after_the_head_left_closes_the_connection(serve: Callable[..., Running]) -> None:
    def body() -> Iterator[bytes]:
        yield b"part"
        raise RuntimeError("midway")

    server = serve("wsgi", wsgi_app=_wsgi_app("200 OK", [], body))
    reply = server.ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive: only the close ends it
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"part" in reply
    assert not reply.endswith(b"0\r\n\r\n")  # cut short: the client can tell
    server.still_serving()


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_one_access_log_line_for_both_servers(kind: str, caplog: Any) -> None:
    running = Running(kind, access_log=True)
    try:
        with caplog.at_level(logging.INFO, logger=f"pymongoose.{kind}.access"):
            running.ask(b"GET /x?y=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            wait_for(lambda: caplog.records, what="the access line")
    finally:
        running._stop()
    line = caplog.records[0].getMessage()
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /x\?y=1 HTTP/1\.1" 200 2 \d+\.\dms', line), line


def test_the_verbs_and_options_are_the_same_on_both_servers() -> None:
    assert WSGIServer.stop is WSGIServer.shutdown
    assert ASGIServer.shutdown is ASGIServer.stop
    wsgi = WSGIServer(lambda e, s: [], max_body=1000, timeout_keep_alive=2, header_read_timeout=3, poll_interval=50)
    asgi = ASGIServer(lambda s, r, w: None, max_body=1000, timeout_keep_alive=2, header_read_timeout=3,
                      poll_interval=50)
    assert wsgi.config == asgi.config
    assert wsgi.config.limits == HttpLimits(header_read_timeout=3, timeout_keep_alive=2)
    wsgi.close()
