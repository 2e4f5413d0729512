"""Command-line flags of the app servers that shape what the application sees:
--factory, --env-file, --root-path (WSGI), --limit-concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from support import DEFAULT_TIMEOUT, WS_ECHO_APP, Program, open_websocket, raw_request, refused, wait_for

WSGI_APP = '''
import os, time
def make():
    def app(environ, start_response):
        if environ["PATH_INFO"].endswith("/slow"):
            time.sleep(1.0)
        body = " ".join([environ["SCRIPT_NAME"] or "-", environ["PATH_INFO"], os.environ.get("GREETING", "-"),
                         os.environ.get("KEPT", "-")]).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return app
app = make()
'''

ASGI_APP = '''
import asyncio
async def app(scope, receive, send):
    assert scope["type"] == "http"
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
'''


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    started: List[Program] = []

    def run(kind: str, *flags: str) -> Program:
        (tmp_path / "app.py").write_text(WSGI_APP if kind == "wsgi" else ASGI_APP)
        program = Program("-m", "pymongoose", f"--{kind}", flags[0], "--listen", "http://127.0.0.1:0",
                          *(["--lifespan", "off"] if kind == "asgi" else []), *flags[1:], cwd=tmp_path)
        started.append(program)
        return program

    yield run
    for program in started:
        program.__exit__()


def get(port: int, path: str = "/") -> bytes:
    return raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())


def test_factory_calls_the_named_function_for_the_application(start: Any) -> None:
    server = start("wsgi", "app:make", "--factory")
    assert get(server.port, "/x").endswith(b"\r\n\r\n- /x - -")


def test_without_factory_a_function_is_taken_as_the_application(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def make():\n    return 42\n")
    assert "app:make() returned int, not an application" in refused("--wsgi", "app:make", "--factory", cwd=tmp_path)


def test_env_file_sets_variables_before_the_application_loads(start: Any, tmp_path: Path,
                                                               monkeypatch: Any) -> None:
    (tmp_path / "settings.env").write_text('# the settings\nexport GREETING="hello\\nworld"\n'
                                           "KEPT=from the file  # a comment\n\n")
    monkeypatch.setenv("KEPT", "from-the-environment")  # already set: it wins
    server = start("wsgi", "app:app", "--env-file", str(tmp_path / "settings.env"))
    assert get(server.port).endswith(b"\r\n\r\n- / hello\nworld from-the-environment")


@pytest.mark.parametrize("content, words", [
    ("NOT AN ASSIGNMENT\n", "line 1: not NAME=value"),
    (None, "cannot read"),
])
def test_a_bad_env_file_is_a_usage_error(tmp_path: Path, content: Any, words: str) -> None:
    path = tmp_path / "bad.env"
    if content is not None:
        path.write_text(content)
    assert words in refused("--wsgi", "app:app", "--env-file", str(path), cwd=tmp_path)


@pytest.mark.parametrize("path, expected", [
    ("/app/users", b"/app /users"),
    ("/app", b"/app "),
    ("/application", b"/app /application"),  # not under the prefix: left whole
])
def test_root_path_becomes_script_name_for_wsgi(start: Any, path: str, expected: bytes) -> None:
    server = start("wsgi", "app:app", "--root-path", "/app")
    assert get(server.port, path).rsplit(b"\r\n\r\n", 1)[1].startswith(expected)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_limit_concurrency_answers_503_beyond_and_serves_again_after(start: Any, kind: str) -> None:
    server = start(kind, "app:app", "--limit-concurrency", "2", "--threads", "4")
    slow: List[bytes] = []
    threads = [threading.Thread(target=lambda: slow.append(get(server.port, "/slow"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.4)  # both are being handled
    refused = get(server.port)
    assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"retry-after: 1\r\n" in refused.lower() and b"connection: close\r\n" in refused.lower()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT)
    assert [response[:15] for response in slow] == [b"HTTP/1.1 200 OK"] * 2
    wait_for(lambda: get(server.port).startswith(b"HTTP/1.1 200 OK"), what="the server to serve again")


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_access_log_format_to_a_file(start: Any, tmp_path: Path, kind: str) -> None:
    log = tmp_path / "access.log"
    server = start(kind, "app:app", "--access-log-format", "{client_host} {method} {target} {status} {bytes} {pid}",
                   "--access-log-file", str(log))
    get(server.port, "/x?y=1")
    status, out = server.stop()
    assert status == 0
    line = log.read_text().splitlines()[0].split()
    assert line[:4] == ["127.0.0.1", "GET", "/x?y=1", "200"] and int(line[4]) > 0 and int(line[5]) > 0
    assert "GET /x?y=1" not in out  # in the file instead of the log



@pytest.fixture
def websocket_server(tmp_path: Path) -> Iterator[Any]:
    started: List[Program] = []

    def run(*flags: str) -> Program:
        (tmp_path / "app.py").write_text(WS_ECHO_APP)
        program = Program("-m", "pymongoose", "--asgi", "app:app", "--listen", "http://127.0.0.1:0", "--lifespan",
                          "off", *flags, cwd=tmp_path)
        started.append(program)
        return program

    yield run
    for program in started:
        program.__exit__()


def frames_until(client: Any, wanted: int, seconds: float) -> List[Any]:
    """The frames the server sends until one with opcode ``wanted`` (or the time is up)."""
    from support import server_frames

    data, deadline = b"", time.monotonic() + seconds
    client.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            piece = client.recv(65536)
        except OSError:
            piece = None
        if piece == b"":
            break
        data += piece or b""
        frames = server_frames(data) if data else []
        if any(first & 15 == wanted for first, _ in frames):
            return frames
    return server_frames(data) if data else []


def test_ws_ping_interval_pings_and_closes_1011_when_no_pong_comes(websocket_server: Any) -> None:
    server = websocket_server("--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    client = open_websocket(server.port)
    frames = frames_until(client, 0x9, DEFAULT_TIMEOUT)
    assert any(first == 0x89 for first, _ in frames), frames  # a ping
    frames = frames_until(client, 0x8, DEFAULT_TIMEOUT)  # never answered: a close
    closes = [payload for first, payload in frames if first == 0x88]
    assert closes and int.from_bytes(closes[0][:2], "big") == 1011, frames
    client.close()


def test_a_client_that_answers_pings_stays_connected(websocket_server: Any) -> None:
    from support import ws_frame

    server = websocket_server("--ws-ping-interval", "0.1", "--ws-ping-timeout", "0.3")
    client = open_websocket(server.port)
    deadline = time.monotonic() + 1.5
    pings = 0
    while time.monotonic() < deadline:
        for first, payload in frames_until(client, 0x9, 0.3):
            if first == 0x89:
                pings += 1
                client.sendall(ws_frame(0xA, payload))  # the pong
            assert first != 0x88, "closed although every ping was answered"
    assert pings >= 3
    client.sendall(ws_frame(0x2, b"still here"))
    assert (0x82, b"still here") in frames_until(client, 0x2, DEFAULT_TIMEOUT)
    client.close()


def test_ws_max_size_closes_1009_beyond(websocket_server: Any) -> None:
    from support import ws_frame

    server = websocket_server("--ws-max-size", "10")
    client = open_websocket(server.port)
    client.sendall(ws_frame(0x2, b"0123456789"))
    assert (0x82, b"0123456789") in frames_until(client, 0x2, DEFAULT_TIMEOUT)
    client.sendall(ws_frame(0x2, b"0123456789A"))
    closes = [payload for first, payload in frames_until(client, 0x8, DEFAULT_TIMEOUT) if first == 0x88]
    assert closes and int.from_bytes(closes[0][:2], "big") == 1009
    client.close()


@pytest.mark.parametrize("args, words", [
    (["--wsgi", "app:app", "--uds", "/tmp/x.sock", "--fd", "3"], "--uds and --fd: give one"),
    (["--wsgi", "app:app", "--backlog", "0"], "--backlog must be from 1 to 65535"),
    (["--wsgi", "app:app", "--workers", "0"], "--workers must be at least 1"),
    (["--wsgi", "app:app", "--max-requests", "-1"], "--max-requests and --max-requests-jitter must be at least 0"),
    (["--wsgi", "app:app", "--max-requests-jitter", "5"], "--max-requests-jitter needs --max-requests"),
    (["--wsgi", "app:app", "--limit-concurrency", "0"], "--limit-concurrency must be at least 1"),
    (["--wsgi", "app:app", "--forwarded-allow-ips", "10.0.0.0/8,proxy"],
     "--forwarded-allow-ips: 'proxy' is not an IP address"),
    (["--wsgi", "app:app", "--access-log-format", "{host}"],
     "--access-log-format: access log format: unknown field 'host'"),
    (["--wsgi", "app:app", "--access-log-format", "{status:q}"],
     "--access-log-format: access log format: Unknown format code"),
    (["--wsgi", "app:app", "--access-log-file", "/nonexistent/folder/access.log"], "--access-log-file: cannot open"),
    (["--wsgi", "app:app", "--ws-ping-interval", "5"], "--ws-ping-interval: WebSockets are served by --asgi only"),
    (["--asgi", "app:app", "--ws-ping-timeout", "5"], "--ws-ping-timeout needs --ws-ping-interval"),
    (["--asgi", "app:app", "--ws-max-size", "0"], "--ws-max-size must be above 0"),
])
def test_bad_flags_are_usage_errors(args: List[str], words: str) -> None:
    assert words in refused(*args)
