"""pymongoose.wsgi: PEP 3333 with real applications (Flask 3, wsgiref's validator)
and real clients (requests, raw sockets); the command line with worker processes."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
import wsgiref.validate
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
import requests

from pymongoose.wsgi import FileWrapper, WSGIServer

from support import DEFAULT_TIMEOUT, Workers, raw_request, read_until_closed, wait_for


class Running:
    def __init__(self, server: WSGIServer, url: str) -> None:
        self.server, self.url = server, url


@pytest.fixture
def wsgi() -> Iterator[Callable[..., Running]]:
    """``wsgi(app, **options)`` serves app in the background; stopped afterwards."""
    started: List[Any] = []

    def start(app: Any, **options: Any) -> Running:
        server = WSGIServer(app, **options)
        port = server.listen("http://127.0.0.1:0").local_addr.port
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                server.manager.poll(20)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        started.append((server, stop, thread))
        return Running(server, f"http://127.0.0.1:{port}")

    yield start
    for server, stop, thread in started:
        stop.set()
        thread.join()
        server.close()


# ---- a Flask 3 application --------------------------------------------------------------

def flask_app() -> Any:
    flask = pytest.importorskip("flask")
    app = flask.Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name: str) -> Any:
        return {"hello": name, "query": flask.request.args.get("q")}

    @app.post("/form")
    def form() -> Any:
        upload = flask.request.files["file"]
        data = upload.read()
        return {"field": flask.request.form["field"], "filename": upload.filename, "size": len(data),
                "sum": sum(data[::4096]) % 65536}

    @app.post("/json")
    def echo_json() -> Any:
        return flask.jsonify(received=flask.request.get_json())

    @app.get("/stream")
    def stream() -> Any:
        def generate() -> Iterator[str]:
            for i in range(5):
                yield f"line {i}\n"
        return flask.Response(generate(), mimetype="text/plain")

    @app.get("/missing")
    def missing() -> Any:
        flask.abort(404)

    @app.get("/boom")
    def boom() -> Any:
        raise ValueError("boom")

    @app.errorhandler(ValueError)
    def on_value_error(error: ValueError) -> Any:
        return {"error": str(error)}, 418

    @app.get("/cookies")
    def cookies() -> Any:
        response = flask.make_response("two cookies")
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    return app


def test_flask_routes_json_errors_and_cookies(wsgi: Any) -> None:
    server = wsgi(flask_app())
    r = requests.get(server.url + "/hello/wörld?q=1", timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200 and r.json() == {"hello": "wörld", "query": "1"}
    r = requests.post(server.url + "/json", json={"a": [1, 2]}, timeout=DEFAULT_TIMEOUT)
    assert r.json() == {"received": {"a": [1, 2]}}
    assert requests.get(server.url + "/missing", timeout=DEFAULT_TIMEOUT).status_code == 404
    r = requests.get(server.url + "/boom", timeout=DEFAULT_TIMEOUT)
    assert (r.status_code, r.json()) == (418, {"error": "boom"})
    r = requests.get(server.url + "/cookies", timeout=DEFAULT_TIMEOUT)
    assert r.cookies.get("a") == "1" and r.cookies.get("b") == "2"


def test_flask_form_with_a_20_mib_file_upload(wsgi: Any) -> None:
    server = wsgi(flask_app())
    data = os.urandom(20 << 20)
    r = requests.post(server.url + "/form", data={"field": "value"},
                      files={"file": ("big.bin", data)}, timeout=DEFAULT_TIMEOUT * 4)
    assert r.status_code == 200
    assert r.json() == {"field": "value", "filename": "big.bin", "size": len(data),
                        "sum": sum(data[::4096]) % 65536}


def test_a_body_of_its_declared_length_leaves_whole_with_that_length(wsgi: Any, caplog: Any) -> None:
    # Flask's responses are iterables, not lists: a first piece as long as the
    # application's Content-Length is the whole body, sent framed by that length.
    r = requests.get(wsgi(flask_app()).url + "/hello/x", timeout=DEFAULT_TIMEOUT)
    assert r.headers["Content-Length"] == str(len(r.content)) and "Transfer-Encoding" not in r.headers
    assert r.json() == {"hello": "x", "query": None}

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        yield b"hello"
        if environ["PATH_INFO"] == "/more":
            yield b"!!! too much"

    port = int(wsgi(app).url.rsplit(":", 1)[1])
    for path in ("/", "/more"):
        answers = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
                                    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        # Two responses of exactly 5 bytes each on one connection: nothing leaked past.
        assert answers.count(b"content-length: 5\r\n") == 2 and answers.endswith(b"\r\n\r\nhello")
        assert b"too much" not in answers and b"chunked" not in answers
    wait_for(lambda: any("more than its Content-Length" in rec.message for rec in caplog.records))


def test_flask_streaming_response_is_chunked(wsgi: Any) -> None:
    server = wsgi(flask_app())
    r = requests.get(server.url + "/stream", stream=True, timeout=DEFAULT_TIMEOUT)
    assert r.headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in r.headers
    assert r.text == "".join(f"line {i}\n" for i in range(5))


# ---- PEP 3333 itself, checked by wsgiref's validator -------------------------------------

def environ_app(seen: List[Dict[str, Any]]) -> Any:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        seen.append(dict(environ))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body) + 2))])
        return [b"<", body, b">"][:1] + [body + b">"]

    return app


def test_environ_under_wsgiref_validator(wsgi: Any) -> None:
    seen: List[Dict[str, Any]] = []
    server = wsgi(wsgiref.validate.validator(environ_app(seen)))
    r = requests.post(server.url + "/a%20path/x?y=1&z=%20", data=b"payload",
                      headers={"X-Custom": "v", "Content-Type": "application/x-test"}, timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 200 and r.content == b"<payload>"
    environ = seen[0]
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/a path/x" and environ["SCRIPT_NAME"] == ""
    assert environ["QUERY_STRING"] == "y=1&z=%20"
    assert environ["CONTENT_TYPE"] == "application/x-test" and environ["CONTENT_LENGTH"] == "7"
    assert environ["HTTP_X_CUSTOM"] == "v" and "HTTP_CONTENT_TYPE" not in environ
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["SERVER_PORT"] == server.url.rsplit(":", 1)[1]
    assert environ["REMOTE_ADDR"] == "127.0.0.1" and environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.version"] == (1, 0) and environ["wsgi.multithread"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper


def test_repeated_request_headers_are_joined(wsgi: Any) -> None:
    seen: List[Dict[str, Any]] = []
    server = wsgi(environ_app(seen))
    port = int(server.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(b"GET / HTTP/1.1\r\nHost: example.org:8080\r\nX-A: 1\r\nX-A: 2\r\nConnection: close\r\n\r\n")
    read_until_closed(s)
    s.close()
    assert seen[0]["HTTP_X_A"] == "1,2" and seen[0]["SERVER_NAME"] == "example.org"


def test_write_callable_exc_info_and_close_of_the_iterable(wsgi: Any) -> None:
    closed: List[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b" and iterated"

        def close(self) -> None:
            closed.append(True)

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/exc":
            start_response("200 OK", [("Content-Type", "text/plain")])
            try:
                raise RuntimeError("changed my mind")
            except RuntimeError:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"unavailable"]
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return Body()

    server = wsgi(app)
    r = requests.get(server.url + "/", timeout=DEFAULT_TIMEOUT)
    assert r.text == "written and iterated"
    wait_for(lambda: closed == [True])  # close() runs once the response is handed over
    r = requests.get(server.url + "/exc", timeout=DEFAULT_TIMEOUT)
    assert (r.status_code, r.text) == (503, "unavailable")


def test_an_application_exception_is_a_500_and_logged(wsgi: Any, caplog: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        raise KeyError("nope")

    server = wsgi(app)
    r = requests.get(server.url + "/x", timeout=DEFAULT_TIMEOUT)
    assert r.status_code == 500
    assert any("exception in WSGI application" in rec.message for rec in caplog.records)
    assert requests.get(server.url + "/x", timeout=DEFAULT_TIMEOUT).status_code == 500  # still serving


def test_head_gets_no_body_and_file_wrapper_serves_a_file(wsgi: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(3 << 20))

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    server = wsgi(app)
    r = requests.get(server.url + "/", timeout=DEFAULT_TIMEOUT)
    assert r.content == path.read_bytes()
    port = int(server.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    response = read_until_closed(s)
    s.close()
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"\r\n\r\n")


def test_http10_client_gets_a_body_ended_by_the_close(wsgi: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"streamed ", b"to 1.0"])

    server = wsgi(app)
    port = int(server.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    response = read_until_closed(s)
    s.close()
    assert b"chunked" not in response.lower() and response.endswith(b"\r\n\r\nstreamed to 1.0")


def test_a_client_that_leaves_mid_stream_stops_the_worker_and_the_server_goes_on(wsgi: Any) -> None:
    produced: List[int] = []
    closed = threading.Event()

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            for i in range(10_000):
                produced.append(i)
                yield b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless() if environ["PATH_INFO"] == "/endless" else [b"ok"]

    server = wsgi(app, high_water=256 * 1024)
    port = int(server.url.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
    s.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(65536)
    time.sleep(0.2)
    assert len(produced) < 200, "the worker waits for a client that does not read"
    s.close()
    assert closed.wait(DEFAULT_TIMEOUT), "the iterable was closed once the client left"
    assert len(produced) < 10_000
    assert requests.get(server.url + "/", timeout=DEFAULT_TIMEOUT).text == "ok"


def test_requests_run_concurrently_on_the_worker_threads(wsgi: Any) -> None:
    barrier = threading.Barrier(4, timeout=DEFAULT_TIMEOUT)

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        barrier.wait()  # passes only if four requests are in the application at once
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"together"]

    server = wsgi(app, workers=4)
    results: List[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        requests.get(server.url, timeout=DEFAULT_TIMEOUT).text)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["together"] * 4


@pytest.mark.parametrize("kwargs, error", [({"workers": 0}, ValueError), ({"workers": True}, ValueError)])
def test_wsgi_server_arguments_are_checked(kwargs: Dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        WSGIServer(lambda e, s: [], **kwargs)
    with pytest.raises(TypeError):
        WSGIServer("not an app")  # type: ignore[arg-type]


# ---- the command line ------------------------------------------------------------------------

APP_MODULE = '''
import os, time
def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1.0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def test_command_line_workers_share_the_port_and_sigterm_finishes_requests(tmp_path: Path) -> None:
    (tmp_path / "cliapp.py").write_text(APP_MODULE)
    with Workers(tmp_path, "--wsgi", "cliapp:app", "--threads", "2", "--quiet") as workers:
        assert workers.process.stdout is not None and "Serving cliapp:app" in workers.process.stdout.readline()
        assert len(workers.bodies_from_each()) == 2, "both worker processes answered"
        slow, status = workers.sigterm_during("/slow")
        assert slow is not None and slow.status_code == 200, "the request in flight was finished"
        assert status == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(workers.url, timeout=DEFAULT_TIMEOUT)


def test_command_line_reports_an_app_that_cannot_be_loaded(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pymongoose", "--wsgi", "no_such_module:app"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=DEFAULT_TIMEOUT * 2)
    assert result.returncode == 2 and "cannot load no_such_module:app" in result.stderr


def test_file_wrapper_reads_blocks() -> None:
    wrapper = FileWrapper(io.BytesIO(b"abcde"), blksize=2)
    assert list(wrapper) == [b"ab", b"cd", b"e"]


def test_a_large_body_is_streamed_to_wsgi_input_as_it_arrives(wsgi: Any) -> None:
    # 40 MiB through an application that reads 64 KiB at a time: the server never
    # holds the body whole (its input pauses while 4 MiB wait unread).
    seen: Dict[str, Any] = {}

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        stream = environ["wsgi.input"]
        total, first = 0, b""
        while True:
            piece = stream.read(65536)
            if not piece:
                break
            first = first or piece[:4]
            total += len(piece)
            time.sleep(0.0001)  # slower than the client
        seen.update(total=total, length=environ["CONTENT_LENGTH"], first=first, kind=type(stream).__name__)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(total).encode()]

    server = wsgi(app, max_body=1 << 30)
    size = 40 << 20
    r = requests.post(server.url + "/up", data=b"abcd" * (size // 4), timeout=DEFAULT_TIMEOUT * 6)
    assert r.text == str(size)
    assert seen == {"total": size, "length": str(size), "first": b"abcd", "kind": "BodyStream"}
    # The connection goes on: the next request on it is parsed again.
    with requests.Session() as session:
        assert session.post(server.url, data=b"x" * (2 << 20), timeout=DEFAULT_TIMEOUT).text == str(2 << 20)
        assert session.post(server.url, data=b"small", timeout=DEFAULT_TIMEOUT).text == "5"


def test_an_application_that_answers_without_reading_the_body(wsgi: Any) -> None:
    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/ignore":
            return [b"ignored"]
        return [str(len(environ["wsgi.input"].read())).encode()]

    server = wsgi(app, max_body=1 << 30)
    with requests.Session() as session:
        r = session.post(server.url + "/ignore", data=b"z" * (20 << 20), timeout=DEFAULT_TIMEOUT * 3)
        assert r.text == "ignored"
        assert session.post(server.url + "/read", data=b"y" * 100, timeout=DEFAULT_TIMEOUT).text == "100"


def test_file_wrapper_sends_a_regular_file_without_iterating_it(wsgi: Any, tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(5 << 20) + b"the end")
    iterated: List[int] = []
    closed = threading.Event()
    original_next = FileWrapper.__next__
    monkeypatch.setattr(FileWrapper, "__next__", lambda self: iterated.append(1) or original_next(self))

    class Tracked(io.FileIO):
        def close(self) -> None:
            super().close()
            closed.set()

    def app(environ: Dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/memory":
            return environ["wsgi.file_wrapper"](io.BytesIO(b"not a file"), 4)
        handle = Tracked(str(path))
        handle.seek(3)  # from where the application left it
        return environ["wsgi.file_wrapper"](handle)

    server = wsgi(app)
    r = requests.get(server.url + "/file", timeout=DEFAULT_TIMEOUT)
    assert r.content == path.read_bytes()[3:] and iterated == []
    assert closed.wait(DEFAULT_TIMEOUT), "the file is closed once sent"
    assert requests.get(server.url + "/memory", timeout=DEFAULT_TIMEOUT).content == b"not a file"
    assert iterated, "a file-like object that is not a file is iterated"
