"""``python -m pymongoose --workers N``: one listening socket shared by worker
processes under a supervisor; SIGHUP's reload and worker replacement under a
steady load, counting failed requests; --uds, --fd, systemd's LISTEN_FDS, --backlog."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from support import (
    DEFAULT_TIMEOUT,
    Program,
    SteadyLoad,
    free_port,
    quietly,
    read_until_closed,
    refused,
    run_python,
    socket_activated,
    wait_for,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers need fork()")

WSGI_APP = '''
import os
VERSION = {version!r}
def app(environ, start_response):
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

ASGI_APP = '''
import os
VERSION = {version!r}
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    body = f"{{VERSION}} {{os.getpid()}}".encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]}})
    await send({{"type": "http.response.body", "body": body}})
'''


def write_app(folder: Path, kind: str, version: str) -> None:
    # Each version a different length: a stale .pyc (same size, same second) cannot pass.
    (folder / "app.py").write_text((WSGI_APP if kind == "wsgi" else ASGI_APP).format(version=version))


class Output:
    """A program's output lines, read on a thread as they come."""

    def __init__(self, program: Program) -> None:
        self.lines: List[str] = [program.first_line]
        stream = program.process.stdout
        assert stream is not None
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self._thread.start()

    def has(self, words: str) -> bool:
        return any(words in line for line in self.lines)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Any]:
    started: List[Program] = []

    def start(kind: str, *args: str) -> Program:
        program = Program("-m", "pymongoose", f"--{kind}", "app:app", "--listen", "http://127.0.0.1:0",
                          "--no-access-log", "--log-level", "info", *args, cwd=tmp_path)
        started.append(program)
        return program

    yield start
    for program in started:
        program.__exit__()


def pids(bodies: Any, version: str) -> "set[str]":
    return {body.split()[1] for body in bodies if body.split()[0] == version}


def gone(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("kind, workers, keep_alive", [("wsgi", 1, False), ("wsgi", 2, False), ("asgi", 1, False),
                                                       ("asgi", 2, False), ("wsgi", 1, True), ("asgi", 2, True)])
def test_sighup_reloads_the_code_under_load_and_drops_nothing(tmp_path: Path, served: Any, kind: str,
                                                              workers: int, keep_alive: bool) -> None:
    # With keep-alive clients too: a stopping worker answers what arrives with
    # "connection: close", and waits a moment for the next request of connections
    # between two, rather than closing them under it.
    write_app(tmp_path, kind, "one")
    server = served(kind, "--workers", str(workers))
    assert f"{workers} process" in server.first_line and "SIGHUP to reload" in server.first_line
    load = SteadyLoad(server.port, keep_alive=keep_alive)
    wait_for(lambda: load.seen(lambda body: body.startswith("one ")), what="the first workers to serve")
    for version in ("three", "fivefive"):
        write_app(tmp_path, kind, version)
        old = pids(load.bodies, "one") | pids(load.bodies, "three")
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda v=version: load.seen(lambda body: body.startswith(v + " ")), what=f"{version} to be served")
        wait_for(lambda o=old: all(gone(pid) for pid in o), what="the old workers to exit")
    bodies = load.stop()
    assert load.failures == []
    # Four keep-alive connections may all have been given to one of two workers.
    assert len(pids(bodies, "fivefive")) == workers or keep_alive and pids(bodies, "fivefive")
    assert sum(bodies.values()) > 100
    status, out = server.stop(signal.SIGTERM)
    assert status == 0, out


def test_a_reload_that_cannot_start_keeps_the_running_workers(tmp_path: Path, served: Any) -> None:
    write_app(tmp_path, "wsgi", "one")
    server = served("wsgi", "--workers", "2")
    output = Output(server)
    load = SteadyLoad(server.port, threads=2)
    wait_for(lambda: len(pids(load.bodies, "one")) == 2, what="both workers to serve")
    (tmp_path / "app.py").write_text("raise RuntimeError('half-deployed')\n")
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: output.has("reload failed"), what="the failed reload to be logged")
    assert output.has("half-deployed")
    before = sum(load.bodies.values())
    wait_for(lambda: sum(load.bodies.values()) > before + 50, what="more responses")
    assert load.seen(lambda body: body.startswith("one "))  # the old workers, still
    write_app(tmp_path, "wsgi", "three")
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: load.seen(lambda body: body.startswith("three ")), what="the fixed code to be served")
    load.stop()
    assert load.failures == []


