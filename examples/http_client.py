"""Fetch a URL with pymongoose's HTTP client and print the status and body.

    python examples/http_client.py http://127.0.0.1:8000/hello
"""

import argparse
import sys

from pymongoose import MG_EV_CONNECT, MG_EV_ERROR, MG_EV_HTTP_MSG, Manager, url_host, url_uri


def fetch(url, timeout_s=10.0):
    """Return (status, body bytes) of a GET of ``url``; raises OSError on failure."""
    result = {}

    def handler(conn, event, data):
        if event == MG_EV_CONNECT:
            request = f"GET {url_uri(url)} HTTP/1.1\r\nHost: {url_host(url)}\r\nConnection: close\r\n\r\n"
            conn.send(request)
        elif event == MG_EV_HTTP_MSG:
            result["response"] = (data.status(), data.body_bytes)
            conn.drain()
        elif event == MG_EV_ERROR:
            result["error"] = data

    with Manager() as manager:
        manager.http_connect(url, handler)
        polls = int(timeout_s * 20)
        while not result and polls > 0:
            manager.poll(50)
            polls -= 1
    if "response" in result:
        return result["response"]
    raise OSError(result.get("error", f"no answer from {url} within {timeout_s}s"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    args = parser.parse_args()
    try:
        status, body = fetch(args.url)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(status)
    sys.stdout.write(body.decode("utf-8", "replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
