"""Every option the two servers share, with its default, checked once.

>>> ServerConfig(max_body=1024).limits.max_head
65536
>>> ServerConfig(high_water=0)
Traceback (most recent call last):
ValueError: high_water must be >= 1, not 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .._args import int_arg
from ..http import MAX_BODY_CEILING, HttpLimits
from .accesslog import AccessFormat
from .proxy import DEFAULT_FORWARDED_ALLOW_IPS, ProxyTrust

# A request body larger than this, with a Content-Length, reaches the application as
# it arrives (intake.py); smaller ones, and chunked ones, are buffered whole first.
STREAM_BODY_OVER = 1024 * 1024
# Reading a body the application takes in pieces pauses while this much waits
# unread, and resumes once it is under BODY_RESUME_UNDER.
BODY_PAUSE_OVER = 4 * 1024 * 1024
BODY_RESUME_UNDER = 1024 * 1024
# A streamed response (or WebSocket) waits while more than this is queued for a slow
# client.
DEFAULT_HIGH_WATER = 1024 * 1024
DEFAULT_MAX_BODY = 64 * 1024 * 1024
# How long a graceful stop waits for the responses in flight.
DEFAULT_GRACE = 10.0


@dataclass(frozen=True)
class ServerConfig:
    """The options of :class:`~pymongoose.wsgi.WSGIServer` and
    :class:`~pymongoose.asgi.ASGIServer` that mean the same thing on both.

    ``proxy_headers``: believe ``Forwarded`` / ``X-Forwarded-For`` /
    ``X-Forwarded-Proto`` from the addresses in ``forwarded_allow_ips``
    (``servers/proxy.py``) for the client's address and scheme. ``limit_concurrency``:
    answer ``503 Service Unavailable`` (and close) to a request that arrives while
    that many are being handled (ASGI: WebSockets open count too); None: no limit.
    ``access_log_format``: the access line's format (``servers/accesslog.py``).
    ``max_body``: the largest request body (413 beyond). ``high_water``: bytes a
    streamed response may queue for a slow client before the application waits.
    ``max_head``, ``max_target``, ``header_read_timeout``, ``timeout_keep_alive``:
    see :class:`~pymongoose.HttpLimits` (the servers close idle keep-alive
    connections after 5 s, as uvicorn does). ``access_log``: one line per response
    (``servers/accesslog.py``). ``poll_interval``: the longest the loop sleeps, in ms.
    """

    max_body: int = DEFAULT_MAX_BODY
    high_water: int = DEFAULT_HIGH_WATER
    max_head: int = 64 * 1024
    max_target: int = 8 * 1024
    header_read_timeout: Optional[float] = 30.0
    timeout_keep_alive: Optional[float] = 5.0
    access_log: bool = False
    poll_interval: int = 100
    proxy_headers: bool = False
    forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS
    limit_concurrency: Optional[int] = None
    access_log_format: Optional[str] = None
    # Made from the options above, once (checking them): whose proxy headers to
    # believe (None: nobody's), the access line's format (None: the default one).
    proxy: Optional[ProxyTrust] = field(init=False, repr=False, compare=False)
    access_line: Optional[AccessFormat] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        int_arg(self.max_body, "max_body", 1, MAX_BODY_CEILING)
        trusted = ProxyTrust(self.forwarded_allow_ips)
        object.__setattr__(self, "proxy", trusted if self.proxy_headers else None)
        line = AccessFormat(self.access_log_format) if self.access_log_format is not None else None
        object.__setattr__(self, "access_line", line)
        if self.limit_concurrency is not None:
            int_arg(self.limit_concurrency, "limit_concurrency", 1)
        int_arg(self.high_water, "high_water", 1)
        int_arg(self.poll_interval, "poll_interval", 1, 60_000)
        _ = self.limits  # checks the rest

    @property
    def limits(self) -> HttpLimits:
        """What the listener's C side screens and times (see :class:`HttpLimits`)."""
        return HttpLimits(self.max_head, self.max_target, self.header_read_timeout, self.timeout_keep_alive)
