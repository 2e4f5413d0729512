"""What one event crossing into Python costs, without the network.

    python benchmarks/event_cost.py        # with CPython and with PyPy, to compare

The shim's pm_bench_events delivers an event to a connection the way Mongoose
would (through the C filter and the trampoline, with the GIL as pm_mgr_poll holds
it), n times; the handler is the usual "if event == MG_EV_HTTP_MSG" one. Also
times reply(), the hot path of a server. Prints nanoseconds; best of 5.
"""

import threading
import time

from pymongoose import MG_EV_HTTP_MSG, MG_EV_POLL, MG_EV_READ, Manager
from pymongoose._binding import ffi, lib

N = 200_000


def best_of(runs, function):
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main():
    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.reply(200, "Hello, World!")

    manager = Manager(handler)
    conn = manager.listen("tcp://127.0.0.1:0")
    count = ffi.new("long *", 100)
    uptime = ffi.new("uint64_t *", 1)
    for name, event, data in (("MG_EV_POLL", MG_EV_POLL, uptime), ("MG_EV_READ", MG_EV_READ, count)):
        seconds = best_of(5, lambda e=event, d=data: lib.pm_bench_events(manager._ptr, conn.id, e, d, N))
        print(f"{name}: {seconds / N * 1e9:.0f} ns per event")

    manager._owner = threading.get_ident()  # act as the polling thread
    c = conn._c()

    def replies():
        for i in range(N // 10):
            conn.reply(200, "Hello, World!")
            if i % 64 == 0:
                c.send.len = 0  # nothing flushes this listener's buffer: keep it small

    print(f"reply(): {best_of(5, replies) / (N // 10) * 1e9:.0f} ns per call")
    manager._owner = None
    manager.close()


if __name__ == "__main__":
    main()
