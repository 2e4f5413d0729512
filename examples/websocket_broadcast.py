"""A WebSocket chat: every message goes to every client, and a timer broadcasts
the time every --interval-ms.

    python examples/websocket_broadcast.py
"""

import argparse
import time

from pymongoose import MG_EV_CLOSE, MG_EV_HTTP_MSG, MG_EV_WS_MSG, MG_EV_WS_OPEN, Manager


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    parser.add_argument("--interval-ms", type=int, default=1000)
    args = parser.parse_args()
    clients = {}  # id -> connection

    def broadcast(text):
        for conn in list(clients.values()):
            conn.ws_send(text)

    def handler(conn, event, data):
        if event == MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == MG_EV_WS_OPEN:
            clients[conn.id] = conn
        elif event == MG_EV_WS_MSG:
            broadcast(f"{conn.id}: {data.text}")
        elif event == MG_EV_CLOSE:
            clients.pop(conn.id, None)

    manager = Manager()
    listener = manager.listen(args.listen, handler, http=True)
    manager.timer_add(args.interval_ms, lambda: broadcast(f"time {time.time():.0f}"), repeat=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}/", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
