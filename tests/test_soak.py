"""Resources under sustained load: memory stays flat, no file descriptor leaks, and
thousands of connections are held and served at once.

CI runs reduced sizes; the full soak is a documented command (docs/reliability.md):

    PYMONGOOSE_SOAK_REQUESTS=300000 PYMONGOOSE_SOAK_CYCLES=20000 \
    PYMONGOOSE_SOAK_CONNECTIONS=10000 .venv-test/bin/pytest tests/test_soak.py
"""

from __future__ import annotations

import gc
import os
import resource
import socket
import sys
import threading
from typing import Any, List

import pytest

from pymongoose import MG_EV_HTTP_MSG, Manager

from support import DEFAULT_TIMEOUT, LoopThread

try:
    import tracemalloc
except ImportError:  # PyPy has none: RSS and descriptors still tell
    tracemalloc = None  # type: ignore[assignment]

REQUESTS = int(os.environ.get("PYMONGOOSE_SOAK_REQUESTS", "40000"))
CYCLES = int(os.environ.get("PYMONGOOSE_SOAK_CYCLES", "2000"))
CONNECTIONS = int(os.environ.get("PYMONGOOSE_SOAK_CONNECTIONS", "2000"))

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def hello(conn: Any, event: int, data: Any) -> None:
    if event == MG_EV_HTTP_MSG:
        conn.reply(200, "soak")


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def keep_alive_requests(port: int, count: int, batch: int = 50) -> None:
    """count requests on one connection, pipelined in batches."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as s:
        done = 0
        while done < count:
            n = min(batch, count - done)
            s.sendall(REQUEST * n)
            received = 0
            buffer = b""
            while received < n:
                buffer += s.recv(65536)
                received = buffer.count(b"soak")
            done += n


def connection_cycles(port: int, count: int) -> None:
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass


def test_memory_stays_flat_over_many_requests_and_connection_cycles() -> None:
    mgr = Manager(hello)
    port = mgr.listen("http://127.0.0.1:0").local_addr.port
    ticks = [0]
    mgr.timer_add(1, lambda: ticks.__setitem__(0, ticks[0] + 1), repeat=True)  # timers fire throughout
    loop = LoopThread(mgr, poll_ms=50).start()
    try:
        keep_alive_requests(port, 2000)  # warm up: buffers, caches, the allocator
        connection_cycles(port, 200)
        gc.collect()
        rss_before, fds_before = rss_kib(), open_fds()
        if tracemalloc is not None:
            tracemalloc.start()
            snapshot_before = tracemalloc.take_snapshot()
        workers = [threading.Thread(target=keep_alive_requests, args=(port, REQUESTS // 4)) for _ in range(4)]
        workers.append(threading.Thread(target=connection_cycles, args=(port, CYCLES)))
        for t in workers:
            t.start()
        for t in workers:
            t.join(600)
        gc.collect()
        python_growth = 0
        if tracemalloc is not None:
            python_growth = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(
                snapshot_before, "filename"))
            tracemalloc.stop()
        rss_growth = rss_kib() - rss_before
        fds_after = open_fds()
    finally:
        loop.stop()
        mgr.close()
    print(f"\n{REQUESTS} requests, {CYCLES} connection cycles: RSS {rss_before} -> {rss_before + rss_growth} KiB, "
          f"Python heap {python_growth / 1024:+.1f} KiB, fds {fds_before} -> {fds_after}")
    assert ticks[0] > 100, "the timer did not keep firing under load"
    assert python_growth < 512 * 1024, f"the Python heap grew by {python_growth} bytes"
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine holds freed memory
        assert rss_growth < 16 * 1024, f"RSS grew by {rss_growth} KiB"
    assert fds_after <= fds_before + 2


def test_thousands_of_connections_held_and_served() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * CONNECTIONS + 200  # both ends live in this process
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    mgr = Manager(hello)
    port = mgr.listen("http://127.0.0.1:0").local_addr.port
    loop = LoopThread(mgr, poll_ms=20).start()
    clients: List[socket.socket] = []
    try:
        for _ in range(CONNECTIONS):
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT))
        for s in clients:  # every request first, then every answer
            s.sendall(REQUEST)
        served = sum(1 for s in clients if s.recv(4096).startswith(b"HTTP/1.1 200"))
        held = loop.call(lambda: len(mgr.connections)) - 1  # minus the listener
    finally:
        for s in clients:
            s.close()
        loop.stop()
        mgr.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert served == CONNECTIONS
    assert held == CONNECTIONS
