"""Manager.wakeup: from any number of threads, every wakeup delivered whole and in
order per sender, or refused with an exception."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any, Dict, List

import pytest

from pymongoose import MG_EV_HTTP_MSG, MG_EV_WAKEUP, Manager, ManagerClosedError

from support import DEFAULT_TIMEOUT, LoopThread, wait_for

SENDERS = 8
PER_SENDER = 2000


def test_eight_threads_thousands_of_wakeups_all_delivered_in_order() -> None:
    received: Dict[int, List[int]] = defaultdict(list)
    total = [0]

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_WAKEUP:
            sender, sequence = map(int, data.split(b":"))
            received[sender].append(sequence)
            total[0] += 1

    mgr = Manager(enable_wakeup=True)
    target = mgr.listen("tcp://127.0.0.1:0", handler)
    loop = LoopThread(mgr, poll_ms=50).start()
    start = threading.Barrier(SENDERS)

    def sender(n: int) -> None:
        start.wait()
        for i in range(PER_SENDER):
            assert mgr.wakeup(target.id, f"{n}:{i}".encode()) is True

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEFAULT_TIMEOUT * 3)
    wait_for(lambda: total[0] == SENDERS * PER_SENDER, timeout=30, what="every wakeup")
    loop.stop()
    mgr.close()
    assert sorted(received) == list(range(SENDERS))
    for n in range(SENDERS):
        assert received[n] == list(range(PER_SENDER)), f"sender {n} out of order or incomplete"


def test_large_payloads_arrive_whole(serve: Any) -> None:
    payloads = [b"", b"x", bytes(range(256)) * 4096, b"\0" * (8 << 20)]
    received: List[bytes] = []
    server = serve(lambda c, e, d: e == MG_EV_WAKEUP and received.append(d), url="tcp://127.0.0.1:0",
                   manager=Manager(enable_wakeup=True))
    for payload in payloads:
        server.manager.wakeup(server.listener.id, payload)
    wait_for(lambda: len(received) == len(payloads))
    assert received == payloads


def test_str_payloads_are_utf8(serve: Any) -> None:
    received: List[bytes] = []
    server = serve(lambda c, e, d: e == MG_EV_WAKEUP and received.append(d), url="tcp://127.0.0.1:0",
                   manager=Manager(enable_wakeup=True))
    server.manager.wakeup(server.listener.id, "héllo")
    wait_for(lambda: received)
    assert received == ["héllo".encode()]


def test_refused_wakeups_raise() -> None:
    mgr = Manager(enable_wakeup=True)
    conn = mgr.listen("tcp://127.0.0.1:0")
    assert mgr.wakeup(999_999, b"nobody") is False
    with pytest.raises(TypeError):
        mgr.wakeup(conn.id, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mgr.wakeup("1", b"x")  # type: ignore[arg-type]
    conn.close()
    mgr.poll(0)
    assert mgr.wakeup(conn.id, b"closed") is False
    mgr.close()
    with pytest.raises(ManagerClosedError):
        mgr.wakeup(conn.id, b"after close")


def test_worker_threads_answer_through_wakeup(serve: Any) -> None:
    """The pattern for slow work: hand it to a thread, answer on MG_EV_WAKEUP."""
    import requests

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            number = int(data.query_var("n"))
            manager = conn.manager
            threading.Thread(target=lambda: manager.wakeup(conn.id, str(number * number).encode())).start()
        elif event == MG_EV_WAKEUP:
            conn.reply(200, data)

    server = serve(handler, manager=Manager(enable_wakeup=True))
    assert [requests.get(f"{server.url}/?n={n}", timeout=DEFAULT_TIMEOUT).text for n in range(10)] == \
        [str(n * n) for n in range(10)]


def test_wakeups_racing_close_are_delivered_or_refused() -> None:
    for _ in range(20):
        mgr = Manager(enable_wakeup=True)
        target = mgr.listen("tcp://127.0.0.1:0")
        loop = LoopThread(mgr, poll_ms=1).start()
        outcomes: List[str] = []

        def hammer(mgr: Manager = mgr, target: Any = target, outcomes: List[str] = outcomes) -> None:
            for i in range(500):
                try:
                    sent = mgr.wakeup(target.id, b"%d" % i)
                except ManagerClosedError:
                    sent = False
                if not sent:
                    outcomes.append("refused")
                    return
                outcomes.append("sent")

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        mgr.close()
        for t in threads:
            t.join(DEFAULT_TIMEOUT)
        loop.stop_after_close()
        assert outcomes and mgr.closed


def test_wakeup_without_enable_wakeup_returns_false_and_warns(caplog: Any) -> None:
    """As the Cython binding: no enable_wakeup=True, no wakeup (and a warning once)."""
    woken: List[bytes] = []
    with Manager(lambda c, e, d: e == MG_EV_WAKEUP and woken.append(d)) as mgr:
        conn = mgr.listen("tcp://127.0.0.1:0")
        assert mgr.wakeup(conn.id, b"x") is False
        assert mgr.wakeup(conn.id, b"y") is False
        mgr.poll(10)
    assert woken == []
    assert caplog.text.count("enable_wakeup=True") == 1


def test_every_post_from_a_thread_wakes_a_long_poll() -> None:
    # A post whose wake found its work already run left the "wake pending" flag
    # set, and the next post then woke nobody: it waited for the poll's timeout
    # (seen on PyPy, about one post in thirty). The poll here waits 60 s.
    mgr = Manager()
    stop = threading.Event()
    late: List[int] = []

    def loop() -> None:
        while not stop.is_set():
            mgr.poll(60_000)

    poller = threading.Thread(target=loop)
    poller.start()

    def poster() -> None:
        for i in range(1500):
            done = threading.Event()
            mgr.call_soon_threadsafe(done.set)
            if not done.wait(DEFAULT_TIMEOUT):
                late.append(i)
                return

    posters = [threading.Thread(target=poster) for _ in range(4)]
    try:
        for thread in posters:
            thread.start()
        for thread in posters:
            thread.join()
    finally:
        stop.set()
        mgr.call_soon_threadsafe(lambda: None)
        poller.join()
        mgr.close()
    assert late == [], "a post was run only when the poll timed out"
