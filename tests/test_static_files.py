"""serve_dir / serve_file, including attempts to escape the root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from pymongoose import MG_EV_HTTP_MSG

from support import DEFAULT_TIMEOUT, raw_request


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "sub" / "data.json").write_text('{"a": 1}')
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (root / "404.html").write_text("custom not found")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def static_server(serve: Any, root: Path, **options: Any) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=str(root), **options)

    return serve(handler)


def test_serves_files_with_types_and_index(serve: Any, site: Path) -> None:
    server = static_server(serve, site)
    index = requests.get(server.url + "/", timeout=DEFAULT_TIMEOUT)
    assert index.status_code == 200 and index.text == "<h1>home</h1>"
    assert index.headers["Content-Type"].startswith("text/html")
    data = requests.get(server.url + "/sub/data.json", timeout=DEFAULT_TIMEOUT)
    assert data.json() == {"a": 1}
    assert data.headers["Content-Type"].startswith("application/json")
    blob = requests.get(server.url + "/blob.bin", timeout=DEFAULT_TIMEOUT)
    assert blob.content == (site / "blob.bin").read_bytes()


def test_missing_file_is_404_and_page404_is_used(serve: Any, site: Path) -> None:
    plain = static_server(serve, site)
    assert requests.get(plain.url + "/nope.txt", timeout=DEFAULT_TIMEOUT).status_code == 404
    custom = static_server(serve, site, page404=str(site / "404.html"))
    r = requests.get(custom.url + "/nope.txt", timeout=DEFAULT_TIMEOUT)
    assert (r.status_code, r.text) == (404, "custom not found")  # upstream Mongoose: 200
    # Neither a range nor a matching ETag turns it into a 206 or a 304.
    ranged = requests.get(custom.url + "/nope.txt", headers={"Range": "bytes=0-3"}, timeout=DEFAULT_TIMEOUT)
    assert (ranged.status_code, ranged.text) == (404, "custom not found")
    etag = r.headers["Etag"]
    again = requests.get(custom.url + "/nope.txt", headers={"If-None-Match": etag}, timeout=DEFAULT_TIMEOUT)
    assert again.status_code == 404


def test_extra_headers_and_mime_types(serve: Any, site: Path) -> None:
    (site / "thing.custom").write_text("x")
    server = static_server(serve, site, extra_headers="X-Served-By: pymongoose\r\n",
                           mime_types="custom=application/x-custom")
    r = requests.get(server.url + "/thing.custom", timeout=DEFAULT_TIMEOUT)
    assert r.headers["X-Served-By"] == "pymongoose"
    assert r.headers["Content-Type"] == "application/x-custom"


@pytest.mark.parametrize("path", [
    b"/../secret.txt", b"/sub/../../secret.txt", b"/%2e%2e/secret.txt", b"/%2e%2e%2fsecret.txt",
    b"/sub/..%2f..%2fsecret.txt", b"/..\\secret.txt", b"//../secret.txt", b"/./../secret.txt",
])
def test_path_traversal_is_refused(serve: Any, site: Path, path: bytes) -> None:
    server = static_server(serve, site)
    raw = raw_request(server.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"TOP SECRET" not in raw
    assert raw.startswith(b"HTTP/1.1 ")
    assert requests.get(server.url + "/", timeout=DEFAULT_TIMEOUT).status_code == 200


def test_serve_file(serve: Any, site: Path) -> None:
    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            conn.serve_file(data, str(site / "sub" / "data.json"), extra_headers="X-One: 1\r\n")

    server = serve(handler)
    r = requests.get(server.url + "/whatever", timeout=DEFAULT_TIMEOUT)
    assert r.json() == {"a": 1} and r.headers["X-One"] == "1"


def test_bad_serve_arguments_raise(serve: Any, site: Path) -> None:
    errors = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event != MG_EV_HTTP_MSG:
            return
        for call in (lambda: conn.serve_dir("not a message", str(site)),
                     lambda: conn.serve_dir(data, str(site), extra_headers="X-A: 1"),
                     lambda: conn.serve_dir(data, str(site), extra_headers="X-A: 1\r\nEvil\r\n"),
                     lambda: conn.serve_dir(data, str(site) + "\x00")):
            try:
                call()
            except (TypeError, ValueError) as exc:
                errors.append(type(exc))
        conn.reply(200, "checked")

    server = serve(handler)
    assert requests.get(server.url, timeout=DEFAULT_TIMEOUT).text == "checked"
    assert errors == [TypeError, ValueError, ValueError, ValueError]
