"""The same servers as server.py, on socketify (uWebSockets through cffi): a peer.

    python benchmarks/socketify_server.py hello PORT
    python benchmarks/socketify_server.py plain PORT
    python benchmarks/socketify_server.py ws PORT

hello answers the JSON document of server.py with its Content-Type, plain
"Hello, World!" (text/plain), ws echoes every message with its opcode. Prints "ready" once listening.
"""

import argparse

from socketify import App


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("hello", "plain", "ws"))
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    app = App()
    if args.kind == "hello":
        app.get("/", lambda res, req: res.write_header("Content-Type", "application/json").end(
            '{"message":"Hello, World!"}'))
    elif args.kind == "plain":
        app.get("/", lambda res, req: res.end("Hello, World!"))
    else:
        app.ws("/*", {"message": lambda ws, message, opcode: ws.send(message, opcode)})
    app.listen(args.port, lambda config: print("ready", flush=True))
    app.run()


if __name__ == "__main__":
    main()
