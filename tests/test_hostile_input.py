"""Bad bytes from the network: each bad client gets a clean error or close, and the
server keeps serving everyone else (a good request right after is answered)."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
from typing import Any, List

import pytest
import requests

from pymongoose import (
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    MG_EV_MQTT_CMD,
    MG_EV_READ,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    MQTT_CMD_CONNECT,
    Manager,
    TlsOpts,
)

from support import (
    DEFAULT_TIMEOUT,
    WS_UPGRADE,
    TestPKI,
    raw_request,
    read_until_closed,
    server_frames,
    wait_for,
    ws_frame,
)


def http_handler(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        if data.uri == "/ws":
            conn.ws_upgrade(data)
        else:
            conn.reply(200, f"fine {len(data.body_bytes)}")
    elif event == MG_EV_WS_MSG:
        conn.ws_send(data.data)


def tls_get(port: int) -> bytes:
    """GET / over TLS, verifying nothing (the certificate is not the point here)."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return tls.recv(100)


def still_serving(server: Any) -> None:
    r = requests.get(f"http://127.0.0.1:{server.port}/after", timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200 and r.text == "fine 0"


@pytest.fixture
def http_server(serve: Any) -> Any:
    return serve(http_handler)


# ---- HTTP ---------------------------------------------------------------------------

# Each malformed request, and what answers it: a status line (refused in C before any
# handler, then a close), or None (Mongoose closes without a word).
BAD_REQUESTS = {
    "garbage request line": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary\r\n\r\n", 400),
    "no URI": (b"GET\r\n\r\n", 400),
    "spaces only": (b"   \r\n\r\n", 400),
    "NUL in the request line": (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    "negative Content-Length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nhello", 400),
    "huge Content-Length": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\nx", 400),
    "Content-Length and chunked": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    "bad chunk size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nhello\r\n0\r\n\r\n",
                       None),
    "huge chunk size": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nx\r\n",
                        None),
    "too many headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
                         + b"\r\n", 431),
    "oversized header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 << 20) + b"\r\n\r\n", 431),
    "body past the size limit": (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n"
                                 + b"b" * (4 << 20), 413),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_malformed_http_gets_a_clean_answer_or_close(http_server: Any, name: str) -> None:
    request, status = BAD_REQUESTS[name]
    reply = raw_request(http_server.port, request, timeout=5)
    # Never the handler's answer to a request that could not be parsed whole, never
    # a hang: the refusal (then a close), or a close.
    if status is None:
        assert reply == b""
    else:
        assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:100]
    still_serving(http_server)


def test_slow_clients_are_closed_by_the_idle_timeout(serve: Any) -> None:
    server = serve(http_handler, idle_timeout_ms=300)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    try:
        slow.sendall(b"GET / HT")  # ...and nothing more: slowloris
        started = time.monotonic()
        still_serving(server)  # others are served meanwhile
        for sock in (slow, silent):
            assert sock.recv(100) == b""  # closed by the server
        assert time.monotonic() - started < 5
    finally:
        slow.close()
        silent.close()
    still_serving(server)


def test_slow_clients_do_not_block_others_without_a_timeout(http_server: Any) -> None:
    slow = [socket.create_connection(("127.0.0.1", http_server.port)) for _ in range(50)]
    try:
        for sock in slow:
            sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        for _ in range(5):
            still_serving(http_server)
    finally:
        for sock in slow:
            sock.close()


# ---- WebSocket ------------------------------------------------------------------------

