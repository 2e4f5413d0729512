"""Serve a folder over HTTP: ``python -m pymongoose [--root DIR] [--listen URL]``.

Defaults: the current folder, on http://127.0.0.1:8000. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, List, Optional

from . import MG_EV_HTTP_MSG, ListenError, Manager, __version__

logger = logging.getLogger("pymongoose.serve")


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pymongoose",
        description="Serve a folder over HTTP with Mongoose.",
    )
    parser.add_argument("--root", default=".", help="folder to serve (default: the current one)")
    parser.add_argument("--listen", default="http://127.0.0.1:8000", metavar="URL",
                        help="where to listen (default: http://127.0.0.1:8000; port 0 picks a free one)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument("--version", action="version", version=f"pymongoose {__version__}")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the static file server until interrupted; returns the exit status."""
    args = _parse(argv)
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        print(f"error: --root {args.root!r} is not a folder", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")

    def handler(conn: Any, event: int, data: Any) -> None:
        if event == MG_EV_HTTP_MSG:
            logger.info("%s %s %s", conn.remote_addr.ip, data.method, data.uri)
            conn.serve_dir(data, root_dir=root)

    with Manager(handler) as manager:
        try:
            listener = manager.listen(args.listen, http=True)
        except (ListenError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        address = listener.local_addr
        assert address is not None  # a listener that opened has its address
        host = f"[{address.ip}]" if address.is_ipv6 else address.ip
        scheme = args.listen.split("://", 1)[0]
        print(f"Serving {root} on {scheme}://{host}:{address.port}/ (Ctrl-C to stop)", flush=True)
        manager.run(1000)  # until Ctrl-C or a service manager's SIGTERM
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
