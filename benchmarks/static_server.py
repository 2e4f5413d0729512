"""Static file server for the benchmark: static_server.py PORT ROOT [--binding B]."""

import argparse
import importlib


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("root")
    parser.add_argument("--binding", default="pymongoose", choices=("pymongoose", "cymongoose"))
    args = parser.parse_args()
    mg = importlib.import_module(args.binding)

    def handler(conn, event, data):
        if event == mg.MG_EV_HTTP_MSG:
            conn.serve_dir(data, root_dir=args.root)

    manager = mg.Manager(handler)
    manager.listen(f"http://127.0.0.1:{args.port}", http=True)
    print("ready", flush=True)
    while True:
        manager.poll(1000)


if __name__ == "__main__":
    main()
