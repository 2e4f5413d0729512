"""Connection burst: open N new connections at once, one request on each.

    burst.py PORT [--connections 5000]

Starts every connect() before reading anything, sends one GET on each connection as
soon as it is writable, and prints (one line, space-separated):
connections/second until every response arrived, milliseconds to the first
response, and milliseconds to the last. The server must answer with
``Content-Length`` (server.py hello does).
"""

from __future__ import annotations

import argparse
import errno
import resource
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 64)), hard))

    selector = selectors.DefaultSelector()
    started = time.monotonic()
    for _ in range(args.connections):
        s = socket.socket()
        s.setblocking(False)
        code = s.connect_ex(("127.0.0.1", args.port))
        if code not in (0, errno.EINPROGRESS):
            sys.exit(f"connect failed: {errno.errorcode.get(code, code)}")
        selector.register(s, selectors.EVENT_WRITE, b"")
    first = None
    done = failed = 0
    deadline = started + args.timeout
    while done + failed < args.connections:
        if time.monotonic() > deadline:
            sys.exit(f"timed out with {done} of {args.connections} answered")
        for key, mask in selector.select(1.0):
            s = key.fileobj
            if mask & selectors.EVENT_WRITE:
                s.send(REQUEST)  # type: ignore[union-attr]
                selector.modify(s, selectors.EVENT_READ, b"")
                continue
            try:
                chunk = s.recv(4096)  # type: ignore[union-attr]
            except ConnectionError:
                chunk = b""
            data = key.data + chunk
            if not chunk or (b"\r\n\r\n" in data and data.endswith(b"Hello, World!")):
                if chunk:
                    done += 1
                    first = first if first is not None else time.monotonic()
                else:
                    failed += 1
                selector.unregister(s)
                s.close()  # type: ignore[union-attr]
            else:
                selector.modify(s, selectors.EVENT_READ, data)
    elapsed = time.monotonic() - started
    if failed:
        sys.exit(f"{failed} of {args.connections} connections closed without a response")
    print(f"{args.connections / elapsed:.1f} {((first or started) - started) * 1000:.1f} {elapsed * 1000:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