def ws_client(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(WS_UPGRADE)
    response = b""
    while b"\r\n\r\n" not in response:
        response += s.recv(4096)
    assert response.startswith(b"HTTP/1.1 101")
    return s


BAD_FRAMES = {
    "reserved opcode": ws_frame(0x3, b"?"),
    "reserved control opcode": ws_frame(0xB, b"?"),
    "unmasked client frame": bytes([0x81, 5]) + b"hello",
    "oversized frame": ws_frame(0x2, b"x" * 16, length=1 << 62),
    "bad close code": ws_frame(0x8, struct.pack("!H", 1) + b"why"),
    "close with a short payload": ws_frame(0x8, b"\x03"),
    "fragmented control frame": ws_frame(0x9, b"ping", fin=False),
    "continuation without start": ws_frame(0x0, b"orphan"),
    "random bytes": bytes(random.Random(7).getrandbits(8) for _ in range(4096)),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_websocket_frames(http_server: Any, name: str) -> None:
    s = ws_client(http_server.port)
    try:
        s.sendall(BAD_FRAMES[name])
        s.settimeout(2)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    good = ws_client(http_server.port)
    good.sendall(ws_frame(0x1, b"still here"))
    assert good.recv(100).endswith(b"still here")
    good.close()
    still_serving(http_server)


# ---- MQTT broker mode --------------------------------------------------------------

BAD_MQTT = {
    "truncated CONNECT": b"\x10\x20\x00\x04MQ",
    "bad remaining length": b"\x30\xff\xff\xff\xff\xff\x01",
    "PUBLISH with a topic longer than the packet": b"\x30\x05\xff\xffabc",
    "SUBSCRIBE without topics": b"\x82\x02\x00\x01",
    "reserved packet type": b"\x00\x00",
    "random bytes": bytes(random.Random(3).getrandbits(8) for _ in range(2048)),
}


@pytest.mark.parametrize("name", list(BAD_MQTT))
def test_malformed_mqtt_packets_to_the_broker_mode(serve: Any, name: str) -> None:
    from support import LoopThread

    commands: List[int] = []

    def broker(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_MQTT_CMD:
            commands.append(data.cmd)
            try:
                data.subscriptions()
            except ValueError:
                pass
            if data.cmd == MQTT_CMD_CONNECT:
                conn.send(b"\x20\x02\x00\x00")

    mgr = Manager()
    listener = mgr.mqtt_listen("mqtt://127.0.0.1:0", broker)
    loop = LoopThread(mgr).start()
    try:
        raw_request(listener.local_addr.port, BAD_MQTT[name], timeout=2)
        connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04good"
        reply = raw_request(listener.local_addr.port, connect, timeout=2, read_until_close=False)
        assert reply == b"\x20\x02\x00\x00"
    finally:
        loop.stop()
        mgr.close()


# ---- TLS ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_opts(tmp_path_factory: Any) -> TlsOpts:
    pki = TestPKI(tmp_path_factory.mktemp("pki-hostile"))
    cert, key = pki.issue("localhost")
    return TlsOpts(cert=cert, key=key)


def test_garbage_instead_of_a_client_hello(serve: Any, tls_opts: TlsOpts) -> None:
    server = serve(http_handler, url="https://127.0.0.1:0", tls=tls_opts)
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\xff\xff" + b"\x00" * 64, os.urandom(5000)):
        raw_request(server.port, junk, timeout=2)
    assert tls_get(server.port).startswith(b"HTTP/1.1 200")


def test_a_client_stalling_mid_handshake_blocks_nobody(serve: Any, tls_opts: TlsOpts) -> None:
    server = serve(http_handler, url="https://127.0.0.1:0", tls=tls_opts, idle_timeout_ms=500)
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    try:
        stalled.sendall(b"\x16\x03\x01\x00\xc8\x01")  # the start of a ClientHello, then silence
        assert tls_get(server.port).startswith(b"HTTP/1.1 200")
        assert stalled.recv(100) == b""  # dropped by the idle timeout
    finally:
        stalled.close()


# ---- a random-bytes flood to every kind of listener ----------------------------------

def _flood(port: int, udp: bool = False, seconds: float = 1.0) -> None:
    rng = random.Random(port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 3000)))
        try:
            if udp:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(payload, ("127.0.0.1", port))
            else:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(payload)
        except OSError:
            pass


@pytest.mark.parametrize("kind", ["http", "tcp", "udp", "mqtt", "https"])
def test_random_flood_to_each_listener_type(serve: Any, tls_opts: TlsOpts, kind: str) -> None:
    errors: List[Any] = []
    echoed: List[bytes] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_ERROR:
            errors.append(data)
        elif event == MG_EV_READ and kind in ("tcp", "udp"):
            echoed.append(conn.recv_data(16))
            conn.consume(conn.recv_len)
        elif event == MG_EV_MQTT_CMD and data.cmd == MQTT_CMD_CONNECT:
            conn.send(b"\x20\x02\x00\x00")
        else:
            http_handler(conn, event, data)

    if kind == "mqtt":
        mgr = Manager()
        listener = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler)
        from support import LoopThread

        loop = LoopThread(mgr).start()
        port = listener.local_addr.port
    else:
        url = {"http": "http://127.0.0.1:0", "tcp": "tcp://127.0.0.1:0", "udp": "udp://127.0.0.1:0",
               "https": "https://127.0.0.1:0"}[kind]
        server = serve(handler, url=url, **({"tls": tls_opts} if kind == "https" else {}))
        port, loop, mgr = server.port, None, server.manager
    try:
        floods = [threading.Thread(target=_flood, args=(port, kind == "udp")) for _ in range(3)]
        for t in floods:
            t.start()
        for t in floods:
            t.join(DEFAULT_TIMEOUT)
        # ...and it still does its job:
        if kind == "http":
            still_serving(server)
        elif kind == "https":
            assert tls_get(port).startswith(b"HTTP/1.1 200")
        elif kind == "mqtt":
            reply = raw_request(port, b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04good", timeout=2,
                                read_until_close=False)
            assert reply == b"\x20\x02\x00\x00"
        else:
            before = len(echoed)
            if kind == "tcp":
                raw_request(port, b"marker", timeout=0.5)
                wait_for(lambda: b"marker" in echoed[before:])
            else:
                # UDP may drop a datagram while the flood's backlog fills the socket
                # buffer: send the marker until one arrives.
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    def marker_echoed() -> bool:
                        s.sendto(b"marker", ("127.0.0.1", port))
                        return b"marker" in echoed[before:]
                    wait_for(marker_echoed)
    finally:
        if loop is not None:
            loop.stop()
            mgr.close()




