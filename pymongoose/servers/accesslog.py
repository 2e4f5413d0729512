"""One access log line per response, the same for both servers.

On the logger ``pymongoose.wsgi.access`` or ``pymongoose.asgi.access``, at INFO,
when the server's ``access_log`` is on::

    127.0.0.1:51234 - "GET /x?y=1 HTTP/1.1" 200 1534 0.8ms

client, request line, status, body bytes sent, and the time from the request to
its response's end (queued in full) in milliseconds. ``access_log_format`` makes
the line another way: a :meth:`str.format` string over the fields of
:data:`FIELDS`.

>>> line = AccessFormat('{client_host} [{time}] "{request}" {status} {duration_ms:.0f}')
>>> sample = dict(SAMPLE, time="2026-12-03T10:00:00+0000")
>>> line.format(sample)
'127.0.0.1 [2026-12-03T10:00:00+0000] "GET /x?y=1 HTTP/1.1" 200 1'
>>> AccessFormat("{host}")  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: access log format: unknown field 'host' (fields: bytes, client, client_host, ...)
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Tuple

wsgi_access = logging.getLogger("pymongoose.wsgi.access")
asgi_access = logging.getLogger("pymongoose.asgi.access")

# Each field, with what it holds.
FIELDS = {
    "client": "the client's host:port ('-' when unknown: a Unix socket)",
    "client_host": "its address alone",
    "client_port": "its port alone",
    "method": "the request's method",
    "target": "its target (path and query, as sent)",
    "version": "its HTTP version (1.1)",
    "request": "the request line: method, target and HTTP/version",
    "status": "the response's status (an int)",
    "bytes": "body bytes sent (an int)",
    "duration_ms": "from the request to its response's end, in ms (a float)",
    "time": "when the response ended, local time, ISO 8601",
    "pid": "the serving process's id",
}
SAMPLE: Dict[str, Any] = {"client": "127.0.0.1:51234", "client_host": "127.0.0.1", "client_port": 51234,
                          "method": "GET", "target": "/x?y=1", "version": "1.1", "request": "GET /x?y=1 HTTP/1.1",
                          "status": 200, "bytes": 1534, "duration_ms": 0.8, "time": "", "pid": 1}


class AccessFormat:
    """An access log line's format, checked once against every field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"access_log_format must be a str, not {type(text).__name__}")
        try:
            text.format_map(SAMPLE)
        except KeyError as error:
            raise ValueError(f"access log format: unknown field {error} (fields: {', '.join(sorted(FIELDS))})") \
                from None
        except (ValueError, IndexError, AttributeError) as error:
            raise ValueError(f"access log format: {error}") from None
        self.text = text

    def format(self, fields: Dict[str, Any]) -> str:
        return self.text.format_map(fields)


def log_access(logger: logging.Logger, client: Optional[Tuple[str, int]], method: str, target: str,
               version: str, status: int, sent: int, started: float, line: Optional[AccessFormat] = None) -> None:
    """Write one line; ``started`` is the request's ``time.perf_counter()``; ``line``:
    the format, when not the default one."""
    duration = (time.perf_counter() - started) * 1000
    if line is None:
        logger.info('%s:%s - "%s %s HTTP/%s" %d %d %.1fms', client[0] if client else "-",
                    client[1] if client else "-", method, target, version, status, sent, duration)
        return
    host, port = client if client else ("-", "-")
    logger.info("%s", line.format({
        "client": f"{host}:{port}" if client else "-", "client_host": host, "client_port": port,
        "method": method, "target": target, "version": version, "request": f"{method} {target} HTTP/{version}",
        "status": status, "bytes": sent, "duration_ms": duration,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(),
    }))
