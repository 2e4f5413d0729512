"""Listening sockets made outside Mongoose: a Unix domain socket, or a descriptor
handed over by a service manager or a supervisor (``Manager.listen(fd=...)``,
``uds=...``). Mongoose adopts the descriptor (patch listen-adopt-fd).

>>> import socket
>>> sock = socket.socket()
>>> _ = sock.bind(("127.0.0.1", 0))
>>> fd = adoptable(sock.fileno())
>>> fd != sock.fileno()
True
>>> os.close(fd); sock.close()
>>> adoptable(-1)
Traceback (most recent call last):
ValueError: fd must be >= 0, not -1
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any

from ._args import int_arg
from .errors import ListenError

# The accept queue's length unless told (uvicorn's and gunicorn's): a burst of new
# connections waits instead of being refused. Linux caps it at net.core.somaxconn.
DEFAULT_BACKLOG = 2048
MAX_BACKLOG = 65535


def check_backlog(backlog: int) -> int:
    return int_arg(backlog, "backlog", 1, MAX_BACKLOG)


def adoptable(fd: int) -> int:
    """A duplicate of descriptor ``fd`` for a listener to own: the caller's stays
    the caller's to close."""
    int_arg(fd, "fd", 0)
    _check_posix("fd")
    copy = -1
    try:
        copy = os.dup(fd)
        sock = socket.socket(fileno=copy)  # learns the family and type
    except OSError as error:
        if copy >= 0:
            os.close(copy)
        raise ListenError(f"Failed to listen on descriptor {fd}: {error.strerror}") from None
    if sock.type != socket.SOCK_STREAM:
        sock.close()
        raise ListenError(f"Failed to listen on descriptor {fd}: not a stream socket")
    return sock.detach()


def unix_listener(path: str, backlog: int) -> int:
    """Bind and listen on a Unix domain socket at ``path``; return its descriptor.

    A socket file left by a server that has gone (nothing accepts on it) is
    replaced; a live one, or a file of another kind, is an error, never removed.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(f"uds must be a non-empty str, not {path!r}")
    _check_posix("uds")
    _remove_stale(path)
    return _listening(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), path, backlog, path)


def tcp_listener(host: str, port: int, backlog: int, reuse_port: bool = False) -> int:
    """Bind and listen on ``host``:``port`` (with ``reuse_port``: SO_REUSEPORT, other
    sockets may listen there too); return its descriptor."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                            flags=socket.AI_PASSIVE)[0]
    except OSError as error:
        raise ListenError(f"Failed to listen on {where}: {error}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        sock.close()
        raise
    return _listening(sock, address, backlog, where)


def _listening(sock: socket.socket, address: Any, backlog: int, where: str) -> int:
    """``sock`` bound to ``address`` and listening, as a descriptor (closed on failure)."""
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise ListenError(f"Failed to listen on {where}: {error.strerror}") from None
    return sock.detach()


def _remove_stale(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ListenError(f"Failed to listen on {path}: {error.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"Failed to listen on {path}: a file that is not a socket is there")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno != errno.ECONNREFUSED:
            raise ListenError(f"Failed to listen on {path}: {error.strerror}") from None
        os.unlink(path)  # nothing listens: a server that has gone left it
    else:
        raise ListenError(f"Failed to listen on {path}: address in use (another server listens there)")
    finally:
        probe.close()


def _check_posix(option: str) -> None:
    if not hasattr(socket, "AF_UNIX") or os.name != "posix":
        raise ValueError(f"{option} needs POSIX descriptors, which this platform lacks (Windows)")