# ---- WebSocket: what handlers never see ------------------------------------------

def ws_echo_recording(delivered: List[Any]) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event in (MG_EV_WS_MSG, MG_EV_WS_CTL):
            delivered.append((event, data.op, data.data))
            if event == MG_EV_WS_MSG:
                conn.ws_send(data.data, data.op)

    return handler


@pytest.mark.parametrize("payload", [
    b"\xff", b"\xc0\xaf",  # not UTF-8; an overlong '/'
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"ok so far \xe2\x82",  # cut in the middle of a character
    b"12345678\x80abcdefgh",  # a stray continuation byte after an ASCII block
])
def test_text_message_that_is_not_utf8_fails_the_connection_with_1007(serve: Any, payload: bytes) -> None:
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    try:
        s.sendall(ws_frame(0x1, payload))
        s.settimeout(DEFAULT_TIMEOUT)
        received = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            received += chunk
    finally:
        s.close()
    assert received[:1] == b"\x88"  # a close frame...
    assert struct.unpack("!H", received[2:4])[0] == 1007  # ...with 1007
    assert delivered == []
    good = ws_client(server.port)
    good.sendall(ws_frame(0x1, "valid: héllo €𝄞".encode()))
    assert good.recv(100).endswith("valid: héllo €𝄞".encode())
    good.close()


# RFC 6455 rules, each broken alone after a valid message: the server answers the
# valid one, then fails the connection with the code the RFC gives, its close frame
# the last thing it sends; the handler never sees the offending frame.
RFC6455_VIOLATIONS = {
    "reserved bit without an extension": (ws_frame(0x40 | 0x1, b"rsv1"), 1002),
    "reserved data opcode": (ws_frame(0x5, b""), 1002),
    "reserved control opcode": (ws_frame(0xE, b"payload"), 1002),
    "fragmented ping": (ws_frame(0x9, b"ping", fin=False), 1002),
    "ping over 125 bytes": (ws_frame(0x9, b"p" * 126), 1002),
    "close with a 1-byte payload": (ws_frame(0x8, b"\x03"), 1002),
    "close code 999": (ws_frame(0x8, struct.pack("!H", 999)), 1002),
    "close code 1005 (reserved)": (ws_frame(0x8, struct.pack("!H", 1005)), 1002),
    "close code 1016": (ws_frame(0x8, struct.pack("!H", 1016)), 1002),
    "close code 2999": (ws_frame(0x8, struct.pack("!H", 2999)), 1002),
    "close code 5000": (ws_frame(0x8, struct.pack("!H", 5000)), 1002),
    "close reason not UTF-8": (ws_frame(0x8, struct.pack("!H", 1000) + b"\xff\xfe"), 1007),
    "continuation without a message": (ws_frame(0x0, b"orphan"), 1002),
    "new message inside a fragmented one": (ws_frame(0x1, b"frag", fin=False) + ws_frame(0x1, b"new"), 1002),
    "new fragmented message inside a fragmented one":
        (ws_frame(0x1, b"frag", fin=False) + ws_frame(0x2, b"new", fin=False) + ws_frame(0x0, b"end"), 1002),
    "fragmented text ending inside a character":
        (ws_frame(0x1, b"ok ", fin=False) + ws_frame(0x0, b"\xe2\x82"), 1007),
    "fragmented text with a bad continuation byte":
        (ws_frame(0x1, b"\xe2", fin=False) + ws_frame(0x0, b"\x41\x82"), 1007),
}


