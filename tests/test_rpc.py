"""JSON-RPC 2.0 (pymongoose.Rpc, cymongoose's names), over HTTP with requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pymongoose import MG_EV_HTTP_MSG, Rpc, RpcReq, json_get, json_get_num

from support import DEFAULT_TIMEOUT


@pytest.fixture
def rpc() -> Rpc:
    rpc = Rpc()

    def add(req: RpcReq) -> None:
        a, b = json_get_num(req.frame, "$.params[0]"), json_get_num(req.frame, "$.params[1]")
        if a is None or b is None:
            req.err(-32602, "add needs two numbers")
        else:
            req.ok(json.dumps(a + b))

    def boom(req: RpcReq) -> None:
        raise ValueError("it broke")

    rpc.add("add", add)
    rpc.add("echo", lambda req: req.ok(json_get(req.frame, "$.params") or "null"))
    rpc.add("boom", boom)
    rpc.add("silent", lambda req: None)
    return rpc


def call(rpc: Rpc, frame: Any) -> Any:
    answer = rpc.process(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))
    return json.loads(answer) if answer else None


def test_a_call_is_answered_with_its_id_and_version(rpc: Rpc) -> None:
    assert call(rpc, {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [2, 3]}) == \
        {"jsonrpc": "2.0", "id": 1, "result": 5.0}
    assert call(rpc, {"jsonrpc": "2.0", "id": "abc", "method": "echo", "params": {"k": [1, "x"]}}) == \
        {"jsonrpc": "2.0", "id": "abc", "result": {"k": [1, "x"]}}
    assert call(rpc, b'{"jsonrpc": "2.0", "id": 2, "method": "add", "params": [1, 1]}')["result"] == 2


@pytest.mark.parametrize("frame, code, has_id", [
    ("not json", -32700, False),
    ('{"jsonrpc": "2.0", "method": "add", "params": [1, 2', -32700, False),
    ("[]", -32600, False),
    ("42", -32600, False),
    ('{"jsonrpc": "2.0", "id": 3}', -32600, True),
    ('{"jsonrpc": "2.0", "id": 3, "method": 5}', -32600, True),
    ('{"jsonrpc": "1.0", "id": 3, "method": "add"}', -32600, True),
    ('{"jsonrpc": "2.0", "id": [1], "method": "add"}', -32600, False),
    ('{"jsonrpc": "2.0", "id": 3, "method": "nope"}', -32601, True),
    ('{"jsonrpc": "2.0", "id": 3, "method": "add", "params": 7}', -32602, True),
    ('{"jsonrpc": "2.0", "id": 3, "method": "add", "params": ["x"]}', -32602, True),
    ('{"jsonrpc": "2.0", "id": 3, "method": "boom"}', -32603, True),
    ('{"jsonrpc": "2.0", "id": 3, "method": "silent"}', -32603, True),
])
def test_errors_carry_the_json_rpc_codes(rpc: Rpc, frame: str, code: int, has_id: bool, caplog: Any) -> None:
    answer = call(rpc, frame)
    assert answer["jsonrpc"] == "2.0"
    assert answer["error"]["code"] == code and answer["error"]["message"]
    assert answer["id"] == (3 if has_id else None)
    if code == -32603 and "boom" in frame:
        assert answer["error"]["message"] == "it broke"
        assert "it broke" in caplog.text  # the traceback is logged


def test_notifications_get_no_reply_even_on_error(rpc: Rpc) -> None:
    seen = []
    rpc.add("note", lambda req: seen.append(req.frame))
    assert rpc.process('{"jsonrpc": "2.0", "method": "note", "params": [1]}') == ""
    assert rpc.process('{"jsonrpc": "2.0", "method": "nope"}') == ""
    assert rpc.process('{"jsonrpc": "2.0", "method": "boom"}') == ""
    assert len(seen) == 1


def test_batches_are_answered_in_order_without_the_notifications(rpc: Rpc) -> None:
    answer = call(rpc, [
        {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]},
        {"jsonrpc": "2.0", "method": "add", "params": [5, 5]},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        1,
        {"jsonrpc": "2.0", "id": 3, "method": "echo", "params": ["x"]},
    ])
    assert answer == [
        {"jsonrpc": "2.0", "id": 1, "result": 3.0},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32601, "message": "Method not found: nope"}},
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request: not an object"}},
        {"jsonrpc": "2.0", "id": 3, "result": ["x"]},
    ]
    assert rpc.process('[{"jsonrpc": "2.0", "method": "add", "params": [1, 2]}]') == ""


def test_handlers_answer_once_with_valid_json(rpc: Rpc) -> None:
    outcomes = []

    def twice(req: RpcReq) -> None:
        req.ok("1")
        try:
            req.ok("2")
        except RuntimeError as exc:
            outcomes.append(str(exc))
        for bad in ("{not json", 5):
            try:
                req.ok(bad)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                outcomes.append(type(exc).__name__)

    rpc.add("twice", twice)
    assert call(rpc, {"jsonrpc": "2.0", "id": 9, "method": "twice"})["result"] == 1
    assert outcomes == ["response already sent: this request has already been answered", "ValueError", "TypeError"]


def test_methods_and_bad_registrations(rpc: Rpc) -> None:
    assert rpc.methods == ["silent", "boom", "echo", "add"]
    with pytest.raises(ValueError):
        rpc.add("", lambda req: None)
    with pytest.raises(TypeError):
        rpc.add("x", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        rpc.process(42)  # type: ignore[arg-type]


def test_over_http_with_requests(serve: Any, rpc: Rpc) -> None:
    import requests

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            answer = rpc.process(data.body_bytes)
            if answer:
                conn.reply(200, answer, {"Content-Type": "application/json"})
            else:
                conn.reply(204, "")

    server = serve(handler)
    reply = requests.post(server.url, json={"jsonrpc": "2.0", "id": 5, "method": "add", "params": [20, 22]},
                          timeout=DEFAULT_TIMEOUT)
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"jsonrpc": "2.0", "id": 5, "result": 42.0}
    note = requests.post(server.url, json={"jsonrpc": "2.0", "method": "add", "params": [1, 1]},
                         timeout=DEFAULT_TIMEOUT)
    assert note.status_code == 204
