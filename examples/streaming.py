"""Stream responses: chunked transfer encoding and Server-Sent Events.

    python examples/streaming.py
    curl -N http://127.0.0.1:8000/chunked     # ten chunks, one every 100 ms
    curl -N http://127.0.0.1:8000/events      # an SSE "tick" every 100 ms, ten of them
"""

import argparse

from pymongoose import MG_EV_CLOSE, MG_EV_HTTP_MSG, Manager

TICKS = 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    parser.add_argument("--interval-ms", type=int, default=100)
    args = parser.parse_args()
    manager = Manager()
    streams = {}  # connection -> ("chunked" | "sse", ticks sent)

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            if data.uri == "/chunked":
                conn.reply(200, "", {"Transfer-Encoding": "chunked"})
                streams[conn] = ["chunked", 0]
            elif data.uri == "/events":
                conn.reply(200, "", {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                     "Transfer-Encoding": "chunked"})
                streams[conn] = ["sse", 0]
            else:
                conn.reply(404, "try /chunked or /events\n")
        elif event == MG_EV_CLOSE:
            streams.pop(conn, None)

    def tick():
        for conn, state in list(streams.items()):
            kind, sent = state
            if kind == "chunked":
                conn.http_chunk(f"chunk {sent}\n")
            else:
                conn.http_sse("tick", str(sent))
            state[1] = sent + 1
            if state[1] == TICKS:
                conn.http_chunk("")  # end of the response
                del streams[conn]

    listener = manager.listen(args.listen, handler, http=True)
    manager.timer_add(args.interval_ms, tick, repeat=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
