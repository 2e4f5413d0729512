"""WebSocket permessage-deflate (RFC 7692): negotiation, both directions, limits.

Raw sockets check the frames on the wire (RSV1, window, context takeover); the
`websockets` library is a real peer for our server and for our client.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import zlib
from typing import Any, Dict, List, Optional, Tuple

import pytest

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_CLOSE,
    WEBSOCKET_OP_TEXT,
    Manager,
)

from support import DEFAULT_TIMEOUT, poll_until, read_until_closed, server_frames, wait_for, ws_frame

RSV1 = 0x40
CLOSE_1000 = ws_frame(0x8, struct.pack("!H", 1000))


def echo_server(seen: List[Tuple[int, bytes]], **upgrade: Any) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data, **upgrade)
        elif event == MG_EV_WS_MSG:
            seen.append((data.op, data.data))
            conn.ws_send(data.data, data.op)

    return handler


def upgrade(port: int, extensions: Optional[str]) -> Tuple[socket.socket, bytes]:
    """A raw client that offers ``extensions``; returns it and the response head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    s.sendall(("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"{offer}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head


def agreed(head: bytes) -> Optional[str]:
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "sec-websocket-extensions":
            return value.strip()
    return None


class Deflater:
    """The sending side of permessage-deflate, as RFC 7692 7.2.1 says."""

    def __init__(self, wbits: int = 15) -> None:
        self.z = zlib.compressobj(wbits=-wbits)

    def __call__(self, data: bytes) -> bytes:
        out = self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]


def inflate(payloads: List[bytes]) -> List[bytes]:
    """Server payloads inflated in order, with one context (takeover)."""
    z = zlib.decompressobj(wbits=-15)
    return [z.decompress(p + b"\x00\x00\xff\xff") for p in payloads]


def exchange(port: int, extensions: Optional[str], frames: bytes) -> Tuple[Optional[str], List[Tuple[int, bytes]]]:
    """Upgrade, send frames then a close, return what was agreed and the frames back."""
    s, head = upgrade(port, extensions)
    try:
        s.sendall(frames + CLOSE_1000)
        return agreed(head), server_frames(read_until_closed(s))
    finally:
        s.close()


TEXT = ("permessage-deflate squeezes repetitive text: " * 40).encode()


@pytest.mark.parametrize("payload", [b"", b"tiny", TEXT, os.urandom(70000), bytes(300000)],
                         ids=["empty", "tiny", "text", "random-70k", "zeros-300k"])
def test_compressed_messages_are_inflated_for_the_handler_and_echoed_compressed(serve: Any,
                                                                                payload: bytes) -> None:
    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen))
    deflate = Deflater()
    extension, frames = exchange(server.port, "permessage-deflate",
                                 ws_frame(0x2 | RSV1, deflate(payload)) + ws_frame(0x2 | RSV1, deflate(payload)))
    assert extension == "permessage-deflate"
    assert seen == [(WEBSOCKET_OP_BINARY, payload)] * 2
    echoes = frames[:2]
    # Short messages go back as they are; the others compressed, with one context.
    if len(payload) < 32:
        assert echoes == [(0x82, payload)] * 2
    else:
        assert [first for first, _ in echoes] == [0x82 | RSV1] * 2
        assert inflate([p for _, p in echoes]) == [payload, payload]
        assert len(echoes[1][1]) < len(echoes[0][1]) or len(payload) > 32768  # context taken over
    assert frames[2][0] == 0x88


def test_a_fragmented_compressed_message_is_joined_then_inflated(serve: Any) -> None:
    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen))
    text = "fragments, then inflate: ✓ ".encode() * 50
    compressed = Deflater()(text)
    third = len(compressed) // 3
    frames = (ws_frame(0x1 | RSV1, compressed[:third], fin=False) + ws_frame(0x9, b"ping") +
              ws_frame(0x0, compressed[third:2 * third], fin=False) + ws_frame(0x0, compressed[2 * third:]))
    _, back = exchange(server.port, "permessage-deflate", frames)
    assert seen == [(WEBSOCKET_OP_TEXT, text)]
    assert (0x8A, b"ping") in back
    message = [p for first, p in back if first & 0x0F == 0x1]
    assert inflate(message) == [text]


