"""Drop-in behaviour: what programs written for the Cython binding, or for
cymongoose 0.2.5, rely on (see docs/compatibility.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from typing import Any, List

import pytest

import pymongoose
from pymongoose import (
    ConnectError,
    ListenError,
    Manager,
    MongooseError,
    base64_decode,
    base64_encode,
    crc32,
    event_name,
    hmac_sha256,
    http_var,
    json_get_bool,
    json_get_num,
    match,
    md5,
    millis,
    random_bytes,
    random_str,
    sha1,
    sha256,
)


def test_the_cython_module_name_is_an_alias_of_the_api() -> None:
    from pymongoose import _mongoose
    from pymongoose._mongoose import MG_EV_HTTP_MSG
    from pymongoose._mongoose import Manager as AliasedManager

    assert MG_EV_HTTP_MSG == pymongoose.MG_EV_HTTP_MSG
    assert AliasedManager is Manager
    assert set(_mongoose.__all__) == set(pymongoose.__all__)


@pytest.mark.parametrize("url", ["invalid://address", "nonsense"])
def test_a_bad_listen_url_raises_what_either_binding_raised(url: str) -> None:
    with Manager() as mgr:
        for caught in (RuntimeError, ValueError, MongooseError, ListenError):
            with pytest.raises(caught, match="Failed to listen on"):
                mgr.listen(url)
        with pytest.raises(ConnectError) as info:
            mgr.connect(url)
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)


def test_json_getters_take_a_default() -> None:
    doc = '{"n": 2.5, "b": true, "s": "x"}'
    assert json_get_num(doc, "$.n", default=7) == 2.5
    assert json_get_num(doc, "$.missing", default=7) == 7
    assert json_get_num(doc, "$.s", default=7) == 7  # of another type
    assert json_get_num(doc, "$.missing") is None
    assert json_get_bool(doc, "$.b", default=False) is True
    assert json_get_bool(doc, "$.n", default=False) is False
    assert json_get_bool(doc, "$.missing") is None


def test_event_name_for_any_number() -> None:
    assert event_name(pymongoose.MG_EV_ERROR) == "MG_EV_ERROR"
    assert event_name(pymongoose.MG_EV_USER + 3) == "MG_EV_USER+3"
    assert event_name(-5) == "MG_EV_UNKNOWN(-5)"


@pytest.mark.parametrize("data", [b"", b"hi", b"\x00\xff" * 100, "héllo"])
def test_base64_round_trips_and_matches_the_standard_library(data: Any) -> None:
    raw = data.encode() if isinstance(data, str) else data
    encoded = base64_encode(data)
    assert encoded == base64.b64encode(raw).decode()
    assert base64_decode(encoded) == raw


def test_base64_decode_of_invalid_input_is_empty_as_cymongoose() -> None:
    assert base64_decode("!!!") == b""
    assert base64_decode("aGk") == b""  # unpadded


@pytest.mark.parametrize("data", [b"", b"abc", b"x" * 1000, "héllo"])
def test_digests_match_hashlib(data: Any) -> None:
    raw = data.encode() if isinstance(data, str) else data
    assert md5(data) == hashlib.md5(raw).digest()
    assert sha1(data) == hashlib.sha1(raw).digest()
    assert sha256(data) == hashlib.sha256(raw).digest()
    assert hmac_sha256(b"key", data) == hmac.new(b"key", raw, hashlib.sha256).digest()
    assert crc32(data) == zlib.crc32(raw)
    assert crc32(raw[3:], crc32(raw[:3])) == zlib.crc32(raw)


def test_helpers_refuse_bad_arguments() -> None:
    with pytest.raises(TypeError):
        md5(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        crc32(b"x", -1)
    with pytest.raises(ValueError):
        random_bytes(-1)
    with pytest.raises(TypeError):
        random_str(2.5)  # type: ignore[arg-type]


def test_randomness_and_clock() -> None:
    assert random_bytes(0) == b"" and len(random_bytes(33)) == 33
    assert random_bytes(16) != random_bytes(16)
    text = random_str(40)
    assert len(text) == 40 and text.isalnum() and text.isascii()
    assert random_str(0) == ""
    before = millis()
    assert isinstance(before, int) and millis() >= before


def test_http_var_returns_the_raw_value() -> None:
    assert http_var("a=1&b=%20x", "b") == "%20x"
    assert http_var(b"a=1", "a") == "1"
    assert http_var("a=1", "zz") is None


@pytest.mark.parametrize("s, pattern, expected", [
    ("foo/bar", "foo/*", (True, ["bar"])),
    ("a/b/c", "a/#", (True, ["b/c"])),
    ("abc", "a?c", (True, ["b"])),
    ("xyz", "*y*", (True, ["x", "z"])),
    ("a/b", "a", (False, [])),
    ("a/b", "*", (False, [])),  # * does not cross /
    ("", "", (True, [])),
])
def test_match_is_mongoose_glob_with_captures(s: str, pattern: str, expected: Any) -> None:
    assert match(s, pattern) == expected


def test_mqtt_property_types_are_mongooses() -> None:
    names = ["BYTE", "STRING", "STRING_PAIR", "BINARY_DATA", "VARIABLE_INT", "INT", "SHORT"]
    assert [getattr(pymongoose, f"MQTT_PROP_TYPE_{name}") for name in names] == list(range(7))


def test_wakeup_id_names_the_pipe_only_when_wakeup_is_enabled() -> None:
    with Manager(enable_wakeup=True) as mgr:
        assert mgr.wakeup_id > 0
        assert mgr.wakeup_id not in {conn.id for conn in mgr.connections}  # not a user connection
    with Manager() as mgr:
        assert mgr.wakeup_id == 0


def test_broadcast_by_iterating_the_managers_connections() -> None:
    """The Cython binding's broadcast example, as written: a timer sends to every
    WebSocket connection found in mgr.connections."""
    import threading

    import websocket  # websocket-client

    from support import DEFAULT_TIMEOUT, LoopThread

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == pymongoose.MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)

    mgr = Manager(handler)
    port = mgr.listen("http://127.0.0.1:0", http=True).local_addr.port

    def broadcast() -> None:
        for c in mgr.connections:
            if c.is_websocket:
                c.ws_send("tick")

    loop = LoopThread(mgr).start()
    clients = [websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=DEFAULT_TIMEOUT) for _ in range(3)]
    mgr.timer_add(20, broadcast, repeat=True)  # from this thread while the loop polls
    try:
        received: List[str] = []
        lock = threading.Lock()

        def read(ws: Any) -> None:
            message = ws.recv()
            with lock:
                received.append(message)

        readers = [threading.Thread(target=read, args=(ws,)) for ws in clients]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(DEFAULT_TIMEOUT)
        assert received == ["tick"] * 3
    finally:
        for ws in clients:
            ws.close()
        loop.stop()
        mgr.close()


@pytest.mark.parametrize("headers, message", [
    ({"X-Bad": "a\r\nInjected: 1"}, "Header value contains illegal character (CR, LF, or NUL): 'a\\r\\nInjected: 1'"),
    ({"X": "a\0b"}, "Header value contains illegal character (CR, LF, or NUL): 'a\\x00b'"),
    ({"X\r\nY": "v"}, "Header name contains illegal character (CR, LF, or NUL): 'X\\r\\nY'"),
    ({"Bad Name": "v"}, "invalid header name 'Bad Name'"),
])
def test_refused_headers_are_worded_as_cymongoose_words_them(serve: Any, headers: Any, message: str) -> None:
    import requests

    from support import DEFAULT_TIMEOUT

    errors: List[str] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == pymongoose.MG_EV_HTTP_MSG:
            try:
                conn.reply(200, "x", headers)
            except ValueError as exc:
                errors.append(str(exc))
                conn.reply(500, "refused")

    server = serve(handler)
    assert requests.get(server.url, timeout=DEFAULT_TIMEOUT).status_code == 500
    assert errors and errors[0].startswith(message)


# ---- the last mile: names, keywords, fallbacks (both Cython bindings) ----------------------

def test_async_manager_is_exported_at_the_top_level() -> None:
    from pymongoose import AsyncManager
    from pymongoose.aio import AsyncManager as FromAio

    assert AsyncManager is FromAio and "AsyncManager" in pymongoose.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pymongoose.Nope  # noqa: B018


def test_the_cython_bindings_keyword_names_are_accepted() -> None:
    doc = '{"n": 2.5, "b": true, "s": "x\\u00e9", "i": 7}'
    assert event_name(ev=pymongoose.MG_EV_HTTP_MSG) == event_name(event=pymongoose.MG_EV_HTTP_MSG) == "MG_EV_HTTP_MSG"
    assert pymongoose.json_get(data=doc, path="$.n") == pymongoose.json_get(json=doc, path="$.n") == "2.5"
    assert json_get_num(data=doc, path="$.n") == 2.5
    assert json_get_bool(data=doc, path="$.b") is True
    assert pymongoose.json_get_long(data=doc, path="$.i") == 7
    assert pymongoose.json_get_str(data=doc, path="$.s") == "x\u00e9"
    with pytest.raises(TypeError, match="'data' and 'json', which are the same argument"):
        pymongoose.json_get(doc, "$.n", data=doc)


def test_header_var_takes_the_cython_keyword_names(serve: Any) -> None:
    import requests

    from support import DEFAULT_TIMEOUT

    seen: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == pymongoose.MG_EV_HTTP_MSG:
            seen.append((data.header_var(header_name="Content-Type", var_name="charset"),
                         data.header_var("Content-Type", "charset"), data.header_var(header="Content-Type", var="x")))
            conn.reply(200, "ok")

    server = serve(handler)
    requests.get(server.url, headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=DEFAULT_TIMEOUT)
    assert seen == [("utf-8", "utf-8", None)]


def test_manager_takes_error_handler_third_as_cymongoose() -> None:
    errors: List[BaseException] = []
    with Manager(None, True, errors.append) as mgr:
        assert mgr.wakeup_id != 0  # enable_wakeup was the second
        mgr.call_soon_threadsafe(lambda: 1 / 0)
        mgr.poll(10)
    assert isinstance(errors[0], ZeroDivisionError)


def test_mqtt_properties_read_as_attribute_and_as_call() -> None:
    from pymongoose.messages import MqttMessage

    empty = MqttMessage.__new__(MqttMessage)  # never bound: empty, as the Cython bindings answer
    assert empty.properties == [] and empty.properties() == []


def test_views_never_bound_to_a_message_read_as_empty() -> None:
    from pymongoose import HttpMessage

    message = HttpMessage.__new__(HttpMessage)
    assert message.status() is None and message.method == "" and message.body_bytes == b""
    assert message.headers() == [] and message.header("X", "d") == "d" and not message


def test_rpc_answered_twice_says_already_sent() -> None:
    from pymongoose import RpcReq

    req = RpcReq('{"id": 1, "method": "m"}', "1")
    req.ok("1")
    with pytest.raises(RuntimeError, match="already sent"):
        req.err(1, "again")


def test_wsgi_build_environ_as_cymongoose_names_it(serve: Any) -> None:
    import requests

    from pymongoose.wsgi import _build_environ

    from support import DEFAULT_TIMEOUT

    seen: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == pymongoose.MG_EV_HTTP_MSG:
            seen.append(_build_environ(data, conn, "example.org", 8080))
            conn.reply(200, "ok")

    server = serve(handler)
    requests.post(server.url + "/a%20b?x=1", data=b"body", timeout=DEFAULT_TIMEOUT)
    environ = seen[0]
    assert (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]) == ("POST", "/a b", "x=1")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8080")
    assert environ["wsgi.input"].read() == b"body" and environ["CONTENT_LENGTH"] == "4"


def test_poll_from_a_second_thread_while_one_polls_is_refused() -> None:
    import threading

    with Manager() as mgr:
        polling = threading.Event()
        release = threading.Event()

        def handler() -> None:
            polling.set()
            release.wait(5)

        mgr.call_soon_threadsafe(handler)
        first = threading.Thread(target=mgr.poll, args=(1000,))
        first.start()
        assert polling.wait(5)
        try:
            with pytest.raises(RuntimeError, match="already in progress in another thread"):
                mgr.poll(0)
        finally:
            release.set()
            first.join(5)
        mgr.poll(0)  # once it returned, another thread may poll