@pytest.mark.parametrize("name", list(RFC6455_VIOLATIONS))
def test_each_rfc6455_violation_fails_with_its_close_code(serve: Any, name: str) -> None:
    frame, code = RFC6455_VIOLATIONS[name]
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    try:
        s.sendall(ws_frame(0x1, b"before") + frame + ws_frame(0x1, b"after"))
        frames = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert frames[0] == (0x81, b"before")
    assert frames[-1][0] == 0x88 and struct.unpack("!H", frames[-1][1][:2])[0] == code, frames
    assert [f for f in frames if f[0] == 0x88] == [frames[-1]], "one close frame, and the last"
    assert [d[2] for d in delivered] == [b"before"]
    good = ws_client(server.port)  # and the server goes on
    good.sendall(ws_frame(0x1, b"still here"))
    assert good.recv(100).endswith(b"still here")
    good.close()


def test_a_valid_close_is_echoed_and_nothing_after_it_is_delivered(serve: Any) -> None:
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    try:
        close = struct.pack("!H", 1000) + "au revoir ✓".encode()
        s.sendall(ws_frame(0x1, b"hi") + ws_frame(0x8, close) + ws_frame(0x9, b"no pong") +
                  ws_frame(0x1, b"too late"))
        frames = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert frames == [(0x81, b"hi"), (0x88, close)]
    assert [(d[1], d[2]) for d in delivered] == [(0x1, b"hi"), (0x8, close)]


def test_a_fragmented_message_is_joined_and_delivered_once(serve: Any) -> None:
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    try:
        s.sendall(ws_frame(0x1, b"one ", fin=False) + ws_frame(0x9, b"ping in between") +
                  ws_frame(0x0, b"two ", fin=False) + ws_frame(0x0, b"three") + ws_frame(0x8, struct.pack("!H", 1000)))
        frames = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert (0x81, b"one two three") in frames and (0x8A, b"ping in between") in frames
    assert [d[2] for d in delivered if d[0] == MG_EV_WS_MSG] == [b"one two three"]


def test_a_fragmented_text_message_fails_at_its_first_bad_fragment(serve: Any) -> None:
    # The message never ends: the server must not wait for its end to fail it.
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    try:
        s.sendall(ws_frame(0x1, b"fine so far", fin=False) + ws_frame(0x0, b"\xc0\xaf", fin=False))
        frames = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert [f[0] for f in frames] == [0x88] and struct.unpack("!H", frames[0][1][:2])[0] == 1007
    assert [d for d in delivered if d[0] == MG_EV_WS_MSG] == []


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_character_split_across_fragments_is_valid_utf8(serve: Any, cut: int) -> None:
    delivered: List[Any] = []
    server = serve(ws_echo_recording(delivered))
    s = ws_client(server.port)
    text = "𝄞 clef".encode()
    try:
        s.sendall(ws_frame(0x1, text[:cut], fin=False) + ws_frame(0x0, text[cut:]) +
                  ws_frame(0x2, b"\xff binary is not checked") + ws_frame(0x8, struct.pack("!H", 1000)))
        frames = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert frames == [(0x81, text), (0x82, b"\xff binary is not checked"), (0x88, struct.pack("!H", 1000))]
