"""The hello-world HTTP server the benchmarks run, on either binding.

    python benchmarks/hello_server.py PORT [--binding pymongoose|cymongoose] [--events http]

The handler is the same code on both: written for the Cython binding, unchanged.
``--events http`` (pymongoose only) asks for MG_EV_HTTP_MSG alone.
"""

import argparse
import importlib
import signal
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--binding", default="pymongoose", choices=("pymongoose", "cymongoose"))
    parser.add_argument("--events", default="all", choices=("all", "http"))
    args = parser.parse_args()
    mg = importlib.import_module(args.binding)

    def handler(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.reply(200, "Hello, World!")

    options = {"events": [mg.MG_EV_HTTP_MSG]} if args.events == "http" else {}
    manager = mg.Manager(handler, **options)
    manager.listen(f"http://127.0.0.1:{args.port}", http=True)
    print(f"ready on {args.port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            manager.poll(1000)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