def test_without_compression_the_offer_is_ignored_and_rsv1_fails(serve: Any) -> None:
    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen, compression=False))
    extension, frames = exchange(server.port, "permessage-deflate", ws_frame(0x1 | RSV1, Deflater()(TEXT)))
    assert extension is None and seen == []
    assert frames[-1][0] == 0x88 and frames[-1][1][:2] == struct.pack("!H", 1002)


@pytest.mark.parametrize("offer, answer", [
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    ('permessage-deflate; server_max_window_bits="10"', "permessage-deflate; server_max_window_bits=10"),
    # Declined: unknown, repeated or out-of-range parameters; the next offer is taken.
    ("permessage-deflate; level=9, permessage-deflate; server_max_window_bits=11",
     "permessage-deflate; server_max_window_bits=11"),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=08", None),
    ("permessage-deflate; server_max_window_bits", None),
    ("x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"),
    ("x-webkit-deflate-frame", None),
])
def test_negotiation(serve: Any, offer: str, answer: Optional[str]) -> None:
    server = serve(echo_server([]))
    s, head = upgrade(server.port, offer)
    s.close()
    assert agreed(head) == answer


def test_server_no_context_takeover_compresses_each_message_alone(serve: Any) -> None:
    server = serve(echo_server([]))
    deflate = Deflater()
    _, frames = exchange(server.port, "permessage-deflate; server_no_context_takeover",
                         ws_frame(0x1 | RSV1, deflate(TEXT)) + ws_frame(0x1 | RSV1, deflate(TEXT)))
    first, second = frames[0][1], frames[1][1]
    assert first == second  # the same bytes: nothing carried over from the first
    assert zlib.decompressobj(wbits=-15).decompress(second + b"\x00\x00\xff\xff") == TEXT


def test_a_window_zlib_cannot_honour_means_sending_uncompressed(serve: Any) -> None:
    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen))
    extension, frames = exchange(server.port, "permessage-deflate; server_max_window_bits=8",
                                 ws_frame(0x1 | RSV1, Deflater()(TEXT)))
    assert extension == "permessage-deflate; server_max_window_bits=8"
    assert seen == [(WEBSOCKET_OP_TEXT, TEXT)] and frames[0] == (0x81, TEXT)


def test_a_handler_answering_the_extension_itself_keeps_its_answer(serve: Any) -> None:
    server = serve(echo_server([], extra_headers={"Sec-WebSocket-Extensions": "x-custom"}))
    s, head = upgrade(server.port, "permessage-deflate")
    s.close()
    assert agreed(head) == "x-custom"


BAD_COMPRESSED = {
    # A small frame that inflates past max_message_size (1000 here).
    "inflates past the limit": (ws_frame(0x2 | RSV1, Deflater()(bytes(100000))), 1009),
    "not deflate data": (ws_frame(0x2 | RSV1, b"\xff\xff\xff\xff garbage"), 1007),
    "inflates to invalid UTF-8": (ws_frame(0x1 | RSV1, Deflater()(b"ok \xc0\xaf")), 1007),
    "RSV1 on a continuation": (ws_frame(0x1 | RSV1, Deflater()(b"hello " * 10), fin=False) +
                               ws_frame(0x0 | RSV1, b"x"), 1002),
    "RSV1 on a control frame": (ws_frame(0x9 | RSV1, b"ping"), 1002),
    "RSV2 with deflate agreed": (ws_frame(0x1 | 0x20, b"x"), 1002),
}


@pytest.mark.parametrize("name", list(BAD_COMPRESSED))
def test_bad_compressed_frames_fail_with_their_close_code(serve: Any, name: str) -> None:
    frames, code = BAD_COMPRESSED[name]
    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen, max_message_size=1000))
    s, _ = upgrade(server.port, "permessage-deflate")
    try:
        s.sendall(frames)
        back = server_frames(read_until_closed(s))
    finally:
        s.close()
    assert seen == []
    assert [f[0] for f in back] == [0x88] and back[0][1][:2] == struct.pack("!H", code), back


# ---- with the `websockets` library as the peer ----------------------------------------

def test_websockets_client_against_our_server(serve: Any) -> None:
    from websockets.sync.client import connect

    seen: List[Tuple[int, bytes]] = []
    server = serve(echo_server(seen))
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=DEFAULT_TIMEOUT) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        for message in ["héllo", TEXT.decode(), b"\x00\x01" * 5000, "x" * 200000]:
            ws.send(message)
            assert ws.recv(timeout=DEFAULT_TIMEOUT) == message
    assert len(seen) == 4


