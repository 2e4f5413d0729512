"""WebSocket echo server for the benchmark, on either binding: ws_echo_server.py PORT [--binding B]."""

import argparse
import importlib


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--binding", default="pymongoose", choices=("pymongoose", "cymongoose"))
    args = parser.parse_args()
    mg = importlib.import_module(args.binding)

    def handler(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == mg.MG_EV_WS_MSG:
            conn.ws_send(data.data, mg.WEBSOCKET_OP_TEXT)

    manager = mg.Manager(handler)
    manager.listen(f"http://127.0.0.1:{args.port}", http=True)
    print("ready", flush=True)
    while True:
        manager.poll(1000)


if __name__ == "__main__":
    main()
