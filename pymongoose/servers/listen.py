"""The servers' listeners and their banner.

A listener is an HTTP listener of the :class:`~pymongoose.Manager` with the
server's limits: requests are screened in C as RFC 9112 asks, and the header-read
and keep-alive timeouts run there (:class:`~pymongoose.HttpLimits`); only a body to
stream brings ``MG_EV_HTTP_HDRS`` into Python (:mod:`.intake`).
"""

from __future__ import annotations

from typing import Optional

from .._binding import lib
from ..connection import Connection
from ..manager import Manager
from ..tls import TlsOpts
from .config import STREAM_BODY_OVER, ServerConfig


def open_listener(manager: Manager, url: str, config: ServerConfig, tls: Optional[TlsOpts],
                  reuse_port: bool) -> Connection:
    """Listen on ``url`` for a server configured by ``config``."""
    listener = manager.listen(url, http=True, tls=tls, max_body=config.max_body, reuse_port=reuse_port,
                              limits=config.limits)
    listener._call(lib.pm_conn_set_hdrs_over, STREAM_BODY_OVER)
    return listener


def banner(what: str, url: str, listener: Connection, detail: str = "") -> str:
    """The line a server prints once it listens: ``what``, where, ``detail``.

    >>> class Address: ip, port, is_ipv6 = "::1", 8000, True
    >>> class Listener: local_addr = Address()
    >>> banner("pymongoose ASGI server", "http://[::1]:0", Listener(), "4 threads")
    'pymongoose ASGI server on http://[::1]:8000/ (4 threads; Ctrl-C to stop)'
    """
    address = listener.local_addr
    scheme = url.split("://", 1)[0]
    where = "?"
    if address is not None:
        where = f"[{address.ip}]:{address.port}" if address.is_ipv6 else f"{address.ip}:{address.port}"
    return f"{what} on {scheme}://{where}/ ({detail + '; ' if detail else ''}Ctrl-C to stop)"
