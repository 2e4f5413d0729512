"""Every example, run as a program and exercised by a real client."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from support import DEFAULT_TIMEOUT, REPO, Program, run_python

EXAMPLES = REPO / "examples"
LISTEN = ["--listen", "http://127.0.0.1:0"]


def example(name: str, *args: str) -> Program:
    return Program(str(EXAMPLES / name), *args)


def assert_clean_exit(program: Program) -> None:
    status, output = program.stop()
    assert status == 0, output
    assert "Traceback" not in output, output


def test_http_server() -> None:
    with example("http_server.py", *LISTEN) as server:
        assert requests.get(f"{server.url}/hello?name=tester", timeout=DEFAULT_TIMEOUT).text == "Hello, tester!\n"
        assert "pymongoose" in requests.get(server.url, timeout=DEFAULT_TIMEOUT).text
        assert requests.get(f"{server.url}/nope", timeout=DEFAULT_TIMEOUT).status_code == 404
        assert float(requests.get(f"{server.url}/time", timeout=DEFAULT_TIMEOUT).text) > 0
        assert_clean_exit(server)


def test_static_files(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_text("static content")
    with example("static_files.py", *LISTEN, "--root", str(tmp_path)) as server:
        r = requests.get(f"{server.url}/page.txt", timeout=DEFAULT_TIMEOUT)
        assert r.text == "static content" and r.headers["Cache-Control"] == "max-age=60"
        assert requests.get(f"{server.url}/../etc/passwd", timeout=DEFAULT_TIMEOUT).status_code == 404
        assert_clean_exit(server)


def test_static_files_default_root() -> None:
    with example("static_files.py", *LISTEN) as server:
        assert "Served by pymongoose" in requests.get(server.url, timeout=DEFAULT_TIMEOUT).text
        assert_clean_exit(server)


def test_rest_server() -> None:
    with example("rest_server.py", *LISTEN) as server:
        api = f"{server.url}/api/items"
        created = requests.post(api, data=json.dumps({"name": "apple", "price": 1.5}), timeout=DEFAULT_TIMEOUT)
        assert created.status_code == 201
        item = created.json()
        assert item == {"id": 1, "name": "apple", "price": 1.5}
        assert requests.get(api, timeout=DEFAULT_TIMEOUT).json() == [item]
        updated = requests.put(f"{api}/1", data='{"price": 2}', timeout=DEFAULT_TIMEOUT).json()
        assert updated["price"] == 2
        assert requests.post(api, data="{}", timeout=DEFAULT_TIMEOUT).status_code == 400
        assert requests.delete(f"{api}/1", timeout=DEFAULT_TIMEOUT).status_code == 200
        assert requests.get(f"{api}/1", timeout=DEFAULT_TIMEOUT).status_code == 404
        assert requests.patch(api, timeout=DEFAULT_TIMEOUT).status_code == 405
        assert_clean_exit(server)


def test_http_client_against_the_example_server() -> None:
    with example("http_server.py", *LISTEN) as server:
        client = run_python(str(EXAMPLES / "http_client.py"), f"{server.url}/hello?name=client")
        out, _ = client.communicate(timeout=DEFAULT_TIMEOUT * 2)
        assert client.returncode == 0, out
        assert out == "200\nHello, client!\n"
        assert_clean_exit(server)


def test_http_client_reports_a_refused_connection() -> None:
    from support import free_port

    client = run_python(str(EXAMPLES / "http_client.py"), f"http://127.0.0.1:{free_port()}/")
    out, _ = client.communicate(timeout=DEFAULT_TIMEOUT * 2)
    assert client.returncode == 1 and out.startswith("error:"), out


def test_streaming_chunked_and_sse() -> None:
    with example("streaming.py", *LISTEN, "--interval-ms", "10") as server:
        chunked = requests.get(f"{server.url}/chunked", stream=True, timeout=DEFAULT_TIMEOUT)
        assert chunked.headers["Transfer-Encoding"] == "chunked"
        assert chunked.raw.read().decode() == "".join(f"chunk {i}\n" for i in range(10))
        events = requests.get(f"{server.url}/events", stream=True, timeout=DEFAULT_TIMEOUT)
        assert events.headers["Content-Type"] == "text/event-stream"
        assert events.raw.read().decode() == "".join(f"event: tick\ndata: {i}\n\n" for i in range(10))
        assert_clean_exit(server)


def test_file_upload(tmp_path: Path) -> None:
    dest = tmp_path / "uploads"
    with example("file_upload.py", *LISTEN, "--dest", str(dest)) as server:
        assert "<form" in requests.get(server.url, timeout=DEFAULT_TIMEOUT).text
        content = bytes(range(256)) * 500
        r = requests.post(f"{server.url}/upload", files={"file": ("../../evil.bin", content)},
                          timeout=DEFAULT_TIMEOUT)
        assert r.json() == {"saved": {"evil.bin": len(content)}}
        assert (dest / "evil.bin").read_bytes() == content
        assert not (tmp_path / "evil.bin").exists()
        assert_clean_exit(server)


