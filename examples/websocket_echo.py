"""A WebSocket echo server; plain HTTP on other paths.

    python examples/websocket_echo.py
    python -m websocket ws://127.0.0.1:8000/ws    (from the websocket-client package)
"""

import argparse

from pymongoose import MG_EV_HTTP_MSG, MG_EV_WS_MSG, WEBSOCKET_OP_BINARY, WEBSOCKET_OP_TEXT, Manager


def handler(conn, event, data):
    if event == MG_EV_HTTP_MSG:
        if data.uri == "/ws":
            conn.ws_upgrade(data)
        else:
            conn.reply(200, "WebSocket echo server: connect to /ws\n")
    elif event == MG_EV_WS_MSG:
        op = WEBSOCKET_OP_BINARY if data.op == WEBSOCKET_OP_BINARY else WEBSOCKET_OP_TEXT
        conn.ws_send(data.data, op)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.listen, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}/ws", flush=True)
    manager.run()


if __name__ == "__main__":
    main()
