"""The deployment guide's files (docs/deploy/) as written: the systemd units pass
``systemd-analyze verify`` and their command line serves under systemd's socket
activation; nginx with the guide's server block proxies to the server on a Unix
socket, the client's address and scheme reaching the application."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest

from support import DEFAULT_TIMEOUT, REPO, free_port, quietly, raw_request, socket_activated, wait_for

DEPLOY = REPO / "docs" / "deploy"

APP = '''
def app(environ, start_response):
    body = f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']} {environ['HTTP_HOST']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def exec_start() -> List[str]:
    """pymongoose.service's ExecStart, its continuation lines joined."""
    text = (DEPLOY / "pymongoose.service").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line[len("ExecStart="):])


def test_the_service_command_line_is_one_the_server_takes() -> None:
    from pymongoose.__main__ import _parse

    command = exec_start()
    assert command[1:3] == ["-m", "pymongoose"]
    args = _parse(command[3:])
    assert args.workers == 4 and args.proxy_headers and args.max_requests == 100000


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    for unit in ("pymongoose.socket", "pymongoose.service"):
        text = (DEPLOY / unit).read_text()
        # The guide's paths, made real for the check: this interpreter, this folder.
        text = text.replace("/srv/myapp/.venv/bin/python", sys.executable).replace("/srv/myapp", str(tmp_path))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", "pymongoose.socket", "pymongoose.service"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate not installed")
def test_the_service_command_serves_under_socket_activation(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    port = free_port()
    process = socket_activated(port, [sys.executable, *exec_start()[1:]], tmp_path)
    try:
        request = b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
        response = wait_for(lambda: quietly(raw_request, port, request), what="an answer")
        assert response.endswith(b"\r\n\r\n127.0.0.1 https example.com")  # --proxy-headers, from 127.0.0.1
        process.send_signal(signal.SIGHUP)  # ExecReload
        response = wait_for(lambda: quietly(raw_request, port, request), what="an answer after the reload")
        assert response.startswith(b"HTTP/1.1 200 OK")
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=DEFAULT_TIMEOUT * 3)
        print(out)  # shown when the test fails
    assert process.returncode == 0, out



@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[int]:
    """nginx with the guide's server block, its upstream socket in tmp_path; its port."""
    if shutil.which("nginx") is None:
        pytest.skip("nginx not installed (.ci/run installs it)")
    port = free_port()
    block = (DEPLOY / "nginx.conf").read_text()
    block = block.replace("/run/pymongoose/app.sock", str(tmp_path / "app.sock"))
    block = re.sub(r"listen 80;", f"listen 127.0.0.1:{port};", block)
    temp = tmp_path / "nginx"
    temp.mkdir()
    (temp / "nginx.conf").write_text(
        f"{'user root;' if os.geteuid() == 0 else ''}\n"
        f"worker_processes 1;\npid {temp}/nginx.pid;\nerror_log {temp}/error.log;\nevents {{}}\n"
        f"http {{\n access_log off;\n client_body_temp_path {temp}/body;\n proxy_temp_path {temp}/proxy;\n"
        f" fastcgi_temp_path {temp}/fastcgi;\n uwsgi_temp_path {temp}/uwsgi;\n scgi_temp_path {temp}/scgi;\n"
        f"{block}\n}}\n")
    process = subprocess.Popen(["nginx", "-p", str(temp), "-c", str(temp / "nginx.conf"), "-g", "daemon off;"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: quietly(raw_request, port, b"GET / HTTP/1.0\r\n\r\n"), what="nginx to listen")
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)
        process.communicate(timeout=DEFAULT_TIMEOUT)


def test_behind_nginx_on_a_unix_socket(tmp_path: Path, nginx: int) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(tmp_path)) if p))
    server = subprocess.Popen([sys.executable, "-m", "pymongoose", "--wsgi", "myapp:app", "--uds",
                               str(tmp_path / "app.sock"), "--workers", "2", "--proxy-headers"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        request = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        response = wait_for(lambda: quietly(raw_request, nginx, request) if
                            (tmp_path / "app.sock").exists() else None, what="an answer through nginx")
        while b" 502 " in response.split(b"\r\n", 1)[0]:  # the workers are starting
            response = raw_request(nginx, request)
        # nginx connected from 127.0.0.1 and said so; the scheme is nginx's side's.
        assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"\r\n\r\n127.0.0.1 http example.com")
        # A client's own X-Forwarded-For is kept left of what nginx adds: from 127.0.0.1
        # (trusted) the walk goes on to the address the client claimed.
        spoof = request.replace(b"Connection", b"X-Forwarded-For: 203.0.113.9\r\nConnection")
        assert raw_request(nginx, spoof).endswith(b"\r\n\r\n203.0.113.9 http example.com")
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=DEFAULT_TIMEOUT * 2)
    assert server.returncode == 0, out
