"""The servers the benchmarks run, on either binding, with the same handler code.

    python benchmarks/server.py hello PORT [--binding pymongoose|cymongoose] [--events http]
    python benchmarks/server.py plain PORT [--binding ...] [--events http]
    python benchmarks/server.py ws PORT [--binding ...]
    python benchmarks/server.py static PORT --root DIR [--binding ...]
    python benchmarks/server.py hello PORT --tls-cert CERT --tls-key KEY [--binding ...]

hello answers a small JSON document with its own ``Content-Type`` header, as real
handlers do; plain answers "Hello, World!" with the default text/plain (both are
handlers written for the Cython binding, unchanged; ``--events http``, pymongoose
only, asks for MG_EV_HTTP_MSG alone). ws echoes WebSocket messages, static serves
--root. Prints "ready" once listening.
"""

import argparse
import importlib
import signal
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("hello", "plain", "ws", "static"))
    parser.add_argument("port", type=int)
    parser.add_argument("--binding", default="pymongoose", choices=("pymongoose", "cymongoose"))
    parser.add_argument("--events", default="all", choices=("all", "http"))
    parser.add_argument("--root", default=".")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM file)")
    parser.add_argument("--tls-key", help="and this private key")
    args = parser.parse_args()
    mg = importlib.import_module(args.binding)
    tls = None
    if args.tls_cert:
        with open(args.tls_cert) as cert, open(args.tls_key) as key:
            tls = mg.TlsOpts(cert=cert.read(), key=key.read())

    def hello(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.reply(200, '{"message":"Hello, World!"}', {"Content-Type": "application/json"})
        elif event == mg.MG_EV_ACCEPT and tls is not None:
            conn.tls_init(tls)  # the Cython binding's way: both bindings take it

    def plain(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.reply(200, "Hello, World!")
        elif event == mg.MG_EV_ACCEPT and tls is not None:
            conn.tls_init(tls)

    def ws(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.ws_upgrade(data)
        elif event == mg.MG_EV_WS_MSG:
            conn.ws_send(data.data, mg.WEBSOCKET_OP_TEXT)

    def static(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=args.root)

    options = {"events": [mg.MG_EV_HTTP_MSG]} if args.events == "http" else {}
    manager = mg.Manager({"hello": hello, "plain": plain, "ws": ws, "static": static}[args.kind], **options)
    manager.listen(f"http://127.0.0.1:{args.port}", http=True)
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        manager.poll(1000)


if __name__ == "__main__":
    main()
