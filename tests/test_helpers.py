"""JSON, URL and multipart helpers."""

from __future__ import annotations

from typing import Any, List

import pytest
import requests

from pymongoose import (
    MG_EV_HTTP_MSG,
    http_parse_multipart,
    iter_multipart,
    json_get,
    json_get_bool,
    json_get_long,
    json_get_num,
    json_get_str,
    url_decode,
    url_encode,
    url_host,
    url_is_ssl,
    url_pass,
    url_port,
    url_uri,
    url_user,
)

from support import DEFAULT_TIMEOUT

DOC = '{"name": "caf\\u00e9 \\"q\\" \\\\ \\n", "n": 42, "f": -1.5e3, "t": true, "f2": false, "z": null,' \
      ' "list": [1, {"deep": "x"}], "emoji": "\\ud83d\\ude00", "obj": {"k": "v"}}'


def test_json_get_returns_raw_tokens() -> None:
    assert json_get(DOC, "$.n") == "42"
    assert json_get(DOC, "$.list") == '[1, {"deep": "x"}]'
    assert json_get(DOC, "$.list[1].deep") == '"x"'
    assert json_get(DOC, "$") == DOC
    assert json_get(DOC.encode(), "$.obj") == '{"k": "v"}'


def test_json_typed_getters() -> None:
    assert json_get_num(DOC, "$.n") == 42.0
    assert json_get_num(DOC, "$.f") == -1500.0
    assert json_get_bool(DOC, "$.t") is True
    assert json_get_bool(DOC, "$.f2") is False
    assert json_get_long(DOC, "$.n") == 42
    assert json_get_long(DOC, "$.f", 7) == -1500
    assert json_get_str(DOC, "$.list[1].deep") == "x"


def test_json_string_escapes_are_decoded() -> None:
    assert json_get_str(DOC, "$.name") == 'café "q" \\ \n'
    assert json_get_str(DOC, "$.emoji") == "\U0001F600"


@pytest.mark.parametrize("path", ["$.missing", "$.list[5]", "$.n.x", "$.obj.k.z"])
def test_missing_paths(path: str) -> None:
    assert json_get(DOC, path) is None
    assert json_get_num(DOC, path) is None
    assert json_get_bool(DOC, path) is None
    assert json_get_str(DOC, path) is None
    assert json_get_long(DOC, path, -9) == -9


def test_wrong_types_at_a_path() -> None:
    assert json_get_num(DOC, "$.name") is None
    assert json_get_bool(DOC, "$.n") is None
    assert json_get_str(DOC, "$.n") is None
    assert json_get_str(DOC, "$.z") is None
    assert json_get_long(DOC, "$.t", 3) == 3


# Mongoose's parser stops at the value it looks for, so a document truncated after
# it (e.g. '{"a": 1') still yields that value; these fail before reaching it.
@pytest.mark.parametrize("bad", ["", "{", '{"a": }', "not json", '{"a" 1}', "\x00"])
def test_invalid_documents_give_none(bad: str) -> None:
    assert json_get(bad, "$.a") is None
    assert json_get_str(bad, "$.a") is None


def test_json_argument_errors() -> None:
    with pytest.raises(ValueError):
        json_get(DOC, "name")  # paths start with $
    with pytest.raises(ValueError):
        json_get(DOC, "$.a\x00b")
    with pytest.raises(TypeError):
        json_get(42, "$")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        json_get_long(DOC, "$.n", "x")  # type: ignore[arg-type]


def test_url_encode_and_decode_round_trip() -> None:
    text = "a b&c=d/é?#%"
    encoded = url_encode(text)
    assert " " not in encoded and "&" not in encoded and "é" not in encoded
    assert url_decode(encoded) == text
    assert url_encode(b"\x00\xff") == "%00%ff"
    assert url_decode("a+b", form=True) == "a b"
    assert url_decode("a+b") == "a+b"
    with pytest.raises(ValueError):
        url_decode("%zz")
    with pytest.raises(TypeError):
        url_encode(5)  # type: ignore[arg-type]


def test_url_parts() -> None:
    url = "mqtts://user:secret@broker.example:8883/path?q=1"
    assert url_host(url) == "broker.example"
    assert url_port(url) == 8883
    assert url_user(url) == "user"
    assert url_pass(url) == "secret"
    assert url_uri(url) == "/path?q=1"
    assert url_is_ssl(url) is True
    assert url_is_ssl("http://x") is False
    assert url_port("http://x") == 80 and url_port("https://x") == 443
    assert url_host("http://[::1]:80/") == "::1"


MULTIPART = (
    b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n"
    b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--\r\n"
    b"--XyZ--\r\n"
)


def test_parse_multipart_offsets() -> None:
    offset, first = http_parse_multipart(MULTIPART)
    assert first == {"name": "title", "filename": "", "body": b"hello"}
    offset, second = http_parse_multipart(MULTIPART, offset)
    assert second == {"name": "file", "filename": "a.bin", "body": b"\x00\x01binary\r\n--"}
    assert http_parse_multipart(MULTIPART, offset) == (0, None)
    assert [p["name"] for p in iter_multipart(MULTIPART)] == ["title", "file"]
    assert http_parse_multipart(b"garbage") == (0, None)
    with pytest.raises(ValueError):
        http_parse_multipart(MULTIPART, len(MULTIPART) + 1)
    with pytest.raises(ValueError):
        http_parse_multipart(MULTIPART, -1)


def test_multipart_upload_from_requests(serve: Any) -> None:
    uploads: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            uploads.extend(iter_multipart(data.body_bytes))
            conn.reply(200, "stored")

    server = serve(handler)
    content = bytes(range(256)) * 1000
    r = requests.post(f"{server.url}/upload", files={"file": ("photo.jpg", content)},
                      data={"caption": "a photo"}, timeout=DEFAULT_TIMEOUT)
    assert r.text == "stored"
    by_name = {part["name"]: part for part in uploads}
    assert by_name["caption"]["body"] == b"a photo"
    assert by_name["file"]["filename"] == "photo.jpg"
    assert by_name["file"]["body"] == content


def test_form_encoded_body(serve: Any) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, f"{data.form_var('a')}|{data.form_var('b')}|{data.form_var('zz')}")

    server = serve(handler)
    r = requests.post(server.url, data={"a": "x y", "b": "é&"}, timeout=DEFAULT_TIMEOUT)
    assert r.text == "x y|é&|None"
