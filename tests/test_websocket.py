"""WebSocket: websocket-client against our server; our client against our server."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

import pytest
import websocket  # websocket-client

from pymongoose import (
    MG_EV_CLOSE,
    MG_EV_HTTP_MSG,
    MG_EV_WS_CTL,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_CLOSE,
    WEBSOCKET_OP_PING,
    WEBSOCKET_OP_TEXT,
    ConnectionClosedError,
    HttpMessage,
    Manager,
    WsMessage,
)
from pymongoose.websocket import DEFAULT_MAX_MESSAGE_SIZE

from support import DEFAULT_TIMEOUT, poll_until, wait_for


def echo(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        if data.uri == "/ws":
            conn.ws_upgrade(data, {"X-Upgraded-By": "pymongoose"})
        else:
            conn.reply(200, "plain http")
    elif event == MG_EV_WS_MSG:
        conn.ws_send(data.data, WEBSOCKET_OP_BINARY if data.op == WEBSOCKET_OP_BINARY else WEBSOCKET_OP_TEXT)


def client(server: Any, **kwargs: Any) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws", timeout=DEFAULT_TIMEOUT, **kwargs)


def test_text_and_binary_echo(serve: Any) -> None:
    server = serve(echo)
    ws = client(server)
    try:
        ws.send("héllo")
        assert ws.recv() == "héllo"
        ws.send_binary(b"\x00\x01\xff")
        opcode, payload = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and payload == b"\x00\x01\xff"
    finally:
        ws.close()


def test_upgrade_sends_extra_headers_and_plain_http_still_works(serve: Any) -> None:
    import requests

    server = serve(echo)
    ws = client(server)
    try:
        assert ws.getheaders()["x-upgraded-by"] == "pymongoose"
        assert ws.getstatus() == 101
    finally:
        ws.close()
    assert requests.get(server.url + "/other", timeout=DEFAULT_TIMEOUT).text == "plain http"


def test_upgrade_of_a_non_websocket_request_is_refused(serve: Any) -> None:
    import requests

    server = serve(echo)
    r = requests.get(server.url + "/ws", timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 426


def test_ping_gets_pong_and_control_frames_reach_the_handler(serve: Any) -> None:
    controls: List[int] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_CTL:
            assert isinstance(data, WsMessage)
            controls.append(data.op)
        else:
            echo(conn, event, data)

    server = serve(handler)
    ws = client(server)
    try:
        ws.ping(b"are you there")
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"are you there"
    finally:
        ws.close()
    wait_for(lambda: WEBSOCKET_OP_PING in controls)


def test_close_handshake_and_close_event(serve: Any) -> None:
    closed: List[int] = []
    opened: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            assert isinstance(data, HttpMessage) and data.uri == "/ws"
            opened.append(conn.id)
        elif event == MG_EV_CLOSE and conn.id in opened:
            closed.append(conn.id)
        echo(conn, event, data)

    server = serve(handler)
    ws = client(server)
    ws.close(status=websocket.STATUS_NORMAL, reason=b"bye")
    wait_for(lambda: closed == opened and opened)


def test_fragmented_message_is_reassembled(serve: Any) -> None:
    server = serve(echo)
    ws = client(server)
    try:
        ABNF = websocket.ABNF
        ws.send_frame(ABNF.create_frame("frag", ABNF.OPCODE_TEXT, fin=0))
        ws.send_frame(ABNF.create_frame("ment", ABNF.OPCODE_CONT, fin=0))
        ws.send_frame(ABNF.create_frame("ed!", ABNF.OPCODE_CONT, fin=1))
        assert ws.recv() == "fragmented!"
    finally:
        ws.close()


@pytest.mark.parametrize("size", [125, 126, 65535, 65536, 1 << 20])
def test_large_messages(serve: Any, size: int) -> None:
    server = serve(echo)
    ws = client(server)
    try:
        payload = bytes(i % 251 for i in range(size))
        ws.send_binary(payload)
        opcode, echoed = ws.recv_data()
        assert echoed == payload
    finally:
        ws.close()


def test_a_message_of_16_mib_the_default_limit_is_received_and_echoed(serve: Any) -> None:
    server = serve(echo)
    ws = client(server)
    try:
        payload = bytes(range(256)) * (DEFAULT_MAX_MESSAGE_SIZE // 256)
        ws.send_binary(payload)
        opcode, echoed = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY and echoed == payload
    finally:
        ws.close()


def limited_echo(limit: int, seen: List[Any]) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data, max_message_size=limit)
        elif event == MG_EV_WS_MSG:
            seen.append(len(data.data))
            conn.ws_send(data.data, data.op)

    return handler


def close_code(ws: websocket.WebSocket) -> int:
    """The code of the close frame the server sends next (after any echo)."""
    while True:
        opcode, payload = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(payload[:2], "big")


@pytest.mark.parametrize("frames, delivered", [
    ([(1001, True)], []),                        # one frame, one byte too many
    ([(600, False), (401, True)], []),           # fragments that add up to too many
    ([(1000, True), (1 << 40, True)], [1000]),   # a message at the limit, then a header
])                                               # announcing a terabyte
def test_a_message_over_max_message_size_fails_the_connection_with_1009(serve: Any, frames: List[Any],
                                                                         delivered: List[int]) -> None:
    seen: List[Any] = []
    server = serve(limited_echo(1000, seen))
    ws = client(server)
    try:
        ABNF = websocket.ABNF
        for number, (size, fin) in enumerate(frames):
            opcode = ABNF.OPCODE_CONT if number > 0 and not frames[number - 1][1] else ABNF.OPCODE_BINARY
            if size >= 1 << 40:  # only the header: the server must not wait for the rest
                ws.sock.sendall(b"\x82\xff" + size.to_bytes(8, "big") + b"mask")
            else:
                ws.send_frame(ABNF.create_frame(b"x" * size, opcode, fin=int(fin)))
        assert close_code(ws) == 1009
    finally:
        ws.close()
    assert seen == delivered


def test_our_client_fails_a_server_message_over_its_max_message_size(serve: Any) -> None:
    closes: List[bytes] = []

    def server_side(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_MSG:
            conn.ws_send(b"y" * 200, WEBSOCKET_OP_BINARY)
        elif event == MG_EV_WS_CTL and data.op == WEBSOCKET_OP_CLOSE:
            closes.append(data.data)

    received: List[bytes] = []

    def on_client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            conn.ws_send("send me something big")
        elif event == MG_EV_WS_MSG:
            received.append(data.data)

    server = serve(server_side)
    with Manager() as mgr:
        conn = mgr.ws_connect(f"ws://127.0.0.1:{server.port}/ws", on_client, max_message_size=100)
        poll_until(mgr, lambda: conn.is_closed)
    wait_for(lambda: closes)
    assert received == [] and closes[0][:2] == (1009).to_bytes(2, "big")


@pytest.mark.parametrize("value, error", [(0, ValueError), ((1 << 30) + 1, ValueError), (True, TypeError),
                                          (1.5, TypeError)])
def test_max_message_size_is_checked(serve: Any, value: Any, error: type) -> None:
    failures: List[BaseException] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            try:
                conn.ws_upgrade(data, max_message_size=value)
            except Exception as exc:
                failures.append(exc)
                conn.reply(400, "bad limit")

    server = serve(handler)
    with pytest.raises(websocket.WebSocketBadStatusException):
        client(server)
    assert [type(f) for f in failures] == [error] and "max_message_size" in str(failures[0])
    with Manager() as mgr, pytest.raises(error, match="max_message_size"):
        mgr.ws_connect(f"ws://127.0.0.1:{server.port}/ws", max_message_size=value)


def test_broadcast_to_many_clients(serve: Any) -> None:
    members: Dict[int, Any] = {}

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_OPEN:
            members[conn.id] = conn
        elif event == MG_EV_WS_MSG:
            for member in list(members.values()):
                member.ws_send(data.text)
        elif event == MG_EV_CLOSE:
            members.pop(conn.id, None)

    server = serve(handler)
    sockets = [client(server) for _ in range(20)]
    try:
        wait_for(lambda: len(members) == 20)
        sockets[0].send("to everyone")
        assert [ws.recv() for ws in sockets] == ["to everyone"] * 20
    finally:
        for ws in sockets:
            ws.close()
    wait_for(lambda: not members)


def test_our_client_against_our_server() -> None:
    received: List[Any] = []
    state: Dict[str, Any] = {}

    def on_client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_OPEN:
            state["status"] = data.status()
            conn.ws_send("text from client")
            conn.ws_send(b"\x00binary", WEBSOCKET_OP_BINARY)
        elif event == MG_EV_WS_MSG:
            received.append((data.op, data.data))
            if len(received) == 2:
                conn.close()

    with Manager() as mgr:
        port = mgr.listen("http://127.0.0.1:0", echo).local_addr.port
        conn = mgr.ws_connect(f"ws://127.0.0.1:{port}/ws", on_client, headers={"X-Client": "1"})
        poll_until(mgr, lambda: conn.is_closed)
        assert state["status"] == 101
        assert conn.is_websocket is True or conn.is_closed
    assert received == [(WEBSOCKET_OP_TEXT, b"text from client"), (WEBSOCKET_OP_BINARY, b"\x00binary")]


def test_ws_send_rejects_bad_opcodes_and_closed_connections_drop(serve: Any) -> None:
    errors: List[type] = []
    kept: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WS_MSG:
            for op in (3, 99, "text"):
                try:
                    conn.ws_send("x", op)
                except ValueError:
                    errors.append(ValueError)
            kept.append(conn)
            conn.ws_send("ok")
        else:
            echo(conn, event, data)

    server = serve(handler)
    ws = client(server)
    ws.send("go")
    assert ws.recv() == "ok"
    ws.close()
    wait_for(lambda: kept[0].is_closed)
    assert errors == [ValueError] * 3
    with pytest.raises(ConnectionClosedError):
        server.loop.call(lambda: kept[0].ws_send("late"))


def test_ws_send_takes_every_kind_of_bytes_and_refuses_the_rest(serve: Any) -> None:
    """bytes go to C as they are; str, bytearray and memoryview are converted first;
    anything else, and a bad opcode with any data, is refused with nothing sent."""
    refused: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event != MG_EV_WS_MSG:
            echo(conn, event, data)
            return
        for bad_data in (None, 5, ["x"], {"x": 1}):
            try:
                conn.ws_send(bad_data, WEBSOCKET_OP_BINARY)
            except TypeError:
                refused.append(type(bad_data))
        for bad_op in (99, "text", None, 2**70):
            try:
                conn.ws_send(b"never", bad_op)
            except ValueError:
                refused.append(bad_op)
        for good in ("t\u00e9xt", b"bytes", bytearray(b"bytearray"), memoryview(b"xmemoryview")[1:]):
            assert conn.ws_send(good, WEBSOCKET_OP_BINARY) is True

    server = serve(handler)
    ws = client(server)
    try:
        ws.send("go")
        received = [ws.recv_data() for _ in range(4)]
    finally:
        ws.close()
    assert received == [(websocket.ABNF.OPCODE_BINARY, payload)
                        for payload in ("t\u00e9xt".encode(), b"bytes", b"bytearray", b"memoryview")]
    assert refused == [type(None), int, list, dict, 99, "text", None, 2**70]


def test_many_clients_in_parallel_threads(serve: Any) -> None:
    server = serve(echo)
    failures: List[BaseException] = []

    def talk(n: int) -> None:
        try:
            ws = client(server)
            for i in range(20):
                ws.send(f"{n}:{i}")
                assert ws.recv() == f"{n}:{i}"
            ws.close()
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEFAULT_TIMEOUT * 3)
    assert not failures, failures
