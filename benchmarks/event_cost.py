"""What one event crossing into Python costs, without the network.

    python benchmarks/event_cost.py        # with CPython and with PyPy, to compare

The shim's pm_bench_events delivers an event to a connection the way Mongoose
would (through the C filter and the trampoline, with the GIL as pm_mgr_poll holds
it), n times; the handler is the usual "if event == MG_EV_HTTP_MSG" one. Also
times reply(), the hot path of a server. Prints nanoseconds; best of 5.
"""

import threading
import time

from pymongoose import MG_EV_HTTP_HDRS, MG_EV_HTTP_MSG, MG_EV_POLL, MG_EV_READ, MG_EV_WRITE, Manager
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
    http = manager.listen("http://127.0.0.1:0")  # MG_EV_READ is deferred after a protocol handler
    count = ffi.new("long *", 100)
    uptime = ffi.new("uint64_t *", 1)
    message = ffi.new("struct mg_http_message *")  # an empty request: HTTP_HDRS makes a view, no reply
    cases = (("MG_EV_POLL (deferred)", conn, MG_EV_POLL, uptime),
             ("MG_EV_WRITE (deferred)", conn, MG_EV_WRITE, count),
             ("MG_EV_READ, HTTP (deferred)", http, MG_EV_READ, count),
             ("MG_EV_READ, TCP (crosses)", conn, MG_EV_READ, count),
             ("MG_EV_HTTP_HDRS (crosses, view)", http, MG_EV_HTTP_HDRS, message))
    for name, target, event, data in cases:
        seconds = best_of(5, lambda t=target, e=event, d=data: lib.pm_bench_events(manager._ptr, t.id, e, d, N))
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
