"""events=: which events cross into Python, inheritance, run-time changes, and the
bookkeeping that must work whatever is filtered out."""

from __future__ import annotations

import threading
from typing import Any, List, Tuple

import pytest

from pymongoose import (
    MG_EV_ACCEPT,
    MG_EV_CLOSE,
    MG_EV_HTTP_HDRS,
    MG_EV_HTTP_MSG,
    MG_EV_OPEN,
    MG_EV_POLL,
    MG_EV_READ,
    MG_EV_WAKEUP,
    MG_EV_WRITE,
    Manager,
)

from support import DEFAULT_TIMEOUT, poll_until, raw_request


def recorder(seen: List[Tuple[int, int]]) -> Any:
    def handler(conn: Any, event: int, data: Any) -> None:
        seen.append((conn.id, event))
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "ok")
    return handler


def serve_once(mgr: Manager, port: int, requests_count: int = 1) -> None:
    """Make requests_count keep-alive requests on one connection, then close it.

    (A raw socket, closed when done: on PyPy a requests session's sockets stay open
    until garbage collection, and these tests watch the server retire them.)"""
    done = threading.Event()

    def client() -> None:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as s:
            for _ in range(requests_count):
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                response = b""
                while not response.endswith(b"\r\n\r\nok"):
                    chunk = s.recv(4096)
                    assert chunk, response
                    response += chunk
        done.set()

    threading.Thread(target=client).start()
    poll_until(mgr, done.is_set)


def test_manager_events_narrow_what_crosses_and_bookkeeping_still_works() -> None:
    seen: List[Tuple[int, int]] = []
    with Manager(recorder(seen), events=[MG_EV_HTTP_MSG]) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        serve_once(mgr, listener.local_addr.port, requests_count=3)
        poll_until(mgr, lambda: len(mgr.connections) == 1, what="the client's connection to be retired")
        assert mgr.connections == (listener,)
    assert {event for _, event in seen} == {MG_EV_HTTP_MSG}
    assert len(seen) == 3


def test_default_is_every_event() -> None:
    seen: List[Tuple[int, int]] = []
    with Manager(recorder(seen)) as mgr:
        listener = mgr.listen("http://127.0.0.1:0")
        assert listener.events is None
        serve_once(mgr, listener.local_addr.port)
    events = {event for _, event in seen}
    assert {MG_EV_OPEN, MG_EV_ACCEPT, MG_EV_READ, MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_WRITE, MG_EV_POLL,
            MG_EV_CLOSE} <= events


def test_listener_events_override_the_manager_and_are_inherited() -> None:
    seen: List[Tuple[int, int]] = []
    with Manager(recorder(seen), events=[MG_EV_HTTP_MSG]) as mgr:
        listener = mgr.listen("http://127.0.0.1:0", events=[MG_EV_ACCEPT, MG_EV_HTTP_MSG, MG_EV_CLOSE])
        assert listener.events == frozenset({MG_EV_ACCEPT, MG_EV_HTTP_MSG, MG_EV_CLOSE})
        serve_once(mgr, listener.local_addr.port)
        poll_until(mgr, lambda: any(e == MG_EV_CLOSE and i != listener.id for i, e in seen))
        accepted = {conn_id for conn_id, event in seen if event == MG_EV_ACCEPT}
        assert len(accepted) == 1
        assert {event for conn_id, event in seen if conn_id in accepted} == {MG_EV_ACCEPT, MG_EV_HTTP_MSG,
                                                                            MG_EV_CLOSE}


def test_events_change_at_run_time() -> None:
    seen: List[Tuple[int, int]] = []
    with Manager(events=[]) as mgr:
        conns: List[Any] = []

        def handler(conn: Any, event: int, data: Any) -> None:
            seen.append((conn.id, event))
            if event == MG_EV_READ:
                conn.send(conn.recv_data())
                conn.consume(conn.recv_len)

        listener = mgr.listen("tcp://127.0.0.1:0", handler, events=[MG_EV_ACCEPT])
        port = listener.local_addr.port
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as peer:
            poll_until(mgr, lambda: [c for c in mgr.connections if c is not listener])
            conns.extend(c for c in mgr.connections if c is not listener)
            assert not any(e == MG_EV_READ for _, e in seen)
            conns[0].events = [MG_EV_READ]  # from now on, echo
            assert conns[0].events == frozenset({MG_EV_READ})
            peer.sendall(b"now I am heard")
            received = b""

            def echoed() -> bool:
                nonlocal received
                peer.setblocking(False)
                try:
                    received += peer.recv(100)
                except BlockingIOError:
                    pass
                return received == b"now I am heard"

            poll_until(mgr, echoed)
            conns[0].events = None
            assert conns[0].events is None


def test_filtered_out_close_still_retires_connections_and_wakeups_respect_the_mask() -> None:
    woken: List[bytes] = []
    with Manager(lambda c, e, d: e == MG_EV_WAKEUP and woken.append(d), True, events=[MG_EV_WAKEUP]) as mgr:
        target = mgr.listen("tcp://127.0.0.1:0")
        quiet = mgr.listen("tcp://127.0.0.1:0", events=[])
        mgr.wakeup(target.id, b"heard")
        mgr.wakeup(quiet.id, b"filtered")
        poll_until(mgr, lambda: woken)
        quiet.close()
        poll_until(mgr, lambda: quiet.is_closed)
        assert quiet not in mgr.connections
        assert woken == [b"heard"]
        assert mgr.wakeup(quiet.id, b"gone") is False


def test_bad_event_sets_are_refused(manager: Manager) -> None:
    with pytest.raises(ValueError):
        Manager(events=[32])
    with pytest.raises(TypeError):
        Manager(events=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        manager.listen("tcp://127.0.0.1:0", events=[MG_EV_READ, "x"])  # type: ignore[list-item]
    listener = manager.listen("tcp://127.0.0.1:0")
    with pytest.raises(TypeError):
        listener.events = [True]  # type: ignore[list-item]


def test_with_no_events_at_all_nothing_reaches_python_and_nothing_breaks() -> None:
    with Manager(events=[]) as mgr:
        port = mgr.listen("http://127.0.0.1:0").local_addr.port
        replies: List[bytes] = []
        client = threading.Thread(target=lambda: replies.append(
            raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=1)))
        client.start()
        poll_until(mgr, lambda: not client.is_alive())
        assert replies == [b""]  # no handler saw the request, so nobody answered
        poll_until(mgr, lambda: len(mgr.connections) == 1, what="the client's connection to be retired")
