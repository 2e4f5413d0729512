"""A small HTTP server with a few routes.

    python examples/http_server.py --listen http://127.0.0.1:8000
    curl http://127.0.0.1:8000/hello?name=you
"""

import argparse
import time

from pymongoose import MG_EV_HTTP_MSG, Manager


def handler(conn, event, data):
    if event != MG_EV_HTTP_MSG:
        return
    if data.uri == "/":
        conn.reply(200, "<h1>pymongoose</h1><a href='/hello?name=you'>say hello</a>",
                   {"Content-Type": "text/html; charset=utf-8"})
    elif data.uri == "/hello":
        conn.reply(200, f"Hello, {data.query_var('name') or 'world'}!\n")
    elif data.uri == "/time":
        conn.reply(200, f"{time.time():.3f}\n")
    else:
        conn.reply(404, "Not found\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.listen, http=True)
    print(f"Listening on http://127.0.0.1:{listener.local_addr.port}", flush=True)
    manager.run()  # until Ctrl-C


if __name__ == "__main__":
    main()
