"""Output never waits for a poll's timeout.

Every server here polls with a timeout of a minute (``poll(60_000)``, or an
``AsyncManager`` ticking once a minute), so a connection whose unsent data the
wait forgets would stall the download for a minute and the client would give up
after DEFAULT_TIMEOUT. Whatever refills the send buffer (Mongoose's own static
file handler on ``MG_EV_WRITE``, a Python handler on ``MG_EV_WRITE`` or
``MG_EV_POLL``, a timer, another thread), the data must leave at once, over
plain TCP and over TLS, and the loop must not spin either: each test counts the
iterations the download took.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import pytest
import requests
import websocket  # websocket-client

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_POLL,
    MG_EV_WRITE,
    MG_EV_WS_OPEN,
    WEBSOCKET_OP_BINARY,
    Manager,
    TlsOpts,
)
from pymongoose.aio import AsyncManager
from pymongoose.asgi import ASGIServer
from pymongoose.wsgi import WSGIServer

from support import DEFAULT_TIMEOUT, LoopThread, TestPKI

SIZE = 6 * 1024 * 1024
CHUNK = 64 * 1024  # what Mongoose's static file handler reads per MG_EV_WRITE
RECORD = 16 * 1024  # a TLS write step sends one record
LONG_POLL_MS = 60_000


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: Any) -> Path:
    root = tmp_path_factory.mktemp("site")
    # Not all one byte: a chunk sent twice or skipped changes the digest.
    block = hashlib.sha256(b"pymongoose").digest() * (CHUNK // 32)
    (root / "big.bin").write_bytes(b"".join(bytes([i % 251]) + block[1:] for i in range(SIZE // CHUNK)))
    return root / "big.bin"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["http", "https"])
def scheme(request: Any) -> str:
    return str(request.param)


def server_tls(scheme: str, pki: TestPKI) -> Optional[TlsOpts]:
    """A server certificate for https, None for http."""
    if scheme != "https":
        return None
    cert, key = pki.issue("localhost")
    return TlsOpts(cert=cert.read_bytes(), key=key.read_bytes())


@pytest.fixture
def slow_server(scheme: str, pki: TestPKI) -> Iterator[Callable[[Callable[..., Any]], Tuple[str, LoopThread]]]:
    """``start(handler)`` listens (over TLS for https) on a manager polled with a
    one-minute timeout; returns the base URL and the polling thread."""
    started = []

    def start(handler: Callable[..., Any]) -> Tuple[str, LoopThread]:
        manager = Manager()
        listener = manager.listen(f"{scheme}://127.0.0.1:0", handler, tls=server_tls(scheme, pki))
        loop = LoopThread(manager, poll_ms=LONG_POLL_MS).start()
        started.append(loop)
        return f"{scheme}://localhost:{listener.local_addr.port}", loop

    yield start
    for loop in started:
        loop.stop()
        loop.manager.close()


def download(url: str, pki: TestPKI) -> bytes:
    # requests' timeout bounds each read: a stalled download fails here.
    response = requests.get(url, verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
    assert response.status_code == 200
    return response.content


def streaming_handler(path: Path, refill_on: Tuple[int, ...]) -> Callable[..., None]:
    """The backpressure pattern of docs/http.md: a chunked response topped up to 256 KiB
    on each of the ``refill_on`` events."""
    streams: Dict[int, Any] = {}

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            streams[conn.id] = open(path, "rb")
        elif event in refill_on and conn.id in streams:
            while conn.send_len < 256 * 1024:
                piece = streams[conn.id].read(65536)
                conn.http_chunk(piece)
                if not piece:
                    streams.pop(conn.id).close()
                    break
        elif event == MG_EV_CLOSE and conn.id in streams:
            streams.pop(conn.id).close()

    return handler


def assert_no_spin(loop: LoopThread, polls_before: int) -> None:
    # An iteration writes a refill or more (one TLS record at least); a loop that
    # spun instead of waiting for the socket to drain would take many times more.
    polls = loop.polls - polls_before
    assert polls <= 4 * SIZE // RECORD, f"{polls} iterations for {SIZE // RECORD} records"


def test_served_file_leaves_without_waiting_for_the_timeout(slow_server: Any, big_file: Path, pki: TestPKI) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.serve_file(data, str(big_file))

    url, loop = slow_server(handler)
    before = loop.polls
    assert download(url + "/big.bin", pki) == big_file.read_bytes()
    assert_no_spin(loop, before)


def test_served_folder_leaves_without_waiting_for_the_timeout(slow_server: Any, big_file: Path, pki: TestPKI) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=str(big_file.parent))

    url, loop = slow_server(handler)
    with requests.Session() as session:  # twice on one connection: the state resets
        for _ in range(2):
            before = loop.polls
            response = session.get(url + "/big.bin", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
            assert response.content == big_file.read_bytes()
            assert_no_spin(loop, before)


# docs/http.md's pattern, and the same on MG_EV_WRITE alone. (On MG_EV_POLL alone a
# refill waits for the loop to turn, a poll's timeout when nothing else happens:
# MG_EV_POLL comes once per iteration.)
@pytest.mark.parametrize("refill_on", [(MG_EV_WRITE, MG_EV_POLL), (MG_EV_WRITE,)], ids=["docs", "MG_EV_WRITE"])
def test_backpressure_pattern(slow_server: Any, big_file: Path, pki: TestPKI, refill_on: Tuple[int, ...]) -> None:
    url, loop = slow_server(streaming_handler(big_file, refill_on))
    before = loop.polls
    assert download(url + "/", pki) == big_file.read_bytes()
    assert_no_spin(loop, before)


def test_data_queued_by_a_timer_leaves(slow_server: Any, big_file: Path, pki: TestPKI) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            def answer() -> None:
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE + big_file.read_bytes())
            conn.manager.timer_add(0, answer, run_now=True)

    url, loop = slow_server(handler)
    assert download(url + "/", pki) == big_file.read_bytes()


def test_data_sent_from_another_thread_leaves(slow_server: Any, big_file: Path, pki: TestPKI) -> None:
    content = big_file.read_bytes()

    def produce(conn: Any) -> None:  # posts the response piece by piece
        manager = conn.manager
        manager.call_soon_threadsafe(conn.send, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for offset in range(0, SIZE, CHUNK):
            manager.call_soon_threadsafe(conn.send, content[offset:offset + CHUNK])

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            threading.Thread(target=produce, args=(conn,), daemon=True).start()

    url, loop = slow_server(handler)
    assert download(url + "/", pki) == content


# ---- AsyncManager: the asyncio loop waits on Mongoose's epoll descriptor ----------


def serve_on_asyncio(handler: Callable[..., Any], fetch: Callable[[str], bytes], scheme: str,
                     pki: TestPKI) -> bytes:
    async def main() -> bytes:
        async with AsyncManager(handler, poll_interval=LONG_POLL_MS) as mgr:
            port = mgr.listen(f"{scheme}://127.0.0.1:0", tls=server_tls(scheme, pki)).local_addr.port
            url = f"{scheme}://localhost:{port}"
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fetch, url),
                                          DEFAULT_TIMEOUT * 2)

    return asyncio.run(main())


def test_async_manager_serves_files_without_waiting_for_its_tick(big_file: Path, pki: TestPKI,
                                                                 scheme: str) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=str(big_file.parent))

    body = serve_on_asyncio(handler, lambda url: download(url + "/big.bin", pki), scheme, pki)
    assert body == big_file.read_bytes()


def test_async_manager_backpressure_pattern(big_file: Path, pki: TestPKI, scheme: str) -> None:
    handler = streaming_handler(big_file, (MG_EV_WRITE,))
    body = serve_on_asyncio(handler, lambda url: download(url + "/", pki), scheme, pki)
    assert body == big_file.read_bytes()


# ---- the servers and protocols built on the same wait ------------------------------


def test_wsgi_file_wrapper(big_file: Path, pki: TestPKI, scheme: str) -> None:
    # Worker threads hand the blocks to the loop (call_soon_threadsafe).
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(big_file, "rb"))

    server = WSGIServer(app, workers=2)
    port = server.listen(f"{scheme}://127.0.0.1:0", tls=server_tls(scheme, pki)).local_addr.port
    loop = LoopThread(server.manager, poll_ms=LONG_POLL_MS).start()
    try:
        assert download(f"{scheme}://localhost:{port}/", pki) == big_file.read_bytes()
    finally:
        loop.stop()
        server.close()


def test_asgi_streamed_response(big_file: Path, pki: TestPKI, scheme: str) -> None:
    content = big_file.read_bytes()

    async def app(scope: Dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for offset in range(0, SIZE, CHUNK):
            await send({"type": "http.response.body", "body": content[offset:offset + CHUNK], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> bytes:
        server = ASGIServer(app, lifespan="off", poll_interval=LONG_POLL_MS)
        port = (await server.start(f"{scheme}://127.0.0.1:0", tls=server_tls(scheme, pki))).local_addr.port
        try:
            fetch = functools.partial(download, f"{scheme}://localhost:{port}/", pki)
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fetch),
                                          DEFAULT_TIMEOUT * 2)
        finally:
            await server.stop(1)

    assert asyncio.run(main()) == content


def test_websocket_messages_sent_by_a_timer(slow_server: Any, pki: TestPKI) -> None:
    # A timer due in a millisecond cuts the minute-long wait short, and what it
    # sends leaves at once: a hundred 64 KiB messages, one per timer call.
    messages = 100
    timers: Dict[int, Any] = {}

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_OPEN:
            sent = [0]

            def tick() -> None:
                if sent[0] < messages and not conn.is_closing:
                    conn.ws_send(bytes([sent[0]]) * CHUNK, WEBSOCKET_OP_BINARY)
                    sent[0] += 1
                else:
                    timers.pop(conn.id).cancel()

            timers[conn.id] = conn.manager.timer_add(1, tick, repeat=True)

    url, loop = slow_server(handler)
    ws = websocket.create_connection(url.replace("http", "ws", 1) + "/", timeout=DEFAULT_TIMEOUT,
                                     sslopt={"ca_certs": str(pki.ca_cert)})
    try:
        for i in range(messages):
            assert ws.recv() == bytes([i]) * CHUNK
    finally:
        ws.close()