def test_a_worker_that_dies_is_replaced(tmp_path: Path, served: Any) -> None:
    write_app(tmp_path, "wsgi", "one")
    server = served("wsgi", "--workers", "2")
    output = Output(server)
    load = SteadyLoad(server.port, threads=2)
    first = wait_for(lambda: pids(load.bodies, "one") if len(pids(load.bodies, "one")) == 2 else None,
                     what="both workers to serve")
    victim = sorted(first)[0]
    os.kill(int(victim), signal.SIGKILL)
    wait_for(lambda: len(pids(load.bodies, "one") - first) == 1, what="a replacement to serve")
    before = len(load.failures)  # the killed worker's connections in flight may fail
    wait_for(lambda: load.seen(lambda body: body.split()[1] != victim), what="only live workers to answer")
    load.stop()
    assert len(load.failures) == before
    assert output.has(f"worker {victim} exited (-9); starting another")


def test_an_app_that_cannot_load_stops_the_supervisor_with_one_message(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("raise RuntimeError('broken at import')\n")
    process = run_python("-m", "pymongoose", "--wsgi", "app:app", "--listen", "http://127.0.0.1:0",
                         "--workers", "3", cwd=tmp_path)
    out, _ = process.communicate(timeout=DEFAULT_TIMEOUT * 2)
    assert process.returncode == 2, out
    assert out.count("broken at import") == 1, out  # one worker tried, not three


def unix_get(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(DEFAULT_TIMEOUT)
        client.connect(str(path))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_until_closed(client)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize("workers", [None, "2"])
def test_uds_serves_on_a_unix_domain_socket(tmp_path: Path, kind: str, workers: Any) -> None:
    write_app(tmp_path, kind, "one")
    path = tmp_path / "app.sock"
    process = run_python("-m", "pymongoose", f"--{kind}", "app:app", "--uds", str(path),
                         *(["--workers", workers] if workers else []), cwd=tmp_path)
    try:
        assert process.stdout is not None
        assert f"http+unix:{path}" in process.stdout.readline()
        wait_for(path.exists, what="the socket file")
        response = wait_for(lambda: quietly(unix_get, path), what="an answer")
        assert response.startswith(b"HTTP/1.1 200 OK") and b"\r\n\r\none " in response
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=DEFAULT_TIMEOUT * 2)
    assert process.returncode == 0, out



def get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_until_closed(client)


@pytest.mark.parametrize("workers", [None, "2"])
def test_fd_serves_on_an_inherited_socket(tmp_path: Path, workers: Any) -> None:
    write_app(tmp_path, "wsgi", "one")
    given = socket.socket()
    given.bind(("127.0.0.1", 0))
    given.listen(16)
    port = given.getsockname()[1]
    with Program("-m", "pymongoose", "--wsgi", "app:app", "--fd", str(given.fileno()),
                 *(["--workers", workers] if workers else []), cwd=tmp_path,
                 pass_fds=(given.fileno(),)) as server:
        given.close()  # the server's copy is its own
        assert server.port == port
        assert b"\r\n\r\none " in get(port)
        status, out = server.stop(signal.SIGTERM)
        assert status == 0, out


LAUNCHER = '''
import os, socket, sys
# As systemd does: the socket on descriptor 3, LISTEN_PID the process that execs.
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
if sock.fileno() != 3:
    os.dup2(sock.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, "-m", "pymongoose", *sys.argv[1:]])
'''


@pytest.mark.parametrize("workers", [None, "2"])
def test_systemd_socket_activation_is_used_unasked(tmp_path: Path, workers: Any) -> None:
    write_app(tmp_path, "wsgi", "one")
    (tmp_path / "launch.py").write_text(LAUNCHER)
    with Program("launch.py", "--wsgi", "app:app", *(["--workers", workers] if workers else []),
                 "--listen", "http://127.0.0.1:1", cwd=tmp_path) as server:
        assert server.port != 1  # the socket systemd passed, not --listen's
        response = get(server.port)
        assert b"\r\n\r\none " in response
        # The variables are not passed on: the application's own children would misread them.
        assert "LISTEN_FDS" not in server.first_line


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_under_systemd_socket_activate(tmp_path: Path) -> None:
    write_app(tmp_path, "wsgi", "one")
    port = free_port()
    process = socket_activated(port, [sys.executable, "-m", "pymongoose", "--wsgi", "app:app", "--workers", "2"],
                               tmp_path)
    try:
        response = wait_for(lambda: quietly(get, port), what="an answer")  # the first connection starts it
        assert b"\r\n\r\none " in response
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=DEFAULT_TIMEOUT * 2)
        print(out)  # shown when the test fails
    assert process.returncode == 0, out
    assert f"127.0.0.1:{port}" in out


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
@pytest.mark.parametrize("workers", [None, "2"])
def test_backlog_sets_the_accept_queue_length(tmp_path: Path, workers: Any) -> None:
    write_app(tmp_path, "wsgi", "one")
    with Program("-m", "pymongoose", "--wsgi", "app:app", "--listen", "http://127.0.0.1:0", "--backlog", "7",
                 *(["--workers", workers] if workers else []), cwd=tmp_path) as server:
        get(server.port)
        listing = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True).stdout
        # For a listening socket, ss's Send-Q column is the backlog. On Linux each
        # worker has a socket of its own on the port (SO_REUSEPORT).
        queues = [int(re.split(r"\s+", line)[2]) for line in listing.strip().splitlines()]
        assert queues == [7] * int(workers or 1), listing


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_max_requests_replaces_workers_under_load_and_drops_nothing(tmp_path: Path, served: Any, kind: str) -> None:
    write_app(tmp_path, kind, "one")
    server = served(kind, "--max-requests", "200", "--max-requests-jitter", "50")  # implies --workers 1
    output = Output(server)
    assert "1 process" in server.first_line
    load = SteadyLoad(server.port)
    wait_for(lambda: len(pids(load.bodies, "one")) >= 4, timeout=DEFAULT_TIMEOUT * 3,
             what="three replacements to serve")
    bodies = load.stop()
    assert load.failures == []
    assert output.has("has served its --max-requests")
    # Each replaced worker answered its 200 to 250, and some more while its successor
    # started (the count is checked ten times a second).
    newest = list(bodies)[-1].split()[1]  # the Counter keeps the order bodies first came in
    replaced = {body.split()[1]: count for body, count in bodies.items() if body.split()[1] != newest}
    assert all(200 <= count <= 2000 for count in replaced.values()), replaced
    status, out = server.stop(signal.SIGTERM)
    assert status == 0, out