@pytest.fixture
def websockets_echo() -> Any:
    """A `websockets` echo server (compression on, as by default) in a thread; its port."""
    from websockets.sync.server import serve

    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
        thread.join()


@pytest.mark.parametrize("compression", [True, False])
def test_our_client_against_a_websockets_server(websockets_echo: int, compression: bool) -> None:
    received: List[Any] = []
    state: Dict[str, Any] = {}
    messages = [("text " * 100, WEBSOCKET_OP_TEXT), (b"\xff" * 50000, WEBSOCKET_OP_BINARY),
                ("short", WEBSOCKET_OP_TEXT)]

    def on_client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            state["extension"] = data.header("Sec-WebSocket-Extensions")
            for payload, op in messages:
                conn.ws_send(payload, op)
        elif event == MG_EV_WS_MSG:
            received.append((data.data, data.op))
            if len(received) == len(messages):
                conn.close()

    with Manager() as mgr:
        conn = mgr.ws_connect(f"ws://127.0.0.1:{websockets_echo}/", on_client, compression=compression)
        poll_until(mgr, lambda: conn.is_closed)
    assert (state["extension"] or "").startswith("permessage-deflate") is compression
    assert received == [(p.encode() if isinstance(p, str) else p, op) for p, op in messages]


# ---- our client and a server that misbehaves ---------------------------------------------

def raw_server(response_extension: str) -> Tuple[int, List[bytes], threading.Thread]:
    """A one-shot server that agrees to ``response_extension`` whatever was offered,
    then records what the client sends."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: List[bytes] = []

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            conn.settimeout(DEFAULT_TIMEOUT)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            received.append(request)
            key = [line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                         b"Sec-WebSocket-Extensions: " + response_extension.encode() + b"\r\n\r\n")
            received.append(read_until_closed(conn))

    thread = threading.Thread(target=run)
    thread.start()
    return listener.getsockname()[1], received, thread


@pytest.mark.parametrize("compression, response", [
    (False, "permessage-deflate"),                          # not offered
    (True, "permessage-deflate; server_max_window_bits=7"),
    (True, "permessage-deflate; client_max_window_bits"),   # needs a value in a response
    (True, "permessage-deflate, permessage-deflate"),
    (True, "x-other-extension"),
])
def test_our_client_fails_a_response_agreeing_to_what_it_cannot_speak(compression: bool, response: str) -> None:
    port, received, thread = raw_server(response)
    events: List[int] = []
    with Manager() as mgr:
        conn = mgr.ws_connect(f"ws://127.0.0.1:{port}/", lambda c, ev, d: events.append(ev),
                              compression=compression)
        poll_until(mgr, lambda: conn.is_closed)
    thread.join()
    assert (b"permessage-deflate" in received[0]) is compression
    close = server_frames(received[1])
    assert close[0][0] == 0x88 and close[0][1][:2] == struct.pack("!H", 1002)
    assert MG_EV_WS_OPEN not in events and MG_EV_CLOSE in events


def test_our_client_and_server_compress_both_ways() -> None:
    seen: List[Tuple[int, bytes]] = []
    received: List[bytes] = []

    def on_client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            conn.ws_send(TEXT)
        elif event == MG_EV_WS_MSG:
            received.append(data.data)
            conn.ws_send(struct.pack("!H", 1000), WEBSOCKET_OP_CLOSE)

    with Manager() as mgr:
        port = mgr.listen("http://127.0.0.1:0", echo_server(seen)).local_addr.port
        conn = mgr.ws_connect(f"ws://127.0.0.1:{port}/ws", on_client)
        poll_until(mgr, lambda: conn.is_closed)
    assert seen == [(WEBSOCKET_OP_TEXT, TEXT)] and received == [TEXT]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_compression_must_be_a_bool(serve: Any, value: Any) -> None:
    failures: List[BaseException] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            try:
                conn.ws_upgrade(data, compression=value)
            except TypeError as exc:
                failures.append(exc)
                conn.reply(400, "")

    server = serve(handler)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400")
    s.close()
    wait_for(lambda: failures)
    assert "compression" in str(failures[0])
    with Manager() as mgr, pytest.raises(TypeError, match="compression"):
        mgr.ws_connect(f"ws://127.0.0.1:{server.port}/", compression=value)
