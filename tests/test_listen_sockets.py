"""Listeners on sockets made elsewhere: a Unix domain socket (``uds``), a descriptor
handed over (``fd``), and the accept queue's length (``backlog``)."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import Any, Callable, List

import pytest

from pymongoose import MG_EV_HTTP_MSG, ListenError, Manager, TlsOpts

from support import DEFAULT_TIMEOUT, TestPKI, poll_until

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="Linux: POSIX descriptors, /proc")

REQUEST = b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n"


def who(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, f"{conn.remote_addr.ip}:{conn.remote_addr.port}")


def exchange(manager: Manager, connect: Callable[[], socket.socket], request: bytes = REQUEST) -> bytes:
    """Send ``request`` on a new client socket and poll ``manager`` until the
    response is complete; return it."""
    client = connect()
    client.setblocking(False)
    client.sendall(request)
    received: List[bytes] = []

    def answered() -> bool:
        try:
            received.append(client.recv(65536))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        head, _, body = b"".join(received).partition(b"\r\n\r\n")
        length = [int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        return not received[-1] or bool(length) and len(body) >= length[0]

    poll_until(manager, answered, what="the response")
    client.close()
    return b"".join(received)


def unix_client(path: Path) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(DEFAULT_TIMEOUT)
        client.connect(str(path))
        return client
    return connect


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_unix_domain_socket_serves_http_with_no_client_address(manager: Manager, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listener = manager.listen("http://", who, uds=str(path))
    assert path.is_socket()
    assert (listener.local_addr.ip, listener.local_addr.port) == ("0.0.0.0", 0)
    response = exchange(manager, unix_client(path))
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    assert response.endswith(b"\r\n\r\n0.0.0.0:0")


def test_a_unix_socket_left_by_a_server_that_has_gone_is_replaced(manager: Manager, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    gone.bind(str(path))
    gone.close()  # the file stays; nothing listens
    manager.listen("http://", who, uds=str(path))
    assert exchange(manager, unix_client(path)).startswith(b"HTTP/1.1 200 OK")


def test_a_live_unix_socket_or_another_file_is_never_replaced(manager: Manager, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    manager.listen("http://", who, uds=str(path))
    with pytest.raises(ListenError, match="address in use"):
        manager.listen("http://", who, uds=str(path))
    assert exchange(manager, unix_client(path)).startswith(b"HTTP/1.1 200 OK")  # the first still serves
    other = tmp_path / "notes.txt"
    other.write_text("keep me")
    with pytest.raises(ListenError, match="not a socket"):
        manager.listen("http://", who, uds=str(other))
    assert other.read_text() == "keep me"
    with pytest.raises(ListenError, match="No such file or directory"):
        manager.listen("http://", who, uds=str(tmp_path / "no" / "such" / "folder.sock"))


def test_https_on_a_unix_socket(manager: Manager, tmp_path: Path) -> None:
    cert, key = TestPKI(tmp_path / "pki").issue("localhost")
    path = tmp_path / "tls.sock"
    manager.listen("https://", who, uds=str(path), tls=TlsOpts(cert=cert.read_bytes(), key=key.read_bytes()))
    context = ssl.create_default_context(cafile=str(tmp_path / "pki" / "ca.pem"))

    def connect() -> socket.socket:
        client = context.wrap_socket(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
                                     server_hostname="localhost", do_handshake_on_connect=False)
        client.connect(str(path))
        client.setblocking(False)
        while True:  # the handshake needs the manager polled
            try:
                client.do_handshake()
                return client
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                manager.poll(5)

    response = exchange(manager, connect)
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"0.0.0.0:0")


def test_a_listening_descriptor_is_adopted_and_the_callers_copy_stays_open(manager: Manager) -> None:
    given = socket.socket()
    given.bind(("127.0.0.1", 0))
    given.listen(8)
    port = given.getsockname()[1]
    listener = manager.listen("http://", who, fd=given.fileno())
    assert listener.local_addr.port == port
    response = exchange(manager, lambda: socket.create_connection(("127.0.0.1", port), DEFAULT_TIMEOUT))
    assert response.startswith(b"HTTP/1.1 200 OK") and b"127.0.0.1:" in response
    listener.close()
    poll_until(manager, lambda: listener.is_closed, what="the listener's close")
    # The caller's descriptor is still a listening socket: a connection waits on it.
    waiting = socket.create_connection(("127.0.0.1", port), DEFAULT_TIMEOUT)
    accepted, _ = given.accept()
    accepted.close(), waiting.close(), given.close()


def test_a_bound_descriptor_not_yet_listening_is_made_to_listen(manager: Manager) -> None:
    given = socket.socket()
    given.bind(("127.0.0.1", 0))
    port = given.getsockname()[1]
    manager.listen("http://", who, fd=given.fileno())
    given.close()  # the listener's duplicate is its own
    response = exchange(manager, lambda: socket.create_connection(("127.0.0.1", port), DEFAULT_TIMEOUT))
    assert response.startswith(b"HTTP/1.1 200 OK")


def test_descriptors_that_cannot_listen_are_clear_errors_and_leak_nothing(manager: Manager, tmp_path: Path) -> None:
    datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with open(tmp_path / "file", "w") as regular:
        before = open_fds()
        closed_fd = max(map(int, os.listdir("/proc/self/fd"))) + 1
        with pytest.raises(ListenError, match="not a stream socket"):
            manager.listen("http://", who, fd=datagram.fileno())
        with pytest.raises(ListenError, match="Bad file descriptor"):
            manager.listen("http://", who, fd=closed_fd)
        with pytest.raises(ListenError, match="non-socket"):
            manager.listen("http://", who, fd=regular.fileno())
        assert open_fds() == before
    datagram.close()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"fd": -1}, ValueError, "fd must be >= 0"),
    ({"fd": "3"}, TypeError, "fd must be an int"),
    ({"uds": ""}, ValueError, "uds must be a non-empty str"),
    ({"fd": 0, "uds": "/tmp/x.sock"}, ValueError, "fd or uds, not both"),
    ({"fd": 0, "reuse_port": True}, ValueError, "reuse_port applies"),
    ({"backlog": 0}, ValueError, "backlog must be from 1 to 65535"),
    ({"backlog": 1.5}, TypeError, "backlog must be an int"),
])
def test_listen_socket_arguments_are_checked(manager: Manager, kwargs: Any, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        manager.listen("http://127.0.0.1:0", who, **kwargs)


def test_udp_cannot_take_a_descriptor(manager: Manager) -> None:
    with pytest.raises(ValueError, match="not udp"):
        manager.listen("udp://", fd=0)


def test_the_backlog_bounds_the_connections_waiting_to_be_accepted(manager: Manager) -> None:
    """Nothing polls the manager: connections wait in the kernel's queue, which
    holds backlog + 1 on Linux; beyond it a connection gets no answer."""
    def queued(backlog: int, tries: int) -> int:
        listener = manager.listen("tcp://127.0.0.1:0", backlog=backlog)
        port = listener.local_addr.port
        clients, completed = [], 0
        for _ in range(tries):
            client = socket.socket()
            client.settimeout(0.3)
            try:
                client.connect(("127.0.0.1", port))
                client.sendall(b"x")  # a queued connection takes data at once
                completed += 1
            except OSError:  # timed out: the queue is full
                pass
            clients.append(client)
        for client in clients:
            client.close()
        listener.close()
        manager.poll(0)
        return completed

    assert queued(1, 5) <= 3
    assert queued(64, 5) == 5