def test_sighup_reads_the_tls_files_again(tmp_path: Path) -> None:
    import ssl

    from support import TestPKI

    pki = TestPKI(tmp_path / "pki")
    first, second = pki.issue("localhost"), pki.issue("renewed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(first[0].read_bytes())
    key.write_bytes(first[1].read_bytes())
    write_app(tmp_path, "wsgi", "one")
    with Program("-m", "pymongoose", "--wsgi", "app:app", "--listen", "http://127.0.0.1:0", "--workers", "1",
                 "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), cwd=tmp_path) as server:
        assert server.first_line.count("https://") == 1

        def der(pem: str) -> bytes:  # openssl ca writes the certificate's text before it
            return ssl.PEM_cert_to_DER_cert(pem[pem.index("-----BEGIN CERTIFICATE-----"):])

        def presented() -> bytes:
            return der(ssl.get_server_certificate(("127.0.0.1", server.port)))

        assert presented() == der(first[0].read_text())
        cert.write_bytes(second[0].read_bytes())  # renewed in place, as certbot does
        key.write_bytes(second[1].read_bytes())
        server.process.send_signal(signal.SIGHUP)
        wait_for(lambda: presented() == der(second[0].read_text()), what="the renewed certificate")


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_reload_serves_the_changed_code_and_drops_nothing(tmp_path: Path, served: Any, kind: str) -> None:
    # watchfiles tells of the change where it is installed (the CPython tests);
    # elsewhere the folder is scanned.
    write_app(tmp_path, kind, "one")
    server = served(kind, "--reload")
    assert "1 process" in server.first_line
    load = SteadyLoad(server.port, threads=2)
    wait_for(lambda: load.seen(lambda body: body.startswith("one ")), what="the first code to be served")
    write_app(tmp_path, kind, "three")
    wait_for(lambda: load.seen(lambda body: body.startswith("three ")), timeout=DEFAULT_TIMEOUT * 2,
             what="the changed code to be served")
    load.stop()
    assert load.failures == []


def test_reload_dir_is_checked(tmp_path: Path) -> None:
    for args, words in ((["--reload-dir", str(tmp_path)], "--reload-dir needs --reload"),
                        (["--reload", "--reload-dir", str(tmp_path / "nope")], "is not a folder")):
        assert words in refused("--wsgi", "app:app", *args)


def test_the_reload_watcher_sees_a_change_made_while_it_starts(tmp_path: Path, monkeypatch: Any) -> None:
    # Right after watch() returns, before its thread has imported watchfiles and set
    # up the watch, or made its first scan: the change must still cause a reload.
    from pymongoose.servers import reloader

    (tmp_path / "app.py").write_text("x = 1\n")
    reloads: List[float] = []
    monkeypatch.setattr(reloader, "_reload", lambda: reloads.append(1.0))
    stop = threading.Event()
    thread = reloader.watch([str(tmp_path)], stop)
    try:
        (tmp_path / "app.py").write_text("x = 22\n")
        wait_for(lambda: reloads, what="a reload")
    finally:
        stop.set()
        thread.join(DEFAULT_TIMEOUT)
