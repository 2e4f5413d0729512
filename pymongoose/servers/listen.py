"""The servers' listeners and their banner.

A listener is an HTTP listener of the :class:`~pymongoose.Manager` with the
server's limits: requests are screened in C as RFC 9112 asks, and the header-read
and keep-alive timeouts run there (:class:`~pymongoose.HttpLimits`); only a body to
stream brings ``MG_EV_HTTP_HDRS`` into Python (:mod:`.intake`).
"""

from __future__ import annotations

import os
import socket
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

from .._binding import lib
from .._listen_socket import adoptable, tcp_listener, unix_listener
from ..connection import Connection
from ..errors import ListenError
from ..manager import Manager
from ..tls import TlsOpts
from .config import STREAM_BODY_OVER, ServerConfig


def open_listener(manager: Manager, url: str, config: ServerConfig, tls: Optional[TlsOpts],
                  reuse_port: bool, fd: Optional[int] = None, uds: Optional[str] = None,
                  backlog: Optional[int] = None) -> Connection:
    """Listen on ``url`` for a server configured by ``config`` (``fd``, ``uds``,
    ``backlog``: see :meth:`~pymongoose.Manager.listen`)."""
    listener = manager.listen(url, http=True, tls=tls, max_body=config.max_body, reuse_port=reuse_port,
                              limits=config.limits, fd=fd, uds=uds, backlog=backlog)
    listener._call(lib.pm_conn_set_hdrs_over, STREAM_BODY_OVER)
    return listener


# A server stopping gracefully waits this long at most for the next request of a
# connection it has just accepted (connect() returns before the request is sent)
# or answered (a keep-alive client sends its next one at once): that request is
# answered with "connection: close" (writer.closing), and the client goes elsewhere.
BETWEEN_WAIT = 1.0


def unfinished(manager: Manager, between: bool) -> bool:
    """Whether a connection of ``manager`` is receiving a request or its response
    is not all queued, or (``between``) is between requests: a server stopping
    waits for those (even while the application has not yet seen the request)."""
    for conn in manager.connections:
        c = conn._c()
        if c is not None and lib.pm_http_unfinished(c, between):  # False for a listener
            return True
    return False


def banner(what: str, url: str, listener: Connection, detail: str = "", uds: Optional[str] = None) -> str:
    """The line a server prints once it listens: ``what``, where, ``detail``.

    >>> class Address: ip, port, is_ipv6 = "::1", 8000, True
    >>> class Listener: local_addr = Address()
    >>> banner("pymongoose ASGI server", "http://[::1]:0", Listener(), "4 threads")
    'pymongoose ASGI server on http://[::1]:8000/ (4 threads; Ctrl-C to stop)'
    """
    address = listener.local_addr
    scheme = url.split("://", 1)[0]
    where = "?"
    if uds is not None:
        return f"{what} on {scheme}+unix:{uds} ({detail + '; ' if detail else ''}Ctrl-C to stop)"
    if address is not None:
        where = f"[{address.ip}]:{address.port}" if address.is_ipv6 else f"{address.ip}:{address.port}"
    return f"{what} on {scheme}://{where}/ ({detail + '; ' if detail else ''}Ctrl-C to stop)"


# systemd's socket activation (sd_listen_fds(3)): the first descriptor passed.
SD_LISTEN_FDS_START = 3


def systemd_socket() -> Optional[int]:
    """The listening socket systemd passed this process, if it did (``LISTEN_FDS``
    for this ``LISTEN_PID``); the variables are removed so that no child process
    takes them for its own."""
    count, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    if not count or pid != str(os.getpid()):
        return None
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return SD_LISTEN_FDS_START if count.isdigit() and int(count) >= 1 else None


def listening_socket(url: str, backlog: int, uds: Optional[str] = None, fd: Optional[int] = None,
                     reuse_port: bool = False) -> int:
    """A listening socket's descriptor, for worker processes to share: on ``uds``,
    ``fd`` (a duplicate), or ``url``'s address (with ``SO_REUSEPORT``: others may
    listen on it too).

    :raises ListenError: it cannot be opened, with the cause.
    """
    if uds is not None:
        return unix_listener(uds, backlog)
    if fd is not None:
        return adoptable(fd)
    parts = urlsplit(url)
    try:
        port = parts.port or 0
    except ValueError as error:
        raise ListenError(f"Failed to listen on {url}: {error}") from None
    return tcp_listener(parts.hostname or "0.0.0.0", port, backlog, reuse_port)


def local_url(url: str, fd: int) -> str:
    """``url`` with the address ``fd`` is bound to (port 0 resolved)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        name = sock.getsockname()
    finally:
        sock.close()
    if not isinstance(name, tuple):
        return url
    host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
    return urlunsplit(urlsplit(url)._replace(netloc=f"{host}:{name[1]}"))
