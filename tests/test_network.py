"""TCP and UDP echo, DNS through a local resolver, SNTP from a local server."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, List

import pytest

from pymongoose import (
    MG_EV_CONNECT,
    MG_EV_ERROR,
    MG_EV_READ,
    MG_EV_RESOLVE,
    MG_EV_SNTP_TIME,
    ConnectionClosedError,
    Manager,
)
from pymongoose._resolv import system_dns

from support import DEFAULT_TIMEOUT, DnsResponder, SntpResponder, poll_until, wait_for


def echo(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_READ:
        conn.send(conn.recv_data())
        conn.consume(conn.recv_len)


def test_tcp_echo_with_a_raw_socket(serve: Any) -> None:
    server = serve(echo, url="tcp://127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEFAULT_TIMEOUT) as s:
        for payload in (b"hello", b"\x00" * 100_000, bytes(range(256))):
            s.sendall(payload)
            received = b""
            while len(received) < len(payload):
                received += s.recv(65536)
            assert received == payload


def test_an_idle_poll_waits_after_writes_that_filled_the_socket() -> None:
    """Output is written as soon as it is made, and a socket is registered for
    writability only while the kernel's buffer is full (vendor/mongoose_patches.py:
    write-after-read, epollout-*). Here the reader drains the socket only from a
    timer, which runs after the poll's wait: the wait never sees the socket
    writable, and the last write empties the buffer with the registration still in
    place. It must then be dropped: an idle poll(ms) waits, it does not spin."""
    size = 4_000_000
    with Manager(lambda conn, event, data: None) as mgr:
        port = mgr.listen("tcp://127.0.0.1:0").local_addr.port
        with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as s:
            s.setblocking(False)
            poll_until(mgr, lambda: any(c.is_accepted for c in mgr.connections))
            served = next(c for c in mgr.connections if c.is_accepted)
            served.send(b"z" * size)
            received = 0

            def drain() -> None:
                nonlocal received
                try:
                    while True:
                        received += len(s.recv(1 << 20))
                except BlockingIOError:
                    pass

            timer = mgr.timer_add(5, drain, repeat=True)
            poll_until(mgr, lambda: received == size)
            timer.cancel()
            mgr.poll(10)  # the leftover registration is reported (and dropped) here
            started = time.monotonic()
            for _ in range(5):
                mgr.poll(100)
            assert time.monotonic() - started >= 0.4, "poll() returned at once: a socket keeps waking it"


def test_udp_echo_both_ways() -> None:
    replies: List[bytes] = []

    def client(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_CONNECT:
            conn.send(b"ping over udp")
        elif event == MG_EV_READ:
            replies.append(conn.recv_data())
            conn.consume(conn.recv_len)

    with Manager() as mgr:
        listener = mgr.listen("udp://127.0.0.1:0", echo)
        assert listener.is_udp
        port = listener.local_addr.port
        # A plain Python UDP socket as the peer...
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.settimeout(0.01)
            peer.sendto(b"datagram one", ("127.0.0.1", port))
            got: List[bytes] = []

            def peer_received() -> bool:
                try:
                    got.append(peer.recv(2048))
                except socket.timeout:
                    pass
                return bool(got)

            poll_until(mgr, peer_received)
            assert got == [b"datagram one"]
        # ...and our own UDP client.
        conn = mgr.connect(f"udp://127.0.0.1:{port}", client)
        poll_until(mgr, lambda: replies)
        assert conn.is_udp
    assert replies == [b"ping over udp"]


def test_dns_resolution_through_the_configured_server(serve: Any) -> None:
    server = serve(echo, url="tcp://127.0.0.1:0")
    dns = DnsResponder({"service.test": "127.0.0.1"})
    events: List[int] = []
    try:
        with Manager(dns=dns.url) as mgr:
            conn = mgr.connect(f"tcp://service.test:{server.port}", lambda c, e, d: events.append(e))
            poll_until(mgr, lambda: MG_EV_CONNECT in events or MG_EV_ERROR in events)
            assert conn.remote_addr.ip == "127.0.0.1"
    finally:
        dns.stop()
    assert events.index(MG_EV_RESOLVE) < events.index(MG_EV_CONNECT)
    assert ("service.test", 1) in dns.queries


def test_unknown_names_fail_promptly_without_flooding_the_resolver() -> None:
    """Mongoose 7.23 alone would ask again and again and never fail (see _native/dns.c)."""
    dns = DnsResponder({})
    errors: List[str] = []
    try:
        with Manager(dns=dns.url) as mgr:
            started = time.monotonic()
            conn = mgr.connect("tcp://no-such-host.test:80", lambda c, e, d: e == MG_EV_ERROR and errors.append(d))
            poll_until(mgr, lambda: conn.is_closed)
            elapsed = time.monotonic() - started
    finally:
        dns.stop()
    assert errors == ["no-such-host.test DNS lookup failed"]
    assert elapsed < 2
    assert dns.queries == [("no-such-host.test", 1), ("no-such-host.test", 28)]


def test_resolve_cancel_from_an_error_handler_is_safe() -> None:
    """Mongoose's DNS handler walks its pending lookups while calling handlers."""
    dns = DnsResponder({})
    conns: List[Any] = []

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_ERROR:
            for other in conns:
                other.resolve_cancel()
                other.close()

    try:
        with Manager(dns=dns.url) as mgr:
            conns.extend(mgr.connect(f"tcp://missing-{i}.test:80", handler) for i in range(5))
            poll_until(mgr, lambda: all(c.is_closed for c in conns))
    finally:
        dns.stop()


