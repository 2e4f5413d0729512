"""One access log line per response, the same for both servers.

On the logger ``pymongoose.wsgi.access`` or ``pymongoose.asgi.access``, at INFO,
when the server's ``access_log`` is on::

    127.0.0.1:51234 - "GET /x?y=1 HTTP/1.1" 200 1534 0.8ms

client, request line, status, body bytes sent, and the time from the request to
its response's end (queued in full) in milliseconds.
"""

from __future__ import annotations

import logging
import time
from typing import Optional, Tuple

wsgi_access = logging.getLogger("pymongoose.wsgi.access")
asgi_access = logging.getLogger("pymongoose.asgi.access")


def log_access(logger: logging.Logger, client: Optional[Tuple[str, int]], method: str, target: str,
               version: str, status: int, sent: int, started: float) -> None:
    """Write one line; ``started`` is the request's ``time.perf_counter()``."""
    logger.info('%s:%s - "%s %s HTTP/%s" %d %d %.1fms', client[0] if client else "-", client[1] if client else "-",
                method, target, version, status, sent, (time.perf_counter() - started) * 1000)
