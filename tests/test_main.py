"""The main job: ``python -m pymongoose`` serves a folder."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest
import requests

from support import DEFAULT_TIMEOUT, Program, TestPKI, read_until_closed, run_python

# A WSGI and an ASGI application answering "ok", for the servers' tests (apps:wsgi, apps:asgi).
APPS = ("def wsgi(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
        "async def asgi(scope, receive, send):\n"
        "    if scope['type'] == 'http':\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'ok'})\n")


def test_serves_a_folder_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from disk")
    with Program("-m", "pymongoose", "--root", str(tmp_path), "--listen", "http://127.0.0.1:0",
                 cwd=tmp_path) as server:
        assert server.first_line.startswith(f"Serving {tmp_path} on http://127.0.0.1:{server.port}/")
        assert requests.get(f"{server.url}/hello.txt", timeout=DEFAULT_TIMEOUT).text == "hello from disk"
        assert requests.get(f"{server.url}/missing", timeout=DEFAULT_TIMEOUT).status_code == 404
        status, output = server.stop()
    assert status == 0, output
    assert "GET /hello.txt" in output
    assert output.rstrip().endswith("Stopped.")
    assert "Traceback" not in output


def test_defaults_to_the_current_folder_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal

    (tmp_path / "here.txt").write_text("cwd")
    with Program("-m", "pymongoose", "--listen", "http://127.0.0.1:0", cwd=tmp_path) as server:
        assert requests.get(f"{server.url}/here.txt", timeout=DEFAULT_TIMEOUT).text == "cwd"
        status, output = server.stop(signal.SIGTERM)
    assert status == 0 and output.rstrip().endswith("Stopped."), output


def test_reports_a_busy_port_and_a_missing_folder(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_python("-m", "pymongoose", "--listen", f"http://127.0.0.1:{port}", cwd=tmp_path)
        out, _ = proc.communicate(timeout=DEFAULT_TIMEOUT)
    assert proc.returncode == 1
    assert "Address already in use" in out and str(port) in out
    proc = run_python("-m", "pymongoose", "--root", str(tmp_path / "nope"), cwd=tmp_path)
    out, _ = proc.communicate(timeout=DEFAULT_TIMEOUT)
    assert proc.returncode == 2 and "not a folder" in out


def test_workers_where_the_platform_cannot_fork_are_refused(monkeypatch: Any, capsys: Any) -> None:
    # As on Windows: no fork(). A usage error, before anything listens.
    from pymongoose.__main__ import main

    monkeypatch.delattr(os, "fork")
    with pytest.raises(SystemExit) as exit_:
        main(["--wsgi", "app:app", "--workers", "1"])
    assert exit_.value.code == 2
    assert "--workers needs fork()" in capsys.readouterr().err


def test_a_worker_stops_when_its_supervisor_is_gone_without_prctl() -> None:
    # The portable path (macOS, the BSDs): a thread notices the parent changed.
    code = ("import os, time\n"
            "from pymongoose.servers.supervisor import watch_parent\n"
            "watch_parent(os.getppid() + 1, 0.01)  # as if the supervisor were another process\n"
            "time.sleep(30)\n")
    child = run_python("-c", code)
    child.wait(timeout=DEFAULT_TIMEOUT)
    assert child.returncode == -signal.SIGTERM
    # While the parent is the supervisor, nothing happens.
    calm = run_python("-c", code.replace("os.getppid() + 1", "os.getppid()").replace("30", "0.3"))
    calm.wait(timeout=DEFAULT_TIMEOUT)
    assert calm.returncode == 0


@pytest.mark.parametrize("mode", ["folder", "wsgi", "asgi"])
def test_the_timeout_flags_reach_every_server(tmp_path: Path, mode: str) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    app = [] if mode == "folder" else [f"--{mode}", f"apps:{mode}"]
    with Program("-m", "pymongoose", *app, "--listen", "http://127.0.0.1:0", "--timeout-header-read", "0.5",
                 "--timeout-keep-alive", "0.5", cwd=tmp_path) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as slow:
            slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            assert read_until_closed(slow).startswith(b"HTTP/1.1 408 ")
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as idle:
            idle.sendall(b"GET /apps.py HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b" 200 OK\r\n" in read_until_closed(idle)  # answered, then closed once idle
        status, output = server.stop()
    assert status == 0, output


def test_a_bad_timeout_flag_is_a_usage_error(capsys: Any) -> None:
    from pymongoose.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["--timeout-keep-alive", "-1"])
    assert exit_.value.code == 2
    assert "--timeout-keep-alive must be None or seconds" in capsys.readouterr().err



@pytest.mark.parametrize("mode", ["folder", "wsgi", "asgi"])
def test_the_ssl_flags_serve_https(tmp_path: Path, mode: str) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    pki = TestPKI(tmp_path / "pki")
    cert, key = pki.issue("localhost")
    app = [] if mode == "folder" else [f"--{mode}", f"apps:{mode}"]
    with Program("-m", "pymongoose", *app, "--listen", "http://127.0.0.1:0", "--ssl-certfile", str(cert),
                 "--ssl-keyfile", str(key), cwd=tmp_path) as server:
        assert f"https://127.0.0.1:{server.port}/" in server.first_line, server.first_line
        reply = requests.get(f"https://localhost:{server.port}/apps.py", verify=str(pki.ca_cert),
                             timeout=DEFAULT_TIMEOUT)
        assert reply.status_code == 200
        status, output = server.stop()
    assert status == 0, output


def test_ssl_ca_certs_admits_only_clients_with_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    pki = TestPKI(tmp_path / "pki")
    cert, key = pki.issue("localhost")
    client = pki.issue("client")
    with Program("-m", "pymongoose", "--asgi", "apps:asgi", "--listen", "https://127.0.0.1:0",
                 "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--ssl-ca-certs", str(pki.ca_cert),
                 cwd=tmp_path) as server:
        url = f"https://localhost:{server.port}/"
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(url, verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
        reply = requests.get(url, verify=str(pki.ca_cert), cert=(str(client[0]), str(client[1])),
                             timeout=DEFAULT_TIMEOUT)
        assert reply.text == "ok"
        status, output = server.stop()
    assert status == 0, output


def test_bad_ssl_flags_are_refused_clearly(tmp_path: Path, capsys: Any) -> None:
    from pymongoose.__main__ import main

    for argv, words in ((["--ssl-keyfile", "key.pem"], "need --ssl-certfile"),
                        (["--ssl-certfile", str(tmp_path / "missing.pem")], "cannot read")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert words in capsys.readouterr().err
    (tmp_path / "bad.pem").write_text("not a certificate")
    proc = run_python("-m", "pymongoose", "--listen", "http://127.0.0.1:0", "--ssl-certfile", "bad.pem",
                      "--ssl-keyfile", "bad.pem", cwd=tmp_path)
    out, _ = proc.communicate(timeout=DEFAULT_TIMEOUT)
    assert proc.returncode == 1 and "error:" in out and "cert" in out, out


@pytest.mark.parametrize("mode", ["folder", "wsgi", "asgi"])
def test_access_lines_on_and_off(tmp_path: Path, mode: str) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    app = [] if mode == "folder" else [f"--{mode}", f"apps:{mode}"]
    for flags, logged in (([], True), (["--no-access-log"], False), (["--log-level", "warning"], False)):
        with Program("-m", "pymongoose", *app, "--listen", "http://127.0.0.1:0", *flags, cwd=tmp_path) as server:
            assert requests.get(f"{server.url}/apps.py", timeout=DEFAULT_TIMEOUT).status_code == 200
            status, output = server.stop()
        assert status == 0, output
        assert ("/apps.py" in output) == logged, (flags, output)


def test_every_flag_can_come_from_the_environment(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "apps.py").write_text(APPS)
    pki = TestPKI(tmp_path / "pki")
    cert, key = pki.issue("localhost")
    for name, value in (("ASGI", "apps:asgi"), ("LISTEN", "http://127.0.0.1:0"), ("SSL_CERTFILE", str(cert)),
                        ("SSL_KEYFILE", str(key)), ("ACCESS_LOG", "no"), ("TIMEOUT_KEEP_ALIVE", "2.5")):
        monkeypatch.setenv(f"PYMONGOOSE_SERVE_{name}", value)
    with Program("-m", "pymongoose", "--access-log", cwd=tmp_path) as server:  # the command line wins
        assert f"https://127.0.0.1:{server.port}/" in server.first_line, server.first_line
        reply = requests.get(f"https://localhost:{server.port}/", verify=str(pki.ca_cert), timeout=DEFAULT_TIMEOUT)
        assert reply.text == "ok"
        status, output = server.stop()
    assert status == 0 and "GET /" in output, output


def test_a_bad_environment_value_is_a_usage_error_naming_it(monkeypatch: Any, capsys: Any) -> None:
    from pymongoose.__main__ import main

    for name, value in (("ACCESS_LOG", "maybe"), ("LOG_LEVEL", "loud"), ("THREADS", "many")):
        monkeypatch.setenv(f"PYMONGOOSE_SERVE_{name}", value)
        with pytest.raises(SystemExit) as exit_:
            main(["--root", "/nonexistent"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert f"PYMONGOOSE_SERVE_{name}={value!r}" in err, err
        monkeypatch.delenv(f"PYMONGOOSE_SERVE_{name}")