def test_dns_timeout_is_configurable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # answers nothing
        silent.bind(("127.0.0.1", 0))
        errors: List[str] = []
        with Manager(dns=f"udp://127.0.0.1:{silent.getsockname()[1]}", dns_timeout_ms=200) as mgr:
            started = time.monotonic()
            conn = mgr.connect("tcp://slow.test:80", lambda c, e, d: e == MG_EV_ERROR and errors.append(d))
            poll_until(mgr, lambda: conn.is_closed)
            elapsed = time.monotonic() - started
    assert errors and elapsed < 3


def test_the_default_resolver_is_the_systems(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example\nnameserver fe80::1%eth0\nnameserver 10.9.8.7\nnameserver 1.1.1.1\n")
    assert system_dns(str(conf)) == ("udp://10.9.8.7:53", "udp://[fe80::1]:53")
    assert system_dns(str(tmp_path / "missing")) == ("udp://127.0.0.1:53", None)
    with Manager() as mgr:
        from pymongoose._binding import ffi

        assert ffi.string(mgr._ptr.dns4.url).decode() == system_dns()[0]
        assert b"8.8.8.8" not in ffi.string(mgr._ptr.dns4.url)


def test_sntp_time_from_a_local_server() -> None:
    sntp = SntpResponder()
    times: List[int] = []
    try:
        with Manager() as mgr:
            conn = mgr.sntp_connect(sntp.url, lambda c, e, d: e == MG_EV_SNTP_TIME and times.append(d))
            poll_until(mgr, lambda: times)
            assert conn.is_udp or conn.is_closed
    finally:
        sntp.stop()
    assert isinstance(times[0], int)
    assert abs(times[0] / 1000 - time.time()) < 2


def test_sntp_request_asks_again() -> None:
    sntp = SntpResponder()
    times: List[int] = []
    try:
        with Manager() as mgr:
            conn = mgr.sntp_connect(sntp.url, lambda c, e, d: e == MG_EV_SNTP_TIME and times.append(d))
            # Mongoose asks once on connect and closes after the first answer, so
            # ask again before polling: no answer can have arrived yet.
            conn.sntp_request()
            poll_until(mgr, lambda: times)
            poll_until(mgr, lambda: conn.is_closed)
            with pytest.raises(ConnectionClosedError):
                conn.sntp_request()
        # Before the responder stops: the second request may still be in its socket.
        wait_for(lambda: sntp.requests >= 2)
    finally:
        sntp.stop()


def test_sntp_needs_a_url() -> None:
    with Manager() as mgr, pytest.raises(ValueError):
        mgr.sntp_connect("")


